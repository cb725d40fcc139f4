//! Creating tables from their declaration, and keeping their properties, key and descriptions
//! in step with it (CHECK constraints: `constraints`; differences of schema: `drift`).

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, MetadataExt as _, MetadataValue, StructType};
use deltalake::protocol::DeltaOperation;

use super::Warehouse;
use crate::error::{Error, Result};
use crate::table::{LogicalType, TableDef, WriteMode};

impl Warehouse {
    /// The Delta table of `table`, created from its declaration if it does not exist: columns
    /// with NOT NULL and comments, partitions, description, properties and CHECK constraints.
    /// An existing table gets the table properties its declaration has since gained or changed
    /// (and, at its next write, once new columns are added, the CHECK constraints).
    pub async fn ensure(&self, table: &'static TableDef) -> Result<DeltaTable> {
        match self.load(table).await? {
            Some(existing) => self.set_declared_properties(table, existing).await,
            None => {
                let created = match self.create(table).await {
                    Ok(created) => created,
                    // Another process created it meanwhile (two first runs of a warehouse).
                    Err(error) => match self.load(table).await {
                        Ok(Some(existing)) => {
                            return self.set_declared_properties(table, existing).await;
                        }
                        _ => return Err(error),
                    },
                };
                self.add_declared_checks(table, created).await
            }
        }
    }

    /// `applied`, the outcome of a change to `table`'s declared state; a failure counts as done
    /// when the table, loaded again, is `settled` (another process made the same change at the
    /// same moment). The inner error is the change's own.
    pub(crate) async fn settle(
        &self,
        table: &'static TableDef,
        applied: Result<DeltaTable, deltalake::DeltaTableError>,
        settled: impl Fn(&DeltaTable) -> Result<bool>,
    ) -> Result<Result<DeltaTable, deltalake::DeltaTableError>> {
        let error = match applied {
            Ok(updated) => return Ok(Ok(updated)),
            Err(error) => error,
        };
        match self.load(table).await? {
            Some(reloaded) if settled(&reloaded)? => Ok(Ok(reloaded)),
            _ => Ok(Err(error)),
        }
    }

    /// Sets the properties `table` declares that `delta` lacks or holds with another value, in
    /// one commit (none when they agree). Properties it does not declare are left as they are.
    async fn set_declared_properties(
        &self,
        table: &'static TableDef,
        delta: DeltaTable,
    ) -> Result<DeltaTable> {
        let qualified = table.qualified_name();
        let mut changed = properties_to_set(table, &delta)?;
        if changed.is_empty() {
            return Ok(delta);
        }
        tracing::info!(table = %qualified, properties = ?changed, "setting declared table properties");
        // delta-rs refuses keys it does not know unless told not to: told for those outside
        // `delta.` (ours, and the user's own, which Delta allows), not for a `delta.` one
        // (`#[derive(Table)]` refuses an unknown one at compile time).
        // A statistics property the runtime chose goes with its mark, in one commit: it is
        // chosen again only when marked.
        let auto = changed.contains_key(AUTO_STATS_PROPERTY);
        let (delta_keys, others): (HashMap<String, String>, HashMap<String, String>) =
            changed.drain().partition(|(key, _)| {
                key.starts_with("delta.")
                    && !(auto && (key == STATS_COLUMNS_PROPERTY || key == INDEXED_COLUMNS_PROPERTY))
            });
        let mut delta = delta;
        for (properties, raise) in [(delta_keys, true), (others, false)] {
            if properties.is_empty() {
                continue;
            }
            let keys: Vec<String> = properties.keys().cloned().collect();
            let applied = delta
                .set_tbl_properties()
                .with_properties(properties)
                .with_raise_if_not_exists(raise)
                .await;
            delta = self
                .settle(table, applied, |reloaded| {
                    let left = properties_to_set(table, reloaded)?;
                    Ok(keys.iter().all(|key| !left.contains_key(key)))
                })
                .await?
                .map_err(|error| match error {
                    // What delta-rs will not set on an existing table, whatever the attempt.
                    deltalake::DeltaTableError::Generic(_)
                    | deltalake::DeltaTableError::UnsupportedColumnMapping { .. } => {
                        Error::Refused(format!(
                            "{qualified}: cannot set the declared table properties {} on the \
                             existing table: {error}; declare the value the table holds \
                             (`orchestrate describe {qualified}` shows it), or recreate the \
                             table with the new one",
                            keys.join(", ")
                        ))
                    }
                    error => Error::delta(&qualified, error),
                })?;
        }
        Ok(delta)
    }

