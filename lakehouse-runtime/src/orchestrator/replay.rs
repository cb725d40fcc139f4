//! Finding a pipeline's write that is already committed (a retry's or a resumed run's) and
//! telling this run's own from another run's: the commit records the run and what it read.

use crate::ctx::RunInfo;
use crate::error::{Error, Result};
use crate::graph::PipelineDescriptor;
use crate::store::WriteOutcome;

use super::execute::Written;

/// The `commitInfo` key of a pipeline's write recording the input versions it read.
pub(super) const INPUT_VERSIONS_KEY: &str = "lakehouse.inputVersions";
/// The `commitInfo` key of a pipeline's write recording the Delta table ids of the inputs it
/// read incrementally.
pub(super) const INPUT_TABLE_IDS_KEY: &str = "lakehouse.inputTableIds";
pub(super) use crate::ledger::RUN_ID_KEY;
/// The `commitInfo` key of a pipeline's write listing its non-blocking quality findings (the
/// rows of `lakehouse.quality_issues` recorded once it is committed).
pub(super) const QUALITY_FINDINGS_KEY: &str = "lakehouse.qualityFindings";

/// What this run already committed to `pipeline`'s table, if it did (or, for a resumed run, a
/// later run did, which supersedes it). Another run's commit with this run's sequence, or, in a
/// `fresh` run, with a later one (two orchestrators on one warehouse) is an error: counting it as
/// ours would drop our rows.
pub(super) async fn already_written(
    orchestrator: &super::Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    fresh: bool,
) -> Result<Option<Written>> {
    let Some(committed) = orchestrator
        .warehouse
        .committed_transaction(pipeline.output, pipeline.name, run.sequence)
        .await?
    else {
        // No later commit; a later run may still have succeeded without one (a merge that
        // changed nothing, nothing new): it read past what this run would, and supersedes it.
        return match fresh {
            true => Ok(None),
            false => superseded_by_success(orchestrator, pipeline, run).await,
        };
    };
    let (done, metadata) = (committed.transaction_version, &committed.metadata);
    let writer = metadata.get(RUN_ID_KEY).and_then(|id| id.as_str());
    let by_another = |writer: Option<&str>| match writer {
        Some(writer) => format!("run `{writer}`"),
        None => "another run".to_owned(),
    };
    if done == run.sequence
        && let Some(writer) = writer.filter(|writer| *writer != run.run_id)
    {
        return Err(collision(pipeline, run, &by_another(Some(writer))));
    }
    // A fresh run's sequence is above every recorded one: a later sequence in the table can only
    // come from another orchestrator's run, or from runs the ledger lost (restored from an older
    // copy). Either way the next run must start after it: recorded, so that one failed run,
    // not one per missing sequence, is what it costs.
    if done > run.sequence && fresh {
        // Every table's latest, not only this one's: tables this run does not reach (skipped,
        // unselected) may hold later sequences still.
        let latest = match orchestrator.latest_table_sequence().await {
            Ok(latest) => latest.unwrap_or(done).max(done),
            Err(error) => {
                tracing::warn!(%error, "cannot read every table's latest run sequence");
                done
            }
        };
        if let Err(error) = orchestrator.ledger.raise_sequence_floor(latest).await {
            tracing::error!(%error, floor = latest, "could not record the sequence floor");
        }
        return Err(collision(pipeline, run, &by_another(writer)));
    }
    // A later run's write is the latest; this run's own may be in the table still, beneath it
    // (committed before the process died or the attempt was abandoned).
    let own_beneath = if done > run.sequence {
        match orchestrator
            .warehouse
            .transaction_commit(pipeline.output, pipeline.name, run.sequence)
            .await
        {
            Ok(found) => found.filter(|(_, own)| {
                own.get(RUN_ID_KEY)
                    .and_then(|id| id.as_str())
                    .is_none_or(|id| id == run.run_id)
            }),
            Err(error) => {
                tracing::warn!(%error, "could not look for this run's own commit");
                None
            }
        }
    } else {
        None
    };
    let own = match own_beneath {
        Some((version, own)) => Some((Some(version), own)),
        None if done == run.sequence => Some((committed.commit_version, metadata.clone())),
        None => None,
    };
    let Some((commit_version, own)) = own else {
        tracing::info!(
            later_sequence = done,
            "a later run already wrote the table; not executed"
        );
        return Ok(Some(superseded(
            pipeline,
            run,
            &committed,
            &by_another(writer),
        )));
    };
    tracing::info!("already written by this run; not executed again");
    // What the committed write read, as its commit recorded it: the next incremental read
    // starts there (an empty record would make it start over); the findings it lists, in case
    // the attempt that made it recorded none; its version and rows, as it made them.
    let input_versions =
        super::cursor::input_versions_of(own.get(INPUT_VERSIONS_KEY)).unwrap_or_default();
    let replayed_findings = own
        .get(QUALITY_FINDINGS_KEY)
        .cloned()
        .and_then(|findings| serde_json::from_value(findings).ok())
        .unwrap_or_default();
    let (inserted, updated) = crate::store::rows_written(&own);
    let version = commit_version.unwrap_or(committed.table_version);
    let mut outcome = WriteOutcome::skipped(pipeline.output, Some(version));
    outcome.rows_inserted = inserted;
    outcome.rows_updated = updated;
    outcome.rows_deleted = crate::store::rows_deleted(&own);
    Ok(Some(Written {
        outcome,
        input_versions,
        input_table_ids: super::cursor::table_ids_of(own.get(INPUT_TABLE_IDS_KEY)),
        metric: None,
        fragmented: false,
        replayed_findings,
        superseded: None,
        nothing_new: false,
        lost_records: None,
    }))
}

