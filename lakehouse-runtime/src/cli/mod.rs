//! The `orchestrate` command line. A binary of a pipelines crate is three lines:
//!
//! ```ignore
//! use my_pipelines as _; // links the pipelines so they register themselves
//!
//! fn main() -> std::process::ExitCode {
//!     lakehouse_runtime::cli::main()
//! }
//! ```

mod args;
mod commands;
mod progress;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

pub use args::Cli;
use args::LogFormat;

/// Parses the command line, runs the command, and returns the exit status: 0 on success, 1 when a
/// pipeline or the command failed, 2 for invalid arguments.
pub fn main() -> ExitCode {
    crate::allocator::tune();
    let cli = Cli::parse();
    init_logging(cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,datafusion=warn,deltalake=warn,deltalake_core=warn,deltalake_core::operations::merge=error,delta_kernel=warn,buoyant_kernel=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.compact().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
