//! Finding the data files: a local directory's, an object-store prefix's, grouped by layout
//! (a CSV header, a Parquet schema) so that each group is one scan.

use std::sync::Arc;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::context::DataFilePaths;

use super::FileFormat;
use crate::ctx::Ctx;
use crate::error::{Error, Result};

impl Ctx {
    /// The data objects at the object-store location `url` (the object, or those directly under
    /// the prefix, chosen by name and size as a directory's files are), as URLs grouped as
    /// [`same_layout`] groups local files: a CSV object's header is its first line, read by a
    /// range request. (Read as one location, every CSV object was parsed by the columns of the
    /// first one's header: a file ordering them otherwise had its values in the wrong columns.)
    pub(super) async fn objects_by_layout(
        &self,
        format: FileFormat,
        url: &str,
    ) -> Result<Vec<Vec<String>>> {
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
                    .await
                    .map_err(|(object, e)| {
                        // The store's error (a timeout, a refusal, the object gone since the
                        // listing) says what it is, and another attempt may read it.
                        if !footer_unreadable(&e) {
                            return failed(&e);
                        }
                        let base = location.object_store();
                        let hidden = if location.is_collection() {
                            ", or give it a name starting with `_` or `.` (not read)"
                        } else {
                            ""
                        };
                        Error::Refused(format!(
                            "pipeline `{}`: the object `{}` has no Parquet footer that reads \
                             ({e}): is it a Parquet file? Remove it from `{url}`{hidden}",
                            self.pipeline,
                            object_url(&base, &object)
                        ))
                    })?
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
}

/// `files` grouped by layout, each group in the order its first file comes: files whose layout
/// cannot be read (or object-store locations) are groups of their own, whose read then fails or
/// succeeds on its own.
pub(super) fn same_layout(format: FileFormat, files: &[String]) -> Vec<Vec<String>> {
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
) -> std::result::Result<
    String,
    (
        deltalake::logstore::object_store::path::Path,
        datafusion::error::DataFusionError,
    ),
> {
    use datafusion::datasource::file_format::FileFormat as _;
    let schema = datafusion::datasource::file_format::parquet::ParquetFormat::default()
        .infer_schema(state, store, std::slice::from_ref(object))
        .await
        .map_err(|e| (object.location.clone(), e))?;
    Ok(format!("{:?}", schema.fields()))
}

/// Whether `error`, reading a Parquet footer, is about the bytes read (no Parquet file, or a
/// corrupt one: the same at every attempt), not about reading them.
fn footer_unreadable(error: &datafusion::error::DataFusionError) -> bool {
    use datafusion::error::DataFusionError;
    use datafusion::parquet::errors::ParquetError;
    match error.find_root() {
        DataFusionError::ParquetError(error) => {
            !matches!(error.as_ref(), ParquetError::External(_))
        }
        _ => false,
    }
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
pub(super) fn data_files(path: &str) -> Result<Vec<String>> {
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
pub(super) fn holds_rows(path: &str, format: FileFormat) -> bool {
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
pub(super) struct LiteralPaths(Vec<ListingTableUrl>);

impl LiteralPaths {
    pub(super) fn new(files: &[String]) -> Result<LiteralPaths> {
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
