use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

/// An append table: `full_snapshot` would have no key to delete.
#[derive(Table)]
#[table(schema = "silver")]
pub struct CleanSales { pub order_id: i64 }

#[pipeline(depends_on = [sales], full_snapshot)]
pub async fn clean_sales(raw: Frame<BronzeSales>) -> Result<Frame<CleanSales>> {
    raw.select_into(CleanSalesSelect { order_id: BronzeSales::order_id })
}

fn main() {}
