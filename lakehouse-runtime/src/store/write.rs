//! Writing a DataFrame into a table, in the table's mode, in one commit, idempotently.

use arrow::datatypes::SchemaRef;
use datafusion::common::Column;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{Expr, cast, lit};
use datafusion::scalar::ScalarValue;
use deltalake::DeltaTable;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::table::state::DeltaTableState;

use super::commit::{CommitTags, WRITE_ID_KEY, committed_version};
use super::merge::{dedupe, merge};
use super::{TableStats, Warehouse, session_state};
use crate::error::{Error, Result};
use crate::frame::conform_output;
use crate::table::{
    ColumnDef, LogicalType, OverwriteScope, SchemaEvolution, TableDef, Timestamp, WriteMode,
};

/// Which existing rows a write removes (merge tables) or closes (SCD2 tables).
#[derive(Default)]
pub enum Deletions {
    /// None.
    #[default]
    None,
    /// The rows whose key is in this DataFrame (its columns: the key columns; a key may
    /// repeat). A key also in the written rows is deleted (closed): the deletion wins. In a
    /// merge table with a `run_at` column, a row newer than the write's `run_at` is a later
    /// run's, and kept (a backfill's deletions do not undo it). The keys are held in memory.
    Keys(DataFrame),
    /// The rows whose key is absent from the written DataFrame, which is then a full snapshot.
    MissingFromSource,
}

/// How to write.
#[derive(Default)]
pub struct WriteOptions {
    /// The Delta application transaction `(app id, version)` the commit carries. A write whose
    /// app id already committed this version or a later one is skipped.
    pub transaction: Option<(String, i64)>,
    /// The run's logical time: SCD2 validity bounds, and, in a `full_snapshot` merge
    /// (`Deletions::MissingFromSource`) into a table with `run_at`, the time after which a stored
    /// row is newer than the snapshot and not deleted (without it, every missing key is).
    pub run_at: Option<Timestamp>,
    /// Rows to delete or close.
    pub deletions: Deletions,
    /// Application metadata recorded in the commit's `commitInfo`, committed atomically with the
    /// rows (the orchestrator records there the input versions a pipeline read; see
    /// [`Warehouse::transaction_metadata`]). Keys starting with `lakehouse.` are reserved.
    pub metadata: std::collections::BTreeMap<String, serde_json::Value>,
    /// Replace an append table's rows instead of adding to them, in the same one commit (a
    /// rebuild of a pipeline that reads its inputs whole again).
    pub replace: bool,
    /// For rows read incrementally (an input's new versions, new files): the last transaction
    /// version of `transaction`'s app id on the table when the reads began (0: none). A later
    /// one committed since, below this write's (another run of the same pipeline overlapping
    /// this one, which may have read the same rows), fails the write: run again, it reads on
    /// from that commit. `None`: not checked.
    pub read_after: Option<i64>,
    /// For a write replacing the rows of the table it read them from (an overwrite, or
    /// `replace`, of a query over the table itself): the version they were read at. A commit
    /// since, the declaration's own included (new columns), fails the write with
    /// [`Error::CommitConflict`], nothing written (its files would be replaced, their rows
    /// never read); read again and retry. (An append landing while the write encodes is not
    /// among the files it replaces: its rows stay.) `None`: not checked.
    pub replaces_version: Option<u64>,
    /// For an SCD2 table: a later time its history is known to reach than its rows say (the
    /// orchestrator gives its pipeline's latest success, which found the rows as they were and,
    /// changing nothing, wrote no version). A write at an earlier `run_at` is refused, as one
    /// before its rows' history is. `None`: the rows alone tell.
    pub history_reaches: Option<Timestamp>,
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// `schema.table`.
    pub table: String,
    /// The table version after the write.
    pub version: Option<u64>,
    /// False when the write was skipped because its transaction was already committed; true
    /// when it succeeded, including a merge that had nothing to change (and made no commit).
    pub committed: bool,
    /// Rows inserted.
    pub rows_inserted: u64,
    /// Rows updated (merge) or closed (SCD2).
    pub rows_updated: u64,
    /// Rows deleted.
    pub rows_deleted: u64,
    /// The table's figures after the commit, when the write path had its new snapshot at hand
    /// (`None` when nothing was committed); [`Warehouse::stats`] reads them otherwise.
    pub stats: Option<TableStats>,
}

