//! The executing backend of the typed API: expressions are DataFusion `Expr`s.

use datafusion::common::{Column, TableReference};
use datafusion::functions_aggregate::expr_fn as aggregate;
use datafusion::logical_expr::Expr;

use crate::table::{LogicalType, TableDef};

/// A DataFusion expression.
pub(crate) type RawExpr = Expr;

/// The qualifier frames of `table` carry: `schema.table`, so equally named columns of two joined
/// tables stay distinct.
pub(crate) fn qualifier(table: &TableDef) -> TableReference {
    TableReference::partial(table.schema, table.name)
}

/// Column `name` of `table`, qualified; `Column::new` keeps the name's case (unlike `col()`).
pub(crate) fn column(table: &'static TableDef, name: &str) -> RawExpr {
    Expr::Column(Column::new(Some(qualifier(table)), name))
}

/// Column `name` of the copy of a table joined in role `role` (`Role`), qualified by the role.
pub(crate) fn role_column(role: &str, name: &str) -> RawExpr {
    Expr::Column(Column::new(Some(TableReference::bare(role)), name))
}

/// `expr AS name`.
pub(crate) fn alias(expr: RawExpr, name: &str) -> RawExpr {
    expr.alias(name)
}

/// [`cast`], whose failure on a value names `label`.
pub(crate) fn cast_named(
    expr: RawExpr,
    to: LogicalType,
    label: String,
    advice: &'static str,
) -> RawExpr {
    crate::frame::named_cast::cast_named(expr, to.arrow_type(), label, advice)
}

/// `sum(expr)`.
pub(crate) fn sum(expr: RawExpr) -> RawExpr {
    aggregate::sum(expr)
}

/// `sum(expr)` of integers, exact: over `DECIMAL(38, 0)`, which no sum of `i64` values
/// overflows (DataFusion's `i64` sum wraps around silently).
pub(crate) fn exact_integer_sum(expr: RawExpr) -> RawExpr {
    let exact = LogicalType::Decimal {
        precision: 38,
        scale: 0,
    };
    aggregate::sum(datafusion::logical_expr::cast(expr, exact.arrow_type()))
}

/// `sum(expr)` of decimals of scale `scale` over `DECIMAL(76, scale)`: no sum of 38-digit
/// values overflows it, and the cast to the column's declared type checks the total.
pub(crate) fn wide_decimal_sum(expr: RawExpr, scale: i8) -> RawExpr {
    aggregate::sum(datafusion::logical_expr::cast(
        expr,
        arrow::datatypes::DataType::Decimal256(76, scale),
    ))
}

/// `avg(expr)`.
pub(crate) fn avg(expr: RawExpr) -> RawExpr {
    aggregate::avg(expr)
}

/// `avg(expr)` of decimals of more than 34 digits and scale `scale`, over a 72-digit decimal
/// (DataFusion's mean, at `scale + 4`, then has 76): no mean the values' column holds
/// overflows.
pub(crate) fn wide_decimal_avg(expr: RawExpr, scale: i8) -> RawExpr {
    aggregate::avg(datafusion::logical_expr::cast(
        expr,
        arrow::datatypes::DataType::Decimal256(72, scale),
    ))
}
