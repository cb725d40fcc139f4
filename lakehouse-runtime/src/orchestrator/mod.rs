//! The orchestrator: plans a selection of the registry into groups and runs each pipeline over
//! the warehouse once its upstreams have ended, with bounded parallelism, retries, timeouts,
//! fail-fast and skip cascades, recording every attempt in the run ledger.

mod attempt;
mod backfill;
mod cursor;
mod execute;
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
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use backfill::{BackfillReport, MAX_BACKFILL_RUNS, Redo, backfill_times};
pub use notify::{NotifyOn, Webhook, checked_url};
pub use plan::{Direction, Order, Plan, SelectionError, plan, plan_excluding, select};
pub use report::{PipelineResult, RunReport, Status};
pub use retention::LEDGER_PRUNE_INTERVAL;
pub use run_loop::{LoopRuns, MAX_FAILED_LOOP_RUNS};

use crate::ctx::{RunInfo, Settings};
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::ledger::{Ledger, RunProcess, RunRecord};
use crate::store::{PendingReader, Warehouse};
use crate::table::Timestamp;

/// A run refused because another process of this host runs some of its pipelines: a loop
/// skips its tick, rather than count it as a run that could not start.
#[derive(Debug)]
struct BesideALiveRun(String);

impl std::fmt::Display for BesideALiveRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BesideALiveRun {}

/// Whether `error` refused a run beside a live one ([`Orchestrator::run`]).
pub(crate) fn is_beside_a_live_run(error: &Error) -> bool {
    matches!(error, Error::Other(inner) if inner.is::<BesideALiveRun>())
}

/// How far back a run starting looks for one still going ([`Orchestrator::run`]): a day.
const LIVE_RUN_LOOKBACK_MICROS: i64 = 24 * 3600 * 1_000_000;

/// How far ahead of this host's clock a run's logical time may be without `force`: a little
/// clock skew between hosts, not a typo.
const FUTURE_RUN_AT_MARGIN_MICROS: i64 = 5 * 60 * 1_000_000;

/// An error for a logical time in the future: every later run would get a logical time after
/// it (runs are ordered by it), so a typo would shift the days of every run until then.
pub(crate) fn refuse_future_run_at(run_at: Timestamp) -> Result<()> {
    let now = Timestamp::now();
    if run_at.0 > now.0.saturating_add(FUTURE_RUN_AT_MARGIN_MICROS) {
        return Err(Error::msg(format!(
            "the logical time {run_at} is in the future (it is {now}): every later run would \
             get a logical time after it, not its own; give a past time, or --force if it is \
             meant"
        )));
    }
    Ok(())
}

/// When a pipeline is skipped because of its upstreams' failures. Only upstreams that are part
/// of the run count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SkipPolicy {
    /// Skip when any upstream in the run failed or was skipped (the default, as dbt, Dagster
    /// and Airflow do): a pipeline never builds on an upstream that failed to refresh, and
    /// `resume` (or a backfill run again) runs it after its upstream.
    #[default]
    Any,
    /// Skip only when every upstream in the run failed or was skipped: a pipeline with one
    /// upstream that succeeded runs on the others' previous tables, and is not run again by
    /// `resume` once they are mended.
    All,
}

