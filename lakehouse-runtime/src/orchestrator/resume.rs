//! Resuming a run: its failed, skipped, cancelled and never started pipelines run again with
//! its `run_at` and sequence, so the writes it committed are not repeated.

use std::collections::{BTreeMap, HashMap};

use super::{
    Direction, Execution, Orchestrator, Refresh, RunConfig, RunReport, Status, rows_of_succeeded,
    written_order,
};
use crate::ctx::RunInfo;
use crate::error::{Error, Result};
use crate::ledger::{Liveness, RunRecord};
use crate::table::Timestamp;

impl Orchestrator {
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
            let unknown = self.ledger.no_such_run(run_id).await;
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
}
