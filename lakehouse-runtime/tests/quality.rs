//! Data-quality checks before writes: NOT NULL, unique primary key, resolving foreign keys;
//! blocking checks stop the write, warnings let it through; every finding is recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use lakehouse_runtime::orchestrator::{Orchestrator, RunConfig, Status};
use lakehouse_runtime::prelude::*;
use lakehouse_runtime::{PipelineDescriptor, Registry};

use crate::common::TempWarehouse;

/// A dimension.
#[derive(Table)]
#[table(schema = "gold", name = "q_dim", key(id), mode = merge)]
pub struct QDim {
    pub id: i64,
}

/// Facts with a foreign key, checked blocking.
#[derive(Table)]
#[table(schema = "gold", name = "q_fact", key(fact_id), mode = merge, quality = blocking)]
pub struct QFact {
    pub fact_id: i64,
    pub label: String,
    #[column(references = QDim::id)]
    pub dim_id: Option<i64>,
}

/// The same facts, checked as warnings only.
#[derive(Table)]
#[table(schema = "gold", name = "q_fact_warn", key(fact_id), mode = merge, quality = warn)]
pub struct QFactWarn {
    pub fact_id: i64,
    pub label: String,
    #[column(references = QDim::id)]
    pub dim_id: Option<i64>,
}

#[pipeline]
pub async fn q_dim(cx: &Ctx) -> Result<Frame<QDim>> {
    cx.sql("SELECT CAST(1 AS BIGINT) AS id UNION ALL SELECT CAST(2 AS BIGINT)")
        .await
}

/// Facts chosen by the `case` setting.
async fn facts<T: lakehouse_runtime::Table>(cx: &Ctx) -> Result<Frame<T>> {
    let rows = match cx.settings().get("case").unwrap_or_default() {
        // Fact 12 has no label, fact 11 appears twice, fact 13 points to dimension row 9.
        "bad" => "(10, 'a', 1), (11, 'b', 2), (11, 'c', 2), (12, NULL, 1), (13, 'd', 9)",
        // The same without the NULL label.
        "no_nulls" => "(10, 'a', 1), (11, 'b', 2), (11, 'c', 2), (13, 'd', 9)",
        _ => "(10, 'a', 1), (11, 'b', NULL)",
    };
    cx.sql(&format!(
        "SELECT CAST(column1 AS BIGINT) AS fact_id, column2 AS label, CAST(column3 AS BIGINT) AS dim_id FROM (VALUES {rows})"
    ))
    .await
}

/// With case `bad`, its source also rejected a record.
#[pipeline(depends_on = [q_dim])]
pub async fn q_fact(cx: &Ctx) -> Result<Frame<QFact>> {
    if cx.settings().get("case") == Some("bad") {
        cx.reject([lakehouse_runtime::ctx::Reject {
            source: "https://example.org/facts".to_owned(),
            reason: "`fact_id` is null".to_owned(),
            raw: "{}".to_owned(),
        }]);
    }
    facts(cx).await
}

#[pipeline(depends_on = [q_dim])]
pub async fn q_fact_warn(cx: &Ctx) -> Result<Frame<QFactWarn>> {
    facts(cx).await
}

/// The registered pipelines named `names`.
fn registry(names: &[&str]) -> Registry {
    let all = Registry::from_inventory().expect("graph");
    let ours: Vec<&'static PipelineDescriptor> = all
        .pipelines()
        .iter()
        .copied()
        .filter(|p| names.contains(&p.name))
        .collect();
    Registry::new(ours).expect("valid")
}

fn config(case: &str) -> RunConfig {
    let mut config = RunConfig::default();
    config.settings.set("case", case);
    config
}

#[tokio::test]
async fn clean_output_passes_every_check() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["q_dim", "q_fact", "q_fact_warn"]),
        wh.warehouse.clone(),
    );
    let report = orchestrator.run(&config("good")).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    let issues = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT count(*) FROM lakehouse.quality_issues",
    )
    .await;
    assert_eq!(issues, ["0"]);
}

#[tokio::test]
async fn blocking_checks_stop_the_write_and_warnings_do_not() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["q_dim", "q_fact", "q_fact_warn"]),
        wh.warehouse.clone(),
    );
    // Retries do not apply to a quality failure: the same inputs fail the same way.
    let report = orchestrator
        .run(&RunConfig {
            default_retries: 2,
            ..config("bad")
        })
        .await
        .expect("run");
    let statuses: BTreeMap<_, _> = report.statuses().into_iter().collect();
    assert_eq!(
        statuses,
        BTreeMap::from([
            ("q_dim", Status::Succeeded),
            ("q_fact", Status::Failed),
            ("q_fact_warn", Status::Failed)
        ])
    );
    let error = report
        .result("q_fact")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(
        error.starts_with("data-quality checks failed, nothing written"),
        "{error}"
    );
    assert_eq!(report.result("q_fact").map(|r| r.attempts), Some(1));
    assert_eq!(
        wh.warehouse
            .version(<QFact as lakehouse_runtime::Table>::DEF)
            .await
            .expect("version"),
        None
    );
    // What its source rejected is kept with the failed attempt: it may be why.
    let rejects = orchestrator
        .ledger()
        .rejects(&report.run_id, "q_fact")
        .await
        .expect("rejects");
    assert_eq!(
        rejects
            .iter()
            .map(|r| r.reason.as_str())
            .collect::<Vec<_>>(),
        ["`fact_id` is null"]
    );

    // The warning table records the same findings, the NULL label as blocking: NOT NULL is
    // enforced whatever the quality setting, so nothing is written.
    let warn_error = report
        .result("q_fact_warn")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(
        warn_error.contains(
            "nothing written (not retried: the same inputs fail the same way): \
             gold.q_fact_warn: not_null failed on 1 row(s) (column `label`): filter those rows \
             out, fill them (`coalesce(..)`), or declare the field `Option<_>`; "
        ),
        "{warn_error}"
    );
    // What blocked comes first; the warnings after it are said to be such.
    assert_eq!(
        warn_error.matches(" (a warning)").count(),
        2,
        "{warn_error}"
    );

    let issues = crate::common::query(&wh.warehouse, &lakehouse_runtime::ledger::system_tables(), "SELECT table_name, check_name, column_name, failing_rows, blocking FROM lakehouse.quality_issues").await;
    assert_eq!(
        issues,
        crate::common::lines(&[
            "gold.q_fact|foreign_key_resolves|dim_id|1|true",
            "gold.q_fact|not_null|label|1|true",
            "gold.q_fact|primary_key_unique|fact_id|2|true",
            "gold.q_fact_warn|foreign_key_resolves|dim_id|1|false",
            "gold.q_fact_warn|not_null|label|1|true",
            "gold.q_fact_warn|primary_key_unique|fact_id|2|false",
        ])
    );
}

#[tokio::test]
async fn warnings_are_recorded_and_the_rows_written() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["q_dim", "q_fact", "q_fact_warn"]),
        wh.warehouse.clone(),
    );
    let report = orchestrator.run(&config("no_nulls")).await.expect("run");
    let statuses: BTreeMap<_, _> = report.statuses().into_iter().collect();
    assert_eq!(
        statuses,
        BTreeMap::from([
            ("q_dim", Status::Succeeded),
            ("q_fact", Status::Failed),
            ("q_fact_warn", Status::Succeeded)
        ])
    );
    let written = crate::common::query(
        &wh.warehouse,
        &[<QFactWarn as lakehouse_runtime::Table>::DEF],
        "SELECT count(*) FROM gold.q_fact_warn",
    )
    .await;
    assert_eq!(written, ["3"]);
    let issues = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT check_name, blocking FROM lakehouse.quality_issues \
         WHERE table_name = 'gold.q_fact_warn'",
    )
    .await;
    assert_eq!(
        issues,
        crate::common::lines(&["foreign_key_resolves|false", "primary_key_unique|false"])
    );
}

