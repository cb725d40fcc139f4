use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

/// A misspelled attribute: one error, with a suggestion, and none where the table is used.
#[derive(Table)]
#[table(shcema = "silver")]
pub struct CleanSales { pub order_id: i64 }

#[pipeline(depends_on = [sales])]
pub async fn clean_sales(raw: Frame<BronzeSales>) -> Result<Frame<CleanSales>> {
    raw.select_into(CleanSalesSelect { order_id: BronzeSales::order_id })
}

fn main() {}
