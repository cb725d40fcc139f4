//! The type-checking-only backend, used when the `engine` feature is off: the same generated code
//! compiles, nothing executes. The compile-fail tests use it to stay free of DataFusion.

use std::marker::PhantomData;

use crate::table::{Col, LogicalType, SelectFor, Table, TableDef};

/// Stands in for a DataFusion expression.
pub(crate) type RawExpr = ();

pub(crate) fn column(_table: &'static TableDef, _name: &str) -> RawExpr {}

pub(crate) fn role_column(_role: &str, _name: &str) -> RawExpr {}

pub(crate) fn alias(_expr: RawExpr, _name: &str) -> RawExpr {}

pub(crate) fn cast_named(
    _expr: RawExpr,
    _to: LogicalType,
    _label: String,
    _advice: &'static str,
) -> RawExpr {
}

pub(crate) fn sum(_expr: RawExpr) -> RawExpr {}

pub(crate) fn exact_integer_sum(_expr: RawExpr) -> RawExpr {}

pub(crate) fn wide_decimal_sum(_expr: RawExpr, _scale: i8) -> RawExpr {}

pub(crate) fn avg(_expr: RawExpr) -> RawExpr {}
pub(crate) fn wide_decimal_avg(_expr: RawExpr, _scale: i8) -> RawExpr {}

impl<T: Table, V> Col<T, V> {
    /// The column as an expression (type-checking only).
    pub fn expr(self) -> RawExpr {}
}

/// The error type when the engine is off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Execution needs the `engine` feature.
    #[error("lakehouse-runtime was built without its `engine` feature: nothing can execute")]
    EngineDisabled,
}

/// `Result` with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A typed frame (type-checking only).
pub struct Frame<T: Table> {
    _table: PhantomData<T>,
}

impl<T: Table> Frame<T> {
    /// Projects onto table `U` (type-checking only).
    pub fn select_into<U: Table>(self, columns: impl SelectFor<U>) -> Result<Frame<U>> {
        let _ = columns.into_columns();
        Err(Error::EngineDisabled)
    }

    /// Groups the rows (type-checking only).
    pub fn group_by(self, keys: impl IntoIterator<Item = RawExpr>) -> Grouped {
        let _ = keys.into_iter().count();
        Grouped { _private: () }
    }
}

/// Grouped rows (type-checking only).
pub struct Grouped {
    _private: (),
}

impl Grouped {
    /// Aggregates each group onto table `U` (type-checking only).
    pub fn select_into<U: Table>(self, columns: impl SelectFor<U>) -> Result<Frame<U>> {
        let _ = columns.into_columns();
        Err(Error::EngineDisabled)
    }
}

/// Rows of `T` new since the reading pipeline's last success (type-checking only).
pub struct Changes<T: Table> {
    _table: PhantomData<T>,
}

/// The pipeline context (type-checking only).
pub struct Ctx {
    _private: (),
}

/// Inputs handed to a run shim (type-checking only).
pub struct Inputs {
    _private: (),
}

/// A pipeline's output (type-checking only).
pub struct UntypedFrame {
    _private: (),
}

impl<T: Table> crate::graph::PipelineInput for Frame<T> {
    type Table = T;
    const INCREMENTAL: bool = false;
    fn take(_inputs: &mut Inputs, _index: usize) -> Result<Self> {
        Err(Error::EngineDisabled)
    }
}

impl<T: Table> crate::graph::PipelineInput for Changes<T> {
    type Table = T;
    const INCREMENTAL: bool = true;
    fn take(_inputs: &mut Inputs, _index: usize) -> Result<Self> {
        Err(Error::EngineDisabled)
    }
}

/// Converts a pipeline's result for the run shim (type-checking only).
pub fn into_output<T: Table>(result: Result<Frame<T>>) -> Result<UntypedFrame> {
    result.map(|_| UntypedFrame { _private: () })
}