    /// Brings the stored descriptions (each column's `comment`, the table's description) to the
    /// declaration's doc comments, in one metadata commit (none when they agree): an edited doc
    /// comment reaches every reader of the table. A declared empty one leaves the stored one.
    /// Called after a successful write, so a refused write changes nothing.
    pub(crate) async fn set_declared_descriptions(
        &self,
        table: &'static TableDef,
        delta: DeltaTable,
    ) -> Result<()> {
        let qualified = table.qualified_name();
        let comments = comments_to_set(table, &delta)?;
        let describe = description_differs(table, &delta)?;
        if comments.is_empty() && !describe {
            return Ok(());
        }
        tracing::info!(table = %qualified, columns = ?comments.iter().map(|(c, _)| c).collect::<Vec<_>>(), describe, "updating the stored descriptions");
        let state = delta.snapshot().map_err(|e| Error::delta(&qualified, e))?;
        let stored = state.schema();
        let fields = stored.fields().map(|field| {
            let mut field = field.clone();
            if let Some((_, comment)) = comments.iter().find(|(c, _)| *c == field.name()) {
                field.metadata.insert(
                    "comment".to_owned(),
                    MetadataValue::String((*comment).to_owned()),
                );
            }
            field
        });
        let schema = StructType::try_new(fields).map_err(|e| Error::delta(&qualified, e.into()))?;
        let mut metadata = state
            .metadata()
            .clone()
            .with_schema(&schema)
            .map_err(|e| Error::delta(&qualified, e.into()))?;
        if describe {
            metadata = metadata
                .with_description(table.description.to_owned())
                .map_err(|e| Error::delta(&qualified, e.into()))?;
        }
        let operation = DeltaOperation::UpdateFieldMetadata {
            fields: schema.fields().cloned().collect(),
        };
        CommitBuilder::default()
            .with_actions(vec![Action::Metadata(metadata)])
            .build(Some(state), delta.log_store(), operation)
            .await
            .map_err(|e| Error::delta(&qualified, e))?;
        Ok(())
    }

    /// Creates `table`, which [`Warehouse::load`] just found missing: its location then holds
    /// no files a lost log would have known (`load` refuses those), so it is not listed again.
    async fn create(&self, table: &'static TableDef) -> Result<DeltaTable> {
        let qualified = table.qualified_name();
        let url = self.table_url(table)?;
        if let Some(path) = super::location::local_path(&url) {
            std::fs::create_dir_all(&path).map_err(|source| Error::Io {
                context: format!(
                    "creating the directory of {qualified} at {}",
                    path.display()
                ),
                source,
            })?;
        }
        let schema: StructType = table
            .arrow_schema()
            .as_ref()
            .try_into_kernel()
            .map_err(|e| Error::schema(&qualified, format!("cannot map to a Delta schema: {e}")))?;
        let mut configuration: Vec<(String, Option<String>)> = table
            .properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect();
        configuration.push((KEY_PROPERTY.to_owned(), Some(declared_key(table))));
        let declared: Vec<(&str, Option<LogicalType>)> = table
            .columns
            .iter()
            .map(|c| (c.name, Some(c.data_type)))
            .collect();
        if !declares_stats_columns(table)
            && let Some((key, value)) = exact_stats_columns(&declared, table.partition_by, false)
        {
            configuration.push((key.to_owned(), Some(value)));
            configuration.push((AUTO_STATS_PROPERTY.to_owned(), Some("true".to_owned())));
        }
        if table.mode == WriteMode::Append
            && !table
                .properties
                .iter()
                .any(|(k, _)| *k == "delta.enableChangeDataFeed")
        {
            // Incremental readers (`Changes<T>`) read the rows each commit added.
            configuration.push((
                "delta.enableChangeDataFeed".to_owned(),
                Some("true".to_owned()),
            ));
        }
        let log_store = self
            .log_store(&url)
            .map_err(|e| Error::delta(&qualified, e))?;
        let created = deltalake::operations::create::CreateBuilder::new()
            .with_log_store(log_store)
            .with_table_name(table.name)
            .with_comment(table.description)
            .with_columns(schema.fields().cloned())
            .with_partition_columns(table.partition_by.iter().copied())
            .with_configuration(configuration)
            .with_raise_if_key_not_exists(false)
            // Two processes creating it at once: delta-rs would commit the loser's CREATE
            // after the winner's (a new table id, the winner's constraints gone). Without
            // retries the loser fails, and `ensure` takes the table the winner made.
            .with_commit_properties(
                deltalake::kernel::transaction::CommitProperties::default().with_max_retries(0),
            )
            .await
            .map_err(|e| Error::delta(&qualified, e))?;
        tracing::info!(table = %qualified, "created Delta table");
        Ok(created)
    }

