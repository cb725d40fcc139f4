use lakehouse_runtime::prelude::*;

#[derive(Table)]
#[table(schema = "gold", key(customer_key), mode = merge)]
pub struct DimCustomer {
    pub customer_key: String,
    pub email: Option<String>,
}

#[derive(Table)]
#[table(schema = "gold", key(order_id), mode = merge, quality = blocking)]
pub struct FactSales {
    pub order_id: i64,
    #[column(references = DimCustomer::email)]
    pub customer_email: Option<String>,
}

#[derive(Table)]
#[table(schema = "bronze")]
pub struct Visits {
    pub visitor: String,
}

#[derive(Table)]
#[table(schema = "gold", key(visit_id), mode = merge)]
pub struct FactVisits {
    pub visit_id: i64,
    #[column(references = Visits::visitor)]
    pub visitor: String,
}

#[derive(Table)]
#[table(schema = "gold", key(store_id, day), mode = merge)]
pub struct StoreDays {
    pub store_id: String,
    pub day: Date,
}

#[derive(Table)]
#[table(schema = "gold", key(ticket_id), mode = merge)]
pub struct Tickets {
    pub ticket_id: i64,
    #[column(references = StoreDays::store_id)]
    pub store_id: String,
}

fn main() {}