#[tokio::test]
async fn a_replayed_commit_records_the_warnings_the_ledger_lost() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_dim", "q_fact_warn"]), wh.warehouse.clone());
    let report = orchestrator.run(&config("no_nulls")).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    let issues = || async {
        crate::common::query(
            &wh.warehouse,
            &lakehouse_runtime::ledger::system_tables(),
            "SELECT check_name, blocking FROM lakehouse.quality_issues \
             WHERE table_name = 'gold.q_fact_warn'",
        )
        .await
    };
    let warnings =
        crate::common::lines(&["foreign_key_resolves|false", "primary_key_unique|false"]);
    assert_eq!(issues().await, warnings);
    // As if the attempt died after its commit: neither it nor its findings were recorded, but
    // an earlier, blocked attempt's findings were: a blocking one, and a warning of its own.
    let predicate = |table: &str| format!("run_id = '{}' AND {table}", report.run_id);
    crate::common::delete_rows(
        &wh.warehouse,
        lakehouse_runtime::ledger::QualityIssue::DEF,
        Some(&predicate("table_name = 'gold.q_fact_warn'")),
    )
    .await;
    crate::common::delete_rows(
        &wh.warehouse,
        lakehouse_runtime::ledger::RunRecord::DEF,
        Some(&predicate("pipeline = 'q_fact_warn'")),
    )
    .await;
    let blocking = lakehouse_runtime::ledger::QualityIssue {
        run_id: report.run_id.clone(),
        table_name: "gold.q_fact_warn".to_owned(),
        column_name: Some("label".to_owned()),
        check_name: "not_null".to_owned(),
        value: None,
        failing_rows: 1,
        blocking: true,
        checked_at: Timestamp(0),
    };
    let earlier_warning = lakehouse_runtime::ledger::QualityIssue {
        column_name: Some("dim_id".to_owned()),
        check_name: "foreign_key_resolves".to_owned(),
        value: Some("7".to_owned()),
        blocking: false,
        ..blocking.clone()
    };
    orchestrator
        .ledger()
        .append(&[blocking, earlier_warning])
        .await
        .expect("append");
    // The resume replays the commit, and records its warnings from it.
    let resumed = orchestrator
        .resume(&report.run_id, &config("no_nulls"))
        .await
        .expect("resume");
    let replayed = resumed.result("q_fact_warn").expect("planned");
    assert_eq!(
        (replayed.status, replayed.replayed),
        (Status::Succeeded, true)
    );
    let mut expected = warnings.clone();
    expected.push("not_null|true".to_owned());
    expected.push("foreign_key_resolves|false".to_owned());
    expected.sort();
    assert_eq!(issues().await, expected);
}

/// Rows seen by `rows_seen(..)`, by the name a run passes in its `rows_seen` setting.
static ROWS_SEEN: LazyLock<Mutex<HashMap<String, Arc<AtomicUsize>>>> =
    LazyLock::new(Default::default);

fn rows_seen_counter(name: &str) -> Arc<AtomicUsize> {
    let mut counters = ROWS_SEEN.lock().expect("counters");
    counters.entry(name.to_owned()).or_default().clone()
}

/// `rows_seen(x)`: `x`, counting the rows it passes through, i.e. executions of its plan.
#[derive(Debug)]
struct RowsSeen {
    signature: Signature,
    seen: Arc<AtomicUsize>,
}

impl PartialEq for RowsSeen {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.seen, &other.seen)
    }
}

impl Eq for RowsSeen {}

impl std::hash::Hash for RowsSeen {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.seen).hash(state);
    }
}

impl ScalarUDFImpl for RowsSeen {
    fn name(&self) -> &str {
        "rows_seen"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        self.seen.fetch_add(args.number_rows, Ordering::SeqCst);
        Ok(args.args[0].clone())
    }
}

/// Facts checked for everything (NOT NULL, unique key, resolving foreign key), written whole.
#[derive(Table)]
#[table(schema = "gold", name = "q_counted", key(fact_id), mode = overwrite, quality = blocking)]
pub struct QCounted {
    pub fact_id: i64,
    pub label: String,
    #[column(references = QDim::id)]
    pub dim_id: Option<i64>,
}

/// Three facts whose key goes through `rows_seen`.
#[pipeline(depends_on = [q_dim])]
pub async fn q_counted(cx: &Ctx) -> Result<Frame<QCounted>> {
    let seen = rows_seen_counter(cx.settings().get("rows_seen").unwrap_or_default());
    cx.session().register_udf(ScalarUDF::from(RowsSeen {
        signature: Signature::any(1, Volatility::Volatile),
        seen,
    }));
    cx.sql(
        "SELECT rows_seen(CAST(column1 AS BIGINT)) AS fact_id, column2 AS label, \
         CAST(column3 AS BIGINT) AS dim_id FROM (VALUES (10, 'a', 1), (11, 'b', 2), (12, 'c', NULL))",
    )
    .await
}

#[tokio::test]
async fn every_check_is_answered_by_one_execution_of_the_output() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_dim", "q_counted"]), wh.warehouse.clone());
    let mut config = RunConfig::default();
    config.settings.set("rows_seen", "one execution");
    let report = orchestrator.run(&config).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    // The three rows went through the plan twice: once for the checks (not NULL, unique key,
    // foreign key, together), once for the write.
    assert_eq!(
        rows_seen_counter("one execution").load(Ordering::SeqCst),
        2 * 3
    );
    let written = crate::common::query(
        &wh.warehouse,
        &[<QCounted as lakehouse_runtime::Table>::DEF],
        "SELECT count(*) FROM gold.q_counted",
    )
    .await;
    assert_eq!(written, ["3"]);
}

/// Transfers between two dimension rows: an append table (its key may repeat), with two foreign
/// keys into the same dimension.
#[derive(Table)]
#[table(schema = "gold", name = "q_transfers", key(transfer_id), mode = append, quality = warn)]
pub struct QTransfers {
    pub transfer_id: i64,
    #[column(references = QDim::id)]
    pub from_id: Option<i64>,
    #[column(references = QDim::id)]
    pub to_id: Option<i64>,
}

/// Transfer 1 repeats (allowed), 2 and 3 leave from unknown rows 7 and 5, 3 goes to 8.
#[pipeline(depends_on = [q_dim])]
pub async fn q_transfers(cx: &Ctx) -> Result<Frame<QTransfers>> {
    cx.sql(
        "SELECT CAST(column1 AS BIGINT) AS transfer_id, CAST(column2 AS BIGINT) AS from_id, \
         CAST(column3 AS BIGINT) AS to_id \
         FROM (VALUES (1, 1, 2), (1, 1, 2), (2, 7, 1), (3, 5, 8), (4, NULL, 1))",
    )
    .await
}

