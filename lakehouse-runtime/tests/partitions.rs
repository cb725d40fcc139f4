//! Dynamic partition overwrite (`overwrite = partitions`): a write replaces the partitions its
//! rows are in and keeps the others.

use lakehouse_runtime::prelude::*;
use lakehouse_runtime::store::WriteOptions;
use serde::Serialize;

use crate::common::{TempWarehouse, contents, write};

/// Daily sales by region, recomputed a few regions at a time.
#[derive(Table)]
#[table(schema = "gold", name = "sales_by_region", partition_by(region), mode = overwrite,
        overwrite = partitions)]
pub struct SalesByRegion {
    pub region: Option<String>,
    pub amount: i64,
}

/// Partitioned by two columns.
#[derive(Table)]
#[table(schema = "gold", name = "sales_by_day_region", partition_by(day, region),
        mode = overwrite, overwrite = partitions)]
pub struct SalesByDayRegion {
    pub day: Date,
    pub region: String,
    pub amount: i64,
}

/// With a CHECK constraint: written by delta-rs, which validates it.
#[derive(Table)]
#[table(schema = "gold", name = "checked_sales", partition_by(region), mode = overwrite,
        overwrite = partitions, check(name = "positive", expr = "amount > 0"))]
pub struct CheckedSales {
    pub region: Option<String>,
    pub amount: i64,
}

/// Partitioned by a timestamp and a decimal, whose texts have several spellings.
#[derive(Table)]
#[table(schema = "gold", name = "priced_hours", partition_by(hour, price),
        mode = overwrite, overwrite = partitions)]
pub struct PricedHours {
    pub hour: Timestamp,
    pub price: Decimal<6, 2>,
    pub n: i64,
}

/// The same table name, declared unpartitioned: what existed before `partition_by`.
#[derive(Table)]
#[table(schema = "gold", name = "sales_by_region", mode = overwrite)]
pub struct SalesUnpartitioned {
    pub region: Option<String>,
    pub amount: i64,
}

/// `SalesByRegion` with a new NOT NULL column.
#[derive(Table)]
#[table(schema = "gold", name = "sales_by_region", partition_by(region), mode = overwrite,
        overwrite = partitions)]
pub struct SalesByRegionWithCurrency {
    pub region: Option<String>,
    pub amount: i64,
    pub currency: String,
}

/// `SalesByRegion` with a CHECK its stored rows (amounts 1 and 2) fail.
#[derive(Table)]
#[table(schema = "gold", name = "sales_by_region", partition_by(region), mode = overwrite,
        overwrite = partitions, check(name = "large", expr = "amount > 5"))]
pub struct SalesByRegionLarge {
    pub region: Option<String>,
    pub amount: i64,
}

#[derive(Serialize)]
struct Sale<'a> {
    region: Option<&'a str>,
    amount: i64,
}

/// Writes a north and a south row (amounts 1 and 2) into `table`.
async fn north_and_south(wh: &TempWarehouse, table: &'static lakehouse_runtime::table::TableDef) {
    write(
        &wh.warehouse,
        table,
        &sales(&[(Some("north"), 1), (Some("south"), 2)]),
        WriteOptions::default(),
    )
    .await
    .expect("write");
}

