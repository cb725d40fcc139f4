//! The `orchestrate` command line. A binary of a pipelines crate is three lines:
//!
//! ```ignore
//! use my_pipelines as _; // links the pipelines so they register themselves
//!
//! fn main() -> std::process::ExitCode {
//!     lakehouse_runtime::cli::main()
//! }
//! ```

/// `println!` that never panics: a reader gone (`orchestrate runs | head -1`) only loses what is
/// left of the output, and the command finishes as it would have (a run keeps its records).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::print_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `say!` for what is not a run's report: on stderr when the reports are JSON (`--format
/// json`), so that stdout holds only them.
macro_rules! tell {
    ($($arg:tt)*) => {
        if $crate::cli::json_reports() {
            $crate::cli::notice(format_args!($($arg)*))
        } else {
            $crate::cli::print_stdout(format_args!("{}\n", format_args!($($arg)*)))
        }
    };
}

mod args;
mod check;
mod commands;
mod inspect;
mod json;
mod listing;
mod progress;
mod query;
mod run;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

pub use args::Cli;
use args::LogFormat;

/// Parses the command line, runs the command, and returns the exit status: 0 on success, 1 when a
/// pipeline or the command failed, 2 for invalid arguments. (An aborted run's process exits with
/// 130 at a third interrupt, or when its abort takes too long.)
pub fn main() -> ExitCode {
    crate::allocator::tune();
    let mut cli = Cli::parse();
    if cli.command.is_none() {
        // `orchestrate` alone is `orchestrate run`: clap's defaults and environment variables
        // (`LAKEHOUSE_NOTIFY_URL`, the retry delay), which `RunArgs::default()` would not have.
        let run = args::RunArgs::parsed_defaults().unwrap_or_else(|error| error.exit());
        cli.command = Some(args::Command::Run(run));
    }
    init_logging(cli.global.log_format);
    // A worker more than the pipelines that may run at once: pipeline code that blocks (a
    // long computation, a synchronous client) holds its worker, and with every worker held no
    // timer fires (time limits, retry waits) and no signal is heard (Ctrl-C).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let concurrency = cli.command.as_ref().map_or(1, args::Command::concurrency);
    let workers = cores.max(concurrency).min(MAX_WORKERS) + 1;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            print_stderr(format_args!(
                "error: cannot start the async runtime: {error}\n"
            ));
            return ExitCode::FAILURE;
        }
    };
    let mut code = match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            failure(format_args!("{error}"));
            ExitCode::FAILURE
        }
    };
    if let Some(why) = progress::stdout_failure() {
        failure(format_args!(
            "the output could not all be written to stdout: {why}"
        ));
        code = ExitCode::FAILURE;
    }
    // A pipeline attempt left running (it blocked past its time limit) must not keep the
    // process alive: what is still under way gets a few seconds to end (a file being written),
    // then the process exits.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    code
}

/// The most async worker threads the CLI starts (past it, a pipeline blocking its worker may
/// again hold back timers).
const MAX_WORKERS: usize = 256;

/// Whether run reports are printed as JSON lines (`--format json` of `run` and `resume`).
static JSON_REPORTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints run reports as JSON lines from now on (or not).
pub(crate) fn set_json_reports(json: bool) {
    JSON_REPORTS.store(json, std::sync::atomic::Ordering::Relaxed);
}

/// Whether run reports are printed as JSON lines.
pub(crate) fn json_reports() -> bool {
    JSON_REPORTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes to stdout, ignoring errors (see `say!`).
pub(crate) fn print_stdout(text: std::fmt::Arguments<'_>) {
    progress::write_stdout(text);
}

/// Writes to stderr, ignoring errors: `eprintln!` panics when stderr is a closed pipe
/// (`orchestrate run 2>&1 | head -1`), which would turn exit code 1 into 101.
pub(crate) fn print_stderr(text: std::fmt::Arguments<'_>) {
    progress::write_stderr(text);
}

/// Whether logs are JSON lines (`--log-format json`): what the CLI tells on stderr then goes
/// through the log too, so that stderr holds only JSON.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A line for stderr that is not a log event (a plan, a progress note): a log event when logs
/// are JSON.
pub(crate) fn notice(text: std::fmt::Arguments<'_>) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::info!(target: "orchestrate", "{text}");
    } else {
        print_stderr(format_args!("{text}\n"));
    }
}

/// An error line for stderr (`error: ...`): an error event when logs are JSON.
pub(crate) fn failure(text: std::fmt::Arguments<'_>) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(target: "orchestrate", "{text}");
    } else {
        print_stderr(format_args!("error: {text}\n"));
    }
}

/// Whether `error` is only the reader of our output having gone away.
pub(crate) fn is_broken_pipe(error: &arrow::error::ArrowError) -> bool {
    matches!(error, arrow::error::ArrowError::IoError(_, e) if e.kind() == std::io::ErrorKind::BrokenPipe)
        || error.to_string().contains("Broken pipe")
}

fn init_logging(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,datafusion=warn,deltalake=warn,deltalake_core=warn,deltalake_core::operations::merge=error,delta_kernel=warn,buoyant_kernel=warn")
    });
    // The CLI's own lines (its errors, a run's notes), which JSON logs carry as events: printed
    // whatever RUST_LOG says, as they are in text.
    if let Ok(directive) = "orchestrate=info".parse() {
        filter = filter.add_directive(directive);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Above the spinners, when they show.
        .with_writer(|| progress::LogWriter)
        // Its fallback on a failed write is `eprintln!`, which panics when stderr is a closed
        // pipe: inside a pipeline's task that would fail a pipeline whose rows are committed.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.compact().try_init(),
        LogFormat::Json => {
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            builder.json().try_init()
        }
    };
}
