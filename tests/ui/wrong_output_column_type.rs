use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct CleanSales {
    pub order_id: i64,
    pub customer_id: Option<String>,
}

#[pipeline(depends_on = [sales])]
pub async fn clean_sales(raw: Frame<BronzeSales>) -> Result<Frame<CleanSales>> {
    raw.select_into(CleanSalesSelect {
        order_id: BronzeSales::customer_id,
        customer_id: BronzeSales::customer_id,
    })
}

fn main() {}
