//! Table maintenance: compaction with optional Z-order, and vacuum.

use std::num::NonZeroU64;
use std::time::Duration;

use deltalake::DeltaTable;
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::table::config::TablePropertiesExt as _;

use super::Warehouse;
use crate::error::{Error, Result};
use crate::table::{TableDef, Timestamp};

/// A pipeline's write that leaves a partition of its table (the whole table when unpartitioned)
/// with this many files under half the target size compacts them (tables declared `auto_compact`,
/// the default; the ledger does the same for the system tables). Every Delta commit re-reads the
/// statistics of all of a table's files, and a scan opens each one: a table appended to by every
/// run of a loop would otherwise make each run slower than the last.
pub const AUTO_COMPACT_AT_FILES: usize = 64;

/// What `optimize` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptimizeReport {
    /// `schema.table`.
    pub table: String,
    /// Files written.
    pub files_added: u64,
    /// Files compacted away.
    pub files_removed: u64,
    /// The version after the operation (`None`: the table does not exist).
    pub version: Option<u64>,
}

/// What `vacuum` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VacuumReport {
    /// `schema.table`.
    pub table: String,
    /// Files deleted (or that would be, on a dry run).
    pub files: Vec<String>,
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// On a dry run, why the vacuum itself would be refused (files an incremental reader still
    /// has to read, a symbolic link in the table's folder): it lists the files all the same.
    pub refused: Vec<String>,
}

/// The table property giving how long removed files are kept for readers of older versions.
const RETENTION_PROPERTY: &str = "delta.deletedFileRetentionDuration";

/// A pipeline reading a table's changes incrementally (`Changes<T>`), and the last version of
/// the table it read: the commits after it are still to be read, with their files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingReader {
    /// The reading pipeline.
    pub pipeline: String,
    /// The last version it read.
    pub read_version: u64,
    /// Whether its output is append-only: read whole again, it is rebuilt (`--rebuild`), where
    /// another output is refreshed (`--full-refresh`).
    pub appends: bool,
}

impl Warehouse {
    /// Compacts small files into files of the table's target size (default 100 MiB), Z-ordered
    /// by its `z_order` columns when it declares some.
    /// A table Z-ordered by the same columns with no file added since is left as it is: a
    /// Z-order rewrites every file, and a scheduled `optimize` would rewrite (and keep a copy
    /// of) an unchanged table each time.
    pub async fn optimize(&self, table: &'static TableDef) -> Result<OptimizeReport> {
        if table.z_order.is_empty() {
            return self.rewrite_files(table, OptimizeType::Compact).await;
        }
        let columns: Vec<String> = table.z_order.iter().map(|c| (*c).to_owned()).collect();
        if let Some(delta) = self.load(table).await?
            && super::history::z_ordered_since_last_write(&delta, table, &columns).await?
        {
            tracing::info!(
                table = %table.qualified_name(),
                "Z-ordered by the same columns since its last write: nothing to do"
            );
            return Ok(OptimizeReport {
                table: table.qualified_name(),
                files_added: 0,
                files_removed: 0,
                version: delta.version(),
            });
        }
        self.rewrite_files(table, OptimizeType::ZOrder(columns))
            .await
    }

    /// Compacts the files under the table's target size (default 100 MiB) into files of about
    /// that size, leaving larger files alone: what a pipeline's write does when it leaves an
    /// `auto_compact` table with [`AUTO_COMPACT_AT_FILES`] small files or more in a partition.
    /// Small files of a Z-ordered table are merged without sorting them again (which loosens
    /// the clustering): [`Warehouse::optimize`] Z-orders again.
    pub async fn compact(&self, table: &'static TableDef) -> Result<OptimizeReport> {
        self.rewrite_files(table, OptimizeType::Compact).await
    }

