//! Execution: statuses under failures, panics, timeouts and retries; fail-fast and skip policies;
//! resume; loops; incremental inputs.

use std::collections::BTreeMap;
use std::time::Duration;

use lakehouse_runtime::ledger::{Liveness, RunProcess};
use lakehouse_runtime::orchestrator::{
    Direction, MAX_FAILED_LOOP_RUNS, Orchestrator, Redo, RunConfig, SkipPolicy, Status,
};
use lakehouse_runtime::prelude::*;
use lakehouse_runtime::{PipelineDescriptor, Registry};
use serde::Serialize;

use crate::common::{TempWarehouse, contents};

/// A number per run.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "ticks")]
pub struct Ticks {
    pub n: i64,
    pub run_at: Timestamp,
}

macro_rules! output_table {
    ($($ty:ident = $name:literal),*) => {$(
        #[derive(Table)]
        #[table(schema = "silver", name = $name)]
        pub struct $ty {
            pub n: i64,
        }
    )*};
}

output_table!(
    Ok1 = "ok1",
    Bad = "bad",
    Panics = "panics",
    Slow = "slow",
    Hangs = "hangs",
    Blocks = "blocks",
    Flaky = "flaky",
    Down1 = "down1",
    Down2 = "down2",
    Both = "both",
    Gated = "gated",
    FailsLater = "fails_later",
    AfterFlaky = "after_flaky",
    Rejecting = "rejecting",
    Interrupts = "interrupts",
    Aborted = "aborted",
    Overlapped = "overlapped",
    Overtaken = "overtaken",
    RetriesSlowly = "retries_slowly",
    FailsAfterRetryWait = "fails_after_retry_wait",
    BreaksLedger = "breaks_ledger",
    MendsLedger = "mends_ledger",
    AaRetriesOnce = "aa_retries_once",
    AaWaitsForDownstream = "aa_waits_for_downstream",
    BbQuick = "bb_quick",
    CcAfterQuick = "cc_after_quick",
    ZzRunsMeanwhile = "zz_runs_meanwhile"
);

/// Attempts of `aa_retries_once`; whether `zz_runs_meanwhile` ran.
static AA_ATTEMPTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static ZZ_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Fails its first attempt; its second succeeds only if `zz_runs_meanwhile` ran in between.
#[pipeline(depends_on = [ticks], retries = 1)]
pub async fn aa_retries_once(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<AaRetriesOnce>> {
    use std::sync::atomic::Ordering;
    if !cx.is_dry_run() {
        if AA_ATTEMPTS.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Error::msg("a transient failure"));
        }
        if !ZZ_RAN.load(Ordering::SeqCst) {
            return Err(Error::Refused(
                "the other pipeline did not run while this one waited to retry".into(),
            ));
        }
    }
    t.select_into(AaRetriesOnceSelect { n: Ticks::n })
}

/// `cc_after_quick` has ended.
static CC_ENDED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Runs beside `bb_quick`, and ends only once `cc_after_quick` (downstream of `bb_quick` only)
/// has run: a run holding `cc_after_quick` back until this group ends fails it (after 30 s).
#[pipeline(depends_on = [ticks])]
pub async fn aa_waits_for_downstream(
    t: Frame<Ticks>,
    cx: &Ctx,
) -> Result<Frame<AaWaitsForDownstream>> {
    if !cx.is_dry_run()
        && cx.settings().get("test") == Some("no_barrier")
        && tokio::time::timeout(std::time::Duration::from_secs(30), CC_ENDED.notified())
            .await
            .is_err()
    {
        return Err(Error::Refused(
            "`cc_after_quick` did not run while this pipeline ran".into(),
        ));
    }
    t.select_into(AaWaitsForDownstreamSelect { n: Ticks::n })
}

/// Quick.
#[pipeline(depends_on = [ticks])]
pub async fn bb_quick(t: Frame<Ticks>) -> Result<Frame<BbQuick>> {
    t.select_into(BbQuickSelect { n: Ticks::n })
}

/// Downstream of `bb_quick` only; tells `aa_waits_for_downstream` it ran.
#[pipeline(depends_on = [bb_quick])]
pub async fn cc_after_quick(b: Frame<BbQuick>, cx: &Ctx) -> Result<Frame<CcAfterQuick>> {
    if !cx.is_dry_run() && cx.settings().get("test") == Some("no_barrier") {
        CC_ENDED.notify_one();
    }
    b.select_into(CcAfterQuickSelect { n: BbQuick::n })
}

/// Marks that it ran.
#[pipeline(depends_on = [ticks])]
pub async fn zz_runs_meanwhile(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<ZzRunsMeanwhile>> {
    if !cx.is_dry_run() {
        ZZ_RAN.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    t.select_into(ZzRunsMeanwhileSelect { n: Ticks::n })
}

/// Calls of `flaky` per test (the `test` setting), so tests running in parallel don't share them.
static FLAKY_CALLS: std::sync::Mutex<BTreeMap<String, u32>> =
    std::sync::Mutex::new(BTreeMap::new());

fn flaky_call(test: &str) -> u32 {
    let mut calls = FLAKY_CALLS.lock().unwrap_or_else(|p| p.into_inner());
    let count = calls.entry(test.to_owned()).or_insert(0);
    *count += 1;
    *count
}

/// A source: one row per run.
#[pipeline(tags = ["test"])]
pub async fn ticks(cx: &Ctx) -> Result<Frame<Ticks>> {
    #[derive(Serialize)]
    struct Row {
        n: i64,
        run_at: Timestamp,
    }
    cx.frame_from_rows(&[Row {
        n: cx.run().sequence,
        run_at: cx.run_at(),
    }])
}

/// Another run of `overlapped` committing while this one reads: the warehouse and that run's
/// sequence, taken by the next execution of `overlapped`.
static OVERLAP: std::sync::Mutex<Option<(lakehouse_runtime::store::Warehouse, i64)>> =
    std::sync::Mutex::new(None);

/// Copies the new ticks; with `OVERLAP` set, another run's write (n = 100) lands meanwhile.
#[pipeline(depends_on = [ticks])]
pub async fn overlapped(ticks: Changes<Ticks>) -> Result<Frame<Overlapped>> {
    let other = OVERLAP.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((warehouse, sequence)) = other {
        #[derive(Serialize)]
        struct Row {
            n: i64,
        }
        let options = lakehouse_runtime::store::WriteOptions {
            transaction: Some(("overlapped".to_owned(), sequence)),
            ..Default::default()
        };
        let table = <Overlapped as lakehouse_runtime::Table>::DEF;
        crate::common::write(&warehouse, table, &[Row { n: 100 }], options).await?;
    }
    ticks.select_into(OverlappedSelect { n: Ticks::n })
}

/// The warehouse `overtaken` writes another run's commit into.
static OVERTAKING: std::sync::Mutex<Option<lakehouse_runtime::store::Warehouse>> =
    std::sync::Mutex::new(None);

/// A run of a later sequence (another orchestrator's) commits to this pipeline's table while it
/// computes, past its time limit.
#[pipeline(depends_on = [ticks], timeout = "1s")]
pub async fn overtaken(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<Overtaken>> {
    if cx.is_dry_run() {
        return t.select_into(OvertakenSelect { n: Ticks::n });
    }
    let other = OVERTAKING.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(warehouse) = other {
        #[derive(Serialize)]
        struct Row {
            n: i64,
        }
        let options = lakehouse_runtime::store::WriteOptions {
            transaction: Some(("overtaken".to_owned(), cx.run().sequence + 1)),
            ..Default::default()
        };
        let table = <Overtaken as lakehouse_runtime::Table>::DEF;
        crate::common::write(&warehouse, table, &[Row { n: 100 }], options).await?;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    t.select_into(OvertakenSelect { n: Ticks::n })
}

/// `retries_slowly` has failed its first attempt.
static FIRST_ATTEMPT_FAILED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Always fails; retried (the tests make the wait long).
#[pipeline(depends_on = [ticks], retries = 1)]
pub async fn retries_slowly(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<RetriesSlowly>> {
    if cx.is_dry_run() {
        return t.select_into(RetriesSlowlySelect { n: Ticks::n });
    }
    FIRST_ATTEMPT_FAILED.notify_one();
    Err(Error::msg("always fails"))
}

/// Fails once `retries_slowly` has failed.
#[pipeline(depends_on = [ticks])]
pub async fn fails_after_retry_wait(
    t: Frame<Ticks>,
    cx: &Ctx,
) -> Result<Frame<FailsAfterRetryWait>> {
    if cx.is_dry_run() {
        return t.select_into(FailsAfterRetryWaitSelect { n: Ticks::n });
    }
    FIRST_ATTEMPT_FAILED.notified().await;
    Err(Error::msg("failed after the other"))
}

/// Copies the new ticks.
#[pipeline(depends_on = [ticks])]
pub async fn ok1(ticks: Changes<Ticks>) -> Result<Frame<Ok1>> {
    ticks.into_frame().select_into(Ok1Select { n: Ticks::n })
}

#[pipeline(depends_on = [ticks])]
pub async fn bad(_t: Frame<Ticks>) -> Result<Frame<Bad>> {
    Err(Error::msg(
        "the source system is down: the ERP's export endpoint answered 503 Service Unavailable \
         three times; its status page says maintenance until 06:00 UTC",
    ))
}

#[pipeline(depends_on = [ticks])]
pub async fn panics(_t: Frame<Ticks>) -> Result<Frame<Panics>> {
    panic!("index out of bounds in pipeline code")
}

#[pipeline(depends_on = [ticks], timeout = "50ms")]
pub async fn slow(t: Frame<Ticks>) -> Result<Frame<Slow>> {
    tokio::time::sleep(Duration::from_secs(30)).await;
    t.select_into(SlowSelect { n: Ticks::n })
}

/// Waits for what never comes (ends at once in a plan check): only its run being dropped or
/// interrupted stops it.
#[pipeline(depends_on = [ticks])]
pub async fn hangs(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<Hangs>> {
    if cx.is_dry_run() {
        return t.select_into(HangsSelect { n: Ticks::n });
    }
    std::future::pending().await
}

/// Where `blocks` waits, blocking its thread (as a synchronous client's call does), with
/// setting `block` = `yes`: until the sender is dropped.
static BLOCKS_AT: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>> =
    std::sync::Mutex::new(None);

#[pipeline(depends_on = [ticks], timeout = "50ms")]
pub async fn blocks(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<Blocks>> {
    if cx.settings().get("block") == Some("yes") {
        let gate = BLOCKS_AT.lock().ok().and_then(|mut gate| gate.take());
        if let Some(gate) = gate {
            let _ = gate.recv();
        }
    }
    t.select_into(BlocksSelect { n: Ticks::n })
}

/// The ticks, with the history of each (SCD2).
#[derive(Table)]
#[table(schema = "silver", name = "tick_versions", key(n), mode = scd2)]
pub struct TickVersions {
    pub n: i64,
    pub label: String,
}

#[pipeline(depends_on = [ticks])]
pub async fn tick_versions(t: Frame<Ticks>) -> Result<Frame<TickVersions>> {
    t.select_into(TickVersionsSelect {
        n: Ticks::n,
        label: typed::<String>(lit("tick")),
    })
}

/// One key, labelled by setting `label` (`a` when unset): the same row at every run unless told.
#[derive(Table)]
#[table(schema = "silver", name = "steady_versions", key(n), mode = scd2)]
pub struct SteadyVersions {
    pub n: i64,
    pub label: String,
}

#[pipeline]
pub async fn steady_versions(cx: &Ctx) -> Result<Frame<SteadyVersions>> {
    #[derive(Serialize)]
    struct Row {
        n: i64,
        label: String,
    }
    let label = cx.settings().get("label").unwrap_or("a").to_owned();
    cx.frame_from_rows(&[Row { n: 1, label }])
}

/// Fails on its first call in each test, then succeeds.
#[pipeline(depends_on = [ticks], retries = 2)]
pub async fn flaky(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<Flaky>> {
    if flaky_call(cx.settings().get("test").unwrap_or_default()) == 1 {
        return Err(Error::msg("transient"));
    }
    t.select_into(FlakySelect { n: Ticks::n })
}

#[pipeline(depends_on = [flaky])]
pub async fn after_flaky(f: Frame<Flaky>) -> Result<Frame<AfterFlaky>> {
    f.select_into(AfterFlakySelect { n: Flaky::n })
}

/// Copies the ticks and rejects one source record; with setting `reject_limit` = `1`, fails as
/// an ingestion over its reject limit does.
#[pipeline(depends_on = [ticks])]
pub async fn rejecting(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<Rejecting>> {
    cx.reject([lakehouse_runtime::ctx::Reject {
        source: "https://example.org/feed".to_owned(),
        reason: "`n` is null".to_owned(),
        raw: "{\"n\": null}".to_owned(),
    }]);
    if cx.settings().get("reject_limit") == Some("1") {
        return Err(Error::Quality("rejected 1 of 1 records".to_owned()));
    }
    if cx.settings().get("refuse") == Some("yes") {
        return Err(Error::Refused("the feed's format changed".to_owned()));
    }
    t.select_into(RejectingSelect { n: Ticks::n })
}

#[pipeline(depends_on = [bad])]
pub async fn down1(b: Frame<Bad>) -> Result<Frame<Down1>> {
    b.select_into(Down1Select { n: Bad::n })
}

#[pipeline(depends_on = [down1])]
pub async fn down2(b: Frame<Down1>) -> Result<Frame<Down2>> {
    b.select_into(Down2Select { n: Down1::n })
}

/// Depends on a failing and a succeeding pipeline.
#[pipeline(depends_on = [bad, ok1])]
pub async fn both(_b: Frame<Bad>, o: Frame<Ok1>) -> Result<Frame<Both>> {
    o.select_into(BothSelect { n: Ok1::n })
}

/// The interrupt `interrupts` sends (set by the one test that runs it).
static INTERRUPT: std::sync::Mutex<Option<tokio::sync::watch::Sender<bool>>> =
    std::sync::Mutex::new(None);

/// Interrupts the run it is part of, as Ctrl-C would, then fails (a retry would follow).
#[pipeline(depends_on = [ticks], retries = 3)]
pub async fn interrupts(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<Interrupts>> {
    if cx.is_dry_run() {
        return t.select_into(InterruptsSelect { n: Ticks::n });
    }
    if let Some(stop) = INTERRUPT.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        let _ = stop.send(true);
    }
    Err(Error::msg("failed as the run was interrupted"))
}

/// The abort `aborted` sends (set by the one test that runs it).
static ABORT: std::sync::Mutex<Option<tokio::sync::watch::Sender<bool>>> =
    std::sync::Mutex::new(None);

/// Interrupts its run twice (the first stops new starts, the second aborts), then waits for
/// what never comes: only the abort ends it.
#[pipeline(depends_on = [ticks])]
pub async fn aborted(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<Aborted>> {
    if cx.is_dry_run() {
        return t.select_into(AbortedSelect { n: Ticks::n });
    }
    if let Some(abort) = ABORT.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        let _ = abort.send(true);
    }
    std::future::pending().await
}

/// Replaces the folder of `lakehouse.runs` (the setting `runs_folder`) by a file, as a full or
/// failing disk would make the ledger fail, then writes its own table.
#[pipeline(depends_on = [ticks])]
pub async fn breaks_ledger(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<BreaksLedger>> {
    if let Some(folder) = cx.settings().get("runs_folder") {
        std::fs::rename(folder, format!("{folder}.moved")).map_err(Error::other)?;
        std::fs::write(folder, "not a table").map_err(Error::other)?;
    }
    t.select_into(BreaksLedgerSelect { n: Ticks::n })
}

/// Puts back the folder `breaks_ledger` replaced (the setting `runs_folder`), when asked to
/// (`mend_ledger`): the ledger lost `breaks_ledger`'s attempt only.
#[pipeline(depends_on = [breaks_ledger])]
pub async fn mends_ledger(b: Frame<BreaksLedger>, cx: &Ctx) -> Result<Frame<MendsLedger>> {
    if let (Some(folder), Some(_)) = (
        cx.settings().get("runs_folder"),
        cx.settings().get("mend_ledger"),
    ) {
        std::fs::remove_file(folder).map_err(Error::other)?;
        std::fs::rename(format!("{folder}.moved"), folder).map_err(Error::other)?;
    }
    b.select_into(MendsLedgerSelect { n: BreaksLedger::n })
}

/// `gated` has started (and waits at [`GATE`]).
static GATED_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// Where `gated` waits until the test lets it go.
static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);
/// Cloned by `gated` while it runs: all senders gone tells the test that no `gated` is left.
static GATED_ALIVE: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<()>>> =
    std::sync::Mutex::new(None);

/// Writes once the test opens the gate (at once in a plan check, which runs every pipeline of
/// the test binary).
#[pipeline(depends_on = [ticks])]
pub async fn gated(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<Gated>> {
    if cx.is_dry_run() {
        return t.select_into(GatedSelect { n: Ticks::n });
    }
    let _alive = GATED_ALIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    GATED_STARTED.notify_one();
    let _permit = GATE.acquire().await;
    t.select_into(GatedSelect { n: Ticks::n })
}

/// Fails once `gated` runs.
#[pipeline(depends_on = [ticks])]
pub async fn fails_later(t: Frame<Ticks>, cx: &Ctx) -> Result<Frame<FailsLater>> {
    if cx.is_dry_run() {
        return t.select_into(FailsLaterSelect { n: Ticks::n });
    }
    GATED_STARTED.notified().await;
    Err(Error::msg("failed while `gated` runs"))
}

#[tokio::test]
async fn a_run_whose_end_row_was_lost_is_closed_by_its_resume() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let refresh = RunConfig {
        full_refresh: true,
        ..RunConfig::default()
    };
    let first = orchestrator.run(&refresh).await.expect("run 1");
    assert!(first.succeeded(), "{}", first.render(false));
    // Every pipeline recorded, the run's end lost, its process gone (a child that ended).
    crate::common::delete_rows(
        &wh.warehouse,
        lakehouse_runtime::ledger::RunRecord::DEF,
        Some("kind = 'run' AND finished_at IS NOT NULL"),
    )
    .await;
    let records = orchestrator
        .ledger()
        .run(&first.run_id)
        .await
        .expect("ledger");
    let start = records
        .iter()
        .find(|r| r.kind == "run")
        .expect("the run's start")
        .clone();
    crate::common::delete_rows(
        &wh.warehouse,
        lakehouse_runtime::ledger::RunRecord::DEF,
        Some("kind = 'run'"),
    )
    .await;
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    child.wait().expect("reap true");
    let gone = RunProcess {
        pid: child.id(),
        ..RunProcess::current()
    };
    orchestrator
        .ledger()
        .append(&[lakehouse_runtime::ledger::RunRecord {
            process: Some(gone.to_json()),
            ..start
        }])
        .await
        .expect("recorded");
    let died = orchestrator.ledger().runs(1).await.expect("ledger");
    assert_eq!(died[0].process_liveness(), Liveness::Gone);
    // An unfinished refresh holds back its pipelines' ordinary runs.
    let held = orchestrator
        .run(&RunConfig::default())
        .await
        .expect_err("resume it first");
    assert!(held.to_string().contains("resume it first"), "{held}");
    // Nothing is left to run: the resume records the run's end instead of failing.
    let closed = orchestrator
        .resume(&first.run_id, &RunConfig::default())
        .await
        .expect("the run's end recorded");
    assert!(closed.results.is_empty(), "{}", closed.render(false));
    let listed = orchestrator.ledger().runs(1).await.expect("ledger");
    assert_eq!(
        (listed[0].run_id.as_str(), listed[0].status.as_str()),
        (first.run_id.as_str(), "succeeded")
    );
    // With the rows its pipelines wrote.
    let written: u64 = first.results.iter().filter_map(|r| r.rows_written).sum();
    assert_eq!(listed[0].rows_written, Some(written as i64));
    assert_eq!(written, 2);
    orchestrator
        .run(&RunConfig::default())
        .await
        .expect("no refresh holds it back");
}

/// A run of `ticks` and `flaky` in which `flaky` fails (setting `test`), its ledger rows, and
/// its start row.
async fn a_failed_flaky_run(
    orchestrator: &Orchestrator,
    config: &RunConfig,
) -> (
    lakehouse_runtime::orchestrator::RunReport,
    Vec<lakehouse_runtime::ledger::RunRecord>,
    lakehouse_runtime::ledger::RunRecord,
) {
    let failed = orchestrator.run(config).await.expect("run");
    assert!(!failed.succeeded(), "{}", failed.render(false));
    let records = orchestrator
        .ledger()
        .run(&failed.run_id)
        .await
        .expect("ledger");
    let start = records
        .iter()
        .find(|r| r.kind == "run" && r.finished_at.is_none())
        .expect("the run's start")
        .clone();
    (failed, records, start)
}

#[tokio::test]
async fn a_runs_latest_execution_is_its_highest_whatever_the_clocks() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "flaky"]), wh.warehouse.clone());
    let config = flaky_without_retries("clocks");
    let (failed, _, start) = a_failed_flaky_run(&orchestrator, &config).await;
    assert_eq!(start.execution, Some(1));
    // Resumed on a host whose clock is ten minutes behind: its rows are stamped earlier.
    let behind = Timestamp(start.started_at.0 - 600_000_000);
    let resumed =
        |status: &str, finished: Option<Timestamp>| lakehouse_runtime::ledger::RunRecord {
            status: status.to_owned(),
            started_at: behind,
            finished_at: finished,
            execution: Some(2),
            ..start.clone()
        };
    orchestrator
        .ledger()
        .append(&[
            resumed("running", None),
            resumed("succeeded", Some(Timestamp(behind.0 + 1_000_000))),
        ])
        .await
        .expect("recorded");
    let listed = orchestrator.ledger().runs(1).await.expect("ledger");
    assert_eq!(
        (listed[0].status.as_str(), listed[0].execution),
        ("succeeded", Some(2))
    );
    // A resume after it is the third, whatever its time.
    let error = orchestrator
        .resume(&failed.run_id, &config)
        .await
        .map(|report| report.render(false));
    let records = orchestrator
        .ledger()
        .run(&failed.run_id)
        .await
        .expect("ledger");
    assert!(
        records
            .iter()
            .any(|r| r.kind == "run" && r.execution == Some(3)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_pipelines_latest_status_is_its_latest_executions_whatever_the_clocks() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "flaky"]), wh.warehouse.clone());
    let config = flaky_without_retries("pipeline_clocks");
    let (failed, records, start) = a_failed_flaky_run(&orchestrator, &config).await;
    let attempt = records
        .iter()
        .find(|r| r.pipeline.as_deref() == Some("flaky"))
        .expect("flaky's attempt");
    assert_eq!(
        (attempt.status.as_str(), attempt.execution),
        ("failed", Some(1))
    );
    // Resumed on a host whose clock is ten minutes behind, where flaky succeeded.
    let behind = Timestamp(start.started_at.0 - 600_000_000);
    let second = |record: &lakehouse_runtime::ledger::RunRecord, status: &str| {
        lakehouse_runtime::ledger::RunRecord {
            status: status.to_owned(),
            started_at: behind,
            finished_at: Some(Timestamp(behind.0 + 1_000_000)),
            error: None,
            execution: Some(2),
            ..record.clone()
        }
    };
    orchestrator
        .ledger()
        .append(&[
            second(&start, "running"),
            lakehouse_runtime::ledger::RunRecord {
                attempt: Some(2),
                ..second(attempt, "succeeded")
            },
            second(&start, "succeeded"),
        ])
        .await
        .expect("recorded");
    // Its latest status is the second execution's: nothing is left to resume.
    let refused = orchestrator
        .resume(&failed.run_id, &config)
        .await
        .map(|report| report.render(false))
        .expect_err("nothing to resume");
    assert!(
        refused.to_string().contains("every pipeline succeeded"),
        "{refused}"
    );
}

/// Deletes ok1's attempt rows of run `sequence` from the ledger, as if they were never recorded.
async fn forget_ok1_attempts(wh: &TempWarehouse, sequence: i64) {
    crate::common::delete_rows(
        &wh.warehouse,
        lakehouse_runtime::ledger::RunRecord::DEF,
        Some(&format!("pipeline = 'ok1' AND sequence = {sequence}")),
    )
    .await;
}

fn registry(names: &[&str]) -> Registry {
    let all: Vec<&'static PipelineDescriptor> = inventory_pipelines();
    Registry::new(all.into_iter().filter(|p| names.contains(&p.name))).expect("valid sub-graph")
}

fn inventory_pipelines() -> Vec<&'static PipelineDescriptor> {
    Registry::from_inventory()
        .expect("valid graph")
        .pipelines()
        .to_vec()
}

fn fast(config: RunConfig) -> RunConfig {
    RunConfig {
        retry_delay: Duration::from_millis(1),
        max_retry_delay: Duration::from_millis(2),
        ..config
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_left_running_is_not_started_again_beside_itself_by_the_next_run() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "blocks"]), wh.warehouse.clone());
    let (release, gate) = std::sync::mpsc::channel::<()>();
    *BLOCKS_AT.lock().expect("gate") = Some(gate);
    // (Not the 30 s an attempt cut short is given to stop by default.)
    let mut config = RunConfig {
        cut_wait: Duration::from_millis(200),
        ..RunConfig::default()
    };
    config.settings.set("block", "yes");
    let first = orchestrator.run(&config).await.expect("run 1");
    let blocked = first.result("blocks").expect("planned");
    assert_eq!((blocked.status, blocked.attempts), (Status::Failed, 1));
    let error = blocked.error.clone().unwrap_or_default();
    assert!(
        error.contains("is left running, so it is not retried"),
        "{error}"
    );
    // A loop's next run: the attempt still blocks its thread, and would run beside it.
    let second = orchestrator.run(&config).await.expect("run 2");
    let refused = second.result("blocks").expect("planned");
    assert_eq!((refused.status, refused.attempts), (Status::Failed, 1));
    let error = refused.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "its attempt of run `{}` is still running, left so after it was cut short",
            first.run_id
        )),
        "{error}"
    );
    drop(release);
}

