//! The product category dimension.

use lakehouse_pipelines::ingestion::erp::{SilverErpSales, silver_erp_sales_transactions};
use lakehouse_runtime::prelude::*;

/// Product categories.
#[derive(Table)]
#[table(schema = "gold", name = "dim_category", key(category_key), mode = merge)]
pub struct DimCategory {
    /// Surrogate key: SHA-256 of `category`
    pub category_key: String,
    /// The category's name
    pub category: String,
    /// Logical time of the run that wrote the row
    pub run_at: Timestamp,
}

/// One row per category sold.
#[pipeline(depends_on = [silver_erp_sales_transactions])]
pub async fn dim_category(sales: Frame<SilverErpSales>, cx: &Ctx) -> Result<Frame<DimCategory>> {
    use SilverErpSales as s;
    sales
        .filter(s::category.is_not_null())?
        .latest_by(
            [s::category.expr()],
            [s::order_line.expr(), s::order_id.expr()],
        )?
        .select_into(DimCategorySelect {
            category_key: surrogate_key([s::category]),
            category: s::category.assume_not_null(),
            run_at: cx.run_at(),
        })
}
