//! The pipeline graph: registration, validation, and the compile-time traits behind it.

mod descriptor;
mod registry;

pub use descriptor::{
    BoxFuture, DependsOn, InputSpec, Pipeline, PipelineDescriptor, PipelineInput, Produced,
    ReadableInput, RunFn, assert_change_feed, assert_depends_on, assert_full_snapshot,
    assert_incremental_output, assert_not_own_output, assert_one_snapshot_feed, assert_readable,
    assert_references_key, max_level, same_table,
};
pub use registry::{GraphError, Registry};
