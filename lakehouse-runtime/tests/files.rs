//! Frames from files: CSV, NDJSON and Parquet read by column name, cast to the declared types,
//! missing nullable columns NULL and a missing `run_at` the run's time; new files only, once.

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

/// Writes `batch` as the Parquet file `path`.
fn write_parquet(path: &std::path::Path, batch: &arrow::array::RecordBatch) {
    let file = std::fs::File::create(path).expect("file");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

async fn read(format: FileFormat, path: &str) -> lakehouse_runtime::Result<Vec<Order>> {
    let test = TestContext::unregistered("landed_orders").expect("context");
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

/// Notes as they land: every column may be missing.
#[derive(Table)]
#[table(schema = "bronze", name = "landed_notes")]
pub struct LandedNotes {
    pub note: Option<String>,
    pub amount: Option<Decimal<10, 2>>,
}

#[tokio::test]
async fn a_file_with_none_of_the_columns_is_refused_not_read_as_nulls() {
    let dir = tempfile::tempdir().expect("dir");
    let test = TestContext::unregistered("landed_notes").expect("context");
    for (name, text, expected) in [
        (
            "semicolons.csv",
            "note;amount\nx;1.00\n",
            "semicolons.csv` has none of the table's columns (note, amount): it has \
             `note;amount`; `note;amount` looks like a header separated by another character \
             than `,`: write the file with commas",
        ),
        (
            // Near names are told as such.
            "upper.csv",
            "NOTE,AMOUNT\nx,1.00\n",
            "has a column `NOTE`, not `note`: columns are matched by their exact name",
        ),
        (
            "headless.csv",
            "x,1.00\ny,2.00\n",
            "headless.csv` has none of the table's columns (note, amount): it has `x`, `1.00`; \
             a CSV file's first line must be its header",
        ),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("file");
        let error = test
            .ctx()
            .read_files::<LandedNotes>(FileFormat::Csv, file.to_str().expect("utf-8"))
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains(expected), "{name}: {error}");
    }
}

#[tokio::test]
async fn an_empty_field_in_a_not_null_column_names_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, "order_id,amount\n1,1.00\n,2.00\n").expect("file");
    let error = read(FileFormat::Csv, file.to_str().expect("utf-8"))
        .await
        .expect_err("an order without its id")
        .to_string();
    assert!(
        error.contains(&format!(
            "column `bronze.landed_orders.order_id` is declared NOT NULL, but a row of CSV file \
             `{}` has no value in it",
            file.display()
        )),
        "{error}"
    );
}

/// Orders whose rows without an id are dropped.
#[derive(Table)]
#[table(
    schema = "bronze",
    name = "checked_orders",
    expect(name = "has_id", expr = "order_id IS NOT NULL", on_fail = drop)
)]
pub struct CheckedOrders {
    pub order_id: i64,
    pub amount: Option<Decimal<10, 2>>,
}

#[tokio::test]
async fn a_drop_expectation_drops_a_files_empty_not_null_fields() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, "order_id,amount\n1,1.00\n,2.00\n").expect("file");
    let test = TestContext::unregistered("checked_orders").expect("context");
    let read = test
        .ctx()
        .read_files::<CheckedOrders>(FileFormat::Csv, file.to_str().expect("utf-8"))
        .await
        .expect("read");
    let (kept, failed) = test.expectations(read).await.expect("checked");
    assert_eq!(
        failed
            .iter()
            .map(|(finding, _)| finding.failing_rows)
            .collect::<Vec<_>>(),
        [1]
    );
    #[derive(Deserialize)]
    struct Kept {
        order_id: i64,
    }
    let kept: Vec<i64> = rows::<Kept, CheckedOrders>(kept)
        .await
        .expect("rows")
        .into_iter()
        .map(|k| k.order_id)
        .collect();
    assert_eq!(kept, [1]);
}

#[tokio::test]
async fn csv_objects_are_read_by_their_own_headers() {
    use lakehouse_runtime::deltalake::logstore::object_store::{
        ObjectStore, ObjectStoreExt as _, PutPayload, memory::InMemory, path::Path,
    };
    let store = std::sync::Arc::new(InMemory::new());
    // As in a directory: columns in another order per object, markers and unfinished uploads.
    for (name, text) in [
        (
            "orders/a.csv",
            "amount,extra,order_id,note\n12.50,x,1,007\n",
        ),
        // A name a URL would take apart (a space, a fragment).
        ("orders/b #2.csv", "order_id,note,amount,extra\n2,,,y\n"),
        ("orders/_SUCCESS", "marker"),
        ("orders/c.csv.filepart", "order_id,note\n9,x\n"),
        // Not directly under the prefix, as a directory's subdirectories.
        ("orders/day=2/d.csv", "order_id,note\n8,x\n"),
    ] {
        store
            .put(
                &Path::from(name),
                PutPayload::from(text.as_bytes().to_vec()),
            )
            .await
            .expect("put");
    }
    let test = TestContext::unregistered("landed_orders").expect("context");
    let url = url::Url::parse("memory://landing").expect("url");
    test.ctx()
        .session()
        .runtime_env()
        .register_object_store(&url, store as std::sync::Arc<dyn ObjectStore>);
    let read = |location: &'static str| {
        let test = &test;
        async move {
            let frame = test
                .ctx()
                .read_files::<LandedOrders>(FileFormat::Csv, location)
                .await?;
            let frame = frame.sort(vec![LandedOrders::order_id.expr().sort(true, false)])?;
            rows::<Order, _>(frame).await
        }
    };
    let mut with_note = expected();
    with_note[0].note = Some("007".to_owned());
    assert_eq!(
        read("memory://landing/orders/").await.expect("read"),
        with_note
    );
    // One object named alone.
    assert_eq!(
        read("memory://landing/orders/a.csv").await.expect("read")[0].order_id,
        1
    );
    // Nothing landed yet: no rows, as from an empty directory; a file that is not there is an
    // error, as a missing local file is.
    assert_eq!(read("memory://landing/nothing/").await.expect("read"), []);
    let missing = read("memory://landing/orders/missing.csv")
        .await
        .expect_err("no such object");
    assert!(
        missing.to_string().contains(
            "listing the objects at `memory://landing/orders/missing.csv`: there is no object \
             there"
        ),
        "{missing}"
    );
}

#[tokio::test]
async fn parquet_objects_are_read_by_their_own_schemas() {
    use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch};
    use lakehouse_runtime::deltalake::logstore::object_store::{
        ObjectStore, ObjectStoreExt as _, PutPayload, memory::InMemory, path::Path,
    };
    use std::sync::Arc;
    let parquet = |columns: Vec<(&str, ArrayRef)>| {
        let batch = RecordBatch::try_from_iter(columns).expect("batch");
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), None).expect("writer");
        writer.write(&batch).expect("write");
        writer.into_inner().expect("bytes")
    };
    let store = Arc::new(InMemory::new());
    let put = |name: &'static str, bytes: Vec<u8>| {
        let store = store.clone();
        async move {
            store
                .put(&Path::from(name), PutPayload::from(bytes))
                .await
                .expect("put");
        }
    };
    // Two writers of one feed: `order_id` an int32 in one, an int64 in the other, each read by
    // its own schema.
    put(
        "orders/a.parquet",
        parquet(vec![
            ("order_id", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
            (
                "amount",
                Arc::new(Float64Array::from(vec![12.5])) as ArrayRef,
            ),
        ]),
    )
    .await;
    put(
        "orders/b.parquet",
        parquet(vec![
            ("order_id", Arc::new(Int64Array::from(vec![2])) as ArrayRef),
            (
                "amount",
                Arc::new(Float64Array::from(vec![3.0])) as ArrayRef,
            ),
        ]),
    )
    .await;
    let test = TestContext::unregistered("landed_orders").expect("context");
    let url = url::Url::parse("memory://landing").expect("url");
    test.ctx()
        .session()
        .runtime_env()
        .register_object_store(&url, store.clone() as Arc<dyn ObjectStore>);
    let read = || async {
        let frame = test
            .ctx()
            .read_files::<LandedOrders>(FileFormat::Parquet, "memory://landing/orders/")
            .await?;
        let frame = frame.sort(vec![LandedOrders::order_id.expr().sort(true, false)])?;
        rows::<Order, _>(frame).await
    };
    let read_both: Vec<(i64, Option<String>)> = read()
        .await
        .expect("both read")
        .into_iter()
        .map(|order| (order.order_id, order.amount.map(|a| a.to_string())))
        .collect();
    assert_eq!(
        read_both,
        [(1, Some("12.50".to_owned())), (2, Some("3.00".to_owned()))]
    );
    // `Amount` in a third: a mistake named with its object, as a local file's is (it was a
    // second column of the merged schema, and this object's amounts NULL).
    put(
        "orders/c.parquet",
        parquet(vec![
            ("order_id", Arc::new(Int64Array::from(vec![3])) as ArrayRef),
            (
                "Amount",
                Arc::new(Float64Array::from(vec![4.0])) as ArrayRef,
            ),
        ]),
    )
    .await;
    let error = read().await.expect_err("Amount is not amount");
    assert!(
        error
            .to_string()
            .contains("c.parquet` has a column `Amount`, not `amount`"),
        "{error}"
    );
    // An object that is no Parquet file is named, with what to do.
    store
        .delete(&Path::from("orders/c.parquet"))
        .await
        .expect("deleted");
    put("orders/d.parquet", b"a text, not Parquet".to_vec()).await;
    let error = read().await.expect_err("no footer");
    assert!(
        error.to_string().contains(
            "pipeline `landed_orders`: the object `memory://landing/orders/d.parquet` has no \
             Parquet footer that reads"
        ) && error
            .to_string()
            .contains("give it a name starting with `_` or `.`"),
        "{error}"
    );
}

