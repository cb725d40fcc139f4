//! A table's commit history (`orchestrate history`): Delta's `DESCRIBE HISTORY`, with the run
//! that made each commit; and the version a table had at a time (`sql --as-of`).

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::kernel::CommitInfo;

use super::Warehouse;
use crate::error::{Error, Result};
use crate::table::{TableDef, Timestamp};

/// One commit of a table, newest first in [`Warehouse::history`].
#[derive(Clone, Debug, PartialEq)]
pub struct TableCommit {
    /// The version the commit made.
    pub version: u64,
    /// When it was committed (its `commitInfo` time).
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

/// How many of a table's latest commits [`Warehouse::stale_tables`] looks through for a write.
const FRESHNESS_SEARCH_DEPTH: usize = 100;

impl TableCommit {
    /// Whether the commit wrote data: a pipeline's, or a write, merge, update or delete, as
    /// delta-rs and Spark name them (not a compaction, vacuum, restore or metadata change).
    pub fn writes_data(&self) -> bool {
        self.run_id.is_some()
            || matches!(
                self.operation.as_str(),
                "WRITE"
                    | "MERGE"
                    | "UPDATE"
                    | "DELETE"
                    | "STREAMING UPDATE"
                    | "CREATE TABLE AS SELECT"
                    | "CREATE OR REPLACE TABLE AS SELECT"
                    | "REPLACE TABLE AS SELECT"
                    | "COPY INTO"
                    | "TRUNCATE"
            )
    }

    /// The metric `name` as a count, if recorded.
    pub fn metric(&self, name: &str) -> Option<u64> {
        let value = self.metrics.get(name)?;
        value
            .as_u64()
            .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
    }

    fn of(version: u64, info: CommitInfo) -> TableCommit {
        let mut metrics = HashMap::new();
        if let Some(serde_json::Value::Object(recorded)) = info.info.get("operationMetrics") {
            metrics.extend(recorded.clone());
        }
        TableCommit {
            version,
            committed_at: commit_time(&info),
            operation: info.operation.clone().unwrap_or_default(),
            parameters: info.operation_parameters.clone().unwrap_or_default(),
            metrics,
            run_id: info
                .info
                .get(crate::ledger::RUN_ID_KEY)
                .and_then(|id| id.as_str())
                .map(str::to_owned),
        }
    }
}

impl Warehouse {
    /// The latest `limit` commits of `table`, newest first, each read from its own log entry
    /// (none for a table never written; entries the log no longer has end the list).
    pub async fn history(
        &self,
        table: &'static TableDef,
        limit: usize,
    ) -> Result<Vec<TableCommit>> {
        let Some(delta) = self.load(table).await? else {
            return Ok(Vec::new());
        };
        let Some(latest) = delta.version() else {
            return Ok(Vec::new());
        };
        let mut commits = Vec::new();
        for version in (0..=latest).rev().take(limit) {
            match commit_info(&delta, table, version).await? {
                Some(info) => commits.push(TableCommit::of(version, info)),
                None => break,
            }
        }
        Ok(commits)
    }

    /// How long `table`'s log keeps the entries of versions (`delta.logRetentionDuration`, 30
    /// days unless set): older ones are removed at checkpoints, and with them the versions'
    /// history. `None` for a table not written yet.
    pub async fn log_retention(
        &self,
        table: &'static TableDef,
    ) -> Result<Option<std::time::Duration>> {
        use deltalake::table::config::TablePropertiesExt as _;
        let Some(delta) = self.load(table).await? else {
            return Ok(None);
        };
        let snapshot = delta
            .snapshot()
            .map_err(|e| Error::delta(table.qualified_name(), e))?;
        Ok(Some(snapshot.table_config().log_retention_duration()))
    }

