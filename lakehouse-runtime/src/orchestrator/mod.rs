//! The orchestrator: plans a selection of the registry into groups and runs each pipeline over
//! the warehouse once its upstreams have ended, with bounded parallelism, retries, timeouts,
//! fail-fast and skip cascades, recording every attempt in the run ledger.

mod backfill;
mod cursor;
mod execute;
mod notify;
mod plan;
mod produce;
mod replay;
pub(crate) mod report;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use backfill::{BackfillReport, MAX_BACKFILL_RUNS, Redo, backfill_times};
pub use notify::{NotifyOn, Webhook, checked_url};
pub use plan::{Direction, Order, Plan, SelectionError, plan, plan_excluding, select};
pub use report::{PipelineResult, RunReport, Status};

use crate::ctx::{RunInfo, Settings};
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::ledger::{Ledger, Liveness, RunProcess, RunRecord};
use crate::store::{PendingReader, Warehouse};
use crate::table::Timestamp;

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
            force: false,
            rerun_succeeded: false,
            settings: Settings::new(),
            run_at: None,
            full_refresh: false,
            rebuild: false,
        }
    }
}

/// Runs in a row of a loop that could not start or be recorded before the loop gives up.
pub const MAX_FAILED_LOOP_RUNS: usize = 5;

/// What a loop ran ([`Orchestrator::run_loop_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopRuns {
    /// Runs made and recorded (whatever their pipelines' outcome).
    pub done: usize,
    /// Runs that could not start or be recorded.
    pub failed: usize,
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
        let plan = self.plan(config)?;
        let started = async {
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
        let (sequence, run_at) = self.told_if_not_started(started.await).await?;
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
        self.execute_run(run, &plan, config, &HashMap::new(), &HashMap::new(), first)
            .await
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
            let redone: Vec<String> = refreshes
                .iter()
                .filter(|r| {
                    r.started_at.0 > ended.0
                        && r.status == "succeeded"
                        && (!rebuild || r.refresh.as_deref() == Some("rebuild"))
                })
                .flat_map(plan_of)
                .collect();
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

    /// Re-runs the failed, skipped and cancelled pipelines of run `run_id` (and those it planned
    /// but never started, when its process died), with its `run_at` and sequence, so writes it
    /// had committed are not repeated. With `config.rerun_succeeded`, every pipeline of the run
    /// is re-executed (and its already committed writes are skipped). A full refresh or rebuild
    /// is resumed as one, whatever `config` says.
    ///
    /// A run recorded as running is resumed only when its process is known to be gone
    /// ([`RunRecord::process_liveness`]); with `config.force`, whatever its process.
    pub async fn resume(&self, run_id: &str, config: &RunConfig) -> Result<RunReport> {
        // This orchestrator's own ends not recorded yet: the run may be one of them.
        self.record_unrecorded_ends().await;
        // A unique prefix names the run too (`r000007`).
        let read = async {
            let resolved = self.ledger.resolve_run_id(run_id).await?;
            let run_id = resolved.unwrap_or_else(|| run_id.to_owned());
            let records = self.ledger.run(&run_id).await?;
            Ok::<_, Error>((run_id, records))
        };
        // A ledger that cannot be read starts no resume: a scheduled one is told of as a run is.
        let (run_id, records) = self.told_if_not_started(read.await).await?;
        let run_id = run_id.as_str();
        let Some(first) = records.first() else {
            let unknown = Error::msg(format!(
                "no run `{run_id}` in the ledger; see `orchestrate runs`"
            ));
            return self.told_if_not_started(Err(unknown)).await;
        };
        // Only attempts recorded: the run's start row was lost. Its process may still run, and
        // what it planned beyond what it attempted is unknown.
        if !records.iter().any(|r| r.kind == "run") {
            if !config.force {
                let unsure = Error::msg(format!(
                    "run `{run_id}` has attempts in the ledger but no start row (it could not \
                     be recorded): whether its process still runs, which pipelines it planned \
                     beyond those it attempted, whether it was a full refresh or rebuild, and \
                     its settings, are unknown; if it ended, resume it with --force, giving its \
                     `--set`/`--live` again (the pipelines it attempted are resumed, as an \
                     ordinary run; run the others with `orchestrate run --select`, and a \
                     refresh again with `--full-refresh`/`--rebuild`)"
                ));
                return self.told_if_not_started(Err(unsure)).await;
            }
            tracing::warn!(
                run_id,
                "the run's start row is missing: only the pipelines it attempted are resumed, as \
                 an ordinary run, with the settings given now"
            );
        }
        // The latest execution of the run has no end: it is still running, or its process died.
        // (Latest by number, then by time for rows recorded before executions were numbered.)
        let runs = records.iter().filter(|r| r.kind == "run");
        let order = |r: &RunRecord| (r.execution.unwrap_or(0), r.started_at.0);
        let latest = runs.clone().map(order).max();
        let mut unfinished = runs
            .filter(|r| Some(order(r)) == latest)
            .collect::<Vec<_>>();
        // This execution is the next after the highest any row of the run names (a start row
        // may have been lost); rows recorded before executions were numbered count one per
        // start (no end time).
        let starts = records
            .iter()
            .filter(|r| r.kind == "run" && r.finished_at.is_none())
            .count();
        let numbered = records.iter().filter_map(|r| r.execution).max();
        let execution = i32::try_from(starts)
            .unwrap_or(i32::MAX)
            .max(numbered.unwrap_or(0))
            .saturating_add(1);
        if unfinished.iter().any(|r| r.finished_at.is_some()) {
            unfinished.clear();
        }
        // Attempts of a later execution than any run row names: that execution's start row
        // was lost (and its end not recorded yet). It may still be running.
        let recorded_execution = latest.map_or(0, |(execution, _)| execution);
        if let Some(later) = numbered.filter(|n| *n > recorded_execution)
            && latest.is_some()
            && !config.force
        {
            let unsure = Error::msg(format!(
                "run `{run_id}` has attempts of its execution {later} in the ledger but no start \
                 or end row of it (they could not be recorded): whether that execution still \
                 runs is unknown; if it ended, resume with --force (its committed writes are not \
                 repeated)"
            ));
            return self.told_if_not_started(Err(unsure)).await;
        }
        if let Some(start) = unfinished.first()
            && !config.force
        {
            let process = start.run_process();
            match start.process_liveness() {
                Liveness::Gone => tracing::info!(
                    run_id,
                    "the run's process ({}) is gone; resuming it",
                    process.map(|p| p.to_string()).unwrap_or_default()
                ),
                Liveness::Alive => {
                    let running = Error::msg(format!(
                        "run `{run_id}` is still running ({}); wait for it to end or stop it \
                         (if that pid is no longer the orchestrator, resume with --force)",
                        process.map(|p| p.to_string()).unwrap_or_default()
                    ));
                    return self.told_if_not_started(Err(running)).await;
                }
                Liveness::Unknown => {
                    let by = process.map(|p| format!(" by {p}")).unwrap_or_default();
                    let unsure = Error::msg(format!(
                        "run `{run_id}` is recorded as running{by}: it is still running, or its \
                         process died; if it died, resume it with --force (its committed writes \
                         are not repeated)"
                    ));
                    return self.told_if_not_started(Err(unsure)).await;
                }
            }
        }
        let run = RunInfo {
            run_id: run_id.to_owned(),
            sequence: first.sequence,
            run_at: first.run_at,
        };
        let mut last: HashMap<String, Status> = HashMap::new();
        // Attempts go on numbering from the run's last: the ledger's rows stay told apart.
        let mut attempts: HashMap<String, u32> = HashMap::new();
        let mut unregistered: BTreeMap<String, Status> = BTreeMap::new();
        let mut latest_order: HashMap<String, (i32, i32, i64)> = HashMap::new();
        for record in records.iter().filter(|r| r.kind == "pipeline") {
            if let (Some(pipeline), Some(status)) =
                (&record.pipeline, Status::parse(&record.status))
            {
                // A pipeline removed or renamed since cannot run again: the others still can.
                if self.registry.get(pipeline).is_none() {
                    tracing::warn!(
                        run_id,
                        pipeline = %pipeline,
                        "the run's pipeline is no longer registered (removed or renamed): not resumed"
                    );
                    unregistered.insert(pipeline.clone(), status);
                    continue;
                }
                // Its latest row by execution and attempt, not by the clock (which a host may
                // step back between two attempts).
                let order = written_order(record);
                if latest_order
                    .get(pipeline.as_str())
                    .is_none_or(|kept| *kept <= order)
                {
                    latest_order.insert(pipeline.clone(), order);
                    last.insert(pipeline.clone(), status);
                }
                let attempt = record
                    .attempt
                    .and_then(|a| u32::try_from(a).ok())
                    .unwrap_or(0);
                let most = attempts.entry(pipeline.clone()).or_default();
                *most = (*most).max(attempt);
            }
        }
        // Planned pipelines with no record never started: the run's process died first.
        let planned = records
            .iter()
            .filter(|r| r.kind == "run")
            .find_map(|r| r.planned.as_deref())
            .unwrap_or_default();
        for name in planned.split_whitespace() {
            if self.registry.get(name).is_some() {
                last.entry(name.to_owned()).or_insert(Status::Cancelled);
            } else {
                // Removed since, and it never ended in the run: no success either.
                unregistered
                    .entry(name.to_owned())
                    .or_insert(Status::Cancelled);
            }
        }
        let mut targets: Vec<String> = last
            .iter()
            .filter(|(_, status)| config.rerun_succeeded || **status != Status::Succeeded)
            .map(|(name, _)| name.clone())
            .collect();
        targets.sort();
        if targets.is_empty() {
            let gone: Vec<&str> = unregistered
                .iter()
                .filter(|(_, status)| **status != Status::Succeeded)
                .map(|(name, _)| name.as_str())
                .collect();
            // Every pipeline had ended, but not the run: its end row was lost (or its process
            // died after its last pipeline). Recorded now: the run stopped being listed as died
            // and, if it was a refresh, from holding back its pipelines' ordinary runs.
            if let Some(start) = unfinished.first() {
                let status = if gone.is_empty() {
                    Status::Succeeded
                } else {
                    Status::Failed
                };
                let (written, deleted) = rows_of_succeeded(&records, &[]);
                let end = RunRecord {
                    status: status.as_str().to_owned(),
                    finished_at: Some(Timestamp::now()),
                    rows_written: Some(written as i64),
                    rows_deleted: Some(deleted as i64),
                    ..(*start).clone()
                };
                self.told_if_not_started(self.ledger.append(&[end]).await)
                    .await?;
                tracing::info!(
                    run_id,
                    status = status.as_str(),
                    "every pipeline of the run had ended; its end, which the ledger lacked, is recorded"
                );
                if gone.is_empty() {
                    return Ok(RunReport {
                        run_id: run_id.to_owned(),
                        sequence: first.sequence,
                        run_at: first.run_at,
                        results: Vec::new(),
                        duration: std::time::Duration::ZERO,
                        unrecorded: None,
                        not_resumed: Vec::new(),
                    });
                }
            }
            let why = if gone.is_empty() {
                "every pipeline succeeded (`--rerun-succeeded` re-executes them)".to_owned()
            } else {
                format!(
                    "the pipelines that did not succeed are no longer registered ({})",
                    gone.join(", ")
                )
            };
            // A scheduled resume is told of this as of any other refusal.
            let nothing = Error::msg(format!("run `{run_id}` has nothing to resume: {why}"));
            return self.told_if_not_started(Err(nothing)).await;
        }
        let mut resumed = config.clone();
        resumed.targets = targets;
        resumed.exclude = Vec::new();
        resumed.direction = Direction::None;
        // The sources are read as the run's latest execution read them (`--live`, `--set`, a
        // resume's own `--set` included), unless given again.
        let recorded = records
            .iter()
            .rev()
            .filter(|r| r.kind == "run")
            .find_map(|r| r.settings.as_deref());
        resumed.settings = config.settings.over_recorded(recorded, run_id);
        // A full refresh or rebuild that failed midway goes on as one.
        let refresh = records
            .iter()
            .filter(|r| r.kind == "run")
            .find_map(|r| r.refresh.as_deref());
        match refresh.map(Refresh::parse) {
            Some(Some(Refresh::Full)) => resumed.full_refresh = true,
            Some(Some(Refresh::Rebuild)) => {
                resumed.full_refresh = true;
                resumed.rebuild = true;
            }
            Some(None) => {
                let unknown = Error::msg(format!(
                    "run `{run_id}` was recorded with refresh `{}`, which this version does not \
                     know; run it again instead",
                    refresh.unwrap_or_default()
                ));
                return self.told_if_not_started(Err(unknown)).await;
            }
            None => {}
        }
        if resumed.full_refresh {
            tracing::info!(rebuild = resumed.rebuild, "resuming a full refresh");
        }
        let plan = self.told_if_not_started(self.plan(&resumed)).await?;
        // The run row's totals are the run's, not this execution's alone.
        let earlier_rows = rows_of_succeeded(&records, &resumed.targets);
        let not_resumed = unregistered
            .into_iter()
            .filter(|(_, status)| *status != Status::Succeeded)
            .map(|(name, _)| name)
            .collect();
        let execution = Execution {
            number: execution,
            earlier_rows,
            not_resumed,
        };
        self.execute_run(run, &plan, &resumed, &last, &attempts, execution)
            .await
    }

    /// Runs the selection every `every`, each time as a new run with a fresh `run_at`, until
    /// `duration` has passed or `iterations` runs are done (whichever comes first), or shutdown.
    /// Runs never overlap: a run longer than `every` skips the starts it overran, the next one
    /// is the schedule's next (every `every` from the loop's start). Keeps every report (for
    /// tests and short loops; a long loop wants [`Orchestrator::run_loop_with`]), and is an error
    /// if any run could not start or be recorded.
    pub async fn run_loop(
        &self,
        config: &RunConfig,
        every: Duration,
        duration: Option<Duration>,
        iterations: Option<usize>,
    ) -> Result<Vec<RunReport>> {
        let mut reports = Vec::new();
        let runs = self
            .run_loop_with(config, every, duration, iterations, |report| {
                reports.push(report.clone())
            })
            .await?;
        if runs.failed > 0 {
            return Err(Error::msg(format!(
                "{} run(s) of the loop could not start or be recorded",
                runs.failed
            )));
        }
        Ok(reports)
    }

    /// [`Orchestrator::run_loop`], calling `on_report` with each run's report as soon as the run
    /// ends (to print it, say) instead of keeping them all: a loop can run for weeks. Returns
    /// how many runs were made and how many could not start or be recorded.
    ///
    /// A run that cannot start or be recorded (the ledger unreachable for a moment, say) is
    /// logged and the loop goes on at the next tick; [`MAX_FAILED_LOOP_RUNS`] such runs in a
    /// row end it with the last error.
    pub async fn run_loop_with(
        &self,
        config: &RunConfig,
        every: Duration,
        duration: Option<Duration>,
        iterations: Option<usize>,
        mut on_report: impl FnMut(&RunReport),
    ) -> Result<LoopRuns> {
        // A selection that cannot be planned will not plan later either.
        self.plan(config)?;
        refuse_for_many_runs(config, "a loop", "each run is at its own time")?;
        if every.is_zero() {
            return Err(Error::msg(
                "a loop's interval must be longer than zero (e.g. `--every 1m`)",
            ));
        }
        if iterations == Some(0) || duration.is_some_and(|d| d.is_zero()) {
            return Err(Error::msg(
                "a loop of no runs: give at least one iteration (`--iterations 1`) and a \
                 duration longer than zero",
            ));
        }
        let mut runs = LoopRuns::default();
        let mut failed_in_a_row = 0;
        let schedule_start = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval_at(schedule_start, every);
        let mut shutdown = self.shutdown.clone();
        loop {
            next_tick(&mut ticker, &mut shutdown).await;
            // An abort stops a loop too, should no shutdown have come with it.
            if *shutdown.borrow() || *self.abort.borrow() {
                break;
            }
            let this_start = schedule_start.elapsed();
            match self.run(config).await {
                Ok(report)
                    if report.unrecorded.is_some()
                        && failed_in_a_row + 1 < MAX_FAILED_LOOP_RUNS =>
                {
                    runs.failed += 1;
                    failed_in_a_row += 1;
                    tracing::error!(run_id = %report.run_id, failed_in_a_row, "the run could not be recorded; trying again at the next tick");
                    on_report(&report);
                }
                Ok(report) if report.unrecorded.is_some() => {
                    on_report(&report);
                    let why = report.unrecorded.clone().unwrap_or_default();
                    self.record_unrecorded_ends().await;
                    return Err(Error::msg(format!(
                        "{MAX_FAILED_LOOP_RUNS} runs in a row could not be recorded in \
                         lakehouse.runs; the last: {why}"
                    )));
                }
                Ok(report) => {
                    runs.done += 1;
                    failed_in_a_row = 0;
                    tracing::info!(run_id = %report.run_id, status = %report.status(), "loop iteration finished");
                    on_report(&report);
                }
                Err(error) if failed_in_a_row + 1 < MAX_FAILED_LOOP_RUNS => {
                    failed_in_a_row += 1;
                    runs.failed += 1;
                    tracing::error!(%error, failed_in_a_row, "the run could not start or be recorded; trying again at the next tick");
                }
                Err(error) => {
                    self.record_unrecorded_ends().await;
                    return Err(error);
                }
            }
            // The next start on the schedule after now: a run longer than the interval skips
            // the starts it overran (tokio's own catch-up would start one at once).
            // (Past this run's own start, should it have taken no time.)
            let since = schedule_start
                .elapsed()
                .max(this_start.saturating_add(Duration::from_nanos(1)));
            let next = next_start(since, every);
            if let Some(at) = next.and_then(|offset| schedule_start.checked_add(offset)) {
                ticker.reset_at(at);
            }
            // No run starts `duration` or later after the first.
            let done = iterations.is_some_and(|n| runs.done + runs.failed >= n)
                || duration.is_some_and(|d| next.is_none_or(|offset| offset >= d));
            if done || *shutdown.borrow() || *self.abort.borrow() {
                break;
            }
        }
        // The last run's end, if the ledger could not take it then.
        self.record_unrecorded_ends().await;
        Ok(runs)
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

/// When a loop started `since` ago, every `every`, starts next (from its start): the first
/// start on its schedule from now on, past the first.
fn next_start(since: Duration, every: Duration) -> Option<Duration> {
    let every_nanos = every.as_nanos().max(1);
    let periods = since.as_nanos().div_ceil(every_nanos).max(1);
    every.checked_mul(u32::try_from(periods).ok()?)
}

/// Waits for the loop's next tick, or for a shutdown request. A shutdown sender dropped (a
/// library caller's) can no longer request one: only the tick is waited for then (its closed
/// channel would end every wait at once, and the loop would run back to back).
async fn next_tick(
    ticker: &mut tokio::time::Interval,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    let requested = async {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = ticker.tick() => {}
        () = requested => {}
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_loop_keeps_to_its_schedule_after_a_long_run() {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let every = minutes(10);
        // A short run: the next start; a long one skips the starts it overran.
        assert_eq!(super::next_start(minutes(2), every), Some(minutes(10)));
        assert_eq!(super::next_start(minutes(25), every), Some(minutes(30)));
        assert_eq!(super::next_start(minutes(30), every), Some(minutes(30)));
        assert_eq!(super::next_start(Duration::ZERO, every), Some(minutes(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_waits_for_its_tick_when_no_shutdown_can_come() {
        let mut ticker = tokio::time::interval(Duration::from_secs(3600));
        let (stop, mut shutdown) = tokio::sync::watch::channel(false);
        drop(stop);
        // The first tick is at once; the next an hour later, not at once (time is virtual).
        super::next_tick(&mut ticker, &mut shutdown).await;
        let next = tokio::time::timeout(
            Duration::from_secs(60),
            super::next_tick(&mut ticker, &mut shutdown),
        )
        .await;
        assert!(next.is_err(), "the loop ran again at once");
        // A live sender's request ends the wait.
        let (stop, mut shutdown) = tokio::sync::watch::channel(false);
        stop.send(true).expect("sent");
        tokio::time::timeout(
            Duration::from_secs(60),
            super::next_tick(&mut ticker, &mut shutdown),
        )
        .await
        .expect("a shutdown request ends the wait");
    }
}
