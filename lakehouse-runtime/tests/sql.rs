//! The SQL catalog: every table as `schema.table`, read-only.

use lakehouse_runtime::prelude::*;
use lakehouse_runtime::store::WriteOptions;
use serde::Serialize;

use crate::common::{TempWarehouse, lines, render, write};

/// Products.
#[derive(Table)]
#[table(schema = "gold", name = "dim_product", key(product_id), mode = merge)]
pub struct Product {
    pub product_id: String,
    pub price: Option<Decimal<10, 2>>,
}

/// Not written yet.
#[derive(Table)]
#[table(schema = "bronze", name = "empty_one")]
pub struct Empty {
    pub x: i64,
}

#[derive(Serialize)]
struct P {
    product_id: &'static str,
    price: Option<Decimal<10, 2>>,
}

const PRODUCT: &lakehouse_runtime::TableDef = <Product as lakehouse_runtime::Table>::DEF;
const EMPTY: &lakehouse_runtime::TableDef = <Empty as lakehouse_runtime::Table>::DEF;

#[tokio::test]
async fn queries_every_table_by_schema_and_name() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        PRODUCT,
        &[
            P {
                product_id: "p1",
                price: Some(Decimal(1999)),
            },
            P {
                product_id: "p2",
                price: None,
            },
        ],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let df = crate::common::query(&wh.warehouse, &[PRODUCT, EMPTY], "SELECT p.product_id, p.price, (SELECT count(*) FROM bronze.empty_one) AS n FROM gold.dim_product p").await;
    assert_eq!(df, lines(&["p1|19.99|0", "p2|∅|0"]));
}

