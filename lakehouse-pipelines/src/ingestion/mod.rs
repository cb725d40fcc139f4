//! Sources → bronze → silver.

pub mod crm;
pub mod erp;
pub mod open;
