//! Pruning the run ledger (`orchestrate prune-ledger`): every row of the runs that ended before
//! a time, in each system table. Nothing else trims it, and a run every minute records half a
//! million runs a year, each read again by the queries that scan the runs table.
//!
//! Pruning forgets history, and what the next runs read stays. Kept whatever their age:
//! - each pipeline's latest success, where its incremental reads go on, and its latest success
//!   by its end, which tells an output recreated since;
//! - the runs recorded as running (still going, or their process died);
//! - every full refresh or rebuild that did not finish, and the refreshes begun after the
//!   earliest of them, which tell which of its pipelines were refreshed again since;
//! - in `lakehouse.ingested_files`, the records of files still where they were read (they would
//!   be read again), of files in a folder that is not there (a mount missing is no file
//!   deleted), and of each pipeline's latest ingestion (where the recovery of an unrecorded
//!   commit starts).
//!
//! What is lost: `resume` of a pruned run (a failed one), and which logical times the pruned
//! runs were at. They leave rows of kind `pruned` in `lakehouse.runs`, committed with their
//! removal: the earliest and the latest of their logical times (a backfill that skips the times
//! already done is refused over them), with their highest sequence (the next run's stays above
//! it).
//!
//! Each table is replaced by its kept rows in one commit, read just before and checked to be
//! at the version read (another process's commit since fails it, nothing written, and the table
//! is read again): the dependent tables first, the runs table last, so that a prune cut short is
//! finished by running it again. The replaced files stay until `orchestrate vacuum` deletes
//! them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::{first_value, max, min};
use datafusion::logical_expr::{col, lit, when};
use datafusion::prelude::SessionContext;

use super::{IngestedFile, Ledger, QualityIssue, RejectRecord, RunRecord, TableMetric, rows};
use crate::error::{Error, Result};
use crate::store::{WRITE_ID_KEY, WriteOptions, new_write_id};
use crate::table::{Table, TableDef, Timestamp};

/// The `kind` of the rows a prune leaves in `lakehouse.runs` (see the module's documentation).
pub(crate) const PRUNED_KIND: &str = "pruned";

/// The column of the pruned run ids, joined with the system tables' `run_id`.
const PRUNED_RUN_ID: &str = "__lakehouse_pruned_run_id";

/// How many times a table is read and replaced when another process committed to it meanwhile.
const REPLACE_TRIES: u32 = 5;

/// What [`Ledger::prune`] prunes.
#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    /// The runs whose every row (each execution, each attempt) ended before this wall-clock
    /// time go, but for those kept (see [`Ledger::prune`]).
    pub ended_before: Timestamp,
    /// Count what would go, changing nothing.
    pub dry_run: bool,
}

/// What [`Ledger::prune`] removed, or would on a dry run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PruneReport {
    /// The runs that ended before this time were pruned.
    pub ended_before: Timestamp,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The runs removed, every row of them.
    pub runs_pruned: u64,
    /// The runs that ended before the time too, but are kept: what the next runs read.
    pub runs_kept: u64,
    /// The rows removed from each system table (`schema.table`), the runs table last; tables
    /// that lost none are left out.
    pub rows_removed: Vec<(String, u64)>,
    /// The earliest and the latest logical time of the runs removed (and of those earlier
    /// prunes removed): which times between them ran is no longer known.
    pub logical_times: Option<(Timestamp, Timestamp)>,
}

/// What the prunes of a ledger removed, as the rows they left in `lakehouse.runs` say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pruned {
    /// The earliest logical time of a run pruned.
    pub logical_times_from: Timestamp,
    /// The latest logical time of a run pruned.
    pub logical_times_through: Timestamp,
    /// When the ledger was last pruned.
    pub pruned_at: Timestamp,
}

