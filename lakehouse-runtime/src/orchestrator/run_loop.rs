//! Running a selection on a schedule: a new run every period, never two at once.

use std::time::Duration;

use super::{Orchestrator, RunConfig, RunReport, refuse_for_many_runs};
use crate::error::{Error, Result};

/// Runs in a row of a loop that could not start or be recorded before the loop gives up.
pub const MAX_FAILED_LOOP_RUNS: usize = 5;

/// What a loop ran ([`Orchestrator::run_loop_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopRuns {
    /// Runs made and recorded (whatever their pipelines' outcome).
    pub done: usize,
    /// Runs that could not start or be recorded.
    pub failed: usize,
    /// Ticks skipped because another process of this host was running some of the selected
    /// pipelines.
    pub skipped: usize,
}

impl Orchestrator {
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
        let mut skipped_in_a_row = 0;
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
            // The webhook hears of the first tick skipped beside a live run, not of each.
            let started = self.run_telling(config, skipped_in_a_row == 0).await;
            if !started.as_ref().is_err_and(super::is_beside_a_live_run) {
                skipped_in_a_row = 0;
            }
            match started {
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
                // Not this loop's failure: its next tick may find the other run ended.
                Err(error) if super::is_beside_a_live_run(&error) => {
                    runs.skipped += 1;
                    skipped_in_a_row += 1;
                    tracing::warn!(%error, "this tick's run is skipped");
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
            // (A skipped tick counts: a loop of N iterations ends after N ticks.)
            let done = iterations.is_some_and(|n| runs.done + runs.failed + runs.skipped >= n)
                || duration.is_some_and(|d| next.is_none_or(|offset| offset >= d));
            if done || *shutdown.borrow() || *self.abort.borrow() {
                break;
            }
        }
        // The last run's end, if the ledger could not take it then.
        self.record_unrecorded_ends().await;
        Ok(runs)
    }
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
