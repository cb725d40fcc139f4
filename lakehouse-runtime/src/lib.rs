//! # Lakehouse runtime
//!
//! Typed data pipelines over Delta Lake. A table is a struct with `#[derive(Table)]`; a pipeline
//! is an `async fn` with `#[pipeline(depends_on = [..])]` that reads upstream tables as
//! [`Frame<T>`] parameters and returns the `Frame` of the one table it writes. The compiler
//! rejects an unknown dependency, a cycle, an undeclared input, two pipelines returning one
//! table type, a misspelled column and a column of the wrong type (two pipelines writing one
//! Delta table through two structs are refused when the registry loads).
//!
//! ```ignore
//! use lakehouse_runtime::prelude::*;
//!
//! /// Cleaned ERP sales.
//! #[derive(Table)]
//! #[table(schema = "silver", name = "erp_sales", key(order_id), mode = merge)]
//! pub struct SilverErpSales {
//!     pub order_id: i64,
//!     pub unit_price: Option<Decimal<10, 2>>,
//! }
//!
//! /// Keeps the priced sales.
//! #[pipeline(depends_on = [erp_sales_transactions])]
//! pub async fn silver_erp_sales(raw: Frame<BronzeErpSales>) -> Result<Frame<SilverErpSales>> {
//!     raw.filter(BronzeErpSales::unit_price.is_not_null())?
//!         .select_into(SilverErpSalesSelect {
//!             order_id: BronzeErpSales::order_id,
//!             unit_price: BronzeErpSales::unit_price,
//!         })
//! }
//! ```
//!
//! Without the default `engine` feature the crate only type-checks tables and pipelines; the
//! compile-fail tests use that to stay fast.

#![warn(missing_docs)]

// The derive macros name `::lakehouse_runtime`; this lets the crate use them on its own tables.
extern crate self as lakehouse_runtime;

pub mod graph;
mod similar;
pub mod table;

#[cfg(not(feature = "engine"))]
mod backend_stub;
#[cfg(not(feature = "engine"))]
use backend_stub as backend;
#[cfg(not(feature = "engine"))]
pub use backend_stub::{Changes, Ctx, Error, Frame, Inputs, Result, UntypedFrame};

#[cfg(feature = "engine")]
pub mod allocator;
#[cfg(feature = "engine")]
mod backend;
#[cfg(feature = "engine")]
pub mod check;
#[cfg(feature = "engine")]
pub mod cli;
#[cfg(feature = "engine")]
pub mod ctx;
#[cfg(feature = "engine")]
pub mod error;
#[cfg(feature = "engine")]
pub mod frame;
#[cfg(feature = "engine")]
pub mod ledger;
#[cfg(feature = "engine")]
pub mod orchestrator;
#[cfg(feature = "engine")]
pub mod quality;
#[cfg(feature = "engine")]
pub mod sources;
#[cfg(feature = "engine")]
pub mod store;
#[cfg(feature = "engine")]
pub mod testing;

#[cfg(feature = "engine")]
pub use ctx::Ctx;
#[cfg(feature = "engine")]
pub use error::{Error, Result};
#[cfg(feature = "engine")]
pub use frame::{Changes, Frame, Inputs, UntypedFrame, View};
#[cfg(feature = "engine")]
pub use orchestrator::{Orchestrator, RunConfig, RunReport};
#[cfg(feature = "engine")]
pub use store::Warehouse;
/// The engine's crates, at the versions this one is built with: for what the typed API does not
/// wrap (`Frame::into_dataframe`, `Frame::from_dataframe`, `View::new`), without a version-matched
/// dependency of your own.
#[cfg(feature = "engine")]
pub use {arrow, datafusion, deltalake};

pub use graph::{GraphError, PipelineDescriptor, Registry};
pub use lakehouse_macros::{Table, pipeline};
pub use table::{
    Col, ColumnDef, Date, Decimal, Expectation, IntoColumn, LogicalType, OnFail, OverwriteScope,
    Role, SchemaEvolution, SelectFor, Table, TableDef, Timestamp, WriteMode,
};

/// Everything a pipelines crate needs: `use lakehouse_runtime::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "engine")]
    pub use crate::ctx::{FileFormat, NewFiles};
    #[cfg(feature = "engine")]
    pub use crate::frame::{
        JoinType, Typed, View, count, count_distinct, count_rows, interval, max, min, on_values,
        surrogate_key, typed,
    };
    pub use crate::table::{Col, Date, Decimal, Role, Timestamp, avg, on, sum};
    pub use crate::{Changes, Ctx, Error, Frame, Result, Table, pipeline};
    #[cfg(feature = "engine")]
    pub use arrow::datatypes::{DataType, TimeUnit};
    #[cfg(feature = "engine")]
    pub use datafusion::functions::expr_fn::{
        btrim, coalesce, concat, date_part, date_trunc, lower, nullif, regexp_replace, round,
        to_char, upper,
    };
    #[cfg(feature = "engine")]
    pub use datafusion::prelude::{Expr, cast, col, lit, try_cast, when};
}

/// Paths used by the code the macros generate. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::graph::{
        BoxFuture, DependsOn, InputSpec, Pipeline, PipelineDescriptor, PipelineInput, Produced,
        assert_change_feed, assert_depends_on, assert_full_snapshot, assert_incremental_output,
        assert_not_own_output, assert_one_snapshot_feed, assert_readable, assert_references_key,
        max_level, same_table,
    };
    pub use crate::table::{
        CheckConstraint, Col, ColumnDef, ColumnRef, ColumnRole, ColumnType, Expectation,
        IntoColumn, LogicalType, OnFail, OverwriteScope, Quality, RecordsChanges, SchemaEvolution,
        SelectFor, SelectedColumn, Table, TableDef, Timestamp, WriteMode, non_null,
    };
    pub use crate::{Ctx, Inputs, Result, UntypedFrame};
    pub use inventory;

    #[cfg(not(feature = "engine"))]
    pub use crate::backend_stub::into_output;
    #[cfg(feature = "engine")]
    pub use crate::frame::into_output;

    /// Implemented by `#[derive(Table)]` so the struct's fields count as read.
    pub trait TableFields {
        /// Reads every field.
        fn read_fields(&self);
    }
}