    async fn rewrite_files(
        &self,
        table: &'static TableDef,
        optimize_type: OptimizeType,
    ) -> Result<OptimizeReport> {
        let qualified = table.qualified_name();
        let Some(delta) = self.load(table).await? else {
            return Ok(OptimizeReport {
                table: qualified,
                files_added: 0,
                files_removed: 0,
                version: None,
            });
        };
        let session = self.session();
        // Guarded: a compaction of the same files committed meanwhile (another process's, an
        // auto compaction) would otherwise leave two merged copies of their rows.
        // A Z-order says so in its commit: the next `optimize` can tell nothing changed since.
        let properties = match &optimize_type {
            OptimizeType::ZOrder(columns) => {
                deltalake::kernel::transaction::CommitProperties::default().with_metadata([(
                    super::history::Z_ORDER_KEY.to_owned(),
                    serde_json::json!(columns),
                )])
            }
            OptimizeType::Compact => deltalake::kernel::transaction::CommitProperties::default(),
        };
        let stored = super::parquet_props::stored_schema(&delta);
        let mut builder = super::guard::guard(delta)
            .optimize()
            .with_type(optimize_type)
            .with_commit_properties(properties)
            .with_session_state(super::session_state(&session));
        if let Some(stored) = stored {
            builder = builder.with_writer_properties(super::parquet_props::for_compaction(&stored));
        }
        if let Some(size) = table.target_file_size.and_then(NonZeroU64::new) {
            builder = builder.with_target_size(size);
        }
        let (optimized, metrics) = builder.await.map_err(|e| Error::delta(&qualified, e))?;
        Ok(OptimizeReport {
            table: qualified,
            files_added: metrics.num_files_added,
            files_removed: metrics.num_files_removed,
            version: optimized.version(),
        })
    }

    /// Deletes files no version newer than `retention` needs, and files no version refers to
    /// (left by failed writes). `None` keeps the table's own retention,
    /// `delta.deletedFileRetentionDuration` (7 days unless the table sets it); a shorter one could
    /// break readers of older versions (`Changes<T>` readers behind, time travel) and writes in
    /// progress (their files are unreferenced until they commit), and is refused unless `force`
    /// is set.
    pub async fn vacuum(
        &self,
        table: &'static TableDef,
        retention: Option<Duration>,
        dry_run: bool,
        force: bool,
    ) -> Result<VacuumReport> {
        self.vacuum_keeping(table, retention, dry_run, force, &[])
            .await
    }

    /// [`Warehouse::vacuum`], refused when a commit one of `readers` has still to read is older
    /// than the retention: the files it added may have been removed since (by a compaction, an
    /// overwrite) and would be deleted, and the reader would fail on them. (A commit within the
    /// retention is safe: what it added was removed later still.) `force` does not lift this
    /// (it allows a short retention, where the check matters most): leave a reader out of
    /// `readers` to vacuum past it.
    pub async fn vacuum_keeping(
        &self,
        table: &'static TableDef,
        retention: Option<Duration>,
        dry_run: bool,
        force: bool,
        readers: &[PendingReader],
    ) -> Result<VacuumReport> {
        self.vacuum_guarded(table, retention, dry_run, force, readers, None)
            .await
    }

