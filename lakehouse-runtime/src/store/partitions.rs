//! Dynamic partition overwrite (`#[table(mode = overwrite, overwrite = partitions)]`): a write
//! replaces the partitions its rows are in. The files are written first, in one pass over the
//! output, and their partitions' old files are removed in the same commit
//! ([`overwrite_partitions`]); a table that path cannot take (CHECK constraints, column
//! mapping) is written by delta-rs with a predicate naming the partitions, found by one more
//! pass ([`written_partitions`]).

use std::collections::{HashMap, HashSet};

use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::ident;
use datafusion::scalar::ScalarValue;
use deltalake::kernel::scalars::ScalarExt as _;
use deltalake::kernel::{Action, DataType, StructType};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableError};

use super::commit::CommitTags;
use crate::error::Result;

/// Writes `source` into `delta`, a partitioned table, replacing the partitions it has rows in,
/// in one commit: its files are encoded in parallel as [`super::sink::write`]'s are, then every
/// stored file of a partition they were written to is removed. No rows: nothing is replaced.
/// Returns the table's state after the commit and the rows written.
pub(super) async fn overwrite_partitions(
    delta: DeltaTable,
    source: DataFrame,
    commit: CommitTags,
) -> std::result::Result<(DeltaTableState, u64), DeltaTableError> {
    let state = delta.snapshot()?.clone();
    let columns = state.metadata().partition_columns().to_vec();
    let schema = state.snapshot().schema();
    let (adds, rows) =
        super::sink::encode_plan(&state, &delta, source, None, columns.clone()).await?;
    let written: HashSet<PartitionKey> = adds
        .iter()
        .map(|add| partition_key(&add.partition_values, &columns, &schema))
        .collect::<std::result::Result<_, _>>()?;
    let mut removes = Vec::new();
    let mut removed_rows = Some(0u64);
    for file in state.log_data() {
        let stored = file.partition_values_map();
        let key = partition_key(&stored, &columns, &schema).unwrap_or_else(|error| {
            // Compared as written: a value another writer spelled oddly only fails to match.
            tracing::warn!(file = %file.path(), %error, "a stored partition value does not parse");
            columns
                .iter()
                .map(|column| stored.get(column).cloned().flatten())
                .collect()
        });
        if written.contains(&key) {
            removed_rows = removed_rows
                .zip(file.num_records())
                .map(|(sum, rows)| sum.saturating_add(rows as u64));
            removes.push(Action::Remove(file.remove_action(true)));
        }
    }
    let mut metrics = serde_json::json!({
        "num_added_rows": rows,
        "num_added_files": adds.len(),
        "num_removed_files": removes.len(),
        "num_partitions": written.len(),
    });
    if let Some(removed_rows) = removed_rows {
        metrics["num_removed_rows"] = serde_json::json!(removed_rows);
    }
    let operation = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(columns.clone()),
        // The partitions replaced (as `history` shows them): delta-rs's conflict check refuses
        // the commit when another writer changed data in one of them meanwhile. Without a
        // predicate, it would let any concurrent change through.
        predicate: replaced_predicate(&columns, &written, &state),
    };
    let actions = adds.into_iter().map(Action::Add).chain(removes).collect();
    let finalized = super::sink::commit_actions(
        &state,
        delta.log_store(),
        actions,
        operation,
        metrics,
        &commit,
        false,
    )
    .await?;
    Ok((finalized.snapshot(), rows))
}

/// The SQL predicate naming the `written` partitions (`None`: none written, so none replaced).
/// A value that does not convert back to its column's type makes it `true`, every partition:
/// without a predicate delta-rs checks no concurrent add against the commit at all.
fn replaced_predicate(
    columns: &[String],
    written: &HashSet<PartitionKey>,
    state: &DeltaTableState,
) -> Option<String> {
    if written.is_empty() {
        return None;
    }
    Some(
        naming_partitions(columns, written, state.snapshot().arrow_schema().as_ref())
            .unwrap_or_else(|| "true".to_owned()),
    )
}

/// The SQL predicate naming the `written` partitions of a table of `schema`, if every value
/// converts to its column's type.
fn naming_partitions(
    columns: &[String],
    written: &HashSet<PartitionKey>,
    schema: &arrow::datatypes::Schema,
) -> Option<String> {
    let types = columns
        .iter()
        .map(|column| Some(schema.field_with_name(column).ok()?.data_type().clone()))
        .collect::<Option<Vec<_>>>()?;
    let mut keys: Vec<&PartitionKey> = written.iter().collect();
    keys.sort();
    let partitions = keys
        .into_iter()
        .map(|key| {
            key.iter()
                .zip(&types)
                .map(|(value, data_type)| match value {
                    Some(text) => ScalarValue::try_from_string(text.clone(), data_type).ok(),
                    None => ScalarValue::try_from(data_type).ok(),
                })
                .collect::<Option<Vec<_>>>()
        })
        .collect::<Option<Vec<_>>>()?;
    let expr = predicate(columns, partitions, Cover::Ranges)?;
    deltalake::delta_datafusion::expr::fmt_expr_to_sql(&expr).ok()
}

