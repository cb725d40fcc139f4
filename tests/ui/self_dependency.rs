use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct Totals { pub id: i64 }

#[pipeline(depends_on = [crate::totals])]
pub async fn totals(previous: Frame<Totals>) -> Result<Frame<Totals>> {
    Ok(previous)
}

fn main() {}