    /// Why delta-rs 1.1 cannot write `table` (its protocol asks for a writer feature it does not
    /// have, set by another engine), or `None` when it can (or the table was never written):
    /// every write of it fails until then.
    pub async fn unwritable(&self, table: &'static TableDef) -> Result<Option<String>> {
        match self.load(table).await? {
            Some(delta) => unwritable_of(table, &delta),
            None => Ok(None),
        }
    }
}

/// Why delta-rs cannot write `delta`, `table`'s loaded table ([`Warehouse::unwritable`]).
pub(crate) fn unwritable_of(table: &TableDef, delta: &DeltaTable) -> Result<Option<String>> {
    let snapshot = delta
        .snapshot()
        .map_err(|e| Error::delta(table.qualified_name(), e))?;
    Ok(deltalake::kernel::transaction::PROTOCOL
        .can_write_to(snapshot)
        .err()
        .map(|error| error.to_string()))
}

/// The configuration (properties, CHECK constraints) of `delta`, the loaded table of `table`.
pub(super) fn configuration<'a>(
    table: &TableDef,
    delta: &'a DeltaTable,
) -> Result<&'a HashMap<String, String>> {
    Ok(delta
        .snapshot()
        .map_err(|e| Error::delta(table.qualified_name(), e))?
        .metadata()
        .configuration())
}

/// Delta's property naming the columns whose minimum and maximum each file records.
const STATS_COLUMNS_PROPERTY: &str = "delta.dataSkippingStatsColumns";

/// Delta's property saying how many leading columns have statistics (32 by default).
const INDEXED_COLUMNS_PROPERTY: &str = "delta.dataSkippingNumIndexedCols";

/// The runtime's mark on a table whose statistics property it chose (see
/// [`exact_stats_columns`]): chosen again when the table's columns change.
const AUTO_STATS_PROPERTY: &str = "lakehouse.statsColumns";

/// Whether `table` declares which columns have file statistics (its choice then stands).
fn declares_stats_columns(table: &TableDef) -> bool {
    table
        .properties
        .iter()
        .any(|(k, _)| *k == STATS_COLUMNS_PROPERTY || *k == INDEXED_COLUMNS_PROPERTY)
}

/// Whether a decimal of `precision` digits has exact statistics: delta-rs records a decimal's
/// minimum and maximum through a double, which holds 15 digits (`1.000000000000000001` became
/// a maximum of 1.0, and a query for `> 1` skipped the file holding it).
fn exact_decimal(precision: u8) -> bool {
    precision <= 15
}

