//! Pruning the run ledger: old runs go from every system table, what the next runs read stays.

use lakehouse_runtime::Table;
use lakehouse_runtime::ledger::{
    Ledger, PruneOptions, PruneReport, QualityIssue, RejectRecord, RunRecord, TableMetric,
};
use lakehouse_runtime::table::Timestamp;

use crate::common::{TempWarehouse, query};
use crate::ledger::{attempt, run_row};

/// Midnight UTC, `days` after 2026-01-01.
fn day(days: i64) -> Timestamp {
    let start = Timestamp::parse("2026-01-01T00:00:00Z").expect("timestamp");
    Timestamp(start.0 + days * 86_400_000_000)
}

/// `record`, started on `started` and ended an hour later (not ended with `running`).
fn at(record: RunRecord, started: i64) -> RunRecord {
    let started_at = day(started);
    RunRecord {
        started_at,
        finished_at: (record.status != "running").then(|| Timestamp(started_at.0 + 3_600_000_000)),
        run_at: started_at,
        ..record
    }
}

/// The row of run `sequence` itself, with `status`.
fn run(sequence: i64, status: &str) -> RunRecord {
    RunRecord {
        status: status.to_owned(),
        ..run_row(sequence)
    }
}

fn metric(run: &str) -> TableMetric {
    TableMetric {
        run_id: run.to_owned(),
        table_name: "bronze.t".to_owned(),
        version: 1,
        rows: 1,
        files: 1,
        bytes: 10,
        null_counts: "{}".to_owned(),
        measured_at: day(0),
    }
}

fn finding(run: &str) -> QualityIssue {
    QualityIssue {
        run_id: run.to_owned(),
        table_name: "bronze.t".to_owned(),
        column_name: None,
        check_name: "not_null".to_owned(),
        value: None,
        failing_rows: 1,
        blocking: false,
        checked_at: day(0),
    }
}

fn reject(run: &str) -> RejectRecord {
    RejectRecord {
        run_id: run.to_owned(),
        pipeline: "p".to_owned(),
        source: "http://127.0.0.1/".to_owned(),
        reason: "bad".to_owned(),
        raw: "{}".to_owned(),
        rejected_at: day(0),
    }
}

/// A ledger of eight runs that all started long ago (days 1 to 8 of 2026):
/// - r1: `p` succeeded (a later success of `p` follows);
/// - r2: `q` failed, then the run was resumed on day 200, and `q` succeeded;
/// - r3: `p` and `s` succeeded, `p`'s latest success;
/// - r4: a full refresh of `p` that failed;
/// - r5: still recorded as running;
/// - r6: `s` succeeded without saying what it read: `s`'s latest success by its end;
/// - r7: a full refresh of `q` that succeeded, begun after r4;
/// - r8: failed, the latest sequence and logical time (day 100: a backfill's).
///
/// With metrics of r1 (two) and r3, findings of r1 and r8, a reject of r8.
async fn old_ledger(ledger: &Ledger) {
    let refresh = |sequence, status: &str, planned: &str| RunRecord {
        refresh: Some("full".to_owned()),
        planned: Some(planned.to_owned()),
        ..at(run(sequence, status), sequence)
    };
    // A resume keeps the run's logical time.
    let resumed = |record: RunRecord| RunRecord {
        execution: Some(2),
        run_at: day(2),
        ..at(record, 200)
    };
    let failed_backfill = RunRecord {
        run_at: day(100),
        ..at(run(8, "failed"), 8)
    };
    let records = vec![
        at(run(1, "succeeded"), 1),
        at(attempt("p", 1, "succeeded"), 1),
        at(run(2, "failed"), 2),
        at(attempt("q", 2, "failed"), 2),
        resumed(run(2, "succeeded")),
        resumed(attempt("q", 2, "succeeded")),
        at(run(3, "succeeded"), 3),
        at(attempt("p", 3, "succeeded"), 3),
        at(attempt("s", 3, "succeeded"), 3),
        refresh(4, "failed", "p"),
        at(attempt("p", 4, "failed"), 4),
        at(run(5, "running"), 5),
        at(run(6, "succeeded"), 6),
        RunRecord {
            input_versions: Some("{}".to_owned()),
            ..at(attempt("s", 6, "succeeded"), 6)
        },
        refresh(7, "succeeded", "q"),
        failed_backfill,
    ];
    ledger.append(&records).await.expect("runs");
    ledger
        .append(&[metric("r1"), metric("r1"), metric("r3")])
        .await
        .expect("metrics");
    ledger
        .append(&[finding("r1"), finding("r8")])
        .await
        .expect("findings");
    ledger.append(&[reject("r8")]).await.expect("rejects");
}