#[tokio::test]
async fn files_of_one_layout_are_read_as_one_scan() {
    let dir = tempfile::tempdir().expect("dir");
    // Three files with one header, one with another.
    for id in 1..=3 {
        std::fs::write(
            dir.path().join(format!("{id}.csv")),
            format!("order_id,amount\n{id},1.00\n"),
        )
        .expect("file");
    }
    std::fs::write(dir.path().join("4.csv"), "amount,order_id\n2.00,4\n").expect("file");
    let test = TestContext::unregistered("landed_orders").expect("context");
    let frame = test
        .ctx()
        .read_files::<LandedOrders>(FileFormat::Csv, dir.path().to_str().expect("utf-8"))
        .await
        .expect("read");
    let plan = frame
        .clone()
        .into_dataframe()
        .logical_plan()
        .display_indent()
        .to_string();
    assert_eq!(plan.matches("TableScan").count(), 2, "{plan}");
    let mut ids: Vec<i64> = rows::<Order, _>(frame)
        .await
        .expect("rows")
        .into_iter()
        .map(|o| o.order_id)
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3, 4]);
}

#[tokio::test]
async fn file_names_are_read_as_they_are_not_as_globs() {
    let dir = tempfile::tempdir().expect("dir");
    let landing = dir.path().join("landing");
    std::fs::create_dir(&landing).expect("dir");
    // `orders[1].csv` as a glob matches `orders1.csv`; `orders_*.csv` every `orders_` file.
    std::fs::write(landing.join("orders[1].csv"), "order_id\n1\n").expect("file");
    std::fs::write(dir.path().join("orders1.csv"), "order_id\n99\n").expect("file");
    std::fs::write(landing.join("orders_*.csv"), "order_id\n2\n").expect("file");
    std::fs::write(landing.join("orders_b.csv"), "order_id\n3\n").expect("file");
    // A symbolic link to a file is read as the file, in a directory as when named.
    std::fs::write(dir.path().join("outside.csv"), "order_id\n4\n").expect("file");
    std::os::unix::fs::symlink(dir.path().join("outside.csv"), landing.join("linked.csv"))
        .expect("symlink");

    let ids = |orders: Vec<Order>| orders.into_iter().map(|o| o.order_id).collect::<Vec<_>>();
    let one = dir.path().join("orders[1].csv");
    std::fs::rename(landing.join("orders[1].csv"), &one).expect("move");
    let read_one = read(FileFormat::Csv, one.to_str().expect("utf-8")).await;
    assert_eq!(ids(read_one.expect("orders[1].csv")), [1]);
    std::fs::rename(&one, landing.join("orders[1].csv")).expect("move back");

    let star = landing.join("orders_*.csv");
    let read_star = read(FileFormat::Csv, star.to_str().expect("utf-8")).await;
    assert_eq!(ids(read_star.expect("orders_*.csv")), [2]);

    let read_all = read(FileFormat::Csv, landing.to_str().expect("utf-8")).await;
    assert_eq!(ids(read_all.expect("the directory")), [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_file_name_that_is_not_utf8_is_named() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("a.csv"), "order_id\n1\n").expect("file");
    let name = std::ffi::OsStr::from_bytes(b"b\xff.csv");
    std::fs::write(dir.path().join(name), "order_id\n2\n").expect("file");
    let error = read(FileFormat::Csv, dir.path().to_str().expect("utf-8"))
        .await
        .expect_err("a name that is not UTF-8");
    let message = error.to_string();
    assert!(
        message.contains("is not UTF-8; rename the file"),
        "{message}"
    );
    assert!(message.contains(r"b\xFF.csv"), "{message}");
}

#[tokio::test]
async fn extra_fraction_digits_round_alike_in_csv_and_ndjson() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = dir.path().join("orders.csv");
    std::fs::write(&csv, "order_id,amount\n1,19.999\n2,-0.005\n3,0.004\n").expect("file");
    let json = dir.path().join("orders.ndjson");
    std::fs::write(
        &json,
        "{\"order_id\": 1, \"amount\": 19.999}\n{\"order_id\": 2, \"amount\": \"-0.005\"}\n\
         {\"order_id\": 3, \"amount\": 0.004}\n",
    )
    .expect("file");
    let amounts = |orders: Vec<Order>| -> Vec<Option<i128>> {
        orders.iter().map(|o| o.amount.map(|a| a.0)).collect()
    };
    let from_csv = amounts(
        read(FileFormat::Csv, csv.to_str().expect("utf-8"))
            .await
            .expect("csv"),
    );
    let from_json = amounts(
        read(FileFormat::NdJson, json.to_str().expect("utf-8"))
            .await
            .expect("ndjson"),
    );
    // Half away from zero, as Spark's HALF_UP: 20.00, -0.01, 0.00.
    assert_eq!(from_csv, [Some(2000), Some(-1), Some(0)]);
    assert_eq!(from_json, from_csv);
    // The widest decimals too.
    let test = TestContext::unregistered("wide_amounts").expect("context");
    let frame = test
        .ctx()
        .read_files::<WideAmounts>(FileFormat::NdJson, json.to_str().expect("utf-8"))
        .await
        .expect("ndjson");
    let frame = frame
        .sort(vec![WideAmounts::order_id.expr().sort(true, false)])
        .expect("sorted");
    #[derive(Deserialize)]
    struct Wide {
        amount: Option<Decimal<38, 2>>,
    }
    let wide: Vec<Option<i128>> = rows::<Wide, _>(frame)
        .await
        .expect("rows")
        .iter()
        .map(|w| w.amount.map(|a| a.0))
        .collect();
    assert_eq!(wide, [Some(2000), Some(-1), Some(0)]);
}

/// Amounts of the widest precision.
#[derive(Table)]
#[table(schema = "bronze", name = "wide_amounts")]
pub struct WideAmounts {
    pub order_id: i64,
    pub amount: Option<Decimal<38, 2>>,
}

