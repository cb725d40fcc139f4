//! Files as a source: [`Ctx::read_files`] reads every file at a path, [`Ctx::read_new_files`]
//! those a pipeline has not ingested before (their record is [`FileHistory`]'s).

mod history;
mod listing;
mod ndjson;
mod scan;

pub(crate) use history::{FileHistory, FoundFile};
use listing::{data_files, holds_rows, same_layout};
pub(crate) use scan::GroupedScan;
use scan::{group_name, read_alone, scanned_files};

use datafusion::dataframe::DataFrame;

use super::Ctx;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::graph::PipelineDescriptor;
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
            return Err(Error::Refused(format!(
                "pipeline `{}`: read_new_files lists local files only, and `{path}` is a URL: \
                 read it with read_files",
                self.pipeline
            )));
        }
        if options.max_files == Some(0) {
            return Err(Error::Refused(format!(
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

/// An error if the output takes each write as the whole of its rows (a whole-table
/// overwrite, or a `full_snapshot` pipeline, which deletes or closes the keys a write lacks):
/// it would hold only the last run's new files, and the earlier ones are never read again.
fn refuse_whole_outputs(pipeline: &PipelineDescriptor) -> Result<()> {
    let output = pipeline.output;
    if pipeline.full_snapshot {
        return Err(Error::Refused(format!(
            "pipeline `{}`: read_new_files reads only the files not ingested before, and the \
             pipeline is `full_snapshot`: each run would delete or close in {} the keys \
             that only earlier files hold; drop `full_snapshot`, or read every file with \
             read_files",
            pipeline.name,
            output.qualified_name()
        )));
    }
    if output.mode == WriteMode::Overwrite && output.overwrite == OverwriteScope::Table {
        return Err(Error::Refused(format!(
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
        "`at_most` (`max_files`) could split a partition's files over two runs, the second replacing the \
         first's rows; read every new file (NewFiles::default())"
    } else if options.settle.is_some() {
        "`settled_for` could leave some of a partition's files for a later run, which would \
         replace the rows of those read before; read every new file (NewFiles::default()), and have \
         the producer write each file under a temporary name (`.tmp`, `.part`, ...: not read) \
         and rename it when done"
    } else {
        return Ok(());
    };
    Err(Error::Refused(format!(
        "pipeline `{}`: {} replaces the partitions each run writes, and {why}",
        pipeline.name,
        output.qualified_name()
    )))
}
