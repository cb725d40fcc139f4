use lakehouse_runtime::prelude::*;

/// Prices, keyed by their amount.
#[derive(Table)]
#[table(schema = "silver", name = "prices", key(amount), mode = merge)]
pub struct Prices {
    pub amount: f64,
    pub label: Option<String>,
}

fn main() {}
