//! Declared table properties: set at creation, and on an existing table once declared later;
//! the system tables keep an hour of log history.

use lakehouse_runtime::Table;
use lakehouse_runtime::ledger::system_tables;
use lakehouse_runtime::store::PendingReader;
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

/// A table with a property of its owner's, not Delta's.
#[derive(Table)]
#[table(
    schema = "bronze",
    name = "owned",
    property(key = "owner", value = "sales")
)]
pub struct OwnedBySales {
    pub id: i64,
}

/// The same table, handed to another team.
#[derive(Table)]
#[table(
    schema = "bronze",
    name = "owned",
    property(key = "owner", value = "finance"),
    property(key = "team.contact", value = "finance@example.com")
)]
pub struct OwnedByFinance {
    pub id: i64,
}

#[tokio::test]
async fn a_property_of_ones_own_changes_on_the_existing_table() {
    let wh = TempWarehouse::new();
    let stored = |table: &'static TableDef| {
        let wh = &wh;
        async move {
            let delta = wh
                .warehouse
                .load(table)
                .await
                .expect("load")
                .expect("exists");
            let configuration = delta
                .snapshot()
                .expect("snapshot")
                .metadata()
                .configuration()
                .clone();
            (
                configuration.get("owner").cloned(),
                configuration.get("team.contact").cloned(),
            )
        }
    };
    wh.warehouse
        .ensure(OwnedBySales::DEF)
        .await
        .expect("created");
    assert_eq!(
        stored(OwnedBySales::DEF).await,
        (Some("sales".to_owned()), None)
    );
    // delta-rs refused a key it does not know here, and every later write failed.
    wh.warehouse
        .ensure(OwnedByFinance::DEF)
        .await
        .expect("a property of one's own changes");
    assert_eq!(
        stored(OwnedByFinance::DEF).await,
        (
            Some("finance".to_owned()),
            Some("finance@example.com".to_owned())
        )
    );
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
    let log = crate::common::table_folder(&wh.warehouse, table).join("_delta_log");
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

/// A table with Delta column mapping: its Parquet files name columns by physical name.
#[derive(Table, serde::Serialize)]
#[table(
    schema = "bronze",
    name = "mapped",
    key(id),
    mode = merge,
    property(key = "delta.columnMapping.mode", value = "name")
)]
pub struct Mapped {
    pub id: i64,
    pub label: String,
}

#[tokio::test]
async fn column_mapped_tables_are_written_by_physical_name() {
    let wh = TempWarehouse::new();
    let rows = |labels: &[(i64, &str)]| {
        labels
            .iter()
            .map(|(id, label)| Mapped {
                id: *id,
                label: (*label).into(),
            })
            .collect::<Vec<_>>()
    };
    crate::common::write(
        &wh.warehouse,
        Mapped::DEF,
        &rows(&[(1, "one"), (2, "two")]),
        Default::default(),
    )
    .await
    .expect("first write");
    crate::common::write(
        &wh.warehouse,
        Mapped::DEF,
        &rows(&[(2, "deux"), (3, "trois")]),
        Default::default(),
    )
    .await
    .expect("upsert");
    assert_eq!(
        crate::common::contents(&wh.warehouse, Mapped::DEF).await,
        ["1|one", "2|deux", "3|trois"]
    );
    // Every data file names its columns as the log's schema maps them.
    let delta = wh
        .warehouse
        .load(Mapped::DEF)
        .await
        .expect("load")
        .expect("exists");
    let snapshot = delta.snapshot().expect("snapshot");
    let physical: Vec<String> = snapshot
        .schema()
        .fields()
        .map(|f| {
            f.metadata()
                .get("delta.columnMapping.physicalName")
                .map(|v| v.to_string())
                .expect("a physical name")
        })
        .collect();
    let files: Vec<String> = delta.get_file_uris().expect("files").collect();
    assert!(!files.is_empty());
    for uri in files {
        let path = uri.strip_prefix("file://").unwrap_or(&uri).to_owned();
        let file = std::fs::File::open(&path).expect("data file");
        let reader = parquet::file::reader::SerializedFileReader::new(file).expect("parquet");
        let names: Vec<String> = parquet::file::reader::FileReader::metadata(&reader)
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(names, physical, "{path}");
    }
}

/// A table whose schema each write replaces.
#[derive(Table, serde::Serialize)]
#[table(schema = "gold", name = "replaced", mode = overwrite, evolution = overwrite)]
pub struct Replaced {
    /// The identifier
    pub id: i64,
    /// What it is called
    pub label: Option<String>,
}

#[tokio::test]
async fn a_replaced_schema_keeps_the_column_descriptions() {
    let wh = TempWarehouse::new();
    for label in ["one", "uno"] {
        crate::common::write(
            &wh.warehouse,
            Replaced::DEF,
            &[Replaced {
                id: 1,
                label: Some(label.into()),
            }],
            Default::default(),
        )
        .await
        .expect("write");
    }
    assert_eq!(
        crate::common::contents(&wh.warehouse, Replaced::DEF).await,
        ["1|uno"]
    );
    let delta = wh
        .warehouse
        .load(Replaced::DEF)
        .await
        .expect("load")
        .expect("exists");
    let comments: Vec<(String, Option<String>)> = delta
        .snapshot()
        .expect("snapshot")
        .schema()
        .fields()
        .map(|f| {
            (
                f.name().clone(),
                f.metadata().get("comment").map(|c| c.to_string()),
            )
        })
        .collect();
    assert_eq!(
        comments,
        [
            ("id".to_owned(), Some("The identifier".to_owned())),
            ("label".to_owned(), Some("What it is called".to_owned())),
        ]
    );
    // The schema the writes give is the stored one: they change no metadata (a metadata change
    // conflicts with every concurrent transaction and stops streaming readers).
    for version in [1, 2] {
        let commit = std::fs::read_to_string(wh.dir.path().join(format!(
            "warehouse/gold/replaced/_delta_log/{version:020}.json"
        )))
        .expect("commit");
        assert!(
            !commit.contains("\"metaData\""),
            "version {version}: {commit}"
        );
    }
}

