//! The workload's generator (superlake-bench-v1, WORKLOAD.md §3.2), ported from
//! `peers/spec_reference.py`: counter-based splitmix64, so every value depends only on
//! `(seed, row, column)` and any engine reproduces it bit for bit. It writes the landing zone the
//! peers read, `landing-n<N>-s<seed>/{sales_batch1,sales_batch2,customers,products,stores,promos}.parquet`
//! (snappy, one file each, raw string columns), and computes the fingerprint `gen_landing.py`
//! prints.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int32Builder, Int64Array, Int64Builder, RecordBatch,
    StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

use crate::Result;

/// The workload's name, as every report states it.
pub const WORKLOAD: &str = "superlake-bench-v1";
/// The seed of the published figures.
pub const DEFAULT_SEED: u64 = 42;
/// Customers.
pub const N_CUSTOMERS: u64 = 10_000;
/// Products.
pub const N_PRODUCTS: u64 = 1_000;
/// Stores.
pub const N_STORES: u64 = 50;
/// Promotions.
pub const N_PROMOS: u64 = 20;
/// Days from 2022-01-01 through 2024-12-31.
pub const N_DAYS: u64 = 1_096;
/// The first order id.
pub const ORDER_ID_BASE: i64 = 10_000_000;
/// Lines per order.
pub const LINES_PER_ORDER: u64 = 4;
/// Rows per Parquet row group, as pyarrow writes them (1 Mi).
const ROW_GROUP_ROWS: usize = 1 << 20;
/// `_ingest_ts` of batches 1 and 2 (2025-01-01 and 2025-01-02, UTC), in microseconds.
pub const INGEST_TS: [i64; 2] = [1_735_689_600_000_000, 1_735_776_000_000_000];

/// Cities of the customers (`peers/common.py`).
pub const CITIES: [&str; 20] = [
    "Paris",
    "Lyon",
    "Marseille",
    "Toulouse",
    "Nice",
    "Nantes",
    "Strasbourg",
    "Montpellier",
    "Bordeaux",
    "Lille",
    "Rennes",
    "Reims",
    "Toulon",
    "Grenoble",
    "Dijon",
    "Angers",
    "Nimes",
    "Brest",
    "Tours",
    "Amiens",
];
/// Customer segments.
pub const SEGMENTS: [&str; 3] = ["Consumer", "Corporate", "Home Office"];
/// Product categories.
pub const CATEGORIES: [&str; 12] = [
    "Bikes",
    "Helmets",
    "Locks",
    "Lights",
    "Tyres",
    "Tools",
    "Clothing",
    "Shoes",
    "Bags",
    "Bottles",
    "Electronics",
    "Spare Parts",
];
/// Store regions.
pub const REGIONS: [&str; 5] = ["North", "South", "East", "West", "Central"];

/// The splitmix64 finaliser; all arithmetic wraps mod 2^64.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `r(c, i) = mix64(seed * 2^40 + i * 16 + c)`: the random draw of column `c` for row `i`.
pub fn r(seed: u64, c: u64, i: u64) -> u64 {
    mix64(
        (seed << 40)
            .wrapping_add(i.wrapping_mul(16))
            .wrapping_add(c),
    )
}

