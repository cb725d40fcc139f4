//! The runtime's error type.

use datafusion::error::DataFusionError;

use crate::graph::GraphError;

/// Everything that can go wrong in the runtime. Messages name the table, column, pipeline, file
/// or URL concerned and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A DataFusion plan or execution error.
    #[error("{}", explained(&.0.to_string()))]
    DataFusion(#[from] DataFusionError),
    /// An Arrow error.
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A Delta Lake error on a table.
    #[error("Delta table `{table}`: {}", explained(&source.to_string()))]
    Delta {
        /// `schema.table`.
        table: String,
        /// The cause.
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// Another writer committed to a Delta table while a write ran, in a way that conflicts
    /// with it: nothing was written.
    #[error(
        "Delta table `{table}`: another writer committed to it while this write ran \
         ({source}); nothing was written: run it again (a pipeline's `retries` do). Another \
         orchestrator, or an engine's OPTIMIZE, DELETE or MERGE, on the same table?"
    )]
    CommitConflict {
        /// `schema.table`.
        table: String,
        /// The conflict delta-rs found.
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// The pipeline graph is invalid.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A value's error in a scan of several landing files, with the file found to hold it
    /// (each read alone).
    #[error("{source}; the value is in `{file}`")]
    InFile {
        /// The file.
        file: String,
        /// The scan's error.
        source: Box<Error>,
    },
    /// A frame does not have the columns its table declares.
    #[error("table `{table}`: {message}")]
    Schema {
        /// `schema.table`.
        table: String,
        /// What differs.
        message: String,
    },
    /// A schema, table or path name that could escape the warehouse or is not a valid identifier.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// What the name is for.
        what: &'static str,
        /// The name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A pipeline's input was missing (a bug in the caller of a run shim).
    #[error("input #{index} of the pipeline was not provided")]
    MissingInput {
        /// Parameter position among the inputs.
        index: usize,
    },
    /// A file-system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request failed for good: a failure that is not retried (a 4xx other than 408
    /// and 429, a body over the size allowed, a redirect refused), or every retry was used
    /// (timeouts, connection errors, 5xx, 408, 429). The message carries the status, the API's
    /// own error code and message, and what to do.
    #[error("GET {url} failed after {attempts} attempt(s): {message}")]
    Http {
        /// The URL requested.
        url: String,
        /// The last HTTP status received, if any (none for a timeout or a connection error).
        status: Option<u16>,
        /// How many requests were sent.
        attempts: u32,
        /// What went wrong, with the API's `error_code` and message when it sent them, and the fix.
        message: String,
        /// Whether the failure was transient (its retries ran out): a later attempt, such as
        /// the pipeline's own retry, may succeed.
        transient: bool,
    },
    /// Data from a source could not be used: a malformed page (truncated or invalid JSON), an
    /// envelope without its expected fields, a `total_count` that does not match the records
    /// received, or a snapshot file that is missing.
    #[error("{location}: {message}")]
    Source {
        /// The URL or file concerned.
        location: String,
        /// What is wrong and what to do.
        message: String,
        /// Whether another attempt may find it otherwise (a live service's answer may change;
        /// a snapshot file does not).
        transient: bool,
    },
    /// An error raised by pipeline code.
    #[error("{0}")]
    Message(String),
    /// Blocking data-quality checks failed: nothing was written, and the attempt is not
    /// retried (the same inputs would fail the same way).
    #[error("{0}")]
    Quality(String),
    /// A read or write refused for a reason another attempt would meet again (another run
    /// holds this run's sequence in the table, an SCD2 history already past the run's time, a
    /// rebuild of an append-only table, `Changes<T>` of a table without its change data feed):
    /// nothing was written, and the attempt is not retried. Also an attempt left running past
    /// its time limit (it blocks without awaiting), which is not retried beside itself; what it
    /// writes then is found by a later retry or `resume` as this run's. Also a pipeline that
    /// panicked: a bug in its code.
    #[error("{0}")]
    Refused(String),
    /// An error from another library, raised by pipeline code.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// The prefixes delta-rs and DataFusion put before an error they pass on ("Generic DeltaTable
/// error: Execution error: column ..."): they say nothing to a reader, and delta-rs's can
/// mislead (a failed write of a data file is "Failed to read delta log object").
const WRAPPERS: &[&str] = &[
    "Generic DeltaTable error: ",
    "Failed to convert into Arrow schema: ",
    "Failed to read delta log object: ",
    "Failed to parse parquet: ",
    "Execution error: ",
    "External error: ",
    "Arrow error: ",
    "Parquet error: ",
    "Object Store error: ",
];

/// What to do about the causes an engine's error names without saying so.
const HINTS: &[(&str, &str)] = &[
    (
        "Permission denied",
        "this process may not use that path: check its owner and permissions (for the \
         warehouse, or pass another --warehouse)",
    ),
    (
        "No space left on device",
        "the disk holding the warehouse is full",
    ),
    (
        "Resources exhausted",
        "raise the memory limit (--memory-limit, LAKEHOUSE_MEMORY_LIMIT), or read less at once \
         (`Changes<T>` reads only the new rows)",
    ),
    (
        "403 Forbidden",
        "the object store refused the credentials: check the AWS_*, AZURE_* or \
         GOOGLE_APPLICATION_CREDENTIALS environment variables",
    ),
    (
        "InvalidAccessKeyId",
        "the object store refused the credentials: check the AWS_* environment variables",
    ),
    (
        "ExpiredToken",
        "the object store's credentials expired: renew them",
    ),
];

/// `text` without its [`WRAPPERS`], with the first of the [`HINTS`] it calls for.
fn explained(text: &str) -> String {
    let text = without_wrappers(without_backtrace(text));
    // (A message that gives its way out already needs no other.)
    match HINTS
        .iter()
        .find(|(cause, _)| text.contains(cause) && !text.contains("--memory-limit"))
    {
        Some((_, hint)) => format!("{text} ({hint})"),
        None => text,
    }
}

/// `text` without the backtrace the Delta kernel appends to its errors' text when
/// `RUST_BACKTRACE` is set (seventy lines of frames in a run's report and ledger row).
fn without_backtrace(text: &str) -> &str {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if at > 0 && line.trim_start().starts_with("0: ") {
            return text[..at].trim_end();
        }
        at += line.len();
    }
    text
}

