//! Open-data sources: an Opendatasoft Explore v2.1 client ([`OdsClient`]), a GBFS client
//! ([`GbfsClient`]), one HTTP retry policy for both ([`RetryPolicy`]), and snapshots of recorded
//! responses ([`SnapshotFetch`], [`RecordingFetch`]).
//!
//! The layers:
//!
//! 1. **Transport** — [`Fetch`] returns the body of a URL: [`HttpFetch`] asks the server under the
//!    retry policy, [`SnapshotFetch`] reads the file [`snapshot_path`] names, [`RecordingFetch`]
//!    does the first and writes the second.
//! 2. **Paging** — [`OdsPages`] and [`GbfsFeed::into_pages`] turn bodies into [`Page`]s of
//!    [`RawRecord`]s, whatever the transport, so snapshot and live runs share every line of
//!    paging and parsing.
//! 3. **Rows** — [`collect_frame`] maps each record to a row of the target table with a closure
//!    that reads it through [`Record`]; a record the closure rejects becomes a
//!    [`Reject`] (reason and raw JSON) for `lakehouse.rejects`. Each page becomes Arrow record
//!    batches of the table's schema before the next one is fetched.
//!
//! A malformed page (truncated or invalid JSON), an HTTP failure or an inconsistent
//! `total_count` fails the whole ingestion, so nothing is written.
//!
//! Settings (see [`OpenData::from_settings`] and [`RetryPolicy::from_settings`]):
//! `opendata.mode` (`snapshot`, the default, | `live` | `record`), `opendata.dir`, and
//! `opendata.http.*` / `opendata.<source>.http.*` for timeouts and retries.

mod gbfs;
mod http;
mod json;
mod opendatasoft;
mod record;
mod retry;
mod snapshot;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde::Serialize;
use serde_json::Value;

pub use gbfs::{GbfsClient, GbfsFeed};
pub use http::{Body, BodyStream, Fetch, HttpFetch};
pub use json::{ArraySplitter, api_error_message, raw_elements};
pub use opendatasoft::{MAX_PAGE_SIZE, OFFSET_CAP, OPENDATA_PARIS, OdsClient, OdsPages, OdsQuery};
pub use record::{Area, Record, Rejected, parse_datetime};
pub use retry::{DEFAULT_MAX_BODY_BYTES, Failure, RetryPolicy, SystemTimer, Timer, retry_hint};
pub use snapshot::{RecordingFetch, SnapshotFetch, snapshot_path};
/// URLs, re-exported so pipelines need not depend on `url`.
pub use url::Url;

use crate::ctx::{Ctx, Reject, Settings};
use crate::error::{Error, Result};
use crate::frame::{Frame, batches_from_rows};
use crate::table::Table;

/// One record as the source sent it: its exact JSON text and its parsed value.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    /// The record's JSON text, byte for byte (kept for the rejects table).
    pub raw: String,
    /// The parsed record.
    pub value: Value,
    /// Whether bytes of the record that are not UTF-8 (a Latin-1 `é`, say) were replaced by
    /// U+FFFD (`�`), in `raw` and `value`: the record is kept, and noted in `lakehouse.rejects`.
    pub replaced_bytes: bool,
}

impl RawRecord {
    /// Parses one record's JSON text. Bytes that are not UTF-8 are replaced by U+FFFD (as
    /// Spark's reader does) rather than fail the page: one record of a source that mixes
    /// encodings is kept, and said to be altered (`replaced_bytes`).
    pub fn parse(bytes: Vec<u8>) -> Result<RawRecord, String> {
        let (raw, replaced_bytes) = match String::from_utf8(bytes) {
            Ok(raw) => (raw, false),
            Err(error) => (String::from_utf8_lossy(error.as_bytes()).into_owned(), true),
        };
        let value = serde_json::from_str(&raw).map_err(|e| e.to_string())?;
        Ok(RawRecord {
            raw,
            value,
            replaced_bytes,
        })
    }
}

/// The reason a record whose bytes were not all UTF-8 is noted with in `lakehouse.rejects`.
pub const REPLACED_BYTES: &str = "kept, with U+FFFD (`�`) for bytes that are not UTF-8";

