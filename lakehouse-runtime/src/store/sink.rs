//! Appends and overwrites, encoded by one Parquet writer per partition of the plan and
//! committed once.
//!
//! delta-rs funnels every partition of an unpartitioned write into a single Parquet writer, so
//! encoding (dictionary, RLE, Snappy: about half the CPU of a write) ran on one core while the
//! others waited. Here each partition of the physical plan streams into its own writer — with
//! delta-rs's default writer properties and target file size — and the files are committed in
//! one Delta commit carrying the same operation, metrics and application transaction as
//! delta-rs's own write. A partitioned table's rows are dealt out by partition, and each writer
//! sorts its own, so that it has one partition's file open at a time. Tables this path cannot
//! honour exactly (with CHECK constraints, column mapping, or a schema replacement) keep
//! delta-rs's writer: see [`applies_to`].

use std::sync::Arc;

use super::commit::CommitTags;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties as _, Partitioning, StatisticsArgs, StatisticsContext,
};
use deltalake::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake::kernel::transaction::{CommitBuilder, FinalizedCommit};
use deltalake::kernel::{Action, Add};
use deltalake::logstore::LogStoreRef;
use deltalake::operations::write::configs::WriterStatsConfig;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableError, ObjectStore};
use futures::{Stream, StreamExt as _};
use tokio::task::JoinSet;

use super::batching::{ENCODE_BATCH_ROWS, Pending, write_task_context};
use crate::table::TableDef;

/// The table-property prefix of Delta CHECK constraints, which delta-rs's writer validates.
const CONSTRAINT_PREFIX: &str = "delta.constraints.";

/// Whether a write of `table` into `delta` may take the parallel path: a table without CHECK
/// constraints (declared or found in the log), partitioned as declared (each writer then sorts
/// its rows by partition and has one partition's file open at a time), whose protocol asks
/// nothing of a writer beyond what this path honours ([`plain_protocol`]). Anything else goes
/// through delta-rs's writer, which validates constraints and maps column names.
pub(crate) fn applies_to(table: &TableDef, delta: &DeltaTable) -> bool {
    delta.snapshot().is_ok_and(|state| {
        let mut stored: Vec<&str> = state
            .metadata()
            .partition_columns()
            .iter()
            .map(String::as_str)
            .collect();
        let mut declared: Vec<&str> = table.partition_by.to_vec();
        stored.sort_unstable();
        declared.sort_unstable();
        stored == declared && plain_writes(table, state)
    })
}

/// Whether a partition overwrite of `table` into `delta` may take this path (see
/// [`super::partitions::overwrite_partitions`]): a partitioned table, otherwise as
/// [`applies_to`].
pub(crate) fn applies_to_partitions(table: &TableDef, delta: &DeltaTable) -> bool {
    delta.snapshot().is_ok_and(|state| {
        !state.metadata().partition_columns().is_empty() && plain_writes(table, state)
    })
}

/// No CHECK constraints (declared or found in the log) and a [`plain_protocol`].
fn plain_writes(table: &TableDef, state: &DeltaTableState) -> bool {
    table.checks.is_empty()
        && !state
            .metadata()
            .configuration()
            .keys()
            .any(|key| key.starts_with(CONSTRAINT_PREFIX))
        && plain_protocol(state)
}

/// Writer features this path honours: appends need nothing, change data feed only matters to
/// updates (which the upsert path leaves to delta-rs's MERGE), constraints are ruled out above
/// and invariants by [`WRITER_COLUMN_METADATA`], the vacuum check concerns vacuum.
const HONOURED_WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "changeDataFeed",
    "checkConstraints",
    // Listed by most writer-v7 tables; a column that has one says so in its metadata.
    "invariants",
    "vacuumProtocolCheck",
];

/// Column metadata that asks a writer for more than the values: invariants, generated and
/// identity columns, and physical column names.
const WRITER_COLUMN_METADATA: &[&str] = &[
    "delta.invariants",
    "delta.generationExpression",
    "delta.identity.",
    "delta.columnMapping.",
];