/// Retry and timeout settings of one pipeline, overriding its declaration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineOverride {
    /// Extra attempts.
    pub retries: Option<u32>,
    /// Time limit per attempt.
    pub timeout: Option<Duration>,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Targets and selectors (all pipelines when empty); see [`plan()`].
    pub targets: Vec<String>,
    /// Selectors of pipelines left out of the targets' (see [`plan_excluding`]).
    pub exclude: Vec<String>,
    /// Neighbours selected with plain names.
    pub direction: Direction,
    /// Grouping, and when pipelines start (see [`Order`]).
    pub order: Order,
    /// Pipelines running at once (1 is serial).
    pub concurrency: usize,
    /// On the first failure, stop starting pipelines and cancel running ones.
    pub fail_fast: bool,
    /// Skip pipelines whose upstreams failed (per `skip_policy`).
    pub skip_downstream_on_failure: bool,
    /// Which upstream failures skip a pipeline.
    pub skip_policy: SkipPolicy,
    /// Extra attempts for pipelines that declare none.
    pub default_retries: u32,
    /// Time limit per attempt for pipelines that declare none.
    pub default_timeout: Option<Duration>,
    /// Per-pipeline overrides of the declarations.
    pub overrides: HashMap<String, PipelineOverride>,
    /// First retry delay; doubled per attempt, capped by `max_retry_delay`, jittered down to
    /// half of it at most.
    pub retry_delay: Duration,
    /// Cap of the retry delay (raised to `retry_delay` when that is longer).
    pub max_retry_delay: Duration,
    /// How long an attempt cut short (its time limit, fail-fast) is given to stop, and the
    /// check of whether its write committed to answer, before the run goes on without them
    /// (30 s; an aborted run's is 5 s at most). An attempt that has not stopped by then (it
    /// blocks without awaiting) is left running, and its pipeline not started again until it
    /// ends.
    pub cut_wait: Duration,
    /// A new run: go on although a full refresh or rebuild of its pipelines did not finish, and
    /// accept a `run_at` in the future. A resume: resume a run recorded as running whose
    /// process cannot be checked from here.
    pub force: bool,
    /// A resume: re-execute the pipelines that succeeded too (one whose write this run committed
    /// is replayed from its commit, its sources not called again; one that committed nothing
    /// runs again).
    pub rerun_succeeded: bool,
    /// Settings handed to pipelines.
    pub settings: Settings,
    /// The logical time of new runs (default: now), e.g. to backfill a past day.
    pub run_at: Option<Timestamp>,
    /// Read every `Changes<T>` input whole, as on a pipeline's first run, instead of the rows
    /// new since its last success (and every file `Ctx::read_new_files` lists, ingested or
    /// not): after an upstream table was recreated, vacuumed past the cursor or lost its log. Merge and SCD2 outputs take the rows again unchanged; an append
    /// output gets them twice (clear it first, or set `rebuild`).
    pub full_refresh: bool,
    /// With `full_refresh`: a pipeline reading `Changes<T>` (or new files) into an append table
    /// replaces that
    /// table's rows with what it makes of its inputs read whole, in one commit, instead of
    /// adding them again (Delta Live Tables' full refresh). Rows its upstreams no longer hold
    /// (vacuumed, or lost with a recreated table) are then gone from it too.
    pub rebuild: bool,
    /// After the run (each run of a loop; a backfill does not prune: a backfill going on over
    /// the times it pruned would be refused), prune the ledger of the runs that ended longer ago
    /// than this ([`crate::ledger::Ledger::prune`]), at most once a day: not when this
    /// orchestrator tried, or any process pruned runs, in the last [`LEDGER_PRUNE_INTERVAL`]. A
    /// prune that fails is logged; the run's outcome stays. Not after a run the ledger could not
    /// record.
    pub ledger_retention: Option<Duration>,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            targets: Vec::new(),
            exclude: Vec::new(),
            direction: Direction::None,
            order: Order::ProcessFirst,
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            fail_fast: false,
            skip_downstream_on_failure: true,
            skip_policy: SkipPolicy::Any,
            default_retries: 0,
            default_timeout: None,
            overrides: HashMap::new(),
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            cut_wait: Duration::from_secs(30),
            force: false,
            rerun_succeeded: false,
            settings: Settings::new(),
            run_at: None,
            full_refresh: false,
            rebuild: false,
            ledger_retention: None,
        }
    }
}

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

impl RunConfig {
    /// The plan this configuration selects from `registry` (no warehouse needed).
    pub fn plan(&self, registry: &Registry) -> Result<Plan> {
        plan_excluding(
            registry,
            &self.targets,
            &self.exclude,
            self.direction,
            self.order,
        )
        .map_err(|e| Error::msg(e.to_string()))
    }
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

