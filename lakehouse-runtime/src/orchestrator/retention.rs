//! Pruning the ledger after runs ([`RunConfig::ledger_retention`](super::RunConfig)), at most
//! once a day: a loop, or a run a scheduler starts every minute, keeps its ledger bounded
//! without a prune of its own.

use std::time::Duration;

use super::Orchestrator;
use crate::ledger::PruneOptions;
use crate::table::Timestamp;

/// How often a retention prunes the ledger at most.
pub const LEDGER_PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

impl Orchestrator {
    /// Prunes the ledger of the runs that ended longer ago than `retention`, unless this
    /// orchestrator tried, or any process pruned runs, within [`LEDGER_PRUNE_INTERVAL`]. Never
    /// an error: the run is done, and a prune that fails is logged (this orchestrator tries
    /// again a day later).
    pub(super) async fn prune_ledger_if_due(&self, retention: Duration) {
        let now = std::time::Instant::now();
        {
            let mut last = self
                .last_ledger_prune
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|at| now.duration_since(at) < LEDGER_PRUNE_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let micros = |duration: Duration| i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        let today = Timestamp::now();
        match self.ledger.pruned().await {
            Ok(Some(pruned))
                if today.0.saturating_sub(pruned.pruned_at.0) < micros(LEDGER_PRUNE_INTERVAL) =>
            {
                tracing::debug!(pruned_at = %pruned.pruned_at, "the ledger was pruned in the last day");
                return;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "could not tell when the ledger was last pruned; not pruned now");
                return;
            }
        }
        let ended_before = Timestamp(today.0.saturating_sub(micros(retention)));
        let options = PruneOptions {
            ended_before,
            dry_run: false,
        };
        match self.ledger.prune(options).await {
            Ok(report) if report.runs_pruned > 0 => tracing::info!(
                runs = report.runs_pruned,
                kept = report.runs_kept,
                %ended_before,
                "pruned the ledger of the runs that ended before the retention"
            ),
            Ok(_) => tracing::debug!(%ended_before, "no run to prune from the ledger"),
            Err(error) => tracing::warn!(
                %error,
                "could not prune the ledger; this process tries again after a day, a new one at \
                 its first run"
            ),
        }
    }
}