impl WriteOutcome {
    /// Nothing written to `table`, which is at `version`.
    pub(crate) fn skipped(table: &TableDef, version: Option<u64>) -> WriteOutcome {
        WriteOutcome {
            table: table.qualified_name(),
            version,
            committed: false,
            rows_inserted: 0,
            rows_updated: 0,
            rows_deleted: 0,
            stats: None,
        }
    }

    /// This outcome with the table's figures taken from `snapshot`, the state its commit made
    /// (left unknown if they cannot be read from it).
    pub(crate) fn measured(mut self, snapshot: &DeltaTableState, table: &TableDef) -> WriteOutcome {
        self.stats = super::read::stats_of(snapshot, table).ok();
        self
    }
}

/// What a successful write brings to the declaration afterwards ([`Warehouse::after_write`]).
struct AfterWrite {
    /// The stored descriptions, which differ from the declaration's.
    descriptions: bool,
    /// The declared CHECK constraints, which waited for the stored rows to be replaced.
    checks: bool,
}

impl Warehouse {
    /// Writes `df` (the table's data columns) into `table` in its declared mode, in one commit:
    /// append, overwrite, merge (upsert on the key; duplicate keys in `df` keep the row with the
    /// newest `run_at`, then the one that sorts last) or SCD2. The plan is streamed, never
    /// collected, except a merge's or an SCD2 write's source, which is held in memory. A merge or SCD2 row whose
    /// change columns equal the stored row's is left as it is, and a write that changes nothing
    /// makes no commit (the outcome is then `committed` at the table's version). An upsert into
    /// an unpartitioned table without CHECK constraints or change data feed rewrites only the
    /// files holding a changed row; other merges are delta-rs's MERGE. On any error the table's
    /// rows stay as they were; changes of the declaration (new columns, a dropped NOT NULL,
    /// CHECK constraints, properties) are committed on their own before the data, and stay.
    ///
    /// The table's expectations and quality checks are not applied here: the orchestrator
    /// applies them to a pipeline's output before this write (see
    /// [`crate::quality::apply_expectations`] and [`crate::quality::check_output`] to apply them
    /// to a frame of one's own); CHECK constraints and NOT NULL columns are enforced.
    pub async fn write(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
        df: DataFrame,
        options: WriteOptions,
    ) -> Result<WriteOutcome> {
        let qualified = table.qualified_name();
        // A full snapshot is every row: its output replaces the whole table, partitions it has
        // no row in too (a renamed region's would stay for good).
        let by_partition = table.overwrite == OverwriteScope::Partitions
            && !matches!(options.deletions, Deletions::MissingFromSource);
        // (An overwrite replaces every row: a full snapshot's missing keys go with them.)
        let deletes = match options.deletions {
            Deletions::None => false,
            Deletions::Keys(_) => true,
            Deletions::MissingFromSource => table.mode == WriteMode::Append,
        };
        if deletes && !matches!(table.mode, WriteMode::Merge | WriteMode::Scd2) {
            // An append or overwrite would write its rows and delete nothing, as if it had.
            return Err(Error::Refused(format!(
                "{qualified} is an `{}` table: a write deletes keys only from `merge` and \
                 `scd2` tables; delete its rows with `Warehouse::delete_keys`",
                table.mode.as_str()
            )));
        }
        if let Deletions::Keys(keys) = &options.deletions {
            super::delete::refuse_other_key_types(table, keys.schema())?;
        }
        let mut delta = self.ensure(table).await?;
        if let Some(skipped) = already_committed(&delta, table, &options).await? {
            return Ok(skipped);
        }
        let df = without_empty_partition_values(conform_output(df, table)?, table)?;
        let replace_schema =
            table.mode == WriteMode::Overwrite && table.evolution == SchemaEvolution::Overwrite;
        if replace_schema && super::column_mapped(&delta) {
            return Err(Error::schema(
                &qualified,
                "the table is column-mapped (`delta.columnMapping.mode`), and delta-rs 1.1 \
                 replaces the schema of no such table (`evolution = overwrite`): declare \
                 `evolution = merge`, or write it to a new table",
            ));
        }
        let checked_at = delta.version();
        // A write replacing every row (a whole-table overwrite, a full snapshot into partitions
        // replaced, a rebuild of an append table) needs no value of a new column for old rows.
        // (As `check` tells it, the rebuild aside.)
        let full_snapshot = matches!(options.deletions, Deletions::MissingFromSource);
        let replaces_every_row = super::drift::writes_replace_every_row(table, full_snapshot)
            || (table.mode == WriteMode::Append && options.replace);
        if !replace_schema {
            delta = self.evolve(table, delta, replaces_every_row).await?;
        }
        // After the new columns: a constraint may name one. A write replacing the schema
        // declares none, and drops the stored ones: delta-rs keeps them through the new schema
        // and checks every row against them (a renamed column failed every write).
        // A write replacing every row is not held back by a constraint only the rows it
        // replaces fail: added after it, its own rows counted against it first.
        let checks_after = if replaces_every_row && !replace_schema {
            let (checked, after) = self
                .declared_checks_before_replacing(table, delta, &df)
                .await?;
            delta = checked;
            after
        } else {
            delta = self.add_declared_checks(table, delta).await?;
            false
        };
        // Settling a schema or constraint change may have loaded later commits than the check
        // saw: delta-rs refuses a second commit of one transaction only among the commits after
        // the version the write reads, so the check is made again on that version.
        if delta.version() != checked_at
            && let Some(skipped) = already_committed(&delta, table, &options).await?
        {
            return Ok(skipped);
        }
        // Checked on the version the rows are replaced at, after the declaration's own commits
        // (which load what others committed meanwhile): the first write of a table evolved
        // since the read always fails here, and its read again sees the evolved table.
        if let Some(read) = options.replaces_version
            && delta.version() != Some(read)
        {
            let now = delta.version().map_or("none".to_owned(), |v| v.to_string());
            return Err(Error::CommitConflict {
                table: qualified,
                source: Box::new(deltalake::DeltaTableError::Generic(format!(
                    "its rows were read at version {read} to replace them, and it is at version \
                     {now} now"
                ))),
            });
        }
        // From here on, a commit replacing a file that another process compacted since this
        // version fails (delta-rs's conflict check lets it through).
        let delta = super::guard::guard(delta);
        let stored = stored_schema(&delta, &qualified)?;
        let source = if replace_schema {
            with_declared_metadata(df, table)?
        } else {
            project_to(df, &stored, table)?
        };
        let commit = CommitTags::of(&options);
        let state = session_state(session);
        let save_mode = if table.mode == WriteMode::Overwrite
            || (table.mode == WriteMode::Append && options.replace)
        {
            SaveMode::Overwrite
        } else {
            SaveMode::Append
        };
        if options.replace
            && table.mode == WriteMode::Append
            && delta
                .snapshot()
                .is_ok_and(|s| s.snapshot().table_properties().append_only == Some(true))
        {
            return Err(Error::Refused(format!(
                "{qualified} is append-only (`delta.appendOnly`): a rebuild cannot replace its \
                 rows; run without `--rebuild`"
            )));
        }
        let before = delta.version();
        // Edited doc comments reach the table once the write succeeded.
        let stale_descriptions = super::create::descriptions_differ(table, &delta)?;
        let result = match table.mode {
            WriteMode::Append | WriteMode::Overwrite
                if !(replace_schema || table.mode == WriteMode::Overwrite && by_partition)
                    && super::sink::applies_to(table, &delta) =>
            {
                let blind_append = table.mode == WriteMode::Append && save_mode == SaveMode::Append;
                let recorded = super::sink::Recorded::Write { blind_append };
                super::sink::write(delta, source, save_mode, commit.clone(), recorded)
                    .await
                    .map(|(snapshot, rows)| appended(table, &snapshot, rows))
            }
            WriteMode::Overwrite
                if by_partition && super::sink::applies_to_partitions(table, &delta) =>
            {
                super::partitions::overwrite_partitions(delta, source, commit.clone())
                    .await
                    .map(|(snapshot, rows)| appended(table, &snapshot, rows))
            }
            WriteMode::Append | WriteMode::Overwrite => {
                // Dynamic partition overwrite of a table the single pass cannot write (CHECK
                // constraints, column mapping): delta-rs's, with the partitions found first.
                let replaced = if save_mode == SaveMode::Overwrite && by_partition {
                    let columns = stored_partition_columns(&delta, table)?;
                    let found = super::partitions::written_partitions(&source, &columns).await;
                    Some(found.map_err(|error| {
                        Error::msg(format!(
                            "{qualified}: finding the partitions the output has rows in: {error}"
                        ))
                    })?)
                } else {
                    None
                };
                let (_, plan) = source.into_parts();
                let properties =
                    super::parquet_props::for_writes_into(&delta, Some(plan.schema().as_arrow()));
                let mut builder = delta
                    .write(Vec::new())
                    .with_input_plan(plan)
                    .with_writer_properties(properties)
                    .with_session_state(state)
                    .with_commit_properties(commit.properties());
                builder = match replaced {
                    Some(Some(partitions)) => builder
                        .with_save_mode(SaveMode::Overwrite)
                        .with_replace_where(partitions),
                    // No rows: no partition is replaced.
                    Some(None) => builder.with_save_mode(SaveMode::Append),
                    None => builder.with_save_mode(save_mode),
                };
                if replace_schema {
                    // The declared layout too: a replaced table is laid out anew (delta-rs kept
                    // the stored partitioning, so a table could not be partitioned this way).
                    builder = builder
                        .with_schema_mode(SchemaMode::Overwrite)
                        .with_partition_columns(table.partition_by.iter().copied());
                }
                match builder.await {
                    Ok(written) => {
                        let rows = last_commit_metric(&written, table, "num_added_rows").await;
                        Ok(outcome(table, &written, rows, 0, 0))
                    }
                    Err(e) => Err(e),
                }
            }
            WriteMode::Merge => {
                merge(
                    session,
                    delta,
                    source,
                    table,
                    (options.deletions, options.run_at),
                    state,
                    commit.clone(),
                )
                .await
            }
            WriteMode::Scd2 => {
                let run_at = options.run_at.ok_or_else(|| {
                    Error::msg(format!(
                        "writing SCD2 table {qualified} needs the run's `run_at`"
                    ))
                })?;
                let source = dedupe(source, table)?;
                let write = super::scd2::Scd2Write {
                    run_at,
                    history_reaches: options.history_reaches,
                    deletions: options.deletions,
                    commit,
                };
                let outcome =
                    super::scd2::merge(self, session, delta, source, table, write).await?;
                let catch_up = AfterWrite {
                    descriptions: stale_descriptions,
                    checks: false,
                };
                return self.after_write(table, outcome, catch_up).await;
            }
        };
        let catch_up = AfterWrite {
            descriptions: stale_descriptions,
            checks: checks_after,
        };
        match result {
            Ok(outcome) => self.after_write(table, outcome, catch_up).await,
            Err(error) => {
                self.recheck_after_error(table, &commit, before, error)
                    .await
            }
        }
    }