/// [`Replaced`], its label now a number.
#[derive(Table, serde::Serialize)]
#[table(schema = "gold", name = "replaced", mode = overwrite, evolution = overwrite)]
pub struct ReplacedRetyped {
    pub id: i64,
    pub label: Option<i64>,
}

#[tokio::test]
async fn a_type_change_of_a_table_whose_schema_is_replaced_is_not_incompatible() {
    let wh = TempWarehouse::new();
    crate::common::write(
        &wh.warehouse,
        Replaced::DEF,
        &[Replaced {
            id: 1,
            label: Some("one".into()),
        }],
        Default::default(),
    )
    .await
    .expect("write");
    let drift = wh
        .warehouse
        .drift(ReplacedRetyped::DEF)
        .await
        .expect("drift");
    let said: Vec<(String, bool)> = drift
        .iter()
        .map(|d| (d.to_string(), d.is_incompatible()))
        .collect();
    assert_eq!(
        said,
        [(
            "gold.replaced.label: declared BIGINT, stored STRING; the next write replaces the \
             table's schema (`evolution = overwrite`)"
                .to_owned(),
            false
        )]
    );
    // As said: the write replaces it.
    crate::common::write(
        &wh.warehouse,
        ReplacedRetyped::DEF,
        &[ReplacedRetyped {
            id: 1,
            label: Some(7),
        }],
        Default::default(),
    )
    .await
    .expect("the schema replaced");
    assert_eq!(
        crate::common::contents(&wh.warehouse, ReplacedRetyped::DEF).await,
        ["1|7"]
    );
    assert!(
        wh.warehouse
            .drift(ReplacedRetyped::DEF)
            .await
            .expect("drift")
            .is_empty()
    );
}

/// A table whose incremental readers may lag a month.
#[derive(Table)]
#[table(
    schema = "bronze",
    name = "slow_readers",
    property(key = "delta.deletedFileRetentionDuration", value = "interval 30 days")
)]
pub struct SlowReaders {
    pub id: i64,
}

#[tokio::test]
async fn vacuum_keeps_the_tables_own_retention() {
    let wh = TempWarehouse::new();
    wh.warehouse.ensure(SlowReaders::DEF).await.expect("create");
    let week = std::time::Duration::from_secs(7 * 24 * 3600);
    let refused = wh
        .warehouse
        .vacuum(SlowReaders::DEF, Some(week), true, false)
        .await
        .expect_err("a week is under the table's month")
        .to_string();
    assert!(
        refused.contains("a retention of 7days is under the table's `delta.deletedFileRetentionDuration` of 30days"),
        "{refused}"
    );
    // A file removed now: within the table's month, kept; a retention of zero would take it.
    crate::common::write(
        &wh.warehouse,
        SlowReaders::DEF,
        &[serde_json::json!({"id": 1})],
        Default::default(),
    )
    .await
    .expect("a row");
    crate::common::delete_rows(&wh.warehouse, SlowReaders::DEF, None).await;
    let report = wh
        .warehouse
        .vacuum(SlowReaders::DEF, None, true, false)
        .await
        .expect("the table's own retention");
    assert!(report.files.is_empty(), "{:?}", report.files);
    let report = wh
        .warehouse
        .vacuum(
            SlowReaders::DEF,
            Some(std::time::Duration::ZERO),
            true,
            true,
        )
        .await
        .expect("forced");
    assert_eq!(report.files.len(), 1, "{:?}", report.files);
}

/// [`SlowReaders`] before it declared its retention.
mod slow_readers_before {
    #[derive(lakehouse_runtime::Table)]
    #[table(schema = "bronze", name = "slow_readers")]
    pub struct SlowReaders {
        pub id: i64,
    }
}

#[tokio::test]
async fn vacuum_keeps_a_declared_retention_the_table_does_not_have_yet() {
    // The declaration reaches the table at its next write (or was undone by a restore to a
    // version before it): a vacuum in between took the stored week, and deleted what readers
    // of the month still need.
    let wh = TempWarehouse::new();
    wh.warehouse
        .ensure(slow_readers_before::SlowReaders::DEF)
        .await
        .expect("created without the property");
    let ten_days = std::time::Duration::from_secs(10 * 24 * 3600);
    let refused = wh
        .warehouse
        .vacuum(SlowReaders::DEF, Some(ten_days), true, false)
        .await
        .expect_err("ten days is under the declared month")
        .to_string();
    assert!(
        refused.contains("a retention of 10days is under the table's `delta.deletedFileRetentionDuration` of 30days"),
        "{refused}"
    );
    wh.warehouse
        .vacuum(
            slow_readers_before::SlowReaders::DEF,
            Some(ten_days),
            true,
            false,
        )
        .await
        .expect("the stored week, for a declaration without the property");
}

/// A table as first documented.
mod documented_before {
    use lakehouse_runtime::Table;

    /// Customers.
    #[derive(Table, serde::Serialize)]
    #[table(schema = "silver", name = "documented")]
    pub struct Documented {
        /// The id
        pub id: i64,
        pub name: Option<String>,
    }
}

/// The same table, its doc comments since edited.
mod documented_after {
    use lakehouse_runtime::Table;

    /// Customers of the shop, one row per account.
    #[derive(Table, serde::Serialize)]
    #[table(schema = "silver", name = "documented")]
    pub struct Documented {
        /// The account's identifier
        pub id: i64,
        /// The name on the account
        pub name: Option<String>,
    }
}

