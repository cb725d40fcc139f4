use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

/// Every customer with their latest order, as a snapshot.
#[derive(Table)]
#[table(schema = "silver", key(customer_id), mode = merge)]
pub struct CustomerSnapshot {
    pub customer_id: i64,
}

// A run where only the sales have new rows would read the customers empty, and delete them all.
#[pipeline(depends_on = [sales, customers], full_snapshot)]
pub async fn customer_snapshot(
    _sales: Changes<BronzeSales>,
    _customers: Changes<BronzeCustomers>,
) -> Result<Frame<CustomerSnapshot>> {
    todo!()
}

fn main() {}