fn sales(rows: &[(Option<&'static str>, i64)]) -> Vec<Sale<'static>> {
    rows.iter()
        .map(|&(region, amount)| Sale { region, amount })
        .collect()
}

#[tokio::test]
async fn a_write_replaces_only_the_partitions_it_has_rows_in() {
    let wh = TempWarehouse::new();
    let table = SalesByRegion::DEF;
    let first = sales(&[(Some("north"), 1), (Some("south"), 2), (None, 3)]);
    write(&wh.warehouse, table, &first, WriteOptions::default())
        .await
        .expect("first write");
    assert_eq!(
        contents(&wh.warehouse, table).await,
        ["north|1", "south|2", "∅|3"]
    );
    // South is recomputed, east is new; north and the NULL region stay.
    let second = sales(&[(Some("south"), 20), (Some("south"), 21), (Some("east"), 4)]);
    write(&wh.warehouse, table, &second, WriteOptions::default())
        .await
        .expect("second write");
    assert_eq!(
        contents(&wh.warehouse, table).await,
        ["east|4", "north|1", "south|20", "south|21", "∅|3"]
    );
    // The NULL partition is one like the others.
    write(
        &wh.warehouse,
        table,
        &sales(&[(None, 30)]),
        WriteOptions::default(),
    )
    .await
    .expect("third write");
    assert_eq!(
        contents(&wh.warehouse, table).await,
        ["east|4", "north|1", "south|20", "south|21", "∅|30"]
    );
    // No rows: no partition replaced.
    write(&wh.warehouse, table, &sales(&[]), WriteOptions::default())
        .await
        .expect("empty write");
    assert_eq!(contents(&wh.warehouse, table).await.len(), 5);
}

#[tokio::test]
async fn a_large_write_encodes_each_partition_in_one_file() {
    let wh = TempWarehouse::new();
    let table = SalesByRegion::DEF;
    let regions = ["north", "south", "east"];
    // Enough rows for the parallel encoders.
    let rows: Vec<Sale<'static>> = (0..200_000)
        .map(|n| Sale {
            region: Some(regions[n % 3]),
            amount: n as i64,
        })
        .collect();
    write(&wh.warehouse, table, &rows, WriteOptions::default())
        .await
        .expect("write");
    assert_eq!(crate::common::data_files(&wh.warehouse, table).await, 3);
    let counts = crate::common::query(
        &wh.warehouse,
        &[table],
        "SELECT region, count(*) FROM gold.sales_by_region GROUP BY region",
    )
    .await;
    assert_eq!(counts, ["east|66666", "north|66667", "south|66667"]);
}

/// `SalesUnpartitioned` declared partitioned, written by a write that replaces the table.
#[derive(Table)]
#[table(schema = "gold", name = "sales_by_region", partition_by(region), mode = overwrite,
        evolution = overwrite)]
pub struct SalesRepartitioned {
    pub region: Option<String>,
    pub amount: i64,
}

#[tokio::test]
async fn a_write_replacing_the_table_lays_it_out_by_the_declared_partitions() {
    let wh = TempWarehouse::new();
    let rows = sales(&[(Some("north"), 1), (Some("south"), 2)]);
    write(
        &wh.warehouse,
        SalesUnpartitioned::DEF,
        &rows,
        WriteOptions::default(),
    )
    .await
    .expect("write");
    write(
        &wh.warehouse,
        SalesRepartitioned::DEF,
        &rows,
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let delta = wh
        .warehouse
        .load(SalesRepartitioned::DEF)
        .await
        .expect("load")
        .expect("a table");
    let partitioned = delta
        .snapshot()
        .expect("snapshot")
        .metadata()
        .partition_columns()
        .to_vec();
    assert_eq!(partitioned, ["region"]);
    assert_eq!(
        contents(&wh.warehouse, SalesByRegion::DEF).await,
        ["north|1", "south|2"]
    );
}

#[tokio::test]
async fn a_full_snapshot_replaces_every_partition() {
    let wh = TempWarehouse::new();
    let table = SalesByRegion::DEF;
    north_and_south(&wh, table).await;
    // Every row: the south, missing from it, goes.
    let snapshot = WriteOptions {
        deletions: lakehouse_runtime::store::Deletions::MissingFromSource,
        ..WriteOptions::default()
    };
    write(
        &wh.warehouse,
        table,
        &sales(&[(Some("north"), 3)]),
        snapshot,
    )
    .await
    .expect("write");
    assert_eq!(contents(&wh.warehouse, table).await, ["north|3"]);
}

#[tokio::test]
async fn an_empty_partition_value_is_null_and_replaced_as_such() {
    let wh = TempWarehouse::new();
    // Delta keeps no empty partition value: it reads back as NULL, on either write path, and a
    // partition overwrite replaces it (delta-rs's, matching `''`, added the rows again).
    for table in [SalesByRegion::DEF, CheckedSales::DEF] {
        for _ in 0..2 {
            write(
                &wh.warehouse,
                table,
                &sales(&[(Some(""), 1), (Some("north"), 2)]),
                WriteOptions::default(),
            )
            .await
            .expect("write");
        }
        assert_eq!(
            contents(&wh.warehouse, table).await,
            ["north|2", "∅|1"],
            "{}",
            table.qualified_name()
        );
    }
    // Not in a NOT NULL partition column: an error naming it, not retried.
    #[derive(Serialize)]
    struct DaySale {
        day: Date,
        region: &'static str,
        amount: i64,
    }
    let error = write(
        &wh.warehouse,
        SalesByDayRegion::DEF,
        &[DaySale {
            day: Date::from_ymd(2026, 11, 1).expect("a date"),
            region: "",
            amount: 1,
        }],
        WriteOptions::default(),
    )
    .await
    .expect_err("an empty region");
    assert!(
        error.to_string().contains(
            "column `gold.sales_by_day_region.region` is a NOT NULL partition column, and the \
             pipeline produced an empty string in it"
        ) && !error.is_retryable(),
        "{error}"
    );
}

#[tokio::test]
async fn an_ordered_output_keeps_its_order_within_each_partition() {
    use datafusion::prelude::col;
    let wh = TempWarehouse::new();
    let table = SalesByRegion::DEF;
    let regions = ["north", "south"];
    let rows: Vec<Sale<'static>> = (0..200_000)
        .map(|n| Sale {
            region: Some(regions[n % 2]),
            amount: n as i64,
        })
        .collect();
    let session = wh.warehouse.session();
    let sorted = crate::common::frame(&session, table, &rows)
        .sort(vec![col("amount").sort(false, false)])
        .expect("sort");
    wh.warehouse
        .write(&session, table, sorted, WriteOptions::default())
        .await
        .expect("write");
    // Each partition's file holds its amounts in the output's order, as written.
    for region in regions {
        let folder =
            crate::common::table_folder(&wh.warehouse, table).join(format!("region={region}"));
        let file = std::fs::read_dir(&folder)
            .expect("a partition folder")
            .map(|entry| entry.expect("entry").path())
            .find(|path| path.extension().is_some_and(|e| e == "parquet"))
            .expect("a file");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&file).expect("open"),
        )
        .expect("a Parquet file")
        .build()
        .expect("reader");
        let amounts: Vec<i64> = reader
            .flat_map(|batch| {
                let batch = batch.expect("batch");
                let column = batch.column_by_name("amount").expect("amount").clone();
                column
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .expect("i64")
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(amounts.len(), 100_000, "{region}");
        assert!(
            amounts.windows(2).all(|w| w[0] > w[1]),
            "{region}: not descending"
        );
    }
}

#[tokio::test]
async fn rows_of_many_partitions_in_any_order_make_one_file_each() {
    let wh = TempWarehouse::new();
    let table = SalesByRegion::DEF;
    let regions: Vec<String> = (0..1000).map(|r| format!("r{r:04}")).collect();
    // Interleaved: a writer sees every partition again and again (NULLs among them). Each
    // writer sorts its rows, and writes one partition at a time.
    let rows: Vec<Sale<'_>> = (0..200_000)
        .map(|n| Sale {
            region: (n % 101 != 0).then(|| regions[n % 1000].as_str()),
            amount: n as i64,
        })
        .collect();
    write(&wh.warehouse, table, &rows, WriteOptions::default())
        .await
        .expect("write");
    assert_eq!(crate::common::data_files(&wh.warehouse, table).await, 1001);
    let counts = crate::common::query(
        &wh.warehouse,
        &[table],
        "SELECT count(DISTINCT region), count(*), count(*) FILTER (WHERE region IS NULL), \
         sum(amount) FROM gold.sales_by_region",
    )
    .await;
    assert_eq!(counts, ["1000|200000|1981|19999900000"]);
}

#[tokio::test]
async fn partitions_of_two_columns_are_replaced_by_both_values() {
    #[derive(Serialize)]
    struct DaySale {
        day: Date,
        region: &'static str,
        amount: i64,
    }
    let day = |d: u32| Date::from_ymd(2026, 11, d).expect("a date");
    let wh = TempWarehouse::new();
    let table = SalesByDayRegion::DEF;
    let first = [
        DaySale {
            day: day(1),
            region: "north",
            amount: 1,
        },
        DaySale {
            day: day(1),
            region: "south",
            amount: 2,
        },
        DaySale {
            day: day(2),
            region: "north",
            amount: 3,
        },
    ];
    write(&wh.warehouse, table, &first, WriteOptions::default())
        .await
        .expect("first write");
    // (1 Nov, north) and (2 Nov, south): (1 Nov, south) and (2 Nov, north) stay.
    let second = [
        DaySale {
            day: day(1),
            region: "north",
            amount: 10,
        },
        DaySale {
            day: day(2),
            region: "south",
            amount: 40,
        },
    ];
    write(&wh.warehouse, table, &second, WriteOptions::default())
        .await
        .expect("second write");
    assert_eq!(
        contents(&wh.warehouse, table).await,
        [
            "2026-11-01|north|10",
            "2026-11-01|south|2",
            "2026-11-02|north|3",
            "2026-11-02|south|40"
        ]
    );
}

#[tokio::test]
async fn an_unpartitioned_stored_table_is_refused_and_kept() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        SalesUnpartitioned::DEF,
        &sales(&[(Some("north"), 1)]),
        WriteOptions::default(),
    )
    .await
    .expect("unpartitioned write");
    let error = write(
        &wh.warehouse,
        SalesByRegion::DEF,
        &sales(&[(Some("south"), 2)]),
        WriteOptions::default(),
    )
    .await
    .expect_err("not partitioned in storage");
    assert!(
        error.to_string().contains(
            "gold.sales_by_region: declared partitioned by (region), but the Delta table is \
             unpartitioned; a table is not repartitioned in place"
        ),
        "{error}"
    );
    assert_eq!(
        contents(&wh.warehouse, SalesUnpartitioned::DEF).await,
        ["north|1"]
    );
}