/// A run of the runs table that ended before the prune's time, by its rows.
#[derive(serde::Deserialize)]
struct RunSpan {
    run_id: String,
    /// Its highest sequence (a sequence floor's, a prune's row: theirs).
    sequence: i64,
    /// Its earliest and latest logical times (one, but for a prune's rows).
    first_run_at: Timestamp,
    last_run_at: Timestamp,
    /// [`FLOOR`], [`MARK`] or [`RUN`].
    what: i64,
}

/// [`RunSpan::what`]: a sequence floor, an earlier prune's rows, a run.
const FLOOR: i64 = 0;
const MARK: i64 = 1;
const RUN: i64 = 2;

impl Ledger {
    /// Removes every row of the runs that ended before `options.ended_before` from the system
    /// tables, but for those the next runs read, and the records of the ingested files that are
    /// gone from where they were read (see the module's documentation for what is kept). The
    /// runs recorded as running are kept, and a table is read again when another process
    /// committed to it meanwhile, so a prune may go on beside runs.
    pub async fn prune(&self, options: PruneOptions) -> Result<PruneReport> {
        let mut report = PruneReport {
            ended_before: options.ended_before,
            dry_run: options.dry_run,
            runs_pruned: 0,
            runs_kept: 0,
            rows_removed: Vec::new(),
            logical_times: None,
        };
        let pruned = self.prune_runs(options, &mut report).await;
        if options.dry_run {
            return pruned.map(|()| report);
        }
        // What this ledger remembers of the runs table, and the tables it holds open, are from
        // before.
        self.forget_open_tables();
        match pruned {
            Ok(()) => Ok(report),
            Err(error) if !report.rows_removed.is_empty() => {
                let done: Vec<&str> = report
                    .rows_removed
                    .iter()
                    .map(|(t, _)| t.as_str())
                    .collect();
                Err(Error::msg(format!(
                    "{error}; the pruned runs' rows were removed from {} already: run the prune \
                     again to finish",
                    done.join(", ")
                )))
            }
            Err(error) => Err(error),
        }
    }

    /// What earlier prunes removed, `None` if the ledger was never pruned (of a run).
    pub async fn pruned(&self) -> Result<Option<Pruned>> {
        #[derive(serde::Deserialize)]
        struct Marks {
            from: Option<Timestamp>,
            through: Option<Timestamp>,
            at: Option<Timestamp>,
        }
        let df = self
            .records()
            .await?
            .filter(col("kind").eq(lit(PRUNED_KIND)))?
            .aggregate(
                vec![],
                vec![
                    min(col("run_at")).alias("from"),
                    max(col("run_at")).alias("through"),
                    max(col("started_at")).alias("at"),
                ],
            )?;
        Ok(rows::<Marks>(df).await?.into_iter().find_map(|marks| {
            Some(Pruned {
                logical_times_from: marks.from?,
                logical_times_through: marks.through?,
                pruned_at: marks.at?,
            })
        }))
    }

    /// The error for run id `run_id`, of which the ledger holds no row: saying when it was
    /// pruned, if it was.
    pub async fn no_such_run(&self, run_id: &str) -> Error {
        let pruned = match self.pruned().await {
            Ok(Some(pruned)) => format!(
                " (old runs were pruned from it on {}: `orchestrate prune-ledger`)",
                pruned.pruned_at
            ),
            _ => String::new(),
        };
        Error::msg(format!(
            "no run `{run_id}` in the ledger{pruned}; see `orchestrate runs`"
        ))
    }