#[tokio::test]
async fn a_column_named_in_another_case_is_named_not_read_as_null() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = dir.path().join("orders.csv");
    std::fs::write(&csv, "order_id,Amount\n1,12.50\n").expect("file");
    let error = read(FileFormat::Csv, csv.to_str().expect("utf-8"))
        .await
        .expect_err("Amount is not amount");
    assert!(
        error.to_string().contains(
            "has a column `Amount`, not `amount`: columns are matched by their exact name"
        ),
        "{error}"
    );
    // A space after the header's comma, which the reader keeps in the name.
    std::fs::write(&csv, "order_id, amount\n1,12.50\n").expect("file");
    let error = read(FileFormat::Csv, csv.to_str().expect("utf-8"))
        .await
        .expect_err("` amount` is not amount");
    assert!(
        error
            .to_string()
            .contains("has a column ` amount`, not `amount`"),
        "{error}"
    );
    // NDJSON too: read with the table's columns, `Amount` was ignored and `amount` NULL.
    let json = dir.path().join("orders.ndjson");
    std::fs::write(&json, "{\"order_id\": 1, \"Amount\": 12.5}\n").expect("file");
    let error = read(FileFormat::NdJson, json.to_str().expect("utf-8"))
        .await
        .expect_err("Amount is not amount");
    assert!(
        error
            .to_string()
            .contains("has a key `Amount`, not `amount`: keys are matched by their exact name"),
        "{error}"
    );
    // A NOT NULL column no object has: named as the file's, not as a NULL the pipeline made.
    std::fs::write(&json, "{\"id\": 1, \"amount\": 12.5}\n{\"id\": 2}\n").expect("file");
    let error = read(FileFormat::NdJson, json.to_str().expect("utf-8"))
        .await
        .expect_err("no order_id");
    assert!(
        error
            .to_string()
            .contains("has no key `order_id`, which is NOT NULL (its objects have `amount`, `id`)"),
        "{error}"
    );
    // Each file of a folder, each object of a file: `Amount` beside another's `amount` was
    // read as NULL, and a stray manifest as a row of NULLs.
    let folder = dir.path().join("landing");
    std::fs::create_dir(&folder).expect("dir");
    let a = folder.join("a.ndjson");
    std::fs::write(&a, "{\"order_id\": 1, \"amount\": 1.5}\n").expect("file");
    std::fs::write(
        folder.join("b.ndjson"),
        "{\"order_id\": 2, \"Amount\": 2.5}\n",
    )
    .expect("file");
    let error = read(FileFormat::NdJson, folder.to_str().expect("utf-8"))
        .await
        .expect_err("b's Amount");
    assert!(
        error
            .to_string()
            .contains("b.ndjson` has a key `Amount`, not `amount`"),
        "{error}"
    );
    std::fs::write(
        folder.join("b.ndjson"),
        "{\"order_id\": 2, \"amount\": 2.5}\n{\"order_id\": 3, \"Amount\": 3.5}\n",
    )
    .expect("file");
    let error = read(FileFormat::NdJson, folder.to_str().expect("utf-8"))
        .await
        .expect_err("order 3's Amount");
    assert!(
        error
            .to_string()
            .contains("b.ndjson` has a key `Amount`, not `amount`"),
        "{error}"
    );
    std::fs::write(folder.join("b.ndjson"), "{\"status\": \"done\"}\n").expect("file");
    let error = read(FileFormat::NdJson, folder.to_str().expect("utf-8"))
        .await
        .expect_err("a manifest");
    assert!(
        error.to_string().contains(
            "b.ndjson` has none of the table's columns (order_id, amount, note): its objects have \
             `status`"
        ),
        "{error}"
    );
    // A nullable column some objects lack is NULL there.
    std::fs::write(
        &json,
        "{\"order_id\": 1}\n{\"order_id\": 2, \"amount\": 1.5}\n",
    )
    .expect("file");
    let rows = read(FileFormat::NdJson, json.to_str().expect("utf-8"))
        .await
        .expect("read");
    assert_eq!(rows.len(), 2);
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
    write_parquet(&path, &batch);
    let read_parquet = read(FileFormat::Parquet, path.to_str().expect("utf-8")).await;
    assert_eq!(read_parquet.expect("parquet"), expected());
    // Doubles round as their digits do, half away from zero, as text would: Arrow's cast
    // multiplied in floating point (1.005 × 100 = 100.49999…, stored as 1.00).
    let doubles = RecordBatch::try_from_iter([
        (
            "amount",
            Arc::new(Float64Array::from(vec![1.005, 0.285])) as ArrayRef,
        ),
        (
            "order_id",
            Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef,
        ),
    ])
    .expect("batch");
    let rounded = dir.path().join("doubles.parquet");
    write_parquet(&rounded, &doubles);
    let amounts: Vec<Option<Decimal<10, 2>>> =
        read(FileFormat::Parquet, rounded.to_str().expect("utf-8"))
            .await
            .expect("doubles")
            .into_iter()
            .map(|order| order.amount)
            .collect();
    assert_eq!(amounts, [Some(Decimal(101)), Some(Decimal(29))]);
    // A wider decimal than declared: a value over the declared precision is an error naming
    // the file and the column (a plain cast named neither).
    let wide = RecordBatch::try_from_iter([
        (
            "order_id",
            Arc::new(arrow::array::Int64Array::from(vec![1])) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(
                arrow::array::Decimal128Array::from(vec![12_345_678_901_250_i128])
                    .with_precision_and_scale(20, 2)
                    .expect("decimal"),
            ) as ArrayRef,
        ),
    ])
    .expect("batch");
    let path = dir.path().join("wide.parquet");
    write_parquet(&path, &wide);
    let error = read(FileFormat::Parquet, path.to_str().expect("utf-8"))
        .await
        .expect_err("over Decimal(10, 2)")
        .to_string();
    assert!(
        error.contains("wide.parquet") && error.contains("column `amount`"),
        "{error}"
    );
    // Times as epoch seconds: a cast would read them as microseconds of January 1970.
    let seconds = RecordBatch::try_from_iter([
        ("order_id", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
        (
            "run_at",
            Arc::new(arrow::array::Int64Array::from(vec![1_767_225_600])) as ArrayRef,
        ),
    ])
    .expect("batch");
    let path = dir.path().join("timed.parquet");
    write_parquet(&path, &seconds);
    let error = read(FileFormat::Parquet, path.to_str().expect("utf-8"))
        .await
        .expect_err("integers are not times");
    assert!(
        error.to_string().contains("column `run_at` of the file `")
            && error
                .to_string()
                .contains("holds numbers (Int64), not times"),
        "{error}"
    );
    // Nor are fractional seconds (pandas writes an integer column with a NaN as doubles); and
    // a time is no number (a cast gave its microseconds since 1970).
    let write = |name: &str, batch: RecordBatch| {
        let path = dir.path().join(name);
        write_parquet(&path, &batch);
        path
    };
    let fractional = write(
        "fractional.parquet",
        RecordBatch::try_from_iter([
            ("order_id", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
            (
                "run_at",
                Arc::new(Float64Array::from(vec![1.7e9])) as ArrayRef,
            ),
        ])
        .expect("batch"),
    );
    let error = read(FileFormat::Parquet, fractional.to_str().expect("utf-8"))
        .await
        .expect_err("doubles are not times");
    assert!(
        error
            .to_string()
            .contains("holds numbers (Float64), not times"),
        "{error}"
    );
    let timed_ids = write(
        "timed_ids.parquet",
        RecordBatch::try_from_iter([(
            "order_id",
            Arc::new(
                arrow::array::TimestampMicrosecondArray::from(vec![1_767_225_600_000_000])
                    .with_timezone("UTC"),
            ) as ArrayRef,
        )])
        .expect("batch"),
    );
    let error = read(FileFormat::Parquet, timed_ids.to_str().expect("utf-8"))
        .await
        .expect_err("times are not numbers");
    assert!(
        error
            .to_string()
            .contains("column `order_id` of the file `")
            && error
                .to_string()
                .contains("holds times (Timestamp(µs, \"UTC\")), not numbers"),
        "{error}"
    );
}

#[tokio::test]
async fn a_directory_reads_each_finished_file_once() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("a.csv"), "order_id,amount\n1,12.50\n").expect("file");
    // A link to it, files still being copied or saved, and an empty file: no rows of theirs.
    std::os::unix::fs::symlink(dir.path().join("a.csv"), dir.path().join("latest.csv"))
        .expect("link");
    for unfinished in [
        "b.csv.filepart",
        "c.csv._COPYING_",
        "d.csv.tmp",
        "a.csv~",
        "g.csv.PART",
        "#h.csv#",
    ] {
        std::fs::write(dir.path().join(unfinished), "order_id,amount\n9,9.99\n").expect("file");
    }
    std::fs::write(dir.path().join("e.csv"), "").expect("file");
    std::fs::write(dir.path().join("f.csv"), "order_id,amount\n2,\n").expect("file");
    let read_csv = read(FileFormat::Csv, dir.path().to_str().expect("utf-8")).await;
    assert_eq!(read_csv.expect("csv"), expected());
    // An empty file named alone has no rows (not a missing column).
    let empty = read(
        FileFormat::Csv,
        dir.path().join("e.csv").to_str().expect("utf-8"),
    )
    .await;
    assert_eq!(empty.expect("no rows"), []);
}