/// The version of every system table.
async fn versions(wh: &TempWarehouse) -> Vec<Option<u64>> {
    let mut versions = Vec::new();
    for table in lakehouse_runtime::ledger::system_tables() {
        versions.push(wh.warehouse.version(table).await.expect("version"));
    }
    versions
}

/// The run ids with a row in the runs table, and their kinds, sorted.
async fn runs_held(wh: &TempWarehouse) -> Vec<String> {
    query(
        &wh.warehouse,
        &[RunRecord::DEF],
        "SELECT DISTINCT CASE WHEN kind = 'pruned' THEN 'pruned-*' ELSE run_id END, kind \
         FROM lakehouse.runs",
    )
    .await
}

fn pruning(ended_before: Timestamp, dry_run: bool) -> PruneOptions {
    PruneOptions {
        ended_before,
        dry_run,
    }
}

#[tokio::test]
async fn old_runs_go_from_every_system_table_and_what_the_next_runs_read_stays() {
    let wh = TempWarehouse::new();
    let ledger = Ledger::new(wh.warehouse.clone());
    old_ledger(&ledger).await;
    let bound = ledger.run_at_bound().await.expect("bound");
    let expected = PruneReport {
        ended_before: day(150),
        dry_run: true,
        runs_pruned: 2,
        runs_kept: 5,
        rows_removed: vec![
            ("lakehouse.quality_issues".to_owned(), 2),
            ("lakehouse.table_metrics".to_owned(), 2),
            ("lakehouse.rejects".to_owned(), 1),
            ("lakehouse.runs".to_owned(), 3),
        ],
        logical_times: Some((day(1), day(100))),
    };

    // A dry run counts, and changes nothing.
    let before = versions(&wh).await;
    let dry = ledger
        .prune(pruning(day(150), true))
        .await
        .expect("dry run");
    assert_eq!(dry, expected);
    assert_eq!(versions(&wh).await, before);
    assert_eq!(ledger.pruned().await.expect("pruned"), None);

    let report = ledger.prune(pruning(day(150), false)).await.expect("prune");
    assert_eq!(
        report,
        PruneReport {
            dry_run: false,
            ..expected
        }
    );
    assert_eq!(
        runs_held(&wh).await,
        [
            "pruned-*|pruned",
            "r2|pipeline",
            "r2|run",
            "r3|pipeline",
            "r3|run",
            "r4|pipeline",
            "r4|run",
            "r5|run",
            "r6|pipeline",
            "r6|run",
            "r7|run"
        ]
    );
    let rows_of = |table: &'static lakehouse_runtime::TableDef| {
        let sql = format!("SELECT run_id FROM {}", table.qualified_name());
        let wh = &wh;
        async move { query(&wh.warehouse, &[table], &sql).await }
    };
    assert_eq!(rows_of(TableMetric::DEF).await, ["r3"]);
    assert!(rows_of(QualityIssue::DEF).await.is_empty());
    assert!(rows_of(RejectRecord::DEF).await.is_empty());

    // What the next runs read is as before: where each pipeline reads on, the unfinished
    // refresh, the run still recorded as running, the next sequence above the pruned failure's,
    // the next logical time above the pruned backfill's.
    let sequence_of = |record: Option<RunRecord>| record.map(|r| r.sequence);
    assert_eq!(
        sequence_of(ledger.last_success("p").await.expect("p")),
        Some(3)
    );
    assert_eq!(
        sequence_of(ledger.last_success("q").await.expect("q")),
        Some(2)
    );
    let refreshes: Vec<String> = ledger
        .refreshes()
        .await
        .expect("refreshes")
        .into_iter()
        .map(|r| format!("{}|{}", r.run_id, r.status))
        .collect();
    assert_eq!(refreshes, ["r4|failed", "r7|succeeded"]);
    let running: Vec<String> = ledger
        .running()
        .await
        .expect("running")
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(running, ["r5"]);
    assert_eq!(ledger.next_sequence().await.expect("sequence"), 9);
    assert_eq!(ledger.run_at_bound().await.expect("bound"), bound);

    // The pruned runs are gone, said so; the prune's row is no run.
    assert!(ledger.run("r1").await.expect("r1").is_empty());
    let unknown = ledger.no_such_run("r1").await.to_string();
    assert!(
        unknown.starts_with("no run `r1` in the ledger (old runs were pruned from it on ")
            && unknown.ends_with("; see `orchestrate runs`"),
        "{unknown}"
    );
    assert_eq!(ledger.resolve_run_id("pruned").await.expect("id"), None);
    let listed: Vec<String> = ledger
        .runs(10)
        .await
        .expect("runs")
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(listed, ["r7", "r6", "r5", "r4", "r3", "r2"]);
    let pruned = ledger.pruned().await.expect("pruned").expect("a prune");
    assert_eq!(
        (pruned.logical_times_from, pruned.logical_times_through),
        (day(1), day(100))
    );

    // Nothing more to prune at the same time: no commit.
    let after = versions(&wh).await;
    let again = ledger.prune(pruning(day(150), false)).await.expect("again");
    assert_eq!((again.runs_pruned, again.runs_kept), (0, 5));
    assert!(again.rows_removed.is_empty(), "{again:?}");
    assert_eq!(versions(&wh).await, after);

    // A later prune takes the earlier prune's rows in its own, which still tell the times and
    // sequences pruned first.
    ledger.append(&[at(run(9, "failed"), 9)]).await.expect("r9");
    let later = ledger
        .prune(pruning(
            Timestamp(Timestamp::now().0 + 86_400_000_000),
            false,
        ))
        .await
        .expect("later");
    assert_eq!((later.runs_pruned, later.runs_kept), (1, 6), "{later:?}");
    assert_eq!(later.logical_times, Some((day(1), day(100))));
    let marks = query(
        &wh.warehouse,
        &[RunRecord::DEF],
        "SELECT sequence, run_at FROM lakehouse.runs WHERE kind = 'pruned'",
    )
    .await;
    assert_eq!(marks, ["9|2026-01-02T00:00:00Z", "9|2026-04-11T00:00:00Z"]);
    assert_eq!(ledger.next_sequence().await.expect("sequence"), 10);
}