#[tokio::test]
async fn a_query_loads_only_the_tables_it_names() {
    let wh = TempWarehouse::new();
    let product = P {
        product_id: "p1",
        price: Some(Decimal(1999)),
    };
    write(&wh.warehouse, PRODUCT, &[product], WriteOptions::default())
        .await
        .expect("write");
    #[derive(Serialize)]
    struct X {
        x: i64,
    }
    write(&wh.warehouse, EMPTY, &[X { x: 1 }], WriteOptions::default())
        .await
        .expect("write");
    // A broken table: its first commit is truncated.
    let log = wh
        .warehouse
        .local_root()
        .expect("local")
        .join("bronze/empty_one/_delta_log/00000000000000000000.json");
    std::fs::write(&log, "{\"commitInfo\":{").expect("truncate");
    let query = "WITH p AS (SELECT product_id FROM gold.dim_product) SELECT count(*) FROM p";
    let df = wh
        .warehouse
        .sql(&[PRODUCT, EMPTY], query)
        .await
        .expect("the broken table is not read");
    assert_eq!(render(df).await, ["1"]);
    // Nor with a table function beside the table, or in an EXPLAIN (every table was loaded).
    for query in [
        "SELECT count(*) FROM gold.dim_product, generate_series(1, 2)",
        "EXPLAIN SELECT count(*) FROM gold.dim_product",
    ] {
        let df = wh
            .warehouse
            .sql(&[PRODUCT, EMPTY], query)
            .await
            .expect(query);
        assert!(!render(df).await.is_empty(), "{query}");
    }
    // The broken one is reported when it is queried, and a misspelled name gets a suggestion.
    let broken = wh
        .warehouse
        .sql(&[PRODUCT, EMPTY], "SELECT * FROM bronze.empty_one")
        .await
        .expect_err("unreadable");
    assert!(broken.to_string().contains("bronze.empty_one"), "{broken}");
    let misspelled = wh
        .warehouse
        .sql(&[PRODUCT, EMPTY], "SELECT * FROM gold.dim_prodcut")
        .await
        .expect_err("no such table");
    assert_eq!(
        misspelled.to_string(),
        "query failed: no table `gold.dim_prodcut`; did you mean `gold.dim_product`?"
    );
    let quoted = wh
        .warehouse
        .sql(&[PRODUCT, EMPTY], "SELECT * FROM \"gold.dim_product\"")
        .await
        .expect_err("one quoted name");
    assert_eq!(
        quoted.to_string(),
        "query failed: no table `\"gold.dim_product\"`: quoted whole, it is one name; write \
         `gold.dim_product` (or `\"gold\".\"dim_product\"`)"
    );
    // A syntax error is told as one, before the broken table is loaded (which would fail).
    let syntax = wh
        .warehouse
        .sql(&[PRODUCT, EMPTY], "SELEC * FROM bronze.empty_one")
        .await
        .expect_err("SELEC");
    let syntax = syntax.to_string();
    assert!(
        syntax.starts_with("query failed: SQL syntax error: ") && !syntax.contains("ParserError("),
        "{syntax}"
    );
    // Several statements, or none, are refused as such before the broken table is loaded
    // (before, every table was loaded first, and the broken one's error told instead).
    for (query, expected) in [
        (
            "SELECT 1; SELECT * FROM bronze.empty_one",
            "query failed: `sql` runs one statement: give each its own `sql`",
        ),
        ("  ", "query failed: the query is empty"),
    ] {
        let refused = wh
            .warehouse
            .sql(&[PRODUCT, EMPTY], query)
            .await
            .expect_err(query);
        assert_eq!(refused.to_string(), expected);
    }
    // A table named with a catalog: the catalog is what is wrong.
    let catalog = wh
        .warehouse
        .sql(&[PRODUCT, EMPTY], "SELECT * FROM x.gold.dim_product")
        .await
        .expect_err("a catalog");
    assert_eq!(
        catalog.to_string(),
        "query failed: no catalog `x`: the warehouse's tables are named `schema.table`; write \
         `gold.dim_product`"
    );
    // An unqualified name is left to the query: a table function, here.
    let series = wh
        .warehouse
        .sql(&[PRODUCT], "SELECT count(*) FROM generate_series(1, 3)")
        .await
        .expect("a table function");
    assert_eq!(render(series).await, ["3"]);
    // One of our tables without its schema: named, with the qualified name.
    let unqualified = wh
        .warehouse
        .sql(&[PRODUCT, EMPTY], "SELECT * FROM dim_product")
        .await
        .expect_err("unqualified");
    assert_eq!(
        unqualified.to_string(),
        "query failed: no table `dim_product`: tables are named `schema.table`; did you mean \
         `gold.dim_product`?"
    );
    // Misspelt too: the closest, with its schema.
    let misspelt = wh
        .warehouse
        .sql(&[PRODUCT, EMPTY], "SELECT * FROM dim_prodcut")
        .await
        .expect_err("misspelt");
    assert!(
        misspelt
            .to_string()
            .ends_with("; did you mean `gold.dim_product`? (tables are named `schema.table`)"),
        "{misspelt}"
    );
}

#[tokio::test]
async fn a_pipelines_sql_is_read_only_too() {
    let test = lakehouse_runtime::testing::TestContext::unregistered("prices").expect("context");
    test.frame::<Product, _>(&[P {
        product_id: "p1",
        price: None,
    }])
    .expect("input");
    for (query, kind) in [
        ("CREATE TABLE x AS SELECT 1", "DDL"),
        ("INSERT INTO gold.dim_product VALUES ('p9', 1.00)", "DML"),
        ("COPY gold.dim_product TO '/tmp/out.csv'", "DML"),
        ("SET datafusion.execution.batch_size = 1", "Statement"),
    ] {
        let Err(error) = test.ctx().sql::<Product>(query).await else {
            panic!("{query} ran");
        };
        let message = error.to_string();
        assert!(
            message.starts_with("pipeline `prices`: SQL failed: ")
                && message.contains(&format!("{kind} not supported")),
            "{query}: {message}"
        );
    }
    let kept = test
        .ctx()
        .sql::<Product>("SELECT * FROM gold.dim_product")
        .await
        .expect("a read");
    assert_eq!(render(kept.into_dataframe()).await, lines(&["p1|∅"]));
}

