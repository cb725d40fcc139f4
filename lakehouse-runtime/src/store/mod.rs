//! Delta Lake storage: one [`Warehouse`] holds every table at `<root>/<schema>/<table>/`.
//!
//! Reads are lazy DataFusion plans; writes stream the plan into Parquet files and commit once, in
//! the table's [`WriteMode`](crate::WriteMode), carrying a Delta application transaction so a
//! replayed write is a no-op. Nothing here knows about pipelines.

mod batching;
mod catalog;
mod change;
mod commit;
mod constraints;
mod create;
mod delete;
mod drift;
mod evolve;
mod guard;
mod health;
mod history;
pub(crate) mod location;
mod maintain;
mod merge;
mod parquet_props;
mod partitions;
mod read;
mod restore;
mod scd2;
mod sink;
mod unique;
mod upsert;
mod write;

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use deltalake::DeltaTable;
use deltalake::delta_datafusion::planner::DeltaPlanner;
use url::Url;

pub use catalog::{AsOf, check_read_only};
pub(crate) use commit::{CommitTags, new_write_id};
pub use commit::{CommittedTransaction, TRANSACTION_KEY, WRITE_ID_KEY, rows_deleted, rows_written};
pub use drift::{DriftKind, SchemaDrift};
pub use health::{BlockedBy, BlockedCheck, TableHealth};
pub use history::{StaleTable, TableCommit};
pub use location::{check_name, is_safe_name, table_url, warehouse_url};
pub use maintain::{AUTO_COMPACT_AT_FILES, OptimizeReport, PendingReader, VacuumReport};
pub use read::{Changes, TableStats};
pub(crate) use read::{integers, maximum_from_statistics, stats_of};
pub use restore::RestoreReport;
pub(crate) use sink::OpenTable;
pub use write::{Deletions, WriteOptions, WriteOutcome};

use crate::error::{Error, Result};
use crate::table::TableDef;

/// Default memory DataFusion may use for sorts, joins and merges before spilling to disk.
pub const DEFAULT_MEMORY_LIMIT: usize = 4 << 30;

/// A set of Delta tables under one root, and the DataFusion runtime (memory pool, object stores)
/// every read and write shares.
///
/// # Examples
///
/// ```ignore
/// let warehouse = Warehouse::open("data/warehouse")?;
/// let session = warehouse.session();
/// let df = session.read_batches(batches)?;
/// let outcome = warehouse
///     .write(&session, SilverErpSales::DEF, df, WriteOptions::default())
///     .await?;
/// let rows = warehouse.sql(&[SilverErpSales::DEF], "SELECT count(*) FROM silver.erp_sales_transactions").await?;
/// ```
#[derive(Clone)]
pub struct Warehouse {
    root: Url,
    runtime: Arc<RuntimeEnv>,
    /// The one store of a `memory://` warehouse: delta-rs would give every table load a new,
    /// empty one, and each write would vanish.
    memory: Option<Arc<dyn deltalake::ObjectStore>>,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("root", &self.root.as_str())
            .finish()
    }
}

/// An error if the local `location` is a file: told first (a run announced a new warehouse
/// there, then failed on "File exists"; a read said the directory did not exist).
fn refuse_a_file(location: &str) -> Result<()> {
    match location::local_directory(location)? {
        // (A link to nothing is there too, and no directory can be made in its place.)
        Some(directory) if directory.symlink_metadata().is_ok() && !directory.is_dir() => {
            Err(Error::InvalidName {
                what: "warehouse location",
                name: location.to_owned(),
                reason: "it is a file (or a link to nothing), not a directory",
            })
        }
        _ => Ok(()),
    }
}

impl Warehouse {
    /// Opens the warehouse at `location`: a local directory (created if missing) or an
    /// object-store URL (`memory:///name/` is an in-memory warehouse, gone with this value and
    /// its clones). Memory is bounded by [`DEFAULT_MEMORY_LIMIT`].
    pub fn open(location: &str) -> Result<Warehouse> {
        Warehouse::open_with_memory_limit(location, DEFAULT_MEMORY_LIMIT)
    }

    /// Opens a warehouse that already exists: a local warehouse's directory is not created, and
    /// its absence is an error (for commands that only read or maintain a warehouse, where a
    /// mistyped location would otherwise answer as an empty warehouse).
    pub fn open_existing(location: &str) -> Result<Warehouse> {
        if let Some(directory) = Warehouse::missing(location)? {
            return Err(Error::msg(format!(
                "no warehouse at {}: the directory does not exist (a run creates it)",
                directory.display()
            )));
        }
        if let Some(directory) = location::local_directory(location)?
            && !holds_a_table(&directory)
        {
            return Err(Error::msg(format!(
                "no warehouse at {}: the directory holds no Delta table (a warehouse holds \
                 `schema/table/_delta_log`; a run creates them): is it the warehouse's parent, \
                 or one of its schemas?",
                directory.display()
            )));
        }
        Warehouse::open(location)
    }

