//! The whole-graph plan check reports a pipeline whose SQL names a missing column, with the
//! pipeline's name and the column.

use lakehouse_runtime::Registry;
use lakehouse_runtime::check::check_plan;
use lakehouse_runtime::prelude::*;

/// Raw events.
#[derive(Table)]
#[table(schema = "bronze", name = "events")]
pub struct Events {
    pub event_id: i64,
    pub kind: Option<String>,
}

/// Counts per kind.
#[derive(Table)]
#[table(schema = "silver", name = "event_counts")]
pub struct EventCounts {
    pub kind: Option<String>,
    pub events: i64,
}

/// Counts per kind, computed with typed expressions.
#[derive(Table)]
#[table(schema = "silver", name = "event_kinds")]
pub struct EventKinds {
    pub kind: String,
}

#[pipeline]
pub async fn events(cx: &Ctx) -> Result<Frame<Events>> {
    cx.empty()
}

/// Kinds, from SQL over a table it depends on but does not take as a parameter.
#[derive(Table)]
#[table(schema = "silver", name = "event_kinds_sql")]
pub struct EventKindsSql {
    pub kind: Option<String>,
}

#[pipeline(depends_on = [events])]
pub async fn event_kinds_sql(cx: &Ctx) -> Result<Frame<EventKindsSql>> {
    cx.sql("SELECT DISTINCT kind FROM bronze.events").await
}

/// SQL with a typo: `knd`.
#[pipeline(depends_on = [events])]
pub async fn event_counts(_events: Frame<Events>, cx: &Ctx) -> Result<Frame<EventCounts>> {
    cx.sql("SELECT knd AS kind, count(*) AS events FROM bronze.events GROUP BY knd")
        .await
}

/// The declared type is String but the expression is a number.
#[pipeline(depends_on = [events])]
pub async fn event_kinds(events: Frame<Events>) -> Result<Frame<EventKinds>> {
    events.select_into(EventKindsSelect {
        kind: typed::<String>(Events::event_id.expr()),
    })
}

/// A CHECK constraint with a typo: `evnt_id`.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "checked_events",
    check(name = "positive_id", expr = "evnt_id > 0")
)]
pub struct CheckedEvents {
    pub event_id: i64,
}

#[pipeline(depends_on = [events])]
pub async fn checked_events(events: Frame<Events>) -> Result<Frame<CheckedEvents>> {
    events.select_into(CheckedEventsSelect {
        event_id: Events::event_id,
    })
}

#[tokio::test]
async fn a_check_constraint_over_a_missing_column_is_reported_before_any_write() {
    let registry = Registry::from_inventory().expect("valid graph");
    let pipeline = registry.get("checked_events").expect("registered");
    let error = check_plan(pipeline)
        .await
        .expect_err("the typo is caught")
        .to_string();
    assert!(
        error.contains(
            "check `positive_id`: `evnt_id > 0` is not a condition over the table's columns"
        ),
        "{error}"
    );
}

/// A CHECK constraint naming its column in capitals, which delta-rs does not lowercase.
#[derive(Table)]
#[table(
    schema = "silver",
    name = "shouted_events",
    check(name = "positive_id", expr = "EVENT_ID > 0")
)]
pub struct ShoutedEvents {
    pub event_id: i64,
}

#[pipeline(depends_on = [events])]
pub async fn shouted_events(events: Frame<Events>) -> Result<Frame<ShoutedEvents>> {
    events.select_into(ShoutedEventsSelect {
        event_id: Events::event_id,
    })
}

#[tokio::test]
async fn a_check_constraint_is_read_as_delta_reads_it() {
    let registry = Registry::from_inventory().expect("valid graph");
    let pipeline = registry.get("shouted_events").expect("registered");
    let error = check_plan(pipeline)
        .await
        .expect_err("`EVENT_ID` is no column to Delta")
        .to_string();
    assert!(
        error.contains(
            "check `positive_id`: `EVENT_ID > 0` is not a condition over the table's columns"
        ),
        "{error}"
    );
    // As the write finds: delta-rs cannot add it.
    let wh = crate::common::TempWarehouse::new();
    let table = <ShoutedEvents as lakehouse_runtime::Table>::DEF;
    let error = crate::common::write(
        &wh.warehouse,
        table,
        &[serde_json::json!({"event_id": 1})],
        lakehouse_runtime::store::WriteOptions::default(),
    )
    .await
    .expect_err("the constraint cannot be added")
    .to_string();
    assert!(
        error.contains("cannot add the declared CHECK constraint(s) `positive_id`"),
        "{error}"
    );
}

