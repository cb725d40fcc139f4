//! Reading tables as lazy DataFrames.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;

use deltalake::table::config::TablePropertiesExt as _;

use super::{Warehouse, session_state};
use crate::error::{Error, Result};
use crate::frame::{Strictness, conform};
use crate::table::{ColumnDef, TableDef};

impl Warehouse {
    /// `table` as a lazy DataFrame conforming to its declared columns (all of them, system columns
    /// included). A table never written reads as empty. Drift between the declaration and the
    /// stored schema is an error naming the columns (see [`Warehouse::drift`]).
    pub async fn read(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
    ) -> Result<DataFrame> {
        Ok(self.read_with_version(session, table).await?.0)
    }

    /// [`Warehouse::read`], with the version read (`None` for a table never written): one load
    /// of the log, so the version is exactly the one the DataFrame reads.
    pub async fn read_with_version(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
    ) -> Result<(DataFrame, Option<u64>)> {
        match self.load(table).await? {
            Some(delta) => {
                let version = delta.version();
                Ok((read_loaded(session, table, &delta).await?, version))
            }
            None => Ok((conform_all(empty(session, table)?, table)?, None)),
        }
    }

    /// `table` as it was at `version` (time travel).
    pub async fn read_version(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
        version: u64,
    ) -> Result<DataFrame> {
        let qualified = table.qualified_name();
        let Some(mut delta) = self.load(table).await? else {
            return Err(Error::msg(format!(
                "table {qualified} has no version {version}: it was never written"
            )));
        };
        super::history::load_version(&mut delta, table, version).await?;
        let provider = delta
            .table_provider()
            .with_session(session_state(session))
            .await
            .map_err(|e| Error::msg(format!("reading {qualified} at version {version}: {e}")))?;
        conform_all(session.read_table(provider)?, table)
    }
}

/// `table` at the version `delta` was loaded at, conforming to its declared columns.
pub(super) async fn read_loaded(
    session: &SessionContext,
    table: &'static TableDef,
    delta: &deltalake::DeltaTable,
) -> Result<DataFrame> {
    let provider = delta
        .table_provider()
        .with_session(session_state(session))
        .await
        .map_err(|e| Error::msg(format!("reading {}: {e}", table.qualified_name())))?;
    conform_all(session.read_table(provider)?, table)
}

/// An empty DataFrame with `table`'s stored schema.
pub(crate) fn empty(session: &SessionContext, table: &TableDef) -> Result<DataFrame> {
    let schema = table.arrow_schema();
    let provider = MemTable::try_new(schema.clone(), vec![vec![RecordBatch::new_empty(schema)]])?;
    Ok(session.read_table(Arc::new(provider))?)
}

fn conform_all(df: DataFrame, table: &'static TableDef) -> Result<DataFrame> {
    let columns: Vec<&ColumnDef> = table.columns.iter().collect();
    conform(df, table, &columns, Strictness::Read)
}

/// Rows a table gained between two versions, and the version they were read up to.
pub struct Changes {
    /// The rows inserted (a merge table's: inserted or updated, each key once) after the
    /// starting version, conforming to the table's columns.
    pub rows: DataFrame,
    /// The table version read up to (`None`: the table does not exist yet).
    pub version: Option<u64>,
    /// When the table was created, as its metadata records it: a reader that last read it
    /// before then read another table of the same name (it was recreated since).
    pub created_at: Option<crate::table::Timestamp>,
    /// The Delta table's id, which a recreated table does not keep.
    pub table_id: Option<String>,
}

/// Statistics of a table's current version, from the Delta log (no data is read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// The version.
    pub version: u64,
    /// Rows (of the files whose row count the log records: see `files_without_row_count`).
    pub rows: i64,
    /// Data files whose add action records no row count (written without statistics, by
    /// another engine): `rows` leaves theirs out.
    pub files_without_row_count: i64,
    /// Data files.
    pub files: i64,
    /// Bytes of data files.
    pub bytes: i64,
    /// Data files under half the table's target file size in the partition holding the most of
    /// them (the whole table when unpartitioned): what a compaction would merge.
    pub small_files: i64,
    /// NULLs per column, of the columns every file has statistics of (others are unknown).
    pub null_counts: std::collections::BTreeMap<String, i64>,
}

