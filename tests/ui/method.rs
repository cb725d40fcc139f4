use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct CleanSales { pub order_id: i64 }

pub struct Cleaner;

impl Cleaner {
    #[pipeline(depends_on = [sales])]
    pub async fn clean_sales(&self, raw: Frame<BronzeSales>) -> Result<Frame<CleanSales>> {
        let _ = raw;
        todo!()
    }
}

fn main() {}