/// Whether `state`'s protocol and schema ask of a writer only what the parallel path does:
/// writer version 4 at most (5 is column mapping, 6 identity columns) or only the
/// [`HONOURED_WRITER_FEATURES`], no column mapping, and no [`WRITER_COLUMN_METADATA`]. A table
/// another engine upgraded (column mapping, deletion vectors, row tracking, in-commit
/// timestamps, ..) is written by delta-rs, which knows them or refuses.
fn plain_protocol(state: &DeltaTableState) -> bool {
    let protocol = state.protocol();
    let features_honoured = match protocol.writer_features() {
        Some(features) => features
            .iter()
            .all(|f| HONOURED_WRITER_FEATURES.contains(&f.as_ref())),
        None => protocol.min_writer_version() <= 4,
    };
    let mapping = state
        .metadata()
        .configuration()
        .get("delta.columnMapping.mode")
        .is_some_and(|mode| mode != "none");
    features_honoured
        && !mapping
        && state.schema().fields().all(|field| {
            field
                .metadata()
                .keys()
                .all(|key| !WRITER_COLUMN_METADATA.iter().any(|m| key.starts_with(m)))
        })
}

/// How [`write`]'s commit is recorded.
pub(crate) enum Recorded {
    /// A `WRITE`; `blind_append`: an append that read nothing of the table.
    Write { blind_append: bool },
    /// A `MERGE` into an empty table (`operation`, reading the whole table): a concurrent
    /// write that added rows conflicts, as it would with the MERGE, instead of both inserting
    /// the same keys.
    MergeIntoEmpty(Box<DeltaOperation>),
}

/// Appends `source` to `delta`, or replaces its rows with it, in one commit. `source` must have
/// the table's stored schema (names, types, order); a NULL in a NOT NULL column fails the write.
/// On any error nothing is committed: files already written are unreferenced (vacuum removes
/// them) and the table stays at its version. Returns the table's state after the commit and the
/// rows written.
pub(crate) async fn write(
    delta: DeltaTable,
    source: DataFrame,
    mode: SaveMode,
    commit: CommitTags,
    recorded: Recorded,
) -> Result<(DeltaTableState, u64), DeltaTableError> {
    let state = delta.snapshot()?.clone();
    let partition_columns = state.metadata().partition_columns().to_vec();
    let partition_by = (!partition_columns.is_empty()).then(|| partition_columns.clone());
    let (adds, rows) = encode_plan(&state, &delta, source, None, partition_columns).await?;
    // A merge of no rows changes nothing, and makes no commit, as a merge that changes no row.
    if adds.is_empty() && matches!(recorded, Recorded::MergeIntoEmpty(_)) {
        return Ok((state, 0));
    }
    let added_files = adds.len();
    let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    let mut removed_files = 0;
    if mode == SaveMode::Overwrite {
        for file in state.log_data() {
            actions.push(Action::Remove(file.remove_action(true)));
            removed_files += 1;
        }
    }
    let (operation, metrics, blind_append) = match recorded {
        Recorded::Write { blind_append } => (
            DeltaOperation::Write {
                mode,
                partition_by,
                predicate: None,
            },
            serde_json::json!({
                "num_added_rows": rows,
                "num_added_files": added_files,
                "num_removed_files": removed_files,
            }),
            blind_append && mode == SaveMode::Append,
        ),
        Recorded::MergeIntoEmpty(operation) => (
            *operation,
            serde_json::json!({
                "num_source_rows": rows,
                "num_target_rows_inserted": rows,
                "num_target_rows_updated": 0,
                "num_target_rows_deleted": 0,
                "num_output_rows": rows,
                "num_target_files_added": added_files,
            }),
            false,
        ),
    };
    let finalized = commit_actions(
        &state,
        delta.log_store(),
        actions,
        operation,
        metrics,
        &commit,
        blind_append,
    )
    .await?;
    Ok((finalized.snapshot(), rows))
}

