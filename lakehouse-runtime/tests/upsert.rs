//! Upserts into unpartitioned merge tables rewrite only the files that hold a changed row, in
//! one `MERGE` commit; files without a change stay; an upsert changing nothing commits nothing;
//! a failed upsert commits nothing; a table with the change data feed keeps delta-rs's MERGE,
//! which records the changes (and skips unchanged rows too).

use std::collections::BTreeSet;

use futures::StreamExt as _;
use lakehouse_runtime::prelude::*;
use lakehouse_runtime::store::WriteOptions;
use lakehouse_runtime::{TableDef, Warehouse};
use serde::Serialize;

use crate::common::{TempWarehouse, contents, two_writer_session, write};

/// Merged on `id`.
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "accounts", key(id), mode = merge)]
pub struct Account {
    pub id: i64,
    pub balance: Option<i64>,
    pub owner: String,
}

/// The same, with the change data feed on.
#[derive(Table, Serialize, Clone)]
#[table(
    schema = "cow",
    name = "audited",
    key(id),
    mode = merge,
    property(key = "delta.enableChangeDataFeed", value = "true")
)]
pub struct Audited {
    pub id: i64,
    pub balance: Option<i64>,
    pub owner: String,
}

/// Merged on `id`, stamped with the run's time, a change only when `balance` changes.
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "ledgers", key(id), mode = merge, change_columns(balance))]
pub struct Ledger {
    pub id: i64,
    pub balance: Option<i64>,
    pub note: Option<String>,
    pub run_at: Timestamp,
}

/// [`Ledger`] with the change data feed on: merged by delta-rs.
#[derive(Table, Serialize, Clone)]
#[table(
    schema = "cow",
    name = "audited_ledgers",
    key(id),
    mode = merge,
    change_columns(balance),
    property(key = "delta.enableChangeDataFeed", value = "true")
)]
pub struct AuditedLedger {
    pub id: i64,
    pub balance: Option<i64>,
    pub note: Option<String>,
    pub run_at: Timestamp,
}

fn account(id: i64, balance: Option<i64>, owner: &str) -> Account {
    Account {
        id,
        balance,
        owner: owner.to_owned(),
    }
}

/// The table's data files (paths relative to the table).
async fn files(warehouse: &Warehouse, table: &'static TableDef) -> BTreeSet<String> {
    let delta = warehouse.load(table).await.expect("load").expect("exists");
    let state = delta.snapshot().expect("snapshot");
    state
        .log_data()
        .iter()
        .map(|f| f.path().into_owned())
        .collect()
}

/// The latest commit's operation and its `operationMetrics`.
async fn last_commit(
    warehouse: &Warehouse,
    table: &'static TableDef,
) -> (String, serde_json::Value) {
    let delta = warehouse.load(table).await.expect("load").expect("exists");
    let mut history = delta.history(Some(1));
    let commit = history.next().await.expect("a commit").expect("readable");
    let metrics = commit
        .info
        .get("operationMetrics")
        .cloned()
        .unwrap_or_default();
    (commit.operation.unwrap_or_default(), metrics)
}

#[tokio::test]
async fn an_upsert_rewrites_only_the_files_holding_a_matched_key() {
    let wh = TempWarehouse::new();
    let options = WriteOptions::default;
    // Three writes, three files: keys 1–3, 10–12 and 20–22.
    for first in [1, 10, 20] {
        let rows: Vec<Account> = (first..first + 3)
            .map(|id| account(id, Some(id * 100), "ann"))
            .collect();
        write(&wh.warehouse, Account::DEF, &rows, options())
            .await
            .expect("batch");
    }
    let before = files(&wh.warehouse, Account::DEF).await;
    assert_eq!(before.len(), 3);
    let version = wh.warehouse.version(Account::DEF).await.expect("version");
    // The second batch matched nothing: inserted, nothing removed, recorded as a MERGE.
    assert_eq!(last_commit(&wh.warehouse, Account::DEF).await.0, "MERGE");

    // Key 11 is updated (in the second file), key 30 is new.
    let rows = vec![account(11, None, "bob"), account(30, Some(3), "cy")];
    let outcome = write(&wh.warehouse, Account::DEF, &rows, options())
        .await
        .expect("upsert");
    assert!(outcome.committed);
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (1, 1));
    assert_eq!(outcome.version, version.map(|v| v + 1));

    let after = files(&wh.warehouse, Account::DEF).await;
    let kept: Vec<_> = before.intersection(&after).collect();
    assert_eq!(kept.len(), 2, "the first and third files stay: {after:?}");
    assert_eq!(after.len(), 3, "one file replaces the second: {after:?}");
    let (operation, metrics) = last_commit(&wh.warehouse, Account::DEF).await;
    assert_eq!(operation, "MERGE");
    assert_eq!(metrics["num_target_files_removed"], 1);
    assert_eq!(metrics["num_target_rows_updated"], 1);
    assert_eq!(metrics["num_target_rows_inserted"], 1);
    assert_eq!(metrics["num_target_rows_copied"], 2);
    assert_eq!(
        contents(&wh.warehouse, Account::DEF).await,
        // Sorted as text.
        vec![
            "10|1000|ann",
            "11|∅|bob",
            "12|1200|ann",
            "1|100|ann",
            "20|2000|ann",
            "21|2100|ann",
            "22|2200|ann",
            "2|200|ann",
            "30|3|cy",
            "3|300|ann",
        ]
    );
}

