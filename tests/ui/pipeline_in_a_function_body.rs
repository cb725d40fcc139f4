use lakehouse_runtime::prelude::*;
use lakehouse_tests::*;

#[derive(Table)]
#[table(schema = "silver")]
pub struct Copied { pub id: i64 }

fn main() {
    #[pipeline(depends_on = [sales])]
    pub async fn copied(raw: Frame<BronzeSales>) -> Result<Frame<Copied>> {
        let _ = raw;
        todo!()
    }
}
