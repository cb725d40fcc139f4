//! A streamed check that a merge source has unique keys, so a merge can skip de-duplicating it
//! (a sort of the whole source) and, when the table is empty, skip the MERGE altogether.
//!
//! The guarded DataFrame yields the source's rows unchanged and fails, before anything is
//! committed, as soon as two rows share a key hash. The caller then falls back to the general
//! path (de-duplicate, then MERGE), so the result never depends on the guard: a hash collision
//! between distinct keys only costs the fallback. The key hashes are counted in the session's
//! memory pool; a set that would outgrow it gives up the same way (the general path's sort
//! spills to disk).

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
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, SendableRecordBatchStream, StatisticsArgs,
    StatisticsContext,
};
use futures::StreamExt as _;

use crate::error::Result;
use crate::table::TableDef;

/// The text of the error a guarded source fails with on a repeated key.
const DUPLICATE: &str = "lakehouse: the merge source repeats a key";

/// The text of the error a guarded source fails with when its key set would outgrow the memory
/// pool.
const GAVE_UP: &str = "lakehouse: the merge source's keys outgrow the memory limit of their check";

/// Whether `error` is the guard's (a repeated key hash, or a key set too large to hold),
/// whatever wrapped it: the caller takes the general path.
pub(crate) fn is_duplicate(error: &impl std::fmt::Display) -> bool {
    let text = error.to_string();
    text.contains(DUPLICATE) || text.contains(GAVE_UP)
}

/// Logs why the guard sent a write of `table` down the general path, given its error.
pub(crate) fn log_fallback(table: &TableDef, error: &impl std::fmt::Display) {
    if error.to_string().contains(GAVE_UP) {
        tracing::info!(table = %table.qualified_name(), "the merge source's keys are too many to check in memory: de-duplicating them by a sort, which spills");
    } else {
        tracing::info!(table = %table.qualified_name(), "the output repeats keys: one row per key is written (the newest by `run_at` when the table has it); `quality = warn` counts them");
    }
}

/// Bytes a hash takes in a set: 8, its control byte, and the free share of the table (hashbrown
/// keeps at least an eighth of its buckets free).
const BYTES_PER_HASH: usize = 10;

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

type HashSetOfHashes = HashSet<u64, BuildHasherDefault<Identity>>;

/// Bits of a hash that choose its shard in [`Seen`].
const SHARD_BITS: u32 = 6;

/// At most this many hashes are reserved up front from the plan's row estimate (16 M hashes,
/// about 300 MB of sets); beyond it the sets grow as they fill.
const MAX_RESERVED: usize = 1 << 24;

/// The key hashes seen so far by every partition, split into shards by bits of the hash, each
/// behind its own lock. Partitions insert concurrently instead of taking turns on one lock, and
/// a batch inserts its hashes shard by shard: each run of inserts touches one small set that
/// stays in the cache, where one set of every hash missed the cache on almost every insert.
#[derive(Debug)]
struct Seen {
    shards: Vec<Mutex<HashSetOfHashes>>,
    /// The sets' memory in the session's pool: their first capacity, then what they grow by.
    reservation: Mutex<MemoryReservation>,
}

impl Seen {
    /// Empty shards, with room for `expected` hashes in all (by estimate; at most
    /// [`MAX_RESERVED`], and only as much as `pool` grants: beyond it they start empty and
    /// grow, counted, as they fill).
    fn with_capacity(expected: usize, pool: &Arc<dyn MemoryPool>) -> Seen {
        let reservation = MemoryConsumer::new("lakehouse merge key check").register(pool);
        let mut expected = expected.min(MAX_RESERVED);
        if reservation
            .try_grow(expected.saturating_mul(BYTES_PER_HASH))
            .is_err()
        {
            expected = 0;
        }
        let per_shard = expected >> SHARD_BITS;
        let seen = Seen {
            shards: (0..1 << SHARD_BITS)
                .map(|_| {
                    Mutex::new(HashSetOfHashes::with_capacity_and_hasher(
                        per_shard,
                        Default::default(),
                    ))
                })
                .collect(),
            reservation: Mutex::new(reservation),
        };
        // What the sets really hold (hashbrown rounds capacities up), counted from the start.
        let held = seen.held_bytes();
        if let Ok(reservation) = seen.reservation.lock() {
            let counted = reservation.size();
            if held > counted {
                // Refused, the growth is counted as the sets fill instead (and may give up then).
                let _ = reservation.try_grow(held - counted);
            }
        }
        seen
    }

