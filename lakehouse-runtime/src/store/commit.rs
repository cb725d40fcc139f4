//! What a commit records besides its actions, and finding a commit again by it: the
//! application transaction (the idempotence key of a pipeline's writes), the caller's
//! `commitInfo` metadata, and a unique write id.

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use futures::StreamExt as _;

use super::{Warehouse, WriteOptions};
use crate::error::{Error, Result};
use crate::table::TableDef;

/// The `commitInfo` key recording a write's application transaction, so that the commit can be
/// found again from its `(app id, version)`.
pub const TRANSACTION_KEY: &str = "lakehouse.transaction";

/// How many of a table's latest commits [`Warehouse::commit_tagged`] looks through.
const COMMIT_SEARCH_DEPTH: usize = 100;

/// The `commitInfo` key holding a write's unique id: an error that comes after the commit
/// (delta-rs's snapshot update and checkpoint follow it) is then told from a failed write.
pub const WRITE_ID_KEY: &str = "lakehouse.writeId";

/// What a commit records besides its actions: the application transaction (the idempotence key),
/// the application metadata of its `commitInfo`, and the write's unique id.
#[derive(Clone, Debug)]
pub(crate) struct CommitTags {
    transaction: Option<(String, i64)>,
    metadata: Vec<(String, serde_json::Value)>,
    write_id: serde_json::Value,
}

impl CommitTags {
    /// The tags of a write made with `options` (whose metadata may give the write id, so that a
    /// caller retrying a write recognises its earlier attempt's commit).
    pub(crate) fn of(options: &WriteOptions) -> CommitTags {
        let mut tags = CommitTags::transaction(options.transaction.clone());
        if let Some(write_id) = options.metadata.get(WRITE_ID_KEY) {
            tags.write_id = write_id.clone();
        }
        // The caller's entries first: ours, last, win over a reserved key given by mistake.
        let ours = std::mem::take(&mut tags.metadata);
        tags.metadata = options
            .metadata
            .iter()
            .filter(|(key, _)| *key != WRITE_ID_KEY)
            .map(|(key, value)| (key.clone(), value.clone()))
            .chain(ours)
            .collect();
        tags
    }

    /// Tags carrying only the write id `write_id`.
    pub(crate) fn write_id_only(write_id: serde_json::Value) -> CommitTags {
        CommitTags {
            transaction: None,
            metadata: Vec::new(),
            write_id,
        }
    }

    /// The write's unique id, as its commit records it under [`WRITE_ID_KEY`].
    pub(crate) fn write_id(&self) -> &serde_json::Value {
        &self.write_id
    }

    /// Tags carrying only `transaction` (and its [`TRANSACTION_KEY`] entry).
    pub(crate) fn transaction(transaction: Option<(String, i64)>) -> CommitTags {
        let metadata = transaction
            .iter()
            .map(|(app_id, version)| {
                (
                    TRANSACTION_KEY.to_owned(),
                    transaction_tag(app_id, *version),
                )
            })
            .collect();
        CommitTags {
            transaction,
            metadata,
            write_id: new_write_id(),
        }
    }

    /// The commit properties for delta-rs.
    pub(crate) fn properties(&self) -> CommitProperties {
        self.properties_with([])
    }

    /// The commit properties with `extra` metadata entries too.
    pub(crate) fn properties_with(
        &self,
        extra: impl IntoIterator<Item = (String, serde_json::Value)>,
    ) -> CommitProperties {
        let write_id = (WRITE_ID_KEY.to_owned(), self.write_id.clone());
        let properties = CommitProperties::default().with_metadata(
            self.metadata
                .iter()
                .cloned()
                .chain(extra)
                .chain(std::iter::once(write_id)),
        );
        match &self.transaction {
            Some((app_id, version)) => {
                properties.with_application_transaction(Transaction::new(app_id, *version))
            }
            None => properties,
        }
    }
}

/// A fresh random write id.
pub(crate) fn new_write_id() -> serde_json::Value {
    serde_json::json!(format!("{:032x}", rand::random::<u128>()))
}

/// The value of [`TRANSACTION_KEY`] for `app_id`'s transaction `version`.
fn transaction_tag(app_id: &str, version: i64) -> serde_json::Value {
    serde_json::json!({ "appId": app_id, "version": version })
}

impl Warehouse {
    /// The last transaction version `app_id` committed to `table`, if any (e.g. the sequence of
    /// the last run whose pipeline wrote it).
    pub async fn transaction_version(
        &self,
        table: &'static TableDef,
        app_id: &str,
    ) -> Result<Option<i64>> {
        match self.load(table).await? {
            Some(delta) => committed_version(&delta, table, app_id).await,
            None => Ok(None),
        }
    }

    /// What `app_id`'s last transaction on `table` committed, if it committed one at version
    /// `at_least` or later: the transaction version, the table's current version, and the
    /// application metadata (see
    /// [`WriteOptions::metadata`]) of the commit that carried the transaction (empty when that
    /// commit is not among the table's latest 100, or the history cannot be read). One load of
    /// the table.
    pub async fn committed_transaction(
        &self,
        table: &'static TableDef,
        app_id: &str,
        at_least: i64,
    ) -> Result<Option<CommittedTransaction>> {
        Ok(self
            .latest_transaction(table, app_id, at_least)
            .await?
            .and_then(|(_, committed)| committed))
    }

