//! The Parquet settings of every data file the runtime writes: delta-rs's own (Snappy for
//! writes, Zstandard level 4 for compaction), without minimum/maximum statistics for
//! floating-point columns.
//!
//! Parquet leaves NaN out of a float column's minimum and maximum, while DataFusion orders NaN
//! above every number (`NaN > 6` holds). A file holding `[1.0, NaN]` recorded a maximum of
//! 1.0 — in its row groups and in the Delta log, which delta-rs fills from them — and
//! `WHERE x > 6` skipped it: the NaN row was lost. Without statistics a float column is never
//! used to skip files or row groups (the upstream fix, which would make them safe to read, is
//! apache/datafusion#24804). Files written before this keep their statistics.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowSchemaConverter;
use datafusion::parquet::basic::{Compression, Type as PhysicalType, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

/// The properties of a write (append, overwrite, merge, delete) of rows shaped by any of
/// `schemas` (the table's, and the source's when a merge may add columns).
pub(crate) fn for_writes(schemas: &[&Schema]) -> WriterProperties {
    without_float_statistics(schemas, Compression::SNAPPY)
}

/// The properties of a compaction of a table shaped by `schema`: delta-rs compacts with
/// Zstandard level 4.
pub(crate) fn for_compaction(schema: &Schema) -> WriterProperties {
    let level = ZstdLevel::try_new(4).unwrap_or_default();
    without_float_statistics(&[schema], Compression::ZSTD(level))
}

/// The columns `delta` stores (none when its snapshot cannot be read, which the write then
/// reports).
pub(crate) fn stored_schema(delta: &deltalake::DeltaTable) -> Option<SchemaRef> {
    delta
        .snapshot()
        .ok()
        .map(|state| state.snapshot().arrow_schema())
}

/// [`for_writes`] of rows shaped by `source` (`None`: the table's own) into `delta`.
pub(crate) fn for_writes_into(
    delta: &deltalake::DeltaTable,
    source: Option<&Schema>,
) -> WriterProperties {
    let stored = stored_schema(delta);
    let schemas: Vec<&Schema> = [source, stored.as_deref()].into_iter().flatten().collect();
    for_writes(&schemas)
}

fn without_float_statistics(schemas: &[&Schema], compression: Compression) -> WriterProperties {
    let mut builder = WriterProperties::builder().set_compression(compression);
    // A table with column mapping is written under its columns' physical names.
    let physical: Vec<Schema> = schemas.iter().filter_map(|s| physical_names(s)).collect();
    for schema in schemas.iter().copied().chain(&physical) {
        // The Parquet schema the writer derives gives each leaf's path (nested fields, lists).
        match ArrowSchemaConverter::new().convert(schema) {
            Ok(parquet) => {
                for column in parquet.columns() {
                    if matches!(
                        column.physical_type(),
                        PhysicalType::FLOAT | PhysicalType::DOUBLE
                    ) {
                        builder = builder.set_column_statistics_enabled(
                            column.path().clone(),
                            EnabledStatistics::None,
                        );
                    }
                }
            }
            // The writer fails on the same schema, with its own message.
            Err(error) => tracing::debug!(%error, "no Parquet schema for the statistics settings"),
        }
    }
    builder.build()
}

/// The metadata key of a column's physical name under Delta's column mapping.
const PHYSICAL_NAME: &str = "delta.columnMapping.physicalName";

/// `schema` with each field named by its physical name (nested fields too); `None` when no
/// field has one (no column mapping).
fn physical_names(schema: &Schema) -> Option<Schema> {
    let mut mapped = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| physical_field(field, &mut mapped))
        .collect();
    mapped.then(|| Schema::new(fields))
}

fn physical_field(field: &Field, mapped: &mut bool) -> Field {
    let name = match field.metadata().get(PHYSICAL_NAME) {
        Some(physical) => {
            *mapped = true;
            physical.clone()
        }
        None => field.name().clone(),
    };
    let data_type = match field.data_type() {
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|child| physical_field(child, mapped))
                .collect::<Vec<_>>()
                .into(),
        ),
        DataType::List(child) => DataType::List(physical_field(child, mapped).into()),
        DataType::LargeList(child) => DataType::LargeList(physical_field(child, mapped).into()),
        DataType::Map(entries, sorted) => {
            DataType::Map(physical_field(entries, mapped).into(), *sorted)
        }
        other => other.clone(),
    };
    Field::new(name, data_type, field.is_nullable())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Fields;
    use datafusion::parquet::schema::types::ColumnPath;

    #[test]
    fn float_leaves_have_no_statistics_and_the_rest_keep_them() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ratio", DataType::Float64, true),
            Field::new(
                "reading",
                DataType::Struct(Fields::from(vec![
                    Field::new("level", DataType::Float32, true),
                    Field::new("unit", DataType::Utf8, true),
                ])),
                true,
            ),
        ]);
        let properties = for_writes(&[&schema]);
        let enabled = |path: &[&str]| {
            properties.statistics_enabled(&ColumnPath::new(
                path.iter().map(|p| (*p).to_owned()).collect(),
            ))
        };
        assert_eq!(enabled(&["ratio"]), EnabledStatistics::None);
        assert_eq!(enabled(&["reading", "level"]), EnabledStatistics::None);
        assert_eq!(enabled(&["id"]), EnabledStatistics::Page);
        assert_eq!(enabled(&["reading", "unit"]), EnabledStatistics::Page);
        assert_eq!(
            properties.compression(&ColumnPath::from("id")),
            Compression::SNAPPY
        );
    }
}
