//! One attempt's work: reading a pipeline's inputs, running it, checking its output and writing
//! it with the run's transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Orchestrator;
use super::attempt::AttemptKind;
use super::cursor::{Cursor, incremental_cursor};
use super::execute::Written;
use super::replay::{
    INPUT_TABLE_IDS_KEY, INPUT_VERSIONS_KEY, QUALITY_FINDINGS_KEY, RUN_ID_KEY, already_written,
    collision,
};
use crate::ctx::{Ctx, FileHistory, FoundFile, RunInfo};
use crate::error::{Error, Result};
use crate::frame::Inputs;
use crate::graph::PipelineDescriptor;
use crate::ledger::{INGESTED_FILES_KEY, IngestedFile, QualityIssue, RejectRecord, TableMetric};
use crate::store::{Deletions, WriteOptions, WriteOutcome};

/// Reads the inputs, runs the pipeline, writes its output with the run's transaction, records
/// its rejects, and measures the table (recorded with the attempt).
pub(super) async fn produce_and_write(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: Arc<RunInfo>,
    settings: Arc<crate::ctx::Settings>,
    kind: AttemptKind,
    committed: &AtomicBool,
) -> Result<Written> {
    let warehouse = &orchestrator.warehouse;
    let fresh = kind.fresh;
    // A write this run already committed is not produced again: the source is not called and
    // incremental inputs are not re-read.
    if kind.looks_first()
        && let Some(mut written) = already_written(orchestrator, pipeline, &run, fresh).await?
    {
        written.lost_records =
            record_replayed_findings(orchestrator, pipeline, &run, &written).await;
        return Ok(written);
    }
    tracing::debug!("transaction checked");
    let session = warehouse.session();
    let history = FileHistory::new(orchestrator.ledger.clone(), pipeline, kind.full_refresh);
    let cx = Ctx::new(pipeline.name, run.clone(), settings, session.clone(), false)
        .with_file_history(history.clone());
    let produced = produce_with(orchestrator, pipeline, run, kind, committed, &cx, history).await;
    // A value's error in a scan of several landing files is pinned to its file.
    match produced {
        Err(error) => Err(cx.with_failing_file(error).await),
        written => written,
    }
}