/// `text` without the [`WRAPPERS`] it starts with.
fn without_wrappers(text: &str) -> String {
    let mut text = text;
    while let Some(rest) = WRAPPERS.iter().find_map(|w| text.strip_prefix(w)) {
        text = rest;
    }
    text.to_owned()
}

/// Whether `error` would recur on the same plan and data: a plan, schema or SQL error, or a
/// value that does not convert (a cast, a parse, an overflow of a decimal's precision).
pub(crate) fn is_deterministic(error: &DataFusionError) -> bool {
    match error.find_root() {
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::SQL(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => true,
        DataFusionError::ArrowError(error, _) => is_data_error(error),
        // The runtime's own assertions (a NOT NULL column's NULL) fail as execution errors.
        DataFusionError::Execution(text) => DATA_ERROR_MARKS.iter().any(|m| text.contains(m)),
        _ => false,
    }
}

/// How Arrow's data errors, and the runtime's NOT NULL assertion, read once delta-rs has made
/// text of a write's plan error.
const DATA_ERROR_MARKS: &[&str] = &[
    "Cast error: ",
    "Parser error: ",
    "Invalid argument error: ",
    "Json error: ",
    "Csv error: ",
    "Divide by zero error",
    "Arithmetic overflow: ",
    "Arithmetic Overflow in AvgAccumulator",
    "is declared NOT NULL",
    "is a NOT NULL partition column",
    // The key functions' refusals of a value's type or a batch's size: the same at every try.
    "surrogate_key: ",
    "sha256_hex: ",
    "sha256_hex cannot hash",
];

/// Whether an Arrow error is about the values themselves, which another attempt reads again.
fn is_data_error(error: &arrow::error::ArrowError) -> bool {
    use arrow::error::ArrowError;
    matches!(
        error,
        ArrowError::CastError(_)
            | ArrowError::ParseError(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::DivideByZero
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::JsonError(_)
            | ArrowError::CsvError(_)
    )
}

/// `text` without a leading "pipeline `name`: ", for where the pipeline is named already.
pub(crate) fn without_pipeline<'a>(text: &'a str, pipeline: &str) -> &'a str {
    text.strip_prefix(&format!("pipeline `{pipeline}`: "))
        .unwrap_or(text)
}

