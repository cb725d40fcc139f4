//! Deleting rows by key: a hard delete for append, overwrite and merge tables, closing the
//! current version for SCD2 tables (their history is kept).

use datafusion::common::Column;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{Expr, lit};
use datafusion::scalar::ScalarValue;

use super::Warehouse;
use super::commit::{CommitTags, committed_version};
use super::merge::{key_match, qualified};
use super::write::{WriteOutcome, outcome};
use crate::error::{Error, Result};
use crate::table::{TableDef, Timestamp, WriteMode};

impl Warehouse {
    /// Deletes the rows of `table` whose key is in `keys` (a DataFrame with the key columns), in
    /// one commit. For an SCD2 table the current versions are closed at `run_at` instead. A table
    /// never written is left alone (no version); a table without a key is an error;
    /// `transaction` makes the delete idempotent (a delete already committed is skipped, and the
    /// outcome gives the table's version).
    pub async fn delete_keys(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
        keys: DataFrame,
        run_at: Timestamp,
        transaction: Option<(String, i64)>,
    ) -> Result<WriteOutcome> {
        let qualified_name = table.qualified_name();
        if table.key.is_empty() {
            return Err(Error::msg(format!(
                "cannot delete by key from {qualified_name}: it declares no `key(..)`"
            )));
        }
        refuse_other_key_types(table, keys.schema())?;
        let Some(delta) = self.load(table).await? else {
            return Ok(outcome_nothing(table));
        };
        if let Some((app_id, version)) = &transaction
            && let Some(done) = committed_version(&delta, table, app_id).await?
            && done >= *version
        {
            return Ok(WriteOutcome {
                version: delta.version(),
                ..outcome_nothing(table)
            });
        }
        // Delta refuses to remove an append-only table's rows, but only at the commit, once the
        // files are rewritten (left behind as garbage). Refused only when a key matches: an
        // erasure sweep over every table must pass the ones not holding the keys.
        if delta
            .snapshot()
            .is_ok_and(|s| s.snapshot().table_properties().append_only == Some(true))
        {
            let matching = self.rows_matching(session, table, keys.clone()).await?;
            if matching == 0 {
                return Ok(WriteOutcome {
                    version: delta.version(),
                    ..outcome_nothing(table)
                });
            }
            return Err(Error::Refused(format!(
                "cannot delete by key from {qualified_name}: it is append-only \
                 (`delta.appendOnly`), and Delta removes none of its rows ({matching} match \
                 the keys); declare `property(key = \"delta.appendOnly\", value = \"false\")`, \
                 and let its pipeline write it once (which stores the property), to delete from \
                 it"
            )));
        }
        // Keys matched under another key than the stored one would delete other rows (every
        // line of an order, under a key narrowed to the order).
        if let Some(stored) = super::create::other_stored_key(table, &delta)? {
            return Err(Error::schema(
                &qualified_name,
                format!(
                    "cannot delete by key ({}): the table was written with key ({stored}), and \
                     rows would be matched by other columns; declare the key again",
                    table.key.join(", ")
                ),
            ));
        }
        if table.mode == WriteMode::Scd2 {
            // Closing at a run_at before the history's end would end versions before they began.
            super::scd2::refuse_going_back(session, table, &delta, run_at, None).await?;
        }
        let keys = keys.select(key_columns(table))?.distinct()?;
        let commit = CommitTags::transaction(transaction);
        let before = delta.version();
        let properties = super::parquet_props::for_writes_into(&delta, None);
        let merge = super::guard::guard(delta)
            .merge(keys, key_match(table))
            .with_writer_properties(properties)
            .with_source_alias("s")
            .with_target_alias("t")
            .with_session_state(super::session_state(session))
            .with_commit_properties(commit.properties());
        let result = async {
            let merge = if table.mode == WriteMode::Scd2 {
                let end = lit(ScalarValue::TimestampMicrosecond(
                    Some(run_at.0),
                    Some("UTC".into()),
                ));
                // A version opened at `run_at` itself would be closed with no length: the
                // history keeps none (as an SCD2 write), so it is deleted.
                let opened_now =
                    qualified("t", "is_current").and(qualified("t", "valid_from").eq(end.clone()));
                merge
                    .when_matched_delete(|d| d.predicate(opened_now))?
                    .when_matched_update(|u| {
                        u.predicate(qualified("t", "is_current"))
                            .update("valid_to", end)
                            .update("is_current", lit(false))
                    })?
            } else {
                merge.when_matched_delete(|d| d)?
            };
            merge.await
        }
        .await;
        match result {
            Ok((written, metrics)) => Ok(WriteOutcome {
                // A delete matching no row commits nothing (nor its transaction).
                committed: written.version() != before,
                ..outcome(
                    table,
                    &written,
                    0,
                    metrics.num_target_rows_updated as u64,
                    metrics.num_target_rows_deleted as u64,
                )
            }),
            Err(error) => {
                self.recheck_after_error(table, &commit, before, error)
                    .await
            }
        }
    }
}

