//! Auto-compaction: a pipeline's write that leaves its table with many files compacts them, and
//! incremental readers downstream see each row once; `auto_compact = false` opts out. A commit
//! that changes no rows is not a new snapshot for a `full_snapshot` reader.

use lakehouse_runtime::orchestrator::{Orchestrator, RunConfig, Status};
use lakehouse_runtime::prelude::*;
use lakehouse_runtime::store::{AUTO_COMPACT_AT_FILES, PendingReader, WriteOptions};
use lakehouse_runtime::table::TableDef;
use lakehouse_runtime::{PipelineDescriptor, Registry};
use serde::Serialize;

use crate::common::{TempWarehouse, data_files, frame, render};

/// One event per run, compacted automatically.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "compacted_events")]
pub struct CompactedEvents {
    pub id: i64,
}

/// The same, never compacted automatically.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "kept_events", auto_compact = false)]
pub struct KeptEvents {
    pub id: i64,
}

/// What the incremental reader of the compacted events copied.
#[derive(Table)]
#[table(schema = "silver", name = "copied_events")]
pub struct CopiedEvents {
    pub id: i64,
}

/// How many events were kept.
#[derive(Table)]
#[table(schema = "gold", name = "event_count", mode = overwrite)]
pub struct EventCount {
    pub events: i64,
    pub id_sum: Option<i64>,
}

/// The events of the latest run, as a full snapshot.
#[derive(Table)]
#[table(schema = "silver", name = "latest_events", key(id), mode = merge)]
pub struct LatestEvents {
    pub id: i64,
}

#[derive(Serialize)]
struct Event {
    id: i64,
}

/// The run's event: its id is the run's sequence, shifted by the `id_base` setting.
fn event(cx: &Ctx) -> Event {
    let base: i64 = cx
        .settings()
        .get("id_base")
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    Event {
        id: base + cx.run().sequence,
    }
}

#[pipeline]
pub async fn compacted_events(cx: &Ctx) -> Result<Frame<CompactedEvents>> {
    cx.frame_from_rows(&[event(cx)])
}

#[pipeline]
pub async fn kept_events(cx: &Ctx) -> Result<Frame<KeptEvents>> {
    cx.frame_from_rows(&[event(cx)])
}

/// Copies the events added since its last success.
#[pipeline(depends_on = [compacted_events])]
pub async fn copied_events(events: Changes<CompactedEvents>) -> Result<Frame<CopiedEvents>> {
    events.into_frame().select_into(CopiedEventsSelect {
        id: CompactedEvents::id,
    })
}

/// Replaces its rows with the events added since its last success.
#[pipeline(depends_on = [compacted_events], full_snapshot)]
pub async fn latest_events(events: Changes<CompactedEvents>) -> Result<Frame<LatestEvents>> {
    events.into_frame().select_into(LatestEventsSelect {
        id: CompactedEvents::id,
    })
}

/// Counts the kept events, reading them whole.
#[pipeline(depends_on = [kept_events])]
pub async fn event_count(events: Frame<KeptEvents>) -> Result<Frame<EventCount>> {
    // (A sum reads the files: a count comes from the log's statistics.)
    events.group_by([]).select_into(EventCountSelect {
        events: count_rows(),
        id_sum: sum(KeptEvents::id),
    })
}

fn orchestrator(wh: &TempWarehouse) -> Orchestrator {
    let names = [
        "compacted_events",
        "kept_events",
        "copied_events",
        "latest_events",
    ];
    let pipelines: Vec<&'static PipelineDescriptor> = Registry::from_inventory()
        .expect("graph")
        .pipelines()
        .iter()
        .copied()
        .filter(|p| names.contains(&p.name))
        .collect();
    Orchestrator::new(
        Registry::new(pipelines).expect("valid"),
        wh.warehouse.clone(),
    )
}

/// Appends events `ids` to `table`, one commit (one file) each, as other writers would.
async fn append_each(wh: &TempWarehouse, table: &'static TableDef, ids: std::ops::Range<i64>) {
    let session = wh.warehouse.session();
    for id in ids {
        let df = frame(&session, table, &[Event { id }]);
        wh.warehouse
            .write(&session, table, df, WriteOptions::default())
            .await
            .expect("appended");
    }
}

/// `count|distinct|min|max` of the ids of `table`.
async fn ids(wh: &TempWarehouse, table: &'static TableDef) -> String {
    let query = format!(
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {}",
        table.qualified_name()
    );
    let rows = render(wh.warehouse.sql(&[table], &query).await.expect("query")).await;
    rows.join("\n")
}

