//! How a write's batches reach the Parquet encoders: the write plan runs with large batches,
//! and whatever still comes small is gathered.
//!
//! The Parquet writer encodes a batch column by column, interning every value in that column's
//! dictionary. With DataFusion's 8 192-row batches the dictionaries of all columns take turns in
//! the cache; with batches of [`ENCODE_BATCH_ROWS`] each column's dictionary stays hot for a long
//! run of values. Gathering small batches costs a copy of every value into fresh memory, so the
//! write plan is first asked for batches of that size ([`write_task_context`]): a scan, filter or
//! projection then hands the encoder batches it passes on as they are, and a join builds its
//! output once at that size. An estimate of the row width keeps wide rows from making large
//! batches.

use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use datafusion::common::Statistics;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;

/// Rows handed to the Parquet writer at once. The writer encodes a batch column by column,
/// interning every value in that column's dictionary: with DataFusion's 8 192-row batches (and
/// delta-rs's 1 024-row slices) the dictionaries of all columns take turns in the cache, and
/// encoding costs about half as much again as with batches of this size (measured on the
/// benchmark's bronze table).
pub(super) const ENCODE_BATCH_ROWS: usize = 1 << 17;

/// Bytes of Arrow data gathered into one encoder batch at most, whatever its rows: wide rows
/// must not make a writer hold a large share of a table in memory, and each gathered batch is
/// fresh memory (page faults). 8 MiB keeps the encoding's locality: against 64 MiB it cut the
/// benchmark's CPU by 8 % and its peak memory by a fifth at 1M rows (4 runs each, interleaved).
pub(super) const ENCODE_BATCH_BYTES: usize = 8 << 20;

/// Estimated bytes of one batch of a write plan at most: with the encoder's rows, a batch of
/// narrow rows is far below it; rows wider than about 256 bytes make batches of fewer rows.
/// Measured on the benchmark (interleaved runs against DataFusion's default batch size): -17 %
/// time and CPU at 10M rows, peak memory 970 MB instead of 780 MB.
const EXECUTION_BATCH_BYTES: usize = 32 << 20;

/// Estimated in-memory bytes of one string or binary value when nothing better is known: its
/// offset and a short text (a code, a name).
const VARIABLE_WIDTH_BYTES: usize = 36;

/// `context`, with the batch size the write plan `plan` (of `statistics`, if known) runs with:
/// [`ENCODE_BATCH_ROWS`], fewer for wide rows so a batch stays near [`EXECUTION_BATCH_BYTES`] by
/// estimate, never fewer than the session's own batch size (nor more when the session asks for
/// more).
pub(super) fn write_task_context(
    plan: &dyn ExecutionPlan,
    statistics: Option<&Statistics>,
    context: TaskContext,
) -> TaskContext {
    let configured = context.session_config().batch_size();
    let rows = execution_batch_rows(plan, statistics, configured);
    if rows == configured {
        return context;
    }
    let config = context.session_config().clone().with_batch_size(rows);
    context.with_session_config(config)
}

/// The rows per batch for `plan`; `configured`: the session's batch size.
fn execution_batch_rows(
    plan: &dyn ExecutionPlan,
    statistics: Option<&Statistics>,
    configured: usize,
) -> usize {
    if configured >= ENCODE_BATCH_ROWS {
        return configured;
    }
    let width = estimated_row_bytes(plan, statistics).max(1);
    (EXECUTION_BATCH_BYTES / width).clamp(configured, ENCODE_BATCH_ROWS)
}

/// The in-memory bytes of one of `plan`'s rows, by estimate: the larger of what its statistics
/// say (bytes over rows, when both are known; Delta statistics count compressed bytes, so they
/// say too little) and what its schema says (fixed widths, [`VARIABLE_WIDTH_BYTES`] for the
/// others).
fn estimated_row_bytes(plan: &dyn ExecutionPlan, statistics: Option<&Statistics>) -> usize {
    let by_schema: usize = plan
        .schema()
        .fields()
        .iter()
        .map(|field| value_bytes(field.data_type()))
        .sum();
    let by_statistics = statistics
        .and_then(|stats| {
            let rows = *stats.num_rows.get_value()?;
            let bytes = *stats.total_byte_size.get_value()?;
            (rows > 0).then(|| bytes.div_ceil(rows))
        })
        .unwrap_or(0);
    by_schema.max(by_statistics)
}

/// The estimated bytes of one value of `data_type`.
fn value_bytes(data_type: &DataType) -> usize {
    match data_type {
        DataType::Boolean | DataType::Null => 1,
        DataType::Dictionary(key, _) => value_bytes(key),
        DataType::Struct(fields) => fields.iter().map(|f| value_bytes(f.data_type())).sum(),
        other => other.primitive_width().unwrap_or(VARIABLE_WIDTH_BYTES),
    }
}

/// Batches gathered until they make one encoder batch of [`ENCODE_BATCH_ROWS`] rows or
/// [`ENCODE_BATCH_BYTES`] bytes.
#[derive(Default)]
pub(super) struct Pending {
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
}

impl Pending {
    /// Adds `batch`; returns the gathered batches as one once they are large enough.
    pub(super) fn push(
        &mut self,
        batch: RecordBatch,
        schema: &SchemaRef,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        self.rows += batch.num_rows();
        self.bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        if self.rows >= ENCODE_BATCH_ROWS || self.bytes >= ENCODE_BATCH_BYTES {
            self.finish(schema)
        } else {
            Ok(None)
        }
    }

