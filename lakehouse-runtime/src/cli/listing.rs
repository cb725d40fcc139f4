//! Listing what the lakehouse holds: its pipelines (`list`, `graph`) and its runs (`runs`), and
//! forgetting old runs (`prune-ledger`).

use std::process::ExitCode;

use comfy_table::{ContentArrangement, Table as Grid, presets};

use super::args::{GlobalArgs, GraphFormat, ReportFormat};
use super::commands::existing_warehouse;
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::ledger::{Liveness, RunRecord};
use crate::orchestrator::{Orchestrator, Status};
use crate::table::Timestamp;

/// The first paragraph of a doc comment, on one line (a doc's first line is often half a
/// sentence).
pub(super) fn first_paragraph(doc: &str) -> String {
    doc.lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn list(registry: &Registry) {
    let mut grid = Grid::new();
    grid.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "pipeline",
            "level",
            "layer",
            "table",
            "mode",
            "depends on",
            "tags",
            "description",
        ]);
    for p in registry.pipelines() {
        grid.add_row(vec![
            p.name.to_owned(),
            registry.level(p.name).unwrap_or(p.level).to_string(),
            p.layer().to_owned(),
            p.output.qualified_name(),
            match p.output.overwrite {
                crate::table::OverwriteScope::Partitions => "overwrite (partitions)".to_owned(),
                crate::table::OverwriteScope::Table => p.output.mode.as_str().to_owned(),
            },
            p.depends_on.join(", "),
            p.tags.join(", "),
            first_paragraph(p.description),
        ]);
    }
    say!("{grid}");
    say!("{} pipeline(s)", registry.len());
}

/// `list --format json`: one object per pipeline.
pub(super) fn list_json(registry: &Registry) -> Result<()> {
    print_json_lines(registry.pipelines().iter().map(|p| {
        let inputs: Vec<serde_json::Value> = p
            .inputs
            .iter()
            .map(|input| {
                serde_json::json!({
                    "table": input.table.qualified_name(),
                    "incremental": input.incremental,
                })
            })
            .collect();
        serde_json::json!({
            "pipeline": p.name,
            "level": registry.level(p.name).unwrap_or(p.level),
            "layer": p.layer(),
            "table": p.output.qualified_name(),
            "mode": p.output.mode.as_str(),
            // The table view's `overwrite (partitions)`.
            "overwrite_partitions": p.output.overwrite == crate::table::OverwriteScope::Partitions,
            "depends_on": p.depends_on,
            "inputs": inputs,
            "tags": p.tags,
            "retries": p.retries,
            "timeout_ms": p.timeout_ms,
            "full_snapshot": p.full_snapshot,
            "description": p.description,
        })
    }))
}

/// The graph in Mermaid or dot syntax: one node per pipeline, one edge per dependency.
pub fn graph(registry: &Registry, format: GraphFormat) -> String {
    let mut out = String::new();
    match format {
        // Node ids prefixed (Mermaid) or quoted (dot): a pipeline named `end`, `graph` or `node`
        // is a keyword there.
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for p in registry.pipelines() {
                out.push_str(&format!(
                    "  p_{}[\"{}<br/>{}\"]\n",
                    p.name,
                    p.name,
                    p.output.qualified_name()
                ));
            }
            for (from, to) in registry.edges() {
                out.push_str(&format!("  p_{from} --> p_{to}\n"));
            }
        }
        GraphFormat::Dot => {
            out.push_str("digraph lakehouse {\n  rankdir=LR;\n");
            for p in registry.pipelines() {
                out.push_str(&format!(
                    "  \"{}\" [label=\"{}\\n{}\"];\n",
                    p.name,
                    p.name,
                    p.output.qualified_name()
                ));
            }
            for (from, to) in registry.edges() {
                out.push_str(&format!("  \"{from}\" -> \"{to}\";\n"));
            }
            out.push_str("}\n");
        }
    }
    out
}

/// A run's status for `runs`: `died` for a run recorded as running whose process is gone.
fn run_status(run: &RunRecord) -> String {
    match json_status(run) {
        "died" => "died (resume it)".to_owned(),
        status => status.to_owned(),
    }
}

/// Whether `run` is recorded as running by a process that is gone.
fn run_died(run: &RunRecord) -> bool {
    run.status == Status::Running.as_str() && run.process_liveness() == Liveness::Gone
}

/// `runs --format json`: one object per line, for schedulers and scripts.
fn print_json_lines(rows: impl IntoIterator<Item = serde_json::Value>) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for row in rows {
        match writeln!(out, "{row}") {
            Ok(()) => {}
            // The reader went away (`| head`): nothing more to say.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(error) => return Err(Error::msg(format!("writing to stdout: {error}"))),
        }
    }
    Ok(())
}