#[tokio::test]
async fn a_write_leaving_many_files_compacts_them_and_incremental_readers_see_each_row_once() {
    let wh = TempWarehouse::new();
    let orchestrator = orchestrator(&wh);
    let mut config = RunConfig::default();
    config.settings.set("id_base", "1000");
    let compacted = <CompactedEvents as lakehouse_runtime::Table>::DEF;
    let kept = <KeptEvents as lakehouse_runtime::Table>::DEF;

    // Run 1: one file each; the copy reads the first event.
    let report = orchestrator.run(&config).await.expect("run 1");
    assert!(report.succeeded(), "{}", report.render(false));
    assert_eq!(
        ids(&wh, <CopiedEvents as lakehouse_runtime::Table>::DEF).await,
        "1|1|1001|1001"
    );

    // Other writers append until one file short of the threshold.
    let short = AUTO_COMPACT_AT_FILES as i64 - 2;
    append_each(&wh, compacted, 1..1 + short).await;
    append_each(&wh, kept, 1..1 + short).await;
    assert_eq!(
        data_files(&wh.warehouse, compacted).await,
        AUTO_COMPACT_AT_FILES - 1
    );

    // Run 2's write makes the 64th file: the compacted table goes down to one file, the other
    // keeps them all, and both keep every row.
    let report = orchestrator.run(&config).await.expect("run 2");
    assert!(report.succeeded(), "{}", report.render(false));
    assert_eq!(data_files(&wh.warehouse, compacted).await, 1);
    assert_eq!(data_files(&wh.warehouse, kept).await, AUTO_COMPACT_AT_FILES);
    let all = format!("{}|{}|1|1002", short + 2, short + 2);
    assert_eq!(ids(&wh, compacted).await, all);
    assert_eq!(ids(&wh, kept).await, all);

    // The copy read run 2's changes: the other writers' events and run 2's, each once (the
    // compaction's commit changes no data). Run 3 then copies its one new event.
    let copied = <CopiedEvents as lakehouse_runtime::Table>::DEF;
    assert_eq!(ids(&wh, copied).await, all);
    let report = orchestrator.run(&config).await.expect("run 3");
    assert!(report.succeeded(), "{}", report.render(false));
    assert_eq!(
        ids(&wh, copied).await,
        format!("{}|{}|1|1003", short + 3, short + 3)
    );
    assert_eq!(data_files(&wh.warehouse, compacted).await, 2);

    let latest = <LatestEvents as lakehouse_runtime::Table>::DEF;
    assert_eq!(ids(&wh, latest).await, "1|1|1003|1003");

    // A compaction outside any run moves the table on without new rows: the snapshot reader
    // has nothing new, and keeps its rows (it would refuse to replace them with nothing).
    let report = wh.warehouse.optimize(compacted).await.expect("optimized");
    assert_eq!((report.files_removed, report.files_added), (2, 1));
    let version = wh.warehouse.version(latest).await.expect("version");
    let again = orchestrator
        .run(&RunConfig {
            targets: vec!["latest_events".into()],
            ..config.clone()
        })
        .await
        .expect("run 4");
    let result = again.result("latest_events").expect("planned");
    assert_eq!(
        (result.status, result.replayed, result.nothing_new),
        (Status::Succeeded, false, true),
        "{:?}",
        result.error
    );
    assert_eq!(
        wh.warehouse.version(latest).await.expect("version"),
        version
    );
    assert_eq!(ids(&wh, latest).await, "1|1|1003|1003");
}

/// Rows of about 200 KiB each, against a 256 KiB target.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "large_events", target_file_size = 262144)]
pub struct LargeEvents {
    pub id: i64,
    pub payload: String,
}

