//! `Changes<T>` of a merge table with its change data feed on: each run reads the rows the
//! merges since its last success inserted or updated, each key once, as it is now.

use lakehouse_runtime::Registry;
use lakehouse_runtime::orchestrator::{Orchestrator, RunConfig};
use lakehouse_runtime::prelude::*;
use serde::Serialize;

use crate::common::{TempWarehouse, query};

/// A source's rows, as the `rows` setting lists them (`1:a,2:b`).
#[derive(Table)]
#[table(schema = "mc", name = "raw")]
pub struct Raw {
    pub id: i64,
    pub value: String,
}

#[pipeline]
pub async fn mc_raw(cx: &Ctx) -> Result<Frame<Raw>> {
    #[derive(Serialize)]
    struct Row {
        id: i64,
        value: String,
    }
    let listed = cx.settings().get("rows").unwrap_or_default();
    let rows: Vec<Row> = listed
        .split(',')
        .filter_map(|pair| pair.split_once(':'))
        .map(|(id, value)| Row {
            id: id.parse().unwrap_or_default(),
            value: value.to_owned(),
        })
        .collect();
    cx.frame_from_rows(&rows)
}

/// Each id's latest value, its changes recorded.
#[derive(Table)]
#[table(
    schema = "mc",
    name = "current",
    key(id),
    mode = merge,
    property(key = "delta.enableChangeDataFeed", value = "true")
)]
pub struct Current {
    pub id: i64,
    pub value: String,
}

#[pipeline(depends_on = [mc_raw])]
pub async fn mc_current(raw: Changes<Raw>) -> Result<Frame<Current>> {
    raw.select_into(CurrentSelect {
        id: Raw::id,
        value: Raw::value,
    })
}

/// What the reader of `mc.current`'s changes got, run by run.
#[derive(Table)]
#[table(schema = "mc", name = "seen", mode = append)]
pub struct Seen {
    pub id: i64,
    pub value: String,
    pub run: i64,
}

#[pipeline(depends_on = [mc_current])]
pub async fn mc_seen(changes: Changes<Current>, cx: &Ctx) -> Result<Frame<Seen>> {
    changes.select_into(SeenSelect {
        id: Current::id,
        value: Current::value,
        run: typed::<i64>(lit(cx.run().sequence)),
    })
}

fn orchestrator(wh: &TempWarehouse) -> Orchestrator {
    let all = Registry::from_inventory().expect("valid graph");
    let names = ["mc_raw", "mc_current", "mc_seen"];
    let registry = Registry::new(
        all.pipelines()
            .iter()
            .copied()
            .filter(|p| names.contains(&p.name)),
    )
    .expect("valid sub-graph");
    Orchestrator::new(registry, wh.warehouse.clone())
}

async fn run_with(orchestrator: &Orchestrator, rows: &str) {
    let mut config = RunConfig::default();
    config.settings.set("rows", rows);
    let report = orchestrator.run(&config).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
}

#[tokio::test]
async fn a_merge_tables_changes_are_its_inserted_and_updated_rows_once() {
    let wh = TempWarehouse::new();
    let orchestrator = orchestrator(&wh);
    run_with(&orchestrator, "1:a,2:b").await;
    // 1 changes, 2 is as it was (no change: not read again), 3 is new.
    run_with(&orchestrator, "1:z,2:b,3:c").await;
    let second = wh
        .warehouse
        .version(Current::DEF)
        .await
        .expect("version")
        .expect("written");
    // Nothing changes: nothing to read.
    run_with(&orchestrator, "1:z,2:b,3:c").await;
    // 3 changes twice before the reader runs again: read once, as it is now.
    let mut config = RunConfig {
        targets: vec!["mc_raw".to_owned(), "mc_current".to_owned()],
        ..RunConfig::default()
    };
    config.settings.set("rows", "3:d");
    let report = orchestrator.run(&config).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    config.settings.set("rows", "3:e");
    let report = orchestrator.run(&config).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    run_with(&orchestrator, "").await;
    // Restored to its second version: a commit without change files, whose rewritten files
    // read as their rows deleted and added again; the added rows are the keys' state.
    wh.warehouse
        .restore(
            Current::DEF,
            lakehouse_runtime::store::AsOf::Version(second),
        )
        .await
        .expect("restore");
    run_with(&orchestrator, "").await;
    let seen = query(
        &wh.warehouse,
        &[Seen::DEF],
        "SELECT run, id, value FROM mc.seen",
    )
    .await;
    assert_eq!(
        seen,
        [
            "1|1|a", "1|2|b", "2|1|z", "2|3|c", "6|3|e", "7|1|z", "7|2|b", "7|3|c"
        ]
    );
}

/// How many rows its SQL read of `mc.current`, whose changes and whole table it takes.
#[derive(Table)]
#[table(schema = "mc", name = "read_whole", mode = append)]
pub struct ReadWhole {
    pub rows_read: i64,
}

#[pipeline(depends_on = [mc_current])]
pub async fn mc_read_whole(
    _new: Changes<Current>,
    _all: Frame<Current>,
    cx: &Ctx,
) -> Result<Frame<ReadWhole>> {
    cx.sql("SELECT count(*) AS rows_read FROM mc.current").await
}

#[tokio::test]
async fn a_unit_tests_sql_reads_the_parameter_a_run_would() {
    use lakehouse_runtime::testing::{TestContext, rows};
    #[derive(Serialize)]
    struct Row {
        id: i64,
        value: &'static str,
    }
    let whole = [
        Row { id: 1, value: "a" },
        Row { id: 2, value: "b" },
        Row { id: 3, value: "c" },
    ];
    let new = [Row { id: 3, value: "c" }];
    // A run registers its parameters in order: the whole table, last, is what SQL reads,
    // whichever frame the test makes last.
    for whole_first in [true, false] {
        let test = TestContext::new("mc_read_whole").expect("context");
        let (changes, all) = if whole_first {
            let all = test.frame::<Current, _>(&whole).expect("whole");
            (test.changes::<Current, _>(&new).expect("changes"), all)
        } else {
            let changes = test.changes::<Current, _>(&new).expect("changes");
            (changes, test.frame::<Current, _>(&whole).expect("whole"))
        };
        let output = mc_read_whole(changes, all, test.ctx())
            .await
            .expect("pipeline");
        let read: Vec<serde_json::Value> = rows(output).await.expect("rows");
        assert_eq!(
            read,
            [serde_json::json!({"rows_read": 3})],
            "whole first: {whole_first}"
        );
    }
}
