//! Dynamic partition overwrite (`#[table(mode = overwrite, overwrite = partitions)]`): the
//! predicate naming the partitions an output has rows in, which the write then replaces.

use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::ident;
use datafusion::scalar::ScalarValue;

use crate::error::Result;

/// The partitions `source` has rows in, as a predicate over the partition `columns` (`None`:
/// no rows, so no partition to replace). `source` is executed for it, once more than the write.
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
    Ok(predicate(columns, partitions))
}

/// `column IN (..)` for one partition column, else one conjunction per partition, OR-ed as a
/// balanced tree (a chain of thousands would be as deep, and the planner recurses).
fn predicate(columns: &[String], partitions: Vec<Vec<ScalarValue>>) -> Option<Expr> {
    if let [column] = columns {
        let (nulls, values): (Vec<ScalarValue>, Vec<ScalarValue>) = partitions
            .into_iter()
            .filter_map(|mut values| values.pop())
            .partition(ScalarValue::is_null);
        let listed = (!values.is_empty())
            .then(|| ident(column).in_list(values.into_iter().map(lit).collect(), false));
        let null = (!nulls.is_empty()).then(|| ident(column).is_null());
        return balanced_or(listed.into_iter().chain(null).collect());
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

    fn names(columns: &[&str]) -> Vec<String> {
        columns.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn one_column_is_an_in_list_and_null_is_is_null() {
        let partitions = vec![
            vec![ScalarValue::from("a")],
            vec![ScalarValue::Utf8(None)],
            vec![ScalarValue::from("b")],
        ];
        let region = predicate(&names(&["region"]), partitions).expect("a predicate");
        assert_eq!(
            region.to_string(),
            "region IN ([Utf8(\"a\"), Utf8(\"b\")]) OR region IS NULL"
        );
        assert_eq!(predicate(&names(&["region"]), Vec::new()), None);
    }

    #[test]
    fn several_columns_are_a_balanced_disjunction_of_conjunctions() {
        let partitions = (0..3)
            .map(|day| vec![ScalarValue::from(day), ScalarValue::from("x")])
            .collect();
        let both = predicate(&names(&["day", "kind"]), partitions).expect("a predicate");
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
