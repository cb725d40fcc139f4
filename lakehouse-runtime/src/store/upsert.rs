//! Upserts that rewrite only the files holding a changed row, encoded in parallel and committed
//! once as a Delta `MERGE`.
//!
//! delta-rs's MERGE plans a full outer join of source and target and writes its output through a
//! single Parquet writer. An upsert that replaces whole rows (`UPDATE SET *`, `INSERT *`) needs
//! less, in two passes:
//! 1. the target's key columns, with the file each row comes from, are semi-joined with the
//!    source's keys: the files holding a matched key. Only those files' change columns are then
//!    compared with the source's (unless the statistics show every match changes): the files
//!    holding a changed row are the ones to rewrite, and source rows that change nothing are
//!    dropped. An upsert of what the table holds commits nothing;
//! 2. those files are read, anti-joined with the source's keys (dropping the rows the source
//!    replaces), unioned with the source, and written by one Parquet writer per partition
//!    ([`super::sink`]). One commit removes the rewritten files and adds the new ones.
//!
//! Untouched files stay as they are. The source is held in memory, as the build side of
//! delta-rs's hash join holds it, counted in the warehouse's memory pool (beyond its limit the
//! upsert fails with an error naming the table). The table's key should be unique in the target (the framework
//! keeps it so): MERGE would update each of two target rows sharing a key, this keeps one (a
//! key changes when its source row differs from any of them; every file holding it is then
//! rewritten).

use std::collections::HashMap;
use std::sync::Arc;

use super::commit::CommitTags;
use arrow::array::{Array, AsArray as _, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, UInt16Type};
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::{bool_and, bool_or};
use datafusion::logical_expr::{Expr, cast};
use datafusion::prelude::col;
use deltalake::kernel::Action;
use deltalake::protocol::{DeltaOperation, MergePredicate};
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableError};
use futures::StreamExt as _;
use percent_encoding::percent_decode_str;
use url::Url;

use super::merge::{key_match, qualified};
use super::write::{WriteOutcome, outcome_at};
use crate::table::TableDef;

/// The column the target scan adds: the file a row comes from.
const FILE_COLUMN: &str = "__lakehouse_file";
/// Whether the source changes a matched row.
const CHANGED_COLUMN: &str = "__lakehouse_changed";
/// The column of a matched pair telling whether the source row is not older than the stored.
const NOT_OLDER_COLUMN: &str = "__lakehouse_not_older";

/// Whether an upsert of `table` into `delta` may take this path: the parallel sink's conditions
/// (unpartitioned, no CHECK constraints), no change data feed, whose `_change_data` files only
/// delta-rs's MERGE writes, and no stored column the declaration dropped (this path rewrites
/// whole rows; the MERGE keeps such a column's values in the rows it updates).
pub(crate) fn applies_to(table: &TableDef, delta: &DeltaTable) -> bool {
    // Unpartitioned: it rewrites files without partition values.
    table.partition_by.is_empty()
        && super::sink::applies_to(table, delta)
        && delta.snapshot().is_ok_and(|state| {
            !state
                .snapshot()
                .table_properties()
                .enable_change_data_feed()
                && state
                    .schema()
                    .fields()
                    .all(|field| table.column(field.name()).is_some())
        })
}

