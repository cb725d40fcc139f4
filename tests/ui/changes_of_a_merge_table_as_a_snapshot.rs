use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

/// Merged, its changes recorded.
#[derive(Table)]
#[table(
    schema = "silver",
    key(order_id),
    mode = merge,
    property(key = "delta.enableChangeDataFeed", value = "true")
)]
pub struct CleanSales {
    pub order_id: i64,
}

/// Every order, as a snapshot.
#[derive(Table)]
#[table(schema = "gold", key(order_id), mode = merge)]
pub struct AllOrders {
    pub order_id: i64,
}

#[pipeline(depends_on = [sales])]
pub async fn clean_sales(_raw: Changes<BronzeSales>) -> Result<Frame<CleanSales>> {
    todo!()
}

// The changes are some keys, not all: a full snapshot would delete the others.
#[pipeline(depends_on = [clean_sales], full_snapshot)]
pub async fn all_orders(_clean: Changes<CleanSales>) -> Result<Frame<AllOrders>> {
    todo!()
}

fn main() {}
