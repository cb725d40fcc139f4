//! Backfills: one run per logical time over a range (`orchestrate run --from .. --to ..`), each
//! with its own `run_at`, in order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{Orchestrator, RunConfig, RunReport, Status};
use crate::error::{Error, Result};
use crate::ledger::{RunRecord, RunsAt};
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

/// What a backfill does with the logical times its pipelines already ran at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Redo {
    /// Runs only what is missing: a time at which every selected pipeline succeeded (in any
    /// run) is skipped, and at the others the selected pipelines without a success run in a new
    /// run (but for one whose write of a failed or cancelled run at that time is in its table,
    /// having landed after the run gave it up). Running a backfill again after a failure goes on
    /// where it stopped. A time whose run is still recorded as running (its process died, say)
    /// is an error asking to resume it first: it may have committed writes it did not record.
    #[default]
    Missing,
    /// Runs every time again in a new run, whatever ran at it before (an append table gets the
    /// rows of a time again).
    All,
}

/// What a backfill did.
#[derive(Clone, Debug, Default)]
pub struct BackfillReport {
    /// The runs made, in order.
    pub runs: Vec<RunReport>,
    /// The times skipped: every selected pipeline had already succeeded at them (or its write
    /// of a failed run at them had landed in its table).
    pub already_done: Vec<Timestamp>,
    /// Whether every time was handled: none of the runs failed and no shutdown stopped it.
    pub completed: bool,
}

impl Orchestrator {
    /// Runs the selection once per logical time of `run_ats`, in order, each with that `run_at`
    /// (see [`backfill_times`]), calling `on_report` as each run ends. With [`Redo::Missing`],
    /// only what did not succeed yet at a time runs (see there). Stops after the first run that
    /// does not succeed (a later day often builds on an earlier one: fix it and backfill again)
    /// or at shutdown. An SCD2 table refuses a `run_at` earlier than its history: a backfill
    /// that would write one so is refused before any run, naming it (leave it out, or backfill
    /// before it has a history).
    pub async fn backfill(
        &self,
        config: &RunConfig,
        run_ats: &[Timestamp],
        redo: Redo,
        mut on_report: impl FnMut(&RunReport),
    ) -> Result<BackfillReport> {
        // This orchestrator's own ends not recorded yet: a time's run may be one of them.
        self.record_unrecorded_ends().await;
        let (selected, mut history) = self
            .told_if_not_started(self.backfill_start(config, run_ats, redo).await)
            .await?;
        let mut report = BackfillReport::default();
        for (done, run_at) in run_ats.iter().enumerate() {
            if *self.shutdown.borrow() {
                tracing::warn!(done, left = run_ats.len() - done, "backfill stopped");
                return Ok(report);
            }
            tracing::info!(run_at = %run_at, time = done + 1, of = run_ats.len(), "backfill");
            let at = history.remove(run_at).unwrap_or_default();
            // A time that cannot run (a run at it still recorded as running) is told as a run
            // that could not start: the backfill stops there.
            let targets = self
                .told_if_not_started(self.targets_at(&selected, *run_at, at, redo).await)
                .await?;
            if targets.is_empty() {
                report.already_done.push(*run_at);
                continue;
            }
            let config = RunConfig {
                run_at: Some(*run_at),
                targets,
                direction: super::Direction::None,
                // Pruned, this backfill's own times would refuse it going on after a failure.
                ledger_retention: None,
                ..config.clone()
            };
            let run = self.run(&config).await?;
            on_report(&run);
            let succeeded = run.succeeded();
            report.runs.push(run);
            if !succeeded {
                tracing::warn!(
                    run_at = %run_at,
                    left = run_ats.len() - done - 1,
                    "a backfill run did not succeed; the later ones are not run"
                );
                return Ok(report);
            }
        }
        report.completed = true;
        Ok(report)
    }

    /// What [`Orchestrator::backfill`] would run at each of `run_ats`, running nothing: the
    /// pipelines of each time (none: already done), by the same rules, errors included (a run
    /// at one of the times still recorded as running). Later times assume the earlier ones
    /// succeed.
    pub async fn backfill_preview(
        &self,
        config: &RunConfig,
        run_ats: &[Timestamp],
        redo: Redo,
    ) -> Result<Vec<(Timestamp, Vec<String>)>> {
        let (selected, mut history) = self.backfill_start(config, run_ats, redo).await?;
        let mut preview = Vec::with_capacity(run_ats.len());
        for run_at in run_ats {
            let at = history.remove(run_at).unwrap_or_default();
            preview.push((
                *run_at,
                self.targets_at(&selected, *run_at, at, redo).await?,
            ));
        }
        Ok(preview)
    }