    /// [`Warehouse::vacuum_keeping`], refused too when `writing` says a write may be in progress
    /// (`` run `id` (pid ..) is running ``, or why none can be ruled out) and the retention is
    /// forced under the table's: the files a write has not committed yet are unreferenced, and
    /// would be deleted.
    pub async fn vacuum_guarded(
        &self,
        table: &'static TableDef,
        retention: Option<Duration>,
        dry_run: bool,
        force: bool,
        readers: &[PendingReader],
        writing: Option<&str>,
    ) -> Result<VacuumReport> {
        let qualified = table.qualified_name();
        let Some(delta) = self.load(table).await? else {
            return Ok(VacuumReport {
                table: qualified,
                files: Vec::new(),
                dry_run,
                refused: Vec::new(),
            });
        };
        let snapshot = delta.snapshot().map_err(|e| Error::delta(&qualified, e))?;
        // A value Delta's kernel cannot read counts as unset (7 days): a longer retention meant
        // by it would be cut short without a word.
        if snapshot
            .table_config()
            .deleted_file_retention_duration
            .is_none()
            && let Some(value) = snapshot.metadata().configuration().get(RETENTION_PROPERTY)
            && !(force && retention.is_some())
        {
            return Err(Error::Refused(format!(
                "vacuum of {qualified}: the table's `{RETENTION_PROPERTY}` is {value:?}, which \
                 Delta's kernel cannot read (it would vacuum with the default 7 days): write it \
                 as `interval <n> <unit>`, lowercase, with a unit from nanoseconds to weeks \
                 (`interval 30 days`; months are not allowed), by declaring the property in the \
                 table's `#[table(property(..))]` and running its pipeline (or pass --force with \
                 an explicit --retention)"
            )));
        }
        // So does a declared one, which the table will have after its next write.
        if let Some((_, value)) = table
            .properties
            .iter()
            .find(|(key, _)| *key == RETENTION_PROPERTY)
            && declared_retention(table).is_none()
            && !(force && retention.is_some())
        {
            return Err(Error::Refused(format!(
                "vacuum of {qualified}: the table declares `{RETENTION_PROPERTY}` = {value:?}, \
                 which Delta's kernel cannot read (it would vacuum with the default 7 days): \
                 write it as `interval <n> <unit>`, lowercase, with a unit from nanoseconds to \
                 weeks (`interval 30 days`; months are not allowed), in the table's \
                 `#[table(property(..))]` (or pass --force with an explicit --retention)"
            )));
        }
        // The declared retention counts even before the table has it (it is written at the
        // table's next write, and a restore to an earlier version takes it away again).
        let table_retention = snapshot.table_config().deleted_file_retention_duration();
        let table_retention = declared_retention(table)
            .map_or(table_retention, |declared| declared.max(table_retention));
        let retention = retention.unwrap_or(table_retention);
        if retention < table_retention && !force {
            return Err(Error::msg(format!(
                "vacuum of {qualified}: a retention of {} is under the table's \
                 `delta.deletedFileRetentionDuration` of {}; readers of older versions could \
                 fail, and a write in progress would lose the files it has not committed yet \
                 (they are deleted as unreferenced once older than the retention). Pass --force \
                 if no such reader or writer exists.",
                humantime::format_duration(retention),
                humantime::format_duration(table_retention)
            )));
        }
        let mut refused = Vec::new();
        if let Some(writing) = writing
            && retention < table_retention
        {
            let reason = format!(
                "vacuum of {qualified}: {writing}; a forced retention of {} under the table's {} \
                 would delete the files a write in progress has not committed yet: wait for it to \
                 end, or vacuum with the table's retention",
                humantime::format_duration(retention),
                humantime::format_duration(table_retention)
            );
            if !dry_run {
                return Err(Error::Refused(reason));
            }
            refused.push(reason);
        }
        match refuse_unread_commits(&delta, table, retention, readers).await {
            // A dry run deletes nothing: it lists the files, and says it would be refused.
            Err(Error::Refused(reason)) if dry_run => refused.push(reason),
            checked => checked?,
        }
        let retention = chrono::Duration::from_std(retention).map_err(|e| {
            Error::msg(format!(
                "vacuum of {qualified}: retention out of range: {e}"
            ))
        })?;
        let folder = super::location::local_path(&self.table_url(table)?);
        let link = match folder {
            Some(folder) => match tokio::task::spawn_blocking(move || first_symlink(&folder))
                .await
                .map_err(|e| Error::msg(format!("vacuum of {qualified}: {e}")))?
            {
                Ok(link) => link,
                // A dry run deletes nothing: a folder it cannot list is warned about.
                Err(error) if dry_run => {
                    tracing::warn!(%error, "vacuum of {qualified}: not every folder was checked for links");
                    None
                }
                Err(error) => return Err(error),
            },
            None => None,
        };
        if let Some(link) = link {
            let reason = format!(
                "vacuum of {qualified}: {} is a symbolic link, which vacuum would follow and \
                 delete the files it finds there that the table does not use, wherever they \
                 are; replace the link by what it points to (`--dry-run` lists what would go)",
                link.display()
            );
            // A dry run deletes nothing: it lists what would go behind the link too, and says
            // it would be refused.
            if !dry_run {
                return Err(Error::msg(reason));
            }
            refused.push(reason);
        }
        // One clock for the listing and the vacuum: a file past the retention only between
        // the two would be deleted unlisted.
        let clock: std::sync::Arc<dyn deltalake::operations::vacuum::Clock> =
            std::sync::Arc::new(FixedClock(chrono::Utc::now().timestamp_millis()));
        let vacuum = |dry_run: bool| {
            delta
                .clone()
                .vacuum()
                .with_retention_period(retention)
                .with_enforce_retention_duration(!force)
                .with_mode(VacuumMode::Full)
                .with_clock(clock.clone())
                .with_dry_run(dry_run)
        };
        // Removals past the retention stay in the log until its next checkpoint: delta-rs
        // plans their files again at every vacuum, and counts one already gone as deleted (two
        // commits each time). Only the files still there are reported, or vacuumed.
        let (_, planned) = vacuum(true)
            .await
            .map_err(|e| Error::delta(&qualified, e))?;
        let store = delta.log_store().object_store(None);
        // As delta-rs reads them: already encoded (a partition value's `%20`).
        let paths = planned.files_deleted.iter().map(|file| {
            deltalake::Path::parse(file).unwrap_or_else(|_| deltalake::Path::from(file.as_str()))
        });
        let (present, missing) = present_and_missing(store, paths, &qualified).await?;
        if dry_run || present.is_empty() {
            return Ok(VacuumReport {
                table: qualified,
                files: present,
                dry_run,
                refused,
            });
        }
        let (_, metrics) = vacuum(false)
            .await
            .map_err(|e| Error::delta(&qualified, e))?;
        Ok(VacuumReport {
            table: qualified,
            files: metrics
                .files_deleted
                .into_iter()
                .filter(|file| missing.binary_search(file).is_err())
                .collect(),
            dry_run: false,
            refused: Vec::new(),
        })
    }
}

