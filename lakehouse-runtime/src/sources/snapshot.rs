//! Snapshots: recorded responses in a directory, one file per URL, read by [`SnapshotFetch`]
//! (offline, deterministic runs) and written by [`RecordingFetch`] (a live run that records).
//!
//! File naming, from the URL (see `data/opendata/README.md`):
//!
//! ```text
//! <dir>/<host>[_<port>]/<path segments…>[@limit=<l>&offset=<o>].json
//! ```
//!
//! - Only the paging keys `limit` and `offset` of the query are kept (sorted by name), after an
//!   `@` on the last segment. The other keys (`select`, `where`, `order_by`, `timezone`, …) are
//!   written by the pipeline's code, identical in every mode, and are left out of the name.
//! - `.json` is appended unless the last segment already ends with it.
//! - A character outside `A-Z a-z 0-9 . _ -` in a segment becomes `_`; `.` and `..` segments are
//!   refused, so a URL cannot name a file outside the directory.
//!
//! For example `https://opendata.paris.fr/api/explore/v2.1/catalog/datasets/velib-emplacement-des-stations/records?select=…&limit=100&offset=0`
//! is `opendata.paris.fr/api/explore/v2.1/catalog/datasets/velib-emplacement-des-stations/records@limit=100&offset=0.json`.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use url::Url;

use crate::ctx::redacted_url;

use super::http::{Body, BodyStream, Fetch};
use crate::error::{Error, Result};

/// The query keys that name a snapshot file.
const PAGING_KEYS: [&str; 2] = ["limit", "offset"];

/// Bytes read from a snapshot file at a time when streaming.
const CHUNK: usize = 64 * 1024;

/// The file of `dir` that holds the recorded response of `GET url` (see the module docs).
pub fn snapshot_path(dir: &Path, url: &Url) -> Result<PathBuf> {
    let refuse = |reason: &'static str| Error::InvalidName {
        what: "snapshot URL",
        name: redacted_url(url),
        reason,
    };
    let host = url.host_str().ok_or_else(|| refuse("it has no host"))?;
    // `http://../x` parses, with `..` for its host: as a folder, it would leave `dir`.
    if matches!(clean(host).as_str(), "." | "..") {
        return Err(refuse("its host is `.` or `..`"));
    }
    let mut path = dir.join(match url.port() {
        Some(port) => format!("{}_{port}", clean(host)),
        None => clean(host),
    });
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(refuse("a path segment is `.` or `..`"));
    }
    let (last, parents) = match segments.split_last() {
        Some((last, parents)) => (clean(last), parents),
        None => ("index".to_owned(), &[][..]),
    };
    for segment in parents {
        path.push(clean(segment));
    }
    let mut paging: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| PAGING_KEYS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), clean(&v)))
        .collect();
    paging.sort();
    let mut name = last;
    if !paging.is_empty() {
        let query: Vec<String> = paging.iter().map(|(k, v)| format!("{k}={v}")).collect();
        name = format!("{name}@{}", query.join("&"));
    }
    if !name.ends_with(".json") {
        name.push_str(".json");
    }
    path.push(name);
    Ok(path)
}

