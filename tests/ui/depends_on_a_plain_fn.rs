use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct CleanSales { pub order_id: i64 }

/// A helper, not a `#[pipeline]`.
pub fn helper() {}

#[pipeline(depends_on = [helper])]
pub async fn clean_sales(raw: Frame<BronzeSales>) -> Result<Frame<CleanSales>> {
    raw.select_into(CleanSalesSelect { order_id: BronzeSales::order_id })
}

fn main() {}