#[tokio::test]
async fn a_csv_of_carriage_returns_is_read_and_a_header_alone_is_not() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("a.csv"), "order_id,amount\r1,12.50\r").expect("file");
    // Read, its header (none of the table's columns) would fail the read.
    std::fs::write(dir.path().join("b.csv"), "id;total\r\n\r\n").expect("file");
    let read_csv = read(FileFormat::Csv, dir.path().to_str().expect("utf-8")).await;
    assert_eq!(read_csv.expect("csv"), expected()[..1]);
}

#[tokio::test]
async fn quoted_line_breaks_survive_a_file_read_in_parallel() {
    let dir = tempfile::tempdir().expect("dir");
    // Over 1 MiB, so that DataFusion would read byte ranges of it in parallel; most line breaks
    // are inside the quoted notes.
    let note = "line\n".repeat(8);
    let mut csv = String::from("order_id,note\n");
    for id in 0..40_000 {
        csv.push_str(&format!("{id},\"{note}\"\n"));
    }
    let path = dir.path().join("notes.csv");
    std::fs::write(&path, csv).expect("file");
    let test = TestContext::unregistered("landed_orders").expect("context");
    let frame = test
        .ctx()
        .read_files::<LandedOrders>(FileFormat::Csv, path.to_str().expect("utf-8"))
        .await
        .expect("read");
    let notes = frame
        .into_dataframe()
        .aggregate(
            vec![],
            vec![
                datafusion::functions_aggregate::count::count(datafusion::prelude::lit(1)),
                datafusion::functions_aggregate::count::count_distinct(datafusion::prelude::col(
                    "note",
                )),
            ],
        )
        .expect("count")
        .collect()
        .await
        .expect("rows");
    let counts = arrow::util::pretty::pretty_format_batches(&notes)
        .expect("render")
        .to_string();
    assert!(
        counts.contains("| 40000 ") && counts.contains("| 1 "),
        "{counts}"
    );
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
    let error = error.to_string();
    assert!(
        error.contains("orders.csv`: column `amount` (")
            && error.contains("twelve")
            && error.contains("declare the field as text (`String`)"),
        "{error}"
    );
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

#[tokio::test]
async fn a_fraction_for_an_integer_column_is_refused_not_truncated() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, RecordBatch};
    let dir = tempfile::tempdir().expect("dir");
    let json = dir.path().join("orders.ndjson");
    // Whole numbers in any spelling read; 1.9 would have been stored as order 1.
    std::fs::write(&json, "{\"order_id\": 2.0}\n{\"order_id\": \"1\"}\n").expect("file");
    let read_json = read(FileFormat::NdJson, json.to_str().expect("utf-8")).await;
    let ids: Vec<i64> = read_json
        .expect("whole numbers")
        .iter()
        .map(|o| o.order_id)
        .collect();
    assert_eq!(ids, [1, 2]);
    std::fs::write(&json, "{\"order_id\": 1}\n{\"order_id\": 1.9}\n").expect("file");
    let error = read(FileFormat::NdJson, json.to_str().expect("utf-8"))
        .await
        .expect_err("1.9 is no order id")
        .to_string();
    assert!(
        error.contains("orders.ndjson`: column `order_id` (")
            && error.contains("1.9000000000 is not a whole number"),
        "{error}"
    );
    std::fs::write(&json, "{\"order_id\": \"abc\"}\n").expect("file");
    let error = read(FileFormat::NdJson, json.to_str().expect("utf-8"))
        .await
        .expect_err("abc is no order id")
        .to_string();
    // The reader fails on it as the plan runs: named all the same.
    assert!(
        error.contains("reading NDJSON file `")
            && error.contains("orders.ndjson` for bronze.landed_orders")
            && error.contains("abc"),
        "{error}"
    );
    let batch = RecordBatch::try_from_iter([(
        "order_id",
        Arc::new(Float64Array::from(vec![1.0, 2.5])) as ArrayRef,
    )])
    .expect("batch");
    let parquet = dir.path().join("orders.parquet");
    write_parquet(&parquet, &batch);
    let error = read(FileFormat::Parquet, parquet.to_str().expect("utf-8"))
        .await
        .expect_err("2.5 is no order id")
        .to_string();
    assert!(
        error.contains("orders.parquet`: column `order_id` (")
            && error.contains("2.5 is not a whole number"),
        "{error}"
    );
    let csv = dir.path().join("orders.csv");
    std::fs::write(&csv, "order_id\n1.9\n").expect("file");
    let error = read(FileFormat::Csv, csv.to_str().expect("utf-8"))
        .await
        .expect_err("1.9 is no order id")
        .to_string();
    assert!(
        error.contains("orders.csv`: column `order_id` ("),
        "{error}"
    );
}

#[tokio::test]
async fn a_parquet_scan_keeps_its_exact_row_count_for_the_writer() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use datafusion::common::stats::Precision;
    use datafusion::physical_plan::{StatisticsArgs, StatisticsContext};
    let dir = tempfile::tempdir().expect("dir");
    for (name, ids) in [("a.parquet", vec![1, 2]), ("b.parquet", vec![3])] {
        let batch =
            RecordBatch::try_from_iter([("order_id", Arc::new(Int64Array::from(ids)) as ArrayRef)])
                .expect("batch");
        write_parquet(&dir.path().join(name), &batch);
    }
    let test = TestContext::unregistered("landed_orders").expect("context");
    let frame = test
        .ctx()
        .read_files::<LandedOrders>(FileFormat::Parquet, dir.path().to_str().expect("utf-8"))
        .await
        .expect("read");
    let plan = frame
        .dataframe()
        .clone()
        .create_physical_plan()
        .await
        .expect("plan");
    // The scan's wrapper that names its files in errors hid it: a few rows were then spread
    // over every writer, several small files a write.
    let statistics = StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .expect("statistics");
    assert_eq!(statistics.num_rows, Precision::Exact(3));
}