/// The statistics property (key, value) for a table whose columns are `columns` (stored order;
/// `None`: a type the runtime does not declare) and partitioned by `partition_by`: the columns
/// Delta would index (the first 32 that are not partition columns) that may have statistics,
/// every one but decimals of more than 15 digits (and booleans, which Delta's writers refuse in
/// this list), or no column at all (`dataSkippingNumIndexedCols = 0`). `None` when no indexed
/// column is such a decimal and `always` is false: Delta's default then holds.
fn exact_stats_columns(
    columns: &[(&str, Option<LogicalType>)],
    partition_by: &[&str],
    always: bool,
) -> Option<(&'static str, String)> {
    const INDEXED: usize = 32;
    let indexed: Vec<&(&str, Option<LogicalType>)> = columns
        .iter()
        .filter(|(name, _)| !partition_by.contains(name))
        .take(INDEXED)
        .collect();
    let wide = |t: &Option<LogicalType>| matches!(t, Some(LogicalType::Decimal { precision, .. }) if !exact_decimal(*precision));
    if !always && !indexed.iter().any(|(_, t)| wide(t)) {
        return None;
    }
    let exact: Vec<String> = indexed
        .iter()
        .filter(|(_, t)| !wide(t) && !matches!(t, Some(LogicalType::Boolean) | None))
        // Quoted: a name the kernel's parser would not read makes it drop the whole list.
        .map(|(name, _)| format!("`{}`", name.replace('`', "``")))
        .collect();
    Some(if exact.is_empty() {
        (INDEXED_COLUMNS_PROPERTY, "0".to_owned())
    } else {
        (STATS_COLUMNS_PROPERTY, exact.join(","))
    })
}

/// The table property recording the key a table is written with (its columns, comma-separated;
/// empty without one): a declaration with another key is refused.
pub(super) const KEY_PROPERTY: &str = "lakehouse.key";

/// The key `delta` (the table of `table`) was written with, when it records one that differs
/// from the declared key (in any column order): `delete_keys` matches rows by it, whatever the
/// write mode.
pub(crate) fn other_stored_key(table: &TableDef, delta: &DeltaTable) -> Result<Option<String>> {
    Ok(configuration(table, delta)?
        .get(KEY_PROPERTY)
        .filter(|stored| {
            !stored.is_empty() && sorted(stored.split(',')) != sorted(table.key.iter().copied())
        })
        .map(|stored| stored.replace(',', ", ")))
}

/// The value of [`KEY_PROPERTY`] for `table`'s declaration.
fn declared_key(table: &TableDef) -> String {
    table.key.join(",")
}

/// Whether `table`'s writes match stored rows by its key (merges and SCD2 writes).
pub(super) fn key_matches_rows(table: &TableDef) -> bool {
    matches!(table.mode, WriteMode::Merge | WriteMode::Scd2)
}

pub(super) fn sorted<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names
}

/// The properties `table` declares that `delta` lacks or holds with another value.
fn properties_to_set(table: &TableDef, delta: &DeltaTable) -> Result<HashMap<String, String>> {
    let stored = configuration(table, delta)?;
    let mut changed: HashMap<String, String> = table
        .properties
        .iter()
        .filter(|(key, value)| stored.get(*key).map(String::as_str) != Some(*value))
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    // A table from before keys were recorded gets its declared one, and so does one gaining a
    // key, or a table whose writes match no row by it; another key of a merge or SCD2 table is
    // a drift, refused at write, not overwritten, and a key declared no more stays recorded.
    // The statistics property the runtime chose, chosen again as the stored columns change;
    // a table without any gets one once it has a decimal of more than 15 digits.
    let chosen = stored.get(AUTO_STATS_PROPERTY).is_some_and(|v| v == "true");
    let unset = !stored.contains_key(STATS_COLUMNS_PROPERTY)
        && !stored.contains_key(INDEXED_COLUMNS_PROPERTY);
    if !declares_stats_columns(table) && (chosen || unset) {
        let snapshot = delta
            .snapshot()
            .map_err(|e| Error::delta(table.qualified_name(), e))?;
        let schema = snapshot.snapshot().arrow_schema();
        // The stored columns, then the declared ones this write's evolution adds after them.
        let mut columns: Vec<(&str, Option<LogicalType>)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), LogicalType::from_arrow(f.data_type())))
            .collect();
        for column in table.columns {
            if schema.field_with_name(column.name).is_err() {
                columns.push((column.name, Some(column.data_type)));
            }
        }
        let partitions: Vec<&str> = snapshot
            .metadata()
            .partition_columns()
            .iter()
            .map(String::as_str)
            .collect();
        if let Some((key, value)) = exact_stats_columns(&columns, &partitions, chosen)
            && stored.get(key) != Some(&value)
        {
            changed.insert(key.to_owned(), value);
            changed.insert(AUTO_STATS_PROPERTY.to_owned(), "true".to_owned());
        }
    }
    let declared = declared_key(table);
    match stored.get(KEY_PROPERTY) {
        Some(key) if *key == declared || declared.is_empty() => {}
        Some(key) if !key.is_empty() && key_matches_rows(table) => {}
        _ => {
            changed.insert(KEY_PROPERTY.to_owned(), declared);
        }
    }
    Ok(changed)
}