#[tokio::test]
async fn edited_doc_comments_reach_the_stored_table_at_the_next_write() {
    let wh = TempWarehouse::new();
    let before = <documented_before::Documented as Table>::DEF;
    let after = <documented_after::Documented as Table>::DEF;
    let described = |delta: &deltalake::DeltaTable| {
        let snapshot = delta.snapshot().expect("snapshot");
        let comments: Vec<Option<String>> = snapshot
            .schema()
            .fields()
            .map(|f| match f.metadata().get("comment") {
                Some(deltalake::kernel::MetadataValue::String(text)) => Some(text.clone()),
                _ => None,
            })
            .collect();
        (
            snapshot.metadata().description().map(str::to_owned),
            comments,
        )
    };
    let warehouse = &wh.warehouse;
    let load = |table| async move { warehouse.load(table).await.expect("load").expect("exists") };
    let row = |id| documented_before::Documented { id, name: None };
    crate::common::write(&wh.warehouse, before, &[row(1)], Default::default())
        .await
        .expect("first write");
    crate::common::write(&wh.warehouse, before, &[row(2)], Default::default())
        .await
        .expect("second write");
    let written = load(before).await;
    assert_eq!(
        described(&written),
        (
            Some("Customers.".to_owned()),
            vec![Some("The id".to_owned()), None]
        )
    );
    assert_eq!(
        written.version(),
        Some(2),
        "unchanged descriptions commit nothing"
    );
    let row = |id| documented_after::Documented { id, name: None };
    let outcome = crate::common::write(&wh.warehouse, after, &[row(3)], Default::default())
        .await
        .expect("write after the edit");
    assert_eq!(outcome.version, Some(3), "the rows' commit");
    let updated = load(after).await;
    assert_eq!(
        updated.version(),
        Some(4),
        "one commit for every description"
    );
    assert_eq!(
        described(&updated),
        (
            Some("Customers of the shop, one row per account.".to_owned()),
            vec![
                Some("The account's identifier".to_owned()),
                Some("The name on the account".to_owned())
            ]
        )
    );
    crate::common::write(&wh.warehouse, after, &[row(4)], Default::default())
        .await
        .expect("next write");
    assert_eq!(
        load(after).await.version(),
        updated.version().map(|v| v + 1),
        "once they agree, a write is one commit"
    );
}

/// Appended rows.
#[derive(Table, serde::Serialize)]
#[table(schema = "bronze", name = "blind")]
pub struct Blind {
    pub id: i64,
}

#[tokio::test]
async fn appends_record_the_version_read_and_that_they_are_blind() {
    let wh = TempWarehouse::new();
    for id in [1, 2] {
        crate::common::write(
            &wh.warehouse,
            Blind::DEF,
            &[Blind { id }],
            Default::default(),
        )
        .await
        .expect("append");
    }
    let commit = std::fs::read_to_string(
        wh.dir
            .path()
            .join(format!("warehouse/bronze/blind/_delta_log/{:020}.json", 2)),
    )
    .expect("commit");
    let info: serde_json::Value = commit
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|action| action.get("commitInfo").cloned())
        .expect("commitInfo");
    assert_eq!(info["readVersion"], 1, "{info}");
    assert_eq!(info["isBlindAppend"], true, "{info}");
}

/// Merged rows: a merge into an empty table read it (empty), so it is not blind.
#[derive(Table, serde::Serialize)]
#[table(schema = "bronze", name = "not_blind", key(id), mode = merge)]
pub struct NotBlind {
    pub id: i64,
}

/// An append-only table.
#[derive(Table, serde::Serialize)]
#[table(
    schema = "bronze",
    name = "append_only",
    property(key = "delta.appendOnly", value = "true")
)]
pub struct AppendOnlyRows {
    pub id: i64,
}

#[tokio::test]
async fn a_merge_into_an_empty_table_is_not_a_blind_append_and_append_only_refuses_a_rebuild() {
    let wh = TempWarehouse::new();
    crate::common::write(
        &wh.warehouse,
        NotBlind::DEF,
        &[NotBlind { id: 1 }],
        Default::default(),
    )
    .await
    .expect("merge");
    let commit = std::fs::read_to_string(wh.dir.path().join(format!(
        "warehouse/bronze/not_blind/_delta_log/{:020}.json",
        1
    )))
    .expect("commit");
    assert!(commit.contains("\"isBlindAppend\":false"), "{commit}");

    let rows = [AppendOnlyRows { id: 1 }];
    crate::common::write(
        &wh.warehouse,
        AppendOnlyRows::DEF,
        &rows,
        Default::default(),
    )
    .await
    .expect("append");
    let options = lakehouse_runtime::store::WriteOptions {
        replace: true,
        ..Default::default()
    };
    let error = crate::common::write(&wh.warehouse, AppendOnlyRows::DEF, &rows, options)
        .await
        .expect_err("an append-only table cannot be replaced");
    assert!(
        error
            .to_string()
            .contains("bronze.append_only is append-only (`delta.appendOnly`)"),
        "{error}"
    );
}

/// A table whose removed files may be deleted at once.
#[derive(Table, serde::Serialize)]
#[table(
    schema = "bronze",
    name = "quick_vacuum",
    property(
        key = "delta.deletedFileRetentionDuration",
        value = "interval 0 seconds"
    )
)]
pub struct QuickVacuum {
    pub id: i64,
}

