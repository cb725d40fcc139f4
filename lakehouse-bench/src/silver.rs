//! Silver: the sales cleaned and typed, upserted on (order, line).

use datafusion::functions::expr_fn::{btrim, upper};
use lakehouse_runtime::prelude::*;

use crate::batch;
use crate::bronze::{BronzeSales, bronze_sales};

/// Cleaned sales: one row per (order, line), the latest version of each.
#[derive(Table)]
#[table(schema = "silver", name = "sales", key(order_id, order_line), mode = merge)]
pub struct SilverSales {
    /// Order number
    pub order_id: i64,
    /// Line of the order, from 1
    pub order_line: i32,
    /// Customer code, trimmed and uppercase (`C%06d`)
    pub customer_id: Option<String>,
    /// Product code
    pub product_id: Option<String>,
    /// Store code
    pub store_id: Option<String>,
    /// Promotion code; NULL without a promotion
    pub promo_id: Option<String>,
    /// Units sold, positive
    pub quantity: Option<i32>,
    /// Unit price
    pub unit_price: Option<Decimal<10, 2>>,
    /// Order date
    pub order_date: Option<Date>,
    /// quantity × unit price
    pub line_amount: Option<Decimal<18, 2>>,
    /// The landing batch of this version of the row
    pub _batch_id: i32,
}

/// Cleans the bronze rows appended since this pipeline's last success (the latest batch):
/// drops rows without a customer or with no quantity, normalises customer codes and types the
/// price and the date; the table's merge mode upserts them on (order_id, order_line).
#[pipeline(depends_on = [bronze_sales], tags = ["bench", "silver"])]
pub async fn silver_sales(bronze: Changes<BronzeSales>, cx: &Ctx) -> Result<Frame<SilverSales>> {
    use BronzeSales as b;
    let price = cast(b::unit_price.expr(), DataType::Decimal128(10, 2));
    let amount = cast(
        b::quantity.expr() * price.clone(),
        DataType::Decimal128(18, 2),
    );
    bronze
        .filter(
            b::_batch_id
                .expr()
                .eq(lit(batch(cx)?))
                .and(b::quantity.expr().gt(lit(0)))
                .and(b::customer_id.is_not_null()),
        )?
        .select_into(SilverSalesSelect {
            order_id: b::order_id,
            order_line: b::order_line,
            customer_id: typed::<String>(upper(btrim(vec![b::customer_id.expr()]))),
            product_id: b::product_id,
            store_id: b::store_id,
            promo_id: b::promo_id,
            quantity: b::quantity,
            unit_price: typed::<Decimal<10, 2>>(price),
            order_date: typed::<Date>(cast(b::order_date.expr(), DataType::Date32)),
            line_amount: typed::<Decimal<18, 2>>(amount),
            _batch_id: b::_batch_id,
        })
}
