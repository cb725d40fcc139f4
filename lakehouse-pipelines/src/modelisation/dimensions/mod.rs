//! Dimensions.

pub mod dim_product;