    /// The selected pipelines, and what ran at the backfill's times (with [`Redo::Missing`]).
    async fn backfill_start(
        &self,
        config: &RunConfig,
        run_ats: &[Timestamp],
        redo: Redo,
    ) -> Result<(Vec<&'static str>, HashMap<Timestamp, RunsAt>)> {
        let plan = self.plan(config)?;
        super::refuse_for_many_runs(config, "a backfill", "a backfill gives each run its time")?;
        if let Some(last) = run_ats.iter().max()
            && !config.force
        {
            super::refuse_future_run_at(*last)?;
        }
        let selected: Vec<&'static str> = plan.pipelines().map(|p| p.name).collect();
        let history = match (redo, run_ats.iter().min(), run_ats.iter().max()) {
            (Redo::Missing, Some(first), Some(last)) => {
                self.refuse_over_pruned_runs(*first, *last).await?;
                self.ledger
                    .runs_between(*first, Timestamp(last.0.saturating_add(1)))
                    .await?
            }
            _ => HashMap::new(),
        };
        self.refuse_scd2_going_back(&selected, run_ats, &history, redo)
            .await?;
        Ok((selected, history))
    }

    /// Refuses a backfill skipping the times already done whose times, `first` to `last`,
    /// reach the logical times of runs pruned from the ledger: which of them ran is no longer
    /// known, and every one would run again as never done.
    async fn refuse_over_pruned_runs(&self, first: Timestamp, last: Timestamp) -> Result<()> {
        let Some(pruned) = self.ledger.pruned().await? else {
            return Ok(());
        };
        if first > pruned.logical_times_through || last < pruned.logical_times_from {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "this backfill's times, from {first} to {last}, reach the logical times of runs \
             pruned from the ledger on {} (`orchestrate prune-ledger`), from {} to {}: which of \
             them were already done is not known. Backfill outside them, or with --rerun to run \
             every time again",
            pruned.pruned_at, pruned.logical_times_from, pruned.logical_times_through
        )))
    }

    /// Refuses a backfill that would write an SCD2 table at a time earlier than its history:
    /// each such run would be refused, and the backfill stop at its first time, again at every
    /// try. Every such table is named, with how to leave it out.
    async fn refuse_scd2_going_back(
        &self,
        selected: &[&'static str],
        run_ats: &[Timestamp],
        history: &HashMap<Timestamp, RunsAt>,
        redo: Redo,
    ) -> Result<()> {
        let mut refused = Vec::new();
        for name in selected {
            let Some(pipeline) = self.registry.get(name) else {
                continue;
            };
            if !matches!(pipeline.output.mode, crate::table::WriteMode::Scd2) {
                continue;
            }
            let Some(first) = self.first_write_at(name, run_ats, history, redo).await? else {
                continue;
            };
            // (Or its pipeline's latest success: a run that changed nothing wrote no version.)
            let stored = self
                .warehouse
                .scd2_history_past(pipeline.output, first)
                .await?;
            let succeeded = self.ledger.latest_success_run_at(name).await?;
            if let Some(reaches) = stored.max(succeeded.filter(|t| t.0 > first.0)) {
                refused.push((*name, pipeline.output.qualified_name(), reaches, first));
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        let tables: Vec<String> = refused
            .iter()
            .map(|(name, table, reaches, first)| {
                format!("`{name}` writes SCD2 table {table}, whose history reaches {reaches}, at {first}")
            })
            .collect();
        let exclude: Vec<String> = refused
            .iter()
            .map(|(name, ..)| format!("--exclude {name}"))
            .collect();
        Err(Error::Refused(format!(
            "this backfill would write SCD2 history before the history it has: {}; versions are \
             written in time order, so each of these runs would be refused. Leave them out \
             (`{}`; `{}+` leaves out what reads it too), or rebuild the table to replay its \
             history",
            tables.join("; "),
            exclude.join(" "),
            refused[0].0
        )))
    }

    /// The first of `run_ats` at which `pipeline` would write, by the rules of
    /// [`Orchestrator::targets_at`]: not a time it succeeded at, or whose failed run's write
    /// landed. `None` when it writes at none, or when a time before stops the backfill (a run
    /// there still recorded as running, which the backfill tells of as such).
    async fn first_write_at(
        &self,
        pipeline: &str,
        run_ats: &[Timestamp],
        history: &HashMap<Timestamp, RunsAt>,
        redo: Redo,
    ) -> Result<Option<Timestamp>> {
        let mut times = run_ats.to_vec();
        times.sort();
        for run_at in times {
            let at = match (redo, history.get(&run_at)) {
                (Redo::All, _) | (Redo::Missing, None) => return Ok(Some(run_at)),
                (Redo::Missing, Some(at)) => at,
            };
            if at.succeeded.contains(pipeline) || at.superseded.contains(pipeline) {
                continue;
            }
            if at
                .unfinished
                .iter()
                .any(|run| run.status == Status::Running.as_str())
            {
                return Ok(None);
            }
            let target = [pipeline.to_owned()];
            if self
                .landed_writes(&at.unfinished, &target)
                .await?
                .is_empty()
            {
                return Ok(Some(run_at));
            }
        }
        Ok(None)
    }

    /// The pipelines of `selected` to run at `run_at`, given what ran at it (`at`): all of them
    /// with [`Redo::All`]; else those without a success at it, but for those whose write of a
    /// failed run landed. Empty: the time is done.
    async fn targets_at(
        &self,
        selected: &[&'static str],
        run_at: Timestamp,
        at: RunsAt,
        redo: Redo,
    ) -> Result<Vec<String>> {
        if redo == Redo::All {
            return Ok(selected.iter().map(|p| (*p).to_owned()).collect());
        }
        // A success superseded by a later run's write counts as done: writing its time now
        // could roll the table back, stamp later rows or files with it, or be refused (SCD2);
        // its note says how to write it deliberately.
        let mut done = at.succeeded.clone();
        done.extend(at.superseded.iter().cloned());
        let mut targets = missing(selected, &done);
        if targets.is_empty() {
            tracing::info!(run_at = %run_at, "every selected pipeline already succeeded at this time");
            return Ok(targets);
        }
        // A run still recorded as running (its process died, or it runs) may have committed
        // writes it never recorded: its own resume finds them.
        let planned = |run: &&RunRecord| {
            run.planned.as_deref().is_none_or(|planned| {
                planned
                    .split_whitespace()
                    .any(|p| targets.iter().any(|t| t == p))
            })
        };
        if let Some(running) = at
            .unfinished
            .iter()
            .filter(|run| run.status == Status::Running.as_str())
            .find(planned)
        {
            return Err(Error::msg(format!(
                "run `{id}` at {run_at} is recorded as running: it still runs, or its process \
                 died before it recorded what it wrote; `orchestrate resume {id}` (with --force \
                 if its process cannot be checked from here), then backfill again",
                id = running.run_id
            )));
        }
        // A failed or cancelled run's write may have landed after it was given up (a time
        // limit or fail-fast stops the pipeline, not a commit already under way).
        let landed = self.landed_writes(&at.unfinished, &targets).await?;
        targets.retain(|target| !landed.contains(target));
        Ok(targets)
    }
}

impl Orchestrator {
    /// The pipelines of `targets` whose write in one of the failed or cancelled `runs` is in
    /// their table (committed after the run gave it up), though the ledger records no success.
    async fn landed_writes(&self, runs: &[RunRecord], targets: &[String]) -> Result<Vec<String>> {
        let mut landed = Vec::new();
        for run in runs.iter().filter(|r| r.status != Status::Running.as_str()) {
            // A run recorded before plans were: it may have planned any of them.
            let planned: Option<Vec<&str>> = run
                .planned
                .as_deref()
                .map(|p| p.split_whitespace().collect());
            let was_planned = |target: &&String| {
                planned
                    .as_ref()
                    .is_none_or(|p| p.contains(&target.as_str()))
            };
            for target in targets.iter().filter(was_planned) {
                let Some(pipeline) = self.registry.get(target) else {
                    continue;
                };
                // Cheap first: the table's latest transaction of the pipeline is it (landed),
                // or below it (not); above, the log is read back to the run's first start (a
                // resumed run's latest execution starts later than its write may have landed).
                let latest = self
                    .warehouse
                    .transaction_version(pipeline.output, pipeline.name)
                    .await?;
                let is_landed = match latest {
                    Some(latest) if latest == run.sequence => true,
                    Some(latest) if latest > run.sequence => {
                        let first_start = self
                            .ledger
                            .run(&run.run_id)
                            .await?
                            .iter()
                            .map(|r| r.started_at)
                            .min()
                            .unwrap_or(run.started_at);
                        self.warehouse
                            .transaction_committed_since(
                                pipeline.output,
                                pipeline.name,
                                run.sequence,
                                first_start,
                            )
                            .await?
                    }
                    _ => false,
                };
                if is_landed {
                    tracing::warn!(
                        pipeline = %target,
                        run_id = %run.run_id,
                        "the write of a run recorded as {} is in the table (it landed after \
                         the run gave it up): not run again at this time",
                        run.status
                    );
                    landed.push(target.clone());
                }
            }
        }
        Ok(landed)
    }
}

/// The pipelines of `selected` not in `succeeded`, in order.
fn missing(selected: &[&'static str], succeeded: &HashSet<String>) -> Vec<String> {
    selected
        .iter()
        .filter(|p| !succeeded.contains(**p))
        .map(|p| (*p).to_owned())
        .collect()
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