/// Upserts `source` (unique keys, in the stored schema; read once) into `delta` on `table`'s
/// key, in one commit. On any error nothing is committed and the table stays at its version.
pub(crate) async fn upsert(
    session: &SessionContext,
    delta: DeltaTable,
    source: DataFrame,
    table: &'static TableDef,
    commit: CommitTags,
) -> Result<WriteOutcome, DeltaTableError> {
    let state = delta.snapshot()?.clone();
    let schema = source.schema().inner().clone();
    let mut held = Held::new(
        session,
        table,
        "upsert",
        "write fewer rows per run (read the inputs incrementally with `Changes<T>`), or raise \
         the limit",
    );
    let (batches, source_bytes) = held.collect(source, "source (the rows written)").await?;
    let mut source_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let keys: Vec<Expr> = table.key.iter().map(|k| qualified("s", k)).collect();
    let stored: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let compared = super::change::compared_columns(table, &stored);
    let sequence = super::change::sequence_column(table, &stored);
    // When the statistics show every match changes, and is newer, the matched rows are not
    // compared.
    let all_change = every_match_changes(&state, &batches, &compared)
        && sequence.is_none_or(|column| every_match_is_newer(&state, &batches, column));
    let mut source = Arc::new(MemTable::try_new(schema.clone(), vec![batches])?);

    // Pass 1: the files holding a matched key, from the target's keys and file names alone.
    let target = delta
        .table_provider()
        .with_session(super::session_state(session))
        .with_file_column(FILE_COLUMN)
        .await?;
    let mut target_keys: Vec<Expr> = table.key.iter().map(|k| col(*k)).collect();
    target_keys.push(col(FILE_COLUMN));
    let candidates = read(session, &source)?
        .select(keys.clone())?
        .join_on(
            session
                .read_table(target)?
                .select(target_keys)?
                .alias("t")?,
            JoinType::RightSemi,
            [key_match(table)],
        )?
        .aggregate(vec![qualified("t", FILE_COLUMN)], vec![count_all()])?
        .collect()
        .await?;
    let mut matched = matched_files(&candidates)?;
    // Whether the matched rows change, unless the statistics already show they all do.
    if !matched.is_empty() && !all_change {
        let (changed, unchanged, per_key_bytes) = compare_matched(
            session,
            &delta,
            table,
            &source,
            &matched,
            (&compared, sequence),
            &mut held,
        )
        .await?;
        matched = changed;
        if let Some(unchanged) = unchanged {
            // The source rows of unchanged keys are in the table already: drop them.
            let kept = read(session, &source)?
                .join_on(unchanged, JoinType::LeftAnti, on_keys(table, "s"))?
                .select(
                    stored
                        .iter()
                        .map(|c| qualified("s", c).alias(*c))
                        .collect::<Vec<Expr>>(),
                )?;
            let kept_schema = kept.schema().inner().clone();
            let (kept, _) = held.collect(kept, "changed source rows").await?;
            source_rows = kept.iter().map(RecordBatch::num_rows).sum();
            source = Arc::new(MemTable::try_new(kept_schema, vec![kept])?);
            // The whole source is replaced by its changed rows.
            held.release(source_bytes);
        }
        held.release(per_key_bytes);
    }
    let updated: u64 = matched.values().map(|(_, rows)| rows).sum();
    if source_rows == 0 {
        tracing::debug!(table = %table.qualified_name(), "the upsert changes no row; nothing to commit");
        return Ok(outcome_at(table, state.version(), 0, 0, 0).measured(&state, table));
    }
    let read_source = || read(session, &source);

    // Pass 2: the matched files without their matched rows, then the whole source.
    let root = delta.log_store().root_url().clone();
    let mut removes = Vec::with_capacity(matched.len());
    let mut counted_rows: Option<usize> = Some(0);
    for file in state.log_data() {
        if matched.contains_key(&decoded_file_key(&root, &file.path())) {
            counted_rows = counted_rows
                .zip(file.num_records())
                .map(|(a, b)| a.saturating_add(b));
            removes.push(Action::Remove(file.remove_action(true)));
        }
    }
    if removes.len() != matched.len() {
        return Err(DeltaTableError::Generic(format!(
            "merging into {}: {} matched files, {} of them in the table's log at version {}",
            table.qualified_name(),
            matched.len(),
            removes.len(),
            state.version()
        )));
    }
    let source_df = read_source()?.select(columns(&delta, "s")?)?;
    let output = if matched.is_empty() {
        source_df
    } else {
        let kept = delta
            .table_provider()
            .with_session(super::session_state(session))
            .with_file_paths(matched.values().map(|(id, _)| id.clone()))
            .await?;
        read_source()?
            .select(keys)?
            .join_on(
                session.read_table(kept)?.alias("t")?,
                JoinType::RightAnti,
                [key_match(table)],
            )?
            .select(columns(&delta, "t")?)?
            .union(source_df)?
    };
    // The rows written, when the log has every rewritten file's row count.
    let expected =
        counted_rows.map(|scanned| (scanned as u64).saturating_sub(updated) + source_rows as u64);
    let (adds, written) =
        super::sink::encode_plan(&state, &delta, output, expected, Vec::new()).await?;
    let inserted = (source_rows as u64).saturating_sub(updated);
    let metrics = serde_json::json!({
        "num_source_rows": source_rows,
        "num_target_rows_inserted": inserted,
        "num_target_rows_updated": updated,
        "num_target_rows_deleted": 0,
        "num_target_rows_copied": written.saturating_sub(source_rows as u64),
        "num_output_rows": written,
        "num_target_files_scanned": removes.len(),
        "num_target_files_skipped_during_scan": state.log_data().num_files() - removes.len(),
        "num_target_files_added": adds.len(),
        "num_target_files_removed": removes.len(),
    });
    tracing::debug!(
        table = %table.qualified_name(),
        files_rewritten = removes.len(),
        rows_scanned = ?counted_rows,
        inserted,
        updated,
        "upserted by rewriting the matched files"
    );
    let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    actions.extend(removes);
    let finalized = super::sink::commit_actions(
        &state,
        delta.log_store(),
        actions,
        merge_operation(table),
        metrics,
        &commit,
        false,
    )
    .await?;
    let snapshot = finalized.snapshot();
    Ok(outcome_at(table, snapshot.version(), inserted, updated, 0).measured(&snapshot, table))
}