#[tokio::test]
async fn a_pipeline_that_panics_is_not_retried() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "panics"]), wh.warehouse.clone());
    let report = orchestrator
        .run(&fast(RunConfig {
            default_retries: 2,
            ..RunConfig::default()
        }))
        .await
        .expect("a report");
    let panics = report.result("panics").expect("planned");
    assert_eq!((panics.status, panics.attempts), (Status::Failed, 1));
    let error = panics.error.clone().unwrap_or_default();
    assert!(
        error.contains(
            "panicked: index out of bounds in pipeline code (a bug in the pipeline's code or a library it calls: not \
             retried)"
        ),
        "{error}"
    );
}

/// A config under which `flaky` fails its first call in test `test` for good (no retries).
fn flaky_without_retries(test: &str) -> RunConfig {
    let mut config = fast(RunConfig::default());
    config.settings.set("test", test);
    config.overrides.insert(
        "flaky".into(),
        lakehouse_runtime::orchestrator::PipelineOverride {
            retries: Some(0),
            timeout: None,
        },
    );
    config
}

/// Makes `n` runs of `orchestrator`'s whole registry, each of which must succeed.
async fn succeed_runs(orchestrator: &Orchestrator, n: usize) {
    for run in 1..=n {
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        assert!(report.succeeded(), "run {run}: {}", report.render(false));
    }
}

fn statuses(report: &lakehouse_runtime::RunReport) -> BTreeMap<&'static str, Status> {
    report.statuses().into_iter().collect()
}

const FAILURE_GRAPH: &[&str] = &[
    "ticks", "ok1", "bad", "panics", "slow", "down1", "down2", "both",
];

#[tokio::test]
async fn a_failure_skips_what_is_downstream_through_a_pipeline_left_out() {
    // bad → down1 → down2, down1 left out: down2 would build on bad's run through down1's
    // table, so it is skipped, as dbt skips through nodes a selection removes.
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "bad", "down1", "down2"]),
        wh.warehouse.clone(),
    );
    let report = orchestrator
        .run(&fast(RunConfig {
            exclude: vec!["down1".to_owned()],
            ..RunConfig::default()
        }))
        .await
        .expect("the run completes");
    assert_eq!(
        statuses(&report),
        BTreeMap::from([
            ("ticks", Status::Succeeded),
            ("bad", Status::Failed),
            ("down2", Status::Skipped),
        ])
    );
    let error = report
        .result("down2")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(error.contains("upstream `bad` did not succeed"), "{error}");
}

#[tokio::test]
async fn failures_are_contained_and_downstream_is_skipped() {
    use Status::*;
    // `both` reads `bad`, which fails, and `ok1`: skipped unless the policy is `All`. `None`:
    // the default, `Any`.
    for (serial, policy, expected_both) in [
        (false, Some(SkipPolicy::All), Succeeded),
        (true, Some(SkipPolicy::All), Succeeded),
        (false, Some(SkipPolicy::Any), Skipped),
        (true, None, Skipped),
    ] {
        let wh = TempWarehouse::new();
        let orchestrator = Orchestrator::new(registry(FAILURE_GRAPH), wh.warehouse.clone());
        let defaults = RunConfig::default();
        let config = fast(RunConfig {
            concurrency: if serial { 1 } else { 4 },
            skip_policy: policy.unwrap_or(defaults.skip_policy),
            ..defaults
        });
        let report = orchestrator.run(&config).await.expect("the run completes");
        let expected = BTreeMap::from([
            ("ticks", Succeeded),
            ("ok1", Succeeded),
            ("bad", Failed),
            ("panics", Failed),
            ("slow", Failed),
            ("down1", Skipped),
            ("down2", Skipped),
            ("both", expected_both),
        ]);
        assert_eq!(
            statuses(&report),
            expected,
            "serial={serial} policy={policy:?}"
        );
        let error = |name: &str| {
            report
                .result(name)
                .and_then(|r| r.error.clone())
                .unwrap_or_default()
        };
        assert!(error("bad").contains("the source system is down"));
        assert!(
            error("panics").contains("panicked: index out of bounds in pipeline code"),
            "{}",
            error("panics")
        );
        assert!(
            error("slow").contains("timed out after 50ms"),
            "{}",
            error("slow")
        );
        assert!(
            error("down2").contains("upstream `down1`"),
            "{}",
            error("down2")
        );
        assert!(!report.succeeded());
        // Below the table, which cuts errors to 120 characters of a line, those it cut in full.
        let rendered = report.render(false);
        assert!(
            rendered.contains("\n`bad` failed: the source system is down: the ERP's export endpoint answered 503 Service Unavailable three times; its status page says maintenance until 06:00 UTC")
                && !rendered.contains("\n`panics` failed"),
            "{rendered}"
        );
    }
}

#[tokio::test]
async fn resume_reads_the_sources_with_the_runs_settings() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "flaky"]), wh.warehouse.clone());
    let mut config = flaky_without_retries("resume-settings");
    config
        .settings
        .set("source.mode", "live")
        .set("source.authorization", "Apikey 123")
        .set("other.api_key", "env:API_KEY");
    let first = orchestrator.run(&config).await.expect("run");
    assert_eq!(
        first.result("flaky").map(|r| r.status),
        Some(Status::Failed)
    );
    let recorded = orchestrator
        .ledger()
        .run(&first.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .find(|r| r.kind == "run")
        .and_then(|r| r.settings);
    // A secret's value is not recorded; a variable's name is.
    assert_eq!(
        recorded.as_deref(),
        Some(
            r#"{"other.api_key":"env:API_KEY","source.authorization":null,"source.mode":"live","test":"resume-settings"}"#
        )
    );
    // Resumed without settings: `flaky` reads the run's `test` (its second call succeeds).
    let resumed = orchestrator
        .resume(&first.run_id, &fast(RunConfig::default()))
        .await
        .expect("resume");
    assert_eq!(
        resumed.result("flaky").map(|r| (r.status, r.attempts)),
        Some((Status::Succeeded, 1))
    );
}

#[tokio::test]
async fn fail_fast_cancels_the_rest() {
    use Status::*;
    for serial in [false, true] {
        let wh = TempWarehouse::new();
        let orchestrator = Orchestrator::new(registry(FAILURE_GRAPH), wh.warehouse.clone());
        let config = fast(RunConfig {
            fail_fast: true,
            concurrency: if serial { 1 } else { 8 },
            ..RunConfig::default()
        });
        let report = orchestrator.run(&config).await.expect("the run completes");
        let s = statuses(&report);
        assert_eq!(s["ticks"], Succeeded);
        let failed: Vec<_> = s
            .iter()
            .filter(|(_, st)| **st == Failed)
            .map(|(n, _)| *n)
            .collect();
        // Serially, the first failure stops everything; in parallel, pipelines that failed at
        // the same moment are failed too, and the rest is cancelled.
        if serial {
            assert_eq!(
                failed.len(),
                1,
                "exactly the first failure is failed: {s:?}"
            );
        } else {
            assert!(!failed.is_empty(), "{s:?}");
        }
        for later in ["down1", "down2", "both"] {
            assert_eq!(s[later], Cancelled, "{later} never starts: {s:?}");
        }
        for (name, status) in &s {
            assert!(
                matches!(status, Succeeded | Failed | Cancelled),
                "{name}: {status:?}"
            );
        }
    }
}

#[tokio::test]
async fn fail_fast_stops_a_running_pipeline_before_it_writes() {
    let wh = TempWarehouse::new();
    let (alive, mut gone) = tokio::sync::mpsc::channel::<()>(1);
    *GATED_ALIVE.lock().unwrap_or_else(|p| p.into_inner()) = Some(alive);
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "gated", "fails_later"]),
        wh.warehouse.clone(),
    );
    let config = RunConfig {
        fail_fast: true,
        concurrency: 4,
        ..RunConfig::default()
    };
    let report = orchestrator.run(&config).await.expect("the run completes");
    assert_eq!(
        statuses(&report),
        BTreeMap::from([
            ("ticks", Status::Succeeded),
            ("gated", Status::Cancelled),
            ("fails_later", Status::Failed),
        ])
    );
    // Stopped, not aborted: its attempt is counted and recorded as cancelled, with the reason.
    let gated = report.result("gated").expect("planned");
    assert_eq!(gated.attempts, 1);
    let error = gated.error.clone().unwrap_or_default();
    assert_eq!(
        error,
        "cancelled by fail-fast after `fails_later` failed; stopped before its write committed"
    );
    let attempts = orchestrator
        .ledger()
        .run(&report.run_id)
        .await
        .expect("ledger");
    let recorded = attempts
        .iter()
        .find(|r| r.pipeline.as_deref() == Some("gated") && r.attempt == Some(1))
        .map(|r| (r.status.clone(), r.error.clone()));
    assert_eq!(
        recorded,
        Some(("cancelled".to_owned(), Some(error.clone()))),
        "{attempts:?}"
    );
    // Let a `gated` still running go on, then wait until none is left: a cancelled pipeline
    // must not write after the run reported it cancelled.
    GATE.add_permits(1);
    GATED_ALIVE.lock().unwrap_or_else(|p| p.into_inner()).take();
    assert_eq!(gone.recv().await, None);
    assert_eq!(
        wh.warehouse
            .version(<Gated as lakehouse_runtime::Table>::DEF)
            .await
            .expect("version"),
        None,
        "the cancelled pipeline wrote its table"
    );
}

#[tokio::test]
async fn fail_fast_ends_a_retry_wait_and_no_retry_follows() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "retries_slowly", "fails_after_retry_wait"]),
        wh.warehouse.clone(),
    );
    let config = RunConfig {
        fail_fast: true,
        concurrency: 4,
        retry_delay: Duration::from_secs(3600),
        max_retry_delay: Duration::from_secs(3600),
        ..RunConfig::default()
    };
    let report = orchestrator.run(&config).await.expect("the run completes");
    let slow = report.result("retries_slowly").expect("planned");
    assert_eq!((slow.status, slow.attempts), (Status::Cancelled, 1));
    assert_eq!(
        slow.error.as_deref(),
        Some(
            "cancelled by fail-fast after `fails_after_retry_wait` failed before a retry; \
             attempt 1 failed: always fails"
        )
    );
}

#[tokio::test]
async fn a_pipeline_starts_once_its_own_upstreams_end_not_the_whole_group() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&[
            "ticks",
            "aa_waits_for_downstream",
            "bb_quick",
            "cc_after_quick",
        ]),
        wh.warehouse.clone(),
    );
    let plan = orchestrator.plan(&RunConfig::default()).expect("plan");
    assert_eq!(
        plan.names(),
        [
            vec!["ticks"],
            vec!["aa_waits_for_downstream", "bb_quick"],
            vec!["cc_after_quick"]
        ]
    );
    let mut config = RunConfig {
        concurrency: 4,
        ..RunConfig::default()
    };
    config.settings.set("test", "no_barrier");
    let report = orchestrator.run(&config).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    // As late as possible, the groups still run one after another.
    let last = RunConfig {
        order: lakehouse_runtime::orchestrator::Order::ProcessLast,
        ..RunConfig::default()
    };
    let plan = orchestrator.plan(&last).expect("plan");
    assert_eq!(
        plan.names(),
        [
            vec!["ticks"],
            vec!["bb_quick"],
            vec!["aa_waits_for_downstream", "cc_after_quick"]
        ]
    );
    // `aa_waits_for_downstream` is held back behind `bb_quick`, which it does not read.
    assert_eq!(
        plan.starts_after("aa_waits_for_downstream"),
        ["ticks", "bb_quick"]
    );
}

#[tokio::test]
async fn a_pipeline_waiting_to_retry_gives_its_slot_to_another() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "aa_retries_once", "zz_runs_meanwhile"]),
        wh.warehouse.clone(),
    );
    // One at a time: `aa_retries_once` starts first (its name sorts first), fails, and waits;
    // `zz_runs_meanwhile` takes the slot then, not after every retry.
    let config = fast(RunConfig {
        concurrency: 1,
        ..RunConfig::default()
    });
    let report = orchestrator.run(&config).await.expect("run");
    let retried = report.result("aa_retries_once").expect("planned");
    assert_eq!(
        (retried.status, retried.attempts),
        (Status::Succeeded, 2),
        "{}",
        report.render(false)
    );
    assert!(report.succeeded(), "{}", report.render(false));
    // In that order: the first attempt, the other pipeline, the retry.
    let attempts = orchestrator
        .ledger()
        .run(&report.run_id)
        .await
        .expect("ledger");
    let order: Vec<(String, Option<i32>)> = attempts
        .iter()
        .filter(|r| r.kind == "pipeline" && r.pipeline.as_deref() != Some("ticks"))
        .map(|r| (r.pipeline.clone().unwrap_or_default(), r.attempt))
        .collect();
    assert_eq!(
        order,
        [
            ("aa_retries_once".to_owned(), Some(1)),
            ("zz_runs_meanwhile".to_owned(), Some(1)),
            ("aa_retries_once".to_owned(), Some(2)),
        ]
    );
}