/// Encodes `source` (in `state`'s stored schema) into new data files of `delta`, one Parquet
/// writer per partition, without committing them; `rows`: the rows `source` yields, if known;
/// `partition_columns`: the table's (each writer then writes a file per table partition).
/// Returns their `Add`s and the rows written. On an error the files already written stay
/// unreferenced.
pub(crate) async fn encode_plan(
    state: &DeltaTableState,
    delta: &DeltaTable,
    source: DataFrame,
    rows: Option<u64>,
    partition_columns: Vec<String>,
) -> Result<(Vec<Add>, u64), DeltaTableError> {
    let schema: SchemaRef = state.snapshot().arrow_schema();
    let task_ctx = source.task_ctx();
    let target_partitions = task_ctx.session_config().target_partitions().max(1);
    let plan = source.create_physical_plan().await?;
    // One walk of the plan's statistics serves both decisions: batch size and parallelism.
    let statistics = StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .ok();
    let statistics = statistics.as_deref();
    let task_ctx = Arc::new(write_task_context(plan.as_ref(), statistics, task_ctx));
    // The output's own order, kept within each partition.
    let ordered = plan.output_ordering().cloned();
    let plan: Arc<dyn ExecutionPlan> = if is_small(&plan, statistics, rows) {
        // One file: splitting a few rows over several encoders would only make small files.
        by_partition(
            Arc::new(CoalescePartitionsExec::new(plan)),
            &partition_columns,
            ordered,
        )?
    } else if partition_columns.is_empty() {
        // The plan's own partitions are often lopsided (one file or row group, a sort): its
        // batches are dealt out so every encoder gets a share, and it runs in tasks of its own.
        Arc::new(RepartitionExec::try_new(
            plan,
            Partitioning::RoundRobinBatch(target_partitions),
        )?)
    } else {
        // Rows are sent by table partition, so each is encoded by one writer: dealt out
        // round-robin, every writer would open a file in every partition it saw.
        let schema = plan.schema();
        let columns = partition_columns
            .iter()
            .map(|column| datafusion::physical_expr::expressions::col(column, &schema))
            .collect::<Result<Vec<_>, _>>()?;
        by_partition(
            Arc::new(RepartitionExec::try_new(
                plan,
                Partitioning::Hash(columns, target_partitions),
            )?),
            &partition_columns,
            ordered,
        )?
    };
    let partition_indices = partition_columns
        .iter()
        .map(|column| schema.index_of(column))
        .collect::<Result<Vec<_>, _>>()?;
    let config = writer_config(state, partition_columns);
    let store = delta.log_store().object_store(None);
    let partitions = plan.output_partitioning().partition_count();
    tracing::debug!(partitions, "writing one Parquet stream per partition");
    // Set when one writer fails: the others stop at their next batch and abort their uploads
    // (a task cancelled outright would drop an object store's multipart upload unaborted, its
    // parts stored, and billed, until the bucket's lifecycle rules remove them).
    let (cancel, cancelled) = tokio::sync::watch::channel(false);
    let mut writers = Writers {
        set: JoinSet::new(),
        cancel,
    };
    for partition in 0..partitions {
        let stream = plan.execute(partition, task_ctx.clone())?;
        writers.set.spawn(encode(
            stream,
            schema.clone(),
            StreamWriter::new(store.clone(), config.clone(), partition_indices.clone()),
            cancelled.clone(),
        ));
    }
    let mut adds = Vec::new();
    let mut rows = 0;
    while let Some(joined) = writers.set.join_next().await {
        let written = joined
            .map_err(|e| DeltaTableError::Generic(format!("a Parquet writer task failed: {e}")))
            .and_then(|written| written);
        match written {
            Ok((files, written_rows)) => {
                adds.extend(files);
                rows += written_rows;
            }
            Err(error) => {
                // Stopped, and waited for: their memory (a key check's set, buffered rows) is
                // back in the pool, and their files aborted, before whatever the caller does
                // next.
                let _ = writers.cancel.send(true);
                while writers.set.join_next().await.is_some() {}
                return Err(error);
            }
        }
    }
    Ok((adds, rows))
}

