//! One attempt of a pipeline, in a task of its own: its time limit, fail-fast's stop and the
//! run's abort cut it short; a commit under way is looked for; an attempt that does not stop is
//! left running, noted so that it is not started again beside itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument as _;

use super::execute::{AbortOnDrop, Written};
use super::produce::produce_and_write;
use super::{Orchestrator, RunConfig};
use crate::ctx::RunInfo;
use crate::error::{Error, Result};
use crate::graph::PipelineDescriptor;

/// [`RunConfig::cut_wait`] when the run is aborted (its supervisor kills it soon after): the
/// run's end must be recorded before.
const ABORTED_CUT_LIMIT: Duration = Duration::from_secs(5);

/// Whether `pipeline`'s table holds this run's commit (its sequence, and its run id when the
/// commit records one): a later sequence is another run's (another orchestrator's), not ours.
pub(super) async fn own_commit(
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
pub(super) async fn attempt_once(
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
pub(super) struct Cuts {
    /// Its time limit.
    pub(super) timeout: Option<Duration>,
    /// Fail-fast's reason to stop the run, once set.
    pub(super) stop: watch::Receiver<Option<Arc<str>>>,
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
pub(super) struct Stopped(Arc<str>);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stopped {}

/// Whether `error` is an attempt's [`Stopped`].
pub(super) fn is_stopped(error: &Error) -> bool {
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
    /// The last attempt the pipeline's retries allow: a failure is not retried.
    pub(super) last: bool,
}

impl AttemptKind {
    /// Whether the attempt looks for its run's commit before producing: a resumed run's, or a
    /// retry (the failed attempt may have committed before failing).
    pub(super) fn looks_first(self) -> bool {
        !self.fresh || self.number > 1
    }
}