#[tokio::test]
async fn a_retry_turns_a_transient_failure_into_success() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "flaky"]), wh.warehouse.clone());
    let mut config = fast(RunConfig::default());
    config.settings.set("test", "retry");
    let report = orchestrator.run(&config).await.expect("run");
    let flaky = report.result("flaky").expect("planned");
    assert_eq!((flaky.status, flaky.attempts), (Status::Succeeded, 2));
    let attempts = orchestrator
        .ledger()
        .run(&report.run_id)
        .await
        .expect("ledger");
    let flaky_rows: Vec<(Option<i32>, String)> = attempts
        .iter()
        .filter(|r| r.pipeline.as_deref() == Some("flaky"))
        .map(|r| (r.attempt, r.status.clone()))
        .collect();
    assert_eq!(
        flaky_rows,
        [
            (Some(1), "failed".to_owned()),
            (Some(2), "succeeded".to_owned())
        ]
    );
    // Each committed write is measured once, with the attempt that made it.
    let metrics = crate::common::render(
        wh.warehouse
            .sql(
                &[lakehouse_runtime::ledger::TableMetric::DEF],
                "SELECT run_id, table_name, version, rows, files FROM lakehouse.table_metrics \
                 ORDER BY table_name",
            )
            .await
            .expect("metrics"),
    )
    .await;
    let run = &report.run_id;
    assert_eq!(
        metrics,
        [
            format!("{run}|bronze.ticks|1|1|1"),
            format!("{run}|silver.flaky|1|1|1")
        ]
    );
}

#[tokio::test]
async fn upstreams_outside_the_selection_do_not_skip_the_target() {
    // The original's bug: with direction none, a target whose upstreams are not selected was
    // always skipped.
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let config = RunConfig {
        targets: vec!["ok1".into()],
        direction: Direction::None,
        ..RunConfig::default()
    };
    let report = orchestrator.run(&config).await.expect("run");
    assert_eq!(
        statuses(&report),
        BTreeMap::from([("ok1", Status::Succeeded)])
    );
}

#[tokio::test]
async fn resume_reruns_only_what_did_not_succeed() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "ok1", "flaky", "after_flaky"]),
        wh.warehouse.clone(),
    );
    // No retries: flaky fails on its first call.
    let config = flaky_without_retries("resume");
    let first = orchestrator.run(&config).await.expect("run");
    assert_eq!(
        first.result("flaky").map(|r| r.status),
        Some(Status::Failed)
    );
    assert_eq!(
        first.result("after_flaky").map(|r| r.status),
        Some(Status::Skipped)
    );
    let ticks_version = wh
        .warehouse
        .version(<Ticks as lakehouse_runtime::Table>::DEF)
        .await
        .expect("version");

    let resumed = orchestrator
        .resume(&first.run_id, &config)
        .await
        .expect("resume");
    assert_eq!(resumed.run_id, first.run_id);
    assert_eq!(resumed.run_at, first.run_at);
    // The skipped downstream is resumed too.
    assert_eq!(
        statuses(&resumed),
        BTreeMap::from([
            ("flaky", Status::Succeeded),
            ("after_flaky", Status::Succeeded)
        ])
    );
    assert_eq!(
        wh.warehouse
            .version(<Ticks as lakehouse_runtime::Table>::DEF)
            .await
            .expect("version"),
        ticks_version,
        "the source was not called again"
    );
    // The run is listed once, as its latest execution left it.
    let runs = orchestrator.ledger().runs(10).await.expect("ledger");
    let listed: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r.run_id.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(listed, [(first.run_id.as_str(), "succeeded")]);
    assert_eq!(
        runs[0].selection.as_deref(),
        Some("after_flaky flaky"),
        "the resumed pipelines, sorted"
    );
    // Its rows are the run's: those of the first execution (ticks, ok1) and the resume's.
    let written = |report: &lakehouse_runtime::orchestrator::RunReport| -> u64 {
        report.results.iter().filter_map(|r| r.rows_written).sum()
    };
    assert_eq!(written(&first), 2, "{}", first.render(false));
    assert_eq!(
        runs[0].rows_written,
        Some((written(&first) + written(&resumed)) as i64),
        "{}",
        resumed.render(false)
    );
    let error = orchestrator
        .resume(&first.run_id, &config)
        .await
        .expect_err("nothing left");
    assert!(error.to_string().contains("nothing to resume"), "{error}");
}

#[tokio::test]
async fn an_unreadable_incremental_position_fails_instead_of_reading_everything_again() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    let second = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 2");
    let ok1 = <Ok1 as lakehouse_runtime::Table>::DEF;
    assert_eq!(contents(&wh.warehouse, ok1).await.len(), 2);
    // ok1's last success, hand-edited into something that is not a map of versions.
    let success = orchestrator
        .ledger()
        .run(&second.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .find(|r| r.pipeline.as_deref() == Some("ok1") && r.status == "succeeded")
        .expect("ok1 succeeded");
    forget_ok1_attempts(&wh, success.sequence).await;
    orchestrator
        .ledger()
        .append(&[lakehouse_runtime::ledger::RunRecord {
            input_versions: Some(r#"{"bronze.ticks":"two"}"#.to_owned()),
            ..success
        }])
        .await
        .expect("recorded");
    let third = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 3");
    let failed = third.result("ok1").expect("ok1 ran");
    assert_eq!(failed.status, Status::Failed);
    let error = failed.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "the ledger's record of `ok1`'s last success (run `{}`) has input_versions",
            second.run_id
        )) && error.contains("run the pipeline with --rebuild"),
        "{error}"
    );
    assert_eq!(
        contents(&wh.warehouse, ok1).await.len(),
        2,
        "nothing read again"
    );
}

#[tokio::test]
async fn an_incremental_output_deleted_to_start_over_reads_its_inputs_whole() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    for _ in 0..2 {
        assert!(
            orchestrator
                .run(&RunConfig::default())
                .await
                .expect("run")
                .succeeded()
        );
    }
    let table = <Ok1 as lakehouse_runtime::Table>::DEF;
    let folder = crate::common::table_folder(&wh.warehouse, table);
    std::fs::remove_dir_all(folder).expect("deleted");
    // An attempt created the table again, then failed before its commit.
    wh.warehouse.ensure(table).await.expect("created again");
    // Before, the run read on from its last success: ticks 1 and 2 were gone for good.
    let third = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 3");
    assert!(third.succeeded(), "{}", third.render(false));
    assert_eq!(contents(&wh.warehouse, table).await, ["1", "2", "3"]);
    orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 4");
    assert_eq!(contents(&wh.warehouse, table).await, ["1", "2", "3", "4"]);
}

#[tokio::test]
async fn a_resumed_commit_of_the_run_counts_its_rows_and_version() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let first = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    // The process died after ok1's commit, before its attempt was recorded; a later run wrote
    // ok1's table on top of it.
    forget_ok1_attempts(&wh, first.sequence).await;
    orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 2");
    let resumed = orchestrator
        .resume(&first.run_id, &RunConfig::default())
        .await
        .expect("resume");
    let ok1 = resumed.result("ok1").expect("resumed");
    assert_eq!((ok1.status, ok1.replayed), (Status::Succeeded, true));
    // Its own commit, beneath run 2's: before, it counted no rows and the table's current
    // version, and was taken for superseded.
    assert_eq!((ok1.rows_written, ok1.version), (Some(1), Some(1)));
    assert_eq!(ok1.error, None);
    let recorded = orchestrator
        .ledger()
        .run(&first.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .find(|r| r.pipeline.as_deref() == Some("ok1"))
        .expect("recorded");
    assert_eq!(recorded.rows_written, Some(1));
}

#[tokio::test]
async fn a_resumed_dated_run_superseded_by_a_later_write_says_so_and_how_to_write_it() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "flaky"]), wh.warehouse.clone());
    let day_one = Timestamp::parse("2026-11-01T00:00:00Z").expect("a time");
    let mut dated = flaky_without_retries("superseded");
    dated.run_at = Some(day_one);
    let failed = orchestrator.run(&dated).await.expect("dated run");
    assert_eq!(
        failed.result("flaky").map(|r| r.status),
        Some(Status::Failed)
    );
    // A later, ordinary run writes flaky's table; then the dated run is resumed.
    let later = flaky_without_retries("superseded");
    assert!(
        orchestrator
            .run(&later)
            .await
            .expect("later run")
            .succeeded()
    );
    let resumed = orchestrator
        .resume(&failed.run_id, &later)
        .await
        .expect("resume");
    let flaky = resumed.result("flaky").expect("resumed");
    assert_eq!((flaky.status, flaky.replayed), (Status::Succeeded, true));
    // Before, nothing said that day one's rows were never written.
    let note = flaky.error.clone().unwrap_or_default();
    assert!(
        note.starts_with("superseded by run `r000002-")
            && note.contains(
                "not written at 2026-11-01T00:00:00Z; `orchestrate run --select flaky --run-at \
                 2026-11-01T00:00:00Z` writes it, if its rows are not in the later write (a \
                 backfill counts the time as done)"
            ),
        "{note}"
    );
    let recorded = orchestrator
        .ledger()
        .run(&failed.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .rfind(|r| r.pipeline.as_deref() == Some("flaky"))
        .expect("recorded");
    assert_eq!(recorded.error.as_deref(), Some(note.as_str()));
    // A backfill counts the time as done, as the note says; what the note says writes it.
    let done = orchestrator
        .backfill(&later, &[day_one], Redo::Missing, |_| {})
        .await
        .expect("backfill");
    assert_eq!(done.already_done, [day_one]);
    let mut again = flaky_without_retries("superseded");
    again.run_at = Some(day_one);
    again.targets = vec!["flaky".to_owned()];
    let rerun = orchestrator.run(&again).await.expect("day one again");
    assert_eq!(
        rerun.result("flaky").map(|r| r.status),
        Some(Status::Succeeded)
    );
}

#[tokio::test]
async fn a_resumed_run_superseded_by_a_later_success_without_a_write_is_not_executed() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "flaky"]), wh.warehouse.clone());
    let config = flaky_without_retries("superseded_by_success");
    let failed = orchestrator.run(&config).await.expect("run 1");
    assert_eq!(
        failed.result("flaky").map(|r| r.status),
        Some(Status::Failed)
    );
    // A later run's success that wrote nothing (a merge that changed no row, nothing new):
    // it read past what run 1 would.
    let attempt = orchestrator
        .ledger()
        .run(&failed.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .find(|r| r.pipeline.as_deref() == Some("flaky"))
        .expect("flaky was attempted");
    orchestrator
        .ledger()
        .append(&[lakehouse_runtime::ledger::RunRecord {
            run_id: "r000005-later".to_owned(),
            sequence: 5,
            status: "succeeded".to_owned(),
            error: None,
            input_versions: Some(r#"{"bronze.ticks":1}"#.to_owned()),
            ..attempt
        }])
        .await
        .expect("recorded");
    let resumed = orchestrator
        .resume(&failed.run_id, &config)
        .await
        .expect("resume");
    let flaky = resumed.result("flaky").expect("resumed");
    assert_eq!((flaky.status, flaky.replayed), (Status::Succeeded, true));
    let note = flaky.error.clone().unwrap_or_default();
    assert!(
        note.starts_with("superseded by run `r000005-later`'s later success"),
        "{note}"
    );
    // Nothing written at run 1's time.
    assert!(
        wh.warehouse
            .version(<Flaky as lakehouse_runtime::Table>::DEF)
            .await
            .expect("version")
            .is_none_or(|v| v == 0),
        "no write"
    );
}

#[tokio::test]
async fn changes_of_a_table_whose_change_feed_was_turned_off_fail_naming_it() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    assert!(
        orchestrator
            .run(&RunConfig::default())
            .await
            .expect("run 1")
            .succeeded()
    );
    // Another engine turns the feed off.
    let ticks = <Ticks as lakehouse_runtime::Table>::DEF;
    let delta = wh
        .warehouse
        .load(ticks)
        .await
        .expect("load")
        .expect("exists");
    delta
        .set_tbl_properties()
        .with_properties([("delta.enableChangeDataFeed".to_owned(), "false".to_owned())].into())
        .await
        .expect("turned off");
    let second = orchestrator
        .run(&fast(RunConfig::default()))
        .await
        .expect("run 2");
    let ok1 = second.result("ok1").expect("planned");
    assert_eq!(ok1.status, Status::Failed);
    let error = ok1.error.clone().unwrap_or_default();
    assert!(
        error.contains("`Changes<_>` of bronze.ticks: the table's change data feed is not on"),
        "{error}"
    );
}

/// A run configuration under which `breaks_ledger` replaces the folder of `lakehouse.runs`.
fn breaking_the_ledger(wh: &TempWarehouse) -> RunConfig {
    let folder =
        crate::common::table_folder(&wh.warehouse, lakehouse_runtime::ledger::RunRecord::DEF);
    let mut config = RunConfig::default();
    config.settings.set(
        "runs_folder",
        folder.to_str().expect("utf-8").trim_end_matches('/'),
    );
    config
}

#[tokio::test]
async fn a_run_whose_end_cannot_be_recorded_still_reports_how_it_ended() {
    let wh = TempWarehouse::new();
    let orchestrator =
        Orchestrator::new(registry(&["ticks", "breaks_ledger"]), wh.warehouse.clone());
    // The ledger's tables exist once a run has started.
    assert!(
        orchestrator
            .run(&RunConfig::default())
            .await
            .expect("run 1")
            .succeeded()
    );
    let config = breaking_the_ledger(&wh);
    // Before, the run was an error: its report (every pipeline succeeded) was lost.
    use crate::sources::server::{Reply, TestServer};
    use lakehouse_runtime::orchestrator::{NotifyOn, Webhook};
    let server = TestServer::start(|_| Reply::json(200, "ok"));
    let orchestrator = orchestrator.with_webhook(
        Webhook::new(&server.url("/hooks/lake"), NotifyOn::Failure).expect("webhook"),
    );
    let report = orchestrator.run(&config).await.expect("a report");
    assert_eq!(
        report.result("breaks_ledger").and_then(|r| r.error.clone()),
        None
    );
    assert_eq!(
        statuses(&report),
        BTreeMap::from([
            ("ticks", Status::Succeeded),
            ("breaks_ledger", Status::Succeeded)
        ])
    );
    assert!(!report.succeeded(), "an unrecorded run is not a success");
    assert_eq!(report.status(), Status::Failed);
    let unrecorded = report.unrecorded.clone().expect("not recorded");
    assert!(unrecorded.contains("lakehouse.runs"), "{unrecorded}");
    assert_eq!(
        report.to_json()["unrecorded"].as_str(),
        Some(unrecorded.as_str())
    );
    // The webhook is told, the error once (the summary gave it, then the notice again).
    let sent = server.requests();
    assert_eq!(sent.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).expect("JSON");
    assert_eq!(body["recorded"], false);
    let text = body["text"].as_str().expect("a text");
    assert_eq!(text.matches(unrecorded.as_str()).count(), 1, "{text}");
    assert!(
        text.contains(&format!(
            "failed: 2 succeeded — the run could not be recorded: {unrecorded}"
        )),
        "{text}"
    );
    // The ledger mended, this orchestrator's next run (a loop's next tick) records the end the
    // run could not: it is no longer "running" for as long as the process lives.
    let folder =
        crate::common::table_folder(&wh.warehouse, lakehouse_runtime::ledger::RunRecord::DEF);
    let folder = folder.to_str().expect("utf-8").trim_end_matches('/');
    std::fs::remove_file(folder).expect("the blocker");
    std::fs::rename(format!("{folder}.moved"), folder).expect("moved back");
    let broken = |ledger: &lakehouse_runtime::ledger::Ledger| {
        let run_id = report.run_id.clone();
        let ledger = ledger.clone();
        async move {
            ledger
                .run(&run_id)
                .await
                .expect("ledger")
                .into_iter()
                .filter(|r| r.kind == "run")
                .map(|r| (r.status, r.finished_at.is_some()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        broken(orchestrator.ledger()).await,
        [("running".to_owned(), false)]
    );
    let next = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 3");
    assert!(next.succeeded(), "{}", next.render(false));
    assert_eq!(
        broken(orchestrator.ledger()).await,
        [("failed".to_owned(), true), ("running".to_owned(), false)]
    );
    let listed = orchestrator.ledger().runs(10).await.expect("runs");
    let listed = listed
        .iter()
        .find(|r| r.run_id == report.run_id)
        .expect("listed");
    assert_eq!(listed.status, "failed");
}

#[tokio::test]
async fn a_run_whose_rows_the_ledger_lost_keeps_its_sequence_from_the_next_run() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    for expected in [1, 2] {
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        assert_eq!(report.sequence, expected);
    }
    // Run 2's rows are lost (the ledger unreachable while its writes landed).
    crate::common::delete_rows(
        &wh.warehouse,
        lakehouse_runtime::ledger::RunRecord::DEF,
        Some("sequence = 2"),
    )
    .await;
    // The same orchestrator (a loop) takes sequence 3: at 2 again, its writes would collide
    // with run 2's and every pipeline fail.
    let third = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 3");
    assert_eq!(third.sequence, 3);
    assert!(third.succeeded(), "{}", third.render(false));
}

#[tokio::test]
async fn a_run_resumes_without_a_pipeline_removed_since() {
    let wh = TempWarehouse::new();
    let before = Orchestrator::new(registry(&["ticks", "bad", "ok1"]), wh.warehouse.clone());
    let failed = before
        .run(&RunConfig {
            fail_fast: false,
            ..RunConfig::default()
        })
        .await
        .expect("a run");
    assert_eq!(failed.result("bad").map(|r| r.status), Some(Status::Failed));
    // `bad` was removed from the code; `ok1` failed too (here: its row is made so).
    let mut records = before.ledger().run(&failed.run_id).await.expect("ledger");
    let ok1 = records
        .iter_mut()
        .find(|r| r.pipeline.as_deref() == Some("ok1"))
        .expect("ok1 ran");
    ok1.status = "failed".to_owned();
    ok1.attempt = Some(2);
    ok1.started_at = Timestamp(ok1.started_at.0 + 1);
    let ok1 = ok1.clone();
    before.ledger().append(&[ok1]).await.expect("recorded");
    let after = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let resumed = after
        .resume(&failed.run_id, &RunConfig::default())
        .await
        .expect("resumed without `bad`");
    assert_eq!(
        resumed.result("ok1").map(|r| r.status),
        Some(Status::Succeeded)
    );
    assert!(resumed.result("bad").is_none());
    // `bad` never succeeded: the run is no success, and its row says so.
    assert_eq!(resumed.not_resumed, ["bad"]);
    assert_eq!(resumed.status(), Status::Failed);
    assert!(!resumed.succeeded());
    assert!(
        resumed
            .render(false)
            .contains("Not resumed, no longer registered and never succeeded in this run: bad"),
        "{}",
        resumed.render(false)
    );
    assert!(
        resumed
            .summary()
            .ends_with("failed: 1 succeeded — bad: no longer registered, not resumed"),
        "{}",
        resumed.summary()
    );
    let run = after.ledger().runs(1).await.expect("ledger");
    assert_eq!(run[0].status, "failed");
    // The resumed attempt numbers on from the run's last: rows of one run stay told apart.
    let rows = after.ledger().run(&failed.run_id).await.expect("ledger");
    let numbers: Vec<Option<i32>> = rows
        .iter()
        .filter(|r| r.pipeline.as_deref() == Some("ok1"))
        .map(|r| r.attempt)
        .collect();
    assert_eq!(numbers, [Some(1), Some(2), Some(3)]);
    // Nothing left but the removed pipeline: resume says so.
    let again = after
        .resume(&failed.run_id, &RunConfig::default())
        .await
        .expect_err("nothing left");
    assert!(
        again
            .to_string()
            .contains("the pipelines that did not succeed are no longer registered (bad)"),
        "{again}"
    );
    // A run whose process died before a pipeline since removed had a row: that pipeline never
    // succeeded either.
    let start = rows
        .iter()
        .find(|r| r.kind == "run" && r.planned.is_some())
        .expect("the run's start")
        .clone();
    let died = lakehouse_runtime::ledger::RunRecord {
        run_id: "r999999-died".to_owned(),
        sequence: 999_999,
        status: "running".to_owned(),
        finished_at: None,
        planned: Some("ticks ghost".to_owned()),
        ..start
    };
    after.ledger().append(&[died]).await.expect("recorded");
    let resumed = after
        .resume(
            "r999999-died",
            &RunConfig {
                force: true,
                ..RunConfig::default()
            },
        )
        .await
        .expect("resumed without `ghost`");
    assert_eq!(resumed.not_resumed, ["ghost"]);
    assert_eq!(resumed.status(), Status::Failed);
}

#[tokio::test]
async fn a_run_whose_attempt_row_was_lost_is_recorded_as_no_success() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "breaks_ledger", "mends_ledger"]),
        wh.warehouse.clone(),
    );
    assert!(
        orchestrator
            .run(&RunConfig::default())
            .await
            .expect("run 1")
            .succeeded()
    );
    let mut config = breaking_the_ledger(&wh);
    config.settings.set("mend_ledger", "yes");
    let report = orchestrator.run(&config).await.expect("a report");
    // Every pipeline succeeded, but `breaks_ledger`'s attempt is not in the ledger.
    assert!(
        report.results.iter().all(|r| r.status == Status::Succeeded),
        "{}",
        report.render(false)
    );
    let why = report.unrecorded.clone().expect("not fully recorded");
    assert!(why.contains("`breaks_ledger`'s attempt 1"), "{why}");
    assert_eq!(report.status(), Status::Failed);
    // Its one-line summary (an alert's text) says why a run of successes failed.
    assert!(
        report
            .summary()
            .contains(" — not every row reached lakehouse.runs"),
        "{}",
        report.summary()
    );
    // The run's end row (the ledger mended by then) says it did not succeed.
    let runs = orchestrator.ledger().runs(1).await.expect("ledger");
    assert_eq!(
        (runs[0].run_id.as_str(), runs[0].status.as_str()),
        (report.run_id.as_str(), "failed")
    );
}

