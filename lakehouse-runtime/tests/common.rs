//! Helpers: temporary warehouses, rows in and out.

use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use lakehouse_runtime::frame::batches_from_rows;
use lakehouse_runtime::store::{WriteOptions, WriteOutcome};
use lakehouse_runtime::{TableDef, Warehouse};
use serde::Serialize;

/// A warehouse in a fresh temporary directory (removed on drop).
pub struct TempWarehouse {
    pub dir: tempfile::TempDir,
    pub warehouse: Warehouse,
}

impl TempWarehouse {
    pub fn new() -> TempWarehouse {
        let dir = tempfile::tempdir().expect("temp dir");
        let warehouse = Warehouse::open(dir.path().join("warehouse").to_str().expect("utf-8 path"))
            .expect("warehouse");
        TempWarehouse { dir, warehouse }
    }
}

/// A DataFrame of `rows` with `table`'s data columns.
pub fn frame<R: Serialize>(session: &SessionContext, table: &TableDef, rows: &[R]) -> DataFrame {
    let schema = table.output_arrow_schema();
    let batches = batches_from_rows(schema.clone(), rows).expect("rows match the table");
    if batches.is_empty() {
        session
            .read_batch(arrow::array::RecordBatch::new_empty(schema))
            .expect("empty frame")
    } else {
        session.read_batches(batches).expect("frame")
    }
}

/// A typed frame of `rows`, with `T`'s data columns.
pub fn frame_of<T: lakehouse_runtime::Table, R: Serialize>(
    session: &SessionContext,
    rows: &[R],
) -> lakehouse_runtime::Frame<T> {
    lakehouse_runtime::Frame::from_dataframe(frame(session, T::DEF, rows)).expect("a typed frame")
}

/// Writes `rows` into `table`.
pub async fn write<R: Serialize>(
    warehouse: &Warehouse,
    table: &'static TableDef,
    rows: &[R],
    options: WriteOptions,
) -> lakehouse_runtime::Result<WriteOutcome> {
    let session = warehouse.session();
    let df = frame(&session, table, rows);
    warehouse.write(&session, table, df, options).await
}

/// Every row of `df`, cells joined with `|` (NULL as `∅`), sorted.
pub async fn render(df: DataFrame) -> Vec<String> {
    let batches = df.collect().await.expect("query runs");
    let options = FormatOptions::default().with_null("∅");
    let mut rows = Vec::new();
    for batch in &batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}

/// The rows `sql` gives over `tables` of `warehouse`, rendered as [`render`] does.
pub async fn query(warehouse: &Warehouse, tables: &[&'static TableDef], sql: &str) -> Vec<String> {
    render(warehouse.sql(tables, sql).await.expect(sql)).await
}

/// The one drift between `table`'s declaration and its stored table, asserted incompatible (what
/// `orchestrate check` fails on).
pub async fn incompatible_drift(
    warehouse: &Warehouse,
    table: &'static TableDef,
) -> lakehouse_runtime::store::SchemaDrift {
    let mut drift = warehouse.drift(table).await.expect("drift");
    assert_eq!(drift.len(), 1, "{drift:?}");
    let drift = drift.remove(0);
    assert!(drift.is_incompatible(), "{drift}");
    drift
}

pub async fn contents(warehouse: &Warehouse, table: &'static TableDef) -> Vec<String> {
    let session = warehouse.session();
    render(warehouse.read(&session, table).await.expect("readable")).await
}

/// Deletes the rows of `table` matching `predicate` (SQL; all without one), as another process
/// would: behind the runtime's back.
pub async fn delete_rows(warehouse: &Warehouse, table: &'static TableDef, predicate: Option<&str>) {
    let delta = warehouse.load(table).await.expect("load").expect("table");
    let delete = delta.delete();
    match predicate {
        Some(predicate) => delete.with_predicate(predicate).await,
        None => delete.await,
    }
    .expect("rows removed");
}

/// The data files of `table`'s latest version.
pub async fn data_files(warehouse: &Warehouse, table: &TableDef) -> usize {
    let delta = warehouse.load(table).await.expect("load").expect("exists");
    delta.snapshot().expect("snapshot").log_data().num_files()
}

/// Column names of the stored Delta table.
pub async fn stored_columns(warehouse: &Warehouse, table: &'static TableDef) -> Vec<String> {
    let session = warehouse.session();
    let catalog = warehouse.catalog(&[table]).await.expect("catalog");
    let _ = session;
    let df = catalog
        .table(format!("{}.{}", table.schema, table.name).as_str())
        .await
        .expect("registered");
    df.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// Strings from `&str`s.
pub fn lines(rows: &[&str]) -> Vec<String> {
    let mut rows: Vec<String> = rows.iter().map(|r| (*r).to_owned()).collect();
    rows.sort();
    rows
}

/// A session of `warehouse` encoding with two writers whatever the machine's cores (encoders
/// follow the session's target partitions), so tests of parallel writes run the same everywhere.
pub async fn two_writer_session(warehouse: &Warehouse) -> SessionContext {
    let session = warehouse.session();
    session
        .sql("SET datafusion.execution.target_partitions = 2")
        .await
        .expect("set")
        .collect()
        .await
        .expect("set");
    session
}

/// The local folder of `table` in `warehouse`.
pub fn table_folder(warehouse: &Warehouse, table: &TableDef) -> std::path::PathBuf {
    warehouse
        .table_url(table)
        .expect("url")
        .to_file_path()
        .expect("local")
}

/// The warnings and errors logged on this thread while the guard lives (a current-thread
/// runtime's tasks included), as text: `logs.lock()` to read them.
pub fn capture_warnings() -> (
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    tracing::subscriber::DefaultGuard,
) {
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || Sink(sink.clone()))
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// A writer into captured logs.
struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("logs not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