    /// `app_id`'s last transaction version on `table` (if any), and what it committed if that
    /// is `at_least` or later (see [`Warehouse::committed_transaction`]); `None` when the table
    /// does not exist. One load of the table.
    pub(crate) async fn latest_transaction(
        &self,
        table: &'static TableDef,
        app_id: &str,
        at_least: i64,
    ) -> Result<Option<(Option<i64>, Option<CommittedTransaction>)>> {
        let Some(delta) = self.load(table).await? else {
            return Ok(None);
        };
        let (Some(transaction_version), Some(table_version)) = (
            committed_version(&delta, table, app_id).await?,
            delta.version(),
        ) else {
            return Ok(Some((None, None)));
        };
        // Below it, nothing to look for: the history is not read (a fresh run's usual case).
        if transaction_version < at_least {
            return Ok(Some((Some(transaction_version), None)));
        }
        let tag = transaction_tag(app_id, transaction_version);
        // Unreadable history (a commit file cleaned up meanwhile, say) only loses the details.
        let (commit_version, metadata) =
            match tagged_commit(&delta, table, TRANSACTION_KEY, &tag, None).await {
                Ok(Some((version, metadata))) => (Some(version), metadata),
                Ok(None) => (None, Default::default()),
                Err(error) => {
                    tracing::warn!(%error, "could not read the committed write's metadata");
                    (None, Default::default())
                }
            };
        let committed = CommittedTransaction {
            transaction_version,
            table_version,
            metadata,
            commit_version,
        };
        Ok(Some((Some(transaction_version), Some(committed))))
    }

    /// The version and application metadata of the commit that carried `app_id`'s transaction
    /// `version` to `table`, even beneath later ones. `None` when no such commit is among the
    /// table's latest 100 (or the table was never written).
    pub async fn transaction_commit(
        &self,
        table: &'static TableDef,
        app_id: &str,
        version: i64,
    ) -> Result<Option<(u64, std::collections::HashMap<String, serde_json::Value>)>> {
        let tag = transaction_tag(app_id, version);
        self.commit_tagged(table, TRANSACTION_KEY, &tag, None).await
    }

    /// The application metadata (see [`WriteOptions::metadata`]) of the commit that carried
    /// `app_id`'s transaction `version` to `table`. `None` when no such commit is among the
    /// table's latest 100 (or the table was never written).
    pub async fn transaction_metadata(
        &self,
        table: &'static TableDef,
        app_id: &str,
        version: i64,
    ) -> Result<Option<std::collections::HashMap<String, serde_json::Value>>> {
        let tag = transaction_tag(app_id, version);
        Ok(self
            .commit_tagged(table, TRANSACTION_KEY, &tag, None)
            .await?
            .map(|(_, metadata)| metadata))
    }

