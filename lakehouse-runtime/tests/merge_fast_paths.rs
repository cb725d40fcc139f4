//! A merge whose source keys are unique is streamed without de-duplicating the source, and into a
//! table without rows its rows are appended (one commit recorded as a MERGE); repeated keys fall
//! back to the de-duplicating MERGE.
//! The table contents are the same either way.

use futures::StreamExt as _;
use lakehouse_runtime::prelude::*;
use lakehouse_runtime::store::WriteOptions;
use serde::Serialize;

use crate::common::{TempWarehouse, contents, write};

/// Merged on (id, line).
#[derive(Table, Serialize, Clone)]
#[table(schema = "fast", name = "sales", key(id, line), mode = merge)]
pub struct Sale {
    pub id: i64,
    pub line: i32,
    pub amount: Option<i64>,
}

fn sale(id: i64, line: i32, amount: Option<i64>) -> Sale {
    Sale { id, line, amount }
}

/// The operation of the table's latest commit (`WRITE`, `MERGE`, ...).
async fn last_operation(wh: &TempWarehouse) -> String {
    let delta = wh
        .warehouse
        .load(Sale::DEF)
        .await
        .expect("load")
        .expect("exists");
    let mut history = delta.history(Some(1));
    let commit = history.next().await.expect("a commit").expect("readable");
    commit.operation.unwrap_or_default()
}

#[tokio::test]
async fn unique_keys_into_an_empty_table_are_appended() {
    let wh = TempWarehouse::new();
    let rows = vec![sale(1, 1, Some(10)), sale(1, 2, None), sale(2, 1, Some(20))];
    let outcome = write(&wh.warehouse, Sale::DEF, &rows, WriteOptions::default())
        .await
        .expect("write");
    assert!(outcome.committed);
    assert_eq!(outcome.rows_inserted, 3);
    // Recorded as the MERGE it stands for (reading the whole table: a concurrent first write
    // conflicts).
    assert_eq!(last_operation(&wh).await, "MERGE");
    assert_eq!(
        contents(&wh.warehouse, Sale::DEF).await,
        vec!["1|1|10", "1|2|∅", "2|1|20"]
    );

    // The next batch updates and inserts through the MERGE.
    let rows = vec![sale(1, 2, Some(12)), sale(3, 1, Some(30))];
    let outcome = write(&wh.warehouse, Sale::DEF, &rows, WriteOptions::default())
        .await
        .expect("merge");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (1, 1));
    assert_eq!(last_operation(&wh).await, "MERGE");
    assert_eq!(
        contents(&wh.warehouse, Sale::DEF).await,
        vec!["1|1|10", "1|2|12", "2|1|20", "3|1|30"]
    );
}

#[tokio::test]
async fn repeated_keys_into_an_empty_table_are_deduplicated() {
    let wh = TempWarehouse::new();
    // (1, 1) twice: the row that sorts last by the non-key columns wins, NULLs first.
    let rows = vec![
        sale(1, 1, Some(10)),
        sale(2, 1, Some(20)),
        sale(1, 1, Some(11)),
        sale(1, 1, None),
    ];
    let outcome = write(&wh.warehouse, Sale::DEF, &rows, WriteOptions::default())
        .await
        .expect("write");
    assert!(outcome.committed);
    assert_eq!(last_operation(&wh).await, "MERGE");
    assert_eq!(
        contents(&wh.warehouse, Sale::DEF).await,
        vec!["1|1|11", "2|1|20"]
    );
}

#[tokio::test]
async fn repeated_keys_into_a_table_with_rows_are_deduplicated() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        Sale::DEF,
        &[sale(1, 1, Some(1)), sale(2, 1, Some(2))],
        WriteOptions::default(),
    )
    .await
    .expect("first write");
    let rows = vec![sale(2, 1, Some(5)), sale(2, 1, Some(4)), sale(3, 1, None)];
    let outcome = write(&wh.warehouse, Sale::DEF, &rows, WriteOptions::default())
        .await
        .expect("merge");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (1, 1));
    assert_eq!(
        contents(&wh.warehouse, Sale::DEF).await,
        vec!["1|1|1", "2|1|5", "3|1|∅"]
    );
}

#[tokio::test]
async fn a_replayed_append_into_an_empty_table_is_skipped() {
    let wh = TempWarehouse::new();
    let options = || WriteOptions {
        transaction: Some(("fast_sales".to_owned(), 7)),
        ..WriteOptions::default()
    };
    let rows = vec![sale(1, 1, Some(10))];
    assert!(
        write(&wh.warehouse, Sale::DEF, &rows, options())
            .await
            .expect("write")
            .committed
    );
    assert!(
        !write(&wh.warehouse, Sale::DEF, &rows, options())
            .await
            .expect("replay")
            .committed
    );
    assert_eq!(contents(&wh.warehouse, Sale::DEF).await, vec!["1|1|10"]);
}

/// Contacts merged on `id`, with the run that wrote each row.
#[derive(Table, Serialize, Clone)]
#[table(schema = "fast", name = "contacts", key(id), mode = merge)]
pub struct Contact {
    pub id: i64,
    pub title: Option<String>,
    pub run_at: Timestamp,
}

fn contact(id: i64, title: &str, day: i64) -> Contact {
    Contact {
        id,
        title: Some(title.to_owned()),
        run_at: Timestamp(day * 86_400_000_000),
    }
}

