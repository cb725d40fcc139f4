//! SCD2 over three runs: new, changed, unchanged keys, a NULL→value change, deletions; one commit
//! per run.

use lakehouse_runtime::prelude::*;
use lakehouse_runtime::store::{Deletions, WriteOptions};
use serde::Serialize;

use crate::common::{TempWarehouse, contents, frame, lines, write};

/// Customers with history.
#[derive(Table)]
#[table(schema = "gold", name = "dim_customer", key(customer_id), mode = scd2)]
pub struct DimCustomer {
    pub customer_id: String,
    pub name: Option<String>,
    pub city: Option<String>,
}

/// Only `city` changes open a version.
#[derive(Table)]
#[table(schema = "gold", name = "dim_store", key(store_id, country), mode = scd2, change_columns(city))]
pub struct DimStore {
    pub store_id: i64,
    pub country: String,
    pub city: Option<String>,
    pub manager: Option<String>,
}

/// No `change_columns`: every data column but the key and `run_at` is tracked.
#[derive(Table)]
#[table(schema = "gold", name = "dim_agent", key(agent_id), mode = scd2)]
pub struct DimAgent {
    pub agent_id: String,
    pub name: Option<String>,
    pub run_at: Timestamp,
}

#[derive(Serialize)]
struct Customer {
    customer_id: &'static str,
    name: Option<&'static str>,
    city: Option<&'static str>,
}

fn c(
    customer_id: &'static str,
    name: Option<&'static str>,
    city: Option<&'static str>,
) -> Customer {
    Customer {
        customer_id,
        name,
        city,
    }
}

const DAY: i64 = 86_400_000_000;

fn run(day: i64, transaction: i64) -> WriteOptions {
    WriteOptions {
        run_at: Some(Timestamp(day * DAY)),
        transaction: Some(("dim_customer".to_owned(), transaction)),
        ..WriteOptions::default()
    }
}

#[tokio::test]
async fn a_run_earlier_than_the_history_is_refused() {
    let wh = TempWarehouse::new();
    let def = <DimCustomer as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Paris"))],
        run(5, 1),
    )
    .await
    .expect("day 5");
    write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Lille"))],
        run(9, 2),
    )
    .await
    .expect("day 9");
    let version = wh.warehouse.version(def).await.expect("version");
    // A backfill of day 7 after day 9: it would close Lille's version before it began.
    let error = write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Nice"))],
        run(7, 3),
    )
    .await
    .expect_err("history is written in time order");
    let message = error.to_string();
    assert!(
        message.contains("SCD2 table gold.dim_customer: its history already reaches 1970-01-10T00:00:00Z, later than this run's run_at 1970-01-08T00:00:00Z"),
        "{message}"
    );
    assert_eq!(wh.warehouse.version(def).await.expect("version"), version);
    // The same time again, or a later one, is fine.
    write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Lille"))],
        run(9, 4),
    )
    .await
    .expect("day 9 again");
    write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Nice"))],
        run(10, 5),
    )
    .await
    .expect("day 10");
    assert_eq!(
        contents(&wh.warehouse, def).await,
        lines(&[
            "a|Ann|Lille|1970-01-10T00:00:00Z|1970-01-11T00:00:00Z|false",
            "a|Ann|Nice|1970-01-11T00:00:00Z|∅|true",
            "a|Ann|Paris|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false",
        ])
    );
    // The bound comes from the log's file statistics: with the data files gone, the refusal is
    // the same (and no file is read).
    let dir = crate::common::table_folder(&wh.warehouse, def);
    for entry in std::fs::read_dir(&dir).expect("table directory") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(path).expect("removed");
        }
    }
    let error = write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Nice"))],
        run(7, 6),
    )
    .await
    .expect_err("history is written in time order");
    assert!(
        error
            .to_string()
            .contains("its history already reaches 1970-01-11"),
        "{error}"
    );
}

