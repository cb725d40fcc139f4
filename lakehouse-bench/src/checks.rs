//! The untimed checks of WORKLOAD.md §3.5, computed with SQL over the warehouse's tables.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use lakehouse_runtime::{Table, Warehouse};
use serde::{Deserialize, Serialize};

use crate::bronze::BronzeSales;
use crate::gold::{DimCustomer, DimDate, DimProduct, DimPromo, DimStore, FactSales};
use crate::silver::SilverSales;
use crate::{Error, Result};

/// The check values every implementation must produce identically (`silver_files` aside).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checks {
    /// Rows of `bronze_sales` (both batches).
    pub bronze_rows: i64,
    /// Rows of `silver_sales` after the merge.
    pub silver_rows: i64,
    /// Sum of silver quantities.
    pub silver_sum_quantity: i64,
    /// Sum of silver line amounts, as exact decimal text.
    pub silver_sum_amount: String,
    /// Silver rows whose latest version came from batch 2.
    pub silver_rows_from_batch2: i64,
    /// Rows of the fact.
    pub fact_rows: i64,
    /// Fact rows without a promotion.
    pub fact_promo_null: i64,
    /// Sum of the fact's line amounts, as exact decimal text.
    pub fact_sum_amount: String,
    /// Smallest `sales_sk`.
    pub fact_min_sales_sk: String,
    /// Largest `sales_sk`.
    pub fact_max_sales_sk: String,
    /// Distinct customers in the fact.
    pub fact_distinct_customer_sk: i64,
    /// Rows of dim_customer, dim_product, dim_store, dim_promo, dim_date.
    pub dim_rows: [i64; 5],
    /// Data files of `silver_sales` (informational: differs by engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silver_files: Option<i64>,
}

/// One row of `query` over `tables`.
async fn row(
    warehouse: &Warehouse,
    tables: &[&'static lakehouse_runtime::TableDef],
    query: &str,
) -> Result<RecordBatch> {
    let batches = warehouse.sql(tables, query).await?.collect().await?;
    let batch = arrow::compute::concat_batches(
        &batches
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| Error::msg(format!("no result for {query}")))?,
        &batches,
    )?;
    if batch.num_rows() != 1 {
        return Err(Error::msg(format!(
            "expected one row, got {} for {query}",
            batch.num_rows()
        )));
    }
    Ok(batch)
}

fn int(batch: &RecordBatch, column: usize) -> Result<i64> {
    let array = arrow::compute::cast(batch.column(column), &DataType::Int64)?;
    let array = array.as_primitive::<Int64Type>();
    if array.is_null(0) {
        return Err(Error::msg(format!(
            "check `{}` is NULL",
            batch.schema().field(column).name()
        )));
    }
    Ok(array.value(0))
}

fn text(batch: &RecordBatch, column: usize) -> Result<String> {
    let array = arrow::compute::cast(batch.column(column), &DataType::Utf8)?;
    let array = array.as_string::<i32>();
    if array.is_null(0) {
        return Err(Error::msg(format!(
            "check `{}` is NULL",
            batch.schema().field(column).name()
        )));
    }
    Ok(array.value(0).to_owned())
}