#[tokio::test]
async fn an_upsert_touching_every_file_rewrites_them_all_in_one_commit() {
    let wh = TempWarehouse::new();
    for first in [1, 10] {
        let rows: Vec<Account> = (first..first + 2)
            .map(|id| account(id, Some(id), "ann"))
            .collect();
        write(&wh.warehouse, Account::DEF, &rows, WriteOptions::default())
            .await
            .expect("batch");
    }
    let before = files(&wh.warehouse, Account::DEF).await;
    let rows = vec![account(2, Some(-2), "bob"), account(10, Some(-10), "bob")];
    let outcome = write(&wh.warehouse, Account::DEF, &rows, WriteOptions::default())
        .await
        .expect("upsert");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (0, 2));
    let after = files(&wh.warehouse, Account::DEF).await;
    assert!(before.is_disjoint(&after), "{before:?} → {after:?}");
    assert_eq!(
        last_commit(&wh.warehouse, Account::DEF).await.1["num_target_files_removed"],
        2
    );
    assert_eq!(
        contents(&wh.warehouse, Account::DEF).await,
        vec!["10|-10|bob", "11|11|ann", "1|1|ann", "2|-2|bob"]
    );
}

#[tokio::test]
async fn a_failed_upsert_commits_nothing() {
    let wh = TempWarehouse::new();
    let rows = vec![account(1, Some(1), "ann"), account(2, Some(2), "ann")];
    write(&wh.warehouse, Account::DEF, &rows, WriteOptions::default())
        .await
        .expect("first batch");
    let version = wh.warehouse.version(Account::DEF).await.expect("version");
    let before = files(&wh.warehouse, Account::DEF).await;

    // `owner` is NOT NULL: the row updating key 1 cannot be written.
    let session = wh.warehouse.session();
    let source = session
        .sql("SELECT CAST(1 AS BIGINT) AS id, CAST(5 AS BIGINT) AS balance, CAST(NULL AS VARCHAR) AS owner")
        .await
        .expect("source");
    let error = wh
        .warehouse
        .write(&session, Account::DEF, source, WriteOptions::default())
        .await
        .expect_err("a NULL owner must fail the upsert")
        .to_string();
    assert!(
        error.contains("owner"),
        "the error names the column: {error}"
    );
    assert_eq!(
        wh.warehouse.version(Account::DEF).await.expect("version"),
        version
    );
    assert_eq!(files(&wh.warehouse, Account::DEF).await, before);
    assert_eq!(
        contents(&wh.warehouse, Account::DEF).await,
        vec!["1|1|ann", "2|2|ann"]
    );
}

#[tokio::test]
async fn an_upsert_whose_source_exceeds_the_memory_limit_fails_naming_the_table() {
    let wh = TempWarehouse::new();
    let rows = vec![account(1, Some(1), "ann"), account(2, Some(2), "ann")];
    write(&wh.warehouse, Account::DEF, &rows, WriteOptions::default())
        .await
        .expect("first batch");
    let version = wh.warehouse.version(Account::DEF).await.expect("version");

    // The same warehouse with 1 MiB for operators, and a source of ~6 MB.
    let location = wh.dir.path().join("warehouse");
    let limited = Warehouse::open(location.to_str().expect("utf-8 path"))
        .expect("warehouse")
        .with_memory_limit(Some(1 << 20))
        .expect("memory limit");
    let owner = "x".repeat(150);
    let source: Vec<Account> = (1..=40_000)
        .map(|id| account(id, Some(id), &owner))
        .collect();
    let error = write(&limited, Account::DEF, &source, WriteOptions::default())
        .await
        .expect_err("the source exceeds the memory limit")
        .to_string();
    for expected in [
        "cow.accounts",
        "memory limit",
        "--memory-limit",
        "nothing was committed",
    ] {
        assert!(error.contains(expected), "`{expected}` in: {error}");
    }
    assert_eq!(
        wh.warehouse.version(Account::DEF).await.expect("version"),
        version
    );
    assert_eq!(
        contents(&wh.warehouse, Account::DEF).await,
        vec!["1|1|ann", "2|2|ann"]
    );
    // Within the limit, the same warehouse writes it.
    let roomy = Warehouse::open(location.to_str().expect("utf-8 path"))
        .expect("warehouse")
        .with_memory_limit(Some(256 << 20))
        .expect("memory limit");
    let outcome = write(&roomy, Account::DEF, &source, WriteOptions::default())
        .await
        .expect("the upsert fits");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (39_998, 2));
}

