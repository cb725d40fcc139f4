//! The orchestrator: plans a selection of the registry into groups and runs each pipeline over
//! the warehouse once its upstreams have ended, with bounded parallelism, retries, timeouts,
//! fail-fast and skip cascades, recording every attempt in the run ledger.

mod attempt;
mod backfill;
mod config;
mod cursor;
mod ends;
mod execute;
mod guard;
mod notify;
mod plan;
mod produce;
mod replay;
pub(crate) mod report;
mod resume;
mod retention;
mod run_loop;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

pub use backfill::{BackfillReport, MAX_BACKFILL_RUNS, Redo, backfill_times};
pub use config::{PipelineOverride, RunConfig, SkipPolicy};
pub use notify::{NotifyOn, Webhook, checked_url};
pub use plan::{Direction, Order, Plan, SelectionError, plan, plan_excluding, select};
pub use report::{PipelineResult, RunReport, Status};
pub use retention::LEDGER_PRUNE_INTERVAL;
pub use run_loop::{LoopRuns, MAX_FAILED_LOOP_RUNS};

use config::{Refresh, refuse_for_many_runs};
use ends::{EndOnDrop, UnrecordedEnds};
use guard::FUTURE_RUN_AT_MARGIN_MICROS;
pub(crate) use guard::{is_beside_a_live_run, refuse_future_run_at};

use crate::ctx::RunInfo;
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::ledger::{Ledger, RunProcess, RunRecord};
use crate::store::{PendingReader, Warehouse};
use crate::table::Timestamp;

/// Runs pipelines of a registry over a warehouse.
///
/// # Examples
///
/// ```ignore
/// let registry = Registry::from_inventory()?;
/// let orchestrator = Orchestrator::new(registry, Warehouse::open("data/warehouse")?);
/// let report = orchestrator
///     .run(&RunConfig { targets: vec!["+fact_sales".into()], fail_fast: true, ..RunConfig::default() })
///     .await?;
/// println!("{}", report.render(false));
/// ```
#[derive(Clone)]
pub struct Orchestrator {
    registry: Registry,
    warehouse: Warehouse,
    ledger: Ledger,
    shutdown: watch::Receiver<bool>,
    _shutdown_sender: Arc<watch::Sender<bool>>,
    /// Once true, running attempts are cut short as fail-fast cuts them.
    pub(crate) abort: watch::Receiver<bool>,
    _abort_sender: Arc<watch::Sender<bool>>,
    events: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
    /// Set once this orchestrator has created (or found) the system tables.
    system_tables_ready: Arc<std::sync::atomic::AtomicBool>,
    /// The last run sequence this orchestrator took: the next is above it even when the ledger
    /// lost that run's rows (its writes may have landed under it).
    last_sequence: Arc<std::sync::atomic::AtomicI64>,
    /// Told of each run's outcome.
    webhook: Option<Webhook>,
    /// Per run executing, whether its start row is recorded (or could not be): its pipelines'
    /// writes wait for it, so a run whose process dies is in the ledger before any of its
    /// commits (the next run would otherwise take its sequence, and collide with its writes).
    starts: Arc<std::sync::Mutex<HashMap<String, watch::Receiver<bool>>>>,
    /// The end rows of runs this orchestrator could not record (the ledger failed for a
    /// moment): appended before its next run, or a loop's run would stay "running" in the
    /// ledger, refusing its resume and backfills at its time, as long as the loop lives.
    unrecorded_ends: UnrecordedEnds,
    /// When this orchestrator last tried to prune the ledger (`RunConfig::ledger_retention`).
    last_ledger_prune: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// The pipelines with an attempt left running (it blocked past its cut), and its run: not
    /// started again beside it, by a loop's next run say, until it ends.
    pub(crate) left_running: Arc<std::sync::Mutex<HashMap<&'static str, Vec<String>>>>,
}

/// Progress of a run, for live displays.
#[derive(Clone, Debug)]
pub enum Event {
    /// A run starts with this plan.
    Planned {
        /// The run.
        run_id: String,
        /// Pipelines in plan order.
        pipelines: Vec<&'static str>,
    },
    /// A pipeline's attempt started.
    Started {
        /// The pipeline.
        pipeline: &'static str,
        /// The attempt number.
        attempt: u32,
    },
    /// A pipeline ended.
    Finished(PipelineResult),
}

