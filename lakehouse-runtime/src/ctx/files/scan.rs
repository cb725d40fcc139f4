//! Reading one group of data files with a table's columns: each cast to its declared type,
//! the errors naming the files.

use datafusion::dataframe::DataFrame;

use super::FileFormat;
use super::listing::LiteralPaths;
use super::ndjson::refuse_json_keys_not_declared;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::table::Table;

impl Ctx {
    /// Files of one layout (or an object-store location) of [`Ctx::read_files`], with `T`'s
    /// columns.
    pub(super) async fn read_file<T: Table>(
        &self,
        format: FileFormat,
        files: &[String],
    ) -> Result<DataFrame> {
        let qualified = T::DEF.qualified_name();
        // How errors name the files.
        let named = group_name(files);
        let files_named = files.to_vec();
        let files = LiteralPaths::new(files)?;
        // NDJSON is read with `T`'s columns, all nullable (a missing one is NULL, then checked).
        let json_schema = arrow::datatypes::Schema::new(
            T::DEF
                .data_columns()
                .map(|c| {
                    arrow::datatypes::Field::new(
                        c.name,
                        json_read_type(c.data_type.arrow_type()),
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        );
        let read = match format {
            FileFormat::Csv => {
                // Every field is read as text and converted by the declared type: inference
                // would read `007` as the number 7, and a column empty in the sample as NULLs.
                // Quoted values may hold line breaks: a file is then not split at byte ranges
                // (a split lands inside a quoted value on a machine with more cores).
                let options = datafusion::prelude::CsvReadOptions::new()
                    .has_header(true)
                    .schema_infer_max_records(0)
                    .newlines_in_values(true)
                    .file_extension("");
                self.session.read_csv(files, options).await
            }
            FileFormat::NdJson => {
                let options = datafusion::prelude::JsonReadOptions::default()
                    .schema(&json_schema)
                    .file_extension("");
                self.session.read_json(files, options).await
            }
            FileFormat::Parquet => {
                let options = datafusion::prelude::ParquetReadOptions::default().file_extension("");
                self.session.read_parquet(files, options).await
            }
        };
        let df = read.map_err(|e| {
            Error::msg(format!(
                "pipeline `{}`: cannot read {format:?} file {named} for {qualified}: {e}",
                self.pipeline
            ))
        })?;
        // What fails on a value as the plan runs (the reader's decoding, a cast) names the files:
        // any of the scan's, which the reader does not tell apart.
        let scanned = scanned_files(format, &files_named);
        let label = crate::frame::pass_through::ErrorLabel {
            text: format!("reading {scanned} for {qualified}"),
            read: scanned.clone(),
        };
        let df = self.with_named_errors(df, label)?;
        let schema = df.schema().clone();
        if format == FileFormat::NdJson {
            // Reads the start of every file: off the async workers.
            let sampled = files_named.clone();
            tokio::task::spawn_blocking(move || refuse_json_keys_not_declared(T::DEF, &sampled))
                .await
                .map_err(|e| Error::msg(format!("sampling the NDJSON files' keys: {e}")))??;
        }
        refuse_no_declared_column(T::DEF, &named, &schema)?;
        let mut columns = Vec::new();
        for column in T::DEF.data_columns() {
            let target = column.data_type.arrow_type();
            let found = schema.iter().find(|(_, f)| f.name() == column.name);
            let expr = match found {
                Some((_, field)) if field.data_type().is_numeric() && is_time(&target) => {
                    // A cast would take the number for microseconds (or days): epoch seconds
                    // or milliseconds would land in January 1970 without an error.
                    return Err(Error::schema(
                        &qualified,
                        format!(
                            "column `{}` of the file {named} holds numbers ({}), not times: \
                             their unit (seconds? milliseconds?) is unknown; declare the field \
                             as a number and convert it in the pipeline (`to_timestamp_seconds`, \
                             `to_timestamp_millis`)",
                            column.name,
                            field.data_type()
                        ),
                    ));
                }
                Some((_, field))
                    if matches!(field.data_type(), arrow::datatypes::DataType::Timestamp(..))
                        && target == arrow::datatypes::DataType::Date32 =>
                {
                    // A cast takes the date where the file's zone puts it, its time dropped.
                    return Err(Error::schema(
                        &qualified,
                        format!(
                            "column `{}` of the file {named} holds times ({}), not dates: a \
                             time's date depends on the zone it is read in; declare the field \
                             as a `Timestamp` and take its date in the pipeline",
                            column.name,
                            field.data_type()
                        ),
                    ));
                }
                Some((_, field)) if is_time(field.data_type()) && target.is_numeric() => {
                    // A cast would give microseconds, or days, since 1970 as the number.
                    return Err(Error::schema(
                        &qualified,
                        format!(
                            "column `{}` of the file {named} holds times ({}), not numbers; \
                             declare the field as a timestamp or date (`Timestamp`, `Date`), \
                             or read it so and convert it in the pipeline",
                            column.name,
                            field.data_type()
                        ),
                    ));
                }
                Some((qualifier, field)) => {
                    let read = datafusion::logical_expr::Expr::Column((qualifier, field).into());
                    // A value that does not convert names the file and the column.
                    let value = if field.data_type() == &target {
                        read
                    } else if format == FileFormat::Parquet
                        && plainly_cast(field.data_type(), &target)
                    {
                        // A typed column of a typed file into a type that holds every value,
                        // or a time into the declared time: `CAST` keeps its statistics for
                        // pruning row groups (a cast of text prunes nothing anyway). A narrowing
                        // number, which may not fit, fails naming the file and column (and
                        // rounds as `CAST` does: a decimal's scale, a float's precision).
                        datafusion::logical_expr::cast(read, target)
                    } else {
                        crate::frame::named_cast::cast_named(
                            read,
                            target,
                            format!("{scanned}: column `{}` ({})", column.name, column.data_type),
                            "fix the file, or declare the field as text (`String`) and convert \
                             it in the pipeline",
                        )
                    };
                    if column.name == "run_at" {
                        datafusion::functions::expr_fn::coalesce(vec![value, self.run_at().lit()])
                    } else if !column.nullable && field.is_nullable() {
                        // An empty field says what it is here, naming the files.
                        crate::frame::assert_file_not_null(
                            value,
                            &format!("{qualified}.{}", column.name),
                            &scanned,
                        )
                    } else {
                        value
                    }
                }
                // Names match exactly: `Price` or ` price` (a space after a comma of the
                // header) for `price` is a mistake, not a missing column.
                None if let Some(near) = schema
                    .fields()
                    .iter()
                    .find(|f| f.name().trim().to_lowercase() == column.name.to_lowercase()) =>
                {
                    return Err(Error::schema(
                        &qualified,
                        format!(
                            "the file {named} has a column `{}`, not `{}`: columns are matched \
                             by their exact name; rename it where the file is written, or read \
                             it under its own name and rename it in the pipeline",
                            near.name(),
                            column.name
                        ),
                    ));
                }
                None if column.name == "run_at" => self.run_at().lit(),
                None if column.nullable => datafusion::logical_expr::cast(
                    datafusion::logical_expr::lit(datafusion::scalar::ScalarValue::Null),
                    target,
                ),
                None => {
                    let found: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(Error::schema(
                        &qualified,
                        format!(
                            "the file {named} has no column `{}`, which is NOT NULL (it has \
                             {}); declare it `Option<_>`, or fill it in the pipeline",
                            column.name,
                            found.join(", ")
                        ),
                    ));
                }
            };
            columns.push(expr.alias(column.name));
        }
        Ok(df.select(columns)?)
    }
}

/// Refuses files `named` none of whose columns (`schema`) is one of `table`'s (its `run_at`
/// aside): read, they would be rows of NULLs (a file separated by `;`, a CSV without its header,
/// a stray file in the folder).
fn refuse_no_declared_column(
    table: &'static crate::table::TableDef,
    named: &str,
    schema: &datafusion::common::DFSchema,
) -> Result<()> {
    let declared: Vec<&str> = table
        .data_columns()
        .map(|c| c.name)
        .filter(|name| *name != "run_at")
        .collect();
    let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    // Names differing in case or blanks only are told apart column by column, after this.
    let near = |name: &&str| {
        declared
            .iter()
            .any(|d| d.to_lowercase() == name.trim().to_lowercase())
    };
    if declared.is_empty() || found.iter().any(near) {
        return Ok(());
    }
    let hint = found
        .iter()
        .find(|name| name.contains([';', '\t', '|']))
        .map_or_else(
            || "a CSV file's first line must be its header".to_owned(),
            |name| {
                format!(
                    "`{name}` looks like a header separated by another character than `,`: write \
                     the file with commas"
                )
            },
        );
    Err(Error::schema(
        table.qualified_name(),
        format!(
            "the file {named} has none of the table's columns ({}): it has {}; {hint}",
            declared.join(", "),
            if found.is_empty() {
                "no column".to_owned()
            } else {
                found
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
    ))
}

impl Ctx {
    /// `df`, a scan of files, with its scan's errors preceded by `label`.
    pub(super) fn with_named_errors(
        &self,
        df: DataFrame,
        label: crate::frame::pass_through::ErrorLabel,
    ) -> Result<DataFrame> {
        let datafusion::logical_expr::LogicalPlan::TableScan(scan) = df.logical_plan() else {
            return Ok(df);
        };
        let files = datafusion::datasource::source_as_provider(&scan.source)?;
        Ok(self
            .session
            .read_table(std::sync::Arc::new(crate::ctx::named_scan::NamedScan::new(
                files, label,
            )))?)
    }
}

/// How a cast's error names the files of one scan: `` `a.csv` `` or `` `a.csv` (and 3 more of
/// its layout) ``.
pub(super) fn group_name(files: &[String]) -> String {
    match files {
        [first, rest @ ..] if !rest.is_empty() => {
            format!("`{first}` (and {} more of its layout)", rest.len())
        }
        _ => format!("`{}`", files.join("")),
    }
}

/// A scan of several landing files that one error names together: kept so that a value's error
/// can be pinned to its file ([`Ctx::with_failing_file`]).
pub(crate) struct GroupedScan {
    /// How its errors name the group (the scan's, the casts').
    pub(super) names: [String; 2],
    pub(super) files: Vec<String>,
    pub(super) format: FileFormat,
    /// [`Ctx::read_file`] of the table the scan was for.
    pub(super) read: for<'a> fn(
        &'a Ctx,
        FileFormat,
        Vec<String>,
    ) -> futures::future::BoxFuture<'a, Result<DataFrame>>,
}

/// [`Ctx::read_file`] of `files` for `T`, boxed (a [`GroupedScan`] reads its files again so).
pub(super) fn read_alone<T: Table>(
    cx: &Ctx,
    format: FileFormat,
    files: Vec<String>,
) -> futures::future::BoxFuture<'_, Result<DataFrame>> {
    Box::pin(async move { cx.read_file::<T>(format, &files).await })
}

impl Ctx {
    /// `error`, with the landing file it is in when it is a value's error (not retried) that
    /// names a scan of several files by their group: each of that scan's files is read alone,
    /// to its end, until one fails so. Only on this failure: a backlog is read as few scans.
    pub(crate) async fn with_failing_file(&self, error: Error) -> Error {
        if error.is_retryable() {
            return error;
        }
        let text = error.to_string();
        let suspects: Vec<(Vec<String>, FileFormat, _)> = self
            .grouped_scans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|scan| scan.names.iter().any(|name| text.contains(name.as_str())))
            .map(|scan| (scan.files.clone(), scan.format, scan.read))
            .collect();
        for (files, format, read) in suspects {
            for file in files {
                let alone = match read(self, format, vec![file.clone()]).await {
                    Ok(df) => crate::frame::drain(df).await.map_err(Error::from),
                    Err(error) => Err(error),
                };
                if alone.is_err_and(|error| !error.is_retryable()) {
                    tracing::debug!(file, "the value's error is in this file");
                    return Error::InFile {
                        file,
                        source: Box::new(error),
                    };
                }
            }
        }
        error
    }
}

/// How a value's error names the files of one scan: the file, or the files it may be in (the
/// first five of a scan of more).
pub(super) fn scanned_files(format: FileFormat, files: &[String]) -> String {
    const LISTED: usize = 5;
    let kind = format!("{format:?}").to_uppercase();
    match files {
        [one] => format!("{kind} file `{one}`"),
        many => {
            let listed: Vec<String> = many.iter().take(LISTED).map(|f| format!("`{f}`")).collect();
            let more = if many.len() > LISTED {
                format!(", … ({} in all)", many.len())
            } else {
                String::new()
            };
            format!("one of the {kind} files {}{more}", listed.join(", "))
        }
    }
}

/// Whether values of `data_type` are points in time (a cast to or from a number would read them
/// in an unstated unit).
fn is_time(data_type: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType;
    matches!(
        data_type,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    )
}

/// The type an NDJSON column of type `declared` is decoded as before its cast to it: decimals
/// with more fraction digits, so that the cast rounds the extra ones (as CSV's does) instead of
/// the decoder truncating them.
fn json_read_type(declared: arrow::datatypes::DataType) -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType;
    const EXTRA_DIGITS: u8 = 10;
    match declared {
        // Up to 76 digits in 256 bits: `Decimal<38, S>` gets its extra digits too.
        DataType::Decimal128(precision, scale) if scale >= 0 => DataType::Decimal256(
            precision.saturating_add(EXTRA_DIGITS),
            scale.saturating_add(EXTRA_DIGITS as i8),
        ),
        // As text, then cast: the decoder takes a JSON number for days or microseconds, so
        // epoch seconds landed in the year 4 million (and failed the writer's statistics),
        // where a number is now refused as not a date.
        DataType::Date32 | DataType::Timestamp(..) => DataType::Utf8,
        // As a decimal, then cast: the decoder truncates `1.9` to 1, where the cast refuses it
        // (19 digits of an i64 and 10 of fraction fit 128 bits; digits past the 10th are
        // dropped, so `3.00000000001` still reads as 3).
        integer if integer.is_integer() => DataType::Decimal128(38, EXTRA_DIGITS as i8),
        other => other,
    }
}

/// Whether a Parquet column of type `from` is read as `to` with a plain `CAST`: every value fits
/// (a wider integer, a float from a small integer, a wider decimal), or it is a day or a time read
/// as a timestamp (pandas writes nanoseconds: their pruning statistics are kept; a day or time
/// past a timestamp's range of ±292 000 years fails the read, unnamed). A `Date64` is checked:
/// arrow multiplies its milliseconds unchecked.
fn plainly_cast(from: &arrow::datatypes::DataType, to: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType as T;
    /// Bits of an integer type and whether it is signed.
    fn integer(t: &T) -> Option<(u32, bool)> {
        Some(match t {
            T::Int8 => (8, true),
            T::Int16 => (16, true),
            T::Int32 => (32, true),
            T::Int64 => (64, true),
            T::UInt8 => (8, false),
            T::UInt16 => (16, false),
            T::UInt32 => (32, false),
            T::UInt64 => (64, false),
            _ => return None,
        })
    }
    match (from, to) {
        _ if from == to => true,
        (T::Float16, T::Float32 | T::Float64) | (T::Float32, T::Float64) => true,
        (T::Decimal128(p1, s1), T::Decimal128(p2, s2) | T::Decimal256(p2, s2))
        | (T::Decimal256(p1, s1), T::Decimal256(p2, s2)) => {
            s2 >= s1 && i16::from(*p2) - i16::from(*s2) >= i16::from(*p1) - i16::from(*s1)
        }
        (T::Date32 | T::Timestamp(..), T::Timestamp(..)) => true,
        _ => match (integer(from), integer(to)) {
            (Some((bits_from, signed_from)), Some((bits_to, signed_to))) => {
                (signed_from == signed_to && bits_to >= bits_from)
                    || (!signed_from && signed_to && bits_to > bits_from)
            }
            (Some((bits, _)), None) => match to {
                // Integers a float's mantissa holds exactly.
                T::Float32 => bits <= 16,
                T::Float64 => bits <= 32,
                _ => false,
            },
            _ => false,
        },
    }
}