#[tokio::test]
async fn ddl_dml_copy_and_set_are_rejected() {
    let wh = TempWarehouse::new();
    write(
        &wh.warehouse,
        PRODUCT,
        &[P {
            product_id: "p1",
            price: None,
        }],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    // Writes are refused as such before any table is loaded (an INSERT of the wrong number of
    // values was told to mend them).
    for (query, kind) in [
        ("CREATE TABLE x AS SELECT 1", "CREATE"),
        ("DROP TABLE gold.dim_product", "DROP"),
        ("INSERT INTO gold.dim_product VALUES ('p9')", "INSERT"),
        ("DELETE FROM gold.dim_product", "DELETE"),
        ("COPY gold.dim_product TO '/tmp/out.csv'", "COPY"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE",
        ),
    ] {
        let error = wh.warehouse.sql(&[PRODUCT], query).await.expect_err(query);
        assert_eq!(
            error.to_string(),
            format!(
                "query failed: `{kind}` is refused: `sql` runs read-only queries (SELECT, WITH, \
                 EXPLAIN, DESCRIBE, SHOW); tables are written by pipelines"
            ),
            "{query}"
        );
    }
    let error = wh
        .warehouse
        .sql(&[PRODUCT], "SET datafusion.execution.batch_size = 1")
        .await
        .expect_err("SET");
    assert!(
        error.to_string().contains("Statement not supported"),
        "{error}"
    );

    let df = wh
        .warehouse
        .sql(&[PRODUCT], "SELECT count(*) FROM gold.dim_product")
        .await
        .expect("still there");
    assert_eq!(render(df).await, lines(&["1"]));
}

#[tokio::test]
async fn warehouse_sessions_parse_decimal_text_without_arrows_cast() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let sql = "SELECT CAST(t.price AS DECIMAL(10, 2)) AS price \
               FROM (VALUES ('1.50'), ('323.74'), (NULL)) AS t(price)";
    let explained = render(session.sql(&format!("EXPLAIN {sql}")).await.expect("plans")).await;
    assert!(
        explained.iter().any(|line| line.contains("parse_decimal")),
        "{explained:?}"
    );
    assert_eq!(
        render(session.sql(sql).await.expect("plans")).await,
        vec!["1.50", "323.74", "∅"]
    );
}

#[tokio::test]
async fn a_query_reads_a_table_as_of_a_version_or_a_time() {
    use lakehouse_runtime::store::AsOf;
    let wh = TempWarehouse::new();
    for (product_id, cents) in [("p1", 100), ("p1", 150)] {
        let row = P {
            product_id,
            price: Some(Decimal(cents)),
        };
        write(&wh.warehouse, PRODUCT, &[row], WriteOptions::default())
            .await
            .expect("write");
    }
    let history = wh.warehouse.history(PRODUCT, 10).await.expect("history");
    let versions: Vec<(u64, &str)> = history
        .iter()
        .map(|c| (c.version, c.operation.as_str()))
        .collect();
    assert_eq!(versions, [(2, "MERGE"), (1, "MERGE"), (0, "CREATE TABLE")]);
    let first_write = history[1].committed_at.expect("a commit time");
    let query = "SELECT product_id, price FROM gold.dim_product";
    let price_as_of = |as_of: AsOf| {
        let warehouse = wh.warehouse.clone();
        async move {
            render(
                warehouse
                    .sql_as_of(&[PRODUCT], query, &[(PRODUCT, as_of)])
                    .await
                    .expect("query"),
            )
            .await
        }
    };
    assert_eq!(price_as_of(AsOf::Version(1)).await, ["p1|1.00"]);
    assert_eq!(price_as_of(AsOf::Time(first_write)).await, ["p1|1.00"]);
    assert_eq!(price_as_of(AsOf::Version(2)).await, ["p1|1.50"]);
    let before = Timestamp(history[2].committed_at.expect("a time").0 - 1);
    let error = wh
        .warehouse
        .sql_as_of(&[PRODUCT], query, &[(PRODUCT, AsOf::Time(before))])
        .await
        .expect_err("before the table existed");
    assert!(
        error
            .to_string()
            .contains("gold.dim_product has no version as of")
            && error
                .to_string()
                .contains(": its earliest readable version, 0, was committed at"),
        "{error}"
    );
    let error = wh
        .warehouse
        .sql_as_of(&[PRODUCT, EMPTY], query, &[(EMPTY, AsOf::Version(0))])
        .await
        .expect_err("not read by the query");
    assert!(
        error
            .to_string()
            .contains("the query does not read bronze.empty_one"),
        "{error}"
    );
}

