use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct A { pub id: i64 }
#[derive(Table)]
#[table(schema = "silver")]
pub struct B { pub id: i64 }

#[pipeline(depends_on = [sales])]
pub async fn takes_a_vec(rows: Vec<i64>) -> Result<Frame<A>> { let _ = rows; todo!() }

#[pipeline(depends_on = [sales])]
pub async fn returns_nothing(_raw: Frame<BronzeSales>) {}

#[pipeline(depends_on = [sales])]
pub async fn generic<T>(_raw: Frame<BronzeSales>, _x: T) -> Result<Frame<B>> { todo!() }

fn main() {}