/// Whether every source row that matches a target row changes it, as the statistics show
/// without reading the target: a change column whose source values (none NULL) all lie outside
/// the range of the target's (integers, dates and timestamps: a batch number, a load time). The
/// comparison would read every matched file's change columns to find what this tells for free.
fn every_match_changes(state: &DeltaTableState, source: &[RecordBatch], compared: &[&str]) -> bool {
    let Ok(files) = state.add_actions_table(true) else {
        return false;
    };
    compared.iter().any(|column| {
        let Some(source) = source_range(source, column) else {
            return false;
        };
        let Some(target) = target_range(&files, column) else {
            return false;
        };
        source.1 < target.0 || source.0 > target.1
    })
}

/// The least and greatest value of `column` in `batches`, as integers: `None` when it holds a
/// NULL or no value, or is not an integer, date or timestamp column.
fn source_range(batches: &[RecordBatch], column: &str) -> Option<(i64, i64)> {
    let mut range: Option<(i64, i64)> = None;
    for batch in batches {
        let values = batch.column_by_name(column)?;
        if !orderable(values.data_type()) || values.null_count() > 0 {
            return None;
        }
        let values = super::read::integers(values).ok()?;
        let values = values.as_primitive::<Int64Type>();
        let (Some(low), Some(high)) = (arrow::compute::min(values), arrow::compute::max(values))
        else {
            continue;
        };
        range = Some(range.map_or((low, high), |(l, h)| (l.min(low), h.max(high))));
    }
    range
}

