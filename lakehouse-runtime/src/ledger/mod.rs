//! The run ledger and the other system tables (`lakehouse.runs`, `lakehouse.quality_issues`,
//! `lakehouse.table_metrics`, `lakehouse.rejects`, `lakehouse.ingested_files`).

mod process;
mod prune;
mod statistics;
mod tables;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::Arc;

use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{col, lit};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use process::{Liveness, RunProcess};
pub use prune::{PruneOptions, PruneReport, Pruned};
use tables::NO_INPUT_VERSIONS;
pub use tables::{IngestedFile, QualityIssue, RejectRecord, RunRecord, TableMetric};

use crate::error::{Error, Result};
use crate::frame::batches_from_rows;
use crate::store::{
    AUTO_COMPACT_AT_FILES, CommitTags, OpenTable, WRITE_ID_KEY, Warehouse, WriteOptions,
    new_write_id,
};
use crate::table::{Table, TableDef, Timestamp};

/// The size compacted system-table files grow to: bounds what one compaction rewrites (files
/// that reached it are left alone).
const COMPACTED_FILE_BYTES: NonZeroU64 = NonZeroU64::new(4 << 20).expect("4 MiB is not zero");

/// The schema of the system tables.
pub const LEDGER_SCHEMA: &str = crate::table::LEDGER_SCHEMA;

/// The `commitInfo` key of a pipeline's write recording the run that made it.
pub(crate) const RUN_ID_KEY: &str = "lakehouse.runId";

/// The `commitInfo` key of a pipeline's write listing the files it ingested (the rows of
/// `lakehouse.ingested_files` it records once written).
pub(crate) const INGESTED_FILES_KEY: &str = "lakehouse.ingestedFiles";

/// What ran at one logical time: see [`Ledger::runs_between`].
#[derive(Clone, Debug, Default)]
pub struct RunsAt {
    /// The pipelines with a successful attempt at this time, in any run.
    pub succeeded: HashSet<String>,
    /// The pipelines whose success at this time is a later run's write superseding theirs
    /// (nothing written at this time; a note in `error` says so), in any run.
    pub superseded: HashSet<String>,
    /// The runs at this time whose latest execution did not succeed, oldest first.
    pub unfinished: Vec<RunRecord>,
}

/// The system tables of a warehouse.
#[derive(Clone)]
pub struct Ledger {
    warehouse: Warehouse,
    /// System tables already appended to by this process, kept open: the next append commits
    /// on top of the state the last one returned instead of reading the log again. One lock per
    /// table, so appends to different tables (a run record and a metric) go on together.
    open: Arc<std::sync::Mutex<HashMap<&'static str, OpenSlot>>>,
    /// The latest successful attempt of each pipeline, kept from this ledger's scans and appends
    /// (see [`Successes`]).
    successes: Arc<std::sync::Mutex<Option<Successes>>>,
}

/// The latest successful attempt of the pipelines looked up, as of a version of the runs table:
/// each read by one query, then kept current by this ledger's own appends. A commit it did not
/// make (another process's) leaves the version behind the table's, and the next lookup forgets
/// them all and queries again.
#[derive(Debug)]
struct Successes {
    version: u64,
    /// By pipeline; `None`: looked up, never succeeded.
    latest: HashMap<String, Option<RunRecord>>,
    /// Whether `latest` holds every pipeline that ever succeeded (looked up all at once): one
    /// it lacks never did.
    every_pipeline: bool,
    /// The latest execution of each run recorded as a refresh, by run id, once looked up.
    refreshes: Option<HashMap<String, RunRecord>>,
}

impl Successes {
    /// Takes in the successful attempts among `records` of the pipelines already looked up
    /// (of the others, the latest success before them is not known).
    fn observe<'a>(&mut self, records: impl IntoIterator<Item = &'a RunRecord>) {
        for record in records {
            // A refresh run's row appended now is its latest execution's.
            if record.kind == "run"
                && record.refresh.is_some()
                && let Some(refreshes) = self.refreshes.as_mut()
            {
                refreshes.insert(record.run_id.clone(), record.clone());
            }
            if !record.places_cursor() {
                continue;
            }
            let Some(pipeline) = record.pipeline.as_ref() else {
                continue;
            };
            let known = match self.every_pipeline {
                // Its first success, if it has none.
                true => self.latest.entry(pipeline.clone()).or_insert(None),
                false => match self.latest.get_mut(pipeline) {
                    Some(known) => known,
                    None => continue,
                },
            };
            // By sequence, then execution (a later resume of the run, whatever the clocks of
            // the hosts that ran them), then time.
            let order = |r: &RunRecord| (r.sequence, r.execution.unwrap_or(0), r.started_at.0);
            let newer = known
                .as_ref()
                .is_none_or(|known| order(record) >= order(known));
            if newer {
                *known = Some(record.clone());
            }
        }
    }
}

