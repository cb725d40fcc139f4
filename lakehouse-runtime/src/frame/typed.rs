//! Typed expressions: columns as DataFusion expressions, computed expressions with a declared
//! value type, literals, and typed join keys.

use std::marker::PhantomData;

use datafusion::logical_expr::{Expr, lit};
use datafusion::scalar::ScalarValue;

use crate::table::{
    Col, ColumnType, Date, Decimal, IntoColumn, JoinOn, JoinableWith, SelectedColumn, Table,
    Timestamp,
};

impl<T: Table, V> Col<T, V> {
    /// The column as a DataFusion expression, qualified by its table.
    pub fn expr(self) -> Expr {
        self.raw()
    }

    /// `column IS NULL`.
    pub fn is_null(self) -> Expr {
        self.expr().is_null()
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(self) -> Expr {
        self.expr().is_not_null()
    }
}

impl<T: Table, V> Col<T, Option<V>> {
    /// The column, as its author asserts it holds no NULL here (after a `filter` on
    /// `is_not_null`, say), so that it fills a NOT NULL column of type `V`. The value type stays
    /// the column's; a NULL that does reach the output fails the write, naming the column.
    pub fn assume_not_null(self) -> Typed<V> {
        Typed {
            expr: self.expr(),
            _value: PhantomData,
        }
    }
}

impl<T: Table, V> From<Col<T, V>> for Expr {
    fn from(column: Col<T, V>) -> Expr {
        column.expr()
    }
}

/// A DataFusion expression whose values have the Rust type `V`, as the author asserts. The
/// assertion is checked against DataFusion's own type inference when the plan is built (the
/// whole-graph plan test builds every pipeline's): as an output column's type, as an
/// aggregate's input (a `sum` of a scale-4 expression declared scale 2 would be rounded) and as
/// a join key ([`on_values`]).
pub struct Typed<V> {
    expr: Expr,
    _value: PhantomData<fn() -> V>,
}

impl<V> Typed<V> {
    /// `expr`, whose type the caller knows to be `V`.
    pub(crate) fn new(expr: Expr) -> Typed<V> {
        Typed {
            expr,
            _value: PhantomData,
        }
    }

    /// The expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The expression.
    pub fn into_expr(self) -> Expr {
        self.expr
    }
}

impl<V> From<Typed<V>> for Expr {
    fn from(typed: Typed<V>) -> Expr {
        typed.expr
    }
}

/// Declares the value type of a computed expression: `typed::<f64>(price * qty)`. A column
/// handle is refused: it has a type already (`.assume_not_null()` drops its `Option`).
pub fn typed<V: ColumnType>(expr: impl Computed) -> Typed<V> {
    Typed {
        expr: expr.into_expr(),
        _value: PhantomData,
    }
}

/// `left = right` on computed values, for `Frame::join` where [`on`](crate::table::on) cannot
/// join two columns: keys of different types brought to one
/// (`on_values(typed::<i64>(cast(A::id.expr(), DataType::Int64)), typed::<i64>(B::id.expr()))`),
/// or normalised (`typed::<String>(lower(B::email.expr()))`). Compiles only when both sides
/// declare the same value type, as [`on`](crate::table::on) does for columns; each side's
/// declaration is checked when the plan is built.
pub fn on_values<L: ColumnType, R: ColumnType + JoinableWith<L>>(
    left: Typed<L>,
    right: Typed<R>,
) -> JoinOn {
    JoinOn {
        left: super::declared::declared(left.expr, L::LOGICAL),
        right: super::declared::declared(right.expr, R::LOGICAL),
    }
}

/// What [`typed`] takes: a computed DataFusion expression, not a column handle, whose type
/// [`typed`] would otherwise override unchecked.
#[diagnostic::on_unimplemented(
    message = "`typed` declares the type of a computed expression, not of a column",
    label = "a column handle keeps its declared type",
    note = "use the column itself, or `.assume_not_null()` on an `Option` column to fill a NOT NULL one"
)]
pub trait Computed {
    /// The expression.
    fn into_expr(self) -> Expr;
}

impl Computed for Expr {
    fn into_expr(self) -> Expr {
        self
    }
}

impl<V> IntoColumn<V> for Typed<V> {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        SelectedColumn::new(self.expr.alias(name))
    }
}

