//! Aggregates: facts summed to the grain reports read.

pub mod agg_daily_store_sales;
