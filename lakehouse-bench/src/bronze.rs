//! Bronze: the landed sales batches, appended as they are, stamped with their batch.

use lakehouse_runtime::prelude::*;

use crate::generator::INGEST_TS;
use crate::{batch, read_landing};

/// Raw ERP sales as landed, one row per order line; every column is the landing file's text.
#[derive(Table)]
#[table(schema = "bronze", name = "sales")]
pub struct BronzeSales {
    /// Order number
    pub order_id: i64,
    /// Line of the order, from 1
    pub order_line: i32,
    /// Customer code as the ERP typed it (may be padded, lowercase or NULL)
    pub customer_id: Option<String>,
    /// Product code
    pub product_id: Option<String>,
    /// Store code
    pub store_id: Option<String>,
    /// Promotion code; NULL without a promotion
    pub promo_id: Option<String>,
    /// Units sold (0 in dirty rows)
    pub quantity: Option<i32>,
    /// Unit price as text, `123.45`
    pub unit_price: Option<String>,
    /// Order date as text, `YYYY-MM-DD`
    pub order_date: Option<String>,
    /// The landing batch the row came in (1 or 2)
    pub _batch_id: i32,
    /// When the batch was ingested (fixed per batch, so runs are deterministic)
    pub _ingest_ts: Timestamp,
}

/// Appends landing batch `bench.batch` (`sales_batch<b>.parquet` in `bench.landing`).
#[pipeline(tags = ["bench", "bronze"])]
pub async fn bronze_sales(cx: &Ctx) -> Result<Frame<BronzeSales>> {
    if cx.is_dry_run() {
        return cx.empty();
    }
    let batch = batch(cx)?;
    let ingest_ts = Timestamp(INGEST_TS[batch as usize - 1]);
    let raw = read_landing(cx, &format!("sales_batch{batch}"))
        .await?
        .with_column("_batch_id", lit(batch))?
        .with_column("_ingest_ts", ingest_ts.lit())?;
    Frame::from_dataframe(raw)
}
