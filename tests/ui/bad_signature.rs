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

#[derive(Table)]
#[table(schema = "silver")]
pub struct C { pub id: i64 }
#[derive(Table)]
#[table(schema = "silver")]
pub struct D { pub id: i64 }
#[derive(Table)]
#[table(schema = "silver")]
pub struct E { pub id: i64 }

#[pipeline(depends_on = [sales])]
pub async fn returns_a_bare_frame(_raw: Frame<BronzeSales>) -> Frame<C> { todo!() }

#[pipeline(depends_on = [sales])]
pub async fn borrows_the_context_mutably(_raw: Frame<BronzeSales>, _cx: &mut Ctx) -> Result<Frame<D>> { todo!() }

#[pipeline(depends_on = [sales])]
pub async fn borrows_a_string(_raw: Frame<BronzeSales>, _name: &str, _names: &[String]) -> Result<Frame<E>> { todo!() }

#[pipeline(depends_on = [sales])]
pub async fn generic_output<T: Table>(_raw: Frame<BronzeSales>) -> Result<Frame<T>> { todo!() }

#[pipeline(depends_on = [sales])]
pub async fn opaque_output(_raw: Frame<BronzeSales>) -> Result<Frame<impl Table>> { todo!() }

fn main() {}