#[tokio::test]
async fn a_run_earlier_within_the_statistics_millisecond_is_refused_too() {
    let wh = TempWarehouse::new();
    let def = <DimCustomer as lakehouse_runtime::Table>::DEF;
    let at = |micros: i64, transaction: i64| WriteOptions {
        run_at: Some(Timestamp(micros)),
        transaction: Some(("dim_customer".to_owned(), transaction)),
        ..WriteOptions::default()
    };
    write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Paris"))],
        at(900, 1),
    )
    .await
    .expect("at 900 µs");
    // The statistics say 0 ms (truncated): the history's exact end is read.
    let error = write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Nice"))],
        at(400, 2),
    )
    .await
    .expect_err("history is written in time order");
    assert!(
        error.to_string().contains("its history already reaches"),
        "{error}"
    );
    write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Nice"))],
        at(900, 3),
    )
    .await
    .expect("the same time again");
}

/// A frame of `customer_id` deletion keys.
fn customer_keys(
    session: &datafusion::prelude::SessionContext,
    ids: &[&'static str],
) -> datafusion::dataframe::DataFrame {
    #[derive(Serialize)]
    struct Key {
        customer_id: &'static str,
    }
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("customer_id", arrow::datatypes::DataType::Utf8, false),
    ]));
    let rows: Vec<Key> = ids.iter().map(|&customer_id| Key { customer_id }).collect();
    let keys = lakehouse_runtime::frame::batches_from_rows(schema, &rows).expect("keys");
    session.read_batches(keys).expect("keys frame")
}

#[tokio::test]
async fn a_rerun_at_the_same_time_replaces_the_versions_it_opened_and_deletions_win() {
    let wh = TempWarehouse::new();
    let def = <DimCustomer as lakehouse_runtime::Table>::DEF;
    let session = wh.warehouse.session();
    write(
        &wh.warehouse,
        def,
        &[
            c("a", Some("Ann"), Some("Paris")),
            c("b", Some("Bob"), Some("Lyon")),
            c("c", Some("Cid"), Some("Lyon")),
        ],
        run(5, 1),
    )
    .await
    .expect("day 5");
    // Day 9: b is both written and deleted (the deletion wins), c is listed twice (closed
    // once). The MERGE used to find two source rows for one stored row, and fail.
    let mut options = run(9, 2);
    options.deletions = Deletions::Keys(customer_keys(&session, &["b", "c", "c"]));
    let df = frame(
        &session,
        def,
        &[
            c("a", Some("Ann"), Some("Lille")),
            c("b", Some("Bob"), Some("Nice")),
        ],
    );
    wh.warehouse
        .write(&session, def, df, options)
        .await
        .expect("day 9");
    // Day 9 again (a rerun of the latest run): a's version opened at day 9 is replaced in
    // place, not closed after no time; e is new.
    let rerun = write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Nice")), c("e", Some("Eve"), None)],
        run(9, 3),
    )
    .await
    .expect("day 9 again");
    assert_eq!((rerun.rows_inserted, rerun.rows_updated), (1, 1));
    // Day 9 once more: e's version, opened at day 9, is deleted rather than closed.
    let mut options = run(9, 4);
    options.deletions = Deletions::Keys(customer_keys(&session, &["e"]));
    let deleted = wh
        .warehouse
        .write(
            &session,
            def,
            frame::<Customer>(&session, def, &[]),
            options,
        )
        .await
        .expect("day 9, e deleted");
    assert_eq!(deleted.rows_deleted, 1);
    assert_eq!(
        contents(&wh.warehouse, def).await,
        lines(&[
            "a|Ann|Nice|1970-01-10T00:00:00Z|∅|true",
            "a|Ann|Paris|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false",
            "b|Bob|Lyon|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false",
            "c|Cid|Lyon|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false",
        ])
    );
    // A full snapshot at day 9 without a: its version opened at day 9 goes, Paris's stays
    // closed at day 9.
    let mut options = run(9, 5);
    options.deletions = Deletions::MissingFromSource;
    wh.warehouse
        .write(
            &session,
            def,
            frame::<Customer>(&session, def, &[]),
            options,
        )
        .await
        .expect("day 9, empty snapshot");
    assert_eq!(
        contents(&wh.warehouse, def).await,
        lines(&[
            "a|Ann|Paris|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false",
            "b|Bob|Lyon|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false",
            "c|Cid|Lyon|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false",
        ])
    );
}

