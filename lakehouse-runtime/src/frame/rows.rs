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

/// `rows` as record batches of `schema`. Field names must match column names; a value of the wrong
/// type is an error naming the column.
pub fn batches_from_rows<R: Serialize>(schema: SchemaRef, rows: &[R]) -> Result<Vec<RecordBatch>> {
    let mut decoder = ReaderBuilder::new(schema)
        .with_batch_size(BATCH_ROWS)
        .build_decoder()?;
    let mut batches = Vec::with_capacity(rows.len().div_ceil(BATCH_ROWS));
    for chunk in rows.chunks(BATCH_ROWS) {
        decoder.serialize(chunk)?;
        if let Some(batch) = decoder.flush()? {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// Record batches as `R`s, through Arrow's JSON writer (decimals as their exact text: the
/// writer would make them JSON numbers, read back as `f64`).
pub fn batches_to_rows<R: DeserializeOwned>(batches: &[RecordBatch]) -> Result<Vec<R>> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer.write(&decimals_as_text(batch)?)?;
    }
    writer.finish()?;
    let json = writer.into_inner();
    if json.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&json).map_err(|e| Error::msg(format!("reading rows: {e}")))
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
