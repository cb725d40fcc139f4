//! A table's commit history (`orchestrate history`): Delta's `DESCRIBE HISTORY`, with the run
//! that made each commit.

use std::collections::HashMap;

use futures::StreamExt as _;

use super::Warehouse;
use crate::error::{Error, Result};
use crate::table::{TableDef, Timestamp};

/// One commit of a table, newest first in [`Warehouse::history`].
#[derive(Clone, Debug, PartialEq)]
pub struct TableCommit {
    /// The version the commit made.
    pub version: u64,
    /// When it was committed.
    pub committed_at: Option<Timestamp>,
    /// Delta's operation: `WRITE`, `MERGE`, `DELETE`, `OPTIMIZE`, ...
    pub operation: String,
    /// The operation's parameters (`mode`, `predicate`, ...), as Delta records them.
    pub parameters: HashMap<String, serde_json::Value>,
    /// The operation's metrics (`num_added_rows`, `num_removed_files`, ...).
    pub metrics: HashMap<String, serde_json::Value>,
    /// The orchestrator run that made it, if a pipeline did.
    pub run_id: Option<String>,
}

impl TableCommit {
    /// The metric `name` as a count, if recorded.
    pub fn metric(&self, name: &str) -> Option<u64> {
        let value = self.metrics.get(name)?;
        value
            .as_u64()
            .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
    }
}

impl Warehouse {
    /// The latest `limit` commits of `table`, newest first (none for a table never written).
    pub async fn history(
        &self,
        table: &'static TableDef,
        limit: usize,
    ) -> Result<Vec<TableCommit>> {
        let qualified = table.qualified_name();
        let Some(delta) = self.load(table).await? else {
            return Ok(Vec::new());
        };
        let Some(latest) = delta.version() else {
            return Ok(Vec::new());
        };
        let mut commits = Vec::new();
        let mut history = delta.history(Some(limit));
        // Newest first: the n-th is version `latest - n`.
        let mut version = Some(latest);
        while let (Some(info), Some(at)) = (history.next().await, version) {
            let info = info.map_err(|e| Error::delta(&qualified, e))?;
            let mut metrics = HashMap::new();
            if let Some(serde_json::Value::Object(recorded)) = info.info.get("operationMetrics") {
                metrics.extend(recorded.clone());
            }
            commits.push(TableCommit {
                version: at,
                committed_at: info.timestamp.map(|ms| Timestamp(ms.saturating_mul(1000))),
                operation: info.operation.clone().unwrap_or_default(),
                parameters: info.operation_parameters.clone().unwrap_or_default(),
                metrics,
                run_id: info
                    .info
                    .get(crate::ledger::RUN_ID_KEY)
                    .and_then(|id| id.as_str())
                    .map(str::to_owned),
            });
            version = at.checked_sub(1);
        }
        Ok(commits)
    }
}
