//! System-table appends: one commit each, kept open between appends, and never lost when another
//! process (here: another ledger on the same warehouse) appended in between.

use lakehouse_runtime::Table;
use lakehouse_runtime::ledger::{Ledger, RunRecord, TableMetric};
use lakehouse_runtime::store::AUTO_COMPACT_AT_FILES;
use lakehouse_runtime::table::Timestamp;

use crate::common::{TempWarehouse, data_files, render};

fn metric(run: &str, rows: i64) -> TableMetric {
    TableMetric {
        run_id: run.to_owned(),
        table_name: "gold.t".to_owned(),
        version: rows,
        rows,
        files: 1,
        bytes: 10,
        null_counts: "{}".to_owned(),
        measured_at: Timestamp::parse("2026-01-01T00:00:00Z").expect("timestamp"),
    }
}

/// `run_id|rows` of every recorded metric, sorted.
async fn metric_rows(wh: &TempWarehouse) -> Vec<String> {
    render(
        wh.warehouse
            .sql(
                &[TableMetric::DEF],
                "SELECT run_id, rows FROM lakehouse.table_metrics",
            )
            .await
            .expect("query"),
    )
    .await
}

#[tokio::test]
async fn appends_from_two_ledgers_interleave_one_commit_each() {
    let wh = TempWarehouse::new();
    let first = Ledger::new(wh.warehouse.clone());
    let second = Ledger::new(wh.warehouse.clone());

    first.append(&[metric("a", 1)]).await.expect("first");
    // The first ledger now holds the table open at version 1; the second moves it on.
    second.append(&[metric("b", 2)]).await.expect("second");
    second
        .append(&[metric("b", 3), metric("b", 4)])
        .await
        .expect("second again");
    // Committed after the second ledger's appends, on top of a state two versions old.
    first.append(&[metric("a", 5)]).await.expect("first again");
    first.append(&[metric("a", 6)]).await.expect("and again");

    // Version 0 created the table; then one version per append.
    assert_eq!(
        wh.warehouse
            .version(TableMetric::DEF)
            .await
            .expect("version"),
        Some(5)
    );
    assert_eq!(
        metric_rows(&wh).await,
        vec!["a|1", "a|5", "a|6", "b|2", "b|3", "b|4"]
    );
}

/// Deletes the runs table's data files, leaving its log: what is still answered comes from the log.
fn remove_runs_data_files(wh: &TempWarehouse) {
    let table = crate::common::table_folder(&wh.warehouse, RunRecord::DEF);
    for entry in std::fs::read_dir(&table).expect("table directory") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(path).expect("removed");
        }
    }
}

pub fn run_row(sequence: i64) -> RunRecord {
    let at = Timestamp::parse("2026-01-01T00:00:00Z").expect("timestamp");
    RunRecord {
        run_id: format!("r{sequence}"),
        sequence,
        run_at: at,
        kind: "run".to_owned(),
        pipeline: None,
        attempt: None,
        status: "succeeded".to_owned(),
        started_at: at,
        finished_at: None,
        duration_ms: None,
        output_table: None,
        rows_written: None,
        table_version: None,
        replayed: None,
        error: None,
        input_versions: None,
        input_table_ids: None,
        rows_deleted: None,
        execution: None,
        selection: None,
        planned: None,
        process: None,
        refresh: None,
        settings: None,
    }
}

#[tokio::test]
async fn the_next_sequence_comes_from_the_runs_tables_log() {
    let wh = TempWarehouse::new();
    let ledger = Ledger::new(wh.warehouse.clone());
    assert_eq!(ledger.next_sequence().await.expect("no runs yet"), 1);
    ledger
        .append(&[run_row(7), run_row(3)])
        .await
        .expect("runs");
    ledger.append(&[run_row(5)]).await.expect("run");
    assert_eq!(ledger.next_sequence().await.expect("sequence"), 8);

    // The records themselves are not read: with the data files gone, the log still answers.
    remove_runs_data_files(&wh);
    assert_eq!(ledger.next_sequence().await.expect("from the log"), 8);
    // What does read them says it is the ledger, and where to look.
    let error = ledger.runs(10).await.expect_err("the files are gone");
    assert!(
        error
            .to_string()
            .starts_with("reading the run ledger (`lakehouse.*` tables): ")
            && error.to_string().contains("`orchestrate check` tells"),
        "{error}"
    );
}