/// The writer tasks of one write. Dropped unfinished (the write's future dropped: its attempt
/// cut short), they are told to stop and drained in a task of their own, so that they abort
/// their uploads rather than being cancelled outright.
struct Writers {
    set: JoinSet<Result<(Vec<Add>, u64), DeltaTableError>>,
    cancel: tokio::sync::watch::Sender<bool>,
}

impl Drop for Writers {
    fn drop(&mut self) {
        if self.set.is_empty() {
            return;
        }
        let _ = self.cancel.send(true);
        let mut set = std::mem::take(&mut self.set);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { while set.join_next().await.is_some() {} });
        }
    }
}

/// A table kept open between appends, so that each one does not read its log again: the
/// system tables, appended to after every pipeline.
#[derive(Clone)]
pub(crate) struct OpenTable {
    log_store: LogStoreRef,
    state: DeltaTableState,
}

impl OpenTable {
    /// `delta` at its loaded version.
    pub(crate) fn new(delta: &DeltaTable) -> Result<OpenTable, DeltaTableError> {
        Ok(OpenTable {
            log_store: delta.log_store(),
            state: delta.snapshot()?.clone(),
        })
    }

    /// The version this table is open at.
    pub(crate) fn version(&self) -> u64 {
        self.state.version()
    }

    /// The most files under half of `size` bytes in one partition of the version this table is
    /// open at (see [`super::read::small_files`]).
    pub(crate) fn small_files(&self, size: u64) -> usize {
        super::read::small_files(&self.state, size)
    }

    /// Compacts the files under `target_size` bytes into files of about that size, in one
    /// commit on top of the open version (appends made since by others do not conflict), and
    /// moves to the table's latest version (delta-rs reloads it after the commit; without
    /// anything to merge there is no commit). Returns how many files were compacted away.
    pub(crate) async fn compact(
        &mut self,
        target_size: std::num::NonZeroU64,
        session: Arc<dyn datafusion::catalog::Session>,
    ) -> Result<u64, DeltaTableError> {
        // Guarded: another process compacting the same files meanwhile would otherwise leave
        // two merged copies of their rows.
        let base = self.state.version();
        let mut table = DeltaTable::new(super::guard::guard_store(self.log_store.clone(), base));
        let properties =
            super::parquet_props::for_compaction(&self.state.snapshot().arrow_schema());
        table.state = Some(self.state.clone());
        let (compacted, metrics) = table
            .optimize()
            .with_writer_properties(properties)
            .with_target_size(target_size)
            .with_session_state(session)
            .await?;
        if let Some(state) = compacted.state {
            self.state = state;
        }
        Ok(metrics.num_files_removed)
    }

    /// Moves to the table's latest version (reading only the commits made since), and returns
    /// that state.
    pub(crate) async fn refresh(&mut self) -> Result<&DeltaTableState, DeltaTableError> {
        self.state.update(self.log_store.as_ref(), None).await?;
        Ok(&self.state)
    }

