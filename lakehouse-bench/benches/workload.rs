//! `cargo bench -p lakehouse-bench`: the workload at N = 1 000 000 (or `LAKEHOUSE_BENCH_ROWS`), in
//! `lakehouse-bench` under the system's temporary directory (or `LAKEHOUSE_BENCH_OUT`). Prints the
//! JSON line. A release build, not the `optimized` one the README's table measures (10–15 %
//! slower by the README's measure).

use std::time::Instant;

use lakehouse_bench::run::{Options, run};

fn main() {
    let started = Instant::now();
    lakehouse_runtime::allocator::tune();
    // `cargo bench` passes `--bench`; there are no other options.
    let rows = match std::env::var("LAKEHOUSE_BENCH_ROWS") {
        Err(_) => 1_000_000,
        Ok(text) => match text.trim().parse() {
            Ok(rows) => rows,
            Err(_) => {
                eprintln!("error: LAKEHOUSE_BENCH_ROWS = {text:?} is not a whole number of rows");
                std::process::exit(2);
            }
        },
    };
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
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
