use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "bronze")]
pub struct Blobs {
    pub id: i64,
    pub payload: Vec<u8>,
}

fn main() {}
