//! Gold: the dimensions (each its landing file plus a SHA-256 surrogate key) and the sales fact.

use std::sync::Arc;

use arrow::array::{BooleanArray, Date32Array, Int32Array, RecordBatch};
use arrow::datatypes::{Field, Schema};
use datafusion::functions::expr_fn::concat;
use lakehouse_runtime::frame::sha256_hex;
use lakehouse_runtime::prelude::*;

use crate::generator::{N_DAYS, civil_from_days};
use crate::read_landing;
use crate::silver::{SilverSales, silver_sales};

/// The customers landing file.
#[derive(Table)]
#[table(schema = "landing", name = "customers")]
pub struct LandingCustomers {
    /// Customer code
    pub customer_id: String,
    /// Customer name
    pub customer_name: Option<String>,
    /// City
    pub city: Option<String>,
    /// Segment
    pub segment: Option<String>,
}

/// The products landing file.
#[derive(Table)]
#[table(schema = "landing", name = "products")]
pub struct LandingProducts {
    /// Product code
    pub product_id: String,
    /// Product name
    pub product_name: Option<String>,
    /// Category
    pub category: Option<String>,
    /// List price as text
    pub list_price: Option<String>,
}

/// The stores landing file.
#[derive(Table)]
#[table(schema = "landing", name = "stores")]
pub struct LandingStores {
    /// Store code
    pub store_id: String,
    /// Store name
    pub store_name: Option<String>,
    /// Region
    pub region: Option<String>,
}

/// The promotions landing file.
#[derive(Table)]
#[table(schema = "landing", name = "promos")]
pub struct LandingPromos {
    /// Promotion code
    pub promo_id: String,
    /// Promotion name
    pub promo_name: Option<String>,
    /// Discount, in percent
    pub discount_pct: Option<i32>,
}

/// Customers.
#[derive(Table)]
#[table(schema = "gold", name = "dim_customer", key(customer_sk), mode = overwrite)]
pub struct DimCustomer {
    /// Surrogate key: SHA-256 of `customer_id`
    pub customer_sk: String,
    /// Customer code
    pub customer_id: String,
    /// Customer name
    pub customer_name: Option<String>,
    /// City
    pub city: Option<String>,
    /// Segment
    pub segment: Option<String>,
}

/// Products.
#[derive(Table)]
#[table(schema = "gold", name = "dim_product", key(product_sk), mode = overwrite)]
pub struct DimProduct {
    /// Surrogate key: SHA-256 of `product_id`
    pub product_sk: String,
    /// Product code
    pub product_id: String,
    /// Product name
    pub product_name: Option<String>,
    /// Category
    pub category: Option<String>,
    /// List price
    pub list_price: Option<Decimal<10, 2>>,
}

/// Stores.
#[derive(Table)]
#[table(schema = "gold", name = "dim_store", key(store_sk), mode = overwrite)]
pub struct DimStore {
    /// Surrogate key: SHA-256 of `store_id`
    pub store_sk: String,
    /// Store code
    pub store_id: String,
    /// Store name
    pub store_name: Option<String>,
    /// Region
    pub region: Option<String>,
}

/// Promotions.
#[derive(Table)]
#[table(schema = "gold", name = "dim_promo", key(promo_sk), mode = overwrite)]
pub struct DimPromo {
    /// Surrogate key: SHA-256 of `promo_id`
    pub promo_sk: String,
    /// Promotion code
    pub promo_id: String,
    /// Promotion name
    pub promo_name: Option<String>,
    /// Discount, in percent
    pub discount_pct: Option<i32>,
}

/// Calendar days from 2022-01-01 through 2024-12-31.
#[derive(Table)]
#[table(schema = "gold", name = "dim_date", key(date_sk), mode = overwrite)]
pub struct DimDate {
    /// Surrogate key: SHA-256 of the ISO date `YYYY-MM-DD`
    pub date_sk: String,
    /// The day
    pub date: Date,
    /// Year
    pub year: i32,
    /// Quarter, 1 to 4
    pub quarter: i32,
    /// Month, 1 to 12
    pub month: i32,
    /// Day of the month
    pub day: i32,
    /// ISO day of the week: 1 = Monday … 7 = Sunday
    pub day_of_week: i32,
    /// Saturday or Sunday
    pub is_weekend: bool,
}

