use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

/// Replaced whole by every run.
#[derive(Table)]
#[table(schema = "silver", mode = overwrite)]
pub struct LatestSales {
    pub order_id: i64,
}

/// Each run would keep only the sales new since the last one.
#[pipeline(depends_on = [sales])]
pub async fn latest_sales(_raw: Changes<BronzeSales>) -> Result<Frame<LatestSales>> {
    todo!()
}

fn main() {}