/// [`produce_and_write`] past the transaction check, with the pipeline's context `cx` (and its
/// session) and the history of the files it ingested.
async fn produce_with(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: Arc<RunInfo>,
    kind: AttemptKind,
    committed: &AtomicBool,
    cx: &Ctx,
    history: Arc<FileHistory>,
) -> Result<Written> {
    let warehouse = &orchestrator.warehouse;
    let fresh = kind.fresh;
    let session = cx.session().clone();
    let mut frames = Vec::with_capacity(pipeline.inputs.len());
    let mut input_versions = BTreeMap::new();
    let incremental = pipeline.inputs.iter().any(|i| i.incremental) && !kind.full_refresh;
    let cursor = if incremental {
        incremental_cursor(orchestrator, pipeline, &run, true).await?
    } else {
        Cursor::default()
    };
    // The inputs are loaded together: each load reads a Delta log, mostly waiting on files.
    let reads = pipeline.inputs.iter().map(|input| {
        let (session, cursor) = (&session, &cursor);
        async move {
            let name = input.table.qualified_name();
            if !input.incremental {
                let (df, version) = warehouse.read_with_version(session, input.table).await?;
                return Ok::<_, Error>((name, df, version, None, None));
            }
            let after = cursor.versions.get(&name).copied().flatten();
            tracing::debug!(input = %name, after_version = after, "reading new rows");
            let changes = warehouse.read_changes(session, input.table, after).await?;
            // Another table than the one this pipeline last read (deleted and created again):
            // its versions start over, and are not the ones the cursor counts.
            if let (Some(_), Some(read), Some(now)) = (
                after,
                cursor.table_ids.get(&name),
                changes.table_id.as_ref(),
            ) && read != now
            {
                return Err(Error::Refused(format!(
                    "{name} was recreated since this pipeline last read it (its Delta table id \
                     was {read}, it is {now}): its versions start over; read it whole with \
                     `orchestrate run --full-refresh` (an append output then gets its rows \
                     again; `--rebuild` replaces it instead)"
                )));
            }
            // Created after this pipeline last read it: another table of the same name, whose
            // versions are not the ones the cursor counts. (Beyond a margin: the two times may
            // come from the clocks of two hosts.)
            if let (Some(_), Some(created), Some(read)) =
                (after, changes.created_at, cursor.read_at)
                && created.0 > read.0.saturating_add(RECREATION_MARGIN_MICROS)
            {
                return Err(Error::Refused(format!(
                    "{name} was recreated at {created}, after this pipeline last read it (at \
                     {read}): its versions start over; read it whole with `orchestrate run \
                     --full-refresh` (an append output then gets its rows again; `--rebuild` \
                     replaces it instead)"
                )));
            }
            Ok((
                name,
                changes.rows,
                changes.version,
                Some(after),
                changes.table_id,
            ))
        }
    });
    let mut read = futures::future::try_join_all(reads).await?;
    // A table read both incrementally and whole was loaded twice: should a commit have landed
    // between the loads, the whole read is taken again at the incremental read's version, so
    // the partitions new rows reach are recomputed from a table that holds them.
    let incremental_versions: BTreeMap<String, Option<u64>> = pipeline
        .inputs
        .iter()
        .zip(&read)
        .filter(|(input, _)| input.incremental)
        .map(|(_, (name, _, version, _, _))| (name.clone(), *version))
        .collect();
    for (input, (name, df, version, _, _)) in pipeline.inputs.iter().zip(read.iter_mut()) {
        if let Some(Some(at)) = incremental_versions
            .get(name)
            .filter(|_| !input.incremental)
            && *version != Some(*at)
        {
            tracing::debug!(input = %name, version = at, "reading the whole table again at the incremental read's version");
            match warehouse.read_version(&session, input.table, *at).await {
                Ok(again) => {
                    *df = again;
                    *version = Some(*at);
                }
                // A later whole read holds every new row still: kept (the version's log may
                // be cleaned up).
                Err(error) if version.is_some_and(|whole| whole > *at) => {
                    tracing::warn!(input = %name, %error, "the whole table is read at a later version than its new rows");
                }
                Err(error) => return Err(error),
            }
        }
    }
    // Whether every incremental input has nothing new since the last success: no new version,
    // or (for a full snapshot, which must not replace the table with nothing) only versions
    // that changed no rows, such as a compaction's.
    let mut nothing_new = pipeline.inputs.iter().any(|i| i.incremental);
    let mut moved = Vec::new();
    let mut input_table_ids = BTreeMap::new();
    for (input, (name, df, version, after, table_id)) in pipeline.inputs.iter().zip(read) {
        if let Some(table_id) = table_id {
            input_table_ids.insert(name.clone(), table_id);
        }
        if let Some(after) = after {
            nothing_new &= after.is_some();
            if version != after {
                moved.push(df.clone());
            }
        }
        cx.register_input(input.table, df.clone())?;
        // A table read both whole and incrementally: the incremental read's version is where
        // the next one starts (the whole read, a load of its own, is read whole every run).
        if input.incremental || !input_versions.contains_key(&name) {
            input_versions.insert(name, version);
        }
        frames.push(df);
    }
    let inputs_moved = !moved.is_empty();
    if nothing_new && !moved.is_empty() {
        nothing_new = pipeline.full_snapshot && no_rows(moved).await?;
    }
    if pipeline.full_snapshot && nothing_new {
        // No new snapshot arrived: the table already reflects the last one. A table read whole
        // that changed since cannot be applied without the snapshot (the new rows are empty).
        let changed: Vec<String> = pipeline
            .inputs
            .iter()
            .filter(|input| !input.incremental)
            .map(|input| input.table.qualified_name())
            .filter(|name| {
                let read = cursor.versions.get(name).copied().flatten();
                read.is_some() && input_versions.get(name).copied().flatten() != read
            })
            .collect();
        if changed.is_empty() {
            tracing::info!("no new rows in the incremental inputs; nothing to write");
        } else {
            tracing::warn!(
                "no new rows in the incremental inputs, so nothing is written, though {} \
                 changed since the last write: the output takes the change with the next \
                 snapshot",
                changed.join(", ")
            );
        }
        let version = warehouse.version(pipeline.output).await?;
        return Ok(Written {
            outcome: WriteOutcome::skipped(pipeline.output, version),
            input_versions,
            input_table_ids,
            metric: None,
            fragmented: false,
            replayed_findings: Vec::new(),
            superseded: None,
            nothing_new: true,
            lost_records: None,
        });
    }
    tracing::debug!("inputs read");
    let output = match (pipeline.run)(cx, Inputs::new(frames)).await {
        Ok(output) => output,
        Err(error) => {
            // An ingestion over its reject limit (a source that changed its format). (Told as
            // the attempt's error will be: an input's file gone is not retried.)
            let error = missing_input_files(pipeline, error);
            record_rejects_of_failed(orchestrator, cx, pipeline, &run, kind, &error).await;
            return Err(error);
        }
    };
    let (df, findings) =
        match checked_output(orchestrator, pipeline, &run, &session, output.df).await {
            Ok(checked) => checked,
            Err(error) => {
                let error = missing_input_files(pipeline, error);
                record_rejects_of_failed(orchestrator, cx, pipeline, &run, kind, &error).await;
                return Err(error);
            }
        };
    let output = crate::frame::UntypedFrame { df, ..output };
    let new_files = cx.take_new_files();
    let reads_new_files = new_files.is_some();
    // A file changed since it was listed was read in part (or will be): nothing is written, and
    // the retry lists it again.
    if let Some(why) = new_files
        .iter()
        .flatten()
        .find_map(FoundFile::changed_since)
    {
        return Err(Error::msg(format!(
            "{why}; nothing was written, and the next attempt (a retry, or the next run) reads \
             it again (land files under a \
             temporary name and rename them when whole, or read them with \
             `NewFiles::settled_for`)"
        )));
    }
    // New rows or files read: another run of this pipeline that committed since the reads began
    // may have read them too, and this write is then refused (see `WriteOptions::read_after`).
    // A merge output takes the same rows twice without harm.
    let read_after = if pipeline.output.mode == crate::table::WriteMode::Merge {
        None
    } else {
        // (A full refresh reads its inputs whole, from no cursor.)
        let rows_moved = (incremental && inputs_moved).then_some(cursor.transaction);
        let files_found = new_files
            .as_ref()
            .is_some_and(|files| !files.is_empty())
            .then(|| history.read_after())
            .flatten();
        [rows_moved, files_found].into_iter().flatten().min()
    };
    // Listed again after the write, to tell of a file written to while the write read it.
    let listed = new_files.clone();
    let ingested: Vec<IngestedFile> = new_files
        .into_iter()
        .flatten()
        .map(|file| file.record(pipeline, &run))
        .collect();
    let mut metadata = BTreeMap::from([
        (
            INPUT_VERSIONS_KEY.to_owned(),
            serde_json::Value::Object(
                input_versions
                    .iter()
                    .map(|(table, version)| (table.clone(), serde_json::json!(version)))
                    .collect(),
            ),
        ),
        (RUN_ID_KEY.to_owned(), serde_json::json!(run.run_id)),
    ]);
    if !input_table_ids.is_empty() {
        metadata.insert(
            INPUT_TABLE_IDS_KEY.to_owned(),
            serde_json::json!(input_table_ids),
        );
    }
    if !findings.is_empty() {
        // Listed in the commit too: a replay records them if the attempt that committed died
        // before it could.
        let listed = serde_json::to_value(&findings)
            .map_err(|e| Error::msg(format!("cannot list the quality findings: {e}")))?;
        metadata.insert(QUALITY_FINDINGS_KEY.to_owned(), listed);
    }
    if !ingested.is_empty() {
        // The commit lists its files too: a record the ledger cannot take is made good from it.
        let listed = serde_json::to_value(&ingested)
            .map_err(|e| Error::msg(format!("cannot list the files read: {e}")))?;
        metadata.insert(INGESTED_FILES_KEY.to_owned(), listed);
    }
    // An SCD2 history reaches the pipeline's latest success, though a run that found the rows
    // unchanged wrote no version saying so.
    let history_reaches = if pipeline.output.mode == crate::table::WriteMode::Scd2 {
        orchestrator
            .ledger()
            .latest_success_run_at(pipeline.name)
            .await?
    } else {
        None
    };
    let options = WriteOptions {
        transaction: Some((pipeline.name.to_owned(), run.sequence)),
        run_at: Some(run.run_at),
        deletions: if pipeline.full_snapshot {
            Deletions::MissingFromSource
        } else {
            Deletions::None
        },
        metadata,
        replace: kind.rebuild && (reads_new_files || pipeline.inputs.iter().any(|i| i.incremental)),
        read_after,
        replaces_version: None,
        history_reaches,
    };
    // The run is in the ledger before any of its writes.
    orchestrator.start_recorded(&run.run_id).await;
    // The rejected source records before the write: a commit is then never without them (a
    // replay of it, by a retry or a resume, runs nothing that could find them again). A ledger
    // that cannot take them fails the attempt, with nothing written; a retry or a resume
    // reading the same records adds none twice.
    let rejects = reject_records(cx, pipeline, &run);
    if !rejects.is_empty() {
        orchestrator
            .ledger
            .append_rejects_once(&rejects)
            .await
            .map_err(|error| {
                Error::msg(format!(
                    "{} rejected source record(s) could not be recorded in lakehouse.rejects, so \
                     nothing was written: {error}",
                    rejects.len()
                ))
            })?;
        tracing::warn!(
            count = rejects.len(),
            "source records rejected (or kept with NULLs); see lakehouse.rejects"
        );
    }
    let outcome = warehouse
        .write(&session, pipeline.output, output.df, options)
        .await?;
    if !outcome.committed {
        // The table held this sequence's transaction, or a later one, before this attempt
        // wrote: this run's own commit (an earlier attempt's, landing after it was abandoned),
        // or another orchestrator's run's, whose rows must not be counted as ours.
        return match already_written(orchestrator, pipeline, &run, fresh).await? {
            Some(mut written) => {
                written.lost_records =
                    record_replayed_findings(orchestrator, pipeline, &run, &written).await;
                Ok(written)
            }
            None => Err(collision(pipeline, &run, "another run")),
        };
    }
    committed.store(true, Ordering::Release);
    tracing::debug!(version = outcome.version, "written");
    // Too late to refuse: its rows as read are committed, and it is recorded as listed (a
    // later run warns that it changed, and does not read it again).
    for why in listed.iter().flatten().filter_map(FoundFile::changed_since) {
        tracing::error!(
            "{why}, during the write: its rows as read are committed; check the table, and land \
             files under a temporary name (or read them with `NewFiles::settled_for`)"
        );
    }
    // The rows are committed (the commit lists the files): a ledger that cannot take them must
    // not fail the attempt; the next read of new files records them from the commit.
    if let Err(error) = orchestrator.ledger.append(&ingested).await {
        tracing::error!(
            %error,
            count = ingested.len(),
            "the write is committed, but its files could not be recorded in \
             lakehouse.ingested_files (the next run records them from the commit)"
        );
    }
    let mut metric = None;
    let mut fragmented = false;
    let mut lost = Vec::new();
    if outcome.committed {
        // The rows are committed: a ledger that cannot take the findings must not fail the
        // attempt (its retry would find the commit and replay it; the commit lists them).
        // The run is then not wholly recorded: no success. (A blocked attempt of this run, before
        // a resume or a retry, may have recorded the same warnings; a new run's first attempt
        // follows none.)
        let recorded = if kind.looks_first() {
            record_once(orchestrator, &run, pipeline, &findings).await
        } else {
            orchestrator.ledger.append(&findings).await
        };
        if let Err(error) = recorded {
            tracing::error!(
                %error,
                count = findings.len(),
                "the write is committed, but its data-quality findings could not be recorded in \
                 lakehouse.quality_issues"
            );
            lost.push(format!(
                "{} data-quality finding(s), not recorded in lakehouse.quality_issues ({error})",
                findings.len()
            ));
        }
        // The write's own snapshot when it returned one: no second load of the table.
        // Statistics the table cannot give now do not fail a committed write.
        let stats = match outcome.stats.clone() {
            Some(stats) => Some(stats),
            None => warehouse
                .stats(pipeline.output)
                .await
                .unwrap_or_else(|error| {
                    tracing::error!(%error, "the write is committed, but the table's statistics could not be read");
                    None
                }),
        };
        fragmented = pipeline.output.auto_compact
            && stats
                .as_ref()
                .is_some_and(|s| s.small_files >= crate::store::AUTO_COMPACT_AT_FILES as i64);
        if let Some(stats) = stats {
            tracing::debug!("statistics read");
            metric = Some(TableMetric {
                run_id: run.run_id.clone(),
                table_name: pipeline.output.qualified_name(),
                version: stats.version as i64,
                rows: stats.rows,
                files: stats.files,
                bytes: stats.bytes,
                null_counts: serde_json::to_string(&stats.null_counts).unwrap_or_default(),
                measured_at: run.run_at,
            });
        }
    }
    Ok(Written {
        outcome,
        input_versions,
        input_table_ids,
        metric,
        fragmented,
        replayed_findings: Vec::new(),
        superseded: None,
        nothing_new: false,
        lost_records: (!lost.is_empty()).then(|| lost.join("; ")),
    })
}

