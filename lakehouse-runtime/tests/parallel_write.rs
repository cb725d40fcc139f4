//! Appends and overwrites of unpartitioned tables are encoded by one Parquet writer per core and
//! committed once: the rows, versions, operation and idempotency are those of any write; a small
//! write stays one file.

use datafusion::dataframe::DataFrame;
use futures::StreamExt as _;
use lakehouse_runtime::prelude::*;
use lakehouse_runtime::store::WriteOptions;
use lakehouse_runtime::{TableDef, Warehouse};

use crate::common::{TempWarehouse, render, two_writer_session};

/// Appended events.
#[derive(Table)]
#[table(schema = "par", name = "events", mode = append)]
pub struct Event {
    pub id: i64,
    pub kind: String,
}

/// A snapshot, replaced by each write.
#[derive(Table)]
#[table(schema = "par", name = "latest", mode = overwrite)]
pub struct Latest {
    pub id: i64,
    pub kind: String,
}

/// More rows than one encoder takes alone, produced by one stream.
const MANY: i64 = 300_000;

/// `rows` generated rows, `kind` NULL on row `null_at` if given.
async fn generated(warehouse: &Warehouse, rows: i64, null_at: Option<i64>) -> DataFrame {
    let null_at = null_at.unwrap_or(-1);
    let sql = format!(
        "SELECT value AS id, CASE WHEN value = {null_at} THEN NULL \
         ELSE CAST(value % 7 AS VARCHAR) END AS kind FROM generate_series(1, {rows})"
    );
    let session = two_writer_session(warehouse).await;
    session.sql(&sql).await.expect("generated rows")
}

/// (files in the table, its version, the latest commit's operation).
async fn layout(warehouse: &Warehouse, table: &'static TableDef) -> (usize, Option<u64>, String) {
    let delta = warehouse.load(table).await.expect("load").expect("exists");
    let files = delta.snapshot().expect("snapshot").log_data().num_files();
    let mut history = delta.history(Some(1));
    let commit = history.next().await.expect("a commit").expect("readable");
    (files, delta.version(), commit.operation.unwrap_or_default())
}

async fn summary(warehouse: &Warehouse, table: &str) -> Vec<String> {
    let sql =
        format!("SELECT count(*), count(DISTINCT id), sum(id), min(kind), max(kind) FROM {table}");
    render(
        warehouse
            .sql(&[Event::DEF, Latest::DEF, Kind::DEF], &sql)
            .await
            .expect("query"),
    )
    .await
}

fn transaction(version: i64) -> WriteOptions {
    WriteOptions {
        transaction: Some(("parallel-test".into(), version)),
        ..WriteOptions::default()
    }
}

#[tokio::test]
async fn a_large_append_is_encoded_in_parallel_and_committed_once() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let source = generated(&wh.warehouse, MANY, None).await;
    let outcome = wh
        .warehouse
        .write(&session, Event::DEF, source, transaction(1))
        .await
        .expect("append");
    assert!(outcome.committed);
    assert_eq!(outcome.rows_inserted, MANY as u64);
    let (files, version, operation) = layout(&wh.warehouse, Event::DEF).await;
    // Version 0 created the table; one commit added every file.
    assert_eq!(version, Some(1));
    assert_eq!(outcome.version, Some(1));
    assert_eq!(operation, "WRITE");
    assert!(files >= 2, "one file per encoder expected, found {files}");
    let expected_sum = MANY * (MANY + 1) / 2;
    assert_eq!(
        summary(&wh.warehouse, "par.events").await,
        vec![format!("{MANY}|{MANY}|{expected_sum}|0|6")]
    );

    // The same transaction again: nothing written.
    let again = generated(&wh.warehouse, MANY, None).await;
    let replay = wh
        .warehouse
        .write(&session, Event::DEF, again, transaction(1))
        .await
        .expect("replay");
    assert!(!replay.committed);
    assert_eq!(layout(&wh.warehouse, Event::DEF).await.1, Some(1));
}

