//! A log store that refuses a commit replacing a file another process removed since the write
//! began: a compaction's, typically.
//!
//! delta-rs's conflict check passes over removes that change no data (a compaction's, OPTIMIZE's
//! by any engine), yet the compaction's new files hold the very rows a concurrent overwrite,
//! upsert, MERGE or delete replaces: committing would leave them beside their replacements
//! (duplicated rows, updated keys with their old values too). Two compactions of the same files
//! (a pipeline's auto compaction beside `orchestrate optimize`, two processes appending to a
//! system table) pass it too, and each would commit its merged copy of the rows. The check sits
//! in `write_commit_entry`, where the commit's version is claimed atomically, so no commit can
//! slip in between: when another commit takes the version first, delta-rs retries at the next
//! one and the check reads that commit too.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use deltalake::kernel::Version;
use deltalake::kernel::transaction::TransactionError;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::logstore::{CommitOrBytes, LogStore, LogStoreConfig, LogStoreRef};
use deltalake::{DeltaResult, DeltaTable, ObjectStore, Path};
use tokio::sync::Mutex;
use url::Url;
use uuid::Uuid;

/// `delta` writing through a guarded log store: its commits fail if they replace a file that a
/// commit made after its loaded version removed.
pub(crate) fn guard(delta: DeltaTable) -> DeltaTable {
    let Some(base) = delta.version() else {
        return delta;
    };
    let mut guarded = DeltaTable::new(guard_store(delta.log_store(), base));
    guarded.state = delta.state;
    guarded
}

/// `inner`, guarded for a write that read version `base` (already guarded: unchanged).
pub(crate) fn guard_store(inner: LogStoreRef, base: Version) -> LogStoreRef {
    if inner.as_ref().any_ref().is::<GuardedLogStore>() {
        return inner;
    }
    Arc::new(GuardedLogStore {
        inner,
        checked_through: Mutex::new(base),
        removed_since: Mutex::new(Vec::new()),
    })
}

/// See the module docs.
struct GuardedLogStore {
    inner: LogStoreRef,
    /// The last version whose removes are in `removed_since`.
    checked_through: Mutex<Version>,
    /// The files removed by the commits after the write's base version, with their version.
    removed_since: Mutex<Vec<(Version, String)>>,
}

impl GuardedLogStore {
    /// Fails when `commit` removes a file a commit before `version` (and after the base)
    /// removed.
    async fn refuse_replaced(
        &self,
        version: Version,
        commit: &CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        let mut checked = self.checked_through.lock().await;
        if version <= *checked + 1 {
            return Ok(());
        }
        let replaced = self.replaced_paths(commit, operation_id).await?;
        if replaced.is_empty() {
            return Ok(());
        }
        // Read the commits not read yet (none after the first attempt, in the usual case).
        let mut removed = self.removed_since.lock().await;
        for earlier in *checked + 1..version {
            // Every version below the one being claimed exists: a missing one cannot be
            // checked, so the commit is refused rather than let through unchecked.
            let Some(entry) = self
                .inner
                .read_commit_entry(earlier)
                .await
                .map_err(log_error)?
            else {
                return Err(TransactionError::LogStoreError {
                    msg: format!(
                        "version {earlier}, committed since this write began, cannot be read; \
                         nothing was written: run the pipeline again"
                    ),
                    source: "a commit entry is missing".into(),
                });
            };
            removed.extend(removed_paths(&entry).map(|path| (earlier, path)));
            *checked = earlier;
        }
        match removed.iter().find(|(_, path)| replaced.contains(path)) {
            Some((earlier, path)) => Err(TransactionError::LogStoreError {
                msg: format!(
                    "version {earlier}, committed by another process while this write ran, \
                     rewrote or removed the file `{path}` this commit replaces (a compaction, \
                     say); nothing was committed: run it again (a pipeline's `retries` do it \
                     for you)"
                ),
                source: "a concurrent commit removed a file this write replaces".into(),
            }),
            None => Ok(()),
        }
    }