#[tokio::test]
async fn foreign_keys_into_one_dimension_are_checked_each_with_a_sample() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_dim", "q_transfers"]), wh.warehouse.clone());
    let report = orchestrator.run(&RunConfig::default()).await.expect("run");
    // Warnings only: the rows are written, the repeated key included.
    assert!(report.succeeded(), "{}", report.render(false));
    let written = crate::common::query(
        &wh.warehouse,
        &[<QTransfers as lakehouse_runtime::Table>::DEF],
        "SELECT count(*) FROM gold.q_transfers",
    )
    .await;
    assert_eq!(written, ["5"]);

    let issues = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT check_name, column_name, failing_rows, value FROM lakehouse.quality_issues",
    )
    .await;
    // No uniqueness finding for an append table; a NULL key resolves nothing and fails nothing;
    // the sample is the smallest unresolved value.
    assert_eq!(
        issues,
        crate::common::lines(&[
            "foreign_key_resolves|from_id|2|5 (not in gold.q_dim.id)",
            "foreign_key_resolves|to_id|1|8 (not in gold.q_dim.id)",
        ])
    );
}

/// Orders with expectations: a negative quantity is dropped, an unknown status only counted,
/// an order without a customer fails the write.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_orders",
    mode = overwrite,
    expect(name = "positive_quantity", expr = "quantity > 0", on_fail = drop),
    expect(name = "known_status", expr = "status IN ('open', 'shipped')"),
    expect(name = "has_customer", expr = "customer_id IS NOT NULL", on_fail = fail)
)]
pub struct QOrders {
    pub order_id: i64,
    pub quantity: Option<i64>,
    pub status: String,
    pub customer_id: Option<String>,
}

#[pipeline]
pub async fn q_orders(cx: &Ctx) -> Result<Frame<QOrders>> {
    let rows = match cx.settings().get("case").unwrap_or_default() {
        // Order 2 has a negative quantity, order 3 an unknown status, order 4 no quantity
        // (NULL passes: only a false condition fails an expectation, as in SQL's CHECK;
        // Delta's CHECK constraints fail a NULL).
        "dirty" => {
            "(1, 5, 'open', 'c1'), (2, -1, 'open', 'c1'), (3, 2, 'lost', 'c2'), (4, NULL, 'open', 'c2')"
        }
        // Order 3 has an unknown status (a warning), and order 5 no customer (blocking).
        "lost_no_customer" => "(1, 5, 'open', 'c1'), (3, 2, 'lost', 'c2'), (5, 1, 'open', NULL)",
        // The same, the customer found.
        "lost" => "(1, 5, 'open', 'c1'), (3, 2, 'lost', 'c2'), (5, 1, 'open', 'c3')",
        // Every quantity negative: every row dropped.
        "all_negative" => "(1, -5, 'open', 'c1'), (2, -1, 'open', 'c1')",
        // Order 5 has no customer.
        _ => "(1, 5, 'open', 'c1'), (5, 1, 'open', NULL)",
    };
    cx.sql(&format!(
        "SELECT CAST(column1 AS BIGINT) AS order_id, CAST(column2 AS BIGINT) AS quantity, \
         column3 AS status, column4 AS customer_id FROM (VALUES {rows})"
    ))
    .await
}

#[tokio::test]
async fn expectations_drop_count_or_fail() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_orders"]), wh.warehouse.clone());
    let report = orchestrator.run(&config("dirty")).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    let written = crate::common::query(
        &wh.warehouse,
        &[<QOrders as lakehouse_runtime::Table>::DEF],
        "SELECT order_id, status FROM silver.q_orders",
    )
    .await;
    assert_eq!(
        written,
        ["1|open", "3|lost", "4|open"],
        "order 2 dropped, order 3 kept"
    );
    let system = lakehouse_runtime::ledger::system_tables();
    let issues = || {
        crate::common::query(
            &wh.warehouse,
            &system,
            "SELECT column_name, value, failing_rows, blocking FROM lakehouse.quality_issues",
        )
    };
    assert_eq!(
        issues().await,
        [
            "known_status|status IN ('open', 'shipped')|1|false",
            "positive_quantity|quantity > 0|1|false",
        ]
    );

    // A replay of the run's commit (here forced; after an attempt that died between its commit
    // and its findings, a retry or resume) records the findings its commit lists, once.
    let first_run = report.run_id.clone();
    crate::common::delete_rows(
        &wh.warehouse,
        lakehouse_runtime::ledger::QualityIssue::DEF,
        None,
    )
    .await;
    assert!(issues().await.is_empty());
    for _ in 0..2 {
        let forced = RunConfig {
            rerun_succeeded: true,
            ..config("dirty")
        };
        let replayed = orchestrator
            .resume(&first_run, &forced)
            .await
            .expect("resume");
        assert!(replayed.succeeded(), "{}", replayed.render(false));
    }
    assert_eq!(issues().await.len(), 2);

    let report = orchestrator.run(&config("no_customer")).await.expect("run");
    let failed = report.result("q_orders").expect("ran");
    assert_eq!((failed.status, failed.attempts), (Status::Failed, 1));
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains(
            "silver.q_orders: expectation `has_customer` (customer_id IS NOT NULL) failed on 1 row(s)"
        ),
        "{error}"
    );
    assert_eq!(issues().await.len(), 3);
    // Resumed, it fails the same way: its findings are in the ledger once.
    let resumed = orchestrator
        .resume(&report.run_id, &config("no_customer"))
        .await
        .expect("resume");
    assert!(!resumed.succeeded(), "{}", resumed.render(false));
    assert_eq!(issues().await.len(), 3);
    let kept = crate::common::query(
        &wh.warehouse,
        &[<QOrders as lakehouse_runtime::Table>::DEF],
        "SELECT count(*) FROM silver.q_orders",
    )
    .await;
    assert_eq!(kept, ["3"], "nothing written: the first run's rows stay");
}

#[tokio::test]
async fn a_resume_that_commits_records_the_warnings_of_its_blocked_attempt_once() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_orders"]), wh.warehouse.clone());
    let blocked = orchestrator
        .run(&config("lost_no_customer"))
        .await
        .expect("run");
    assert!(!blocked.succeeded(), "{}", blocked.render(false));
    let resumed = orchestrator
        .resume(&blocked.run_id, &config("lost"))
        .await
        .expect("resume");
    assert!(resumed.succeeded(), "{}", resumed.render(false));
    let issues = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT column_name, failing_rows, blocking FROM lakehouse.quality_issues",
    )
    .await;
    assert_eq!(issues, ["has_customer|1|true", "known_status|1|false"]);
}

/// Orders whose expectation only warns, and whose CHECK constraint fails the write.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_checked_orders",
    expect(name = "known_status", expr = "status IN ('open', 'shipped')"),
    check(name = "positive_quantity", expr = "quantity > 0")
)]
pub struct QCheckedOrders {
    pub order_id: i64,
    pub quantity: i64,
    pub status: String,
}

/// An unknown status (a warning) and a negative quantity (a failed write), at every attempt.
#[pipeline(retries = 1)]
pub async fn q_checked_orders(cx: &Ctx) -> Result<Frame<QCheckedOrders>> {
    cx.reject([lakehouse_runtime::ctx::Reject {
        source: "https://example.org/orders".to_owned(),
        reason: "`order_id` is null".to_owned(),
        raw: "{}".to_owned(),
    }]);
    cx.sql("SELECT CAST(1 AS BIGINT) AS order_id, CAST(-1 AS BIGINT) AS quantity, 'lost' AS status")
        .await
}

