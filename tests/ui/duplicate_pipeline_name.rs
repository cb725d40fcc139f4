mod erp {
    use lakehouse_runtime::prelude::*;

    #[derive(Table)]
    #[table(schema = "bronze", name = "erp_raw")]
    pub struct ErpRaw { pub id: i64 }

    /// Loads the ERP extract.
    #[pipeline]
    pub async fn load(_cx: &Ctx) -> Result<Frame<ErpRaw>> { todo!() }
}

mod crm {
    use lakehouse_runtime::prelude::*;

    #[derive(Table)]
    #[table(schema = "bronze", name = "crm_raw")]
    pub struct CrmRaw { pub id: i64 }

    /// Loads the CRM extract: a second pipeline named `load`.
    #[pipeline]
    pub async fn load(_cx: &Ctx) -> Result<Frame<CrmRaw>> { todo!() }
}

fn main() {}