/// Events as they land, with a day and a time.
#[derive(Table)]
#[table(schema = "bronze", name = "landed_events")]
pub struct LandedEvents {
    pub day: Date,
    pub at: Option<Timestamp>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Event {
    day: Date,
    at: Option<Timestamp>,
}

/// Flags and days as they land.
#[derive(Table)]
#[table(schema = "bronze", name = "landed_flags")]
pub struct LandedFlags {
    pub day: Option<Date>,
    pub open: Option<bool>,
}

#[tokio::test]
async fn a_date_or_flag_is_read_from_text_that_says_exactly_one() {
    let dir = tempfile::tempdir().expect("dir");
    let test = TestContext::unregistered("landed_flags").expect("context");
    let read = |text: &'static str| {
        let file = dir.path().join("flags.csv");
        let ctx = test.ctx();
        async move {
            std::fs::write(&file, text).expect("file");
            let frame = ctx
                .read_files::<LandedFlags>(FileFormat::Csv, file.to_str().expect("utf-8"))
                .await?;
            #[derive(Deserialize)]
            #[allow(dead_code)]
            struct Flag {
                day: Option<Date>,
                open: Option<bool>,
            }
            rows::<Flag, LandedFlags>(frame)
                .await
                .map(|flags| flags.len())
        }
    };
    assert_eq!(
        read("day,open\n2024-01-31,true\n2024-02-01, FALSE \n,1\n,0\n")
            .await
            .expect("read"),
        4
    );
    // Text of another layout (`large_string`, as polars writes it) too.
    let batch = arrow::array::RecordBatch::try_from_iter([(
        "day",
        std::sync::Arc::new(arrow::array::LargeStringArray::from(vec![
            "2024-01-31T10:00:00",
        ])) as arrow::array::ArrayRef,
    )])
    .expect("batch");
    let path = dir.path().join("days.parquet");
    write_parquet(&path, &batch);
    let frame = test
        .ctx()
        .read_files::<LandedFlags>(FileFormat::Parquet, path.to_str().expect("utf-8"))
        .await
        .expect("planned");
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Day {
        day: Option<Date>,
    }
    let error = rows::<Day, LandedFlags>(frame)
        .await
        .expect_err("a time")
        .to_string();
    assert!(
        error.contains("\"2024-01-31T10:00:00\" is not a date"),
        "{error}"
    );
    for (text, refused) in [
        // A time's date, once its zone is applied, is another day.
        (
            "day,open\n2024-01-31T23:30:00-05:00,true\n",
            "\"2024-01-31T23:30:00-05:00\" is not a date (`YYYY-MM-DD`)",
        ),
        ("day,open\n2024-01-31,tr\n", "\"tr\" is not a flag"),
        ("day,open\n2024-01-31,on\n", "\"on\" is not a flag"),
    ] {
        let error = read(text).await.expect_err(text).to_string();
        assert!(error.contains(refused), "{text}: {error}");
    }
    // Typed Parquet columns: a time is no date (its day depends on its zone), and a number is
    // a flag only as 1 or 0 (Arrow took any other for true).
    let parquet = |name: &str, column: &str, values: arrow::array::ArrayRef| {
        let batch = arrow::array::RecordBatch::try_from_iter([(column, values)]).expect("batch");
        let path = dir.path().join(name);
        write_parquet(&path, &batch);
        path
    };
    let timed = parquet(
        "timed_days.parquet",
        "day",
        std::sync::Arc::new(
            arrow::array::TimestampMicrosecondArray::from(vec![1_706_761_800_000_000])
                .with_timezone("America/New_York"),
        ),
    );
    let error = match test
        .ctx()
        .read_files::<LandedFlags>(FileFormat::Parquet, timed.to_str().expect("utf-8"))
        .await
    {
        Ok(_) => panic!("a time is no date"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("column `day` of the file `")
            && error.contains("holds times (Timestamp(µs, \"America/New_York\")), not dates"),
        "{error}"
    );
    let numbered = parquet(
        "numbered_flags.parquet",
        "open",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![0, 1, 2])),
    );
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Open {
        open: Option<bool>,
    }
    let frame = test
        .ctx()
        .read_files::<LandedFlags>(FileFormat::Parquet, numbered.to_str().expect("utf-8"))
        .await
        .expect("planned");
    let error = rows::<Open, LandedFlags>(frame)
        .await
        .expect_err("2 is no flag")
        .to_string();
    assert!(error.contains("2 is not a flag (`1`/`0`)"), "{error}");
    let flags = parquet(
        "flags.parquet",
        "open",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![Some(0), Some(1), None])),
    );
    let frame = test
        .ctx()
        .read_files::<LandedFlags>(FileFormat::Parquet, flags.to_str().expect("utf-8"))
        .await
        .expect("planned");
    let opens: Vec<Option<bool>> = rows::<Open, LandedFlags>(frame)
        .await
        .expect("1 and 0")
        .into_iter()
        .map(|o| o.open)
        .collect();
    assert_eq!(opens, [Some(false), Some(true), None]);
}

#[tokio::test]
async fn ndjson_dates_and_times_are_text_and_a_number_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.json");
    let read_events = || async {
        let test = TestContext::unregistered("landed_events").expect("context");
        let frame = test
            .ctx()
            .read_files::<LandedEvents>(FileFormat::NdJson, file.to_str().expect("utf-8"))
            .await?;
        rows::<Event, LandedEvents>(frame).await
    };
    std::fs::write(
        &file,
        "{\"day\": \"2024-01-02\", \"at\": \"2024-01-02T03:04:05Z\"}\n{\"day\": \"2024-01-03\"}\n",
    )
    .expect("file");
    let events = read_events().await.expect("dates as text");
    assert_eq!(
        events,
        vec![
            Event {
                day: Date::from_ymd(2024, 1, 2).expect("date"),
                at: Timestamp::parse("2024-01-02T03:04:05Z"),
            },
            Event {
                day: Date::from_ymd(2024, 1, 3).expect("date"),
                at: None,
            },
        ]
    );
    // Epoch seconds: taken for days, they were the year 4 million (and panicked the writer).
    std::fs::write(&file, "{\"day\": 1704067200}\n").expect("file");
    let error = read_events().await.expect_err("a number is not a date");
    assert!(!error.is_retryable(), "{error:?}");
    let error = error.to_string();
    assert!(
        error.contains("day") && error.contains("expected string"),
        "{error}"
    );
}

/// Orders landed as CSV files, each file ingested once.
#[derive(Table)]
#[table(schema = "bronze", name = "new_orders")]
pub struct NewOrders {
    pub order_id: i64,
    pub amount: Option<Decimal<10, 2>>,
    pub run_at: Timestamp,
}

/// A landing file a producer is still writing: the next execution of `new_orders` appends
/// this line to it once it has listed it.
pub static GROWING: std::sync::Mutex<Option<(std::path::PathBuf, &'static str)>> =
    std::sync::Mutex::new(None);

/// The new files of the directory in setting `landing`, at most `max_files` a run if set, and
/// only those modified `settle_secs` ago or more if set.
#[pipeline(tags = ["files"])]
pub async fn new_orders(cx: &Ctx) -> Result<Frame<NewOrders>> {
    let dir = cx.settings().get("landing").unwrap_or("landing-not-set");
    let max_files = cx.settings().parse_or("max_files", 0usize)?;
    let mut options = match max_files {
        0 => NewFiles::default(),
        max => NewFiles::at_most(max),
    };
    if let Some(secs) = cx.settings().get("settle_secs") {
        let secs = secs
            .parse()
            .map_err(|_| Error::msg("settle_secs: a number"))?;
        options = options.settled_for(std::time::Duration::from_secs(secs));
    }
    let frame = cx
        .read_new_files_with::<NewOrders>(FileFormat::Csv, dir, options)
        .await?;
    // Only this landing's (tests run side by side).
    let growing = {
        let mut growing = GROWING.lock().unwrap_or_else(|p| p.into_inner());
        growing.take_if(|(path, _)| path.parent() == Some(std::path::Path::new(dir)))
    };
    if let Some((path, line)) = growing {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::msg(format!("appending to {}: {e}", path.display())))?;
        file.write_all(line.as_bytes())
            .map_err(|e| Error::msg(format!("appending to {}: {e}", path.display())))?;
    }
    Ok(frame)
}

/// The latest orders only: an overwrite, which new files alone cannot fill.
#[derive(Table)]
#[table(schema = "bronze", name = "latest_orders", mode = overwrite)]
pub struct LatestOrders {
    pub order_id: i64,
    pub amount: Option<Decimal<10, 2>>,
    pub run_at: Timestamp,
}

/// Customers, the complete list at every run.
#[derive(Table)]
#[table(schema = "silver", name = "all_customers", key(order_id), mode = merge)]
pub struct AllCustomers {
    pub order_id: i64,
    pub amount: Option<Decimal<10, 2>>,
    pub run_at: Timestamp,
}

/// New files as the complete list: refused.
#[pipeline(tags = ["files"], full_snapshot)]
pub async fn all_customers(cx: &Ctx) -> Result<Frame<AllCustomers>> {
    let dir = cx.settings().get("landing").unwrap_or("landing-not-set");
    cx.read_new_files::<AllCustomers>(FileFormat::Csv, dir)
        .await
}

/// Orders by region, partitions replaced.
#[derive(Table)]
#[table(schema = "gold", name = "regional_orders", partition_by(region), mode = overwrite,
        overwrite = partitions)]
pub struct RegionalOrders {
    pub region: Option<String>,
    pub order_id: i64,
    pub run_at: Timestamp,
}

/// Another run of `overlapped_orders` committing while this one reads: the warehouse and that
/// run's sequence, taken by the next execution.
pub static OVERLAP: std::sync::Mutex<Option<(lakehouse_runtime::store::Warehouse, i64)>> =
    std::sync::Mutex::new(None);

/// Orders of files read by two overlapping runs.
#[derive(Table)]
#[table(schema = "bronze", name = "overlapped_orders", mode = append)]
pub struct OverlappedOrders {
    pub order_id: i64,
}

/// The new files in setting `landing`; with `OVERLAP` set, another run's write of order 100
/// lands after they were listed.
#[pipeline(tags = ["files"])]
pub async fn overlapped_orders(cx: &Ctx) -> Result<Frame<OverlappedOrders>> {
    let dir = cx.settings().get("landing").unwrap_or("landing-not-set");
    let frame = cx
        .read_new_files::<OverlappedOrders>(FileFormat::Csv, dir)
        .await?;
    let other = OVERLAP.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((warehouse, sequence)) = other {
        #[derive(serde::Serialize)]
        struct Row {
            order_id: i64,
        }
        let options = lakehouse_runtime::store::WriteOptions {
            transaction: Some(("overlapped_orders".to_owned(), sequence)),
            ..Default::default()
        };
        let rows = &[Row { order_id: 100 }];
        crate::common::write(&warehouse, OverlappedOrders::DEF, rows, options).await?;
    }
    Ok(frame)
}