    /// The bytes the sets hold now.
    fn held_bytes(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|shard| shard.lock().ok().map(|set| set.capacity()))
            .sum::<usize>()
            .saturating_mul(BYTES_PER_HASH)
    }

    /// Counts `grown` more bytes; fails with [`GAVE_UP`] when the pool has no room.
    fn account(&self, grown: usize) -> Result<(), DataFusionError> {
        if grown == 0 {
            return Ok(());
        }
        let reservation = self
            .reservation
            .lock()
            .map_err(|_| DataFusionError::Execution("the key set is poisoned".into()))?;
        let grew = reservation.try_grow(grown);
        drop(reservation);
        grew.map_err(|_| {
            self.release();
            DataFusionError::Execution(GAVE_UP.into())
        })
    }

    /// The shard of `hash`: from bits the sets do not use themselves (hashbrown takes a bucket
    /// from the low bits and a tag from the top seven).
    fn shard_of(hash: u64) -> usize {
        ((hash >> 32) as usize) & ((1 << SHARD_BITS) - 1)
    }

    /// Inserts `hashes`, grouped by shard into `scratch`; fails on the first hash already seen.
    /// Returns the bytes the sets grew by.
    fn insert_all(&self, hashes: &[u64], scratch: &mut Vec<u64>) -> Result<usize, DataFusionError> {
        let shards = self.shards.len();
        let mut grown = 0usize;
        let mut starts = vec![0usize; shards + 1];
        for hash in hashes {
            starts[Self::shard_of(*hash) + 1] += 1;
        }
        for shard in 0..shards {
            starts[shard + 1] += starts[shard];
        }
        let mut next = starts.clone();
        scratch.clear();
        scratch.resize(hashes.len(), 0);
        for hash in hashes {
            let slot = &mut next[Self::shard_of(*hash)];
            scratch[*slot] = *hash;
            *slot += 1;
        }
        for (shard, set) in self.shards.iter().enumerate() {
            let grouped = &scratch[starts[shard]..starts[shard + 1]];
            if grouped.is_empty() {
                continue;
            }
            let mut set = set
                .lock()
                .map_err(|_| DataFusionError::Execution("the key set is poisoned".into()))?;
            let before = set.capacity();
            set.reserve(grouped.len());
            grown += set.capacity().saturating_sub(before);
            for hash in grouped {
                if !set.insert(*hash) {
                    drop(set);
                    self.release();
                    return Err(DataFusionError::Execution(DUPLICATE.into()));
                }
            }
        }
        Ok(grown.saturating_mul(BYTES_PER_HASH))
    }

    /// Frees the sets and their share of the pool: the check is over (a repeat found, or no
    /// room), and the fallback that follows (a sort) needs the memory now, not whenever the
    /// cancelled plan is dropped.
    fn release(&self) {
        for shard in &self.shards {
            if let Ok(mut set) = shard.lock() {
                *set = HashSetOfHashes::default();
            }
        }
        if let Ok(reservation) = self.reservation.lock() {
            reservation.free();
        }
    }
}