    /// Appends in-memory `batches` (the stored table's columns, matched by name) in one commit, without a
    /// DataFusion plan, and moves to the committed version. Appends by others since the last
    /// one do not conflict: the commit goes after them. `Ok(false)`: this path does not write
    /// the table (see below), and nothing was written.
    pub(crate) async fn append(
        &mut self,
        batches: &[RecordBatch],
        tags: &CommitTags,
    ) -> Result<bool, DeltaTableError> {
        // The encoder goes by position: the rows' columns are put in the stored order, by name
        // (a table evolved by another version may hold them in another order, or hold a
        // nullable column the rows lack).
        // A table another engine gave writer features this path does not honour (generated
        // columns, invariants, column mapping..) takes the general path, delta-rs's writer.
        // Nor does it enforce CHECK constraints or lay out partitions: a system table another
        // engine gave either takes the general path too.
        let constrained = self
            .state
            .metadata()
            .configuration()
            .keys()
            .any(|key| key.starts_with("delta.constraints."));
        let partitioned = !self.state.metadata().partition_columns().is_empty();
        if !plain_protocol(&self.state) || constrained || partitioned {
            return Ok(false);
        }
        // A table removed (or replaced) since it was opened, say by clearing the ledger under a
        // running loop: its log no longer holds the version this state is at, and a commit after
        // it would start a log without its beginning, unreadable by every other process. Nothing
        // is written then: the general path loads the table as it is, and creates it if need
        // be. (So does a state so old that log cleanup removed its commit, other processes
        // having written since.)
        use deltalake::logstore::object_store::ObjectStoreExt as _;
        let latest = deltalake::logstore::commit_uri_from_version(Some(self.state.version()));
        match self.log_store.object_store(None).head(&latest).await {
            Ok(_) => {}
            Err(deltalake::ObjectStoreError::NotFound { .. }) => {
                tracing::debug!(
                    version = self.state.version(),
                    "the table's log no longer holds the version it was opened at"
                );
                return Ok(false);
            }
            Err(error) => return Err(error.into()),
        }
        let stored = self.state.snapshot().arrow_schema();
        let batches = batches
            .iter()
            .map(|batch| in_stored_order(batch, &stored))
            .collect::<Result<Vec<_>, _>>()?;
        // One writer: nothing else to stop it (the sender lives as long as it runs).
        let (_never, running) = tokio::sync::watch::channel(false);
        let writer = StreamWriter::new(
            self.log_store.object_store(None),
            writer_config(&self.state, Vec::new()),
            Vec::new(),
        );
        let (adds, rows) = encode(
            futures::stream::iter(batches.into_iter().map(Ok)),
            stored,
            writer,
            running,
        )
        .await?;
        let metrics = serde_json::json!({
            "num_added_rows": rows,
            "num_added_files": adds.len(),
            "num_removed_files": 0,
        });
        let actions = adds.into_iter().map(Action::Add).collect();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let finalized = commit_actions(
            &self.state,
            self.log_store.clone(),
            actions,
            operation,
            metrics,
            tags,
            true,
        )
        .await?;
        self.state = finalized.snapshot();
        Ok(true)
    }
}

/// delta-rs's writer settings for `state`'s table: its Parquet properties (see
/// [`super::parquet_props`]), the table's
/// target file size and statistics columns; batches reach the Parquet writer whole; files are
/// split by `partition_columns`.
fn writer_config(state: &DeltaTableState, partition_columns: Vec<String>) -> WriterConfig {
    let snapshot = state.snapshot();
    let stats = WriterStatsConfig::from_config(snapshot.table_configuration());
    let schema = snapshot.arrow_schema();
    let properties = super::parquet_props::for_writes(&[&schema]);
    WriterConfig::new(
        schema,
        partition_columns,
        Some(properties),
        Some(snapshot.table_properties().target_file_size()),
        // delta-rs slices each batch into 1 024-row writes by default, undoing the gathering.
        Some(ENCODE_BATCH_ROWS),
        stats.num_indexed_cols,
        stats.stats_columns,
    )
}

/// Commits `actions` on top of `state` as `operation`, with its `operationMetrics` (the names
/// delta-rs's own operation records), checked for conflicts with commits made since `state`
/// (by delta-rs, and for files compacted meanwhile by [`super::guard`]).
pub(crate) async fn commit_actions(
    state: &DeltaTableState,
    log_store: LogStoreRef,
    actions: Vec<Action>,
    operation: DeltaOperation,
    metrics: serde_json::Value,
    tags: &CommitTags,
    blind_append: bool,
) -> Result<FinalizedCommit, DeltaTableError> {
    // delta-rs lists the whole `_delta_log` after every commit to delete expired entries, but
    // only entries older than a checkpoint can go: looking right after a checkpoint is enough.
    // A file this commit replaces that another process compacted meanwhile fails the commit.
    let log_store = super::guard::guard_store(log_store, state.version());
    let config = state.table_config();
    let checkpoint = (state.version() + 1).is_multiple_of(config.checkpoint_interval().get());
    // The version read, and whether the commit only adds files to a table it did not read
    // (an append to an append table: a merge into an empty table read it empty), as Spark
    // records them for other writers' conflict checks.
    let blind_append = blind_append && !actions.iter().any(|a| matches!(a, Action::Remove(_)));
    let commit = tags
        .properties_with([
            ("operationMetrics".to_owned(), metrics),
            ("readVersion".to_owned(), serde_json::json!(state.version())),
            ("isBlindAppend".to_owned(), serde_json::json!(blind_append)),
        ])
        .with_cleanup_expired_logs(Some(checkpoint && config.enable_expired_log_cleanup()));
    CommitBuilder::from(commit)
        .with_actions(actions)
        .build(Some(state), log_store, operation)
        .await
}

