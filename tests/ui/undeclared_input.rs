use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct Enriched { pub order_id: i64 }

// Reads the customers but only declares the sales pipeline.
#[pipeline(depends_on = [sales])]
pub async fn enriched(_s: Frame<BronzeSales>, _c: Frame<BronzeCustomers>) -> Result<Frame<Enriched>> {
    todo!()
}

fn main() {}