/// Whether `delta`'s stored descriptions differ from `table`'s declared ones.
pub(crate) fn descriptions_differ(table: &'static TableDef, delta: &DeltaTable) -> Result<bool> {
    Ok(!comments_to_set(table, delta)?.is_empty() || description_differs(table, delta)?)
}

/// The stored columns whose `comment` is not their declared (non-empty) description.
fn comments_to_set(
    table: &'static TableDef,
    delta: &DeltaTable,
) -> Result<Vec<(&'static str, &'static str)>> {
    let qualified = table.qualified_name();
    let snapshot = delta.snapshot().map_err(|e| Error::delta(&qualified, e))?;
    let schema = snapshot.schema();
    Ok(table
        .columns
        .iter()
        .filter(|c| !c.description.is_empty())
        .filter_map(|c| {
            let stored = schema.field(c.name)?;
            let current = match stored.metadata().get("comment") {
                Some(MetadataValue::String(text)) => Some(text.as_str()),
                _ => None,
            };
            (current != Some(c.description)).then_some((c.name, c.description))
        })
        .collect())
}

/// Whether the stored table description is not the declared (non-empty) one.
fn description_differs(table: &'static TableDef, delta: &DeltaTable) -> Result<bool> {
    let qualified = table.qualified_name();
    let snapshot = delta.snapshot().map_err(|e| Error::delta(&qualified, e))?;
    Ok(!table.description.is_empty()
        && snapshot.metadata().description() != Some(table.description))
}

/// [`refuse_files_without_a_log`] on an object store: `store` is rooted at the table's `url`.
pub(super) async fn refuse_objects_without_a_log(
    qualified: &str,
    url: &url::Url,
    store: std::sync::Arc<dyn deltalake::ObjectStore>,
) -> Result<()> {
    let listed = store
        .list_with_delimiter(None)
        .await
        .map_err(|e| Error::msg(format!("{qualified}: listing its location {url}: {e}")))?;
    let names = listed
        .common_prefixes
        .iter()
        .chain(listed.objects.iter().map(|o| &o.location))
        .filter_map(|path| {
            path.parts()
                .next_back()
                .map(|part| part.as_ref().to_owned())
        });
    let mut found = names.filter(|name| !matches!(name.as_bytes().first(), Some(b'.' | b'_')));
    match found.next() {
        None => Ok(()),
        Some(name) => Err(Error::msg(format!(
            "{qualified}: its location {url} holds objects (`{name}`, ...) but no Delta log, so \
             it is not a table; creating one there would leave them unknown to it, and `vacuum` \
             would delete them: move them away (or restore the `_delta_log` prefix)"
        ))),
    }
}