impl Orchestrator {
    /// An orchestrator of `registry` over `warehouse`.
    pub fn new(registry: Registry, warehouse: Warehouse) -> Orchestrator {
        let (sender, receiver) = watch::channel(false);
        let (abort_sender, abort) = watch::channel(false);
        Orchestrator {
            ledger: Ledger::new(warehouse.clone()),
            registry,
            warehouse,
            shutdown: receiver,
            _shutdown_sender: Arc::new(sender),
            abort,
            _abort_sender: Arc::new(abort_sender),
            events: None,
            system_tables_ready: Arc::default(),
            unrecorded_ends: UnrecordedEnds::default(),
            last_sequence: Arc::default(),
            webhook: None,
            starts: Arc::default(),
            last_ledger_prune: Arc::default(),
            left_running: Arc::default(),
        }
    }

    /// Waits until run `run_id`'s start row is recorded, or could not be (at once when the run
    /// is not executing here).
    pub(super) async fn start_recorded(&self, run_id: &str) {
        let started = self
            .starts
            .lock()
            .ok()
            .and_then(|starts| starts.get(run_id).cloned());
        if let Some(mut started) = started {
            // A sender dropped (the run ended) ends the wait too.
            let _ = started.wait_for(|recorded| *recorded).await;
        }
    }

    /// Tells `webhook` of each run's outcome (every run, resumed, looped or backfilled).
    pub fn with_webhook(mut self, webhook: Webhook) -> Orchestrator {
        self.webhook = Some(webhook);
        self
    }

    /// Sends progress events to `events`.
    pub fn with_events(
        mut self,
        events: tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Orchestrator {
        self.events = Some(events);
        self
    }

    pub(crate) fn emit(&self, event: Event) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    /// `started`, an error of which is told to the webhook, if any, as a run that could not
    /// start (a scheduled run, resume or backfill must not fail unseen).
    pub(crate) async fn told_if_not_started<T>(&self, started: Result<T>) -> Result<T> {
        if let (Err(error), Some(webhook)) = (&started, &self.webhook) {
            webhook.notify_not_started(error).await;
        }
        started
    }

    /// Stops gracefully when `shutdown` becomes true: no new pipeline starts, running ones finish
    /// and are recorded, the rest are cancelled.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> Orchestrator {
        self.shutdown = shutdown;
        self
    }

