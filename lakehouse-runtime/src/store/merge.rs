//! Merge writes: a key's rows de-duplicated, upserts (with deletions) as one MERGE.

use std::sync::Arc;

use datafusion::common::{Column, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{Expr, SortExpr, cast, lit};
use datafusion::scalar::ScalarValue;
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;

use super::commit::CommitTags;
use super::write::{Deletions, WriteOutcome, appended, outcome, regenerated_columns};
use crate::error::Result;
use crate::table::{TableDef, Timestamp};

/// One row per key: the newest by `run_at` when the table has it (the run that wrote the row:
/// an incremental read after a failed run holds several runs' rows of a key), then the one that
/// sorts last by the other non-key columns (declared order, NULLs first). Deterministic whatever
/// the order of the input.
pub(crate) fn dedupe(df: DataFrame, table: &'static TableDef) -> Result<DataFrame> {
    const RUN_AT: &str = "run_at";
    let mut names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // `run_at` first: a stable sort keeps the declared order of the rest.
    names.sort_by_key(|name| name != RUN_AT);
    let column = |name: &str| Expr::Column(Column::new_unqualified(name));
    let key: Vec<Expr> = table.key.iter().map(|k| column(k)).collect();
    let order: Vec<SortExpr> = names
        .iter()
        .filter(|n| !table.key.contains(&n.as_str()))
        .map(|n| column(n).sort(false, false))
        .collect();
    crate::frame::first_per_key(df, key, order)
}

/// `alias.name`.
pub(crate) fn qualified(alias: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(TableReference::bare(alias)), name))
}

/// `t.k1 = s.k1 AND ...` over the key.
pub(crate) fn key_match(table: &TableDef) -> Expr {
    table
        .key
        .iter()
        .map(|k| qualified("t", k).eq(qualified("s", k)))
        .reduce(Expr::and)
        .unwrap_or_else(|| lit(false))
}

/// Upserts `source` (deletions aside, as one MERGE). Source keys are nearly always unique, so
/// the source is streamed through a guard that fails on a repeated key instead of being sorted to
/// de-duplicate it; only then is it de-duplicated and the MERGE run again (nothing was committed).
/// Into a table without rows nothing can match, so unique source rows are simply appended.
pub(super) async fn merge(
    session: &SessionContext,
    delta: DeltaTable,
    source: DataFrame,
    table: &'static TableDef,
    (deletions, run_at): (Deletions, Option<Timestamp>),
    state: Arc<datafusion::execution::SessionState>,
    commit: CommitTags,
) -> Result<WriteOutcome, deltalake::DeltaTableError> {
    let guarded = |source: DataFrame| async move {
        super::unique::guard_unique(session, source, table)
            .await
            .map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))
    };
    let target_empty = delta
        .snapshot()
        .map(|s| s.log_data().num_files() == 0)
        .unwrap_or(false);
    // (Recorded as the MERGE it stands for, reading the whole table: two first writes at once
    // conflict instead of both inserting their keys. A table the parallel path cannot write
    // takes delta-rs's MERGE, which records the same.)
    if target_empty
        && matches!(deletions, Deletions::None | Deletions::MissingFromSource)
        && super::sink::applies_to(table, &delta)
    {
        let unique = guarded(source.clone()).await?;
        let recorded =
            super::sink::Recorded::MergeIntoEmpty(Box::new(super::upsert::merge_operation(table)));
        let written = super::sink::write(
            delta.clone(),
            unique,
            SaveMode::Append,
            commit.clone(),
            recorded,
        )
        .await
        .map(|(snapshot, rows)| appended(table, &snapshot, rows));
        match written {
            Ok(outcome) => return Ok(outcome),
            // Repeated keys, or too many keys to check in memory: de-duplicated by a sort (which
            // spills), the rows stream into the empty table as they would have (the general
            // path holds the source in memory, and nothing can match an empty table).
            // (`is_duplicate` is true of both.)
            Err(e) if super::unique::is_duplicate(&e) => {
                super::unique::log_fallback(table, &e);
                let source = dedupe(source, table)
                    .map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
                let recorded = super::sink::Recorded::MergeIntoEmpty(Box::new(
                    super::upsert::merge_operation(table),
                ));
                return super::sink::write(delta, source, SaveMode::Append, commit, recorded)
                    .await
                    .map(|(snapshot, rows)| appended(table, &snapshot, rows));
            }
            Err(e) => return Err(e),
        }
    }
    let result = match deletions {
        Deletions::None if super::upsert::applies_to(table, &delta) => {
            let streamed = guarded(source.clone()).await?;
            let upserted =
                super::upsert::upsert(session, delta.clone(), streamed, table, commit.clone())
                    .await;
            return match upserted {
                Err(e) if super::unique::is_duplicate(&e) => {
                    super::unique::log_fallback(table, &e);
                    let source = dedupe(source, table)
                        .map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
                    super::upsert::upsert(session, delta, source, table, commit).await
                }
                other => other,
            };
        }
        Deletions::None => {
            let streamed = guarded(source.clone()).await?;
            let upserted = upsert(
                session,
                delta.clone(),
                streamed,
                table,
                (Deletions::None, run_at),
                state.clone(),
                commit.clone(),
            )
            .await;
            match upserted {
                Err(e) if super::unique::is_duplicate(&e) => {
                    super::unique::log_fallback(table, &e);
                    let source = dedupe(source, table)
                        .map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
                    upsert(
                        session,
                        delta,
                        source,
                        table,
                        (Deletions::None, run_at),
                        state,
                        commit,
                    )
                    .await
                }
                other => other,
            }
        }
        deletions => {
            let source = dedupe(source, table)
                .map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
            upsert(
                session,
                delta,
                source,
                table,
                (deletions, run_at),
                state,
                commit,
            )
            .await
        }
    };
    result.map(|(written, metrics)| {
        outcome(
            table,
            &written,
            metrics.num_target_rows_inserted as u64,
            metrics.num_target_rows_updated as u64,
            metrics.num_target_rows_deleted as u64,
        )
    })
}