/// An error if the folder of a table without a Delta log holds files (its log lost, Parquet
/// copied in by hand): a new table there would not know them, and `vacuum` would delete them
/// as files no version refers to.
pub(super) fn refuse_files_without_a_log(qualified: &str, path: &std::path::Path) -> Result<()> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                context: format!("listing the folder of {qualified} at {}", path.display()),
                source,
            });
        }
    };
    let mut found = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name())
        // Hidden and marker files (`.DS_Store`, `_SUCCESS`) are no data.
        .filter(|name| !matches!(name.as_encoded_bytes().first(), Some(b'.' | b'_')));
    match found.next() {
        None => Ok(()),
        Some(name) => Err(Error::msg(format!(
            "{qualified}: its folder {} holds files (`{}`, ...) but no Delta log, so it is not \
             a table; creating one there would leave them unknown to it, and `vacuum` would \
             delete them: move them away (or restore the `_delta_log` folder)",
            path.display(),
            name.to_string_lossy()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::store::Warehouse;

    /// Orders.
    #[derive(Table)]
    #[table(schema = "silver", name = "orders")]
    struct Orders {
        id: i64,
    }

    #[test]
    fn decimals_a_double_cannot_hold_are_left_out_of_the_indexed_columns() {
        use crate::table::LogicalType;
        let wide = Some(LogicalType::Decimal {
            precision: 38,
            scale: 18,
        });
        let names: Vec<String> = (0..31).map(|i| format!("c{i}")).collect();
        // A partition column first: Delta indexes the first 32 others, `rate` the 32nd.
        let mut columns: Vec<(&str, Option<LogicalType>)> = vec![("day", Some(LogicalType::Date))];
        columns.extend(names.iter().map(|n| (n.as_str(), Some(LogicalType::Int64))));
        columns.push(("rate", wide));
        let (key, value) = super::exact_stats_columns(&columns, &["day"], false).expect("a list");
        assert_eq!(key, "delta.dataSkippingStatsColumns");
        let listed: Vec<&str> = value.split(',').collect();
        assert_eq!(listed.len(), 31);
        assert_eq!((listed[0], listed[30]), ("`c0`", "`c30`"));
        // Booleans are no statistics column Delta's writers accept; nothing indexed is wide here.
        let narrow = [
            ("flag", Some(LogicalType::Boolean)),
            (
                "price",
                Some(LogicalType::Decimal {
                    precision: 10,
                    scale: 2,
                }),
            ),
        ];
        assert_eq!(super::exact_stats_columns(&narrow, &[], false), None);
        assert_eq!(
            super::exact_stats_columns(&narrow, &[], true),
            Some(("delta.dataSkippingStatsColumns", "`price`".to_owned()))
        );
        assert_eq!(
            super::exact_stats_columns(&[("rate", wide)], &[], false),
            Some(("delta.dataSkippingNumIndexedCols", "0".to_owned()))
        );
    }

    #[tokio::test]
    async fn an_object_store_prefix_holding_objects_but_no_log_is_not_taken_over() {
        use deltalake::logstore::object_store::{ObjectStoreExt as _, PutPayload, path::Path};
        let warehouse = Warehouse::open("memory:///wh/").expect("warehouse");
        let store = warehouse.memory.clone().expect("a memory store");
        let stray = Path::from("wh/silver/orders/part-00000.parquet");
        store
            .put(&stray, PutPayload::from_static(b"PAR1"))
            .await
            .expect("put");
        let refused = warehouse
            .ensure(Orders::DEF)
            .await
            .expect_err("not a table")
            .to_string();
        assert!(
            refused.contains("silver.orders: its location memory:///wh/silver/orders/ holds objects (`part-00000.parquet`, ...) but no Delta log"),
            "{refused}"
        );
        // Nothing was created, and the object is still there; nor is it read as a table never
        // written.
        let unread = warehouse.load(Orders::DEF).await.expect_err("not empty");
        assert!(
            unread
                .to_string()
                .contains("holds objects (`part-00000.parquet`, ...)"),
            "{unread}"
        );
        store.head(&stray).await.expect("kept");
        // An empty location is created.
        store.delete(&stray).await.expect("delete");
        warehouse.ensure(Orders::DEF).await.expect("created");
    }
}
