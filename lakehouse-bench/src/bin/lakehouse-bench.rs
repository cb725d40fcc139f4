//! `lakehouse-bench --rows N --out DIR [--seed 42]`: runs workload superlake-bench-v1 with the
//! Lakehouse runtime and prints its JSON report line (what the peers' `run_peers.py` reads).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use lakehouse_bench::generator::{DEFAULT_SEED, fingerprint, landing_dir, write_landing};
use lakehouse_bench::run::{Options, run};

/// Runs the superlake-bench-v1 workload on Lakehouse and prints one JSON line.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// N: rows of the first sales batch (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rows: u64,
    /// Work directory: landing zone (reused when complete) and the warehouse.
    #[arg(long)]
    out: PathBuf,
    /// The generator's seed.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Keep the warehouse (`DIR/lakehouse_bench`) after the run.
    #[arg(long)]
    keep: bool,
    /// Print each stage's time, CPU and memory on stderr.
    #[arg(long, short)]
    verbose: bool,
    /// Only (re)generate the landing zone and print its fingerprint, as `gen_landing.py` does.
    #[arg(long)]
    generate: bool,
    /// Print the fingerprint of the existing landing zone.
    #[arg(long)]
    fingerprint: bool,
    /// Print the physical plan of this pipeline over the kept warehouse (after a `--keep` run).
    #[arg(long, value_name = "PIPELINE")]
    explain: Option<String>,
}

fn main() -> ExitCode {
    let started = Instant::now();
    lakehouse_runtime::allocator::tune();
    let args = Args::parse();
    // `RUST_LOG=info` (or finer) shows the runtime's logs on stderr, with time stamps.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let landing = landing_dir(&args.out, args.rows, args.seed);
    if args.generate || args.fingerprint {
        let result = (|| {
            let mut gen_s = 0.0;
            if args.generate {
                let t = Instant::now();
                write_landing(&landing, args.rows, args.seed)?;
                gen_s = lakehouse_bench::report::round(t.elapsed().as_secs_f64(), 4);
            }
            let fp = fingerprint(&landing)?;
            println!(
                "{}",
                serde_json::json!({"landing": landing, "gen_s": gen_s, "fingerprint": fp})
            );
            Ok::<_, lakehouse_bench::Error>(())
        })();
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        rows: args.rows,
        seed: args.seed,
        out: args.out.clone(),
        keep: args.keep,
        on_stage: args.verbose.then_some(print_stage as fn(&str)),
    };
    if let Some(pipeline) = &args.explain {
        return match runtime.block_on(lakehouse_bench::run::explain(&options, pipeline)) {
            Ok(plan) => {
                println!("{plan}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(&options, started)) {
        Ok(report) => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `-v`: a stage's figures on stderr.
fn print_stage(line: &str) {
    eprintln!("{line}");
}
