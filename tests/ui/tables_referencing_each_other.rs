use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "silver", key(id), mode = merge, quality = warn)]
pub struct Employees {
    pub id: i64,
    #[column(references = Departments::id)]
    pub department_id: Option<i64>,
}

#[derive(Table)]
#[table(schema = "silver", key(id), mode = merge, quality = warn)]
pub struct Departments {
    pub id: i64,
    #[column(references = Employees::id)]
    pub manager_id: Option<i64>,
}

fn main() {}