#[tokio::test]
async fn three_runs_keep_exact_history() {
    let wh = TempWarehouse::new();
    let def = <DimCustomer as lakehouse_runtime::Table>::DEF;

    // Run 1: three new keys (one with a NULL city).
    let first = write(
        &wh.warehouse,
        def,
        &[
            c("a", Some("Ann"), Some("Paris")),
            c("b", Some("Bob"), None),
            c("c", Some("Cid"), Some("Lyon")),
        ],
        run(1, 1),
    )
    .await
    .expect("run 1");
    assert_eq!((first.rows_inserted, first.rows_updated), (3, 0));
    let v1 = wh
        .warehouse
        .version(def)
        .await
        .expect("version")
        .expect("exists");
    assert_eq!(
        contents(&wh.warehouse, def).await,
        lines(&[
            "a|Ann|Paris|1970-01-02T00:00:00Z|∅|true",
            "b|Bob|∅|1970-01-02T00:00:00Z|∅|true",
            "c|Cid|Lyon|1970-01-02T00:00:00Z|∅|true",
        ])
    );

    // Run 2: a changes city, b goes NULL -> Nice, c unchanged, d is new; duplicate keys for d
    // resolve to the row sorting last (name "Dan" > "Dal").
    let second = write(
        &wh.warehouse,
        def,
        &[
            c("a", Some("Ann"), Some("Lille")),
            c("b", Some("Bob"), Some("Nice")),
            c("c", Some("Cid"), Some("Lyon")),
            c("d", Some("Dal"), None),
            c("d", Some("Dan"), None),
        ],
        run(2, 2),
    )
    .await
    .expect("run 2");
    assert_eq!(
        (second.rows_inserted, second.rows_updated),
        (3, 2),
        "a and b closed; a, b, d inserted"
    );
    assert_eq!(
        wh.warehouse.version(def).await.expect("version"),
        Some(v1 + 1),
        "one commit per run"
    );

    // Run 3: c is deleted at the source, everything else unchanged.
    let session = wh.warehouse.session();
    #[derive(Serialize)]
    struct Key {
        customer_id: &'static str,
    }
    let keys_schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("customer_id", arrow::datatypes::DataType::Utf8, false),
    ]));
    let keys =
        lakehouse_runtime::frame::batches_from_rows(keys_schema, &[Key { customer_id: "c" }])
            .expect("keys");
    let mut options = run(3, 3);
    options.deletions = Deletions::Keys(session.read_batches(keys).expect("keys frame"));
    let df = frame(
        &session,
        def,
        &[
            c("a", Some("Ann"), Some("Lille")),
            c("b", Some("Bob"), Some("Nice")),
            c("d", Some("Dan"), None),
        ],
    );
    let third = wh
        .warehouse
        .write(&session, def, df, options)
        .await
        .expect("run 3");
    assert_eq!(
        (third.rows_inserted, third.rows_updated),
        (0, 1),
        "only c closed"
    );
    assert_eq!(
        wh.warehouse.version(def).await.expect("version"),
        Some(v1 + 2),
        "one commit per run"
    );

    let expected = lines(&[
        "a|Ann|Paris|1970-01-02T00:00:00Z|1970-01-03T00:00:00Z|false",
        "a|Ann|Lille|1970-01-03T00:00:00Z|∅|true",
        "b|Bob|∅|1970-01-02T00:00:00Z|1970-01-03T00:00:00Z|false",
        "b|Bob|Nice|1970-01-03T00:00:00Z|∅|true",
        "c|Cid|Lyon|1970-01-02T00:00:00Z|1970-01-04T00:00:00Z|false",
        "d|Dan|∅|1970-01-03T00:00:00Z|∅|true",
    ]);
    assert_eq!(contents(&wh.warehouse, def).await, expected);

    // Invariants: at most one current row per key, non-overlapping intervals.
    let check = wh
        .warehouse
        .sql(
            &[def],
            "SELECT customer_id, count(*) FILTER (WHERE is_current) AS current_rows, \
                    count(*) FILTER (WHERE valid_to IS NOT NULL AND valid_to <= valid_from) AS empty_intervals
             FROM gold.dim_customer GROUP BY customer_id ORDER BY customer_id",
        )
        .await
        .expect("query");
    assert_eq!(
        crate::common::render(check).await,
        lines(&["a|1|0", "b|1|0", "c|0|0", "d|1|0"])
    );
    let overlaps = wh
        .warehouse
        .sql(
            &[def],
            "SELECT count(*) FROM gold.dim_customer x JOIN gold.dim_customer y
               ON x.customer_id = y.customer_id AND x.valid_from < y.valid_from
             WHERE x.valid_to IS NULL OR x.valid_to > y.valid_from",
        )
        .await
        .expect("query");
    assert_eq!(crate::common::render(overlaps).await, lines(&["0"]));

    // Replaying run 3 changes nothing.
    let replay = write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Lille"))],
        run(3, 3),
    )
    .await
    .expect("replay");
    assert!(!replay.committed);
    assert_eq!(
        wh.warehouse.version(def).await.expect("version"),
        Some(v1 + 2)
    );
    assert_eq!(contents(&wh.warehouse, def).await, expected);
    // And rewritten unchanged under a new transaction, the merge itself finds no change: no
    // version is closed or opened, and nothing is committed.
    let unchanged = write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), Some("Lille"))],
        run(4, 4),
    )
    .await
    .expect("unchanged");
    assert_eq!(
        (unchanged.rows_inserted, unchanged.rows_updated),
        (0, 0),
        "{unchanged:?}"
    );
    assert_eq!(contents(&wh.warehouse, def).await, expected);
}