#[tokio::test]
async fn a_version_whose_log_was_cleaned_up_is_said_to_be_gone() {
    use lakehouse_runtime::store::AsOf;
    let wh = TempWarehouse::new();
    for cents in [100, 150, 175] {
        let row = P {
            product_id: "p1",
            price: Some(Decimal(cents)),
        };
        write(&wh.warehouse, PRODUCT, &[row], WriteOptions::default())
            .await
            .expect("write");
    }
    // As Delta's log cleanup leaves it: a checkpoint at the latest version, the commits
    // before it gone.
    let delta = wh
        .warehouse
        .load(PRODUCT)
        .await
        .expect("load")
        .expect("table");
    lakehouse_runtime::deltalake::checkpoints::create_checkpoint(&delta, None)
        .await
        .expect("checkpoint");
    let log = crate::common::table_folder(&wh.warehouse, PRODUCT).join("_delta_log");
    for version in 0..=1 {
        std::fs::remove_file(log.join(format!("{version:020}.json"))).expect("cleaned up");
    }
    let gone = "gold.dim_product cannot be read at version 1: its log no longer has the commits \
                that version is made of";

    let error = wh
        .warehouse
        .restore(PRODUCT, AsOf::Version(1))
        .await
        .expect_err("gone");
    assert!(error.to_string().contains(gone), "{error}");
    // Its own commit still there, those before it gone: gone too.
    let error = wh
        .warehouse
        .restore(PRODUCT, AsOf::Version(2))
        .await
        .expect_err("gone");
    assert!(
        error
            .to_string()
            .contains("cannot be read at version 2: its log no longer has the commits"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("`orchestrate history gold.dim_product`"),
        "{error}"
    );
    let error = wh
        .warehouse
        .sql_as_of(
            &[PRODUCT],
            "SELECT price FROM gold.dim_product",
            &[(PRODUCT, AsOf::Version(1))],
        )
        .await
        .expect_err("gone");
    assert!(error.to_string().contains(gone), "{error}");
    // The versions still there are read as before.
    let prices = wh
        .warehouse
        .sql_as_of(
            &[PRODUCT],
            "SELECT price FROM gold.dim_product",
            &[(PRODUCT, AsOf::Version(3))],
        )
        .await
        .expect("readable");
    assert_eq!(render(prices).await, ["1.75"]);
}

#[tokio::test]
async fn a_table_is_restored_to_an_earlier_version_in_a_new_commit() {
    use lakehouse_runtime::store::AsOf;
    let wh = TempWarehouse::new();
    for cents in [100, 150, 175] {
        let row = P {
            product_id: "p1",
            price: Some(Decimal(cents)),
        };
        write(&wh.warehouse, PRODUCT, &[row], WriteOptions::default())
            .await
            .expect("write");
    }
    let prices = || async {
        render(
            wh.warehouse
                .sql(&[PRODUCT], "SELECT price FROM gold.dim_product")
                .await
                .expect("query"),
        )
        .await
    };
    // A dry run says what would happen, and commits nothing.
    let planned = wh
        .warehouse
        .restore_dry_run(PRODUCT, AsOf::Version(1), false)
        .await
        .expect("dry run");
    assert_eq!(
        (planned.restored, planned.version, planned.dry_run),
        (1, 3, true)
    );
    assert_eq!(prices().await, ["1.75"]);
    let report = wh
        .warehouse
        .restore(PRODUCT, AsOf::Version(1))
        .await
        .expect("restore");
    assert_eq!((report.restored, report.version), (1, 4));
    assert_eq!(
        (planned.files_removed, planned.files_restored),
        (report.files_removed, report.files_restored),
        "the dry run counted what the restore did"
    );
    assert!(
        planned.files_removed > 0 && planned.files_restored > 0,
        "{planned:?}"
    );
    assert!(!report.dry_run);
    assert_eq!(prices().await, ["1.00"]);
    let history = wh.warehouse.history(PRODUCT, 1).await.expect("history");
    assert_eq!(history[0].operation, "RESTORE");
    // By time: the state after the second write.
    let second = wh.warehouse.history(PRODUCT, 10).await.expect("history")[2]
        .committed_at
        .expect("a time");
    wh.warehouse
        .restore(PRODUCT, AsOf::Time(second))
        .await
        .expect("restore by time");
    assert_eq!(prices().await, ["1.50"]);
    let error = wh
        .warehouse
        .restore(lakehouse_runtime::ledger::RunRecord::DEF, AsOf::Version(0))
        .await
        .expect_err("a ledger table");
    assert!(
        error
            .to_string()
            .contains("lakehouse.runs is a ledger table"),
        "{error}"
    );
    let error = wh
        .warehouse
        .restore(PRODUCT, AsOf::Version(5))
        .await
        .expect_err("the latest version");
    assert!(
        error
            .to_string()
            .contains("gold.dim_product is at version 5 already"),
        "{error}"
    );
    // Vacuumed past version 1: its files are gone.
    wh.warehouse
        .vacuum(PRODUCT, Some(std::time::Duration::ZERO), false, true)
        .await
        .expect("vacuum");
    let error = wh
        .warehouse
        .restore(PRODUCT, AsOf::Version(1))
        .await
        .expect_err("files gone")
        .to_string();
    assert!(
        error.contains(
            "gold.dim_product cannot be restored to version 1: 1 data file(s) of that version are gone (vacuumed"
        ),
        "{error}"
    );
    // Its dry run says so too, rather than approve it.
    let error = wh
        .warehouse
        .restore_dry_run(PRODUCT, AsOf::Version(1), false)
        .await
        .expect_err("files gone")
        .to_string();
    assert!(
        error.contains(
            "gold.dim_product cannot be restored to version 1: 1 data file(s) of that version are gone"
        ),
        "{error}"
    );
}

/// Written daily; stale after a day and a bit.
#[derive(Table, Serialize)]
#[table(schema = "gold", name = "daily", freshness = "26h")]
pub struct Daily {
    pub n: i64,
}

#[tokio::test]
async fn a_table_older_than_its_freshness_is_stale() {
    let wh = TempWarehouse::new();
    let table = <Daily as lakehouse_runtime::Table>::DEF;
    let tables = [table, PRODUCT];
    let stale = wh
        .warehouse
        .stale_tables(&tables, Timestamp::now())
        .await
        .expect("stale");
    assert_eq!(
        stale.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ["gold.daily has no data written in its latest 100 commits (freshness 1day 2h)"]
    );
    write(
        &wh.warehouse,
        table,
        &[Daily { n: 1 }],
        WriteOptions::default(),
    )
    .await
    .expect("write");
    let written = wh.warehouse.history(table, 1).await.expect("history")[0]
        .committed_at
        .expect("a time");
    let fresh = wh
        .warehouse
        .stale_tables(&tables, Timestamp(written.0 + 26 * 3_600_000_000))
        .await
        .expect("stale");
    assert!(fresh.is_empty(), "{fresh:?}");
    let later = wh
        .warehouse
        .stale_tables(&tables, Timestamp(written.0 + 27 * 3_600_000_000))
        .await
        .expect("stale");
    assert_eq!(
        later.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ["gold.daily was last written 1day 3h ago, more than its freshness (1day 2h)"]
    );
    // `check` reads the same from one load of the table.
    let health = wh.warehouse.health(table).await.expect("health");
    assert_eq!(health.latest_data_write, Some(written));
    assert!(health.drift.is_empty() && health.missing_files.is_empty());
    assert_eq!(health.unwritable, None);
    assert_eq!(
        health.stale(table, Timestamp(written.0 + 26 * 3_600_000_000)),
        None
    );
    assert_eq!(
        health
            .stale(table, Timestamp(written.0 + 27 * 3_600_000_000))
            .map(|s| s.to_string()),
        Some("gold.daily was last written 1day 3h ago, more than its freshness (1day 2h)".into())
    );
    let never = wh.warehouse.health(PRODUCT).await.expect("health");
    assert_eq!(never.latest_data_write, None);
    assert_eq!(
        never.stale(PRODUCT, Timestamp::now()),
        None,
        "no freshness declared"
    );
}

/// One row a write.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "ticks_by_time")]
pub struct TickByTime {
    pub n: i64,
}

#[tokio::test]
async fn a_time_reads_the_latest_version_committed_by_then_among_many() {
    use lakehouse_runtime::store::AsOf;
    let wh = TempWarehouse::new();
    let table = <TickByTime as lakehouse_runtime::Table>::DEF;
    for n in 0..24 {
        write(
            &wh.warehouse,
            table,
            &[TickByTime { n }],
            WriteOptions::default(),
        )
        .await
        .expect("write");
    }
    let history = wh.warehouse.history(table, 100).await.expect("history");
    let times: Vec<(u64, Timestamp)> = history
        .iter()
        .map(|c| (c.version, c.committed_at.expect("a commit time")))
        .collect();
    // Each version's own time reads the latest version committed by then (commits sharing a
    // millisecond read the last of them), as a scan of every commit would tell.
    for (_, time) in &times {
        let expected = times
            .iter()
            .filter(|(_, t)| t <= time)
            .map(|(v, _)| *v)
            .max()
            .expect("one at least");
        let count = render(
            wh.warehouse
                .sql_as_of(
                    &[table],
                    "SELECT count(*) FROM bronze.ticks_by_time",
                    &[(table, AsOf::Time(*time))],
                )
                .await
                .expect("query"),
        )
        .await;
        // Version 0 creates the table; version v holds v rows.
        assert_eq!(count, [expected.to_string()], "as of {time}");
    }
}

/// Counts, with a query that may be mistyped.
#[derive(Table)]
#[table(schema = "gold", name = "sql_counts", mode = overwrite)]
pub struct SqlCount {
    pub n: i64,
}

#[pipeline(retries = 2)]
pub async fn sql_counts(cx: &Ctx) -> Result<Frame<SqlCount>> {
    let query = match cx.settings().get("case").unwrap_or_default() {
        "syntax" => "SELEC 1 AS n",
        "unknown_table" => "SELECT count(*) AS n FROM gold.nosuch",
        _ => "SELECT CAST(1 AS BIGINT) AS n",
    };
    cx.sql(query).await
}

#[tokio::test]
async fn a_query_that_cannot_plan_is_not_retried() {
    use lakehouse_runtime::orchestrator::{Orchestrator, RunConfig, Status};
    let wh = TempWarehouse::new();
    let ours = lakehouse_runtime::Registry::from_inventory()
        .expect("graph")
        .pipelines()
        .iter()
        .copied()
        .filter(|p| p.name == "sql_counts")
        .collect::<Vec<_>>();
    let registry = lakehouse_runtime::Registry::new(ours).expect("valid");
    let orchestrator = Orchestrator::new(registry, wh.warehouse.clone());
    for (case, expected) in [
        ("syntax", "SQL failed: SQL error: ParserError"),
        (
            "unknown_table",
            "gold.nosuch' not found (SQL reads the tables the pipeline takes",
        ),
    ] {
        let mut config = RunConfig::default();
        config.settings.set("case", case);
        let report = orchestrator.run(&config).await.expect("run");
        let result = report.result("sql_counts").expect("ran");
        assert_eq!(
            (result.status, result.attempts),
            (Status::Failed, 1),
            "{case}"
        );
        let error = result.error.clone().unwrap_or_default();
        assert!(error.contains(expected), "{case}: {error}");
    }
}

/// An event, with its time.
#[derive(Table)]
#[table(schema = "bronze", name = "stamped")]
pub struct Stamped {
    pub at: Timestamp,
}

#[tokio::test]
async fn sql_timestamps_of_another_unit_say_how_to_cast_them() {
    let session = datafusion::prelude::SessionContext::new();
    // SQL's TIMESTAMP is nanoseconds: casting again to TIMESTAMP would not help.
    let nanos = session
        .sql("SELECT CAST('2024-01-01T00:00:00Z' AS TIMESTAMP) AS at")
        .await
        .expect("query");
    let error = Frame::<Stamped>::from_dataframe(nanos)
        .err()
        .expect("nanoseconds")
        .to_string();
    assert!(
        error.contains("column `at` is declared TIMESTAMP")
            && error.contains("cast it to microseconds in UTC (SQL: `CAST(x AS TIMESTAMP(6))`"),
        "{error}"
    );
    // The cast it says does.
    let micros = session
        .sql("SELECT CAST('2024-01-01T00:00:00Z' AS TIMESTAMP(6)) AS at")
        .await
        .expect("query");
    let stamped = Frame::<Stamped>::from_dataframe(micros).expect("microseconds");
    assert_eq!(stamped.count().await.expect("rows"), 1);
}

/// A daily report before it had a NOT NULL `region`.
mod report_before_region {
    #[derive(lakehouse_runtime::Table)]
    #[table(schema = "gold", name = "daily_report", mode = overwrite)]
    pub struct DailyReport {
        pub day: i32,
    }
}

/// The report with its `region` (a whole-table overwrite may add a NOT NULL column).
#[derive(Table)]
#[table(schema = "gold", name = "daily_report", mode = overwrite)]
pub struct DailyReport {
    pub day: i32,
    pub region: String,
}

/// A daily report written without `region` (version 1), then with it (version 2): the
/// declaration with it.
async fn report_with_region_added(wh: &TempWarehouse) -> &'static lakehouse_runtime::TableDef {
    let before = <report_before_region::DailyReport as lakehouse_runtime::Table>::DEF;
    let after = <DailyReport as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        before,
        &[serde_json::json!({"day": 1})],
        WriteOptions::default(),
    )
    .await
    .expect("version 1");
    write(
        &wh.warehouse,
        after,
        &[serde_json::json!({"day": 2, "region": "north"})],
        WriteOptions::default(),
    )
    .await
    .expect("version 2, with region");
    after
}