/// One row per sales line, with the surrogate keys of its dimensions.
#[derive(Table)]
#[table(schema = "gold", name = "fact_sales", key(sales_sk), mode = overwrite)]
pub struct FactSales {
    /// Surrogate key: SHA-256 of `order_id|order_line`
    pub sales_sk: String,
    /// Order number
    pub order_id: i64,
    /// Line of the order
    pub order_line: i32,
    /// The order date
    #[column(references = DimDate::date_sk)]
    pub date_sk: String,
    /// The customer
    #[column(references = DimCustomer::customer_sk)]
    pub customer_sk: String,
    /// The product
    #[column(references = DimProduct::product_sk)]
    pub product_sk: String,
    /// The store
    #[column(references = DimStore::store_sk)]
    pub store_sk: String,
    /// The promotion; NULL without one
    #[column(references = DimPromo::promo_sk)]
    pub promo_sk: Option<String>,
    /// Units sold
    pub quantity: Option<i32>,
    /// Unit price
    pub unit_price: Option<Decimal<10, 2>>,
    /// quantity × unit price
    pub line_amount: Option<Decimal<18, 2>>,
}

/// The customers landing file, with its surrogate key.
#[pipeline(tags = ["bench", "gold"])]
pub async fn dim_customer(cx: &Ctx) -> Result<Frame<DimCustomer>> {
    use LandingCustomers as l;
    if cx.is_dry_run() {
        return cx.empty();
    }
    Frame::<LandingCustomers>::from_dataframe(read_landing(cx, "customers").await?)?.select_into(
        DimCustomerSelect {
            customer_sk: sha256_hex(l::customer_id),
            customer_id: l::customer_id,
            customer_name: l::customer_name,
            city: l::city,
            segment: l::segment,
        },
    )
}

/// The products landing file, with its surrogate key and the list price as a decimal.
#[pipeline(tags = ["bench", "gold"])]
pub async fn dim_product(cx: &Ctx) -> Result<Frame<DimProduct>> {
    use LandingProducts as l;
    if cx.is_dry_run() {
        return cx.empty();
    }
    Frame::<LandingProducts>::from_dataframe(read_landing(cx, "products").await?)?.select_into(
        DimProductSelect {
            product_sk: sha256_hex(l::product_id),
            product_id: l::product_id,
            product_name: l::product_name,
            category: l::category,
            list_price: typed::<Decimal<10, 2>>(cast(
                l::list_price.expr(),
                DataType::Decimal128(10, 2),
            )),
        },
    )
}

/// The stores landing file, with its surrogate key.
#[pipeline(tags = ["bench", "gold"])]
pub async fn dim_store(cx: &Ctx) -> Result<Frame<DimStore>> {
    use LandingStores as l;
    if cx.is_dry_run() {
        return cx.empty();
    }
    Frame::<LandingStores>::from_dataframe(read_landing(cx, "stores").await?)?.select_into(
        DimStoreSelect {
            store_sk: sha256_hex(l::store_id),
            store_id: l::store_id,
            store_name: l::store_name,
            region: l::region,
        },
    )
}

/// The promotions landing file, with its surrogate key.
#[pipeline(tags = ["bench", "gold"])]
pub async fn dim_promo(cx: &Ctx) -> Result<Frame<DimPromo>> {
    use LandingPromos as l;
    if cx.is_dry_run() {
        return cx.empty();
    }
    Frame::<LandingPromos>::from_dataframe(read_landing(cx, "promos").await?)?.select_into(
        DimPromoSelect {
            promo_sk: sha256_hex(l::promo_id),
            promo_id: l::promo_id,
            promo_name: l::promo_name,
            discount_pct: l::discount_pct,
        },
    )
}

