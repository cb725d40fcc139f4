use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct CleanSales { pub order_id: i64 }

#[pipeline(depends_on = [sales])]
pub async fn clean_sales(raw: Frame<BronzeSales>) -> Result<Frame<CleanSales>, String> {
    let _ = raw;
    todo!()
}

mod shadowed {
    use lakehouse_runtime::prelude::*;

    /// The crate's own `Result`, shadowing the prelude's.
    type Result<T> = std::result::Result<T, String>;

    #[derive(Table)]
    #[table(schema = "silver")]
    pub struct CleanCustomers { pub customer_id: String }

    #[pipeline]
    pub async fn clean_customers(_cx: &Ctx) -> Result<Frame<CleanCustomers>> {
        todo!()
    }
}

fn main() {}