impl Error {
    /// An error with a message, for pipeline code: `return Err(Error::msg("no rows"))`.
    pub fn msg(message: impl Into<String>) -> Error {
        Error::Message(message.into())
    }

    /// Wraps any error, for pipeline code: `.map_err(Error::other)?`.
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Other(Box::new(error))
    }

    /// Whether another attempt may succeed where this one failed. Not for blocking quality
    /// checks, schema mismatches, refused writes, invalid names or graphs, and HTTP statuses
    /// that say the request itself is wrong (4xx but 408 and 429): the same inputs would fail
    /// the same way, and a retry would only call the sources again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Quality(_)
            | Error::Schema { .. }
            | Error::Refused(_)
            | Error::InvalidName { .. }
            | Error::Graph(_)
            | Error::MissingInput { .. } => false,
            Error::Http { transient, .. } | Error::Source { transient, .. } => *transient,
            Error::InFile { source, .. } => source.is_retryable(),
            Error::DataFusion(error) => !is_deterministic(error),
            Error::Arrow(error) => !is_data_error(error),
            Error::Delta { source, .. } => match source.as_ref() {
                deltalake::DeltaTableError::Arrow { source } => !is_data_error(source),
                // What a write's plan failed with reaches delta-rs as text.
                deltalake::DeltaTableError::Generic(text) => {
                    !DATA_ERROR_MARKS.iter().any(|mark| text.contains(mark))
                }
                _ => true,
            },
            _ => true,
        }
    }

    /// A Delta error on `table`.
    pub(crate) fn delta(table: impl Into<String>, source: deltalake::DeltaTableError) -> Error {
        use deltalake::kernel::transaction::TransactionError;
        let conflict = matches!(
            &source,
            deltalake::DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_)
                    | TransactionError::MaxCommitAttempts(_),
            }
        );
        let (table, source) = (table.into(), Box::new(source));
        if conflict {
            Error::CommitConflict { table, source }
        } else {
            Error::Delta { table, source }
        }
    }

    /// A source error at `location` (a URL or a file), which another attempt may not meet (a
    /// live answer changes).
    pub fn source(location: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Source {
            location: location.into(),
            message: message.into(),
            transient: true,
        }
    }

    /// [`Error::source`] that another attempt would meet again (a snapshot file missing): not
    /// retried.
    pub(crate) fn source_final(location: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Source {
            location: location.into(),
            message: message.into(),
            transient: false,
        }
    }

    /// A schema error on `table`.
    pub(crate) fn schema(table: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Schema {
            table: table.into(),
            message: message.into(),
        }
    }
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::{without_pipeline, without_wrappers};
    use datafusion::error::DataFusionError;

    #[test]
    fn a_backtrace_the_kernel_appends_is_left_out() {
        let text = "Kernel error: Json error: Encountered unexpected 'n' whilst parsing object\n   \
                    0: buoyant_kernel::error::Error::with_backtrace\n   1: <buoyant_kernel::error\
                    ::Error as core::convert::From<arrow_schema::error::ArrowError>>::from\n";
        assert_eq!(
            super::explained(text),
            "Kernel error: Json error: Encountered unexpected 'n' whilst parsing object"
        );
        assert_eq!(
            super::without_backtrace("two lines\nof text: 0: kept"),
            "two lines\nof text: 0: kept"
        );
    }

    #[test]
    fn wrappers_and_a_repeated_pipeline_name_are_left_out() {
        assert_eq!(
            without_wrappers(
                "Generic DeltaTable error: Execution error: column `t.c` is declared NOT NULL"
            ),
            "column `t.c` is declared NOT NULL"
        );
        assert_eq!(
            without_wrappers("Failed to read delta log object: Object Store error: denied"),
            "denied"
        );
        assert_eq!(
            without_wrappers("no wrapper: Arrow error: kept"),
            "no wrapper: Arrow error: kept"
        );
        assert_eq!(without_pipeline("pipeline `x`: bad file", "x"), "bad file");
        assert_eq!(
            super::explained(
                "Failed to read delta log object: Generic LocalFileSystem error: Unable to open \
                 file /wh/t/_delta_log/1.json#1: Permission denied (os error 13)"
            ),
            "Generic LocalFileSystem error: Unable to open file /wh/t/_delta_log/1.json#1: \
             Permission denied (os error 13) (this process may not use that path: check its \
             owner and permissions (for the warehouse, or pass another --warehouse))"
        );
        assert_eq!(
            without_pipeline("pipeline `y`: bad file", "x"),
            "pipeline `y`: bad file"
        );
    }

    use deltalake::kernel::transaction::{CommitConflictError, TransactionError};

    use super::Error;

    #[test]
    fn a_commit_conflict_says_what_happened_and_what_to_do() {
        let conflict = deltalake::DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentAppend),
        };
        let error = Error::delta("silver.orders", conflict);
        assert!(matches!(error, Error::CommitConflict { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(
                "Delta table `silver.orders`: another writer committed to it while this write ran"
            ) && message.contains("nothing was written: run it again (a pipeline's `retries` do)"),
            "{message}"
        );
        let other = Error::delta("silver.orders", deltalake::DeltaTableError::NotInitialized);
        assert!(matches!(other, Error::Delta { .. }), "{other:?}");
        assert!(error.is_retryable() && other.is_retryable());
    }

    fn http(status: Option<u16>) -> Error {
        Error::Http {
            url: "https://example.com".to_owned(),
            status,
            attempts: 1,
            message: String::new(),
            transient: status.is_none_or(|s| !(400..500).contains(&s) || matches!(s, 408 | 429)),
        }
    }

    #[test]
    fn errors_another_attempt_would_meet_again_are_not_retried() {
        for permanent in [
            Error::Quality("2 rows".to_owned()),
            Error::Refused("another run".to_owned()),
            Error::schema("silver.t", "missing column"),
            http(Some(404)),
            http(Some(401)),
            Error::DataFusion(DataFusionError::Plan("no field `amout`".to_owned())),
            Error::DataFusion(DataFusionError::ArrowError(
                Box::new(arrow::error::ArrowError::CastError(
                    "'abc' to Int64".to_owned(),
                )),
                None,
            )),
            Error::Arrow(arrow::error::ArrowError::InvalidArgumentError(
                "too large to store in a Decimal128 of precision 4".to_owned(),
            )),
            Error::delta(
                "silver.t",
                deltalake::DeltaTableError::Generic(
                    "Arrow error: Cast error: 'abc' to Int64".to_owned(),
                ),
            ),
            Error::DataFusion(DataFusionError::Execution(
                "column `t.c` is declared NOT NULL, but the pipeline produced a NULL".to_owned(),
            )),
            Error::DataFusion(DataFusionError::Execution(
                "surrogate_key: 1048576 rows do not fit one string array".to_owned(),
            )),
            Error::DataFusion(DataFusionError::Execution(
                "sha256_hex cannot hash a Int64 value".to_owned(),
            )),
        ] {
            assert!(!permanent.is_retryable(), "{permanent:?}");
        }
        for transient in [
            Error::msg("pipeline code"),
            http(Some(429)),
            http(Some(408)),
            http(Some(503)),
            http(None),
            Error::DataFusion(DataFusionError::ResourcesExhausted("memory".to_owned())),
            Error::delta(
                "silver.t",
                deltalake::DeltaTableError::Generic("connection reset".to_owned()),
            ),
            Error::DataFusion(DataFusionError::ObjectStore(Box::new(
                deltalake::logstore::object_store::Error::Generic {
                    store: "S3",
                    source: "connection reset".into(),
                },
            ))),
        ] {
            assert!(transient.is_retryable(), "{transient:?}");
        }
    }
}
