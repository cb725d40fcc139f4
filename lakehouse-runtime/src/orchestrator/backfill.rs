//! Backfills: one run per logical time over a range (`orchestrate run --from .. --to ..`), each
//! with its own `run_at`, in order.

use std::time::Duration;

use super::{Orchestrator, RunConfig, RunReport};
use crate::error::{Error, Result};
use crate::table::Timestamp;

/// The most runs one backfill makes: a range and step that ask for more are a typo (a step of
/// `1s` over a year), refused before anything runs.
pub const MAX_BACKFILL_RUNS: usize = 10_000;

/// The logical times of a backfill from `from` (included) to `to` (excluded) every `step`: the
/// first of each day of a month for `--from 2026-11-01 --to 2026-12-01 --step 1d`.
pub fn backfill_times(from: Timestamp, to: Timestamp, step: Duration) -> Result<Vec<Timestamp>> {
    let step_micros = i64::try_from(step.as_micros())
        .ok()
        .filter(|micros| *micros > 0)
        .ok_or_else(|| {
            Error::msg(format!(
                "a backfill step must be at least 1µs, not {step:?}"
            ))
        })?;
    if from >= to {
        return Err(Error::msg(format!(
            "a backfill runs from --from {from} up to, not including, --to {to}: --to must be \
             later"
        )));
    }
    let span =
        to.0.checked_sub(from.0)
            .ok_or_else(|| Error::msg(format!("a backfill from {from} to {to} spans too long")))?;
    let runs = (span - 1) / step_micros + 1;
    if runs > MAX_BACKFILL_RUNS as i64 {
        return Err(Error::msg(format!(
            "a backfill from {from} to {to} every {} would make {runs} runs, more than \
             {MAX_BACKFILL_RUNS}: take a longer step or a shorter range",
            humantime::format_duration(step)
        )));
    }
    Ok((0..runs)
        .map(|n| Timestamp(from.0 + n * step_micros))
        .collect())
}

impl Orchestrator {
    /// Runs the selection once per logical time of `run_ats`, in order, each a new run with that
    /// `run_at` (see [`backfill_times`]), calling `on_report` as each ends. Stops after the first
    /// run that does not succeed (a later day often builds on an earlier one; `resume` it, then
    /// backfill the rest) or at shutdown. An SCD2 table refuses a `run_at` earlier than its
    /// history: backfill before it has one.
    pub async fn backfill(
        &self,
        config: &RunConfig,
        run_ats: &[Timestamp],
        mut on_report: impl FnMut(&RunReport),
    ) -> Result<Vec<RunReport>> {
        let mut reports = Vec::with_capacity(run_ats.len());
        for (done, run_at) in run_ats.iter().enumerate() {
            if *self.shutdown.borrow() {
                tracing::warn!(done, left = run_ats.len() - done, "backfill stopped");
                break;
            }
            let config = RunConfig {
                run_at: Some(*run_at),
                ..config.clone()
            };
            tracing::info!(run_at = %run_at, run = done + 1, of = run_ats.len(), "backfill run");
            let report = self.run(&config).await?;
            on_report(&report);
            let succeeded = report.succeeded();
            reports.push(report);
            if !succeeded {
                tracing::warn!(
                    run_at = %run_at,
                    left = run_ats.len() - done - 1,
                    "a backfill run did not succeed; the later ones are not run"
                );
                break;
            }
        }
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).expect("a timestamp")
    }

    #[test]
    fn times_run_from_the_start_up_to_the_end_excluded() {
        let day = Duration::from_secs(86_400);
        let times = backfill_times(at("2026-11-01T00:00:00Z"), at("2026-11-04T00:00:00Z"), day)
            .expect("three days");
        let texts: Vec<String> = times.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            texts,
            [
                "2026-11-01T00:00:00Z",
                "2026-11-02T00:00:00Z",
                "2026-11-03T00:00:00Z"
            ]
        );
        // A step that does not divide the range: the last time is the last one before the end.
        let times = backfill_times(
            at("2026-11-01T00:00:00Z"),
            at("2026-11-01T01:00:01Z"),
            Duration::from_secs(1800),
        )
        .expect("three half hours");
        assert_eq!(times.len(), 3);
    }

    #[test]
    fn empty_reversed_and_oversized_ranges_are_refused() {
        let day = Duration::from_secs(86_400);
        let start = at("2026-11-01T00:00:00Z");
        let error = backfill_times(start, start, day).expect_err("empty");
        assert!(error.to_string().contains("--to must be later"), "{error}");
        let error = backfill_times(start, at("2027-11-01T00:00:00Z"), Duration::from_secs(1))
            .expect_err("too many");
        assert!(
            error
                .to_string()
                .contains("would make 31536000 runs, more than 10000"),
            "{error}"
        );
        let error =
            backfill_times(start, at("2026-11-02T00:00:00Z"), Duration::ZERO).expect_err("no step");
        assert!(error.to_string().contains("at least 1µs"), "{error}");
    }
}
