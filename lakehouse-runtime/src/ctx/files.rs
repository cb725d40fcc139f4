//! Files as a source: [`Ctx::read_files`] reads every file at a path, [`Ctx::read_new_files`]
//! those a pipeline has not ingested before (their record is [`FileHistory`]'s).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::dataframe::DataFrame;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::context::DataFilePaths;

use super::{Ctx, RunInfo};
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::graph::PipelineDescriptor;
use crate::ledger::{IngestedFile, Ledger};
use crate::table::{OverwriteScope, Table, Timestamp, WriteMode};

impl Ctx {
    /// The rows of the files at `path` (one file, or a directory of them; local paths are tested,
    /// object-store URLs need their store registered with the session) in `format`, as a frame
    /// of `T`. Files are read by layout (those sharing a CSV header or a Parquet schema, and all
    /// NDJSON files, in one scan), and each of `T`'s columns taken by name and cast to
    /// its declared type (a value that does not convert fails the run, naming it): files may
    /// order their columns differently. CSV fields are read as text first (so `007` stays
    /// `007` in a text column); NDJSON is read with `T`'s columns. A nullable column a file
    /// lacks is NULL, a `run_at` it lacks is the run's time, a missing NOT NULL column is an
    /// error naming it. In a directory, names starting with `.` or `_` (`_SUCCESS`, checksums)
    /// and subdirectories are skipped; an empty directory gives no rows. Every file is read at
    /// every run: for files that keep arriving, [`Ctx::read_new_files`] reads only those not
    /// ingested before.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// #[pipeline]
    /// pub async fn landed_orders(cx: &Ctx) -> Result<Frame<BronzeOrders>> {
    ///     let dir = cx.settings().get("orders.dir").unwrap_or("data/landing/orders");
    ///     cx.read_files::<BronzeOrders>(FileFormat::Csv, dir).await
    /// }
    /// ```
    pub async fn read_files<T: Table>(&self, format: FileFormat, path: &str) -> Result<Frame<T>> {
        if self.dry_run {
            // The plan check reads nothing: the files may not exist where the check runs.
            return self.empty::<T>();
        }
        let files: Vec<String> = data_files(path)?
            .into_iter()
            .filter(|file| holds_rows(file, format))
            .collect();
        if files.is_empty() && !path.contains("://") {
            // An empty directory is nothing landed yet, or a mount missing: said, in case.
            tracing::warn!(
                path,
                "no data file there (hidden, unfinished and empty files, CSV files holding their header alone, and subdirectories are not read): nothing read"
            );
        }
        self.read_union::<T>(format, &files).await
    }

    /// The rows of the files at `path` that this pipeline has not ingested before, read as
    /// [`Ctx::read_files`] reads them: an incremental file source, like Databricks' Auto Loader.
    /// `path` is a local file or directory (the files directly in it, not in subdirectories);
    /// [`Ctx::read_new_files_with`] bounds how many a run takes.
    ///
    /// The orchestrator records the files read in `lakehouse.ingested_files` once the output is
    /// written (and in the write's Delta commit, so a record the ledger could not take is made
    /// good at the next run): a run that fails reads them again. A file is known by its absolute
    /// path; one changed after it was ingested is not read again (a warning names it: give it a
    /// new name to ingest it again). `orchestrate run --full-refresh` reads every file again
    /// (an append output then gets their rows again; `--rebuild` replaces it with them). Outside
    /// an orchestrator run, as in [`crate::testing::TestContext`], every file is new.
    ///
    /// A file must be whole when it is listed: land files under a temporary name (`.part`,
    /// `.tmp`, `.crdownload`, a leading `.` or `_`: never read) and rename them, or give the
    /// producer time with [`NewFiles::settled_for`]. A file that changes between the listing and
    /// the write (still being written) fails the attempt before anything is committed, and a
    /// retry (or the next run) reads it again.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// #[pipeline]
    /// pub async fn landed_orders(cx: &Ctx) -> Result<Frame<BronzeOrders>> {
    ///     cx.read_new_files::<BronzeOrders>(FileFormat::Csv, "data/landing/orders").await
    /// }
    /// ```
    pub async fn read_new_files<T: Table>(
        &self,
        format: FileFormat,
        path: &str,
    ) -> Result<Frame<T>> {
        self.read_new_files_with::<T>(format, path, NewFiles::default())
            .await
    }

