//! Frames from files: CSV, NDJSON and Parquet read by column name, cast to the declared types,
//! missing nullable columns NULL and a missing `run_at` the run's time.

use lakehouse_runtime::prelude::*;
use lakehouse_runtime::testing::{TEST_RUN_AT, TestContext, rows};
use serde::Deserialize;

/// Orders as they land.
#[derive(Table)]
#[table(schema = "bronze", name = "landed_orders")]
pub struct LandedOrders {
    pub order_id: i64,
    pub amount: Option<Decimal<10, 2>>,
    pub note: Option<String>,
    pub run_at: Timestamp,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Order {
    order_id: i64,
    amount: Option<Decimal<10, 2>>,
    note: Option<String>,
    run_at: Timestamp,
}

fn expected() -> Vec<Order> {
    vec![
        Order {
            order_id: 1,
            amount: Some(Decimal(1250)),
            note: None,
            run_at: TEST_RUN_AT,
        },
        Order {
            order_id: 2,
            amount: None,
            note: None,
            run_at: TEST_RUN_AT,
        },
    ]
}

async fn read(format: FileFormat, path: &str) -> lakehouse_runtime::Result<Vec<Order>> {
    let test = TestContext::new("landed_orders").expect("context");
    let frame = test.ctx().read_files::<LandedOrders>(format, path).await?;
    let frame = frame.sort(vec![LandedOrders::order_id.expr().sort(true, false)])?;
    rows(frame).await
}

#[tokio::test]
async fn csv_and_ndjson_files_are_read_by_name_and_cast() {
    let dir = tempfile::tempdir().expect("dir");
    // Columns in another order, an extra one, no `run_at`; two files.
    let csv = dir.path().join("csv");
    std::fs::create_dir(&csv).expect("dir");
    std::fs::write(
        csv.join("a.csv"),
        "amount,extra,order_id,note\n12.50,x,1,007\n",
    )
    .expect("file");
    // The second file orders its columns otherwise; marker and hidden files are skipped.
    std::fs::write(csv.join("b.csv"), "order_id,note,amount,extra\n2,,,y\n").expect("file");
    std::fs::write(csv.join("_SUCCESS"), "").expect("file");
    std::fs::write(csv.join(".a.csv.crc"), "not,data\n").expect("file");
    let read_csv = read(FileFormat::Csv, csv.to_str().expect("utf-8")).await;
    // A text column keeps its leading zeros: CSV fields are read as text, then converted.
    let mut with_note = expected();
    with_note[0].note = Some("007".to_owned());
    assert_eq!(read_csv.expect("csv"), with_note);

    let json = dir.path().join("orders.json");
    // A decimal as text, then as a number; a field only the last row has.
    std::fs::write(
        &json,
        "{\"order_id\": 1, \"amount\": \"12.50\"}\n{\"order_id\": 2}\n\
         {\"order_id\": 3, \"amount\": 1, \"note\": \"x\"}\n",
    )
    .expect("file");
    let read_json = read(FileFormat::NdJson, json.to_str().expect("utf-8")).await;
    let mut with_third = expected();
    with_third.push(Order {
        order_id: 3,
        amount: Some(Decimal(100)),
        note: Some("x".to_owned()),
        run_at: TEST_RUN_AT,
    });
    assert_eq!(read_json.expect("ndjson"), with_third);
}

#[tokio::test]
async fn parquet_files_are_read_by_name_and_cast() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int32Array, RecordBatch};
    let dir = tempfile::tempdir().expect("dir");
    let batch = RecordBatch::try_from_iter([
        (
            "amount",
            Arc::new(Float64Array::from(vec![Some(12.5), None])) as ArrayRef,
        ),
        (
            "order_id",
            Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef,
        ),
    ])
    .expect("batch");
    let path = dir.path().join("orders.parquet");
    let file = std::fs::File::create(&path).expect("file");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    let read_parquet = read(FileFormat::Parquet, path.to_str().expect("utf-8")).await;
    assert_eq!(read_parquet.expect("parquet"), expected());
}

#[tokio::test]
async fn a_missing_not_null_column_and_a_bad_value_are_named() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, "amount\n1.00\n").expect("file");
    let error = read(FileFormat::Csv, file.to_str().expect("utf-8"))
        .await
        .expect_err("no order_id");
    assert!(
        error
            .to_string()
            .contains("has no column `order_id`, which is NOT NULL (it has amount)"),
        "{error}"
    );
    std::fs::write(&file, "order_id,amount\n1,twelve\n").expect("file");
    let error = read(FileFormat::Csv, file.to_str().expect("utf-8"))
        .await
        .expect_err("not a decimal");
    assert!(error.to_string().contains("twelve"), "{error}");
    let error = read(
        FileFormat::Parquet,
        dir.path().join("none").to_str().expect("utf-8"),
    )
    .await
    .expect_err("no such files");
    assert!(
        error.to_string().contains("reading the files at"),
        "{error}"
    );
}