#[derive(Serialize)]
struct Store {
    store_id: i64,
    country: &'static str,
    city: Option<&'static str>,
    manager: Option<&'static str>,
}

#[tokio::test]
async fn only_change_columns_open_versions_and_missing_keys_close() {
    let wh = TempWarehouse::new();
    let def = <DimStore as lakehouse_runtime::Table>::DEF;
    let s = |store_id, country, city, manager| Store {
        store_id,
        country,
        city,
        manager,
    };
    let day = |d: i64| WriteOptions {
        run_at: Some(Timestamp(d * DAY)),
        ..WriteOptions::default()
    };
    write(
        &wh.warehouse,
        def,
        &[
            s(1, "fr", Some("Paris"), Some("Zoé")),
            s(1, "us", Some("NYC"), None),
        ],
        day(1),
    )
    .await
    .expect("run 1");
    // A manager change alone opens no version; the us store vanishes from the full snapshot.
    let session = wh.warehouse.session();
    let df = frame(&session, def, &[s(1, "fr", Some("Paris"), Some("Yann"))]);
    let mut options = day(2);
    options.deletions = Deletions::MissingFromSource;
    let outcome = wh
        .warehouse
        .write(&session, def, df, options)
        .await
        .expect("run 2");
    assert_eq!((outcome.rows_inserted, outcome.rows_updated), (0, 1));
    assert_eq!(
        contents(&wh.warehouse, def).await,
        lines(&[
            "1|fr|Paris|Zoé|1970-01-02T00:00:00Z|∅|true",
            "1|us|NYC|∅|1970-01-02T00:00:00Z|1970-01-03T00:00:00Z|false",
        ])
    );
}

#[tokio::test]
async fn deleting_a_key_closes_its_current_version() {
    let wh = TempWarehouse::new();
    let def = <DimCustomer as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), None), c("b", Some("Bob"), None)],
        run(1, 1),
    )
    .await
    .expect("run 1");
    let session = wh.warehouse.session();
    let keys = session
        .sql("SELECT 'a' AS customer_id")
        .await
        .expect("keys");
    // Closing before the version began is refused, and changes nothing.
    let error = wh
        .warehouse
        .delete_keys(&session, def, keys.clone(), Timestamp(0), None)
        .await
        .expect_err("before the history");
    assert!(
        error
            .to_string()
            .contains("its history already reaches 1970-01-02T00:00:00Z"),
        "{error}"
    );
    let closed = wh
        .warehouse
        .delete_keys(&session, def, keys, Timestamp(2 * DAY), None)
        .await
        .expect("delete");
    assert_eq!(closed.rows_updated, 1);
    assert_eq!(
        contents(&wh.warehouse, def).await,
        lines(&[
            "a|Ann|∅|1970-01-02T00:00:00Z|1970-01-03T00:00:00Z|false",
            "b|Bob|∅|1970-01-02T00:00:00Z|∅|true",
        ])
    );
}