/// The calendar, 2022-01-01 through 2024-12-31, keyed by the SHA-256 of the ISO date.
#[pipeline(tags = ["bench", "gold"])]
pub async fn dim_date(cx: &Ctx) -> Result<Frame<DimDate>> {
    // 2022-01-01 is day 18 993 since 1970-01-01, a Saturday.
    let days: Vec<i32> = (0..N_DAYS as i32).map(|d| 18_993 + d).collect();
    let parts: Vec<(i64, u32, u32)> = days
        .iter()
        .map(|d| civil_from_days(i64::from(*d)))
        .collect();
    // 1970-01-01 was a Thursday (ISO 4).
    let iso_dow: Vec<i32> = days.iter().map(|d| (d + 3).rem_euclid(7) + 1).collect();
    let int = |values: Vec<i32>| Arc::new(Int32Array::from(values)) as arrow::array::ArrayRef;
    let schema = Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("year", DataType::Int32, false),
        Field::new("quarter", DataType::Int32, false),
        Field::new("month", DataType::Int32, false),
        Field::new("day", DataType::Int32, false),
        Field::new("day_of_week", DataType::Int32, false),
        Field::new("is_weekend", DataType::Boolean, false),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Date32Array::from(days.clone())),
            int(parts.iter().map(|p| p.0 as i32).collect()),
            int(parts.iter().map(|p| (p.1 as i32 - 1) / 3 + 1).collect()),
            int(parts.iter().map(|p| p.1 as i32).collect()),
            int(parts.iter().map(|p| p.2 as i32).collect()),
            int(iso_dow.clone()),
            Arc::new(BooleanArray::from(
                iso_dow.iter().map(|d| *d >= 6).collect::<Vec<_>>(),
            )),
        ],
    )?;
    let calendar = cx.session().read_batch(batch)?;
    let calendar = calendar.select(vec![
        sha256_hex(cast(col("date"), DataType::Utf8))
            .into_expr()
            .alias("date_sk"),
        col("date"),
        col("year"),
        col("quarter"),
        col("month"),
        col("day"),
        col("day_of_week"),
        col("is_weekend"),
    ])?;
    Frame::from_dataframe(calendar)
}

/// Every silver sale with its dimensions' surrogate keys (inner joins; the promotion is optional).
#[pipeline(
    depends_on = [silver_sales, dim_customer, dim_product, dim_store, dim_date, dim_promo],
    tags = ["bench", "gold"]
)]
pub async fn fact_sales(
    sales: Frame<SilverSales>,
    customers: Frame<DimCustomer>,
    products: Frame<DimProduct>,
    stores: Frame<DimStore>,
    dates: Frame<DimDate>,
    promos: Frame<DimPromo>,
) -> Result<Frame<FactSales>> {
    use DimCustomer as dc;
    use DimDate as dd;
    use DimProduct as dp;
    use DimPromo as dpr;
    use DimStore as ds;
    use SilverSales as s;
    let sales_sk = sha256_hex(concat(vec![
        cast(s::order_id.expr(), DataType::Utf8),
        lit("|"),
        cast(s::order_line.expr(), DataType::Utf8),
    ]));
    sales
        .join(
            customers,
            JoinType::Inner,
            [on(s::customer_id, dc::customer_id)],
        )?
        .join(
            products,
            JoinType::Inner,
            [on(s::product_id, dp::product_id)],
        )?
        .join(stores, JoinType::Inner, [on(s::store_id, ds::store_id)])?
        .join(dates, JoinType::Inner, [on(s::order_date, dd::date)])?
        .join(promos, JoinType::Left, [on(s::promo_id, dpr::promo_id)])?
        .select_into(FactSalesSelect {
            sales_sk,
            order_id: s::order_id,
            order_line: s::order_line,
            date_sk: dd::date_sk,
            customer_sk: dc::customer_sk,
            product_sk: dp::product_sk,
            store_sk: ds::store_sk,
            promo_sk: dpr::promo_sk,
            quantity: s::quantity,
            unit_price: s::unit_price,
            line_amount: s::line_amount,
        })
}