#[tokio::test]
async fn warnings_are_recorded_with_the_write_that_commits_only() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_checked_orders"]), wh.warehouse.clone());
    let config = RunConfig {
        retry_delay: std::time::Duration::from_millis(1),
        ..RunConfig::default()
    };
    let report = orchestrator.run(&config).await.expect("run");
    let failed = report.result("q_checked_orders").expect("ran");
    // A CHECK violation is a quality failure: the same rows would fail again, so no retry.
    assert_eq!(
        (failed.status, failed.attempts),
        (Status::Failed, 1),
        "{}",
        report.render(false)
    );
    let error = failed.error.clone().unwrap_or_default();
    assert_eq!(
        error,
        "silver.q_checked_orders: at least 1 row(s) of the write fail its CHECK constraints \
         `positive_quantity` (quantity > 0) or a NOT NULL column (a NULL fails a CHECK, as \
         Delta evaluates it); nothing was committed, and the failing rows are in the log"
    );
    // The attempt counted the unknown status; it wrote nothing, so it recorded nothing.
    let issues = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT count(*) FROM lakehouse.quality_issues",
    )
    .await;
    assert_eq!(issues, ["0"]);
    // The record its source rejected is kept with the failed attempt, as with any blocked
    // write: it may be why.
    let rejects = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT reason FROM lakehouse.rejects",
    )
    .await;
    assert_eq!(rejects, ["`order_id` is null"]);
}

/// Stations, the complete list at every run, whose capacity must be positive.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_stations",
    key(id),
    mode = merge,
    expect(name = "positive_capacity", expr = "capacity > 0", on_fail = drop),
    expect(name = "nonzero_capacity", expr = "capacity <> 0")
)]
pub struct QStations {
    pub id: i64,
    pub capacity: i64,
}

#[pipeline(full_snapshot, retries = 2)]
pub async fn q_stations(cx: &Ctx) -> Result<Frame<QStations>> {
    let rows = match cx.settings().get("case").unwrap_or_default() {
        "all_bad" => "(1, 0), (2, -3)",
        "one_bad" => "(1, 10), (2, -3)",
        // The source sent one record, which was rejected.
        "empty" => {
            cx.reject([lakehouse_runtime::ctx::Reject {
                source: "https://example.org/stations".to_owned(),
                reason: "`id` is null".to_owned(),
                raw: "{}".to_owned(),
            }]);
            return cx.empty();
        }
        _ => "(1, 10), (2, 20)",
    };
    cx.sql(&format!(
        "SELECT CAST(column1 AS BIGINT) AS id, CAST(column2 AS BIGINT) AS capacity FROM (VALUES {rows})"
    ))
    .await
}

#[tokio::test]
async fn a_full_snapshot_whose_every_row_is_dropped_fails_as_a_quality_failure() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_stations"]), wh.warehouse.clone());
    let report = orchestrator.run(&config("good")).await.expect("run 1");
    assert!(report.succeeded(), "{}", report.render(false));
    let report = orchestrator.run(&config("all_bad")).await.expect("run 2");
    let failed = report.result("q_stations").expect("ran");
    assert_eq!(
        (failed.status, failed.attempts),
        (Status::Failed, 1),
        "not retried"
    );
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("every row failed a `drop` expectation, and `full_snapshot` would delete every row of silver.q_stations")
            && error.contains("expectation `positive_capacity` (capacity > 0) failed on 2 row(s)"),
        "{error}"
    );
    let issues = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT column_name, failing_rows, blocking FROM lakehouse.quality_issues ORDER BY 1",
    )
    .await;
    // The warning stays one: it blocked nothing.
    assert_eq!(
        issues,
        ["nonzero_capacity|1|false", "positive_capacity|2|true"]
    );
    let stations = crate::common::query(
        &wh.warehouse,
        &[<QStations as lakehouse_runtime::Table>::DEF],
        "SELECT id, capacity FROM silver.q_stations",
    )
    .await;
    assert_eq!(stations, ["1|10", "2|20"], "the stations stay");
}

#[tokio::test]
async fn a_full_snapshots_dropped_row_counts_as_missing() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_stations"]), wh.warehouse.clone());
    let report = orchestrator.run(&config("good")).await.expect("run 1");
    assert!(report.succeeded(), "{}", report.render(false));
    let report = orchestrator.run(&config("one_bad")).await.expect("run 2");
    assert!(report.succeeded(), "{}", report.render(false));
    let stations = crate::common::query(
        &wh.warehouse,
        &[<QStations as lakehouse_runtime::Table>::DEF],
        "SELECT id, capacity FROM silver.q_stations",
    )
    .await;
    assert_eq!(
        stations,
        ["1|10"],
        "station 2's row was dropped: its key is deleted"
    );
}

#[tokio::test]
async fn an_overwrite_whose_every_row_is_dropped_is_written_empty() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_orders"]), wh.warehouse.clone());
    let report = orchestrator.run(&config("dirty")).await.expect("run 1");
    assert!(report.succeeded(), "{}", report.render(false));
    let report = orchestrator
        .run(&config("all_negative"))
        .await
        .expect("run 2");
    assert!(report.succeeded(), "{}", report.render(false));
    let orders = crate::common::query(
        &wh.warehouse,
        &[<QOrders as lakehouse_runtime::Table>::DEF],
        "SELECT count(*) FROM silver.q_orders",
    )
    .await;
    assert_eq!(orders, ["0"], "as Delta Live Tables does");
}

/// Amounts by region, recomputed a region at a time; a negative amount is dropped.
#[derive(Table)]
#[table(
    schema = "gold",
    name = "q_regional",
    partition_by(region),
    mode = overwrite,
    overwrite = partitions,
    expect(name = "positive_amount", expr = "amount > 0", on_fail = drop)
)]
pub struct QRegional {
    pub region: String,
    pub amount: i64,
}

#[pipeline]
pub async fn q_regional(cx: &Ctx) -> Result<Frame<QRegional>> {
    let rows = match cx.settings().get("case").unwrap_or_default() {
        // A recomputation of the north, every row of it dropped.
        "north_negative" => "('north', -1)",
        _ => "('north', 5), ('south', 7)",
    };
    cx.sql(&format!(
        "SELECT column1 AS region, CAST(column2 AS BIGINT) AS amount FROM (VALUES {rows})"
    ))
    .await
}

#[tokio::test]
async fn a_partition_overwrite_whose_every_row_is_dropped_replaces_no_partition() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_regional"]), wh.warehouse.clone());
    let report = orchestrator.run(&config("good")).await.expect("run 1");
    assert!(report.succeeded(), "{}", report.render(false));
    let report = orchestrator
        .run(&config("north_negative"))
        .await
        .expect("run 2");
    assert!(report.succeeded(), "{}", report.render(false));
    let amounts = crate::common::query(
        &wh.warehouse,
        &[<QRegional as lakehouse_runtime::Table>::DEF],
        "SELECT region, amount FROM gold.q_regional ORDER BY region",
    )
    .await;
    assert_eq!(amounts, ["north|5", "south|7"]);
}

#[tokio::test]
async fn the_rejects_of_a_failed_attempt_are_recorded_once_its_retries_are_spent() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_stations"]), wh.warehouse.clone());
    let config = RunConfig {
        retry_delay: std::time::Duration::from_millis(1),
        ..config("empty")
    };
    let report = orchestrator.run(&config).await.expect("run");
    let failed = report.result("q_stations").expect("ran");
    // An empty full snapshot may be the source's passing fault: retried, and nothing committed.
    assert_eq!((failed.status, failed.attempts), (Status::Failed, 3));
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("the output is empty")),
        "{:?}",
        failed.error
    );
    let rejects = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT count(*) FROM lakehouse.rejects",
    )
    .await;
    // The retried attempts keep none (a retry may commit, recording its own); the last one,
    // not retried, keeps its reject: it is why the snapshot was empty.
    assert_eq!(rejects, ["1"], "kept once, by the last attempt");
}

