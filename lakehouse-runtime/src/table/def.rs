//! `TableDef`: everything `#[derive(Table)]` knows about a table, as constant data.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};

use super::types::LogicalType;

/// How a pipeline's output is written into its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// Add the rows.
    Append,
    /// Replace all rows.
    Overwrite,
    /// Upsert on the key: insert new keys, update every column of existing ones.
    Merge,
    /// Slowly changing dimension type 2: keep every version of a row with its validity interval.
    Scd2,
}

impl WriteMode {
    /// The lowercase name used in attributes and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Append => "append",
            WriteMode::Overwrite => "overwrite",
            WriteMode::Merge => "merge",
            WriteMode::Scd2 => "scd2",
        }
    }
}

/// What a write does when the declared schema and the Delta table's schema differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaEvolution {
    /// Add new columns to the table; columns the table has and the output lacks stay (NULL).
    Merge,
    /// Replace the table's schema with the declared one (only with a full rewrite).
    Overwrite,
    /// Keep the table's schema: extra output columns are dropped, missing nullable ones are NULL.
    Keep,
}

/// What a write of a `mode = overwrite` table replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OverwriteScope {
    /// Every row (the default).
    Table,
    /// The rows of the partitions the output has rows in; other partitions are kept
    /// (`#[table(overwrite = partitions)]`, as Spark's dynamic partition overwrite and dbt's
    /// `insert_overwrite`).
    Partitions,
}

/// What happens when the data-quality checks of a table's output fail: primary key unique,
/// foreign keys resolving to their dimension. Results go to `lakehouse.quality_issues`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quality {
    /// No checks.
    Off,
    /// Checks run and failures are recorded; the write goes ahead.
    Warn,
    /// Checks run before the write; a failure fails the pipeline and nothing is written.
    Blocking,
}

/// Which part a column plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnRole {
    /// A column the pipeline writes.
    Data,
    /// A column the runtime maintains (the SCD2 validity columns).
    System,
}

/// A column that a foreign key points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ColumnRef {
    /// Schema of the referenced table.
    pub schema: &'static str,
    /// Name of the referenced table.
    pub table: &'static str,
    /// The referenced column.
    pub column: &'static str,
}

/// A Delta CHECK constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckConstraint {
    /// Constraint name.
    pub name: &'static str,
    /// SQL boolean expression every row must satisfy.
    pub expr: &'static str,
}

/// An expectation on a table's rows: a SQL condition each row of a pipeline's output should
/// meet (`#[table(expect(name = "..", expr = "..", on_fail = drop))]`), as Delta Live Tables'
/// expectations. A row fails it when the condition is false (NULL passes, as in SQL's CHECK;
/// a Delta CHECK constraint fails a NULL); the failing rows are counted in
/// `lakehouse.quality_issues` at every write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Expectation {
    /// Its name, recorded with the findings.
    pub name: &'static str,
    /// SQL boolean expression over the table's columns.
    pub expr: &'static str,
    /// What failing rows do.
    pub on_fail: OnFail,
}

/// What the rows failing an [`Expectation`] do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnFail {
    /// Written anyway, and counted (the default).
    Warn,
    /// Left out of the write, and counted. In a `full_snapshot` pipeline the key of a dropped
    /// row counts as missing: its stored row is deleted (merge) or closed (SCD2).
    Drop,
    /// Fail the pipeline: nothing is written (not retried).
    Fail,
}

/// One column of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ColumnDef {
    /// Column name.
    pub name: &'static str,
    /// Column type.
    pub data_type: LogicalType,
    /// Whether the column may be NULL.
    pub nullable: bool,
    /// Description, from the field's doc comment.
    pub description: &'static str,
    /// Data or system column.
    pub role: ColumnRole,
    /// The dimension column this foreign key resolves to.
    pub references: Option<ColumnRef>,
}

impl ColumnDef {
    /// A column maintained by the runtime.
    pub const fn system(
        name: &'static str,
        data_type: LogicalType,
        nullable: bool,
        description: &'static str,
    ) -> ColumnDef {
        ColumnDef {
            name,
            data_type,
            nullable,
            description,
            role: ColumnRole::System,
            references: None,
        }
    }

    /// The Arrow field of this column, with its description as `comment` metadata.
    pub fn arrow_field(&self) -> Field {
        let field = Field::new(self.name, self.data_type.arrow_type(), self.nullable);
        if self.description.is_empty() {
            field
        } else {
            field.with_metadata(HashMap::from([(
                "comment".to_owned(),
                self.description.to_owned(),
            )]))
        }
    }
}