/// `segment` with every character outside `A-Z a-z 0-9 . _ -` replaced by `_`.
fn clean(segment: &str) -> String {
    segment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// [`Fetch`] from a snapshot directory: no network, the same bytes on every run.
#[derive(Clone, Debug)]
pub struct SnapshotFetch {
    dir: PathBuf,
    /// The largest file read whole, and the setting that raises it (as a live body's).
    max_body: Option<(u64, String)>,
}

impl SnapshotFetch {
    /// Reads recorded responses from `dir`, of any size.
    pub fn new(dir: impl Into<PathBuf>) -> SnapshotFetch {
        SnapshotFetch {
            dir: dir.into(),
            max_body: None,
        }
    }

    /// Refuses a recorded response of more than `limit` bytes read whole, as a live one over
    /// `setting`'s limit is: a snapshot run must not fill the memory a live run would not.
    /// Streamed exports are not bounded, as live.
    pub fn with_max_body(mut self, limit: u64, setting: impl Into<String>) -> SnapshotFetch {
        self.max_body = Some((limit, setting.into()));
        self
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for `url`, which must exist.
    fn file(&self, url: &Url) -> Result<PathBuf> {
        let path = snapshot_path(&self.dir, url)?;
        if path.is_file() {
            return Ok(path);
        }
        let paged_otherwise = other_paging(&path)
            .map(|other| {
                format!(
                    " (it holds the same URL with other paging, `{other}`: the snapshot was \
                     recorded with another page size, a setting such as `velib.page_size`)"
                )
            })
            .unwrap_or_default();
        Err(Error::source_final(
            path.display().to_string(),
            format!(
                "no recorded response for GET {} in the snapshot `{}`{paged_otherwise}: record \
                 a new snapshot into another directory (`--set opendata.mode=record --set \
                 opendata.dir=DIR`, which needs the network) and read it with `--opendata-dir \
                 DIR`, run with `--live`, or point `opendata.dir` at a snapshot that has it",
                redacted_url(url),
                self.dir.display(),
            ),
        ))
    }
}

/// The paging (`limit=..&offset=..`) of a file beside `path` recorded from the same URL with
/// another `limit`, if any.
fn other_paging(path: &Path) -> Option<String> {
    let limit = |paging: &str| {
        paging
            .split('&')
            .find(|pair| pair.starts_with("limit="))
            .map(str::to_owned)
    };
    let name = path.file_name()?.to_str()?;
    let (stem, paging) = name.split_once('@')?;
    let wanted = limit(paging);
    let prefix = format!("{stem}@");
    std::fs::read_dir(path.parent()?)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|other| {
            let paging = other.strip_prefix(&prefix)?.strip_suffix(".json")?;
            (limit(paging) != wanted).then(|| paging.to_owned())
        })
        .min()
}

/// `<file> (snapshot of <url>)`, for messages.
fn origin(path: &Path, url: &Url) -> String {
    format!("{} (snapshot of {})", path.display(), redacted_url(url))
}

impl Fetch for SnapshotFetch {
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<Body>> {
        Box::pin(async move {
            let path = self.file(url)?;
            if let Some((limit, setting)) = &self.max_body {
                let size = std::fs::metadata(&path)
                    .map_err(|e| io_error(&path, "cannot read the snapshot file", e))?
                    .len();
                if size > *limit {
                    return Err(Error::source_final(
                        origin(&path, url),
                        format!(
                            "the body is {size} bytes, more than the {limit} bytes allowed: \
                             raise `{setting}` if the response is expected to be this large, or \
                             ask for smaller pages"
                        ),
                    ));
                }
            }
            let read_path = path.clone();
            let bytes = blocking(move || std::fs::read(&read_path))
                .await
                .map_err(|e| io_error(&path, "cannot read the snapshot file", e))?;
            tracing::debug!(url = redacted_url(url), file = %path.display(), "read from snapshot");
            Ok(Body {
                url: url.clone(),
                origin: origin(&path, url),
                bytes,
                replayed: true,
            })
        })
    }

    fn stream<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<BodyStream>> {
        Box::pin(async move {
            let path = self.file(url)?;
            let open_path = path.clone();
            let file = blocking(move || std::fs::File::open(&open_path))
                .await
                .map_err(|e| io_error(&path, "cannot open the snapshot file", e))?;
            Ok(BodyStream {
                url: url.clone(),
                origin: origin(&path, url),
                chunks: file_chunks(file, path),
                replayed: true,
            })
        })
    }

    fn describe(&self) -> String {
        format!("snapshot {}", self.dir.display())
    }
}

/// The chunks of `file`, read off the async threads.
fn file_chunks(file: std::fs::File, path: PathBuf) -> BoxStream<'static, Result<Vec<u8>>> {
    futures::stream::unfold(Some(file), move |file| {
        let path = path.clone();
        async move {
            let mut file = file?;
            let read = blocking(move || {
                let mut buf = vec![0; CHUNK];
                let n = file.read(&mut buf)?;
                buf.truncate(n);
                Ok((file, buf))
            })
            .await;
            match read {
                Ok((_, buf)) if buf.is_empty() => None,
                Ok((file, buf)) => Some((Ok(buf), Some(file))),
                Err(e) => Some((
                    Err(io_error(&path, "cannot read the snapshot file", e)),
                    None,
                )),
            }
        }
    })
    .boxed()
}

/// [`Fetch`] from another fetcher (HTTP) that also writes every response into a snapshot
/// directory, under the names [`SnapshotFetch`] reads. A file is written whole (through a
/// `.partial` file renamed at the end), so an interrupted recording leaves no half file.
#[derive(Clone)]
pub struct RecordingFetch {
    inner: Arc<dyn Fetch>,
    dir: PathBuf,
    /// The URL each file was recorded from, by this recorder.
    recorded: Arc<std::sync::Mutex<std::collections::HashMap<PathBuf, String>>>,
}

impl std::fmt::Debug for RecordingFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingFetch")
            .field("inner", &self.inner.describe())
            .field("dir", &self.dir)
            .finish()
    }
}

impl RecordingFetch {
    /// Fetches through `inner` and records into `dir`.
    pub fn new(inner: Arc<dyn Fetch>, dir: impl Into<PathBuf>) -> RecordingFetch {
        recording_began();
        RecordingFetch {
            inner,
            dir: dir.into(),
            recorded: Arc::default(),
        }
    }