/// `output` as it may be written: a pipeline's expectations applied (rows a `drop` expectation
/// fails left out), then its quality checks run. A blocking finding fails as [`Error::Quality`]
/// (not retried), as does a `full_snapshot` output that expectations emptied, and every finding
/// is then recorded; otherwise the findings are returned, to be recorded with the write that
/// commits (an attempt whose write fails records none, so a retry does not count them twice).
async fn checked_output(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    session: &datafusion::execution::context::SessionContext,
    output: datafusion::dataframe::DataFrame,
) -> Result<(datafusion::dataframe::DataFrame, Vec<QualityIssue>)> {
    let warehouse = &orchestrator.warehouse;
    // Expectations first: rows a `drop` expectation leaves out are not checked or written.
    let (output, expected) = crate::quality::apply_expectations(pipeline.output, output).await?;
    let mut findings: Vec<(crate::quality::Finding, bool)> = expected
        .iter()
        .map(|(finding, on_fail)| (finding.clone(), *on_fail == crate::table::OnFail::Fail))
        .collect();
    let drops: Vec<bool> = expected
        .iter()
        .map(|(_, on_fail)| *on_fail == crate::table::OnFail::Drop)
        .collect();
    let blocked = |findings: &[(crate::quality::Finding, bool)]| findings.iter().any(|(_, b)| *b);
    let mut emptied = false;
    if !blocked(&findings)
        && pipeline.full_snapshot
        && output.clone().limit(0, Some(1))?.count().await? == 0
    {
        let dropped = expected
            .iter()
            .any(|(_, on_fail)| *on_fail == crate::table::OnFail::Drop);
        if !dropped {
            return Err(Error::msg(format!(
                "the output is empty, and `full_snapshot` would delete every row of {}; refusing \
                 (did the source return nothing?)",
                pipeline.output.qualified_name()
            )));
        }
        // Every row failed a `drop` expectation: the same inputs would fail the same way. Those
        // expectations block; a `warn` one stays a warning.
        emptied = true;
        for (finding, drop) in findings.iter_mut().zip(&drops) {
            finding.1 |= *drop;
        }
    }
    if !blocked(&findings) {
        // A NULL in a NOT NULL column fails the write whatever the table's quality level.
        let checked =
            crate::quality::check_output(warehouse, session, pipeline.output, &output).await?;
        findings.extend(checked.into_iter().map(|finding| {
            let blocks = pipeline.output.quality == crate::table::Quality::Blocking
                || finding.check == "not_null";
            (finding, blocks)
        }));
    }
    let mut deferred = Vec::new();
    if !findings.is_empty() {
        let issues: Vec<QualityIssue> = findings
            .iter()
            .map(|(f, blocks)| QualityIssue {
                run_id: run.run_id.clone(),
                table_name: f.table.clone(),
                column_name: f.column.clone(),
                check_name: f.check.to_owned(),
                value: f.value.clone(),
                failing_rows: f.failing_rows,
                blocking: *blocks,
                checked_at: run.run_at,
            })
            .collect();
        // What blocked first; the warnings after it, said to be such.
        let summary = findings
            .iter()
            .filter(|(_, blocks)| *blocks)
            .map(|(f, _)| f.to_string())
            .chain(
                findings
                    .iter()
                    .filter(|(_, blocks)| !*blocks)
                    .map(|(f, _)| format!("{f} (a warning)")),
            )
            .collect::<Vec<_>>()
            .join("; ");
        if blocked(&findings) {
            // The quality failure is the error either way (a ledger error would be retried, and
            // the findings lost from the report too).
            let unrecorded = match record_once(orchestrator, run, pipeline, &issues).await {
                Ok(()) => String::new(),
                Err(error) => {
                    tracing::error!(%error, "could not record the data-quality findings: {summary}");
                    format!(" (the findings could not be recorded in the ledger: {error})")
                }
            };
            let emptied = if emptied {
                format!(
                    "every row failed a `drop` expectation, and `full_snapshot` would delete \
                     every row of {}; ",
                    pipeline.output.qualified_name()
                )
            } else {
                String::new()
            };
            return Err(Error::Quality(format!(
                "data-quality checks failed, nothing written (not retried: the same inputs fail \
                 the same way): {emptied}{summary}{unrecorded}"
            )));
        }
        tracing::warn!("data-quality checks failed: {summary}");
        deferred = issues;
    }
    Ok((output, deferred))
}

