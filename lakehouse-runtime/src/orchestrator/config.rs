//! How to run: [`RunConfig`], its skip policy and per-pipeline overrides.

use std::collections::HashMap;
use std::time::Duration;

use super::{Direction, Order, Plan, plan_excluding};
use crate::ctx::Settings;
use crate::error::{Error, Result};
use crate::graph::Registry;
use crate::table::Timestamp;

/// When a pipeline is skipped because of its upstreams' failures. Only upstreams that are part
/// of the run count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SkipPolicy {
    /// Skip when any upstream in the run failed or was skipped (the default, as dbt, Dagster
    /// and Airflow do): a pipeline never builds on an upstream that failed to refresh, and
    /// `resume` (or a backfill run again) runs it after its upstream.
    #[default]
    Any,
    /// Skip only when every upstream in the run failed or was skipped: a pipeline with one
    /// upstream that succeeded runs on the others' previous tables, and is not run again by
    /// `resume` once they are mended.
    All,
}

/// Retry and timeout settings of one pipeline, overriding its declaration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineOverride {
    /// Extra attempts.
    pub retries: Option<u32>,
    /// Time limit per attempt.
    pub timeout: Option<Duration>,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Targets and selectors (all pipelines when empty); see [`plan()`](super::plan()).
    pub targets: Vec<String>,
    /// Selectors of pipelines left out of the targets' (see [`plan_excluding`]).
    pub exclude: Vec<String>,
    /// Neighbours selected with plain names.
    pub direction: Direction,
    /// Grouping, and when pipelines start (see [`Order`]).
    pub order: Order,
    /// Pipelines running at once (1 is serial).
    pub concurrency: usize,
    /// On the first failure, stop starting pipelines and cancel running ones.
    pub fail_fast: bool,
    /// Skip pipelines whose upstreams failed (per `skip_policy`).
    pub skip_downstream_on_failure: bool,
    /// Which upstream failures skip a pipeline.
    pub skip_policy: SkipPolicy,
    /// Extra attempts for pipelines that declare none.
    pub default_retries: u32,
    /// Time limit per attempt for pipelines that declare none.
    pub default_timeout: Option<Duration>,
    /// Per-pipeline overrides of the declarations.
    pub overrides: HashMap<String, PipelineOverride>,
    /// First retry delay; doubled per attempt, capped by `max_retry_delay`, jittered down to
    /// half of it at most.
    pub retry_delay: Duration,
    /// Cap of the retry delay (raised to `retry_delay` when that is longer).
    pub max_retry_delay: Duration,
    /// How long an attempt cut short (its time limit, fail-fast) is given to stop, and the
    /// check of whether its write committed to answer, before the run goes on without them
    /// (30 s; an aborted run's is 5 s at most). An attempt that has not stopped by then (it
    /// blocks without awaiting) is left running, and its pipeline not started again until it
    /// ends.
    pub cut_wait: Duration,
    /// A new run: go on although a full refresh or rebuild of its pipelines did not finish, and
    /// accept a `run_at` in the future. A resume: resume a run recorded as running whose
    /// process cannot be checked from here.
    pub force: bool,
    /// A resume: re-execute the pipelines that succeeded too (one whose write this run committed
    /// is replayed from its commit, its sources not called again; one that committed nothing
    /// runs again).
    pub rerun_succeeded: bool,
    /// Settings handed to pipelines.
    pub settings: Settings,
    /// The logical time of new runs (default: now), e.g. to backfill a past day.
    pub run_at: Option<Timestamp>,
    /// Read every `Changes<T>` input whole, as on a pipeline's first run, instead of the rows
    /// new since its last success (and every file `Ctx::read_new_files` lists, ingested or
    /// not): after an upstream table was recreated, vacuumed past the cursor or lost its log. Merge and SCD2 outputs take the rows again unchanged; an append
    /// output gets them twice (clear it first, or set `rebuild`).
    pub full_refresh: bool,
    /// With `full_refresh`: a pipeline reading `Changes<T>` (or new files) into an append table
    /// replaces that
    /// table's rows with what it makes of its inputs read whole, in one commit, instead of
    /// adding them again (Delta Live Tables' full refresh). Rows its upstreams no longer hold
    /// (vacuumed, or lost with a recreated table) are then gone from it too.
    pub rebuild: bool,
    /// After the run (each run of a loop; a backfill does not prune: a backfill going on over
    /// the times it pruned would be refused), prune the ledger of the runs that ended longer ago
    /// than this ([`crate::ledger::Ledger::prune`]), at most once a day: not when this
    /// orchestrator tried, or any process pruned runs, in the last [`LEDGER_PRUNE_INTERVAL`](super::LEDGER_PRUNE_INTERVAL). A
    /// prune that fails is logged; the run's outcome stays. Not after a run the ledger could not
    /// record.
    pub ledger_retention: Option<Duration>,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            targets: Vec::new(),
            exclude: Vec::new(),
            direction: Direction::None,
            order: Order::ProcessFirst,
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            fail_fast: false,
            skip_downstream_on_failure: true,
            skip_policy: SkipPolicy::Any,
            default_retries: 0,
            default_timeout: None,
            overrides: HashMap::new(),
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            cut_wait: Duration::from_secs(30),
            force: false,
            rerun_succeeded: false,
            settings: Settings::new(),
            run_at: None,
            full_refresh: false,
            rebuild: false,
            ledger_retention: None,
        }
    }
}

impl RunConfig {
    /// The plan this configuration selects from `registry` (no warehouse needed).
    pub fn plan(&self, registry: &Registry) -> Result<Plan> {
        plan_excluding(
            registry,
            &self.targets,
            &self.exclude,
            self.direction,
            self.order,
        )
        .map_err(|e| Error::msg(e.to_string()))
    }
}

/// How a run reads its incremental inputs, when not from where they were last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refresh {
    /// [`RunConfig::full_refresh`].
    Full,
    /// [`RunConfig::rebuild`].
    Rebuild,
}

impl Refresh {
    /// The refresh `config` asks for, if any.
    pub(super) fn of(config: &RunConfig) -> Option<Refresh> {
        if config.rebuild {
            Some(Refresh::Rebuild)
        } else if config.full_refresh {
            Some(Refresh::Full)
        } else {
            None
        }
    }

    /// Its name in `lakehouse.runs.refresh`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Refresh::Full => "full",
            Refresh::Rebuild => "rebuild",
        }
    }

    /// The refresh named `name` in `lakehouse.runs.refresh`.
    pub(super) fn parse(name: &str) -> Option<Refresh> {
        [Refresh::Full, Refresh::Rebuild]
            .into_iter()
            .find(|refresh| refresh.as_str() == name)
    }
}

/// Refuses the settings of one run in a config for many (`what`: a loop, a backfill): one
/// logical time would be every run's (`why` the runs have their own), and a full refresh or
/// rebuild would read every input whole at each run (an append table getting its rows again).
pub(super) fn refuse_for_many_runs(config: &RunConfig, what: &str, why: &str) -> Result<()> {
    let one_run = [
        (config.run_at.is_some(), "`run_at`", why),
        (
            config.full_refresh,
            "`full_refresh`",
            "each run would read its inputs whole again",
        ),
        (
            config.rebuild,
            "`rebuild`",
            "each run would rebuild its tables again",
        ),
    ];
    match one_run.iter().find(|(set, ..)| *set) {
        Some((_, field, reason)) => Err(Error::msg(format!(
            "{what} cannot take {field} (a setting of one run): {reason}; make that run on its \
             own, before it"
        ))),
        None => Ok(()),
    }
}
