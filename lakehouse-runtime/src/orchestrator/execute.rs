//! Executing a plan: each pipeline as soon as those it waits for have ended, in parallel
//! (bounded), each attempt isolated in its own task so an error, a panic or a timeout fails only
//! that pipeline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngExt as _;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::attempt::{AttemptKind, Cuts, attempt_once, is_stopped};
use super::report::{PipelineResult, Status};
use super::{Orchestrator, Plan, RunConfig, SkipPolicy};
use crate::ctx::RunInfo;
use crate::error::Result;
use crate::graph::PipelineDescriptor;
use crate::ledger::{QualityIssue, RunRecord, TableMetric};
use crate::store::WriteOutcome;
use crate::table::Timestamp;

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
                last: attempt > retries,
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

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::AbortHandle);

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