#[tokio::test]
async fn an_overwrite_replaces_every_file_and_a_small_one_is_one_file() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let large = generated(&wh.warehouse, MANY, None).await;
    wh.warehouse
        .write(&session, Latest::DEF, large, WriteOptions::default())
        .await
        .expect("first overwrite");
    assert!(layout(&wh.warehouse, Latest::DEF).await.0 >= 2);

    let small = generated(&wh.warehouse, 3, None).await;
    let outcome = wh
        .warehouse
        .write(&session, Latest::DEF, small, WriteOptions::default())
        .await
        .expect("second overwrite");
    assert_eq!(outcome.rows_inserted, 3);
    let (files, version, operation) = layout(&wh.warehouse, Latest::DEF).await;
    assert_eq!((files, version, operation.as_str()), (1, Some(2), "WRITE"));
    assert_eq!(
        render(
            wh.warehouse
                .sql(&[Latest::DEF], "SELECT id, kind FROM par.latest")
                .await
                .expect("query")
        )
        .await,
        vec!["1|1", "2|2", "3|3"]
    );
}

#[tokio::test]
async fn a_null_in_a_not_null_column_fails_the_parallel_write_and_changes_nothing() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let first = generated(&wh.warehouse, 10, None).await;
    wh.warehouse
        .write(&session, Event::DEF, first, WriteOptions::default())
        .await
        .expect("first append");
    let before = layout(&wh.warehouse, Event::DEF).await;

    let bad = generated(&wh.warehouse, MANY, Some(MANY - 5)).await;
    let error = wh
        .warehouse
        .write(&session, Event::DEF, bad, WriteOptions::default())
        .await
        .expect_err("a NULL kind must fail the write")
        .to_string();
    assert!(
        error.contains("kind"),
        "the error names the column: {error}"
    );
    assert_eq!(layout(&wh.warehouse, Event::DEF).await, before);
    assert_eq!(
        summary(&wh.warehouse, "par.events").await,
        vec!["10|10|55|0|6"]
    );
}

/// A dimension of kinds.
#[derive(Table)]
#[table(schema = "par", name = "kinds", mode = overwrite)]
pub struct Kind {
    pub kind: String,
    pub label: String,
}

#[tokio::test]
async fn a_large_join_is_encoded_in_parallel_whatever_its_estimate() {
    let wh = TempWarehouse::new();
    let session = two_writer_session(&wh.warehouse).await;
    let events = generated(&wh.warehouse, MANY, None).await;
    wh.warehouse
        .write(&session, Event::DEF, events, WriteOptions::default())
        .await
        .expect("events");
    let kinds = session
        .sql("SELECT CAST(value AS VARCHAR) AS kind, 'k' || CAST(value AS VARCHAR) AS label FROM generate_series(0, 6)")
        .await
        .expect("kinds");
    wh.warehouse
        .write(&session, Kind::DEF, kinds, WriteOptions::default())
        .await
        .expect("kinds");
    // Tables with Delta statistics (no distinct counts): the planner estimates the join's output
    // at the dimension's size, which must not make the write one file.
    let kinds = wh
        .warehouse
        .read(&session, Kind::DEF)
        .await
        .expect("read")
        .alias("d")
        .expect("alias");
    let joined = wh
        .warehouse
        .read(&session, Event::DEF)
        .await
        .expect("read")
        .alias("e")
        .expect("alias")
        .join(
            kinds,
            datafusion::common::JoinType::Inner,
            &["kind"],
            &["kind"],
            None,
        )
        .expect("join")
        .select(vec![
            datafusion::prelude::col("e.id").alias("id"),
            datafusion::prelude::col("d.label").alias("kind"),
        ])
        .expect("select");
    let outcome = wh
        .warehouse
        .write(&session, Latest::DEF, joined, WriteOptions::default())
        .await
        .expect("overwrite");
    assert_eq!(outcome.rows_inserted, MANY as u64);
    let (files, _, _) = layout(&wh.warehouse, Latest::DEF).await;
    assert!(files >= 2, "one file per encoder expected, found {files}");
    let expected_sum = MANY * (MANY + 1) / 2;
    assert_eq!(
        summary(&wh.warehouse, "par.latest").await,
        vec![format!("{MANY}|{MANY}|{expected_sum}|k0|k6")]
    );
}