#[tokio::test]
async fn a_full_refresh_whose_end_could_not_be_recorded_is_told_as_it_ended_by_the_next_run() {
    let wh = TempWarehouse::new();
    let orchestrator =
        Orchestrator::new(registry(&["ticks", "breaks_ledger"]), wh.warehouse.clone());
    assert!(
        orchestrator
            .run(&RunConfig::default())
            .await
            .expect("run 1")
            .succeeded()
    );
    let config = RunConfig {
        full_refresh: true,
        ..breaking_the_ledger(&wh)
    };
    let report = orchestrator.run(&config).await.expect("a report");
    assert!(report.unrecorded.is_some(), "{}", report.render(false));
    // The ledger mended, the refresh's end is still only in this process: recorded before the
    // next run looks for unfinished refreshes (it told the refresh "running", which a resume
    // refuses while this process lives).
    let folder =
        crate::common::table_folder(&wh.warehouse, lakehouse_runtime::ledger::RunRecord::DEF);
    let folder = folder.to_str().expect("utf-8").trim_end_matches('/');
    std::fs::remove_file(folder).expect("the blocker");
    std::fs::rename(format!("{folder}.moved"), folder).expect("moved back");
    let ticks = RunConfig {
        targets: vec!["ticks".to_owned()],
        ..RunConfig::default()
    };
    let refused = orchestrator
        .run(&ticks)
        .await
        .expect_err("the refresh is not fully recorded");
    assert!(
        refused.to_string().contains(&format!(
            "run `{}`, a --full-refresh of ticks, did not finish (failed): resume it first",
            report.run_id
        )),
        "{refused}"
    );
    let resumed = orchestrator
        .resume(&report.run_id, &RunConfig::default())
        .await
        .expect("resumed");
    assert!(resumed.succeeded(), "{}", resumed.render(false));
    let next = orchestrator.run(&ticks).await.expect("not refused");
    assert!(next.succeeded(), "{}", next.render(false));
}

#[tokio::test]
async fn an_upstream_recreated_at_once_is_told_by_its_table_id() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    assert!(
        orchestrator
            .run(&RunConfig::default())
            .await
            .expect("run 1")
            .succeeded()
    );
    // bronze.ticks is deleted; the next run creates it again, at the version ok1 read: its
    // creation is within the margin for clocks, and its version not behind. Before, ok1 read
    // nothing new, and tick 2 was lost to it for good.
    let ticks = <Ticks as lakehouse_runtime::Table>::DEF;
    let folder = crate::common::table_folder(&wh.warehouse, ticks);
    std::fs::remove_dir_all(folder).expect("deleted");
    let second = orchestrator
        .run(&fast(RunConfig {
            default_retries: 2,
            ..RunConfig::default()
        }))
        .await
        .expect("run 2");
    let ok1 = second.result("ok1").expect("planned");
    // The same at every attempt: not retried.
    assert_eq!((ok1.status, ok1.attempts), (Status::Failed, 1));
    let error = ok1.error.clone().unwrap_or_default();
    assert!(
        error.contains(
            "bronze.ticks was recreated since this pipeline last read it (its Delta table id was"
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_at_a_time_pipelines_start_in_plan_order() {
    for _ in 0..3 {
        let wh = TempWarehouse::new();
        let (events, mut told) = tokio::sync::mpsc::unbounded_channel();
        let orchestrator = Orchestrator::new(
            registry(&[
                "ticks",
                "cc_after_quick",
                "bb_quick",
                "bad",
                "ok1",
                "panics",
            ]),
            wh.warehouse.clone(),
        )
        .with_events(events);
        let report = orchestrator
            .run(&RunConfig {
                concurrency: 1,
                ..RunConfig::default()
            })
            .await
            .expect("run");
        drop(orchestrator);
        let mut started = Vec::new();
        while let Some(event) = told.recv().await {
            if let lakehouse_runtime::orchestrator::Event::Started { pipeline, .. } = event {
                started.push(pipeline);
            }
        }
        let planned: Vec<&str> = report.results.iter().map(|r| r.pipeline).collect();
        assert_eq!(started, planned);
        assert_eq!(
            started,
            [
                "ticks",
                "bad",
                "bb_quick",
                "ok1",
                "panics",
                "cc_after_quick"
            ]
        );
    }
}

#[tokio::test]
async fn a_skipped_pipeline_is_told_as_soon_as_its_upstream_failed() {
    let wh = TempWarehouse::new();
    let (events, mut told) = tokio::sync::mpsc::unbounded_channel();
    // `down1` (after `bad`) is skipped, `after_flaky` runs after `flaky`.
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "bad", "down1", "flaky", "after_flaky"]),
        wh.warehouse.clone(),
    )
    .with_events(events);
    let report = orchestrator
        .run(&fast(RunConfig::default()))
        .await
        .expect("run");
    assert_eq!(
        report.result("down1").map(|r| r.status),
        Some(Status::Skipped)
    );
    drop(orchestrator);
    let mut order = Vec::new();
    while let Some(event) = told.recv().await {
        match event {
            lakehouse_runtime::orchestrator::Event::Started { pipeline, .. } => {
                order.push(format!("start {pipeline}"))
            }
            lakehouse_runtime::orchestrator::Event::Finished(result) => {
                order.push(format!("end {}", result.pipeline))
            }
            _ => {}
        }
    }
    // Told as it is decided, at once after its upstream's end (it was told at the run's end).
    let skipped = order.iter().position(|e| e == "end down1").expect("told");
    let failed = order.iter().position(|e| e == "end bad").expect("told");
    assert_eq!(skipped, failed + 1, "{order:?}");
}

#[tokio::test]
async fn a_forced_resume_keeps_the_incremental_position() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let first = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    let forced = RunConfig {
        rerun_succeeded: true,
        ..RunConfig::default()
    };
    let replayed = orchestrator
        .resume(&first.run_id, &forced)
        .await
        .expect("forced resume");
    let ok1 = replayed.result("ok1").expect("planned");
    assert_eq!((ok1.status, ok1.replayed), (Status::Succeeded, true));
    // The replay recorded what the committed write had read (from its commit), so the next
    // run copies only the new tick.
    let second = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 2");
    assert_eq!(second.result("ok1").and_then(|r| r.rows_written), Some(1));
    assert_eq!(
        contents(&wh.warehouse, <Ok1 as lakehouse_runtime::Table>::DEF).await,
        ["1", "2"]
    );
}

#[tokio::test]
async fn a_write_of_this_sequence_by_another_run_fails_the_pipeline_instead_of_dropping_rows() {
    // Another orchestrator on this warehouse, whose run picked sequence 2 too, or a later one,
    // wrote ok1's table.
    for (their_sequence, their_run) in [(2, "r000002-other"), (5, "r000005-other")] {
        another_orchestrators_write_is_not_ours(their_sequence, their_run, None).await;
    }
    // Started in the same second as ours, with the same sequence: before run ids ended in a
    // random suffix, its id was ours, and its commit was taken for this run's own.
    let run_at = Timestamp::parse("2026-11-01T00:00:00Z").expect("a time");
    another_orchestrators_write_is_not_ours(2, "r000002-20261101T000000Z", Some(run_at)).await;
}

async fn another_orchestrators_write_is_not_ours(
    their_sequence: i64,
    their_run: &str,
    run_at: Option<Timestamp>,
) {
    let wh = TempWarehouse::new();
    let table = <Ok1 as lakehouse_runtime::Table>::DEF;
    // Run 1 (ticks alone): the ledger has runs, so the next one takes sequence 2.
    let ticks = Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone());
    ticks.run(&RunConfig::default()).await.expect("run 1");
    #[derive(Serialize)]
    struct Row {
        n: i64,
    }
    crate::common::write(
        &wh.warehouse,
        table,
        &[Row { n: 100 }],
        lakehouse_runtime::store::WriteOptions {
            transaction: Some(("ok1".to_owned(), their_sequence)),
            metadata: [("lakehouse.runId".to_owned(), serde_json::json!(their_run))].into(),
            ..Default::default()
        },
    )
    .await
    .expect("their write");
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let mut config = fast(RunConfig::default());
    config.run_at = run_at;
    // The attempt finds the transaction when it writes; a retry would find it again, and is
    // not made (it would call the source again for nothing).
    config.overrides.insert(
        "ok1".into(),
        lakehouse_runtime::orchestrator::PipelineOverride {
            retries: Some(2),
            timeout: None,
        },
    );
    let report = orchestrator.run(&config).await.expect("run");
    assert_eq!(report.sequence, 2);
    let ok1 = report.result("ok1").expect("planned");
    assert_eq!((ok1.status, ok1.attempts), (Status::Failed, 1));
    let error = ok1.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "silver.ok1 already holds a write of run sequence 2 or later by run `{their_run}`"
        )) && error.contains("two orchestrators are running on one warehouse"),
        "{error}"
    );
    let attempts = orchestrator
        .ledger()
        .run(&report.run_id)
        .await
        .expect("ledger");
    let first = attempts
        .iter()
        .find(|r| r.pipeline.as_deref() == Some("ok1") && r.attempt == Some(1))
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(
        first.contains(&format!("or later by run `{their_run}`")),
        "{first}"
    );
    assert_eq!(contents(&wh.warehouse, table).await, ["100"]);
}

#[tokio::test]
async fn a_run_overlapping_another_run_of_an_incremental_pipeline_does_not_copy_its_rows_again() {
    let wh = TempWarehouse::new();
    let table = <Overlapped as lakehouse_runtime::Table>::DEF;
    let orchestrator = Orchestrator::new(registry(&["ticks", "overlapped"]), wh.warehouse.clone());
    succeed_runs(&orchestrator, 1).await;
    // Run 2 makes tick 2 alone.
    let ticks = Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone());
    ticks.run(&RunConfig::default()).await.expect("run 2");
    // Run 3 reads on from run 1's commit (ticks 2 and 3) while a run of sequence 2 that read
    // them too commits its copy.
    *OVERLAP.lock().unwrap_or_else(|p| p.into_inner()) = Some((wh.warehouse.clone(), 2));
    let report = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 3");
    assert_eq!(report.sequence, 3);
    let overlapped = report.result("overlapped").expect("planned");
    assert_eq!(
        overlapped.status,
        Status::Failed,
        "{}",
        report.render(false)
    );
    let error = overlapped.error.clone().unwrap_or_default();
    assert!(
        error.contains(
            "silver.overlapped: `overlapped` committed its transaction 2 (another run of it, \
             overlapping this one) after this write's incremental reads began from its \
             transaction 1"
        ),
        "{error}"
    );
    assert_eq!(contents(&wh.warehouse, table).await, ["1", "100"]);
}

#[tokio::test]
async fn an_overlapping_run_that_read_nothing_new_is_not_refused() {
    let wh = TempWarehouse::new();
    let table = <Overlapped as lakehouse_runtime::Table>::DEF;
    let orchestrator = Orchestrator::new(registry(&["ticks", "overlapped"]), wh.warehouse.clone());
    succeed_runs(&orchestrator, 1).await;
    orchestrator
        .ledger()
        .raise_sequence_floor(5)
        .await
        .expect("floor");
    // Run 6 of `overlapped` alone finds no new tick while a run of sequence 5 commits.
    *OVERLAP.lock().unwrap_or_else(|p| p.into_inner()) = Some((wh.warehouse.clone(), 5));
    let alone = RunConfig {
        targets: vec!["overlapped".into()],
        direction: lakehouse_runtime::orchestrator::Direction::None,
        ..RunConfig::default()
    };
    let report = orchestrator.run(&alone).await.expect("run 6");
    assert_eq!(report.sequence, 6);
    assert!(report.succeeded(), "{}", report.render(false));
    assert_eq!(contents(&wh.warehouse, table).await, ["1", "100"]);
}

#[tokio::test]
async fn changes_whose_commits_left_the_log_are_refused_naming_the_way_out() {
    #[derive(Serialize)]
    struct Row {
        n: i64,
        run_at: Timestamp,
    }
    let wh = TempWarehouse::new();
    let table = <Ticks as lakehouse_runtime::Table>::DEF;
    // Version 0 creates the table; versions 1, 2, 3 append.
    for n in 0..3 {
        crate::common::write(
            &wh.warehouse,
            table,
            &[Row {
                n,
                run_at: Timestamp(0),
            }],
            Default::default(),
        )
        .await
        .expect("append");
    }
    // As Delta's log cleanup leaves it: a checkpoint at the latest, the commits before gone.
    let delta = wh
        .warehouse
        .load(table)
        .await
        .expect("load")
        .expect("table");
    lakehouse_runtime::deltalake::checkpoints::create_checkpoint(&delta, None)
        .await
        .expect("checkpoint");
    let log = crate::common::table_folder(&wh.warehouse, table).join("_delta_log");
    for version in 0..=2 {
        std::fs::remove_file(log.join(format!("{version:020}.json"))).expect("cleaned up");
    }
    let session = wh.warehouse.session();
    let error = match wh.warehouse.read_changes(&session, table, Some(1)).await {
        Ok(_) => panic!("versions 2 and 3 cannot be read as changes"),
        Err(error) => error,
    };
    assert!(!error.is_retryable(), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains(
            "`Changes<_>` of bronze.ticks: its reader last read version 1, and the table's log \
             no longer has version 2"
        ) && text.contains("--full-refresh"),
        "{text}"
    );
}

#[tokio::test]
async fn changes_are_read_up_to_the_version_loaded() {
    #[derive(Serialize)]
    struct Row {
        n: i64,
        run_at: Timestamp,
    }
    let wh = TempWarehouse::new();
    let table = <Ticks as lakehouse_runtime::Table>::DEF;
    let append = |n: i64| {
        let warehouse = wh.warehouse.clone();
        async move {
            crate::common::write(
                &warehouse,
                table,
                &[Row {
                    n,
                    run_at: Timestamp(0),
                }],
                Default::default(),
            )
            .await
            .expect("append")
        }
    };
    // Version 0 creates the table; versions 1, 2, 3 append n = 0, 1, 2.
    for n in 0..3 {
        append(n).await;
    }
    let session = wh.warehouse.session();
    let changes = wh
        .warehouse
        .read_changes(&session, table, Some(1))
        .await
        .expect("changes");
    assert_eq!(changes.version, Some(3));
    // A commit after the read was planned belongs to the next read.
    append(3).await;
    let rows = crate::common::render(changes.rows.select_columns(&["n"]).expect("n"));
    assert_eq!(rows.await, ["1", "2"]);
    let everything = wh
        .warehouse
        .read_changes(&session, table, None)
        .await
        .expect("changes");
    assert_eq!(everything.version, Some(4));
    append(4).await;
    let rows = crate::common::render(everything.rows.select_columns(&["n"]).expect("n"));
    assert_eq!(rows.await, ["0", "1", "2", "3"]);
}

/// Asserts that a loop of `orchestrator` skips each of its ticks (one more than the failures
/// in a row that end a loop), refused beside a live run, rather than fail.
async fn assert_a_loop_skips_every_tick(orchestrator: &Orchestrator) {
    let skipping = orchestrator
        .run_loop_with(
            &RunConfig::default(),
            Duration::from_millis(1),
            None,
            Some(MAX_FAILED_LOOP_RUNS + 1),
            |_| {},
        )
        .await
        .expect("ticks skipped");
    assert_eq!(
        (skipping.done, skipping.failed, skipping.skipped),
        (0, 0, MAX_FAILED_LOOP_RUNS + 1)
    );
}

