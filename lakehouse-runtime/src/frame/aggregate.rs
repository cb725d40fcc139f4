//! Typed aggregation: [`Frame::group_by`](super::Frame::group_by) groups rows by key expressions,
//! and [`Grouped::select_into`] fills a table from the keys and typed aggregates ([`sum`],
//! [`count`], [`min`], …), checked by the compiler like any projection.

use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn as df_aggregate;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr_rewriter::normalize_col;
use datafusion::logical_expr::utils::find_aggregate_exprs;

use super::Frame;
use super::conform::conform_output;
use super::typed::Typed;
use crate::error::{Error, Result};
use crate::table::{ColumnType, SelectFor, Table, Values};

/// Rows grouped by key expressions ([`Frame::group_by`](super::Frame::group_by)): one output row
/// per distinct key, filled by [`Grouped::select_into`].
pub struct Grouped {
    df: DataFrame,
    keys: Vec<Expr>,
}

impl Grouped {
    pub(super) fn new(df: DataFrame, keys: Vec<Expr>) -> Grouped {
        Grouped { df, keys }
    }

    /// Projects each group onto table `U`: every column is a group key (or an expression of the
    /// keys), an aggregate ([`sum`](crate::table::sum), [`count`], [`count_rows`], [`count_distinct`], [`min`],
    /// [`max`], [`avg`](crate::table::avg)) or an expression of aggregates (`typed::<f64>(..)`). A column that is
    /// neither a key nor aggregated is an error naming it.
    ///
    /// Without keys (`group_by([])`) the result is one row, even over no rows at all: then
    /// counts are 0 and sums, minima, maxima and averages NULL, which only an `Option` column
    /// can hold (a NOT NULL column fails the write, naming it).
    ///
    /// # Examples
    ///
    /// ```ignore
    /// use SilverErpSales as s;
    /// sales
    ///     .group_by([s::customer_id.expr()])
    ///     .select_into(CustomerTotalsSelect {
    ///         customer_id: s::customer_id,       // a key
    ///         orders: count_distinct(s::order_id),
    ///         quantity: sum(s::quantity),        // i32 values: an i64 sum
    ///         list_prices: sum(s::unit_price),   // Decimal<10, 2>: any Decimal<_, 2>
    ///         first_order: min(s::order_date),
    ///     })
    /// ```
    pub fn select_into<U: Table>(self, columns: impl SelectFor<U>) -> Result<Frame<U>> {
        let table = U::DEF.qualified_name();
        let columns = columns.into_columns();
        let sources: Vec<Option<String>> =
            columns.iter().map(|c| c.not_null_source.clone()).collect();
        let exprs: Vec<Expr> = columns.into_iter().map(|c| c.expr).collect();
        super::refuse_tables_not_joined(self.df.schema(), &exprs, U::DEF)?;
        super::refuse_tables_not_joined(self.df.schema(), &self.keys, U::DEF)?;
        refuse_extremes_of_outer_join_nulls(self.df.schema(), &exprs, U::DEF)?;
        let aggregates = find_aggregate_exprs(&exprs);
        // Keys as the projection names them: without an alias, columns qualified by their table.
        let keys: Vec<Expr> = self
            .keys
            .into_iter()
            .map(|key| normalize_col(key.unalias(), self.df.logical_plan()))
            .collect::<datafusion::common::Result<_>>()?;
        let aggregated = self
            .df
            .aggregate(keys.clone(), aggregates.clone())
            // A plan that does not hold fails every attempt alike: not retried.
            .map_err(|e| Error::schema(&table, format!("cannot group the rows: {e}")))?;
        // Each key and aggregate is a column of the aggregated rows: the projection reads it
        // from there, as SQL's `SELECT key, sum(x) .. GROUP BY key` does.
        let plan = aggregated.logical_plan().clone();
        let bases: Vec<(Expr, Expr)> = keys
            .iter()
            .chain(&aggregates)
            .map(|e| {
                Ok((
                    e.clone(),
                    datafusion::logical_expr::utils::expr_as_column_expr(e, &plan)?,
                ))
            })
            .collect::<Result<_>>()?;
        let schema = aggregated.schema().clone();
        let mut projected = Vec::with_capacity(exprs.len());
        for expr in exprs {
            let rebased = expr
                .transform_down(|e| {
                    Ok(match bases.iter().find(|(base, _)| *base == e) {
                        Some((_, column)) => Transformed::yes(column.clone()),
                        None => Transformed::no(e),
                    })
                })?
                .data;
            if let Some(stray) = rebased
                .column_refs()
                .into_iter()
                .find(|c| !schema.has_column(c))
            {
                return Err(Error::schema(
                    &table,
                    format!(
                        "`{}` (for column `{}`) is neither a group key nor inside an aggregate \
                         (the keys: {}): add it to `group_by`, or aggregate it (`min`, `max`, \
                         `sum`, ..)",
                        stray.flat_name(),
                        rebased.schema_name(),
                        keys.iter()
                            .map(|k| format!("`{}`", k.schema_name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            projected.push(rebased);
        }
        let df = super::select_naming(aggregated, projected, U::DEF, "groups")?;
        // A group key of an outer join's unmatched side is NULL for those rows, as selected.
        super::refuse_outer_join_nulls(&df, &sources, U::DEF)?;
        Ok(Frame::conformed(conform_output(df, U::DEF)?))
    }
}

/// A computed expression's declared type decides how it is aggregated (a `sum` is cast to a
/// column of its scale): it is checked when the plan is built.
impl<V: ColumnType> Values<V> for Typed<V> {
    fn into_values(self) -> Expr {
        super::declared::declared(self.into_expr(), V::LOGICAL)
    }
}

/// The number of rows of the group (`count(*)`).
pub fn count_rows() -> Typed<i64> {
    Typed::new(datafusion::functions_aggregate::count::count_all())
}

/// The number of non-NULL values of the group.
pub fn count<V>(values: impl Values<V>) -> Typed<i64> {
    Typed::new(df_aggregate::count(values.into_values()))
}

/// The number of distinct non-NULL values of the group.
pub fn count_distinct<V>(values: impl Values<V>) -> Typed<i64> {
    Typed::new(df_aggregate::count_distinct(values.into_values()))
}

/// The smallest value of the group (NULLs aside; NULL if all are).
pub fn min<V: ColumnType>(values: impl Values<V>) -> Typed<V> {
    Typed::new(df_aggregate::min(values.into_values()))
}

/// The largest value of the group (NULLs aside; NULL if all are).
pub fn max<V: ColumnType>(values: impl Values<V>) -> Typed<V> {
    Typed::new(df_aggregate::max(values.into_values()))
}

/// Refuses a NOT NULL column of `table` filled with the `min`, `max`, `sum` or `avg` of a column
/// handle that is nullable in the grouped rows. Only a NOT NULL column's handle compiles there
/// (an `Option` one gives an `Option`), so it is of the side of an outer join that may find no
/// match: a group of such rows has no value, as a bare column of that side has none (the
/// projection checks those). Caught here, the plan test refuses what the first run with an
/// unmatched group would fail on. (A `typed` value is not looked into: it may be of a nullable
/// column, whose all-NULL group the write's NOT NULL assertion names.)
fn refuse_extremes_of_outer_join_nulls(
    schema: &datafusion::common::DFSchema,
    exprs: &[Expr],
    table: &'static crate::table::TableDef,
) -> Result<()> {
    for expr in exprs {
        let Expr::Alias(alias) = expr else { continue };
        let Some((function, column)) = aggregate_of_column(&alias.expr) else {
            continue;
        };
        let declared_not_null = table
            .column(&alias.name)
            .is_some_and(|declared| !declared.nullable);
        let nullable_here = schema
            .qualified_field_from_column(column)
            .is_ok_and(|(_, field)| field.is_nullable());
        if declared_not_null && nullable_here {
            return Err(Error::schema(
                table.qualified_name(),
                format!(
                    "column `{}` is NOT NULL and filled with the {function} of `{}`, which is \
                     NULL here for the rows of an outer join that find no match (a group of \
                     them has no value): declare the column `Option<_>`, or join with \
                     `JoinType::Inner`",
                    alias.name,
                    column.flat_name()
                ),
            ));
        }
    }
    Ok(())
}

/// The aggregate (`min`, `max`, `sum` or `avg`, NULL over no values) and the column handle
/// `expr` takes it of, through the casts and checks [`sum`](crate::table::sum) puts around them.
fn aggregate_of_column(expr: &Expr) -> Option<(&str, &Column)> {
    use datafusion::logical_expr::expr::AggregateFunction;
    /// The column under the casts of a sum.
    fn column_of(expr: &Expr) -> Option<&Column> {
        match expr {
            Expr::Column(column) => Some(column),
            Expr::Cast(cast) => column_of(&cast.expr),
            _ => None,
        }
    }
    match expr {
        Expr::Alias(alias) => aggregate_of_column(&alias.expr),
        Expr::Cast(cast) => aggregate_of_column(&cast.expr),
        Expr::ScalarFunction(f) if f.name() == "cast_named" => aggregate_of_column(f.args.first()?),
        Expr::AggregateFunction(AggregateFunction { func, params }) => {
            let name = func.name();
            let [argument] = params.args.as_slice() else {
                return None;
            };
            matches!(name, "min" | "max" | "sum" | "avg")
                .then(|| column_of(argument).map(|column| (name, column)))
                .flatten()
        }
        _ => None,
    }
}
