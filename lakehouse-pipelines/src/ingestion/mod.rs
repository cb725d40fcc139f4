//! Sources → bronze → silver.

pub mod crm;
pub mod erp;
