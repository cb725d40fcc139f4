//! The gold star schema.

pub mod dimensions;
