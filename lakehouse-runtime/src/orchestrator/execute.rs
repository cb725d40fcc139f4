//! Executing a plan: groups in order, pipelines of a group in parallel (bounded), each attempt
//! isolated in its own task so an error, a panic or a timeout fails only that pipeline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt as _;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::replay::{
    INPUT_TABLE_IDS_KEY, INPUT_VERSIONS_KEY, QUALITY_FINDINGS_KEY, RUN_ID_KEY, already_written,
    collision,
};
use super::report::{PipelineResult, Status};
use super::{Orchestrator, Plan, RunConfig, SkipPolicy};
use crate::ctx::{Ctx, FileHistory, RunInfo};
use crate::error::{Error, Result};
use crate::frame::Inputs;
use crate::graph::PipelineDescriptor;
use crate::ledger::{
    INGESTED_FILES_KEY, IngestedFile, QualityIssue, RejectRecord, RunRecord, TableMetric,
};
use crate::store::{Deletions, WriteOptions, WriteOutcome};
use crate::table::Timestamp;

/// What a successful attempt produced.
pub(super) struct Written {
    pub(super) outcome: WriteOutcome,
    pub(super) input_versions: BTreeMap<String, Option<u64>>,
    /// The Delta table id of each input read incrementally.
    pub(super) input_table_ids: BTreeMap<String, String>,
    /// The output table's figures after a committed write, recorded with the attempt.
    pub(super) metric: Option<TableMetric>,
    /// Whether the write left an `auto_compact` table with enough small files to compact.
    pub(super) fragmented: bool,
    /// A replayed write of this run's: the quality findings its commit lists, which the
    /// attempt that made it may not have recorded (it died after the commit).
    pub(super) replayed_findings: Vec<QualityIssue>,
    /// Not written, because a later run wrote the table since: what says so (recorded as the
    /// attempt's note, and not counted as a success at this run's logical time).
    pub(super) superseded: Option<String>,
}

pub(super) async fn execute(
    orchestrator: &Orchestrator,
    run: Arc<RunInfo>,
    plan: &Plan,
    config: &RunConfig,
    previous: &HashMap<String, Status>,
) -> Vec<PipelineResult> {
    let planned: Vec<&'static PipelineDescriptor> = plan.pipelines().collect();
    let mut results: HashMap<&'static str, PipelineResult> = HashMap::new();
    let semaphore = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut stopped: Option<String> = None;
    // Fail-fast's signal to the running pipelines: each stops unless its write committed, which
    // it records first (aborting it there would lose its rejects, metrics and attempt record).
    let (stop_sender, stop) = watch::channel(None::<Arc<str>>);
    // A fresh run's sequence was just allocated above every recorded one: its first attempts
    // need not look for their own commit (the write still checks it). Resumed runs look.
    let fresh = previous.is_empty();

    for group in &plan.groups {
        let mut tasks: JoinSet<PipelineResult> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, &'static PipelineDescriptor> = HashMap::new();
        for &pipeline in group {
            if stopped.is_none() && *orchestrator.shutdown.borrow() {
                stopped = Some("the run was interrupted".to_owned());
            }
            // A pipeline not run is told as it is decided, in plan order: a live display
            // shows it ended before the later groups start.
            let decided = |result: PipelineResult, results: &mut HashMap<_, _>| {
                orchestrator.emit(super::Event::Finished(result.clone()));
                results.insert(pipeline.name, result);
            };
            if let Some(reason) = &stopped {
                let cancelled = not_run(pipeline, Status::Cancelled, reason.clone());
                decided(cancelled, &mut results);
                continue;
            }
            if !config.force && previous.get(pipeline.name) == Some(&Status::Succeeded) {
                let mut done = not_run(pipeline, Status::Succeeded, String::new());
                done.error = None;
                done.replayed = true;
                decided(done, &mut results);
                continue;
            }
            if let Some(reason) = skip_reason(pipeline, plan, &results, config) {
                tracing::warn!(pipeline = pipeline.name, "{reason}");
                decided(not_run(pipeline, Status::Skipped, reason), &mut results);
                continue;
            }
            let orchestrator = orchestrator.clone();
            let run = run.clone();
            let config = config.clone();
            let semaphore = semaphore.clone();
            let stop = stop.clone();
            let handle = tasks.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                // A pipeline that waited for its turn does not start after an interrupt.
                if *orchestrator.shutdown.borrow() {
                    return not_run(
                        pipeline,
                        Status::Cancelled,
                        "the run was interrupted".to_owned(),
                    );
                }
                let stopped_by = stop.borrow().clone();
                if let Some(reason) = stopped_by {
                    return not_run(pipeline, Status::Cancelled, reason.to_string());
                }
                run_with_retries(&orchestrator, pipeline, run, &config, fresh, stop).await
            });
            running.insert(handle.id(), pipeline);
        }
        while let Some(joined) = tasks.join_next_with_id().await {
            let result = match joined {
                Ok((id, result)) => {
                    running.remove(&id);
                    result
                }
                Err(error) => {
                    let Some(pipeline) = running.remove(&error.id()) else {
                        continue;
                    };
                    if error.is_cancelled() {
                        not_run(
                            pipeline,
                            Status::Cancelled,
                            stopped.clone().unwrap_or_default(),
                        )
                    } else {
                        not_run(
                            pipeline,
                            Status::Failed,
                            format!("the orchestrator task failed: {error}"),
                        )
                    }
                }
            };
            if result.status == Status::Failed && config.fail_fast && stopped.is_none() {
                let reason = format!("cancelled by fail-fast after `{}` failed", result.pipeline);
                tracing::error!(pipeline = result.pipeline, "fail-fast: cancelling the run");
                stop_sender.send_replace(Some(reason.as_str().into()));
                stopped = Some(reason);
            }
            orchestrator.emit(super::Event::Finished(result.clone()));
            results.insert(result.pipeline, result);
        }
    }
    planned
        .into_iter()
        .map(|p| {
            results
                .remove(p.name)
                .unwrap_or_else(|| not_run(p, Status::Pending, String::new()))
        })
        .collect()
}