/// `"%d.%02d" % (cents / 100, cents % 100)`.
pub fn price_text(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// ISO `YYYY-MM-DD` of `2022-01-01 + day` days.
pub fn date_text(day: u64) -> String {
    // 2022-01-01 is day 18 993 since 1970-01-01.
    let (y, m, d) = civil_from_days(18_993 + day as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Every string a sales row can hold, formatted once.
pub struct Texts {
    customers: Vec<String>,
    dirty_customers: Vec<String>,
    products: Vec<String>,
    stores: Vec<String>,
    promos: Vec<String>,
    prices: Vec<String>,
    dates: Vec<String>,
}

impl Default for Texts {
    fn default() -> Texts {
        Texts::new()
    }
}

impl Texts {
    /// The tables of codes, prices and dates.
    pub fn new() -> Texts {
        Texts {
            customers: (0..N_CUSTOMERS).map(|k| format!("C{k:06}")).collect(),
            dirty_customers: (0..N_CUSTOMERS).map(|k| format!("  c{k:06} ")).collect(),
            products: (0..N_PRODUCTS).map(|k| format!("P{k:05}")).collect(),
            stores: (0..N_STORES).map(|k| format!("S{k:03}")).collect(),
            promos: (0..N_PROMOS).map(|k| format!("PR{k:02}")).collect(),
            prices: (0..50_099).map(price_text).collect(),
            dates: (0..N_DAYS).map(date_text).collect(),
        }
    }
}

/// One raw ERP sales row, as `sales_row(i, update)` of the specification defines it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SalesRow<'a> {
    /// `10 000 000 + i / 4`.
    pub order_id: i64,
    /// `i % 4 + 1`.
    pub order_line: i32,
    /// `C%06d`; `  c%06d ` when dirty; NULL for 1 row in 1000.
    pub customer_id: Option<&'a str>,
    /// `P%05d`.
    pub product_id: &'a str,
    /// `S%03d`.
    pub store_id: &'a str,
    /// `PR%02d`, or NULL (70 %).
    pub promo_id: Option<&'a str>,
    /// 1..=10; 0 for 1 row in 1000 of a first load.
    pub quantity: i32,
    /// `"%d.%02d"`.
    pub unit_price: &'a str,
    /// ISO date between 2022-01-01 and 2024-12-31.
    pub order_date: &'a str,
}

/// `sales_row(i, update)` (WORKLOAD.md §3.2, `spec_reference.py`).
pub fn sales_row(texts: &Texts, seed: u64, i: u64, update: bool) -> SalesRow<'_> {
    let dirt = r(seed, 8, i) % 1000;
    let cust = (r(seed, 1, i) % N_CUSTOMERS) as usize;
    let r4 = r(seed, 4, i);
    let mut quantity = (r(seed, if update { 9 } else { 5 }, i) % 10 + 1) as i32;
    let cents = r(seed, if update { 10 } else { 6 }, i) % 50_000 + 99;
    if dirt == 0 && !update {
        quantity = 0;
    }
    let customer_id = match dirt {
        1 => None,
        2..=9 => Some(texts.dirty_customers[cust].as_str()),
        _ => Some(texts.customers[cust].as_str()),
    };
    SalesRow {
        order_id: ORDER_ID_BASE + (i / LINES_PER_ORDER) as i64,
        order_line: (i % LINES_PER_ORDER + 1) as i32,
        customer_id,
        product_id: &texts.products[(r(seed, 2, i) % N_PRODUCTS) as usize],
        store_id: &texts.stores[(r(seed, 3, i) % N_STORES) as usize],
        promo_id: (r4 % 10 >= 7).then(|| texts.promos[((r4 / 10) % N_PROMOS) as usize].as_str()),
        quantity,
        unit_price: &texts.prices[cents as usize],
        order_date: &texts.dates[(r(seed, 7, i) % N_DAYS) as usize],
    }
}

/// The row indices and `update` flags of batch 1 (`0..N`).
pub fn batch1(n: u64) -> impl Iterator<Item = (u64, bool)> {
    (0..n).map(|i| (i, false))
}

/// The rows of batch 2: `U = N/20` updates of rows `20j + 7`, then `N/10 − U` new rows from `N`.
pub fn batch2(n: u64) -> impl Iterator<Item = (u64, bool)> {
    let (updates, new) = batch2_sizes(n);
    (0..updates)
        .map(|j| (20 * j + 7, true))
        .chain((n..n + new).map(|i| (i, false)))
}

/// `(updates, new rows)` of batch 2.
pub fn batch2_sizes(n: u64) -> (u64, u64) {
    let updates = n / 20;
    (updates, n / 10 - updates)
}

/// The Arrow schema of a landing sales file (all columns nullable, as pyarrow writes them).
pub fn sales_schema() -> SchemaRef {
    let string = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, true),
        Field::new("order_line", DataType::Int32, true),
        string("customer_id"),
        string("product_id"),
        string("store_id"),
        string("promo_id"),
        Field::new("quantity", DataType::Int32, true),
        string("unit_price"),
        string("order_date"),
    ]))
}

/// Column builders of one chunk of sales rows.
struct SalesBuilder {
    order_id: Int64Builder,
    order_line: Int32Builder,
    customer_id: StringBuilder,
    product_id: StringBuilder,
    store_id: StringBuilder,
    promo_id: StringBuilder,
    quantity: Int32Builder,
    unit_price: StringBuilder,
    order_date: StringBuilder,
}