/// Orders whose NOT NULL customer is checked by expectations that drop the rows failing them.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_customer_orders",
    expect(name = "has_customer", expr = "customer_id IS NOT NULL", on_fail = drop),
    expect(name = "named_customer", expr = "customer_id <> ''", on_fail = drop)
)]
pub struct QCustomerOrders {
    pub order_id: i64,
    pub customer_id: String,
}

#[pipeline]
pub async fn q_customer_orders(cx: &Ctx) -> Result<Frame<QCustomerOrders>> {
    cx.sql(
        "SELECT CAST(column1 AS BIGINT) AS order_id, column2 AS customer_id \
         FROM (VALUES (1, 'C1'), (2, NULL), (3, ''))",
    )
    .await
}

#[tokio::test]
async fn expectations_drop_the_nulls_of_a_not_null_column() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_customer_orders"]), wh.warehouse.clone());
    let report = orchestrator.run(&RunConfig::default()).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    let orders = crate::common::query(
        &wh.warehouse,
        &[<QCustomerOrders as lakehouse_runtime::Table>::DEF],
        "SELECT order_id, customer_id FROM silver.q_customer_orders",
    )
    .await;
    assert_eq!(orders, ["1|C1"]);
    let issues = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT column_name, failing_rows, blocking FROM lakehouse.quality_issues ORDER BY 1",
    )
    .await;
    assert_eq!(issues, ["has_customer|1|false", "named_customer|1|false"]);
}

/// The same orders, output as the union of two frames.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_union_orders",
    expect(name = "has_customer", expr = "customer_id IS NOT NULL", on_fail = drop)
)]
pub struct QUnionOrders {
    pub order_id: i64,
    pub customer_id: String,
}

#[pipeline]
pub async fn q_union_orders(cx: &Ctx) -> Result<Frame<QUnionOrders>> {
    let known: Frame<QUnionOrders> = cx
        .sql("SELECT CAST(1 AS BIGINT) AS order_id, 'C1' AS customer_id")
        .await?;
    let unknown: Frame<QUnionOrders> = cx
        .sql("SELECT CAST(2 AS BIGINT) AS order_id, CAST(NULL AS VARCHAR) AS customer_id")
        .await?;
    known.union(unknown)
}

/// The same orders, output by a SQL union whose second branch's NULL has no type of its own.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_sql_union_orders",
    expect(name = "has_customer", expr = "customer_id IS NOT NULL", on_fail = drop)
)]
pub struct QSqlUnionOrders {
    pub order_id: i64,
    pub customer_id: String,
}

#[pipeline]
pub async fn q_sql_union_orders(cx: &Ctx) -> Result<Frame<QSqlUnionOrders>> {
    cx.sql(
        "SELECT CAST(1 AS BIGINT) AS order_id, 'C1' AS customer_id \
         UNION ALL SELECT CAST(2 AS BIGINT), NULL",
    )
    .await
}

#[tokio::test]
async fn expectations_drop_the_nulls_of_a_union_output() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["q_union_orders", "q_sql_union_orders"]),
        wh.warehouse.clone(),
    );
    let report = orchestrator.run(&RunConfig::default()).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    for (table, name) in [
        (
            <QUnionOrders as lakehouse_runtime::Table>::DEF,
            "q_union_orders",
        ),
        (
            <QSqlUnionOrders as lakehouse_runtime::Table>::DEF,
            "q_sql_union_orders",
        ),
    ] {
        let orders = crate::common::query(
            &wh.warehouse,
            &[table],
            &format!("SELECT order_id, customer_id FROM silver.{name}"),
        )
        .await;
        assert_eq!(orders, ["1|C1"], "{name}");
    }
}

/// Stations as first written: the name may be missing.
#[derive(Table, serde::Serialize)]
#[table(schema = "bronze", name = "q_named_stations")]
pub struct QLooseStations {
    pub id: i64,
    pub name: Option<String>,
}

/// The same table, declared since with a name that is always there.
#[derive(Table)]
#[table(schema = "bronze", name = "q_named_stations")]
pub struct QNamedStations {
    pub id: i64,
    pub name: String,
}

/// Station names, kept when positive ids.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_station_names",
    expect(name = "positive_id", expr = "id > 0", on_fail = drop)
)]
pub struct QStationNames {
    pub id: i64,
    pub name: Option<String>,
}

/// `bronze.q_named_stations` read as declared now (name NOT NULL), over a row stored with a NULL
/// name when it was nullable.
async fn stations_with_a_stored_null(
    wh: &TempWarehouse,
    session: &datafusion::prelude::SessionContext,
) -> datafusion::prelude::DataFrame {
    crate::common::write(
        &wh.warehouse,
        <QLooseStations as lakehouse_runtime::Table>::DEF,
        &[QLooseStations { id: 1, name: None }],
        Default::default(),
    )
    .await
    .expect("write");
    wh.warehouse
        .read(session, <QNamedStations as lakehouse_runtime::Table>::DEF)
        .await
        .expect("read")
}

#[tokio::test]
async fn expectations_keep_the_assertions_on_stored_nulls() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let stored = stations_with_a_stored_null(&wh, &session).await;
    // Into a nullable column: only the input's declaration says the NULL is wrong.
    let output = Frame::<QStationNames>::from_dataframe(stored).expect("conforms");
    let (kept, findings) = lakehouse_runtime::quality::apply_expectations(
        <QStationNames as lakehouse_runtime::Table>::DEF,
        output.into_dataframe(),
    )
    .await
    .expect("counted");
    assert!(findings.is_empty());
    // What is written still fails on it.
    let error = kept.collect().await.expect_err("the stored NULL");
    assert!(
        error
            .to_string()
            .contains("the stored table holds a NULL in it"),
        "{error}"
    );
}

/// Station names that are always there: a checked NOT NULL column.
#[derive(Table)]
#[table(schema = "silver", name = "q_required_names", quality = warn)]
pub struct QRequiredNames {
    pub id: i64,
    pub name: String,
}

#[tokio::test]
async fn a_stored_null_of_an_input_is_the_inputs_error_not_an_output_finding() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let stored = stations_with_a_stored_null(&wh, &session).await;
    let output = Frame::<QRequiredNames>::from_dataframe(stored).expect("conforms");
    let output = output.into_dataframe();
    // The NULL is bronze.q_named_stations' (declared NOT NULL since): counted as the output's
    // `not_null` finding, it was recorded against silver.q_required_names with the advice to
    // coalesce (and blocked the write as the output's).
    let findings = lakehouse_runtime::quality::check_output(
        &wh.warehouse,
        &session,
        <QRequiredNames as lakehouse_runtime::Table>::DEF,
        &output,
    )
    .await
    .expect("checked");
    assert!(findings.is_empty(), "{findings:?}");
    // What is written fails on it, naming the stored table's NULL.
    let error = output.collect().await.expect_err("the stored NULL");
    assert!(
        error
            .to_string()
            .contains("the stored table holds a NULL in it"),
        "{error}"
    );
}

/// Orders whose code must be a positive number, which a cast checks.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_coded_orders",
    expect(name = "numeric_code", expr = "CAST(code AS INT) > 0", on_fail = drop),
    expect(name = "short_code", expr = "length(code) < 10")
)]
pub struct QCodedOrders {
    pub order_id: i64,
    pub code: String,
}

#[pipeline(retries = 1)]
pub async fn q_coded_orders(cx: &Ctx) -> Result<Frame<QCodedOrders>> {
    cx.sql("SELECT CAST(1 AS BIGINT) AS order_id, 'AB1' AS code")
        .await
}