/// An orchestrator of `ticks` and `ok1` after one run, and that run's start row.
async fn after_one_run(wh: &TempWarehouse) -> (Orchestrator, lakehouse_runtime::ledger::RunRecord) {
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let first = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    let start = orchestrator
        .ledger()
        .run(&first.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .find(|r| r.kind == "run" && r.status == "running")
        .expect("the run's start is recorded");
    (orchestrator, start)
}

#[tokio::test]
async fn a_run_is_refused_while_another_process_of_this_host_runs_some_of_its_pipelines() {
    let wh = TempWarehouse::new();
    let (orchestrator, start) = after_one_run(&wh).await;
    let start = &start;
    // A run of `ok1` started by another process of this host, still alive (this test's
    // parent), as a cron run started while the last one runs finds it.
    let here = RunProcess::current();
    let alive = RunProcess {
        pid: std::os::unix::process::parent_id(),
        started: None,
        ..here.clone()
    };
    assert_eq!(alive.liveness(), Liveness::Alive);
    let running = |process: &RunProcess, by: i64| lakehouse_runtime::ledger::RunRecord {
        run_id: "r000002-elsewhere".to_owned(),
        sequence: 2,
        started_at: Timestamp(Timestamp::now().0 + by),
        process: Some(process.to_json()),
        planned: Some("ok1".to_owned()),
        ..start.clone()
    };
    orchestrator
        .ledger()
        .append(&[running(&alive, 0)])
        .await
        .expect("recorded");

    let refused = orchestrator
        .run(&RunConfig::default())
        .await
        .expect_err("beside a live run");
    let text = refused.to_string();
    assert!(
        text.starts_with(&format!(
            "run `r000002-elsewhere` is still running (pid {} on {}, started ",
            alive.pid, here.host
        )) && text.ends_with(
            ") and executes ok1: wait for it to end, or run with --force (two runs of an \
             incremental pipeline at once fail at their writes)"
        ),
        "{text}"
    );
    // Refused before it started: it took no sequence.
    let next = orchestrator
        .ledger()
        .next_sequence()
        .await
        .expect("sequence");
    assert_eq!(next, 3);
    // A loop skips such ticks, rather than fail after a few.
    assert_a_loop_skips_every_tick(&orchestrator).await;

    // A run of other pipelines goes on; so does one with --force.
    let ticks = RunConfig {
        targets: vec!["ticks".to_owned()],
        ..RunConfig::default()
    };
    let report = orchestrator.run(&ticks).await.expect("ticks alone");
    assert!(report.succeeded(), "{}", report.render(false));
    let forced = RunConfig {
        force: true,
        ..RunConfig::default()
    };
    let report = orchestrator.run(&forced).await.expect("forced");
    assert!(report.succeeded(), "{}", report.render(false));

    // Recorded by a process of another host (maybe a pod killed mid-run), it holds no run: the
    // writes' own checks are left to tell.
    let elsewhere = RunProcess {
        host: format!("{}-elsewhere", here.host),
        ..here.clone()
    };
    orchestrator
        .ledger()
        .append(&[running(&elsewhere, 1_000_000)])
        .await
        .expect("recorded");
    let report = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("beside an unknown run");
    assert!(report.succeeded(), "{}", report.render(false));
}

#[tokio::test]
async fn a_full_refresh_running_in_another_process_makes_a_loop_skip_its_ticks() {
    let wh = TempWarehouse::new();
    let (orchestrator, start) = after_one_run(&wh).await;
    let start = &start;
    // A nightly full refresh of `ok1`, still running in another process of this host.
    let alive = RunProcess {
        pid: std::os::unix::process::parent_id(),
        started: None,
        ..RunProcess::current()
    };
    let refreshing = lakehouse_runtime::ledger::RunRecord {
        run_id: "r000002-refreshing".to_owned(),
        sequence: 2,
        started_at: Timestamp::now(),
        process: Some(alive.to_json()),
        planned: Some("ok1".to_owned()),
        refresh: Some("full".to_owned()),
        ..start.clone()
    };
    orchestrator
        .ledger()
        .append(&[refreshing])
        .await
        .expect("recorded");
    // Not "did not finish: resume it" (a resume of a live run is refused): it is running.
    let refused = orchestrator
        .run(&RunConfig::default())
        .await
        .expect_err("beside a live refresh");
    assert!(
        refused
            .to_string()
            .starts_with("run `r000002-refreshing` is still running"),
        "{refused}"
    );
    // So a loop skips its ticks instead of failing after a few; its webhook hears of the
    // first skipped tick only, not of each (a page a minute for as long as the refresh runs).
    use crate::sources::server::{Reply, TestServer};
    use lakehouse_runtime::orchestrator::{NotifyOn, Webhook};
    let server = TestServer::start(|_| Reply::json(200, "ok"));
    let orchestrator = orchestrator.with_webhook(
        Webhook::new(&server.url("/hooks/lake"), NotifyOn::Failure).expect("webhook"),
    );
    assert_a_loop_skips_every_tick(&orchestrator).await;
    let sent = server.requests();
    assert_eq!(sent.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).expect("JSON");
    assert_eq!(body["status"], "not started");
    // A run of its own (a cron's) is told.
    orchestrator
        .run(&RunConfig::default())
        .await
        .expect_err("beside a live refresh");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_refresh_running_for_days_in_another_process_makes_a_loop_skip_its_ticks() {
    let wh = TempWarehouse::new();
    let (orchestrator, start) = after_one_run(&wh).await;
    // Alive (this test's parent), begun two days ago: past the live-run check's look back.
    let alive = RunProcess {
        pid: std::os::unix::process::parent_id(),
        started: None,
        ..RunProcess::current()
    };
    let two_days = 2 * 86_400 * 1_000_000;
    orchestrator
        .ledger()
        .append(&[lakehouse_runtime::ledger::RunRecord {
            run_id: "r000002-long-rebuild".to_owned(),
            sequence: 2,
            started_at: Timestamp(Timestamp::now().0 - two_days),
            process: Some(alive.to_json()),
            planned: Some("ok1".to_owned()),
            refresh: Some("full".to_owned()),
            ..start
        }])
        .await
        .expect("recorded");
    let refused = orchestrator
        .run(&RunConfig::default())
        .await
        .expect_err("beside a live refresh");
    assert!(
        refused.to_string().starts_with(&format!(
            "run `r000002-long-rebuild`, a --full-refresh of ok1, is still running by {alive}"
        )),
        "{refused}"
    );
    assert_a_loop_skips_every_tick(&orchestrator).await;
}

#[tokio::test]
async fn a_refresh_recorded_running_on_another_host_is_not_said_to_be_resumed_first() {
    let wh = TempWarehouse::new();
    let (orchestrator, start) = after_one_run(&wh).await;
    let start = &start;
    let here = RunProcess::current();
    let elsewhere = RunProcess {
        host: format!("{}-elsewhere", here.host),
        ..here.clone()
    };
    orchestrator
        .ledger()
        .append(&[lakehouse_runtime::ledger::RunRecord {
            run_id: "r000002-other-pod".to_owned(),
            sequence: 2,
            started_at: Timestamp::now(),
            process: Some(elsewhere.to_json()),
            planned: Some("ok1".to_owned()),
            refresh: Some("full".to_owned()),
            ..start.clone()
        }])
        .await
        .expect("recorded");
    // It may still run there: "resume it first" would start a second refresh beside it.
    let refused = orchestrator
        .run(&RunConfig::default())
        .await
        .expect_err("an unfinished refresh");
    let text = refused.to_string();
    assert!(
        text.starts_with(&format!(
            "run `r000002-other-pod`, a --full-refresh of ok1, is recorded as running by {elsewhere} \
             (started "
        )) && text.contains("if it still runs, wait for it to end; if its process died, resume it"),
        "{text}"
    );
}

#[tokio::test]
async fn a_run_whose_process_died_is_listed_and_resumed_with_its_plan() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    // What a run killed after `ticks` leaves: its start (with its plan) and one attempt.
    let first = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    let records = orchestrator
        .ledger()
        .run(&first.run_id)
        .await
        .expect("ledger");
    let start = records
        .iter()
        .find(|r| r.kind == "run" && r.status == "running")
        .expect("the run's start is recorded");
    assert_eq!(start.planned.as_deref(), Some("ticks ok1"));
    let ticks_attempt = records
        .iter()
        .find(|r| r.pipeline.as_deref() == Some("ticks"))
        .expect("ticks ran");
    let died =
        |record: &lakehouse_runtime::ledger::RunRecord| lakehouse_runtime::ledger::RunRecord {
            run_id: "r000002-died".to_owned(),
            sequence: 2,
            ..record.clone()
        };
    orchestrator
        .ledger()
        .append(&[died(start)])
        .await
        .expect("recorded");
    // The start alone takes the sequence.
    assert_eq!(
        orchestrator
            .ledger()
            .next_sequence()
            .await
            .expect("sequence"),
        3
    );
    orchestrator
        .ledger()
        .append(&[died(ticks_attempt)])
        .await
        .expect("recorded");
    let runs = orchestrator.ledger().runs(10).await.expect("ledger");
    assert_eq!(
        (runs[0].run_id.as_str(), runs[0].status.as_str()),
        ("r000002-died", "running")
    );
    // Runs are named by a unique prefix of their id too.
    let ledger = orchestrator.ledger();
    assert_eq!(
        ledger.resolve_run_id("r000002").await.expect("one"),
        Some("r000002-died".to_owned())
    );
    assert_eq!(ledger.resolve_run_id("x").await.expect("none"), None);
    // An empty id (an unset shell variable) names no run, not the only one.
    let empty = ledger.resolve_run_id("").await.expect_err("empty");
    assert!(empty.to_string().contains("a run id is empty"), "{empty}");
    let several = ledger.resolve_run_id("r00000").await.expect_err("two runs");
    assert!(
        several
            .to_string()
            .starts_with("`r00000` starts several run ids (r000001-"),
        "{several}"
    );
    // Its process is this test's, alive: resuming it is refused, even though it names the fix.
    let here = RunProcess::current();
    assert_eq!(start.process.as_deref(), Some(here.to_json().as_str()));
    let refused = orchestrator
        .resume("r000002", &RunConfig::default())
        .await
        .expect_err("still running");
    assert!(
        refused.to_string().contains(&format!(
            "run `r000002-died` is still running (pid {} on {})",
            here.pid, here.host
        )),
        "{refused}"
    );
    // An execution by a process on another host may be live: resuming it takes --force.
    let later = |record: &lakehouse_runtime::ledger::RunRecord, process: RunProcess, by: i64| {
        lakehouse_runtime::ledger::RunRecord {
            started_at: Timestamp(record.started_at.0 + by),
            process: Some(process.to_json()),
            ..died(record)
        }
    };
    let elsewhere = RunProcess {
        host: format!("{}-elsewhere", here.host),
        ..here.clone()
    };
    orchestrator
        .ledger()
        .append(&[later(start, elsewhere.clone(), 1)])
        .await
        .expect("recorded");
    let refused = orchestrator
        .resume("r000002", &RunConfig::default())
        .await
        .expect_err("recorded as running");
    assert!(
        refused
            .to_string()
            .contains("is recorded as running by pid"),
        "{refused}"
    );
    // An execution whose process is gone (here: a child that ended) is resumed as it is.
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    child.wait().expect("reap true");
    let gone = RunProcess {
        pid: child.id(),
        ..here.clone()
    };
    orchestrator
        .ledger()
        .append(&[later(start, gone, 2)])
        .await
        .expect("recorded");
    assert_eq!(
        orchestrator.ledger().runs(1).await.expect("ledger")[0].process_liveness(),
        Liveness::Gone
    );
    // `ok1` never started: the resume runs it.
    let resumed = orchestrator
        .resume("r000002", &RunConfig::default())
        .await
        .expect("resume");
    assert_eq!(
        resumed.result("ok1").map(|r| (r.status, r.replayed)),
        Some((Status::Succeeded, false))
    );
    // The next run's sequence is above the dead run's.
    let next = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 3");
    assert_eq!(next.sequence, 3);

    // Forcing past a process that cannot be checked re-executes no pipeline that succeeded
    // (its sources would be called again): that takes `rerun_succeeded`.
    orchestrator
        .ledger()
        .append(&[later(start, elsewhere.clone(), 3)])
        .await
        .expect("recorded");
    let forced = RunConfig {
        force: true,
        ..RunConfig::default()
    };
    let nothing = orchestrator
        .resume("r000002", &forced)
        .await
        .expect_err("every pipeline succeeded");
    assert!(
        nothing.to_string().contains(
            "has nothing to resume: every pipeline succeeded (`--rerun-succeeded` re-executes them)"
        ),
        "{nothing}"
    );
    let rerun = RunConfig {
        force: true,
        rerun_succeeded: true,
        ..RunConfig::default()
    };
    let rerun = orchestrator
        .resume("r000002", &rerun)
        .await
        .expect("re-executed");
    assert_eq!(
        rerun.result("ticks").map(|r| r.status),
        Some(Status::Succeeded)
    );

    // Past sequence 999 999 ids grow a digit: a whole sequence still names its run.
    let numbered = |run_id: &str, sequence| lakehouse_runtime::ledger::RunRecord {
        run_id: run_id.to_owned(),
        sequence,
        ..start.clone()
    };
    ledger
        .append(&[
            numbered("r100000-x", 100_000),
            numbered("r1000000-y", 1_000_000),
        ])
        .await
        .expect("recorded");
    assert_eq!(
        ledger.resolve_run_id("r100000").await.expect("one"),
        Some("r100000-x".to_owned())
    );
    assert!(ledger.resolve_run_id("r10000").await.is_err(), "two runs");
}

#[tokio::test]
async fn a_run_whose_start_row_was_lost_is_resumed_only_when_forced_and_numbered_after_its_rows() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "bad"]), wh.warehouse.clone());
    let first = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    assert!(!first.succeeded());
    // What a run whose start row could not be appended leaves: its attempts alone (here the
    // failed one, of its second execution, as a resume whose start row was lost leaves it).
    let failed = orchestrator
        .ledger()
        .run(&first.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .find(|r| r.pipeline.as_deref() == Some("bad"))
        .expect("bad was attempted");
    assert_eq!(failed.execution, Some(1));
    orchestrator
        .ledger()
        .append(&[lakehouse_runtime::ledger::RunRecord {
            run_id: "r000009-lost".to_owned(),
            sequence: 9,
            execution: Some(2),
            ..failed
        }])
        .await
        .expect("recorded");
    let refused = orchestrator
        .resume("r000009", &RunConfig::default())
        .await
        .expect_err("no start row");
    assert!(
        refused.to_string().contains(
            "run `r000009-lost` has attempts in the ledger but no start row (it could not be \
             recorded)"
        ),
        "{refused}"
    );
    let forced = RunConfig {
        force: true,
        ..RunConfig::default()
    };
    let resumed = orchestrator
        .resume("r000009", &forced)
        .await
        .expect("forced");
    assert_eq!(resumed.results.len(), 1, "{}", resumed.render(false));
    assert_eq!(
        resumed.result("bad").map(|r| r.status),
        Some(Status::Failed)
    );
    // The forced resume is the third execution: the lost start row's attempt named the second.
    let rows = orchestrator
        .ledger()
        .run("r000009-lost")
        .await
        .expect("ledger");
    let executions: Vec<Option<i32>> = rows
        .iter()
        .filter(|r| r.kind == "run")
        .map(|r| r.execution)
        .collect();
    assert_eq!(executions, [Some(3), Some(3)]);
}

#[tokio::test]
async fn a_pipelines_latest_attempt_is_found_by_number_not_by_clock() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "bad"]), wh.warehouse.clone());
    let first = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    assert!(!first.succeeded());
    let failed = orchestrator
        .ledger()
        .run(&first.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .filter(|r| r.pipeline.as_deref() == Some("bad"))
        .max_by_key(|r| r.attempt)
        .expect("bad was attempted");
    // A later attempt that succeeded, recorded by a host whose clock had stepped back.
    orchestrator
        .ledger()
        .append(&[lakehouse_runtime::ledger::RunRecord {
            attempt: failed.attempt.map(|a| a + 1),
            status: "succeeded".to_owned(),
            error: None,
            started_at: Timestamp(failed.started_at.0 - 3_600_000_000),
            finished_at: Some(Timestamp(failed.started_at.0 - 3_599_000_000)),
            ..failed
        }])
        .await
        .expect("recorded");
    let resumed = orchestrator
        .resume(&first.run_id, &RunConfig::default())
        .await;
    assert!(
        matches!(&resumed, Err(e) if e.to_string().contains("has nothing to resume: every pipeline succeeded")),
        "its latest attempt succeeded: {resumed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_dropped_by_its_caller_is_recorded_as_cancelled() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "hangs"]), wh.warehouse.clone());
    let ledger = orchestrator.ledger().clone();
    // The caller gives up once the run is under way (as a `select!` or a time limit would).
    let under_way = async {
        loop {
            if let Ok(runs) = ledger.runs(1).await
                && let Some(run) = runs.into_iter().next()
            {
                return run.run_id;
            }
            tokio::task::yield_now().await;
        }
    };
    let config = RunConfig::default();
    let run_id = tokio::select! {
        report = orchestrator.run(&config) => panic!("`hangs` never ends: {report:?}"),
        run_id = under_way => run_id,
    };
    // Recorded by a task of its own, and queued at once: this orchestrator's next run records
    // it first if it has not landed yet.
    let next = RunConfig {
        targets: vec!["ticks".to_owned()],
        ..RunConfig::default()
    };
    orchestrator.run(&next).await.expect("the next run");
    let ends: Vec<_> = ledger
        .run(&run_id)
        .await
        .expect("rows")
        .into_iter()
        .filter(|r| r.kind == "run" && r.finished_at.is_some())
        .collect();
    assert_eq!(ends.len(), 1, "one end: {ends:?}");
    let latest = ends
        .into_iter()
        .next()
        .expect("the dropped run's end was recorded");
    assert_eq!(latest.status, "cancelled", "{latest:?}");
    assert!(
        latest
            .error
            .as_deref()
            .is_some_and(|e| e.contains("dropped by its caller")),
        "{latest:?}"
    );
    // Not "still running" (which refused its resume while this process lived).
    let running = ledger.running().await.expect("running runs");
    assert!(running.iter().all(|r| r.run_id != run_id), "{running:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_dropped_around_its_own_end_gets_one_end_row() {
    use lakehouse_runtime::orchestrator::Event;
    let wh = TempWarehouse::new();
    let (events, mut told) = tokio::sync::mpsc::unbounded_channel();
    let orchestrator =
        Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone()).with_events(events);
    let ledger = orchestrator.ledger().clone();
    let config = RunConfig::default();
    // Each run dropped a few more polls after its pipeline ended: before its end's append, while
    // its commit is in flight (which the drop does not stop), or after. The window in flight is
    // narrow: this holds the invariant, it does not reliably reproduce the race it guards.
    let mut dropped = 0;
    for polls_after in 0..12 {
        let mut run = std::pin::pin!(orchestrator.run(&config));
        let (mut finished, mut after) = (false, 0);
        loop {
            let poll =
                std::future::poll_fn(|cx| std::task::Poll::Ready(run.as_mut().poll(cx))).await;
            if poll.is_ready() {
                break;
            }
            while let Ok(event) = told.try_recv() {
                finished |= matches!(event, Event::Finished(_));
            }
            if finished {
                if after == polls_after {
                    dropped += 1;
                    break;
                }
                after += 1;
            }
            tokio::task::yield_now().await;
        }
    }
    assert!(dropped > 0, "some runs were dropped before they ended");
    // The next run records the ends still queued first, after any append in flight.
    orchestrator.run(&config).await.expect("the next run");
    let runs = ledger.runs(100).await.expect("runs");
    assert_eq!(runs.len(), 13);
    for run in runs {
        let ends: Vec<_> = ledger
            .run(&run.run_id)
            .await
            .expect("rows")
            .into_iter()
            .filter(|r| r.kind == "run" && r.finished_at.is_some())
            .map(|r| r.status)
            .collect();
        // Its own end ("succeeded"), or the drop's ("cancelled"): never both.
        assert_eq!(ends.len(), 1, "{}: {ends:?}", run.run_id);
    }
}

#[tokio::test]
async fn a_resume_whose_start_row_was_lost_is_not_resumed_beside_itself() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "bad"]), wh.warehouse.clone());
    let first = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    assert!(!first.succeeded());
    // Execution 1 ended (start and end rows). A resume, execution 2, could not record its start
    // row, and has recorded an attempt: it may still be running.
    let failed = orchestrator
        .ledger()
        .run(&first.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .find(|r| r.pipeline.as_deref() == Some("bad"))
        .expect("bad was attempted");
    orchestrator
        .ledger()
        .append(&[lakehouse_runtime::ledger::RunRecord {
            execution: Some(2),
            ..failed
        }])
        .await
        .expect("recorded");
    let refused = orchestrator
        .resume(&first.run_id, &RunConfig::default())
        .await
        .expect_err("execution 2 may be running");
    assert!(
        refused.to_string().contains(&format!(
            "run `{}` has attempts of its execution 2 in the ledger but no start or end row of it",
            first.run_id
        )),
        "{refused}"
    );
    let forced = RunConfig {
        force: true,
        ..RunConfig::default()
    };
    let resumed = orchestrator
        .resume(&first.run_id, &forced)
        .await
        .expect("forced");
    assert_eq!(
        resumed.result("bad").map(|r| r.status),
        Some(Status::Failed)
    );
}

#[tokio::test]
async fn loops_run_in_dependency_order_with_fresh_run_times_and_incremental_inputs() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let reports = orchestrator
        .run_loop(
            &RunConfig::default(),
            Duration::from_millis(1),
            None,
            Some(3),
        )
        .await
        .expect("loop");
    assert_eq!(reports.len(), 3);
    let times: Vec<i64> = reports.iter().map(|r| r.run_at.0).collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "distinct, increasing run_at: {times:?}"
    );
    for report in &reports {
        assert!(report.succeeded());
        let order: Vec<&str> = report.results.iter().map(|r| r.pipeline).collect();
        assert_eq!(order, ["ticks", "ok1"]);
        // Each run copies exactly the one new tick.
        assert_eq!(report.result("ok1").and_then(|r| r.rows_written), Some(1));
    }
    assert_eq!(
        contents(&wh.warehouse, <Ok1 as lakehouse_runtime::Table>::DEF).await,
        ["1", "2", "3"]
    );
}

// The clock is paused: the loop's waits pass at once.
#[tokio::test(start_paused = true)]
async fn a_loop_for_a_duration_starts_no_run_at_or_after_its_end() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone());
    // Starts at 0 and 1 h fall within 90 min; the next, at 2 h, would not.
    let runs = orchestrator
        .run_loop_with(
            &RunConfig::default(),
            Duration::from_secs(3600),
            Some(Duration::from_secs(5400)),
            Some(5),
            |_| {},
        )
        .await
        .expect("loop");
    assert_eq!((runs.done, runs.failed), (2, 0));
}

