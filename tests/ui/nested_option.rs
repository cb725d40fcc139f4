use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct Contacts {
    pub id: i64,
    pub email: Option<Option<String>>,
}

fn main() {
    let _ = <Contacts as Table>::DEF;
}
