//! Creating tables from their declaration, and comparing a declaration with the stored schema.

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, MetadataExt as _, MetadataValue, StructType};
use deltalake::protocol::DeltaOperation;

use super::Warehouse;
use crate::error::{Error, Result};
use crate::table::{LogicalType, TableDef, WriteMode};

/// One difference between a declared table and its stored Delta schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaDrift {
    /// `schema.table`.
    pub table: String,
    /// The column.
    pub column: String,
    /// What differs.
    pub kind: DriftKind,
}

/// The kinds of [`SchemaDrift`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriftKind {
    /// Declared, not yet in the table (added by the next write when evolution is `merge`).
    MissingInTable {
        /// The declared type.
        declared: LogicalType,
        /// The next write is refused: see `why`.
        refused: bool,
        /// Why it is refused, and what to do (empty when it is not).
        why: &'static str,
    },
    /// In the table, no longer declared.
    NotDeclared {
        /// The stored type, as Delta names it.
        stored: String,
        /// Stored NOT NULL, so that a write (which has no value for it) is refused, unless it
        /// replaces the table's schema.
        refused: bool,
    },
    /// Declared with another type than the stored one: writes will fail, unless they replace
    /// the table's schema.
    TypeChanged {
        /// The declared type.
        declared: LogicalType,
        /// The stored type, as Delta names it.
        stored: String,
        /// Writes are refused: the table's schema is not replaced (`evolution = overwrite`).
        refused: bool,
    },
    /// NOT NULL declared on a nullable stored column, or the reverse.
    NullabilityChanged {
        /// Whether the declaration allows NULL.
        declared_nullable: bool,
        /// Declared NOT NULL: the NULLs the stored rows hold in the column, by its files'
        /// statistics (`None` when a file has none for it, or when declared nullable).
        stored_nulls: Option<u64>,
        /// Declared NOT NULL while stored rows hold NULL in it, which no write replaces (all
        /// but a whole-table overwrite): every read of those rows would fail, so writes are
        /// refused.
        refused: bool,
    },
    /// Declared partitioned by other columns than the table is (the drift's `column` lists the
    /// declared ones): a table is not repartitioned in place, and writes are refused.
    PartitionsChanged {
        /// The stored partition columns.
        stored: Vec<String>,
    },
    /// Declared with another key than the one the table was written with (the drift's `column`
    /// lists the declared one): merges and SCD2 writes would match rows by other columns than
    /// its rows are unique by, and writes are refused. (A key given to a keyless table is
    /// recorded instead.)
    KeyChanged {
        /// The key recorded in the table (`lakehouse.key`).
        stored: String,
    },
}

impl SchemaDrift {
    /// Whether a write with this drift fails (a type change, other partitioning, another key of
    /// a merge or SCD2 table, a new NOT NULL column on a table with rows, a stored NOT NULL
    /// column no longer declared); other drifts are handled by the table's schema evolution.
    pub fn is_incompatible(&self) -> bool {
        matches!(
            self.kind,
            DriftKind::TypeChanged { refused: true, .. }
                | DriftKind::PartitionsChanged { .. }
                | DriftKind::KeyChanged { .. }
                | DriftKind::MissingInTable { refused: true, .. }
                | DriftKind::NotDeclared { refused: true, .. }
                | DriftKind::NullabilityChanged { refused: true, .. }
        )
    }
}