#[tokio::test]
async fn a_shutdown_request_cancels_what_has_not_started_and_ends_loops() {
    let wh = TempWarehouse::new();
    let (stop, shutdown) = tokio::sync::watch::channel(true);
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone())
        .with_shutdown(shutdown);
    let report = orchestrator.run(&RunConfig::default()).await.expect("run");
    assert_eq!(
        statuses(&report),
        BTreeMap::from([("ticks", Status::Cancelled), ("ok1", Status::Cancelled)])
    );
    assert_eq!(
        report
            .result("ticks")
            .and_then(|r| r.error.clone())
            .as_deref(),
        Some("the run was interrupted")
    );
    let runs = orchestrator.ledger().runs(10).await.expect("ledger");
    assert_eq!(runs.len(), 1, "the interrupted run is recorded");
    assert_eq!(runs[0].status, "cancelled");
    let loops = orchestrator
        .run_loop(
            &RunConfig::default(),
            Duration::from_millis(1),
            None,
            Some(5),
        )
        .await
        .expect("loop");
    assert!(
        loops.is_empty(),
        "a loop started after shutdown runs nothing"
    );
    drop(stop);
}

#[tokio::test]
async fn an_abort_cuts_the_running_pipelines_and_records_the_runs_end() {
    let wh = TempWarehouse::new();
    let (abort, aborting) = tokio::sync::watch::channel(false);
    *ABORT.lock().unwrap_or_else(|p| p.into_inner()) = Some(abort);
    let orchestrator =
        Orchestrator::new(registry(&["ticks", "aborted", "ok1"]), wh.warehouse.clone())
            .with_abort(aborting);
    // One at a time: `ok1` waits for its turn while `aborted` runs (ready ones start by name).
    let report = orchestrator
        .run(&fast(RunConfig {
            concurrency: 1,
            ..RunConfig::default()
        }))
        .await
        .expect("the run ends");
    assert_eq!(
        statuses(&report),
        BTreeMap::from([
            ("ticks", Status::Succeeded),
            ("aborted", Status::Cancelled),
            ("ok1", Status::Cancelled)
        ])
    );
    assert!(
        report
            .result("aborted")
            .and_then(|r| r.error.clone())
            .unwrap_or_default()
            .contains(
                "the run was aborted (a second interrupt, or the end of the grace after SIGTERM)"
            ),
        "{}",
        report.render(false)
    );
    // Not left "running" in the ledger.
    let runs = orchestrator.ledger().runs(1).await.expect("ledger");
    assert_eq!(runs[0].status, "cancelled");
    assert!(runs[0].finished_at.is_some());
}

#[tokio::test]
async fn an_interrupt_starts_no_waiting_pipeline_and_no_retry() {
    let wh = TempWarehouse::new();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    *INTERRUPT.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop);
    let (events, mut told) = tokio::sync::mpsc::unbounded_channel();
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "interrupts", "ok1"]),
        wh.warehouse.clone(),
    )
    .with_shutdown(shutdown)
    .with_events(events);
    // One at a time: `ok1` waits for its turn while `interrupts` runs (ready ones start by name).
    let config = fast(RunConfig {
        concurrency: 1,
        ..RunConfig::default()
    });
    let report = orchestrator.run(&config).await.expect("run");
    assert_eq!(
        statuses(&report),
        BTreeMap::from([
            ("ticks", Status::Succeeded),
            ("interrupts", Status::Cancelled),
            ("ok1", Status::Cancelled)
        ])
    );
    let interrupts = report.result("interrupts").expect("ran");
    assert_eq!(interrupts.attempts, 1, "no retry after the interrupt");
    // The attempt's failure is what the run's one-line summary tells.
    assert!(
        report
            .summary()
            .contains("— interrupts: the run was interrupted before a retry; attempt 1 failed"),
        "{}",
        report.summary()
    );
    // Each pipeline's end is told once, the one that never ran included.
    let orchestrator_ledger = orchestrator.ledger().clone();
    drop(orchestrator);
    let mut finished: BTreeMap<&str, usize> = BTreeMap::new();
    while let Some(event) = told.recv().await {
        if let lakehouse_runtime::orchestrator::Event::Finished(result) = event {
            *finished.entry(result.pipeline).or_default() += 1;
        }
    }
    assert_eq!(
        finished,
        BTreeMap::from([("interrupts", 1), ("ok1", 1), ("ticks", 1)])
    );
    assert_eq!(
        interrupts.error.as_deref(),
        Some(
            "the run was interrupted before a retry; attempt 1 failed: failed as the run was \
             interrupted"
        )
    );
    assert_eq!(
        report.result("ok1").and_then(|r| r.error.as_deref()),
        Some("the run was interrupted")
    );
    assert_eq!(
        wh.warehouse
            .version(<Ok1 as lakehouse_runtime::Table>::DEF)
            .await
            .expect("version"),
        None,
        "ok1 never ran"
    );
    // The ledger ends `interrupts` as the report does: its attempt failed, then it was
    // cancelled (before, the failed attempt was its last word, and `runs` said failed).
    let recorded: Vec<(Option<i32>, String)> = orchestrator_ledger
        .run(&report.run_id)
        .await
        .expect("ledger")
        .into_iter()
        .filter(|r| r.pipeline.as_deref() == Some("interrupts"))
        .map(|r| (r.attempt, r.status))
        .collect();
    assert_eq!(
        recorded,
        [
            (Some(1), "failed".to_owned()),
            (None, "cancelled".to_owned())
        ]
    );
}

/// The latest tick only: a full snapshot.
#[derive(Table)]
#[table(schema = "silver", name = "latest_tick", key(n), mode = merge)]
pub struct LatestTick {
    pub n: i64,
}

#[pipeline(depends_on = [ticks], full_snapshot)]
pub async fn latest_tick(ticks: Changes<Ticks>) -> Result<Frame<LatestTick>> {
    ticks
        .into_frame()
        .select_into(LatestTickSelect { n: Ticks::n })
}

/// A label per run, replaced each run.
#[derive(Table)]
#[table(schema = "bronze", name = "tick_labels", mode = overwrite)]
pub struct TickLabels {
    pub label: String,
}

#[pipeline]
pub async fn tick_labels(cx: &Ctx) -> Result<Frame<TickLabels>> {
    #[derive(Serialize)]
    struct Row {
        label: String,
    }
    cx.frame_from_rows(&[Row {
        label: format!("run {}", cx.run().sequence),
    }])
}

/// The latest tick, beside a table read whole.
#[derive(Table)]
#[table(schema = "silver", name = "labelled_tick", key(n), mode = merge)]
pub struct LabelledTick {
    pub n: i64,
}

#[pipeline(depends_on = [ticks, tick_labels], full_snapshot)]
pub async fn labelled_tick(
    ticks: Changes<Ticks>,
    _labels: Frame<TickLabels>,
) -> Result<Frame<LabelledTick>> {
    ticks
        .into_frame()
        .select_into(LabelledTickSelect { n: Ticks::n })
}

#[tokio::test]
async fn a_full_snapshot_whose_whole_input_changed_without_a_new_snapshot_says_so() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "tick_labels", "labelled_tick"]),
        wh.warehouse.clone(),
    );
    let table = <LabelledTick as lakehouse_runtime::Table>::DEF;
    orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    let only = |names: &[&str]| RunConfig {
        targets: names.iter().map(|name| name.to_string()).collect(),
        ..RunConfig::default()
    };
    // No new tick, nor label: nothing new, and nothing to say.
    let (logs, guard) = crate::common::capture_warnings();
    let quiet = orchestrator
        .run(&only(&["labelled_tick"]))
        .await
        .expect("run 2");
    assert!(quiet.result("labelled_tick").expect("ran").nothing_new);
    let said = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(!said.contains("changed since the last write"), "{said}");
    drop(guard);
    // A new label, no new tick: the snapshot cannot be recomputed (the new rows are empty), and
    // the warning names the table whose change waits for the next snapshot.
    orchestrator
        .run(&only(&["tick_labels"]))
        .await
        .expect("run 3");
    let (logs, guard) = crate::common::capture_warnings();
    let report = orchestrator
        .run(&only(&["labelled_tick"]))
        .await
        .expect("run 4");
    drop(guard);
    let result = report.result("labelled_tick").expect("ran");
    assert_eq!(
        (result.status, result.nothing_new),
        (Status::Succeeded, true)
    );
    assert_eq!(contents(&wh.warehouse, table).await, ["1"]);
    let said = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(
        said.contains(
            "though bronze.tick_labels changed since the last write: the output takes the \
             change with the next snapshot"
        ),
        "{said}"
    );
    // The next tick brings it in.
    orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 5");
    assert_eq!(contents(&wh.warehouse, table).await, ["5"]);
}

#[tokio::test]
async fn a_loop_without_an_interval_is_refused() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone());
    let error = orchestrator
        .run_loop_with(&RunConfig::default(), Duration::ZERO, None, Some(1), |_| {})
        .await
        .expect_err("no interval")
        .to_string();
    assert!(error.contains("longer than zero"), "{error}");
    // Nor a loop of no runs (it made one).
    let error = orchestrator
        .run_loop_with(
            &RunConfig::default(),
            Duration::from_millis(1),
            None,
            Some(0),
            |_| {},
        )
        .await
        .expect_err("no iteration")
        .to_string();
    assert!(error.contains("a loop of no runs"), "{error}");
    // Nor settings of one run: every run at one time, or reading its inputs whole each time.
    let one_run = [
        (
            RunConfig {
                run_at: Some(Timestamp(1_700_000_000_000_000)),
                ..RunConfig::default()
            },
            "a loop cannot take `run_at` (a setting of one run): each run is at its own time",
        ),
        (
            RunConfig {
                full_refresh: true,
                ..RunConfig::default()
            },
            "a loop cannot take `full_refresh` (a setting of one run): each run would read its \
             inputs whole again",
        ),
        (
            RunConfig {
                rebuild: true,
                ..RunConfig::default()
            },
            "a loop cannot take `rebuild`",
        ),
    ];
    for (config, expected) in &one_run {
        let error = orchestrator
            .run_loop_with(config, Duration::from_millis(1), None, Some(1), |_| {})
            .await
            .expect_err("one run's setting")
            .to_string();
        assert!(error.starts_with(expected), "{error}");
        let error = orchestrator
            .backfill(
                config,
                &[Timestamp(1_600_000_000_000_000)],
                Redo::Missing,
                |_| {},
            )
            .await
            .expect_err("one run's setting")
            .to_string();
        assert!(
            error.starts_with(&expected.replace("a loop", "a backfill")[..30]),
            "{error}"
        );
    }
    assert!(
        orchestrator
            .ledger()
            .runs(1)
            .await
            .expect("ledger")
            .is_empty()
    );
}

#[tokio::test]
async fn a_full_snapshot_replaces_the_rows_and_no_new_snapshot_changes_nothing() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "latest_tick"]), wh.warehouse.clone());
    let table = <LatestTick as lakehouse_runtime::Table>::DEF;
    orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    let second = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 2");
    assert_eq!(
        contents(&wh.warehouse, table).await,
        ["2"],
        "run 2's snapshot replaced run 1's: {:?}",
        second.result("latest_tick").and_then(|r| r.error.clone())
    );
    // Run 2 wrote tick 2 and deleted tick 1: said in the report, its JSON and the ledger.
    let result = second.result("latest_tick").expect("ran");
    assert_eq!(
        (result.rows_written, result.rows_deleted),
        (Some(1), Some(1))
    );
    let rendered = second.render(false);
    assert!(
        rendered
            .lines()
            .any(|line| line.contains("latest_tick") && line.contains("1, 1 deleted")),
        "{rendered}"
    );
    let json = second.to_json();
    let pipelines = json["pipelines"].as_array().expect("pipelines");
    let latest = pipelines
        .iter()
        .find(|p| p["pipeline"] == "latest_tick")
        .expect("latest_tick");
    assert_eq!(latest["rows_deleted"], 1, "{json}");
    let recorded = orchestrator
        .ledger()
        .run(&second.run_id)
        .await
        .expect("ledger");
    let deleted = |kind: &str, pipeline: Option<&str>| {
        recorded
            .iter()
            .find(|r| r.kind == kind && r.pipeline.as_deref() == pipeline)
            .and_then(|r| r.rows_deleted)
    };
    assert_eq!(deleted("pipeline", Some("latest_tick")), Some(1));
    assert_eq!(deleted("pipeline", Some("ticks")), Some(0));
    assert_eq!(deleted("run", None), Some(1));
    let version = wh.warehouse.version(table).await.expect("version");
    let again = orchestrator
        .run(&RunConfig {
            targets: vec!["latest_tick".into()],
            ..RunConfig::default()
        })
        .await
        .expect("run 3");
    let result = again.result("latest_tick").expect("planned");
    // Nothing new, which is no replay of an earlier commit: said as such.
    assert_eq!(
        (result.status, result.replayed, result.nothing_new),
        (Status::Succeeded, false, true)
    );
    let rendered = again.render(false);
    assert!(
        rendered.contains("succeeded (nothing new)") && !rendered.contains("already committed"),
        "{rendered}"
    );
    assert_eq!(again.to_json()["pipelines"][0]["nothing_new"], true);
    let recorded = orchestrator
        .ledger()
        .run(&again.run_id)
        .await
        .expect("ledger");
    let attempt = recorded
        .iter()
        .find(|r| r.kind == "pipeline")
        .expect("latest_tick's row");
    assert_eq!(attempt.replayed, Some(false));
    assert_eq!(wh.warehouse.version(table).await.expect("version"), version);
    assert_eq!(contents(&wh.warehouse, table).await, ["2"]);
}

#[tokio::test]
async fn a_memory_warehouse_runs_and_reads_back() {
    // Its tables were all read as never written (and its writes lost), and it made directories
    // on the local disk.
    let warehouse = lakehouse_runtime::Warehouse::open("memory:///lakehouse-test/").expect("open");
    assert_eq!(warehouse.local_root(), None);
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), warehouse.clone());
    for _ in 0..2 {
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        assert!(report.succeeded(), "{}", report.render(false));
    }
    assert_eq!(
        contents(&warehouse, <Ok1 as lakehouse_runtime::Table>::DEF).await,
        ["1", "2"]
    );
    assert!(!std::path::Path::new("/lakehouse-test").exists());
}

#[tokio::test]
async fn a_resumed_ingestion_records_its_rejects_once() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "rejecting"]), wh.warehouse.clone());
    let mut over = RunConfig::default();
    over.settings.set("reject_limit", "1");
    let failed = orchestrator.run(&over).await.expect("a run");
    assert_eq!(
        failed.result("rejecting").map(|r| r.status),
        Some(Status::Failed)
    );
    let recorded = |run_id: String| {
        let ledger = orchestrator.ledger().clone();
        async move {
            ledger
                .rejects(&run_id, "rejecting")
                .await
                .expect("rejects")
                .len()
        }
    };
    // Kept with the failed attempt: they tell why it failed.
    assert_eq!(recorded(failed.run_id.clone()).await, 1);
    // So with any failure that is not retried.
    let mut refused = RunConfig::default();
    refused.settings.set("refuse", "yes");
    let refusing = orchestrator.run(&refused).await.expect("a run");
    assert_eq!(
        refusing.result("rejecting").map(|r| r.status),
        Some(Status::Failed)
    );
    assert_eq!(recorded(refusing.run_id.clone()).await, 1);
    // The limit raised, the resume rejects the same record: still one of the run's.
    let mut raised = RunConfig::default();
    raised.settings.set("reject_limit", "0");
    let resumed = orchestrator
        .resume(&failed.run_id, &raised)
        .await
        .expect("resumed");
    assert!(resumed.succeeded(), "{}", resumed.render(false));
    assert_eq!(recorded(failed.run_id.clone()).await, 1);
    // Another run's are its own.
    let next = orchestrator.run(&raised).await.expect("a run");
    assert_eq!(recorded(next.run_id.clone()).await, 1);
}

#[tokio::test]
async fn a_second_resume_reads_the_settings_of_the_first() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "rejecting"]), wh.warehouse.clone());
    let mut config = RunConfig::default();
    config
        .settings
        .set("reject_limit", "1")
        .set("note", "first");
    let failed = orchestrator.run(&config).await.expect("a run");
    let mut given = RunConfig::default();
    given.settings.set("note", "second");
    orchestrator
        .resume(&failed.run_id, &given)
        .await
        .expect("resumed, failing again");
    orchestrator
        .resume(&failed.run_id, &RunConfig::default())
        .await
        .expect("resumed, failing again");
    // The third execution read the second's settings, not the run's first.
    let rows = orchestrator
        .ledger()
        .run(&failed.run_id)
        .await
        .expect("ledger");
    let third = rows
        .iter()
        .filter(|r| r.kind == "run" && r.execution == Some(3))
        .find_map(|r| r.settings.clone())
        .expect("the third execution's settings");
    assert_eq!(third, r#"{"note":"second","reject_limit":"1"}"#);
}

#[tokio::test]
async fn rejects_that_cannot_be_recorded_fail_the_attempt_before_its_write() {
    let wh = TempWarehouse::new();
    // A first run creates the ledger's tables; then a directory where the rejects table's next
    // commit would go makes every append to it fail.
    Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone())
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    let log = wh.dir.path().join("warehouse/lakehouse/rejects/_delta_log");
    let next = std::fs::read_dir(&log).expect("rejects log").count();
    let blocker = log.join(format!("{next:020}.json"));
    std::fs::create_dir(&blocker).expect("blocker");
    let orchestrator = Orchestrator::new(registry(&["ticks", "rejecting"]), wh.warehouse.clone());
    let report = orchestrator
        .run(&fast(RunConfig::default()))
        .await
        .expect("run");
    // Written, the commit would lack its rejects for good (a retry or a resume replays it):
    // nothing is written instead.
    let rejecting = report.result("rejecting").expect("ran");
    assert_eq!(rejecting.status, Status::Failed, "{}", report.render(false));
    let error = rejecting.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(
            "1 rejected source record(s) could not be recorded in lakehouse.rejects, so nothing \
             was written"
        ),
        "{error}"
    );
    let table = <Rejecting as lakehouse_runtime::Table>::DEF;
    assert_eq!(wh.warehouse.version(table).await.expect("version"), None);
    // The ledger mended, the resume writes the rows and records the reject once.
    std::fs::remove_dir(&blocker).expect("blocker removed");
    let resumed = orchestrator
        .resume(&report.run_id, &fast(RunConfig::default()))
        .await
        .expect("resume");
    assert!(resumed.succeeded(), "{}", resumed.render(false));
    assert_eq!(contents(&wh.warehouse, table).await, ["1", "2"]);
    let recorded = orchestrator
        .ledger()
        .rejects(&report.run_id, "rejecting")
        .await
        .expect("rejects");
    assert_eq!(recorded.len(), 1, "{recorded:?}");
}