#[tokio::test]
async fn a_table_with_the_change_data_feed_records_the_merges_changes() {
    let wh = TempWarehouse::new();
    let audited = |id, balance| Audited {
        id,
        balance: Some(balance),
        owner: "ann".to_owned(),
    };
    write(
        &wh.warehouse,
        Audited::DEF,
        &[audited(1, 1), audited(2, 2)],
        WriteOptions::default(),
    )
    .await
    .expect("first batch");
    let outcome = write(
        &wh.warehouse,
        Audited::DEF,
        &[audited(2, 20), audited(3, 3)],
        WriteOptions::default(),
    )
    .await
    .expect("merge");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (1, 1));
    assert_eq!(
        contents(&wh.warehouse, Audited::DEF).await,
        vec!["1|1|ann", "2|20|ann", "3|3|ann"]
    );
    // delta-rs's MERGE wrote the update's pre- and post-images.
    let root = wh.warehouse.local_root().expect("local warehouse");
    let table = wh.warehouse.table_url(Audited::DEF).expect("url");
    let table = table.to_file_path().expect("local table");
    assert!(table.starts_with(&root));
    let changes = std::fs::read_dir(table.join("_change_data"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert!(changes > 0, "the change data feed has files for the update");
}

/// `SELECT` of generated accounts `from..=to` with `balance = id * factor`, owned by `owner`.
fn generated(from: i64, to: i64, factor: i64, owner: &str) -> String {
    format!(
        "SELECT value AS id, value * {factor} AS balance, '{owner}' AS owner \
         FROM generate_series({from}, {to})"
    )
}

#[tokio::test]
async fn a_large_upsert_is_encoded_in_parallel() {
    let wh = TempWarehouse::new();
    let session = two_writer_session(&wh.warehouse).await;
    let first = session
        .sql(&generated(1, 300_000, 1, "ann"))
        .await
        .expect("rows");
    wh.warehouse
        .write(&session, Account::DEF, first, WriteOptions::default())
        .await
        .expect("first batch");
    // Every other key of the upper half updated, as many new keys inserted.
    let source = session
        .sql(&format!(
            "{} WHERE value % 2 = 0 UNION ALL {}",
            generated(150_001, 300_000, -1, "bob"),
            generated(300_001, 375_000, -1, "bob")
        ))
        .await
        .expect("source");
    let outcome = wh
        .warehouse
        .write(&session, Account::DEF, source, WriteOptions::default())
        .await
        .expect("upsert");
    assert_eq!(
        (outcome.rows_inserted, outcome.rows_updated),
        (75_000, 75_000)
    );
    let (operation, metrics) = last_commit(&wh.warehouse, Account::DEF).await;
    assert_eq!(operation, "MERGE");
    let added = metrics["num_target_files_added"]
        .as_u64()
        .expect("files added");
    assert!(added >= 2, "one file per encoder expected: {metrics}");
    let totals = crate::common::render(
        wh.warehouse
            .sql(
                &[Account::DEF],
                "SELECT count(*), count(DISTINCT id), sum(balance), count(*) FILTER (WHERE owner = 'bob') \
                 FROM cow.accounts",
            )
            .await
            .expect("query"),
    )
    .await;
    // Keys 1..=375 000 once each; balances: +id below 150 001 and for odd keys above, −id for
    // the updated even keys and the inserted ones.
    let sum = |from: i64, to: i64| (from..=to).sum::<i64>();
    let even = |from: i64, to: i64| (from..=to).filter(|v| v % 2 == 0).sum::<i64>();
    let expected = sum(1, 300_000) - 2 * even(150_001, 300_000) - sum(300_001, 375_000);
    assert_eq!(totals, vec![format!("375000|375000|{expected}|150000")]);
}

/// An append-only table (the parallel sink's path).
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "events")]
pub struct Event {
    pub id: i64,
    pub owner: Option<String>,
}

#[tokio::test]
async fn a_write_reports_the_tables_figures_after_its_commit() {
    let wh = TempWarehouse::new();
    let options = WriteOptions::default;
    let events = [
        Event { id: 1, owner: None },
        Event {
            id: 2,
            owner: Some("ann".into()),
        },
    ];
    let accounts = [account(1, None, "ann"), account(2, Some(5), "bob")];
    for round in 0..2 {
        let outcomes = [
            (
                Event::DEF,
                write(&wh.warehouse, Event::DEF, &events, options()).await,
            ),
            (
                Account::DEF,
                write(&wh.warehouse, Account::DEF, &accounts[round..], options()).await,
            ),
            (
                Audited::DEF,
                write(&wh.warehouse, Audited::DEF, &accounts[round..], options()).await,
            ),
        ];
        for (table, outcome) in outcomes {
            let outcome = outcome.expect("written");
            let reported = outcome.stats.expect("figures of the committed snapshot");
            let read = wh
                .warehouse
                .stats(table)
                .await
                .expect("stats")
                .expect("table");
            assert_eq!(
                reported,
                read,
                "{} after round {round}",
                table.qualified_name()
            );
        }
    }
    let events = wh.warehouse.stats(Event::DEF).await.unwrap().unwrap();
    assert_eq!((events.rows, events.null_counts["owner"]), (4, 2));
    let accounts = wh.warehouse.stats(Account::DEF).await.unwrap().unwrap();
    assert_eq!((accounts.rows, accounts.null_counts["balance"]), (2, 1));
}

