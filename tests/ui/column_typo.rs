use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct CleanSales { pub order_id: i64 }

#[pipeline(depends_on = [sales])]
pub async fn clean_sales(raw: Frame<BronzeSales>) -> Result<Frame<CleanSales>> {
    raw.select_into(CleanSalesSelect { order_id: BronzeSales::ordr_id })
}

fn main() {}
