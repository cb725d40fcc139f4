//! The Opendatasoft Explore API v2.1 client (`opendata.paris.fr` and every Opendatasoft portal).
//!
//! - `GET {base}catalog/datasets/{dataset}/records?select=&where=&order_by=&timezone=&limit=&offset=`
//!   answers `{"total_count": N, "results": [..]}`; `limit` is at most 100 and `offset + limit`
//!   at most 10 000.
//! - `GET {base}catalog/datasets/{dataset}/exports/json?select=&where=&order_by=&timezone=`
//!   answers a bare JSON array of every record, with no cap.
//!
//! [`OdsPages`] pages through the records with a stable `order_by`, checks every page's
//! `total_count` and the number of records received against it, asks each page after the first
//! from the record the previous one ended with (and checks it is that record: pages shifted by
//! records added and removed meanwhile would read one twice or never), and reads the whole
//! result from the exports endpoint, streamed, when `total_count` is more than offset paging
//! can reach.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt as _;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use url::Url;

use super::http::{BodyStream, Fetch};
use super::json::ArraySplitter;
use super::{Page, Pages, RawRecord, records_at};
use crate::error::{Error, Result};

/// The query keys the client sets for each request (a base URL's own query may not).
const CLIENT_KEYS: [&str; 6] = ["select", "where", "order_by", "timezone", "limit", "offset"];

/// The largest `limit` the records endpoint accepts.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The largest `offset + limit` the records endpoint accepts.
pub const OFFSET_CAP: u64 = 10_000;

/// The Explore API v2.1 of Paris' open-data portal.
pub const OPENDATA_PARIS: &str = "https://opendata.paris.fr/api/explore/v2.1/";

/// What to read from a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OdsQuery {
    dataset: String,
    select: Option<String>,
    filter: Option<String>,
    order_by: String,
    /// The fields whose values identify a record (empty: the whole record).
    identity: Vec<String>,
    timezone: String,
    page_size: u32,
}

impl OdsQuery {
    /// Every record of `dataset`, ordered by `order_by` (a field list that orders the records
    /// uniquely, such as the dataset's key, so pages neither overlap nor skip), with dates in
    /// UTC, 100 records a page.
    pub fn new(dataset: impl Into<String>, order_by: impl Into<String>) -> OdsQuery {
        OdsQuery {
            dataset: dataset.into(),
            select: None,
            filter: None,
            order_by: order_by.into(),
            identity: Vec::new(),
            timezone: "UTC".to_owned(),
            page_size: MAX_PAGE_SIZE,
        }
    }

    /// Only these fields (`select=`).
    pub fn select(mut self, fields: &[&str]) -> OdsQuery {
        self.select = Some(fields.join(","));
        self
    }

    /// Only the records matching this ODSQL condition (`where=`).
    pub fn filter(mut self, condition: impl Into<String>) -> OdsQuery {
        self.filter = Some(condition.into());
        self
    }

    /// The fields whose values identify a record, such as the dataset's key. Each page after
    /// the first starts with the record the previous page ended with, and paging fails when it
    /// is another record (the pages shifted). By default the whole record must be the same; a
    /// dataset whose records change while it is paged (real-time counts updated every minute)
    /// names its key here, or a record updated between two page requests fails the read.
    pub fn identified_by(mut self, fields: &[&str]) -> OdsQuery {
        self.identity = fields.iter().map(|field| (*field).to_owned()).collect();
        self
    }

    /// The time zone dates are written in (`timezone=`, default `UTC`).
    pub fn timezone(mut self, timezone: impl Into<String>) -> OdsQuery {
        self.timezone = timezone.into();
        self
    }

    /// Records per page, 2 to 100 (default 100).
    pub fn page_size(mut self, page_size: u32) -> OdsQuery {
        self.page_size = page_size;
        self
    }

    /// The dataset id.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// Checks the dataset id and the page size.
    fn validate(&self) -> Result<()> {
        let valid_id = !self.dataset.is_empty()
            && self
                .dataset
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !valid_id {
            return Err(Error::InvalidName {
                what: "Opendatasoft dataset id",
                name: self.dataset.clone(),
                reason: "only letters, digits, `-` and `_` are allowed",
            });
        }
        // (Each page after the first starts with the previous page's last record.)
        if !(2..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(Error::Refused(format!(
                "dataset `{}`: page size {} is invalid: from 2 (each page after the first \
                 starts with the record the previous one ended with) to {MAX_PAGE_SIZE} (the \
                 records endpoint's largest `limit`)",
                self.dataset, self.page_size
            )));
        }
        if let Some(select) = &self.select {
            let selected: Vec<&str> = select.split(',').map(str::trim).collect();
            let unselected: Vec<&str> = self
                .identity
                .iter()
                .map(String::as_str)
                .filter(|field| !selected.contains(field))
                .collect();
            if !unselected.is_empty() {
                return Err(Error::Refused(format!(
                    "dataset `{}`: the identity field(s) {} are not selected ({select}): a \
                     record could not be told by them",
                    self.dataset,
                    unselected.join(", ")
                )));
            }
        }
        if self.order_by.trim().is_empty() {
            return Err(Error::Refused(format!(
                "dataset `{}`: an `order_by` is required, or pages may overlap or skip records",
                self.dataset
            )));
        }
        Ok(())
    }

