//! # Lakehouse benchmark (superlake-bench-v1)
//!
//! The workload of `WORKLOAD.md`, run by the product itself: the tables are `#[derive(Table)]`
//! structs, the six stages are `#[pipeline]`s executed by the [`Orchestrator`] on Delta tables,
//! and the report is the JSON line every peer prints, with the same check values.
//!
//! - [`generator`]: the counter-based splitmix64 generator and the landing zone it writes.
//! - [`bronze`], [`silver`], [`gold`]: tables and pipelines (a registry of their own, so the
//!   reference lakehouse's stays clean).
//! - [`run`]: the stages as orchestrator runs, timed; [`checks`]: the untimed checks;
//!   [`report`]: the JSON line.
//!
//! [`Orchestrator`]: lakehouse_runtime::Orchestrator

pub mod bronze;
pub mod checks;
pub mod generator;
pub mod gold;
pub mod report;
pub mod run;
pub mod silver;

/// The setting naming the landing directory the source pipelines read.
pub const LANDING: &str = "bench.landing";
/// The setting naming the sales batch (1 or 2) a bronze or silver run processes.
pub const BATCH: &str = "bench.batch";

/// What can go wrong in a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] lakehouse_runtime::Error),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A Parquet file could not be read or written.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// DataFusion failed.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Anything else, explained.
    #[error("{0}")]
    Message(String),
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// An error with a message.
    pub fn msg(message: impl Into<String>) -> Error {
        Error::Message(message.into())
    }

    /// The error, said to be about `path` (`.map_err(Error::at(path))`).
    pub fn at<E: Into<Error>>(path: &std::path::Path) -> impl FnOnce(E) -> Error + '_ {
        move |error| Error::File {
            path: path.to_path_buf(),
            source: Box::new(error.into()),
        }
    }
}

/// The benchmark's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The batch (1 or 2) a pipeline processes, from the [`BATCH`] setting.
pub(crate) fn batch(cx: &lakehouse_runtime::Ctx) -> lakehouse_runtime::Result<i32> {
    match cx.settings().parse_or(BATCH, 1)? {
        b @ (1 | 2) => Ok(b),
        other => Err(lakehouse_runtime::Error::msg(format!(
            "setting `{BATCH}` = {other}: the workload has batches 1 and 2"
        ))),
    }
}

/// The landing file `name.parquet` as a DataFrame.
pub(crate) async fn read_landing(
    cx: &lakehouse_runtime::Ctx,
    name: &str,
) -> lakehouse_runtime::Result<datafusion::dataframe::DataFrame> {
    let dir = cx.settings().get(LANDING).ok_or_else(|| {
        lakehouse_runtime::Error::msg(format!(
            "setting `{LANDING}` (the landing directory) is required"
        ))
    })?;
    let path = std::path::Path::new(dir).join(format!("{name}.parquet"));
    let path = path.to_str().ok_or_else(|| {
        lakehouse_runtime::Error::msg(format!("landing path {} is not UTF-8", path.display()))
    })?;
    Ok(cx
        .session()
        .read_parquet(path, datafusion::prelude::ParquetReadOptions::default())
        .await?)
}
