//! Rows of Rust values (any `serde::Serialize` struct whose fields match a table) into Arrow
//! record batches and back, through Arrow's JSON decoder and writer, so sources and tests need
//! no array builders.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Rows per record batch.
const BATCH_ROWS: usize = 8192;

/// `rows` as record batches of `schema`. Field names must match column names: a field that is
/// no column (misspelled, or renamed by serde) is an error naming it, not a column silently
/// left NULL; a missing nullable column is NULL. A value of the wrong type is an error naming
/// the column.
pub fn batches_from_rows<R: Serialize>(schema: SchemaRef, rows: &[R]) -> Result<Vec<RecordBatch>> {
    let columns = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .with_strict_mode(true)
        .build_decoder()?;
    let mut batches = Vec::with_capacity(rows.len().div_ceil(BATCH_ROWS));
    // A mistake of the code making the rows: another attempt makes the same.
    let unfit = |e: arrow::error::ArrowError| {
        Error::Refused(format!(
            "rows do not fit the table's columns ({}): {e}",
            columns()
        ))
    };
    for chunk in rows.chunks(BATCH_ROWS) {
        decoder.serialize(chunk).map_err(unfit)?;
        if let Some(batch) = decoder.flush().map_err(unfit)? {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// Record batches as `R`s, through Arrow's JSON writer (decimals as their exact text: the
/// writer would make them JSON numbers, read back as `f64`).
/// A float that is not finite (NaN, an infinity) is an error naming its column: JSON has no such
/// value, and the writer would make it `null`, read back as `None` (a test would pass on a
/// division by zero the table stores).
pub fn batches_to_rows<R: DeserializeOwned>(batches: &[RecordBatch]) -> Result<Vec<R>> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        refuse_non_finite(batch)?;
        writer.write(&decimals_as_text(batch)?)?;
    }
    writer.finish()?;
    let json = writer.into_inner();
    if json.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&json).map_err(|e| Error::msg(format!("reading rows: {e}")))
}

/// An error naming the first float column of `batch` holding NaN or an infinity.
fn refuse_non_finite(batch: &RecordBatch) -> Result<()> {
    use arrow::array::AsArray as _;
    use arrow::datatypes::{DataType, Float32Type, Float64Type};
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let found = match field.data_type() {
            DataType::Float64 => column
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .find(|v| !v.is_finite()),
            DataType::Float32 => column
                .as_primitive::<Float32Type>()
                .iter()
                .flatten()
                .find(|v| !v.is_finite())
                .map(f64::from),
            _ => None,
        };
        if let Some(value) = found {
            return Err(Error::msg(format!(
                "column `{}` holds {value}, which rows cannot carry (JSON has no NaN or \
                 infinity): compare it on the frame (`isnan`, a filter), or guard the division",
                field.name()
            )));
        }
    }
    Ok(())
}

/// `batch` with its decimal columns cast to their exact text.
fn decimals_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::datatypes::{DataType, Field, Schema};
    let is_decimal =
        |t: &DataType| matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..));
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_decimal(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if is_decimal(field.data_type()) {
            fields.push(Field::new(
                field.name(),
                DataType::Utf8,
                field.is_nullable(),
            ));
            columns.push(arrow::compute::cast(column, &DataType::Utf8)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn a_float_that_is_not_finite_is_named_not_read_as_null() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ratio",
            DataType::Float64,
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::Float64Array::from(vec![
                Some(1.5),
                None,
                Some(f64::NAN),
            ]))],
        )
        .expect("batch");
        let error = batches_to_rows::<serde_json::Value>(&[batch])
            .expect_err("NaN")
            .to_string();
        assert!(error.starts_with("column `ratio` holds NaN"), "{error}");
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn a_field_that_is_no_column_is_an_error_and_a_missing_nullable_one_is_null() {
        #[derive(Serialize)]
        struct Misspelled {
            id: i64,
            nmae: &'static str,
        }
        let error = batches_from_rows(schema(), &[Misspelled { id: 1, nmae: "a" }])
            .expect_err("nmae is no column");
        let text = error.to_string();
        assert!(
            text.contains("rows do not fit the table's columns (id, name)")
                && text.contains("column 'nmae' missing from schema"),
            "{text}"
        );
        #[derive(Serialize)]
        struct IdOnly {
            id: i64,
        }
        let batches = batches_from_rows(schema(), &[IdOnly { id: 1 }]).expect("name is NULL");
        assert_eq!(batches[0].num_rows(), 1);
        assert_eq!(batches[0].column(1).null_count(), 1);
    }
}
