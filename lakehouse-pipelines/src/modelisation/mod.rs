//! The gold star schema.

pub mod dimensions;
pub mod facts;