#[tokio::test]
async fn a_restore_to_a_schema_the_declaration_does_not_fit_is_refused_unless_forced() {
    // Delta's RESTORE brings the version's schema back: without `region`, every reader of the
    // table failed on the missing NOT NULL column until its pipeline wrote it again.
    use lakehouse_runtime::store::AsOf;
    let wh = TempWarehouse::new();
    let after = report_with_region_added(&wh).await;
    let error = wh
        .warehouse
        .restore(after, AsOf::Version(1))
        .await
        .expect_err("no region in version 1")
        .to_string();
    assert!(
        error.contains("gold.daily_report cannot be restored to version 1: that version's schema does not fit the table's declaration")
            && error.contains("region"),
        "{error}"
    );
    assert_eq!(
        render(
            wh.warehouse
                .sql(&[after], "SELECT day, region FROM gold.daily_report")
                .await
                .expect("read")
        )
        .await,
        ["2|north"],
        "nothing restored"
    );
    let report = wh
        .warehouse
        .restore_allowing_drift(after, AsOf::Version(1), true)
        .await
        .expect("forced");
    assert_eq!(report.restored, 1);
}

#[tokio::test]
async fn a_restore_dry_run_names_every_refusal_it_would_meet() {
    use lakehouse_runtime::store::AsOf;
    let wh = TempWarehouse::new();
    let after = report_with_region_added(&wh).await;
    wh.warehouse
        .vacuum(after, Some(std::time::Duration::ZERO), false, true)
        .await
        .expect("vacuum");
    // Version 1 lacks `region`, and its file is gone: both are said, not the first only.
    let error = wh
        .warehouse
        .restore_dry_run(after, AsOf::Version(1), false)
        .await
        .expect_err("refused twice")
        .to_string();
    assert!(
        error.contains(
            "gold.daily_report cannot be restored to version 1: 1 data file(s) of that version \
             are gone"
        ) && error.contains("; that version's schema does not fit the table's declaration"),
        "{error}"
    );
}