/// A partition: its values in partition-column order, each in the canonical text of its type
/// (`None`: NULL), so that two spellings of one timestamp (Spark's and delta-rs's) are one.
type PartitionKey = Vec<Option<String>>;

/// The partition of a file whose `partitionValues` are `raw`.
fn partition_key(
    raw: &HashMap<String, Option<String>>,
    columns: &[String],
    schema: &StructType,
) -> std::result::Result<PartitionKey, DeltaTableError> {
    columns
        .iter()
        .map(|column| {
            let Some(text) = raw.get(column).cloned().flatten() else {
                return Ok(None);
            };
            let Some(DataType::Primitive(primitive)) =
                schema.field(column).map(|field| field.data_type())
            else {
                return Ok(Some(text));
            };
            let value = primitive.parse_scalar(&text).map_err(|error| {
                DeltaTableError::Generic(format!(
                    "partition value {text:?} of column `{column}` is not a {primitive:?}: {error}"
                ))
            })?;
            Ok((!value.is_null()).then(|| value.serialize()))
        })
        .collect()
}

/// The partitions `source` has rows in, as a predicate over the partition `columns` naming
/// exactly them (`None`: no rows, so no partition to replace): delta-rs deletes the rows it
/// matches. `source` is executed for it, once more than the write.
pub(super) async fn written_partitions(
    source: &DataFrame,
    columns: &[String],
) -> Result<Option<Expr>> {
    let keys: Vec<Expr> = columns.iter().map(ident).collect();
    let batches = source
        .clone()
        .aggregate(keys, Vec::new())?
        .collect()
        .await?;
    let mut partitions = Vec::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(columns.len());
            for column in batch.columns() {
                values.push(ScalarValue::try_from_array(column, row)?);
            }
            partitions.push(values);
        }
    }
    Ok(predicate(columns, partitions, Cover::Exactly))
}

/// What a partition predicate matches beside the partitions it is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cover {
    /// Nothing else: the rows it matches are deleted.
    Exactly,
    /// Past [`IN_LIST_MOST`] values of one column, the partitions between them too: for a
    /// conflict check, which then prunes files.
    Ranges,
}

/// `column IN (..)` for one partition column, else one conjunction per partition, OR-ed as a
/// balanced tree (a chain of thousands would be as deep, and the planner recurses). More values
/// than an IN list the conflict check can prune files with ([`IN_LIST_MOST`]) are covered by as
/// many ranges at most: a few partitions between them count as read too, where an IN list too
/// long made every file count (any concurrent change conflicted). DataFusion's simplifier merges
/// IN lists OR-ed on one column, so shorter lists would not do.
fn predicate(columns: &[String], partitions: Vec<Vec<ScalarValue>>, cover: Cover) -> Option<Expr> {
    if let [column] = columns {
        let (nulls, mut values): (Vec<ScalarValue>, Vec<ScalarValue>) = partitions
            .into_iter()
            .filter_map(|mut values| values.pop())
            .partition(ScalarValue::is_null);
        let null = (!nulls.is_empty()).then(|| ident(column).is_null());
        if values.len() <= IN_LIST_MOST || cover == Cover::Exactly {
            let listed = (!values.is_empty())
                .then(|| ident(column).in_list(values.into_iter().map(lit).collect(), false));
            return balanced_or(listed.into_iter().chain(null).collect());
        }
        values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let ranges = values
            .chunks(values.len().div_ceil(IN_LIST_MOST))
            .filter_map(|chunk| {
                let (first, last) = (chunk.first()?, chunk.last()?);
                Some(
                    ident(column)
                        .gt_eq(lit(first.clone()))
                        .and(ident(column).lt_eq(lit(last.clone()))),
                )
            });
        return balanced_or(ranges.chain(null).collect());
    }
    let terms = partitions
        .into_iter()
        .filter_map(|values| {
            columns
                .iter()
                .zip(values)
                .map(|(column, value)| {
                    if value.is_null() {
                        ident(column).is_null()
                    } else {
                        ident(column).eq(lit(value))
                    }
                })
                .reduce(Expr::and)
        })
        .collect();
    balanced_or(terms)
}

/// The most values of an IN list the conflict check prunes files with (DataFusion's pruning
/// takes no longer list).
const IN_LIST_MOST: usize = 20;