    /// [`Ledger::prune`], noting in `report` what went.
    async fn prune_runs(&self, options: PruneOptions, report: &mut PruneReport) -> Result<()> {
        let session = self.warehouse.session();
        let what = when(col("kind").eq(lit("floor")), lit(FLOOR))
            .when(col("kind").eq(lit(PRUNED_KIND)), lit(MARK))
            .otherwise(lit(RUN))?;
        let spans = self
            .records()
            .await?
            .aggregate(
                vec![col("run_id")],
                vec![
                    max(super::row_end()).alias("ended"),
                    max(col("sequence")).alias("sequence"),
                    min(col("run_at")).alias("first_run_at"),
                    max(col("run_at")).alias("last_run_at"),
                    max(what).alias("what"),
                ],
            )?
            .filter(col("ended").lt(options.ended_before.lit()))?;
        let spans = rows::<RunSpan>(spans).await?;
        // No run that old (a young ledger, pruned often): what is kept need not be looked up.
        if !spans.iter().any(|span| span.what == RUN) {
            return Ok(());
        }
        let keep = self.runs_to_keep().await?;
        let (kept, pruned): (Vec<RunSpan>, Vec<RunSpan>) = spans
            .into_iter()
            .partition(|span| keep.contains(&span.run_id));
        let runs = |spans: &[RunSpan]| spans.iter().filter(|span| span.what == RUN).count() as u64;
        report.runs_kept = runs(&kept);
        report.runs_pruned = runs(&pruned);
        // Sequence floors and earlier prunes' rows go with runs, into the rows this prune
        // leaves: alone, they would only be written again.
        if report.runs_pruned == 0 {
            return Ok(());
        }
        let marks = pruned_marks(&pruned, options.ended_before);
        report.logical_times = marks
            .first()
            .zip(marks.last())
            .map(|(from, through)| (from.run_at, through.run_at));
        let ids = pruned_ids(&session, &pruned)?;
        for table in [QualityIssue::DEF, TableMetric::DEF, RejectRecord::DEF] {
            let removed = replacing(table, || {
                self.prune_rows_of(&session, table, &ids, options.dry_run, &[])
            })
            .await?;
            add_removed(report, table, removed);
        }
        let removed = replacing(IngestedFile::DEF, || {
            self.prune_ingested(&session, &ids, options.dry_run)
        })
        .await?;
        add_removed(report, IngestedFile::DEF, removed);
        let removed = replacing(RunRecord::DEF, || {
            self.prune_rows_of(&session, RunRecord::DEF, &ids, options.dry_run, &marks)
        })
        .await?;
        add_removed(report, RunRecord::DEF, removed);
        Ok(())
    }

    /// The runs kept whatever their age (see the module's documentation).
    async fn runs_to_keep(&self) -> Result<HashSet<String>> {
        let mut keep: HashSet<String> = self
            .latest_successes()
            .await?
            .into_values()
            .map(|record| record.run_id)
            .collect();
        keep.extend(self.latest_ending_successes().await?);
        keep.extend(self.running().await?.into_iter().map(|run| run.run_id));
        let refreshes = self.latest_refresh_executions().await?;
        let first_unfinished = refreshes
            .iter()
            .filter(|run| run.status != "succeeded")
            .map(|run| run.started_at)
            .min();
        if let Some(first) = first_unfinished {
            keep.extend(
                refreshes
                    .into_iter()
                    .filter(|run| run.started_at >= first)
                    .map(|run| run.run_id),
            );
        }
        Ok(keep)
    }

    /// The run of each pipeline's latest successful attempt by its end, whatever it read (see
    /// `Ledger::last_success_end`).
    async fn latest_ending_successes(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Latest {
            run_id: Option<String>,
        }
        let latest_first = vec![super::row_end().sort(false, false)];
        let df = self.pipeline_successes().await?.aggregate(
            vec![col("pipeline")],
            vec![first_value(col("run_id"), latest_first).alias("run_id")],
        )?;
        Ok(rows::<Latest>(df)
            .await?
            .into_iter()
            .filter_map(|latest| latest.run_id)
            .collect())
    }