    /// What tells `record` from another at a page boundary: the values of the identity's
    /// fields, or its whole text (without an identity, or when one of its fields is missing or
    /// null there: a misspelled field, or one left out of `select`, would make every record the
    /// same one, and shifted pages pass).
    fn identity_of(&self, record: &RawRecord) -> String {
        let values: Option<Vec<&Value>> = self
            .identity
            .iter()
            .map(|field| record.value.get(field).filter(|value| !value.is_null()))
            .collect();
        match values {
            Some(values) if !values.is_empty() => {
                serde_json::to_string(&values).unwrap_or_else(|_| record.raw.clone())
            }
            _ => record.raw.clone(),
        }
    }

    /// The query keys shared by both endpoints, in a fixed order.
    fn common_pairs(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = Vec::new();
        if let Some(select) = &self.select {
            pairs.push(("select", select.as_str()));
        }
        if let Some(filter) = &self.filter {
            pairs.push(("where", filter.as_str()));
        }
        pairs.push(("order_by", self.order_by.as_str()));
        pairs.push(("timezone", self.timezone.as_str()));
        pairs
    }
}

/// A client of one Opendatasoft portal.
#[derive(Clone)]
pub struct OdsClient {
    fetch: Arc<dyn Fetch>,
    base: Url,
}

impl std::fmt::Debug for OdsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OdsClient")
            .field("base", &crate::ctx::redacted_url(&self.base))
            .field("fetch", &self.fetch.describe())
            .finish()
    }
}

impl OdsClient {
    /// A client of the portal whose Explore API v2.1 is at `base_url`
    /// (`https://<portal>/api/explore/v2.1/`), reading through `fetch`. A query of the base URL
    /// (`?apikey=…`) is sent with every request.
    pub fn new(fetch: Arc<dyn Fetch>, base_url: &str) -> Result<OdsClient> {
        let mut base = Url::parse(base_url).map_err(|e| {
            let shown = crate::ctx::redacted_url_text(base_url);
            Error::Refused(format!("Opendatasoft base URL {shown:?} is invalid: {e}"))
        })?;
        // The endpoints are joined under its path, which must end with a `/` for that.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // Its query (an `apikey`, say) goes with every request, but for the keys the client sets.
        if let Some((key, _)) = base
            .query_pairs()
            .find(|(key, _)| CLIENT_KEYS.contains(&key.as_ref()))
        {
            return Err(Error::Refused(format!(
                "Opendatasoft base URL {:?} sets `{key}`, which the client sets for each request: \
                 leave it out (a filter is `velib.where`, or `OdsQuery::filter`)",
                crate::ctx::redacted_url(&base)
            )));
        }
        // Sent with every request, a key in it must travel encrypted, as an `Authorization`
        // header does: over https, or to this machine.
        if crate::ctx::url_holds_secret(&base)
            && base.scheme() != "https"
            && !super::http::is_loopback(&base)
        {
            return Err(Error::Refused(format!(
                "Opendatasoft base URL {:?} holds a key, which would travel unencrypted over \
                 plain HTTP with every request: use an https URL",
                crate::ctx::redacted_url(&base)
            )));
        }
        Ok(OdsClient { fetch, base })
    }

    /// The records URL of a page.
    pub fn records_url(&self, query: &OdsQuery, offset: u64, limit: u32) -> Result<Url> {
        let mut url = self.endpoint(query, "records")?;
        {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query.common_pairs() {
                pairs.append_pair(key, value);
            }
            pairs.append_pair("limit", &limit.to_string());
            pairs.append_pair("offset", &offset.to_string());
        }
        Ok(url)
    }

    /// The exports URL of the whole result.
    pub fn export_url(&self, query: &OdsQuery) -> Result<Url> {
        let mut url = self.endpoint(query, "exports/json")?;
        {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query.common_pairs() {
                pairs.append_pair(key, value);
            }
        }
        Ok(url)
    }