/// One partition of the source, checked as it streams. Executing it twice is an error (the
/// shared set would see every key again), which merges in streaming mode never do.
#[derive(Debug)]
struct Guarded {
    plan: Arc<dyn ExecutionPlan>,
    partition: usize,
    key: Vec<usize>,
    schema: SchemaRef,
    seen: Arc<Seen>,
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
        let mut scratch: Vec<u64> = Vec::new();
        let checked = stream.map(move |batch| {
            let batch = batch?;
            check(&batch, &key, &state, &seen, &mut hashes, &mut scratch)?;
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
    scratch: &mut Vec<u64>,
) -> Result<(), DataFusionError> {
    let columns: Vec<ArrayRef> = key.iter().map(|i| batch.column(*i).clone()).collect();
    hashes.clear();
    hashes.resize(batch.num_rows(), 0);
    create_hashes(&columns, state, hashes)?;
    let grown = seen.insert_all(hashes, scratch)?;
    seen.account(grown)
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
    // Room for the rows the plan expects, so the sets do not grow (and rehash) as they fill.
    let expected = StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .ok()
        .and_then(|stats| stats.num_rows.get_value().copied())
        .unwrap_or(0);
    let pool = session.runtime_env().memory_pool.clone();
    let seen = Arc::new(Seen::with_capacity(expected, &pool));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool without a limit.
    fn unbounded() -> Arc<dyn MemoryPool> {
        Arc::new(datafusion::execution::memory_pool::UnboundedMemoryPool::default())
    }

    /// Distinct hashes spread over every shard (and over the bits the sets use).
    fn distinct(count: u64, salt: u64) -> Vec<u64> {
        (0..count)
            .map(|i| (i ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect()
    }

    #[test]
    fn distinct_hashes_pass_in_any_number_of_batches() {
        let seen = Seen::with_capacity(10_000, &unbounded());
        let mut scratch = Vec::new();
        let hashes = distinct(10_000, 0);
        for chunk in hashes.chunks(3_000) {
            seen.insert_all(chunk, &mut scratch).unwrap();
        }
        let stored: usize = seen.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert_eq!(stored, 10_000);
        let used = seen
            .shards
            .iter()
            .filter(|s| !s.lock().unwrap().is_empty())
            .count();
        assert_eq!(used, 1 << SHARD_BITS, "every shard holds some hashes");
    }

    #[test]
    fn key_sets_count_in_the_memory_pool_and_give_up_beyond_it() {
        use datafusion::execution::memory_pool::GreedyMemoryPool;
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let seen = Seen::with_capacity(1_000, &pool);
        assert_eq!(
            pool.reserved(),
            seen.held_bytes(),
            "the first capacity is counted"
        );
        let mut scratch = Vec::new();
        let grown = seen.insert_all(&distinct(1_000, 0), &mut scratch).unwrap();
        seen.account(grown).unwrap();
        let held = pool.reserved();
        assert_eq!(held, seen.held_bytes(), "the sets' capacity is counted");
        assert!(held >= 1_000 * 8, "{held}");
        // 200 000 more hashes need about 2 MB: past the pool's 1 MiB, the guard gives up.
        let mut gave_up = None;
        for chunk in distinct(200_000, 1 << 41).chunks(8_192) {
            let grown = seen.insert_all(chunk, &mut scratch).unwrap();
            if let Err(error) = seen.account(grown) {
                gave_up = Some(error);
                break;
            }
        }
        let error = gave_up.expect("the pool is exhausted");
        assert!(is_duplicate(&error), "the caller falls back: {error}");
        assert!(error.to_string().contains(GAVE_UP), "{error}");
        // Freed as it gave up: the fallback's sort needs the memory now.
        assert_eq!(pool.reserved(), 0, "freed as it gave up");
        assert_eq!(seen.held_bytes(), 0);
        drop(seen);
        assert_eq!(pool.reserved(), 0, "released with the sets");
    }

    #[test]
    fn a_hash_seen_before_fails_within_a_batch_across_batches_and_across_partitions() {
        let mut scratch = Vec::new();
        let mut repeated = distinct(100, 1);
        repeated.push(repeated[42]);
        let error = Seen::with_capacity(0, &unbounded())
            .insert_all(&repeated, &mut scratch)
            .unwrap_err();
        assert!(is_duplicate(&error), "{error}");

        let seen = Seen::with_capacity(0, &unbounded());
        seen.insert_all(&distinct(100, 2), &mut scratch).unwrap();
        let again = [distinct(100, 2)[99]];
        assert!(is_duplicate(
            &seen.insert_all(&again, &mut scratch).unwrap_err()
        ));
        // The check is over: its sets are freed at once.
        assert_eq!(seen.held_bytes(), 0);

        // Two partitions on two threads, the second repeating one of the first's keys.
        let seen = Arc::new(Seen::with_capacity(0, &unbounded()));
        let first = distinct(5_000, 3);
        let mut second = distinct(5_000, 1 << 40);
        second[4_999] = first[7];
        let results: Vec<_> = [first, second]
            .into_iter()
            .map(|hashes| {
                let seen = seen.clone();
                std::thread::spawn(move || seen.insert_all(&hashes, &mut Vec::new()))
            })
            .map(|thread| thread.join().unwrap())
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_err()).count(),
            1,
            "{results:?}"
        );
    }
}