#[tokio::test]
async fn a_restore_that_leaves_the_schemas_fit_as_it_is_is_not_refused() {
    // Both versions lack the declared `region` (its pipeline has not run since it was added):
    // the restore changes nothing about the fit, and is not refused for it.
    use lakehouse_runtime::store::AsOf;
    let wh = TempWarehouse::new();
    let before = <report_before_region::DailyReport as lakehouse_runtime::Table>::DEF;
    let after = <DailyReport as lakehouse_runtime::Table>::DEF;
    for day in [1, 2] {
        write(
            &wh.warehouse,
            before,
            &[serde_json::json!({ "day": day })],
            WriteOptions::default(),
        )
        .await
        .expect("a version without region");
    }
    let report = wh
        .warehouse
        .restore(after, AsOf::Version(1))
        .await
        .expect("no drift the table has not now");
    assert_eq!(report.restored, 1);
}

/// Events, as first stored: `legacy` NOT NULL.
mod events_v1 {
    #[derive(lakehouse_runtime::Table)]
    #[table(schema = "bronze", name = "legacy_events")]
    pub struct Events {
        pub id: i64,
        pub legacy: String,
    }
}

/// Events, `legacy` made optional (its NOT NULL dropped by the next write).
mod events_v2 {
    #[derive(lakehouse_runtime::Table)]
    #[table(schema = "bronze", name = "legacy_events")]
    pub struct Events {
        pub id: i64,
        pub legacy: Option<String>,
    }
}