#[tokio::test]
async fn deleting_a_key_at_the_time_its_version_opened_leaves_no_empty_version() {
    let wh = TempWarehouse::new();
    let def = <DimCustomer as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        def,
        &[c("a", Some("Ann"), None), c("b", Some("Bob"), None)],
        run(1, 1),
    )
    .await
    .expect("run 1");
    let session = wh.warehouse.session();
    let keys = session
        .sql("SELECT 'a' AS customer_id")
        .await
        .expect("keys");
    let deleted = wh
        .warehouse
        .delete_keys(&session, def, keys, Timestamp(DAY), None)
        .await
        .expect("delete");
    assert_eq!((deleted.rows_updated, deleted.rows_deleted), (0, 1));
    assert_eq!(
        contents(&wh.warehouse, def).await,
        lines(&["b|Bob|∅|1970-01-02T00:00:00Z|∅|true"])
    );
}

#[tokio::test]
async fn run_at_alone_opens_no_version() {
    #[derive(Serialize)]
    struct Agent {
        agent_id: &'static str,
        name: Option<&'static str>,
        run_at: Timestamp,
    }
    let wh = TempWarehouse::new();
    let def = <DimAgent as lakehouse_runtime::Table>::DEF;
    assert_eq!(def.change_columns_or_default(), ["name"]);
    for (day, name) in [(1, "Ann"), (2, "Ann"), (3, "Anne")] {
        let options = WriteOptions {
            transaction: Some(("dim_agent".to_owned(), day)),
            ..run(day, day)
        };
        let row = Agent {
            agent_id: "a",
            name: Some(name),
            run_at: Timestamp(day * DAY),
        };
        write(&wh.warehouse, def, &[row], options)
            .await
            .expect("written");
    }
    // Day 2 only moved `run_at`: Ann's version runs from day 1 to Anne's.
    let history = lines(&[
        "a|Ann|1970-01-02T00:00:00Z|1970-01-02T00:00:00Z|1970-01-04T00:00:00Z|false",
        "a|Anne|1970-01-04T00:00:00Z|1970-01-04T00:00:00Z|∅|true",
    ]);
    assert_eq!(contents(&wh.warehouse, def).await, history);
    // A late row, dated before the current version (a backfilled upstream read at day 10):
    // it does not undo the newer version, as in a merge table. Before, Anne's version closed
    // and Ann's came back as current.
    let late = Agent {
        agent_id: "a",
        name: Some("Ann"),
        run_at: Timestamp(2 * DAY),
    };
    write(&wh.warehouse, def, &[late], run(10, 10))
        .await
        .expect("written");
    assert_eq!(contents(&wh.warehouse, def).await, history);
}

#[tokio::test]
async fn a_late_row_does_not_bring_back_a_key_closed_after_it() {
    #[derive(Serialize)]
    struct Agent {
        agent_id: &'static str,
        name: Option<&'static str>,
        run_at: Timestamp,
    }
    let agent = |agent_id, name, day| Agent {
        agent_id,
        name: Some(name),
        run_at: Timestamp(day * DAY),
    };
    let wh = TempWarehouse::new();
    let def = <DimAgent as lakehouse_runtime::Table>::DEF;
    let options = |day: i64| WriteOptions {
        transaction: Some(("dim_agent".to_owned(), day)),
        ..run(day, day)
    };
    write(&wh.warehouse, def, &[agent("a", "Ann", 5)], options(5))
        .await
        .expect("day 5");
    let session = wh.warehouse.session();
    let keys = session.sql("SELECT 'a' AS agent_id").await.expect("keys");
    wh.warehouse
        .delete_keys(&session, def, keys, Timestamp(9 * DAY), None)
        .await
        .expect("closed at day 9");
    let closed =
        lines(&["a|Ann|1970-01-06T00:00:00Z|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false"]);
    assert_eq!(contents(&wh.warehouse, def).await, closed);
    // Day 10 reads a late row of day 4 (a backfilled upstream), and one of a new key: the
    // deletion is newer than the late row, which does not undo it. Before, Ann came back.
    write(
        &wh.warehouse,
        def,
        &[agent("a", "Ann", 4), agent("b", "Bob", 4)],
        options(10),
    )
    .await
    .expect("day 10");
    let with_bob = lines(&[
        "a|Ann|1970-01-06T00:00:00Z|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false",
        "b|Bob|1970-01-05T00:00:00Z|1970-01-11T00:00:00Z|∅|true",
    ]);
    assert_eq!(contents(&wh.warehouse, def).await, with_bob);
    // A row from the closing on brings the key back, as a new version.
    write(&wh.warehouse, def, &[agent("a", "Anna", 11)], options(11))
        .await
        .expect("day 11");
    assert_eq!(
        contents(&wh.warehouse, def).await,
        lines(&[
            "a|Ann|1970-01-06T00:00:00Z|1970-01-06T00:00:00Z|1970-01-10T00:00:00Z|false",
            "a|Anna|1970-01-12T00:00:00Z|1970-01-12T00:00:00Z|∅|true",
            "b|Bob|1970-01-05T00:00:00Z|1970-01-11T00:00:00Z|∅|true",
        ])
    );
}