#[tokio::test]
async fn an_expectation_that_cannot_be_evaluated_is_named_and_not_retried() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_coded_orders"]), wh.warehouse.clone());
    let config = RunConfig {
        retry_delay: std::time::Duration::from_millis(1),
        ..RunConfig::default()
    };
    let report = orchestrator.run(&config).await.expect("run");
    let failed = report.result("q_coded_orders").expect("ran");
    assert_eq!((failed.status, failed.attempts), (Status::Failed, 1));
    let error = failed.error.clone().unwrap_or_default();
    // Only the expectation failing on the value is named.
    assert!(
        error.contains(
            "silver.q_coded_orders: running the output to count its expectation(s) \
             `numeric_code` (if a condition"
        ) && error.contains("TRY_")
            && error.contains("'AB1'")
            && !error.contains("short_code"),
        "{error}"
    );
}

/// Orders whose code the pipeline itself casts, with an expectation over it that would not
/// fail on a value.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_cast_orders",
    expect(name = "positive_code", expr = "code > 0")
)]
pub struct QCastOrders {
    pub order_id: i64,
    pub code: i32,
}

#[pipeline]
pub async fn q_cast_orders(cx: &Ctx) -> Result<Frame<QCastOrders>> {
    cx.sql(
        "SELECT CAST(column1 AS BIGINT) AS order_id, CAST(column2 AS INT) AS code \
         FROM (VALUES (1, '12'), (2, 'AB1'))",
    )
    .await
}

#[tokio::test]
async fn a_value_the_pipelines_own_plan_cannot_convert_is_not_blamed_on_the_expectations() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_cast_orders"]), wh.warehouse.clone());
    let report = orchestrator.run(&RunConfig::default()).await.expect("run");
    let failed = report.result("q_cast_orders").expect("ran");
    assert_eq!((failed.status, failed.attempts), (Status::Failed, 1));
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains(
            "silver.q_cast_orders: running the output (the pipeline's plan, before its \
             expectations)"
        ) && error.contains("'AB1'")
            && !error.contains("positive_code")
            && !error.contains("TRY_"),
        "{error}"
    );
}

/// Codes the pipeline filters before its expectation casts them.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_filtered_codes",
    // The column named with its table, as SQL allows.
    expect(name = "numeric_code", expr = "CAST(q_filtered_codes.code AS INT) > 0", on_fail = drop)
)]
pub struct QFilteredCodes {
    pub order_id: i64,
    pub code: String,
}

/// Codes, some of them not numbers.
#[derive(Table)]
#[table(schema = "silver", name = "q_codes")]
pub struct QCodes {
    pub order_id: i64,
    pub code: String,
}

const CODES: &str = "SELECT CAST(column1 AS BIGINT) AS order_id, column2 AS code \
                     FROM (VALUES (1, 'AB1'), (2, '12'), (3, '-4'), (4, 'CD2'), (5, '7'))";

#[pipeline]
pub async fn q_codes(cx: &Ctx) -> Result<Frame<QCodes>> {
    cx.sql(CODES).await
}

/// Leaves out the codes that are not numbers: the expectation never meets them. The filter is
/// the plan's last step, over the stored table (setting `case` = `stored`), or below a
/// projection that renames.
#[pipeline(depends_on = [q_codes])]
pub async fn q_filtered_codes(cx: &Ctx, _codes: Frame<QCodes>) -> Result<Frame<QFilteredCodes>> {
    let query = match cx.settings().get("case") {
        Some("stored") => "SELECT * FROM silver.q_codes \
                           WHERE code NOT LIKE 'AB%' AND code NOT LIKE 'CD%'"
            .to_owned(),
        _ => format!("{CODES} WHERE column2 NOT LIKE 'AB%' AND column2 NOT LIKE 'CD%'"),
    };
    cx.sql(&query).await
}

#[tokio::test]
async fn a_drop_expectation_sees_only_the_rows_the_pipeline_kept() {
    for case in ["renamed", "stored"] {
        drop_expectation_after_the_pipelines_filter(case).await;
    }
}

async fn drop_expectation_after_the_pipelines_filter(case: &str) {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["q_codes", "q_filtered_codes"]),
        wh.warehouse.clone(),
    );
    let report = orchestrator.run(&config(case)).await.expect("run");
    let result = report.result("q_filtered_codes").expect("ran");
    assert_eq!(
        result.status,
        Status::Succeeded,
        "{case}: {:?}",
        result.error
    );
    let rows = crate::common::query(
        &wh.warehouse,
        &[<QFilteredCodes as lakehouse_runtime::Table>::DEF],
        "SELECT order_id, code FROM silver.q_filtered_codes ORDER BY order_id",
    )
    .await;
    assert_eq!(rows, ["2|12", "5|7"]);
    let issues = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT column_name, failing_rows FROM lakehouse.quality_issues",
    )
    .await;
    assert_eq!(issues, ["numeric_code|1"]);
}

/// A copy of the dimension, with an expectation.
#[derive(Table)]
#[table(
    schema = "gold",
    name = "q_dim_copy",
    key(id),
    mode = merge,
    expect(name = "positive_id", expr = "id > 0")
)]
pub struct QDimCopy {
    pub id: i64,
}

#[pipeline(depends_on = [q_dim])]
pub async fn q_dim_copy(cx: &Ctx, _dim: Frame<QDim>) -> Result<Frame<QDimCopy>> {
    cx.sql("SELECT id FROM gold.q_dim").await
}

#[tokio::test]
async fn an_input_that_cannot_be_read_is_not_blamed_on_the_expectations() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_dim", "q_dim_copy"]), wh.warehouse.clone());
    let first = orchestrator.run(&RunConfig::default()).await.expect("run");
    assert!(first.succeeded(), "{}", first.render(false));
    // The dimension's data file goes missing (a disk restored in part).
    let folder =
        crate::common::table_folder(&wh.warehouse, <QDim as lakehouse_runtime::Table>::DEF);
    for entry in std::fs::read_dir(&folder).expect("table folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(&path).expect("removed");
        }
    }
    let config = RunConfig {
        targets: vec!["q_dim_copy".to_owned()],
        ..RunConfig::default()
    };
    let report = orchestrator.run(&config).await.expect("run");
    let failed = report.result("q_dim_copy").expect("ran");
    assert_eq!(failed.status, Status::Failed);
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("not found")
            && error.contains("gold.q_dim_copy: running the output to check it")
            && !error.contains("expectations")
            && !error.contains("TRY_"),
        "{error}"
    );
}

/// A key column whose name the checks could have taken for their own working column.
#[derive(Table)]
#[table(schema = "gold", name = "q_underscored", key(__rows), mode = merge, quality = warn)]
pub struct QUnderscored {
    pub __rows: i64,
    pub label: String,
}

#[pipeline]
pub async fn q_underscored(cx: &Ctx) -> Result<Frame<QUnderscored>> {
    cx.sql("SELECT CAST(column1 AS BIGINT) AS __rows, column2 AS label FROM (VALUES (1, 'a'), (1, 'b'), (2, 'c'))")
        .await
}

/// A key column named as the duplicate sample's count was (`n`).
#[derive(Table)]
#[table(schema = "gold", name = "q_key_n", key(n), mode = merge, quality = warn)]
pub struct QKeyN {
    pub n: i64,
    pub label: String,
}

#[pipeline]
pub async fn q_key_n(cx: &Ctx) -> Result<Frame<QKeyN>> {
    cx.sql("SELECT CAST(column1 AS BIGINT) AS n, column2 AS label FROM (VALUES (1, 'a'), (1, 'b'), (2, 'c'))")
        .await
}

