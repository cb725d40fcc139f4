use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct A { pub id: i64 }
#[derive(Table)]
#[table(schema = "silver")]
pub struct B { pub id: i64 }
#[derive(Table)]
#[table(schema = "silver")]
pub struct C { pub id: i64 }

#[pipeline(depends_on = [c])]
pub async fn a(_x: Frame<C>) -> Result<Frame<A>> { todo!() }

#[pipeline(depends_on = [a])]
pub async fn b(_x: Frame<A>) -> Result<Frame<B>> { todo!() }

#[pipeline(depends_on = [b])]
pub async fn c(_x: Frame<B>) -> Result<Frame<C>> { todo!() }

fn main() {}