    /// Stops at once when `abort` becomes true (a second Ctrl-C, or the grace after a SIGTERM
    /// over): running attempts are cut
    /// short as fail-fast cuts them (one whose write committed still records it), the rest are
    /// cancelled, and the run's end is recorded, so that it is not left "running" in the ledger.
    pub fn with_abort(mut self, abort: watch::Receiver<bool>) -> Orchestrator {
        self.abort = abort;
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The warehouse.
    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// The run ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The pipelines reading `table`'s changes incrementally that have read it before, with the
    /// last version each read, found as its next run would find it (its last recorded success,
    /// or its output's latest commit when the ledger lacks that success: the ledger's runs
    /// removed, a crash after the commit): what a vacuum must keep for them
    /// ([`Warehouse::vacuum_keeping`]). A success record that cannot be read is an error, as it
    /// is for the reader's next run.
    pub async fn pending_readers(
        &self,
        table: &'static crate::table::TableDef,
    ) -> Result<Vec<PendingReader>> {
        let name = table.qualified_name();
        let mut readers = Vec::new();
        for pipeline in self.registry.pipelines() {
            let reads_changes = pipeline
                .inputs
                .iter()
                .any(|input| input.incremental && input.table.qualified_name() == name);
            if !reads_changes {
                continue;
            }
            // As a run after every one recorded would start reading.
            let next = RunInfo {
                run_id: String::new(),
                sequence: i64::MAX,
                run_at: crate::table::Timestamp(i64::MAX),
            };
            // Quietly: what the reader's run would announce is not this caller's news.
            let position = cursor::incremental_cursor(self, pipeline, &next, false)
                .await
                .map_err(|error| {
                    Error::msg(format!(
                        "finding where `{}`, an incremental reader of {name}, reads on: {error}",
                        pipeline.name
                    ))
                })?;
            if let Some(read_version) = position.versions.get(&name).copied().flatten() {
                readers.push(PendingReader {
                    pipeline: pipeline.name.to_owned(),
                    read_version,
                    appends: pipeline.output.mode == crate::table::WriteMode::Append,
                });
            }
        }
        Ok(readers)
    }

    /// The plan `config` selects.
    pub fn plan(&self, config: &RunConfig) -> Result<Plan> {
        config.plan(&self.registry)
    }

    /// Runs the selection as a new run, with a fresh `run_at` and sequence. Refused while a
    /// full refresh or rebuild of some of its pipelines did not finish (resume it first), unless
    /// `config.force`, or unless this run is itself one.
    pub async fn run(&self, config: &RunConfig) -> Result<RunReport> {
        self.run_telling(config, true).await
    }

    /// [`Orchestrator::run`]; `tell_beside_a_live_run`: whether a run refused beside a live
    /// run is told to the webhook (a loop tells the first of its ticks skipped in a row).
    pub(super) async fn run_telling(
        &self,
        config: &RunConfig,
        tell_beside_a_live_run: bool,
    ) -> Result<RunReport> {
        let plan = self.plan(config)?;
        // This process's runs whose end the ledger could not take: not "unfinished" any more.
        self.record_unrecorded_ends().await;
        let started = async {
            // First: a refresh still running in another process is not one to resume, and a
            // loop skips its ticks beside it.
            if !config.force {
                self.refuse_beside_a_live_run(&plan).await?;
            }
            if !(config.force || config.full_refresh || config.rebuild) {
                self.refuse_over_unfinished_refresh(&plan).await?;
            }
            if let Some(run_at) = config.run_at
                && !config.force
            {
                refuse_future_run_at(run_at)?;
            }
            let mut sequence = self.ledger.next_sequence().await?;
            if sequence == 1 {
                sequence = self.sequence_floor().await?;
            }
            // A run of this process whose rows the ledger could not take (the warehouse
            // unreachable for a moment, in a loop) still took its sequence.
            // One atomic step: two runs on clones of this orchestrator take two sequences.
            use std::sync::atomic::Ordering;
            let from_ledger = sequence;
            let taken = self
                .last_sequence
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                    Some(from_ledger.max(last.saturating_add(1)))
                })
                .unwrap_or_else(|last| last);
            sequence = from_ledger.max(taken.saturating_add(1));
            let run_at = match config.run_at {
                Some(run_at) => run_at,
                None => self.fresh_run_at().await?,
            };
            Ok::<_, Error>((sequence, run_at))
        };
        let (sequence, run_at) = match started.await {
            Err(error) if !tell_beside_a_live_run && is_beside_a_live_run(&error) => Err(error),
            started => self.told_if_not_started(started).await,
        }?;
        let run = RunInfo {
            run_id: run_id(sequence, run_at),
            sequence,
            run_at,
        };
        let first = Execution {
            number: 1,
            earlier_rows: (0, 0),
            not_resumed: Vec::new(),
        };
        let report = self
            .execute_run(run, &plan, config, &HashMap::new(), &HashMap::new(), first)
            .await;
        if let Some(retention) = config.ledger_retention
            && report
                .as_ref()
                .is_ok_and(|report| report.unrecorded.is_none())
        {
            self.prune_ledger_if_due(retention).await;
        }
        report
    }

    /// The first sequence of a ledger without runs: 1, or one more than the latest any
    /// pipeline's table holds, when the tables outlived their ledger (`lakehouse/` removed to
    /// clear the history, say). Starting below would make every write look like another
    /// orchestrator's (each table's transaction is ahead) until the sequences caught up.
    async fn sequence_floor(&self) -> Result<i64> {
        // Every table counts, read or not by this run: the sequence is the warehouse's, and a
        // floor too low would stay (the next runs take theirs from the ledger). So an
        // unreadable table stops the run.
        let floor = self
            .latest_table_sequence()
            .await
            .map_err(|error| {
                Error::msg(format!(
                    "lakehouse.runs has no runs, so the next run's sequence is taken from the \
                     latest write every table holds, and a table could not be read: {error}; \
                     `orchestrate check` tells what is wrong with it (restore it to a readable \
                     version, or move its folder away)"
                ))
            })?
            .map_or(1, |latest| latest.saturating_add(1));
        if floor > 1 {
            tracing::warn!(
                sequence = floor,
                "lakehouse.runs has no runs, but the tables hold runs' writes: the ledger was \
                 removed or replaced; sequences go on after the tables' latest"
            );
        }
        Ok(floor)
    }

    /// The latest run sequence any registered pipeline's table holds (its transaction version;
    /// no history is read), `None` when none holds one.
    pub(crate) async fn latest_table_sequence(&self) -> Result<Option<i64>> {
        let mut latest = None;
        for pipeline in self.registry.pipelines() {
            let version = self
                .warehouse
                .transaction_version(pipeline.output, pipeline.name)
                .await?;
            latest = latest.max(version);
        }
        Ok(latest)
    }

    /// A `run_at` later than every recorded one (distinct even for runs started in the same
    /// microsecond), from the runs table's statistics rather than a scan of its records.
    async fn fresh_run_at(&self) -> Result<Timestamp> {
        let bound = self.ledger.run_at_bound().await?.map_or(i64::MIN, |t| t.0);
        let now = Timestamp::now();
        if bound > now.0.saturating_add(FUTURE_RUN_AT_MARGIN_MICROS) {
            tracing::warn!(
                recorded = %Timestamp(bound),
                %now,
                "a run recorded a logical time in the future (or this host's clock is behind): \
                 this run's logical time is after it, not now, until the clock passes it"
            );
        }
        Ok(Timestamp(now.0.max(bound)))
    }

    async fn execute_run(
        &self,
        run: RunInfo,
        plan: &Plan,
        config: &RunConfig,
        previous: &HashMap<String, Status>,
        attempts_before: &HashMap<String, u32>,
        execution: Execution,
    ) -> Result<RunReport> {
        let Execution {
            number: execution,
            earlier_rows,
            not_resumed,
        } = execution;
        // Created before pipelines run in parallel, which would race to create them; once per
        // orchestrator (tables are never dropped).
        use std::sync::atomic::Ordering;
        if !self.system_tables_ready.load(Ordering::Acquire) {
            for table in crate::ledger::system_tables() {
                self.told_if_not_started(self.warehouse.ensure(table).await)
                    .await?;
            }
            self.system_tables_ready.store(true, Ordering::Release);
        }
        self.record_unrecorded_ends().await;
        tracing::info!(
            run_id = %run.run_id,
            sequence = run.sequence,
            run_at = %run.run_at,
            pipelines = plan.pipelines().count(),
            groups = plan.groups.len(),
            "run started"
        );
        tracing::debug!("{plan}");
        let started = Instant::now();
        let started_at = Timestamp::now();
        let run = Arc::new(run);
        let planned: Vec<&'static str> = plan.pipelines().map(|p| p.name).collect();
        self.emit(Event::Planned {
            run_id: run.run_id.clone(),
            pipelines: planned.clone(),
        });
        let mut selection = if config.targets.is_empty() {
            "*".to_owned()
        } else {
            config.targets.join(" ")
        };
        if !config.exclude.is_empty() {
            selection = format!("{selection} --exclude {}", config.exclude.join(" "));
        }
        // Recorded as the run starts (alongside its first pipelines): its sequence is taken at
        // once, and a run whose process dies is listed, and resumable, with its plan.
        let start = RunRecord {
            selection: Some(selection),
            planned: Some(planned.join(" ")),
            process: Some(RunProcess::current().to_json()),
            refresh: Refresh::of(config).map(|refresh| refresh.as_str().to_owned()),
            settings: config.settings.to_record(),
            execution: Some(execution),
            ..RunRecord::of_run(&run, Status::Running, started_at)
        };
        // The pipelines start at once; their writes wait for the start row (`start_recorded`).
        let (start_sender, started_receiver) = watch::channel(false);
        if let Ok(mut starts) = self.starts.lock() {
            starts.insert(run.run_id.clone(), started_receiver);
        }
        // A caller that drops this future (a `select!`, a time limit around `run`) stops the
        // attempts; the run's end is recorded all the same, as cancelled, or the run would stay
        // "running" under a live process (its resume refused).
        let mut end_on_drop = EndOnDrop {
            ledger: self.ledger.clone(),
            unrecorded: self.unrecorded_ends.clone(),
            start: Some(start.clone()),
            started,
        };
        let record_start = async {
            let recorded = self.ledger.append(std::slice::from_ref(&start)).await;
            let _ = start_sender.send(true);
            recorded
        };
        let (recorded, (results, unrecorded)) = tokio::join!(
            record_start,
            execute::execute(
                self,
                run.clone(),
                plan,
                config,
                previous,
                attempts_before,
                execution
            )
        );
        if let Ok(mut starts) = self.starts.lock() {
            starts.remove(&run.run_id);
        }
        // (The end row repeats what the start row holds: a lost start loses nothing.)
        if let Err(error) = recorded {
            tracing::warn!(%error, "could not record the run's start in lakehouse.runs");
        }
        // A run whose rows are partly lost is no success: its end row says so, and a backfill
        // looks in its tables for the writes the ledger lacks.
        let mut report = RunReport {
            run_id: run.run_id.clone(),
            sequence: run.sequence,
            run_at: run.run_at,
            results,
            duration: started.elapsed(),
            unrecorded: unrecorded
                .map(|why| format!("not every row reached lakehouse.runs ({why})")),
            not_resumed,
        };
        // Pipelines that did not run get a row too (attempt NULL), so `resume` finds them.
        let finished_at = Timestamp::now();
        let mut records: Vec<RunRecord> = report
            .results
            .iter()
            .filter(|r| r.attempts == 0 && matches!(r.status, Status::Skipped | Status::Cancelled))
            .map(|r| RunRecord {
                finished_at: Some(finished_at),
                error: r.error.clone(),
                execution: Some(execution),
                ..RunRecord::of_pipeline(&run, r.pipeline, r.table.clone(), r.status, finished_at)
            })
            .collect();
        records.push(RunRecord {
            status: report.status().as_str().to_owned(),
            finished_at: Some(Timestamp::now()),
            duration_ms: Some(report.duration.as_millis() as i64),
            rows_written: Some(
                (earlier_rows.0
                    + report
                        .results
                        .iter()
                        .filter_map(|r| r.rows_written)
                        .sum::<u64>()) as i64,
            ),
            rows_deleted: Some(
                (earlier_rows.1
                    + report
                        .results
                        .iter()
                        .filter_map(|r| r.rows_deleted)
                        .sum::<u64>()) as i64,
            ),
            ..start
        });
        // The end is appended by a task of its own, which this future being dropped does not
        // stop (a local commit lands anyway): the guard, disarmed, adds no "cancelled" end
        // beside it. The task holds the queue of unrecorded ends until its append is done, so
        // that the next run, which appends the queue first, finds this end recorded or queued.
        let mut queue = self.unrecorded_ends.lock().await;
        end_on_drop.start = None;
        let ledger = self.ledger.clone();
        let run_id = report.run_id.clone();
        // Queued if the task panics (its rows moved into it, the guard disarmed).
        let kept = records.clone();
        let recorded = tokio::spawn(async move {
            let recorded = ledger.append(&records).await;
            if let Err(error) = &recorded {
                tracing::error!(%error, %run_id, "the run's end could not be recorded in lakehouse.runs; it is tried again before this orchestrator's next run");
                queue.extend(records);
            }
            recorded
        })
        .await
        .unwrap_or_else(|failed| {
            self.unrecorded_ends.queue_now(kept);
            Err(Error::msg(format!(
                "recording the run's end failed ({failed}); it is tried again before this \
                 orchestrator's next run"
            )))
        });
        // The report is still the run's: returned (and printed), saying it is not recorded.
        if let Err(error) = &recorded {
            report.unrecorded = Some(error.to_string());
        }
        // Told even when the run could not be recorded: that is worth knowing too.
        if let Some(webhook) = &self.webhook {
            webhook.notify(&report, recorded.as_ref().err()).await;
        }
        Ok(report)
    }
}