#[tokio::test]
async fn the_checks_working_columns_do_not_meet_the_tables_own() {
    for (pipeline, key) in [("q_underscored", "__rows"), ("q_key_n", "n")] {
        let wh = TempWarehouse::new();
        let orchestrator = Orchestrator::new(registry(&[pipeline]), wh.warehouse.clone());
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        let result = report.result(pipeline).expect("ran");
        assert_eq!(
            result.status,
            Status::Succeeded,
            "{pipeline}: {:?}",
            result.error
        );
        let issues = crate::common::query(
            &wh.warehouse,
            &lakehouse_runtime::ledger::system_tables(),
            "SELECT check_name, column_name, failing_rows, value FROM lakehouse.quality_issues",
        )
        .await;
        assert_eq!(
            issues,
            [format!("primary_key_unique|{key}|2|1")],
            "{pipeline}"
        );
    }
}

/// Orders that fail a blocking expectation.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_unrecorded_orders",
    expect(name = "positive_quantity", expr = "quantity > 0", on_fail = fail)
)]
pub struct QUnrecordedOrders {
    pub order_id: i64,
    pub quantity: i64,
}

/// Puts a file where `lakehouse.quality_issues` would be (the setting `issues_folder`), as a full
/// or failing disk would make the ledger fail, then outputs a row failing the expectation.
#[pipeline(retries = 1)]
pub async fn q_unrecorded_orders(cx: &Ctx) -> Result<Frame<QUnrecordedOrders>> {
    if let Some(folder) = cx.settings().get("issues_folder") {
        let folder = std::path::Path::new(folder);
        if let Some(parent) = folder.parent() {
            std::fs::create_dir_all(parent).map_err(Error::other)?;
        }
        let _ = std::fs::remove_dir_all(folder);
        std::fs::write(folder, "not a table").map_err(Error::other)?;
    }
    cx.sql("SELECT CAST(1 AS BIGINT) AS order_id, CAST(-1 AS BIGINT) AS quantity")
        .await
}

#[tokio::test]
async fn a_blocking_failure_the_ledger_cannot_record_is_still_the_error() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_unrecorded_orders"]), wh.warehouse.clone());
    let folder = crate::common::table_folder(
        &wh.warehouse,
        <lakehouse_runtime::ledger::QualityIssue as lakehouse_runtime::Table>::DEF,
    );
    let mut config = RunConfig {
        retry_delay: std::time::Duration::from_millis(1),
        ..RunConfig::default()
    };
    config.settings.set(
        "issues_folder",
        folder.to_str().expect("utf-8").trim_end_matches('/'),
    );
    let report = orchestrator.run(&config).await.expect("run");
    let failed = report.result("q_unrecorded_orders").expect("ran");
    assert_eq!((failed.status, failed.attempts), (Status::Failed, 1));
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("data-quality checks failed, nothing written")
            && error.contains("expectation `positive_quantity` (quantity > 0) failed on 1 row(s)")
            && error.contains("the findings could not be recorded in the ledger"),
        "{error}"
    );
}

/// Orders of which a `drop` expectation leaves some out (recorded as findings).
#[derive(Table)]
#[table(
    schema = "silver",
    name = "q_dropped_orders",
    expect(name = "positive_quantity", expr = "quantity > 0", on_fail = drop)
)]
pub struct QDroppedOrders {
    pub order_id: i64,
    pub quantity: i64,
}

/// Puts a file where `lakehouse.quality_issues` would be (the setting `issues_folder`), then
/// outputs a row the expectation drops and one it keeps.
#[pipeline]
pub async fn q_dropped_orders(cx: &Ctx) -> Result<Frame<QDroppedOrders>> {
    if let Some(folder) = cx.settings().get("issues_folder") {
        let _ = std::fs::remove_dir_all(folder);
        std::fs::write(folder, "not a table").map_err(Error::other)?;
    }
    cx.sql(
        "SELECT CAST(1 AS BIGINT) AS order_id, CAST(-1 AS BIGINT) AS quantity \
         UNION ALL SELECT CAST(2 AS BIGINT), CAST(3 AS BIGINT)",
    )
    .await
}

#[tokio::test]
async fn findings_of_a_committed_write_the_ledger_cannot_record_fail_the_run() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_dropped_orders"]), wh.warehouse.clone());
    // The system tables exist once a run has started.
    let first = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    assert!(first.succeeded(), "{}", first.render(false));
    let folder = crate::common::table_folder(
        &wh.warehouse,
        <lakehouse_runtime::ledger::QualityIssue as lakehouse_runtime::Table>::DEF,
    );
    let mut config = RunConfig::default();
    config.settings.set(
        "issues_folder",
        folder.to_str().expect("utf-8").trim_end_matches('/'),
    );
    let report = orchestrator.run(&config).await.expect("run 2");
    // The write committed (the kept row), but its findings are lost: not a success.
    let result = report.result("q_dropped_orders").expect("ran");
    assert_eq!(result.status, Status::Succeeded);
    assert_eq!(result.rows_written, Some(1));
    assert!(!report.succeeded(), "{}", report.render(false));
    let why = report.unrecorded.clone().unwrap_or_default();
    assert!(
        why.contains(
            "`q_dropped_orders`'s 1 data-quality finding(s), not recorded in \
             lakehouse.quality_issues"
        ),
        "{why}"
    );
}

mod not_null_assertion {
    use lakehouse_runtime::prelude::*;
    use lakehouse_runtime::testing::{TestContext, rows};
    use serde::{Deserialize, Serialize};

    /// Names that may be missing.
    #[derive(Table)]
    #[table(schema = "bronze", name = "maybe_named")]
    pub struct MaybeNamed {
        pub name: Option<String>,
        pub n: i64,
    }

    /// Names that are there.
    #[derive(Table)]
    #[table(schema = "silver", name = "named")]
    pub struct Named {
        pub name: String,
        pub n: i64,
    }

    #[derive(Serialize)]
    struct Row {
        name: Option<&'static str>,
        n: i64,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Out {
        name: String,
        n: i64,
    }

    /// A filter after the projection must not move the NOT NULL assertion under the pipeline's
    /// own filter: it would then see the rows that filter removes.
    #[tokio::test]
    async fn the_assertion_sees_only_the_rows_the_pipeline_kept() {
        let test = TestContext::unregistered("named").expect("context");
        let input = test
            .frame::<MaybeNamed, _>(&[
                Row { name: None, n: 1 },
                Row {
                    name: Some("a"),
                    n: 2,
                },
                Row {
                    name: Some("b"),
                    n: 3,
                },
                Row {
                    name: Some(""),
                    n: 4,
                },
            ])
            .expect("rows");
        let named = input
            .filter(MaybeNamed::name.is_not_null())
            .expect("filter")
            .select_into(NamedSelect {
                name: MaybeNamed::name.assume_not_null(),
                n: MaybeNamed::n,
            })
            .expect("projection")
            .filter(Named::name.expr().not_eq(lit("")))
            .expect("filter after");
        let mut out: Vec<Out> = rows(named).await.expect("no NULL reaches the assertion");
        out.sort_by_key(|o| o.n);
        assert_eq!(
            out,
            [
                Out {
                    name: "a".to_owned(),
                    n: 2
                },
                Out {
                    name: "b".to_owned(),
                    n: 3
                }
            ]
        );
    }
}

#[tokio::test]
async fn a_unit_test_applies_the_expectations_as_a_run_would() {
    use lakehouse_runtime::OnFail;
    use lakehouse_runtime::testing::{TestContext, rows};
    let test = TestContext::new("q_orders")
        .expect("context")
        .with_setting("case", "dirty");
    let output = q_orders(test.ctx()).await.expect("the pipeline");
    let (kept, failed) = test.expectations(output).await.expect("checked");
    let failed: Vec<(String, i64, OnFail)> = failed
        .into_iter()
        .map(|(finding, on_fail)| {
            (
                finding.column.unwrap_or_default(),
                finding.failing_rows,
                on_fail,
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("positive_quantity".to_owned(), 1, OnFail::Drop),
            ("known_status".to_owned(), 1, OnFail::Warn),
        ]
    );
    #[derive(serde::Deserialize)]
    struct Kept {
        order_id: i64,
    }
    let mut ids: Vec<i64> = rows::<Kept, _>(kept)
        .await
        .expect("rows")
        .into_iter()
        .map(|k| k.order_id)
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 3, 4], "order 2 dropped");
}

