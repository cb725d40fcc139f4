//! Where a pipeline's incremental reads start: the input versions its last success read, or
//! those of a later commit of its own the ledger lacks.

use std::collections::BTreeMap;

use super::Orchestrator;
use super::replay::{INPUT_TABLE_IDS_KEY, INPUT_VERSIONS_KEY};
use crate::ctx::RunInfo;
use crate::error::{Error, Result};
use crate::graph::PipelineDescriptor;
use crate::table::Timestamp;

/// The input versions a pipeline's incremental reads start after: those its last recorded
/// success read, or, when its output holds a later commit of its own whose success was never
/// recorded (the process died after the commit, or the ledger could not take the row), those
/// that commit read, so its rows are not read, and written, twice.
pub(super) async fn incremental_cursor(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    announce: bool,
) -> Result<Cursor> {
    let last_success = orchestrator
        .ledger
        .last_success(pipeline.name)
        .await?
        .filter(|r| r.run_id != run.run_id);
    // An unreadable record is an error: taken for empty, it would read every row again.
    let recorded = match last_success.as_ref() {
        Some(success) => match success.input_versions.as_deref() {
            Some(json) => {
                recorded_versions(json).map_err(|error| {
                    // Read whole again, an append output would get its rows twice: rebuild it.
                    let refresh = if pipeline.output.mode == crate::table::WriteMode::Append {
                        "--rebuild"
                    } else {
                        "--full-refresh"
                    };
                    Error::Refused(format!(
                        "the ledger's record of `{}`'s last success (run `{}`) has input_versions \
                         `{json}`, which is not a JSON object of table versions ({error}): it \
                         says where the next incremental read starts; run the pipeline with \
                         {refresh} (its inputs read whole), or mend that row of lakehouse.runs \
                         with a Delta writer",
                        pipeline.name, success.run_id
                    ))
                })?
            }
            None => BTreeMap::new(),
        },
        None => BTreeMap::new(),
    };
    let after = last_success
        .as_ref()
        .map_or(i64::MIN, |r| r.sequence.saturating_add(1));
    let output = orchestrator
        .warehouse
        .latest_transaction(pipeline.output, pipeline.name, after)
        .await?;
    // The output is gone (its folder deleted to start it over), or holds no write of this
    // pipeline (created again by an attempt that then failed): what was read before is not in
    // it, so the inputs are read whole, as at the first run (Delta Live Tables does the same
    // for a dropped streaming table).
    let recreated = match (&output, &last_success) {
        (Some((None, _)), Some(_)) => orchestrator.ledger.output_recreated(pipeline).await?,
        _ => false,
    };
    let output = output.filter(|_| !recreated);
    let Some((transaction, unrecorded_commit)) = output else {
        if let Some(success) = last_success.filter(|_| announce && !recorded.is_empty()) {
            tracing::warn!(
                table = %pipeline.output.qualified_name(),
                last_success = %success.run_id,
                "the output table is gone, or holds no write of this pipeline, since its last \
                 success: its incremental inputs are read whole, as at its first run"
            );
        }
        return Ok(Cursor::default());
    };
    let transaction = transaction.unwrap_or(0);
    let unrecorded_commit =
        unrecorded_commit.filter(|commit| commit.transaction_version < run.sequence);
    let unrecorded = unrecorded_commit.as_ref().and_then(|commit| {
        let versions = input_versions_of(commit.metadata.get(INPUT_VERSIONS_KEY));
        let table_ids = table_ids_of(commit.metadata.get(INPUT_TABLE_IDS_KEY));
        if versions.is_none() && announce {
            tracing::warn!(
                sequence = commit.transaction_version,
                "the output holds a commit of this pipeline whose success the ledger lacks, but \
                 not what it read: reading on from the last recorded success (its rows may be \
                 read again)"
            );
        }
        versions.map(|versions| (versions, table_ids))
    });
    Ok(match unrecorded {
        Some((versions, table_ids)) => {
            if announce {
                tracing::info!(
                    "the output's latest commit of this pipeline is newer than the success the \
                 ledger gives as its last (lost, or this run's own being re-executed); reading \
                 on from what that commit read"
                );
            }
            Cursor {
                versions,
                table_ids,
                read_at: None,
                transaction,
            }
        }
        None => Cursor {
            versions: recorded,
            table_ids: last_success
                .as_ref()
                .and_then(|r| r.input_table_ids.as_deref())
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default(),
            read_at: last_success.map(|r| r.started_at),
            transaction,
        },
    })
}

/// The input versions a run record lists (`lakehouse.runs.input_versions`), as JSON text.
pub(super) fn recorded_versions(json: &str) -> serde_json::Result<BTreeMap<String, Option<u64>>> {
    serde_json::from_str(json)
}

/// The input versions a commit's metadata lists under [`INPUT_VERSIONS_KEY`], if it lists
/// them readably.
pub(super) fn input_versions_of(
    listed: Option<&serde_json::Value>,
) -> Option<BTreeMap<String, Option<u64>>> {
    listed
        .cloned()
        .and_then(|versions| serde_json::from_value(versions).ok())
}

/// The input table ids a commit's metadata lists under [`INPUT_TABLE_IDS_KEY`] (none when it
/// lists none, or unreadably: then only the creation time tells a recreated input).
pub(super) fn table_ids_of(listed: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    listed
        .cloned()
        .and_then(|ids| serde_json::from_value(ids).ok())
        .unwrap_or_default()
}

/// Where a pipeline's incremental reads start ([`incremental_cursor`]).
#[derive(Default)]
pub(super) struct Cursor {
    /// The version of each input read last.
    pub(super) versions: BTreeMap<String, Option<u64>>,
    /// The Delta table id of each input read last, when recorded.
    pub(super) table_ids: BTreeMap<String, String>,
    /// When they were read, if known.
    pub(super) read_at: Option<Timestamp>,
    /// The pipeline's last transaction version on its output when the cursor was taken (0:
    /// none), before any input is read.
    pub(super) transaction: i64,
}
