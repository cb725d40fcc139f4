//! Hostile names never reach the file system.

use lakehouse_runtime::store::{WriteOptions, table_url};
use lakehouse_runtime::{ColumnDef, LogicalType, SchemaEvolution, TableDef, Warehouse, WriteMode};

use crate::common::TempWarehouse;

const COLUMNS: &[ColumnDef] = &[ColumnDef {
    name: "id",
    data_type: LogicalType::Int64,
    nullable: false,
    description: "",
    role: lakehouse_runtime::table::ColumnRole::Data,
    references: None,
}];

fn leak(schema: &str, name: &str) -> &'static TableDef {
    Box::leak(Box::new(TableDef {
        schema: Box::leak(schema.to_owned().into_boxed_str()),
        name: Box::leak(name.to_owned().into_boxed_str()),
        rust_type: "Hostile",
        description: "",
        columns: COLUMNS,
        key: &[],
        partition_by: &[],
        mode: WriteMode::Append,
        change_columns: None,
        evolution: SchemaEvolution::Merge,
        overwrite: lakehouse_runtime::OverwriteScope::Table,
        quality: lakehouse_runtime::table::Quality::Off,
        z_order: &[],
        target_file_size: None,
        auto_compact: true,
        freshness_secs: None,
        checks: &[],
        expectations: &[],
        properties: &[],
    }))
}

const HOSTILE: &[&str] = &[
    "../x", "/abs", "a/b", "", "a\0b", "%2e%2e", "..", "a\\b", "A",
];

#[tokio::test]
async fn hostile_schema_and_table_names_are_rejected_and_create_nothing() {
    let wh = TempWarehouse::new();
    let root = wh.warehouse.local_root().expect("local");
    for name in HOSTILE {
        for table in [leak(name, "t"), leak("s", name)] {
            let session = wh.warehouse.session();
            let df = session
                .read_batch(arrow::array::RecordBatch::new_empty(
                    table.output_arrow_schema(),
                ))
                .expect("df");
            let error = wh
                .warehouse
                .write(&session, table, df, WriteOptions::default())
                .await
                .expect_err("hostile name");
            assert!(
                error.to_string().starts_with("invalid "),
                "{name:?}: {error}"
            );
            assert!(
                wh.warehouse.read(&session, table).await.is_err(),
                "{name:?}: read refused"
            );
        }
    }
    let outside: Vec<_> = std::fs::read_dir(wh.dir.path())
        .expect("temp dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        outside,
        ["warehouse"],
        "nothing created beside the warehouse"
    );
    assert_eq!(
        std::fs::read_dir(&root).expect("root").count(),
        0,
        "nothing created inside it"
    );
    let url = url::Url::parse("file:///wh/").expect("url");
    assert!(table_url(&url, "gold", "%2e%2e").is_err());
}

#[test]
fn warehouse_locations() {
    assert!(Warehouse::open("").is_err());
    assert!(
        Warehouse::open("ftp://host/x")
            .expect_err("scheme")
            .to_string()
            .contains("unsupported scheme")
    );
    // A relative path whose first part holds a `:` reads as a URL: the error says how to write
    // it.
    let colon = Warehouse::open("bk:2026").expect_err("a URL").to_string();
    assert!(colon.contains("write `./` before it"), "{colon}");
    let dir = tempfile::tempdir().expect("dir");
    let nested = dir.path().join("a/../b");
    let wh = Warehouse::open(nested.to_str().expect("utf-8")).expect("open");
    assert_eq!(wh.local_root().expect("local"), dir.path().join("b"));
    // `file:data/wh` parses as `/data/wh`: refused, not created at the root.
    let error = Warehouse::open("file:data/wh").expect_err("relative file URL");
    assert!(
        error
            .to_string()
            .contains("write a file URL as `file:///absolute/path`"),
        "{error}"
    );
    let url = format!("file://{}", dir.path().join("c").display());
    let wh = Warehouse::open(&url).expect("an absolute file URL");
    assert_eq!(wh.local_root().expect("local"), dir.path().join("c"));
    for location in ["memory:///wh?x=1", "memory:///wh#part"] {
        let error = Warehouse::open(location).expect_err("query or fragment");
        assert!(
            error.to_string().contains("a URL with `?` or `#`"),
            "{location}: {error}"
        );
    }
}
