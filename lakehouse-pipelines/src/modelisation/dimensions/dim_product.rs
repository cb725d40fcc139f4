//! The product dimension.

use lakehouse_runtime::prelude::*;

use crate::ingestion::erp::{SilverErpSales, silver_erp_sales_transactions};

/// Products sold, with the history of their attributes.
#[derive(Table)]
#[table(
    schema = "gold",
    name = "dim_product",
    key(product_key),
    mode = scd2,
    quality = blocking,
    change_columns(product_id, product_name, category, brand)
)]
pub struct DimProduct {
    /// Surrogate key: SHA-256 of `product_id`
    pub product_key: String,
    /// Unique ID of the product
    pub product_id: String,
    /// Name of the product
    pub product_name: Option<String>,
    /// Category of the product
    pub category: Option<String>,
    /// Brand of the product
    pub brand: Option<String>,
    /// Logical time of the run that wrote the row
    pub run_at: Timestamp,
}

/// One row per product: its attributes from its most recently ingested sale (a late-arriving
/// older order, ingested last, sets them).
#[pipeline(depends_on = [silver_erp_sales_transactions])]
pub async fn dim_product(sales: Frame<SilverErpSales>, cx: &Ctx) -> Result<Frame<DimProduct>> {
    use SilverErpSales as s;
    sales
        .filter(s::product_id.is_not_null())?
        .latest_by(
            [s::product_id.expr()],
            [s::run_at.expr(), s::order_line.expr(), s::order_id.expr()],
        )?
        .select_into(DimProductSelect {
            product_key: surrogate_key([s::product_id]),
            product_id: s::product_id.assume_not_null(),
            product_name: s::product_name,
            category: s::category,
            brand: s::brand,
            run_at: cx.run_at(),
        })
}