impl Warehouse {
    /// The rows inserted into `table` after version `after` (all rows when `None`), read with
    /// Delta's change data feed: an append table's new rows; a merge table's inserted and
    /// updated rows, each key's latest (SCD2 and overwrite tables record no changes to read).
    pub async fn read_changes(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
        after: Option<u64>,
    ) -> Result<Changes> {
        let qualified = table.qualified_name();
        let Some(delta) = self.load(table).await? else {
            return Ok(Changes {
                rows: conform_all(empty(session, table)?, table)?,
                version: None,
                created_at: None,
                table_id: None,
            });
        };
        // Column-mapped by another engine (a declaration with it is a compile error): delta-rs
        // cannot read the feed of such a table. Refused at once, not only once it has new
        // commits to read (a reader would pass while the table was quiet).
        if super::column_mapped(&delta) {
            return Err(Error::Refused(format!(
                "`Changes<_>` of {qualified}: the table is column-mapped \
                 (`delta.columnMapping.mode`), and delta-rs 1.1 cannot read the change data feed \
                 of such a table; read it as a `Frame<_>`"
            )));
        }
        let current = delta.version();
        let created_at = created_time(&delta);
        let table_id = delta
            .snapshot()
            .ok()
            .map(|snapshot| snapshot.metadata().id().to_owned());
        let rows = match (after, current) {
            // The version loaded, not a later one: the rows are exactly those up to `current`.
            (None, _) => read_loaded(session, table, &delta).await?,
            (Some(after), Some(current)) if after < current => {
                use crate::table::WriteMode;
                if !matches!(table.mode, WriteMode::Append | WriteMode::Merge) {
                    return Err(Error::msg(format!(
                        "`Changes<_>` of {qualified}: only append tables, and merge tables with \
                         their change data feed on, record their changes; read it as a `Frame<_>`"
                    )));
                }
                // Not on (turned off by another engine, or never set on a table another engine
                // made): delta-rs would fail obscurely at a metadata commit, or read the files
                // a delete rewrote as inserts again.
                // As Delta reads the property (writers decide by it whether to record changes):
                // `True` is not on.
                let feed_on = delta.snapshot().is_ok_and(|snapshot| {
                    snapshot
                        .snapshot()
                        .table_properties()
                        .enable_change_data_feed()
                });
                if !feed_on {
                    return Err(Error::Refused(format!(
                        "`Changes<_>` of {qualified}: the table's change data feed is not on \
                         (`delta.enableChangeDataFeed`), and its new rows are read from it: \
                         turn it on (declare `property(key = \"delta.enableChangeDataFeed\", \
                         value = \"true\")` on the table, or with another engine), then read it \
                         whole once (`orchestrate run --rebuild` for an append output, \
                         `--full-refresh` otherwise); or read it as a `Frame<_>`"
                    )));
                }
                // The commits to read are gone from the log (Delta cleans up entries older than
                // `delta.logRetentionDuration` at checkpoints): their changes cannot be read,
                // at any attempt; said so, with the way out.
                if super::history::commit_gone(&delta, after + 1).await {
                    return Err(Error::Refused(format!(
                        "`Changes<_>` of {qualified}: its reader last read version {after}, and \
                         the table's log no longer has version {} (Delta cleans up log entries \
                         older than `delta.logRetentionDuration`, 30 days by default): the rows \
                         added since cannot be told apart; read it whole with `orchestrate run \
                         --full-refresh` (`--rebuild` for an append output, which a full refresh \
                         would give its rows again), and run its readers more often than that \
                         retention",
                        after + 1
                    )));
                }
                // Bounded: a commit made after the load is read by the next run, not this one.
                let cdf = delta
                    .scan_cdf()
                    .with_starting_version(after + 1)
                    .with_ending_version(current);
                let provider = deltalake::delta_datafusion::DeltaCdfTableProvider::try_new(cdf)
                    .map_err(|e| {
                        Error::msg(format!(
                            "reading the rows {qualified} gained after version {after}: {e}"
                        ))
                    })?;
                use datafusion::prelude::{col, lit};
                let change = col("_change_type");
                let df = session.read_table(Arc::new(provider))?;
                let df = if table.mode == WriteMode::Merge {
                    // A merge table's inserted and updated rows, each key's latest: a key
                    // changed by several commits since is read once, as it is now (one a later
                    // commit deleted is not read: its delete is not a row to take).
                    let changed = df.filter(
                        change
                            .clone()
                            .eq(lit("insert"))
                            .or(change.clone().eq(lit("update_postimage")))
                            .or(change.eq(lit("delete"))),
                    )?;
                    let key: Vec<_> = table.key.iter().map(|k| col(*k)).collect();
                    // In a commit without change files (one from before the feed was on, a
                    // restore), a rewritten file is read as its rows deleted and added again:
                    // the added row is the key's state after the commit.
                    let latest = crate::frame::first_per_key(
                        changed,
                        key,
                        vec![
                            col("_commit_version").sort(false, false),
                            col("_change_type").eq(lit("delete")).sort(true, false),
                        ],
                    )?;
                    latest.filter(col("_change_type").not_eq(lit("delete")))?
                } else {
                    df.filter(change.eq(lit("insert")))?
                };
                conform_all(df, table)?
            }
            // A table behind the version its reader already read was recreated: reading
            // nothing would skip its new rows for good, reading them all would repeat none.
            (Some(after), Some(current)) if after > current => {
                // (The same at every attempt: not retried.)
                return Err(Error::Refused(format!(
                    "{qualified} is at version {current}, behind version {after} its reader \
                     already read: the table was recreated; read it whole with `orchestrate run \
                     --full-refresh` (an append output then gets its rows again; `--rebuild` \
                     replaces it instead)"
                )));
            }
            // Nothing after `after`.
            (Some(_), _) => conform_all(empty(session, table)?, table)?,
        };
        Ok(Changes {
            rows,
            version: current,
            created_at,
            table_id,
        })
    }