/// The replay of a pipeline whose table a later run (`writer`) wrote since, this run's own
/// write not being in it: nothing is written, and a note says so and what to do.
fn superseded(
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    committed: &crate::store::CommittedTransaction,
    writer: &str,
) -> Written {
    let table = pipeline.output.qualified_name();
    let note = format!(
        "superseded by {writer}'s later write of {table}: not written at {}; {}",
        run.run_at,
        remedy(pipeline, run)
    );
    Written {
        outcome: WriteOutcome::skipped(pipeline.output, Some(committed.table_version)),
        // What the later write read: the next incremental read starts there.
        input_versions: super::cursor::input_versions_of(
            committed.metadata.get(INPUT_VERSIONS_KEY),
        )
        .unwrap_or_default(),
        input_table_ids: super::cursor::table_ids_of(committed.metadata.get(INPUT_TABLE_IDS_KEY)),
        metric: None,
        fragmented: false,
        replayed_findings: Vec::new(),
        superseded: Some(note),
        nothing_new: false,
        lost_records: None,
    }
}

/// A resumed run's pipeline that a later run's success superseded without a commit (it had
/// nothing to write): not executed, its cursor where that success left it (executed, it would
/// write the later run's rows at this run's time, and move the cursor back).
async fn superseded_by_success(
    orchestrator: &super::Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
) -> Result<Option<Written>> {
    let Some(success) = orchestrator
        .ledger
        .last_success(pipeline.name)
        .await?
        .filter(|success| success.sequence > run.sequence)
    else {
        return Ok(None);
    };
    tracing::info!(
        later_run = %success.run_id,
        "a later run already succeeded, with nothing to write; not executed"
    );
    let json = |text: Option<&str>| text.and_then(|t| serde_json::from_str(t).ok());
    let note = format!(
        "superseded by run `{}`'s later success (it had nothing to write): not written at {}; {}",
        success.run_id,
        run.run_at,
        remedy(pipeline, run)
    );
    let version = success.table_version.and_then(|v| u64::try_from(v).ok());
    Ok(Some(Written {
        outcome: WriteOutcome::skipped(pipeline.output, version),
        input_versions: super::cursor::input_versions_of(
            json(success.input_versions.as_deref()).as_ref(),
        )
        .unwrap_or_default(),
        input_table_ids: super::cursor::table_ids_of(
            json(success.input_table_ids.as_deref()).as_ref(),
        ),
        metric: None,
        fragmented: false,
        replayed_findings: Vec::new(),
        superseded: Some(note),
        nothing_new: false,
        lost_records: None,
    }))
}

/// How a superseded run's time can still be written, for its note.
fn remedy(pipeline: &'static PipelineDescriptor, run: &RunInfo) -> String {
    match pipeline.output.mode {
        crate::table::WriteMode::Scd2 => {
            "an SCD2 table takes no past time after later runs: rebuild it to replay its history"
                .to_owned()
        }
        // (Not a backfill, which counts the time as done: for an incremental reader, the later
        // run read that time's rows, and a write at it now would stamp newer ones with it.)
        crate::table::WriteMode::Append => format!(
            "`orchestrate run --select {} --run-at {}` writes it, if its rows are not in the \
             later write (a backfill counts the time as done)",
            pipeline.name, run.run_at
        ),
        crate::table::WriteMode::Merge => format!(
            "`orchestrate run --select {} --run-at {}` merges its rows (rows a later run \
             changed stay, when the table has `run_at`; a backfill counts the time as done)",
            pipeline.name, run.run_at
        ),
        crate::table::WriteMode::Overwrite => format!(
            "`orchestrate run --select {} --run-at {}` writes it, replacing the later write's \
             rows (its partitions', with `overwrite = partitions`): run the latest time again \
             after it (a backfill counts the time as done)",
            pipeline.name, run.run_at
        ),
    }
}

/// The error of a write whose transaction (run sequence) `writer`, another run, holds.
pub(super) fn collision(
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    writer: &str,
) -> Error {
    Error::Refused(format!(
        "{} already holds a write of run sequence {} or later by {writer}, not by this run \
         (`{}`): two orchestrators are running on one warehouse, a run stopped (crashed) \
         before it recorded anything, or lakehouse.runs is older than the tables (restored \
         from an older copy); nothing was written, run again (the next run's sequence starts \
         after the table's)",
        pipeline.output.qualified_name(),
        run.sequence,
        run.run_id
    ))
}