/// A vacuum's clock, stopped at one instant.
#[derive(Debug)]
struct FixedClock(i64);

impl deltalake::operations::vacuum::Clock for FixedClock {
    fn current_timestamp_millis(&self) -> i64 {
        self.0
    }
}

/// The retention `table` declares (`property(key = "delta.deletedFileRetentionDuration", ..)`),
/// as Delta's kernel reads it.
fn declared_retention(table: &TableDef) -> Option<Duration> {
    let declared = table
        .properties
        .iter()
        .find(|(key, _)| *key == RETENTION_PROPERTY)?;
    delta_kernel::table_properties::TableProperties::from([*declared])
        .deleted_file_retention_duration
}

/// Refuses a vacuum of `table` with `retention` while one of `readers` has a commit to read
/// that is older than the retention (or whose time its log does not give).
async fn refuse_unread_commits(
    delta: &deltalake::DeltaTable,
    table: &'static TableDef,
    retention: Duration,
    readers: &[PendingReader],
) -> Result<()> {
    let latest = delta.version().unwrap_or_default();
    let cutoff = Timestamp(
        Timestamp::now()
            .0
            .saturating_sub(i64::try_from(retention.as_micros()).unwrap_or(i64::MAX)),
    );
    for reader in readers {
        let first_unread = reader.read_version.saturating_add(1);
        if first_unread > latest {
            continue;
        }
        // The first unread commit with data for it: a compaction or a metadata commit (a
        // vacuum's own) brings it nothing a vacuum could take.
        let Some((first_unread, committed)) =
            super::history::first_data_commit_from(delta, table, first_unread).await?
        else {
            continue;
        };
        if committed.is_some_and(|time| time > cutoff) {
            continue;
        }
        let when = committed.map_or_else(
            || "at a time its log does not give".to_owned(),
            |time| format!("at {time}"),
        );
        return Err(Error::Refused(format!(
            "vacuum of {qualified}: pipeline `{pipeline}` reads its changes incrementally and has \
             not read version {first_unread} yet (committed {when}, before the retention of {}): \
             vacuum could delete files it still has to read. Run it first (`orchestrate run \
             --select {pipeline}`), or pass --ignore-pending-readers and read its input whole \
             afterwards (`orchestrate run --select {pipeline} {refresh}`)",
            humantime::format_duration(retention),
            qualified = table.qualified_name(),
            pipeline = reader.pipeline,
            refresh = if reader.appends {
                "--rebuild"
            } else {
                "--full-refresh"
            },
        )));
    }
    Ok(())
}