    /// The version `delta` (the table of `table`) had at `time`: the latest whose commit time is
    /// at or before it. An error if every readable commit is later (the table did not exist
    /// yet, or the log no longer reaches back so far).
    pub(crate) async fn version_at(
        &self,
        delta: &DeltaTable,
        table: &'static TableDef,
        time: Timestamp,
    ) -> Result<u64> {
        let latest = delta.version().unwrap_or_default();
        // A binary search reads O(log n) commits (a table written every minute has hundreds of
        // thousands); commit times are taken as ordered, as Delta's writers make them. A commit
        // without a time falls back to reading them one by one.
        let mut earliest = None;
        match search_version_at(delta, table, time, latest).await? {
            Search::Found(found) => return Ok(found),
            // Every readable commit is later: said without reading them all.
            Search::Before { version, committed } => earliest = Some((version, Some(committed))),
            Search::Scan => {
                for version in (0..=latest).rev() {
                    let Some(info) = commit_info(delta, table, version).await? else {
                        break;
                    };
                    match commit_time(&info) {
                        Some(committed) if committed <= time => return Ok(version),
                        committed => earliest = Some((version, committed)),
                    }
                }
            }
        }
        let since = match earliest {
            Some((version, Some(committed))) => {
                format!(": its earliest readable version, {version}, was committed at {committed}")
            }
            _ => String::new(),
        };
        Err(Error::msg(format!(
            "{} has no version as of {time}{since} (see `orchestrate history {}`)",
            table.qualified_name(),
            table.qualified_name()
        )))
    }
}

/// `delta` (the table of `table`) loaded at `version`. A version its log can no longer rebuild
/// (the commits it is made of were cleaned up) is said so, rather than as delta-rs's "not a
/// Delta table".
pub(crate) async fn load_version(
    delta: &mut DeltaTable,
    table: &TableDef,
    version: u64,
) -> Result<()> {
    let Err(error) = delta.load_version(version).await else {
        return Ok(());
    };
    // The kernel finds no log segment for it (not, say, a store that did not answer), and the
    // log lacks the version's commit, or the first one (cleaned up past the last checkpoint
    // at or before the version).
    // (Or one without the protocol and metadata a segment starting past commit 0 lacks.)
    let text = error.to_string();
    let no_segment = matches!(error, deltalake::DeltaTableError::NotATable(_))
        || text.contains("log segment")
        || text.contains("found in delta log");
    if no_segment && (commit_gone(delta, version).await || commit_gone(delta, 0).await) {
        let qualified = table.qualified_name();
        return Err(Error::msg(format!(
            "{qualified} cannot be read at version {version}: its log no longer has the commits \
             that version is made of (Delta cleans up log entries older than the table's \
             `delta.logRetentionDuration`, 30 days by default, at checkpoints); `orchestrate \
             history {qualified}` lists the versions it still has"
        )));
    }
    Err(Error::delta(table.qualified_name(), error))
}

/// Whether the log of `delta` no longer has the commit of `version` (cleaned up past its
/// retention); an error reading it is not that.
pub(crate) async fn commit_gone(delta: &DeltaTable, version: u64) -> bool {
    matches!(delta.log_store().read_commit_entry(version).await, Ok(None))
}

/// What [`search_version_at`] found.
enum Search {
    /// The latest version committed at or before the time.
    Found(u64),
    /// None: the earliest readable `version` was committed later, at `committed`.
    Before { version: u64, committed: Timestamp },
    /// A commit gives no time: the caller reads them one by one.
    Scan,
}

/// The latest version of `delta` committed at or before `time`, by binary search over the
/// readable log (entries older than the log's retention are gone: the readable ones are a
/// suffix).
async fn search_version_at(
    delta: &DeltaTable,
    table: &TableDef,
    time: Timestamp,
    latest: u64,
) -> Result<Search> {
    let time_of = |version: u64| committed_at(delta, table, version);
    match time_of(latest).await? {
        Some(Some(committed)) if committed <= time => return Ok(Search::Found(latest)),
        Some(Some(_)) => {}
        _ => return Ok(Search::Scan),
    }
    // The earliest readable version.
    let (mut low, mut high) = (0, latest);
    while low < high {
        let middle = low + (high - low) / 2;
        if time_of(middle).await?.is_some() {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    match time_of(low).await? {
        Some(Some(committed)) if committed <= time => {}
        Some(Some(committed)) => {
            return Ok(Search::Before {
                version: low,
                committed,
            });
        }
        _ => return Ok(Search::Scan),
    }
    // The last version at or before `time`: `low` is always one.
    let mut high = latest;
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        match time_of(middle).await? {
            Some(Some(committed)) if committed <= time => low = middle,
            Some(Some(_)) => high = middle - 1,
            _ => return Ok(Search::Scan),
        }
    }
    Ok(Search::Found(low))
}

/// When `version` of `delta` (the table of `table`) was committed: `None` when the log no longer
/// has it, `Some(None)` when its commit does not say.
pub(crate) async fn committed_at(
    delta: &DeltaTable,
    table: &TableDef,
    version: u64,
) -> Result<Option<Option<Timestamp>>> {
    Ok(commit_info(delta, table, version)
        .await?
        .map(|info| commit_time(&info)))
}

/// The first commit of `delta` from `version` on that may change what a reader of its changes
/// reads (not a metadata-only commit, nor a compaction, whose files carry no data change): its
/// version and when it was committed (`None` inside: its commit does not say). `None` when
/// there is none up to the latest, or the log no longer has the commits (a reader of them
/// fails whatever is done); past [`FRESHNESS_SEARCH_DEPTH`] commits, the one reached is taken,
/// as a change.
pub(crate) async fn first_data_commit_from(
    delta: &DeltaTable,
    table: &TableDef,
    version: u64,
) -> Result<Option<(u64, Option<Timestamp>)>> {
    let Some(latest) = delta.version() else {
        return Ok(None);
    };
    for (searched, at) in (version..=latest).enumerate() {
        let Some(info) = commit_info(delta, table, at).await? else {
            return Ok(None);
        };
        let operation = info.operation.as_deref().unwrap_or_default();
        let no_data =
            METADATA_ONLY.contains(&operation) || ["OPTIMIZE", "ADD COLUMN"].contains(&operation);
        if !no_data || searched + 1 >= FRESHNESS_SEARCH_DEPTH {
            return Ok(Some((at, commit_time(&info))));
        }
    }
    Ok(None)
}

/// The commit metadata key of a Z-order (`orchestrate optimize`): the columns, as a JSON list.
pub(crate) const Z_ORDER_KEY: &str = "lakehouse.zOrderBy";

/// Operations that add or remove no data file.
const METADATA_ONLY: &[&str] = &[
    "SET TBLPROPERTIES",
    "VACUUM START",
    "VACUUM END",
    "ADD CONSTRAINT",
    "DROP CONSTRAINT",
    "ADD FEATURE",
    "UPDATE FIELD METADATA",
    "UPDATE TABLE METADATA",
    "CHANGE COLUMN",
];

/// Whether the newest commit of `delta` that added files is a Z-order by `columns` (read back
/// through metadata-only commits, at most [`FRESHNESS_SEARCH_DEPTH`] of them).
pub(crate) async fn z_ordered_since_last_write(
    delta: &DeltaTable,
    table: &TableDef,
    columns: &[String],
) -> Result<bool> {
    let Some(latest) = delta.version() else {
        return Ok(false);
    };
    for version in (0..=latest).rev().take(FRESHNESS_SEARCH_DEPTH) {
        let Some(info) = commit_info(delta, table, version).await? else {
            return Ok(false);
        };
        if let Some(ordered) = info.info.get(Z_ORDER_KEY) {
            if *ordered != serde_json::json!(columns) {
                return Ok(false);
            }
            // A write committed while it ran (which it did not sort, and which snapshot
            // isolation lets it commit beside) leaves the table unsorted: only metadata
            // commits may stand between the version it read and its own.
            let Some(read) = info.read_version.filter(|read| *read < version) else {
                return Ok(false);
            };
            for between in read + 1..version {
                let metadata_only = commit_info(delta, table, between)
                    .await?
                    .and_then(|info| info.operation)
                    .is_some_and(|operation| METADATA_ONLY.contains(&operation.as_str()));
                if !metadata_only {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let operation = info.operation.as_deref().unwrap_or_default();
        if !METADATA_ONLY.contains(&operation) {
            return Ok(false);
        }
    }
    Ok(false)
}

/// The `commitInfo` of `version` of `delta`, `None` when the log no longer has it.
pub(super) async fn commit_info(
    delta: &DeltaTable,
    table: &TableDef,
    version: u64,
) -> Result<Option<CommitInfo>> {
    let qualified = table.qualified_name();
    let Some(entry) = delta
        .log_store()
        .read_commit_entry(version)
        .await
        .map_err(|e| Error::delta(&qualified, e))?
    else {
        return Ok(None);
    };
    for line in entry.split(|byte| *byte == b'\n') {
        let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(info) = action.get("commitInfo") {
            let info = serde_json::from_value(info.clone()).map_err(|e| {
                Error::msg(format!(
                    "{qualified}: the commitInfo of version {version} is unreadable: {e}"
                ))
            })?;
            return Ok(Some(info));
        }
    }
    // A commit without commitInfo (some writers omit it) still is a version.
    Ok(Some(CommitInfo::default()))
}

/// When `info`'s commit was made: its in-commit timestamp, else its timestamp.
fn commit_time(info: &CommitInfo) -> Option<Timestamp> {
    info.in_commit_timestamp
        .or(info.timestamp)
        .map(|ms| Timestamp(ms.saturating_mul(1000)))
}

/// A table whose latest write is older than its declared freshness ([`Warehouse::stale_tables`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleTable {
    /// `schema.table`.
    pub table: String,
    /// Its declared freshness, in seconds.
    pub freshness_secs: u64,
    /// When it was last written (`None`: never).
    pub written_at: Option<Timestamp>,
    /// How long ago, in seconds (`None`: never written).
    pub age_secs: Option<u64>,
}

impl std::fmt::Display for StaleTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limit = humantime::format_duration(std::time::Duration::from_secs(self.freshness_secs));
        match self.age_secs {
            Some(age) => write!(
                f,
                "{} was last written {} ago, more than its freshness ({limit})",
                self.table,
                humantime::format_duration(std::time::Duration::from_secs(age))
            ),
            None => write!(
                f,
                "{} has no data written in its latest {FRESHNESS_SEARCH_DEPTH} commits (freshness \
                 {limit})",
                self.table
            ),
        }
    }
}

impl Warehouse {
    /// The tables among `tables` declaring a freshness (`#[table(freshness = "26h")]`) whose
    /// latest commit is older than it at `now`, or that were never written.
    pub async fn stale_tables(
        &self,
        tables: &[&'static TableDef],
        now: Timestamp,
    ) -> Result<Vec<StaleTable>> {
        let mut stale = Vec::new();
        for table in tables {
            if table.freshness_secs.is_none() {
                continue;
            }
            let written_at = match self.load(table).await? {
                Some(delta) => latest_data_write(table, &delta).await?,
                None => None,
            };
            stale.extend(StaleTable::of(table, written_at, now));
        }
        Ok(stale)
    }
}

impl StaleTable {
    /// `table` as stale at `now` when it declares a freshness and its latest write of data, at
    /// `written_at` (`None`: never), is older.
    pub(crate) fn of(
        table: &TableDef,
        written_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Option<StaleTable> {
        let freshness_secs = table.freshness_secs?;
        let age_secs =
            written_at.map(|at| u64::try_from(now.0.saturating_sub(at.0) / 1_000_000).unwrap_or(0));
        age_secs
            .is_none_or(|age| age > freshness_secs)
            .then(|| StaleTable {
                table: table.qualified_name(),
                freshness_secs,
                written_at,
                age_secs,
            })
    }
}

/// When `delta`'s newest write of data among its latest [`FRESHNESS_SEARCH_DEPTH`] commits was
/// committed, read newest first and no further (each commit is a read, a request on an object
/// store). A compaction, vacuum, restore or property change does not make a table fresh.
pub(crate) async fn latest_data_write(
    table: &TableDef,
    delta: &DeltaTable,
) -> Result<Option<Timestamp>> {
    let Some(latest) = delta.version() else {
        return Ok(None);
    };
    for version in (0..=latest).rev().take(FRESHNESS_SEARCH_DEPTH) {
        let Some(info) = commit_info(delta, table, version).await? else {
            break;
        };
        let commit = TableCommit::of(version, info);
        if commit.writes_data() {
            return Ok(commit.committed_at);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_fresh_data_and_maintenance_is_not() {
        let commit = |operation: &str, run_id: Option<&str>| TableCommit {
            version: 1,
            committed_at: None,
            operation: operation.to_owned(),
            parameters: HashMap::new(),
            metrics: HashMap::new(),
            run_id: run_id.map(str::to_owned),
        };
        for data in [
            "WRITE",
            "MERGE",
            "DELETE",
            "UPDATE",
            "CREATE OR REPLACE TABLE AS SELECT",
            "TRUNCATE",
        ] {
            assert!(commit(data, None).writes_data(), "{data}");
        }
        for maintenance in ["OPTIMIZE", "VACUUM END", "RESTORE", "SET TBLPROPERTIES"] {
            assert!(!commit(maintenance, None).writes_data(), "{maintenance}");
        }
        assert!(commit("SET TBLPROPERTIES", Some("r000001")).writes_data());
    }
}
