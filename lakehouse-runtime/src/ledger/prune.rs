//! Pruning the run ledger (`orchestrate prune-ledger`): every row of the runs that ended before
//! a time, in each system table. Nothing else trims it, and a run every minute records half a
//! million runs a year, each read again by the queries that scan the runs table.
//!
//! Pruning forgets history; it changes nothing the next runs do. Kept whatever their age:
//! - each pipeline's latest success, where its incremental reads go on, and its latest success
//!   of any kind, which tells an output recreated since;
//! - the runs recorded as running (still going, or their process died): `resume` needs them;
//! - every full refresh or rebuild that did not finish, and the refreshes begun after the
//!   earliest of them, which tell which of its pipelines were refreshed again since;
//! - in `lakehouse.ingested_files`, the files still where they were read (they would be read
//!   again) and each pipeline's latest ingestion (where the recovery of an unrecorded commit
//!   starts).
//!
//! The pruned runs leave one row of kind `pruned` in `lakehouse.runs`, committed with their
//! removal: it carries their highest sequence (the next run's stays above it) and their latest
//! logical time, up to which a backfill can no longer tell the times already done (it is refused
//! there, unless it runs every time again).
//!
//! Each table is replaced by its kept rows in one commit, which checks that the table is still at
//! the version read (another process's append is never lost): the dependent tables first, the
//! runs table last, so that a prune cut short is finished by running it again. The replaced
//! files stay until `orchestrate vacuum` deletes them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{first_value, max};
use datafusion::logical_expr::{col, lit, when};
use datafusion::prelude::SessionContext;

use super::{IngestedFile, Ledger, QualityIssue, RejectRecord, RunRecord, TableMetric, rows};
use crate::error::{Error, Result};
use crate::store::{WRITE_ID_KEY, WriteOptions, new_write_id};
use crate::table::{Table, TableDef, Timestamp};

/// The `kind` of the row a prune leaves in `lakehouse.runs` (see the module's documentation).
pub(crate) const PRUNED_KIND: &str = "pruned";

/// The column of the pruned run ids, joined with the system tables' `run_id`.
const PRUNED_RUN_ID: &str = "__lakehouse_pruned_run_id";

/// How many times a prune reads a table again after another process committed to it.
const PRUNE_TRIES: u32 = 3;

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
    /// The latest logical time of the runs removed: a backfill can no longer tell which times up
    /// to it were done.
    pub logical_times_through: Option<Timestamp>,
}

/// What the prunes of a ledger removed, as the row they left in `lakehouse.runs` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pruned {
    /// The latest logical time of a run pruned: which times up to it ran is no longer known.
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
    /// Its latest logical time.
    run_at: Timestamp,
    /// 1 for a run, 0 for a sequence floor or a prune's row.
    is_run: i64,
}

impl Ledger {
    /// Removes every row of the runs that ended before `options.ended_before` from the system
    /// tables, but for those the next runs read, and the records of the ingested files that are
    /// gone from where they were read (see the module's documentation for what is kept). The
    /// runs recorded as running are kept, so a prune may go on beside runs; a commit another
    /// process made to a table while it was read makes it read that table again.
    pub async fn prune(&self, options: PruneOptions) -> Result<PruneReport> {
        let mut report = PruneReport {
            ended_before: options.ended_before,
            dry_run: options.dry_run,
            runs_pruned: 0,
            runs_kept: 0,
            rows_removed: Vec::new(),
            logical_times_through: None,
        };
        let mut tries = 0;
        loop {
            tries += 1;
            match self.prune_once(options, &mut report).await {
                Err(Error::CommitConflict { table, source }) if tries < PRUNE_TRIES => {
                    tracing::debug!(%table, %source, "pruning the ledger again");
                }
                outcome => {
                    // What this ledger remembers of the runs table, and the tables it holds
                    // open, are from before.
                    if !options.dry_run {
                        self.forget_open_tables();
                    }
                    return outcome.map(|()| report);
                }
            }
        }
    }