/// Upsert with optional deletions, as one MERGE. A key missing from a full snapshot, or given
/// to delete, is deleted unless its row is newer than `run_at`, the writing run's time (a later
/// run's: a backfill does not delete it).
async fn upsert(
    session: &SessionContext,
    delta: DeltaTable,
    source: DataFrame,
    table: &'static TableDef,
    (deletions, run_at): (Deletions, Option<Timestamp>),
    state: Arc<datafusion::execution::SessionState>,
    commit: CommitTags,
) -> Result<(DeltaTable, deltalake::operations::merge::MergeMetrics), deltalake::DeltaTableError> {
    let columns: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // The keys to delete are held in memory, counted in the pool, until the MERGE is done.
    let mut held = super::upsert::Held::new(
        session,
        table,
        "delete by key",
        "delete fewer keys per write, or raise the limit",
    );
    let (source, delete_flag, delete_missing) = match deletions {
        Deletions::Keys(keys) => {
            let (kept, keys) = split_deletions(session, &mut held, source, keys, table).await?;
            (with_delete_flag(kept, keys, table)?, true, false)
        }
        Deletions::MissingFromSource => (source, false, true),
        Deletions::None => (source, false, false),
    };
    let properties =
        super::parquet_props::for_writes_into(&delta, Some(source.schema().as_arrow()));
    let regenerated = regenerated_columns(&delta, table)?;
    let mut merge = delta
        .merge(source, key_match(table))
        .with_writer_properties(properties)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_session_state(state)
        .with_commit_properties(commit.properties())
        // Read the source once: its key range then skips target files as the join reads it.
        .with_streaming(true);
    // Stored columns the declaration dropped are NULL in the source: inserted rows get NULL,
    // updated rows keep their value (as `UPDATE SET *` does for columns the source lacks).
    let update_columns: Vec<String> = columns
        .iter()
        .filter(|c| table.column(c).is_some())
        .cloned()
        .collect();
    // Only a row whose change columns differ is updated: an unchanged one is left in its file,
    // and a MERGE that changes nothing commits nothing. (A table that is nothing but its key,
    // or its key and `run_at`, has nothing to update.)
    let compared = super::change::compared_columns(table, &update_columns);
    let sequence = super::change::sequence_column(table, &update_columns);
    // A row newer than the writing run is a later run's: a backfill's deletion leaves it.
    let not_newer = |stored: &str| match (sequence, run_at) {
        (Some(sequence), Some(run_at)) => {
            qualified(stored, sequence).gt(run_at.lit()).is_not_true()
        }
        _ => lit(true),
    };
    if delete_flag {
        merge = merge.when_matched_delete(|d| {
            d.predicate(qualified("s", DELETE_FLAG).and(not_newer("t")))
        })?;
    }
    if !compared.is_empty() {
        merge = merge.when_matched_update(|u| {
            let u = update_columns
                .iter()
                .filter(|c| !table.key.contains(&c.as_str()))
                .fold(u, |u, c| u.update(c.as_str(), qualified("s", c)));
            regenerated
                .iter()
                .fold(u, |u, (c, null)| u.update(c.as_str(), lit(null.clone())))
                .predicate(super::change::replaces("s", "t", &compared, sequence))
        })?;
    }
    merge = merge.when_not_matched_insert(|i| {
        let i = if delete_flag {
            i.predicate(Expr::Not(Box::new(qualified("s", DELETE_FLAG))))
        } else {
            i
        };
        columns
            .iter()
            .fold(i, |i, c| i.set(c.as_str(), qualified("s", c)))
    })?;
    if delete_missing {
        merge = merge.when_not_matched_by_source_delete(|d| d.predicate(not_newer("t")))?;
    }
    merge.await
}