    /// The directory of a local warehouse at `location` that does not exist (`None` when it
    /// exists, or for an object store, where an empty prefix is an empty warehouse); an error
    /// when it is a file.
    pub fn missing(location: &str) -> Result<Option<std::path::PathBuf>> {
        refuse_a_file(location)?;
        Ok(location::local_directory(location)?.filter(|directory| !directory.is_dir()))
    }

    /// Opens the warehouse with `memory_limit` bytes for DataFusion operators (they spill beyond).
    pub fn open_with_memory_limit(location: &str, memory_limit: usize) -> Result<Warehouse> {
        refuse_a_file(location)?;
        let root = warehouse_url(location)?;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit)))
            .build_arc()?;
        let memory = (root.scheme() == "memory").then(|| {
            Arc::new(deltalake::logstore::object_store::memory::InMemory::new())
                as Arc<dyn deltalake::ObjectStore>
        });
        Ok(Warehouse {
            root,
            runtime,
            memory,
        })
    }

    /// This warehouse with `memory_limit` bytes for DataFusion operators instead (unchanged for
    /// `None`); call it before any session is taken, whose operators keep the pool they have.
    pub fn with_memory_limit(self, memory_limit: Option<usize>) -> Result<Warehouse> {
        let Some(limit) = memory_limit else {
            return Ok(self);
        };
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limit)))
            .build_arc()?;
        Ok(Warehouse { runtime, ..self })
    }

    /// The root URL.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The local root directory, if the warehouse is on the local file system.
    pub fn local_root(&self) -> Option<std::path::PathBuf> {
        location::local_path(&self.root)
    }

    /// A new DataFusion session on this warehouse's runtime (shared memory pool and stores),
    /// with Delta's query planner so Delta operations can execute its plans.
    pub fn session(&self) -> SessionContext {
        session_on(self.runtime.clone())
    }

    /// The location of `table`.
    pub fn table_url(&self, table: &TableDef) -> Result<Url> {
        table_url(&self.root, table.schema, table.name)
    }

    /// The Delta table of `table`, loaded at its latest version, or `None` if it was never written.
    /// A folder holding data files but no Delta log (the log lost or deleted) is an error: read
    /// as a table never written, it gave its readers no rows, and an overwrite downstream wrote
    /// its table empty.
    pub async fn load(&self, table: &TableDef) -> Result<Option<DeltaTable>> {
        let url = self.table_url(table)?;
        let qualified = table.qualified_name();
        // Only look: opening a table must not create directories.
        if let Some(path) = location::local_path(&url)
            && !path.join("_delta_log").is_dir()
        {
            create::refuse_files_without_a_log(&qualified, &path)?;
            return Ok(None);
        }
        let mut delta = DeltaTable::new(
            self.log_store(&url)
                .map_err(|e| Error::delta(&qualified, e))?,
        );
        // An object store has no folders: a table never written has no object under its log's
        // prefix. Asked first, so that the kernel does not log an ERROR for every such table
        // of a new warehouse (a listing error is left to the load to report).
        if location::local_path(&url).is_none() {
            let store = delta.log_store().object_store(None);
            if !lists_a_log(&store).await {
                create::refuse_objects_without_a_log(&qualified, &url, store).await?;
                return Ok(None);
            }
        }
        match delta.load().await {
            Ok(()) => Ok(delta.version().is_some().then_some(delta)),
            // No log (an object store has no folders), or an empty one: files there are a
            // table's whose log is lost, not a table never written.
            Err(deltalake::DeltaTableError::NotATable(_)) => {
                match location::local_path(&url) {
                    Some(path) => create::refuse_files_without_a_log(&qualified, &path)?,
                    None => {
                        create::refuse_objects_without_a_log(
                            &qualified,
                            &url,
                            delta.log_store().object_store(None),
                        )
                        .await?
                    }
                }
                Ok(None)
            }
            Err(error) => Err(Error::delta(&qualified, error)),
        }
    }

    /// Whether `table` has a Delta log: one listing, not a load. A location that cannot be
    /// listed counts as written (what reads it will tell why).
    pub async fn has_log(&self, table: &TableDef) -> bool {
        let Ok(url) = self.table_url(table) else {
            return true;
        };
        if let Some(path) = location::local_path(&url) {
            return match std::fs::metadata(path.join("_delta_log")) {
                Ok(log) => log.is_dir(),
                Err(error) => error.kind() != std::io::ErrorKind::NotFound,
            };
        }
        match self.log_store(&url) {
            Ok(store) => lists_a_log(&store.object_store(None)).await,
            Err(_) => true,
        }
    }

    /// The Delta log store of the table at `url`, on this warehouse's own store when it has one.
    pub(crate) fn log_store(
        &self,
        url: &Url,
    ) -> Result<deltalake::logstore::LogStoreRef, deltalake::DeltaTableError> {
        let builder = deltalake::DeltaTableBuilder::from_url(url.clone())?;
        match &self.memory {
            Some(store) => builder.with_storage_backend(store.clone(), url.clone()),
            None => builder,
        }
        .build_storage()
    }

    /// The latest version of `table`, or `None` if it was never written.
    pub async fn version(&self, table: &TableDef) -> Result<Option<u64>> {
        Ok(self.load(table).await?.and_then(|t| t.version()))
    }

    /// When `table` was created (its metadata's creation time, to the millisecond), if it
    /// exists and says.
    pub async fn created_at(&self, table: &TableDef) -> Result<Option<crate::table::Timestamp>> {
        Ok(self
            .load(table)
            .await?
            .and_then(|delta| read::created_time(&delta)))
    }
}