/// Computes the checks from the warehouse's tables.
pub async fn compute(warehouse: &Warehouse) -> Result<Checks> {
    let bronze = row(
        warehouse,
        &[BronzeSales::DEF],
        "SELECT count(*) FROM bronze.sales",
    )
    .await?;
    let silver = row(
        warehouse,
        &[SilverSales::DEF],
        "SELECT count(*), sum(quantity), CAST(sum(line_amount) AS VARCHAR),
                sum(CASE WHEN _batch_id = 2 THEN 1 ELSE 0 END)
         FROM silver.sales",
    )
    .await?;
    let fact = row(
        warehouse,
        &[FactSales::DEF],
        "SELECT count(*), sum(CASE WHEN promo_sk IS NULL THEN 1 ELSE 0 END),
                CAST(sum(line_amount) AS VARCHAR), min(sales_sk), max(sales_sk),
                count(DISTINCT customer_sk)
         FROM gold.fact_sales",
    )
    .await?;
    let dims = row(
        warehouse,
        &[
            DimCustomer::DEF,
            DimProduct::DEF,
            DimStore::DEF,
            DimPromo::DEF,
            DimDate::DEF,
        ],
        "SELECT (SELECT count(*) FROM gold.dim_customer) AS customers,
                (SELECT count(*) FROM gold.dim_product) AS products,
                (SELECT count(*) FROM gold.dim_store) AS stores,
                (SELECT count(*) FROM gold.dim_promo) AS promos,
                (SELECT count(*) FROM gold.dim_date) AS dates",
    )
    .await?;
    let silver_files = warehouse.stats(SilverSales::DEF).await?.map(|s| s.files);
    Ok(Checks {
        bronze_rows: int(&bronze, 0)?,
        silver_rows: int(&silver, 0)?,
        silver_sum_quantity: int(&silver, 1)?,
        silver_sum_amount: text(&silver, 2)?,
        silver_rows_from_batch2: int(&silver, 3)?,
        fact_rows: int(&fact, 0)?,
        fact_promo_null: int(&fact, 1)?,
        fact_sum_amount: text(&fact, 2)?,
        fact_min_sales_sk: text(&fact, 3)?,
        fact_max_sales_sk: text(&fact, 4)?,
        fact_distinct_customer_sk: int(&fact, 5)?,
        dim_rows: [
            int(&dims, 0)?,
            int(&dims, 1)?,
            int(&dims, 2)?,
            int(&dims, 3)?,
            int(&dims, 4)?,
        ],
        silver_files,
    })
}

/// The reference check values of WORKLOAD.md for `rows` (seed 42), when published.
pub fn reference(rows: u64) -> Option<Checks> {
    let json = match rows {
        100_000 => {
            r#"{"bronze_rows": 110000, "silver_rows": 104799, "silver_sum_quantity": 575747, "silver_sum_amount": "144603053.44", "silver_rows_from_batch2": 9986, "fact_rows": 104799, "fact_promo_null": 73325, "fact_sum_amount": "144603053.44", "fact_min_sales_sk": "00007603325f16de55c6edd70a99824e56d85bbca5974ce5b810bebf33844972", "fact_max_sales_sk": "ffffb127aa34a9c34bdc5506426fd9abb41e0e53d44d50c44ce62c892e30eb01", "fact_distinct_customer_sk": 10000, "dim_rows": [10000, 1000, 50, 20, 1096]}"#
        }
        1_000_000 => {
            r#"{"bronze_rows": 1100000, "silver_rows": 1047942, "silver_sum_quantity": 5762328, "silver_sum_amount": "1447269181.23", "silver_rows_from_batch2": 99854, "fact_rows": 1047942, "fact_promo_null": 733089, "fact_sum_amount": "1447269181.23", "fact_min_sales_sk": "000030c3e06e61077554d762d03a385f950e8d7b73f2347daa0573c475679bd7", "fact_max_sales_sk": "ffffe2a7966dda5ceebed62011e5e75e217ebd80cfcef83a914761e8f2183947", "fact_distinct_customer_sk": 10000, "dim_rows": [10000, 1000, 50, 20, 1096]}"#
        }
        10_000_000 => {
            r#"{"bronze_rows": 11000000, "silver_rows": 10479598, "silver_sum_quantity": 57623930, "silver_sum_amount": "14466183678.81", "silver_rows_from_batch2": 998450, "fact_rows": 10479598, "fact_promo_null": 7335059, "fact_sum_amount": "14466183678.81", "fact_min_sales_sk": "0000002a231e4e6d414ff29b163f39166f72a35678e75e68a9085a42b2330e06", "fact_max_sales_sk": "ffffff81afff70efcc16eff2f6c538b0452e5b9663d33ba11c72790328730bca", "fact_distinct_customer_sk": 10000, "dim_rows": [10000, 1000, 50, 20, 1096]}"#
        }
        _ => return None,
    };
    serde_json::from_str(json).ok()
}

impl Checks {
    /// The checks without the informational `silver_files`.
    pub fn comparable(&self) -> Checks {
        Checks {
            silver_files: None,
            ..self.clone()
        }
    }
}