    /// What follows a successful write, from one load of the table (a failure there is
    /// logged, the next write doing it: the rows are committed): the declared CHECK constraints
    /// added when they waited for the rows to be replaced, and the stored descriptions brought
    /// to the declaration's when they were stale.
    async fn after_write(
        &self,
        table: &'static TableDef,
        outcome: WriteOutcome,
        catch_up: AfterWrite,
    ) -> Result<WriteOutcome> {
        if !catch_up.descriptions && !catch_up.checks {
            return Ok(outcome);
        }
        let qualified = table.qualified_name();
        let mut delta = match self.load(table).await {
            Ok(Some(delta)) => delta,
            Ok(None) => return Ok(outcome),
            Err(error) => {
                tracing::warn!(table = %qualified, %error, "could not load the table after its write to bring its constraints or descriptions to the declaration's");
                return Ok(outcome);
            }
        };
        if catch_up.checks {
            match self.add_declared_checks(table, delta.clone()).await {
                Ok(added) => delta = added,
                Err(error) => {
                    tracing::warn!(table = %qualified, %error, "could not add the declared CHECK constraints after replacing the rows; the next write adds them");
                }
            }
        }
        if catch_up.descriptions
            && let Err(error) = self.set_declared_descriptions(table, delta).await
        {
            tracing::warn!(table = %qualified, %error, "could not update the stored descriptions");
        }
        Ok(outcome)
    }

