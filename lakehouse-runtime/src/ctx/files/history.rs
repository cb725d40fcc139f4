//! What a pipeline ingested: the files found at a run, and the record of those read before.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ctx::RunInfo;
use crate::error::{Error, Result};
use crate::graph::PipelineDescriptor;
use crate::ledger::{IngestedFile, Ledger};
use crate::table::Timestamp;

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
    pub(super) fn still_at(path: &str) -> Result<Option<FoundFile>> {
        match FoundFile::at(path) {
            Ok(found) => Ok(Some(found)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// What tells a changed file from the one ingested.
    pub(super) fn version(&self) -> (i64, Option<Timestamp>) {
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
    pub(super) pipeline: &'static PipelineDescriptor,
    /// `--full-refresh`: nothing counts as ingested.
    pub(super) full_refresh: bool,
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
    pub(super) async fn known(&self) -> Result<&HashMap<String, (i64, Option<Timestamp>)>> {
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