    /// Removes the rows of the pruned runs `ids` from system table `table`, read now, adding
    /// `marks` (the runs table's): how many.
    async fn prune_rows_of(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
        ids: &DataFrame,
        dry_run: bool,
        marks: &[RunRecord],
    ) -> Result<u64> {
        let (stored, version) = self.warehouse.read_with_version(session, table).await?;
        let Some(version) = version else {
            return Ok(0);
        };
        let removed = semi_join(stored.clone(), ids)?.count().await? as u64;
        // (None left: another prune removed them, and left its own marks.)
        if removed == 0 || dry_run {
            return Ok(removed);
        }
        let mut kept = anti_join(stored, ids)?;
        if !marks.is_empty() {
            let schema = RunRecord::DEF.output_arrow_schema();
            let marks = crate::frame::batches_from_rows(schema, marks)?;
            kept = kept.union_by_name(session.read_batches(marks)?)?;
        }
        self.replace_rows(session, table, kept, version).await?;
        Ok(removed)
    }

    /// Removes the records of `lakehouse.ingested_files` that the pruned runs `ids` made of files
    /// gone from where they were read, but each pipeline's latest ingestion: how many.
    async fn prune_ingested(
        &self,
        session: &SessionContext,
        ids: &DataFrame,
        dry_run: bool,
    ) -> Result<u64> {
        #[derive(serde::Deserialize)]
        struct Latest {
            pipeline: String,
            sequence: Option<i64>,
        }
        let (stored, version) = self
            .warehouse
            .read_with_version(session, IngestedFile::DEF)
            .await?;
        let Some(version) = version else {
            return Ok(0);
        };
        let latest: HashMap<String, i64> = rows::<Latest>(stored.clone().aggregate(
            vec![col("pipeline")],
            vec![max(col("sequence")).alias("sequence")],
        )?)
        .await?
        .into_iter()
        .filter_map(|latest| Some((latest.pipeline, latest.sequence?)))
        .collect();
        let candidates: Vec<IngestedFile> = rows(semi_join(stored.clone(), ids)?).await?;
        let mut folders = LandingFolders::default();
        let gone: Vec<&IngestedFile> = candidates
            .iter()
            .filter(|file| {
                latest
                    .get(&file.pipeline)
                    .is_some_and(|l| file.sequence < *l)
            })
            .filter(|file| folders.gone(&file.path))
            .collect();
        if gone.is_empty() || dry_run {
            return Ok(gone.len() as u64);
        }
        let strings = |values: Vec<&str>| Arc::new(StringArray::from(values)) as ArrayRef;
        let columns = ["__run_id", "__pipeline", "__path"];
        let keys = RecordBatch::try_new(
            Arc::new(Schema::new(
                columns
                    .map(|name| Field::new(name, DataType::Utf8, false))
                    .to_vec(),
            )),
            vec![
                strings(gone.iter().map(|f| f.run_id.as_str()).collect()),
                strings(gone.iter().map(|f| f.pipeline.as_str()).collect()),
                strings(gone.iter().map(|f| f.path.as_str()).collect()),
            ],
        )?;
        let keys = session.read_batch(keys)?;
        let kept = stored.join(
            keys,
            JoinType::LeftAnti,
            &["run_id", "pipeline", "path"],
            &columns,
            None,
        )?;
        self.replace_rows(session, IngestedFile::DEF, kept, version)
            .await?;
        Ok(gone.len() as u64)
    }

    /// Replaces the rows of system table `table`, read at `version`, with `kept`, in one commit
    /// that fails if the table moved since.
    async fn replace_rows(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
        kept: DataFrame,
        version: u64,
    ) -> Result<()> {
        let options = WriteOptions {
            replace: true,
            replaces_version: Some(version),
            metadata: [(WRITE_ID_KEY.to_owned(), new_write_id())].into(),
            ..WriteOptions::default()
        };
        self.warehouse.write(session, table, kept, options).await?;
        Ok(())
    }

