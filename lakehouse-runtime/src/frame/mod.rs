//! Typed DataFrames: [`Frame<T>`] holds a lazy DataFusion plan whose columns are table `T`'s;
//! [`View`] is an intermediate result (after a join); [`Changes<T>`] is an incremental input.

mod aggregate;
mod conform;
mod decimal;
mod declared;
mod fence;
mod keys;
pub(crate) mod named_cast;
mod not_null;
pub(crate) mod pass_through;
mod probe;
mod rows;
mod typed;

use std::collections::HashSet;
use std::marker::PhantomData;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::common::Column;
pub use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, SortExpr, cast};

pub use crate::table::{JoinOn, JoinableWith, on};
pub(crate) use conform::{Strictness, conform, conform_output};
pub(crate) use decimal::FastDecimalCast;
pub(crate) use fence::fenced;
pub(crate) use not_null::{
    as_nullable, assert_file_not_null, assert_partition_value, is_file_assertion,
    is_stored_assertion,
};

pub use crate::table::{AverageInto, Averages, Avg, Sum, SumInto, Sums, Values, avg, sum};
pub use aggregate::{Grouped, count, count_distinct, count_rows, max, min};
pub use keys::{register_functions, sha256_hex, surrogate_key};
pub(crate) use rows::refuse_fields_without_column;
pub use rows::{batches_from_rows, batches_to_rows};
pub use typed::{Computed, Typed, interval, on_values, typed};

use crate::error::{Error, Result};
use crate::table::{Role, SelectFor, Table, TableDef};

/// The rows of table `T` as a lazy DataFusion plan: nothing is read until it is written or
/// collected. Columns are qualified by the table (`silver.erp_sales.order_id`), so two joined
/// tables can share column names. Cloning copies the plan, not the data.
pub struct Frame<T: Table> {
    df: DataFrame,
    _table: PhantomData<fn() -> T>,
}

impl<T: Table> Clone for Frame<T> {
    fn clone(&self) -> Frame<T> {
        Frame::conformed(self.df.clone())
    }
}

impl<T: Table> Frame<T> {
    /// A frame over `df`, which must already conform to `T` (the runtime's own reads).
    pub(crate) fn conformed(df: DataFrame) -> Frame<T> {
        Frame {
            df,
            _table: PhantomData,
        }
    }

    /// A frame over any DataFrame whose columns are `T`'s data columns (any order; string
    /// encodings and time zones are converted). Missing, extra or mistyped columns are an error
    /// naming them.
    pub fn from_dataframe(df: DataFrame) -> Result<Frame<T>> {
        Ok(Frame::conformed(conform_output(df, T::DEF)?))
    }