    /// The gathered batches as one, if any, leaving nothing gathered.
    pub(super) fn finish(&mut self, schema: &SchemaRef) -> Result<Option<RecordBatch>, ArrowError> {
        let batches = std::mem::take(&mut self.batches);
        self.rows = 0;
        self.bytes = 0;
        match batches.len() {
            0 => Ok(None),
            1 => Ok(batches.into_iter().next()),
            _ => concat_batches(schema, &batches).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_plan::{StatisticsArgs, StatisticsContext};

    use super::*;

    /// The batch size a write of `batches` (one partition) runs with, from a session with
    /// DataFusion's defaults.
    fn write_batch_size(schema: &SchemaRef, batches: Vec<RecordBatch>) -> usize {
        let plan = MemorySourceConfig::try_new_exec(&[batches], schema.clone(), None).unwrap();
        let statistics = StatisticsContext::new()
            .compute(plan.as_ref(), &StatisticsArgs::new())
            .unwrap();
        write_task_context(plan.as_ref(), Some(&statistics), TaskContext::default())
            .session_config()
            .batch_size()
    }

    /// `rows` rows of one 2 KiB string, in `schema` (one Utf8 column).
    fn blobs(schema: &SchemaRef, rows: usize) -> RecordBatch {
        let blob = "x".repeat(2 << 10);
        let values = StringArray::from_iter_values(std::iter::repeat_n(blob.as_str(), rows));
        RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap()
    }

    fn columns(count: usize, data_type: DataType) -> SchemaRef {
        Arc::new(Schema::new(
            (0..count)
                .map(|i| Field::new(format!("c{i}"), data_type.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn narrow_rows_are_read_in_batches_the_size_the_encoder_wants() {
        let default = TaskContext::default().session_config().batch_size();
        assert!(
            default < ENCODE_BATCH_ROWS,
            "DataFusion's default: {default}"
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("code", DataType::Utf8, true),
        ]));
        assert_eq!(write_batch_size(&schema, Vec::new()), ENCODE_BATCH_ROWS);
    }

    #[test]
    fn wide_rows_are_read_in_fewer_rows_never_fewer_than_the_sessions() {
        // 100 strings: about 3.6 KB a row by the schema.
        let schema = columns(100, DataType::Utf8);
        let rows = write_batch_size(&schema, Vec::new());
        let default = TaskContext::default().session_config().batch_size();
        assert!(rows > default && rows < ENCODE_BATCH_ROWS, "{rows} rows");
        assert!(rows * 100 * VARIABLE_WIDTH_BYTES <= EXECUTION_BATCH_BYTES);
        // 1 000 strings would make batches smaller than the session's: its size stands.
        assert_eq!(
            write_batch_size(&columns(1000, DataType::Utf8), Vec::new()),
            default
        );
    }

    #[test]
    fn long_values_the_statistics_measure_make_smaller_batches() {
        let schema = columns(1, DataType::Utf8);
        // Rows of one 2 KiB string, 36 bytes by the schema alone.
        let rows = write_batch_size(&schema, vec![blobs(&schema, 64)]);
        assert!(rows < ENCODE_BATCH_ROWS / 8, "{rows} rows of 2 KiB");
        assert!(
            rows * (2 << 10) <= EXECUTION_BATCH_BYTES,
            "{rows} rows of 2 KiB"
        );
    }

    #[test]
    fn a_session_asking_for_larger_batches_keeps_them() {
        let plan =
            MemorySourceConfig::try_new_exec(&[Vec::new()], columns(1, DataType::Int64), None)
                .unwrap();
        let config = TaskContext::default()
            .session_config()
            .clone()
            .with_batch_size(ENCODE_BATCH_ROWS * 2);
        let context = TaskContext::default().with_session_config(config);
        let context = write_task_context(plan.as_ref(), None, context);
        assert_eq!(context.session_config().batch_size(), ENCODE_BATCH_ROWS * 2);
    }

    fn numbers(schema: &SchemaRef, from: i64, rows: usize) -> RecordBatch {
        let values = Int64Array::from_iter_values(from..from + rows as i64);
        RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).expect("one Int64 column")
    }

    #[test]
    fn datafusion_batches_reach_the_encoder_gathered_in_order() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let mut pending = Pending::default();
        let mut out = Vec::new();
        let mut from = 0;
        for _ in 0..40 {
            if let Some(batch) = pending.push(numbers(&schema, from, 8192), &schema).unwrap() {
                out.push(batch);
            }
            from += 8192;
        }
        out.extend(pending.finish(&schema).unwrap());
        let sizes: Vec<usize> = out.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![ENCODE_BATCH_ROWS, ENCODE_BATCH_ROWS, 8 * 8192]);
        let values: Vec<i64> = out
            .iter()
            .flat_map(|b| {
                let column = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                column.values().to_vec()
            })
            .collect();
        assert_eq!(values, (0..40 * 8192).collect::<Vec<i64>>());
        assert!(pending.finish(&schema).unwrap().is_none(), "nothing left");
    }

    #[test]
    fn wide_rows_are_gathered_up_to_the_byte_bound_and_empty_batches_skipped() {
        let schema = Arc::new(Schema::new(vec![Field::new("blob", DataType::Utf8, false)]));
        // 1 000 rows of 2 KiB: about 2 MiB a batch, so the byte bound comes long before the rows.
        let batch = blobs(&schema, 1000);
        let mut pending = Pending::default();
        let empty = batch.slice(0, 0);
        assert!(pending.push(empty, &schema).unwrap().is_none());
        let mut pushed = 0;
        let gathered = loop {
            pushed += 1;
            if let Some(gathered) = pending.push(batch.clone(), &schema).unwrap() {
                break gathered;
            }
        };
        assert_eq!(gathered.num_rows(), pushed * 1000);
        // The row bound alone would have gathered 132 of them.
        assert!(
            (2..=4).contains(&pushed),
            "{pushed} batches of 2 MiB gathered"
        );
        assert_eq!(gathered.column(0).len(), pushed * 1000);
    }
}
