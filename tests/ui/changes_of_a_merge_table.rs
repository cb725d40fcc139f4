use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

/// Merged, its change data feed not on: its changes cannot be read incrementally.
#[derive(Table)]
#[table(schema = "silver", key(order_id), mode = merge)]
pub struct CleanSales {
    pub order_id: i64,
}

#[derive(Table)]
#[table(schema = "gold")]
pub struct Totals {
    pub order_id: i64,
}

#[pipeline(depends_on = [sales])]
pub async fn clean_sales(_raw: Changes<BronzeSales>) -> Result<Frame<CleanSales>> {
    todo!()
}

#[pipeline(depends_on = [clean_sales])]
pub async fn totals(_clean: Changes<CleanSales>) -> Result<Frame<Totals>> {
    todo!()
}

fn main() {}
