use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct CleanSales { pub order_id: i64 }

#[pipeline(depends_on = [sales, customers, lakehouse_tests::sales])]
pub async fn clean_sales(_raw: Frame<BronzeSales>) -> Result<Frame<CleanSales>> {
    todo!()
}

fn main() {}
