//! Tables: value types, the `Table` trait and its `TableDef`, typed columns and projections.

mod aggregate;
mod col;
mod def;
mod join;
mod select;
mod types;

pub use aggregate::{AverageInto, Averages, Avg, Sum, SumInto, Sums, Values, avg, sum};
pub use col::{Col, Role, non_null};
pub(crate) use def::LEDGER_SCHEMA;
pub use def::{
    CheckConstraint, ColumnDef, ColumnRef, ColumnRole, Expectation, OnFail, OverwriteScope,
    Quality, RecordsChanges, SchemaEvolution, Table, TableDef, WriteMode,
};
pub use join::{JoinOn, JoinableWith, on};
pub use select::{IntoColumn, SelectFor, SelectedColumn};
pub use types::{ColumnType, Date, Decimal, LogicalType, Timestamp, format_decimal};
#[cfg(feature = "engine")]
pub(crate) use types::{DATE_NEWTYPE, TIMESTAMP_NEWTYPE};
