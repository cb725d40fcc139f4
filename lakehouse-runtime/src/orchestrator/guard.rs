//! What refuses a run at its start: another process of this host running some of its
//! pipelines, a full refresh or rebuild of them that did not finish, a logical time in the
//! future, and the settings of one run given to many.

use super::{Orchestrator, Plan};
use crate::error::{Error, Result};
use crate::ledger::{Liveness, RunProcess, RunRecord};
use crate::table::Timestamp;

/// A run refused because another process of this host runs some of its pipelines: a loop
/// skips its tick, rather than count it as a run that could not start.
#[derive(Debug)]
pub(super) struct BesideALiveRun(pub(super) String);

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
pub(super) const LIVE_RUN_LOOKBACK_MICROS: i64 = 24 * 3600 * 1_000_000;

/// How far ahead of this host's clock a run's logical time may be without `force`: a little
/// clock skew between hosts, not a typo.
pub(super) const FUTURE_RUN_AT_MARGIN_MICROS: i64 = 5 * 60 * 1_000_000;

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

impl Orchestrator {
    /// An error naming a run of some of `plan`'s pipelines still going in another process of
    /// this host (a cron run started while the last one runs): it would do all its work, then
    /// fail at its writes, two runs of an incremental pipeline at once reading the same new
    /// rows. Only runs started in the last day are looked for (a bounded read of the ledger), and
    /// only a process this host can see alive refuses: a run recorded by another host, or by a
    /// process that died, is left to the writes' own checks (a pod killed mid-run must not block
    /// every later run). This process's own runs (an application running several at once) are
    /// its own business.
    pub(super) async fn refuse_beside_a_live_run(&self, plan: &Plan) -> Result<()> {
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
            if process.liveness() != Liveness::Alive {
                continue;
            }
            let shared: Vec<&str> = other
                .planned_pipelines()
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
    pub(super) async fn refuse_over_unfinished_refresh(&self, plan: &Plan) -> Result<()> {
        let planned: Vec<&str> = plan.pipelines().map(|p| p.name).collect();
        let refreshes = self.ledger.refreshes().await?;
        for unfinished in refreshes.iter().filter(|r| r.status != "succeeded") {
            let rebuild = unfinished.refresh.as_deref() == Some("rebuild");
            // A pipeline that a later refresh of the same reach (a rebuild for a rebuild)
            // finished is done with, whatever the unfinished one left.
            // (Begun after the unfinished one's latest execution ended: a resume of it since
            // may have refreshed its tables again.)
            let ended = unfinished.finished_at.unwrap_or(unfinished.started_at);
            let mut redone: Vec<String> = Vec::new();
            let plan_of = |run: &RunRecord| -> Vec<String> {
                run.planned_pipelines().map(str::to_owned).collect()
            };
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
                .planned_pipelines()
                .filter(|name| planned.contains(name) && !redone.iter().any(|r| r == name))
                .collect();
            if !shared.is_empty() {
                return Err(unfinished_refresh_refusal(unfinished, &shared));
            }
        }
        Ok(())
    }
}

/// The error refusing a run of `shared`, pipelines the refresh `unfinished` planned and did not
/// finish: wait for it when it may still run, resume it when it died.
fn unfinished_refresh_refusal(unfinished: &RunRecord, shared: &[&str]) -> Error {
    let kind = match unfinished.refresh.as_deref() {
        Some("rebuild") => "--rebuild",
        _ => "--full-refresh",
    };
    let run = format!(
        "run `{}`, a {kind} of {}",
        unfinished.run_id,
        shared.join(", ")
    );
    let started = unfinished.started_at.to_rfc3339();
    let by = unfinished
        .run_process()
        .map(|process| format!(" by {process}"))
        .unwrap_or_default();
    let id = &unfinished.run_id;
    // Recorded as running by a process that cannot be checked from here (another host or
    // container), or began over a day ago: it may still run, and a resume beside it would
    // refresh its tables twice at once. (One whose process is gone died.)
    match (unfinished.status.as_str(), unfinished.process_liveness()) {
        // Begun over a day ago (past the live-run check's look back): a loop skips its ticks
        // beside it as beside any live run.
        ("running", Liveness::Alive) => Error::Other(Box::new(BesideALiveRun(format!(
            "{run}, is still running{by} (started {started}): wait for it to end, or run with \
             --force to go on without it"
        )))),
        ("running", Liveness::Unknown) => Error::msg(format!(
            "{run}, is recorded as running{by} (started {started}), by a process that cannot be \
             checked from here: if it still runs, wait for it to end; if its process died, \
             resume it (`orchestrate resume {id} --force`), or run with --force to go on \
             without it"
        )),
        (status, _) => Error::msg(format!(
            "{run}, did not finish ({status}): resume it first (`orchestrate resume {id}`), or \
             run with --force to go on without it"
        )),
    }
}