/// A bounded number of new files into partitions replaced, or files left to settle: refused.
#[pipeline(tags = ["files"])]
pub async fn regional_orders(cx: &Ctx) -> Result<Frame<RegionalOrders>> {
    let dir = cx.settings().get("landing").unwrap_or("landing-not-set");
    let options = match cx.settings().get("bound") {
        Some("settle") => NewFiles::default().settled_for(std::time::Duration::from_secs(60)),
        _ => NewFiles::at_most(1),
    };
    cx.read_new_files_with::<RegionalOrders>(FileFormat::Csv, dir, options)
        .await
}

/// New files into an overwrite table: refused.
#[pipeline(tags = ["files"])]
pub async fn latest_orders(cx: &Ctx) -> Result<Frame<LatestOrders>> {
    let dir = cx.settings().get("landing").unwrap_or("landing-not-set");
    cx.read_new_files::<LatestOrders>(FileFormat::Csv, dir)
        .await
}

mod incremental {
    use lakehouse_runtime::Registry;
    use lakehouse_runtime::ledger::IngestedFile;
    use lakehouse_runtime::orchestrator::{Orchestrator, RunConfig, Status};
    use lakehouse_runtime::prelude::*;

    use super::NewOrders;
    use crate::common::{TempWarehouse, query};

    fn orchestrator(wh: &TempWarehouse) -> Orchestrator {
        orchestrator_of(wh, "new_orders")
    }

    fn orchestrator_of(wh: &TempWarehouse, pipeline: &str) -> Orchestrator {
        let registry = Registry::new(
            Registry::from_inventory()
                .expect("valid graph")
                .pipelines()
                .iter()
                .copied()
                .filter(|p| p.name == pipeline),
        )
        .expect("one pipeline");
        Orchestrator::new(registry, wh.warehouse.clone())
    }

    fn config(landing: &std::path::Path) -> RunConfig {
        let mut config = RunConfig {
            retry_delay: std::time::Duration::from_millis(1),
            ..RunConfig::default()
        };
        config
            .settings
            .set("landing", landing.to_str().expect("utf-8"));
        config
    }

    /// A landing directory of `wh` holding `a.csv`: order 1 of 1.00 (23 bytes).
    fn landing_with_a(wh: &TempWarehouse) -> std::path::PathBuf {
        let landing = wh.dir.path().join("landing");
        std::fs::create_dir(&landing).expect("dir");
        std::fs::write(landing.join("a.csv"), "order_id,amount\n1,1.00\n").expect("file");
        landing
    }

    async fn orders(wh: &TempWarehouse) -> Vec<String> {
        query(
            &wh.warehouse,
            &[NewOrders::DEF],
            "SELECT order_id, amount FROM bronze.new_orders",
        )
        .await
    }

    /// The ingested files' names, with the sequence of the run that read them.
    async fn ingested(wh: &TempWarehouse) -> Vec<String> {
        let rows = query(
            &wh.warehouse,
            &[IngestedFile::DEF],
            "SELECT path, sequence, pipeline, table_name, size FROM lakehouse.ingested_files",
        )
        .await;
        rows.iter()
            .map(|row| {
                let (path, rest) = row.split_once('|').expect("columns");
                let name = std::path::Path::new(path).file_name().expect("a file");
                assert!(std::path::Path::new(path).is_absolute(), "{path}");
                format!("{}|{rest}", name.to_string_lossy())
            })
            .collect()
    }

    #[tokio::test]
    async fn an_output_deleted_to_start_over_gets_every_file_again() {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        let orchestrator = orchestrator(&wh);
        let run = || async { orchestrator.run(&config(&landing)).await.expect("run") };
        assert!(run().await.succeeded());
        std::fs::write(landing.join("b.csv"), "order_id,amount\n2,2.00\n").expect("file");
        // The operator deletes the table's folder: before, the next run read only b.csv.
        let folder = crate::common::table_folder(&wh.warehouse, NewOrders::DEF);
        std::fs::remove_dir_all(folder).expect("deleted");
        // An attempt created the table again, then failed before its commit.
        wh.warehouse
            .ensure(NewOrders::DEF)
            .await
            .expect("created again");
        let again = run().await;
        assert!(again.succeeded(), "{}", again.render(false));
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00"]);
        // And from then on, as usual.
        assert!(run().await.succeeded());
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00"]);
    }

    #[tokio::test]
    async fn a_csv_holding_its_header_alone_is_read_once_it_has_rows() {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        // The producer has written the header only, so far.
        std::fs::write(landing.join("b.csv"), "order_id,amount\n").expect("file");
        let orchestrator = orchestrator(&wh);
        let run = || async { orchestrator.run(&config(&landing)).await.expect("run") };
        assert!(run().await.succeeded());
        assert_eq!(orders(&wh).await, ["1|1.00"]);
        assert_eq!(ingested(&wh).await.len(), 1, "b.csv is not taken yet");
        std::fs::write(landing.join("b.csv"), "order_id,amount\n2,2.00\n").expect("file");
        assert!(run().await.succeeded());
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00"]);
    }

    #[tokio::test]
    async fn a_file_still_being_written_is_not_ingested_in_part() {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        let orchestrator = orchestrator(&wh);
        // The producer writes a line more after the run listed the file: the attempt fails
        // before committing, and its retry reads the whole file.
        *super::GROWING.lock().expect("lock") = Some((landing.join("a.csv"), "2,2.00\n"));
        let report = orchestrator
            .run(&RunConfig {
                default_retries: 1,
                ..config(&landing)
            })
            .await
            .expect("run");
        assert!(report.succeeded(), "{}", report.render(false));
        assert_eq!(report.result("new_orders").map(|r| r.attempts), Some(2));
        let attempts = orchestrator
            .ledger()
            .run(&report.run_id)
            .await
            .expect("ledger");
        let first = attempts
            .iter()
            .find(|r| r.attempt == Some(1))
            .and_then(|r| r.error.clone())
            .unwrap_or_default();
        assert!(
            first.contains("a.csv` changed while the run read it (23 bytes when listed, 30 now)")
                && first.contains(
                    "nothing was written, and the next attempt (a retry, or the next run) reads"
                ),
            "{first}"
        );
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00"]);
        assert_eq!(
            ingested(&wh).await,
            ["a.csv|1|new_orders|bronze.new_orders|30"]
        );

        // Settled for an hour: a file modified just now waits; one an hour old is read.
        std::fs::write(landing.join("b.csv"), "order_id,amount\n3,3.00\n").expect("file");
        let mut settled = config(&landing);
        settled.settings.set("settle_secs", "3600");
        let waiting = orchestrator.run(&settled).await.expect("run");
        assert!(waiting.succeeded(), "{}", waiting.render(false));
        assert_eq!(orders(&wh).await.len(), 2);
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3601);
        std::fs::File::options()
            .write(true)
            .open(landing.join("b.csv"))
            .and_then(|file| file.set_modified(an_hour_ago))
            .expect("mtime");
        let settled_run = orchestrator.run(&settled).await.expect("run");
        assert!(settled_run.succeeded(), "{}", settled_run.render(false));
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00", "3|3.00"]);

