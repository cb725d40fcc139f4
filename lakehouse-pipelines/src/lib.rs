//! The reference lakehouse: tables and pipelines only.
//!
//! - `ingestion`: sources into bronze (append, stamped with `run_at`), then silver.
//! - `modelisation`: the gold star schema (dimensions and facts).

pub mod ingestion;
pub mod modelisation;