    /// [`Ctx::read_new_files`] with `options`: at most [`NewFiles::max_files`] files a run.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// // A backlog of thousands of files is taken 500 at a time, one batch a run.
    /// let options = NewFiles::at_most(500);
    /// cx.read_new_files_with::<BronzeOrders>(FileFormat::Csv, "data/landing/orders", options).await
    /// ```
    pub async fn read_new_files_with<T: Table>(
        &self,
        format: FileFormat,
        path: &str,
        options: NewFiles,
    ) -> Result<Frame<T>> {
        // What the declarations alone refuse is refused in plan checks and unit tests too (the
        // pipeline's registration says what it writes).
        let descriptor = match &self.file_history {
            Some(history) => Some(history.pipeline),
            None => self.descriptor(),
        };
        // Only a `TestContext` can name no registered pipeline: its checks would be skipped.
        let Some(descriptor) = descriptor else {
            let names = inventory::iter::<crate::graph::PipelineDescriptor>
                .into_iter()
                .map(|p| p.name);
            let hint = crate::similar::closest(self.pipeline, names)
                .map(|name| format!(" (did you mean `{name}`?)"))
                .unwrap_or_default();
            return Err(Error::Refused(format!(
                "pipeline `{}`: no pipeline of that name is registered{hint}; a test context \
                 reading new files takes the name of the pipeline under test, whose \
                 declaration says what it may do",
                self.pipeline
            )));
        };
        refuse_whole_outputs(descriptor)?;
        refuse_split_partitions(descriptor, options)?;
        if path.contains("://") {
            return Err(Error::msg(format!(
                "pipeline `{}`: read_new_files lists local files only, and `{path}` is a URL: \
                 read it with read_files",
                self.pipeline
            )));
        }
        if options.max_files == Some(0) {
            return Err(Error::msg(format!(
                "pipeline `{}`: read_new_files_with(.., NewFiles::at_most(0)) would never read a \
                 file; take at least 1",
                self.pipeline
            )));
        }
        if self.dry_run {
            return self.empty::<T>();
        }
        let known = match &self.file_history {
            Some(history) => Some(history.known().await?),
            None => None,
        };
        let mut new = Vec::new();
        let mut paths = Vec::new();
        // Modified after this, a file may still be written to.
        let settled_before = options.settle.map(|settle| {
            let settle = i64::try_from(settle.as_micros()).unwrap_or(i64::MAX);
            Timestamp(Timestamp::now().0.saturating_sub(settle))
        });
        let mut unsettled = 0;
        for file in data_files(path)? {
            // Removed since the listing (an archiving job moving ingested files away): as if it
            // had not been listed; a new file the write reads is checked again after it.
            let Some(found) = FoundFile::still_at(&file)? else {
                tracing::debug!(file, "the file was removed since it was listed: skipped");
                continue;
            };
            if let Some(before) = settled_before
                && found.modified_at.is_none_or(|at| at > before)
            {
                // One the wait never settles is named: it would be left at every run.
                let now = Timestamp::now();
                match found.modified_at {
                    None => tracing::warn!(
                        file = %found.path,
                        "the file has no readable modification time, so it never counts as \
                         settled and is not read (touch it, or read the folder without \
                         `settled_for`)"
                    ),
                    Some(at) if at > now => tracing::warn!(
                        file = %found.path,
                        modified_at = %at,
                        "the file's modification time is in the future (a clock or a copy that \
                         kept another host's time), so it counts as settled only once that time \
                         has passed"
                    ),
                    Some(_) => {}
                }
                unsettled += 1;
                continue;
            }
            match known.and_then(|known| known.get(&found.path)) {
                Some(before) if *before == found.version() => {}
                Some(_) => tracing::warn!(
                    file = %found.path,
                    "the file was ingested before and has changed since; it is not read again \
                     (give it a new name to ingest it again)"
                ),
                // A CSV file holding its header alone is left for a later run (checked only
                // now: the files ingested before are not read).
                None if !holds_rows(&file, format) => {}
                None => {
                    paths.push(found.path.clone());
                    new.push(found);
                }
            }
        }
        // A full refresh reads every file: bounded, it would replace (or refill) the output with
        // the first ones, and the ledger's older records would hide the others for good.
        let full_refresh = self.file_history.as_ref().is_some_and(|h| h.full_refresh);
        if let Some(max) = options.max_files.filter(|_| !full_refresh)
            && new.len() > max
        {
            // The first by name: files named by their landing time are taken in order.
            tracing::info!(
                path,
                left = new.len() - max,
                "new files left for later runs"
            );
            new.truncate(max);
            paths.truncate(max);
        }
        if unsettled > 0 {
            tracing::info!(
                path,
                unsettled,
                "files modified too recently to be whole are left for a later run"
            );
        }
        tracing::info!(path, new_files = new.len(), "new files found");
        let frame = self.read_union::<T>(format, &paths).await?;
        self.new_files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get_or_insert_with(Vec::new)
            .extend(new);
        Ok(frame)
    }

