//! Facts.

pub mod fact_bike_status;
pub mod fact_sales;
