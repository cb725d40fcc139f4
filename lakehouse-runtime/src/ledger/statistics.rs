//! What the runs table's file statistics answer without reading its records: the next run's
//! sequence and a bound on the recorded `run_at`s (a scan when a file has no statistics).

use arrow::array::{Array, AsArray as _};
use datafusion::logical_expr::col;

use super::{Ledger, RunRecord};
use crate::error::{Error, Result};
use crate::table::{Table as _, Timestamp};

impl Ledger {
    /// The sequence of the next run: one more than the largest recorded. Read from the Delta
    /// statistics of the runs table (its log only), so starting a run does not read every run
    /// record ever written; a file without statistics falls back to scanning the records.
    pub async fn next_sequence(&self) -> Result<i64> {
        Ok(self
            .runs_maximum("sequence")
            .await?
            .unwrap_or(0)
            .saturating_add(1))
    }

    /// A bound every recorded `run_at` is below (of any run, resumed or backfilled), or `None`
    /// without runs; read like [`Ledger::next_sequence`]. Delta statistics keep timestamps to
    /// the millisecond, so a bound from them is one millisecond above their maximum.
    pub async fn run_at_bound(&self) -> Result<Option<Timestamp>> {
        if let Some(max) = self.runs_maximum_from_statistics("run_at").await? {
            return Ok(max.map(|micros| Timestamp(micros.saturating_add(1_000))));
        }
        Ok(self
            .runs_maximum_by_scan("run_at")
            .await?
            .map(|micros| Timestamp(micros.saturating_add(1))))
    }

    /// The largest value of `column` (integer or timestamp) in the runs table, `None` without
    /// runs: from the files' statistics, or a scan when a file has none.
    async fn runs_maximum(&self, column: &str) -> Result<Option<i64>> {
        match self.runs_maximum_from_statistics(column).await? {
            Some(max) => Ok(max),
            None => self.runs_maximum_by_scan(column).await,
        }
    }

    /// The largest value of `column` by a scan of the runs table's records.
    async fn runs_maximum_by_scan(&self, column: &str) -> Result<Option<i64>> {
        let session = self.warehouse.session();
        let df = self
            .warehouse
            .read(&session, RunRecord::DEF)
            .await?
            .aggregate(
                vec![],
                vec![datafusion::functions_aggregate::expr_fn::max(col(column))],
            )?;
        let batches = df.collect().await?;
        let Some(batch) = batches.first().filter(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let max = crate::store::integers(batch.column(0))?;
        let max = max.as_primitive::<arrow::datatypes::Int64Type>();
        Ok((!max.is_null(0)).then(|| max.value(0)))
    }

    /// The largest value of `column` from the runs table's file statistics: `Some(None)` without
    /// runs, `None` when a file has no statistics for it.
    async fn runs_maximum_from_statistics(&self, column: &str) -> Result<Option<Option<i64>>> {
        let qualified = RunRecord::DEF.qualified_name();
        // The table this process appends to is kept open: reading the commits since its last
        // append (usually none) is enough. Otherwise, or if that fails, the log is read.
        let slot = self.slot(RunRecord::DEF.name);
        let mut open = slot.lock().await;
        let refreshed = match open.as_mut() {
            Some(table_open) => match table_open.refresh().await {
                Ok(state) => Some(state.add_actions_table(true)),
                Err(error) => {
                    tracing::debug!(%error, "reopening {qualified}");
                    None
                }
            },
            None => None,
        };
        let files = match refreshed {
            Some(files) => files,
            None => {
                *open = None;
                drop(open);
                let Some(delta) = self.warehouse.load(RunRecord::DEF).await? else {
                    return Ok(Some(None));
                };
                let snapshot = delta.snapshot().map_err(|e| Error::delta(&qualified, e))?;
                snapshot.add_actions_table(true)
            }
        }
        .map_err(|e| Error::delta(&qualified, e))?;
        crate::store::maximum_from_statistics(&files, column)
    }
}
