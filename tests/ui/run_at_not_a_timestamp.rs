use lakehouse_runtime::prelude::*;

/// Orders, whose `run_at` was declared as text.
#[derive(Table)]
#[table(schema = "bronze", name = "orders_as_text")]
pub struct OrdersAsText {
    pub order_id: i64,
    pub run_at: String,
}

fn main() {}