impl Warehouse {
    /// How many stored rows of `table` have one of `keys` (its key columns).
    async fn rows_matching(
        &self,
        session: &SessionContext,
        table: &'static TableDef,
        keys: DataFrame,
    ) -> Result<usize> {
        let keys = keys.select(key_columns(table))?.distinct()?.alias("s")?;
        let rows = self.read(session, table).await?.alias("t")?;
        let matching = rows.join_on(
            keys,
            datafusion::common::JoinType::LeftSemi,
            [key_match(table)],
        )?;
        Ok(matching.count().await?)
    }
}

/// `table`'s key columns, as the deletion keys' columns are selected.
fn key_columns(table: &TableDef) -> Vec<Expr> {
    table
        .key
        .iter()
        .map(|k| Expr::Column(Column::new_unqualified(*k)))
        .collect()
}

fn outcome_nothing(table: &TableDef) -> WriteOutcome {
    WriteOutcome {
        table: table.qualified_name(),
        version: None,
        committed: false,
        rows_inserted: 0,
        rows_updated: 0,
        rows_deleted: 0,
        stats: None,
    }
}

/// Refuses deletion keys whose columns are not of `table`'s key types: they would be compared
/// after DataFusion's coercion (text against a number compares as numbers: "00123" and "123"
/// both match 123; a float cast to an integer key truncates). Encodings of one type (string
/// views, dictionaries, time zones) and exact widenings (an `i32` for an `i64` key, seconds or
/// milliseconds for a timestamp, a decimal of the same scale) are the same values.
pub(crate) fn refuse_other_key_types(
    table: &TableDef,
    keys: &datafusion::common::DFSchema,
) -> Result<()> {
    use crate::table::LogicalType;
    use arrow::datatypes::{DataType, TimeUnit};
    let qualified_name = table.qualified_name();
    for key in table.key {
        let expected = table
            .column(key)
            .map(|c| c.data_type)
            .ok_or_else(|| Error::msg(format!("{qualified_name}: no key column `{key}`")))?;
        let named: Vec<&arrow::datatypes::FieldRef> = keys
            .fields()
            .iter()
            .filter(|field| field.name() == key)
            .collect();
        let given = match named.as_slice() {
            [one] => one.data_type(),
            [] => {
                return Err(Error::schema(
                    &qualified_name,
                    format!("cannot delete by key: the keys have no column `{key}`"),
                ));
            }
            _ => {
                return Err(Error::schema(
                    &qualified_name,
                    format!(
                        "cannot delete by key: the keys have {} columns named `{key}` (from a \
                         join?): select one",
                        named.len()
                    ),
                ));
            }
        };
        let same = match (LogicalType::from_arrow(given), expected) {
            (Some(logical), _) if logical == expected => true,
            (_, LogicalType::Int64) => matches!(given, DataType::Int32),
            (_, LogicalType::Timestamp) => matches!(
                given,
                DataType::Timestamp(TimeUnit::Second | TimeUnit::Millisecond, _)
            ),
            (Some(LogicalType::Decimal { scale, .. }), LogicalType::Decimal { scale: s, .. }) => {
                scale == s
            }
            _ => false,
        };
        if !same {
            return Err(Error::schema(
                &qualified_name,
                format!(
                    "cannot delete by key: key column `{key}` of the keys is {given}, the \
                     table's is {sql}; cast the keys to {sql} (values of another type would be \
                     matched after a conversion, not exactly)",
                    // (`CAST(.. AS TIMESTAMP)` gives nanoseconds in DataFusion.)
                    sql = match expected {
                        LogicalType::Timestamp => "TIMESTAMP(6)".to_owned(),
                        other => other.sql_name(),
                    }
                ),
            ));
        }
    }
    Ok(())
}