    /// The file `url`'s response is recorded in: an error if this recorder recorded another
    /// URL there (names keep only some characters, and the paging keys of the query), which
    /// a replay would then answer with the other's response.
    fn file_of(&self, url: &Url) -> Result<PathBuf> {
        let path = snapshot_path(&self.dir, url)?;
        let mut recorded = self
            .recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match recorded.get(&path) {
            Some(other) if other != url.as_str() => Err(Error::source_final(
                redacted_url(url),
                format!(
                    "its response would be recorded in {}, where {}'s is: a replay could \
                     not tell them apart (snapshot names keep letters, digits, `.`, `_`, `-` \
                     and the `limit` and `offset` of the query); record them into separate \
                     directories",
                    path.display(),
                    crate::ctx::redacted_url_text(other)
                ),
            )),
            Some(_) => Ok(path),
            None => {
                // (Another pipeline's recorder in this process, or an earlier attempt's, may
                // have saved the same URL already: that is no earlier recording.)
                let earlier = std::fs::metadata(&path)
                    .and_then(|meta| meta.modified())
                    .is_ok_and(|written| written < recording_began());
                if earlier {
                    tracing::warn!(
                        file = %path.display(),
                        "replacing a response an earlier recording saved: should this recording \
                         stop midway, the snapshot mixes the two (record into an empty directory)"
                    );
                }
                recorded.insert(path.clone(), url.as_str().to_owned());
                Ok(path)
            }
        }
    }
}

/// When this process began recording (its first [`RecordingFetch`]): a file written before it
/// is an earlier recording's.
fn recording_began() -> std::time::SystemTime {
    static BEGAN: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();
    *BEGAN.get_or_init(std::time::SystemTime::now)
}

impl Fetch for RecordingFetch {
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<Body>> {
        Box::pin(async move {
            let path = self.file_of(url)?;
            let body = self.inner.get(url).await?;
            let partial = partial_path(&path);
            let (write_path, bytes) = (path.clone(), body.bytes.clone());
            blocking(move || {
                if let Some(parent) = write_path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let written = create_new(&partial)
                    .and_then(|mut file| file.write_all(&bytes))
                    .and_then(|()| std::fs::rename(&partial, &write_path));
                if written.is_err() {
                    // Best effort: the write's own error is the one reported.
                    let _ = std::fs::remove_file(&partial);
                }
                written
            })
            .await
            .map_err(|e| io_error(&path, "cannot record the response", e))?;
            tracing::info!(url = redacted_url(url), file = %path.display(), "recorded");
            Ok(body)
        })
    }

    fn stream<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<BodyStream>> {
        Box::pin(async move {
            let path = self.file_of(url)?;
            let body = self.inner.stream(url).await?;
            let partial = partial_path(&path);
            let create = partial.clone();
            let file = blocking(move || {
                if let Some(parent) = create.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                create_new(&create)
            })
            .await
            .map_err(|e| io_error(&path, "cannot record the response", e))?;
            let tee = Tee {
                chunks: body.chunks,
                file: Some(file),
                partial,
                path,
                finished: false,
            };
            Ok(BodyStream {
                url: body.url,
                origin: body.origin,
                chunks: futures::stream::unfold(tee, Tee::next).boxed(),
                replayed: body.replayed,
            })
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} recording into {}",
            self.inner.describe(),
            self.dir.display()
        )
    }
}

/// A body stream copied into a temporary file, renamed to its snapshot name at the end; the
/// temporary file is removed if the stream fails or is dropped before its end.
struct Tee {
    chunks: BoxStream<'static, Result<Vec<u8>>>,
    file: Option<std::fs::File>,
    partial: PathBuf,
    path: PathBuf,
    /// Renamed into place: nothing to remove.
    finished: bool,
}

impl Drop for Tee {
    fn drop(&mut self) {
        if !self.finished {
            // Best effort, and quick: an unlink.
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

impl Tee {
    /// The next chunk, written to the file first; the file is completed at the end.
    async fn next(mut self) -> Option<(Result<Vec<u8>>, Tee)> {
        let mut file = self.file.take()?;
        match self.chunks.next().await {
            Some(Ok(chunk)) => {
                let copy = chunk.clone();
                match blocking(move || file.write_all(&copy).map(|()| file)).await {
                    Ok(file) => {
                        self.file = Some(file);
                        Some((Ok(chunk), self))
                    }
                    Err(e) => Some((
                        Err(io_error(&self.path, "cannot record the response", e)),
                        self,
                    )),
                }
            }
            Some(Err(e)) => {
                let partial = self.partial.clone();
                // Best effort: the recording failed with the stream, its error is the one shown.
                let _ = blocking(move || std::fs::remove_file(&partial)).await;
                Some((Err(e), self))
            }
            None => {
                let (partial, path) = (self.partial.clone(), self.path.clone());
                match blocking(move || {
                    file.sync_all()?;
                    drop(file);
                    std::fs::rename(&partial, &path)
                })
                .await
                {
                    Ok(()) => {
                        self.finished = true;
                        tracing::info!(file = %self.path.display(), "recorded");
                        None
                    }
                    Err(e) => Some((
                        Err(io_error(&self.path, "cannot record the response", e)),
                        self,
                    )),
                }
            }
        }
    }
}

/// A temporary name beside `path`, unique to this write (two pipelines may record one URL at
/// once, say a GBFS discovery document).
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{:016x}.partial", rand::random::<u64>()));
    PathBuf::from(name)
}

/// Creates `path`, which must not exist (nor be a link to follow).
fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Runs blocking file I/O off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => Err(std::io::Error::other(join.to_string())),
    }
}

/// An I/O error on `path`.
fn io_error(path: &Path, what: &str, source: std::io::Error) -> Error {
    Error::Io {
        context: format!("{what} `{}`", path.display()),
        source,
    }
}