/// Which execution of a run [`Orchestrator::execute_run`] makes.
struct Execution {
    /// 1, then one more per resume.
    number: i32,
    /// Rows (written, deleted) by the run's earlier executions, which its row totals too.
    earlier_rows: (u64, u64),
    /// The run's pipelines that had not succeeded and are no longer registered.
    not_resumed: Vec<String>,
}

/// Where `record` comes among its pipeline's rows in its run: by execution (NULL on rows
/// recorded before executions were numbered), then by attempt, then by the host's clock (a
/// clock stepped back between two attempts does not make the first the latest).
fn written_order(record: &RunRecord) -> (i32, i32, i64) {
    (
        record.execution.unwrap_or(0),
        record.attempt.unwrap_or(0),
        record.started_at.0,
    )
}

/// The rows (written, deleted) of the pipelines of a run's `records` that succeeded, but those
/// in `excluded`: each pipeline's latest success.
fn rows_of_succeeded(records: &[RunRecord], excluded: &[String]) -> (u64, u64) {
    let mut latest: HashMap<&str, &RunRecord> = HashMap::new();
    for record in records.iter().filter(|r| r.kind == "pipeline") {
        if let Some(pipeline) = record.pipeline.as_deref()
            && record.status == Status::Succeeded.as_str()
            && !excluded.iter().any(|e| e == pipeline)
            && latest
                .get(pipeline)
                .is_none_or(|kept| written_order(kept) <= written_order(record))
        {
            latest.insert(pipeline, record);
        }
    }
    let sum = |of: fn(&RunRecord) -> Option<i64>| -> u64 {
        latest
            .values()
            .filter_map(|r| of(r))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .sum()
    };
    (sum(|r| r.rows_written), sum(|r| r.rows_deleted))
}

/// `r000042-20260129T101500Z-3f9a07c1`: sortable and readable (sequence, then `run_at` to the
/// second), and unique: two orchestrators starting at once on one warehouse can take the same
/// sequence and `run_at` second, and a run must never take the other's commit for its own (see
/// `replay::already_written`), so a random suffix ends it.
fn run_id(sequence: i64, run_at: Timestamp) -> String {
    let time = chrono::DateTime::from_timestamp_micros(run_at.0)
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default();
    format!("r{sequence:06}-{time}-{:08x}", rand::random::<u32>())
}