#[tokio::test]
async fn a_unit_test_frame_of_an_scd2_table_holds_current_versions() {
    use lakehouse_runtime::testing::{TEST_RUN_AT, TestContext};
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Version {
        customer_id: String,
        valid_from: Timestamp,
        valid_to: Option<Timestamp>,
        is_current: bool,
    }
    let test = TestContext::unregistered("dim_customer_reader").expect("context");
    let customers = test
        .frame::<DimCustomer, _>(&[c("a", Some("Ann"), None), c("b", None, None)])
        .expect("a frame");
    // Readers pick the current versions, as a pipeline over the stored table does.
    let current = customers
        .filter(DimCustomer::is_current.expr())
        .expect("is_current is there")
        .sort(vec![DimCustomer::customer_id.expr().sort(true, false)])
        .expect("sorted");
    let versions: Vec<Version> = lakehouse_runtime::testing::rows(current)
        .await
        .expect("rows");
    let version = |id: &str| Version {
        customer_id: id.to_owned(),
        valid_from: TEST_RUN_AT,
        valid_to: None,
        is_current: true,
    };
    assert_eq!(versions, [version("a"), version("b")]);
}

/// Customers, kept as their latest state (as first declared).
mod as_merge {
    use lakehouse_runtime::prelude::*;

    /// Customers.
    #[derive(Table)]
    #[table(schema = "gold", name = "dim_customer_redeclared", key(customer_id), mode = merge)]
    pub struct Customers {
        pub customer_id: String,
        pub name: Option<String>,
        pub city: Option<String>,
    }
}

/// The same table, declared with history since.
mod as_scd2 {
    use lakehouse_runtime::prelude::*;

    /// Customers with history.
    #[derive(Table)]
    #[table(schema = "gold", name = "dim_customer_redeclared", key(customer_id), mode = scd2)]
    pub struct Customers {
        pub customer_id: String,
        pub name: Option<String>,
        pub city: Option<String>,
    }
}

#[tokio::test]
async fn a_table_declared_scd2_since_its_rows_were_written_says_how_to_rebuild_it() {
    let wh = TempWarehouse::new();
    let merged = <as_merge::Customers as lakehouse_runtime::Table>::DEF;
    let history = <as_scd2::Customers as lakehouse_runtime::Table>::DEF;
    let rows = [Customer {
        customer_id: "a",
        name: Some("Ann"),
        city: None,
    }];
    write(&wh.warehouse, merged, &rows, WriteOptions::default())
        .await
        .expect("as merge");
    let drift: Vec<String> = wh
        .warehouse
        .drift(history)
        .await
        .expect("drift")
        .iter()
        .filter(|d| d.is_incompatible())
        .map(|d| d.to_string())
        .collect();
    assert!(
        drift.iter().any(|d| d.contains(
            "the table is declared SCD2, and its rows were written without SCD2 history"
        )),
        "{drift:?}"
    );
    let refused = write(&wh.warehouse, history, &rows, run(1, 1))
        .await
        .expect_err("no history to take on")
        .to_string();
    assert!(
        refused.contains(
            "the table is declared `mode = scd2`, but its rows were written without SCD2 history"
        ) && refused.contains("--full-refresh"),
        "{refused}"
    );
    assert_eq!(contents(&wh.warehouse, merged).await, lines(&["a|Ann|∅"]));
}