/// The range the target's file statistics give `column` (`files`: the add-actions table with
/// statistics): `None` when a file with values has none for it. Files of NULLs only count for
/// nothing: a NULL differs from any source value.
fn target_range(files: &RecordBatch, column: &str) -> Option<(i64, i64)> {
    let minima = files.column_by_name(&format!("min.{column}"))?;
    let maxima = files.column_by_name(&format!("max.{column}"))?;
    if !orderable(minima.data_type()) {
        return None;
    }
    let minima = super::read::integers(minima).ok()?;
    let maxima = super::read::integers(maxima).ok()?;
    let (minima, maxima) = (
        minima.as_primitive::<Int64Type>(),
        maxima.as_primitive::<Int64Type>(),
    );
    let count = |name: &str, file: usize| {
        files
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .filter(|c| c.is_valid(file))
            .map(|c| c.value(file))
    };
    for file in 0..files.num_rows() {
        if minima.is_null(file) || maxima.is_null(file) {
            let rows = count("num_records", file);
            if rows.is_none() || count(&format!("null_count.{column}"), file) != rows {
                return None;
            }
        }
    }
    // Delta keeps timestamp statistics to the millisecond, cut down: a stored maximum may be
    // up to 999 µs above the one recorded.
    let slack = if matches!(
        files.column_by_name(&format!("max.{column}"))?.data_type(),
        DataType::Timestamp(_, _)
    ) {
        999
    } else {
        0
    };
    Some((
        arrow::compute::min(minima)?,
        arrow::compute::max(maxima)?.saturating_add(slack),
    ))
}

/// Whether values of `data_type` compare as the integers [`super::read::integers`] makes them.
fn orderable(data_type: &DataType) -> bool {
    data_type.is_integer() || matches!(data_type, DataType::Date32 | DataType::Timestamp(_, _))
}

/// Whether every source row is from a later run than every target row, as the statistics of
/// the `sequence` column show.
fn every_match_is_newer(state: &DeltaTableState, source: &[RecordBatch], sequence: &str) -> bool {
    let Ok(files) = state.add_actions_table(true) else {
        return false;
    };
    match (
        source_range(source, sequence),
        target_range(&files, sequence),
    ) {
        (Some(source), Some(target)) => source.0 > target.1,
        _ => false,
    }
}