    /// The table's definition.
    pub fn table(&self) -> &'static TableDef {
        T::DEF
    }

    /// The underlying DataFusion DataFrame.
    pub fn dataframe(&self) -> &DataFrame {
        &self.df
    }

    /// The underlying DataFusion DataFrame, for operations this API does not wrap.
    pub fn into_dataframe(self) -> DataFrame {
        self.df
    }

    /// Keeps the rows where `predicate` is true.
    pub fn filter(self, predicate: impl Into<Expr>) -> Result<Frame<T>> {
        let predicate = predicate.into();
        refuse_outside_frame(self.df.schema(), &predicate, "the filter")?;
        Ok(Frame::conformed(self.df.filter(predicate)?))
    }

    /// Projects onto table `U`: one typed expression per column, checked by the compiler.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// sales.select_into(DimStoreSelect {
    ///     store_key: surrogate_key([SilverErpSales::store_id]),
    ///     store_id: SilverErpSales::store_id.assume_not_null(), // Option<String> fills String
    ///     store_name: SilverErpSales::store_name, // Col<_, Option<String>> fills Option<String>
    ///     city: SilverErpSales::city,
    ///     state: SilverErpSales::state,
    ///     run_at: cx.run_at(),                    // a literal
    /// })
    /// ```
    pub fn select_into<U: Table>(self, columns: impl SelectFor<U>) -> Result<Frame<U>> {
        View { df: self.df }.select_into(columns)
    }

    /// Joins with `right` on typed key pairs built with [`on`]. `right` is the side held in memory
    /// (the hash table): pass the smaller one, e.g. the dimension of a star join.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// customers
    ///     .join(contacts, JoinType::Left, [on(SilverErpSales::customer_id, SilverCrmContacts::customer_id)])?
    ///     .select_into(DimCustomerSelect { .. })
    /// ```
    pub fn join<U: Table>(
        self,
        right: Frame<U>,
        kind: JoinType,
        keys: impl IntoIterator<Item = JoinOn>,
    ) -> Result<View> {
        View { df: self.df }.join(right, kind, keys)
    }

    /// Joins with a copy of table `U` in `role`: a dimension in a second role, or the table
    /// joined with itself (see [`Role`] and [`View::join_as`]).
    pub fn join_as<U: Table>(
        self,
        right: Frame<U>,
        role: Role<U>,
        kind: JoinType,
        keys: impl IntoIterator<Item = JoinOn>,
    ) -> Result<View> {
        View { df: self.df }.join_as(right, role, kind, keys)
    }

    /// Groups the rows by `keys` (columns, or expressions of them), to aggregate each group into
    /// a table with [`Grouped::select_into`].
    pub fn group_by(self, keys: impl IntoIterator<Item = Expr>) -> Grouped {
        Grouped::new(self.df, keys.into_iter().collect())
    }

    /// All rows of both frames (`UNION ALL`, matched by column name).
    pub fn union(self, other: Frame<T>) -> Result<Frame<T>> {
        Ok(Frame::conformed(realias(
            self.df.union_by_name(other.df)?,
            T::DEF,
        )?))
    }

    /// One row per distinct value of `key`: the one that sorts first by `newest_first` (each
    /// expression descending, NULLs last), ties broken by the order of `newest_first`. The rule is
    /// deterministic when `newest_first` ends with a unique column.
    pub fn latest_by(
        self,
        key: impl IntoIterator<Item = Expr>,
        newest_first: impl IntoIterator<Item = Expr>,
    ) -> Result<Frame<T>> {
        let key: Vec<Expr> = key.into_iter().collect();
        let newest_first: Vec<Expr> = newest_first.into_iter().collect();
        for expr in key.iter().chain(&newest_first) {
            refuse_outside_frame(self.df.schema(), expr, "`latest_by`")?;
        }
        let order: Vec<SortExpr> = newest_first
            .into_iter()
            .map(|e| e.sort(false, false))
            .collect();
        let df = first_per_key(self.df, key, order)?;
        Ok(Frame::conformed(realias(df, T::DEF)?))
    }

    /// Only the rows whose `column` holds its greatest value: the newest extract, when each run
    /// appends a complete one. A `full_snapshot` pipeline reading `Changes<T>` needs it: after a
    /// failed run (or on its first run over a table's history) the changes hold several
    /// extracts, and a key the newest one lacks must be deleted, not kept from an older one.
    pub fn latest_only(self, column: impl Into<Expr>) -> Result<Frame<T>> {
        use datafusion::functions_aggregate::expr_fn::max;
        const LATEST: &str = "__lakehouse_latest";
        let column = column.into();
        refuse_outside_frame(self.df.schema(), &column, "`latest_only`")?;
        let columns: Vec<Expr> = self
            .df
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let latest = self
            .df
            .clone()
            .aggregate(vec![], vec![max(column.clone()).alias(LATEST)])?;
        let newest = Expr::Column(Column::new_unqualified(LATEST));
        // The one-row maximum is the hash table (the left input, which warehouse sessions keep
        // as written), not the whole input: a first run reads an extract table's history.
        let df = latest
            .join_on(self.df, JoinType::Inner, [newest.eq(column)])?
            .select(columns)?;
        Ok(Frame::conformed(realias(df, T::DEF)?))
    }

    /// Sorts the rows.
    pub fn sort(self, by: Vec<SortExpr>) -> Result<Frame<T>> {
        for sort in &by {
            refuse_outside_frame(self.df.schema(), &sort.expr, "the sort")?;
        }
        Ok(Frame::conformed(self.df.sort(by)?))
    }

    /// Executes the plan and returns its batches. Prefer writing through the runtime, which
    /// streams; this is for tests and small results.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        Ok(self.df.collect().await?)
    }

    /// Executes the plan and counts its rows.
    pub async fn count(self) -> Result<usize> {
        Ok(self.df.count().await?)
    }
}