/// `cow.accounts` declared again without `balance` (a column dropped from the struct).
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "accounts", key(id), mode = merge)]
pub struct AccountWithoutBalance {
    pub id: i64,
    pub owner: String,
}

#[tokio::test]
async fn a_column_dropped_from_the_declaration_keeps_its_values_in_updated_rows() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        Account::DEF,
        &[account(1, Some(10), "ann"), account(2, Some(20), "bob")],
        WriteOptions::default(),
    )
    .await
    .expect("first write");
    let rows = [
        AccountWithoutBalance {
            id: 1,
            owner: "anne".to_owned(),
        },
        AccountWithoutBalance {
            id: 3,
            owner: "cy".to_owned(),
        },
    ];
    let outcome = write(
        &wh.warehouse,
        AccountWithoutBalance::DEF,
        &rows,
        WriteOptions::default(),
    )
    .await
    .expect("upsert");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (1, 1));
    // Read with the full declaration: 1 keeps its balance, 3 has none.
    assert_eq!(
        contents(&wh.warehouse, Account::DEF).await,
        vec!["1|10|anne", "2|20|bob", "3|∅|cy"]
    );
}

#[tokio::test]
async fn an_upsert_of_unchanged_rows_rewrites_and_commits_nothing() {
    let wh = TempWarehouse::new();
    let options = WriteOptions::default;
    // Two files: keys 1–2 (one NULL balance) and 10–11.
    let first = vec![account(1, None, "ann"), account(2, Some(200), "ann")];
    let second = vec![account(10, Some(1000), "bo"), account(11, Some(1100), "bo")];
    for rows in [&first, &second] {
        write(&wh.warehouse, Account::DEF, rows, options())
            .await
            .expect("batch");
    }
    let before = files(&wh.warehouse, Account::DEF).await;
    let version = wh.warehouse.version(Account::DEF).await.expect("version");

    // The same rows again: NULL equals NULL here.
    let all: Vec<Account> = first.iter().chain(&second).cloned().collect();
    let outcome = write(&wh.warehouse, Account::DEF, &all, options())
        .await
        .expect("upsert");
    assert!(
        outcome.committed,
        "a write that had nothing to change succeeded"
    );
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (0, 0));
    assert_eq!(outcome.version, version);
    assert_eq!(
        wh.warehouse.version(Account::DEF).await.expect("version"),
        version
    );
    assert_eq!(files(&wh.warehouse, Account::DEF).await, before);

    // Key 1's NULL becomes a value, key 11 is as stored, key 12 is new: only the first file is
    // rewritten, and only keys 1 and 12 are written.
    let rows = vec![
        account(1, Some(1), "ann"),
        account(11, Some(1100), "bo"),
        account(12, Some(1200), "bo"),
    ];
    let outcome = write(&wh.warehouse, Account::DEF, &rows, options())
        .await
        .expect("upsert");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (1, 1));
    let after = files(&wh.warehouse, Account::DEF).await;
    assert_eq!(
        before.intersection(&after).count(),
        1,
        "the second file stays"
    );
    let (_, metrics) = last_commit(&wh.warehouse, Account::DEF).await;
    assert_eq!(metrics["num_target_files_removed"], 1);
    assert_eq!(metrics["num_target_rows_copied"], 1);
    assert_eq!(
        contents(&wh.warehouse, Account::DEF).await,
        vec![
            "10|1000|bo",
            "11|1100|bo",
            "12|1200|bo",
            "1|1|ann",
            "2|200|ann"
        ]
    );
}

