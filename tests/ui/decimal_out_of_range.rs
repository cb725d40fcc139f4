use lakehouse_runtime::prelude::*;

// Refused where it is declared, though nothing uses the table.
#[derive(Table)]
#[table(schema = "silver")]
pub struct Payments {
    pub id: i64,
    pub amount: Decimal<40, 2>,
}

fn main() {}
