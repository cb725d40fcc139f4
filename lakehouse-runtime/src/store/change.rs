//! Change detection for merge and SCD2 writes: a source row whose change columns equal its
//! stored row's changes nothing, and is not written; nor, in a merge, does a row from an
//! earlier run than the stored one's (a backfill does not undo later runs).

/// The column ordering two versions of a row by the run that made them.
const SEQUENCE_COLUMN: &str = "run_at";

use datafusion::logical_expr::{Expr, Operator, binary_expr, lit};

use super::merge::qualified;
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

/// The column telling which of two versions of a row is newer in a merge: `run_at`, when
/// `table` declares it and `stored` (the columns both sides have) holds it.
pub(crate) fn sequence_column<S: AsRef<str>>(
    table: &TableDef,
    stored: &[S],
) -> Option<&'static str> {
    table
        .column(SEQUENCE_COLUMN)
        .filter(|_| stored.iter().any(|s| s.as_ref() == SEQUENCE_COLUMN))
        .map(|column| column.name)
}

/// Whether the source row aliased `source` replaces the stored row aliased `stored`: one of
/// `columns` differs ([`distinct_any`]), and the source row is [`not_older`].
pub(crate) fn replaces(
    source: &str,
    stored: &str,
    columns: &[&str],
    sequence: Option<&str>,
) -> Expr {
    distinct_any(source, stored, columns).and(not_older(source, stored, sequence))
}

/// Whether the row aliased `source` is from the same run as the row aliased `stored`, or a
/// later one, by the `sequence` column (as Delta Live Tables' `APPLY CHANGES .. SEQUENCE BY`):
/// an undated stored row is older than any, an undated source row newer than none. Without a
/// sequence column, true.
pub(crate) fn not_older(source: &str, stored: &str, sequence: Option<&str>) -> Expr {
    match sequence {
        Some(sequence) => qualified(source, sequence)
            .gt_eq(qualified(stored, sequence))
            .is_true()
            .or(qualified(stored, sequence).is_null()),
        None => lit(true),
    }
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