#[tokio::test]
async fn only_the_change_columns_make_a_change() {
    let wh = TempWarehouse::new();
    let ledger = |id, balance, note: &str, day: i64| Ledger {
        id,
        balance: Some(balance),
        note: Some(note.to_owned()),
        run_at: Timestamp(day * 86_400_000_000),
    };
    write(
        &wh.warehouse,
        Ledger::DEF,
        &[ledger(1, 10, "opened", 1), ledger(2, 20, "opened", 1)],
        WriteOptions::default(),
    )
    .await
    .expect("day 1");
    let version = wh.warehouse.version(Ledger::DEF).await.expect("version");
    // Day 2: a new run time and note, the same balances: nothing changes.
    let outcome = write(
        &wh.warehouse,
        Ledger::DEF,
        &[ledger(1, 10, "seen", 2), ledger(2, 20, "seen", 2)],
        WriteOptions::default(),
    )
    .await
    .expect("day 2");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (0, 0));
    assert_eq!(
        wh.warehouse.version(Ledger::DEF).await.expect("version"),
        version
    );
    // Day 3: key 2's balance changes: its whole row is written, note and run time included.
    write(
        &wh.warehouse,
        Ledger::DEF,
        &[ledger(1, 10, "seen", 3), ledger(2, 25, "credited", 3)],
        WriteOptions::default(),
    )
    .await
    .expect("day 3");
    assert_eq!(
        contents(&wh.warehouse, Ledger::DEF).await,
        vec![
            "1|10|opened|1970-01-02T00:00:00Z",
            "2|25|credited|1970-01-04T00:00:00Z"
        ]
    );
}

/// Merges into `table` (a ledger's columns) as runs of days 3, then 2 (a backfill), then 3 again
/// and 4; returns the rows after each.
async fn merge_out_of_order(table: &'static TableDef) -> Vec<Vec<String>> {
    #[derive(Serialize)]
    struct Row {
        id: i64,
        balance: Option<i64>,
        note: Option<String>,
        run_at: Timestamp,
    }
    let row = |id, balance, day: i64| Row {
        id,
        balance: Some(balance),
        note: Some(format!("day {day}")),
        run_at: Timestamp(day * 86_400_000_000),
    };
    let wh = TempWarehouse::new();
    let mut after = Vec::new();
    for rows in [
        vec![row(1, 10, 3), row(2, 20, 3)],
        // Day 2, backfilled: key 1's older balance (outside the stored range, so the
        // statistics say "changed") replaces nothing; key 3 is new.
        vec![row(1, 1000, 2), row(3, 30, 2)],
        // Day 3 again: the same run's rows replace its own.
        vec![row(1, 11, 3)],
        // Day 4: newer everywhere.
        vec![row(1, 12, 4), row(2, 21, 4), row(3, 31, 4)],
    ] {
        write(&wh.warehouse, table, &rows, WriteOptions::default())
            .await
            .expect("merge");
        after.push(contents(&wh.warehouse, table).await);
    }
    after
}

#[tokio::test]
async fn an_older_row_replaces_no_newer_one() {
    let expected = vec![
        vec![
            "1|10|day 3|1970-01-04T00:00:00Z",
            "2|20|day 3|1970-01-04T00:00:00Z",
        ],
        vec![
            "1|10|day 3|1970-01-04T00:00:00Z",
            "2|20|day 3|1970-01-04T00:00:00Z",
            "3|30|day 2|1970-01-03T00:00:00Z",
        ],
        vec![
            "1|11|day 3|1970-01-04T00:00:00Z",
            "2|20|day 3|1970-01-04T00:00:00Z",
            "3|30|day 2|1970-01-03T00:00:00Z",
        ],
        vec![
            "1|12|day 4|1970-01-05T00:00:00Z",
            "2|21|day 4|1970-01-05T00:00:00Z",
            "3|31|day 4|1970-01-05T00:00:00Z",
        ],
    ];
    // The upsert path, and delta-rs's MERGE (change data feed on).
    assert_eq!(merge_out_of_order(Ledger::DEF).await, expected);
    assert_eq!(merge_out_of_order(AuditedLedger::DEF).await, expected);
}

#[tokio::test]
async fn delta_rs_merge_leaves_unchanged_rows_and_commits_nothing() {
    let wh = TempWarehouse::new();
    let audited = |id, balance: Option<i64>| Audited {
        id,
        balance,
        owner: "ann".to_owned(),
    };
    let rows = [audited(1, Some(1)), audited(2, None)];
    write(&wh.warehouse, Audited::DEF, &rows, WriteOptions::default())
        .await
        .expect("first batch");
    let version = wh.warehouse.version(Audited::DEF).await.expect("version");
    let outcome = write(&wh.warehouse, Audited::DEF, &rows, WriteOptions::default())
        .await
        .expect("the same rows");
    assert!(outcome.committed);
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (0, 0));
    assert_eq!(
        wh.warehouse.version(Audited::DEF).await.expect("version"),
        version,
        "no commit"
    );
    // One changed row among unchanged ones: updated, the other left.
    let outcome = write(
        &wh.warehouse,
        Audited::DEF,
        &[audited(1, Some(1)), audited(2, Some(2))],
        WriteOptions::default(),
    )
    .await
    .expect("one change");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (0, 1));
    assert_eq!(
        contents(&wh.warehouse, Audited::DEF).await,
        vec!["1|1|ann", "2|2|ann"]
    );
}

