use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "gold")]
pub struct FactSales {
    pub order_id: i64,
    #[column(references = BronzeCustomers::customer_id)]
    pub customer_id: Option<i64>,
}

fn main() {}