/// The records of `body`'s array at `path`, raw text kept; `body` is valid JSON.
pub(crate) fn records_at(body: &Body, path: &[&str], what: &str) -> Result<Vec<RawRecord>> {
    let malformed = |e: String| body.fault(format!("malformed {what}: {e}; nothing was written"));
    raw_elements(without_bom(&body.bytes), path)
        .map_err(malformed)?
        .into_iter()
        .map(|raw| RawRecord::parse(raw.to_vec()).map_err(malformed))
        .collect()
}

/// One page of records.
#[derive(Clone, PartialEq)]
pub struct Page {
    /// The URL the page is from; the `source` of its rejects. It is the same URL in snapshot
    /// and live modes, so both give the same rows and rejects.
    pub url: Url,
    /// Where it was read from (URL or snapshot file), for messages.
    pub origin: String,
    /// The records, in the order received.
    pub records: Vec<RawRecord>,
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("url", &crate::ctx::redacted_url(&self.url))
            .field("origin", &self.origin)
            .field("records", &self.records.len())
            .finish()
    }
}

impl Page {
    /// The page of the records in `body`'s JSON array at `path` (`&["results"]` for
    /// `{"results": [..]}`, `&[]` for a bare array), each record's text kept byte for byte for
    /// the rejects. A body that is not JSON (truncated, an HTML error page), or holds no array
    /// there, fails naming its origin; nothing is written.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// let body = fetch.get(&Url::parse(url).map_err(Error::other)?).await?;
    /// let mut pages = SinglePage::new(Page::from_json(&body, &["orders"])?);
    /// ```
    pub fn from_json(body: &Body, path: &[&str]) -> Result<Page> {
        // Validated without building a tree: the records are parsed one by one below.
        serde_json::from_slice::<serde::de::IgnoredAny>(without_bom(&body.bytes)).map_err(|e| {
            body.fault(format!(
                "malformed response ({e}): the body is truncated or not JSON ({}); nothing \
                     was written",
                body.excerpt()
            ))
        })?;
        Ok(Page {
            url: body.url.clone(),
            origin: body.origin.clone(),
            records: records_at(body, path, "response")?,
        })
    }
}

/// Pages of records, fetched one at a time.
pub trait Pages {
    /// The next page, `None` after the last. An error ends the ingestion.
    fn next_page(&mut self) -> impl Future<Output = Result<Option<Page>>> + Send;
}

/// A source that is one page (a GBFS feed).
#[derive(Clone, Debug)]
pub struct SinglePage(Option<Page>);

impl SinglePage {
    /// The pages of `page` alone.
    pub fn new(page: Page) -> SinglePage {
        SinglePage(Some(page))
    }
}

impl Pages for SinglePage {
    fn next_page(&mut self) -> impl Future<Output = Result<Option<Page>>> + Send {
        std::future::ready(Ok(self.0.take()))
    }
}

/// What [`collect_batches`] read.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// The accepted rows, as record batches of the target schema (at least one per page).
    pub batches: Vec<RecordBatch>,
    /// The rejected records, with reasons and raw JSON, in order.
    pub rejects: Vec<Reject>,
    /// The records kept with NULL for fields they could not be read from
    /// ([`Record::or_null`]), with the reasons and raw JSON, in order: among the rows, and not
    /// counted against the reject limit.
    pub kept_with_nulls: Vec<Reject>,
    /// Number of accepted rows.
    pub rows: usize,
    /// Number of pages read.
    pub pages: usize,
}

