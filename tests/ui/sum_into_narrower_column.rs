use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "gold")]
pub struct CustomerQuantities {
    pub customer_id: Option<String>,
    pub quantity: i32,
}

// A sum of i64 values is an i64: it cannot fill an i32 column.
#[pipeline(depends_on = [sales])]
pub async fn customer_quantities(raw: Frame<BronzeSales>) -> Result<Frame<CustomerQuantities>> {
    raw.group_by([BronzeSales::customer_id.expr()])
        .select_into(CustomerQuantitiesSelect {
            customer_id: BronzeSales::customer_id,
            quantity: sum(BronzeSales::order_id),
        })
}

fn main() {}
