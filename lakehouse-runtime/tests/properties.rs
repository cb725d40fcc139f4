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