    /// An error may come after the commit (snapshot update, checkpoint, log cleanup): if the
    /// write's commit (by its id, among the commits after `before`, the version the write
    /// started from) is in the log, the write happened.
    pub(crate) async fn recheck_after_error(
        &self,
        table: &'static TableDef,
        tags: &CommitTags,
        before: Option<u64>,
        error: deltalake::DeltaTableError,
    ) -> Result<WriteOutcome> {
        let qualified = table.qualified_name();
        if let Ok(Some((version, metadata))) = self
            .commit_tagged(table, WRITE_ID_KEY, tags.write_id(), before)
            .await
        {
            tracing::warn!(table = %qualified, %error, version, "the write committed, then failed afterwards");
            let mut outcome = WriteOutcome::skipped(table, Some(version));
            outcome.committed = true;
            // The figures the commit recorded.
            (outcome.rows_inserted, outcome.rows_updated) = super::rows_written(&metadata);
            outcome.rows_deleted = super::commit::rows_deleted(&metadata);
            return Ok(outcome);
        }
        if error.to_string().contains(INVALID_DATA) {
            // Constraints another tool added fail rows too: named with the declared ones.
            let foreign = match self.load(table).await {
                Ok(Some(delta)) => {
                    super::constraints::foreign_checks(table, &delta).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            if let Some(refused) = constraint_violation(table, &error, &foreign) {
                return Err(refused);
            }
        }
        Err(Error::delta(qualified, error))
    }
}

/// The outcome of a write whose transaction (`options.transaction`) `delta` already holds
/// (`None`: it does not); an error when another run of its pipeline committed after this
/// write's incremental reads began (`options.read_after`).
async fn already_committed(
    delta: &DeltaTable,
    table: &TableDef,
    options: &WriteOptions,
) -> Result<Option<WriteOutcome>> {
    let qualified = table.qualified_name();
    if let Some((app_id, version)) = &options.transaction
        && let Some(done) = committed_version(delta, table, app_id).await?
    {
        if done >= *version {
            tracing::info!(table = %qualified, app_id, version, "already committed; skipping the write");
            return Ok(Some(WriteOutcome::skipped(table, delta.version())));
        }
        // (A commit between this check and this write's own is delta-rs's to refuse: two
        // commits carrying one app id's transaction conflict.)
        if let Some(after) = options.read_after
            && done > after
        {
            return Err(Error::msg(format!(
                "{qualified}: `{app_id}` committed its transaction {done} (another run of \
                 it, overlapping this one) after this write's incremental reads began from \
                 its transaction {after}: both may hold the same new rows; nothing was \
                 written: run it again (a pipeline's `retries` do), and it reads on from \
                 that commit"
            )));
        }
    }
    Ok(None)
}

pub(crate) fn stored_schema(delta: &DeltaTable, qualified: &str) -> Result<SchemaRef> {
    Ok(delta
        .snapshot()
        .map_err(|e| Error::delta(qualified, e))?
        .snapshot()
        .arrow_schema())
}

/// What the latest commit of `delta` did.
pub(crate) fn outcome(
    table: &TableDef,
    delta: &DeltaTable,
    inserted: u64,
    updated: u64,
    deleted: u64,
) -> WriteOutcome {
    let outcome = WriteOutcome {
        version: delta.version(),
        ..outcome_at(table, 0, inserted, updated, deleted)
    };
    match delta.snapshot() {
        Ok(snapshot) => outcome.measured(snapshot, table),
        Err(_) => outcome,
    }
}

/// `rows` inserted by the commit that made `snapshot`.
pub(super) fn appended(table: &TableDef, snapshot: &DeltaTableState, rows: u64) -> WriteOutcome {
    outcome_at(table, snapshot.version(), rows, 0, 0).measured(snapshot, table)
}

/// What the commit of `version` did.
pub(crate) fn outcome_at(
    table: &TableDef,
    version: u64,
    inserted: u64,
    updated: u64,
    deleted: u64,
) -> WriteOutcome {
    WriteOutcome {
        table: table.qualified_name(),
        version: Some(version),
        committed: true,
        rows_inserted: inserted,
        rows_updated: updated,
        rows_deleted: deleted,
        stats: None,
    }
}

/// A numeric `operationMetrics` entry of `delta`'s commit (its loaded version's, not a later
/// one another process made since).
async fn last_commit_metric(delta: &DeltaTable, table: &TableDef, name: &str) -> u64 {
    let Some(version) = delta.version() else {
        return 0;
    };
    let Ok(Some(commit)) = super::history::commit_info(delta, table, version).await else {
        return 0;
    };
    commit
        .info
        .get("operationMetrics")
        .and_then(|m| m.get(name))
        .and_then(|value| {
            value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(0)
}

/// The column metadata holding a generated column's expression.
pub(crate) const GENERATION_EXPRESSION: &str = "delta.generationExpression";

/// The generated columns another engine declared on `delta` and `table` does not, each with a
/// NULL of its type: set in a row a MERGE updates, so that delta-rs computes them anew (it
/// keeps a value the update leaves, which then fails their check).
pub(crate) fn regenerated_columns(
    delta: &DeltaTable,
    table: &TableDef,
) -> Result<Vec<(String, ScalarValue)>, datafusion::error::DataFusionError> {
    let Ok(state) = delta.snapshot() else {
        return Ok(Vec::new());
    };
    state
        .snapshot()
        .arrow_schema()
        .fields()
        .iter()
        .filter(|f| {
            f.metadata().contains_key(GENERATION_EXPRESSION) && table.column(f.name()).is_none()
        })
        .map(|f| Ok((f.name().clone(), ScalarValue::try_from(f.data_type())?)))
        .collect()
}

/// `df` projected onto the stored schema: declared columns as they are, stored columns the
/// declaration dropped as NULL (an error if they are NOT NULL; a generated one is left for
/// delta-rs to compute), in the stored order.
pub(crate) fn project_to(
    df: DataFrame,
    stored: &SchemaRef,
    table: &'static TableDef,
) -> Result<DataFrame> {
    let qualified = table.qualified_name();
    let data: Vec<&str> = table.data_columns().map(|c| c.name).collect();
    let has_system = table.columns.len() != data.len();
    let mut exprs = Vec::with_capacity(stored.fields().len());
    for field in stored.fields() {
        let name = field.name().as_str();
        if data.contains(&name) {
            let mut expr = Expr::Column(Column::new_unqualified(name));
            if let Some(declared) = table.column(name)
                && declared.data_type.arrow_type() != *field.data_type()
            {
                expr = cast(expr, field.data_type().clone());
            }
            exprs.push(expr.alias(name));
        } else if has_system && table.column(name).is_some() {
            // SCD2 system columns are set by the merge.
            continue;
        } else if field.metadata().contains_key(GENERATION_EXPRESSION) {
            // A generated column another engine declared: left out, delta-rs computes it from
            // the row (a NULL given for it would fail its check, `value = expression`).
            continue;
        } else if field.is_nullable() {
            let null = ScalarValue::try_from(field.data_type())?;
            exprs.push(lit(null).alias(name));
        } else {
            return Err(Error::schema(
                qualified,
                format!(
                    "the Delta table has a NOT NULL column `{name}` that the declaration no longer has; \
                     declare it again, or rewrite the table"
                ),
            ));
        }
    }
    Ok(df.select(exprs)?)
}

/// `df` (conformed to `table`) with each column's declared metadata, its description as
/// `comment`: delta-rs takes a replaced schema from the plan, which would drop them.
fn with_declared_metadata(df: DataFrame, table: &'static TableDef) -> Result<DataFrame> {
    let columns: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let declared = table.column(field.name());
            let metadata = declared
                .map(|c| c.arrow_field().metadata().clone())
                .filter(|m| !m.is_empty())
                .map(datafusion::common::metadata::FieldMetadata::from);
            let column = Expr::Column(Column::from((qualifier, field.as_ref())));
            // The table takes the declared nullability, not the plan's.
            let column = if declared.is_some_and(|c| c.nullable) && !field.is_nullable() {
                crate::frame::as_nullable(column)
            } else {
                column
            };
            column.alias_with_metadata(field.name(), metadata)
        })
        .collect();
    Ok(df.select(columns)?)
}

/// `df` (conformed to `table`) with an empty string in a text partition column as NULL: Delta
/// keeps no empty partition value (its readers take `region=` for NULL), so the row would read
/// back as NULL, and a partition overwrite matching `''` never replaced it. In a NOT NULL
/// column it is an error naming the column.
fn without_empty_partition_values(df: DataFrame, table: &'static TableDef) -> Result<DataFrame> {
    let texts: Vec<&ColumnDef> = table
        .partition_by
        .iter()
        .filter_map(|name| table.column(name))
        .filter(|column| column.data_type == LogicalType::Utf8)
        .collect();
    if texts.is_empty() {
        return Ok(df);
    }
    let qualified = table.qualified_name();
    let columns: Vec<Expr> = table
        .data_columns()
        .map(|column| {
            let read = Expr::Column(Column::new_unqualified(column.name));
            if !texts.iter().any(|t| t.name == column.name) {
                return read;
            }
            let value = datafusion::functions::expr_fn::nullif(read, lit(""));
            let value = if column.nullable {
                value
            } else {
                crate::frame::assert_partition_value(value, &format!("{qualified}.{}", column.name))
            };
            value.alias(column.name)
        })
        .collect();
    Ok(df
        .select(columns)?
        .alias(&crate::backend::qualifier(table).to_string())?)
}

/// The partition columns of `delta`, the stored table of `table` (declared
/// `overwrite = partitions`): an error if it has none, since replacing its partitions would
/// replace every row.
fn stored_partition_columns(delta: &DeltaTable, table: &TableDef) -> Result<Vec<String>> {
    let columns = delta
        .snapshot()
        .map_err(|error| Error::delta(table.qualified_name(), error))?
        .metadata()
        .partition_columns()
        .to_vec();
    if columns.is_empty() {
        return Err(Error::schema(
            table.qualified_name(),
            format!(
                "declared `overwrite = partitions` by ({}), but the stored table is not \
                 partitioned (it was created before `partition_by(..)` was declared): recreate \
                 it partitioned with one write declared `evolution = overwrite`, without \
                 `overwrite = partitions`",
                table.partition_by.join(", ")
            ),
        ));
    }
    Ok(columns)
}

/// How delta-rs's error for rows failing a constraint starts.
const INVALID_DATA: &str = "Invalid data found:";

/// A write delta-rs refused for rows failing the table's CHECK constraints (or NOT NULL
/// columns), as a quality failure naming them: not retried (the same rows fail again), and
/// without delta-rs's preview of the rows, which goes to the log only (the error reaches
/// `lakehouse.runs` and the webhook; rows may hold personal data).
/// `foreign`: the table's constraints another tool added, `(name, expression)`.
fn constraint_violation(
    table: &TableDef,
    error: &deltalake::DeltaTableError,
    foreign: &[(String, String)],
) -> Option<Error> {
    let text = error.to_string();
    let found = &text[text.find(INVALID_DATA)?..];
    // delta-rs stops at the first batch with a failing row, and counts that batch's.
    let rows = found
        .trim_start_matches(INVALID_DATA)
        .split_whitespace()
        .next()
        .filter(|count| count.chars().all(|c| c.is_ascii_digit()))
        .map_or_else(|| "some".to_owned(), |count| format!("at least {count}"));
    let qualified = table.qualified_name();
    tracing::error!(table = %qualified, "{found}");
    let checks: Vec<String> =
        table
            .checks
            .iter()
            .map(|check| format!("`{}` ({})", check.name, check.expr))
            .chain(foreign.iter().map(|(name, expr)| {
                format!("`{name}` ({expr}, added by another tool: not declared)")
            }))
            .collect();
    let failed = if checks.is_empty() {
        "a NOT NULL column of the stored table (one declared `Option` but stored NOT NULL, \
         under `evolution = keep`? `orchestrate check` lists such drift)"
            .to_owned()
    } else {
        format!(
            "its CHECK constraints {} or a NOT NULL column (a NULL fails a CHECK, as Delta \
             evaluates it)",
            checks.join(", ")
        )
    };
    Some(Error::Quality(format!(
        "{qualified}: {rows} row(s) of the write fail {failed}; nothing was committed, and the \
         failing rows are in the log"
    )))
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::{CommitTags, Deletions};
    use crate::prelude::*;
    use crate::store::test_support::{temp_warehouse, write_rows};

    /// Merged on `id`.
    #[derive(Table, Serialize)]
    #[table(schema = "test", name = "accounts", key(id), mode = merge)]
    struct Account {
        id: i64,
        balance: i64,
    }

    #[tokio::test]
    async fn two_first_writes_into_an_empty_merge_table_conflict_instead_of_repeating_keys() {
        let (_dir, warehouse) = temp_warehouse();
        let session = warehouse.session();
        // This write loaded the table empty; another writer's first merge commits meanwhile.
        let stale = warehouse.ensure(Account::DEF).await.expect("created");
        write_rows(&warehouse, Account::DEF, &[Account { id: 1, balance: 10 }]).await;
        let source = session
            .sql("SELECT CAST(1 AS BIGINT) AS id, CAST(20 AS BIGINT) AS balance")
            .await
            .expect("row");
        let error = super::merge(
            &session,
            stale,
            source,
            Account::DEF,
            (Deletions::None, None),
            super::session_state(&session),
            CommitTags::transaction(None),
        )
        .await
        .expect_err("both would insert key 1");
        assert!(
            error.to_string().contains("concurrent transaction"),
            "{error}"
        );
        let count = warehouse
            .read(&session, Account::DEF)
            .await
            .expect("readable")
            .count()
            .await
            .expect("counted");
        assert_eq!(count, 1, "key 1 once");
    }
}
