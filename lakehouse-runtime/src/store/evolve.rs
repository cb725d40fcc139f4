//! Bringing a table's schema to its declaration before a write: new columns added, NOT NULL
//! dropped from columns declared `Option`, type, partitioning and key changes refused.

use deltalake::DeltaTable;
use deltalake::kernel::StructField;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;

use super::Warehouse;
use super::drift::DriftKind;
use crate::error::{Error, Result};
use crate::table::{SchemaEvolution, TableDef, WriteMode};

impl Warehouse {
    /// Adds declared columns the table lacks (as nullable: existing rows have no value), drops
    /// NOT NULL from columns declared `Option`, and refuses type, partitioning and key changes,
    /// before anything is written.
    pub(super) async fn evolve(
        &self,
        table: &'static TableDef,
        delta: DeltaTable,
        replaces_every_row: bool,
    ) -> Result<DeltaTable> {
        // The table just loaded: loading it again cost as much as a small write.
        let drift = self
            .drift_counted_for(table, &delta, replaces_every_row)
            .await?;
        // (The other refusals below give their own advice.)
        let type_changed = |d: &&super::SchemaDrift| {
            matches!(
                d.kind,
                DriftKind::TypeChanged { .. }
                    | DriftKind::PartitionsChanged { .. }
                    | DriftKind::KeyChanged { .. }
                    | DriftKind::NullabilityChanged { refused: true, .. }
            )
        };
        if let Some(incompatible) = drift.iter().find(type_changed) {
            return Err(Error::schema(
                table.qualified_name(),
                incompatible.to_string(),
            ));
        }
        // `id` declared, `ID` stored: adding `id` fails, and keeping the table's columns would
        // write NULL for `ID` and drop the values of `id`.
        if let Some(spelt) = drift.iter().find(|d| {
            matches!(
                d.kind,
                DriftKind::MissingInTable {
                    why: super::drift::SPELT_OTHERWISE,
                    ..
                }
            )
        }) {
            let stored: Vec<&str> = drift
                .iter()
                .filter(|d| {
                    matches!(d.kind, DriftKind::NotDeclared { .. })
                        && d.column.eq_ignore_ascii_case(&spelt.column)
                })
                .map(|d| d.column.as_str())
                .collect();
            return Err(Error::schema(
                table.qualified_name(),
                format!(
                    "column `{}` is declared, and the Delta table stores it as `{}`: Delta \
                     matches column names ignoring case, so the two are one column, and a \
                     declaration's columns are lowercase; rename the stored column with the \
                     engine that wrote it, or rebuild the table (move its folder away and run \
                     its pipeline with --full-refresh)",
                    spelt.column,
                    stored.join("`, `"),
                ),
            ));
        }
        if table.evolution == SchemaEvolution::Keep {
            // The table keeps its columns: a declared NOT NULL column it lacks is never added,
            // and every read of the table (which has no value for it) would fail.
            if let Some(missing) = drift.iter().find(|d| {
                matches!(d.kind, DriftKind::MissingInTable { .. })
                    && table
                        .columns
                        .iter()
                        .any(|c| c.name == d.column && !c.nullable)
            }) {
                return Err(Error::schema(
                    table.qualified_name(),
                    format!(
                        "column `{}` is declared NOT NULL but the table has no such column, and \
                         `evolution = keep` does not add it: every read of the table would fail \
                         on it; declare it `Option<_>`, or let the write add it (`evolution = \
                         merge`, the default)",
                        missing.column
                    ),
                ));
            }
            return Ok(delta);
        }
        if !replaces_every_row {
            refuse_required_additions(table, &delta, &drift)?;
        }
        // A field made `Option`: the stored column drops its NOT NULL (one commit each; a
        // column made NOT NULL again stays nullable in the table, its data asserted at write).
        let mut delta = delta;
        for relaxed in drift.iter().filter(|d| {
            matches!(
                d.kind,
                DriftKind::NullabilityChanged {
                    declared_nullable: true,
                    ..
                }
            )
        }) {
            tracing::info!(table = %table.qualified_name(), column = %relaxed.column, "dropping NOT NULL from a column declared `Option`");
            let applied = delta
                .drop_column_not_null()
                .with_column(relaxed.column.clone())
                .await;
            // Another process may have made the same change meanwhile.
            let column = relaxed.column.as_str();
            delta = self
                .settle(table, applied, |reloaded| {
                    Ok(super::drift::drift_of(table, reloaded)?
                        .iter()
                        .all(|d| d.column != column))
                })
                .await?
                .map_err(|e| Error::delta(table.qualified_name(), e))?;
        }
        let missing: Vec<StructField> = drift
            .iter()
            .filter(|d| matches!(d.kind, DriftKind::MissingInTable { .. }))
            .filter_map(|d| table.column(&d.column))
            .map(|c| {
                let field = c.arrow_field().with_nullable(true);
                let schema = arrow::datatypes::Schema::new(vec![field]);
                let kernel: deltalake::kernel::StructType = (&schema).try_into_kernel()?;
                Ok(kernel.fields().cloned().collect::<Vec<_>>())
            })
            .collect::<Result<Vec<_>, arrow::error::ArrowError>>()?
            .into_iter()
            .flatten()
            .collect();
        if missing.is_empty() {
            return Ok(delta);
        }
        let names: Vec<String> = missing.iter().map(|f| f.name().to_owned()).collect();
        if super::column_mapped(&delta) {
            return Err(Error::schema(
                table.qualified_name(),
                format!(
                    "the declaration adds {}, and delta-rs 1.1 adds no column to a column-mapped \
                     table (`delta.columnMapping.mode`): leave the column out of the declaration, \
                     or write it to a new table",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        tracing::info!(table = %table.qualified_name(), columns = ?names, "adding new columns");
        let applied = delta.add_columns().with_fields(missing).await;
        // Another process may have added them meanwhile (its commit conflicts with this one).
        self.settle(table, applied, |reloaded| {
            Ok(super::drift::drift_of(table, reloaded)?.iter().all(|d| {
                !names.contains(&d.column) || !matches!(d.kind, DriftKind::MissingInTable { .. })
            }))
        })
        .await?
        .map_err(|e| Error::delta(table.qualified_name(), e))
    }
}

/// A new column declared NOT NULL cannot be added to a table whose rows are kept (append, merge,
/// SCD2, and the partitions a partition overwrite does not replace) and that has rows: they have
/// no value for it, and every read of the table would then fail. Refused before anything is
/// written, naming the ways out.
fn refuse_required_additions(
    table: &'static TableDef,
    delta: &DeltaTable,
    drift: &[super::SchemaDrift],
) -> Result<()> {
    let required: Vec<&crate::table::ColumnDef> = drift
        .iter()
        .filter(|d| matches!(d.kind, DriftKind::MissingInTable { .. }))
        .filter_map(|d| table.column(&d.column))
        .filter(|c| !c.nullable)
        .collect();
    let has_rows = delta
        .snapshot()
        .map(|s| s.log_data().num_files() > 0)
        .unwrap_or(true);
    match required.first() {
        // The validity columns of a table declared SCD2 since it was written.
        Some(column) if has_rows && column.role == crate::table::ColumnRole::System => {
            Err(Error::schema(
                table.qualified_name(),
                format!(
                    "the table is declared `mode = scd2`, but its rows were written without SCD2 \
                     history (no `{}` column): a table does not turn into SCD2 in place; move \
                     the table's folder away and run its pipeline with --full-refresh, which \
                     builds the history anew from its inputs (or declare its former mode again)",
                    column.name
                ),
            ))
        }
        Some(column) if has_rows => Err(Error::schema(
            table.qualified_name(),
            format!(
                "column `{}` is new and declared NOT NULL ({}), but the table's existing rows have \
                 no value for it: declare it as an `Option<_>` (existing rows then read as NULL), \
                 or {}",
                column.name,
                column.data_type,
                match table.mode {
                    // A rebuild replaces every row of an append table read incrementally.
                    WriteMode::Append => {
                        "build the table anew with it: `orchestrate run --rebuild --select` its \
                         pipeline replaces every row when it reads `Changes<T>` or new files; \
                         otherwise move the table's folder away and run the pipeline with \
                         --full-refresh"
                    }
                    _ => {
                        "move the table's folder away and run the pipeline with --full-refresh to \
                         build it anew with the column"
                    }
                }
            ),
        )),
        _ => Ok(()),
    }
}