#[tokio::test]
async fn a_unit_tests_drop_expectation_sees_only_the_rows_the_pipeline_kept() {
    use lakehouse_runtime::testing::{TestContext, rows};
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Code {
        order_id: i64,
        code: String,
    }
    let codes: Vec<Code> = [(1, "AB1"), (2, "12"), (3, "-4"), (4, "CD2"), (5, "7")]
        .into_iter()
        .map(|(order_id, code)| Code {
            order_id,
            code: code.to_owned(),
        })
        .collect();
    let test = TestContext::new("q_filtered_codes")
        .expect("context")
        .with_setting("case", "stored");
    let stored = test.frame::<QCodes, _>(&codes).expect("codes");
    let output = q_filtered_codes(test.ctx(), stored)
        .await
        .expect("the pipeline");
    let (kept, _) = test.expectations(output).await.expect("checked");
    let mut kept: Vec<(i64, String)> = rows::<Code, _>(kept)
        .await
        .expect("rows")
        .into_iter()
        .map(|c| (c.order_id, c.code))
        .collect();
    kept.sort();
    assert_eq!(kept, [(2, "12".to_owned()), (5, "7".to_owned())]);
}

/// The rows of the `case` setting, with their `run_at`: a key's rows of two runs (an incremental
/// read after a failed run; in `old_run_twice`, the older run holds the key twice), or two rows
/// of one run.
async fn rows_of_runs<T: lakehouse_runtime::Table>(cx: &Ctx) -> Result<Frame<T>> {
    let rows = match cx.settings().get("case").unwrap_or_default() {
        "old_run_twice" => {
            "(1, 'a', '2026-01-01T00:00:00Z'), (1, 'x', '2026-01-01T00:00:00Z'), \
             (1, 'b', '2026-01-02T00:00:00Z'), (2, 'c', '2026-01-01T00:00:00Z')"
        }
        "one_run" => {
            "(1, 'a', '2026-01-01T00:00:00Z'), (1, 'b', '2026-01-01T00:00:00Z'), (2, 'c', '2026-01-01T00:00:00Z')"
        }
        _ => {
            "(1, 'b', '2026-01-02T00:00:00Z'), (1, 'a', '2026-01-01T00:00:00Z'), (2, 'c', '2026-01-01T00:00:00Z')"
        }
    };
    cx.sql(&format!(
        "SELECT CAST(column1 AS BIGINT) AS id, column2 AS label, \
         to_timestamp_micros(column3) AS run_at FROM (VALUES {rows})"
    ))
    .await
}

/// Merged rows carrying the run that wrote them, checked blocking.
#[derive(Table)]
#[table(schema = "gold", name = "q_merged_runs", key(id), mode = merge, quality = blocking)]
pub struct QMergedRuns {
    pub id: i64,
    pub label: String,
    pub run_at: Timestamp,
}

#[pipeline]
pub async fn q_merged_runs(cx: &Ctx) -> Result<Frame<QMergedRuns>> {
    rows_of_runs(cx).await
}

/// The same as SCD2.
#[derive(Table)]
#[table(schema = "gold", name = "q_versioned_runs", key(id), mode = scd2, quality = blocking)]
pub struct QVersionedRuns {
    pub id: i64,
    pub label: String,
    pub run_at: Timestamp,
}

#[pipeline]
pub async fn q_versioned_runs(cx: &Ctx) -> Result<Frame<QVersionedRuns>> {
    rows_of_runs(cx).await
}

/// Runs the merge and SCD2 pipelines of `rows_of_runs` with `case` into a new warehouse: the
/// report, and the tables' rows (`mode|id|label`) when both succeeded.
async fn run_of_runs(case: &str) -> (lakehouse_runtime::orchestrator::RunReport, Vec<String>) {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["q_merged_runs", "q_versioned_runs"]),
        wh.warehouse.clone(),
    );
    let report = orchestrator.run(&config(case)).await.expect("run");
    if !report.succeeded() {
        return (report, Vec::new());
    }
    let tables = [
        <QMergedRuns as lakehouse_runtime::Table>::DEF,
        <QVersionedRuns as lakehouse_runtime::Table>::DEF,
    ];
    let rows = crate::common::query(
        &wh.warehouse,
        &tables,
        "SELECT 'merge', id, label FROM gold.q_merged_runs \
         UNION ALL SELECT 'scd2', id, label FROM gold.q_versioned_runs",
    )
    .await;
    (report, rows)
}

#[tokio::test]
async fn a_merge_or_scd2_key_is_unique_among_the_rows_of_one_run() {
    // A key's rows of two runs: the write keeps the newest run's, so nothing is a duplicate;
    // nor is the older run holding a key twice.
    for case in ["two_runs", "old_run_twice"] {
        let (report, rows) = run_of_runs(case).await;
        assert!(report.succeeded(), "{case}: {}", report.render(false));
        assert_eq!(
            rows,
            crate::common::lines(&["merge|1|b", "merge|2|c", "scd2|1|b", "scd2|2|c"]),
            "{case}"
        );
    }

    // Two rows of a key in one run: which one is kept is a tie-break, so the key is not unique.
    let (report, _) = run_of_runs("one_run").await;
    for (pipeline, table) in [
        ("q_merged_runs", "gold.q_merged_runs"),
        ("q_versioned_runs", "gold.q_versioned_runs"),
    ] {
        let error = report
            .result(pipeline)
            .and_then(|r| r.error.clone())
            .unwrap_or_default();
        assert!(
            error.ends_with(&format!(
                "{table}: primary_key_unique failed on 2 row(s) (column `id`), e.g. 1 (run_at \
                 2026-01-01T00:00:00Z): keep one row per key (`latest_by`), or widen the key"
            )),
            "{error}"
        );
    }
}

/// Rows keyed by their run too.
#[derive(Table)]
#[table(schema = "gold", name = "q_run_keyed", key(id, run_at), mode = merge, quality = warn)]
pub struct QRunKeyed {
    pub id: i64,
    pub label: String,
    pub run_at: Timestamp,
}

#[pipeline]
pub async fn q_run_keyed(cx: &Ctx) -> Result<Frame<QRunKeyed>> {
    rows_of_runs(cx).await
}

#[tokio::test]
async fn a_key_holding_run_at_is_checked_as_any_key() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["q_run_keyed"]), wh.warehouse.clone());
    let report = orchestrator.run(&config("one_run")).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    let issues = crate::common::query(
        &wh.warehouse,
        &lakehouse_runtime::ledger::system_tables(),
        "SELECT check_name, column_name, failing_rows, value FROM lakehouse.quality_issues",
    )
    .await;
    assert_eq!(
        issues,
        ["primary_key_unique|id, run_at|2|1, 2026-01-01T00:00:00Z"]
    );
}
