//! Integration tests of the benchmark: the generator's fingerprint, and the whole workload at
//! small N against check values computed independently here.

mod end_to_end;
mod fingerprint;
