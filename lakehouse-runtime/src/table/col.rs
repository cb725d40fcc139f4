//! `Col<T, V>`: a typed handle on column of table `T` holding `V` values.

use std::marker::PhantomData;

use super::def::Table;
use super::types::ColumnType;
use crate::backend::{self, RawExpr};

/// A column of table `T` whose values have the Rust type `V`.
///
/// `#[derive(Table)]` generates one per field as an associated constant
/// (`SilverErpSales::order_id`), so a misspelled column is a compile error, and operations that
/// relate two columns (join keys, foreign keys) only compile when their value types agree.
pub struct Col<T, V> {
    name: &'static str,
    /// The role the column is read in ([`Role::col`]); `None` reads table `T` itself.
    role: Option<&'static str>,
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
        match self.role {
            Some(role) => write!(f, "Col({role}.{})", self.name),
            None => write!(f, "Col({})", self.name),
        }
    }
}

impl<T, V> Col<T, V> {
    /// A handle on column `name`. Generated code calls this; users use the generated constants.
    #[doc(hidden)]
    pub const fn new(name: &'static str) -> Self {
        Col {
            name,
            role: None,
            _types: PhantomData,
        }
    }

    /// The column name.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// The role the column is read in, when it is one of a [`Role`]'s.
    pub const fn role(self) -> Option<&'static str> {
        self.role
    }

    /// The column as the engine's expression, qualified by its table or its role.
    pub(crate) fn raw(self) -> RawExpr
    where
        T: Table,
    {
        match self.role {
            Some(role) => backend::role_column(role, self.name),
            None => backend::column(T::DEF, self.name),
        }
    }

    /// How errors name the column: `schema.table.column`, or `role.column`.
    pub(crate) fn qualified_name(self) -> String
    where
        T: Table,
    {
        match self.role {
            Some(role) => format!("{role}.{}", self.name),
            None => format!("{}.{}", T::DEF.qualified_name(), self.name),
        }
    }
}

/// Table `T` in a named role: a second copy of a table in one frame, as a dimension playing two
/// roles (an order date and a ship date joined to one date dimension) or a table joined with
/// itself (an employee and their manager). Join the copy with `join_as`, and read its columns
/// through [`Role::col`]: the compiler still checks each column belongs to `T` and its type.
///
/// # Examples
///
/// ```ignore
/// const SHIPPED: Role<DimDate> = Role::new("shipped");
/// sales
///     .join(dates.clone(), JoinType::Inner, [on(Sales::order_date, DimDate::date)])?
///     .join_as(dates, SHIPPED, JoinType::Left, [on(Sales::ship_date, SHIPPED.col(DimDate::date))])?
///     .select_into(FactSalesSelect {
///         order_year: DimDate::year,
///         ship_year: SHIPPED.col(DimDate::year),
///         ..
///     })
/// ```
pub struct Role<T> {
    name: &'static str,
    _table: PhantomData<fn() -> T>,
}

impl<T> Clone for Role<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Role<T> {}

impl<T> std::fmt::Debug for Role<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Role({})", self.name)
    }
}

impl<T> Role<T> {
    /// A role named `name`, which qualifies the copy's columns (`shipped.year`) in plans and
    /// errors: letters, digits and `_`, not starting with a digit, and unlike the names of the
    /// tables in the frame (checked when the copy is joined).
    pub const fn new(name: &'static str) -> Role<T> {
        Role {
            name,
            _table: PhantomData,
        }
    }

    /// The role's name.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// Column `column` of the copy of `T` in this role.
    pub const fn col<V>(self, column: Col<T, V>) -> Col<T, V> {
        Col {
            name: column.name,
            role: Some(self.name),
            _types: PhantomData,
        }
    }
}

/// The same column, seen without its `Option`: used to compare value types NULL-ability aside.
pub fn non_null<T, V: ColumnType>(column: Col<T, V>) -> Col<T, V::NonNull> {
    Col {
        name: column.name,
        role: column.role,
        _types: PhantomData,
    }
}
