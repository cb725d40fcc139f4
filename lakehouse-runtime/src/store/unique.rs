//! A streamed check that a merge source has unique keys, so a merge can skip de-duplicating it
//! (a sort of the whole source) and, when the table is empty, skip the MERGE altogether.
//!
//! The guarded DataFrame yields the source's rows unchanged and fails, before anything is
//! committed, as soon as two rows share a key hash. The caller then falls back to the general
//! path (de-duplicate, then MERGE), so the result never depends on the guard: a hash collision
//! between distinct keys only costs the fallback.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::hash_utils::{QualityRandomState, create_hashes};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt as _;

use crate::error::Result;
use crate::table::TableDef;

/// The text of the error a guarded source fails with on a repeated key.
const DUPLICATE: &str = "lakehouse: the merge source repeats a key";

/// Whether `error` is the guard's (a repeated key hash), whatever wrapped it.
pub(crate) fn is_duplicate(error: &impl std::fmt::Display) -> bool {
    error.to_string().contains(DUPLICATE)
}

/// The hashes are already uniformly distributed: the set uses them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type Seen = Arc<Mutex<HashSet<u64, BuildHasherDefault<Identity>>>>;

/// One partition of the source, checked as it streams. Executing it twice is an error (the
/// shared set would see every key again), which merges in streaming mode never do.
#[derive(Debug)]
struct Guarded {
    plan: Arc<dyn ExecutionPlan>,
    partition: usize,
    key: Vec<usize>,
    schema: SchemaRef,
    seen: Seen,
}

impl PartitionStream for Guarded {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let stream = match self.plan.execute(self.partition, ctx) {
            Ok(stream) => stream,
            Err(error) => {
                return Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    futures::stream::once(async move { Err(error) }),
                ));
            }
        };
        let key = self.key.clone();
        let seen = self.seen.clone();
        let state = QualityRandomState::with_seed(0x1a6e_5e00);
        let mut hashes: Vec<u64> = Vec::new();
        let checked = stream.map(move |batch| {
            let batch = batch?;
            check(&batch, &key, &state, &seen, &mut hashes)?;
            Ok(batch)
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, checked))
    }
}

fn check(
    batch: &RecordBatch,
    key: &[usize],
    state: &QualityRandomState,
    seen: &Seen,
    hashes: &mut Vec<u64>,
) -> Result<(), DataFusionError> {
    let columns: Vec<ArrayRef> = key.iter().map(|i| batch.column(*i).clone()).collect();
    hashes.clear();
    hashes.resize(batch.num_rows(), 0);
    create_hashes(&columns, state, hashes)?;
    let mut seen = seen
        .lock()
        .map_err(|_| DataFusionError::Execution("the key set is poisoned".into()))?;
    seen.reserve(hashes.len());
    for hash in hashes.iter() {
        if !seen.insert(*hash) {
            return Err(DataFusionError::Execution(DUPLICATE.into()));
        }
    }
    Ok(())
}

/// `df` (a merge source with `table`'s key columns), failing with a repeated-key error
/// ([`is_duplicate`]) as it streams if two rows may share a key. It must be read once.
pub(crate) async fn guard_unique(
    session: &SessionContext,
    df: DataFrame,
    table: &TableDef,
) -> Result<DataFrame> {
    let plan = df.create_physical_plan().await?;
    let schema: SchemaRef = plan.schema();
    let key = table
        .key
        .iter()
        .map(|k| schema.index_of(k))
        .collect::<Result<Vec<usize>, _>>()?;
    let seen: Seen = Arc::default();
    let partitions: Vec<Arc<dyn PartitionStream>> =
        (0..plan.output_partitioning().partition_count())
            .map(|partition| {
                Arc::new(Guarded {
                    plan: plan.clone(),
                    partition,
                    key: key.clone(),
                    schema: schema.clone(),
                    seen: seen.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
    let table = StreamingTable::try_new(schema, partitions)?;
    Ok(session.read_table(Arc::new(table))?)
}
