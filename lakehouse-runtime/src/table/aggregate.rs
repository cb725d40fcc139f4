//! The typing of aggregates whose result type differs from their input's: a [`sum`] or an
//! [`avg`] fills the column types [`SumInto`] and [`AverageInto`] allow, cast to the declared
//! type. (The aggregation itself, and the aggregates that keep their input's type, are the
//! engine's: `Frame::group_by`.)

use std::marker::PhantomData;

use super::col::Col;
use super::def::Table;
use super::select::{IntoColumn, SelectedColumn};
use super::types::{ColumnType, Decimal};
use crate::backend::{self, RawExpr};

/// An expression whose values have the Rust type `V`: a column handle or a `Typed`
/// expression. What the aggregate functions take.
pub trait Values<V> {
    /// The expression.
    fn into_values(self) -> RawExpr;
}

impl<T: Table, V> Values<V> for Col<T, V> {
    fn into_values(self) -> RawExpr {
        self.raw()
    }
}

/// The sum of the group's values (NULLs aside; NULL if all are). See [`Sums`] for what it can
/// fill: `i32`/`i64` values sum to `i64` or a `Decimal<_, 0>`, `f64` to `f64`, `Decimal<P, S>`
/// to any `Decimal<_, S>`. Integers are summed exactly: a sum past the declared type's range
/// (or a decimal past its precision) fails the write naming the column, where DataFusion's own
/// `i64` sum wraps around.
pub fn sum<V: Sums>(values: impl Values<V>) -> Sum<V> {
    let values = values.into_values();
    Sum {
        expr: match (V::INTEGER, V::WIDE_DECIMAL_SCALE) {
            (true, _) => backend::exact_integer_sum(values),
            (false, Some(scale)) => backend::wide_decimal_sum(values, scale),
            (false, None) => backend::sum(values),
        },
        _value: PhantomData,
    }
}

/// The mean of the group's values (NULLs aside; NULL if all are): `f64` for `i32`, `i64` and
/// `f64` values; for `Decimal<P, S>` values any decimal type, rounded to its scale up to
/// `S + 3` (DataFusion computes the mean to `S + 4` digits, truncated: a column of scale `S + 4`
/// or more holds those truncated digits, 0.006666 for the mean of 0.00, 0.00 and 0.02).
pub fn avg<V: Averages>(values: impl Values<V>) -> Avg<V> {
    let values = values.into_values();
    Avg {
        expr: match V::WIDE_DECIMAL_SCALE {
            Some(scale) => backend::wide_decimal_avg(values, scale),
            None => backend::avg(values),
        },
        _value: PhantomData,
    }
}

/// The sum of values of type `V` ([`sum`]): fills a column of the types [`Sums`] allows.
pub struct Sum<V> {
    expr: RawExpr,
    _value: PhantomData<fn() -> V>,
}

/// The mean of values of type `V` ([`avg`]): fills a column of the types [`Averages`] allows.
pub struct Avg<V> {
    expr: RawExpr,
    _value: PhantomData<fn() -> V>,
}

impl<V> Sum<V> {
    /// The aggregate as an expression to build on
    /// (`typed::<f64>(cast(sum(x).into_expr(), DataType::Float64) / ..)`): for integers the
    /// exact `DECIMAL(38, 0)` sum (cast it to `Int64` to get an `i64`, which fails past its
    /// range), for `f64` an `f64`, for decimals a `Decimal` widened by 10 digits (to at most
    /// 38; past 28 digits, the exact `DECIMAL(76, S)` sum). It is an aggregate: DataFusion's
    /// `aggregate` and window functions take it as it is.
    pub fn into_expr(self) -> RawExpr {
        self.expr
    }
}

impl<V> Avg<V> {
    /// The aggregate as DataFusion computes it (`f64`, or a `Decimal` widened by 4 digits of
    /// scale; past 34 digits, a `DECIMAL(76, S + 4)`), to build on.
    pub fn into_expr(self) -> RawExpr {
        self.expr
    }
}

/// Value types that can be summed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` values cannot be summed",
    label = "a sum of `{Self}` values",
    note = "`sum` takes integers (`i32`, `i64`), `f64` or `Decimal<P, S>` values, or `Option`s of them; count other values with `count`"
)]
pub trait Sums {
    /// Integers, summed exactly (over a 38-digit decimal) rather than wrapping around.
    #[doc(hidden)]
    const INTEGER: bool = false;
    /// The scale of decimals of more than 28 digits, summed over a 76-digit decimal: DataFusion
    /// sums a `Decimal<P, S>` in `P + 10` digits, at most 38, wrapping around past them.
    #[doc(hidden)]
    const WIDE_DECIMAL_SCALE: Option<i8> = None;
}

/// Value types that can be averaged.
#[diagnostic::on_unimplemented(
    message = "`{Self}` values cannot be averaged",
    label = "a mean of `{Self}` values",
    note = "`avg` takes integers (`i32`, `i64`), `f64` or `Decimal<P, S>` values, or `Option`s of them"
)]
pub trait Averages {
    /// The scale of decimals of more than 34 digits, averaged over a 72-digit decimal:
    /// DataFusion averages a `Decimal<P, S>` in `min(P + 4, 38)` digits of which `S + 4` are
    /// the fraction, failing on a mean the column itself holds (10 000 at scale 30).
    #[doc(hidden)]
    const WIDE_DECIMAL_SCALE: Option<i8> = None;
}