    /// Whether `table` holds a commit of `app_id`'s transaction `version` made since `since`:
    /// the log is read newest first down to the first commit older than `since` (less five
    /// minutes for two hosts' clocks), however many commits came after it.
    pub async fn transaction_committed_since(
        &self,
        table: &'static TableDef,
        app_id: &str,
        version: i64,
        since: crate::table::Timestamp,
    ) -> Result<bool> {
        use futures::StreamExt as _;
        const CLOCK_SKEW_MILLIS: i64 = 5 * 60 * 1000;
        let Some(delta) = self.load(table).await? else {
            return Ok(false);
        };
        let tag = transaction_tag(app_id, version);
        let oldest = since.0 / 1000 - CLOCK_SKEW_MILLIS;
        let mut history = delta.history(None);
        while let Some(info) = history.next().await {
            let info = info.map_err(|e| Error::delta(table.qualified_name(), e))?;
            if info.info.get(TRANSACTION_KEY) == Some(&tag) {
                return Ok(true);
            }
            if info.timestamp.is_some_and(|millis| millis < oldest) {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// The version and application metadata of the commit of `table` whose metadata holds
    /// `value` under `key`, if any: among the commits after version `after` (none to read when
    /// the table has not moved since), or, without it, among the latest 100.
    pub async fn commit_tagged(
        &self,
        table: &'static TableDef,
        key: &str,
        value: &serde_json::Value,
        after: Option<u64>,
    ) -> Result<Option<(u64, std::collections::HashMap<String, serde_json::Value>)>> {
        match self.load(table).await? {
            Some(delta) => tagged_commit(&delta, table, key, value, after).await,
            None => Ok(None),
        }
    }
}

/// What an application's last transaction on a table committed
/// ([`Warehouse::committed_transaction`]).
#[derive(Clone, Debug, Default)]
pub struct CommittedTransaction {
    /// The application's last transaction version (a pipeline's: its run's sequence).
    pub transaction_version: i64,
    /// The table's current version.
    pub table_version: u64,
    /// The `commitInfo` application metadata of the commit that carried the transaction.
    pub metadata: std::collections::HashMap<String, serde_json::Value>,
    /// The table version that commit made, when it was found among the latest commits.
    pub commit_version: Option<u64>,
}

/// The rows a commit inserted and updated, from the `operationMetrics` of its `commitInfo`
/// `metadata` (as delta-rs's operations and this crate's own record them); 0 when it has none.
pub fn rows_written(metadata: &std::collections::HashMap<String, serde_json::Value>) -> (u64, u64) {
    (
        metric(metadata, &["num_target_rows_inserted", "num_added_rows"]),
        metric(metadata, &["num_target_rows_updated"]),
    )
}

/// The rows a commit deleted, from its `operationMetrics` (see [`rows_written`]).
pub fn rows_deleted(metadata: &std::collections::HashMap<String, serde_json::Value>) -> u64 {
    metric(metadata, &["num_target_rows_deleted", "num_deleted_rows"])
}

/// The first of `names` in the `operationMetrics` of a commit's `metadata` (a number, or a
/// number as text, as delta-rs records some); 0 when there is none.
fn metric(metadata: &std::collections::HashMap<String, serde_json::Value>, names: &[&str]) -> u64 {
    let metrics = metadata.get("operationMetrics");
    names
        .iter()
        .filter_map(|name| metrics.and_then(|m| m.get(*name)))
        .find_map(|value| {
            value
                .as_u64()
                .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
        })
        .unwrap_or(0)
}

/// [`Warehouse::commit_tagged`] on `delta`, the loaded Delta table of `table`.
async fn tagged_commit(
    delta: &DeltaTable,
    table: &TableDef,
    key: &str,
    value: &serde_json::Value,
    after: Option<u64>,
) -> Result<Option<(u64, std::collections::HashMap<String, serde_json::Value>)>> {
    let Some(latest) = delta.version() else {
        return Ok(None);
    };
    let depth = match after {
        Some(after) if latest <= after => return Ok(None),
        Some(after) => usize::try_from(latest - after).unwrap_or(usize::MAX),
        None => COMMIT_SEARCH_DEPTH,
    };
    // Newest first, each commit read by its version: delta-rs's history also lists commits
    // made after `delta` was loaded, and skips those without commitInfo, which shifted the
    // versions counted down from `latest`.
    let newest_first = (0..=latest).rev().take(depth);
    let mut infos = futures::stream::iter(newest_first.map(|version| async move {
        (
            version,
            super::history::commit_info(delta, table, version).await,
        )
    }))
    .buffered(16);
    while let Some((version, info)) = infos.next().await {
        match info? {
            Some(info) if info.info.get(key) == Some(value) => {
                return Ok(Some((version, info.info)));
            }
            Some(_) => {}
            // The log no longer reaches back so far.
            None => break,
        }
    }
    Ok(None)
}

/// The version `app_id` last committed to `delta`, the Delta table of `table`, if any.
pub(crate) async fn committed_version(
    delta: &DeltaTable,
    table: &TableDef,
    app_id: &str,
) -> Result<Option<i64>> {
    let snapshot = delta
        .snapshot()
        .map_err(|e| Error::delta(table.qualified_name(), e))?;
    snapshot
        .transaction_version(delta.log_store().as_ref(), app_id)
        .await
        .map_err(|e| Error::delta(table.qualified_name(), e))
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::store::{Warehouse, WriteOptions};

    /// Counted.
    #[derive(Table)]
    #[table(schema = "test", name = "tagged", mode = append)]
    struct Tagged {
        n: i64,
    }

    async fn write_tagged(warehouse: &Warehouse, tag: &str) {
        let session = warehouse.session();
        let rows = session
            .sql("SELECT CAST(1 AS BIGINT) AS n")
            .await
            .expect("rows");
        let options = WriteOptions {
            metadata: [("test.tag".to_owned(), serde_json::json!(tag))].into(),
            ..WriteOptions::default()
        };
        warehouse
            .write(&session, Tagged::DEF, rows, options)
            .await
            .expect("write");
    }

    #[tokio::test]
    async fn a_tagged_commit_is_looked_for_up_to_the_loaded_version_only() {
        let dir = tempfile::tempdir().expect("dir");
        let warehouse = Warehouse::open(dir.path().to_str().expect("utf-8")).expect("warehouse");
        write_tagged(&warehouse, "first").await;
        let stale = warehouse
            .load(Tagged::DEF)
            .await
            .expect("load")
            .expect("exists");
        let loaded = stale.version().expect("a version");
        write_tagged(&warehouse, "second").await;
        // Made after the load: not the loaded version's (delta-rs's history listed it, counted
        // as the loaded version).
        let second = serde_json::json!("second");
        let found = super::tagged_commit(&stale, Tagged::DEF, "test.tag", &second, None)
            .await
            .expect("history");
        assert!(found.is_none(), "{found:?}");
        let first = serde_json::json!("first");
        let found = super::tagged_commit(&stale, Tagged::DEF, "test.tag", &first, None)
            .await
            .expect("history");
        assert_eq!(found.map(|(version, _)| version), Some(loaded));
    }
}