/// Pass 1b: the rows of the `candidates` files compared with the source on the `compared`
/// columns (and the `sequence` column: an older source row replaces nothing). Returns the files holding a changed key (each with its rows of such keys) and,
/// if some matched key changes nothing, those keys (aliased `k`). A key changes when its source
/// row differs from any target row of that key (the key is unique in the target, but a table
/// another engine wrote may repeat one).
async fn compare_matched(
    session: &SessionContext,
    delta: &DeltaTable,
    table: &'static TableDef,
    source: &Arc<MemTable>,
    candidates: &HashMap<String, (String, u64)>,
    (compared, sequence): (&[&'static str], Option<&'static str>),
    held: &mut Held,
) -> Result<(HashMap<String, (String, u64)>, Option<DataFrame>, usize), DeltaTableError> {
    let target = delta
        .table_provider()
        .with_session(super::session_state(session))
        .with_file_column(FILE_COLUMN)
        .with_file_paths(candidates.values().map(|(id, _)| id.clone()))
        .await?;
    let read_columns: Vec<&str> = table
        .key
        .iter()
        .chain(compared)
        .chain(sequence.iter().filter(|s| !compared.contains(s)))
        .copied()
        .collect();
    let mut target_columns: Vec<Expr> = read_columns.iter().map(|c| col(*c)).collect();
    target_columns.push(col(FILE_COLUMN));
    let source_columns: Vec<Expr> = read_columns.iter().map(|c| qualified("s", c)).collect();
    let pair_columns: Vec<Expr> = [
        qualified("t", FILE_COLUMN).alias(FILE_COLUMN),
        super::change::distinct_any("s", "t", compared).alias(CHANGED_COLUMN),
        super::change::not_older("s", "t", sequence).alias(NOT_OLDER_COLUMN),
    ]
    .into_iter()
    .chain(table.key.iter().map(|k| qualified("s", k).alias(*k)))
    .collect();
    let pairs = read(session, source)?
        .select(source_columns)?
        .join_on(
            session
                .read_table(target)?
                .select(target_columns)?
                .alias("t")?,
            JoinType::Inner,
            [key_match(table)],
        )?
        .select(pair_columns)?;
    let (pairs, pairs_bytes) = held.table(pairs, "matched rows' change columns").await?;
    // A key changes when its source row differs from one of its stored rows and is older than
    // none of them.
    let per_key = session
        .read_table(pairs.clone())?
        .aggregate(
            table.key.iter().map(|k| col(*k)).collect(),
            vec![
                bool_or(col(CHANGED_COLUMN)).alias(CHANGED_COLUMN),
                bool_and(col(NOT_OLDER_COLUMN)).alias(NOT_OLDER_COLUMN),
            ],
        )?
        .select(
            table
                .key
                .iter()
                .map(|k| col(*k))
                .chain([col(CHANGED_COLUMN)
                    .and(col(NOT_OLDER_COLUMN))
                    .alias(CHANGED_COLUMN)])
                .collect::<Vec<_>>(),
        )?;
    let (per_key, per_key_bytes) = held.table(per_key, "matched keys").await?;
    let keys_where = |changed: bool| -> Result<DataFrame, DeltaTableError> {
        let flag = col(CHANGED_COLUMN);
        let flag = if changed {
            flag
        } else {
            Expr::Not(Box::new(flag))
        };
        Ok(session
            .read_table(per_key.clone())?
            .filter(flag)?
            .alias("k")?)
    };
    let changed = session
        .read_table(pairs)?
        .alias("p")?
        .join_on(keys_where(true)?, JoinType::LeftSemi, on_keys(table, "p"))?
        .aggregate(vec![qualified("p", FILE_COLUMN)], vec![count_all()])?
        .collect()
        .await?;
    // The pairs are read no more (the keys' flags are): their memory is free.
    held.release(pairs_bytes);
    let unchanged = keys_where(false)?;
    let unchanged = (unchanged.clone().count().await? > 0).then_some(unchanged);
    Ok((matched_files(&changed)?, unchanged, per_key_bytes))
}

/// What an upsert or an SCD2 write keeps in memory (its source, the matched rows' comparison),
/// counted in the warehouse's memory pool: beyond the pool's limit the write fails, naming the
/// table and the way out, instead of the process being killed for memory.
pub(super) struct Held {
    reservation: MemoryReservation,
    table: &'static TableDef,
    /// The write, for the error: `upsert`, `SCD2 write`.
    write: &'static str,
    /// How to make the write fit, for the error.
    advice: &'static str,
}

impl Held {
    /// `write` names the write and `advice` says how to make it fit, in the error.
    pub(super) fn new(
        session: &SessionContext,
        table: &'static TableDef,
        write: &'static str,
        advice: &'static str,
    ) -> Held {
        let pool = &session.runtime_env().memory_pool;
        let reservation =
            MemoryConsumer::new(format!("{write} into {}", table.qualified_name())).register(pool);
        Held {
            reservation,
            table,
            write,
            advice,
        }
    }

    /// The batches of `df` (`what` it is, for the error), counted as they arrive, and the bytes
    /// counted for them (to [`Held::release`] once they are dropped).
    async fn collect(
        &mut self,
        df: DataFrame,
        what: &str,
    ) -> Result<(Vec<RecordBatch>, usize), DeltaTableError> {
        let mut stream = df.execute_stream().await?;
        let mut batches = Vec::new();
        let (mut rows, mut bytes) = (0, 0);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let size = batch.get_array_memory_size();
            if let Err(error) = self.reservation.try_grow(size) {
                // Said before it is released: the error tells how much was held.
                let refused = self.exhausted(what, rows + batch.num_rows(), &error);
                self.reservation.shrink(bytes);
                return Err(refused);
            }
            rows += batch.num_rows();
            bytes += size;
            batches.push(batch);
        }
        Ok((batches, bytes))
    }

    /// [`Held::collect`] as a table to read again.
    pub(super) async fn table(
        &mut self,
        df: DataFrame,
        what: &str,
    ) -> Result<(Arc<MemTable>, usize), DeltaTableError> {
        let schema = df.schema().inner().clone();
        let (batches, bytes) = self.collect(df, what).await?;
        Ok((Arc::new(MemTable::try_new(schema, vec![batches])?), bytes))
    }

    /// Stops counting `bytes` of what [`Held::collect`] counted, dropped since.
    fn release(&mut self, bytes: usize) {
        self.reservation.shrink(bytes.min(self.reservation.size()));
    }

    fn exhausted(
        &self,
        what: &str,
        rows: usize,
        error: &datafusion::error::DataFusionError,
    ) -> DeltaTableError {
        DeltaTableError::Generic(format!(
            "the {} into {} holds its {what} in memory, and with {rows} rows of it ({} MiB \
             held in all) it would exceed the warehouse's memory limit ({error}): {} \
             (`--memory-limit`, `LAKEHOUSE_MEMORY_LIMIT`); nothing was committed",
            self.write,
            self.table.qualified_name(),
            self.reservation.size() >> 20,
            self.advice,
        ))
    }
}