#[tokio::test]
async fn vacuum_is_refused_while_an_incremental_reader_has_older_commits_to_read() {
    let wh = TempWarehouse::new();
    for id in 0..3 {
        crate::common::write(
            &wh.warehouse,
            QuickVacuum::DEF,
            &[QuickVacuum { id }],
            lakehouse_runtime::store::WriteOptions::default(),
        )
        .await
        .expect("append");
    }
    // Versions 1-3 (0 created the table); the compaction at 4 removes their files.
    wh.warehouse
        .optimize(QuickVacuum::DEF)
        .await
        .expect("optimize");
    let behind = PendingReader {
        pipeline: "copy_quickly".to_owned(),
        read_version: 1,
        appends: false,
    };
    let refused = wh
        .warehouse
        .vacuum_keeping(
            QuickVacuum::DEF,
            None,
            false,
            false,
            std::slice::from_ref(&behind),
        )
        .await
        .expect_err("the reader has not read version 2, whose file the compaction removed");
    assert!(
        matches!(refused, lakehouse_runtime::Error::Refused(_)),
        "{refused}"
    );
    let refused = refused.to_string();
    for expected in [
        "vacuum of bronze.quick_vacuum: pipeline `copy_quickly` reads its changes incrementally \
         and has not read version 2 yet",
        "Run it first (`orchestrate run --select copy_quickly`)",
        "or pass --ignore-pending-readers and read its input whole afterwards (`orchestrate \
         run --select copy_quickly --full-refresh`)",
    ] {
        assert!(refused.contains(expected), "`{expected}` in: {refused}");
    }
    // A dry run lists the files (and warns).
    let dry = wh
        .warehouse
        .vacuum_keeping(
            QuickVacuum::DEF,
            None,
            true,
            false,
            std::slice::from_ref(&behind),
        )
        .await
        .expect("a dry run deletes nothing");
    assert_eq!(dry.files.len(), 3, "{dry:?}");
    // Nothing was deleted; a reader that read every write does not hold the vacuum back, the
    // compaction (version 4, which brings it no data) left to read or not.
    let latest = wh
        .warehouse
        .version(QuickVacuum::DEF)
        .await
        .expect("version");
    assert_eq!(latest, Some(4));
    let caught_up = PendingReader {
        read_version: 3,
        ..behind.clone()
    };
    let report = wh
        .warehouse
        .vacuum_keeping(QuickVacuum::DEF, None, false, false, &[caught_up])
        .await
        .expect("no commit left to read");
    assert_eq!(report.files.len(), 3, "{report:?}");
    // Forcing a retention does not lift the readers' check (a short one needs it most); a
    // reader left out is not asked.
    let forced = wh
        .warehouse
        .vacuum_keeping(
            QuickVacuum::DEF,
            Some(std::time::Duration::ZERO),
            false,
            true,
            std::slice::from_ref(&behind),
        )
        .await
        .expect_err("forced, the reader is still behind");
    assert!(
        forced.to_string().contains("pass --ignore-pending-readers"),
        "{forced}"
    );
    wh.warehouse
        .vacuum_keeping(QuickVacuum::DEF, None, false, false, &[])
        .await
        .expect("the reader left out");
}

/// A table whose retention Spark set (`ALTER TABLE .. SET TBLPROPERTIES`) as Spark accepts it,
/// which Delta's kernel does not read (a declaration of it is a compile error).
#[derive(Table)]
#[table(schema = "bronze", name = "monthly_retention")]
pub struct MonthlyRetention {
    pub id: i64,
}

#[tokio::test]
async fn vacuum_refuses_a_retention_the_kernel_cannot_read() {
    let wh = TempWarehouse::new();
    let delta = wh
        .warehouse
        .ensure(MonthlyRetention::DEF)
        .await
        .expect("create");
    delta
        .set_tbl_properties()
        .with_properties(
            [(
                "delta.deletedFileRetentionDuration".to_owned(),
                "interval 1 month".to_owned(),
            )]
            .into(),
        )
        .with_raise_if_not_exists(false)
        .await
        .expect("set by another engine");
    let refused = wh
        .warehouse
        .vacuum(MonthlyRetention::DEF, None, true, false)
        .await
        .expect_err("the month would be read as 7 days");
    assert!(
        matches!(refused, lakehouse_runtime::Error::Refused(_)),
        "{refused}"
    );
    let refused = refused.to_string();
    assert!(
        refused.contains(
            "vacuum of bronze.monthly_retention: the table's `delta.deletedFileRetentionDuration` \
             is \"interval 1 month\", which Delta's kernel cannot read"
        ) && refused.contains("`interval 30 days`"),
        "{refused}"
    );
    // Forced with an explicit retention, the property is not needed.
    let month = std::time::Duration::from_secs(30 * 24 * 3600);
    wh.warehouse
        .vacuum(MonthlyRetention::DEF, Some(month), true, true)
        .await
        .expect("forced, with a retention");
}

/// Prices, as first declared.
#[derive(Table, serde::Serialize)]
#[table(schema = "gold", name = "rates")]
pub struct Priced {
    pub id: i64,
    pub price: lakehouse_runtime::prelude::Decimal<10, 2>,
}

/// The same table, given a rate of 18 decimals since.
#[derive(Table, serde::Serialize)]
#[table(schema = "gold", name = "rates")]
pub struct Rate {
    pub id: i64,
    pub price: lakehouse_runtime::prelude::Decimal<10, 2>,
    pub rate: Option<lakehouse_runtime::prelude::Decimal<38, 18>>,
}

/// Whether the newest data file of `table` records a maximum of `column`.
async fn has_maximum(wh: &TempWarehouse, table: &'static TableDef, column: &str) -> bool {
    let delta = wh
        .warehouse
        .load(table)
        .await
        .expect("load")
        .expect("exists");
    let files = delta
        .snapshot()
        .expect("snapshot")
        .add_actions_table(true)
        .expect("files");
    files
        .column_by_name(&format!("max.{column}"))
        .is_some_and(|maxima| arrow::array::Array::null_count(maxima) < maxima.len())
}