    /// Row, file, byte and NULL counts of `table`'s current version, from the Delta log.
    pub async fn stats(&self, table: &'static TableDef) -> Result<Option<TableStats>> {
        let qualified = table.qualified_name();
        let Some(delta) = self.load(table).await? else {
            return Ok(None);
        };
        let snapshot = delta.snapshot().map_err(|e| Error::delta(&qualified, e))?;
        stats_of(snapshot, table).map(Some)
    }
}

/// The NULLs `column` holds at `snapshot`, by its files' statistics (`None` when a file has
/// none for it).
pub(crate) fn stored_nulls(
    snapshot: &deltalake::table::state::DeltaTableState,
    qualified: &str,
    column: &str,
) -> Result<Option<u64>> {
    if snapshot.log_data().num_files() == 0 {
        return Ok(Some(0));
    }
    let actions = snapshot
        .add_actions_table(true)
        .map_err(|e| Error::delta(qualified, e))?;
    Ok(null_count(&actions, column).and_then(|n| u64::try_from(n).ok()))
}

/// The sum of `column`'s NULL counts in `actions` (a snapshot's add-actions table with
/// statistics), when every file has one: a column Delta indexes no statistics for (past the
/// 32nd, or left out of `delta.dataSkippingStatsColumns`) has an unknown count, not 0.
fn null_count(actions: &arrow::array::RecordBatch, column: &str) -> Option<i64> {
    use arrow::array::{Array, Int64Array};
    let counts = actions
        .column_by_name(&format!("null_count.{column}"))?
        .as_any()
        .downcast_ref::<Int64Array>()?;
    (counts.null_count() == 0).then(|| counts.iter().flatten().fold(0i64, i64::saturating_add))
}

/// Row, file, byte and NULL counts of `table` at `snapshot`, from its log.
pub(crate) fn stats_of(
    snapshot: &deltalake::table::state::DeltaTableState,
    table: &TableDef,
) -> Result<TableStats> {
    use arrow::array::{Array, Int64Array};
    let actions = snapshot
        .add_actions_table(true)
        .map_err(|e| Error::delta(table.qualified_name(), e))?;
    let sum = |name: &str| -> i64 {
        actions
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .map(|a| a.iter().flatten().fold(0i64, i64::saturating_add))
            .unwrap_or(0)
    };
    let null_counts = table
        .columns
        .iter()
        .filter_map(|c| null_count(&actions, c.name).map(|n| (c.name.to_owned(), n)))
        .collect();
    let target = table.target_file_size.unwrap_or_else(|| {
        snapshot
            .snapshot()
            .table_properties()
            .target_file_size()
            .get()
    });
    Ok(TableStats {
        version: snapshot.version(),
        rows: sum("num_records"),
        files_without_row_count: actions
            .column_by_name("num_records")
            .map_or(actions.num_rows(), |counts| counts.null_count())
            as i64,
        files: actions.num_rows() as i64,
        bytes: sum("size_bytes"),
        small_files: small_files(snapshot, target) as i64,
        null_counts,
    })
}

