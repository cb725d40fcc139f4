//! The system tables of schema `lakehouse`.
//!
//! Each keeps one hour of Delta log history (`delta.logRetentionDuration`; 30 days by default):
//! every pipeline attempt commits to `runs` and `table_metrics`, and each commit and each load
//! lists the whole `_delta_log` directory on a local warehouse. Their rows are their history;
//! time travel on them is not needed.

use serde::Serialize;

use crate::prelude::*;

/// One row per pipeline attempt and one per run: what ran, when, and how it ended.
#[derive(Table, Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[table(
    schema = "lakehouse",
    name = "runs",
    property(key = "delta.logRetentionDuration", value = "interval 1 hour")
)]
pub struct RunRecord {
    /// Unique id of the run
    pub run_id: String,
    /// Increasing number of the run; the Delta transaction version of its writes
    pub sequence: i64,
    /// Logical time of the run
    pub run_at: Timestamp,
    /// `run` for the run's own row, `pipeline` for an attempt, `floor` for a sequence the next
    /// run starts after (see [`Ledger::raise_sequence_floor`](super::Ledger::raise_sequence_floor))
    pub kind: String,
    /// The pipeline (NULL on a run row)
    pub pipeline: Option<String>,
    /// Attempt number, from 1
    pub attempt: Option<i32>,
    /// pending, running, succeeded, failed, skipped or cancelled
    pub status: String,
    /// Wall-clock start
    pub started_at: Timestamp,
    /// Wall-clock end
    pub finished_at: Option<Timestamp>,
    /// Duration in milliseconds
    pub duration_ms: Option<i64>,
    /// The table written, `schema.table`
    pub output_table: Option<String>,
    /// Rows inserted or updated by the write
    pub rows_written: Option<i64>,
    /// Delta version after the write
    pub table_version: Option<i64>,
    /// Whether the write was skipped because this run had already committed it, or a later
    /// run wrote the table since (then `error` says so)
    pub replayed: Option<bool>,
    /// Error text of a failed attempt; on a success that wrote nothing because a later run
    /// wrote the table since (a resumed run), the note saying so
    pub error: Option<String>,
    /// Versions of the inputs read, as JSON `{"schema.table": version}`
    pub input_versions: Option<String>,
    /// The selection, on a run row
    pub selection: Option<String>,
    /// The pipelines planned, space-separated, on a run row (recorded when the run starts, so
    /// that a run whose process died can be resumed)
    pub planned: Option<String>,
    /// The orchestrator process executing the run, as JSON `{"host", "pid", ...}`, on a run row
    /// (so that a run whose process died can be told from a live one)
    pub process: Option<String>,
    /// `full` for a `--full-refresh` run, `rebuild` for a `--rebuild` run, on a run row (so that
    /// `resume` repeats it)
    pub refresh: Option<String>,
    /// The run's settings (`--set`, `--live`) as a JSON object, on a run row, so that `resume`
    /// reads the sources as the run did; values of keys that may hold a secret are left out
    /// unless they name an environment variable (`env:NAME`)
    pub settings: Option<String>,
    /// The Delta table id of each input read incrementally, as JSON `{"schema.table": "id"}`:
    /// a table recreated since (another id) is not read on from the versions of the old one.
    /// (Last: a ledger made before it gains it at the end of its stored columns.)
    pub input_table_ids: Option<String>,
    /// Rows deleted by the write (a `full_snapshot` merge's missing keys, deletion keys); on a
    /// run row, the run's total. (Last, as `input_table_ids`.)
    pub rows_deleted: Option<i64>,
    /// Which execution of the run recorded the row (1, then one more per resume): a run's
    /// latest execution, and a pipeline's latest status in the run, is its highest, whatever
    /// the clocks of the hosts that executed it (NULL on rows recorded before it was: run rows
    /// gained it before pipelines' rows did). (Last, as `input_table_ids`.)
    pub execution: Option<i32>,
}

/// `input_versions` of a success that read no table, or could not say what it read.
pub(crate) const NO_INPUT_VERSIONS: &str = "{}";

impl RunRecord {
    /// The row of run `run` itself, with `status` (the other columns NULL).
    pub(crate) fn of_run(
        run: &crate::ctx::RunInfo,
        status: crate::orchestrator::Status,
        started_at: Timestamp,
    ) -> RunRecord {
        RunRecord {
            run_id: run.run_id.clone(),
            sequence: run.sequence,
            run_at: run.run_at,
            kind: "run".to_owned(),
            pipeline: None,
            attempt: None,
            status: status.as_str().to_owned(),
            started_at,
            finished_at: None,
            duration_ms: None,
            output_table: None,
            rows_written: None,
            table_version: None,
            replayed: None,
            error: None,
            input_versions: None,
            selection: None,
            planned: None,
            process: None,
            refresh: None,
            settings: None,
            input_table_ids: None,
            rows_deleted: None,
            execution: None,
        }
    }