/// A table written by another engine that let a key repeat: appended twice, no change data feed.
#[derive(Table, Serialize, Clone)]
#[table(
    schema = "cow",
    name = "repeated",
    property(key = "delta.enableChangeDataFeed", value = "false")
)]
pub struct RepeatedAppend {
    pub id: i64,
    pub label: String,
}

/// The same table, merged on `id`.
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "repeated", key(id), mode = merge)]
pub struct RepeatedMerge {
    pub id: i64,
    pub label: String,
}

#[tokio::test]
async fn a_key_repeated_in_the_target_changes_if_any_of_its_rows_differs() {
    let wh = TempWarehouse::new();
    for label in ["a", "b"] {
        let row = RepeatedAppend {
            id: 1,
            label: label.to_owned(),
        };
        write(
            &wh.warehouse,
            RepeatedAppend::DEF,
            &[row],
            WriteOptions::default(),
        )
        .await
        .expect("append");
    }
    assert_eq!(files(&wh.warehouse, RepeatedMerge::DEF).await.len(), 2);
    // The source equals the second row and differs from the first: the key changes, both files
    // are rewritten, and one row remains.
    let row = RepeatedMerge {
        id: 1,
        label: "b".to_owned(),
    };
    let outcome = write(
        &wh.warehouse,
        RepeatedMerge::DEF,
        &[row],
        WriteOptions::default(),
    )
    .await
    .expect("upsert");
    assert_eq!(outcome.rows_inserted, 0);
    assert_eq!(contents(&wh.warehouse, RepeatedMerge::DEF).await, ["1|b"]);
}

/// [`RepeatedAppend`], dated.
#[derive(Table, Serialize, Clone)]
#[table(
    schema = "cow",
    name = "repeated_dated",
    property(key = "delta.enableChangeDataFeed", value = "false")
)]
pub struct RepeatedDatedAppend {
    pub id: i64,
    pub label: String,
    pub run_at: Timestamp,
}

/// The same table, merged on `id`.
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "repeated_dated", key(id), mode = merge)]
pub struct RepeatedDatedMerge {
    pub id: i64,
    pub label: String,
    pub run_at: Timestamp,
}

#[tokio::test]
async fn a_repeated_key_with_a_newer_row_is_not_replaced_by_an_older_one() {
    let wh = TempWarehouse::new();
    let day = |d: i64| Timestamp(d * 86_400_000_000);
    for (label, d) in [("a", 1), ("c", 3)] {
        let row = RepeatedDatedAppend {
            id: 1,
            label: label.to_owned(),
            run_at: day(d),
        };
        write(
            &wh.warehouse,
            RepeatedDatedAppend::DEF,
            &[row],
            WriteOptions::default(),
        )
        .await
        .expect("append");
    }
    // Day 2 differs from both rows, but day 3's is newer: the key keeps its rows.
    let row = RepeatedDatedMerge {
        id: 1,
        label: "b".to_owned(),
        run_at: day(2),
    };
    write(
        &wh.warehouse,
        RepeatedDatedMerge::DEF,
        &[row],
        WriteOptions::default(),
    )
    .await
    .expect("upsert");
    assert_eq!(
        contents(&wh.warehouse, RepeatedDatedMerge::DEF).await,
        ["1|a|1970-01-02T00:00:00Z", "1|c|1970-01-04T00:00:00Z"]
    );
}

#[tokio::test]
async fn a_backfilled_snapshot_deletes_no_key_a_later_run_wrote() {
    use lakehouse_runtime::store::Deletions;
    let wh = TempWarehouse::new();
    let day = |d: i64| Timestamp(d * 86_400_000_000);
    let ledger = |id, d: i64| Ledger {
        id,
        balance: Some(id * 10),
        note: None,
        run_at: day(d),
    };
    let snapshot = |d: i64| WriteOptions {
        run_at: Some(day(d)),
        deletions: Deletions::MissingFromSource,
        ..WriteOptions::default()
    };
    for (rows, d) in [
        (vec![ledger(1, 3), ledger(2, 3)], 3),
        // Day 2's snapshot lacks key 2, which day 3 wrote: kept.
        (vec![ledger(1, 2)], 2),
    ] {
        write(&wh.warehouse, Ledger::DEF, &rows, snapshot(d))
            .await
            .expect("snapshot");
    }
    assert_eq!(contents(&wh.warehouse, Ledger::DEF).await.len(), 2);
    // Day 4's lacks it too: deleted (key 1, its balance unchanged, keeps its day 3 row).
    write(&wh.warehouse, Ledger::DEF, &[ledger(1, 4)], snapshot(4))
        .await
        .expect("snapshot");
    assert_eq!(
        contents(&wh.warehouse, Ledger::DEF).await,
        ["1|10|∅|1970-01-04T00:00:00Z"]
    );
}