impl SalesBuilder {
    fn new(rows: usize) -> SalesBuilder {
        let strings = |bytes: usize| StringBuilder::with_capacity(rows, rows * bytes);
        SalesBuilder {
            order_id: Int64Builder::with_capacity(rows),
            order_line: Int32Builder::with_capacity(rows),
            customer_id: strings(10),
            product_id: strings(6),
            store_id: strings(4),
            promo_id: strings(4),
            quantity: Int32Builder::with_capacity(rows),
            unit_price: strings(6),
            order_date: strings(10),
        }
    }

    fn push(&mut self, row: &SalesRow<'_>) {
        self.order_id.append_value(row.order_id);
        self.order_line.append_value(row.order_line);
        self.customer_id.append_option(row.customer_id);
        self.product_id.append_value(row.product_id);
        self.store_id.append_value(row.store_id);
        self.promo_id.append_option(row.promo_id);
        self.quantity.append_value(row.quantity);
        self.unit_price.append_value(row.unit_price);
        self.order_date.append_value(row.order_date);
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.order_id.finish()),
            Arc::new(self.order_line.finish()),
            Arc::new(self.customer_id.finish()),
            Arc::new(self.product_id.finish()),
            Arc::new(self.store_id.finish()),
            Arc::new(self.promo_id.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.unit_price.finish()),
            Arc::new(self.order_date.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Writes the sales rows `rows` into the Parquet file `path`, one row group per 1 Mi rows.
fn write_sales(
    path: &Path,
    texts: &Texts,
    seed: u64,
    rows: impl Iterator<Item = (u64, bool)>,
) -> Result<()> {
    write_sales_rows(path, texts, seed, rows).map_err(crate::Error::at(path))
}

fn write_sales_rows(
    path: &Path,
    texts: &Texts,
    seed: u64,
    rows: impl Iterator<Item = (u64, bool)>,
) -> Result<()> {
    let schema = sales_schema();
    let mut writer = ArrowWriter::try_new(
        File::create(path)?,
        schema.clone(),
        Some(writer_properties()),
    )?;
    let mut builder = SalesBuilder::new(ROW_GROUP_ROWS);
    let mut pending = 0;
    for (i, update) in rows {
        builder.push(&sales_row(texts, seed, i, update));
        pending += 1;
        if pending == ROW_GROUP_ROWS {
            writer.write(&builder.finish(&schema)?)?;
            pending = 0;
        }
    }
    if pending > 0 {
        writer.write(&builder.finish(&schema)?)?;
    }
    writer.close()?;
    Ok(())
}

fn write_batch(path: &Path, batch: RecordBatch) -> Result<()> {
    let write = || -> Result<()> {
        let mut writer = ArrowWriter::try_new(
            File::create(path)?,
            batch.schema(),
            Some(writer_properties()),
        )?;
        writer.write(&batch)?;
        writer.close()?;
        Ok(())
    };
    write().map_err(crate::Error::at(path))
}

fn strings(values: impl IntoIterator<Item = String>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn lookup(seed: u64, c: u64, n: u64, list: &[&str]) -> ArrayRef {
    strings((0..n).map(|k| list[(r(seed, c, k) % list.len() as u64) as usize].to_owned()))
}

fn nullable_schema(columns: &[(&str, &ArrayRef)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ))
}

fn table(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let refs: Vec<(&str, &ArrayRef)> = columns.iter().map(|(n, a)| (*n, a)).collect();
    let schema = nullable_schema(&refs);
    Ok(RecordBatch::try_new(
        schema,
        columns.into_iter().map(|(_, a)| a).collect(),
    )?)
}

/// The four dimension source files: customers, products, stores, promos.
pub fn dimension_batches(seed: u64) -> Result<Vec<(&'static str, RecordBatch)>> {
    let customers = table(vec![
        (
            "customer_id",
            strings((0..N_CUSTOMERS).map(|k| format!("C{k:06}"))),
        ),
        (
            "customer_name",
            strings((0..N_CUSTOMERS).map(|k| format!("Customer {k}"))),
        ),
        ("city", lookup(seed, 11, N_CUSTOMERS, &CITIES)),
        ("segment", lookup(seed, 12, N_CUSTOMERS, &SEGMENTS)),
    ])?;
    let products = table(vec![
        (
            "product_id",
            strings((0..N_PRODUCTS).map(|k| format!("P{k:05}"))),
        ),
        (
            "product_name",
            strings((0..N_PRODUCTS).map(|k| format!("Product {k}"))),
        ),
        ("category", lookup(seed, 13, N_PRODUCTS, &CATEGORIES)),
        (
            "list_price",
            strings((0..N_PRODUCTS).map(|k| price_text(r(seed, 14, k) % 50_000 + 99))),
        ),
    ])?;
    let stores = table(vec![
        (
            "store_id",
            strings((0..N_STORES).map(|k| format!("S{k:03}"))),
        ),
        (
            "store_name",
            strings((0..N_STORES).map(|k| format!("Store {k}"))),
        ),
        ("region", lookup(seed, 15, N_STORES, &REGIONS)),
    ])?;
    let promos = table(vec![
        (
            "promo_id",
            strings((0..N_PROMOS).map(|k| format!("PR{k:02}"))),
        ),
        (
            "promo_name",
            strings((0..N_PROMOS).map(|k| format!("Promo {k}"))),
        ),
        (
            "discount_pct",
            Arc::new(Int32Array::from_iter_values(
                (0..N_PROMOS).map(|k| 5 * (1 + (k % 6) as i32)),
            )),
        ),
    ])?;
    Ok(vec![
        ("customers", customers),
        ("products", products),
        ("stores", stores),
        ("promos", promos),
    ])
}

/// The landing files, without their `.parquet`.
pub const LANDING_FILES: [&str; 6] = [
    "sales_batch1",
    "sales_batch2",
    "customers",
    "products",
    "stores",
    "promos",
];

/// The landing directory of `(n, seed)` under `out`.
pub fn landing_dir(out: &Path, n: u64, seed: u64) -> PathBuf {
    out.join(format!("landing-n{n}-s{seed}"))
}

/// The landing zone of `(n, seed)` under `out`, generated unless a complete one (its `_DONE`
/// marker, as `gen_landing.py` writes it) is there already; and the seconds spent generating.
pub fn ensure_landing(out: &Path, n: u64, seed: u64) -> Result<(PathBuf, f64)> {
    let dir = landing_dir(out, n, seed);
    if dir.join("_DONE").is_file() {
        return Ok((dir, 0.0));
    }
    let started = Instant::now();
    write_landing(&dir, n, seed)?;
    Ok((dir, started.elapsed().as_secs_f64()))
}

/// Writes the six landing files into `dir` (replacing it), then the `_DONE` marker.
pub fn write_landing(dir: &Path, n: u64, seed: u64) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(crate::Error::at(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(crate::Error::at(dir))?;
    let texts = Texts::new();
    std::thread::scope(|scope| -> Result<()> {
        let first =
            scope.spawn(|| write_sales(&dir.join("sales_batch1.parquet"), &texts, seed, batch1(n)));
        write_sales(&dir.join("sales_batch2.parquet"), &texts, seed, batch2(n))?;
        for (name, batch) in dimension_batches(seed)? {
            write_batch(&dir.join(format!("{name}.parquet")), batch)?;
        }
        first
            .join()
            .map_err(|_| crate::Error::msg("the batch 1 writer panicked"))?
    })?;
    let marker = json!({"workload": WORKLOAD, "rows": n, "seed": seed});
    let done = dir.join("_DONE");
    std::fs::write(&done, marker.to_string()).map_err(crate::Error::at(&done))?;
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<RecordBatch>> {
    let read = || -> Result<Vec<RecordBatch>> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?
            .with_batch_size(64 * 1024)
            .build()?;
        Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
    };
    read().map_err(crate::Error::at(path))
}

fn cell(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::Utf8View => json!(array.as_string_view().value(row)),
        other => json!(other.to_string()),
    }
}

fn row_json(batch: &RecordBatch, row: usize) -> Value {
    let schema = batch.schema();
    let map = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| (f.name().clone(), cell(c.as_ref(), row)))
        .collect::<serde_json::Map<_, _>>();
    Value::Object(map)
}

/// The strings of `array` (`Utf8`, `Utf8View` or `LargeUtf8`); an error for another type (a
/// landing zone another generator wrote differently).
fn string_values(array: &ArrayRef) -> Result<Vec<Option<&str>>> {
    Ok(match array.data_type() {
        DataType::Utf8View => array.as_string_view().iter().collect(),
        DataType::Utf8 => array.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        other => {
            return Err(crate::Error::msg(format!(
                "a landing column holds {other}, not strings: regenerate the landing files"
            )));
        }
    })
}

/// The landing zone's fingerprint, as `gen_landing.py` computes it: per sales file its rows,
/// sums, NULL/dirty/zero counts, date range, first and last rows; per dimension file its rows and
/// first row.
pub fn fingerprint(dir: &Path) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for name in ["sales_batch1", "sales_batch2"] {
        let batches = read_file(&dir.join(format!("{name}.parquet")))?;
        let (mut rows, mut sum_order_id, mut sum_quantity, mut sum_cents) =
            (0u64, 0i64, 0i64, 0i64);
        let (mut null_customer, mut null_promo, mut dirty, mut zero) = (0u64, 0u64, 0u64, 0u64);
        let (mut min_date, mut max_date): (Option<String>, Option<String>) = (None, None);
        for batch in &batches {
            rows += batch.num_rows() as u64;
            let column = |n: &str| {
                batch
                    .column_by_name(n)
                    .cloned()
                    .ok_or_else(|| crate::Error::msg(format!("{name}: no column {n}")))
            };
            let order_id = column("order_id")?;
            let order_id = order_id
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| crate::Error::msg("order_id is not int64"))?;
            sum_order_id += order_id.iter().flatten().sum::<i64>();
            let quantity = column("quantity")?;
            let quantity = quantity
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| crate::Error::msg("quantity is not int32"))?;
            sum_quantity += quantity.iter().flatten().map(i64::from).sum::<i64>();
            zero += quantity.iter().flatten().filter(|q| *q == 0).count() as u64;
            let prices = column("unit_price")?;
            for price in string_values(&prices)?.into_iter().flatten() {
                sum_cents += price
                    .replace('.', "")
                    .parse::<i64>()
                    .map_err(|e| crate::Error::msg(format!("price {price:?}: {e}")))?;
            }
            let customers = column("customer_id")?;
            null_customer += customers.null_count() as u64;
            dirty += string_values(&customers)?
                .into_iter()
                .flatten()
                .filter(|c| c.starts_with(' '))
                .count() as u64;
            null_promo += column("promo_id")?.null_count() as u64;
            let dates = column("order_date")?;
            for date in string_values(&dates)?.into_iter().flatten() {
                if min_date.as_deref().is_none_or(|m| date < m) {
                    min_date = Some(date.to_owned());
                }
                if max_date.as_deref().is_none_or(|m| date > m) {
                    max_date = Some(date.to_owned());
                }
            }
        }
        let first = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| row_json(b, 0));
        let last = batches
            .iter()
            .rev()
            .find(|b| b.num_rows() > 0)
            .map(|b| row_json(b, b.num_rows() - 1));
        out.insert(
            name.to_owned(),
            json!({
                "rows": rows,
                "sum_order_id": sum_order_id,
                "sum_quantity": sum_quantity,
                "sum_price_cents": sum_cents,
                "null_customer_id": null_customer,
                "null_promo_id": null_promo,
                "dirty_customer_id": dirty,
                "zero_quantity": zero,
                "min_order_date": min_date,
                "max_order_date": max_date,
                "first_row": first,
                "last_row": last,
            }),
        );
    }
    for name in ["customers", "products", "stores", "promos"] {
        let batches = read_file(&dir.join(format!("{name}.parquet")))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let first = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| row_json(b, 0));
        out.insert(name.to_owned(), json!({"rows": rows, "first_row": first}));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix64_and_r_match_the_specification() {
        assert_eq!(mix64(0), 16_294_208_416_658_607_535);
        assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r(42, 1, 0), 4_973_547_796_456_110_502);
    }

    #[test]
    fn dates_and_prices_are_formatted_like_python() {
        assert_eq!(date_text(0), "2022-01-01");
        assert_eq!(date_text(1095), "2024-12-31");
        assert_eq!(price_text(350), "3.50");
        assert_eq!(price_text(99), "0.99");
    }
}