    /// The files `commit` removes (replaces, or compacts).
    async fn replaced_paths(
        &self,
        commit: &CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<HashSet<String>, TransactionError> {
        let bytes = match commit {
            CommitOrBytes::LogBytes(bytes) => bytes.clone(),
            CommitOrBytes::TmpCommit(path) => self
                .inner
                .object_store(Some(operation_id))
                .get(path)
                .await
                .map_err(|source| TransactionError::ObjectStore { source })?
                .bytes()
                .await
                .map_err(|source| TransactionError::ObjectStore { source })?,
        };
        Ok(removed_paths(&bytes).collect())
    }
}

/// The paths a commit entry removes, decoded: the log holds them percent-encoded.
fn removed_paths(entry: &[u8]) -> impl Iterator<Item = String> + '_ {
    entry.split(|byte| *byte == b'\n').filter_map(|line| {
        let action: serde_json::Value = serde_json::from_slice(line).ok()?;
        let remove = action.get("remove")?;
        let path = remove.get("path")?.as_str()?;
        Some(
            percent_encoding::percent_decode_str(path)
                .decode_utf8_lossy()
                .into_owned(),
        )
    })
}

fn log_error(error: deltalake::DeltaTableError) -> TransactionError {
    TransactionError::LogStoreError {
        msg: format!("could not read the commits made since the write began: {error}"),
        source: Box::new(error),
    }
}

#[async_trait::async_trait]
impl LogStore for GuardedLogStore {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn refresh(&self) -> DeltaResult<()> {
        self.inner.refresh().await
    }

    async fn read_commit_entry(&self, version: Version) -> DeltaResult<Option<Bytes>> {
        self.inner.read_commit_entry(version).await
    }

    async fn write_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.refuse_replaced(version, &commit_or_bytes, operation_id)
            .await?;
        self.inner
            .write_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn abort_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.inner
            .abort_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn get_latest_version(&self, start_version: Version) -> DeltaResult<Version> {
        self.inner.get_latest_version(start_version).await
    }

