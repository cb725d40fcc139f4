use lakehouse_runtime::prelude::*;

/// Readings, partitioned by their value.
#[derive(Table)]
#[table(schema = "bronze", name = "readings", partition_by(value))]
pub struct Readings {
    pub id: i64,
    pub value: f64,
}

fn main() {}