    fn endpoint(&self, query: &OdsQuery, tail: &str) -> Result<Url> {
        query.validate()?;
        let mut url = self
            .base
            .join(&format!("catalog/datasets/{}/{tail}", query.dataset))
            .map_err(|e| Error::msg(format!("cannot build the URL of `{}`: {e}", query.dataset)))?;
        // (A join drops the base's query.)
        url.set_query(self.base.query());
        Ok(url)
    }

    /// The pages of `query`; nothing is fetched until the first [`Pages::next_page`].
    pub fn pages(&self, query: OdsQuery) -> Result<OdsPages> {
        self.starting(query, State::Records { offset: 0 })
    }

    /// The records of `query` from the exports endpoint, in one request (a JSON array read as
    /// it streams in), handed on in pages of the query's page size: one call against the
    /// service's daily quota where [`OdsClient::pages`] makes one per page (a live loop of a
    /// dataset of 1 500 records pages 15 times a run). One consistent answer: no `total_count`
    /// to hold it to, no page boundaries to check. Nothing is fetched until the first
    /// [`Pages::next_page`].
    pub fn export(&self, query: OdsQuery) -> Result<OdsPages> {
        self.starting(query, State::ExportAsked)
    }

    fn starting(&self, query: OdsQuery, state: State) -> Result<OdsPages> {
        query.validate()?;
        Ok(OdsPages {
            client: self.clone(),
            query,
            state,
            total: None,
            received: 0,
            last_record: None,
        })
    }
}

/// The envelope of a records page (the results are read raw, see [`records_at`]).
#[derive(Deserialize)]
struct RecordsPage {
    total_count: u64,
    #[allow(dead_code)]
    results: Vec<IgnoredAny>,
}

/// Where the paging is.
enum State {
    /// The next records page starts at `offset`.
    Records { offset: u64 },
    /// The export is to be fetched.
    ExportAsked,
    /// Reading the export.
    Export(Box<Export>),
    /// Every record was returned.
    Done,
}

/// The pages of one query: records pages, or chunks of the export past the offset cap.
pub struct OdsPages {
    client: OdsClient,
    query: OdsQuery,
    state: State,
    /// `total_count` of the first page.
    total: Option<u64>,
    received: u64,
    /// The identity of the previous page's last record ([`OdsQuery::identity_of`]).
    last_record: Option<String>,
}