    /// Closes the system tables this ledger holds open and forgets the successes it knows:
    /// their rows were replaced.
    fn forget_open_tables(&self) {
        let slots: Vec<_> = {
            let open = self
                .open
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            open.values().cloned().collect()
        };
        for slot in slots {
            // A slot in use is an append going on: it finds the table moved, and reopens it.
            if let Ok(mut open) = slot.try_lock() {
                *open = None;
            }
        }
        *self
            .successes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// `replace` (a read of `table` and the commit replacing its rows), tried again with a short
/// backoff while another process's commit since the read (an append, a compaction) fails it.
async fn replacing<F, Fut>(table: &TableDef, mut replace: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match replace().await {
            Err(error) if tries < REPLACE_TRIES && another_commit_meanwhile(&error) => {
                tracing::debug!(table = %table.qualified_name(), %error, "reading the table again to prune it");
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(tries))).await;
            }
            outcome => return outcome,
        }
    }
}

/// Whether `error` is a commit failed by another process's commit since the rows were read (a
/// conflict, a file it replaces compacted meanwhile), which a new read of the table mends.
fn another_commit_meanwhile(error: &Error) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    match error {
        Error::CommitConflict { .. } => true,
        Error::Delta { source, .. } => matches!(
            source.as_ref(),
            deltalake::DeltaTableError::Transaction {
                source: TransactionError::LogStoreError { .. }
            }
        ),
        _ => false,
    }
}

/// The ids of the `pruned` runs, as a one-column frame of `session` (column [`PRUNED_RUN_ID`]).
fn pruned_ids(session: &SessionContext, pruned: &[RunSpan]) -> Result<DataFrame> {
    let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
        pruned.iter().map(|span| span.run_id.as_str()),
    ));
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            PRUNED_RUN_ID,
            DataType::Utf8,
            false,
        )])),
        vec![ids],
    )?;
    Ok(session.read_batch(batch)?)
}

/// The rows of `rows` of the pruned runs `ids`.
fn semi_join(rows: DataFrame, ids: &DataFrame) -> Result<DataFrame> {
    Ok(rows.join(
        ids.clone(),
        JoinType::LeftSemi,
        &["run_id"],
        &[PRUNED_RUN_ID],
        None,
    )?)
}

/// The rows of `rows` of the runs kept.
fn anti_join(rows: DataFrame, ids: &DataFrame) -> Result<DataFrame> {
    Ok(rows.join(
        ids.clone(),
        JoinType::LeftAnti,
        &["run_id"],
        &[PRUNED_RUN_ID],
        None,
    )?)
}

/// Notes in `report` that `removed` rows of `table` went.
fn add_removed(report: &mut PruneReport, table: &TableDef, removed: u64) {
    if removed == 0 {
        return;
    }
    let name = table.qualified_name();
    match report.rows_removed.iter_mut().find(|(t, _)| *t == name) {
        Some((_, count)) => *count += removed,
        None => report.rows_removed.push((name, removed)),
    }
}

/// Tells whether ingested files are known to be gone, looking at each folder once.
#[derive(Default)]
struct LandingFolders {
    /// Whether a folder exists and holds an entry.
    populated: HashMap<std::path::PathBuf, bool>,
}

impl LandingFolders {
    /// Whether an ingested file is known to be gone: a local path that no longer exists, in a
    /// folder that exists and is not empty. A folder missing or empty is most likely a mount
    /// missing (an unmounted share's mount point is empty), or a prune on another host, not
    /// files deleted: forgotten, they would all be ingested again once it is back. A file on
    /// an object store, or one that cannot be looked at, is taken for there.
    fn gone(&mut self, path: &str) -> bool {
        if path.contains("://") {
            return false;
        }
        let path = std::path::Path::new(path);
        let Some(folder) = path.parent() else {
            return false;
        };
        let populated = *self
            .populated
            .entry(folder.to_path_buf())
            .or_insert_with(|| {
                std::fs::read_dir(folder).is_ok_and(|mut entries| entries.next().is_some())
            });
        populated && matches!(path.try_exists(), Ok(false))
    }
}