#[tokio::test]
async fn file_skipping_keeps_a_decimal_that_a_double_cannot_hold() {
    use lakehouse_runtime::prelude::Decimal;
    let wh = TempWarehouse::new();
    crate::common::write(
        &wh.warehouse,
        Priced::DEF,
        &[Priced {
            id: 0,
            price: Decimal(500),
        }],
        Default::default(),
    )
    .await
    .expect("write");
    // The existing table gains the column, and its statistics property at this write.
    // 1.000000000000000001: as a double, 1.0, which delta-rs recorded as the file's maximum.
    crate::common::write(
        &wh.warehouse,
        Rate::DEF,
        &[Rate {
            id: 1,
            price: Decimal(1999),
            rate: Some(Decimal(1_000_000_000_000_000_001)),
        }],
        Default::default(),
    )
    .await
    .expect("write");
    assert!(!has_maximum(&wh, Rate::DEF, "rate").await);
    assert!(has_maximum(&wh, Rate::DEF, "price").await);
    let count = |query: &'static str| {
        let wh = &wh;
        async move { crate::common::query(&wh.warehouse, &[Rate::DEF], query).await }
    };
    assert_eq!(
        count("SELECT count(*) FROM gold.rates WHERE rate > 1").await,
        ["1"]
    );
    assert_eq!(
        count("SELECT count(*) FROM gold.rates WHERE price > 19.98").await,
        ["1"]
    );
}

/// Readings, with a float.
#[derive(Table, serde::Serialize)]
#[table(schema = "gold", name = "readings")]
pub struct Reading {
    pub id: i64,
    pub value: f64,
}

/// The same readings, merged by id.
#[derive(Table, serde::Serialize)]
#[table(schema = "gold", name = "merged_readings", key(id), mode = merge)]
pub struct MergedReading {
    pub id: i64,
    pub value: f64,
}

/// The same readings in a table with column mapping (its files name columns physically).
#[derive(Table, serde::Serialize)]
#[table(
    schema = "gold",
    name = "mapped_readings",
    property(key = "delta.columnMapping.mode", value = "name")
)]
pub struct MappedReading {
    pub id: i64,
    pub value: f64,
}

/// Counts the rows of `table` above every number, which a NaN is (DataFusion's order).
async fn above_six(wh: &TempWarehouse, table: &'static TableDef) -> Vec<String> {
    let query = format!(
        "SELECT count(*) FROM {} WHERE value > 6",
        table.qualified_name()
    );
    crate::common::query(&wh.warehouse, &[table], &query).await
}

/// Parquet leaves NaN out of a float's maximum, which Delta's file statistics and the row groups'
/// record: a file of `[1.0, NaN]` said 1.0 and `value > 6` skipped it.
#[tokio::test]
async fn file_skipping_keeps_a_nan() {
    let wh = TempWarehouse::new();
    // The second batch updates row 1: a merge rewrites the file holding the NaN.
    let batches = [vec![(1, 1.0), (2, f64::NAN)], vec![(1, 1.5), (3, 5.0)]];
    for rows in &batches {
        let appended: Vec<Reading> = rows
            .iter()
            .map(|&(id, value)| Reading { id, value })
            .collect();
        crate::common::write(&wh.warehouse, Reading::DEF, &appended, Default::default())
            .await
            .expect("append");
        let merged: Vec<MergedReading> = rows
            .iter()
            .map(|&(id, value)| MergedReading { id, value })
            .collect();
        crate::common::write(
            &wh.warehouse,
            MergedReading::DEF,
            &merged,
            Default::default(),
        )
        .await
        .expect("merge");
    }
    for rows in &batches {
        let mapped: Vec<MappedReading> = rows
            .iter()
            .map(|&(id, value)| MappedReading { id, value })
            .collect();
        crate::common::write(
            &wh.warehouse,
            MappedReading::DEF,
            &mapped,
            Default::default(),
        )
        .await
        .expect("append");
    }
    assert_eq!(above_six(&wh, Reading::DEF).await, ["1"]);
    assert_eq!(above_six(&wh, MergedReading::DEF).await, ["1"]);
    assert_eq!(above_six(&wh, MappedReading::DEF).await, ["1"]);
    // Compaction rewrites the files with its own settings.
    let report = wh.warehouse.compact(Reading::DEF).await.expect("compact");
    assert_eq!(report.files_removed, 2);
    assert_eq!(above_six(&wh, Reading::DEF).await, ["1"]);
}

/// Stock counts, checked positive.
mod stock_v1 {
    #[derive(lakehouse_runtime::Table, serde::Serialize)]
    #[table(schema = "gold", name = "stock", mode = overwrite, check(name = "positive", expr = "qty > 0"))]
    pub struct Stock {
        pub id: i64,
        pub qty: i64,
    }
}

/// The stock counts with `qty` renamed, the table's schema replaced (which takes no checks).
#[derive(Table, serde::Serialize)]
#[table(schema = "gold", name = "stock", mode = overwrite, evolution = overwrite)]
pub struct Stock {
    pub id: i64,
    pub quantity: i64,
}

#[tokio::test]
async fn a_schema_replacing_write_drops_the_stored_check_constraints() {
    // delta-rs kept them through the new schema: `qty > 0` named a column no longer there, and
    // every write failed, forever.
    let wh = TempWarehouse::new();
    let v1 = <stock_v1::Stock as lakehouse_runtime::Table>::DEF;
    crate::common::write(
        &wh.warehouse,
        v1,
        &[stock_v1::Stock { id: 1, qty: 3 }],
        Default::default(),
    )
    .await
    .expect("v1");
    crate::common::write(
        &wh.warehouse,
        Stock::DEF,
        &[Stock {
            id: 1,
            quantity: -2,
        }],
        Default::default(),
    )
    .await
    .expect("the schema replaced, without the old check");
    assert_eq!(
        crate::common::contents(&wh.warehouse, Stock::DEF).await,
        ["1|-2"]
    );
}

