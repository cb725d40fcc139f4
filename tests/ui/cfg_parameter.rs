use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct CleanSales { pub order_id: i64 }

#[pipeline]
pub async fn clean_sales(#[cfg(test)] _cx: &Ctx) -> Result<Frame<CleanSales>> {
    todo!()
}

fn main() {}