#[tokio::test]
async fn rejects_are_recorded_before_the_write_and_once_by_its_retries_and_resume() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "rejecting"]), wh.warehouse.clone());
    orchestrator
        .run(&fast(RunConfig::default()))
        .await
        .expect("run 1");
    // A directory where the output's next commit would go makes every write of it fail.
    let table = <Rejecting as lakehouse_runtime::Table>::DEF;
    let log = crate::common::table_folder(&wh.warehouse, table).join("_delta_log");
    let next = std::fs::read_dir(&log).expect("log").count();
    let blocker = log.join(format!("{next:020}.json"));
    std::fs::create_dir(&blocker).expect("blocker");
    let failed = orchestrator
        .run(&fast(RunConfig {
            default_retries: 2,
            ..RunConfig::default()
        }))
        .await
        .expect("run 2");
    let result = failed.result("rejecting").expect("ran");
    assert_eq!(result.status, Status::Failed, "{}", failed.render(false));
    assert!(result.attempts > 1, "retried: {}", failed.render(false));
    // The write failed, and the rejected record is said all the same (the source had it),
    // once for every attempt that rejected it.
    let rejects = || async {
        orchestrator
            .ledger()
            .rejects(&failed.run_id, "rejecting")
            .await
            .expect("rejects")
            .len()
    };
    assert_eq!(rejects().await, 1);
    std::fs::remove_dir(&blocker).expect("blocker removed");
    let resumed = orchestrator
        .resume(&failed.run_id, &fast(RunConfig::default()))
        .await
        .expect("resume");
    assert!(resumed.succeeded(), "{}", resumed.render(false));
    assert_eq!(contents(&wh.warehouse, table).await, ["1", "1", "2"]);
    assert_eq!(rejects().await, 1, "the resume rejected the same record");
}

#[tokio::test]
async fn a_commit_whose_success_was_never_recorded_is_not_read_again() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    succeed_runs(&orchestrator, 2).await;
    // Run 2's ok1 committed, but its success never reached the ledger (the process died
    // between the two, say): the ledger's last success of ok1 is run 1's.
    forget_ok1_attempts(&wh, 2).await;
    let report = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 3");
    assert!(report.succeeded(), "{}", report.render(false));
    // Run 3 copies tick 3 alone, reading on from what run 2's commit read.
    assert_eq!(
        contents(&wh.warehouse, <Ok1 as lakehouse_runtime::Table>::DEF).await,
        ["1", "2", "3"]
    );
}

#[tokio::test]
async fn tables_that_outlived_their_ledger_go_on_after_their_latest_sequence() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    succeed_runs(&orchestrator, 2).await;
    // The run history is removed (to clear it, say); the tables stay.
    let runs =
        crate::common::table_folder(&wh.warehouse, lakehouse_runtime::ledger::RunRecord::DEF);
    std::fs::remove_dir_all(runs).expect("removed");
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let report = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 3");
    assert!(report.succeeded(), "{}", report.render(false));
    assert_eq!(report.sequence, 3, "after the tables' latest run");
    // ok1 reads on from what its last commit read: tick 3 alone.
    assert_eq!(
        contents(&wh.warehouse, <Ok1 as lakehouse_runtime::Table>::DEF).await,
        ["1", "2", "3"]
    );
}

#[tokio::test]
async fn a_table_unreadable_when_the_ledger_is_gone_is_named_with_why_it_was_read() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    succeed_runs(&orchestrator, 1).await;
    let runs =
        crate::common::table_folder(&wh.warehouse, lakehouse_runtime::ledger::RunRecord::DEF);
    std::fs::remove_dir_all(runs).expect("removed");
    // ok1's latest log entry is damaged: the next sequence cannot be told from its writes.
    let log = crate::common::table_folder(&wh.warehouse, <Ok1 as lakehouse_runtime::Table>::DEF)
        .join("_delta_log");
    let latest = std::fs::read_dir(&log)
        .expect("log")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .max()
        .expect("a commit");
    std::fs::write(&latest, "{not json").expect("damaged");
    // (A new process: this one holds the table's log as it was.)
    let warehouse = lakehouse_runtime::Warehouse::open(
        wh.dir.path().join("warehouse").to_str().expect("utf-8"),
    )
    .expect("warehouse");
    let error = Orchestrator::new(registry(&["ticks", "ok1"]), warehouse)
        .run(&RunConfig::default())
        .await
        .expect_err("the sequence is unknown")
        .to_string();
    assert!(
        error.starts_with(
            "lakehouse.runs has no runs, so the next run's sequence is taken from the latest \
             write every table holds, and a table could not be read: "
        ) && error.contains("silver.ok1")
            && error.contains("`orchestrate check`"),
        "{error}"
    );
    // The Delta kernel's backtrace (under `RUST_BACKTRACE`) is no part of the message.
    assert!(!error.contains("0: "), "{error}");
}

#[tokio::test]
async fn a_ledger_older_than_its_tables_costs_one_failed_run() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    succeed_runs(&orchestrator, 3).await;
    // Run 4 writes ticks alone, run 5 ok1 alone: the tables end at different sequences.
    for (n, target) in [(4, "ticks"), (5, "ok1")] {
        let config = RunConfig {
            targets: vec![target.to_owned()],
            direction: Direction::None,
            ..RunConfig::default()
        };
        let report = orchestrator.run(&config).await.expect("run");
        assert!(report.succeeded(), "run {n}: {}", report.render(false));
    }
    // The ledger as an older copy had it: runs 2 to 5 are gone, the tables keep their writes.
    crate::common::delete_rows(
        &wh.warehouse,
        lakehouse_runtime::ledger::RunRecord::DEF,
        Some("sequence > 1"),
    )
    .await;
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let failed = orchestrator.run(&RunConfig::default()).await.expect("run");
    assert_eq!(failed.sequence, 2);
    let ticks = failed.result("ticks").expect("planned");
    assert_eq!(ticks.status, Status::Failed);
    assert!(
        ticks
            .error
            .as_deref()
            .is_some_and(|e| e.contains("lakehouse.runs is older than the tables")),
        "{:?}",
        ticks.error
    );
    // The next run starts after every table's latest sequence (ok1's 5, though only ticks was
    // reached), and ok1 reads on from its last commit: ticks 1 to 4 are not copied again.
    let next = orchestrator.run(&RunConfig::default()).await.expect("run");
    assert!(next.succeeded(), "{}", next.render(false));
    assert_eq!(next.sequence, 6);
    assert_eq!(
        contents(&wh.warehouse, <Ok1 as lakehouse_runtime::Table>::DEF).await,
        ["1", "2", "3", "4", "6"]
    );
    // Floor rows are no runs.
    assert!(
        orchestrator
            .ledger()
            .run("floor-5")
            .await
            .expect("ledger")
            .is_empty()
    );
}

#[tokio::test]
async fn a_recreated_upstream_is_an_error_until_read_whole() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    for _ in 1..=2 {
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        assert!(report.succeeded(), "{}", report.render(false));
    }
    // The upstream table is deleted; its next write recreates it at an earlier version than
    // the one ok1 read.
    std::fs::remove_dir_all(wh.dir.path().join("warehouse/bronze/ticks")).expect("deleted");
    let report = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 3");
    let error = report
        .result("ok1")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(
        error.contains("bronze.ticks is at version 1, behind version 2 its reader already read: the table was recreated"),
        "{}",
        report.render(false)
    );
    let refreshed = orchestrator
        .run(&RunConfig {
            full_refresh: true,
            ..RunConfig::default()
        })
        .await
        .expect("run 4");
    assert!(refreshed.succeeded(), "{}", refreshed.render(false));
    // The recreated table's rows: ticks 3 and 4.
    assert_eq!(
        contents(&wh.warehouse, <Ok1 as lakehouse_runtime::Table>::DEF).await,
        ["1", "2", "3", "4"]
    );
}

#[tokio::test]
async fn a_full_refresh_adds_the_rows_again_and_a_rebuild_replaces_them() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    for _ in 1..=2 {
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        assert!(report.succeeded(), "{}", report.render(false));
    }
    let ok1 = <Ok1 as lakehouse_runtime::Table>::DEF;
    let refreshed = orchestrator
        .run(&RunConfig {
            full_refresh: true,
            ..RunConfig::default()
        })
        .await
        .expect("run 3");
    assert!(refreshed.succeeded(), "{}", refreshed.render(false));
    assert_eq!(
        contents(&wh.warehouse, ok1).await,
        ["1", "1", "2", "2", "3"],
        "ticks 1 and 2 again"
    );
    let rebuilt = orchestrator
        .run(&RunConfig {
            rebuild: true,
            ..RunConfig::default()
        })
        .await
        .expect("run 4");
    assert!(rebuilt.succeeded(), "{}", rebuilt.render(false));
    assert_eq!(
        contents(&wh.warehouse, ok1).await,
        ["1", "2", "3", "4"],
        "rebuilt from every tick, once"
    );
    // The rebuild's commit is the table's cursor: the next run copies only tick 5.
    orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 5");
    assert_eq!(
        contents(&wh.warehouse, ok1).await,
        ["1", "2", "3", "4", "5"]
    );
}

#[tokio::test]
async fn an_unfinished_rebuild_holds_ordinary_runs_of_its_pipelines_unless_forced() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "bad"]), wh.warehouse.clone());
    let rebuild = RunConfig {
        full_refresh: true,
        rebuild: true,
        ..RunConfig::default()
    };
    let failed = orchestrator.run(&rebuild).await.expect("run 1");
    assert!(!failed.succeeded());
    let error = orchestrator
        .run(&RunConfig::default())
        .await
        .expect_err("held");
    assert!(
        error.to_string().contains(&format!(
            "run `{}`, a --rebuild of ticks, bad, did not finish (failed)",
            failed.run_id
        )),
        "{error}"
    );
    // Another rebuild redoes it; --force goes on without it.
    orchestrator.run(&rebuild).await.expect("a rebuild runs");
    let forced = RunConfig {
        force: true,
        ..RunConfig::default()
    };
    let report = orchestrator.run(&forced).await.expect("forced");
    assert_eq!(
        report.result("ticks").map(|r| r.status),
        Some(Status::Succeeded)
    );
}

#[tokio::test]
async fn an_unfinished_rebuild_redone_by_a_later_one_holds_nothing() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "flaky"]), wh.warehouse.clone());
    let config = flaky_without_retries("rebuilt_again");
    let rebuild = RunConfig {
        full_refresh: true,
        rebuild: true,
        ..config.clone()
    };
    let failed = orchestrator.run(&rebuild).await.expect("run 1");
    assert!(!failed.succeeded(), "{}", failed.render(false));
    // A full refresh does not redo a rebuild: still held.
    let refreshed = orchestrator
        .run(&RunConfig {
            full_refresh: true,
            force: true,
            ..config.clone()
        })
        .await
        .expect("forced full refresh");
    assert!(refreshed.succeeded(), "{}", refreshed.render(false));
    let held = orchestrator
        .run(&config)
        .await
        .expect_err("a full refresh is no rebuild");
    assert!(held.to_string().contains(&failed.run_id), "{held}");
    // A second rebuild finishes what the first did not: ordinary runs go on.
    let rebuilt = orchestrator.run(&rebuild).await.expect("run 3");
    assert!(rebuilt.succeeded(), "{}", rebuilt.render(false));
    let ordinary = orchestrator.run(&config).await.expect("not held");
    assert!(ordinary.succeeded(), "{}", ordinary.render(false));
}

#[tokio::test]
async fn an_unfinished_rebuild_redone_by_a_resumed_one_holds_nothing() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "flaky"]), wh.warehouse.clone());
    let rebuild = |test: &str| RunConfig {
        full_refresh: true,
        rebuild: true,
        ..flaky_without_retries(test)
    };
    // Fails on flaky; so does a second rebuild, whose resume then finishes it.
    let failed = orchestrator
        .run(&rebuild("resumed_rebuild_1"))
        .await
        .expect("run 1");
    assert!(!failed.succeeded(), "{}", failed.render(false));
    let second = orchestrator
        .run(&rebuild("resumed_rebuild_2"))
        .await
        .expect("run 2");
    assert!(!second.succeeded(), "{}", second.render(false));
    let resumed = orchestrator
        .resume(&second.run_id, &rebuild("resumed_rebuild_2"))
        .await
        .expect("resumed");
    assert!(resumed.succeeded(), "{}", resumed.render(false));
    // The resumed execution ran flaky alone; the run rebuilt ticks too, in its first.
    let ticks = RunConfig {
        targets: vec!["ticks".to_owned()],
        ..flaky_without_retries("resumed_rebuild_2")
    };
    let ordinary = orchestrator.run(&ticks).await.expect("not held");
    assert!(ordinary.succeeded(), "{}", ordinary.render(false));
}

#[tokio::test]
async fn a_refresh_resumed_after_another_failed_redoes_only_what_it_ran_since() {
    let wh = TempWarehouse::new();
    let orchestrator =
        Orchestrator::new(registry(&["ticks", "flaky", "bad"]), wh.warehouse.clone());
    let refresh = |targets: &[&str]| RunConfig {
        full_refresh: true,
        targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        ..flaky_without_retries("refresh_resumed_after_another")
    };
    // L refreshes ticks, fails on flaky; then U refreshes ticks again and fails on bad.
    let l = orchestrator
        .run(&refresh(&["ticks", "flaky"]))
        .await
        .expect("L");
    assert!(!l.succeeded(), "{}", l.render(false));
    let u = orchestrator
        .run(&refresh(&["ticks", "bad"]))
        .await
        .expect("U");
    assert!(!u.succeeded(), "{}", u.render(false));
    // L's resume runs flaky alone: its ticks were refreshed before U, which did not finish.
    let resumed = orchestrator
        .resume(&l.run_id, &refresh(&["ticks", "flaky"]))
        .await
        .expect("L resumed");
    assert!(resumed.succeeded(), "{}", resumed.render(false));
    let held = orchestrator
        .run(&RunConfig {
            targets: vec!["ticks".to_owned()],
            ..RunConfig::default()
        })
        .await
        .expect_err("U did not finish");
    assert!(
        held.to_string()
            .contains(&format!("run `{}`, a --full-refresh", u.run_id)),
        "{held}"
    );
}

#[tokio::test]
async fn a_backfill_runs_each_time_in_order_and_stops_at_the_first_failure() {
    let wh = TempWarehouse::new();
    let day = Duration::from_secs(86_400);
    let start = Timestamp::parse("2026-11-01T00:00:00Z").expect("time");
    let end = Timestamp::parse("2026-11-04T00:00:00Z").expect("time");
    let times = lakehouse_runtime::orchestrator::backfill_times(start, end, day).expect("times");
    let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    let mut seen = Vec::new();
    let done = orchestrator
        .backfill(&RunConfig::default(), &times, Redo::Missing, |report| {
            seen.push(report.run_at)
        })
        .await
        .expect("backfill");
    assert_eq!(seen, times);
    assert!(done.completed && done.already_done.is_empty());
    assert!(done.runs.iter().all(|r| r.succeeded()));
    let ticks = <Ticks as lakehouse_runtime::Table>::DEF;
    assert_eq!(
        crate::common::query(
            &wh.warehouse,
            &[ticks],
            "SELECT n, run_at FROM bronze.ticks"
        )
        .await,
        [
            "1|2026-11-01T00:00:00Z",
            "2|2026-11-02T00:00:00Z",
            "3|2026-11-03T00:00:00Z"
        ]
    );
    // A failing pipeline: the first time's run fails, and the others are not run. `ticks`
    // already succeeded at that time, so only `bad` runs.
    let failing = Orchestrator::new(registry(&["ticks", "bad"]), wh.warehouse.clone());
    let done = failing
        .backfill(&RunConfig::default(), &times, Redo::Missing, |_| {})
        .await
        .expect("backfill");
    assert_eq!(done.runs.len(), 1, "stopped after the first run");
    assert!(!done.completed);
    assert_eq!(
        statuses(&done.runs[0]),
        BTreeMap::from([("bad", Status::Failed)])
    );
    assert_eq!(contents(&wh.warehouse, ticks).await.len(), 3);
}

#[tokio::test]
async fn a_backfill_before_an_scd2_history_is_refused_before_any_run() {
    let wh = TempWarehouse::new();
    let at = |text: &str| Timestamp::parse(text).expect("time");
    let days = |from: &str, to: &str| {
        lakehouse_runtime::orchestrator::backfill_times(
            at(from),
            at(to),
            Duration::from_secs(86_400),
        )
        .expect("times")
    };
    let orchestrator =
        Orchestrator::new(registry(&["ticks", "tick_versions"]), wh.warehouse.clone());
    // Days 1 to 3 backfilled in order, then a run at day 10.
    let first_days = days("2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z");
    let done = orchestrator
        .backfill(&RunConfig::default(), &first_days, Redo::Missing, |_| {})
        .await
        .expect("backfill");
    assert!(done.completed && done.runs.len() == 3);
    let later = RunConfig {
        run_at: Some(at("2026-11-10T00:00:00Z")),
        ..RunConfig::default()
    };
    let run = orchestrator.run(&later).await.expect("a later run");
    assert!(run.succeeded(), "{}", run.render(false));
    // Days it is done with are no reason to refuse: they are skipped.
    let again = orchestrator
        .backfill(&RunConfig::default(), &first_days, Redo::Missing, |_| {})
        .await
        .expect("nothing to do");
    assert!(again.completed && again.runs.is_empty() && again.already_done.len() == 3);

    // Days 4 and 5 would be refused by the SCD2 table, the backfill stopping at the first at
    // every try: refused at once, naming the table, its history and how to leave it out.
    let times = days("2026-11-01T00:00:00Z", "2026-11-06T00:00:00Z");
    let refused = orchestrator
        .backfill(&RunConfig::default(), &times, Redo::Missing, |_| {})
        .await
        .expect_err("refused");
    let message = refused.to_string();
    assert!(
        message.contains(
            "`tick_versions` writes SCD2 table silver.tick_versions, whose history reaches \
             2026-11-10T00:00:00Z, at 2026-11-04T00:00:00Z"
        ),
        "{message}"
    );
    assert!(message.contains("`--exclude tick_versions`"), "{message}");
    // The dry run says the same.
    let preview = orchestrator
        .backfill_preview(&RunConfig::default(), &times, Redo::Missing)
        .await
        .expect_err("refused");
    assert_eq!(preview.to_string(), message);
    let ledger = orchestrator.ledger().clone();
    assert_eq!(ledger.runs(10).await.expect("runs").len(), 4, "no run made");

    // Left out, the rest is backfilled.
    let without = RunConfig {
        exclude: vec!["tick_versions".to_owned()],
        ..RunConfig::default()
    };
    let done = orchestrator
        .backfill(&without, &times, Redo::Missing, |_| {})
        .await
        .expect("backfill");
    assert!(done.completed && done.runs.len() == 2);
}

#[tokio::test]
async fn an_scd2_history_reaches_a_later_run_that_changed_nothing() {
    // Day 1 writes the row, day 9 finds it unchanged (no version, no commit): a run at day 5
    // with another label would close day 1's version at day 5 and make it current, though day
    // 9 saw `a`. Refused, by the run and by a backfill, as before a version of day 9.
    let wh = TempWarehouse::new();
    let at = |text: &str| Timestamp::parse(text).expect("time");
    let orchestrator = Orchestrator::new(registry(&["steady_versions"]), wh.warehouse.clone());
    let run_at = |day: &str| RunConfig {
        run_at: Some(at(day)),
        ..RunConfig::default()
    };
    for day in ["2026-11-01T00:00:00Z", "2026-11-09T00:00:00Z"] {
        let run = orchestrator.run(&run_at(day)).await.expect("run");
        assert!(run.succeeded(), "{}", run.render(false));
    }
    let table = SteadyVersions::DEF;
    let version = wh.warehouse.version(table).await.expect("version");
    let mut changed = run_at("2026-11-05T00:00:00Z");
    changed.settings.set("label", "b");
    let run = orchestrator.run(&changed).await.expect("a run that fails");
    let result = run.result("steady_versions").expect("its result");
    assert_eq!(result.status, Status::Failed);
    assert_eq!(result.attempts, 1, "a refusal is not retried");
    assert_eq!(
        result.error.as_deref(),
        Some(
            "SCD2 table silver.steady_versions: its history already reaches \
             2026-11-09T00:00:00Z (a run then found its rows unchanged, so no version shows it), \
             later than this run's run_at 2026-11-05T00:00:00Z; versions are written in time \
             order, so a past run_at cannot follow later runs (rebuild the table to replay its \
             history)"
        )
    );
    assert_eq!(
        wh.warehouse.version(table).await.expect("version"),
        version,
        "nothing written"
    );
    let days = lakehouse_runtime::orchestrator::backfill_times(
        at("2026-11-05T00:00:00Z"),
        at("2026-11-06T00:00:00Z"),
        Duration::from_secs(86_400),
    )
    .expect("times");
    let refused = orchestrator
        .backfill(&RunConfig::default(), &days, Redo::All, |_| {})
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains(
            "`steady_versions` writes SCD2 table silver.steady_versions, whose history reaches \
             2026-11-09T00:00:00Z, at 2026-11-05T00:00:00Z"
        ),
        "{refused}"
    );
    // A rerun at the latest time is no going back.
    let rerun = orchestrator
        .run(&run_at("2026-11-09T00:00:00Z"))
        .await
        .expect("rerun");
    assert!(rerun.succeeded(), "{}", rerun.render(false));
}