    /// A row of `pipeline` (writing `table`) in run `run`, with `status` (the other columns NULL).
    pub(crate) fn of_pipeline(
        run: &crate::ctx::RunInfo,
        pipeline: &str,
        table: String,
        status: crate::orchestrator::Status,
        started_at: Timestamp,
    ) -> RunRecord {
        RunRecord {
            kind: "pipeline".to_owned(),
            pipeline: Some(pipeline.to_owned()),
            output_table: Some(table),
            ..RunRecord::of_run(run, status, started_at)
        }
    }

    /// Whether the process executing this run row's run still runs ([`Liveness::Unknown`](super::Liveness::Unknown) on
    /// other rows, and on run rows recorded before processes were).
    pub fn process_liveness(&self) -> super::Liveness {
        self.run_process()
            .map_or(super::Liveness::Unknown, |process| process.liveness())
    }

    /// The pipelines this run row's run planned, in plan order (none on other rows, and on run
    /// rows recorded before plans were).
    pub fn planned_pipelines(&self) -> impl Iterator<Item = &str> {
        self.planned
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
    }

    /// The process executing this run row's run, as recorded (`None` on other rows, and on run
    /// rows recorded before processes were).
    pub fn run_process(&self) -> Option<super::RunProcess> {
        self.process
            .as_deref()
            .and_then(super::RunProcess::from_json)
    }

    /// Whether this is a successful pipeline attempt that recorded the versions of the inputs it
    /// read: where the next incremental read of its pipeline starts.
    pub(crate) fn places_cursor(&self) -> bool {
        self.kind == "pipeline"
            && self.status == "succeeded"
            && self
                .input_versions
                .as_deref()
                .is_some_and(|versions| versions != NO_INPUT_VERSIONS)
    }
}

/// Data-quality findings.
#[derive(Table, Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[table(
    schema = "lakehouse",
    name = "quality_issues",
    property(key = "delta.logRetentionDuration", value = "interval 1 hour")
)]
pub struct QualityIssue {
    /// The run that checked
    pub run_id: String,
    /// The table checked, `schema.table`
    pub table_name: String,
    /// The column checked, if the check is about one
    pub column_name: Option<String>,
    /// The check: `primary_key_unique`, `foreign_key_resolves`, `not_null`, ...
    pub check_name: String,
    /// A sample offending value
    pub value: Option<String>,
    /// How many rows fail the check
    pub failing_rows: i64,
    /// Whether the failure fails the pipeline
    pub blocking: bool,
    /// When the check ran (the run's logical time)
    pub checked_at: Timestamp,
}

/// Table statistics after each write, from the Delta log.
#[derive(Table, Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[table(
    schema = "lakehouse",
    name = "table_metrics",
    property(key = "delta.logRetentionDuration", value = "interval 1 hour")
)]
pub struct TableMetric {
    /// The run that wrote
    pub run_id: String,
    /// The table, `schema.table`
    pub table_name: String,
    /// Delta version measured
    pub version: i64,
    /// Rows in the table
    pub rows: i64,
    /// Data files
    pub files: i64,
    /// Bytes of data files
    pub bytes: i64,
    /// NULLs per column, as JSON `{"column": count}`
    pub null_counts: String,
    /// The run's logical time
    pub measured_at: Timestamp,
}

/// Source records that could not be ingested.
#[derive(Table, Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[table(
    schema = "lakehouse",
    name = "rejects",
    property(key = "delta.logRetentionDuration", value = "interval 1 hour")
)]
pub struct RejectRecord {
    /// The run
    pub run_id: String,
    /// The pipeline that rejected the record
    pub pipeline: String,
    /// Where the record came from
    pub source: String,
    /// Why it was rejected
    pub reason: String,
    /// The record as received
    pub raw: String,
    /// The run's logical time
    pub rejected_at: Timestamp,
}

/// The files each pipeline ingested with `Ctx::read_new_files`: a file listed here is not read
/// again by its pipeline.
#[derive(Table, Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[table(
    schema = "lakehouse",
    name = "ingested_files",
    property(key = "delta.logRetentionDuration", value = "interval 1 hour")
)]
pub struct IngestedFile {
    /// The pipeline that read the file
    pub pipeline: String,
    /// The table its rows were written to, `schema.table`
    pub table_name: String,
    /// The file's absolute path
    pub path: String,
    /// Its size in bytes when it was read
    pub size: i64,
    /// Its modification time when it was read
    pub modified_at: Option<Timestamp>,
    /// The run that ingested it
    pub run_id: String,
    /// That run's sequence
    pub sequence: i64,
    /// That run's logical time
    pub ingested_at: Timestamp,
}
