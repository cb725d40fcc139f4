use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct Totals {
    pub id: i64,
}

/// The same table under another name: the macro cannot see through it, the compiler does.
type Previous = Totals;

#[pipeline]
pub async fn totals(previous: Frame<Previous>) -> Result<Frame<Totals>> {
    Ok(previous)
}

fn main() {}