/// A sum of `Self` values can fill a column of type `W`.
#[diagnostic::on_unimplemented(
    message = "a sum of `{Self}` values cannot fill a column of type `{W}`",
    note = "`i32` and `i64` values sum to `i64` or a `Decimal<_, 0>`, `f64` to `f64`, `Decimal<P, S>` to a `Decimal<_, S>` of the same scale; a sum of `Option` values fills an `Option` column"
)]
pub trait SumInto<W> {}

/// A mean of `Self` values can fill a column of type `W`.
#[diagnostic::on_unimplemented(
    message = "a mean of `{Self}` values cannot fill a column of type `{W}`",
    note = "`i32`, `i64` and `f64` values average to `f64`, `Decimal` values to a `Decimal`; a mean of `Option` values fills an `Option` column"
)]
pub trait AverageInto<W> {}

macro_rules! number_aggregates {
    ($($value:ty => $sum:ty),* $(,)?) => {$(
        impl SumInto<$sum> for $value {}
        impl SumInto<Option<$sum>> for $value {}
        impl SumInto<Option<$sum>> for Option<$value> {}
        impl Averages for $value {}
        impl Averages for Option<$value> {}
        impl AverageInto<f64> for $value {}
        impl AverageInto<Option<f64>> for $value {}
        impl AverageInto<Option<f64>> for Option<$value> {}
    )*};
}

number_aggregates! {
    i32 => i64,
    i64 => i64,
    f64 => f64,
}

macro_rules! sums {
    ($($value:ty: $integer:literal),*) => {$(
        impl Sums for $value {
            const INTEGER: bool = $integer;
        }
        impl Sums for Option<$value> {
            const INTEGER: bool = $integer;
        }
    )*};
}

sums!(i32: true, i64: true, f64: false);

// An exact sum of integers fills a decimal without a scale, of any precision.
macro_rules! integer_sums_into_decimals {
    ($($value:ty),*) => {$(
        impl<const Q: u8> SumInto<Decimal<Q, 0>> for $value {}
        impl<const Q: u8> SumInto<Option<Decimal<Q, 0>>> for $value {}
        impl<const Q: u8> SumInto<Option<Decimal<Q, 0>>> for Option<$value> {}
    )*};
}

integer_sums_into_decimals!(i32, i64);

impl<const P: u8, const S: i8> Sums for Decimal<P, S> {
    const WIDE_DECIMAL_SCALE: Option<i8> = if P > 28 { Some(S) } else { None };
}
impl<const P: u8, const S: i8> Sums for Option<Decimal<P, S>> {
    const WIDE_DECIMAL_SCALE: Option<i8> = <Decimal<P, S> as Sums>::WIDE_DECIMAL_SCALE;
}
impl<const P: u8, const Q: u8, const S: i8> SumInto<Decimal<Q, S>> for Decimal<P, S> {}
impl<const P: u8, const Q: u8, const S: i8> SumInto<Option<Decimal<Q, S>>> for Decimal<P, S> {}
impl<const P: u8, const Q: u8, const S: i8> SumInto<Option<Decimal<Q, S>>>
    for Option<Decimal<P, S>>
{
}

impl<const P: u8, const S: i8> Averages for Decimal<P, S> {
    const WIDE_DECIMAL_SCALE: Option<i8> = if P > 34 { Some(S) } else { None };
}
impl<const P: u8, const S: i8> Averages for Option<Decimal<P, S>> {
    const WIDE_DECIMAL_SCALE: Option<i8> = <Decimal<P, S> as Averages>::WIDE_DECIMAL_SCALE;
}
impl<const P: u8, const S: i8, const Q: u8, const R: i8> AverageInto<Decimal<Q, R>>
    for Decimal<P, S>
{
}
impl<const P: u8, const S: i8, const Q: u8, const R: i8> AverageInto<Option<Decimal<Q, R>>>
    for Decimal<P, S>
{
}
impl<const P: u8, const S: i8, const Q: u8, const R: i8> AverageInto<Option<Decimal<Q, R>>>
    for Option<Decimal<P, S>>
{
}

/// The aggregate cast to the column's declared type (DataFusion widens sums and means); a
/// value that does not fit names the column.
fn cast_to<W: ColumnType>(
    aggregate: RawExpr,
    name: &'static str,
    advice: &'static str,
) -> SelectedColumn {
    let label = format!(
        "column `{name}`: an aggregate does not fit the declared {}",
        W::LOGICAL
    );
    SelectedColumn::new(backend::alias(
        backend::cast_named(aggregate, W::LOGICAL, label, advice),
        name,
    ))
}

impl<V: Sums + SumInto<W>, W: ColumnType> IntoColumn<W> for Sum<V> {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        let advice = if V::INTEGER {
            "declare the column `Decimal<38, 0>`: integers sum exactly into it"
        } else if V::WIDE_DECIMAL_SCALE.is_some() {
            "the total has more than 38 digits, which no decimal column holds: sum values of a \
             smaller scale (cast them first), or fewer rows per group"
        } else {
            "declare a wider type (a sum widens `Decimal<P, S>` by 10 digits, to at most 38)"
        };
        cast_to::<W>(self.expr, name, advice)
    }
}

impl<V: AverageInto<W>, W: ColumnType> IntoColumn<W> for Avg<V> {
    fn into_column(self, name: &'static str) -> SelectedColumn {
        let advice = "declare a wider type (at least the averaged values' precision)";
        cast_to::<W>(self.expr, name, advice)
    }
}