/// The first symbolic link under `folder` (not following any), if there is one.
fn first_symlink(folder: &std::path::Path) -> Result<Option<std::path::PathBuf>> {
    // The table's folder itself, linked to another place (without a trailing `/`, which would
    // resolve the link).
    let folder: std::path::PathBuf = folder.components().collect();
    match std::fs::symlink_metadata(&folder) {
        Ok(metadata) if metadata.file_type().is_symlink() => return Ok(Some(folder)),
        _ => {}
    }
    let mut pending = vec![folder];
    while let Some(dir) = pending.pop() {
        let listing = |source| Error::Io {
            context: format!("listing {}", dir.display()),
            source,
        };
        for entry in std::fs::read_dir(&dir).map_err(listing)? {
            let entry = entry.map_err(listing)?;
            let kind = entry.file_type().map_err(listing)?;
            if kind.is_symlink() {
                return Ok(Some(entry.path()));
            }
            if kind.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(None)
}

impl Warehouse {
    /// The data files `table`'s current version references that its storage no longer holds
    /// (deleted or lost outside Delta): every scan of the table fails on them. One `HEAD` request
    /// per file, 16 at a time; sorted paths, relative to the table.
    pub async fn missing_files(&self, table: &'static TableDef) -> Result<Vec<String>> {
        match self.load(table).await? {
            Some(delta) => missing_files_of(table, &delta).await,
            None => Ok(Vec::new()),
        }
    }
}

/// The data files `delta`, `table`'s loaded table, references that its storage no longer holds
/// ([`Warehouse::missing_files`]).
pub(crate) async fn missing_files_of(table: &TableDef, delta: &DeltaTable) -> Result<Vec<String>> {
    let qualified = table.qualified_name();
    let snapshot = delta.snapshot().map_err(|e| Error::delta(&qualified, e))?;
    let store = delta.log_store().object_store(None);
    let paths: Vec<_> = snapshot
        .log_data()
        .iter()
        .map(|file| file.object_store_path())
        .collect();
    let (_, missing) = present_and_missing(store, paths.into_iter(), &qualified).await?;
    Ok(missing)
}

/// `paths` of `table`'s `store` that are there and that are not, each sorted (16 asked at once).
async fn present_and_missing(
    store: deltalake::logstore::ObjectStoreRef,
    paths: impl Iterator<Item = deltalake::Path>,
    table: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    use deltalake::logstore::object_store::ObjectStoreExt as _;
    use futures::StreamExt as _;
    let heads: Vec<_> = futures::stream::iter(paths)
        .map(|path| {
            let store = store.clone();
            async move { (store.head(&path).await, path) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let (mut present, mut missing) = (Vec::new(), Vec::new());
    for (head, path) in heads {
        match head {
            Ok(_) => present.push(path.to_string()),
            Err(deltalake::ObjectStoreError::NotFound { .. }) => missing.push(path.to_string()),
            Err(error) => {
                return Err(Error::msg(format!(
                    "checking the data file {path} of {table}: {error}"
                )));
            }
        }
    }
    present.sort();
    missing.sort();
    Ok((present, missing))
}
