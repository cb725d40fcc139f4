//! Executing a plan: each pipeline as soon as those it waits for have ended, in parallel
//! (bounded), each attempt isolated in its own task so an error, a panic or a timeout fails only
//! that pipeline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt as _;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::produce::produce_and_write;
use super::report::{PipelineResult, Status};
use super::{Orchestrator, Plan, RunConfig, SkipPolicy};
use crate::ctx::RunInfo;
use crate::error::{Error, Result};
use crate::graph::PipelineDescriptor;
use crate::ledger::{QualityIssue, RunRecord, TableMetric};
use crate::store::WriteOutcome;
use crate::table::Timestamp;

/// [`RunConfig::cut_wait`] when the run is aborted (its supervisor kills it soon after): the
/// run's end must be recorded before.
const ABORTED_CUT_LIMIT: Duration = Duration::from_secs(5);

/// The most extra attempts a pipeline gets, however many are asked for.
const MAX_RETRIES: u32 = 100;

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
    /// Not written, because a full-snapshot pipeline's incremental inputs brought no new rows
    /// (its function did not run).
    pub(super) nothing_new: bool,
    /// What of a committed write's records the ledger could not take (its quality findings, its
    /// rejected source records): the run is then not wholly recorded, so no success.
    pub(super) lost_records: Option<String>,
}

