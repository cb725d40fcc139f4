//! Sales per day and store.

use lakehouse_runtime::prelude::*;

use crate::modelisation::dimensions::dim_date::DimDate;
use crate::modelisation::dimensions::dim_store::DimStore;
use crate::modelisation::facts::fact_sales::{FactSales, fact_sales};

/// The sales of each store on each day, summed from the fact table and rebuilt at every run.
#[derive(Table)]
#[table(
    schema = "gold",
    name = "agg_daily_store_sales",
    key(date_key, store_key),
    mode = overwrite,
    quality = blocking
)]
pub struct AggDailyStoreSales {
    /// The day as `yyyyMMdd`
    #[column(references = DimDate::date_key)]
    pub date_key: String,
    /// The store
    #[column(references = DimStore::store_key)]
    pub store_key: String,
    /// Distinct orders
    pub orders: i64,
    /// Order lines
    pub order_lines: i64,
    /// Units sold (NULL when no line has a quantity)
    pub quantity: Option<i64>,
    /// Sum of the lines' total prices: gross revenue, before discounts
    pub revenue: Option<Decimal<16, 2>>,
    /// Sum of the lines' profits: gross margin, before discounts
    pub profit: Option<Decimal<16, 2>>,
    /// Logical time of the run that wrote the row
    pub run_at: Timestamp,
}

/// One row per day and store that sold something; lines without a date or a store are left out.
#[pipeline(depends_on = [fact_sales])]
pub async fn agg_daily_store_sales(
    sales: Frame<FactSales>,
    cx: &Ctx,
) -> Result<Frame<AggDailyStoreSales>> {
    use FactSales as f;
    sales
        .filter(f::date_key.is_not_null().and(f::store_key.is_not_null()))?
        .group_by([f::date_key.expr(), f::store_key.expr()])
        .select_into(AggDailyStoreSalesSelect {
            date_key: f::date_key.assume_not_null(),
            store_key: f::store_key.assume_not_null(),
            orders: count_distinct(f::order_id),
            order_lines: count_rows(),
            quantity: sum(f::quantity),
            revenue: sum(f::total_price),
            profit: sum(f::profit),
            run_at: cx.run_at(),
        })
}