    /// What earlier prunes removed, `None` if the ledger was never pruned (of a run).
    pub async fn pruned(&self) -> Result<Option<Pruned>> {
        #[derive(serde::Deserialize)]
        struct Marks {
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
                    max(col("run_at")).alias("through"),
                    max(col("started_at")).alias("at"),
                ],
            )?;
        Ok(rows::<Marks>(df)
            .await?
            .into_iter()
            .find_map(|marks| match (marks.through, marks.at) {
                (Some(through), Some(at)) => Some(Pruned {
                    logical_times_through: through,
                    pruned_at: at,
                }),
                _ => None,
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

    /// One try of [`Ledger::prune`], adding what it removed to `report`.
    async fn prune_once(&self, options: PruneOptions, report: &mut PruneReport) -> Result<()> {
        let session = self.warehouse.session();
        let (runs, runs_version) = self
            .warehouse
            .read_with_version(&session, RunRecord::DEF)
            .await?;
        let Some(runs_version) = runs_version else {
            return Ok(());
        };
        let keep = self.runs_to_keep().await?;
        let ended_before = options.ended_before;
        let spans = runs
            .clone()
            .aggregate(
                vec![col("run_id")],
                vec![
                    max(coalesce(vec![col("finished_at"), col("started_at")])).alias("ended"),
                    max(col("sequence")).alias("sequence"),
                    max(col("run_at")).alias("run_at"),
                    max(when(super::no_run(), lit(0i64)).otherwise(lit(1i64))?).alias("is_run"),
                ],
            )?
            .filter(col("ended").lt(ended_before.lit()))?;
        let (kept, pruned): (Vec<RunSpan>, Vec<RunSpan>) = rows::<RunSpan>(spans)
            .await?
            .into_iter()
            .partition(|span| keep.contains(&span.run_id));
        let count_runs =
            |spans: &[RunSpan]| spans.iter().filter(|span| span.is_run == 1).count() as u64;
        report.runs_kept = count_runs(&kept);
        report.runs_pruned = count_runs(&pruned);
        // Sequence floors and earlier prunes' rows go with runs, in the row they leave: alone,
        // they would only be written again.
        if report.runs_pruned == 0 {
            return Ok(());
        }
        report.logical_times_through = pruned.iter().map(|span| span.run_at).max();
        let ids = pruned_ids(&session, &runs, &pruned)?;
        for table in [QualityIssue::DEF, TableMetric::DEF, RejectRecord::DEF] {
            let removed = self
                .prune_rows_of(&session, table, &ids, options.dry_run)
                .await?;
            add_removed(report, table, removed);
        }
        let removed = self.prune_ingested(&session, &ids, options.dry_run).await?;
        add_removed(report, IngestedFile::DEF, removed);
        let removed = semi_join(runs.clone(), &ids)?.count().await? as u64;
        if !options.dry_run {
            let mark = pruned_mark(&pruned, ended_before);
            let mark = session.read_batches(crate::frame::batches_from_rows(
                RunRecord::DEF.output_arrow_schema(),
                &[mark],
            )?)?;
            let kept_rows = anti_join(runs, &ids)?.union_by_name(mark)?;
            self.replace_rows(&session, RunRecord::DEF, kept_rows, runs_version)
                .await?;
        }
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
        let ended = coalesce(vec![col("finished_at"), col("started_at")]);
        let df = self
            .records()
            .await?
            .filter(
                col("kind")
                    .eq(lit("pipeline"))
                    .and(col("status").eq(lit("succeeded"))),
            )?
            .aggregate(
                vec![col("pipeline")],
                vec![first_value(col("run_id"), vec![ended.sort(false, false)]).alias("run_id")],
            )?;
        Ok(rows::<Latest>(df)
            .await?
            .into_iter()
            .filter_map(|latest| latest.run_id)
            .collect())
    }

    /// Removes the rows of the pruned runs `ids` from system table `table`: how many.
    async fn prune_rows_of(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
        ids: &DataFrame,
        dry_run: bool,
    ) -> Result<u64> {
        let (stored, version) = self.warehouse.read_with_version(session, table).await?;
        let Some(version) = version else {
            return Ok(0);
        };
        let removed = semi_join(stored.clone(), ids)?.count().await? as u64;
        if removed > 0 && !dry_run {
            self.replace_rows(session, table, anti_join(stored, ids)?, version)
                .await?;
        }
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
        let gone: Vec<&IngestedFile> = candidates
            .iter()
            .filter(|file| {
                latest
                    .get(&file.pipeline)
                    .is_some_and(|l| file.sequence < *l)
            })
            .filter(|file| gone_from_disk(&file.path))
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

/// The ids of the `pruned` runs, as a one-column frame of `session` (column [`PRUNED_RUN_ID`],
/// of the type of `runs`' `run_id`).
fn pruned_ids(session: &SessionContext, runs: &DataFrame, pruned: &[RunSpan]) -> Result<DataFrame> {
    let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
        pruned.iter().map(|span| span.run_id.as_str()),
    ));
    let stored_type = runs
        .schema()
        .field_with_unqualified_name("run_id")?
        .data_type()
        .clone();
    let ids = arrow::compute::cast(&ids, &stored_type)?;
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            PRUNED_RUN_ID,
            stored_type,
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

/// Whether an ingested file is known to be gone: a local path that no longer exists (a file on
/// an object store, or one that cannot be looked at, is taken for there).
fn gone_from_disk(path: &str) -> bool {
    !path.contains("://") && matches!(std::path::Path::new(path).try_exists(), Ok(false))
}

/// The row that runs `pruned` leave in `lakehouse.runs` (see the module's documentation).
fn pruned_mark(pruned: &[RunSpan], ended_before: Timestamp) -> RunRecord {
    let now = Timestamp::now();
    let run = crate::ctx::RunInfo {
        run_id: format!("{PRUNED_KIND}-{}", now.0),
        sequence: pruned.iter().map(|span| span.sequence).max().unwrap_or(0),
        run_at: pruned
            .iter()
            .map(|span| span.run_at)
            .max()
            .unwrap_or(ended_before),
    };
    RunRecord {
        kind: PRUNED_KIND.to_owned(),
        finished_at: Some(now),
        error: Some(format!(
            "{} run(s) that ended before {ended_before} pruned, logical times up to {}",
            pruned.iter().filter(|span| span.is_run == 1).count(),
            run.run_at
        )),
        ..RunRecord::of_run(&run, crate::orchestrator::Status::Succeeded, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_file_looked_for_and_not_found_is_gone() {
        let dir = tempfile::tempdir().expect("dir");
        let there = dir.path().join("there.csv");
        std::fs::write(&there, "a\n1\n").expect("file");
        let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
        assert!(!gone_from_disk(&path(&there)));
        assert!(gone_from_disk(&path(&dir.path().join("gone.csv"))));
        // An object store is not looked at: its files are taken for there.
        assert!(!gone_from_disk("s3://bucket/landing/gone.csv"));
    }

    #[test]
    fn the_row_of_a_prune_carries_the_highest_sequence_and_logical_time() {
        let span = |sequence, run_at, is_run| RunSpan {
            run_id: format!("r{sequence}"),
            sequence,
            run_at: Timestamp(run_at),
            is_run,
        };
        // A sequence floor's and an earlier prune's rows count for their sequence and time,
        // not as runs.
        let mark = pruned_mark(
            &[
                span(3, 30, 1),
                span(9, 10, 0),
                span(5, 50, 0),
                span(4, 40, 1),
            ],
            Timestamp(1_000_000),
        );
        assert_eq!((mark.kind.as_str(), mark.sequence), ("pruned", 9));
        assert_eq!(mark.run_at, Timestamp(50));
        assert!(mark.run_id.starts_with("pruned-"), "{}", mark.run_id);
        assert_eq!(
            mark.error.as_deref(),
            Some(
                "2 run(s) that ended before 1970-01-01T00:00:01Z pruned, logical times up to \
                 1970-01-01T00:00:00.000050Z"
            )
        );
    }
}
