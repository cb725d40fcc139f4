//! The store dimension.

use lakehouse_runtime::prelude::*;

use crate::ingestion::erp::{SilverErpSales, silver_erp_sales_transactions};

/// Stores, with the history of their attributes.
#[derive(Table)]
#[table(
    schema = "gold",
    name = "dim_store",
    key(store_key),
    mode = scd2,
    quality = blocking,
    change_columns(store_id, store_name, city, state)
)]
pub struct DimStore {
    /// Surrogate key: SHA-256 of `store_id`
    pub store_key: String,
    /// Unique ID of the store
    pub store_id: String,
    /// Name of the store
    pub store_name: Option<String>,
    /// City of the store
    pub city: Option<String>,
    /// State of the store
    pub state: Option<String>,
    /// Logical time of the run that wrote the row
    pub run_at: Timestamp,
}

/// One row per store: its attributes from its most recently ingested sale.
#[pipeline(depends_on = [silver_erp_sales_transactions])]
pub async fn dim_store(sales: Frame<SilverErpSales>, cx: &Ctx) -> Result<Frame<DimStore>> {
    use SilverErpSales as s;
    sales
        .filter(s::store_id.is_not_null())?
        .latest_by(
            [s::store_id.expr()],
            [s::run_at.expr(), s::order_line.expr(), s::order_id.expr()],
        )?
        .select_into(DimStoreSelect {
            store_key: surrogate_key([s::store_id]),
            store_id: s::store_id.assume_not_null(),
            store_name: s::store_name,
            city: s::city,
            state: s::state,
            run_at: cx.run_at(),
        })
}