/// `left`'s key columns equal to those of the keys aliased `k`.
fn on_keys(table: &TableDef, left: &str) -> Vec<Expr> {
    table
        .key
        .iter()
        .map(|k| qualified(left, k).eq(qualified("k", k)))
        .collect()
}

/// The source, aliased `s`.
fn read(session: &SessionContext, source: &Arc<MemTable>) -> Result<DataFrame, DeltaTableError> {
    Ok(session.read_table(source.clone())?.alias("s")?)
}

/// The stored columns, qualified by `alias`, in the stored order and types (a scan may read
/// strings as views).
fn columns(delta: &DeltaTable, alias: &str) -> Result<Vec<Expr>, DeltaTableError> {
    Ok(delta
        .snapshot()?
        .snapshot()
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| cast(qualified(alias, f.name()), f.data_type().clone()).alias(f.name()))
        .collect())
}

/// The commit's operation, as delta-rs records an upsert: no predicate (the whole table was
/// read, so concurrent appends conflict), update all when matched, insert all when not.
pub(crate) fn merge_operation(table: &TableDef) -> DeltaOperation {
    DeltaOperation::Merge {
        predicate: None,
        merge_predicate: Some(key_match(table).to_string()),
        matched_predicates: vec![MergePredicate {
            action_type: "update".to_owned(),
            predicate: None,
        }],
        not_matched_predicates: vec![MergePredicate {
            action_type: "insert".to_owned(),
            predicate: None,
        }],
        not_matched_by_source_predicates: Vec::new(),
    }
}