/// Runs `df` to its end, every column computed, keeping no batch: whether it fails (a value's
/// error is found where it is), at the memory of one batch.
pub(crate) async fn drain(df: DataFrame) -> datafusion::error::Result<()> {
    use futures::StreamExt as _;
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        batch?;
    }
    Ok(())
}

/// One row per `key`: the first by `order`. A window function rather than `DISTINCT ON`, whose
/// aggregate rewrite loses the columns' NOT NULL in DataFusion 55 physical plans.
pub(crate) fn first_per_key(
    df: DataFrame,
    key: Vec<Expr>,
    order: Vec<SortExpr>,
) -> Result<DataFrame> {
    use datafusion::logical_expr::ExprFunctionExt as _;
    const RANK: &str = "__lakehouse_row_number";
    let columns: Vec<Expr> = df
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    if order.is_empty() {
        // Without an order the rows of a key are told apart by their other columns; when there
        // are none, duplicates are identical. (Ordering by the partition key itself is
        // simplified away by DataFusion into an invalid empty ORDER BY.)
        let key_names: Vec<String> = key.iter().map(|k| k.schema_name().to_string()).collect();
        let others: Vec<SortExpr> = df
            .schema()
            .columns()
            .into_iter()
            .filter(|c| {
                !key_names
                    .iter()
                    .any(|k| *k == c.name || k.ends_with(&format!(".{}", c.name)))
            })
            .map(|c| Expr::Column(c).sort(true, false))
            .collect();
        if others.is_empty() {
            return Ok(df.distinct()?);
        }
        return first_per_key(df, key, others);
    }
    let rank = datafusion::functions_window::expr_fn::row_number()
        .partition_by(key)
        .order_by(order)
        .build()?
        .alias(RANK);
    Ok(df
        .window(vec![rank])?
        .filter(datafusion::prelude::col(RANK).eq(datafusion::prelude::lit(1u64)))?
        .select(columns)?)
}

/// `df` with its columns qualified by `table` again (after operations that drop qualifiers).
fn realias(df: DataFrame, table: &'static TableDef) -> Result<DataFrame> {
    Ok(df.alias(&crate::backend::qualifier(table).to_string())?)
}

/// An intermediate, untyped result, typically of a join. Turn it into a table with
/// [`View::select_into`].
pub struct View {
    df: DataFrame,
}

impl View {
    /// A view over any DataFrame.
    pub fn new(df: DataFrame) -> View {
        View { df }
    }

    /// The underlying DataFusion DataFrame.
    pub fn dataframe(&self) -> &DataFrame {
        &self.df
    }

    /// The underlying DataFusion DataFrame.
    pub fn into_dataframe(self) -> DataFrame {
        self.df
    }

    /// Keeps the rows where `predicate` is true.
    pub fn filter(self, predicate: impl Into<Expr>) -> Result<View> {
        let predicate = predicate.into();
        refuse_outside_frame(self.df.schema(), &predicate, "the filter")?;
        Ok(View {
            df: self.df.filter(predicate)?,
        })
    }

    /// Joins with `right` on typed key pairs built with [`on`]. `right` is the side held in memory
    /// (the hash table): pass the smaller one, e.g. the dimension of a star join.
    pub fn join<U: Table>(
        self,
        right: Frame<U>,
        kind: JoinType,
        keys: impl IntoIterator<Item = JoinOn>,
    ) -> Result<View> {
        let joined = crate::backend::qualifier(U::DEF);
        // Column handles name their table: a second copy of a table (a self-join, a dimension
        // in two roles) would have columns no handle tells apart.
        if let Some(held) = holding(self.df.schema(), &joined) {
            return Err(Error::Refused(format!(
                "join with `{joined}`: the frame holds `{held}`'s columns already (a table \
                 joined with itself, or a dimension in two roles), which column handles cannot \
                 tell apart; join the second copy in a role of its own: \
                 `.join_as(frame, Role::new(\"..\"), kind, keys)`, its columns read as \
                 `role.col({}::column)`",
                U::DEF.rust_type
            )));
        }
        self.join_copy(right.df, &joined.to_string(), kind, keys)
    }