/// `batch` with the columns of `stored`, in its order, matched by name; a nullable stored
/// column the batch lacks is NULL. An error (the caller's general path then writes) when a
/// column is missing that cannot be, or a type differs.
fn in_stored_order(
    batch: &RecordBatch,
    stored: &arrow::datatypes::SchemaRef,
) -> Result<RecordBatch, DeltaTableError> {
    // A column the stored table lacks: the general path adds it (evolves the table).
    if let Some(extra) = batch
        .schema()
        .fields()
        .iter()
        .find(|field| stored.field_with_name(field.name()).is_err())
    {
        return Err(DeltaTableError::Generic(format!(
            "the stored table lacks the rows' column `{}`",
            extra.name()
        )));
    }
    let columns = stored
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            None if field.is_nullable() => Ok(arrow::array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            )),
            _ => Err(DeltaTableError::Generic(format!(
                "the rows' column `{}` is not the stored table's",
                field.name()
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(stored.clone(), columns)?)
}

/// Below this many rows a write is encoded by one writer: splitting it would buy little time
/// and leave small files.
const PARALLEL_MIN_ROWS: usize = 1 << 17;

/// Whether `plan` produces fewer than [`PARALLEL_MIN_ROWS`] rows: `rows` when the caller knows
/// them, else the plan's statistics. Estimates through a join do not count: they collapse to a
/// dimension's size, and a large fact would then be encoded by one writer.
fn is_small(
    plan: &Arc<dyn ExecutionPlan>,
    statistics: Option<&Statistics>,
    rows: Option<u64>,
) -> bool {
    if let Some(rows) = rows {
        return rows < PARALLEL_MIN_ROWS as u64;
    }
    let Some(statistics) = statistics else {
        return false;
    };
    match statistics.num_rows {
        Precision::Exact(rows) => rows < PARALLEL_MIN_ROWS,
        Precision::Inexact(rows) => rows < PARALLEL_MIN_ROWS && !has_join(plan.as_ref()),
        Precision::Absent => false,
    }
}

/// Whether `plan` joins anywhere.
fn has_join(plan: &dyn ExecutionPlan) -> bool {
    plan.name().contains("Join")
        || plan
            .children()
            .into_iter()
            .any(|child| has_join(child.as_ref()))
}

/// `plan`'s partitions each sorted by the table's `partition_columns` (none: `plan`), so that a
/// writer has one table partition open at a time: unsorted, it held a file open in every table
/// partition its rows reached (a full refresh of years of days: thousands of row groups and
/// upload buffers in memory, outside the memory pool). The sort spills within the pool; the
/// output's own order (`ordered`, before it was dealt out) is kept within each partition.
fn by_partition(
    plan: Arc<dyn ExecutionPlan>,
    partition_columns: &[String],
    ordered: Option<datafusion::physical_expr::LexOrdering>,
) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
    use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
    use datafusion::physical_plan::sorts::sort::SortExec;
    if partition_columns.is_empty() {
        return Ok(plan);
    }
    let schema = plan.schema();
    let mut keys = partition_columns
        .iter()
        .map(|column| {
            datafusion::physical_expr::expressions::col(column, &schema)
                .map(PhysicalSortExpr::new_default)
        })
        .collect::<Result<Vec<_>, _>>()?;
    keys.extend(ordered.into_iter().flatten());
    Ok(match LexOrdering::new(keys) {
        Some(ordering) => Arc::new(SortExec::new(ordering, plan).with_preserve_partitioning(true)),
        None => plan,
    })
}

