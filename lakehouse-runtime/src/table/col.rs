//! `Col<T, V>`: a typed handle on column of table `T` holding `V` values.

use std::marker::PhantomData;

use super::types::ColumnType;

/// A column of table `T` whose values have the Rust type `V`.
///
/// `#[derive(Table)]` generates one per field as an associated constant
/// (`SilverErpSales::order_id`), so a misspelled column is a compile error, and operations that
/// relate two columns (join keys, foreign keys) only compile when their value types agree.
pub struct Col<T, V> {
    name: &'static str,
    _types: PhantomData<fn() -> (T, V)>,
}

impl<T, V> Clone for Col<T, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, V> Copy for Col<T, V> {}

impl<T, V> std::fmt::Debug for Col<T, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Col({})", self.name)
    }
}

impl<T, V> Col<T, V> {
    /// A handle on column `name`. Generated code calls this; users use the generated constants.
    #[doc(hidden)]
    pub const fn new(name: &'static str) -> Self {
        Col {
            name,
            _types: PhantomData,
        }
    }

    /// The column name.
    pub const fn name(self) -> &'static str {
        self.name
    }
}

/// The same column, seen without its `Option`: used to compare value types NULL-ability aside.
pub fn non_null<T, V: ColumnType>(column: Col<T, V>) -> Col<T, V::NonNull> {
    Col::new(column.name)
}
