//! Sales facts.

use lakehouse_runtime::prelude::*;

use crate::ingestion::erp::{SilverErpSales, silver_erp_sales_transactions};
use crate::modelisation::dimensions::dim_customer::{DimCustomer, dim_customer};
use crate::modelisation::dimensions::dim_date::{DimDate, calendar_date_key, dim_date};
use crate::modelisation::dimensions::dim_product::{DimProduct, dim_product};
use crate::modelisation::dimensions::dim_promo::{DimPromo, dim_promo};
use crate::modelisation::dimensions::dim_store::{DimStore, dim_store};

/// One row per order line, with keys into every dimension.
#[derive(Table)]
#[table(schema = "gold", name = "fact_sales", key(sales_key), mode = merge, quality = blocking)]
pub struct FactSales {
    /// Surrogate key: SHA-256 of `order_id || order_line`
    pub sales_key: String,
    /// The order date as `yyyyMMdd`; NULL without one, or outside the calendar (1970–2099)
    #[column(references = DimDate::date_key)]
    pub date_key: Option<String>,
    /// The customer (same key as the dimension: SHA-256 of `customer_id`)
    #[column(references = DimCustomer::customer_key)]
    pub customer_key: Option<String>,
    /// The product
    #[column(references = DimProduct::product_key)]
    pub product_key: Option<String>,
    /// The store
    #[column(references = DimStore::store_key)]
    pub store_key: Option<String>,
    /// The promotion; NULL for a sale without one
    #[column(references = DimPromo::promo_key)]
    pub promo_key: Option<String>,
    /// Unique ID of the order
    pub order_id: i64,
    /// Line number of the order
    pub order_line: i32,
    /// Quantity sold
    pub quantity: Option<i32>,
    /// Unit price
    pub unit_price: Option<Decimal<10, 2>>,
    /// Discount per unit
    pub discount: Option<Decimal<10, 2>>,
    /// Cost of the line (all its units)
    pub cost: Option<Decimal<10, 2>>,
    /// quantity × unit price: the gross amount, before the discount
    pub total_price: Option<Decimal<12, 2>>,
    /// Discount as a percentage of the unit price, rounded to 2 decimals
    pub discount_pct: Option<Decimal<10, 2>>,
    /// total price − cost: the gross margin, before the discount
    pub profit: Option<Decimal<12, 2>>,
    /// Logical time of the run that ingested the line (its silver row's): the dimensions'
    /// versions that run wrote are the attributes the line was loaded with
    pub run_at: Timestamp,
}

fn decimal(expr: Expr, precision: u8, scale: i8) -> Expr {
    cast(expr, DataType::Decimal128(precision, scale))
}

/// `expr` as a decimal, NULL where it does not fit: an absurd line (silver's `line_fits`
/// expectation counts them) leaves its amounts NULL rather than failing every run from then on.
fn fitting_decimal(expr: Expr, precision: u8, scale: i8) -> Expr {
    try_cast(expr, DataType::Decimal128(precision, scale))
}

/// Every sale line with its dimension keys, computed from the same business keys as the
/// dimensions so every key resolves, and its derived amounts.
#[pipeline(depends_on = [silver_erp_sales_transactions, dim_customer, dim_product, dim_store, dim_promo, dim_date])]
pub async fn fact_sales(sales: Frame<SilverErpSales>) -> Result<Frame<FactSales>> {
    use SilverErpSales as s;
    let total = fitting_decimal(s::quantity.expr() * s::unit_price.expr(), 12, 2);
    // A free line (price 0) has no discount percentage: NULL, not a division by zero that
    // would fail every run from then on.
    let price = nullif(s::unit_price.expr(), decimal(lit(0), 10, 2));
    let discount_pct = fitting_decimal(
        round(vec![
            lit(100) * decimal(s::discount.expr(), 12, 4) / price,
            lit(2),
        ]),
        10,
        2,
    );
    sales.select_into(FactSalesSelect {
        sales_key: surrogate_key([s::order_id.expr(), s::order_line.expr()]),
        date_key: calendar_date_key(s::order_date.expr())?,
        customer_key: surrogate_key([s::customer_id]),
        product_key: surrogate_key([s::product_id]),
        store_key: surrogate_key([s::store_id]),
        promo_key: surrogate_key([s::promo_code]),
        order_id: s::order_id,
        order_line: s::order_line,
        quantity: s::quantity,
        unit_price: s::unit_price,
        discount: s::discount,
        cost: s::cost,
        total_price: typed::<Option<Decimal<12, 2>>>(total.clone()),
        discount_pct: typed::<Option<Decimal<10, 2>>>(discount_pct),
        profit: typed::<Option<Decimal<12, 2>>>(fitting_decimal(total - s::cost.expr(), 12, 2)),
        run_at: s::run_at,
    })
}
