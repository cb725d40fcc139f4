//! The gold star schema.

pub mod aggregates;
pub mod dimensions;
pub mod facts;