impl<V> IntoColumn<Option<V>> for Typed<V> {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        SelectedColumn::new(self.expr.alias(name))
    }
}

/// A raw DataFusion expression fills any column; the plan test checks its type.
impl<V> IntoColumn<V> for Expr {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        SelectedColumn::new(self.alias(name))
    }
}

macro_rules! literal_columns {
    ($($ty:ty => |$v:ident| $scalar:expr),* $(,)?) => {$(
        impl IntoColumn<$ty> for $ty {
            fn into_column(self, name: &'static str) -> SelectedColumn {
                let $v = self;
                SelectedColumn::new(lit($scalar).alias(name))
            }
        }
        impl IntoColumn<Option<$ty>> for $ty {
            fn into_column(self, name: &'static str) -> SelectedColumn {
                let $v = self;
                SelectedColumn::new(lit($scalar).alias(name))
            }
        }
        impl IntoColumn<Option<$ty>> for Option<$ty> {
            fn into_column(self, name: &'static str) -> SelectedColumn {
                let scalar = match self {
                    Some($v) => $scalar,
                    None => ScalarValue::try_from(&<$ty as ColumnType>::LOGICAL.arrow_type())
                        .unwrap_or(ScalarValue::Null),
                };
                SelectedColumn::new(lit(scalar).alias(name))
            }
        }
    )*};
}

literal_columns! {
    bool => |v| ScalarValue::Boolean(Some(v)),
    i32 => |v| ScalarValue::Int32(Some(v)),
    i64 => |v| ScalarValue::Int64(Some(v)),
    f64 => |v| ScalarValue::Float64(Some(v)),
    String => |v| ScalarValue::Utf8(Some(v)),
    Date => |v| ScalarValue::Date32(Some(v.0)),
    Timestamp => |v| ScalarValue::TimestampMicrosecond(Some(v.0), Some("UTC".into())),
}

impl IntoColumn<String> for &str {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        SelectedColumn::new(lit(self).alias(name))
    }
}

impl IntoColumn<Option<String>> for &str {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        SelectedColumn::new(lit(self).alias(name))
    }
}

/// A decimal literal is cast from a 76-digit decimal to its own type: a value built with more
/// than `P` digits (`Decimal(i128)` is unchecked, and an `i128` has up to 39) fails the plan
/// instead of being truncated by the Parquet writer; a valid one is folded to a plain literal.
/// (From a 38-digit decimal, a cast to `DECIMAL(38, S)` would check nothing: Arrow passes equal
/// types through.)
fn decimal_literal<const P: u8, const S: i8>(value: Option<Decimal<P, S>>) -> Expr {
    use arrow::datatypes::i256;
    datafusion::logical_expr::cast(
        lit(ScalarValue::Decimal256(
            value.map(|v| i256::from_i128(v.0)),
            76,
            S,
        )),
        arrow::datatypes::DataType::Decimal128(P, S),
    )
}

impl<const P: u8, const S: i8> IntoColumn<Decimal<P, S>> for Decimal<P, S> {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        SelectedColumn::new(decimal_literal(Some(self)).alias(name))
    }
}

impl<const P: u8, const S: i8> IntoColumn<Option<Decimal<P, S>>> for Decimal<P, S> {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        SelectedColumn::new(decimal_literal(Some(self)).alias(name))
    }
}

impl<const P: u8, const S: i8> IntoColumn<Option<Decimal<P, S>>> for Option<Decimal<P, S>> {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        SelectedColumn::new(decimal_literal(self).alias(name))
    }
}

impl Timestamp {
    /// The timestamp as a literal expression.
    pub fn lit(self) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(
            Some(self.0),
            Some("UTC".into()),
        ))
    }
}

/// A length of time as a literal expression, to add to or subtract from a timestamp column:
/// `b::run_at.expr() + interval(Duration::from_secs(24 * 3600))`. Exact (hours, not calendar
/// days: a day across a daylight-saving change is still 24 hours); a length past 292 years is
/// taken as 292 years.
pub fn interval(length: std::time::Duration) -> Expr {
    let nanos = i64::try_from(length.as_nanos()).unwrap_or(i64::MAX);
    lit(ScalarValue::new_interval_mdn(0, 0, nanos))
}

impl Date {
    /// The date as a literal expression.
    pub fn lit(self) -> Expr {
        lit(ScalarValue::Date32(Some(self.0)))
    }
}
