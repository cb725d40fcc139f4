//! `cargo bench -p lakehouse-bench`: the workload at N = 1 000 000 (or `LAKEHOUSE_BENCH_ROWS`), in
//! a work directory under the target directory (or `LAKEHOUSE_BENCH_OUT`). Prints the JSON line.

use std::time::Instant;

use lakehouse_bench::run::{Options, run};

fn main() {
    let started = Instant::now();
    lakehouse_runtime::allocator::tune();
    // `cargo bench` passes `--bench`; there are no other options.
    let rows = std::env::var("LAKEHOUSE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let out = std::env::var_os("LAKEHOUSE_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("lakehouse-bench"));
    let options = Options {
        rows,
        seed: lakehouse_bench::generator::DEFAULT_SEED,
        out,
        keep: false,
        on_stage: Some(print_stage),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(&options, started)) {
        Ok(report) => {
            println!("{}", report.to_json());
            if let Some(expected) = lakehouse_bench::checks::reference(rows)
                && expected != report.checks.comparable()
            {
                eprintln!("CHECKS DIFFER from WORKLOAD.md's reference values");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// A stage's figures on stderr.
fn print_stage(line: &str) {
    eprintln!("{line}");
}