    /// The files [`Ctx::read_new_files`] read in this execution (`None` if it was not called).
    pub(crate) fn take_new_files(&self) -> Option<Vec<FoundFile>> {
        self.new_files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// The rows of `files` (no rows for none): the files sharing a layout (a CSV header, a
    /// Parquet schema; every NDJSON file, read with `T`'s columns) are read as one scan, and
    /// the scans unioned: a backlog of many files is a few scans, not a union of one per file.
    async fn read_union<T: Table>(&self, format: FileFormat, files: &[String]) -> Result<Frame<T>> {
        let mut union: Option<DataFrame> = None;
        let mut groups = Vec::new();
        let mut local = Vec::new();
        for file in files {
            if file.contains("://") {
                groups.extend(self.objects_by_layout(format, file).await?);
            } else {
                local.push(file.clone());
            }
        }
        groups.extend(same_layout(format, &local));
        for group in groups {
            let df = self.read_file::<T>(format, &group).await?;
            if group.len() > 1 {
                self.grouped_scans
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(GroupedScan {
                        names: [scanned_files(format, &group), group_name(&group)],
                        files: group.clone(),
                        format,
                        read: read_alone::<T>,
                    });
            }
            union = Some(match union {
                Some(all) => all.union(df)?,
                None => df,
            });
        }
        match union {
            Some(df) => Frame::from_dataframe(df),
            None => self.empty::<T>(),
        }
    }

    /// The data objects at the object-store location `url` (the object, or those directly under
    /// the prefix, chosen by name and size as a directory's files are), as URLs grouped as
    /// [`same_layout`] groups local files: a CSV object's header is its first line, read by a
    /// range request. (Read as one location, every CSV object was parsed by the columns of the
    /// first one's header: a file ordering them otherwise had its values in the wrong columns.)
    async fn objects_by_layout(&self, format: FileFormat, url: &str) -> Result<Vec<Vec<String>>> {
        use deltalake::logstore::object_store::{Error as StoreError, ObjectStoreExt as _};
        use futures::{StreamExt as _, TryStreamExt as _};

        let failed = |e: &dyn std::fmt::Display| {
            Error::msg(format!(
                "pipeline `{}`: listing the objects at `{url}`: {e}",
                self.pipeline
            ))
        };
        let location = ListingTableUrl::parse(url).map_err(|e| failed(&e))?;
        let store = self
            .session
            .runtime_env()
            .object_store(location.object_store())
            .map_err(|e| failed(&e))?;
        // Listed by the store itself: DataFusion's listing cache would show a loop's later runs
        // the first run's objects.
        let prefix = location.prefix().clone();
        let named = if location.is_collection() {
            None
        } else {
            match store.head(&prefix).await {
                Ok(object) => Some(object),
                Err(StoreError::NotFound { .. }) => None,
                Err(error) => return Err(failed(&error)),
            }
        };
        let mut objects = match named {
            Some(object) => vec![object],
            None => {
                store
                    .list_with_delimiter(Some(&prefix))
                    .await
                    .map_err(|e| failed(&e))?
                    .objects
            }
        };
        if objects.is_empty() {
            if !location.is_collection() {
                // A file named that is not there (a typo, a dump not landed): as a missing local
                // file, an error, not an empty table written.
                return Err(failed(
                    &"there is no object there: check the URL (a folder's URL ends with `/`)",
                ));
            }
            // As an empty directory: nothing landed yet.
            tracing::warn!(url, "no objects under the prefix: nothing read");
            return Ok(Vec::new());
        }
        // An object named itself is read whatever its name.
        objects.retain(|object| {
            object.size > 0
                && (object.location == *location.prefix()
                    || object.location.filename().is_some_and(is_data_file_name))
        });
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        // A CSV object's header line, a Parquet object's schema (from its footer), a few
        // requests at a time; NDJSON objects are read by key, whatever their order.
        // (Parquet objects read as one scan had their schemas merged: a column's type differing
        // failed the read, and `Amount` beside `amount` was two columns, one read as NULL.)
        let headers: Vec<String> = match format {
            FileFormat::Csv => {
                let requests: Vec<_> = objects
                    .iter()
                    .map(|object| csv_header(store.clone(), object.location.clone(), object.size))
                    .collect();
                futures::stream::iter(requests)
                    .buffered(8)
                    .try_collect()
                    .await
                    .map_err(|e| failed(&e))?
            }
            FileFormat::Parquet => {
                let state = self.session.state();
                let requests: Vec<_> = objects
                    .iter()
                    .map(|object| parquet_object_schema(&state, &store, object))
                    .collect();
                futures::stream::iter(requests)
                    .buffered(8)
                    .try_collect()
                    .await?
            }
            FileFormat::NdJson => vec![String::new(); objects.len()],
        };
        let base = location.object_store();
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for (object, header) in objects.into_iter().zip(headers) {
            let object_url = object_url(&base, &object.location);
            match groups.iter_mut().find(|(known, _)| *known == header) {
                Some((_, group)) => group.push(object_url),
                None => groups.push((header, vec![object_url])),
            }
        }
        Ok(groups.into_iter().map(|(_, group)| group).collect())
    }

    /// Files of one layout (or an object-store location) of [`Ctx::read_files`], with `T`'s
    /// columns.
    async fn read_file<T: Table>(&self, format: FileFormat, files: &[String]) -> Result<DataFrame> {
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
            refuse_json_keys_not_declared(T::DEF, &files_named)?;
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
    fn with_named_errors(
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
            .read_table(std::sync::Arc::new(super::named_scan::NamedScan::new(
                files, label,
            )))?)
    }
}

/// How a cast's error names the files of one scan: `` `a.csv` `` or `` `a.csv` (and 3 more of
/// its layout) ``.
fn group_name(files: &[String]) -> String {
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
    names: [String; 2],
    files: Vec<String>,
    format: FileFormat,
    /// [`Ctx::read_file`] of the table the scan was for.
    read: for<'a> fn(
        &'a Ctx,
        FileFormat,
        Vec<String>,
    ) -> futures::future::BoxFuture<'a, Result<DataFrame>>,
}

