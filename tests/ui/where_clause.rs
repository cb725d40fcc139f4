use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct Totals {
    pub id: i64,
}

// Generic through its `where` clause only: the error points there.
#[pipeline]
pub async fn totals(_cx: &Ctx) -> Result<Frame<Totals>>
where
    Totals: Sized,
{
    todo!()
}

fn main() {}
