//! Typed join keys: `on(A::x, B::y)` only compiles when both columns hold the same value type.

use super::col::Col;
use super::def::Table;
use super::types::{Date, Decimal, Timestamp};
use crate::backend::RawExpr;

/// A join condition between two columns of the same value type, built with [`on`].
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub struct JoinOn {
    pub(crate) left: RawExpr,
    pub(crate) right: RawExpr,
}

/// Column value types that may be compared in a join: the same type, NULL-ability aside.
#[diagnostic::on_unimplemented(
    message = "cannot join a `{L}` column with a `{Self}` column",
    label = "expected a column holding `{L}` values",
    note = "join keys must hold the same type; convert one side and join with `on_values(typed::<V>(cast(..)), typed::<V>(..))`"
)]
pub trait JoinableWith<L> {}

macro_rules! joinable {
    ($($ty:ty),*) => {$(
        impl JoinableWith<$ty> for $ty {}
        impl JoinableWith<$ty> for Option<$ty> {}
        impl JoinableWith<Option<$ty>> for $ty {}
        impl JoinableWith<Option<$ty>> for Option<$ty> {}
    )*};
}

joinable!(bool, i32, i64, f64, String, Date, Timestamp);

impl<const P: u8, const S: i8> JoinableWith<Decimal<P, S>> for Decimal<P, S> {}
impl<const P: u8, const S: i8> JoinableWith<Decimal<P, S>> for Option<Decimal<P, S>> {}
impl<const P: u8, const S: i8> JoinableWith<Option<Decimal<P, S>>> for Decimal<P, S> {}
impl<const P: u8, const S: i8> JoinableWith<Option<Decimal<P, S>>> for Option<Decimal<P, S>> {}

/// `left = right` for `Frame::join`: only compiles when both columns hold the same value type.
pub fn on<A: Table, B: Table, L, R: JoinableWith<L>>(left: Col<A, L>, right: Col<B, R>) -> JoinOn {
    JoinOn {
        left: left.raw(),
        right: right.raw(),
    }
}