/// The source column that marks a staged deletion.
pub(crate) const DELETE_FLAG: &str = "__lakehouse_delete";

/// The rows of `source` whose key is not among the deletion `keys`, and those keys, each once:
/// a key both written and deleted is deleted (or closed), and a key listed twice is deleted
/// once. (Without this, the MERGE found two source rows for one stored row and failed, at every
/// retry, or deleted a row the source had just inserted or left unchanged.) The keys are read
/// once, into memory counted by `held` (keep it until the write is done): both uses see the
/// same keys.
pub(super) async fn split_deletions(
    session: &SessionContext,
    held: &mut super::upsert::Held,
    source: DataFrame,
    keys: DataFrame,
    table: &'static TableDef,
) -> Result<(DataFrame, DataFrame), deltalake::DeltaTableError> {
    let key_columns: Vec<Expr> = table
        .key
        .iter()
        .map(|k| Expr::Column(Column::new_unqualified(*k)))
        .collect();
    let keys = keys.select(key_columns)?.distinct()?;
    let (keys, _) = held.table(keys, "keys to delete").await?;
    let keys = session.read_table(keys)?;
    let on: Vec<Expr> = table
        .key
        .iter()
        .map(|k| qualified("s", k).eq(qualified("d", k)))
        .collect();
    let kept = source.alias("s")?.join_on(
        keys.clone().alias("d")?,
        datafusion::common::JoinType::LeftAnti,
        on,
    )?;
    Ok((kept, keys))
}

/// `source` with `__lakehouse_delete = false`, unioned with the deletion keys (other columns
/// NULL, flag true).
pub(crate) fn with_delete_flag(
    source: DataFrame,
    keys: DataFrame,
    table: &TableDef,
) -> Result<DataFrame, deltalake::DeltaTableError> {
    let fields: Vec<_> = source.schema().fields().iter().cloned().collect();
    let upserts: Vec<Expr> = fields
        .iter()
        .map(|f| Expr::Column(Column::new_unqualified(f.name())))
        .chain(std::iter::once(lit(false).alias(DELETE_FLAG)))
        .collect();
    let mut deletes = Vec::with_capacity(fields.len() + 1);
    for f in &fields {
        let expr = if table.key.contains(&f.name().as_str()) {
            cast(
                Expr::Column(Column::new_unqualified(f.name())),
                f.data_type().clone(),
            )
        } else {
            lit(ScalarValue::try_from(f.data_type())?)
        };
        deletes.push(expr.alias(f.name()));
    }
    deletes.push(lit(true).alias(DELETE_FLAG));
    let upserts = source.select(upserts)?;
    let deletes = keys.select(deletes)?;
    Ok(upserts.union(deletes)?)
}