    /// An error naming a run of some of `plan`'s pipelines still going in another process of
    /// this host (a cron run started while the last one runs): it would do all its work, then
    /// fail at its writes, two runs of an incremental pipeline at once reading the same new
    /// rows. Only runs started in the last day are looked for (a bounded read of the ledger), and
    /// only a process this host can see alive refuses: a run recorded by another host, or by a
    /// process that died, is left to the writes' own checks (a pod killed mid-run must not block
    /// every later run). This process's own runs (an application running several at once) are
    /// its own business.
    async fn refuse_beside_a_live_run(&self, plan: &Plan) -> Result<()> {
        let since = Timestamp(Timestamp::now().0 - LIVE_RUN_LOOKBACK_MICROS);
        let here = RunProcess::current();
        let planned: Vec<&str> = plan.pipelines().map(|p| p.name).collect();
        for other in self.ledger.running_since(since).await? {
            let Some(process) = other.run_process() else {
                continue;
            };
            if process == here {
                continue;
            }
            if process.liveness() != crate::ledger::Liveness::Alive {
                continue;
            }
            let shared: Vec<&str> = other
                .planned
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .filter(|name| planned.contains(name))
                .collect();
            if shared.is_empty() {
                continue;
            }
            return Err(Error::Other(Box::new(BesideALiveRun(format!(
                "run `{}` is still running ({process}, started {}) and executes {}: wait for it \
                 to end, or run with --force (two runs of an incremental pipeline at once fail \
                 at their writes)",
                other.run_id,
                other.started_at.to_rfc3339(),
                shared.join(", ")
            )))));
        }
        Ok(())
    }