pub(super) async fn runs(
    registry: &Registry,
    global: &GlobalArgs,
    run_id: Option<String>,
    limit: usize,
    format: ReportFormat,
) -> Result<ExitCode> {
    let warehouse = existing_warehouse(global)?;
    super::commands::refuse_unwritten_object_store(&warehouse, registry, global).await?;
    let orchestrator = Orchestrator::new(registry.clone(), warehouse);
    let time = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339());
    if format == ReportFormat::Json {
        match run_id {
            None => {
                let runs = orchestrator.ledger().runs(limit).await?;
                print_json_lines(runs.iter().map(|r| {
                    serde_json::json!({
                        "run_id": r.run_id,
                        "sequence": r.sequence,
                        "run_at": r.run_at.to_rfc3339(),
                        "status": json_status(r),
                        "started_at": r.started_at.to_rfc3339(),
                        "finished_at": time(r.finished_at),
                        "duration_ms": r.duration_ms,
                        "rows_written": r.rows_written,
                        "rows_deleted": r.rows_deleted,
                        "selection": r.selection,
                    })
                }))?;
            }
            Some(prefix) => {
                let (run_id, records) = run_records(&orchestrator, prefix).await?;
                let run_status = latest_run_row(&records).map(json_status);
                let never = never_attempted(&records);
                let never = never.iter().map(|pipeline| {
                    serde_json::json!({
                        "run_id": run_id,
                        "run_status": run_status,
                        "pipeline": pipeline,
                        "attempt": null,
                        "status": "not started",
                    })
                });
                print_json_lines(
                    records
                        .iter()
                        .filter(|r| r.kind == "pipeline")
                        .map(|r| {
                            serde_json::json!({
                                "run_id": run_id,
                                "run_status": run_status,
                                "pipeline": r.pipeline,
                                "attempt": r.attempt,
                                "status": r.status,
                                "started_at": r.started_at.to_rfc3339(),
                                "finished_at": time(r.finished_at),
                                "duration_ms": r.duration_ms,
                                "rows_written": r.rows_written,
                                "rows_deleted": r.rows_deleted,
                                "table": r.output_table,
                                "table_version": r.table_version,
                                "error": r.error,
                            })
                        })
                        .chain(never),
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut grid = Grid::new();
    grid.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    match run_id {
        None => {
            grid.set_header([
                "run",
                "sequence",
                "run_at",
                "status",
                "rows",
                "duration",
                "selection",
            ]);
            // One more than shown: whether there are more is known, not guessed.
            let mut runs = orchestrator.ledger().runs(limit.saturating_add(1)).await?;
            let more = runs.len() > limit;
            runs.truncate(limit);
            for r in &runs {
                grid.add_row(vec![
                    r.run_id.clone(),
                    r.sequence.to_string(),
                    r.run_at.to_string(),
                    run_status(r),
                    crate::orchestrator::report::rows_text(
                        r.rows_written.map(|n| n as u64),
                        r.rows_deleted.map(|n| n as u64),
                    ),
                    r.duration_ms
                        .map(|ms| format!("{:.2}s", ms as f64 / 1000.0))
                        .unwrap_or_default(),
                    r.selection.clone().unwrap_or_default(),
                ]);
            }
            say!("{grid}");
            if more {
                say!("the latest {limit} run(s) shown: `--limit N` shows more");
            } else if let Some(pruned) = orchestrator.ledger().pruned().await? {
                say!(
                    "older runs were pruned on {} (`orchestrate prune-ledger`)",
                    pruned.pruned_at
                );
            } else if runs.is_empty() {
                say!("no run recorded in {} yet", global.warehouse());
            }
        }
        Some(prefix) => {
            let (_, records) = run_records(&orchestrator, prefix).await?;
            grid.set_header([
                "pipeline", "attempt", "status", "rows", "version", "duration", "error",
            ]);
            for r in records.iter().filter(|r| r.kind == "pipeline") {
                grid.add_row(vec![
                    r.pipeline.clone().unwrap_or_default(),
                    r.attempt.map(|a| a.to_string()).unwrap_or_default(),
                    r.status.clone(),
                    crate::orchestrator::report::rows_text(
                        r.rows_written.map(|n| n as u64),
                        r.rows_deleted.map(|n| n as u64),
                    ),
                    r.table_version.map(|v| v.to_string()).unwrap_or_default(),
                    r.duration_ms
                        .map(|ms| format!("{:.2}s", ms as f64 / 1000.0))
                        .unwrap_or_default(),
                    r.error.clone().unwrap_or_default(),
                ]);
            }
            // Planned, never attempted: the run ended (or died) before them.
            let never = never_attempted(&records);
            for pipeline in &never {
                grid.add_row(vec![
                    pipeline.clone(),
                    String::new(),
                    "not started".to_owned(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
            say!("{grid}");
            if let Some(run) = latest_run_row(&records) {
                say!(
                    "run {} (sequence {}, run_at {}): {}",
                    run.run_id,
                    run.sequence,
                    run.run_at,
                    run_status(run)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prunes the runs that ended more than `older_than` ago from `warehouse`'s ledger, and says
/// what went (or would, on a dry run).
pub(super) async fn prune_ledger(
    warehouse: &crate::store::Warehouse,
    older_than: std::time::Duration,
    dry_run: bool,
) -> Result<ExitCode> {
    let micros = i64::try_from(older_than.as_micros()).unwrap_or(i64::MAX);
    let ended_before = Timestamp(Timestamp::now().0.saturating_sub(micros));
    let ledger = crate::ledger::Ledger::new(warehouse.clone());
    let options = crate::ledger::PruneOptions {
        ended_before,
        dry_run,
    };
    let report = ledger.prune(options).await?;
    let (verb, removed) = if dry_run {
        ("would prune", "would be removed")
    } else {
        ("pruned", "removed")
    };
    let kept = match report.runs_kept {
        0 => String::new(),
        kept => format!(
            "; {kept} run(s) that ended before are kept (a pipeline's latest success, a run \
             recorded as running, an unfinished refresh and those begun after it)"
        ),
    };
    say!(
        "{verb} {} run(s) that ended before {ended_before}{kept}",
        report.runs_pruned
    );
    for (table, rows) in &report.rows_removed {
        say!("  {table}: {rows} row(s) {removed}");
    }
    if let Some((from, through)) = report.logical_times {
        let times = if from == through {
            format!("at {from}, the logical time pruned")
        } else {
            format!("from {from} to {through}, the logical times pruned")
        };
        say!(
            "a backfill skipping the times already done is refused {times} (--rerun runs every \
             time again)"
        );
    }
    if !dry_run && !report.rows_removed.is_empty() {
        say!(
            "the replaced files stay on disk until `orchestrate vacuum` deletes them (past each \
             table's `delta.deletedFileRetentionDuration`, 7 days unless set)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A run's status for `--format json`: `died` for one whose process is gone.
fn json_status(run: &RunRecord) -> &str {
    if run_died(run) {
        "died"
    } else {
        run.status.as_str()
    }
}

/// The row of a run's latest execution: its end, or its start while it runs (or died).
fn latest_run_row(records: &[RunRecord]) -> Option<&RunRecord> {
    records.iter().filter(|r| r.kind == "run").max_by_key(|r| {
        (
            r.execution.unwrap_or(0),
            r.started_at.0,
            r.finished_at.map(|t| t.0),
        )
    })
}

/// The pipelines a run planned that have no attempt in it.
fn never_attempted(records: &[RunRecord]) -> Vec<String> {
    let planned = records
        .iter()
        .filter(|r| r.kind == "run")
        .find_map(|r| r.planned.as_deref())
        .unwrap_or_default();
    planned
        .split_whitespace()
        .filter(|name| {
            !records
                .iter()
                .any(|r| r.kind == "pipeline" && r.pipeline.as_deref() == Some(name))
        })
        .map(str::to_owned)
        .collect()
}

/// The id of the run `prefix` names (a unique start of it), and its records.
async fn run_records(
    orchestrator: &Orchestrator,
    prefix: String,
) -> Result<(String, Vec<RunRecord>)> {
    let run_id = orchestrator
        .ledger()
        .resolve_run_id(&prefix)
        .await?
        .unwrap_or(prefix);
    let records = orchestrator.ledger().run(&run_id).await?;
    if records.is_empty() {
        return Err(orchestrator.ledger().no_such_run(&run_id).await);
    }
    Ok((run_id, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_planned_pipelines_without_attempts_and_its_latest_row_are_found() {
        use crate::orchestrator::Status;
        let run = crate::ctx::RunInfo {
            run_id: "r000003-x".to_owned(),
            sequence: 3,
            run_at: crate::table::Timestamp(1),
        };
        let at = |t| crate::table::Timestamp(t);
        let start = RunRecord {
            planned: Some("a b c".to_owned()),
            execution: Some(1),
            ..RunRecord::of_run(&run, Status::Running, at(10))
        };
        let end = RunRecord {
            finished_at: Some(at(20)),
            ..RunRecord {
                status: "failed".to_owned(),
                ..start.clone()
            }
        };
        let attempt = RunRecord::of_pipeline(&run, "a", "t".to_owned(), Status::Succeeded, at(11));
        // Died after `a`: only its start and one attempt.
        let died = [start.clone(), attempt.clone()];
        assert_eq!(never_attempted(&died), ["b", "c"]);
        assert_eq!(
            latest_run_row(&died).map(|r| r.status.as_str()),
            Some("running")
        );
        let ended = [start, attempt, end];
        assert_eq!(
            latest_run_row(&ended).map(|r| r.status.as_str()),
            Some("failed")
        );
    }

    #[test]
    fn a_doc_comments_first_paragraph_is_one_line() {
        let doc = "Rebuilds the calendar (fixes the\noriginal's: it ended yesterday).\n\nMore.";
        assert_eq!(
            first_paragraph(doc),
            "Rebuilds the calendar (fixes the original's: it ended yesterday)."
        );
        assert_eq!(first_paragraph(""), "");
    }
}
