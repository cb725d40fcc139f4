//! How a table's declaration differs from its stored Delta schema ([`SchemaDrift`]), as
//! writes, `check`, `describe` and `restore` judge it.

use deltalake::DeltaTable;

use super::Warehouse;
use super::create::{KEY_PROPERTY, configuration, key_matches_rows, sorted};
use crate::error::{Error, Result};
use crate::table::{LogicalType, TableDef};

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
        self.drift_counted_for(table, delta, overwrites_whole_table(table))
            .await
    }

    /// [`Warehouse::drift_counted`] for a write that replaces every stored row, or not
    /// (`replaces_every_row`: a whole-table overwrite, a `full_snapshot` into partitions
    /// replaced, a rebuild of an append table), whose old rows need no value.
    pub(crate) async fn drift_counted_for(
        &self,
        table: &'static TableDef,
        delta: &DeltaTable,
        replaces_every_row: bool,
    ) -> Result<Vec<SchemaDrift>> {
        let mut drift = drift_for(table, delta, replaces_every_row)?;
        // A write replacing the stored rows: their NULLs refuse nothing.
        if replaces_every_row {
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

/// Whether every write of `table` by a pipeline that is, or is not, a `full_snapshot` one
/// replaces every stored row: a whole-table overwrite, or a full snapshot into partitions
/// replaced (an append table's `--rebuild` is asked for, not its pipeline's way).
pub(crate) fn writes_replace_every_row(table: &TableDef, full_snapshot: bool) -> bool {
    overwrites_whole_table(table)
        || (full_snapshot && table.mode == crate::table::WriteMode::Overwrite)
}

/// Every difference between `table`'s declaration and the schema of `delta`, its loaded table.
pub(crate) fn drift_of(table: &'static TableDef, delta: &DeltaTable) -> Result<Vec<SchemaDrift>> {
    drift_for(table, delta, overwrites_whole_table(table))
}

/// [`drift_of`] for a write that replaces every stored row, or not (`replaces_every_row`).
fn drift_for(
    table: &'static TableDef,
    delta: &DeltaTable,
    replaces_every_row: bool,
) -> Result<Vec<SchemaDrift>> {
    let qualified = table.qualified_name();
    let stored = delta
        .snapshot()
        .map_err(|e| Error::delta(&qualified, e))?
        .snapshot()
        .arrow_schema();
    let mut drift = Vec::new();
    // As the write decides: a write replacing every row needs no value for old rows, and one
    // that replaces the schema drops the columns no longer declared.
    let whole_overwrite = replaces_every_row;
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

/// Why a declared column the table stores under another case is refused.
pub(crate) const SPELT_OTHERWISE: &str = "the table stores this column spelt in another case, \
     and Delta matches column names ignoring case: no column of this spelling can be added beside \
     it, and writes will fail (rename the stored column with the engine that wrote it, or rebuild \
     the table)";