        // A modification time in the future (another host's clock) waits until then: named.
        std::fs::write(landing.join("c.csv"), "order_id,amount\n4,4.00\n").expect("file");
        let tomorrow = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
        std::fs::File::options()
            .write(true)
            .open(landing.join("c.csv"))
            .and_then(|file| file.set_modified(tomorrow))
            .expect("mtime");
        let (logs, guard) = crate::common::capture_warnings();
        let waiting = orchestrator.run(&settled).await.expect("run");
        drop(guard);
        assert!(waiting.succeeded(), "{}", waiting.render(false));
        assert_eq!(orders(&wh).await.len(), 3);
        let logs = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
        assert!(
            logs.contains("c.csv") && logs.contains("modification time is in the future"),
            "{logs}"
        );
    }

    #[tokio::test]
    async fn a_bad_value_in_a_backlog_is_pinned_to_its_file() {
        // Seven files of one layout, one scan: the error lists five, and names the seventh,
        // which holds the value.
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        for (name, amount) in [("b", "2"), ("c", "3"), ("d", "4"), ("e", "5"), ("f", "6")] {
            let body = format!("order_id,amount\n{amount},{amount}.00\n");
            std::fs::write(landing.join(format!("{name}.csv")), body).expect("file");
        }
        std::fs::write(landing.join("g.csv"), "order_id,amount\n7,seven\n").expect("file");
        let report = orchestrator(&wh).run(&config(&landing)).await.expect("run");
        let error = report
            .result("new_orders")
            .and_then(|r| r.error.clone())
            .unwrap_or_default();
        let culprit = landing.join("g.csv");
        // The files are named once (the scan's label and the cast's both name them).
        assert!(
            error.matches("(7 in all)").count() == 1
                && error.contains("'seven'")
                && error.ends_with(&format!("; the value is in `{}`", culprit.display())),
            "{error}"
        );
        assert!(orders(&wh).await.is_empty());
    }

    #[tokio::test]
    async fn each_new_file_is_ingested_once_and_a_failed_run_reads_it_again() {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        std::fs::write(landing.join("b.csv"), "order_id,amount\n2,2.00\n").expect("file");
        let orchestrator = orchestrator(&wh);
        let run = || async { orchestrator.run(&config(&landing)).await.expect("run") };
        let first = run().await;
        assert!(first.succeeded(), "{}", first.render(false));
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00"]);
        assert_eq!(
            ingested(&wh).await,
            [
                "a.csv|1|new_orders|bronze.new_orders|23",
                "b.csv|1|new_orders|bronze.new_orders|23"
            ]
        );
        // Nothing new: nothing read.
        let second = run().await;
        assert!(second.succeeded(), "{}", second.render(false));
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00"]);
        // A new file alongside a bad one: the run fails, records nothing, and the next run,
        // the bad file mended, reads both.
        std::fs::write(landing.join("c.csv"), "order_id,amount\n3,3.00\n").expect("file");
        std::fs::write(landing.join("d.csv"), "order_id,amount\n4,four\n").expect("file");
        // Not retried: the same value would fail again.
        let failed = orchestrator
            .run(&RunConfig {
                default_retries: 2,
                ..config(&landing)
            })
            .await
            .expect("run");
        let result = failed.result("new_orders").expect("planned");
        assert_eq!(
            (result.status, result.attempts),
            (Status::Failed, 1),
            "{}",
            failed.render(false)
        );
        let error = result.error.clone().unwrap_or_default();
        // Read in one scan, which does not tell which file the value is in: both are named,
        // then the one found to hold it (each read alone, on this failure only).
        assert!(
            error.contains("one of the CSV files `")
                && error.contains("c.csv`, `")
                && error.contains("d.csv`: column `amount` (")
                && error.contains("four")
                && error.ends_with("d.csv`"),
            "{error}"
        );
        assert!(error.contains("; the value is in `"), "{error}");
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00"]);
        assert_eq!(ingested(&wh).await.len(), 2);
        std::fs::write(landing.join("d.csv"), "order_id,amount\n4,4.00\n").expect("file");
        let mended = run().await;
        assert!(mended.succeeded(), "{}", mended.render(false));
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00", "3|3.00", "4|4.00"]);
        assert_eq!(
            ingested(&wh).await[2..],
            [
                "c.csv|4|new_orders|bronze.new_orders|23",
                "d.csv|4|new_orders|bronze.new_orders|23"
            ]
        );
        // A file changed after it was ingested is not read again.
        std::fs::write(landing.join("a.csv"), "order_id,amount\n1,1.00\n5,5.00\n").expect("file");
        let changed = run().await;
        assert!(changed.succeeded(), "{}", changed.render(false));
        assert_eq!(orders(&wh).await.len(), 4);
        // A rebuild reads every file and replaces the table with their rows.
        let rebuilt = orchestrator
            .run(&RunConfig {
                rebuild: true,
                full_refresh: true,
                ..config(&landing)
            })
            .await
            .expect("run");
        assert!(rebuilt.succeeded(), "{}", rebuilt.render(false));
        assert_eq!(
            orders(&wh).await,
            ["1|1.00", "2|2.00", "3|3.00", "4|4.00", "5|5.00"]
        );
    }

    #[tokio::test]
    async fn pruning_the_ledger_forgets_only_files_gone_from_the_landing() {
        use lakehouse_runtime::ledger::PruneOptions;
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        std::fs::write(landing.join("b.csv"), "order_id,amount\n2,2.00\n").expect("file");
        let orchestrator = orchestrator(&wh);
        let run = || async { orchestrator.run(&config(&landing)).await.expect("run") };
        // Run 1 reads a and b, run 2 c, run 3 nothing new.
        assert!(run().await.succeeded());
        std::fs::write(landing.join("c.csv"), "order_id,amount\n3,3.00\n").expect("file");
        assert!(run().await.succeeded());
        assert!(run().await.succeeded());
        std::fs::remove_file(landing.join("a.csv")).expect("a removed");
        std::fs::remove_file(landing.join("c.csv")).expect("c removed");
        let report = orchestrator
            .ledger()
            .prune(PruneOptions {
                ended_before: Timestamp::now(),
                dry_run: false,
            })
            .await
            .expect("prune");
        // Runs 1 and 2 are pruned (run 3 is the latest success). Of their files, a is
        // forgotten; b is still there, and would be read again; c is gone, but its run is the
        // pipeline's latest ingestion.
        assert_eq!((report.runs_pruned, report.runs_kept), (2, 1), "{report:?}");
        assert_eq!(
            ingested(&wh).await,
            [
                "b.csv|1|new_orders|bronze.new_orders|23",
                "c.csv|2|new_orders|bronze.new_orders|23"
            ]
        );
        assert!(
            report
                .rows_removed
                .contains(&("lakehouse.ingested_files".to_owned(), 1)),
            "{report:?}"
        );
        // The next run reads the new file alone.
        std::fs::write(landing.join("d.csv"), "order_id,amount\n4,4.00\n").expect("file");
        let next = run().await;
        assert!(next.succeeded(), "{}", next.render(false));
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00", "3|3.00", "4|4.00"]);
        assert_eq!(ingested(&wh).await.len(), 3);
    }

    #[tokio::test]
    async fn files_another_run_read_meanwhile_are_not_appended_again() {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        let orchestrator = orchestrator_of(&wh, "overlapped_orders");
        // Run 1 reads a.csv; run 6 lists b.csv while a run of sequence 5 that read it commits.
        let first = orchestrator.run(&config(&landing)).await.expect("run 1");
        assert!(first.succeeded(), "{}", first.render(false));
        orchestrator
            .ledger()
            .raise_sequence_floor(5)
            .await
            .expect("floor");
        std::fs::write(landing.join("b.csv"), "order_id,amount\n2,2.00\n").expect("file");
        *super::OVERLAP.lock().unwrap_or_else(|p| p.into_inner()) = Some((wh.warehouse.clone(), 5));
        let report = orchestrator.run(&config(&landing)).await.expect("run 6");
        assert_eq!(report.sequence, 6);
        let result = report.result("overlapped_orders").expect("planned");
        assert_eq!(result.status, Status::Failed, "{}", report.render(false));
        let error = result.error.clone().unwrap_or_default();
        assert!(
            error.contains("`overlapped_orders` committed its transaction 5"),
            "{error}"
        );
        let rows = query(
            &wh.warehouse,
            &[super::OverlappedOrders::DEF],
            "SELECT order_id FROM bronze.overlapped_orders",
        )
        .await;
        assert_eq!(rows, ["1", "100"]);
    }

    #[tokio::test]
    async fn files_of_a_commit_the_ledger_lacks_are_not_read_again() {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        let orchestrator = orchestrator(&wh);
        let report = orchestrator.run(&config(&landing)).await.expect("run 1");
        assert!(report.succeeded(), "{}", report.render(false));
        // As if the process died after the commit, before the ledger took the file.
        crate::common::delete_rows(&wh.warehouse, IngestedFile::DEF, None).await;
        assert!(ingested(&wh).await.is_empty());
        std::fs::write(landing.join("b.csv"), "order_id,amount\n2,2.00\n").expect("file");
        let report = orchestrator.run(&config(&landing)).await.expect("run 2");
        assert!(report.succeeded(), "{}", report.render(false));
        assert_eq!(orders(&wh).await, ["1|1.00", "2|2.00"], "a.csv once");
        assert_eq!(
            ingested(&wh).await,
            [
                "a.csv|1|new_orders|bronze.new_orders|23",
                "b.csv|2|new_orders|bronze.new_orders|23"
            ]
        );
    }

    #[tokio::test]
    async fn a_resumed_full_refresh_reads_every_file_again() {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        let orchestrator = orchestrator(&wh);
        let first = orchestrator.run(&config(&landing)).await.expect("run 1");
        assert!(first.succeeded(), "{}", first.render(false));
        // A full refresh that fails on a bad file.
        std::fs::write(landing.join("b.csv"), "order_id,amount\n2,two\n").expect("file");
        let refresh = RunConfig {
            full_refresh: true,
            ..config(&landing)
        };
        let failed = orchestrator.run(&refresh).await.expect("run 2");
        assert!(!failed.succeeded(), "{}", failed.render(false));
        assert_eq!(
            query(
                &wh.warehouse,
                &[lakehouse_runtime::ledger::RunRecord::DEF],
                "SELECT sequence, refresh FROM lakehouse.runs WHERE kind = 'run' AND status = 'failed'"
            )
            .await,
            ["2|full"]
        );
        std::fs::write(landing.join("b.csv"), "order_id,amount\n2,2.00\n").expect("file");
        // An ordinary run would take the refresh for done: refused until it is resumed.
        let refused = orchestrator
            .run(&config(&landing))
            .await
            .expect_err("a refresh is unfinished");
        assert!(
            refused.to_string().contains(&format!(
                "run `{}`, a --full-refresh of new_orders, did not finish (failed): resume it first",
                failed.run_id
            )),
            "{refused}"
        );
        // The resumed run is still a full refresh: a.csv is read again.
        let resumed = orchestrator
            .resume(&failed.run_id, &config(&landing))
            .await
            .expect("resumed");
        assert!(resumed.succeeded(), "{}", resumed.render(false));
        assert_eq!(orders(&wh).await, ["1|1.00", "1|1.00", "2|2.00"]);
        // Finished: ordinary runs go on.
        let next = orchestrator.run(&config(&landing)).await.expect("run 3");
        assert!(next.succeeded(), "{}", next.render(false));
    }

    #[tokio::test]
    async fn a_commit_whose_files_cannot_be_told_stops_the_read() {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        let orchestrator = orchestrator(&wh);
        let report = orchestrator.run(&config(&landing)).await.expect("run 1");
        assert!(report.succeeded(), "{}", report.render(false));
        // A later commit of the pipeline the ledger has no record of, whose metadata says
        // nothing (as when its log entry is gone).
        let written = crate::common::write(
            &wh.warehouse,
            NewOrders::DEF,
            &[serde_json::json!({"order_id": 9, "amount": null, "run_at": "1970-01-01T00:00:00Z"})],
            lakehouse_runtime::store::WriteOptions {
                transaction: Some(("new_orders".to_owned(), 5)),
                ..Default::default()
            },
        )
        .await
        .expect("a bare commit");
        assert!(written.committed);
        let report = orchestrator.run(&config(&landing)).await.expect("run 2");
        let error = report
            .result("new_orders")
            .and_then(|r| r.error.clone())
            .unwrap_or_default();
        assert!(
            error
                .contains("cannot tell which files run sequence 5 ingested into bronze.new_orders")
                && error.contains("orchestrate run --rebuild --select new_orders"),
            "{}",
            report.render(false)
        );
        assert_eq!(orders(&wh).await, ["1|1.00", "9|∅"], "nothing read again");
    }

    #[tokio::test]
    async fn a_backlog_is_taken_a_bounded_number_of_files_a_run() {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        for (name, id) in [("b.csv", 2), ("c.csv", 3)] {
            std::fs::write(landing.join(name), format!("order_id,amount\n{id},1.00\n"))
                .expect("file");
        }
        let orchestrator = orchestrator(&wh);
        let mut bounded = config(&landing);
        bounded.settings.set("max_files", "2");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let report = orchestrator.run(&bounded).await.expect("run");
            assert!(report.succeeded(), "{}", report.render(false));
            seen.push(orders(&wh).await.len());
        }
        // a and b, then c, then nothing new.
        assert_eq!(seen, [2, 3, 3]);
        // A rebuild reads every file, whatever the bound.
        let rebuild = RunConfig {
            full_refresh: true,
            rebuild: true,
            ..bounded
        };
        let report = orchestrator.run(&rebuild).await.expect("rebuild");
        assert!(report.succeeded(), "{}", report.render(false));
        assert_eq!(orders(&wh).await.len(), 3);
    }

    /// The error of `pipeline`'s run over one landed file.
    async fn refusal(pipeline: &str) -> String {
        refusal_with(pipeline, &[]).await
    }

    /// The error of `pipeline`'s run over one landed file, with these settings.
    async fn refusal_with(pipeline: &str, settings: &[(&str, &str)]) -> String {
        let wh = TempWarehouse::new();
        let landing = landing_with_a(&wh);
        // Retries allowed: a refusal is not retried (another attempt meets it again).
        let mut config = RunConfig {
            default_retries: 2,
            ..config(&landing)
        };
        for &(key, value) in settings {
            config.settings.set(key, value);
        }
        let report = orchestrator_of(&wh, pipeline)
            .run(&config)
            .await
            .expect("run");
        let result = report.result(pipeline).expect("planned");
        assert_eq!(result.attempts, 1, "{}", report.render(false));
        result.error.clone().unwrap_or_default()
    }

    #[tokio::test]
    async fn new_files_into_outputs_that_would_lose_rows_are_refused() {
        let error = refusal("all_customers").await;
        assert!(
            error.contains("the pipeline is `full_snapshot`: each run would delete or close"),
            "{error}"
        );
        let error = refusal("latest_orders").await;
        assert!(
            error.contains("bronze.latest_orders is `mode = overwrite`: each run would replace it"),
            "{error}"
        );
        let error = refusal("regional_orders").await;
        assert!(
            error.contains("`at_most` (`max_files`) could split a partition's files over two runs"),
            "{error}"
        );
        let error = refusal_with("regional_orders", &[("bound", "settle")]).await;
        assert!(
            error.contains(
                "gold.regional_orders replaces the partitions each run writes, and `settled_for` \
                 could leave some of a partition's files for a later run"
            ),
            "{error}"
        );
        // The plan check (`cargo test`) refuses them too, before any run.
        let registry = lakehouse_runtime::Registry::from_inventory().expect("valid graph");
        for (pipeline, expected) in [
            ("all_customers", "the pipeline is `full_snapshot`"),
            ("latest_orders", "is `mode = overwrite`"),
            ("regional_orders", "`at_most` (`max_files`) could split"),
        ] {
            let descriptor = registry.get(pipeline).expect("registered");
            let error = lakehouse_runtime::check::check_plan(descriptor)
                .await
                .expect_err("refused by the plan check");
            assert!(error.to_string().contains(expected), "{pipeline}: {error}");
        }
        // A unit test's context names its pipeline, whose declaration the refusals read: a
        // misspelt name would skip them.
        use super::{LatestOrders, TestContext};
        let error = TestContext::new("latest_ordres")
            .err()
            .expect("no such pipeline")
            .to_string();
        assert!(
            error.contains(
                "pipeline `latest_ordres`: no pipeline of that name is registered (did you mean \
                 `latest_orders`?)"
            ),
            "{error}"
        );
        let test = TestContext::unregistered("latest_ordres").expect("context");
        let error = test
            .ctx()
            .read_new_files::<LatestOrders>(FileFormat::Csv, "landing")
            .await
            .err()
            .expect("no such pipeline")
            .to_string();
        assert!(
            error.contains("pipeline `latest_ordres`: no pipeline of that name is registered"),
            "{error}"
        );
        let test = TestContext::new("latest_orders").expect("context");
        let error = test
            .ctx()
            .read_new_files::<LatestOrders>(FileFormat::Csv, "landing")
            .await
            .err()
            .expect("an overwrite")
            .to_string();
        assert!(error.contains("is `mode = overwrite`"), "{error}");
    }
}