#[tokio::test]
async fn repeated_keys_keep_the_newest_run() {
    let wh = TempWarehouse::new();
    // An incremental read after a failed run: two runs' rows of each key. The newer wins,
    // although the older sorts last by its other columns.
    let rows = vec![
        contact(1, "Manager", 3),
        contact(1, "Director", 4),
        contact(2, "Sales Rep", 4),
        contact(2, "Analyst", 3),
    ];
    write(&wh.warehouse, Contact::DEF, &rows, WriteOptions::default())
        .await
        .expect("write");
    assert_eq!(
        contents(&wh.warehouse, Contact::DEF).await,
        vec![
            "1|Director|1970-01-05T00:00:00Z",
            "2|Sales Rep|1970-01-05T00:00:00Z"
        ]
    );
}

#[tokio::test]
async fn latest_only_holds_the_maximum_not_the_rows() {
    let wh = crate::common::TempWarehouse::new();
    let session = wh.warehouse.session();
    let rows = vec![contact(1, "Manager", 3), contact(1, "Director", 4)];
    let extracts =
        Frame::<Contact>::from_dataframe(crate::common::frame(&session, Contact::DEF, &rows))
            .expect("frame");
    let plan = extracts
        .latest_only(Contact::run_at)
        .expect("plan")
        .dataframe()
        .clone()
        .create_physical_plan()
        .await
        .expect("physical plan");
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    // The hash join's first input is the one it holds in memory.
    let lines: Vec<&str> = text.lines().collect();
    let join = lines
        .iter()
        .position(|l| l.contains("HashJoinExec"))
        .unwrap_or_else(|| panic!("a hash join:\n{text}"));
    assert!(lines[join + 1].contains("AggregateExec"), "{text}");
}

#[tokio::test]
async fn latest_only_keeps_the_newest_extract() {
    let session = datafusion::prelude::SessionContext::new();
    let rows = vec![
        contact(1, "Manager", 3),
        contact(9, "Leaving", 3),
        contact(1, "Director", 4),
        contact(2, "Sales Rep", 4),
    ];
    let extracts =
        Frame::<Contact>::from_dataframe(crate::common::frame(&session, Contact::DEF, &rows))
            .expect("frame");
    let newest = extracts.latest_only(Contact::run_at).expect("plan");
    let batches = newest.collect().await.expect("rows");
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("ids")
                .values()
                .to_vec()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2]);
}

#[tokio::test]
async fn merging_no_rows_into_an_empty_table_makes_no_commit() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let none: [Sale; 0] = [];
    let outcome = wh
        .warehouse
        .write(
            &session,
            Sale::DEF,
            crate::common::frame(&session, Sale::DEF, &none),
            WriteOptions::default(),
        )
        .await
        .expect("nothing to merge");
    // Created (version 0), and nothing committed on it: a MERGE of no rows counted as a write
    // of data (a table's freshness) and as a version for readers to read.
    assert_eq!((outcome.version, outcome.rows_inserted), (Some(0), 0));
    assert_eq!(
        wh.warehouse.version(Sale::DEF).await.expect("version"),
        Some(0)
    );
}

#[tokio::test]
#[ignore = "writes 4 million rows: about 50 s in a debug build (`cargo test -- --ignored`)"]
async fn a_first_load_repeating_keys_streams_into_the_empty_table() {
    let wh = TempWarehouse::new();
    // 64 MiB for operators: the key check finds the repeat at once, and the rows (about 80 MB)
    // were then held in memory by the general merge, which refused them past the limit; a
    // sort, which spills, takes them.
    let outcome = first_load_within(
        &wh,
        64 << 20,
        "SELECT CASE WHEN value = 1 THEN 0 ELSE value END AS id, CAST(1 AS INT) AS line, \
         value AS amount FROM generate_series(0, 3999999)",
    )
    .await;
    assert_eq!(outcome.rows_inserted, 3_999_999);
    assert_eq!(last_operation(&wh).await, "MERGE");
    // The repeated key keeps the row that sorts last by its other columns, as a merge does.
    let stored = crate::common::query(
        &wh.warehouse,
        &[Sale::DEF],
        "SELECT count(*), count(DISTINCT id), max(CASE WHEN id = 0 THEN amount END) FROM fast.sales",
    )
    .await;
    assert_eq!(stored, ["3999999|3999999|1"]);
}

#[tokio::test]
#[ignore = "writes 4 million rows: about 50 s in a debug build (`cargo test -- --ignored`)"]
async fn keys_too_many_to_check_in_memory_still_stream_into_an_empty_table() {
    let wh = TempWarehouse::new();
    // 32 MiB for operators: the key check (about 10 bytes a key) gives up past ~3 million keys,
    // and the rows are de-duplicated by a sort (which spills), then appended as before.
    let outcome = first_load_within(
        &wh,
        32 << 20,
        "SELECT value AS id, CAST(1 AS INT) AS line, value AS amount \
         FROM generate_series(0, 3999999)",
    )
    .await;
    assert_eq!(outcome.rows_inserted, 4_000_000);
    assert_eq!(last_operation(&wh).await, "MERGE");
    let stored = crate::common::query(
        &wh.warehouse,
        &[Sale::DEF],
        "SELECT count(*), count(DISTINCT id) FROM fast.sales",
    )
    .await;
    assert_eq!(stored, ["4000000|4000000"]);
}

/// Writes the rows of `query` into `fast.sales` of `wh`, empty, with `limit` bytes for operators.
async fn first_load_within(
    wh: &TempWarehouse,
    limit: usize,
    query: &str,
) -> lakehouse_runtime::store::WriteOutcome {
    let location = wh.dir.path().join("warehouse");
    let limited = lakehouse_runtime::Warehouse::open(location.to_str().expect("utf-8 path"))
        .expect("warehouse")
        .with_memory_limit(Some(limit))
        .expect("memory limit");
    let session = limited.session();
    let source = session.sql(query).await.expect("a source");
    limited
        .write(&session, Sale::DEF, source, WriteOptions::default())
        .await
        .expect("written within the limit")
}