/// Everything known about a table at compile time. Generated by `#[derive(Table)]`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TableDef {
    /// Schema (`bronze`, `silver`, `gold`, `lakehouse`, ...).
    pub schema: &'static str,
    /// Table name within the schema.
    pub name: &'static str,
    /// The Rust struct that declares it.
    pub rust_type: &'static str,
    /// Description, from the struct's doc comment.
    pub description: &'static str,
    /// Every column in order: the struct's fields, then system columns.
    pub columns: &'static [ColumnDef],
    /// Columns that identify a row (merge and SCD2 tables).
    pub key: &'static [&'static str],
    /// Partition columns.
    pub partition_by: &'static [&'static str],
    /// How writes are applied.
    pub mode: WriteMode,
    /// Merge and SCD2: the columns whose change updates a row or opens a new version (`None`:
    /// every non-key data column but `run_at`).
    pub change_columns: Option<&'static [&'static str]>,
    /// What happens when schemas differ.
    pub evolution: SchemaEvolution,
    /// What an overwrite replaces (`mode = overwrite` tables).
    pub overwrite: OverwriteScope,
    /// Data-quality checks of the output.
    pub quality: Quality,
    /// Columns to Z-order by when optimizing.
    pub z_order: &'static [&'static str],
    /// Target file size for optimize, in bytes.
    pub target_file_size: Option<u64>,
    /// Whether a pipeline's write that leaves the table with many files compacts them (see
    /// [`crate::store::AUTO_COMPACT_AT_FILES`]); `#[table(auto_compact = false)]` turns it off.
    pub auto_compact: bool,
    /// How old the table's latest write may get, in seconds, before `orchestrate check` reports
    /// it stale (`#[table(freshness = "26h")]`; `None`: never).
    pub freshness_secs: Option<u64>,
    /// Delta CHECK constraints.
    pub checks: &'static [CheckConstraint],
    /// Expectations on the output's rows, checked before each write.
    pub expectations: &'static [Expectation],
    /// Delta table properties.
    pub properties: &'static [(&'static str, &'static str)],
}

impl TableDef {
    /// `schema.name`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&'static ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The columns a pipeline writes (everything but system columns).
    pub fn data_columns(&self) -> impl Iterator<Item = &'static ColumnDef> + use<> {
        self.columns.iter().filter(|c| c.role == ColumnRole::Data)
    }

    /// The change-detection columns of merge and SCD2 tables: the declared ones, or every
    /// non-key data column but `run_at` (the run's time, different at every run: every row
    /// would change). A row whose change columns equal the stored row's is left as it is.
    pub fn change_columns_or_default(&self) -> Vec<&'static str> {
        match self.change_columns {
            Some(columns) => columns.to_vec(),
            None => self
                .data_columns()
                .map(|c| c.name)
                .filter(|name| !self.key.contains(name) && *name != "run_at")
                .collect(),
        }
    }

    /// The Arrow schema of the stored table (all columns).
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(ColumnDef::arrow_field)
                .collect::<Vec<_>>(),
        ))
    }

    /// The Arrow schema a pipeline must produce (data columns only).
    pub fn output_arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.data_columns()
                .map(|c| c.arrow_field())
                .collect::<Vec<_>>(),
        ))
    }
}

/// A table declared with `#[derive(Table)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lakehouse table",
    label = "not a table",
    note = "add `#[derive(Table)]` and `#[table(schema = \"..\")]` to `{Self}`"
)]
pub trait Table: Send + Sync + 'static {
    /// The table's definition.
    const DEF: &'static TableDef;
}

/// Implemented by `#[derive(Table)]` for the tables whose changes can be read incrementally
/// (`Changes<T>`): `mode = append` tables (their new rows), and `mode = merge` tables that turn
/// their change data feed on (their inserted and updated rows). SCD2 and overwrite tables
/// rewrite rows in place.
#[diagnostic::on_unimplemented(
    message = "`Changes<{Self}>` needs a table that records its changes, and `{Self}` does not",
    label = "not `mode = append`, nor `mode = merge` with its change data feed on",
    note = "read it whole as `Frame<{Self}>`; or make the upstream table `mode = append`, or a `mode = merge` table with `property(key = \"delta.enableChangeDataFeed\", value = \"true\")`"
)]
pub trait RecordsChanges: Table {}

/// The schema of the run ledger's system tables, which only the runtime writes.
pub(crate) const LEDGER_SCHEMA: &str = "lakehouse";