/// When an attempt failed before its write for good (`error` is not retried: a data-quality
/// check blocked the output, an expectation that cannot be evaluated, a refusal; or `kind` is
/// the last attempt its retries allow), records the source records it rejected: they tell too
/// (they may be why). A failure that is retried records none: the rejects are recorded with the
/// attempt that reaches its write.
async fn record_rejects_of_failed(
    orchestrator: &Orchestrator,
    cx: &Ctx,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    kind: AttemptKind,
    error: &Error,
) {
    if error.is_retryable() && !kind.last {
        return;
    }
    let rejects = reject_records(cx, pipeline, run);
    if !rejects.is_empty()
        && let Err(record_error) = orchestrator.ledger.append_rejects_once(&rejects).await
    {
        tracing::error!(%record_error, "could not record the rejected source records");
    }
}

/// Records `issues`, but those the ledger holds for the run already: a resumed run blocked again
/// by the same rows, or committing with the warnings a blocked attempt recorded.
async fn record_once(
    orchestrator: &Orchestrator,
    run: &RunInfo,
    pipeline: &'static PipelineDescriptor,
    issues: &[QualityIssue],
) -> Result<()> {
    if issues.is_empty() {
        return Ok(());
    }
    let table = pipeline.output.qualified_name();
    let held = orchestrator.ledger.findings(&run.run_id, &table).await?;
    let lacking: Vec<QualityIssue> = issues
        .iter()
        .filter(|issue| !held.contains(issue))
        .cloned()
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    orchestrator.ledger.append(&lacking).await
}