impl std::fmt::Display for SchemaDrift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (table, column) = (&self.table, &self.column);
        match &self.kind {
            DriftKind::MissingInTable {
                declared,
                refused,
                why,
            } => {
                write!(
                    f,
                    "{table}.{column}: declared {declared}, not in the Delta table yet"
                )?;
                if *refused && matches!(column.as_str(), "valid_from" | "is_current") {
                    // (Reserved names: only SCD2's own columns have them.)
                    f.write_str(
                        "; the table is declared SCD2, and its rows were written without SCD2 \
                         history: writes will fail (move its folder away and run its pipeline \
                         with --full-refresh, or declare its former mode again)",
                    )?;
                } else if *refused {
                    write!(f, "; {why}")?;
                }
                Ok(())
            }
            DriftKind::NotDeclared { stored, refused } => {
                write!(
                    f,
                    "{table}.{column}: in the Delta table ({stored}), not declared"
                )?;
                if *refused {
                    f.write_str(
                        "; stored NOT NULL, so writes, which have no value for it, will fail \
                         (declare it again, or rewrite the table)",
                    )?;
                }
                Ok(())
            }
            DriftKind::PartitionsChanged { stored } => {
                let partitioned = |columns: &str| match columns {
                    "" => "unpartitioned".to_owned(),
                    columns => format!("partitioned by ({columns})"),
                };
                write!(
                    f,
                    "{table}: declared {}, but the Delta table is {}; a table is not \
                     repartitioned in place: declare its partitions again, or move the table's \
                     folder away and run the pipeline with --full-refresh to build it anew",
                    partitioned(column),
                    partitioned(&stored.join(", "))
                )
            }
            DriftKind::KeyChanged { stored } => write!(
                f,
                "{table}: declared key ({column}), but the table was written with key \
                 ({stored}); a merge or SCD2 write would match its rows by other columns: \
                 declare the key again, or move the table's folder away and run the pipeline \
                 with --full-refresh to build it anew"
            ),
            DriftKind::TypeChanged {
                declared,
                stored,
                refused: true,
            } => write!(
                f,
                "{table}.{column}: declared {declared}, but the Delta table stores {stored}; \
                 this change is not compatible: keep the old type, rename the column (a new \
                 column, the old one's values left behind), or move the table's folder away and \
                 run the pipeline with --full-refresh to build it anew"
            ),
            DriftKind::TypeChanged {
                declared,
                stored,
                refused: false,
            } => write!(
                f,
                "{table}.{column}: declared {declared}, stored {stored}; the next write replaces \
                 the table's schema (`evolution = overwrite`)"
            ),
            DriftKind::NullabilityChanged {
                stored_nulls: Some(nulls),
                refused: true,
                ..
            } => write!(
                f,
                "{table}.{column}: declared NOT NULL, and {nulls} stored row(s) hold NULL in it: \
                 every read of them would fail, so writes are refused; declare it `Option<_>` \
                 again (readers then get the NULLs), or fill or delete those rows with the engine \
                 that wrote them, or rebuild the table (move its folder away and run its pipeline \
                 with --full-refresh)"
            ),
            DriftKind::NullabilityChanged {
                declared_nullable, ..
            } => write!(
                f,
                "{table}.{column}: declared {}, stored {}",
                if *declared_nullable {
                    "nullable"
                } else {
                    "NOT NULL"
                },
                if *declared_nullable {
                    "NOT NULL"
                } else {
                    "nullable"
                }
            ),
        }
    }
}

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

    /// Brings `delta`'s CHECK constraints to `table`'s declaration: a constraint the declaration
    /// no longer has, or has with another expression, is dropped (one commit each); the declared
    /// ones `delta` lacks are then added in one commit that first validates the existing rows.
    /// A constraint that could not be added (existing rows violate it, or its expression names
    /// no column) fails every write until it can, rather than leaving the table unchecked.
    pub(crate) async fn add_declared_checks(
        &self,
        table: &'static TableDef,
        mut delta: DeltaTable,
    ) -> Result<DeltaTable> {
        let qualified = table.qualified_name();
        for (name, expr) in foreign_checks(table, &delta)? {
            tracing::warn!(
                table = %qualified,
                constraint = %name,
                "the table has a CHECK constraint `{name}` ({expr}) its declaration does not: \
                 kept, as another tool added it, and every write must pass it (declare it with \
                 `check(name = \"{name}\", expr = ..)` to manage it here)"
            );
        }
        let stale = checks_to_drop(table, &delta)?;
        // A constraint whose expression changed is dropped, then added anew: the stored rows are
        // checked against the new one first, so that a failure leaves the old one in place
        // rather than the table without any.
        self.refuse_violated_replacements(table, &delta, &stale)
            .await?;
        for name in stale {
            tracing::info!(table = %qualified, constraint = %name, "dropping a CHECK constraint the declaration changed or no longer has");
            let applied = delta
                .drop_constraints()
                .with_constraint(name.clone())
                .with_raise_if_not_exists(false)
                .await;
            delta = self
                .settle(table, applied, |reloaded| {
                    Ok(!checks_to_drop(table, reloaded)?.contains(&name))
                })
                .await?
                .map_err(|error| Error::delta(&qualified, error))?;
        }
        let missing = checks_to_add(table, &delta)?;
        if !missing.is_empty() {
            delta = self.add_checks(table, delta, missing).await?;
        }
        // What each constraint was declared as: delta-rs stores its own rewriting of the
        // expression, which a declaration cannot be compared with.
        let mut unrecorded = declarations_to_record(table, &delta)?;
        unrecorded.extend(records_to_forget(table, &delta)?);
        if unrecorded.is_empty() {
            return Ok(delta);
        }
        // Not Delta properties: delta-rs refuses keys it does not know unless told not to.
        let applied = delta
            .set_tbl_properties()
            .with_properties(unrecorded)
            .with_raise_if_not_exists(false)
            .await;
        self.settle(table, applied, |reloaded| {
            Ok(declarations_to_record(table, reloaded)?.is_empty())
        })
        .await?
        .map_err(|error| Error::delta(&qualified, error))
    }

    /// An error if a stored row fails the new expression of one of the `stale` constraints
    /// the declaration still has (as Delta evaluates it: a NULL fails), or the expression
    /// cannot be evaluated over the table.
    async fn refuse_violated_replacements(
        &self,
        table: &'static TableDef,
        delta: &DeltaTable,
        stale: &[String],
    ) -> Result<()> {
        let replaced: Vec<_> = table
            .checks
            .iter()
            .filter(|check| stale.iter().any(|name| name == check.name))
            .collect();
        let has_rows = delta
            .snapshot()
            .map(|s| s.log_data().num_files() > 0)
            .unwrap_or(true);
        if replaced.is_empty() || !has_rows {
            return Ok(());
        }
        let qualified = table.qualified_name();
        let session = self.session();
        let rows = self.read(&session, table).await?;
        for check in replaced {
            let refuse = |why: String| {
                Error::schema(
                    &qualified,
                    format!(
                        "cannot change the CHECK constraint `{}` to `{}`: {why}; the table keeps \
                         the old one (mend the rows, or declare the old expression again)",
                        check.name, check.expr
                    ),
                )
            };
            let failing = rows
                .parse_sql_expr(&format!("({}) IS NOT TRUE", check.expr))
                .map_err(|e| refuse(format!("it cannot be evaluated over the table ({e})")))?;
            let count = rows.clone().filter(failing)?.count().await?;
            if count > 0 {
                return Err(refuse(format!(
                    "{count} stored row(s) fail it (a NULL fails a CHECK)"
                )));
            }
        }
        Ok(())
    }

    /// Adds the CHECK constraints `missing` (name → expression) to `delta` in one commit that
    /// first validates the existing rows.
    async fn add_checks(
        &self,
        table: &'static TableDef,
        delta: DeltaTable,
        missing: HashMap<&'static str, &'static str>,
    ) -> Result<DeltaTable> {
        let qualified = table.qualified_name();
        let names: Vec<&str> = missing.keys().copied().collect();
        tracing::info!(table = %qualified, constraints = ?names, "adding declared CHECK constraints");
        let applied = delta.add_constraint().with_constraints(missing).await;
        self.settle(table, applied, |reloaded| {
            Ok(checks_to_add(table, reloaded)?.is_empty())
        })
        .await?
        .map_err(|error| {
            Error::schema(
                &qualified,
                format!(
                    "cannot add the declared CHECK constraint(s) {}: {error} (the table's rows \
                     must satisfy it, and its expression must name the table's columns)",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
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

    /// Every difference between `table`'s declaration and its stored schema; empty when they
    /// agree or the table does not exist yet.
    pub async fn drift(&self, table: &'static TableDef) -> Result<Vec<SchemaDrift>> {
        match self.load(table).await? {
            Some(delta) => self.drift_counted(table, &delta).await,
            None => Ok(Vec::new()),
        }
    }

    /// [`drift_of`], the NULLs of a column made NOT NULL counted by a scan of that column where
    /// the files' statistics do not tell them (a `f64` column, one past the 32nd): unknown, they
    /// refused nothing, and the write left a table every reader failed on.
    pub(crate) async fn drift_counted(
        &self,
        table: &'static TableDef,
        delta: &DeltaTable,
    ) -> Result<Vec<SchemaDrift>> {
        let mut drift = drift_of(table, delta)?;
        // A whole-table overwrite replaces the stored rows: their NULLs refuse nothing.
        if overwrites_whole_table(table) {
            return Ok(drift);
        }
        for entry in &mut drift {
            if let DriftKind::NullabilityChanged {
                declared_nullable: false,
                stored_nulls: stored_nulls @ None,
                refused,
            } = &mut entry.kind
            {
                let nulls = self.count_nulls(table, delta, &entry.column).await?;
                *stored_nulls = Some(nulls);
                *refused = nulls > 0;
            }
        }
        Ok(drift)
    }

    /// The rows of `delta` (`table`'s, as stored) holding NULL in `column`: one column read.
    async fn count_nulls(
        &self,
        table: &'static TableDef,
        delta: &DeltaTable,
        column: &str,
    ) -> Result<u64> {
        use datafusion::logical_expr::Expr;
        let qualified = table.qualified_name();
        let session = self.session();
        let provider = delta
            .table_provider()
            .with_session(super::session_state(&session))
            .await
            .map_err(|e| Error::msg(format!("reading {qualified}: {e}")))?;
        let column = Expr::Column(datafusion::common::Column::new_unqualified(column));
        let nulls = session
            .read_table(provider)?
            .filter(column.is_null())?
            .count()
            .await?;
        Ok(nulls as u64)
    }
}

/// Whether every write of `table` replaces the whole table (old rows need no value).
fn overwrites_whole_table(table: &TableDef) -> bool {
    table.mode == crate::table::WriteMode::Overwrite
        && table.overwrite == crate::table::OverwriteScope::Table
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

/// Every difference between `table`'s declaration and the schema of `delta`, its loaded table.
pub(crate) fn drift_of(table: &'static TableDef, delta: &DeltaTable) -> Result<Vec<SchemaDrift>> {
    let qualified = table.qualified_name();
    let stored = delta
        .snapshot()
        .map_err(|e| Error::delta(&qualified, e))?
        .snapshot()
        .arrow_schema();
    let mut drift = Vec::new();
    // As the write decides: a whole-table overwrite needs no value for old rows, and one that
    // replaces the schema drops the columns no longer declared.
    let whole_overwrite = overwrites_whole_table(table);
    let replaces_schema = table.mode == crate::table::WriteMode::Overwrite
        && table.evolution == crate::table::SchemaEvolution::Overwrite;
    let has_rows = delta
        .snapshot()
        .map(|s| s.log_data().num_files() > 0)
        .unwrap_or(true);
    let mapped = super::column_mapped(delta);
    let entry = |column: &str, kind| SchemaDrift {
        table: qualified.clone(),
        column: column.to_owned(),
        kind,
    };
    for column in table.columns {
        match stored.field_with_name(column.name) {
            Err(_) => drift.push(entry(column.name, {
                let keep = table.evolution == crate::table::SchemaEvolution::Keep;
                // Under `keep` the column is never added, and reads fail without it;
                // delta-rs adds no column to a column-mapped table.
                let spelt_otherwise = stored
                    .fields()
                    .iter()
                    .any(|f| f.name().eq_ignore_ascii_case(column.name));
                let why = if spelt_otherwise && !replaces_schema {
                    SPELT_OTHERWISE
                } else if !column.nullable && keep {
                    "declared NOT NULL, and the table keeps its columns (`evolution = \
                         keep`): no read has a value for it and writes will fail (declare it as \
                         an `Option<_>`, or `evolution = merge`)"
                } else if mapped && !keep {
                    "the table is column-mapped, and delta-rs 1.1 adds no column to it: \
                         writes will fail (leave the column out of the declaration, or write it \
                         to a new table)"
                } else if !column.nullable && has_rows && !whole_overwrite {
                    "declared NOT NULL, and the table's rows have no value for it: writes \
                         will fail (declare it as an `Option<_>`, or rebuild the table)"
                } else {
                    ""
                };
                DriftKind::MissingInTable {
                    declared: column.data_type,
                    refused: !why.is_empty(),
                    why,
                }
            })),
            Ok(field) => {
                if LogicalType::from_arrow(field.data_type()) != Some(column.data_type) {
                    drift.push(entry(
                        column.name,
                        DriftKind::TypeChanged {
                            declared: column.data_type,
                            stored: delta_type_name(field.data_type()),
                            refused: !replaces_schema,
                        },
                    ));
                } else if field.is_nullable() != column.nullable {
                    // Made NOT NULL: the rows stored before may hold NULL, which every read of
                    // the declared column refuses. (A whole-table overwrite replaces them.)
                    let stored_nulls = if column.nullable {
                        None
                    } else {
                        let snapshot = delta.snapshot().map_err(|e| Error::delta(&qualified, e))?;
                        super::read::stored_nulls(snapshot, &qualified, column.name)?
                    };
                    drift.push(entry(
                        column.name,
                        DriftKind::NullabilityChanged {
                            declared_nullable: column.nullable,
                            stored_nulls,
                            refused: stored_nulls.is_some_and(|n| n > 0) && !whole_overwrite,
                        },
                    ));
                }
            }
        }
    }
    let stored_partitions = delta
        .snapshot()
        .map_err(|e| Error::delta(&qualified, e))?
        .metadata()
        .partition_columns()
        .to_vec();
    // Only merges and SCD2 writes match rows by key; a key given to a keyless table changes no
    // match of rows that were unique. The order of the columns matters to neither.
    if let Some(stored_key) = configuration(table, delta)?.get(KEY_PROPERTY)
        && key_matches_rows(table)
        && !stored_key.is_empty()
        && sorted(stored_key.split(',')) != sorted(table.key.iter().copied())
    {
        drift.push(entry(
            &table.key.join(", "),
            DriftKind::KeyChanged {
                stored: stored_key.replace(',', ", "),
            },
        ));
    }
    // A write that replaces the schema lays the table out by the declared partitioning; the
    // order of partition columns only lays out folders.
    if !replaces_schema
        && sorted(stored_partitions.iter().map(String::as_str))
            != sorted(table.partition_by.iter().copied())
    {
        drift.push(entry(
            &table.partition_by.join(", "),
            DriftKind::PartitionsChanged {
                stored: stored_partitions,
            },
        ));
    }
    for field in stored.fields() {
        if table.column(field.name()).is_none() {
            drift.push(entry(
                field.name(),
                DriftKind::NotDeclared {
                    stored: delta_type_name(field.data_type()),
                    // A generated column is computed by the write.
                    refused: !field.is_nullable()
                        && !replaces_schema
                        && !field
                            .metadata()
                            .contains_key(super::write::GENERATION_EXPRESSION),
                },
            ));
        }
    }
    Ok(drift)
}

fn delta_type_name(data_type: &arrow::datatypes::DataType) -> String {
    LogicalType::from_arrow(data_type)
        .map(|t| t.to_string())
        .unwrap_or_else(|| data_type.to_string())
}

/// The CHECK constraints `table` declares whose names `delta` does not hold, name → expression.
fn checks_to_add(
    table: &TableDef,
    delta: &DeltaTable,
) -> Result<HashMap<&'static str, &'static str>> {
    let stored = configuration(table, delta)?;
    Ok(table
        .checks
        .iter()
        .filter(|c| !stored.contains_key(&format!("delta.constraints.{}", c.name)))
        .map(|c| (c.name, c.expr))
        .collect())
}

/// The declared CHECK constraints the next write of `table` adds to `delta`, each with whether
/// it replaces a stored one of its name (declared since with another expression): what
/// `orchestrate check` validates the stored rows against.
pub(crate) fn checks_to_apply(
    table: &'static TableDef,
    delta: &DeltaTable,
) -> Result<Vec<(&'static crate::table::CheckConstraint, bool)>> {
    let missing = checks_to_add(table, delta)?;
    let stale = checks_to_drop(table, delta)?;
    Ok(table
        .checks
        .iter()
        .filter_map(|check| {
            let replaces = stale.iter().any(|name| name == check.name);
            (replaces || missing.contains_key(check.name)).then_some((check, replaces))
        })
        .collect())
}

/// The configuration (properties, CHECK constraints) of `delta`, the loaded table of `table`.
fn configuration<'a>(
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
const KEY_PROPERTY: &str = "lakehouse.key";

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
fn key_matches_rows(table: &TableDef) -> bool {
    matches!(table.mode, WriteMode::Merge | WriteMode::Scd2)
}

fn sorted<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names
}

/// Why a declared column the table stores under another case is refused.
pub(crate) const SPELT_OTHERWISE: &str = "the table stores this column spelt in another case, \
     and Delta matches column names ignoring case: no column of this spelling can be added beside \
     it, and writes will fail (rename the stored column with the engine that wrote it, or rebuild \
     the table)";

/// The table property recording the expression a CHECK constraint was declared with.
fn declared_check_key(name: &str) -> String {
    format!("lakehouse.constraints.{name}")
}

/// The CHECK constraints `delta` holds that `table` declared once (their declaration is
/// recorded) and no longer does, or declares with another expression than the one recorded when
/// it was added (or, without a record, than the one stored). A constraint the table never
/// declared is another tool's: kept, see [`foreign_checks`].
fn checks_to_drop(table: &TableDef, delta: &DeltaTable) -> Result<Vec<String>> {
    let stored = configuration(table, delta)?;
    let mut stale: Vec<String> = stored
        .keys()
        .filter_map(|key| {
            let name = key.strip_prefix("delta.constraints.")?;
            let declared = table.checks.iter().find(|c| c.name == name);
            let recorded = stored
                .get(&declared_check_key(name))
                .filter(|expr| !expr.is_empty());
            // Without a record (added before declarations were recorded), delta-rs's rewriting
            // is all there is: a mismatch, perhaps only of form, costs one drop and re-add.
            let compared = recorded.unwrap_or(stored.get(key)?);
            match declared {
                None => recorded.map(|_| name.to_owned()),
                Some(check) if compared.trim() != check.expr.trim() => Some(name.to_owned()),
                Some(_) => None,
            }
        })
        .collect();
    stale.sort();
    Ok(stale)
}

/// The CHECK constraints `delta` holds that `table` does not declare and never did (no
/// declaration of it is recorded): another tool's (Spark's `ADD CONSTRAINT`), which writes must
/// pass too. `(name, expression)`, by name.
pub(crate) fn foreign_checks(
    table: &TableDef,
    delta: &DeltaTable,
) -> Result<Vec<(String, String)>> {
    let stored = configuration(table, delta)?;
    let mut foreign: Vec<(String, String)> = stored
        .iter()
        .filter_map(|(key, expr)| {
            let name = key.strip_prefix("delta.constraints.")?;
            let declared = table.checks.iter().any(|c| c.name == name);
            let recorded = stored
                .get(&declared_check_key(name))
                .is_some_and(|expr| !expr.is_empty());
            (!declared && !recorded).then(|| (name.to_owned(), expr.clone()))
        })
        .collect();
    foreign.sort();
    Ok(foreign)
}

/// The records of declarations of constraints `table` no longer declares and `delta` no longer
/// holds (dropped, by this write or an earlier one that then failed), each to be emptied: Delta
/// keeps no way to unset a property, and another tool's constraint of that name later must not
/// be taken for ours.
fn records_to_forget(table: &TableDef, delta: &DeltaTable) -> Result<HashMap<String, String>> {
    let stored = configuration(table, delta)?;
    Ok(stored
        .iter()
        .filter_map(|(key, expr)| {
            let name = key.strip_prefix("lakehouse.constraints.")?;
            let forgotten = !expr.is_empty()
                && !table.checks.iter().any(|c| c.name == name)
                && !stored.contains_key(&format!("delta.constraints.{name}"));
            forgotten.then(|| (key.clone(), String::new()))
        })
        .collect())
}

/// The declared CHECK constraints whose declared expression `delta` does not record yet,
/// property → expression.
fn declarations_to_record(table: &TableDef, delta: &DeltaTable) -> Result<HashMap<String, String>> {
    let stored = configuration(table, delta)?;
    Ok(table
        .checks
        .iter()
        .map(|check| (declared_check_key(check.name), check.expr.trim().to_owned()))
        .filter(|(key, expr)| stored.get(key) != Some(expr))
        .collect())
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
