//! Declared table properties: set at creation, and on an existing table once declared later;
//! the system tables keep an hour of log history.

use lakehouse_runtime::Table;
use lakehouse_runtime::ledger::system_tables;
use lakehouse_runtime::table::TableDef;

use crate::common::TempWarehouse;

/// A table as first declared.
#[derive(Table)]
#[table(schema = "bronze", name = "declared_later")]
pub struct DeclaredBefore {
    pub id: i64,
}

/// The same table, its declaration since given a property.
#[derive(Table)]
#[table(
    schema = "bronze",
    name = "declared_later",
    property(key = "delta.logRetentionDuration", value = "interval 2 days")
)]
pub struct DeclaredAfter {
    pub id: i64,
}

/// `(version, the stored value of delta.logRetentionDuration)`.
async fn retention(wh: &TempWarehouse, table: &'static TableDef) -> (Option<u64>, Option<String>) {
    let delta = wh
        .warehouse
        .load(table)
        .await
        .expect("load")
        .expect("exists");
    let value = delta
        .snapshot()
        .expect("snapshot")
        .metadata()
        .configuration()
        .get("delta.logRetentionDuration")
        .cloned();
    (delta.version(), value)
}

#[tokio::test]
async fn a_property_declared_after_creation_is_set_by_the_next_ensure() {
    let wh = TempWarehouse::new();
    wh.warehouse
        .ensure(DeclaredBefore::DEF)
        .await
        .expect("created");
    assert_eq!(retention(&wh, DeclaredBefore::DEF).await, (Some(0), None));
    wh.warehouse
        .ensure(DeclaredAfter::DEF)
        .await
        .expect("ensured");
    let set = (Some(1), Some("interval 2 days".to_owned()));
    assert_eq!(retention(&wh, DeclaredAfter::DEF).await, set);
    // Once they agree, nothing is committed.
    wh.warehouse
        .ensure(DeclaredAfter::DEF)
        .await
        .expect("ensured again");
    assert_eq!(retention(&wh, DeclaredAfter::DEF).await, set);
}

#[tokio::test]
async fn system_tables_keep_an_hour_of_log_history() {
    let wh = TempWarehouse::new();
    for table in system_tables() {
        wh.warehouse.ensure(table).await.expect("created");
        let (_, value) = retention(&wh, table).await;
        assert_eq!(value.as_deref(), Some("interval 1 hour"), "{}", table.name);
    }
}

/// A table whose log history expires at once.
#[derive(Table, serde::Serialize)]
#[table(
    schema = "bronze",
    name = "short_history",
    property(key = "delta.logRetentionDuration", value = "interval 0 seconds")
)]
pub struct ShortHistory {
    pub id: i64,
}

#[tokio::test]
async fn expired_log_entries_are_deleted_once_a_checkpoint_covers_them() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let table = ShortHistory::DEF;
    // Version 0 creates the table; versions 1..=105 append, and version 100 is a checkpoint.
    for id in 1..=105_i64 {
        let df = crate::common::frame(&session, table, &[ShortHistory { id }]);
        wh.warehouse
            .write(&session, table, df, Default::default())
            .await
            .expect("appended");
    }
    let log = wh
        .warehouse
        .table_url(table)
        .expect("url")
        .to_file_path()
        .expect("local")
        .join("_delta_log");
    let mut commits: Vec<u64> = std::fs::read_dir(&log)
        .expect("log")
        .filter_map(|entry| {
            let name = entry.expect("entry").file_name().into_string().ok()?;
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    commits.sort();
    // The commits before the checkpoint went (delta-rs keeps the one just before it); what
    // follows it stays, and every row reads.
    assert_eq!(commits, (99..=105).collect::<Vec<u64>>());
    let count = crate::common::render(
        wh.warehouse
            .sql(
                &[table],
                "SELECT count(*), sum(id) FROM bronze.short_history",
            )
            .await
            .expect("query"),
    )
    .await;
    assert_eq!(count, ["105|5565"]);
}
