use lakehouse_runtime::prelude::*;

/// Column lists written as values: each told how to write it, at once, and no "missing key" for
/// the merge table whose key did not parse.
#[derive(Table)]
#[table(schema = "silver", key = id, mode = merge, partition_by = [day])]
pub struct Accounts {
    pub id: i64,
    pub day: Date,
}

/// A list that does not parse: one error for it, and the entries after it read.
#[derive(Table)]
#[table(schema = "silver", key(id day), mode = merge, z_order = [id day])]
pub struct Shops {
    pub id: i64,
    pub day: Date,
}

fn main() {}