#[tokio::test]
async fn the_next_sequence_sees_runs_another_process_recorded_after_ours() {
    let wh = TempWarehouse::new();
    let ours = Ledger::new(wh.warehouse.clone());
    let theirs = Ledger::new(wh.warehouse.clone());
    // Our ledger holds the runs table open at this append...
    ours.append(&[run_row(3)]).await.expect("our run");
    assert_eq!(ours.next_sequence().await.expect("sequence"), 4);
    // ...and another process records later runs meanwhile.
    theirs.append(&[run_row(9)]).await.expect("their run");
    theirs.append(&[run_row(11)]).await.expect("their next run");
    assert_eq!(ours.next_sequence().await.expect("sequence"), 12);
    ours.append(&[run_row(12)]).await.expect("our next run");
    assert_eq!(theirs.next_sequence().await.expect("sequence"), 13);
}

#[tokio::test]
async fn a_ledger_table_removed_under_an_open_ledger_is_created_again_whole() {
    // The README allows removing the ledger's tables to clear history, a loop may be running.
    let wh = TempWarehouse::new();
    let running = Ledger::new(wh.warehouse.clone());
    running.append(&[metric("a", 1)]).await.expect("first");
    running.append(&[metric("a", 2)]).await.expect("second");
    std::fs::remove_dir_all(crate::common::table_folder(&wh.warehouse, TableMetric::DEF))
        .expect("removed");
    // The ledger still holds the table open at version 2: its next append must not go on from
    // there (a log of version 3 alone, unreadable by every other process).
    running
        .append(&[metric("b", 3)])
        .await
        .expect("after removal");
    assert_eq!(
        wh.warehouse
            .version(TableMetric::DEF)
            .await
            .expect("a readable table"),
        Some(1),
        "created (0), then appended (1)"
    );
    assert_eq!(metric_rows(&wh).await, vec!["b|3"]);
    // And it goes on from the new table.
    running.append(&[metric("b", 4)]).await.expect("next");
    assert_eq!(metric_rows(&wh).await, vec!["b|3", "b|4"]);
}

#[tokio::test]
async fn appends_to_two_system_tables_made_together_both_commit() {
    let wh = TempWarehouse::new();
    let ledger = Ledger::new(wh.warehouse.clone());
    for round in 0..3 {
        let (run, measured) = ([run_row(round + 1)], [metric("r", round)]);
        let (runs, metrics) = tokio::join!(ledger.append(&run), ledger.append(&measured));
        runs.expect("run recorded");
        metrics.expect("metric recorded");
    }
    assert_eq!(ledger.next_sequence().await.expect("sequence"), 4);
    assert_eq!(metric_rows(&wh).await, vec!["r|0", "r|1", "r|2"]);
}