    /// Joins with a copy of table `U` in `role`, as [`View::join`] does: a dimension in a second
    /// role, or a table joined with itself. The copy's columns are read through [`Role::col`]
    /// (keys, projections, filters); the role's name qualifies them in plans and errors, and must
    /// be a name no table of the frame has.
    pub fn join_as<U: Table>(
        self,
        right: Frame<U>,
        role: Role<U>,
        kind: JoinType,
        keys: impl IntoIterator<Item = JoinOn>,
    ) -> Result<View> {
        let name = role.name();
        let mut chars = name.chars();
        let is_identifier = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_identifier {
            return Err(Error::Refused(format!(
                "role `{name}` of `{}`: a role's name is letters, digits and `_`, not starting \
                 with a digit (it qualifies the copy's columns: `{name}.column`)",
                U::DEF.qualified_name()
            )));
        }
        let qualifier = datafusion::common::TableReference::bare(name);
        if let Some(held) = holding(self.df.schema(), &qualifier) {
            return Err(Error::Refused(format!(
                "role `{name}` of `{}`: the frame holds `{held}` already, whose columns the \
                 role's would be confused with; name the role differently",
                U::DEF.qualified_name()
            )));
        }
        let (state, plan) = right.df.into_parts();
        let plan = datafusion::logical_expr::LogicalPlanBuilder::from(plan)
            .alias(qualifier)?
            .build()?;
        self.join_copy(DataFrame::new(state, plan), name, kind, keys)
    }

    /// The join of [`View::join`] with `right`, whose columns are qualified by `joined`.
    fn join_copy(
        self,
        right: DataFrame,
        joined: &str,
        kind: JoinType,
        keys: impl IntoIterator<Item = JoinOn>,
    ) -> Result<View> {
        let (left, right_keys): (Vec<Expr>, Vec<Expr>) =
            keys.into_iter().map(|k| (k.left, k.right)).unzip();
        if left.is_empty() {
            return Err(Error::Refused(format!(
                "join with `{joined}` has no key; pass at least one `on(left, right)`"
            )));
        }
        // Either side may name a key first, as in SQL's `ON`.
        for key in left.iter().chain(&right_keys) {
            if let (Some(missing), Some(_)) = (
                not_in_frame(self.df.schema(), key),
                not_in_frame(right.schema(), key),
            ) {
                return Err(Error::Refused(format!(
                    "a key of the join with `{joined}` {missing} (or be the joined table)"
                )));
            }
        }
        // Each key compares a column of the frame with one of the joined table: a pair that
        // does not (`on(Sale::store_id, Sale::store_id)`, two literals) links nothing, and the
        // join would pair every row with every row.
        let reads_only = |schema: &datafusion::common::DFSchema, key: &Expr| {
            let columns = key.column_refs();
            !columns.is_empty() && columns.iter().all(|c| schema.has_column(c))
        };
        let links = |l: &Expr, r: &Expr| {
            (reads_only(self.df.schema(), l) && reads_only(right.schema(), r))
                || (reads_only(right.schema(), l) && reads_only(self.df.schema(), r))
        };
        let linking = left.iter().zip(&right_keys).filter(|(l, r)| links(l, r));
        let linked = linking.count() > 0;
        if let Some((l, r)) = left.iter().zip(&right_keys).find(|(l, r)| !links(l, r)) {
            let what = if linked {
                "join keys are equalities between the two sides: filter a side before the join \
                 for a condition on it alone (`frame.filter(..)`)"
            } else {
                "it would pair every row with every row; key each `on(..)` with one column of \
                 each side"
            };
            return Err(Error::Refused(format!(
                "the join with `{joined}` on `{l} = {r}` does not compare a column of the frame \
                 with a column of `{joined}`: {what}"
            )));
        }
        // The keys' types, now: DataFusion computes them only when it plans the execution, and
        // a declared key type (`on_values`) is checked there.
        let both = self.df.schema().join(right.schema())?;
        for key in left.iter().chain(&right_keys) {
            use datafusion::logical_expr::ExprSchemable as _;
            key.get_type(&both).map_err(|e| {
                Error::Refused(format!("a key of the join with `{joined}`, `{key}`: {e}"))
            })?;
        }
        // (An `on_values` key's declared-type check stays in the plan: its type here may be
        // before coercion, a `CASE`'s its first branch's, and the execution's plan checks it
        // coerced.)
        let on: Vec<Expr> = left
            .into_iter()
            .zip(right_keys)
            .map(|(l, r)| l.eq(r))
            .collect();
        // The hash table is built from `right`, the frame joined onto the view: in a star join,
        // the dimension. DataFusion builds it from the left input, and its warehouse sessions
        // keep joins as written (after a join its size estimates are unreliable), so join the
        // other way round, then restore the view's column order.
        // A semi or anti join outputs one side's columns: swapped, it needs no reordering.
        let semi = match kind {
            JoinType::LeftSemi => Some(JoinType::RightSemi),
            JoinType::LeftAnti => Some(JoinType::RightAnti),
            JoinType::RightSemi => Some(JoinType::LeftSemi),
            JoinType::RightAnti => Some(JoinType::LeftAnti),
            _ => None,
        };
        if let Some(swapped) = semi {
            return Ok(View {
                df: right.join_on(self.df, swapped, on)?,
            });
        }
        let swapped = match kind {
            JoinType::Inner => JoinType::Inner,
            JoinType::Left => JoinType::Right,
            JoinType::Right => JoinType::Left,
            JoinType::Full => JoinType::Full,
            _ => {
                return Ok(View {
                    df: self.df.join_on(right, kind, on)?,
                });
            }
        };
        let columns: Vec<Expr> = self
            .df
            .schema()
            .columns()
            .into_iter()
            .chain(right.schema().columns())
            .map(Expr::Column)
            .collect();
        let build = encode_carried_strings(right, &on)?;
        Ok(View {
            df: build.join_on(self.df, swapped, on)?.select(columns)?,
        })
    }

