use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "gold")]
pub struct CustomerTotals {
    pub customer_id: Option<String>,
    pub total: Option<String>,
}

// Text cannot be summed: the message says what `sum` takes.
#[pipeline(depends_on = [sales])]
pub async fn customer_totals(raw: Frame<BronzeSales>) -> Result<Frame<CustomerTotals>> {
    raw.group_by([BronzeSales::customer_id.expr()])
        .select_into(CustomerTotalsSelect {
            customer_id: BronzeSales::customer_id,
            total: sum(BronzeSales::customer_id),
        })
}

fn main() {}