/// A successful or failed attempt of `pipeline` in run `sequence` (a success records the
/// version of the input it read).
pub fn attempt(pipeline: &str, sequence: i64, status: &str) -> RunRecord {
    RunRecord {
        kind: "pipeline".to_owned(),
        pipeline: Some(pipeline.to_owned()),
        attempt: Some(1),
        status: status.to_owned(),
        input_versions: (status == "succeeded").then(|| format!(r#"{{"bronze.t":{sequence}}}"#)),
        ..run_row(sequence)
    }
}

/// A success that could not say what it read (a replay whose commit is out of reach).
fn replay_without_versions(pipeline: &str, sequence: i64) -> RunRecord {
    RunRecord {
        replayed: Some(true),
        input_versions: Some("{}".to_owned()),
        ..attempt(pipeline, sequence, "succeeded")
    }
}

async fn last_success_sequence(ledger: &Ledger, pipeline: &str) -> Option<i64> {
    let found = ledger.last_success(pipeline).await.expect("last success");
    found.map(|record| record.sequence)
}

#[tokio::test]
async fn the_last_success_of_a_run_is_its_latest_executions_whatever_the_clocks() {
    // Run 5 succeeded, then was resumed (`--rerun-succeeded`) on a host whose clock is behind:
    // what the resume read is where the next read starts.
    let first = RunRecord {
        execution: Some(1),
        input_versions: Some(r#"{"bronze.t":5}"#.to_owned()),
        ..attempt("a", 5, "succeeded")
    };
    let resumed = RunRecord {
        execution: Some(2),
        input_versions: Some(r#"{"bronze.t":6}"#.to_owned()),
        started_at: Timestamp(first.started_at.0 - 3_600_000_000),
        ..first.clone()
    };
    for appended_apart in [false, true] {
        let wh = TempWarehouse::new();
        let ledger = Ledger::new(wh.warehouse.clone());
        if appended_apart {
            // Looked up between the two appends: the remembered success is brought up to date.
            ledger
                .append(std::slice::from_ref(&first))
                .await
                .expect("first");
            assert!(ledger.last_success("a").await.expect("lookup").is_some());
            ledger
                .append(std::slice::from_ref(&resumed))
                .await
                .expect("resumed");
        } else {
            ledger
                .append(&[first.clone(), resumed.clone()])
                .await
                .expect("both");
        }
        let found = ledger
            .last_success("a")
            .await
            .expect("lookup")
            .expect("a success");
        assert_eq!(
            found.input_versions.as_deref(),
            Some(r#"{"bronze.t":6}"#),
            "appended apart: {appended_apart}"
        );
    }
}

#[tokio::test]
async fn the_last_success_follows_our_appends_and_another_processs() {
    let wh = TempWarehouse::new();
    let ours = Ledger::new(wh.warehouse.clone());
    let theirs = Ledger::new(wh.warehouse.clone());
    ours.append(&[attempt("a", 1, "succeeded"), attempt("b", 1, "failed")])
        .await
        .expect("run 1");
    assert_eq!(last_success_sequence(&ours, "a").await, Some(1));
    assert_eq!(
        last_success_sequence(&ours, "b").await,
        None,
        "b only failed"
    );

    // Our own appends after the lookup: a success counts, a failure or a run row does not.
    ours.append(&[attempt("a", 2, "succeeded")])
        .await
        .expect("a, run 2");
    ours.append(&[attempt("a", 3, "failed"), run_row(3)])
        .await
        .expect("a fails in run 3");
    ours.append(&[attempt("b", 3, "succeeded")])
        .await
        .expect("b, run 3");
    assert_eq!(last_success_sequence(&ours, "a").await, Some(2));
    assert_eq!(last_success_sequence(&ours, "b").await, Some(3));

    // Another process's success is seen by our next lookup, and ours by theirs.
    theirs
        .append(&[attempt("a", 4, "succeeded")])
        .await
        .expect("their run 4");
    assert_eq!(last_success_sequence(&ours, "a").await, Some(4));
    ours.append(&[attempt("b", 5, "succeeded")])
        .await
        .expect("our run 5");
    assert_eq!(last_success_sequence(&ours, "b").await, Some(5));
    assert_eq!(last_success_sequence(&theirs, "b").await, Some(5));
    assert_eq!(last_success_sequence(&theirs, "c").await, None);

    // A success that does not say what it read places no incremental read: passed over, by our
    // remembered lookups and by a fresh scan alike.
    ours.append(&[replay_without_versions("b", 6)])
        .await
        .expect("our run 6");
    assert_eq!(last_success_sequence(&ours, "b").await, Some(5));
    assert_eq!(last_success_sequence(&theirs, "b").await, Some(5));
    let fresh = Ledger::new(wh.warehouse.clone());
    assert_eq!(last_success_sequence(&fresh, "b").await, Some(5));
}

#[tokio::test]
async fn a_run_at_bound_is_above_every_recorded_run_at_from_the_log_alone() {
    let wh = TempWarehouse::new();
    let ledger = Ledger::new(wh.warehouse.clone());
    assert!(ledger.run_at_bound().await.expect("no runs").is_none());
    let at = |text: &str| Timestamp::parse(text).expect("timestamp").0;
    let latest = at("2026-03-01T10:00:00.123456Z");
    // The latest `run_at` is not the latest sequence's: a backfill recorded an older one after.
    let run = |sequence, run_at| RunRecord {
        run_at: Timestamp(run_at),
        ..run_row(sequence)
    };
    ledger.append(&[run(1, latest)]).await.expect("run 1");
    let backfill = at("2025-01-01T00:00:00Z");
    ledger.append(&[run(2, backfill)]).await.expect("run 2");
    let bound = ledger.run_at_bound().await.expect("bound").expect("runs").0;
    assert!(bound > latest, "{bound} above {latest}");
    assert!(
        bound <= latest + 1_000,
        "{bound} within a millisecond of {latest}"
    );

    // The records themselves are not read: with the data files gone, the log still answers.
    remove_runs_data_files(&wh);
    let again = ledger
        .run_at_bound()
        .await
        .expect("from the log")
        .expect("runs");
    assert_eq!(again.0, bound);
}

#[tokio::test]
async fn a_system_table_is_compacted_once_appends_leave_it_with_many_files() {
    let wh = TempWarehouse::new();
    let ledger = Ledger::new(wh.warehouse.clone());
    let compact_at = AUTO_COMPACT_AT_FILES as i64;
    let appends = compact_at + 6;
    ledger
        .append(&[attempt("a", 1, "succeeded")])
        .await
        .expect("run 1");
    // Looked up once: from here on the ledger keeps it current through its own commits.
    assert_eq!(last_success_sequence(&ledger, "a").await, Some(1));
    for sequence in 2..=appends {
        ledger
            .append(&[attempt("a", sequence, "succeeded")])
            .await
            .expect("recorded");
        if sequence == compact_at - 1 {
            assert_eq!(
                data_files(&wh.warehouse, RunRecord::DEF).await,
                compact_at as usize - 1
            );
        }
    }
    // The append that left 64 files compacted them into one; each append since added one.
    assert_eq!(
        data_files(&wh.warehouse, RunRecord::DEF).await,
        (appends - compact_at + 1) as usize
    );

    // Every record is still there, and what the ledger answers is unchanged.
    assert_eq!(ledger.next_sequence().await.expect("sequence"), appends + 1);
    assert_eq!(last_success_sequence(&ledger, "a").await, Some(appends));
    let fresh = Ledger::new(wh.warehouse.clone());
    assert_eq!(last_success_sequence(&fresh, "a").await, Some(appends));
    let counted = render(
        wh.warehouse
            .sql(
                &[RunRecord::DEF],
                "SELECT count(*), count(DISTINCT sequence), min(sequence), max(sequence) \
                 FROM lakehouse.runs",
            )
            .await
            .expect("query"),
    )
    .await;
    assert_eq!(counted, vec![format!("{appends}|{appends}|1|{appends}")]);
}

#[tokio::test]
async fn an_error_after_the_commit_does_not_append_the_rows_twice() {
    let wh = TempWarehouse::new();
    let ledger = Ledger::new(wh.warehouse.clone());
    // The checkpoint of version 99 cannot be written (a directory is in its place): the commit
    // of version 99 succeeds, then delta-rs's checkpoint after it fails.
    let log = crate::common::table_folder(&wh.warehouse, TableMetric::DEF).join("_delta_log");
    std::fs::create_dir_all(log.join("00000000000000000099.checkpoint.parquet"))
        .expect("blocking directory");
    let appends = 110;
    for n in 0..appends {
        ledger
            .append(&[metric("r", n)])
            .await
            .expect("recorded once, whatever followed the commit");
    }
    let rows = metric_rows(&wh).await;
    assert_eq!(rows.len(), appends as usize, "{rows:?}");
}