/// `deltalake` operations take a session; give them ours so they use the shared memory pool.
pub(crate) fn session_state(session: &SessionContext) -> Arc<datafusion::execution::SessionState> {
    Arc::new(session.state())
}

/// Whether a table's object store (rooted at the table) lists anything under `_delta_log/`: one
/// request; a listing error counts as a log (what loads the table tells the error).
async fn lists_a_log(store: &Arc<dyn deltalake::ObjectStore>) -> bool {
    use futures::StreamExt as _;
    let log = deltalake::Path::from("_delta_log");
    store.list(Some(&log)).next().await.is_some()
}

/// Whether `directory` holds a Delta table two levels down (`schema/table/_delta_log`).
fn holds_a_table(directory: &std::path::Path) -> bool {
    let subdirectories = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect::<Vec<_>>()
    };
    subdirectories(directory).iter().any(|schema| {
        subdirectories(schema)
            .iter()
            .any(|table| table.join("_delta_log").is_dir())
    })
}

/// Helpers of the store's unit tests.
/// A session configured as every warehouse session is, on `runtime`: the plan test plans with
/// it what a run executes.
pub(crate) fn session_on(runtime: Arc<RuntimeEnv>) -> SessionContext {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema("datafusion", "public")
        // Delta's workaround: IN-list pushdown in hash joins can panic on dictionary keys
        // (Delta partition columns are dictionary-encoded).
        .set_usize("datafusion.optimizer.hash_join_inlist_pushdown_max_size", 0)
        .set_usize(
            "datafusion.optimizer.hash_join_inlist_pushdown_max_distinct_values",
            0,
        )
        // Joins run as written, with the frame passed to `join` as the hash table (see
        // `View::join`). DataFusion's own choice relies on cardinality estimates that Delta
        // statistics (no distinct counts) make collapse after one join: a star join then
        // held the whole fact in memory and probed it with a dimension.
        .set_bool("datafusion.optimizer.join_reordering", false)
        // Tables store strings as Utf8: reading them as Utf8View cost a copy of every
        // string back to Utf8 on the way to the writer.
        .set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        );
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_query_planner(DeltaPlanner::new())
        .with_optimizer_rule(Arc::new(crate::frame::FastDecimalCast))
        .build();
    let session = SessionContext::new_with_state(state);
    crate::frame::register_functions(&session);
    session
}

/// Whether `delta` is column-mapped (`delta.columnMapping.mode` other than `none`): delta-rs
/// 1.1 reads no change data feed of such a table and adds no column to it.
pub(crate) fn column_mapped(delta: &DeltaTable) -> bool {
    delta.snapshot().is_ok_and(|snapshot| {
        snapshot
            .metadata()
            .configuration()
            .get("delta.columnMapping.mode")
            .is_some_and(|mode| !mode.eq_ignore_ascii_case("none"))
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{Warehouse, WriteOptions};
    use crate::table::TableDef;

    /// A warehouse in a fresh temporary directory (removed with the returned guard).
    pub(crate) fn temp_warehouse() -> (tempfile::TempDir, Warehouse) {
        let dir = tempfile::tempdir().expect("dir");
        let warehouse = Warehouse::open(dir.path().to_str().expect("utf-8")).expect("warehouse");
        (dir, warehouse)
    }

    /// Writes `rows` into `table`, in one write.
    pub(crate) async fn write_rows<R: serde::Serialize>(
        warehouse: &Warehouse,
        table: &'static TableDef,
        rows: &[R],
    ) {
        let session = warehouse.session();
        let batches = crate::frame::batches_from_rows(table.output_arrow_schema(), rows)
            .expect("rows match the table");
        let df = session.read_batches(batches).expect("frame");
        warehouse
            .write(&session, table, df, WriteOptions::default())
            .await
            .expect("write");
    }
}
