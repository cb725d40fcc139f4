use lakehouse_runtime::prelude::*;

// Refused where it is declared, though nothing uses the table.
#[derive(Table)]
#[table(schema = "silver")]
pub struct Contacts {
    pub id: i64,
    pub email: Option<Option<String>>,
}

fn main() {}