#[tokio::test]
async fn sql_naming_a_missing_column_is_reported_with_pipeline_and_column() {
    let registry = Registry::from_inventory().expect("valid graph");
    let pipeline = registry.get("event_counts").expect("registered");
    let error = check_plan(pipeline)
        .await
        .expect_err("the typo is caught")
        .to_string();
    assert!(error.contains("event_counts"), "{error}");
    assert!(error.contains("knd"), "{error}");

    let failures = lakehouse_runtime::check::check_plans(&registry)
        .await
        .expect_err("three bad plans");
    let report = failures.to_string();
    assert!(
        report.contains(
            "(SQL reads the tables the pipeline takes as parameters: add one as `_name: \
             Frame<Table>`)"
        ),
        "{report}"
    );
    assert!(report.contains("pipeline `event_counts`"), "{report}");
    assert!(report.contains("pipeline `event_kinds`"), "{report}");
    assert!(
        report.contains("column `kind` is declared STRING but the output has BIGINT"),
        "{report}"
    );
    assert!(!report.contains("pipeline `events`"), "{report}");
}

/// Events of one region.
#[derive(Table)]
#[table(schema = "silver", name = "regional_events")]
pub struct RegionalEvents {
    pub event_id: i64,
}

/// Plans by a setting it requires.
#[pipeline(depends_on = [events])]
pub async fn regional_events(events: Frame<Events>, cx: &Ctx) -> Result<Frame<RegionalEvents>> {
    let region = cx
        .settings()
        .get("region")
        .ok_or_else(|| Error::msg("setting `region` is required"))?;
    events
        .filter(Events::kind.expr().eq(lit(region.to_owned())))?
        .select_into(RegionalEventsSelect {
            event_id: Events::event_id,
        })
}

#[tokio::test]
async fn the_plan_check_takes_the_settings_a_run_would() {
    let registry = Registry::from_inventory().expect("valid graph");
    let pipeline = registry.get("regional_events").expect("registered");
    let error = check_plan(pipeline)
        .await
        .expect_err("no region")
        .to_string();
    assert!(error.contains("setting `region` is required"), "{error}");
    let mut settings = lakehouse_runtime::ctx::Settings::new();
    settings.set("region", "north");
    lakehouse_runtime::check::check_plan_with(pipeline, &settings)
        .await
        .expect("planned with the region");
}

#[tokio::test]
async fn a_plan_that_does_not_come_fails_the_check_in_bounded_time() {
    // `slow` (of the orchestrator's tests) waits 30 s before it returns its plan.
    let registry = Registry::from_inventory().expect("valid graph");
    let pipeline = registry.get("slow").expect("registered");
    let error = check_plan(pipeline).await.expect_err("no plan in time");
    assert!(!error.is_retryable(), "{error:?}");
    let error = error.to_string();
    assert!(
        error.contains("planning took longer than 10s")
            && error.contains("guard it with `cx.is_dry_run()`"),
        "{error}"
    );
}

/// Stations from a source whose pages fail when read: the plan check must not read them.
#[derive(Table)]
#[table(schema = "bronze", name = "unguarded_stations")]
pub struct UnguardedStations {
    pub code: String,
}

/// Pages that fail: reading one is calling the service.
struct FailingPages;

impl lakehouse_runtime::sources::Pages for FailingPages {
    async fn next_page(&mut self) -> Result<Option<lakehouse_runtime::sources::Page>> {
        Err(Error::msg("the service was called by the plan check"))
    }
}

/// An ingestion that does not guard with `cx.is_dry_run()`.
#[pipeline]
pub async fn unguarded_stations(cx: &Ctx) -> Result<Frame<UnguardedStations>> {
    #[derive(serde::Serialize)]
    struct Row {
        code: String,
    }
    lakehouse_runtime::sources::collect_frame::<UnguardedStations, _, _>(
        cx,
        &mut FailingPages,
        |r: &lakehouse_runtime::sources::Record<'_>| {
            Ok(Row {
                code: r.string("code")?,
            })
        },
    )
    .await
}

#[tokio::test]
async fn the_plan_check_reads_no_source_pages() {
    let pipeline = Registry::from_inventory()
        .expect("graph")
        .get("unguarded_stations")
        .expect("registered");
    check_plan(pipeline)
        .await
        .expect("planned on an empty frame");
}

#[tokio::test]
async fn a_unit_test_reads_in_sql_only_what_the_run_would() {
    // `event_kinds_sql` lists `events` in `depends_on` only: a run cannot read it in SQL, and
    // neither can its unit test, whatever frames the test made.
    let test = lakehouse_runtime::testing::TestContext::new("event_kinds_sql").expect("context");
    #[derive(serde::Serialize)]
    struct Event {
        event_id: i64,
        kind: Option<String>,
    }
    test.frame::<Events, _>(&[Event {
        event_id: 1,
        kind: Some("click".to_owned()),
    }])
    .expect("a frame");
    let error = event_kinds_sql(test.ctx())
        .await
        .err()
        .expect("bronze.events is not a parameter")
        .to_string();
    assert!(error.contains("bronze.events"), "{error}");
}
