use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "silver", key(order_id, ordr_line), partition_by(order_dat), mode = merge)]
pub struct Sales {
    pub order_id: i64,
    pub order_line: i32,
    pub order_date: Date,
}

fn main() {}