/// The largest value of `column` (integers; timestamps as microseconds, which Delta statistics
/// keep to the millisecond) from `files`, a snapshot's add-actions table with statistics:
/// `Some(None)` when no file holds a value, `None` when a file with values has no statistics
/// for it (the caller then scans).
pub(crate) fn maximum_from_statistics(
    files: &RecordBatch,
    column: &str,
) -> Result<Option<Option<i64>>> {
    use arrow::array::{Array, AsArray as _};
    if files.num_rows() == 0 {
        return Ok(Some(None));
    }
    let Some(maxima) = files.column_by_name(&format!("max.{column}")) else {
        return Ok(None);
    };
    let maxima = integers(maxima)?;
    let maxima = maxima.as_primitive::<arrow::datatypes::Int64Type>();
    // A file whose values are all NULL has no maximum, and says so by its NULL count.
    let all_null = |file: usize| -> bool {
        let count = |name: &str| {
            files
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>())
                .filter(|c| c.is_valid(file))
                .map(|c| c.value(file))
        };
        let rows = count("num_records");
        rows.is_some() && count(&format!("null_count.{column}")) == rows
    };
    if (0..maxima.len()).any(|file| maxima.is_null(file) && !all_null(file)) {
        return Ok(None);
    }
    Ok(Some(arrow::compute::max(maxima)))
}

/// `array` as Int64: integers as they are, timestamps as microseconds.
pub(crate) fn integers(array: &arrow::array::ArrayRef) -> Result<arrow::array::ArrayRef> {
    use arrow::datatypes::{DataType, TimeUnit};
    let array = match array.data_type() {
        DataType::Timestamp(_, zone) => arrow::compute::cast(
            array,
            &DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
        )?,
        _ => array.clone(),
    };
    Ok(arrow::compute::cast(&array, &DataType::Int64)?)
}

/// The most files under half of `target` bytes in one partition of `snapshot` (the whole
/// table when unpartitioned): what a compaction to that size would merge there. Files from half
/// the target up are what such a compaction leaves (a bin that cannot take another file is not
/// rewritten): counting them would keep asking for compactions that change nothing.
pub(crate) fn small_files(
    snapshot: &deltalake::table::state::DeltaTableState,
    target: u64,
) -> usize {
    let target = target / 2;
    most_per_partition(
        snapshot.log_data().iter().map(|file| {
            let mut partition: Vec<_> = file.partition_values_map().into_iter().collect();
            partition.sort();
            (file.size(), partition)
        }),
        target,
    )
}

/// The most `(size, partition)` files under `target` bytes sharing one partition.
fn most_per_partition<P: Eq + std::hash::Hash>(
    files: impl IntoIterator<Item = (i64, P)>,
    target: u64,
) -> usize {
    let mut per_partition: std::collections::HashMap<P, usize> = Default::default();
    for (size, partition) in files {
        if u64::try_from(size).is_ok_and(|bytes| bytes < target) {
            *per_partition.entry(partition).or_default() += 1;
        }
    }
    per_partition.into_values().max().unwrap_or(0)
}

/// When `delta` was created, as its metadata records it (to the millisecond), if it says.
pub(crate) fn created_time(delta: &deltalake::DeltaTable) -> Option<crate::table::Timestamp> {
    delta
        .snapshot()
        .ok()
        .and_then(|snapshot| snapshot.metadata().created_time())
        .and_then(|millis| millis.checked_mul(1_000))
        .map(crate::table::Timestamp)
}

#[cfg(test)]
mod tests {
    use super::most_per_partition;

    #[test]
    fn small_files_count_in_the_partition_with_the_most() {
        let sizes = [10, 10, 500, 10, 10, 10, 900];
        let days = ["a", "a", "a", "b", "b", "b", "b"];
        let partitioned = || sizes.into_iter().zip(days);
        assert_eq!(most_per_partition(partitioned(), 100), 3);
        let unpartitioned = || sizes.into_iter().map(|size| (size, ()));
        assert_eq!(most_per_partition(unpartitioned(), 100), 5);
        assert_eq!(most_per_partition(unpartitioned(), 10), 0);
    }
}