impl std::fmt::Debug for OdsPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OdsPages")
            .field("query", &self.query)
            .field("total", &self.total)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl OdsPages {
    /// `total_count` as the first page reported it (`None` before it was fetched).
    pub fn total_count(&self) -> Option<u64> {
        self.total
    }

    /// Records returned so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    async fn next(&mut self) -> Result<Option<Page>> {
        loop {
            match &mut self.state {
                State::Done => return Ok(None),
                State::Records { offset } => {
                    let offset = *offset;
                    match self.records_page(offset).await? {
                        Step::Page(page) => return Ok(Some(page)),
                        Step::End => {
                            self.state = State::Done;
                            return Ok(None);
                        }
                        Step::Export => {
                            tracing::info!(
                                dataset = self.query.dataset.as_str(),
                                total_count = self.total,
                                "more records than offset paging reaches ({OFFSET_CAP}): \
                                 reading the exports endpoint"
                            );
                            self.state = State::ExportAsked;
                        }
                    }
                }
                State::ExportAsked => {
                    let url = self.client.export_url(&self.query)?;
                    let body = self.client.fetch.stream(&url).await?;
                    self.state = State::Export(Box::new(Export::new(body)));
                }
                State::Export(export) => {
                    let size = self.query.page_size as usize;
                    if let Some(records) = export.next_records(size).await? {
                        self.received += records.len() as u64;
                        return Ok(Some(Page {
                            url: export.body.url.clone(),
                            origin: export.body.origin.clone(),
                            records,
                        }));
                    }
                    if let Some(total) = self.total
                        && total != self.received
                    {
                        let error = export.body.fault(format!(
                            "the export has {} records but `total_count` was {total}: the \
                                 dataset changed between the first page and the export; nothing \
                                 was written; rerun the pipeline",
                            self.received
                        ));
                        self.state = State::Done;
                        return Err(error);
                    }
                    self.state = State::Done;
                    return Ok(None);
                }
            }
        }
    }

    /// Fetches and checks the records page at `offset`. Each page after the first is asked
    /// from one record earlier, the one the previous page ended with: records added or removed
    /// before the offset between two requests shift the pages (keeping `total_count` when as
    /// many are added as removed), and a record would be read twice or never; the one the page
    /// starts with is then another, and the read fails.
    async fn records_page(&mut self, offset: u64) -> Result<Step> {
        let overlap = u64::from(offset > 0);
        let start = offset - overlap;
        let limit = u64::from(self.query.page_size).min(OFFSET_CAP - start) as u32;
        let url = self.client.records_url(&self.query, start, limit)?;
        let body = self.client.fetch.get(&url).await?;
        let page: RecordsPage =
            serde_json::from_slice(super::without_bom(&body.bytes)).map_err(|e| {
                body.fault(format!(
                    "malformed Opendatasoft records page ({e}): the body is truncated or not the \
                     expected `{{\"total_count\", \"results\"}}` JSON ({}); nothing was written",
                    body.excerpt()
                ))
            })?;
        let total = match self.total {
            None => {
                self.total = Some(page.total_count);
                if page.total_count > OFFSET_CAP {
                    return Ok(Step::Export);
                }
                page.total_count
            }
            Some(total) if total != page.total_count => {
                return Err(body.fault(format!(
                    "`total_count` changed while paging, from {total} on the first page to \
                         {} at offset {offset}: the dataset was updated; nothing was written; \
                         rerun the pipeline",
                    page.total_count
                )));
            }
            Some(total) => total,
        };
        let sent = page.results.len() as u64;
        if sent > u64::from(limit) {
            return Err(body.fault(format!(
                "the page has {sent} records, more than the `limit` of {limit}"
            )));
        }
        let mut records = records_at(&body, &["results"], "Opendatasoft records page")?;
        if overlap == 1 {
            let same = match (&self.last_record, records.first()) {
                (Some(last), Some(first)) => *last == self.query.identity_of(first),
                _ => false,
            };
            if !same {
                return Err(body.fault(format!(
                    "the page from offset {start} does not start with the record the previous \
                     page ended with: records were added or removed before it while the dataset \
                     was paged, and one would be read twice or never; nothing was written; \
                     rerun the pipeline"
                )));
            }
            records.remove(0);
        }
        let count = records.len() as u64;
        if count == 0 {
            if self.received < total {
                return Err(body.fault(format!(
                    "no records at offset {offset} although `total_count` is {total} and only \
                         {} were received: the dataset changed while it was paged; nothing was \
                         written; rerun the pipeline",
                    self.received
                )));
            }
            return Ok(Step::End);
        }
        self.received += count;
        if self.received > total {
            return Err(body.fault(format!(
                "{} records received but `total_count` is {total}: the dataset changed \
                     while it was paged; nothing was written; rerun the pipeline",
                self.received
            )));
        }
        self.state = if self.received == total {
            State::Done
        } else {
            State::Records {
                offset: offset + count,
            }
        };
        tracing::debug!(
            dataset = self.query.dataset.as_str(),
            offset,
            records = count,
            total_count = total,
            "page"
        );
        self.last_record = records.last().map(|record| self.query.identity_of(record));
        Ok(Step::Page(Page {
            url: body.url,
            origin: body.origin,
            records,
        }))
    }
}

impl Pages for OdsPages {
    fn next_page(&mut self) -> impl Future<Output = Result<Option<Page>>> + Send {
        self.next()
    }
}

/// What a records request led to.
enum Step {
    /// A page of records.
    Page(Page),
    /// No more records.
    End,
    /// More records than paging reaches: read the export instead.
    Export,
}

/// An export being read: its body, split into records as chunks arrive.
struct Export {
    body: BodyStream,
    splitter: ArraySplitter,
    pending: VecDeque<RawRecord>,
    ended: bool,
    parsed: u64,
}

impl Export {
    fn new(body: BodyStream) -> Export {
        Export {
            body,
            splitter: ArraySplitter::new(),
            pending: VecDeque::new(),
            ended: false,
            parsed: 0,
        }
    }

    /// Up to `size` records, `None` at the end.
    async fn next_records(&mut self, size: usize) -> Result<Option<Vec<RawRecord>>> {
        while self.pending.len() < size && !self.ended {
            match self.body.chunks.next().await {
                Some(chunk) => {
                    let elements = self
                        .splitter
                        .push(&chunk?)
                        .map_err(|e| self.malformed(&e))?;
                    for element in elements {
                        self.parsed += 1;
                        let record = RawRecord::parse(element).map_err(|e| {
                            self.malformed(&format!("record #{} is invalid JSON: {e}", self.parsed))
                        })?;
                        self.pending.push_back(record);
                    }
                }
                None => {
                    self.splitter.finish().map_err(|e| self.malformed(&e))?;
                    self.ended = true;
                }
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let take = size.min(self.pending.len());
        Ok(Some(self.pending.drain(..take).collect()))
    }

    fn malformed(&self, what: &str) -> Error {
        self.body
            .fault(format!("malformed export: {what}; nothing was written"))
    }
}
