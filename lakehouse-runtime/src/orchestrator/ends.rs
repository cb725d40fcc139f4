//! The end rows of runs the ledger could not take when they ended: queued, and appended before
//! the orchestrator's next run.

use std::sync::Arc;
use std::time::Instant;

use super::{Orchestrator, Status};
use crate::ledger::{Ledger, RunRecord};
use crate::table::Timestamp;

impl Orchestrator {
    /// Appends the end rows of earlier runs that could not be recorded (kept for the next try
    /// when they still cannot be): before a run, a resume or a backfill starts, and when a loop
    /// ends.
    pub(crate) async fn record_unrecorded_ends(&self) {
        append_unrecorded_ends(&self.ledger, &self.unrecorded_ends).await;
    }
}

/// The end rows of runs not in the ledger yet (see [`Orchestrator::record_unrecorded_ends`]).
#[derive(Clone, Default)]
pub(super) struct UnrecordedEnds {
    /// The ends to append; held by whoever appends (a run's end, the queue), so that each end
    /// is appended once and a later run finds an earlier end appended or queued.
    queue: Arc<tokio::sync::Mutex<Vec<RunRecord>>>,
    /// Ends queued without waiting for `queue` (a `Drop` cannot wait): moved into it by
    /// whoever holds it next.
    waiting: Arc<std::sync::Mutex<Vec<RunRecord>>>,
}

impl UnrecordedEnds {
    /// The queue, held, with the ends queued without waiting moved into it.
    pub(super) async fn lock(&self) -> tokio::sync::OwnedMutexGuard<Vec<RunRecord>> {
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
    pub(super) fn queue_now(&self, ends: impl IntoIterator<Item = RunRecord>) {
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
pub(super) struct EndOnDrop {
    pub(super) ledger: Ledger,
    pub(super) unrecorded: UnrecordedEnds,
    /// The run's start row; `None` once the execution ended (it records its own end).
    pub(super) start: Option<RunRecord>,
    pub(super) started: Instant,
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