#[tokio::test]
async fn the_new_rows_of_a_column_mapped_table_are_refused_with_the_way_out() {
    // delta-rs 1.1 cannot read the change data feed of a column-mapped table: a reader failed
    // on every run after its first with delta-rs's own error.
    let wh = TempWarehouse::new();
    for id in [1, 2] {
        crate::common::write(
            &wh.warehouse,
            MappedReading::DEF,
            &[MappedReading { id, value: 1.0 }],
            Default::default(),
        )
        .await
        .expect("written");
    }
    let session = wh.warehouse.session();
    let Err(error) = wh
        .warehouse
        .read_changes(&session, MappedReading::DEF, Some(1))
        .await
    else {
        panic!("the feed read");
    };
    assert!(
        error.to_string().contains(
            "the table is column-mapped (`delta.columnMapping.mode`), and delta-rs 1.1 cannot \
             read the change data feed of such a table; read it as a `Frame<_>`"
        ),
        "{error}"
    );
    assert!(!error.is_retryable(), "{error:?}");
    // From the first read on, not only once the table has new commits to read.
    assert!(
        wh.warehouse
            .read_changes(&session, MappedReading::DEF, None)
            .await
            .is_err()
    );
}

/// A table column-mapped as first made (by another engine, say).
mod mapped_first {
    #[derive(lakehouse_runtime::Table, serde::Serialize)]
    #[table(
        schema = "gold",
        name = "mapped_replaced",
        mode = overwrite,
        property(key = "delta.columnMapping.mode", value = "name")
    )]
    pub struct MappedReplaced {
        pub id: i64,
    }
}

/// The same table declared with its schema replaced at each write (a column-mapped declaration
/// of it is a compile error).
#[derive(Table, serde::Serialize)]
#[table(schema = "gold", name = "mapped_replaced", mode = overwrite, evolution = overwrite)]
pub struct MappedReplaced {
    pub id: i64,
}

#[tokio::test]
async fn a_column_mapped_table_whose_schema_would_be_replaced_is_refused_naming_why() {
    // delta-rs 1.1 refuses schema evolution on such a table, every write, with its own words.
    let wh = TempWarehouse::new();
    crate::common::write(
        &wh.warehouse,
        <mapped_first::MappedReplaced as lakehouse_runtime::Table>::DEF,
        &[mapped_first::MappedReplaced { id: 0 }],
        Default::default(),
    )
    .await
    .expect("made column-mapped");
    let error = crate::common::write(
        &wh.warehouse,
        MappedReplaced::DEF,
        &[MappedReplaced { id: 1 }],
        Default::default(),
    )
    .await
    .expect_err("refused")
    .to_string();
    assert!(
        error.contains(
            "delta-rs 1.1 replaces the schema of no such table (`evolution = overwrite`)"
        ),
        "{error}"
    );
}

/// [`Mapped`] with a column more.
mod mapped_v2 {
    #[derive(lakehouse_runtime::Table, serde::Serialize)]
    #[table(
        schema = "bronze",
        name = "mapped",
        key(id),
        mode = merge,
        property(key = "delta.columnMapping.mode", value = "name")
    )]
    pub struct Mapped {
        pub id: i64,
        pub label: String,
        pub note: Option<String>,
    }
}

#[tokio::test]
async fn a_column_added_to_a_column_mapped_table_is_refused_naming_it() {
    let wh = TempWarehouse::new();
    crate::common::write(
        &wh.warehouse,
        Mapped::DEF,
        &[Mapped {
            id: 1,
            label: "a".into(),
        }],
        Default::default(),
    )
    .await
    .expect("v1");
    let v2 = <mapped_v2::Mapped as lakehouse_runtime::Table>::DEF;
    let drift = wh.warehouse.drift(v2).await.expect("drift");
    assert!(
        drift.iter().any(|d| d.column == "note"
            && d.is_incompatible()
            && d.to_string().contains("delta-rs 1.1 adds no column to it")),
        "`check` reports it: {drift:?}"
    );
    let error = crate::common::write(
        &wh.warehouse,
        v2,
        &[serde_json::json!({"id": 2, "label": "b", "note": "n"})],
        Default::default(),
    )
    .await
    .expect_err("delta-rs adds no column to a mapped table")
    .to_string();
    assert!(
        error.contains(
            "the declaration adds `note`, and delta-rs 1.1 adds no column to a column-mapped table"
        ),
        "{error}"
    );
    assert_eq!(
        crate::common::contents(&wh.warehouse, Mapped::DEF).await,
        ["1|a"]
    );
}

#[tokio::test]
async fn a_replaced_schema_takes_the_declared_nullability_not_the_plans() {
    // A literal is never NULL: the `Option<String>` column was stored NOT NULL, and a later
    // run's NULL label flipped it back, a metadata commit each time.
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let plan = session
        .sql("SELECT CAST(1 AS BIGINT) AS id, 'one' AS label")
        .await
        .expect("plan");
    assert!(
        !plan
            .schema()
            .field_with_unqualified_name("label")
            .expect("label")
            .is_nullable()
    );
    wh.warehouse
        .write(&session, Replaced::DEF, plan, Default::default())
        .await
        .expect("written");
    let delta = wh
        .warehouse
        .load(Replaced::DEF)
        .await
        .expect("load")
        .expect("table");
    let schema = delta
        .snapshot()
        .expect("snapshot")
        .snapshot()
        .arrow_schema();
    assert!(
        schema
            .field_with_name("label")
            .expect("label")
            .is_nullable(),
        "{schema:?}"
    );
    assert!(
        !schema.field_with_name("id").expect("id").is_nullable(),
        "{schema:?}"
    );
}

/// A table another engine created with a generated column (Spark's `GENERATED ALWAYS AS`),
/// declared without it.
#[derive(Table, serde::Serialize)]
#[table(schema = "bronze", name = "generated", key(id), mode = merge)]
pub struct Generated {
    pub id: i64,
    pub ts: lakehouse_runtime::Timestamp,
}

