//! Facts.

pub mod fact_sales;