/// `terms` OR-ed pairwise, level by level (`None` for no term).
fn balanced_or(mut terms: Vec<Expr>) -> Option<Expr> {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut pairs = terms.into_iter();
        while let Some(left) = pairs.next() {
            next.push(match pairs.next() {
                Some(right) => left.or(right),
                None => left,
            });
        }
        terms = next;
    }
    terms.pop()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::Table;
    use crate::store::test_support::{temp_warehouse, write_rows};

    /// Sales by region, partitions replaced.
    #[derive(Table, serde::Serialize)]
    #[table(schema = "test", name = "regional", partition_by(region), mode = overwrite,
            overwrite = partitions)]
    struct Regional {
        region: String,
        amount: i64,
    }

    fn sales(region: &str, amount: i64) -> Regional {
        Regional {
            region: region.to_owned(),
            amount,
        }
    }

    /// A warehouse whose table holds a north and a south row, and the table as loaded then.
    async fn north_and_south() -> (tempfile::TempDir, crate::store::Warehouse, DeltaTable) {
        let (dir, warehouse) = temp_warehouse();
        write_rows(
            &warehouse,
            Regional::DEF,
            &[sales("north", 1), sales("south", 2)],
        )
        .await;
        let loaded = warehouse
            .load(Regional::DEF)
            .await
            .expect("load")
            .expect("exists");
        (dir, warehouse, loaded)
    }

    /// `rows` as a frame of `session`.
    fn frame(session: &datafusion::prelude::SessionContext, rows: &[Regional]) -> DataFrame {
        let batches = crate::frame::batches_from_rows(Regional::DEF.output_arrow_schema(), rows)
            .expect("rows");
        session.read_batches(batches).expect("frame")
    }

    #[tokio::test]
    async fn a_concurrent_change_conflicts_in_a_replaced_partition_only() {
        // These writes read version 1; other processes then replace south, then north.
        let (_dir, warehouse, stale) = north_and_south().await;
        let session = warehouse.session();
        let frame = |rows: &[Regional]| frame(&session, rows);
        let tags = CommitTags::write_id_only(serde_json::json!("test"));
        let replace =
            |rows: &[Regional]| overwrite_partitions(stale.clone(), frame(rows), tags.clone());
        replace(&[sales("south", 20), sales("east", 3)])
            .await
            .expect("nothing changed meanwhile");
        let history = warehouse.history(Regional::DEF, 1).await.expect("history");
        assert_eq!(
            history[0].parameters.get("predicate"),
            Some(&serde_json::json!("region IN ('east', 'south')"))
        );
        assert_eq!(history[0].metric("num_removed_rows"), Some(1));
        // North: the concurrent change was elsewhere.
        let (state, _) = replace(&[sales("north", 10)])
            .await
            .expect("no conflict in another partition");
        assert_eq!(state.version(), 3);
        // South: replaced meanwhile, so this overwrite would have read rows it did not see.
        let error = replace(&[sales("south", 30)])
            .await
            .expect_err("a conflict in the same partition");
        assert!(error.to_string().contains("concurrent"), "{error}");
    }

    #[tokio::test]
    async fn a_partition_value_not_converted_back_makes_the_commit_read_every_partition() {
        let (_dir, warehouse, stale) = north_and_south().await;
        let state = stale.snapshot().expect("state");
        // `amount` is an integer: "many" is no value of it.
        let odd = HashSet::from([vec![Some("many".to_owned())]]);
        let amount = names(&["amount"]);
        assert_eq!(
            replaced_predicate(&amount, &odd, state).as_deref(),
            Some("true")
        );
        assert_eq!(replaced_predicate(&amount, &HashSet::new(), state), None);
        // Another process writes a new partition meanwhile (adds, no remove). A commit reading
        // `true` conflicts with it; without a predicate, adds are not checked.
        let session = warehouse.session();
        let tags = CommitTags::write_id_only(serde_json::json!("test"));
        overwrite_partitions(
            stale.clone(),
            frame(&session, &[sales("east", 3)]),
            tags.clone(),
        )
        .await
        .expect("east written");
        let commit = |predicate: Option<&str>| {
            let operation = DeltaOperation::Write {
                mode: SaveMode::Overwrite,
                partition_by: Some(names(&["region"])),
                predicate: predicate.map(str::to_owned),
            };
            super::super::sink::commit_actions(
                state,
                stale.log_store(),
                Vec::new(),
                operation,
                serde_json::json!({}),
                &tags,
                false,
            )
        };
        let error = commit(Some("true")).await.expect_err("a conflict");
        assert!(error.to_string().contains("concurrent"), "{error}");
        commit(None).await.expect("not checked");
    }

    fn names(columns: &[&str]) -> Vec<String> {
        columns.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn partition_texts_are_compared_by_value() {
        use deltalake::kernel::{DecimalType, PrimitiveType, StructField};
        let schema = StructType::try_new([
            StructField::new("hour", DataType::TIMESTAMP, true),
            StructField::new(
                "price",
                DataType::Primitive(PrimitiveType::Decimal(
                    DecimalType::try_new(6, 2).expect("decimal"),
                )),
                true,
            ),
        ])
        .expect("schema");
        let columns = names(&["hour", "price"]);
        let key = |hour: Option<&str>, price: &str| {
            let raw = HashMap::from([
                ("hour".to_owned(), hour.map(str::to_owned)),
                ("price".to_owned(), Some(price.to_owned())),
            ]);
            partition_key(&raw, &columns, &schema).expect("parsed")
        };
        // Spark's spelling and delta-rs's of one timestamp.
        assert_eq!(
            key(Some("2026-11-01 06:00:00"), "1.50"),
            key(Some("2026-11-01 06:00:00.000000"), "1.50")
        );
        assert_ne!(
            key(Some("2026-11-01 06:00:00"), "1.50"),
            key(Some("2026-11-01 07:00:00"), "1.50")
        );
        // NULL is absent, or an empty text.
        assert_eq!(key(None, "1.50"), key(Some(""), "1.50"));
        let raw = HashMap::from([("hour".to_owned(), Some("yesterday".to_owned()))]);
        let error = partition_key(&raw, &columns, &schema).expect_err("not a timestamp");
        assert!(
            error
                .to_string()
                .contains("partition value \"yesterday\" of column `hour`"),
            "{error}"
        );
    }

    #[test]
    fn one_column_is_an_in_list_and_null_is_is_null() {
        let partitions = vec![
            vec![ScalarValue::from("a")],
            vec![ScalarValue::Utf8(None)],
            vec![ScalarValue::from("b")],
        ];
        let region =
            predicate(&names(&["region"]), partitions, Cover::Ranges).expect("a predicate");
        assert_eq!(
            region.to_string(),
            "region IN ([Utf8(\"a\"), Utf8(\"b\")]) OR region IS NULL"
        );
        assert_eq!(
            predicate(&names(&["region"]), Vec::new(), Cover::Ranges),
            None
        );
        // More values than one prunable IN list: 20 ranges at most for a conflict check.
        let many: Vec<Vec<ScalarValue>> = (0..45).map(|n| vec![ScalarValue::from(n)]).collect();
        let days = predicate(&names(&["day"]), many.clone(), Cover::Ranges).expect("a predicate");
        assert_eq!(days.to_string().matches(" >= ").count(), 15, "{days}");
        assert!(
            days.to_string()
                .starts_with("day >= Int32(0) AND day <= Int32(2)"),
            "{days}"
        );
        // What a write replaces is named exactly, however many.
        let exact = predicate(&names(&["day"]), many, Cover::Exactly).expect("a predicate");
        assert!(
            exact.to_string().starts_with("day IN ([Int32(0), Int32(1)")
                && !exact.to_string().contains(" >= "),
            "{exact}"
        );
    }

    #[tokio::test]
    async fn replacing_many_partitions_conflicts_only_near_those() {
        let (_dir, warehouse, stale) = north_and_south().await;
        let session = warehouse.session();
        let frame = |rows: &[Regional]| frame(&session, rows);
        let tags = CommitTags::write_id_only(serde_json::json!("test"));
        overwrite_partitions(stale.clone(), frame(&[sales("south", 20)]), tags.clone())
            .await
            .expect("south replaced");
        // 25 other regions and the north: more values than a prunable IN list, which made
        // every file count as read (south's change conflicted).
        let mut rows: Vec<Regional> = (0..25).map(|n| sales(&format!("r{n:02}"), n)).collect();
        rows.push(sales("north", 10));
        overwrite_partitions(stale, frame(&rows), tags)
            .await
            .expect("no conflict: south is not among them");
    }

    #[test]
    fn several_columns_are_a_balanced_disjunction_of_conjunctions() {
        let partitions = (0..3)
            .map(|day| vec![ScalarValue::from(day), ScalarValue::from("x")])
            .collect();
        let both =
            predicate(&names(&["day", "kind"]), partitions, Cover::Ranges).expect("a predicate");
        assert_eq!(
            both.to_string(),
            "day = Int32(0) AND kind = Utf8(\"x\") OR day = Int32(1) AND kind = Utf8(\"x\") OR day = Int32(2) AND kind = Utf8(\"x\")"
        );
        // 10 000 partitions nest 14 levels deep, not 10 000.
        let many: Vec<Expr> = (0..10_000).map(|n| lit(n).eq(lit(n))).collect();
        fn depth(expr: &Expr) -> usize {
            match expr {
                Expr::BinaryExpr(binary) if binary.op == datafusion::logical_expr::Operator::Or => {
                    1 + depth(&binary.left).max(depth(&binary.right))
                }
                _ => 0,
            }
        }
        assert_eq!(depth(&balanced_or(many).expect("terms")), 14);
    }
}
