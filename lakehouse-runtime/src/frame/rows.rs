//! Rows of Rust values (any `serde::Serialize` struct whose fields match a table) into Arrow
//! record batches, through Arrow's JSON decoder, so sources and tests need no array builders.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use serde::Serialize;

use crate::error::Result;

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