/// Runs `plan`; returns each pipeline's result, and why the run is not fully recorded if an
/// attempt's row could not be (the run is then no success: a backfill looks for its writes).
pub(super) async fn execute(
    orchestrator: &Orchestrator,
    run: Arc<RunInfo>,
    plan: &Plan,
    config: &RunConfig,
    previous: &HashMap<String, Status>,
    attempts_before: &HashMap<String, u32>,
    execution: i32,
) -> (Vec<PipelineResult>, Option<String>) {
    let unrecorded: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let planned: Vec<&'static PipelineDescriptor> = plan.pipelines().collect();
    let mut results: HashMap<&'static str, PipelineResult> = HashMap::new();
    let semaphore = Arc::new(Semaphore::new(
        config.concurrency.clamp(1, Semaphore::MAX_PERMITS),
    ));
    // Turns are handed out in the order they are asked for, which is plan order (the tasks,
    // polled in the scheduler's order, would otherwise queue on the semaphore in any order).
    let (turns, mut asked) = tokio::sync::mpsc::unbounded_channel::<
        tokio::sync::oneshot::Sender<tokio::sync::OwnedSemaphorePermit>,
    >();
    let dispenser = {
        let semaphore = semaphore.clone();
        tokio::spawn(async move {
            while let Some(reply) = asked.recv().await {
                // A pipeline no longer waiting (an interrupt, fail-fast) takes no turn.
                if reply.is_closed() {
                    continue;
                }
                let Ok(permit) = semaphore.clone().acquire_owned().await else {
                    break;
                };
                let _ = reply.send(permit);
            }
        })
    };
    let _dispenser = AbortOnDrop(dispenser.abort_handle());
    let mut stopped: Option<String> = None;
    // Fail-fast's signal to the running pipelines: each stops unless its write committed, which
    // it records first (aborting it there would lose its rejects, metrics and attempt record).
    let (stop_sender, stop) = watch::channel(None::<Arc<str>>);
    // An abort (a second interrupt) stops the run as fail-fast does.
    let mut abort = orchestrator.abort.clone();
    let mut aborted = false;
    // A fresh run's sequence was just allocated above every recorded one: its first attempts
    // need not look for their own commit (the write still checks it). Resumed runs look.
    let fresh = previous.is_empty();

    // Each pipeline starts once those it waits for have ended (its upstreams in the run, or,
    // as late as possible, the groups before its own), in plan order among those ready: a slow
    // pipeline holds back only what depends on it.
    let mut pending: Vec<&'static PipelineDescriptor> = planned.clone();
    let starts_after: HashMap<&'static str, Vec<&'static str>> = planned
        .iter()
        .map(|p| (p.name, plan.starts_after(p.name)))
        .collect();
    let mut tasks: JoinSet<PipelineResult> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, &'static PipelineDescriptor> = HashMap::new();
    loop {
        // Decided without running, a pipeline may make others ready: look again until none is.
        let mut progressed = true;
        while progressed {
            progressed = false;
            let mut index = 0;
            while index < pending.len() {
                let pipeline = pending[index];
                let ready = starts_after
                    .get(pipeline.name)
                    .into_iter()
                    .flatten()
                    .all(|before| results.contains_key(before));
                if !ready {
                    index += 1;
                    continue;
                }
                pending.remove(index);
                progressed = true;
                if stopped.is_none() && *orchestrator.shutdown.borrow() {
                    stopped = Some("the run was interrupted".to_owned());
                }
                // A pipeline not run is told as it is decided (those decided together, in plan
                // order).
                let decided = |result: PipelineResult, results: &mut HashMap<_, _>| {
                    orchestrator.emit(super::Event::Finished(result.clone()));
                    results.insert(pipeline.name, result);
                };
                if let Some(reason) = &stopped {
                    let cancelled = not_run(pipeline, Status::Cancelled, reason.clone());
                    decided(cancelled, &mut results);
                    continue;
                }
                if !config.rerun_succeeded
                    && previous.get(pipeline.name) == Some(&Status::Succeeded)
                {
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
                let unrecorded = unrecorded.clone();
                let numbered_after = attempts_before.get(pipeline.name).copied().unwrap_or(0);
                let (reply, turn_given) = tokio::sync::oneshot::channel();
                let _ = turns.send(reply);
                let handle = tasks.spawn(async move {
                    // Waiting for its turn ends with an interrupt or fail-fast too: the turn may
                    // be long in coming (an attempt left running holds its place).
                    let (mut shutdown, mut stopping) =
                        (orchestrator.shutdown.clone(), stop.clone());
                    let permit = tokio::select! {
                        permit = turn_given => permit.ok(),
                        Ok(_) = shutdown.wait_for(|down| *down) => None,
                        Ok(_) = stopping.wait_for(|reason| reason.is_some()) => None,
                    };
                    let turn = Turn {
                        semaphore,
                        permit,
                        unrecorded,
                        numbered_after,
                        execution,
                    };
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
                    run_with_retries(&orchestrator, pipeline, run, &config, fresh, stop, turn).await
                });
                running.insert(handle.id(), pipeline);
            }
        }
        let joined = if aborted {
            tasks.join_next_with_id().await
        } else {
            tokio::select! {
                joined = tasks.join_next_with_id() => joined,
                Ok(_) = abort.wait_for(|abort| *abort) => {
                    aborted = true;
                    let reason = "the run was aborted (a second interrupt, or the end of the grace after SIGTERM)";
                    tracing::error!("aborting the run: cutting its running pipelines short");
                    stop_sender.send_replace(Some(reason.into()));
                    stopped.get_or_insert_with(|| reason.to_owned());
                    continue;
                }
            }
        };
        let Some(joined) = joined else {
            break;
        };
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
    let results = planned
        .into_iter()
        .map(|p| {
            results
                .remove(p.name)
                .unwrap_or_else(|| not_run(p, Status::Pending, String::new()))
        })
        .collect();
    let unrecorded = unrecorded.lock().ok().and_then(|mut why| why.take());
    (results, unrecorded)
}

/// Why `pipeline` must be skipped, if it must. Only upstreams in the plan count, reached
/// through pipelines left out of it too.
fn skip_reason(
    pipeline: &'static PipelineDescriptor,
    plan: &Plan,
    results: &HashMap<&'static str, PipelineResult>,
    config: &RunConfig,
) -> Option<String> {
    if !config.skip_downstream_on_failure {
        return None;
    }
    let upstreams: Vec<(&str, Status)> = plan
        .upstreams_of(pipeline.name)
        .filter_map(|d| results.get(d).map(|r| (d, r.status)))
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
        rows_deleted: None,
        version: None,
        replayed: false,
        nothing_new: false,
        duration: Duration::ZERO,
        error: (!reason.is_empty()).then_some(reason),
    }
}

/// A pipeline's turn in the run: its slot among those running at once, held while an attempt
/// runs and given up while it waits to retry (a flaky pipeline does not hold back the others,
/// `--serial` included), and where it tells the run what the ledger could not take.
struct Turn {
    semaphore: Arc<tokio::sync::Semaphore>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    unrecorded: Arc<std::sync::Mutex<Option<String>>>,
    /// The attempts an earlier execution of the run made (a resume numbers on from them).
    numbered_after: u32,
    /// Which execution of the run this is (1, then one more per resume), on its rows.
    execution: i32,
}

async fn run_with_retries(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: Arc<RunInfo>,
    config: &RunConfig,
    fresh: bool,
    stop: watch::Receiver<Option<Arc<str>>>,
    mut turn: Turn,
) -> PipelineResult {
    // At the error level: a span is filtered as the lines are, and `RUST_LOG=warn` would
    // otherwise leave a failure's lines without the pipeline they are about.
    let span = tracing::error_span!("pipeline", name = pipeline.name, run_id = %run.run_id);
    async move {
        let over = config.overrides.get(pipeline.name).copied().unwrap_or_default();
        // As `#[pipeline(retries)]` allows: a library caller's larger number would retry a
        // failing pipeline for ever.
        let retries = over
            .retries
            .or(pipeline.retries)
            .unwrap_or(config.default_retries)
            .min(MAX_RETRIES);
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
        for attempt in 1..=retries.saturating_add(1) {
            attempts = attempt;
            // As the ledger numbers it: a resume goes on from the run's last attempt.
            let numbered = turn.numbered_after.saturating_add(attempt);
            tracing::info!(attempt = numbered, "started");
            orchestrator.emit(super::Event::Started { pipeline: pipeline.name, attempt: numbered });
            let attempt_started = Timestamp::now();
            let clock = Instant::now();
            let kind = AttemptKind {
                number: attempt,
                fresh,
                full_refresh: config.full_refresh || config.rebuild,
                rebuild: config.rebuild,
            };
            let cuts = Cuts {
                timeout,
                stop: stop.clone(),
            };
            let outcome = attempt_once(
                orchestrator,
                pipeline,
                run.clone(),
                config,
                kind,
                cuts,
                &mut turn.permit,
            )
            .await;
            let record = RunRecord {
                execution: Some(turn.execution),
                ..attempt_record(pipeline, &run, numbered, attempt_started, clock.elapsed(), &outcome)
            };
            let metric = outcome.as_ref().ok().and_then(|written| written.metric.as_ref());
            let metric = metric.map(std::slice::from_ref).unwrap_or_default();
            // Two tables, two commits: made together.
            let (recorded, measured) = tokio::join!(
                orchestrator.ledger.append(std::slice::from_ref(&record)),
                orchestrator.ledger.append(metric),
            );
            if let Err(error) = recorded {
                tracing::error!(%error, "could not record the attempt in lakehouse.runs");
                if let Ok(mut why) = turn.unrecorded.lock() {
                    why.get_or_insert_with(|| {
                        format!("`{}`'s attempt {numbered}: {error}", pipeline.name)
                    });
                }
            }
            let lost = outcome.as_ref().ok().and_then(|w| w.lost_records.as_ref());
            if let (Some(lost), Ok(mut why)) = (lost, turn.unrecorded.lock()) {
                why.get_or_insert_with(|| format!("`{}`'s {lost}", pipeline.name));
            }
            if let Err(error) = measured {
                tracing::error!(%error, "could not record the table's metrics in lakehouse.table_metrics");
            }
            match outcome {
                Ok(written) => {
                    if written.fragmented {
                        compact(orchestrator, pipeline, stop.clone()).await;
                    }
                    let (superseded, nothing_new) = (written.superseded, written.nothing_new);
                    let outcome = written.outcome;
                    tracing::info!(
                        rows = outcome.rows_inserted + outcome.rows_updated,
                        deleted = outcome.rows_deleted,
                        version = outcome.version,
                        replayed = !outcome.committed && !nothing_new,
                        nothing_new,
                        "succeeded"
                    );
                    return PipelineResult {
                        pipeline: pipeline.name,
                        table: outcome.table.clone(),
                        status: Status::Succeeded,
                        attempts: attempt,
                        rows_written: Some(outcome.rows_inserted + outcome.rows_updated),
                        rows_deleted: Some(outcome.rows_deleted),
                        version: outcome.version,
                        replayed: !outcome.committed && !nothing_new,
                        nothing_new,
                        duration: started.elapsed(),
                        error: superseded,
                    };
                }
                Err(error) => {
                    last_error = error.to_string();
                    if is_stopped(&error) {
                        tracing::error!(attempt = numbered, error = %last_error, "cancelled");
                        cancelled = Some(last_error.clone());
                        break;
                    }
                    if !error.is_retryable() {
                        tracing::error!(attempt = numbered, error = %last_error, "failed; not retried (another attempt would fail the same way, or run beside this one)");
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
                        tracing::error!(attempt = numbered, error = %last_error, "failed; not retried: {why}");
                        cancelled = Some(format!("{why} before a retry; attempt {numbered} failed: {last_error}"));
                        retry_cancelled = true;
                        break;
                    } else if attempt <= retries {
                        let delay = backoff(config, attempt);
                        tracing::warn!(attempt = numbered, error = %last_error, retry_in = ?delay, "failed; retrying");
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
                        drop(turn.permit.take());
                        let semaphore = turn.semaphore.clone();
                        let waited = async move {
                            tokio::time::sleep(delay).await;
                            semaphore.acquire_owned().await.ok()
                        };
                        tokio::select! {
                            permit = waited => {
                                if let Some(permit) = permit {
                                    turn.permit.replace(permit);
                                }
                            }
                            _ = cut_short => {
                                let why = why_not_again().unwrap_or_default();
                                tracing::error!(attempt = numbered, "not retried: {why}");
                                cancelled = Some(format!("{why} before a retry; attempt {numbered} failed: {last_error}"));
                                retry_cancelled = true;
                                break;
                            }
                        }
                    } else {
                        tracing::error!(attempt = numbered, error = %last_error, "failed");
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
                execution: Some(turn.execution),
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
                if let Ok(mut why) = turn.unrecorded.lock() {
                    why.get_or_insert_with(|| {
                        format!("`{}`'s cancelled retry: {error}", pipeline.name)
                    });
                }
            }
        }
        PipelineResult {
            pipeline: pipeline.name,
            table: pipeline.output.qualified_name(),
            status,
            attempts,
            rows_written: None,
            rows_deleted: None,
            version: None,
            replayed: false,
            nothing_new: false,
            duration: started.elapsed(),
            error: Some(error),
        }
    }
    .instrument(span)
    .await
}

/// Exponential backoff with half jitter: a random delay in `[d/2, d]` for
/// `d = min(cap, base·2^(attempt-1))`, the cap being at least the first delay (a delay asked
/// for is waited at least half of, so a rate limit is waited out; retries of several pipelines
/// still spread).
fn backoff(config: &RunConfig, attempt: u32) -> Duration {
    let exponential = config
        .retry_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(config.max_retry_delay.max(config.retry_delay));
    let nanos = exponential.as_nanos().min(u128::from(u64::MAX)) as u64;
    Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos))
}

/// Whether `pipeline`'s table holds this run's commit (its sequence, and its run id when the
/// commit records one): a later sequence is another run's (another orchestrator's), not ours.
async fn own_commit(
    warehouse: &crate::store::Warehouse,
    pipeline: &'static PipelineDescriptor,
    sequence: i64,
    run_id: &str,
) -> Result<bool> {
    let committed = warehouse
        .committed_transaction(pipeline.output, pipeline.name, sequence)
        .await?;
    Ok(committed.is_some_and(|committed| {
        committed.transaction_version == sequence
            && committed
                .metadata
                .get(super::replay::RUN_ID_KEY)
                .and_then(|id| id.as_str())
                .is_none_or(|writer| writer == run_id)
    }))
}

/// One attempt in its own task: a panic or a timeout becomes an error of this pipeline, and
/// fail-fast's `stop` a [`Stopped`] error. An attempt left running (it blocks without
/// awaiting) keeps `slot`, its pipeline's place among those running at once, until it ends.
async fn attempt_once(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    run: Arc<RunInfo>,
    config: &RunConfig,
    kind: AttemptKind,
    cuts: Cuts,
    slot: &mut Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Written> {
    let Cuts { timeout, mut stop } = cuts;
    // Two attempts would run the pipeline's code (and call its sources) at once.
    let still_running = orchestrator.left_running.lock().ok().and_then(|left| {
        left.get(pipeline.name)
            .and_then(|runs| runs.first().cloned())
    });
    if let Some(earlier) = still_running {
        return Err(Error::Refused(format!(
            "its attempt of run `{earlier}` is still running, left so after it was cut short \
             (it blocks without awaiting: use async calls); not started beside it, until it ends"
        )));
    }
    let noted_left_running = LeftRunning {
        pipelines: orchestrator.left_running.clone(),
        pipeline: pipeline.name,
        run_id: run.run_id.clone(),
        noted: false,
    };
    let abort = orchestrator.abort.clone();
    let warehouse = orchestrator.warehouse.clone();
    let (sequence, run_id) = (run.sequence, run.run_id.clone());
    // Without the progress events' sender: a live display ends when every sender is gone, and
    // an attempt left running (it blocked past its cut) must not keep it, and the CLI, waiting.
    let orchestrator = Orchestrator {
        events: None,
        ..orchestrator.clone()
    };
    let settings = Arc::new(config.settings.clone());
    let committed = Arc::new(AtomicBool::new(false));
    let has_committed = committed.clone();
    let mut task = tokio::spawn(
        async move {
            produce_and_write(&orchestrator, pipeline, run, settings, kind, &committed)
                .await
                .map_err(|error| super::produce::missing_input_files(pipeline, error))
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
        joined = &mut task => return joined_result(joined, &has_committed),
        limit = limit => Cut::TimeLimit(limit),
        reason = stopped => Cut::Stopped(reason),
    };
    let cut_at = tokio::time::Instant::now();
    // The flag is set once the write has returned, and its commit may have landed before (the
    // write then makes a checkpoint, its descriptions' commit): the table tells. Checking it and
    // waiting for the attempt to stop share one deadline: the store may be what hangs, and the
    // attempt may block without awaiting.
    // An aborted run is being stopped by its supervisor, which kills it soon: it waits less.
    let aborted = *abort.borrow();
    let after_cut = if aborted {
        ABORTED_CUT_LIMIT.min(config.cut_wait)
    } else {
        config.cut_wait
    };
    let deadline = cut_at + after_cut;
    // An abort counted from the cut when it came before, else from when it comes.
    let mut abort = AbortClock {
        abort,
        aborted_at: aborted.then_some(cut_at),
    };
    let committed: Option<bool> = if has_committed.load(Ordering::Acquire) {
        Some(true)
    } else {
        within(
            &mut Box::pin(own_commit(&warehouse, pipeline, sequence, &run_id)),
            deadline.saturating_duration_since(tokio::time::Instant::now()),
            &mut abort,
        )
        .await
        .and_then(Result::ok)
    };
    if committed == Some(true) {
        // The limit is the pipeline's, up to its commit, and fail-fast stops what has not
        // committed: the bookkeeping after a commit (quality findings, rejects, statistics)
        // finishes, or a committed write would be reported failed and its rejects lost. As long
        // again as the limit (at least a minute) to record it: a hung ledger must not hang the
        // run.
        let grace = if aborted {
            ABORTED_CUT_LIMIT
        } else {
            timeout.unwrap_or_default().max(Duration::from_secs(60))
        };
        // Its own 5 s to record the commit, from now, when aborted.
        abort.restart();
        tracing::warn!(
            grace = %humantime::format_duration(grace),
            "{} after the commit; recording what it wrote",
            cut.describe()
        );
        return match within(&mut task, grace, &mut abort).await {
            Some(joined) => joined_result(joined, &has_committed),
            None => {
                task.abort();
                // (An aborted task that was awaiting ends as soon as a worker runs it.)
                let stop_limit = if abort.aborted() {
                    Duration::from_millis(500)
                } else {
                    config.cut_wait
                };
                let stopped = within(&mut task, stop_limit, &mut abort).await.is_some();
                if !stopped {
                    keep_slot_until_done(slot.take(), task, noted_left_running);
                }
                let message = format!(
                    "timed out while recording a committed write ({}, then {} more): its rows \
                     are in the table, and a retry or `resume` finds the commit",
                    cut.describe(),
                    humantime::format_duration(grace)
                );
                // Stopped by fail-fast, it is cancelled with the run, not a failure of its own;
                // still running, it is not retried beside itself.
                Err(match cut {
                    Cut::Stopped(_) => Error::Other(Box::new(Stopped(message.into()))),
                    Cut::TimeLimit(_) if !stopped => Error::Refused(format!(
                        "{message}; the attempt did not stop, so it is not retried"
                    )),
                    Cut::TimeLimit(_) => Error::msg(message),
                })
            }
        };
    }
    // Stopped before the retry starts (a blocking file write it began may still finish; the
    // retry, or the next run, then finds its commit as this run's).
    task.abort();
    // The abort reaches the task where it next waits: code that blocks (a synchronous call, a
    // long computation) runs on, and is left to end on its own rather than hold the run.
    // Some time at least, even when the commit check took the deadline: an aborted task that
    // was awaiting (the usual case) ends as soon as a worker runs it. An aborted run's attempt
    // shares one deadline for the checks and the wait, the README's "5 s at most".
    let least = if abort.aborted() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5).min(config.cut_wait)
    };
    let stop_by = deadline.max(tokio::time::Instant::now() + least);
    let left_running = match within(
        &mut task,
        stop_by.saturating_duration_since(tokio::time::Instant::now()),
        &mut abort,
    )
    .await
    {
        // It ended before the abort reached it: its own outcome.
        Some(Ok(result)) => return result,
        Some(Err(error)) if error.is_panic() => {
            return joined_result(Err(error), &has_committed);
        }
        Some(Err(_)) => false,
        None => {
            // (Less than `after_cut` when the run was aborted meanwhile.)
            let waited =
                Duration::from_secs((cut_at.elapsed() + Duration::from_millis(500)).as_secs());
            tracing::warn!(
                "the attempt did not stop within {} of being cut short (it blocks without \
                 awaiting): it is left to end on its own",
                humantime::format_duration(waited)
            );
            true
        }
    };
    if left_running {
        keep_slot_until_done(slot.take(), task, noted_left_running);
    }
    // A commit under way as the attempt was cut may have landed since (a store's blocking write
    // is not stopped by the abort): told as such, not as stopped before it.
    // `None` when that could not be told in time.
    let landed: Option<bool> = if left_running || committed != Some(false) {
        Some(false)
    } else {
        let limit = if abort.aborted() {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        } else {
            Duration::from_secs(5)
        };
        within(
            &mut Box::pin(own_commit(&warehouse, pipeline, sequence, &run_id)),
            limit,
            &mut abort,
        )
        .await
        .and_then(Result::ok)
    };
    let committed = if landed.is_none() { None } else { committed };
    if landed == Some(true) {
        let message = format!(
            "{}, as its write committed: its rows are in the table, and a retry or `resume` \
             records the rest",
            cut.describe()
        );
        return Err(match cut {
            // The reason is what `describe` says.
            Cut::Stopped(_) => Error::Other(Box::new(Stopped(message.into()))),
            // Retried: the retry finds the commit and records it.
            Cut::TimeLimit(_) => Error::msg(message),
        });
    }
    let unconfirmed = if committed.is_none() {
        "; whether its write committed could not be told in time (a retry or `resume` finds the \
         commit if it did)"
    } else {
        ""
    };
    let stopped_text = if left_running {
        "cut short, and left running (it blocks without awaiting)"
    } else if committed.is_none() {
        "stopped; whether its write committed could not be told in time"
    } else {
        "stopped before its write committed"
    };
    Err(match cut {
        // Not retried beside an attempt still running: two attempts would run the pipeline's
        // code (and call its sources) at once.
        Cut::TimeLimit(limit) if left_running => Error::Refused(format!(
            "timed out after {}{unconfirmed}; the attempt did not stop (it blocks without \
             awaiting: use async calls) and is left running, so it is not retried",
            humantime::format_duration(limit)
        )),
        Cut::TimeLimit(limit) => Error::msg(format!(
            "timed out after {} (set `timeout` in #[pipeline] or --timeout){unconfirmed}",
            humantime::format_duration(limit)
        )),
        Cut::Stopped(reason) => Error::Other(Box::new(Stopped(
            format!("{reason}; {stopped_text}").into(),
        ))),
    })
}

/// The run's abort, as an attempt cut short waits: once it comes, every wait ends within
/// [`ABORTED_CUT_LIMIT`] of it, whatever each wait's own limit.
struct AbortClock {
    abort: watch::Receiver<bool>,
    /// When the abort was first seen (or the cut, when it came before).
    aborted_at: Option<tokio::time::Instant>,
}

impl AbortClock {
    /// Whether the run is aborted (seen now, or by a wait).
    fn aborted(&mut self) -> bool {
        if self.aborted_at.is_none() && *self.abort.borrow() {
            self.aborted_at = Some(tokio::time::Instant::now());
        }
        self.aborted_at.is_some()
    }

    /// Counts the abort's limit from now, for a wait that has a limit of its own once aborted.
    fn restart(&mut self) {
        if self.aborted() {
            self.aborted_at = Some(tokio::time::Instant::now());
        }
    }
}

/// `future`'s output if it ends within `limit`, or, should the run be aborted (before or
/// meanwhile: a second interrupt, the end of the grace after SIGTERM; its supervisor kills it
/// soon), within [`ABORTED_CUT_LIMIT`] of the abort; `None` past that.
async fn within<F: std::future::Future + Unpin>(
    future: &mut F,
    limit: Duration,
    clock: &mut AbortClock,
) -> Option<F::Output> {
    let deadline = tokio::time::Instant::now() + limit;
    if clock.aborted() {
        let cut = clock
            .aborted_at
            .map_or(deadline, |at| deadline.min(at + ABORTED_CUT_LIMIT));
        return tokio::time::timeout_at(cut, future).await.ok();
    }
    // (Its guard dropped at once: it must not be held across an await.)
    let abort = &mut clock.abort;
    let aborted = async { abort.wait_for(|aborted| *aborted).await.is_ok() };
    tokio::select! {
        output = tokio::time::timeout_at(deadline, &mut *future) => output.ok(),
        aborted = aborted => {
            // No sender left, no abort can come: the whole limit.
            let cut = if aborted {
                let now = tokio::time::Instant::now();
                clock.aborted_at = Some(now);
                deadline.min(now + ABORTED_CUT_LIMIT)
            } else {
                deadline
            };
            tokio::time::timeout_at(cut, future).await.ok()
        }
    }
}

/// How long an attempt left running keeps its place among the pipelines running at once: one
/// that never ends must not hold back the rest of the run for ever.
const LEFT_RUNNING_SLOT_LIMIT: Duration = Duration::from_secs(300);

/// Holds `slot` until `task`, an attempt left running, ends (or for
/// [`LEFT_RUNNING_SLOT_LIMIT`]): still running, it still takes its place among the pipelines
/// running at once (`--serial` must not run another beside it). Its pipeline is `left` among
/// the orchestrator's attempts left running until it ends, whatever the wait.
fn keep_slot_until_done<T: Send + 'static>(
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    mut task: tokio::task::JoinHandle<T>,
    mut left: LeftRunning,
) {
    left.note();
    tokio::spawn(async move {
        let _left = left;
        if tokio::time::timeout(LEFT_RUNNING_SLOT_LIMIT, &mut task)
            .await
            .is_err()
        {
            tracing::warn!(
                "an attempt left running has not ended in {}: its place is given to the others",
                humantime::format_duration(LEFT_RUNNING_SLOT_LIMIT)
            );
            drop(slot);
            let _ = task.await;
        }
    });
}