#[tokio::test]
async fn a_partitioned_table_declared_unpartitioned_is_refused_and_checked() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        SalesByRegion::DEF,
        &sales(&[(Some("north"), 1)]),
        WriteOptions::default(),
    )
    .await
    .expect("partitioned write");
    // `orchestrate check` sees it before a write fails on it.
    crate::common::incompatible_drift(&wh.warehouse, SalesUnpartitioned::DEF).await;
    let error = write(
        &wh.warehouse,
        SalesUnpartitioned::DEF,
        &sales(&[(Some("south"), 2)]),
        WriteOptions::default(),
    )
    .await
    .expect_err("partitioned in storage");
    assert!(
        error.to_string().contains(
            "gold.sales_by_region: declared unpartitioned, but the Delta table is partitioned \
             by (region)"
        ),
        "{error}"
    );
    assert_eq!(
        contents(&wh.warehouse, SalesByRegion::DEF).await,
        ["north|1"]
    );
}

#[tokio::test]
async fn a_table_with_a_check_constraint_is_overwritten_by_partition_too() {
    let wh = TempWarehouse::new();
    let table = CheckedSales::DEF;
    let first = sales(&[(Some("north"), 1), (Some("south"), 2)]);
    write(&wh.warehouse, table, &first, WriteOptions::default())
        .await
        .expect("first write");
    write(
        &wh.warehouse,
        table,
        &sales(&[(Some("south"), 3)]),
        WriteOptions::default(),
    )
    .await
    .expect("second write");
    assert_eq!(contents(&wh.warehouse, table).await, ["north|1", "south|3"]);
    // The constraint still holds: a violating row fails the write, which leaves the table.
    let error = write(
        &wh.warehouse,
        table,
        &sales(&[(Some("north"), -1)]),
        WriteOptions::default(),
    )
    .await
    .expect_err("violates the constraint");
    assert!(
        error
            .to_string()
            .contains("gold.checked_sales: at least 1 row(s) of the write fail its CHECK"),
        "{error}"
    );
    assert_eq!(contents(&wh.warehouse, table).await, ["north|1", "south|3"]);
}

