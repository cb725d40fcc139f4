use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct CleanSales {
    pub order_id: i64,
}

#[pipeline(depends_on = [sale])]
pub async fn clean_sales(raw: Frame<BronzeSales>) -> Result<Frame<CleanSales>> {
    let _ = raw;
    todo!()
}

fn main() {}
