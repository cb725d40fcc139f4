use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

/// The customer who referred another: a role of the customers table.
const REFERRER: Role<BronzeCustomers> = Role::new("referrer");

fn main() {
    // A role reads its own table's columns only.
    let _name = REFERRER.col(BronzeSales::customer_id);
}