/// A pipeline's attempt that may be left running: noted among the orchestrator's, and no
/// longer once it is dropped (after the attempt ended).
struct LeftRunning {
    pipelines: Arc<std::sync::Mutex<HashMap<&'static str, Vec<String>>>>,
    pipeline: &'static str,
    run_id: String,
    /// Whether it was noted (so its drop takes the note away).
    noted: bool,
}

impl LeftRunning {
    /// Notes the attempt as left running.
    fn note(&mut self) {
        self.noted = true;
        if let Ok(mut left) = self.pipelines.lock() {
            left.entry(self.pipeline)
                .or_default()
                .push(self.run_id.clone());
        }
    }
}

impl Drop for LeftRunning {
    fn drop(&mut self) {
        if !self.noted {
            return;
        }
        if let Ok(mut left) = self.pipelines.lock()
            && let Some(runs) = left.get_mut(self.pipeline)
        {
            // One of them: two runs of this process may each have left one.
            if let Some(at) = runs.iter().position(|run| *run == self.run_id) {
                runs.remove(at);
            }
            if runs.is_empty() {
                left.remove(self.pipeline);
            }
        }
    }
}

/// What may cut an attempt short.
struct Cuts {
    /// Its time limit.
    timeout: Option<Duration>,
    /// Fail-fast's reason to stop the run, once set.
    stop: watch::Receiver<Option<Arc<str>>>,
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

/// An attempt stopped by fail-fast (before its write committed, or while recording a committed
/// one): the pipeline is cancelled, not failed. Its text says which.
#[derive(Debug)]
struct Stopped(Arc<str>);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stopped {}

/// Whether `error` is an attempt's [`Stopped`].
fn is_stopped(error: &Error) -> bool {
    matches!(error, Error::Other(inner) if inner.is::<Stopped>())
}

/// The result of an attempt's joined task: a panic becomes an error, not retried (a bug panics
/// again, calling the pipeline's sources again at each attempt), unless the write had
/// `committed`: a retry then finds the commit and records it.
fn joined_result(
    joined: std::result::Result<Result<Written>, tokio::task::JoinError>,
    committed: &AtomicBool,
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
            if committed.load(Ordering::Acquire) {
                return Err(Error::msg(format!(
                    "panicked after its write committed: {message} (a retry, or `resume`, records \
                     the commit)"
                )));
            }
            Err(Error::Refused(format!(
                "panicked: {message} (a bug in the pipeline's code or a library it calls: not \
                 retried)"
            )))
        }
        Err(error) => Err(Error::msg(format!(
            "the pipeline task was cancelled: {error}"
        ))),
    }
}

