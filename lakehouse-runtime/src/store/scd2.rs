//! SCD2 in one commit: a single MERGE over a staged union.
//!
//! With S the (deduplicated) source and T the table, the staged source is
//! 1. every S row, with its key copied into `__lakehouse_key_*`: it matches the key's current row;
//! 2. every S row whose current T row differs on a change column (null-safe `IS DISTINCT FROM`),
//!    with NULL merge keys: it matches nothing and is inserted as the new version;
//! 3. every deletion key, flagged: it matches the current row and closes it.
//!
//! The MERGE closes matched current rows that changed or are deleted (`valid_to = run_at`,
//! `is_current = false`) and inserts unmatched rows (`valid_from = run_at`, `valid_to` NULL,
//! `is_current = true`). Unchanged rows are untouched; every key keeps at most one current row.

use datafusion::common::{Column, JoinType};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{Expr, cast, lit};
use datafusion::scalar::ScalarValue;
use deltalake::DeltaTable;

use super::Warehouse;
use super::commit::CommitTags;
use super::merge::{DELETE_FLAG, qualified};
use super::write::{Deletions, WriteOutcome, outcome};
use crate::error::{Error, Result};
use crate::table::{TableDef, Timestamp};

fn merge_key(key: &str) -> String {
    format!("__lakehouse_key_{key}")
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// Refuses a write at `run_at` into an SCD2 table whose history already reaches past it (a
/// `--run-at` backfill after later runs): it would close versions before they began and open
/// versions that overlap the later ones. History is written in time order. The latest bound is
/// read from the file statistics of `delta`, the table as loaded for this write (to the
/// millisecond); only files without statistics make it a scan.
/// `reaches`: a later time the history is known to reach than the rows say (see
/// [`WriteOptions::history_reaches`](super::WriteOptions::history_reaches)).
pub(crate) async fn refuse_going_back(
    session: &SessionContext,
    table: &'static TableDef,
    delta: &DeltaTable,
    run_at: Timestamp,
    reaches: Option<Timestamp>,
) -> Result<()> {
    let stored = history_bound(session, table, delta, run_at).await?;
    match stored.max(reaches.map(|t| t.0)) {
        Some(latest) if latest > run_at.0 => {
            // Said when only the run that found the rows unchanged is later: no row shows it.
            let unchanged = if stored.is_none_or(|stored| stored <= run_at.0) {
                " (a run then found its rows unchanged, so no version shows it)"
            } else {
                ""
            };
            Err(Error::Refused(format!(
                "SCD2 table {}: its history already reaches {}{unchanged}, later than this \
                 run's run_at {run_at}; versions are written in time order, so a past run_at \
                 cannot follow later runs (rebuild the table to replay its history)",
                table.qualified_name(),
                Timestamp(latest)
            )))
        }
        _ => Ok(()),
    }
}

impl Warehouse {
    /// The time the history of SCD2 table `table` reaches (its latest `valid_from` or
    /// `valid_to`) when it is later than `run_at`: a write at `run_at` would be refused.
    /// `None`: not written, or a history that `run_at` follows.
    pub(crate) async fn scd2_history_past(
        &self,
        table: &'static TableDef,
        run_at: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let Some(delta) = self.load(table).await? else {
            return Ok(None);
        };
        let bound = history_bound(&self.session(), table, &delta, run_at).await?;
        Ok(bound.filter(|latest| *latest > run_at.0).map(Timestamp))
    }
}

/// The latest `valid_from` or `valid_to` of `table` as loaded (`delta`), by its file statistics
/// (by a scan when a file lacks them, or when the statistics' millisecond holds `run_at`).
async fn history_bound(
    session: &SessionContext,
    table: &'static TableDef,
    delta: &DeltaTable,
    run_at: Timestamp,
) -> Result<Option<i64>> {
    Ok(match history_bound_from_statistics(table, delta)? {
        // Statistics keep timestamps to the millisecond, truncated: a bound in `run_at`'s
        // millisecond but not after it may be after it, by a scan.
        Some(Some(truncated))
            if truncated <= run_at.0 && truncated + STATISTICS_PRECISION_MICROS > run_at.0 =>
        {
            history_bound_by_scan(session, table, delta).await?
        }
        Some(bound) => bound,
        None => history_bound_by_scan(session, table, delta).await?,
    })
}

/// Delta's file statistics truncate timestamps to the millisecond.
const STATISTICS_PRECISION_MICROS: i64 = 1_000;

/// The latest `valid_from` or `valid_to` from `delta`'s file statistics: `Some(None)` for no
/// history, `None` when a file lacks statistics.
fn history_bound_from_statistics(
    table: &TableDef,
    delta: &DeltaTable,
) -> Result<Option<Option<i64>>> {
    let files = delta
        .snapshot()
        .and_then(|snapshot| snapshot.add_actions_table(true))
        .map_err(|e| Error::delta(table.qualified_name(), e))?;
    let from = super::maximum_from_statistics(&files, "valid_from")?;
    let to = super::maximum_from_statistics(&files, "valid_to")?;
    Ok(from.zip(to).map(|(from, to)| from.max(to)))
}

/// The latest `valid_from` or `valid_to` of `table` as loaded (`delta`), by a query over all
/// its rows.
async fn history_bound_by_scan(
    session: &SessionContext,
    table: &'static TableDef,
    delta: &DeltaTable,
) -> Result<Option<i64>> {
    use datafusion::functions_aggregate::expr_fn::max;
    let latest = super::read::read_loaded(session, table, delta)
        .await?
        .aggregate(
            vec![],
            vec![
                max(column("valid_from")).alias("from"),
                max(column("valid_to")).alias("to"),
            ],
        )?
        .collect()
        .await?;
    let mut bound: Option<i64> = None;
    for batch in &latest {
        for array in batch.columns() {
            for row in 0..array.len() {
                if let ScalarValue::TimestampMicrosecond(Some(t), _) =
                    ScalarValue::try_from_array(array, row)?
                {
                    bound = bound.max(Some(t));
                }
            }
        }
    }
    Ok(bound)
}

/// What an SCD2 write is made with.
pub(crate) struct Scd2Write {
    /// The run's logical time: the validity bound of what it closes and opens.
    pub run_at: Timestamp,
    /// [`WriteOptions::history_reaches`](super::WriteOptions::history_reaches).
    pub history_reaches: Option<Timestamp>,
    /// Keys to close.
    pub deletions: Deletions,
    /// What its commit records.
    pub commit: CommitTags,
}

/// Runs the SCD2 MERGE of `source` (data columns, one row per key) into `delta`.
pub(crate) async fn merge(
    warehouse: &Warehouse,
    session: &SessionContext,
    delta: DeltaTable,
    source: DataFrame,
    table: &'static TableDef,
    write: Scd2Write,
) -> Result<WriteOutcome> {
    let Scd2Write {
        run_at,
        history_reaches,
        deletions,
        commit,
    } = write;
    let qualified_name = table.qualified_name();
    refuse_going_back(session, table, &delta, run_at, history_reaches).await?;
    let advice = if matches!(deletions, Deletions::MissingFromSource) {
        "raise the limit (a `full_snapshot` output holds every key's row)"
    } else {
        "write fewer rows per run (read the inputs incrementally with `Changes<T>`), or raise \
         the limit"
    };
    let mut held = super::upsert::Held::new(session, table, "SCD2 write", advice);
    // A key both written and closed is closed; a key listed twice is closed once.
    let (source, deletions) = match deletions {
        Deletions::Keys(keys) => {
            let (kept, keys) =
                super::merge::split_deletions(session, &mut held, source, keys, table)
                    .await
                    .map_err(|e| Error::delta(&qualified_name, e))?;
            (kept, Deletions::Keys(keys))
        }
        other => (source, other),
    };
    // A key whose versions are all closed comes back only with a row not older than its
    // closing (by `run_at`, when the table has one): a late row from before a deletion does not
    // undo it, as a late row does not undo a newer version.
    let written: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let source = match super::change::sequence_column(table, &written) {
        Some(sequence) => drop_older_than_closing(session, table, &delta, source, sequence).await?,
        None => source,
    };
    // The source is read by two branches of the staged union, and delta-rs runs the staged plan
    // twice (its keys' bounds, then the join): held in memory, the pipeline's plan runs once,
    // and a plan that gives other rows each time (`random()`, `LIMIT` without `ORDER BY`) cannot
    // close a version in one branch and not open its successor in the other.
    let (source, _) = held
        .table(source, "source (the rows written)")
        .await
        .map_err(|e| Error::delta(&qualified_name, e))?;
    let source = session.read_table(source)?;
    let data: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // Only columns the stored table has can change (with `evolution = keep` a declared column
    // may be missing from it).
    let change_columns = super::change::compared_columns(table, &data);
    // A source row replaces the current version when a change column differs and it is not
    // older than it by `run_at`, when the table has one (as a merge table's rows, and Delta
    // Live Tables' `SEQUENCE BY`): a late row does not undo a newer version.
    let sequence = super::change::sequence_column(table, &data);
    let changed = |source: &str, stored: &str| {
        super::change::replaces(source, stored, &change_columns, sequence)
    };

    // 1. Every source row, keyed.
    let keyed: Vec<Expr> = data
        .iter()
        .map(|c| column(c))
        .chain(table.key.iter().map(|k| column(k).alias(merge_key(k))))
        .chain(std::iter::once(lit(false).alias(DELETE_FLAG)))
        .collect();
    let mut staged = source.clone().select(keyed)?;

    // 2. Changed rows again, unkeyed, to be inserted as new versions: against the versions
    // of the table as loaded for this write, which the MERGE closes (not a later load's).
    let current = super::read::read_loaded(session, table, &delta)
        .await?
        .filter(column("is_current"))?
        .alias("t")?;
    let run_at_value = lit(ScalarValue::TimestampMicrosecond(
        Some(run_at.0),
        Some("UTC".into()),
    ));
    // A version this same logical time opened (a rerun of the latest run) is replaced in place
    // below, not closed after no time at all.
    let opened_now = |alias: &str| qualified(alias, "valid_from").eq(run_at_value.clone());
    let on: Vec<Expr> = table
        .key
        .iter()
        .map(|k| qualified("s", k).eq(qualified("t", k)))
        .chain(std::iter::once(changed("s", "t")))
        .chain(std::iter::once(Expr::Not(Box::new(opened_now("t")))))
        .collect();
    let schema = source.schema().as_arrow().clone();
    let unkeyed: Vec<Expr> = data
        .iter()
        .map(|c| qualified("s", c).alias(c))
        .chain(table.key.iter().map(|k| {
            let data_type = schema.field_with_name(k).map(|f| f.data_type().clone());
            let null = data_type
                .ok()
                .and_then(|t| ScalarValue::try_from(&t).ok())
                .unwrap_or(ScalarValue::Null);
            lit(null).alias(merge_key(k))
        }))
        .chain(std::iter::once(lit(false).alias(DELETE_FLAG)))
        .collect();
    let changed_rows = source
        .alias("s")?
        .join_on(current, JoinType::Inner, on)?
        .select(unkeyed)?;
    staged = staged.union(changed_rows)?;

    // 3. Deletions.
    let close_missing = matches!(deletions, Deletions::MissingFromSource);
    if let Deletions::Keys(keys) = deletions {
        let mut exprs = Vec::new();
        for c in &data {
            let field = schema
                .field_with_name(c)
                .map_err(|e| Error::schema(&qualified_name, e.to_string()))?;
            let expr = if table.key.contains(&c.as_str()) {
                cast(column(c), field.data_type().clone())
            } else {
                lit(ScalarValue::try_from(field.data_type())?)
            };
            exprs.push(expr.alias(c));
        }
        for k in table.key {
            let field = schema
                .field_with_name(k)
                .map_err(|e| Error::schema(&qualified_name, e.to_string()))?;
            exprs.push(cast(column(k), field.data_type().clone()).alias(merge_key(k)));
        }
        exprs.push(lit(true).alias(DELETE_FLAG));
        staged = staged.union(keys.select(exprs)?)?;
    }

    let on = table
        .key
        .iter()
        .map(|k| qualified("t", k).eq(qualified("s", &merge_key(k))))
        .chain(std::iter::once(qualified("t", "is_current")))
        .reduce(Expr::and)
        .unwrap_or_else(|| lit(false));
    let run_at = run_at_value.clone();
    let no_end = lit(ScalarValue::TimestampMicrosecond(None, Some("UTC".into())));
    let close = |u: deltalake::operations::merge::UpdateBuilder| {
        u.update("valid_to", run_at.clone())
            .update("is_current", lit(false))
    };
    let before = delta.version();
    let regenerated = super::write::regenerated_columns(&delta, table)?;
    let properties =
        super::parquet_props::for_writes_into(&delta, Some(staged.schema().as_arrow()));
    let mut merge = delta
        .merge(staged, on)
        .with_writer_properties(properties)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_session_state(super::session_state(session))
        .with_commit_properties(commit.properties());
    // Replaced in place: a version this logical time opened, when it changes again.
    let in_place: Vec<&String> = data
        .iter()
        .filter(|c| !table.key.contains(&c.as_str()))
        .collect();
    let result = async {
        // The first clause whose predicate holds applies: a version opened at this same
        // `run_at` is deleted or replaced rather than closed (its predecessor ends at `run_at`
        // still, so the history keeps no version of no length).
        merge = merge.when_matched_delete(|d| {
            d.predicate(qualified("s", DELETE_FLAG).and(opened_now("t")))
        })?;
        merge = merge.when_matched_update(|u| close(u.predicate(qualified("s", DELETE_FLAG))))?;
        if !in_place.is_empty() {
            merge = merge.when_matched_update(|u| {
                let u = in_place
                    .iter()
                    .fold(u, |u, c| u.update(c.as_str(), qualified("s", c)));
                regenerated
                    .iter()
                    .fold(u, |u, (c, null)| u.update(c.as_str(), lit(null.clone())))
                    .predicate(changed("s", "t").and(opened_now("t")))
            })?;
        }
        merge = merge.when_matched_update(|u| close(u.predicate(changed("s", "t"))))?;
        merge = merge.when_not_matched_insert(|i| {
            let i = i.predicate(Expr::Not(Box::new(qualified("s", DELETE_FLAG))));
            data.iter()
                .fold(i, |i, c| i.set(c.as_str(), qualified("s", c)))
                .set("valid_from", run_at.clone())
                .set("valid_to", no_end.clone())
                .set("is_current", lit(true))
        })?;
        if close_missing {
            merge = merge.when_not_matched_by_source_delete(|d| {
                d.predicate(qualified("t", "is_current").and(opened_now("t")))
            })?;
            merge = merge.when_not_matched_by_source_update(|u| {
                close(u.predicate(qualified("t", "is_current")))
            })?;
        }
        merge.await
    }
    .await;
    match result {
        Ok((written, metrics)) => Ok(outcome(
            table,
            &written,
            metrics.num_target_rows_inserted as u64,
            metrics.num_target_rows_updated as u64,
            // Versions opened by this same `run_at` and deleted again.
            metrics.num_target_rows_deleted as u64,
        )),
        Err(error) => {
            warehouse
                .recheck_after_error(table, &commit, before, error)
                .await
        }
    }
}

/// `source` without the rows of keys whose every stored version is closed, when the row is
/// older (by `sequence`, an undated row older than any) than the key's closing: the latest
/// `valid_to` of its versions.
async fn drop_older_than_closing(
    session: &SessionContext,
    table: &'static TableDef,
    delta: &DeltaTable,
    source: DataFrame,
    sequence: &str,
) -> Result<DataFrame> {
    use datafusion::functions_aggregate::expr_fn::{bool_or, max};
    let closed_key = |k: &str| format!("__lakehouse_closed_{k}");
    let closed_at = "__lakehouse_closed_at";
    let closed = super::read::read_loaded(session, table, delta)
        .await?
        .aggregate(
            table.key.iter().map(|k| column(k)).collect(),
            vec![
                max(column("valid_to")).alias(closed_at),
                bool_or(column("is_current")).alias("__lakehouse_has_current"),
            ],
        )?
        .filter(Expr::Not(Box::new(column("__lakehouse_has_current"))))?
        .select(
            table
                .key
                .iter()
                .map(|k| column(k).alias(closed_key(k)))
                .chain(std::iter::once(column(closed_at)))
                .collect::<Vec<Expr>>(),
        )?;
    let kept: Vec<Expr> = source
        .schema()
        .fields()
        .iter()
        .map(|f| column(f.name()))
        .collect();
    let keys: Vec<String> = table.key.iter().map(|k| closed_key(k)).collect();
    let left: Vec<&str> = table.key.to_vec();
    let right: Vec<&str> = keys.iter().map(String::as_str).collect();
    let not_older = column(closed_at)
        .is_null()
        .or(column(sequence).gt_eq(column(closed_at)).is_true());
    Ok(source
        .join(closed, JoinType::Left, &left, &right, None)?
        .filter(not_older)?
        .select(kept)?)
}