/// Why `pipeline` must be skipped, if it must. Only upstreams in the plan count.
fn skip_reason(
    pipeline: &'static PipelineDescriptor,
    plan: &Plan,
    results: &HashMap<&'static str, PipelineResult>,
    config: &RunConfig,
) -> Option<String> {
    if !config.skip_downstream_on_failure {
        return None;
    }
    let upstreams: Vec<(&str, Status)> = pipeline
        .depends_on
        .iter()
        .filter(|d| plan.contains(d))
        .filter_map(|d| results.get(d).map(|r| (*d, r.status)))
        .collect();
    let bad: Vec<&str> = upstreams
        .iter()
        .filter(|(_, s)| matches!(s, Status::Failed | Status::Skipped | Status::Cancelled))
        .map(|(d, _)| *d)
        .collect();
    let skip = match config.skip_policy {
        SkipPolicy::All => !upstreams.is_empty() && bad.len() == upstreams.len(),
        SkipPolicy::Any => !bad.is_empty(),
    };
    skip.then(|| {
        format!(
            "skipped: upstream {} did not succeed",
            bad.iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn not_run(
    pipeline: &'static PipelineDescriptor,
    status: Status,
    reason: String,
) -> PipelineResult {
    PipelineResult {
        pipeline: pipeline.name,
        table: pipeline.output.qualified_name(),
        status,
        attempts: 0,
        rows_written: None,
        version: None,
        replayed: false,
        duration: Duration::ZERO,
        error: (!reason.is_empty()).then_some(reason),
    }
}

async fn run_with_retries(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: Arc<RunInfo>,
    config: &RunConfig,
    fresh: bool,
    stop: watch::Receiver<Option<Arc<str>>>,
) -> PipelineResult {
    let span = tracing::info_span!("pipeline", name = pipeline.name, run_id = %run.run_id);
    async move {
        let over = config.overrides.get(pipeline.name).copied().unwrap_or_default();
        let retries = over.retries.or(pipeline.retries).unwrap_or(config.default_retries);
        let timeout = over
            .timeout
            .or(pipeline.timeout_ms.map(Duration::from_millis))
            .or(config.default_timeout);
        let started = Instant::now();
        let mut last_error = String::new();
        let mut attempts = 0;
        // Why the pipeline was cancelled (an interrupt or fail-fast), if it was.
        let mut cancelled: Option<String> = None;
        // Whether the pipeline was cancelled between a failed attempt and its retry.
        let mut retry_cancelled = false;
        for attempt in 1..=retries + 1 {
            attempts = attempt;
            tracing::info!(attempt, "started");
            orchestrator.emit(super::Event::Started { pipeline: pipeline.name, attempt });
            let attempt_started = Timestamp::now();
            let clock = Instant::now();
            let kind = AttemptKind {
                number: attempt,
                fresh,
                full_refresh: config.full_refresh || config.rebuild,
                rebuild: config.rebuild,
            };
            let outcome = attempt_once(
                orchestrator,
                pipeline,
                run.clone(),
                config,
                timeout,
                kind,
                stop.clone(),
            )
            .await;
            let record = attempt_record(pipeline, &run, attempt, attempt_started, clock.elapsed(), &outcome);
            let metric = outcome.as_ref().ok().and_then(|written| written.metric.as_ref());
            let metric = metric.map(std::slice::from_ref).unwrap_or_default();
            // Two tables, two commits: made together.
            let (recorded, measured) = tokio::join!(
                orchestrator.ledger.append(std::slice::from_ref(&record)),
                orchestrator.ledger.append(metric),
            );
            if let Err(error) = recorded {
                tracing::error!(%error, "could not record the attempt in lakehouse.runs");
            }
            if let Err(error) = measured {
                tracing::error!(%error, "could not record the table's metrics in lakehouse.table_metrics");
            }
            match outcome {
                Ok(written) => {
                    if written.fragmented {
                        compact(orchestrator, pipeline).await;
                    }
                    let superseded = written.superseded;
                    let outcome = written.outcome;
                    tracing::info!(
                        rows = outcome.rows_inserted + outcome.rows_updated,
                        version = outcome.version,
                        replayed = !outcome.committed,
                        "succeeded"
                    );
                    return PipelineResult {
                        pipeline: pipeline.name,
                        table: outcome.table.clone(),
                        status: Status::Succeeded,
                        attempts: attempt,
                        rows_written: Some(outcome.rows_inserted + outcome.rows_updated),
                        version: outcome.version,
                        replayed: !outcome.committed,
                        duration: started.elapsed(),
                        error: superseded,
                    };
                }
                Err(error) => {
                    last_error = error.to_string();
                    if is_stopped(&error) {
                        tracing::error!(attempt, error = %last_error, "cancelled");
                        cancelled = Some(last_error.clone());
                        break;
                    }
                    if !error.is_retryable() {
                        tracing::error!(attempt, error = %last_error, "failed; not retried (another attempt would fail the same way)");
                        break;
                    }
                    let why_not_again = || {
                        let stopped_by = stop.borrow().clone();
                        match stopped_by {
                            Some(reason) => Some(reason.to_string()),
                            None => (*orchestrator.shutdown.borrow())
                                .then(|| "the run was interrupted".to_owned()),
                        }
                    };
                    if attempt <= retries && let Some(why) = why_not_again() {
                        tracing::error!(attempt, error = %last_error, "failed; not retried: {why}");
                        cancelled = Some(format!("{why} before a retry; attempt {attempt} failed: {last_error}"));
                        retry_cancelled = true;
                        break;
                    } else if attempt <= retries {
                        let delay = backoff(config, attempt);
                        tracing::warn!(attempt, error = %last_error, retry_in = ?delay, "failed; retrying");
                        // An interrupt or fail-fast ends the wait, and no attempt follows.
                        let mut shutdown = orchestrator.shutdown.clone();
                        let mut stop = stop.clone();
                        let cut_short = async move {
                            let interrupted = async { shutdown.wait_for(|stop| *stop).await.is_ok() };
                            let stopped = async { stop.wait_for(|reason| reason.is_some()).await.is_ok() };
                            // No sender left: no such signal can come.
                            tokio::select! {
                                true = interrupted => {}
                                true = stopped => {}
                                else => std::future::pending::<()>().await,
                            }
                        };
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = cut_short => {
                                let why = why_not_again().unwrap_or_default();
                                tracing::error!(attempt, "not retried: {why}");
                                cancelled = Some(format!("{why} before a retry; attempt {attempt} failed: {last_error}"));
                                retry_cancelled = true;
                                break;
                            }
                        }
                    } else {
                        tracing::error!(attempt, error = %last_error, "failed");
                    }
                }
            }
        }
        // An attempt or a retry an interrupt or fail-fast stopped: cancelled with the run, not
        // failed for good.
        let (status, error) = match cancelled {
            Some(why) => (Status::Cancelled, why),
            None => (Status::Failed, last_error),
        };
        // A retry that never started: its last attempt is recorded as failed, and the pipeline
        // ends cancelled; a row says so (attempt NULL), as the report does.
        if retry_cancelled {
            let finished = Timestamp::now();
            let record = RunRecord {
                finished_at: Some(finished),
                error: Some(error.clone()),
                ..RunRecord::of_pipeline(
                    &run,
                    pipeline.name,
                    pipeline.output.qualified_name(),
                    Status::Cancelled,
                    finished,
                )
            };
            if let Err(error) = orchestrator.ledger.append(std::slice::from_ref(&record)).await {
                tracing::error!(%error, "could not record the cancelled retry in lakehouse.runs");
            }
        }
        PipelineResult {
            pipeline: pipeline.name,
            table: pipeline.output.qualified_name(),
            status,
            attempts,
            rows_written: None,
            version: None,
            replayed: false,
            duration: started.elapsed(),
            error: Some(error),
        }
    }
    .instrument(span)
    .await
}

/// Exponential backoff with full jitter: a random delay in `[0, min(cap, base·2^(attempt-1))]`.
fn backoff(config: &RunConfig, attempt: u32) -> Duration {
    let exponential = config
        .retry_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(config.max_retry_delay);
    let nanos = exponential.as_nanos().min(u128::from(u64::MAX)) as u64;
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// One attempt in its own task: a panic or a timeout becomes an error of this pipeline, and
/// fail-fast's `stop` a [`Stopped`] error.
async fn attempt_once(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: Arc<RunInfo>,
    config: &RunConfig,
    timeout: Option<Duration>,
    kind: AttemptKind,
    mut stop: watch::Receiver<Option<Arc<str>>>,
) -> Result<Written> {
    let warehouse = orchestrator.warehouse.clone();
    let sequence = run.sequence;
    let orchestrator = orchestrator.clone();
    let settings = Arc::new(config.settings.clone());
    let committed = Arc::new(AtomicBool::new(false));
    let has_committed = committed.clone();
    let mut task =
        tokio::spawn(
            async move {
                produce_and_write(&orchestrator, pipeline, run, settings, kind, &committed).await
            }
            .in_current_span(),
        );
    // Dropping a task's handle detaches the task: when this attempt times out, or is itself
    // cancelled (shutdown), the pipeline must stop too rather than go on and commit.
    let _abort = AbortOnDrop(task.abort_handle());
    let limit = async move {
        match timeout {
            Some(limit) => {
                tokio::time::sleep(limit).await;
                limit
            }
            None => std::future::pending().await,
        }
    };
    let stopped = async move {
        let reason = stop
            .wait_for(|reason| reason.is_some())
            .await
            .map(|reason| reason.clone().unwrap_or_default());
        match reason {
            Ok(reason) => reason,
            // No sender left: fail-fast can no longer stop the run.
            Err(_) => std::future::pending().await,
        }
    };
    let cut = tokio::select! {
        joined = &mut task => return joined_result(joined),
        limit = limit => Cut::TimeLimit(limit),
        reason = stopped => Cut::Stopped(reason),
    };
    // The flag is set once the write has returned, and its commit may have landed before (the
    // write then makes a checkpoint, its descriptions' commit): the table tells.
    let committed = has_committed.load(Ordering::Acquire)
        || warehouse
            .transaction_version(pipeline.output, pipeline.name)
            .await
            .ok()
            .flatten()
            .is_some_and(|version| version >= sequence);
    if committed {
        // The limit is the pipeline's, up to its commit, and fail-fast stops what has not
        // committed: the bookkeeping after a commit (quality findings, rejects, statistics)
        // finishes, or a committed write would be reported failed and its rejects lost. As long
        // again as the limit (at least a minute) to record it: a hung ledger must not hang the
        // run.
        let grace = timeout.unwrap_or_default().max(Duration::from_secs(60));
        tracing::warn!(
            grace = %humantime::format_duration(grace),
            "{} after the commit; recording what it wrote",
            cut.describe()
        );
        return match tokio::time::timeout(grace, &mut task).await {
            Ok(joined) => joined_result(joined),
            Err(_) => {
                task.abort();
                let _ = task.await;
                Err(Error::msg(format!(
                    "timed out while recording a committed write ({}, then {} more): its rows \
                     are in the table, and a retry or `resume` finds the commit",
                    cut.describe(),
                    humantime::format_duration(grace)
                )))
            }
        };
    }
    // Stopped before the retry starts (a blocking file write it began may still finish; the
    // retry, or the next run, then finds its commit as this run's).
    task.abort();
    match task.await {
        // It ended before the abort reached it: its own outcome.
        Ok(result) => return result,
        Err(error) if error.is_panic() => return joined_result(Err(error)),
        Err(_) => {}
    }
    Err(match cut {
        Cut::TimeLimit(limit) => Error::msg(format!(
            "timed out after {} (set `timeout` in #[pipeline] or --timeout)",
            humantime::format_duration(limit)
        )),
        Cut::Stopped(reason) => Error::Other(Box::new(Stopped(reason))),
    })
}

/// What cut an attempt short.
enum Cut {
    /// Its time limit passed.
    TimeLimit(Duration),
    /// Fail-fast stopped the run, for this reason.
    Stopped(Arc<str>),
}

impl Cut {
    fn describe(&self) -> String {
        match self {
            Cut::TimeLimit(limit) => {
                format!(
                    "the time limit of {} passed",
                    humantime::format_duration(*limit)
                )
            }
            Cut::Stopped(reason) => reason.to_string(),
        }
    }
}

/// An attempt stopped by fail-fast before its write committed: the pipeline is cancelled, not
/// failed.
#[derive(Debug)]
struct Stopped(Arc<str>);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; stopped before its write committed", self.0)
    }
}

impl std::error::Error for Stopped {}

/// Whether `error` is an attempt's [`Stopped`].
fn is_stopped(error: &Error) -> bool {
    matches!(error, Error::Other(inner) if inner.is::<Stopped>())
}

/// The result of an attempt's joined task: a panic becomes an error.
fn joined_result(
    joined: std::result::Result<Result<Written>, tokio::task::JoinError>,
) -> Result<Written> {
    match joined {
        Ok(result) => result,
        Err(error) if error.is_panic() => {
            let payload = error.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown payload".to_owned());
            Err(Error::msg(format!("panicked: {message}")))
        }
        Err(error) => Err(Error::msg(format!(
            "the pipeline task was cancelled: {error}"
        ))),
    }
}

/// Which attempt, in which kind of run.
#[derive(Clone, Copy, Debug)]
struct AttemptKind {
    /// From 1.
    number: u32,
    /// A new run (its sequence above every recorded one), not a resumed one.
    fresh: bool,
    /// Incremental inputs are read whole ([`super::RunConfig::full_refresh`]).
    full_refresh: bool,
    /// An append output of incremental inputs is replaced ([`super::RunConfig::rebuild`]).
    rebuild: bool,
}

impl AttemptKind {
    /// Whether the attempt looks for its run's commit before producing: a resumed run's, or a
    /// retry (the failed attempt may have committed before failing).
    fn looks_first(self) -> bool {
        !self.fresh || self.number > 1
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the inputs, runs the pipeline, writes its output with the run's transaction, records
/// its rejects, and measures the table (recorded with the attempt).
async fn produce_and_write(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: Arc<RunInfo>,
    settings: Arc<crate::ctx::Settings>,
    kind: AttemptKind,
    committed: &AtomicBool,
) -> Result<Written> {
    let warehouse = &orchestrator.warehouse;
    let fresh = kind.fresh;
    // A write this run already committed is not produced again: the source is not called and
    // incremental inputs are not re-read.
    if kind.looks_first()
        && let Some(written) = already_written(orchestrator, pipeline, &run, fresh).await?
    {
        record_replayed_findings(orchestrator, pipeline, &run, &written).await;
        return Ok(written);
    }
    tracing::debug!("transaction checked");
    let session = warehouse.session();
    let history = FileHistory::new(orchestrator.ledger.clone(), pipeline, kind.full_refresh);
    let cx = Ctx::new(pipeline.name, run.clone(), settings, session.clone(), false)
        .with_file_history(history.clone());
    let mut frames = Vec::with_capacity(pipeline.inputs.len());
    let mut input_versions = BTreeMap::new();
    let incremental = pipeline.inputs.iter().any(|i| i.incremental) && !kind.full_refresh;
    let cursor = if incremental {
        incremental_cursor(orchestrator, pipeline, &run).await?
    } else {
        Cursor::default()
    };
    // The inputs are loaded together: each load reads a Delta log, mostly waiting on files.
    let reads = pipeline.inputs.iter().map(|input| {
        let (session, cursor) = (&session, &cursor);
        async move {
            let name = input.table.qualified_name();
            if !input.incremental {
                let (df, version) = warehouse.read_with_version(session, input.table).await?;
                return Ok::<_, Error>((name, df, version, None, None));
            }
            let after = cursor.versions.get(&name).copied().flatten();
            tracing::debug!(input = %name, after_version = after, "reading new rows");
            let changes = warehouse.read_changes(session, input.table, after).await?;
            // Another table than the one this pipeline last read (deleted and created again):
            // its versions start over, and are not the ones the cursor counts.
            if let (Some(_), Some(read), Some(now)) = (
                after,
                cursor.table_ids.get(&name),
                changes.table_id.as_ref(),
            ) && read != now
            {
                return Err(Error::msg(format!(
                    "{name} was recreated since this pipeline last read it (its Delta table id \
                     was {read}, it is {now}): its versions start over; read it whole with \
                     `orchestrate run --full-refresh` (an append output then gets its rows \
                     again; `--rebuild` replaces it instead)"
                )));
            }
            // Created after this pipeline last read it: another table of the same name, whose
            // versions are not the ones the cursor counts. (Beyond a margin: the two times may
            // come from the clocks of two hosts.)
            if let (Some(_), Some(created), Some(read)) =
                (after, changes.created_at, cursor.read_at)
                && created.0 > read.0.saturating_add(RECREATION_MARGIN_MICROS)
            {
                return Err(Error::msg(format!(
                    "{name} was recreated at {created}, after this pipeline last read it (at \
                     {read}): its versions start over; read it whole with `orchestrate run \
                     --full-refresh` (an append output then gets its rows again; `--rebuild` \
                     replaces it instead)"
                )));
            }
            Ok((
                name,
                changes.rows,
                changes.version,
                Some(after),
                changes.table_id,
            ))
        }
    });
    let mut read = futures::future::try_join_all(reads).await?;
    // A table read both incrementally and whole was loaded twice: should a commit have landed
    // between the loads, the whole read is taken again at the incremental read's version, so
    // the partitions new rows reach are recomputed from a table that holds them.
    let incremental_versions: BTreeMap<String, Option<u64>> = pipeline
        .inputs
        .iter()
        .zip(&read)
        .filter(|(input, _)| input.incremental)
        .map(|(_, (name, _, version, _, _))| (name.clone(), *version))
        .collect();
    for (input, (name, df, version, _, _)) in pipeline.inputs.iter().zip(read.iter_mut()) {
        if let Some(Some(at)) = incremental_versions
            .get(name)
            .filter(|_| !input.incremental)
            && *version != Some(*at)
        {
            tracing::debug!(input = %name, version = at, "reading the whole table again at the incremental read's version");
            match warehouse.read_version(&session, input.table, *at).await {
                Ok(again) => {
                    *df = again;
                    *version = Some(*at);
                }
                // A later whole read holds every new row still: kept (the version's log may
                // be cleaned up).
                Err(error) if version.is_some_and(|whole| whole > *at) => {
                    tracing::warn!(input = %name, %error, "the whole table is read at a later version than its new rows");
                }
                Err(error) => return Err(error),
            }
        }
    }
    // Whether every incremental input has nothing new since the last success: no new version,
    // or (for a full snapshot, which must not replace the table with nothing) only versions
    // that changed no rows, such as a compaction's.
    let mut nothing_new = pipeline.inputs.iter().any(|i| i.incremental);
    let mut moved = Vec::new();
    let mut input_table_ids = BTreeMap::new();
    for (input, (name, df, version, after, table_id)) in pipeline.inputs.iter().zip(read) {
        if let Some(table_id) = table_id {
            input_table_ids.insert(name.clone(), table_id);
        }
        if let Some(after) = after {
            nothing_new &= after.is_some();
            if version != after {
                moved.push(df.clone());
            }
        }
        cx.register_input(input.table, df.clone())?;
        // A table read both whole and incrementally: the incremental read's version is where
        // the next one starts (the whole read, a load of its own, is read whole every run).
        if input.incremental || !input_versions.contains_key(&name) {
            input_versions.insert(name, version);
        }
        frames.push(df);
    }
    let inputs_moved = !moved.is_empty();
    if nothing_new && !moved.is_empty() {
        nothing_new = pipeline.full_snapshot && no_rows(moved).await?;
    }
    if pipeline.full_snapshot && nothing_new {
        // No new snapshot arrived: the table already reflects the last one.
        tracing::info!("no new rows in the incremental inputs; nothing to write");
        let version = warehouse.version(pipeline.output).await?;
        return Ok(Written {
            outcome: WriteOutcome::skipped(pipeline.output, version),
            input_versions,
            input_table_ids,
            metric: None,
            fragmented: false,
            replayed_findings: Vec::new(),
            superseded: None,
        });
    }
    tracing::debug!("inputs read");
    let output = match (pipeline.run)(&cx, Inputs::new(frames)).await {
        Ok(output) => output,
        Err(error) => {
            // The records an ingestion over its reject limit rejected tell why it failed (a
            // source that changed its format): they are kept, with the failed attempt's run.
            // Only then: such a failure is not retried, so they are recorded once.
            let rejects = match error {
                Error::Quality(_) => reject_records(&cx, pipeline, &run),
                _ => Vec::new(),
            };
            if !rejects.is_empty()
                && let Err(record_error) = orchestrator.ledger.append(&rejects).await
            {
                tracing::error!(%record_error, "could not record the rejected source records");
            }
            return Err(error);
        }
    };
    let (df, findings) = checked_output(orchestrator, pipeline, &run, &session, output.df).await?;
    let output = crate::frame::UntypedFrame { df, ..output };
    let new_files = cx.take_new_files();
    let reads_new_files = new_files.is_some();
    // New rows or files read: another run of this pipeline that committed since the reads began
    // may have read them too, and this write is then refused (see `WriteOptions::read_after`).
    // A merge output takes the same rows twice without harm.
    let read_after = if pipeline.output.mode == crate::table::WriteMode::Merge {
        None
    } else {
        // (A full refresh reads its inputs whole, from no cursor.)
        let rows_moved = (incremental && inputs_moved).then_some(cursor.transaction);
        let files_found = new_files
            .as_ref()
            .is_some_and(|files| !files.is_empty())
            .then(|| history.read_after())
            .flatten();
        [rows_moved, files_found].into_iter().flatten().min()
    };
    let ingested: Vec<IngestedFile> = new_files
        .into_iter()
        .flatten()
        .map(|file| file.record(pipeline, &run))
        .collect();
    let mut metadata = BTreeMap::from([
        (
            INPUT_VERSIONS_KEY.to_owned(),
            serde_json::Value::Object(
                input_versions
                    .iter()
                    .map(|(table, version)| (table.clone(), serde_json::json!(version)))
                    .collect(),
            ),
        ),
        (RUN_ID_KEY.to_owned(), serde_json::json!(run.run_id)),
    ]);
    if !input_table_ids.is_empty() {
        metadata.insert(
            INPUT_TABLE_IDS_KEY.to_owned(),
            serde_json::json!(input_table_ids),
        );
    }
    if !findings.is_empty() {
        // Listed in the commit too: a replay records them if the attempt that committed died
        // before it could.
        let listed = serde_json::to_value(&findings)
            .map_err(|e| Error::msg(format!("cannot list the quality findings: {e}")))?;
        metadata.insert(QUALITY_FINDINGS_KEY.to_owned(), listed);
    }
    if !ingested.is_empty() {
        // The commit lists its files too: a record the ledger cannot take is made good from it.
        let listed = serde_json::to_value(&ingested)
            .map_err(|e| Error::msg(format!("cannot list the files read: {e}")))?;
        metadata.insert(INGESTED_FILES_KEY.to_owned(), listed);
    }
    let options = WriteOptions {
        transaction: Some((pipeline.name.to_owned(), run.sequence)),
        run_at: Some(run.run_at),
        deletions: if pipeline.full_snapshot {
            Deletions::MissingFromSource
        } else {
            Deletions::None
        },
        metadata,
        replace: kind.rebuild && (reads_new_files || pipeline.inputs.iter().any(|i| i.incremental)),
        read_after,
    };
    let outcome = warehouse
        .write(&session, pipeline.output, output.df, options)
        .await?;
    if !outcome.committed {
        // The table held this sequence's transaction, or a later one, before this attempt
        // wrote: this run's own commit (an earlier attempt's, landing after it was abandoned),
        // or another orchestrator's run's, whose rows must not be counted as ours.
        return match already_written(orchestrator, pipeline, &run, fresh).await? {
            Some(written) => {
                record_replayed_findings(orchestrator, pipeline, &run, &written).await;
                Ok(written)
            }
            None => Err(collision(pipeline, &run, "another run")),
        };
    }
    committed.store(true, Ordering::Release);
    tracing::debug!(version = outcome.version, "written");
    // The rows are committed (the commit lists the files): a ledger that cannot take them must
    // not fail the attempt; the next read of new files records them from the commit.
    if let Err(error) = orchestrator.ledger.append(&ingested).await {
        tracing::error!(
            %error,
            count = ingested.len(),
            "the write is committed, but its files could not be recorded in \
             lakehouse.ingested_files (the next run records them from the commit)"
        );
    }
    let mut metric = None;
    let mut fragmented = false;
    if outcome.committed {
        let rejects = reject_records(&cx, pipeline, &run);
        if !rejects.is_empty() {
            tracing::warn!(
                count = rejects.len(),
                "source records rejected; see lakehouse.rejects"
            );
        }
        // The rows are committed: a ledger that cannot take the rejects must not fail the
        // attempt (its retry would find the commit, replay it and drop the rejects unsaid).
        if let Err(error) = orchestrator.ledger.append(&findings).await {
            tracing::error!(
                %error,
                count = findings.len(),
                "the write is committed, but its data-quality findings could not be recorded in \
                 lakehouse.quality_issues"
            );
        }
        match orchestrator.ledger.append(&rejects).await {
            Ok(()) => tracing::debug!("rejects recorded"),
            Err(error) => tracing::error!(
                %error,
                count = rejects.len(),
                "the write is committed, but its rejected source records could not be recorded \
                 in lakehouse.rejects"
            ),
        }
        // The write's own snapshot when it returned one: no second load of the table.
        // Statistics the table cannot give now do not fail a committed write.
        let stats = match outcome.stats.clone() {
            Some(stats) => Some(stats),
            None => warehouse
                .stats(pipeline.output)
                .await
                .unwrap_or_else(|error| {
                    tracing::error!(%error, "the write is committed, but the table's statistics could not be read");
                    None
                }),
        };
        fragmented = pipeline.output.auto_compact
            && stats
                .as_ref()
                .is_some_and(|s| s.small_files >= crate::store::AUTO_COMPACT_AT_FILES as i64);
        if let Some(stats) = stats {
            tracing::debug!("statistics read");
            metric = Some(TableMetric {
                run_id: run.run_id.clone(),
                table_name: pipeline.output.qualified_name(),
                version: stats.version as i64,
                rows: stats.rows,
                files: stats.files,
                bytes: stats.bytes,
                null_counts: serde_json::to_string(&stats.null_counts).unwrap_or_default(),
                measured_at: run.run_at,
            });
        }
    }
    Ok(Written {
        outcome,
        input_versions,
        input_table_ids,
        metric,
        fragmented,
        replayed_findings: Vec::new(),
        superseded: None,
    })
}

/// The input versions a pipeline's incremental reads start after: those its last recorded
/// success read, or, when its output holds a later commit of its own whose success was never
/// recorded (the process died after the commit, or the ledger could not take the row), those
/// that commit read, so its rows are not read, and written, twice.
async fn incremental_cursor(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
) -> Result<Cursor> {
    let last_success = orchestrator
        .ledger
        .last_success(pipeline.name)
        .await?
        .filter(|r| r.run_id != run.run_id);
    // An unreadable record is an error: taken for empty, it would read every row again.
    let recorded = match last_success.as_ref() {
        Some(success) => match success.input_versions.as_deref() {
            Some(json) => {
                serde_json::from_str::<BTreeMap<String, Option<u64>>>(json).map_err(|error| {
                    // Read whole again, an append output would get its rows twice: rebuild it.
                    let refresh = if pipeline.output.mode == crate::table::WriteMode::Append {
                        "--rebuild"
                    } else {
                        "--full-refresh"
                    };
                    Error::msg(format!(
                        "the ledger's record of `{}`'s last success (run `{}`) has input_versions \
                         `{json}`, which is not a JSON object of table versions ({error}): it \
                         says where the next incremental read starts; run the pipeline with \
                         {refresh} (its inputs read whole), or mend that row of lakehouse.runs \
                         with a Delta writer",
                        pipeline.name, success.run_id
                    ))
                })?
            }
            None => BTreeMap::new(),
        },
        None => BTreeMap::new(),
    };
    let after = last_success.as_ref().map_or(i64::MIN, |r| r.sequence + 1);
    let output = orchestrator
        .warehouse
        .latest_transaction(pipeline.output, pipeline.name, after)
        .await?;
    // The output is gone (its folder deleted to start it over), or holds no write of this
    // pipeline (created again by an attempt that then failed): what was read before is not in
    // it, so the inputs are read whole, as at the first run (Delta Live Tables does the same
    // for a dropped streaming table).
    let recreated = match (&output, &last_success) {
        (Some((None, _)), Some(_)) => orchestrator.ledger.output_recreated(pipeline).await?,
        _ => false,
    };
    let output = output.filter(|_| !recreated);
    let Some((transaction, unrecorded_commit)) = output else {
        if let Some(success) = last_success.filter(|_| !recorded.is_empty()) {
            tracing::warn!(
                table = %pipeline.output.qualified_name(),
                last_success = %success.run_id,
                "the output table is gone, or holds no write of this pipeline, since its last \
                 success: its incremental inputs are read whole, as at its first run"
            );
        }
        return Ok(Cursor::default());
    };
    let transaction = transaction.unwrap_or(0);
    let unrecorded_commit =
        unrecorded_commit.filter(|commit| commit.transaction_version < run.sequence);
    let unrecorded = unrecorded_commit.as_ref().and_then(|commit| {
        let versions = input_versions_of(commit.metadata.get(INPUT_VERSIONS_KEY));
        let table_ids = table_ids_of(commit.metadata.get(INPUT_TABLE_IDS_KEY));
        if versions.is_none() {
            tracing::warn!(
                sequence = commit.transaction_version,
                "the output holds a commit of this pipeline whose success the ledger lacks, but \
                 not what it read: reading on from the last recorded success (its rows may be \
                 read again)"
            );
        }
        versions.map(|versions| (versions, table_ids))
    });
    Ok(match unrecorded {
        Some((versions, table_ids)) => {
            tracing::info!(
                "the output's latest commit of this pipeline is newer than the success the \
                 ledger gives as its last (lost, or this run's own being re-executed); reading \
                 on from what that commit read"
            );
            Cursor {
                versions,
                table_ids,
                read_at: None,
                transaction,
            }
        }
        None => Cursor {
            versions: recorded,
            table_ids: last_success
                .as_ref()
                .and_then(|r| r.input_table_ids.as_deref())
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default(),
            read_at: last_success.map(|r| r.started_at),
            transaction,
        },
    })
}

/// The input versions a commit's metadata lists under [`INPUT_VERSIONS_KEY`], if it lists
/// them readably.
pub(super) fn input_versions_of(
    listed: Option<&serde_json::Value>,
) -> Option<BTreeMap<String, Option<u64>>> {
    listed
        .cloned()
        .and_then(|versions| serde_json::from_value(versions).ok())
}

/// The input table ids a commit's metadata lists under [`INPUT_TABLE_IDS_KEY`] (none when it
/// lists none, or unreadably: then only the creation time tells a recreated input).
pub(super) fn table_ids_of(listed: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    listed
        .cloned()
        .and_then(|ids| serde_json::from_value(ids).ok())
        .unwrap_or_default()
}

/// `output` as it may be written: a pipeline's expectations applied (rows a `drop` expectation
/// fails left out), then its quality checks run. A blocking finding fails as [`Error::Quality`]
/// (not retried), as does a `full_snapshot` output that expectations emptied, and every finding
/// is then recorded; otherwise the findings are returned, to be recorded with the write that
/// commits (an attempt whose write fails records none, so a retry does not count them twice).
async fn checked_output(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    session: &datafusion::execution::context::SessionContext,
    output: datafusion::dataframe::DataFrame,
) -> Result<(datafusion::dataframe::DataFrame, Vec<QualityIssue>)> {
    let warehouse = &orchestrator.warehouse;
    // Expectations first: rows a `drop` expectation leaves out are not checked or written.
    let (output, expected) = crate::quality::apply_expectations(pipeline.output, output).await?;
    let mut findings: Vec<(crate::quality::Finding, bool)> = expected
        .iter()
        .map(|(finding, on_fail)| (finding.clone(), *on_fail == crate::table::OnFail::Fail))
        .collect();
    let blocked = |findings: &[(crate::quality::Finding, bool)]| findings.iter().any(|(_, b)| *b);
    let mut emptied = false;
    if !blocked(&findings)
        && pipeline.full_snapshot
        && output.clone().limit(0, Some(1))?.count().await? == 0
    {
        let dropped = expected
            .iter()
            .any(|(_, on_fail)| *on_fail == crate::table::OnFail::Drop);
        if !dropped {
            return Err(Error::msg(format!(
                "the output is empty, and `full_snapshot` would delete every row of {}; refusing \
                 (did the source return nothing?)",
                pipeline.output.qualified_name()
            )));
        }
        // Every row failed a `drop` expectation: the same inputs would fail the same way.
        emptied = true;
        for finding in &mut findings {
            finding.1 = true;
        }
    }
    if !blocked(&findings) {
        // A NULL in a NOT NULL column fails the write whatever the table's quality level.
        let checked =
            crate::quality::check_output(warehouse, session, pipeline.output, &output).await?;
        findings.extend(checked.into_iter().map(|finding| {
            let blocks = pipeline.output.quality == crate::table::Quality::Blocking
                || finding.check == "not_null";
            (finding, blocks)
        }));
    }
    let mut deferred = Vec::new();
    if !findings.is_empty() {
        let issues: Vec<QualityIssue> = findings
            .iter()
            .map(|(f, blocks)| QualityIssue {
                run_id: run.run_id.clone(),
                table_name: f.table.clone(),
                column_name: f.column.clone(),
                check_name: f.check.to_owned(),
                value: f.value.clone(),
                failing_rows: f.failing_rows,
                blocking: *blocks,
                checked_at: run.run_at,
            })
            .collect();
        let summary = findings
            .iter()
            .map(|(f, _)| f.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        if blocked(&findings) {
            orchestrator.ledger.append(&issues).await?;
            let emptied = if emptied {
                format!(
                    "every row failed a `drop` expectation, and `full_snapshot` would delete \
                     every row of {}; ",
                    pipeline.output.qualified_name()
                )
            } else {
                String::new()
            };
            return Err(Error::Quality(format!(
                "data-quality checks failed, nothing written (not retried: the same inputs fail \
                 the same way): {emptied}{summary}"
            )));
        }
        tracing::warn!("data-quality checks failed: {summary}");
        deferred = issues;
    }
    Ok((output, deferred))
}

/// Records the findings of a replayed commit of this run's that the ledger lacks (an earlier
/// attempt of the run, blocked, may have recorded some of the same). A failure is logged: the
/// rows are committed.
async fn record_replayed_findings(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    written: &Written,
) {
    if written.replayed_findings.is_empty() {
        return;
    }
    let table = pipeline.output.qualified_name();
    let recorded = async {
        let held = orchestrator.ledger.findings(&run.run_id, &table).await?;
        let lacking: Vec<QualityIssue> = written
            .replayed_findings
            .iter()
            .filter(|finding| !held.contains(finding))
            .cloned()
            .collect();
        if lacking.is_empty() {
            return Ok(());
        }
        tracing::info!(
            count = lacking.len(),
            "recording the quality findings of the replayed commit"
        );
        orchestrator.ledger.append(&lacking).await
    };
    if let Err(error) = recorded.await {
        tracing::error!(%error, "the replayed commit's quality findings could not be recorded");
    }
}

/// How much later than a reader's last read an upstream table's creation must be to count as a
/// recreation: more than the clocks of two hosts differ.
const RECREATION_MARGIN_MICROS: i64 = 5 * 60 * 1_000_000;

/// Where a pipeline's incremental reads start ([`incremental_cursor`]).
#[derive(Default)]
struct Cursor {
    /// The version of each input read last.
    versions: BTreeMap<String, Option<u64>>,
    /// The Delta table id of each input read last, when recorded.
    table_ids: BTreeMap<String, String>,
    /// When they were read, if known.
    read_at: Option<Timestamp>,
    /// The pipeline's last transaction version on its output when the cursor was taken (0:
    /// none), before any input is read.
    transaction: i64,
}

/// The source records the attempt rejected, as rows of `lakehouse.rejects`.
fn reject_records(
    cx: &Ctx,
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
) -> Vec<RejectRecord> {
    cx.take_rejects()
        .into_iter()
        .map(|r| RejectRecord {
            run_id: run.run_id.clone(),
            pipeline: pipeline.name.to_owned(),
            source: r.source,
            reason: r.reason,
            raw: r.raw,
            rejected_at: run.run_at,
        })
        .collect()
}

/// Whether every one of `frames` is empty (reading at most a batch of each).
async fn no_rows(frames: Vec<datafusion::dataframe::DataFrame>) -> Result<bool> {
    for df in frames {
        if df.limit(0, Some(1))?.count().await? > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Compacts `pipeline`'s table after a write left it with many small files: after the attempt
/// is recorded and outside its time limit, since the rows are committed whatever happens here
/// (a failure is logged, and the next write tries again).
async fn compact(orchestrator: &Orchestrator, pipeline: &'static PipelineDescriptor) {
    match orchestrator.warehouse.compact(pipeline.output).await {
        Ok(report) => tracing::info!(
            files_removed = report.files_removed,
            files_added = report.files_added,
            version = report.version,
            "compacted the table's small files"
        ),
        Err(error) => tracing::warn!(%error, "could not compact the table"),
    }
}

fn attempt_record(
    pipeline: &'static PipelineDescriptor,
    run: &RunInfo,
    attempt: u32,
    started_at: Timestamp,
    elapsed: Duration,
    outcome: &Result<Written>,
) -> RunRecord {
    let (status, written, error) = match outcome {
        Ok(written) => (Status::Succeeded, Some(written), written.superseded.clone()),
        Err(error) if is_stopped(error) => (Status::Cancelled, None, Some(error.to_string())),
        Err(error) => (Status::Failed, None, Some(error.to_string())),
    };
    RunRecord {
        attempt: Some(attempt as i32),
        finished_at: Some(Timestamp::now()),
        duration_ms: Some(elapsed.as_millis() as i64),
        rows_written: written.map(|w| (w.outcome.rows_inserted + w.outcome.rows_updated) as i64),
        table_version: written.and_then(|w| w.outcome.version).map(|v| v as i64),
        replayed: written.map(|w| !w.outcome.committed),
        error,
        input_versions: written
            .map(|w| serde_json::to_string(&w.input_versions).unwrap_or_default()),
        input_table_ids: written
            .filter(|w| !w.input_table_ids.is_empty())
            .map(|w| serde_json::to_string(&w.input_table_ids).unwrap_or_default()),
        ..RunRecord::of_pipeline(
            run,
            pipeline.name,
            pipeline.output.qualified_name(),
            status,
            started_at,
        )
    }
}