#[tokio::test]
async fn a_ledger_with_nothing_old_is_left_as_it_is() {
    let wh = TempWarehouse::new();
    let ledger = Ledger::new(wh.warehouse.clone());
    // Never written: nothing to read, nothing created.
    let empty = ledger.prune(pruning(day(150), false)).await.expect("empty");
    assert_eq!((empty.runs_pruned, empty.runs_kept), (0, 0));
    assert_eq!(versions(&wh).await, vec![None; 5]);
    old_ledger(&ledger).await;
    let before = versions(&wh).await;
    let report = ledger.prune(pruning(day(1), false)).await.expect("prune");
    assert_eq!((report.runs_pruned, report.runs_kept), (0, 0));
    assert_eq!(report.logical_times, None);
    assert_eq!(versions(&wh).await, before);
}

#[tokio::test]
async fn a_replace_of_rows_read_at_a_version_the_table_has_moved_from_writes_nothing() {
    use lakehouse_runtime::store::WriteOptions;
    let wh = TempWarehouse::new();
    let ledger = Ledger::new(wh.warehouse.clone());
    ledger.append(&[metric("a")]).await.expect("a");
    let session = wh.warehouse.session();
    let (read, version) = wh
        .warehouse
        .read_with_version(&session, TableMetric::DEF)
        .await
        .expect("read");
    // Another process appends after the read: replacing the rows read would drop its row.
    Ledger::new(wh.warehouse.clone())
        .append(&[metric("b")])
        .await
        .expect("b");
    let replace = |version| WriteOptions {
        replace: true,
        replaces_version: version,
        ..WriteOptions::default()
    };
    let error = wh
        .warehouse
        .write(&session, TableMetric::DEF, read.clone(), replace(version))
        .await
        .expect_err("moved since the read");
    assert!(
        matches!(error, lakehouse_runtime::Error::CommitConflict { .. })
            && error.to_string().contains(
                "its rows were read at version 1 to replace them, and it is at version 2 now"
            ),
        "{error}"
    );
    let held = || {
        query(
            &wh.warehouse,
            &[TableMetric::DEF],
            "SELECT run_id FROM lakehouse.table_metrics",
        )
    };
    assert_eq!(held().await, ["a", "b"]);
    // Read again, at the version it is at: replaced.
    let (read, version) = wh
        .warehouse
        .read_with_version(&session, TableMetric::DEF)
        .await
        .expect("read");
    let kept = read
        .filter(datafusion::logical_expr::col("run_id").eq(datafusion::logical_expr::lit("b")))
        .expect("filter");
    wh.warehouse
        .write(&session, TableMetric::DEF, kept, replace(version))
        .await
        .expect("replaced");
    assert_eq!(held().await, ["b"]);
}

