//! Sources → bronze → silver.

pub mod erp;