/// Reads every page of `pages`, maps each record with `row` (reading it through [`Record`]) and
/// turns each page's rows into record batches of `schema` before the next page is fetched. A
/// record `row` rejects is kept as a [`Reject`]; an error of `pages` stops everything.
pub async fn collect_batches<R, F>(
    schema: SchemaRef,
    pages: &mut impl Pages,
    mut row: F,
) -> Result<Collected>
where
    R: Serialize,
    F: FnMut(&Record<'_>) -> Result<R, Rejected>,
{
    let mut collected = Collected::default();
    while let Some(page) = pages.next_page().await? {
        collected.pages += 1;
        let mut rows = Vec::with_capacity(page.records.len());
        for record in &page.records {
            let notes = std::cell::RefCell::new(Vec::new());
            match Record::with_notes(&record.value, &notes).and_then(|r| row(&r)) {
                Ok(value) => {
                    rows.push(value);
                    if record.replaced_bytes {
                        collected.kept_with_nulls.push(Reject {
                            source: crate::ctx::redacted_url(&page.url),
                            reason: REPLACED_BYTES.to_owned(),
                            raw: record.raw.clone(),
                        });
                    }
                    let notes = notes.into_inner();
                    if !notes.is_empty() {
                        collected.kept_with_nulls.push(Reject {
                            source: crate::ctx::redacted_url(&page.url),
                            reason: format!("kept, with NULL for: {}", notes.join("; ")),
                            raw: record.raw.clone(),
                        });
                    }
                }
                Err(Rejected(reason)) => collected.rejects.push(Reject {
                    source: crate::ctx::redacted_url(&page.url),
                    reason,
                    raw: record.raw.clone(),
                }),
            }
        }
        collected.rows += rows.len();
        collected
            .batches
            .extend(batches_from_rows(schema.clone(), &rows)?);
    }
    Ok(collected)
}

/// [`collect_batches`] into a frame of `T` (its output schema); the rejects go to
/// [`Ctx::reject`] once every page was read (a failed page records none; rejects over the
/// limit are recorded with the failed attempt).
pub async fn collect_frame<T, R, F>(cx: &Ctx, pages: &mut impl Pages, row: F) -> Result<Frame<T>>
where
    T: Table,
    R: Serialize,
    F: FnMut(&Record<'_>) -> Result<R, Rejected>,
{
    // The plan check calls no service: its pipeline may not guard with `cx.is_dry_run()`.
    if cx.is_dry_run() {
        return cx.empty();
    }
    let max_ratio = max_reject_ratio(cx.settings(), cx.pipeline())?;
    let collected = collect_batches(T::DEF.output_arrow_schema(), pages, row)
        .await
        // Only rows the closure made that do not fit the table are refused (a code mistake).
        .map_err(|error| cx.naming_rows_of::<T>(error))?;
    tracing::info!(
        pipeline = cx.pipeline(),
        rows = collected.rows,
        rejected = collected.rejects.len(),
        pages = collected.pages,
        "records read"
    );
    if let Err(error) = check_rejects(&collected, max_ratio, cx.pipeline()) {
        // Recorded with the failed attempt: they show what changed in the source.
        cx.reject(collected.rejects);
        cx.reject(collected.kept_with_nulls);
        return Err(error);
    }
    if !collected.rejects.is_empty() {
        tracing::warn!(
            pipeline = cx.pipeline(),
            rejected = collected.rejects.len(),
            "records rejected (kept in lakehouse.rejects): {}",
            reasons_summary(&collected.rejects)
        );
    }
    if !collected.kept_with_nulls.is_empty() {
        tracing::warn!(
            pipeline = cx.pipeline(),
            kept = collected.kept_with_nulls.len(),
            "records kept with NULL for fields they could not be read from (in lakehouse.rejects): {}",
            reasons_summary(&collected.kept_with_nulls).replace("kept, with NULL for: ", "")
        );
    }
    cx.reject(collected.rejects);
    cx.reject(collected.kept_with_nulls);
    cx.frame_from_batches(collected.batches)
}

/// The `Authorization` header value of `source`'s requests from its setting
/// `opendata.<source>.authorization` (`Apikey <key>` for an Opendatasoft API key), or, when that
/// is `env:NAME`, the environment variable `NAME` (so the secret stays out of command lines and
/// shell history).
/// Read only when a request is to be sent (a snapshot run needs no key).
fn authorization(setting: &str, source: &str) -> Result<String> {
    match setting.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| {
            Error::Refused(format!(
                "`opendata.{source}.authorization` reads the environment variable `{name}`, \
                 which is not set"
            ))
        }),
        None => Ok(setting.to_owned()),
    }
}

/// The share of records an ingestion may reject before it fails, unless set otherwise: above
/// it, the source's format has most likely changed, and writing what is left would pass a broken
/// feed for a quiet one.
pub const DEFAULT_MAX_REJECT_RATIO: f64 = 0.1;

