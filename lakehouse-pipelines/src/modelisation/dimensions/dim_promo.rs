//! The promotion dimension.

use lakehouse_runtime::prelude::*;

use crate::ingestion::erp::{SilverErpSales, silver_erp_sales_transactions};

/// Promotion codes, with the history of their attributes.
#[derive(Table)]
#[table(schema = "gold", name = "dim_promo", key(promo_key), mode = scd2, quality = blocking,
        change_columns(promo_code, promo_family))]
pub struct DimPromo {
    /// Surrogate key: SHA-256 of `promo_code`
    pub promo_key: String,
    /// The code entered at checkout
    pub promo_code: String,
    /// The campaign family: the code without its trailing digits (`OFFER12` → `OFFER`)
    pub promo_family: String,
    /// Logical time of the run that wrote the row
    pub run_at: Timestamp,
}

/// One row per promotion code used in a sale.
#[pipeline(depends_on = [silver_erp_sales_transactions])]
pub async fn dim_promo(sales: Frame<SilverErpSales>, cx: &Ctx) -> Result<Frame<DimPromo>> {
    use SilverErpSales as s;
    let family = regexp_replace(s::promo_code.expr(), lit("[0-9]+$"), lit(""), None);
    sales
        .filter(s::promo_code.is_not_null())?
        .latest_by(
            [s::promo_code.expr()],
            [s::run_at.expr(), s::order_line.expr(), s::order_id.expr()],
        )?
        .select_into(DimPromoSelect {
            promo_key: surrogate_key([s::promo_code]),
            promo_code: s::promo_code.assume_not_null(),
            promo_family: typed::<String>(family),
            run_at: cx.run_at(),
        })
}
