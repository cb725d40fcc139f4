//! Tables and pipelines shared by the compile-fail cases in `ui/`: a small valid graph they can
//! refer to (`use lakehouse_tests::*;`).

use lakehouse_runtime::prelude::*;

/// Raw sales.
#[derive(Table)]
#[table(schema = "bronze", name = "sales")]
pub struct BronzeSales {
    pub order_id: i64,
    pub customer_id: Option<String>,
    pub amount: Option<f64>,
}

/// Raw customers.
#[derive(Table)]
#[table(schema = "bronze", name = "customers", key(customer_id), mode = append)]
pub struct BronzeCustomers {
    pub customer_id: String,
    pub name: Option<String>,
}

/// Ingests sales.
#[pipeline]
pub async fn sales(_cx: &Ctx) -> Result<Frame<BronzeSales>> {
    todo!()
}

/// Ingests customers.
#[pipeline]
pub async fn customers(_cx: &Ctx) -> Result<Frame<BronzeCustomers>> {
    todo!()
}