#[tokio::test]
async fn a_generated_column_another_engine_declared_is_computed_by_each_write() {
    use lakehouse_runtime::deltalake::kernel::{DataType, StructField};
    let wh = TempWarehouse::new();
    let url = wh.warehouse.table_url(Generated::DEF).expect("url");
    lakehouse_runtime::deltalake::operations::create::CreateBuilder::new()
        .with_location(url.as_str())
        .with_columns([
            StructField::new("id", DataType::LONG, false),
            StructField::new("day", DataType::DATE, true)
                .with_metadata([("delta.generationExpression", "CAST(ts AS DATE)")]),
            StructField::new("ts", DataType::TIMESTAMP, false),
        ])
        .await
        .expect("created by another engine");
    let at = |text: &str| lakehouse_runtime::Timestamp::parse(text).expect("time");
    let write = |rows: Vec<Generated>| {
        let warehouse = wh.warehouse.clone();
        async move { crate::common::write(&warehouse, Generated::DEF, &rows, Default::default()).await }
    };
    write(vec![
        Generated {
            id: 1,
            ts: at("2026-03-01T10:00:00Z"),
        },
        Generated {
            id: 2,
            ts: at("2026-03-02T10:00:00Z"),
        },
    ])
    .await
    .expect("inserted, the column computed");
    // An update computes it anew.
    write(vec![Generated {
        id: 1,
        ts: at("2026-03-05T10:00:00Z"),
    }])
    .await
    .expect("updated");
    let rows = wh
        .warehouse
        .sql(
            &[Generated::DEF],
            "SELECT * FROM bronze.generated ORDER BY id",
        )
        .await
        .expect("query");
    assert_eq!(
        crate::common::render(rows).await,
        [
            "1|2026-03-05|2026-03-05T10:00:00Z",
            "2|2026-03-02|2026-03-02T10:00:00Z"
        ]
    );
}

mod spelt_kept {
    /// [`super::Spelt`], keeping the table's columns.
    #[derive(lakehouse_runtime::Table, serde::Serialize)]
    #[table(schema = "bronze", name = "spelt", evolution = keep)]
    pub struct Spelt {
        pub id: Option<i64>,
        pub label: Option<String>,
    }
}

/// A table another engine created with an upper-case `ID`, declared with `id`.
#[derive(Table, serde::Serialize)]
#[table(schema = "bronze", name = "spelt")]
pub struct Spelt {
    pub id: Option<i64>,
    pub label: Option<String>,
}

#[tokio::test]
async fn a_column_stored_in_another_case_is_refused_naming_both_spellings() {
    use lakehouse_runtime::deltalake::kernel::{DataType, StructField};
    let wh = TempWarehouse::new();
    let url = wh.warehouse.table_url(Spelt::DEF).expect("url");
    lakehouse_runtime::deltalake::operations::create::CreateBuilder::new()
        .with_location(url.as_str())
        .with_columns([
            StructField::new("ID", DataType::LONG, true),
            StructField::new("label", DataType::STRING, true),
        ])
        .await
        .expect("created by another engine");
    let kept = <spelt_kept::Spelt as lakehouse_runtime::Table>::DEF;
    for table in [Spelt::DEF, kept] {
        let drift = wh.warehouse.drift(table).await.expect("drift");
        assert!(
            drift.iter().any(|d| d.column == "id"
                && d.is_incompatible()
                && d.to_string()
                    .contains("stores this column spelt in another case")),
            "`check` reports it: {drift:?}"
        );
        // Under `keep`, the write wrote NULL for `ID` and dropped the values of `id`; under
        // `merge`, adding `id` failed with the kernel's words.
        let error = crate::common::write(
            &wh.warehouse,
            table,
            &[Spelt {
                id: Some(7),
                label: Some("seven".into()),
            }],
            Default::default(),
        )
        .await
        .expect_err("refused")
        .to_string();
        assert!(
            error.contains(
                "column `id` is declared, and the Delta table stores it as `ID`: Delta matches \
                 column names ignoring case"
            ),
            "{error}"
        );
        let files = crate::common::data_files(&wh.warehouse, table).await;
        assert_eq!(files, 0, "no row written");
    }
}

/// [`Generated`] with history, on a table another engine created with a NOT NULL generated
/// column.
#[derive(Table, serde::Serialize)]
#[table(schema = "bronze", name = "generated_history", key(id), mode = scd2)]
pub struct GeneratedHistory {
    pub id: i64,
    pub ts: lakehouse_runtime::Timestamp,
}

#[tokio::test]
async fn a_generated_column_is_computed_anew_when_a_rerun_replaces_a_version() {
    use lakehouse_runtime::deltalake::kernel::StructField;
    use lakehouse_runtime::deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
    let wh = TempWarehouse::new();
    let table = GeneratedHistory::DEF;
    let url = wh.warehouse.table_url(table).expect("url");
    let mut columns: Vec<StructField> = table
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().try_into_kernel().expect("a Delta type"))
        .collect();
    columns.push(
        StructField::new(
            "day",
            lakehouse_runtime::deltalake::kernel::DataType::DATE,
            false,
        )
        .with_metadata([("delta.generationExpression", "CAST(ts AS DATE)")]),
    );
    lakehouse_runtime::deltalake::operations::create::CreateBuilder::new()
        .with_location(url.as_str())
        .with_columns(columns)
        .await
        .expect("created by another engine");
    // Computed by every write: no drift that refuses writes.
    let drift = wh.warehouse.drift(table).await.expect("drift");
    assert!(
        drift.iter().all(|d| !d.is_incompatible()),
        "a generated column is no refusal: {drift:?}"
    );
    let at = |text: &str| lakehouse_runtime::Timestamp::parse(text).expect("time");
    let run_at = at("2026-03-10T00:00:00Z");
    for ts in ["2026-03-01T10:00:00Z", "2026-03-04T10:00:00Z"] {
        // The same run twice: the second replaces the version the first opened, in place.
        let options = lakehouse_runtime::store::WriteOptions {
            run_at: Some(run_at),
            ..Default::default()
        };
        crate::common::write(
            &wh.warehouse,
            table,
            &[GeneratedHistory { id: 1, ts: at(ts) }],
            options,
        )
        .await
        .unwrap_or_else(|e| panic!("{ts}: {e}"));
    }
    let rows = wh
        .warehouse
        .sql(
            &[table],
            "SELECT id, CAST(day AS VARCHAR) AS day, is_current FROM bronze.generated_history",
        )
        .await
        .expect("query");
    assert_eq!(crate::common::render(rows).await, ["1|2026-03-04|true"]);
}