#[tokio::test]
async fn a_backfilled_deletion_by_key_deletes_no_row_a_later_run_wrote() {
    use lakehouse_runtime::store::Deletions;
    let wh = TempWarehouse::new();
    let day = |d: i64| Timestamp(d * 86_400_000_000);
    let ledger = |id, d: i64| Ledger {
        id,
        balance: Some(id * 10),
        note: None,
        run_at: day(d),
    };
    let at = |d: i64| WriteOptions {
        run_at: Some(day(d)),
        ..WriteOptions::default()
    };
    write(
        &wh.warehouse,
        Ledger::DEF,
        &[ledger(1, 1), ledger(2, 3)],
        at(3),
    )
    .await
    .expect("day 3");
    // Day 2's deletions name both keys: key 1's row is older, deleted; key 2's is day 3's,
    // newer than the deletion, kept (as a backfilled full snapshot keeps it). Before, both went.
    let session = wh.warehouse.session();
    let keys = session
        .sql("SELECT CAST(1 AS BIGINT) AS id UNION ALL SELECT CAST(2 AS BIGINT)")
        .await
        .expect("keys");
    let deleting = WriteOptions {
        deletions: Deletions::Keys(keys),
        ..at(2)
    };
    let outcome = write(&wh.warehouse, Ledger::DEF, &[] as &[Ledger], deleting)
        .await
        .expect("day 2's deletions");
    assert_eq!(outcome.rows_deleted, 1);
    assert_eq!(
        contents(&wh.warehouse, Ledger::DEF).await,
        ["2|20|∅|1970-01-04T00:00:00Z"]
    );
}

#[tokio::test]
async fn deletion_keys_over_the_memory_limit_fail_naming_the_table_and_the_way_out() {
    use lakehouse_runtime::store::Deletions;
    let wh = TempWarehouse::new();
    let row = Ledger {
        id: 1,
        balance: Some(10),
        note: None,
        run_at: Timestamp(0),
    };
    write(&wh.warehouse, Ledger::DEF, &[row], WriteOptions::default())
        .await
        .expect("written");
    let version = wh.warehouse.version(Ledger::DEF).await.expect("version");
    // 64 MiB for operators, and 10 million keys (80 MB), held in memory for the write.
    let location = wh.dir.path().join("warehouse");
    let limited = lakehouse_runtime::store::Warehouse::open(location.to_str().expect("utf-8"))
        .expect("warehouse")
        .with_memory_limit(Some(64 << 20))
        .expect("memory limit");
    let keys = wh
        .warehouse
        .session()
        .sql("SELECT value AS id FROM range(10000000)")
        .await
        .expect("keys");
    let deleting = WriteOptions {
        deletions: Deletions::Keys(keys),
        ..WriteOptions::default()
    };
    let error = write(&limited, Ledger::DEF, &[] as &[Ledger], deleting)
        .await
        .expect_err("over the limit")
        .to_string();
    for expected in [
        "the delete by key into ",
        "holds its keys to delete in memory",
        "delete fewer keys per write, or raise the limit",
        "--memory-limit",
        "nothing was committed",
    ] {
        assert!(error.contains(expected), "`{expected}` in: {error}");
    }
    assert_eq!(
        wh.warehouse.version(Ledger::DEF).await.expect("version"),
        version
    );
}

/// Measures merged on `id`: a float change column.
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "measures", key(id), mode = merge)]
pub struct Measure {
    pub id: i64,
    pub value: f64,
    pub run_at: Timestamp,
}

/// The same, merged by delta-rs (change data feed on).
#[derive(Table, Serialize, Clone)]
#[table(
    schema = "cow",
    name = "audited_measures",
    key(id),
    mode = merge,
    property(key = "delta.enableChangeDataFeed", value = "true")
)]
pub struct AuditedMeasure {
    pub id: i64,
    pub value: f64,
    pub run_at: Timestamp,
}

/// The same, with history.
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "measure_history", key(id), mode = scd2)]
pub struct MeasureHistory {
    pub id: i64,
    pub value: f64,
    pub run_at: Timestamp,
}

#[tokio::test]
async fn a_zero_whose_sign_flips_is_no_change() {
    #[derive(Serialize)]
    struct Row {
        id: i64,
        value: f64,
        run_at: Timestamp,
    }
    let row = |value: f64, day: i64| Row {
        id: 1,
        value,
        run_at: Timestamp(day * 86_400_000_000),
    };
    for table in [Measure::DEF, AuditedMeasure::DEF, MeasureHistory::DEF] {
        let wh = TempWarehouse::new();
        let options = |day: i64| WriteOptions {
            run_at: Some(Timestamp(day * 86_400_000_000)),
            ..WriteOptions::default()
        };
        write(&wh.warehouse, table, &[row(0.0, 1)], options(1))
            .await
            .expect("first write");
        let version = wh.warehouse.version(table).await.expect("version");
        // -0.0 (stored as such) is the same value as 0.0: `IS DISTINCT FROM` compares floats
        // as numbers, not bits.
        write(&wh.warehouse, table, &[row(-0.0, 2)], options(2))
            .await
            .expect("second write");
        assert_eq!(
            wh.warehouse.version(table).await.expect("version"),
            version,
            "{}: nothing changed, nothing committed",
            table.qualified_name()
        );
        assert_eq!(contents(&wh.warehouse, table).await.len(), 1);
    }
}