    fn object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.object_store(operation_id)
    }

    fn root_object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.root_object_store(operation_id)
    }

    fn to_uri(&self, location: &Path) -> String {
        self.inner.to_uri(location)
    }

    fn root_url(&self) -> &Url {
        self.inner.root_url()
    }

    fn log_path(&self) -> &Path {
        self.inner.log_path()
    }

    fn transaction_url(&self, operation_id: Option<Uuid>) -> DeltaResult<Url> {
        self.inner.transaction_url(operation_id)
    }

    async fn is_delta_table_location(&self) -> DeltaResult<bool> {
        self.inner.is_delta_table_location().await
    }

    fn config(&self) -> &LogStoreConfig {
        self.inner.config()
    }

    fn object_store_url(&self) -> datafusion::execution::object_store::ObjectStoreUrl {
        self.inner.object_store_url()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};
    use deltalake::DeltaTable;
    use serde::Serialize;

    use crate::prelude::*;
    use crate::store::Warehouse;
    use crate::store::test_support::{temp_warehouse, write_rows};

    /// Counters, appended one file per write.
    #[derive(Table, Serialize)]
    #[table(schema = "test", name = "counters")]
    struct Counter {
        id: i64,
        value: i64,
    }

    /// A warehouse whose `test.counters` has two files (ids 1 and 2, value 0), and a handle on
    /// it loaded before another process compacted them into one.
    async fn compacted_behind_a_stale_handle() -> (tempfile::TempDir, Warehouse, DeltaTable) {
        let (dir, warehouse) = temp_warehouse();
        for id in [1, 2] {
            write_rows(&warehouse, Counter::DEF, &[Counter { id, value: 0 }]).await;
        }
        let stale = warehouse
            .load(Counter::DEF)
            .await
            .expect("load")
            .expect("exists");
        let report = warehouse.compact(Counter::DEF).await.expect("compaction");
        assert_eq!(report.files_removed, 2);
        (dir, warehouse, stale)
    }

    /// delta-rs's MERGE setting `value = 1` on id 1, on `delta`.
    async fn set_one(warehouse: &Warehouse, delta: DeltaTable) -> deltalake::DeltaResult<()> {
        let session = warehouse.session();
        let source = session
            .sql("SELECT CAST(1 AS BIGINT) AS id, CAST(1 AS BIGINT) AS value")
            .await
            .expect("source");
        delta
            .merge(source, col("t.id").eq(col("s.id")))
            .with_source_alias("s")
            .with_target_alias("t")
            .when_matched_update(|u| u.update("value", lit(1i64)))?
            .await
            .map(|_| ())
    }

    /// delta-rs's own overwrite of `delta` with the single row (3, 3).
    async fn overwrite(warehouse: &Warehouse, delta: DeltaTable) -> deltalake::DeltaResult<()> {
        let session = warehouse.session();
        let source = session
            .sql("SELECT CAST(3 AS BIGINT) AS id, CAST(3 AS BIGINT) AS value")
            .await
            .expect("source");
        let (_, plan) = source.into_parts();
        delta
            .write(Vec::new())
            .with_input_plan(plan)
            .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
            .await
            .map(|_| ())
    }

    async fn rows(warehouse: &Warehouse) -> Vec<(i64, i64)> {
        let session = warehouse.session();
        let df = warehouse.read(&session, Counter::DEF).await.expect("read");
        let mut rows = Vec::new();
        for batch in df.collect().await.expect("rows") {
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>();
            let values = batch
                .column(1)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>();
            let (ids, values) = (ids.expect("ids"), values.expect("values"));
            rows.extend((0..batch.num_rows()).map(|i| (ids.value(i), values.value(i))));
        }
        rows.sort_unstable();
        rows
    }

    #[tokio::test]
    async fn an_overwrite_replacing_files_a_compaction_rewrote_meanwhile_is_refused() {
        let (_dir, warehouse, stale) = compacted_behind_a_stale_handle().await;
        let error = overwrite(&warehouse, super::guard(stale))
            .await
            .expect_err("the compacted rows would stay beside the new ones");
        assert!(
            error.to_string().contains(
                "version 3, committed by another process while this write ran, rewrote or removed the file"
            ),
            "{error}"
        );
        assert_eq!(
            rows(&warehouse).await,
            [(1, 0), (2, 0)],
            "nothing was written"
        );
        assert_eq!(
            warehouse.version(Counter::DEF).await.expect("version"),
            Some(3)
        );
    }

    /// delta-rs's compaction of `delta`'s small files.
    async fn compact(delta: DeltaTable) -> deltalake::DeltaResult<u64> {
        let (_, metrics) = delta.optimize().await?;
        Ok(metrics.num_files_removed)
    }

    #[tokio::test]
    async fn a_second_compaction_of_the_same_files_is_refused() {
        let (_dir, warehouse, stale) = compacted_behind_a_stale_handle().await;
        let error = compact(super::guard(stale))
            .await
            .expect_err("both compacted copies of the rows would stay");
        assert!(
            error.to_string().contains(
                "version 3, committed by another process while this write ran, rewrote or removed the file"
            ),
            "{error}"
        );
        assert_eq!(rows(&warehouse).await, [(1, 0), (2, 0)]);
        assert_eq!(
            warehouse.version(Counter::DEF).await.expect("version"),
            Some(3)
        );
    }

    /// Why compactions are guarded too: delta-rs commits the second one, and every row is
    /// there twice. (If delta-rs ever refuses it, this fails.)
    #[tokio::test]
    async fn unguarded_a_second_compaction_duplicates_the_rows() {
        let (_dir, warehouse, stale) = compacted_behind_a_stale_handle().await;
        assert_eq!(compact(stale).await.expect("delta-rs commits"), 2);
        assert_eq!(rows(&warehouse).await, [(1, 0), (1, 0), (2, 0), (2, 0)]);
    }

    /// Why the guard exists: delta-rs's own conflict check lets the same overwrite through, and
    /// the compacted rows stay beside the new one. (If delta-rs ever refuses it, this fails.)
    #[tokio::test]
    async fn unguarded_an_overwrite_keeps_the_compacted_rows() {
        let (_dir, warehouse, stale) = compacted_behind_a_stale_handle().await;
        overwrite(&warehouse, stale)
            .await
            .expect("delta-rs commits");
        assert_eq!(rows(&warehouse).await, [(1, 0), (2, 0), (3, 3)]);
    }

    /// delta-rs's MERGE refuses on its own: the compaction's files count as rows added where
    /// the MERGE read (`ConcurrentAppend`), guarded or not.
    #[tokio::test]
    async fn a_merge_meanwhile_is_refused_by_delta_rs_itself() {
        let (_dir, warehouse, stale) = compacted_behind_a_stale_handle().await;
        let error = set_one(&warehouse, stale)
            .await
            .expect_err("a concurrent compaction conflicts");
        assert!(
            error
                .to_string()
                .contains("concurrent transactions added new data"),
            "{error}"
        );
        assert_eq!(rows(&warehouse).await, [(1, 0), (2, 0)]);
    }
}
