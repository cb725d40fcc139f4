use lakehouse_runtime::prelude::*;

/// An optional id, by another name.
type MaybeId = Option<i64>;

#[derive(Table)]
#[table(schema = "silver", key(id), mode = merge)]
pub struct Accounts {
    pub id: MaybeId,
    pub name: String,
}

fn main() {}