/// The matched files by their decoded location (see [`decoded_file_key`]), each with its file id
/// (as the scan gave it) and matched row count, from the `(file, count)` batches of pass 1.
fn matched_files(
    batches: &[RecordBatch],
) -> Result<HashMap<String, (String, u64)>, DeltaTableError> {
    let unexpected = |what: &str| {
        DeltaTableError::Generic(format!("merge: unexpected {what} in the matched files"))
    };
    let mut files = HashMap::new();
    for batch in batches {
        let paths = batch.column(0);
        let counts = batch.column(1).as_primitive_opt::<Int64Type>();
        let counts = counts.ok_or_else(|| unexpected("count type"))?;
        let id_at = |row: usize| -> Result<String, DeltaTableError> {
            let text = match paths.data_type() {
                DataType::Dictionary(_, _) => {
                    let dict = paths
                        .as_dictionary_opt::<UInt16Type>()
                        .ok_or_else(|| unexpected("file column type"))?;
                    let values = dict.values().as_string_opt::<i32>();
                    let values = values.ok_or_else(|| unexpected("file column values"))?;
                    values.value(dict.keys().value(row) as usize).to_owned()
                }
                DataType::Utf8 => paths.as_string::<i32>().value(row).to_owned(),
                other => return Err(unexpected(&format!("file column type {other}"))),
            };
            Ok(text)
        };
        for row in 0..batch.num_rows() {
            if paths.is_null(row) {
                return Err(unexpected("NULL file"));
            }
            let id = id_at(row)?;
            let key = Url::parse(&id)
                .map(|url| {
                    percent_decode_str(url.path())
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .map_err(|e| DeltaTableError::Generic(format!("merge: file id `{id}`: {e}")))?;
            files.insert(key, (id, counts.value(row) as u64));
        }
    }
    Ok(files)
}

/// A data file's decoded absolute path: `path` (decoded, as the log's file views give it) is
/// absolute or relative to the table root `root`.
fn decoded_file_key(root: &Url, path: &str) -> String {
    match Url::parse(path) {
        Ok(url) => percent_decode_str(url.path())
            .decode_utf8_lossy()
            .into_owned(),
        Err(_) => {
            let root_path = percent_decode_str(root.path()).decode_utf8_lossy();
            let root_path = root_path.trim_end_matches('/');
            format!("{root_path}/{path}")
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use crate::prelude::*;
    use crate::store::test_support::{temp_warehouse, write_rows};

    /// Rows loaded in numbered batches.
    #[derive(Table, Serialize)]
    #[table(schema = "test", name = "loads", key(id), mode = merge)]
    struct Load {
        id: i64,
        name: String,
        batch: i32,
    }

    fn loads(batch: i32) -> Vec<Load> {
        (1..=3)
            .map(|id| Load {
                id,
                name: "same".to_owned(),
                batch,
            })
            .collect()
    }

    fn rows(batch: i32) -> Vec<arrow::array::RecordBatch> {
        crate::frame::batches_from_rows(Load::DEF.output_arrow_schema(), &loads(batch))
            .expect("rows")
    }

    #[tokio::test]
    async fn statistics_tell_when_every_match_changes() {
        let (_dir, warehouse) = temp_warehouse();
        for batch in [1, 2] {
            write_rows(&warehouse, Load::DEF, &loads(batch)).await;
        }
        // The table holds batch 2 (the second write updated every row).
        let delta = warehouse
            .load(Load::DEF)
            .await
            .expect("load")
            .expect("exists");
        let state = delta.snapshot().expect("snapshot");
        let changes =
            |batch: i32, columns: &[&str]| super::every_match_changes(state, &rows(batch), columns);
        assert!(changes(3, &["name", "batch"]), "batch 3 is outside 2..=2");
        assert!(changes(1, &["batch"]), "batch 1 is outside 2..=2");
        assert!(
            !changes(2, &["name", "batch"]),
            "batch 2 may equal a stored row"
        );
        assert!(!changes(3, &["name"]), "strings are not compared by range");
        assert!(!changes(3, &[]));
    }

    /// Stamped rows.
    #[derive(Table, Serialize)]
    #[table(schema = "test", name = "stamps", key(id), mode = merge)]
    struct Stamp {
        id: i64,
        loaded_at: Timestamp,
    }

    #[tokio::test]
    async fn timestamp_statistics_are_read_to_the_millisecond() {
        let (_dir, warehouse) = temp_warehouse();
        let stamps = |micros: i64| {
            crate::frame::batches_from_rows(
                Stamp::DEF.output_arrow_schema(),
                &[Stamp {
                    id: 1,
                    loaded_at: Timestamp(micros),
                }],
            )
            .expect("rows")
        };
        // Stored: 1.000500 s; Delta's statistics say 1.000 s.
        let stored = Stamp {
            id: 1,
            loaded_at: Timestamp(1_000_500),
        };
        write_rows(&warehouse, Stamp::DEF, &[stored]).await;
        let delta = warehouse
            .load(Stamp::DEF)
            .await
            .expect("load")
            .expect("exists");
        let state = delta.snapshot().expect("snapshot");
        let changes = |micros| super::every_match_changes(state, &stamps(micros), &["loaded_at"]);
        assert!(!changes(1_000_500), "the stored value itself");
        assert!(
            !changes(1_000_700),
            "within the recorded millisecond: it may be stored"
        );
        assert!(changes(1_001_000), "past the millisecond");
        assert!(changes(999_999), "before it");
    }
}