/// The Parquet writer of one stream. For a partitioned table, whose stream [`by_partition`]
/// sorted, one table partition's files are open at a time: they are closed when the next
/// partition's rows begin.
struct StreamWriter {
    store: Arc<dyn ObjectStore>,
    config: WriterConfig,
    writer: DeltaWriter,
    /// The files closed so far.
    closed: Vec<Add>,
    /// The partition columns' positions in the stream's batches.
    partition_columns: Vec<usize>,
    /// The partition being written, as comparable bytes.
    current: Option<arrow::row::OwnedRow>,
    converter: Option<arrow::row::RowConverter>,
}

impl StreamWriter {
    fn new(
        store: Arc<dyn ObjectStore>,
        config: WriterConfig,
        partition_columns: Vec<usize>,
    ) -> StreamWriter {
        StreamWriter {
            writer: DeltaWriter::new(store.clone(), config.clone()),
            store,
            config,
            closed: Vec::new(),
            partition_columns,
            current: None,
            converter: None,
        }
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<(), DeltaTableError> {
        if self.partition_columns.is_empty() {
            return self.writer.write(batch).await;
        }
        let columns: Vec<arrow::array::ArrayRef> = self
            .partition_columns
            .iter()
            .map(|i| batch.column(*i).clone())
            .collect();
        let converter = match &mut self.converter {
            Some(converter) => converter,
            None => self.converter.insert(arrow::row::RowConverter::new(
                columns
                    .iter()
                    .map(|c| arrow::row::SortField::new(c.data_type().clone()))
                    .collect(),
            )?),
        };
        for range in arrow::compute::partition(&columns)?.ranges() {
            let first: Vec<arrow::array::ArrayRef> =
                columns.iter().map(|c| c.slice(range.start, 1)).collect();
            let key = converter.convert_columns(&first)?.row(0).owned();
            if self.current.as_ref().is_some_and(|current| *current != key) {
                // The partition before is complete (the stream is sorted): its files closed.
                let next = DeltaWriter::new(self.store.clone(), self.config.clone());
                let done = std::mem::replace(&mut self.writer, next);
                self.closed.extend(done.close().await?);
            }
            self.current = Some(key);
            self.writer
                .write(&batch.slice(range.start, range.len()))
                .await?;
        }
        Ok(())
    }

    /// Every file written, closed.
    async fn close(mut self) -> Result<Vec<Add>, DeltaTableError> {
        self.closed.extend(self.writer.close().await?);
        Ok(self.closed)
    }

    /// Aborts the open files (those closed stay unreferenced, as any file of a failed write).
    async fn abort(self) -> Result<(), DeltaTableError> {
        self.writer.abort().await
    }
}

/// Streams one partition into its own Parquet writer; returns its files and row count. Stops
/// with an error, its upload aborted, once `cancelled` is set.
async fn encode(
    mut stream: impl Stream<Item = Result<RecordBatch, DataFusionError>> + Unpin,
    schema: SchemaRef,
    mut writer: StreamWriter,
    mut cancelled: tokio::sync::watch::Receiver<bool>,
) -> Result<(Vec<Add>, u64), DeltaTableError> {
    let mut rows = 0;
    let result = async {
        let mut pending = Pending::default();
        loop {
            let next = tokio::select! {
                biased;
                // A closed channel (the write gone) stops the writer too.
                _ = cancelled.wait_for(|cancelled| *cancelled) => {
                    return Err(DeltaTableError::Generic(
                        "stopped: another writer of the write failed".to_owned(),
                    ));
                }
                next = stream.next() => next,
            };
            let Some(batch) = next else { break };
            let batch = batch?;
            // The stored schema (its NOT NULLs included), checked once per batch.
            let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())?;
            rows += batch.num_rows() as u64;
            if let Some(full) = pending.push(batch, &schema)? {
                writer.write(&full).await?;
            }
        }
        if let Some(rest) = pending.finish(&schema)? {
            writer.write(&rest).await?;
        }
        Ok::<(), DeltaTableError>(())
    }
    .await;
    match result {
        Ok(()) => Ok((writer.close().await?, rows)),
        Err(error) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(%abort, "could not abort an unfinished Parquet file");
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use deltalake::protocol::SaveMode;
    use serde::Serialize;

    use crate::prelude::*;
    use crate::store::commit::CommitTags;
    use crate::store::test_support::{temp_warehouse, write_rows};

    /// Events, appended.
    #[derive(Table, Serialize)]
    #[table(schema = "test", name = "events")]
    struct Event {
        id: i64,
    }

    /// Two columns of one type, whose order matters.
    #[derive(Table, Serialize)]
    #[table(schema = "test", name = "pairs")]
    struct Pair {
        first: Option<String>,
        second: Option<String>,
    }

    #[tokio::test]
    async fn an_open_table_takes_rows_whose_columns_are_in_another_order_by_name() {
        let (_dir, warehouse) = temp_warehouse();
        write_rows(
            &warehouse,
            Pair::DEF,
            &[Pair {
                first: Some("a".into()),
                second: None,
            }],
        )
        .await;
        let delta = warehouse
            .load(Pair::DEF)
            .await
            .expect("load")
            .expect("exists");
        let mut open = super::OpenTable::new(&delta).expect("open");
        // The same columns, the other way round (as a ledger evolved by another version
        // stores them): by position, each value would land in the other column.
        let swapped = arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("second", arrow::datatypes::DataType::Utf8, true),
            arrow::datatypes::Field::new("first", arrow::datatypes::DataType::Utf8, true),
        ]);
        let batch = arrow::array::RecordBatch::try_new(
            std::sync::Arc::new(swapped),
            vec![
                std::sync::Arc::new(arrow::array::StringArray::from(vec![Some("2nd")])),
                std::sync::Arc::new(arrow::array::StringArray::from(vec![Some("1st")])),
            ],
        )
        .expect("batch");
        open.append(&[batch], &CommitTags::transaction(None))
            .await
            .expect("appended");
        let rows = warehouse
            .sql(
                &[Pair::DEF],
                "SELECT first, second FROM test.pairs WHERE first = '1st'",
            )
            .await
            .expect("query")
            .collect()
            .await
            .expect("rows");
        let second = rows[0]
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .map(|column| column.value(0).to_owned());
        assert_eq!(second.as_deref(), Some("2nd"));
    }

    #[tokio::test]
    async fn a_write_replacing_files_a_compaction_rewrote_meanwhile_is_refused() {
        let (_dir, warehouse) = temp_warehouse();
        let session = warehouse.session();
        for id in [1, 2] {
            write_rows(&warehouse, Event::DEF, &[Event { id }]).await;
        }
        // This write read version 2 (two files); another process compacts them meanwhile.
        let stale = warehouse
            .load(Event::DEF)
            .await
            .expect("load")
            .expect("exists");
        let report = warehouse.compact(Event::DEF).await.expect("compaction");
        assert_eq!(report.files_removed, 2);
        let replacement = session
            .sql("SELECT CAST(3 AS BIGINT) AS id")
            .await
            .expect("row");
        let error = super::write(
            stale,
            replacement,
            SaveMode::Overwrite,
            CommitTags::transaction(None),
            super::Recorded::Write {
                blind_append: false,
            },
        )
        .await
        .expect_err("the compacted rows would stay beside the new ones");
        assert!(
            error
                .to_string()
                .contains("version 3, committed by another process while this write ran, rewrote or removed the file"),
            "{error}"
        );
        assert_eq!(
            warehouse.version(Event::DEF).await.expect("version"),
            Some(3)
        );
    }
}
