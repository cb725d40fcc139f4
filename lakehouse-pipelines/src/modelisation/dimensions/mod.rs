//! Dimensions.

pub mod dim_bike_station;
pub mod dim_customer;
pub mod dim_date;
pub mod dim_product;
pub mod dim_promo;
pub mod dim_store;