    /// Groups the rows by `keys`, as [`Frame::group_by`] does.
    pub fn group_by(self, keys: impl IntoIterator<Item = Expr>) -> Grouped {
        Grouped::new(self.df, keys.into_iter().collect())
    }

    /// Projects onto table `U`: one typed expression per column, checked by the compiler. A
    /// NOT NULL column filled with a NOT NULL column of the side of an outer join that may find
    /// no match is an error (the compiler cannot tell the join's kind; the plan test does).
    pub fn select_into<U: Table>(self, columns: impl SelectFor<U>) -> Result<Frame<U>> {
        let columns = columns.into_columns();
        let sources: Vec<Option<String>> =
            columns.iter().map(|c| c.not_null_source.clone()).collect();
        let exprs: Vec<Expr> = columns.into_iter().map(|c| c.expr).collect();
        refuse_tables_not_joined(self.df.schema(), &exprs, U::DEF)?;
        let df = select_naming(self.df, exprs, U::DEF, "rows")?;
        refuse_outer_join_nulls(&df, &sources, U::DEF)?;
        Ok(Frame::conformed(conform_output(df, U::DEF)?))
    }
}

/// `df` projected onto `exprs`. A plan that does not hold (a type coercion DataFusion cannot
/// make) fails every attempt alike: named by `table` and the column whose expression fails
/// (`what`: the `rows` or `groups` projected).
pub(super) fn select_naming(
    df: DataFrame,
    exprs: Vec<Expr>,
    table: &TableDef,
    what: &str,
) -> Result<DataFrame> {
    let input = df.schema().clone();
    df.select(exprs.clone()).map_err(|error| {
        let failing = exprs
            .iter()
            .find(|e| datafusion::logical_expr::ExprSchemable::to_field(*e, &input).is_err())
            .map(|e| format!("column `{}`: ", e.schema_name()))
            .unwrap_or_default();
        Error::schema(
            table.qualified_name(),
            format!("{failing}cannot project the {what}: {error}"),
        )
    })
}

