//! `history`, `describe` and `restore`: what a table is, how it came to be, and going back.

use std::process::ExitCode;

use comfy_table::{ContentArrangement, Table as Grid, presets};

use crate::error::Result;
use crate::graph::Registry;
use crate::store::{TableCommit, Warehouse};
use crate::table::TableDef;

/// Prints the latest `limit` commits of `table`, newest first.
pub(super) async fn history(
    warehouse: &Warehouse,
    table: &'static TableDef,
    limit: usize,
) -> Result<ExitCode> {
    // One more than shown: whether older versions are there, or gone from the log, is known.
    let mut commits = warehouse.history(table, limit.saturating_add(1)).await?;
    let more = commits.len() > limit;
    commits.truncate(limit);
    if commits.is_empty() {
        say!("{} has not been written yet", table.qualified_name());
        return Ok(ExitCode::SUCCESS);
    }
    let mut grid = grid();
    grid.set_header([
        "version",
        "committed",
        "operation",
        "parameters",
        "rows",
        "files",
        "run",
    ]);
    for commit in &commits {
        grid.add_row(vec![
            commit.version.to_string(),
            commit
                .committed_at
                .map(|t| t.to_string())
                .unwrap_or_default(),
            commit.operation.clone(),
            parameters(commit),
            rows(commit),
            files(commit),
            commit.run_id.clone().unwrap_or_default(),
        ]);
    }
    say!("{grid}");
    // Version 0 is the first: older ones are not hidden unless the list is full, or their log
    // entries are gone.
    match commits.last() {
        Some(_) if more => {
            say!("the latest {limit} version(s) shown: `--limit N` shows more");
        }
        Some(oldest) if oldest.version > 0 => {
            let retention = match warehouse.log_retention(table).await {
                Ok(Some(retention)) => format!(", {}", humantime::format_duration(retention)),
                _ => String::new(),
            };
            say!(
                "versions before {} are no longer in the table's log: Delta removes the entries \
                 older than its `delta.logRetentionDuration`{retention} at checkpoints",
                oldest.version
            );
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `table`'s declaration (description, writer, write mode and overwrite scope, keys,
/// partitions, Z-order, freshness, quality, CHECK constraints, expectations, and each column's
/// type, nullability, foreign key and description) beside what is stored: version, size,
/// properties, and which columns the table has or lacks.
pub(super) async fn describe(
    registry: &Registry,
    warehouse: &Warehouse,
    table: &'static TableDef,
) -> Result<ExitCode> {
    let qualified = table.qualified_name();
    say!("{qualified}: {}", table.description);
    let writer = registry
        .pipelines()
        .iter()
        .find(|p| std::ptr::eq(p.output, table))
        .map_or("the ledger".to_owned(), |p| {
            format!("pipeline `{}`", p.name)
        });
    let mode = match table.overwrite {
        crate::table::OverwriteScope::Partitions => "overwrite (partitions)".to_owned(),
        crate::table::OverwriteScope::Table => table.mode.as_str().to_owned(),
    };
    let mut facts = vec![("written by", writer), ("mode", mode)];
    for (name, columns) in [
        ("key", table.key),
        ("partitioned by", table.partition_by),
        ("z-ordered by", table.z_order),
    ] {
        if !columns.is_empty() {
            facts.push((name, columns.join(", ")));
        }
    }
    if let Some(secs) = table.freshness_secs {
        let limit = humantime::format_duration(std::time::Duration::from_secs(secs));
        facts.push(("freshness", limit.to_string()));
    }
    if table.quality != crate::table::Quality::Off {
        facts.push(("quality", format!("{:?}", table.quality).to_lowercase()));
    }
    let checks: Vec<String> = table
        .checks
        .iter()
        .map(|check| format!("{}: {}", check.name, check.expr))
        .collect();
    if !checks.is_empty() {
        facts.push(("checks", checks.join("\n")));
    }
    let expectations: Vec<String> = table
        .expectations
        .iter()
        .map(|e| {
            let on_fail = format!("{:?}", e.on_fail).to_lowercase();
            format!("{}: {} (on fail: {on_fail})", e.name, e.expr)
        })
        .collect();
    if !expectations.is_empty() {
        facts.push(("expectations", expectations.join("\n")));
    }
    let delta = warehouse.load(table).await?;
    let stored_columns = match &delta {
        Some(delta) => {
            let snapshot = delta
                .snapshot()
                .map_err(|e| crate::error::Error::delta(&qualified, e))?;
            let mut properties: Vec<String> = snapshot
                .metadata()
                .configuration()
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            properties.sort();
            let stats = crate::store::stats_of(snapshot, table)?;
            // A file without a row count in the log (written without statistics) is not 0 rows.
            let rows = match stats.files_without_row_count {
                0 => format!("{} row(s)", stats.rows),
                unknown => format!(
                    "at least {} row(s) ({unknown} file(s) without a row count in the log)",
                    stats.rows
                ),
            };
            facts.push((
                "stored",
                format!(
                    "version {}, {rows} in {} file(s), {} byte(s)",
                    stats.version, stats.files, stats.bytes
                ),
            ));
            if !properties.is_empty() {
                facts.push(("properties", properties.join("\n")));
            }
            snapshot
                .schema()
                .fields()
                .map(|field| {
                    let comment = field
                        .metadata()
                        .get("comment")
                        .map(|value| value.to_string().trim_matches('"').to_owned());
                    (field.name().to_owned(), comment)
                })
                .collect::<Vec<_>>()
        }
        None => {
            facts.push(("stored", "not yet written".to_owned()));
            Vec::new()
        }
    };
    let mut about = grid();
    for (name, value) in facts {
        about.add_row(vec![name.to_owned(), value]);
    }
    say!("{about}");
    let mut columns = grid();
    columns.set_header([
        "column",
        "type",
        "null",
        "references",
        "description",
        "stored",
    ]);
    // What is stored otherwise than declared: its type, its NULLs, a column not declared.
    let drift = match &delta {
        Some(delta) => warehouse.drift_counted(table, delta).await?,
        None => Vec::new(),
    };
    let stored_as = |name: &str| {
        drift
            .iter()
            .filter(|d| d.column == name)
            .find_map(|d| match &d.kind {
                crate::store::DriftKind::TypeChanged { stored, .. } => Some(format!("as {stored}")),
                crate::store::DriftKind::NullabilityChanged {
                    declared_nullable, ..
                } => Some(
                    if *declared_nullable {
                        "NOT NULL"
                    } else {
                        "nullable"
                    }
                    .to_owned(),
                ),
                crate::store::DriftKind::NotDeclared { stored, .. } => Some(stored.clone()),
                _ => None,
            })
    };
    for column in table.columns {
        let stored = match stored_columns.iter().find(|(name, _)| name == column.name) {
            Some(_) => match stored_as(column.name) {
                Some(otherwise) => format!("yes, {otherwise}"),
                None => "yes".to_owned(),
            },
            None if delta.is_some() => "missing".to_owned(),
            None => String::new(),
        };
        columns.add_row(vec![
            column.name.to_owned(),
            column.data_type.to_string(),
            if column.nullable { "yes" } else { "no" }.to_owned(),
            column
                .references
                .map(|r| format!("{}.{}.{}", r.schema, r.table, r.column))
                .unwrap_or_default(),
            column.description.to_owned(),
            stored,
        ]);
    }
    // Columns the table has and the declaration lacks (kept by schema evolution).
    for (name, comment) in &stored_columns {
        if table.column(name).is_none() {
            columns.add_row(vec![
                name.clone(),
                stored_as(name).unwrap_or_default(),
                String::new(),
                String::new(),
                comment.clone().unwrap_or_default(),
                "not declared".to_owned(),
            ]);
        }
    }
    say!("{columns}");
    Ok(ExitCode::SUCCESS)
}

/// The refusals of `restore` lifted on the command line.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RestoreAllowed {
    /// `--force`: a table pipelines read incrementally.
    pub incremental_readers: bool,
    /// `--allow-schema-drift`: a version whose schema does not fit the declaration.
    pub schema_drift: bool,
}

/// Restores `table` to `to`, unless pipelines read it incrementally (they keep what they read of
/// the undone versions, and would take the restored files' rows as new) or the version's schema
/// does not fit the declaration (readers or writes would fail), each refusal lifted by its flag
/// in `allowed`; then says what the restore leaves to the user. A dry run tells every refusal.
pub(super) async fn restore(
    registry: &Registry,
    warehouse: &Warehouse,
    table: &'static TableDef,
    to: crate::store::AsOf,
    allowed: RestoreAllowed,
    dry_run: bool,
) -> Result<ExitCode> {
    let qualified = table.qualified_name();
    let readers: Vec<&str> = registry
        .pipelines()
        .iter()
        .filter(|p| {
            p.inputs
                .iter()
                .any(|i| i.incremental && i.table.qualified_name() == qualified)
        })
        .map(|p| p.name)
        .collect();
    let readers_refusal = (!readers.is_empty() && !allowed.incremental_readers).then(|| {
        format!(
            "{qualified} is read incrementally by {}: they keep the rows they read from the \
             versions a restore undoes, and would read the files it brings back as new rows; \
             restore with --force, then rebuild them (`orchestrate run --select {} --rebuild` \
             for an append output, `--full-refresh` otherwise)",
            readers.join(", "),
            readers.join(",")
        )
    });
    if dry_run {
        // Every refusal the restore would meet, each told, with what it would do.
        let mut refusals: Vec<String> = readers_refusal.into_iter().collect();
        match warehouse
            .restore_dry_run(table, to, allowed.schema_drift)
            .await
        {
            Ok(report) => say!(
                "{}: would restore version {} over version {} ({} file(s) removed, {} \
                 restored); nothing was committed",
                report.table,
                report.restored,
                report.version,
                report.files_removed,
                report.files_restored
            ),
            Err(error) => refusals.push(error.to_string()),
        }
        if refusals.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        for refusal in &refusals {
            super::failure(format_args!("{refusal}"));
        }
        return Ok(ExitCode::FAILURE);
    }
    if let Some(refusal) = readers_refusal {
        return Err(crate::error::Error::msg(refusal));
    }
    let report = warehouse
        .restore_allowing_drift(table, to, allowed.schema_drift)
        .await?;
    say!(
        "{}: restored to version {} as version {} ({} file(s) removed, {} restored)",
        report.table,
        report.restored,
        report.version,
        report.files_removed,
        report.files_restored
    );
    if let Some(writer) = registry
        .pipelines()
        .iter()
        .find(|p| p.output.qualified_name() == qualified)
    {
        // What its pipeline writes next depends on what it reads: nothing here re-runs it.
        say!(
            "pipeline `{}` does not write the undone rows again by itself: a pipeline that reads \
             whole inputs rewrites them at its next run; one that reads new rows or new files, or \
             takes a source's latest extract, does not (`--full-refresh` re-reads merge and SCD2 \
             inputs, `--rebuild` append ones); start a new run rather than `resume` one whose \
             write the restore undid",
            writer.name
        );
    }
    if !readers.is_empty() {
        say!(
            "its incremental readers ({}) keep the rows of the undone versions, and will read \
             the files the restore brought back as new rows: rebuild them now (`orchestrate run \
             --select {} --rebuild` for an append output, `--full-refresh` otherwise)",
            readers.join(", "),
            readers.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn grid() -> Grid {
    let mut grid = Grid::new();
    grid.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    grid
}

/// The longest parameter value shown whole.
const PARAMETER_CHARS: usize = 80;

/// The operation's parameters, `key=value` each, sorted; a table creation's whole metadata and
/// protocol are left out (`describe` shows them), and a long value is cut.
fn parameters(commit: &TableCommit) -> String {
    let mut pairs: Vec<String> = commit
        .parameters
        .iter()
        .filter(|(key, value)| !value.is_null() && !matches!(key.as_str(), "metadata" | "protocol"))
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            match text.char_indices().nth(PARAMETER_CHARS) {
                Some((cut, _)) => format!("{key}={}…", &text[..cut]),
                None => format!("{key}={text}"),
            }
        })
        .collect();
    pairs.sort();
    pairs.join(" ")
}

/// The rows the commit inserted (`+`), updated (`~`) and deleted (`-`), from its metrics
/// (delta-rs's names, then Spark's).
fn rows(commit: &TableCommit) -> String {
    let first = |names: &[&str]| names.iter().find_map(|name| commit.metric(name));
    let parts = [
        (
            "+",
            first(&[
                "num_added_rows",
                "num_target_rows_inserted",
                "numTargetRowsInserted",
                "numOutputRows",
            ]),
        ),
        (
            "~",
            first(&[
                "num_target_rows_updated",
                // delta-rs's UPDATE.
                "num_updated_rows",
                "numTargetRowsUpdated",
                "numUpdatedRows",
            ]),
        ),
        (
            "-",
            first(&[
                "num_target_rows_deleted",
                "num_deleted_rows",
                "numTargetRowsDeleted",
                "numDeletedRows",
            ]),
        ),
    ];
    signed(&parts)
}

/// The data files the commit added (`+`) and removed (`-`), from its metrics.
fn files(commit: &TableCommit) -> String {
    let first = |names: &[&str]| names.iter().find_map(|name| commit.metric(name));
    let parts = [
        (
            "+",
            first(&[
                "num_added_files",
                "num_target_files_added",
                "numFilesAdded",
                "numRestoredFile",
                "numTargetFilesAdded",
                "numAddedFiles",
                "numFiles",
            ]),
        ),
        (
            "-",
            first(&[
                "num_removed_files",
                "num_target_files_removed",
                "numFilesRemoved",
                "numRemovedFile",
                "numTargetFilesRemoved",
                "numRemovedFiles",
                "numDeletedFiles",
            ]),
        ),
    ];
    signed(&parts)
}

/// `+3 -1`: the counts recorded, zeros left out.
fn signed(parts: &[(&str, Option<u64>)]) -> String {
    parts
        .iter()
        .filter_map(|(sign, count)| count.filter(|n| *n > 0).map(|n| format!("{sign}{n}")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_any_operations_metric_names() {
        let commit = TableCommit {
            version: 3,
            committed_at: None,
            operation: "MERGE".to_owned(),
            parameters: [("predicate".to_owned(), serde_json::json!("id = 1"))].into(),
            metrics: [
                ("num_target_rows_inserted", serde_json::json!(2)),
                ("num_target_rows_updated", serde_json::json!("5")),
                ("num_target_rows_deleted", serde_json::json!(0)),
                ("num_target_files_added", serde_json::json!(1)),
                ("num_target_files_removed", serde_json::json!(1)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            run_id: None,
        };
        assert_eq!(rows(&commit), "+2 ~5");
        assert_eq!(files(&commit), "+1 -1");
        // delta-rs's UPDATE names its count otherwise.
        let updated = TableCommit {
            operation: "UPDATE".to_owned(),
            metrics: [("num_updated_rows".to_owned(), serde_json::json!(4))].into(),
            ..commit.clone()
        };
        assert_eq!(rows(&updated), "~4");
        assert_eq!(parameters(&commit), "predicate=id = 1");
        let created = TableCommit {
            operation: "CREATE TABLE".to_owned(),
            parameters: [
                (
                    "metadata".to_owned(),
                    serde_json::json!({"schemaString": "..."}),
                ),
                ("mode".to_owned(), serde_json::json!("ErrorIfExists")),
                ("location".to_owned(), serde_json::json!("x".repeat(100))),
            ]
            .into(),
            ..commit
        };
        assert_eq!(
            parameters(&created),
            format!("location={}… mode=ErrorIfExists", "x".repeat(80))
        );
        // Spark's names, and delta-rs's RESTORE and VACUUM.
        let with = |operation: &str, metrics: &[(&str, u64)]| TableCommit {
            version: 4,
            committed_at: None,
            operation: operation.to_owned(),
            parameters: std::collections::HashMap::new(),
            metrics: metrics
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v.to_string())))
                .collect(),
            run_id: None,
        };
        let spark_write = with("WRITE", &[("numOutputRows", 7), ("numFiles", 2)]);
        assert_eq!(
            (rows(&spark_write), files(&spark_write)),
            ("+7".into(), "+2".into())
        );
        let spark_merge = with(
            "MERGE",
            &[
                ("numTargetRowsInserted", 1),
                ("numTargetRowsUpdated", 2),
                ("numTargetRowsDeleted", 3),
                ("numTargetFilesAdded", 1),
                ("numTargetFilesRemoved", 2),
            ],
        );
        assert_eq!(
            (rows(&spark_merge), files(&spark_merge)),
            ("+1 ~2 -3".into(), "+1 -2".into())
        );
        let restore = with("RESTORE", &[("numRestoredFile", 3), ("numRemovedFile", 1)]);
        assert_eq!(files(&restore), "+3 -1");
        assert_eq!(files(&with("VACUUM END", &[("numDeletedFiles", 4)])), "-4");
    }
}