#[tokio::test]
async fn a_backfill_again_runs_only_what_did_not_succeed_at_each_time() {
    let wh = TempWarehouse::new();
    let day = Duration::from_secs(86_400);
    let at = |text: &str| Timestamp::parse(text).expect("time");
    let times = lakehouse_runtime::orchestrator::backfill_times(
        at("2026-11-01T00:00:00Z"),
        at("2026-11-04T00:00:00Z"),
        day,
    )
    .expect("times");
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "flaky", "after_flaky"]),
        wh.warehouse.clone(),
    );
    // No retries: flaky fails on its first call, so the first time's run fails.
    let config = flaky_without_retries("backfill-again");
    let first = orchestrator
        .backfill(&config, &times, Redo::Missing, |_| {})
        .await
        .expect("backfill");
    assert_eq!(first.runs.len(), 1);
    assert!(!first.completed);
    let failed = &first.runs[0];
    assert_eq!(
        statuses(failed),
        BTreeMap::from([
            ("ticks", Status::Succeeded),
            ("flaky", Status::Failed),
            ("after_flaky", Status::Skipped)
        ])
    );

    // The same backfill again: at the first time, only what did not succeed runs (the source
    // is not called again), then the other times run whole.
    let again = orchestrator
        .backfill(&config, &times, Redo::Missing, |_| {})
        .await
        .expect("backfill again");
    assert!(again.completed);
    let ran: Vec<(Timestamp, usize)> = again
        .runs
        .iter()
        .map(|r| (r.run_at, r.results.len()))
        .collect();
    assert_eq!(ran, [(times[0], 2), (times[1], 3), (times[2], 3)]);
    assert_eq!(
        statuses(&again.runs[0]),
        BTreeMap::from([
            ("flaky", Status::Succeeded),
            ("after_flaky", Status::Succeeded)
        ])
    );
    assert!(again.runs.iter().all(|r| r.succeeded()));
    let ticks = <Ticks as lakehouse_runtime::Table>::DEF;
    let flaky = <Flaky as lakehouse_runtime::Table>::DEF;
    assert_eq!(
        contents(&wh.warehouse, ticks).await.len(),
        3,
        "one tick per day"
    );
    // `flaky` appends every tick each day: 1 + 2 + 3.
    assert_eq!(contents(&wh.warehouse, flaky).await.len(), 6);

    // Everything done: nothing runs. A longer range runs only the new time.
    let third = orchestrator
        .backfill(&config, &times, Redo::Missing, |_| {})
        .await
        .expect("third backfill");
    assert!(third.completed && third.runs.is_empty());
    assert_eq!(third.already_done, times);
    let longer = lakehouse_runtime::orchestrator::backfill_times(
        at("2026-11-01T00:00:00Z"),
        at("2026-11-05T00:00:00Z"),
        day,
    )
    .expect("times");
    let fourth = orchestrator
        .backfill(&config, &longer, Redo::Missing, |_| {})
        .await
        .expect("longer backfill");
    assert_eq!(fourth.already_done, times);
    assert_eq!(
        fourth.runs.iter().map(|r| r.run_at).collect::<Vec<_>>(),
        [longer[3]]
    );
    assert_eq!(contents(&wh.warehouse, ticks).await.len(), 4);

    // A pipeline added to the selection runs alone at the times the others are done.
    let wider = Orchestrator::new(
        registry(&["ticks", "flaky", "after_flaky", "ok1"]),
        wh.warehouse.clone(),
    );
    let fifth = wider
        .backfill(&config, &times, Redo::Missing, |_| {})
        .await
        .expect("wider backfill");
    assert!(fifth.completed && fifth.already_done.is_empty());
    assert!(
        fifth
            .runs
            .iter()
            .all(|r| statuses(r) == BTreeMap::from([("ok1", Status::Succeeded)]))
    );
    assert_eq!(contents(&wh.warehouse, ticks).await.len(), 4);

    // A run still recorded as running at a time may have committed writes it did not record:
    // the backfill asks to resume it first.
    let start = orchestrator
        .ledger()
        .run(&again.runs[1].run_id)
        .await
        .expect("ledger")
        .into_iter()
        .find(|r| r.kind == "run" && r.status == "running")
        .expect("the run's start is recorded");
    orchestrator
        .ledger()
        .append(&[lakehouse_runtime::ledger::RunRecord {
            run_id: "r999999-died".to_owned(),
            sequence: 999_999,
            run_at: longer[3],
            planned: Some("ok1".to_owned()),
            ..start
        }])
        .await
        .expect("recorded");
    let error = wider
        .backfill(&config, &longer, Redo::Missing, |_| {})
        .await
        .expect_err("a run at the fourth time, where ok1 is missing, is recorded as running");
    assert!(
        error.to_string().contains(
            "run `r999999-died` at 2026-11-04T00:00:00Z is recorded as running: it still runs, \
             or its process died before it recorded what it wrote; `orchestrate resume \
             r999999-died`"
        ),
        "{error}"
    );

    // Redo::All runs every time again.
    let all = orchestrator
        .backfill(&config, &times, Redo::All, |_| {})
        .await
        .expect("rerun");
    assert_eq!(all.runs.len(), 3);
    assert!(all.already_done.is_empty());
    assert_eq!(contents(&wh.warehouse, ticks).await.len(), 7);
}

#[tokio::test]
async fn a_backfill_does_not_repeat_a_write_that_landed_after_its_run_gave_it_up() {
    let wh = TempWarehouse::new();
    let day = Timestamp::parse("2026-11-01T00:00:00Z").expect("time");
    let orchestrator = Orchestrator::new(
        registry(&["ticks", "flaky", "after_flaky"]),
        wh.warehouse.clone(),
    );
    let config = flaky_without_retries("landed");
    let first = orchestrator
        .backfill(&config, &[day], Redo::Missing, |_| {})
        .await
        .expect("backfill");
    let failed = &first.runs[0];
    assert_eq!(
        failed.result("flaky").map(|r| r.status),
        Some(Status::Failed)
    );
    // The failed attempt's commit lands after the run gave it up (as a time limit leaves one
    // already under way).
    #[derive(Serialize)]
    struct Row {
        n: i64,
    }
    let flaky = <Flaky as lakehouse_runtime::Table>::DEF;
    crate::common::write(
        &wh.warehouse,
        flaky,
        &[Row { n: 1 }],
        lakehouse_runtime::store::WriteOptions {
            transaction: Some(("flaky".to_owned(), failed.sequence)),
            ..Default::default()
        },
    )
    .await
    .expect("the late commit");
    // More commits than a bounded look through the latest ones would read, the last by a later
    // run of flaky: the table's latest transaction is no longer the failed run's.
    for n in 2..=102 {
        let options = lakehouse_runtime::store::WriteOptions {
            transaction: (n == 102).then(|| ("flaky".to_owned(), failed.sequence + 100)),
            ..Default::default()
        };
        crate::common::write(&wh.warehouse, flaky, &[Row { n }], options)
            .await
            .expect("a later commit");
    }
    let again = orchestrator
        .backfill(&config, &[day], Redo::Missing, |_| {})
        .await
        .expect("backfill again");
    assert_eq!(again.runs.len(), 1);
    assert_eq!(
        statuses(&again.runs[0]),
        BTreeMap::from([("after_flaky", Status::Succeeded)]),
        "flaky's write is in its table: only its downstream runs"
    );
    assert_eq!(contents(&wh.warehouse, flaky).await.len(), 102);
}

#[tokio::test]
async fn a_logical_time_in_the_future_is_refused_unless_forced() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone());
    let next_year = Timestamp(Timestamp::now().0 + 365 * 86_400_000_000);
    let config = RunConfig {
        run_at: Some(next_year),
        ..RunConfig::default()
    };
    let error = orchestrator.run(&config).await.expect_err("refused");
    assert!(error.to_string().contains("is in the future"), "{error}");
    let times = [Timestamp::now(), next_year];
    let error = orchestrator
        .backfill(&RunConfig::default(), &times, Redo::Missing, |_| {})
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("is in the future"), "{error}");
    assert!(
        contents(&wh.warehouse, <Ticks as lakehouse_runtime::Table>::DEF)
            .await
            .is_empty(),
        "nothing ran"
    );
    let forced = RunConfig {
        force: true,
        ..config
    };
    let report = orchestrator.run(&forced).await.expect("forced");
    assert_eq!(report.run_at, next_year);
}

#[tokio::test]
async fn a_loop_goes_on_after_a_run_that_cannot_be_recorded_and_stops_after_five() {
    let wh = TempWarehouse::new();
    // A file where the run ledger would go: no run can start.
    let ledger = wh.dir.path().join("warehouse/lakehouse");
    std::fs::create_dir_all(&ledger).expect("ledger dir");
    std::fs::write(ledger.join("runs"), "not a table").expect("blocker");
    let orchestrator = Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone());
    let runs = orchestrator
        .run_loop_with(
            &RunConfig::default(),
            Duration::from_millis(1),
            None,
            Some(3),
            |_| {},
        )
        .await
        .expect("three failed runs do not end the loop");
    assert_eq!((runs.done, runs.failed), (0, 3));
    let error = orchestrator
        .run_loop_with(
            &RunConfig::default(),
            Duration::from_millis(1),
            None,
            Some(50),
            |_| {},
        )
        .await
        .expect_err("five in a row do");
    assert!(error.to_string().contains("lakehouse.runs"), "{error}");
}

#[tokio::test]
async fn an_upstream_recreated_past_the_cursor_is_an_error_too() {
    let wh = TempWarehouse::new();
    let both = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone());
    for _ in 1..=2 {
        let report = both.run(&RunConfig::default()).await.expect("run");
        assert!(report.succeeded(), "{}", report.render(false));
    }
    // ok1 last read an hour ago (its success row is moved back: the check allows the clocks of
    // two hosts a few minutes), and its record, as those made before table ids were, has none
    // (the creation time tells then).
    let ledger = both.ledger();
    let last = ledger
        .run(&ledger.runs(1).await.expect("runs")[0].run_id)
        .await
        .expect("rows")
        .into_iter()
        .find(|r| r.pipeline.as_deref() == Some("ok1") && r.status == "succeeded")
        .expect("ok1's success");
    forget_ok1_attempts(&wh, last.sequence).await;
    let hour = 3_600_000_000;
    ledger
        .append(&[lakehouse_runtime::ledger::RunRecord {
            started_at: Timestamp(last.started_at.0 - hour),
            input_table_ids: None,
            ..last
        }])
        .await
        .expect("moved back");
    // Recreated, then written three times while ok1 does not run: the new table is past the
    // version ok1 read, and reading on from there would skip its first rows.
    std::fs::remove_dir_all(wh.dir.path().join("warehouse/bronze/ticks")).expect("deleted");
    let ticks_only = Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone());
    for _ in 1..=3 {
        let report = ticks_only.run(&RunConfig::default()).await.expect("ticks");
        assert!(report.succeeded(), "{}", report.render(false));
    }
    let report = both
        .run(&RunConfig {
            targets: vec!["ok1".to_owned()],
            ..RunConfig::default()
        })
        .await
        .expect("run");
    let error = report
        .result("ok1")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(
        error.contains("bronze.ticks was recreated at"),
        "{}",
        report.render(false)
    );
}

mod notifications {
    use lakehouse_runtime::orchestrator::{NotifyOn, Orchestrator, RunConfig, Webhook};

    use super::registry;
    use crate::common::TempWarehouse;
    use crate::sources::server::{Reply, TestServer};

    /// The JSON bodies the server received.
    fn bodies(server: &TestServer) -> Vec<serde_json::Value> {
        server
            .requests()
            .iter()
            .map(|r| {
                assert_eq!(r.method, "POST");
                serde_json::from_slice(&r.body).expect("a JSON body")
            })
            .collect()
    }

    #[tokio::test]
    async fn a_failed_run_is_posted_to_the_webhook_and_a_success_only_when_asked() {
        let server = TestServer::start(|_| Reply::json(200, "ok"));
        let wh = TempWarehouse::new();
        let webhook = |on| Webhook::new(&server.url("/hooks/lake"), on).expect("webhook");
        // A success is not told by default.
        let orchestrator = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone())
            .with_webhook(webhook(NotifyOn::Failure));
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        assert!(report.succeeded(), "{}", report.render(false));
        assert!(server.requests().is_empty());
        // A failure is.
        let failing = Orchestrator::new(registry(&["ticks", "bad"]), wh.warehouse.clone())
            .with_webhook(webhook(NotifyOn::Failure));
        let report = failing.run(&RunConfig::default()).await.expect("run");
        assert!(!report.succeeded());
        let sent = bodies(&server);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["status"], "failed");
        assert_eq!(sent[0]["run_id"], report.run_id.as_str());
        let text = sent[0]["text"].as_str().expect("a text");
        assert!(
            text.contains("failed: 1 failed, 1 succeeded — bad: the source system is down"),
            "{text}"
        );
        let bad = sent[0]["pipelines"]
            .as_array()
            .expect("pipelines")
            .iter()
            .find(|p| p["pipeline"] == "bad")
            .expect("bad");
        assert_eq!(bad["status"], "failed");
        // Every run, when asked.
        let always = Orchestrator::new(registry(&["ticks", "ok1"]), wh.warehouse.clone())
            .with_webhook(webhook(NotifyOn::Always));
        always.run(&RunConfig::default()).await.expect("run");
        assert_eq!(bodies(&server)[1]["status"], "succeeded");
    }

    #[tokio::test]
    async fn an_unreachable_webhook_fails_no_run() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let wh = TempWarehouse::new();
        let webhook = Webhook::new(&format!("http://127.0.0.1:{port}/hook"), NotifyOn::Always)
            .expect("webhook");
        let orchestrator =
            Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone()).with_webhook(webhook);
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        assert!(report.succeeded(), "{}", report.render(false));
    }

    #[tokio::test]
    async fn a_run_that_cannot_start_is_told() {
        let server = TestServer::start(|_| Reply::json(200, "ok"));
        let wh = TempWarehouse::new();
        // A file where the run ledger would go: no run can start.
        let ledger = wh.dir.path().join("warehouse/lakehouse");
        std::fs::create_dir_all(&ledger).expect("ledger dir");
        std::fs::write(ledger.join("runs"), "not a table").expect("blocker");
        let webhook = Webhook::new(&server.url("/hook"), NotifyOn::Failure).expect("webhook");
        let orchestrator =
            Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone()).with_webhook(webhook);
        orchestrator
            .run(&RunConfig::default())
            .await
            .expect_err("no ledger");
        // Nor a resume, nor a backfill: each is told too.
        orchestrator
            .resume("r000001", &RunConfig::default())
            .await
            .expect_err("no ledger");
        orchestrator
            .backfill(
                &RunConfig::default(),
                &[lakehouse_runtime::table::Timestamp(1_600_000_000_000_000)],
                lakehouse_runtime::orchestrator::Redo::Missing,
                |_| {},
            )
            .await
            .expect_err("no ledger");
        let sent = bodies(&server);
        assert_eq!(sent.len(), 3);
        for told in &sent {
            assert_eq!(told["status"], "not started");
            assert!(
                told["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("lakehouse run could not start: ")),
                "{told}"
            );
        }
    }

    #[tokio::test]
    async fn a_resume_or_backfill_refused_is_told() {
        let server = TestServer::start(|_| Reply::json(200, "ok"));
        let wh = TempWarehouse::new();
        let webhook = Webhook::new(&server.url("/hook"), NotifyOn::Failure).expect("webhook");
        let orchestrator =
            Orchestrator::new(registry(&["ticks"]), wh.warehouse.clone()).with_webhook(webhook);
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        assert!(server.requests().is_empty(), "a success is not told");
        // A run recorded as running by this process (alive), at a time nothing succeeded at.
        let start = orchestrator
            .ledger()
            .run(&report.run_id)
            .await
            .expect("ledger")
            .into_iter()
            .find(|r| r.kind == "run" && r.status == "running")
            .expect("the run's start is recorded");
        let earlier = lakehouse_runtime::table::Timestamp(1_600_000_000_000_000);
        orchestrator
            .ledger()
            .append(&[lakehouse_runtime::ledger::RunRecord {
                run_id: "r999999-running".to_owned(),
                sequence: 999_999,
                run_at: earlier,
                ..start
            }])
            .await
            .expect("recorded");
        let refusals = [
            orchestrator
                .resume("r999999", &RunConfig::default())
                .await
                .expect_err("still running"),
            orchestrator
                .resume("r123456", &RunConfig::default())
                .await
                .expect_err("no such run"),
            orchestrator
                .resume(&report.run_id, &RunConfig::default())
                .await
                .expect_err("it succeeded"),
            orchestrator
                .backfill(
                    &RunConfig::default(),
                    &[earlier],
                    lakehouse_runtime::orchestrator::Redo::Missing,
                    |_| {},
                )
                .await
                .expect_err("a run at that time is recorded as running"),
        ];
        let sent = bodies(&server);
        assert_eq!(sent.len(), refusals.len(), "{sent:?}");
        for ((told, refusal), expected) in sent.iter().zip(&refusals).zip([
            "run `r999999-running` is still running",
            "no run `r123456` in the ledger",
            "has nothing to resume: every pipeline succeeded",
            "run `r999999-running` at 2020-09-13T12:26:40Z is recorded as running",
        ]) {
            assert_eq!(told["status"], "not started");
            let text = told["text"].as_str().expect("a text");
            assert!(text.contains(expected), "{text}");
            assert!(refusal.to_string().contains(expected), "{refusal}");
        }
    }

    #[test]
    fn a_webhook_is_https_or_local() {
        let error = Webhook::new("http://hooks.example.org/x", NotifyOn::Failure)
            .expect_err("clear text to another host");
        assert!(
            error
                .to_string()
                .contains("must be https (or http to this machine), not http://hooks.example.org"),
            "{error}"
        );
        assert!(!error.to_string().contains("/x"), "{error}");
        assert!(Webhook::new("https://hooks.example.org/x", NotifyOn::Failure).is_ok());
        for local in [
            "http://localhost:8080/x",
            "http://127.0.0.2/x",
            "http://[::1]:8080/x",
        ] {
            assert!(Webhook::new(local, NotifyOn::Failure).is_ok(), "{local}");
        }
        assert!(Webhook::new("not a url", NotifyOn::Failure).is_err());
    }
}

#[tokio::test]
async fn a_later_runs_commit_is_not_taken_for_a_cut_attempts_own() {
    let wh = TempWarehouse::new();
    let orchestrator = Orchestrator::new(registry(&["ticks", "overtaken"]), wh.warehouse.clone());
    *OVERTAKING.lock().unwrap_or_else(|p| p.into_inner()) = Some(wh.warehouse.clone());
    let report = orchestrator.run(&RunConfig::default()).await.expect("run");
    let overtaken = report.result("overtaken").expect("planned");
    assert_eq!(overtaken.status, Status::Failed, "{}", report.render(false));
    // Cut at its limit as an attempt whose write never committed: not given a minute more to
    // record another run's commit as its own.
    let error = overtaken.error.clone().unwrap_or_default();
    assert!(
        error.contains("timed out after 1s") && !error.contains("commit"),
        "{error}"
    );
}