    /// An error naming a full refresh or rebuild that did not finish and planned some of
    /// `plan`'s pipelines: a run of them would take it for done (an incremental reader of a
    /// rebuilt table would read its rows as new, and its `resume` would then skip them).
    async fn refuse_over_unfinished_refresh(&self, plan: &Plan) -> Result<()> {
        let planned: Vec<&str> = plan.pipelines().map(|p| p.name).collect();
        let refreshes = self.ledger.refreshes().await?;
        let plan_of = |run: &RunRecord| -> Vec<String> {
            run.planned
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        for unfinished in refreshes.iter().filter(|r| r.status != "succeeded") {
            let rebuild = unfinished.refresh.as_deref() == Some("rebuild");
            // A pipeline that a later refresh of the same reach (a rebuild for a rebuild)
            // finished is done with, whatever the unfinished one left.
            // (Begun after the unfinished one's latest execution ended: a resume of it since
            // may have refreshed its tables again.)
            let ended = unfinished.finished_at.unwrap_or(unfinished.started_at);
            let mut redone: Vec<String> = Vec::new();
            for later in refreshes.iter().filter(|r| {
                r.started_at.0 > ended.0
                    && r.status == "succeeded"
                    && (!rebuild || r.refresh.as_deref() == Some("rebuild"))
            }) {
                if later.execution.unwrap_or(1) > 1 {
                    // Resumed: its latest execution planned only what it ran again; each of its
                    // executions begun after the unfinished one ended redid its own plan.
                    let executions = self.ledger.run(&later.run_id).await?;
                    redone.extend(
                        executions
                            .iter()
                            .filter(|r| r.kind == "run" && r.started_at.0 > ended.0)
                            .flat_map(plan_of),
                    );
                } else {
                    redone.extend(plan_of(later));
                }
            }
            let shared: Vec<&str> = unfinished
                .planned
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .filter(|name| planned.contains(name) && !redone.iter().any(|r| r == name))
                .collect();
            if shared.is_empty() {
                continue;
            }
            let kind = match unfinished.refresh.as_deref() {
                Some("rebuild") => "--rebuild",
                _ => "--full-refresh",
            };
            // Recorded as running by a process that cannot be checked from here (another host
            // or container), or began over a day ago: it may still run, and a resume beside it
            // would refresh its tables twice at once. (One whose process is gone died.)
            let liveness = unfinished.process_liveness();
            if unfinished.status == "running" && liveness != crate::ledger::Liveness::Gone {
                let by = unfinished
                    .run_process()
                    .map(|process| format!(" by {process}"))
                    .unwrap_or_default();
                if liveness == crate::ledger::Liveness::Alive {
                    // Begun over a day ago (past the live-run check's look back): a loop skips
                    // its ticks beside it as beside any live run.
                    return Err(Error::Other(Box::new(BesideALiveRun(format!(
                        "run `{}`, a {kind} of {}, is still running{by} (started {}): wait for \
                         it to end, or run with --force to go on without it",
                        unfinished.run_id,
                        shared.join(", "),
                        unfinished.started_at.to_rfc3339()
                    )))));
                }
                return Err(Error::msg(format!(
                    "run `{}`, a {kind} of {}, is recorded as running{by} (started {}), by a \
                     process that cannot be checked from here: if it still runs, wait for it to \
                     end; if its process died, resume it (`orchestrate resume {} --force`), or \
                     run with --force to go on without it",
                    unfinished.run_id,
                    shared.join(", "),
                    unfinished.started_at.to_rfc3339(),
                    unfinished.run_id
                )));
            }
            return Err(Error::msg(format!(
                "run `{}`, a {kind} of {}, did not finish ({}): resume it first (`orchestrate \
                 resume {}`), or run with --force to go on without it",
                unfinished.run_id,
                shared.join(", "),
                unfinished.status,
                unfinished.run_id
            )));
        }
        Ok(())
    }

    /// Appends the end rows of earlier runs that could not be recorded (kept for the next try
    /// when they still cannot be): before a run, a resume or a backfill starts, and when a loop
    /// ends.
    pub(crate) async fn record_unrecorded_ends(&self) {
        append_unrecorded_ends(&self.ledger, &self.unrecorded_ends).await;
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

/// The end rows of runs not in the ledger yet (see [`Orchestrator::record_unrecorded_ends`]).
#[derive(Clone, Default)]
struct UnrecordedEnds {
    /// The ends to append; held by whoever appends (a run's end, the queue), so that each end
    /// is appended once and a later run finds an earlier end appended or queued.
    queue: Arc<tokio::sync::Mutex<Vec<RunRecord>>>,
    /// Ends queued without waiting for `queue` (a `Drop` cannot wait): moved into it by
    /// whoever holds it next.
    waiting: Arc<std::sync::Mutex<Vec<RunRecord>>>,
}

impl UnrecordedEnds {
    /// The queue, held, with the ends queued without waiting moved into it.
    async fn lock(&self) -> tokio::sync::OwnedMutexGuard<Vec<RunRecord>> {
        let mut queue = Arc::clone(&self.queue).lock_owned().await;
        let waiting = std::mem::take(
            &mut *self
                .waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        queue.extend(waiting);
        queue
    }

    /// Queues `ends` at once, whoever holds the queue: the next to hold it takes them.
    fn queue_now(&self, ends: impl IntoIterator<Item = RunRecord>) {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(ends);
    }
}

/// Appends the run ends `unrecorded` holds, but those the ledger has already (a failed append
/// may have committed): [`Orchestrator::record_unrecorded_ends`].
async fn append_unrecorded_ends(ledger: &Ledger, unrecorded: &UnrecordedEnds) {
    let mut ends = unrecorded.lock().await;
    if ends.is_empty() {
        return;
    }
    // A failed append may have committed (the ledger could not tell): a run whose end row
    // is there has the rest of its rows too (one commit), which are not appended again.
    let runs: std::collections::BTreeSet<(String, Option<i32>)> = ends
        .iter()
        .filter(|r| r.kind == "run")
        .map(|r| (r.run_id.clone(), r.execution))
        .collect();
    for (run_id, execution) in runs {
        let Ok(recorded) = ledger.run(&run_id).await else {
            continue;
        };
        let ended = recorded
            .iter()
            .any(|r| r.kind == "run" && r.execution == execution && r.finished_at.is_some());
        if ended {
            ends.retain(|r| !(r.run_id == run_id && r.execution == execution));
        }
    }
    if ends.is_empty() {
        return;
    }
    match ledger.append(&ends).await {
        Ok(()) => {
            for end in ends.iter().filter(|r| r.kind == "run") {
                tracing::info!(run_id = %end.run_id, status = %end.status, "recorded the end of an earlier run, which could not be recorded when it ended");
            }
            ends.clear();
        }
        Err(error) => {
            tracing::error!(%error, "the ends of earlier runs still cannot be recorded in lakehouse.runs");
        }
    }
}

/// Records a run's end as cancelled when its execution is dropped before it ends.
struct EndOnDrop {
    ledger: Ledger,
    unrecorded: UnrecordedEnds,
    /// The run's start row; `None` once the execution ended (it records its own end).
    start: Option<RunRecord>,
    started: Instant,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let Some(start) = self.start.take() else {
            return;
        };
        let end = RunRecord {
            status: Status::Cancelled.as_str().to_owned(),
            finished_at: Some(Timestamp::now()),
            duration_ms: Some(self.started.elapsed().as_millis() as i64),
            error: Some("the run's execution was dropped by its caller before it ended".to_owned()),
            ..start
        };
        tracing::warn!(run_id = %end.run_id, "the run was dropped before it ended: recording it as cancelled");
        // Queued at once, so that this orchestrator's next run or resume records it first (if
        // the task below has not, which holds the queue while it appends).
        self.unrecorded.queue_now([end]);
        let (ledger, unrecorded) = (self.ledger.clone(), self.unrecorded.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                append_unrecorded_ends(&ledger, &unrecorded).await;
            });
        }
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

/// How a run reads its incremental inputs, when not from where they were last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refresh {
    /// [`RunConfig::full_refresh`].
    Full,
    /// [`RunConfig::rebuild`].
    Rebuild,
}

impl Refresh {
    /// The refresh `config` asks for, if any.
    fn of(config: &RunConfig) -> Option<Refresh> {
        if config.rebuild {
            Some(Refresh::Rebuild)
        } else if config.full_refresh {
            Some(Refresh::Full)
        } else {
            None
        }
    }

    /// Its name in `lakehouse.runs.refresh`.
    fn as_str(self) -> &'static str {
        match self {
            Refresh::Full => "full",
            Refresh::Rebuild => "rebuild",
        }
    }

    /// The refresh named `name` in `lakehouse.runs.refresh`.
    fn parse(name: &str) -> Option<Refresh> {
        [Refresh::Full, Refresh::Rebuild]
            .into_iter()
            .find(|refresh| refresh.as_str() == name)
    }
}

/// Refuses the settings of one run in a config for many (`what`: a loop, a backfill): one
/// logical time would be every run's (`why` the runs have their own), and a full refresh or
/// rebuild would read every input whole at each run (an append table getting its rows again).
fn refuse_for_many_runs(config: &RunConfig, what: &str, why: &str) -> Result<()> {
    let one_run = [
        (config.run_at.is_some(), "`run_at`", why),
        (
            config.full_refresh,
            "`full_refresh`",
            "each run would read its inputs whole again",
        ),
        (
            config.rebuild,
            "`rebuild`",
            "each run would rebuild its tables again",
        ),
    ];
    match one_run.iter().find(|(set, ..)| *set) {
        Some((_, field, reason)) => Err(Error::msg(format!(
            "{what} cannot take {field} (a setting of one run): {reason}; make that run on its \
             own, before it"
        ))),
        None => Ok(()),
    }
}