/// The reject limit of `pipeline`: `ingest.<pipeline>.max_reject_ratio`, else
/// `ingest.max_reject_ratio`, else [`DEFAULT_MAX_REJECT_RATIO`]; a ratio from 0 to 1.
pub fn max_reject_ratio(settings: &Settings, pipeline: &str) -> Result<f64> {
    let specific = format!("ingest.{pipeline}.max_reject_ratio");
    let key = if settings.get(&specific).is_some() {
        specific
    } else {
        "ingest.max_reject_ratio".to_owned()
    };
    let ratio: f64 = settings.parse_or(&key, DEFAULT_MAX_REJECT_RATIO)?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(Error::Refused(format!(
            "setting `{key}` = {ratio} is invalid: a share of the records, from 0 to 1 (0.1 is 10 %)"
        )));
    }
    Ok(ratio)
}

/// Fails an ingestion that rejected every record it read, or more than `max_ratio` of them,
/// naming the reasons and the first rejected record; nothing is written then.
pub fn check_rejects(collected: &Collected, max_ratio: f64, pipeline: &str) -> Result<()> {
    let rejected = collected.rejects.len();
    let read = rejected + collected.rows;
    let Some(first) = collected.rejects.first() else {
        return Ok(());
    };
    let ratio = rejected as f64 / read as f64;
    if collected.rows > 0 && ratio <= max_ratio {
        return Ok(());
    }
    let fix = if collected.rows == 0 {
        "every record was rejected, so no limit lets this through: fix the parsing of the \
         changed format"
            .to_owned()
    } else {
        format!(
            "to accept the rest, raise `ingest.{pipeline}.max_reject_ratio` (or \
             `ingest.max_reject_ratio`; now {max_ratio})"
        )
    };
    const EXCERPT: usize = 300;
    let excerpt: String = first.raw.chars().take(EXCERPT).collect();
    let cut = if first.raw.chars().count() > EXCERPT {
        "…"
    } else {
        ""
    };
    // Not retried (the same answer fails the same way): a data-quality failure.
    Err(Error::Quality(format!(
        "{}: {}",
        first.source,
        format_args!(
            "{pipeline} rejected {rejected} of {read} records ({:.1} %, more than the {:.1} % \
             allowed): {}; the first: {excerpt}{cut}. The source's format may have changed; \
             nothing was written; {fix}",
            ratio * 100.0,
            max_ratio * 100.0,
            reasons_summary(&collected.rejects),
        ),
    )))
}

/// The reasons of `rejects`, the most frequent first, with their counts (at most five).
fn reasons_summary(rejects: &[Reject]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for reject in rejects {
        *counts.entry(reject.reason.as_str()).or_default() += 1;
    }
    let mut reasons: Vec<(&str, usize)> = counts.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut summary: Vec<String> = reasons
        .iter()
        .take(5)
        .map(|(reason, count)| format!("{reason} (×{count})"))
        .collect();
    if reasons.len() > 5 {
        summary.push(format!("and {} other reason(s)", reasons.len() - 5));
    }
    summary.join("; ")
}

/// `bytes` without a leading UTF-8 byte order mark (which JSON forbids and some tools write).
pub(crate) fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Where open data is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the recorded responses in the snapshot directory: offline and deterministic.
    Snapshot,
    /// From the real services.
    Live,
    /// From the real services, writing every response into the snapshot directory.
    Record,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "snapshot" => Ok(Mode::Snapshot),
            "live" => Ok(Mode::Live),
            "record" => Ok(Mode::Record),
            other => Err(format!(
                "unknown mode {other:?}: expected `snapshot`, `live` or `record`"
            )),
        }
    }
}

/// How one open-data source reads: its mode, snapshot directory and retry policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenData {
    source: String,
    mode: Mode,
    dir: PathBuf,
    policy: RetryPolicy,
    authorization: Option<Secret>,
}

/// `path` made absolute and without links, as far as it exists (the rest appended as it is:
/// a directory still to be made).
fn resolved(path: &Path) -> Option<PathBuf> {
    // `..` taken off lexically first: `new/../x` (not there yet) has no last name to keep.
    let mut lexical = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir if lexical.file_name().is_some() => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(found) = std::fs::canonicalize(existing) {
            return Some(rest.iter().rev().fold(found, |all, part| all.join(part)));
        }
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?;
        if existing.as_os_str().is_empty() {
            existing = Path::new(".");
        }
    }
}