/// Contacts whose email may be missing.
#[derive(Table, serde::Serialize)]
#[table(schema = "silver", name = "contacts_email", key(id), mode = merge)]
pub struct ContactsEmailOptional {
    pub id: i64,
    pub email: Option<String>,
}

/// The same table, its email since declared NOT NULL.
#[derive(Table, serde::Serialize)]
#[table(schema = "silver", name = "contacts_email", key(id), mode = merge)]
pub struct ContactsEmailRequired {
    pub id: i64,
    pub email: String,
}

#[tokio::test]
async fn a_column_made_not_null_over_stored_nulls_is_refused_before_any_write() {
    let wh = TempWarehouse::new();
    let session = wh.warehouse.session();
    let written = |rows: &[ContactsEmailOptional]| {
        crate::common::frame(&session, ContactsEmailOptional::DEF, rows)
    };
    refused_over_a_stored_null(
        &wh,
        &[
            ContactsEmailOptional { id: 1, email: None },
            ContactsEmailOptional {
                id: 2,
                email: Some("b@example.org".into()),
            },
        ],
        ContactsEmailRequired::DEF,
        &[ContactsEmailRequired {
            id: 3,
            email: "c@example.org".into(),
        }],
        "silver.contacts_email.email",
    )
    .await;
    // The NULL replaced by a value (a merge of the nullable declaration), NOT NULL is taken.
    wh.warehouse
        .write(
            &session,
            ContactsEmailOptional::DEF,
            written(&[ContactsEmailOptional {
                id: 1,
                email: Some("a@example.org".into()),
            }]),
            Default::default(),
        )
        .await
        .expect("written");
    assert!(
        wh.warehouse
            .drift(ContactsEmailRequired::DEF)
            .await
            .expect("drift")
            .iter()
            .all(|d| !d.is_incompatible())
    );
    let required = crate::common::frame(
        &session,
        ContactsEmailRequired::DEF,
        &[ContactsEmailRequired {
            id: 3,
            email: "c@example.org".into(),
        }],
    );
    wh.warehouse
        .write(
            &session,
            ContactsEmailRequired::DEF,
            required,
            Default::default(),
        )
        .await
        .expect("no NULL left");
    assert_eq!(
        crate::common::contents(&wh.warehouse, ContactsEmailRequired::DEF)
            .await
            .len(),
        3
    );
}

/// Readings whose value may be missing: a float, whose files record no NULL count.
#[derive(Table, serde::Serialize)]
#[table(schema = "silver", name = "readings", key(id), mode = merge)]
pub struct ReadingsOptional {
    pub id: i64,
    pub value: Option<f64>,
}

/// The same table, its value since declared NOT NULL.
#[derive(Table, serde::Serialize)]
#[table(schema = "silver", name = "readings", key(id), mode = merge)]
pub struct ReadingsRequired {
    pub id: i64,
    pub value: f64,
}

#[tokio::test]
async fn a_float_made_not_null_over_stored_nulls_is_refused_though_no_statistics_count_them() {
    // Counted by a scan of the column: its files record no NULL count.
    refused_over_a_stored_null(
        &TempWarehouse::new(),
        &[
            ReadingsOptional { id: 1, value: None },
            ReadingsOptional {
                id: 2,
                value: Some(2.5),
            },
        ],
        ReadingsRequired::DEF,
        &[ReadingsRequired { id: 3, value: 1.0 }],
        "silver.readings.value",
    )
    .await;
}

/// Writes `stored` (one row NULL in `column`) under the nullable declaration `O`, then asserts
/// that under `required`, which declares `column` NOT NULL, `check` fails naming it and the
/// row, and a write of `written` is refused, the table left at its version.
async fn refused_over_a_stored_null<O: Table + serde::Serialize, R: serde::Serialize>(
    wh: &TempWarehouse,
    stored: &[O],
    required: &'static lakehouse_runtime::TableDef,
    written: &[R],
    column: &str,
) {
    let session = wh.warehouse.session();
    wh.warehouse
        .write(
            &session,
            O::DEF,
            crate::common::frame(&session, O::DEF, stored),
            Default::default(),
        )
        .await
        .expect("written");
    let version = wh.warehouse.version(O::DEF).await.expect("version");
    let drift = crate::common::incompatible_drift(&wh.warehouse, required).await;
    assert!(
        drift.to_string().starts_with(&format!(
            "{column}: declared NOT NULL, and 1 stored row(s) hold NULL in it"
        )),
        "{drift}"
    );
    // A write would succeed, and leave a table no reader can read.
    let error = wh
        .warehouse
        .write(
            &session,
            required,
            crate::common::frame(&session, required, written),
            Default::default(),
        )
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("every read of them would fail, so writes are refused"),
        "{error}"
    );
    assert_eq!(
        wh.warehouse.version(O::DEF).await.expect("version"),
        version
    );
}