/// Records the findings of a replayed commit of this run's that the ledger lacks (an earlier
/// attempt of the run, blocked, may have recorded some of the same). A failure does not fail
/// the attempt (the rows are committed): it is logged, and returned as what the ledger lost
/// (the run is then not wholly recorded).
async fn record_replayed_findings(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    written: &Written,
) -> Option<String> {
    if written.replayed_findings.is_empty() {
        return None;
    }
    tracing::debug!("recording the quality findings of the replayed commit");
    let error = record_once(orchestrator, run, pipeline, &written.replayed_findings)
        .await
        .err()?;
    tracing::error!(%error, "the replayed commit's quality findings could not be recorded");
    Some(format!(
        "replayed commit's data-quality findings, not recorded in lakehouse.quality_issues \
         ({error})"
    ))
}

/// How much later than a reader's last read an upstream table's creation must be to count as a
/// recreation: more than the clocks of two hosts differ.
const RECREATION_MARGIN_MICROS: i64 = 5 * 60 * 1_000_000;

/// The source records the attempt rejected, as rows of `lakehouse.rejects`.
fn reject_records(
    cx: &Ctx,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
) -> Vec<RejectRecord> {
    cx.take_rejects()
        .into_iter()
        .map(|r| RejectRecord {
            run_id: run.run_id.clone(),
            pipeline: pipeline.name.to_owned(),
            source: r.source,
            reason: r.reason,
            raw: r.raw,
            rejected_at: run.run_at,
        })
        .collect()
}