/// Events, `legacy` no longer declared.
#[derive(Table)]
#[table(schema = "bronze", name = "legacy_events")]
pub struct LegacyEvents {
    pub id: i64,
}

#[tokio::test]
async fn a_restore_that_would_refuse_every_write_is_refused() {
    // Now `legacy` is stored nullable and not declared: writes leave it NULL. Restored to its
    // first version, it is NOT NULL again, and every write (which has no value for it) fails.
    use lakehouse_runtime::store::AsOf;
    let wh = TempWarehouse::new();
    let v1 = <events_v1::Events as lakehouse_runtime::Table>::DEF;
    let v2 = <events_v2::Events as lakehouse_runtime::Table>::DEF;
    let now = <LegacyEvents as lakehouse_runtime::Table>::DEF;
    write(
        &wh.warehouse,
        v1,
        &[serde_json::json!({"id": 1, "legacy": "a"})],
        WriteOptions::default(),
    )
    .await
    .expect("v1");
    let first = wh
        .warehouse
        .version(v1)
        .await
        .expect("version")
        .expect("written");
    write(
        &wh.warehouse,
        v2,
        &[serde_json::json!({"id": 2, "legacy": null})],
        WriteOptions::default(),
    )
    .await
    .expect("v2");
    write(
        &wh.warehouse,
        now,
        &[serde_json::json!({"id": 3})],
        WriteOptions::default(),
    )
    .await
    .expect("now");
    let error = wh
        .warehouse
        .restore(now, AsOf::Version(first))
        .await
        .expect_err("writes would fail")
        .to_string();
    assert!(
        error.contains("that version's schema does not fit"),
        "{error}"
    );
}
