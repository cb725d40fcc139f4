//! Change detection for merge and SCD2 writes: a source row whose change columns equal its
//! stored row's changes nothing, and is not written.

use datafusion::logical_expr::{Expr, Operator, binary_expr, lit};

use super::write::qualified;
use crate::table::TableDef;

/// `table`'s change columns ([`TableDef::change_columns_or_default`]) that `stored` (the
/// columns both sides have) holds: a declared column the stored table lacks cannot differ.
pub(crate) fn compared_columns<S: AsRef<str>>(table: &TableDef, stored: &[S]) -> Vec<&'static str> {
    table
        .change_columns_or_default()
        .into_iter()
        .filter(|c| stored.iter().any(|s| s.as_ref() == *c))
        .collect()
}

/// Whether any of `columns` differs between the rows aliased `left` and `right`, NULLs
/// compared as values (`IS DISTINCT FROM`); false when there are no columns.
pub(crate) fn distinct_any(left: &str, right: &str, columns: &[&str]) -> Expr {
    columns
        .iter()
        .map(|c| {
            binary_expr(
                qualified(left, c),
                Operator::IsDistinctFrom,
                qualified(right, c),
            )
        })
        .reduce(Expr::or)
        .unwrap_or_else(|| lit(false))
}