/// The rows that the runs and marks `pruned` leave in `lakehouse.runs`: one at the earliest
/// logical time of the runs (and of earlier prunes), one at the latest (the same when they are
/// one), both with the highest sequence (a floor's too).
fn pruned_marks(pruned: &[RunSpan], ended_before: Timestamp) -> Vec<RunRecord> {
    let now = Timestamp::now();
    let timed = || pruned.iter().filter(|span| span.what != FLOOR);
    let (Some(from), Some(through)) = (
        timed().map(|span| span.first_run_at).min(),
        timed().map(|span| span.last_run_at).max(),
    ) else {
        return Vec::new();
    };
    let sequence = pruned.iter().map(|span| span.sequence).max().unwrap_or(0);
    let runs = pruned.iter().filter(|span| span.what == RUN).count();
    let mark = |run_at: Timestamp| {
        let run = crate::ctx::RunInfo {
            run_id: format!("{PRUNED_KIND}-{}", now.0),
            sequence,
            run_at,
        };
        RunRecord {
            kind: PRUNED_KIND.to_owned(),
            finished_at: Some(now),
            error: Some(format!(
                "{runs} run(s) that ended before {ended_before} pruned, at logical times from \
                 {from} to {through}"
            )),
            ..RunRecord::of_run(&run, crate::orchestrator::Status::Succeeded, now)
        }
    };
    let mut marks = vec![mark(from)];
    if through != from {
        marks.push(mark(through));
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_file_looked_for_and_not_found_in_its_populated_folder_is_gone() {
        let dir = tempfile::tempdir().expect("dir");
        let there = dir.path().join("there.csv");
        std::fs::write(&there, "a\n1\n").expect("file");
        let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
        let mut folders = LandingFolders::default();
        assert!(!folders.gone(&path(&there)));
        assert!(folders.gone(&path(&dir.path().join("gone.csv"))));
        // A folder missing (a mount, a prune on another host) says nothing of its files.
        assert!(!folders.gone(&path(&dir.path().join("unmounted/gone.csv"))));
        // Nor does an empty one: an unmounted share's mount point.
        std::fs::create_dir(dir.path().join("mount")).expect("mount point");
        assert!(!folders.gone(&path(&dir.path().join("mount/gone.csv"))));
        // An object store is not looked at: its files are taken for there.
        assert!(!folders.gone("s3://bucket/landing/gone.csv"));
    }

    #[test]
    fn the_rows_of_a_prune_carry_the_highest_sequence_and_the_logical_times() {
        let span = |sequence, first, last, what| RunSpan {
            run_id: format!("r{sequence}"),
            sequence,
            first_run_at: Timestamp(first),
            last_run_at: Timestamp(last),
            what,
        };
        // A sequence floor counts for its sequence alone (its time is a wall clock's), an
        // earlier prune's rows for their times, neither as runs.
        let marks = pruned_marks(
            &[
                span(3, 30, 30, RUN),
                span(9, 5, 95, FLOOR),
                span(5, 20, 50, MARK),
                span(4, 40, 40, RUN),
            ],
            Timestamp(1_000_000),
        );
        let rows: Vec<(&str, i64, Timestamp)> = marks
            .iter()
            .map(|mark| (mark.kind.as_str(), mark.sequence, mark.run_at))
            .collect();
        assert_eq!(
            rows,
            [("pruned", 9, Timestamp(20)), ("pruned", 9, Timestamp(50))]
        );
        assert!(
            marks[0].run_id.starts_with("pruned-"),
            "{}",
            marks[0].run_id
        );
        assert_eq!(marks[0].run_id, marks[1].run_id);
        assert_eq!(
            marks[0].error.as_deref(),
            Some(
                "2 run(s) that ended before 1970-01-01T00:00:01Z pruned, at logical times from \
                 1970-01-01T00:00:00.000020Z to 1970-01-01T00:00:00.000050Z"
            )
        );
        // One time: one row.
        assert_eq!(pruned_marks(&[span(2, 7, 7, RUN)], Timestamp(0)).len(), 1);
    }
}
