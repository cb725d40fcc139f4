use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct Enriched { pub order_id: i64 }

#[pipeline(depends_on = [sales, customers])]
pub async fn enriched(_s: Frame<BronzeSales>, _c: Frame<BronzeCustomers>) -> Result<Frame<Enriched>> {
    // order_id is an i64, customer_id a String.
    let _key = on(BronzeSales::order_id, BronzeCustomers::customer_id);
    todo!()
}

fn main() {}