/// [`Ctx::read_file`] of `files` for `T`, boxed (a [`GroupedScan`] reads its files again so).
fn read_alone<T: Table>(
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
fn scanned_files(format: FileFormat, files: &[String]) -> String {
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

/// How much of each NDJSON file [`refuse_json_keys_not_declared`] reads.
const JSON_SAMPLE_BYTES: usize = 64 * 1024;

/// Refuses NDJSON files (local ones, each sampled: its first [`JSON_SAMPLE_BYTES`]) that have
/// none of `table`'s columns (a stray manifest: rows of NULLs), an object whose key names one
/// of them otherwise (`Amount` for `amount`), or that lack a NOT NULL one: all the files of a
/// folder are one scan with the table's columns, where such a key was ignored and its column
/// NULL (one file's `Amount` went unseen beside another's `amount`), and a NOT NULL column
/// failed later as a NULL the pipeline made. Each error names its file.
fn refuse_json_keys_not_declared(table: &crate::table::TableDef, files: &[String]) -> Result<()> {
    for file in files {
        // An object store's files are not sampled.
        if let Some(objects) = sampled_json_objects(file) {
            refuse_json_keys_of_file(table, &format!("`{file}`"), &objects)?;
        }
    }
    Ok(())
}

/// The keys of each object in the first [`JSON_SAMPLE_BYTES`] of the local NDJSON `file`
/// (`None` when it cannot be read, or has no object there: the reader tells what is wrong).
fn sampled_json_objects(file: &str) -> Option<Vec<Vec<String>>> {
    use std::io::Read as _;
    let handle = std::fs::File::open(file).ok()?;
    let mut start = Vec::with_capacity(JSON_SAMPLE_BYTES.min(8 * 1024));
    handle
        .take(JSON_SAMPLE_BYTES as u64)
        .read_to_end(&mut start)
        .ok()?;
    let whole = start.len() < JSON_SAMPLE_BYTES;
    let mut lines: Vec<&[u8]> = start.split(|byte| *byte == b'\n').collect();
    if !whole {
        // The last line may be cut by the sample.
        lines.pop();
    }
    let objects: Vec<Vec<String>> = lines
        .into_iter()
        .filter_map(|line| match serde_json::from_slice(line) {
            Ok(serde_json::Value::Object(object)) => Some(object.keys().cloned().collect()),
            _ => None,
        })
        .collect();
    (!objects.is_empty()).then_some(objects)
}

/// [`refuse_json_keys_not_declared`] for the sampled `objects` (their keys) of the file `named`.
fn refuse_json_keys_of_file(
    table: &crate::table::TableDef,
    named: &str,
    objects: &[Vec<String>],
) -> Result<()> {
    let qualified = table.qualified_name();
    let keys: std::collections::BTreeSet<&str> =
        objects.iter().flatten().map(String::as_str).collect();
    let near = |key: &str, name: &str| key != name && key.trim().to_lowercase() == name;
    for column in table.data_columns().filter(|c| c.name != "run_at") {
        // Object by object: `Amount` in one is a mistake, even when another has `amount`.
        let misnamed = objects.iter().find_map(|object| {
            if object.iter().any(|k| k == column.name) {
                return None;
            }
            object.iter().find(|k| near(k, column.name))
        });
        if let Some(misnamed) = misnamed {
            return Err(Error::schema(
                &qualified,
                format!(
                    "the file {named} has a key `{misnamed}`, not `{}`: keys are matched by \
                     their exact name; rename it where the file is written, or read it under \
                     its own name and rename it in the pipeline",
                    column.name
                ),
            ));
        }
    }
    let found = || {
        keys.iter()
            .map(|key| format!("`{key}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let declared: Vec<&str> = table
        .data_columns()
        .map(|c| c.name)
        .filter(|name| *name != "run_at")
        .collect();
    if !declared.is_empty() && !declared.iter().any(|name| keys.contains(name)) {
        return Err(Error::schema(
            &qualified,
            format!(
                "the file {named} has none of the table's columns ({}): its objects have {}; \
                 is it a data file of this table?",
                declared.join(", "),
                found()
            ),
        ));
    }
    if let Some(missing) = table
        .data_columns()
        .find(|c| !c.nullable && c.name != "run_at" && !keys.contains(c.name))
    {
        return Err(Error::schema(
            &qualified,
            format!(
                "the file {named} has no key `{}`, which is NOT NULL (its objects have {}); \
                 declare it `Option<_>`, or fill it in the pipeline",
                missing.name,
                found()
            ),
        ));
    }
    Ok(())
}

/// Options of [`Ctx::read_new_files_with`]: `NewFiles::default()` (every new file),
/// [`NewFiles::at_most`], [`NewFiles::settled_for`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewFiles {
    /// Read at most this many new files a run, the first by name; the others wait for later
    /// runs (Auto Loader's `maxFilesPerTrigger`): a backlog is taken in bounded runs. `None`:
    /// every new file. A full refresh reads every file whatever the bound.
    pub max_files: Option<usize>,
    /// Leave a new file modified less than this long ago for a later run: a producer writing
    /// under the file's final name (`cp`, `scp`, `sftp`) may not be done with it. `None`: every
    /// new file is read.
    pub settle: Option<std::time::Duration>,
}

impl NewFiles {
    /// At most `max_files` new files a run (at least 1).
    pub fn at_most(max_files: usize) -> NewFiles {
        NewFiles {
            max_files: Some(max_files),
            settle: None,
        }
    }

    /// These options, leaving for a later run the new files modified less than `settle` ago
    /// (see [`NewFiles::settle`]): `NewFiles::default().settled_for(Duration::from_secs(30))`.
    pub fn settled_for(self, settle: std::time::Duration) -> NewFiles {
        NewFiles {
            settle: Some(settle),
            ..self
        }
    }
}

/// A file found by [`Ctx::read_new_files`]: its absolute path, size and modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FoundFile {
    pub(crate) path: String,
    pub(crate) size: i64,
    pub(crate) modified_at: Option<Timestamp>,
}

impl FoundFile {
    /// The file at `path`, as it is now.
    fn at(path: &str) -> Result<FoundFile> {
        let io = |source| Error::Io {
            context: format!("reading the file `{path}`"),
            source,
        };
        let absolute = std::fs::canonicalize(path).map_err(io)?;
        let metadata = std::fs::metadata(&absolute).map_err(io)?;
        let modified_at = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|since| i64::try_from(since.as_micros()).ok())
            .map(Timestamp);
        Ok(FoundFile {
            path: absolute.to_string_lossy().into_owned(),
            size: i64::try_from(metadata.len()).unwrap_or(i64::MAX),
            modified_at,
        })
    }

    /// [`FoundFile::at`], or `None` when there is no file at `path` (any more).
    fn still_at(path: &str) -> Result<Option<FoundFile>> {
        match FoundFile::at(path) {
            Ok(found) => Ok(Some(found)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// What tells a changed file from the one ingested.
    fn version(&self) -> (i64, Option<Timestamp>) {
        (self.size, self.modified_at)
    }

    /// Why the file is no longer as it was found (written to, replaced or removed since), if it
    /// is not.
    pub(crate) fn changed_since(&self) -> Option<String> {
        match FoundFile::at(&self.path) {
            Ok(now) if now.version() == self.version() => None,
            Ok(now) => Some(format!(
                "the landing file `{}` changed while the run read it ({} bytes when listed, {} \
                 now): it was most likely still being written",
                self.path, self.size, now.size
            )),
            Err(error) => Some(format!(
                "the landing file `{}` is gone or unreadable since the run listed it ({error})",
                self.path
            )),
        }
    }

    /// Its row of `lakehouse.ingested_files`, read by `pipeline` in `run`.
    pub(crate) fn record(self, pipeline: &PipelineDescriptor, run: &RunInfo) -> IngestedFile {
        IngestedFile {
            pipeline: pipeline.name.to_owned(),
            table_name: pipeline.output.qualified_name(),
            path: self.path,
            size: self.size,
            modified_at: self.modified_at,
            run_id: run.run_id.clone(),
            sequence: run.sequence,
            ingested_at: run.run_at,
        }
    }
}

/// The files a pipeline ingested before, by absolute path, with their size and modification
/// time then: read from `lakehouse.ingested_files` (and the pipeline's last commit, for a
/// record the ledger could not take) the first time [`Ctx::read_new_files`] asks.
pub(crate) struct FileHistory {
    ledger: Ledger,
    pipeline: &'static PipelineDescriptor,
    /// `--full-refresh`: nothing counts as ingested.
    full_refresh: bool,
    known: tokio::sync::OnceCell<KnownFiles>,
}

/// What [`FileHistory`] loads once.
struct KnownFiles {
    /// The files ingested before, by absolute path, with their size and modification time.
    files: HashMap<String, (i64, Option<Timestamp>)>,
    /// The pipeline's last transaction version on its output when they were loaded (0: none):
    /// the write is refused if another run of it committed since (see
    /// [`crate::store::WriteOptions::read_after`]).
    read_after: i64,
}

impl FileHistory {
    /// The history of `pipeline`'s files in `ledger`'s warehouse.
    pub(crate) fn new(
        ledger: Ledger,
        pipeline: &'static PipelineDescriptor,
        full_refresh: bool,
    ) -> Arc<FileHistory> {
        Arc::new(FileHistory {
            ledger,
            pipeline,
            full_refresh,
            known: tokio::sync::OnceCell::new(),
        })
    }

    /// The files ingested before, loaded once.
    async fn known(&self) -> Result<&HashMap<String, (i64, Option<Timestamp>)>> {
        let known = self
            .known
            .get_or_try_init(|| async {
                if self.full_refresh {
                    return Ok(KnownFiles {
                        files: HashMap::new(),
                        read_after: 0,
                    });
                }
                // First: a run committing after it may have ingested the files this one finds.
                let output = self
                    .ledger
                    .warehouse()
                    .latest_transaction(self.pipeline.output, self.pipeline.name, i64::MAX)
                    .await?;
                let recreated = match &output {
                    Some((None, _)) => self.ledger.output_recreated(self.pipeline).await?,
                    _ => false,
                };
                let Some((read_after, _)) = output.filter(|_| !recreated) else {
                    // The output is gone (deleted to start it over), or holds no write of this
                    // pipeline (created again by an attempt that then failed): the files read
                    // before are not in it, so every file is read again, as at the first run.
                    if !self.ledger.ingested_files(self.pipeline).await?.is_empty() {
                        tracing::warn!(
                            table = %self.pipeline.output.qualified_name(),
                            "the output table is gone, or holds no write of this pipeline, since \
                             files were ingested into it: every file is read again, as at the \
                             pipeline's first run"
                        );
                    }
                    return Ok(KnownFiles {
                        files: HashMap::new(),
                        read_after: 0,
                    });
                };
                let read_after = read_after.unwrap_or(0);
                let mut files = self.ledger.ingested_files(self.pipeline).await?;
                // A file recorded twice (read again by a full refresh): its latest record.
                files.sort_by_key(|file| file.sequence);
                let files = files
                    .into_iter()
                    .map(|file| (file.path, (file.size, file.modified_at)))
                    .collect();
                Ok::<_, Error>(KnownFiles { files, read_after })
            })
            .await?;
        Ok(&known.files)
    }

    /// The pipeline's last transaction version on its output when the files ingested before
    /// were loaded (`None`: they were not, or a full refresh reads every file anyway).
    pub(crate) fn read_after(&self) -> Option<i64> {
        self.known
            .get()
            .filter(|_| !self.full_refresh)
            .map(|known| known.read_after)
    }
}

/// The format of files read with [`Ctx::read_files`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// Newline-delimited JSON: one object per line.
    NdJson,
    /// Apache Parquet.
    Parquet,
}

/// `files` grouped by layout, each group in the order its first file comes: files whose layout
/// cannot be read (or object-store locations) are groups of their own, whose read then fails or
/// succeeds on its own.
fn same_layout(format: FileFormat, files: &[String]) -> Vec<Vec<String>> {
    let mut groups: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for file in files {
        let layout = if file.contains("://") {
            None
        } else {
            layout(format, file)
        };
        match groups
            .iter_mut()
            .find(|(known, _)| layout.is_some() && *known == layout)
        {
            Some((_, group)) => group.push(file.clone()),
            None => groups.push((layout, vec![file.clone()])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// What makes local `file` readable in one scan with others: its CSV header line, its Parquet
/// schema, nothing for NDJSON (read with the table's columns); `None` when it cannot be told.
fn layout(format: FileFormat, file: &str) -> Option<String> {
    use std::io::BufRead as _;
    match format {
        FileFormat::NdJson => Some(String::new()),
        FileFormat::Csv => {
            use std::io::Read as _;
            // At most the first 64 KiB: a file without line feeds (CR line ends, one line) is
            // not read whole for its header.
            let mut header = String::new();
            std::io::BufReader::new(std::fs::File::open(file).ok()?.take(FIRST_LINE_BYTES))
                .read_line(&mut header)
                .ok()?;
            // A header longer than that: the file is a group of its own.
            let whole = header.ends_with('\n')
                || std::fs::metadata(file).is_ok_and(|m| m.len() <= FIRST_LINE_BYTES);
            whole.then(|| header.trim_end_matches(['\r', '\n']).to_owned())
        }
        FileFormat::Parquet => {
            let reader =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    std::fs::File::open(file).ok()?,
                )
                .ok()?;
            Some(format!("{:?}", reader.schema().fields()))
        }
    }
}

/// The schema of the Parquet object `object` of `store`, from its footer (a range request or
/// two), as [`layout`] gives a local file's: what tells its group.
async fn parquet_object_schema(
    state: &datafusion::execution::SessionState,
    store: &Arc<dyn deltalake::ObjectStore>,
    object: &deltalake::logstore::object_store::ObjectMeta,
) -> Result<String> {
    use datafusion::datasource::file_format::FileFormat as _;
    let schema = datafusion::datasource::file_format::parquet::ParquetFormat::default()
        .infer_schema(state, store, std::slice::from_ref(object))
        .await
        .map_err(|e| {
            Error::msg(format!(
                "reading the Parquet footer of the object `{}`: {e}",
                object.location
            ))
        })?;
    Ok(format!("{:?}", schema.fields()))
}

/// Name endings of files still being written or copied (WinSCP's `.filepart`, Hadoop's
/// `._COPYING_`, browsers' downloads, editors' backups), which a directory's data files do not
/// include: the file gets its final name once complete.
const UNFINISHED_SUFFIXES: &[&str] = &[
    ".filepart",
    "._COPYING_",
    ".crdownload",
    ".part",
    ".partial",
    ".tmp",
    ".temp",
    "~",
];

/// The header line of the CSV object at `location` (`size` bytes) of `store`, from its first
/// [`FIRST_LINE_BYTES`]; a header longer than that is told apart by the object's name (a group
/// of its own).
async fn csv_header(
    store: Arc<dyn deltalake::ObjectStore>,
    location: deltalake::logstore::object_store::path::Path,
    size: u64,
) -> std::result::Result<String, deltalake::logstore::object_store::Error> {
    use deltalake::logstore::object_store::ObjectStoreExt as _;
    let start = store
        .get_range(&location, 0..size.min(FIRST_LINE_BYTES))
        .await?;
    Ok(match start.iter().position(|b| *b == b'\n') {
        Some(line_end) => String::from_utf8_lossy(&start[..line_end])
            .trim_end_matches('\r')
            .to_owned(),
        None if size > FIRST_LINE_BYTES => format!("\0{location}"),
        None => String::from_utf8_lossy(&start)
            .trim_end_matches('\r')
            .to_owned(),
    })
}

/// The URL of the object at `location` of the store at `base`, which parses back to `location`:
/// its path as stored (names with `#`, `?`, `%`, spaces), percent-encoded once more.
fn object_url(
    base: &datafusion::execution::object_store::ObjectStoreUrl,
    location: &deltalake::logstore::object_store::path::Path,
) -> String {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    const IN_URL_PATH: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    format!(
        "{}{}",
        base.as_str(),
        utf8_percent_encode(location.as_ref(), IN_URL_PATH)
    )
}

/// How many bytes of a CSV object are read for its header line.
const FIRST_LINE_BYTES: u64 = 64 * 1024;

/// Whether a file named `name` in a landing directory (or under an object-store prefix) holds
/// data: not hidden (`.`, `_`: checksums, `_SUCCESS`), not unfinished ([`UNFINISHED_SUFFIXES`]).
fn is_data_file_name(name: &str) -> bool {
    // In any case: `.PART`, `.TMP` too; and an editor's `#name#` autosave.
    let lower = name.to_ascii_lowercase();
    let autosave = name.len() > 1 && name.starts_with('#') && name.ends_with('#');
    !name.starts_with(['.', '_'])
        && !autosave
        && !UNFINISHED_SUFFIXES
            .iter()
            .any(|suffix| lower.ends_with(&suffix.to_ascii_lowercase()))
}

/// The data files at `path`: the file itself, or the files of the directory (sorted, not those
/// whose names start with `.` or `_` or end as an unfinished file's do ([`UNFINISHED_SUFFIXES`]),
/// nor subdirectories; a symbolic link to a file is read as the file, once when the directory
/// holds both). Empty files hold no data yet and are left out (a file being written may still
/// be empty: it is read once it has rows). A URL is read as one location.
fn data_files(path: &str) -> Result<Vec<String>> {
    if path.contains("://") {
        return Ok(vec![path.to_owned()]);
    }
    let metadata = std::fs::metadata(path).map_err(|source| Error::Io {
        context: format!("reading the files at `{path}`"),
        source,
    })?;
    if !metadata.is_dir() {
        return Ok(if metadata.len() > 0 {
            vec![path.to_owned()]
        } else {
            Vec::new()
        });
    }
    let listing = |source| Error::Io {
        context: format!("listing the directory `{path}`"),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let name = entry.file_name();
        if !is_data_file_name(&name.to_string_lossy()) {
            tracing::debug!(file = ?entry.path(), "a hidden or unfinished file's name: not read");
            continue;
        }
        if name.to_str().is_none() {
            // A lossy name would name no file: every run would fail on it, saying less.
            return Err(Error::msg(format!(
                "the file name {:?} in `{path}` is not UTF-8; rename the file",
                entry.path()
            )));
        }
        // `metadata` follows a symbolic link, as reading `path` itself does.
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file() && m.len() > 0) {
            files.push(format!("{}", entry.path().display()));
        }
    }
    files.sort();
    // A link and its target (or two links to one file): its rows once.
    let mut seen = std::collections::HashSet::new();
    files.retain(|file| match std::fs::canonicalize(file) {
        Ok(target) => seen.insert(target),
        // Reading it fails, naming it.
        Err(_) => true,
    });
    Ok(files)
}

/// Whether the local data file `path` holds rows: any but a CSV file holding its header alone
/// (no line break in it, or nothing but blanks after the first), which has no row yet (a
/// producer may still be writing it). Read until a row shows, 64 KiB at most; a file that
/// cannot be read is taken to hold rows: reading it fails, naming it.
fn holds_rows(path: &str, format: FileFormat) -> bool {
    use std::io::Read as _;
    if format != FileFormat::Csv {
        return true;
    }
    let Ok(file) = std::fs::File::open(path) else {
        return true;
    };
    const HEAD: usize = 64 * 1024;
    let mut reader = file.take(HEAD as u64);
    let (mut header_ended, mut seen) = (false, 0);
    let mut chunk = [0u8; 4096];
    loop {
        let read = match reader.read(&mut chunk) {
            // A header longer than that is no header: read, and told about if wrong.
            Ok(0) => return seen == HEAD,
            Ok(read) => read,
            Err(_) => return true,
        };
        seen += read;
        for byte in &chunk[..read] {
            if header_ended && !byte.is_ascii_whitespace() {
                return true;
            }
            // `\r` too: a file of old Mac line breaks.
            header_ended |= matches!(byte, b'\n' | b'\r');
        }
    }
}

/// Local file paths given to DataFusion as they are: its own parsing of a path takes `*`, `?`
/// and `[` for a glob, so `orders[1].csv` would read `orders1.csv` (and be recorded as read),
/// and a file named `orders_*.csv` every `orders_` file again. URLs are parsed as URLs.
struct LiteralPaths(Vec<ListingTableUrl>);

impl LiteralPaths {
    fn new(files: &[String]) -> Result<LiteralPaths> {
        let urls = files
            .iter()
            .map(|file| {
                if file.contains("://") {
                    return Ok(ListingTableUrl::parse(file)?);
                }
                let absolute = std::fs::canonicalize(file).map_err(|source| Error::Io {
                    context: format!("reading the file `{file}`"),
                    source,
                })?;
                let url = url::Url::from_file_path(&absolute)
                    .map_err(|()| Error::msg(format!("the file `{file}` has no file URL")))?;
                Ok(ListingTableUrl::try_new(url, None)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LiteralPaths(urls))
    }
}

impl DataFilePaths for LiteralPaths {
    fn to_urls(self) -> datafusion::error::Result<Vec<ListingTableUrl>> {
        Ok(self.0)
    }
}

/// An error if the output takes each write as the whole of its rows (a whole-table
/// overwrite, or a `full_snapshot` pipeline, which deletes or closes the keys a write lacks):
/// it would hold only the last run's new files, and the earlier ones are never read again.
fn refuse_whole_outputs(pipeline: &PipelineDescriptor) -> Result<()> {
    let output = pipeline.output;
    if pipeline.full_snapshot {
        return Err(Error::msg(format!(
            "pipeline `{}`: read_new_files reads only the files not ingested before, and the \
             pipeline is `full_snapshot`: each run would delete or close in {} the keys \
             that only earlier files hold; drop `full_snapshot`, or read every file with \
             read_files",
            pipeline.name,
            output.qualified_name()
        )));
    }
    if output.mode == WriteMode::Overwrite && output.overwrite == OverwriteScope::Table {
        return Err(Error::msg(format!(
            "pipeline `{}`: read_new_files reads only the files not ingested before, and \
             {} is `mode = overwrite`: each run would replace it with its new files' rows \
             alone; declare it `mode = append` (or `merge`), or read every file with \
             read_files",
            pipeline.name,
            output.qualified_name()
        )));
    }
    Ok(())
}

/// An error if `options` bound the files of a run whose output replaces partitions: one
/// partition's files split over two runs would leave it with the second run's alone.
fn refuse_split_partitions(pipeline: &PipelineDescriptor, options: NewFiles) -> Result<()> {
    let output = pipeline.output;
    if output.overwrite != OverwriteScope::Partitions {
        return Ok(());
    }
    let why = if options.max_files.is_some() {
        "`max_files` could split a partition's files over two runs, the second replacing the \
         first's rows; read every new file (NewFiles::default())"
    } else if options.settle.is_some() {
        "`settle` could leave some of a partition's files for a later run, which would replace \
         the rows of those read before; read every new file (NewFiles::default()), and have \
         the producer write each file under a temporary name (`.tmp`, `.part`, ...: not read) \
         and rename it when done"
    } else {
        return Ok(());
    };
    Err(Error::msg(format!(
        "pipeline `{}`: {} replaces the partitions each run writes, and {why}",
        pipeline.name,
        output.qualified_name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_removed_since_the_listing_is_none_and_a_file_is_found() {
        let dir = tempfile::tempdir().expect("dir");
        let there = dir.path().join("a.csv");
        std::fs::write(&there, "id\n1\n").expect("file");
        let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
        let found = FoundFile::still_at(&path(&there))
            .expect("looked at")
            .expect("there");
        assert_eq!(found.size, 5);
        let gone = FoundFile::still_at(&path(&dir.path().join("gone.csv"))).expect("looked at");
        assert_eq!(gone, None);
        // Another failure is still one, naming the file: a path through a file.
        let error = FoundFile::still_at(&path(&there.join("x.csv"))).expect_err("not a folder");
        assert!(error.to_string().contains("a.csv/x.csv"), "{error}");
    }
}