/// A value kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl OpenData {
    /// The configuration of `source` (`velib`, `velov`, …) from the settings:
    /// `opendata.mode` (`snapshot` by default, `live`, or `record` to write a new snapshot),
    /// `opendata.dir` (default `default_dir`, the bundled snapshot; required to record), and
    /// the retry policy of
    /// [`RetryPolicy::from_settings`].
    pub fn from_settings(
        settings: &Settings,
        source: &str,
        default_dir: &Path,
    ) -> Result<OpenData> {
        let mode = settings.parse_or("opendata.mode", Mode::Snapshot)?;
        let dir = match settings.get("opendata.dir") {
            Some(dir) => PathBuf::from(dir),
            None if mode == Mode::Record => {
                return Err(Error::Refused(
                    "`opendata.mode=record` needs `opendata.dir` (`--opendata-dir`): the \
                     directory to write the new snapshot into (the bundled one is generated \
                     and is not overwritten)"
                        .to_owned(),
                ));
            }
            // Resolved: the bundled one is given relative to a crate (`…/pipelines/../data`),
            // and its path reaches logs and errors.
            None => resolved(default_dir).unwrap_or_else(|| default_dir.to_path_buf()),
        };
        // The bundled directory, one inside it (to be made, maybe), or one holding it.
        let overlaps = |a: &Path, b: &Path| {
            let (Some(a), Some(b)) = (resolved(a), resolved(b)) else {
                return false;
            };
            a.starts_with(&b) || b.starts_with(&a)
        };
        if mode == Mode::Record && overlaps(&dir, default_dir) {
            return Err(Error::Refused(format!(
                "`opendata.mode=record` would write into `{}`, over the bundled snapshot, which is \
                 generated (and checked against its generator by a test): record into another \
                 directory (`--opendata-dir DIR`)",
                dir.display()
            )));
        }
        Ok(OpenData {
            source: source.to_owned(),
            mode,
            dir,
            policy: RetryPolicy::from_settings(settings, source)?,
            authorization: settings
                .get(&format!("opendata.{source}.authorization"))
                .map(|value| Secret(value.to_owned())),
        })
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Refuses to ask the real services (`live`, `record`) for a run whose logical time is
    /// more than an hour from now (a resume, a `--run-at` or a backfill of a past time): their
    /// answer is now's, and would be stamped with that time (history made up, and rows a
    /// plausibility check against `run_at` drops). `opendata.allow_other_run_at=true` allows it;
    /// a snapshot recorded at that time is read with `--opendata-dir` instead.
    pub fn check_run_at(&self, run_at: crate::table::Timestamp, settings: &Settings) -> Result<()> {
        const TOLERANCE_MICROS: i64 = 3_600_000_000;
        if self.mode == Mode::Snapshot || settings.parse_or("opendata.allow_other_run_at", false)? {
            return Ok(());
        }
        let now = crate::table::Timestamp::now();
        if now.0.abs_diff(run_at.0) <= TOLERANCE_MICROS.unsigned_abs() {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "{}: the live services answer with their data of now ({now}), and this run's logical \
             time is {run_at}: stamped with it, that data would make up history. Read a snapshot \
             recorded then (`--set opendata.mode=snapshot --opendata-dir DIR`, which a resume \
             of a `--live` run needs too), run the pipeline now (a fresh run), or set \
             `opendata.allow_other_run_at=true` to stamp now's data with {run_at}",
            self.source
        )))
    }

    /// The snapshot directory (read in `snapshot` mode, written in `record` mode).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The retry policy (used in `live` and `record` modes).
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The HTTP fetcher: the retry policy, and the source's authorization if set.
    fn http(&self) -> Result<HttpFetch> {
        let http = HttpFetch::new(self.policy.clone())?;
        match &self.authorization {
            Some(Secret(setting)) => http
                .with_authorization(&authorization(setting, &self.source)?)
                .map_err(|error| {
                    Error::Refused(format!("`opendata.{}.authorization`: {error}", self.source))
                }),
            None => Ok(http),
        }
    }

    /// The fetcher of the mode.
    pub fn fetch(&self) -> Result<Arc<dyn Fetch>> {
        let fetch: Arc<dyn Fetch> = match self.mode {
            Mode::Snapshot => {
                if !self.dir.is_dir() {
                    return Err(Error::source_final(
                        self.dir.display().to_string(),
                        "the open-data snapshot directory does not exist: set `opendata.dir` \
                         (`--opendata-dir`) to a snapshot, or run with `--live`",
                    ));
                }
                Arc::new(
                    SnapshotFetch::new(&self.dir)
                        .with_max_body(self.policy.max_body_bytes, self.policy.setting("max_body")),
                )
            }
            Mode::Live => Arc::new(self.http()?),
            Mode::Record => Arc::new(RecordingFetch::new(Arc::new(self.http()?), &self.dir)),
        };
        tracing::info!(
            source = self.source.as_str(),
            "reading from {}",
            fetch.describe()
        );
        Ok(fetch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(reason: &str) -> Reject {
        Reject {
            source: "https://example.org/records".to_owned(),
            reason: reason.to_owned(),
            raw: "{}".to_owned(),
        }
    }

    #[test]
    fn reasons_are_summarised_most_frequent_first() {
        let rejects: Vec<Reject> = ["b", "a", "b", "c", "d", "e", "f", "g", "b", "a"]
            .into_iter()
            .map(reject)
            .collect();
        assert_eq!(
            reasons_summary(&rejects),
            "b (×3); a (×2); c (×1); d (×1); e (×1); and 2 other reason(s)"
        );
    }

    fn collected(rows: usize, reasons: &[&str]) -> Collected {
        Collected {
            rows,
            rejects: reasons.iter().copied().map(reject).collect(),
            ..Collected::default()
        }
    }

    #[test]
    fn an_ingestion_fails_above_its_reject_limit() {
        assert!(check_rejects(&collected(10, &[]), 0.1, "p").is_ok());
        assert!(check_rejects(&collected(0, &[]), 0.1, "p").is_ok());
        assert!(check_rejects(&collected(19, &["a"]), 0.1, "p").is_ok());
        let error = check_rejects(&collected(17, &["a", "b", "a"]), 0.1, "p")
            .expect_err("15 % > 10 %")
            .to_string();
        assert_eq!(
            error,
            "https://example.org/records: p rejected 3 of 20 records (15.0 %, more than the \
             10.0 % allowed): a (×2); b (×1); the first: {}. The source's format may have \
             changed; nothing was written; to accept the rest, raise \
             `ingest.p.max_reject_ratio` (or `ingest.max_reject_ratio`; now 0.1)"
        );
        // Every record rejected fails whatever the limit.
        let error = check_rejects(&collected(0, &["a"]), 1.0, "p").expect_err("nothing left");
        assert!(
            error.to_string().contains("p rejected 1 of 1 records"),
            "{error}"
        );
    }

    #[test]
    fn the_reject_limit_comes_from_the_settings() {
        let mut settings = Settings::new();
        assert_eq!(max_reject_ratio(&settings, "p").expect("default"), 0.1);
        settings.set("ingest.max_reject_ratio", "0.2");
        assert_eq!(max_reject_ratio(&settings, "p").expect("global"), 0.2);
        settings.set("ingest.p.max_reject_ratio", "0");
        assert_eq!(max_reject_ratio(&settings, "p").expect("own"), 0.0);
        assert_eq!(max_reject_ratio(&settings, "q").expect("global"), 0.2);
        settings.set("ingest.q.max_reject_ratio", "10");
        let error = max_reject_ratio(&settings, "q").expect_err("not a share");
        assert!(
            error
                .to_string()
                .contains("`ingest.q.max_reject_ratio` = 10 is invalid"),
            "{error}"
        );
    }

    #[test]
    fn the_default_directory_is_named_resolved() {
        let root = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir_all(root.path().join("crate")).expect("crate");
        std::fs::create_dir_all(root.path().join("data")).expect("data");
        let open = OpenData::from_settings(
            &Settings::new(),
            "velib",
            &root.path().join("crate/../data"),
        )
        .expect("snapshot mode");
        let canonical = std::fs::canonicalize(root.path().join("data")).expect("canonical");
        assert_eq!(open.dir, canonical);
    }
}