/// `RepeatedMergeWider`'s key in another order.
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "repeated", key(label, id), mode = merge)]
pub struct RepeatedMergeReordered {
    pub id: i64,
    pub label: String,
}

/// `RepeatedMerge`'s table, declared with a wider key.
#[derive(Table, Serialize, Clone)]
#[table(schema = "cow", name = "repeated", key(id, label), mode = merge)]
pub struct RepeatedMergeWider {
    pub id: i64,
    pub label: String,
}

/// A warehouse whose `cow.repeated` holds the row (1, "a"), written as `table` declares it.
async fn repeated_written_as(table: &'static lakehouse_runtime::TableDef) -> TempWarehouse {
    let wh = TempWarehouse::new();
    let row = RepeatedMerge {
        id: 1,
        label: "a".to_owned(),
    };
    write(&wh.warehouse, table, &[row], WriteOptions::default())
        .await
        .expect("upsert");
    wh
}

#[tokio::test]
async fn a_merge_table_declared_with_another_key_is_refused() {
    let wh = repeated_written_as(RepeatedMerge::DEF).await;
    crate::common::incompatible_drift(&wh.warehouse, RepeatedMergeWider::DEF).await;
    let wider = RepeatedMergeWider {
        id: 1,
        label: "b".to_owned(),
    };
    let error = write(
        &wh.warehouse,
        RepeatedMergeWider::DEF,
        &[wider],
        WriteOptions::default(),
    )
    .await
    .expect_err("another key");
    assert!(
        error.to_string().contains(
            "cow.repeated: declared key (id, label), but the table was written with key (id)"
        ),
        "{error}"
    );
    assert_eq!(contents(&wh.warehouse, RepeatedMerge::DEF).await, ["1|a"]);
    // The same key in another order is no change.
    let wh = repeated_written_as(RepeatedMergeWider::DEF).await;
    let drift = wh
        .warehouse
        .drift(RepeatedMergeReordered::DEF)
        .await
        .expect("drift");
    assert!(drift.is_empty(), "{drift:?}");
}

#[tokio::test]
async fn deletion_keys_win_over_written_rows_and_may_repeat() {
    let wh = TempWarehouse::new();
    let def = <Account as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        def,
        &[
            account(1, Some(10), "ann"),
            account(2, Some(20), "bob"),
            account(4, Some(40), "dan"),
        ],
        WriteOptions::default(),
    )
    .await
    .expect("stored");
    // 1 is changed and deleted, 2 deleted twice, 3 inserted and deleted, 5 inserted: the MERGE
    // used to find two source rows for 1 and 2 (and fail at every retry), and to insert 3.
    let session = wh.warehouse.session();
    #[derive(Serialize)]
    struct Key {
        id: i64,
    }
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
    ]));
    let keys: Vec<Key> = [1, 2, 2, 3].into_iter().map(|id| Key { id }).collect();
    let keys = lakehouse_runtime::frame::batches_from_rows(schema, &keys).expect("keys");
    let options = WriteOptions {
        deletions: lakehouse_runtime::store::Deletions::Keys(
            session.read_batches(keys).expect("keys frame"),
        ),
        ..WriteOptions::default()
    };
    let df = crate::common::frame(
        &session,
        def,
        &[
            account(1, Some(11), "ann"),
            account(3, Some(30), "cid"),
            account(5, Some(50), "eve"),
        ],
    );
    let outcome = wh
        .warehouse
        .write(&session, def, df, options)
        .await
        .expect("written");
    assert_eq!((outcome.rows_inserted, outcome.rows_deleted), (1, 2));
    assert_eq!(contents(&wh.warehouse, def).await, ["4|40|dan", "5|50|eve"]);
    // Deletion keys of another type (4.9 would be cast to 4) are refused, nothing written.
    let options = WriteOptions {
        deletions: lakehouse_runtime::store::Deletions::Keys(
            session
                .sql("SELECT CAST(4.9 AS DOUBLE) AS id")
                .await
                .expect("keys"),
        ),
        ..WriteOptions::default()
    };
    let df = crate::common::frame(&session, def, &[account(6, Some(60), "fay")]);
    let error = wh
        .warehouse
        .write(&session, def, df, options)
        .await
        .expect_err("keys of another type")
        .to_string();
    assert!(
        error.contains("key column `id` of the keys is Float64, the table's is BIGINT"),
        "{error}"
    );
    assert_eq!(contents(&wh.warehouse, def).await, ["4|40|dan", "5|50|eve"]);
}