/// One system table's open state, locked for the length of an append.
type OpenSlot = Arc<tokio::sync::Mutex<Option<OpenTable>>>;

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("warehouse", &self.warehouse)
            .finish_non_exhaustive()
    }
}

/// The definitions of every system table.
pub fn system_tables() -> [&'static TableDef; 5] {
    [
        RunRecord::DEF,
        QualityIssue::DEF,
        TableMetric::DEF,
        RejectRecord::DEF,
        IngestedFile::DEF,
    ]
}

impl Ledger {
    /// The ledger of `warehouse`.
    pub fn new(warehouse: Warehouse) -> Ledger {
        Ledger {
            warehouse,
            open: Arc::default(),
            successes: Arc::default(),
        }
    }

    /// The warehouse.
    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// Appends `rows` to system table `T`, in one commit.
    pub async fn append<T: Table + Serialize>(&self, rows: &[T]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batches = batches_from_rows(T::DEF.output_arrow_schema(), rows)
            .map_err(|e| Error::msg(format!("run ledger `{}`: {e}", T::DEF.qualified_name())))?;
        // One write id for every try of this append: it tells an error after a commit (delta-rs's
        // snapshot update and checkpoint follow it) from a failed try, and the rows must not be
        // appended twice.
        let write_id = new_write_id();
        let slot = self.slot(T::DEF.name);
        let mut open = slot.lock().await;
        if let Some(table_open) = open.as_mut() {
            let before = table_open.version();
            let tags = CommitTags::write_id_only(write_id.clone());
            match table_open.append(&batches, &tags).await {
                // The table asks more than this path does, and nothing was written: the
                // general path writes it.
                Ok(false) => *open = None,
                Ok(true) => {
                    self.note_appended(rows, Some((before, table_open.version())));
                    self.compact_if_fragmented::<T>(&mut open).await;
                    return Ok(());
                }
                // E.g. the table was evolved or replaced meanwhile: the general path decides.
                Err(error) => {
                    tracing::debug!(%error, table = %T::DEF.qualified_name(), "reopening a system table");
                    *open = None;
                    // Unknown whether it committed: appending again could record the rows
                    // twice, so the append fails instead.
                    if self.committed::<T>(&write_id, Some(before)).await? {
                        self.note_appended(rows, None);
                        return Ok(());
                    }
                }
            }
        }
        // Appends never conflict with each other, but a concurrent first write (table creation,
        // metadata) can; such a commit is simply tried again.
        let mut attempt = 1;
        loop {
            // An earlier try may have committed before its error.
            if attempt > 1 && self.committed::<T>(&write_id, None).await? {
                self.note_appended(rows, None);
                return Ok(());
            }
            let session = self.warehouse.session();
            let df = session.read_batches(batches.clone())?;
            // (The write itself tells an error after its commit from a failed write.)
            let options = WriteOptions {
                metadata: [(WRITE_ID_KEY.to_owned(), write_id.clone())].into(),
                ..WriteOptions::default()
            };
            match self.warehouse.write(&session, T::DEF, df, options).await {
                Ok(_) => {
                    self.note_appended(rows, None);
                    // Kept open for the next append (best effort: a failure only costs a load).
                    if let Ok(Some(delta)) = self.warehouse.load(T::DEF).await
                        && let Ok(table_open) = OpenTable::new(&delta)
                    {
                        *open = Some(table_open);
                        self.compact_if_fragmented::<T>(&mut open).await;
                    }
                    return Ok(());
                }
                Err(error) if attempt < 5 => {
                    tracing::debug!(%error, attempt, table = %T::DEF.qualified_name(), "retrying a ledger append");
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                // The last try may have committed before its error.
                Err(error) => {
                    return match self.committed::<T>(&write_id, None).await {
                        Ok(true) => {
                            self.note_appended(rows, None);
                            Ok(())
                        }
                        _ => Err(error),
                    };
                }
            }
        }
    }

    /// Whether the write `write_id` is among system table `T`'s commits after `after` (the latest
    /// 100 without it); an error when the table cannot be read, and so whether it committed is
    /// not known (taken for "not", the rows were appended again).
    async fn committed<T: Table>(
        &self,
        write_id: &serde_json::Value,
        after: Option<u64>,
    ) -> Result<bool> {
        // A read that fails once (a store's passing error) is tried again before the append
        // gives up.
        let mut tries = 0;
        loop {
            tries += 1;
            match self
                .warehouse
                .commit_tagged(T::DEF, WRITE_ID_KEY, write_id, after)
                .await
            {
                Ok(found) => return Ok(found.is_some()),
                Err(error) if tries >= 3 => return Err(error),
                Err(error) => {
                    tracing::debug!(%error, table = %T::DEF.qualified_name(), "reading the ledger table's commits again");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * tries)).await;
                }
            }
        }
    }

    /// Keeps the known successes current after `rows` were committed to their table, which
    /// `moved` from one version to another (`None`: not known).
    fn note_appended<T: Table>(&self, rows: &[T], moved: Option<(u64, u64)>) {
        if std::any::TypeId::of::<T>() != std::any::TypeId::of::<RunRecord>() {
            return;
        }
        let records = rows
            .iter()
            .filter_map(|row| (row as &dyn std::any::Any).downcast_ref::<RunRecord>());
        self.note_runs_moved(records, moved);
    }

    /// Keeps the known successes current after one commit of this ledger added `records` to the
    /// runs table (none for a compaction) and `moved` it from one version to the next: taken in
    /// when the known successes reflect the version it moved from, forgotten otherwise (the next
    /// lookup scans).
    fn note_runs_moved<'a>(
        &self,
        records: impl IntoIterator<Item = &'a RunRecord>,
        moved: Option<(u64, u64)>,
    ) {
        let mut successes = self
            .successes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match successes.as_mut() {
            Some(known)
                if moved.is_some_and(|(before, after)| {
                    known.version == before && before.checked_add(1) == Some(after)
                }) =>
            {
                known.observe(records);
                known.version += 1;
            }
            _ => *successes = None,
        }
    }

    /// Compacts system table `T`, held open in `open`, once it has [`AUTO_COMPACT_AT_FILES`]
    /// files under half of [`COMPACTED_FILE_BYTES`] (every pipeline attempt appends one to
    /// `lakehouse.runs` and one to `lakehouse.table_metrics`). Best effort: the rows are committed
    /// already, and a failure (another process compacting it at the same time, say) only closes
    /// the table; a later append tries again.
    async fn compact_if_fragmented<T: Table>(&self, open: &mut Option<OpenTable>) {
        let Some(table_open) = open.as_mut() else {
            return;
        };
        if table_open.small_files(COMPACTED_FILE_BYTES.get()) < AUTO_COMPACT_AT_FILES {
            return;
        }
        let table = T::DEF.qualified_name();
        let before = table_open.version();
        let session = crate::store::session_state(&self.warehouse.session());
        match table_open.compact(COMPACTED_FILE_BYTES, session).await {
            Ok(files) => {
                let after = table_open.version();
                tracing::debug!(%table, files, version = after, "compacted a system table");
                // The open state is now the latest version: one past `before` is the
                // compaction's commit only if it merged files (otherwise it made none, and
                // another process's commit moved the table).
                let moved = (files > 0).then_some((before, after));
                if std::any::TypeId::of::<T>() == std::any::TypeId::of::<RunRecord>() {
                    self.note_runs_moved([], moved);
                }
            }
            Err(error) => {
                tracing::warn!(%table, %error, "could not compact a system table; a later append will try again");
                *open = None;
            }
        }
    }

    /// The version of the runs table, if this ledger holds it open: moved to the latest first.
    async fn runs_version(&self) -> Option<u64> {
        let slot = self.slot(RunRecord::DEF.name);
        let mut open = slot.lock().await;
        let table_open = open.as_mut()?;
        match table_open.refresh().await {
            Ok(_) => Some(table_open.version()),
            Err(error) => {
                tracing::debug!(%error, "reopening {}", RunRecord::DEF.qualified_name());
                *open = None;
                None
            }
        }
    }

    /// The lock and open state of system table `name`.
    fn slot(&self, name: &'static str) -> OpenSlot {
        // Poisoning needs a panic while the map is locked, and nothing in here panics.
        let mut slots = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(name).or_default().clone()
    }

    /// The runs, newest first, at most `limit`: one row each, its latest (a resumed run's last
    /// execution).
    pub async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        // The newest `limit` sequences first (two columns read), then only their rows ranked
        // (files pruned by their `sequence` statistics): not every run's since the ledger began.
        #[derive(serde::Deserialize)]
        struct Sequence {
            sequence: i64,
        }
        let is_run = col("kind").eq(lit("run"));
        let newest = self
            .records()
            .await?
            .filter(is_run.clone())?
            .aggregate(vec![col("sequence")], vec![])?
            .sort(vec![col("sequence").sort(false, false)])?
            .limit(0, Some(limit))?;
        let Some(floor) = rows::<Sequence>(newest)
            .await?
            .into_iter()
            .map(|s| s.sequence)
            .min()
        else {
            return Ok(Vec::new());
        };
        let df = self
            .latest_executions(is_run.and(col("sequence").gt_eq(lit(floor))))
            .await?;
        let df = df.sort(vec![
            col("sequence").sort(false, false),
            col("started_at").sort(false, false),
        ])?;
        rows(df.limit(0, Some(limit))?).await
    }

    /// The runs whose latest execution is recorded as running (started, no end yet): still
    /// running, or their process died (see [`RunRecord::process_liveness`]).
    pub async fn running(&self) -> Result<Vec<RunRecord>> {
        self.running_among(col("kind").eq(lit("run"))).await
    }

    /// The runs recorded as running whose latest execution started at or after `since`: a
    /// bounded read of the recent runs, for a run starting to look for one still going.
    pub async fn running_since(&self, since: Timestamp) -> Result<Vec<RunRecord>> {
        let since = lit(datafusion::scalar::ScalarValue::TimestampMicrosecond(
            Some(since.0),
            Some("UTC".into()),
        ));
        self.running_among(
            col("kind")
                .eq(lit("run"))
                .and(col("started_at").gt_eq(since)),
        )
        .await
    }

    /// The runs whose latest execution, among the run rows `selected`, is recorded as running.
    async fn running_among(
        &self,
        selected: datafusion::logical_expr::Expr,
    ) -> Result<Vec<RunRecord>> {
        let latest = self.latest_executions(selected).await?;
        let running = crate::orchestrator::Status::Running.as_str();
        rows(latest.filter(col("status").eq(lit(running)))?).await
    }

    /// The latest execution of every run recorded as a full refresh or rebuild, by sequence:
    /// one whose status is not `succeeded` (failed, cancelled, or died) did not finish, and an
    /// ordinary run of its pipelines would take a half-done refresh for done.
    /// Remembered once read, and kept current by this ledger's appends while the runs table has
    /// no commit it did not make (every run asks, and the answer is nearly always none).
    pub async fn refreshes(&self) -> Result<Vec<RunRecord>> {
        let unfinished = |refreshes: &HashMap<String, RunRecord>| -> Vec<RunRecord> {
            let mut runs: Vec<RunRecord> = refreshes.values().cloned().collect();
            runs.sort_by_key(|r| r.sequence);
            runs
        };
        let version = self.runs_version().await;
        if let Some(version) = version {
            let successes = self
                .successes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(known) = successes.as_ref()
                && known.version == version
                && let Some(refreshes) = &known.refreshes
            {
                return Ok(unfinished(refreshes));
            }
        }
        let latest: HashMap<String, RunRecord> = self
            .latest_refresh_executions()
            .await?
            .into_iter()
            .map(|r| (r.run_id.clone(), r))
            .collect();
        let found = unfinished(&latest);
        if let Some(version) = version {
            let mut successes = self
                .successes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match successes.as_mut() {
                Some(known) if known.version == version => known.refreshes = Some(latest),
                Some(_) => {}
                None => {
                    *successes = Some(Successes {
                        version,
                        latest: HashMap::new(),
                        every_pipeline: false,
                        refreshes: Some(latest),
                    })
                }
            }
        }
        Ok(found)
    }

    /// The latest execution of each run recorded as a full refresh or rebuild.
    async fn latest_refresh_executions(&self) -> Result<Vec<RunRecord>> {
        let refreshes = col("kind").eq(lit("run")).and(col("refresh").is_not_null());
        rows(self.latest_executions(refreshes).await?).await
    }

    /// The rows of `lakehouse.runs` matching `rows`, the latest of each run id only (a resumed
    /// run's last execution).
    async fn latest_executions(&self, rows: datafusion::logical_expr::Expr) -> Result<DataFrame> {
        use datafusion::functions_window::expr_fn::row_number;
        use datafusion::logical_expr::ExprFunctionExt as _;
        const RANK: &str = "__lakehouse_execution_rank";
        // The highest execution number, then (rows recorded before it, and a start row's end)
        // the latest start and end.
        let latest_first = row_number()
            .partition_by(vec![col("run_id")])
            .order_by(vec![
                col("execution").sort(false, false),
                col("started_at").sort(false, false),
                col("finished_at").sort(false, false),
            ])
            .build()?
            .alias(RANK);
        let records = self.records().await?;
        let columns: Vec<datafusion::prelude::Expr> = records
            .schema()
            .columns()
            .into_iter()
            .map(datafusion::prelude::Expr::Column)
            .collect();
        Ok(records
            .filter(rows)?
            .window(vec![latest_first])?
            .filter(col(RANK).eq(lit(1u64)))?
            .select(columns)?)
    }

    /// The run id that `prefix` starts (a whole id, or enough of it to be unique: `r000007`),
    /// `None` when no run's id does; several is an error listing a few.
    pub async fn resolve_run_id(&self, prefix: &str) -> Result<Option<String>> {
        use datafusion::functions::expr_fn::starts_with;
        // An empty id (an unset shell variable) would name the only run.
        if prefix.trim().is_empty() {
            return Err(Error::msg(
                "a run id is empty: give one (`orchestrate runs` lists them)",
            ));
        }
        let df = self
            .records()
            .await?
            // Any row names its run (one whose start row was lost too), but a sequence floor's
            // and a prune's, which are no runs.
            .filter(
                starts_with(col("run_id"), lit(prefix))
                    .and(datafusion::logical_expr::not(no_run())),
            )?
            .select(vec![col("run_id")])?
            .distinct()?
            .sort(vec![col("run_id").sort(true, false)])?
            .limit(0, Some(4))?;
        #[derive(serde::Deserialize)]
        struct Id {
            run_id: String,
        }
        let ids: Vec<String> = rows::<Id>(df)
            .await?
            .into_iter()
            .map(|i| i.run_id)
            .collect();
        // A whole sequence names its run even once longer ones start the same (`r100000`
        // and `r1000000-…`); `-` sorts before the digits, so it is among the first.
        let whole: Vec<&String> = ids
            .iter()
            .filter(|id| id.as_str() == prefix || id.starts_with(&format!("{prefix}-")))
            .collect();
        if let [one] = whole.as_slice() {
            return Ok(Some((*one).clone()));
        }
        match ids.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            several => Err(Error::msg(format!(
                "`{prefix}` starts several run ids ({}{}); give more of one",
                several[..several.len().min(3)].join(", "),
                if several.len() > 3 { ", …" } else { "" }
            ))),
        }
    }

    /// Every row of run `run_id` (the run rows and all attempts), in the order they were written:
    /// by execution (1, then one more per resume, whatever the clocks of the hosts that
    /// executed them; rows recorded before executions were numbered first), then by time.
    pub async fn run(&self, run_id: &str) -> Result<Vec<RunRecord>> {
        let df = self.records().await?.filter(
            col("run_id")
                .eq(lit(run_id))
                .and(datafusion::logical_expr::not(no_run())),
        )?;
        rows(df.sort(vec![
            col("execution").sort(true, true),
            col("started_at").sort(true, false),
            col("attempt").sort(true, true),
        ])?)
        .await
    }

    /// The latest successful attempt of `pipeline`, in any run, that recorded the versions of
    /// the inputs it read (where its incremental inputs' next read starts; a success that could
    /// not say, such as a replay of an old commit, is passed over). Remembered once looked up, and
    /// kept current by this ledger's appends while the runs table has no commit it did not make;
    /// otherwise read from the table.
    pub async fn last_success(&self, pipeline: &str) -> Result<Option<RunRecord>> {
        let version = self.runs_version().await;
        if let Some(version) = version {
            let mut successes = self
                .successes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match successes.as_ref() {
                Some(known) if known.version == version => {
                    if let Some(found) = known.latest.get(pipeline) {
                        return Ok(found.clone());
                    }
                    if known.every_pipeline {
                        return Ok(None);
                    }
                }
                // Another process committed: what is remembered may be out of date.
                _ => {
                    *successes = Some(Successes {
                        version,
                        latest: HashMap::new(),
                        every_pipeline: false,
                        refreshes: None,
                    })
                }
            }
        }
        // Every pipeline's at once: an orchestrator asks for each incremental pipeline it runs,
        // and each lookup is a scan of the whole runs table.
        let mut latest = self.latest_successes().await?;
        let found = latest.remove(pipeline);
        // Remembered only if the table is still at the version looked at before the query (and
        // the query saw no later commit: such a commit moves the table past it, and the next
        // lookup forgets).
        if let Some(version) = version {
            let mut successes = self
                .successes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(known) = successes.as_mut()
                && known.version == version
            {
                known.latest.extend(
                    latest
                        .into_iter()
                        .map(|(name, record)| (name, Some(record))),
                );
                known.latest.insert(pipeline.to_owned(), found.clone());
                known.every_pipeline = true;
            }
        }
        Ok(found)
    }

    /// The latest successful attempt of every pipeline that recorded its inputs' versions (see
    /// [`Ledger::last_success`]), by pipeline, in one pass over the runs table: each column is
    /// that of the pipeline's first row by sequence, execution, time and attempt, all
    /// descending (no two rows of a pipeline tie on all four).
    async fn latest_successes(&self) -> Result<HashMap<String, RunRecord>> {
        use datafusion::functions_aggregate::expr_fn::first_value;
        let records = self.records().await?;
        let latest_first = vec![
            col("sequence").sort(false, false),
            col("execution").sort(false, false),
            col("started_at").sort(false, false),
            col("attempt").sort(false, false),
        ];
        let columns: Vec<String> = records
            .schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .filter(|name| name != "pipeline")
            .collect();
        let firsts = columns
            .iter()
            .map(|name| first_value(col(name.as_str()), latest_first.clone()).alias(name))
            .collect();
        let df = records
            .filter(
                col("pipeline")
                    .is_not_null()
                    .and(col("status").eq(lit("succeeded")))
                    .and(col("input_versions").is_not_null())
                    .and(col("input_versions").not_eq(lit(NO_INPUT_VERSIONS))),
            )?
            .aggregate(vec![col("pipeline")], firsts)?;
        Ok(rows::<RunRecord>(df)
            .await?
            .into_iter()
            .filter_map(|record| Some((record.pipeline.clone()?, record)))
            .collect())
    }

    /// The files `pipeline` ingested (see `Ctx::read_new_files`). The files of its latest
    /// commit, which the commit lists, are recorded first if the ledger lacks them (the process
    /// died after the commit, or the ledger could not take them): otherwise they would be read,
    /// and written, again.
    pub async fn ingested_files(
        &self,
        pipeline: &'static crate::graph::PipelineDescriptor,
    ) -> Result<Vec<IngestedFile>> {
        let session = self.warehouse.session();
        let df = self
            .warehouse
            .read(&session, IngestedFile::DEF)
            .await?
            .filter(col("pipeline").eq(lit(pipeline.name)))?;
        let mut files: Vec<IngestedFile> = rows(df).await?;
        // Only a commit after the last recorded ingestion can lack its record (the history is
        // read only then).
        let recorded_up_to = files.iter().map(|file| file.sequence).max();
        let after = recorded_up_to.map_or(i64::MIN, |sequence| sequence.saturating_add(1));
        let Some(commit) = self
            .warehouse
            .committed_transaction(pipeline.output, pipeline.name, after)
            .await?
        else {
            return Ok(files);
        };
        let Some(listed) = commit.metadata.get(INGESTED_FILES_KEY) else {
            // Every pipeline commit records its run: without it, the commit's metadata could not
            // be read, and whether it ingested files is unknown.
            // Unless its run recorded the attempt's success: the files were recorded just
            // before, and a failure to was logged then.
            if !commit.metadata.contains_key(RUN_ID_KEY)
                && self
                    .succeeded_at(pipeline.name, commit.transaction_version)
                    .await?
            {
                tracing::warn!(
                    sequence = commit.transaction_version,
                    "the pipeline's latest commit is no longer readable; its run succeeded, so \
                     its files are taken as recorded"
                );
                return Ok(files);
            }
            if !commit.metadata.contains_key(RUN_ID_KEY) {
                return Err(Error::msg(format!(
                    "cannot tell which files run sequence {} ingested into {}: its commit is not \
                     among the table's latest 100 or its log entry is gone, and \
                     lakehouse.ingested_files has no record of it; nothing was read (reading on \
                     could ingest its files again); rebuild the table from every file with \
                     `orchestrate run --rebuild --select {}`",
                    commit.transaction_version,
                    pipeline.output.qualified_name(),
                    pipeline.name
                )));
            }
            return Ok(files);
        };
        let listed: Vec<IngestedFile> =
            serde_json::from_value(listed.clone()).map_err(|error| {
                Error::msg(format!(
                    "the commit of run sequence {} to {} lists its ingested files unreadably \
                     ({error})",
                    commit.transaction_version,
                    pipeline.output.qualified_name()
                ))
            })?;
        let known: std::collections::HashSet<&str> =
            files.iter().map(|file| file.path.as_str()).collect();
        let unrecorded: Vec<IngestedFile> = listed
            .into_iter()
            .filter(|file| !known.contains(file.path.as_str()))
            .collect();
        if !unrecorded.is_empty() {
            tracing::info!(
                count = unrecorded.len(),
                sequence = commit.transaction_version,
                "recording the files of a committed write that the ledger lacks"
            );
            self.append(&unrecorded).await.map_err(|error| {
                Error::msg(format!(
                    "cannot record in lakehouse.ingested_files the files that run sequence {} \
                     wrote to {}: {error}; nothing was read (reading on would ingest them again)",
                    commit.transaction_version,
                    pipeline.output.qualified_name()
                ))
            })?;
            files.extend(unrecorded);
        }
        Ok(files)
    }

    /// Whether an attempt of `pipeline` in the run of `sequence` succeeded.
    pub async fn succeeded_at(&self, pipeline: &str, sequence: i64) -> Result<bool> {
        let found = self
            .records()
            .await?
            .filter(
                col("pipeline")
                    .eq(lit(pipeline))
                    .and(col("sequence").eq(lit(sequence)))
                    .and(col("status").eq(lit("succeeded"))),
            )?
            .limit(0, Some(1))?
            .count()
            .await?;
        Ok(found > 0)
    }

    /// Whether `pipeline`'s output, which holds no write of it, was created after the
    /// pipeline's last success ended (or says no creation time): deleted and created again (by
    /// an attempt that then failed), so what the pipeline read before is not in it. A table
    /// made before is no sign: a merge that changed nothing commits nothing. False without a
    /// success.
    pub(crate) async fn output_recreated(
        &self,
        pipeline: &crate::graph::PipelineDescriptor,
    ) -> Result<bool> {
        let Some(ended) = self.last_success_end(pipeline.name).await? else {
            return Ok(false);
        };
        let created = self.warehouse.created_at(pipeline.output).await?;
        Ok(created.is_none_or(|created| created.0 > ended.0))
    }

    /// When `pipeline`'s latest successful attempt ended (whatever it read), if it has one.
    async fn last_success_end(&self, pipeline: &str) -> Result<Option<Timestamp>> {
        use datafusion::functions_aggregate::expr_fn::max;
        #[derive(serde::Deserialize)]
        struct End {
            ended: Option<Timestamp>,
        }
        let df = self
            .pipeline_successes()
            .await?
            .filter(col("pipeline").eq(lit(pipeline)))?
            .aggregate(vec![], vec![max(row_end()).alias("ended")])?;
        Ok(rows::<End>(df).await?.into_iter().find_map(|end| end.ended))
    }

    /// The latest logical time at which `pipeline` succeeded, in any run (a backfill's
    /// included), if it has: an SCD2 output is as its inputs were then, though a run that
    /// changed nothing wrote no row saying so.
    pub(crate) async fn latest_success_run_at(&self, pipeline: &str) -> Result<Option<Timestamp>> {
        use datafusion::functions_aggregate::expr_fn::max;
        #[derive(serde::Deserialize)]
        struct Latest {
            run_at: Option<Timestamp>,
        }
        let df = self
            .pipeline_successes()
            .await?
            .filter(col("pipeline").eq(lit(pipeline)))?
            .aggregate(vec![], vec![max(col("run_at")).alias("run_at")])?;
        Ok(rows::<Latest>(df).await?.into_iter().find_map(|l| l.run_at))
    }

    /// The successful pipeline attempts of the runs table.
    async fn pipeline_successes(&self) -> Result<DataFrame> {
        Ok(self.records().await?.filter(
            col("kind")
                .eq(lit("pipeline"))
                .and(col("status").eq(lit("succeeded"))),
        )?)
    }

    /// What ran at the logical times from `from` (included) to `to` (excluded): per time, the
    /// pipelines with a successful attempt (in any run) and the runs whose latest execution did
    /// not succeed (failed, cancelled, or died), oldest first. What a backfill needs to skip the
    /// times already done and resume the unfinished ones.
    pub async fn runs_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<HashMap<Timestamp, RunsAt>> {
        let in_range = col("run_at")
            .gt_eq(from.lit())
            .and(col("run_at").lt(to.lit()));
        #[derive(serde::Deserialize)]
        struct Success {
            run_at: Timestamp,
            pipeline: Option<String>,
            /// A superseded success's note.
            error: Option<String>,
        }
        let successes = self.records().await?.filter(
            in_range
                .clone()
                .and(col("kind").eq(lit("pipeline")))
                .and(col("status").eq(lit("succeeded"))),
        )?;
        let successes = successes
            .select(vec![col("run_at"), col("pipeline"), col("error")])?
            .distinct()?;
        let mut times: HashMap<Timestamp, RunsAt> = HashMap::new();
        for success in rows::<Success>(successes).await? {
            if let Some(pipeline) = success.pipeline {
                let at = times.entry(success.run_at).or_default();
                match success.error {
                    None => at.succeeded.insert(pipeline),
                    Some(_) => at.superseded.insert(pipeline),
                };
            }
        }
        let runs = self
            .latest_executions(in_range.and(col("kind").eq(lit("run"))))
            .await?
            .filter(col("status").not_eq(lit("succeeded")))?
            .sort(vec![col("sequence").sort(true, false)])?;
        for run in rows::<RunRecord>(runs).await? {
            times.entry(run.run_at).or_default().unfinished.push(run);
        }
        Ok(times)
    }

    /// Makes the next run's sequence at least `sequence + 1`: a row of kind `floor` in
    /// `lakehouse.runs` (listed by no command), for when a table holds a later run's write than
    /// the ledger knows (runs lost with an older copy of the ledger, or another orchestrator's).
    pub async fn raise_sequence_floor(&self, sequence: i64) -> Result<()> {
        if self.next_sequence().await? > sequence {
            return Ok(());
        }
        let now = Timestamp::now();
        let run = crate::ctx::RunInfo {
            run_id: format!("floor-{sequence}"),
            sequence,
            run_at: now,
        };
        let floor = RunRecord {
            kind: "floor".to_owned(),
            finished_at: Some(now),
            ..RunRecord::of_run(&run, crate::orchestrator::Status::Skipped, now)
        };
        tracing::warn!(
            sequence,
            "the tables hold a later run sequence than the ledger: the next run starts after it"
        );
        self.append(&[floor]).await
    }

    /// Whether `lakehouse.quality_issues` holds a finding of run `run_id` about `table`.
    pub async fn has_findings(&self, run_id: &str, table: &str) -> Result<bool> {
        Ok(!self.findings(run_id, table).await?.is_empty())
    }

    /// The findings of run `run_id` about `table` in `lakehouse.quality_issues`.
    pub async fn findings(&self, run_id: &str, table: &str) -> Result<Vec<QualityIssue>> {
        self.rows_of_run(run_id, ("table_name", table)).await
    }

    /// The records pipeline `pipeline` of run `run_id` rejected, in `lakehouse.rejects`.
    pub async fn rejects(&self, run_id: &str, pipeline: &str) -> Result<Vec<RejectRecord>> {
        self.rows_of_run(run_id, ("pipeline", pipeline)).await
    }

    /// The rows of system table `R` of run `run_id` whose `column` holds `value`.
    async fn rows_of_run<R: Table + DeserializeOwned>(
        &self,
        run_id: &str,
        (column, value): (&str, &str),
    ) -> Result<Vec<R>> {
        let session = self.warehouse.session();
        let found = self.warehouse.read(&session, R::DEF).await?.filter(
            col("run_id")
                .eq(lit(run_id))
                .and(col(column).eq(lit(value))),
        )?;
        rows(found).await
    }

    /// Appends those of `rejects` (one run's, of one pipeline) that an earlier attempt of the
    /// run has not recorded: a retried or resumed attempt rejects the same records again, and
    /// they are one run's rejects once. Matched one for one (a record rejected twice in one
    /// attempt is kept twice).
    pub async fn append_rejects_once(&self, rejects: &[RejectRecord]) -> Result<()> {
        let Some(first) = rejects.first() else {
            return Ok(());
        };
        let mut held = self.rejects(&first.run_id, &first.pipeline).await?;
        let lacking: Vec<RejectRecord> = rejects
            .iter()
            .filter(|reject| match held.iter().position(|h| h == *reject) {
                Some(index) => {
                    held.swap_remove(index);
                    false
                }
                None => true,
            })
            .cloned()
            .collect();
        self.append(&lacking).await
    }

    async fn records(&self) -> Result<DataFrame> {
        let session = self.warehouse.session();
        self.warehouse.read(&session, RunRecord::DEF).await
    }
}

/// When a row of the runs table ended: its end, or its start while it has none.
fn row_end() -> datafusion::logical_expr::Expr {
    datafusion::functions::expr_fn::coalesce(vec![col("finished_at"), col("started_at")])
}

/// Whether a row of the runs table is of no run: a sequence floor's, or a prune's.
fn no_run() -> datafusion::logical_expr::Expr {
    col("kind").in_list(vec![lit("floor"), lit(prune::PRUNED_KIND)], false)
}

/// The rows of `df` (a ledger table's) as `R`s, through Arrow's JSON writer.
pub async fn rows<R: DeserializeOwned>(df: DataFrame) -> Result<Vec<R>> {
    let batches = df.collect().await.map_err(|e| {
        Error::msg(format!(
            "reading the run ledger (`{LEDGER_SCHEMA}.*` tables): {e}; `orchestrate check` \
             tells which table's files are missing or unreadable"
        ))
    })?;
    batches_to_rows(&batches)
        .map_err(|e| Error::msg(format!("the run ledger (`{LEDGER_SCHEMA}.*` tables): {e}")))
}

pub use crate::frame::batches_to_rows;