/// Whether every one of `frames` is empty (reading at most a batch of each).
async fn no_rows(frames: Vec<datafusion::dataframe::DataFrame>) -> Result<bool> {
    for df in frames {
        if df.limit(0, Some(1))?.count().await? > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `error`, with the way out when it is a data file of an incremental input that is gone
/// (vacuumed with `--ignore-pending-readers`, or by another engine, or deleted): the commits still to be read
/// reference it, and only a whole read gets past them.
pub(super) fn missing_input_files(pipeline: &'static PipelineDescriptor, error: Error) -> Error {
    // Only an error of reading or writing data; the others say what they are.
    if !matches!(
        error,
        Error::DataFusion(_) | Error::Arrow(_) | Error::Delta { .. } | Error::Io { .. }
    ) {
        return error;
    }
    let text = error.to_string();
    // A data file's (a log entry gone is another matter: a log cleanup, a table recreated).
    if !text.contains("not found") || text.contains("/_delta_log/") {
        return error;
    }
    let Some(input) = pipeline
        .inputs
        .iter()
        .find(|input| names_folder_of(&text, input.table.schema, input.table.name))
    else {
        return error;
    };
    if !input.incremental {
        // Its current version references a file that is not there: the table itself is broken.
        return Error::Refused(format!(
            "a data file of {table}'s current version is gone (deleted, or vacuumed by another \
             engine): `orchestrate check` lists what is missing; restore the table to a version \
             whose files are there (`orchestrate restore {table} --to <version>`), or rebuild it \
             (move its folder away and run its pipeline) ({text})",
            table = input.table.qualified_name()
        ));
    }
    let refresh = if pipeline.output.mode == crate::table::WriteMode::Append {
        "--rebuild"
    } else {
        "--full-refresh"
    };
    // The input first: the error's own text names the output table, whose write read it.
    Error::Refused(format!(
        "a data file of {} that this pipeline still had to read incrementally is gone \
         (vacuumed, or deleted): read the input whole again with `orchestrate run --select {} \
         {refresh}` ({text})",
        input.table.qualified_name(),
        pipeline.name
    ))
}

/// Whether `text` names a path inside the folder of table `schema.name` (`…/schema/name/…`, or
/// `schema/name/…` at the root of a bucket), not one of another table whose name ends the same.
fn names_folder_of(text: &str, schema: &str, name: &str) -> bool {
    let folder = format!("{schema}/{name}/");
    text.match_indices(&folder).any(|(at, _)| {
        text[..at]
            .chars()
            .next_back()
            .is_none_or(|before| matches!(before, '/' | ' ' | '`' | '\'' | '"'))
    })
}

#[cfg(test)]
mod tests {
    use super::names_folder_of;

    #[test]
    fn a_path_is_matched_to_its_own_tables_folder_at_any_root() {
        let found = |text: &str| names_folder_of(text, "bronze", "events");
        assert!(found(
            "Object at location /wh/bronze/events/part-0.parquet not found"
        ));
        assert!(found(
            "Object at location bronze/events/part-0.parquet not found"
        ));
        assert!(!found(
            "Object at location /wh/xbronze/events/part-0.parquet not found"
        ));
        assert!(!found(
            "Object at location /wh/bronze/events_old/part-0.parquet not found"
        ));
    }
}
