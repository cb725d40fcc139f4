//! Runs the reference lakehouse: `cargo run --bin orchestrate -- --help`.

// Links the pipelines crate: its pipelines register themselves.
use lakehouse_pipelines as _;

fn main() -> std::process::ExitCode {
    lakehouse_runtime::cli::main()
}