#[tokio::test]
async fn an_output_that_differs_at_each_read_keeps_one_current_version_per_key() {
    // The source was read by two branches of the staged merge (and each twice by delta-rs): a
    // `random()` city closed a version in one branch and opened none in the other, or opened
    // one beside the current version.
    let wh = TempWarehouse::new();
    let def = <DimCustomer as lakehouse_runtime::Table>::DEF;
    let keys = 0..200;
    let day_one: Vec<Customer> = keys
        .clone()
        .map(|k| Customer {
            customer_id: Box::leak(format!("c{k}").into_boxed_str()),
            name: None,
            city: Some("Paris"),
        })
        .collect();
    write(&wh.warehouse, def, &day_one, run(1, 1))
        .await
        .expect("day 1");
    let session = wh.warehouse.session();
    let random_cities = session
        .sql(
            "SELECT concat('c', CAST(value AS VARCHAR)) AS customer_id, CAST(NULL AS VARCHAR) AS name, \
             CASE WHEN random() < 0.5 THEN 'Paris' ELSE 'Lille' END AS city \
             FROM generate_series(0, 199)",
        )
        .await
        .expect("plan");
    wh.warehouse
        .write(&session, def, random_cities, run(2, 2))
        .await
        .expect("day 2");
    let counts = crate::common::query(
        &wh.warehouse,
        &[def],
        "SELECT count(DISTINCT customer_id), sum(CAST(is_current AS INT)), \
         sum(CAST(NOT is_current AS INT)), count(*) FROM gold.dim_customer",
    )
    .await;
    let [line] = counts.as_slice() else {
        panic!("{counts:?}")
    };
    let fields: Vec<i64> = line.split('|').map(|f| f.parse().expect(f)).collect();
    let (keys, current, closed, all) = (fields[0], fields[1], fields[2], fields[3]);
    assert_eq!(
        (keys, current),
        (200, 200),
        "one current version per key: {line}"
    );
    assert_eq!(all, current + closed, "{line}");
    let moved = crate::common::query(
        &wh.warehouse,
        &[def],
        "SELECT count(*) FROM gold.dim_customer WHERE is_current AND city = 'Lille'",
    )
    .await;
    assert_eq!(
        moved,
        [closed.to_string()],
        "each closed version has its successor"
    );
}

#[tokio::test]
async fn an_scd2_source_over_the_memory_limit_fails_naming_the_table_and_the_way_out() {
    let wh = TempWarehouse::new();
    let def = <DimCustomer as lakehouse_runtime::Table>::DEF;
    write(&wh.warehouse, def, &[c("a", Some("Ann"), None)], run(1, 1))
        .await
        .expect("day 1");
    let version = wh.warehouse.version(def).await.expect("version");
    // The same warehouse with 64 MiB for operators, and a source of ~80 MB: held in memory for
    // the write, it does not fit.
    let location = wh.dir.path().join("warehouse");
    let limited = lakehouse_runtime::store::Warehouse::open(location.to_str().expect("utf-8"))
        .expect("warehouse")
        .with_memory_limit(Some(64 << 20))
        .expect("memory limit");
    let name = "x".repeat(150);
    let source: Vec<serde_json::Value> = (0..500_000)
        .map(|k| serde_json::json!({"customer_id": format!("c{k}"), "name": name, "city": null}))
        .collect();
    for (deletions, advice) in [
        (
            Deletions::None,
            "write fewer rows per run (read the inputs incrementally",
        ),
        // A full snapshot cannot read less: every key's row is in it.
        (
            Deletions::MissingFromSource,
            "raise the limit (a `full_snapshot` output holds every key's row)",
        ),
    ] {
        let error = write(
            &limited,
            def,
            &source,
            WriteOptions {
                deletions,
                ..run(2, 2)
            },
        )
        .await
        .expect_err("over the limit")
        .to_string();
        for expected in [
            "the SCD2 write into gold.dim_customer holds its source",
            advice,
            "--memory-limit",
            "nothing was committed",
        ] {
            assert!(error.contains(expected), "`{expected}` in: {error}");
        }
    }
    assert_eq!(wh.warehouse.version(def).await.expect("version"), version);
}