/// Refuses `df`, a projection onto `table`, whose column filled with a NOT NULL column of a
/// table (`sources`, one per column) may be NULL: that column is of the side of an outer join
/// that may find no match (the compiler cannot tell the join's kind; the plan test does).
pub(super) fn refuse_outer_join_nulls(
    df: &DataFrame,
    sources: &[Option<String>],
    table: &'static TableDef,
) -> Result<()> {
    for ((_, field), source) in df.schema().iter().zip(sources) {
        if let Some(source) = source
            && field.is_nullable()
        {
            return Err(Error::schema(
                table.qualified_name(),
                format!(
                    "column `{}` is NOT NULL and filled with `{source}`, which is NULL \
                     here for the rows of an outer join that find no match: declare the \
                     column `Option<_>`, give a default (`coalesce`, through `typed`), or \
                     join with `JoinType::Inner` (a filter on IS NOT NULL after the join \
                     does not tell the plan)",
                    field.name()
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a projection onto `table` reading a column handle of a table that is not in the
/// frame (it compiles: a handle is not tied to a frame), naming both and the tables it holds.
pub(super) fn refuse_tables_not_joined(
    schema: &datafusion::common::DFSchema,
    exprs: &[Expr],
    table: &'static crate::table::TableDef,
) -> Result<()> {
    for expr in exprs {
        if let Some(missing) = not_in_frame(schema, expr) {
            let output = match expr {
                Expr::Alias(alias) => alias.name.clone(),
                other => other.schema_name().to_string(),
            };
            return Err(Error::schema(
                table.qualified_name(),
                format!("column `{output}` {missing}"),
            ));
        }
    }
    Ok(())
}

/// Refuses `what` (a filter, a join key) reading a column of a table not in the frame.
fn refuse_outside_frame(
    schema: &datafusion::common::DFSchema,
    expr: &Expr,
    what: &str,
) -> Result<()> {
    match not_in_frame(schema, expr) {
        Some(missing) => Err(Error::Refused(format!("{what} {missing}"))),
        None => Ok(()),
    }
}

/// The qualifier of `schema` that `joined` would be confused with: the same, or one of the same
/// table name when either is a bare name (a role's), which DataFusion resolves to either.
fn holding(
    schema: &datafusion::common::DFSchema,
    joined: &datafusion::common::TableReference,
) -> Option<String> {
    use datafusion::common::TableReference;
    schema.iter().find_map(|(qualifier, _)| {
        let held = qualifier?;
        let bare = matches!(held, TableReference::Bare { .. })
            || matches!(joined, TableReference::Bare { .. });
        (held == joined || (bare && held.table() == joined.table())).then(|| held.to_string())
    })
}

/// "reads `t.c`, but `t` is not in this frame (it holds ..): join it first", when `expr` reads a
/// column qualified by a table the frame (of `schema`) does not hold.
fn not_in_frame(schema: &datafusion::common::DFSchema, expr: &Expr) -> Option<String> {
    let held: Vec<String> = schema
        .iter()
        .filter_map(|(qualifier, _)| qualifier.map(|q| q.to_string()))
        .fold(Vec::new(), |mut held, q| {
            if !held.contains(&q) {
                held.push(q);
            }
            held
        });
    if held.is_empty() {
        return None;
    }
    expr.column_refs().into_iter().find_map(|column| {
        let relation = column.relation.as_ref()?.to_string();
        (!held.contains(&relation)).then(|| {
            format!(
                "reads `{relation}.{}`, but `{relation}` is not in this frame (it holds {}): \
                 join it first",
                column.name,
                held.join(", ")
            )
        })
    })
}

/// `build` with its string columns that are not join keys dictionary-encoded. A hash join copies
/// every column of its output row by row, and in a star join a dimension's columns are copied
/// again by every later join: as a dictionary only their 4-byte keys are, and conforming the
/// final output to its table decodes each string once.
fn encode_carried_strings(build: DataFrame, on: &[Expr]) -> Result<DataFrame> {
    let keys: HashSet<&str> = on
        .iter()
        .flat_map(|e| e.column_refs())
        .map(|c| c.name.as_str())
        .collect();
    let mut encoded = false;
    let exprs: Vec<Expr> = build
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            let is_string = matches!(
                field.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            if is_string && !keys.contains(field.name().as_str()) {
                encoded = true;
                let dictionary =
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                cast(column, dictionary).alias_qualified(qualifier.cloned(), field.name())
            } else {
                column
            }
        })
        .collect();
    if encoded {
        Ok(build.select(exprs)?)
    } else {
        Ok(build)
    }
}

/// The rows of table `T` committed since the reading pipeline's last success: an incremental
/// input. A pipeline that fails is rerun over the same rows; the source is not called again.
/// It has the frame's operations (`raw.filter(..)?.select_into(..)`); `into_frame` gives the
/// frame itself.
pub struct Changes<T: Table> {
    frame: Frame<T>,
}

impl<T: Table> Changes<T> {
    /// `frame` as the new rows of an incremental input (the runtime's reads, and tests).
    pub(crate) fn new(frame: Frame<T>) -> Changes<T> {
        Changes { frame }
    }

    /// The new rows as a frame.
    pub fn into_frame(self) -> Frame<T> {
        self.frame
    }

    /// [`Frame::filter`] on the new rows.
    pub fn filter(self, predicate: impl Into<Expr>) -> Result<Frame<T>> {
        self.frame.filter(predicate)
    }

    /// [`Frame::select_into`] of the new rows.
    pub fn select_into<U: Table>(self, columns: impl SelectFor<U>) -> Result<Frame<U>> {
        self.frame.select_into(columns)
    }

    /// [`Frame::join`] of the new rows with `right`.
    pub fn join<U: Table>(
        self,
        right: Frame<U>,
        kind: JoinType,
        keys: impl IntoIterator<Item = JoinOn>,
    ) -> Result<View> {
        self.frame.join(right, kind, keys)
    }

    /// [`Frame::join_as`] of the new rows with a copy of `U` in `role`.
    pub fn join_as<U: Table>(
        self,
        right: Frame<U>,
        role: Role<U>,
        kind: JoinType,
        keys: impl IntoIterator<Item = JoinOn>,
    ) -> Result<View> {
        self.frame.join_as(right, role, kind, keys)
    }

    /// [`Frame::group_by`] of the new rows.
    pub fn group_by(self, keys: impl IntoIterator<Item = Expr>) -> Grouped {
        self.frame.group_by(keys)
    }

    /// [`Frame::latest_by`] of the new rows.
    pub fn latest_by(
        self,
        key: impl IntoIterator<Item = Expr>,
        newest_first: impl IntoIterator<Item = Expr>,
    ) -> Result<Frame<T>> {
        self.frame.latest_by(key, newest_first)
    }

    /// [`Frame::latest_only`] of the new rows: the newest extract's.
    pub fn latest_only(self, column: impl Into<Expr>) -> Result<Frame<T>> {
        self.frame.latest_only(column)
    }

    /// [`Frame::union`] of the new rows and `other`'s.
    pub fn union(self, other: Frame<T>) -> Result<Frame<T>> {
        self.frame.union(other)
    }

    /// [`Frame::sort`] of the new rows.
    pub fn sort(self, by: Vec<SortExpr>) -> Result<Frame<T>> {
        self.frame.sort(by)
    }

    /// [`Frame::collect`]: the new rows' batches.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        self.frame.collect().await
    }

    /// [`Frame::count`]: how many rows are new.
    pub async fn count(self) -> Result<usize> {
        self.frame.count().await
    }
}

impl<T: Table> std::ops::Deref for Changes<T> {
    type Target = Frame<T>;
    fn deref(&self) -> &Frame<T> {
        &self.frame
    }
}

/// The inputs the orchestrator hands to a pipeline's run shim, in parameter order.
pub struct Inputs {
    frames: Vec<Option<DataFrame>>,
}

impl Inputs {
    /// Inputs from DataFrames that conform to the declared input tables, in parameter order.
    pub fn new(frames: Vec<DataFrame>) -> Inputs {
        Inputs {
            frames: frames.into_iter().map(Some).collect(),
        }
    }

    fn take(&mut self, index: usize) -> Result<DataFrame> {
        self.frames
            .get_mut(index)
            .and_then(Option::take)
            .ok_or(Error::MissingInput { index })
    }
}

impl<T: Table> crate::graph::PipelineInput for Frame<T> {
    type Table = T;
    const INCREMENTAL: bool = false;
    fn take(inputs: &mut Inputs, index: usize) -> Result<Self> {
        Ok(Frame::conformed(inputs.take(index)?))
    }
}

impl<T: Table> crate::graph::PipelineInput for Changes<T> {
    type Table = T;
    const INCREMENTAL: bool = true;
    fn take(inputs: &mut Inputs, index: usize) -> Result<Self> {
        Ok(Changes {
            frame: Frame::conformed(inputs.take(index)?),
        })
    }
}

/// A pipeline's output, with the table it is for.
pub struct UntypedFrame {
    /// The table the rows are for.
    pub table: &'static TableDef,
    /// The rows, conforming to the table's data columns.
    pub df: DataFrame,
}

/// Converts a pipeline's result for the run shim.
#[doc(hidden)]
pub fn into_output<T: Table>(result: Result<Frame<T>>) -> Result<UntypedFrame> {
    result.map(|frame| UntypedFrame {
        table: T::DEF,
        df: frame.df,
    })
}