#[tokio::test]
async fn a_run_with_a_ledger_retention_prunes_it_once_a_day() {
    use lakehouse_runtime::Registry;
    use lakehouse_runtime::orchestrator::{Orchestrator, RunConfig};
    let wh = TempWarehouse::new();
    let ledger = Ledger::new(wh.warehouse.clone());
    let orchestrator = || {
        let ticks = Registry::from_inventory()
            .expect("registry")
            .pipelines()
            .iter()
            .copied()
            .filter(|p| p.name == "ticks")
            .collect::<Vec<_>>();
        Orchestrator::new(
            Registry::new(ticks).expect("one pipeline"),
            wh.warehouse.clone(),
        )
    };
    let config = RunConfig {
        ledger_retention: Some(std::time::Duration::from_secs(30 * 86_400)),
        ..RunConfig::default()
    };
    let run_with = |orchestrator: &Orchestrator| {
        let config = config.clone();
        let orchestrator = orchestrator.clone();
        async move {
            let report = orchestrator.run(&config).await.expect("run");
            assert!(report.succeeded(), "{}", report.render(false));
        }
    };
    let held = |run_id: &'static str| {
        let ledger = ledger.clone();
        async move { !ledger.run(run_id).await.expect("rows").is_empty() }
    };
    // Nothing old to prune: this orchestrator tried, and does not try again today.
    let first = orchestrator();
    run_with(&first).await;
    ledger
        .append(&[at(run(50, "failed"), 1)])
        .await
        .expect("an old run");
    run_with(&first).await;
    assert!(held("r50").await, "tried today already");
    // Another orchestrator (the next process a scheduler starts) prunes it.
    let second = orchestrator();
    run_with(&second).await;
    assert!(!held("r50").await, "pruned");
    // Pruned today: neither it nor another prunes again.
    ledger
        .append(&[at(run(60, "failed"), 2)])
        .await
        .expect("another old run");
    run_with(&second).await;
    run_with(&orchestrator()).await;
    assert!(held("r60").await, "pruned today already");
}