/// `len` letters that do not compress (a deterministic pseudo-random text).
fn incompressible(seed: i64, len: usize) -> String {
    let mut state = seed as u64 ^ 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

#[tokio::test]
async fn files_a_compaction_would_leave_do_not_count_as_small() {
    let wh = TempWarehouse::new();
    let table = <LargeEvents as lakehouse_runtime::Table>::DEF;
    for id in 0..AUTO_COMPACT_AT_FILES as i64 {
        let row = LargeEvents {
            id,
            payload: incompressible(id, 200 * 1024),
        };
        crate::common::write(&wh.warehouse, table, &[row], WriteOptions::default())
            .await
            .expect("append");
    }
    // Each file is under the target but over half of it: no two fit in one file, so a
    // compaction would change nothing, and none is asked for at every write.
    let stats = wh
        .warehouse
        .stats(table)
        .await
        .expect("stats")
        .expect("table");
    assert_eq!((stats.files, stats.small_files), (64, 0));
    let report = wh.warehouse.compact(table).await.expect("compact");
    assert_eq!(report.files_removed, 0);
}

#[tokio::test]
async fn a_forced_resume_of_a_snapshot_reader_reads_on_from_its_last_commit() {
    let wh = TempWarehouse::new();
    let orchestrator = orchestrator(&wh);
    for _ in 1..=2 {
        let report = orchestrator.run(&RunConfig::default()).await.expect("run");
        assert!(report.succeeded(), "{}", report.render(false));
    }
    // Run 3: no new event, so latest_events succeeds without writing.
    let third = orchestrator
        .run(&RunConfig {
            targets: vec!["latest_events".to_owned()],
            ..RunConfig::default()
        })
        .await
        .expect("run 3");
    assert!(third.succeeded(), "{}", third.render(false));
    let forced = RunConfig {
        rerun_succeeded: true,
        ..RunConfig::default()
    };
    let resumed = orchestrator
        .resume(&third.run_id, &forced)
        .await
        .expect("resume");
    assert!(resumed.succeeded(), "{}", resumed.render(false));
    // Re-executed, it reads on from what its last commit (run 2's) read, not from the start
    // (its own success is not a starting point): the snapshot is still run 2's event alone.
    let latest = crate::common::query(
        &wh.warehouse,
        &[<LatestEvents as lakehouse_runtime::Table>::DEF],
        "SELECT id FROM silver.latest_events",
    )
    .await;
    assert_eq!(latest, ["2"]);
}

#[tokio::test]
async fn the_incremental_readers_of_a_table_are_known_with_the_version_each_read() {
    let wh = TempWarehouse::new();
    let orchestrator = orchestrator(&wh);
    let compacted = <CompactedEvents as lakehouse_runtime::Table>::DEF;
    let kept = <KeptEvents as lakehouse_runtime::Table>::DEF;
    assert_eq!(
        orchestrator
            .pending_readers(compacted)
            .await
            .expect("readers"),
        vec![]
    );
    let report = orchestrator.run(&RunConfig::default()).await.expect("run");
    assert!(report.succeeded(), "{}", report.render(false));
    // Other writers append after the readers read the table.
    let read_version = wh
        .warehouse
        .version(compacted)
        .await
        .expect("version")
        .expect("written");
    append_each(&wh, compacted, 1..3).await;
    let mut readers = orchestrator
        .pending_readers(compacted)
        .await
        .expect("readers");
    readers.sort_by(|a, b| a.pipeline.cmp(&b.pipeline));
    let reader = |pipeline: &str, appends| PendingReader {
        pipeline: pipeline.to_owned(),
        read_version,
        appends,
    };
    assert_eq!(
        readers,
        vec![
            reader("copied_events", true),
            reader("latest_events", false)
        ]
    );
    // Nobody reads the other table's changes.
    assert_eq!(
        orchestrator.pending_readers(kept).await.expect("readers"),
        vec![]
    );
    // The ledger's runs removed (as the README allows, to clear history): the readers read on
    // from their outputs' commits, so a vacuum must still keep what they have to read.
    let runs = <lakehouse_runtime::ledger::RunRecord as lakehouse_runtime::Table>::DEF;
    std::fs::remove_dir_all(crate::common::table_folder(&wh.warehouse, runs)).expect("removed");
    let mut readers = self::orchestrator(&wh)
        .pending_readers(compacted)
        .await
        .expect("readers");
    readers.sort_by(|a, b| a.pipeline.cmp(&b.pipeline));
    assert_eq!(
        readers,
        vec![
            reader("copied_events", true),
            reader("latest_events", false)
        ]
    );
    // A success record whose read versions cannot be read: the reader's next run fails on it,
    // and a vacuum cannot know what the reader still needs.
    let orchestrator = self::orchestrator(&wh);
    let run = orchestrator.run(&RunConfig::default()).await.expect("run");
    assert!(run.succeeded(), "{}", run.render(false));
    let mut mangled = orchestrator
        .ledger()
        .last_success("latest_events")
        .await
        .expect("ledger")
        .expect("a success");
    mangled.sequence += 1;
    mangled.input_versions = Some("{not json".to_owned());
    orchestrator
        .ledger()
        .append(&[mangled])
        .await
        .expect("appended");
    let error = self::orchestrator(&wh)
        .pending_readers(compacted)
        .await
        .expect_err("unreadable")
        .to_string();
    assert!(
        error.contains("finding where `latest_events`, an incremental reader of bronze.compacted_events, reads on:"),
        "{error}"
    );
}

#[tokio::test]
async fn a_file_an_incremental_reader_still_needs_that_is_gone_is_named_with_the_way_out() {
    let wh = TempWarehouse::new();
    let orchestrator = orchestrator(&wh);
    let compacted = <CompactedEvents as lakehouse_runtime::Table>::DEF;
    let report = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    assert!(report.succeeded(), "{}", report.render(false));
    // Another writer appends; its file is deleted before the copy reads it.
    let before: std::collections::BTreeSet<_> = parquet_files(&wh, compacted);
    append_each(&wh, compacted, 1..2).await;
    for file in parquet_files(&wh, compacted).difference(&before) {
        std::fs::remove_file(file).expect("removed");
    }
    let report = orchestrator
        .run(&RunConfig {
            targets: vec!["copied_events".to_owned()],
            ..RunConfig::default()
        })
        .await
        .expect("run 2");
    let error = report
        .result("copied_events")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(
        error.contains(
            "a data file of bronze.compacted_events that this pipeline still had to read \
             incrementally is gone (vacuumed, or deleted): read the input whole again with \
             `orchestrate run --select copied_events --rebuild`"
        ),
        "{}",
        report.render(false)
    );
    // The input and the way out come first; delta-rs's text (naming the output) last.
    assert!(
        error.find("a data file of") < error.find("not found"),
        "{error}"
    );
}

/// The data files in `table`'s folder.
fn parquet_files(
    wh: &TempWarehouse,
    table: &'static TableDef,
) -> std::collections::BTreeSet<std::path::PathBuf> {
    std::fs::read_dir(crate::common::table_folder(&wh.warehouse, table))
        .expect("table folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

#[tokio::test]
async fn a_file_of_a_whole_input_that_is_gone_is_named_with_the_way_out() {
    let wh = TempWarehouse::new();
    let pipelines: Vec<&'static PipelineDescriptor> = Registry::from_inventory()
        .expect("graph")
        .pipelines()
        .iter()
        .copied()
        .filter(|p| ["kept_events", "event_count"].contains(&p.name))
        .collect();
    let orchestrator = Orchestrator::new(
        Registry::new(pipelines).expect("valid"),
        wh.warehouse.clone(),
    );
    let report = orchestrator
        .run(&RunConfig::default())
        .await
        .expect("run 1");
    assert!(report.succeeded(), "{}", report.render(false));
    let kept = <KeptEvents as lakehouse_runtime::Table>::DEF;
    for file in parquet_files(&wh, kept) {
        std::fs::remove_file(file).expect("removed");
    }
    let report = orchestrator
        .run(&RunConfig {
            targets: vec!["event_count".to_owned()],
            ..RunConfig::default()
        })
        .await
        .expect("run 2");
    let error = report
        .result("event_count")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(
        error.contains(
            "a data file of bronze.kept_events's current version is gone (deleted, or vacuumed \
             by another engine): `orchestrate check` lists what is missing"
        ),
        "{}",
        report.render(false)
    );
}

/// Events whose pipeline interrupts its run (as Ctrl-C would) while it writes them.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "interrupted_events")]
pub struct InterruptedEvents {
    pub id: i64,
}

/// The interrupt `interrupted_events` sends (set by the one test that runs it).
static INTERRUPT: std::sync::Mutex<Option<tokio::sync::watch::Sender<bool>>> =
    std::sync::Mutex::new(None);

#[pipeline]
pub async fn interrupted_events(cx: &Ctx) -> Result<Frame<InterruptedEvents>> {
    if let Some(interrupt) = INTERRUPT.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        let _ = interrupt.send(true);
    }
    cx.frame_from_rows(&[event(cx)])
}

#[tokio::test]
async fn a_stopping_run_leaves_the_compaction_to_the_next_write() {
    let wh = TempWarehouse::new();
    let table = <InterruptedEvents as lakehouse_runtime::Table>::DEF;
    append_each(&wh, table, 1..AUTO_COMPACT_AT_FILES as i64).await;
    let (interrupt, interrupted) = tokio::sync::watch::channel(false);
    *INTERRUPT.lock().unwrap_or_else(|p| p.into_inner()) = Some(interrupt);
    let pipelines: Vec<&'static PipelineDescriptor> = Registry::from_inventory()
        .expect("graph")
        .pipelines()
        .iter()
        .copied()
        .filter(|p| p.name == "interrupted_events")
        .collect();
    let orchestrator = Orchestrator::new(
        Registry::new(pipelines).expect("valid"),
        wh.warehouse.clone(),
    )
    .with_shutdown(interrupted);
    let mut config = RunConfig::default();
    config.settings.set("id_base", "1000");
    // The write that makes the 64th file commits; the compaction it calls for would hold the
    // interrupted run's end back for as long as it takes, and is left for the next write.
    let report = orchestrator.run(&config).await.expect("run");
    let result = report.result("interrupted_events").expect("ran");
    assert_eq!(result.status, Status::Succeeded, "{}", report.render(false));
    assert_eq!(
        data_files(&wh.warehouse, table).await,
        AUTO_COMPACT_AT_FILES
    );
    assert_eq!(
        ids(&wh, table).await,
        format!("{}|{}|1|1001", AUTO_COMPACT_AT_FILES, AUTO_COMPACT_AT_FILES)
    );
}
