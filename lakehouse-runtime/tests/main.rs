//! Integration tests of the runtime: real Delta tables in temporary warehouses, real DataFusion
//! plans. One test binary, modules by topic.

// Table structs are declared for their schemas and never constructed.
#![allow(dead_code)]

mod aggregate;
mod common;
mod compaction;
mod files;
mod joins;
mod keys;
mod ledger;
mod merge_changes;
mod merge_fast_paths;
mod names;
mod orchestrator;
mod parallel_write;
mod partitions;
mod plan;
mod plan_check;
mod properties;
mod prune_ledger;
mod quality;
mod scd2;
mod sources;
mod sql;
mod upsert;
mod write_matrix;
mod write_safety;