#[tokio::test]
async fn a_constrained_table_keeps_the_partitions_between_many_it_replaces() {
    // Past 20 values, the partitions replaced were given to delta-rs as ranges: every stored
    // partition between two written ones was deleted with them.
    let wh = TempWarehouse::new();
    let table = CheckedSales::DEF;
    let region = |n: i64| format!("r{n:02}");
    let all: Vec<(String, i64)> = (0..50).map(|n| (region(n), n + 1)).collect();
    let rows = |pairs: &[(String, i64)]| {
        let pairs: Vec<(Option<&'static str>, i64)> = pairs
            .iter()
            .map(|(region, amount)| {
                let region: &'static str = Box::leak(region.clone().into_boxed_str());
                (Some(region), *amount)
            })
            .collect();
        sales(&pairs)
    };
    write(&wh.warehouse, table, &rows(&all), WriteOptions::default())
        .await
        .expect("first write");
    // The even regions again, 25 of them, with new amounts.
    let even: Vec<(String, i64)> = (0..50).step_by(2).map(|n| (region(n), 100 + n)).collect();
    write(&wh.warehouse, table, &rows(&even), WriteOptions::default())
        .await
        .expect("second write");
    let stored = contents(&wh.warehouse, table).await;
    assert_eq!(stored.len(), 50, "{stored:?}");
    assert!(stored.contains(&"r01|2".to_owned()), "{stored:?}");
    assert!(stored.contains(&"r02|102".to_owned()), "{stored:?}");
    assert!(!stored.contains(&"r02|3".to_owned()), "{stored:?}");
}

#[tokio::test]
async fn timestamp_and_decimal_partitions_are_matched_by_value() {
    #[derive(Serialize)]
    struct Priced {
        hour: Timestamp,
        price: Decimal<6, 2>,
        n: i64,
    }
    let wh = TempWarehouse::new();
    let table = PricedHours::DEF;
    let hour = |h: &str| Timestamp::parse(&format!("2026-11-01T{h}:00:00Z")).expect("time");
    let first = [
        Priced {
            hour: hour("06"),
            price: Decimal(150),
            n: 1,
        },
        Priced {
            hour: hour("07"),
            price: Decimal(150),
            n: 2,
        },
    ];
    write(&wh.warehouse, table, &first, WriteOptions::default())
        .await
        .expect("first write");
    let second = [Priced {
        hour: hour("06"),
        price: Decimal(150),
        n: 10,
    }];
    write(&wh.warehouse, table, &second, WriteOptions::default())
        .await
        .expect("second write");
    assert_eq!(
        contents(&wh.warehouse, table).await,
        [
            "2026-11-01T06:00:00Z|1.50|10",
            "2026-11-01T07:00:00Z|1.50|2"
        ]
    );
}

#[tokio::test]
async fn a_new_not_null_column_is_refused_since_other_partitions_keep_their_rows() {
    let wh = TempWarehouse::new();
    let table = SalesByRegion::DEF;
    north_and_south(&wh, table).await;
    let version = wh.warehouse.version(table).await.expect("version");
    #[derive(Serialize)]
    struct Priced {
        region: Option<&'static str>,
        amount: i64,
        currency: &'static str,
    }
    let south = [Priced {
        region: Some("south"),
        amount: 20,
        currency: "EUR",
    }];
    let error = write(
        &wh.warehouse,
        SalesByRegionWithCurrency::DEF,
        &south,
        WriteOptions::default(),
    )
    .await
    .expect_err("north's row has no currency");
    assert!(
        error
            .to_string()
            .contains("column `currency` is new and declared NOT NULL"),
        "{error}"
    );
    assert_eq!(wh.warehouse.version(table).await.expect("version"), version);
    assert_eq!(contents(&wh.warehouse, table).await, ["north|1", "south|2"]);
    // `check` says as much, unless the table's pipeline writes full snapshots.
    let refused = |full_snapshot| {
        let warehouse = &wh.warehouse;
        async move {
            let health = warehouse
                .health_of_output(SalesByRegionWithCurrency::DEF, full_snapshot)
                .await
                .expect("health");
            let currency: Vec<_> = health
                .drift
                .iter()
                .filter(|d| d.column == "currency")
                .collect();
            assert_eq!(currency.len(), 1, "{:?}", health.drift);
            currency[0].is_incompatible()
        }
    };
    assert!(refused(false).await);
    assert!(!refused(true).await);
    let snapshot = WriteOptions {
        deletions: lakehouse_runtime::store::Deletions::MissingFromSource,
        ..WriteOptions::default()
    };
    write(
        &wh.warehouse,
        SalesByRegionWithCurrency::DEF,
        &south,
        snapshot,
    )
    .await
    .expect("every row replaced");
    assert_eq!(
        contents(&wh.warehouse, SalesByRegionWithCurrency::DEF).await,
        ["south|20|EUR"]
    );
}

#[tokio::test]
async fn a_new_check_the_stored_rows_fail_blocks_only_writes_that_keep_them() {
    let wh = TempWarehouse::new();
    north_and_south(&wh, SalesByRegion::DEF).await;
    let table = SalesByRegionLarge::DEF;
    // An ordinary write keeps the other partitions' rows, which fail it; a full snapshot's
    // replaces them all, and the check is added after its rows are counted.
    let blocked = |full_snapshot| {
        let warehouse = &wh.warehouse;
        async move {
            warehouse
                .health_of_output(table, full_snapshot)
                .await
                .expect("health")
                .blocked_checks
                .into_iter()
                .map(|blocked| blocked.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(blocked(false).await, ["large"]);
    assert_eq!(blocked(true).await, Vec::<String>::new());
    let snapshot = WriteOptions {
        deletions: lakehouse_runtime::store::Deletions::MissingFromSource,
        ..WriteOptions::default()
    };
    write(
        &wh.warehouse,
        table,
        &sales(&[(Some("south"), 20)]),
        snapshot,
    )
    .await
    .expect("every row replaced, then the check added");
    assert_eq!(contents(&wh.warehouse, table).await, ["south|20"]);
}

#[tokio::test]
async fn a_vacuum_deletes_and_lists_the_replaced_files_of_partitions_with_encoded_names() {
    // A partition value with a space and a colon is percent-encoded in its folder's name:
    // encoded twice, the replaced files were taken as gone, neither listed nor vacuumed.
    let wh = TempWarehouse::new();
    let table = SalesByRegion::DEF;
    for amount in [1, 2] {
        write(
            &wh.warehouse,
            table,
            &sales(&[(Some("San Francisco: Bay"), amount)]),
            WriteOptions::default(),
        )
        .await
        .expect("write");
    }
    let zero = Some(std::time::Duration::ZERO);
    let listed = wh
        .warehouse
        .vacuum(table, zero, true, true)
        .await
        .expect("a dry run");
    assert_eq!(listed.files.len(), 1, "{listed:?}");
    let done = wh
        .warehouse
        .vacuum(table, zero, false, true)
        .await
        .expect("vacuum");
    assert_eq!(done.files, listed.files);
    let again = wh
        .warehouse
        .vacuum(table, zero, true, true)
        .await
        .expect("again");
    assert!(again.files.is_empty(), "{again:?}");
    assert_eq!(
        contents(&wh.warehouse, table).await,
        ["San Francisco: Bay|2"]
    );
}