/// Which attempt, in which kind of run.
#[derive(Clone, Copy, Debug)]
pub(super) struct AttemptKind {
    /// From 1.
    pub(super) number: u32,
    /// A new run (its sequence above every recorded one), not a resumed one.
    pub(super) fresh: bool,
    /// Incremental inputs are read whole ([`super::RunConfig::full_refresh`]).
    pub(super) full_refresh: bool,
    /// An append output of incremental inputs is replaced ([`super::RunConfig::rebuild`]).
    pub(super) rebuild: bool,
}

impl AttemptKind {
    /// Whether the attempt looks for its run's commit before producing: a resumed run's, or a
    /// retry (the failed attempt may have committed before failing).
    pub(super) fn looks_first(self) -> bool {
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

/// Compacts `pipeline`'s table after a write left it with many small files: after the attempt
/// is recorded and outside its time limit, since the rows are committed whatever happens here
/// (a failure is logged, and the next write tries again). In a task of its own: a panic in the
/// Parquet or Delta code it runs is a failed compaction, not a failed pipeline. A run stopping
/// (fail-fast's `stop`, an interrupt, an abort) cuts it short: it is no part of the pipeline's
/// work, and would hold the run's end back for as long as it takes (the next write compacts).
async fn compact(
    orchestrator: &Orchestrator,
    pipeline: &'static PipelineDescriptor,
    mut stop: watch::Receiver<Option<Arc<str>>>,
) {
    let warehouse = orchestrator.warehouse.clone();
    let task =
        tokio::spawn(async move { warehouse.compact(pipeline.output).await }.in_current_span());
    // Dropped unfinished, it ends: the files it wrote are not in the table, and vacuum removes
    // them.
    let _cut = AbortOnDrop(task.abort_handle());
    let (mut shutdown, mut abort) = (orchestrator.shutdown.clone(), orchestrator.abort.clone());
    let stopped = async { stop.wait_for(|reason| reason.is_some()).await.is_ok() };
    let interrupted = async { shutdown.wait_for(|stop| *stop).await.is_ok() };
    let aborted = async { abort.wait_for(|abort| *abort).await.is_ok() };
    let stopping = async {
        tokio::select! {
            true = stopped => {}
            true = interrupted => {}
            true = aborted => {}
            // No sender left: nothing can stop the run any more.
            else => std::future::pending().await,
        }
    };
    let compacted = tokio::select! {
        biased;
        () = stopping => {
            tracing::warn!("the run is stopping: the table's small files are left for the next write to compact");
            return;
        }
        compacted = task => compacted,
    };
    match compacted {
        Ok(Ok(report)) => tracing::info!(
            files_removed = report.files_removed,
            files_added = report.files_added,
            version = report.version,
            "compacted the table's small files"
        ),
        Ok(Err(error)) => tracing::warn!(%error, "could not compact the table"),
        Err(error) => tracing::warn!(%error, "the compaction of the table failed"),
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
        rows_deleted: written.map(|w| w.outcome.rows_deleted as i64),
        table_version: written.and_then(|w| w.outcome.version).map(|v| v as i64),
        replayed: written.map(|w| !w.outcome.committed && !w.nothing_new),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{RunConfig, backoff};

    #[test]
    fn a_retry_waits_at_least_half_its_delay_and_a_long_delay_is_not_capped() {
        let config = |seconds: u64| RunConfig {
            retry_delay: Duration::from_secs(seconds),
            ..RunConfig::default()
        };
        for _ in 0..100 {
            // Longer than the 60 s cap: the delay asked for holds.
            let long = backoff(&config(300), 1);
            assert!((150..=300).contains(&long.as_secs()), "{long:?}");
            // Doubled up to the cap, never under half of it.
            let tenth = backoff(&config(1), 10);
            assert!(
                (Duration::from_secs(30)..=Duration::from_secs(60)).contains(&tenth),
                "{tenth:?}"
            );
            let first = backoff(&config(2), 1);
            assert!(
                (Duration::from_secs(1)..=Duration::from_secs(2)).contains(&first),
                "{first:?}"
            );
        }
    }
}
