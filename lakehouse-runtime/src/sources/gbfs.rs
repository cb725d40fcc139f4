//! The GBFS client (General Bikeshare Feed Specification, 1.x to 3.0): `gbfs.json` discovery
//! or direct feed URLs, and the station feeds `station_information` and `station_status` with
//! their `last_updated` and `ttl`.
//!
//! Feeds are `{"last_updated", "ttl", "version", "data": {"stations": [..]}}`. `last_updated` is
//! epoch seconds (1.x, 2.x) or an RFC 3339 date-time (3.0); the Vélib' Métropole feed writes it
//! `lastUpdatedOther`, which is read too. Flags inside stations are booleans (2.x) or 1/0 (1.x):
//! read them with [`super::Record::flag`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use super::http::{Body, Fetch};
use super::record::parse_datetime;
use super::{Page, RawRecord, SinglePage, records_at};
use crate::error::{Error, Result};
use crate::table::Timestamp;

/// Where the feeds are.
#[derive(Clone)]
enum Feeds {
    /// Listed by a `gbfs.json` discovery document.
    Discovery(Url),
    /// Given directly, by feed name.
    Direct(BTreeMap<String, Url>),
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URLs without the secrets they may carry.
        match self {
            Feeds::Discovery(url) => f
                .debug_tuple("Discovery")
                .field(&crate::ctx::redacted_url(url))
                .finish(),
            Feeds::Direct(feeds) => f
                .debug_map()
                .entries(
                    feeds
                        .iter()
                        .map(|(name, url)| (name, crate::ctx::redacted_url(url))),
                )
                .finish(),
        }
    }
}

/// A client of one GBFS system.
pub struct GbfsClient {
    fetch: Arc<dyn Fetch>,
    feeds: Feeds,
    languages: Vec<String>,
    discovered: OnceCell<Discovered>,
}

/// The feeds a discovery document lists, and where it was read.
struct Discovered {
    feeds: BTreeMap<String, Url>,
    origin: String,
    /// Read from a recording: a feed missing from it is missing on every attempt.
    replayed: bool,
}

impl std::fmt::Debug for GbfsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GbfsClient")
            .field("feeds", &self.feeds)
            .field("languages", &self.languages)
            .field("fetch", &self.fetch.describe())
            .finish_non_exhaustive()
    }
}

fn parse_url(what: &str, url: &str) -> Result<Url> {
    Url::parse(url).map_err(|e| {
        let shown = crate::ctx::redacted_url_text(url);
        Error::Refused(format!("GBFS {what} URL {shown:?} is invalid: {e}"))
    })
}

impl GbfsClient {
    /// A client that finds its feeds in the discovery document at `gbfs_url` (`gbfs.json`),
    /// fetched once, in the first of the preferred languages it has (see
    /// [`GbfsClient::prefer_languages`]; default `fr`, then `en`, then the alphabetically first).
    pub fn discover(fetch: Arc<dyn Fetch>, gbfs_url: &str) -> Result<GbfsClient> {
        Ok(GbfsClient {
            fetch,
            feeds: Feeds::Discovery(parse_url("discovery", gbfs_url)?),
            languages: vec!["fr".to_owned(), "en".to_owned()],
            discovered: OnceCell::new(),
        })
    }

    /// A client with the feed URLs given directly, as `(name, url)`
    /// (`("station_status", "https://…/station_status.json")`).
    pub fn direct<'a>(
        fetch: Arc<dyn Fetch>,
        feeds: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<GbfsClient> {
        let feeds = feeds
            .into_iter()
            .map(|(name, url)| Ok((name.to_owned(), parse_url(name, url)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(GbfsClient {
            fetch,
            feeds: Feeds::Direct(feeds),
            languages: Vec::new(),
            discovered: OnceCell::new(),
        })
    }

    /// The languages to take the discovery document's feeds from, in order of preference.
    pub fn prefer_languages(mut self, languages: &[&str]) -> GbfsClient {
        self.languages = languages.iter().map(|l| (*l).to_owned()).collect();
        self
    }

    /// The URL of feed `name`.
    pub async fn feed_url(&self, name: &str) -> Result<Url> {
        let (feeds, origin, replayed) = match &self.feeds {
            Feeds::Direct(feeds) => (feeds, "the direct feed URLs".to_owned(), true),
            Feeds::Discovery(url) => {
                let discovered = self
                    .discovered
                    .get_or_try_init(|| self.discover_feeds(url))
                    .await?;
                (
                    &discovered.feeds,
                    discovered.origin.clone(),
                    discovered.replayed,
                )
            }
        };
        feeds.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = feeds.keys().map(String::as_str).collect();
            let fault = if replayed {
                Error::source_final
            } else {
                Error::source
            };
            fault(
                origin,
                format!(
                    "no GBFS feed `{name}` (feeds: {}); check the discovery URL or give the feed \
                     URL directly",
                    known.join(", ")
                ),
            )
        })
    }

    /// Reads the discovery document.
    async fn discover_feeds(&self, url: &Url) -> Result<Discovered> {
        let body = self.fetch.get(url).await?;
        let document = parse_json(&body, "GBFS discovery document")?;
        let malformed =
            |what: &str| body.fault(format!("malformed GBFS discovery document: {what}"));
        let data = document
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| malformed("no `data` object"))?;
        // GBFS 3.0 lists the feeds in `data.feeds`; earlier versions per language: the
        // preferred ones first, then the others alphabetically (JSON objects are read without
        // their order: the same feed at every run), a feed taken from the first that lists it
        // (a language may list fewer feeds than another).
        let lists: Vec<&Value> = match data.get("feeds") {
            Some(feeds) => vec![feeds],
            None => {
                let mut languages: Vec<&str> = self
                    .languages
                    .iter()
                    .map(String::as_str)
                    .filter(|l| data.contains_key(*l))
                    .collect();
                let mut others: Vec<&str> = data
                    .keys()
                    .map(String::as_str)
                    .filter(|l| !languages.contains(l))
                    .collect();
                others.sort_unstable();
                languages.extend(others);
                if languages.is_empty() {
                    return Err(malformed("`data` lists no language"));
                }
                languages
                    .iter()
                    .map(|language| {
                        data.get(*language)
                            .and_then(|l| l.get("feeds"))
                            .ok_or_else(|| malformed(&format!("no `data.{language}.feeds`")))
                    })
                    .collect::<Result<_>>()?
            }
        };
        let mut found = BTreeMap::new();
        for feeds in lists {
            let feeds = feeds
                .as_array()
                .ok_or_else(|| malformed("`feeds` is not an array"))?;
            for feed in feeds {
                let (Some(name), Some(feed_url)) = (
                    feed.get("name").and_then(Value::as_str),
                    feed.get("url").and_then(Value::as_str),
                ) else {
                    return Err(malformed(&format!(
                        "a feed without `name` or `url`: {feed}"
                    )));
                };
                if found.contains_key(name) {
                    continue;
                }
                let resolved = url
                    .join(feed_url)
                    .map_err(|e| malformed(&format!("feed `{name}` has an invalid URL: {e}")))?;
                found.insert(name.to_owned(), resolved);
            }
        }
        tracing::debug!(
            url = crate::ctx::redacted_url(url),
            feeds = found.len(),
            "GBFS discovery"
        );
        Ok(Discovered {
            feeds: found,
            origin: body.origin.clone(),
            replayed: body.replayed,
        })
    }

    /// The station feed `name`: its envelope and its `data.stations`.
    pub async fn station_feed(&self, name: &str) -> Result<GbfsFeed> {
        let url = self.feed_url(name).await?;
        let body = self.fetch.get(&url).await?;
        GbfsFeed::parse(name, body)
    }

    /// `station_information`: where the stations are.
    pub async fn station_information(&self) -> Result<GbfsFeed> {
        self.station_feed("station_information").await
    }

    /// `station_status`: what each station has now.
    pub async fn station_status(&self) -> Result<GbfsFeed> {
        self.station_feed("station_status").await
    }
}

/// A body parsed as JSON (after a UTF-8 byte order mark, which some tools write); invalid JSON
/// fails with the origin and position.
fn parse_json(body: &Body, what: &str) -> Result<Value> {
    serde_json::from_slice(super::without_bom(&body.bytes)).map_err(|e| {
        body.fault(format!(
            "malformed {what} ({e}): the body is truncated or not JSON ({}); nothing was \
                 written",
            body.excerpt()
        ))
    })
}

/// One station feed.
#[derive(Clone, PartialEq)]
pub struct GbfsFeed {
    /// The feed's name.
    pub name: String,
    /// Its URL.
    pub url: Url,
    /// Where it was read from, for messages.
    pub origin: String,
    /// When the publisher last updated the data.
    pub last_updated: Timestamp,
    /// How long, in seconds, the data stays valid after `last_updated` (`None` when the feed
    /// does not say, or not as a number of seconds: its staleness is then not checked).
    pub ttl: Option<u32>,
    /// The GBFS version it declares, if any.
    pub version: Option<String>,
    /// The station objects of `data.stations`, as received.
    pub stations: Vec<RawRecord>,
}

impl std::fmt::Debug for GbfsFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GbfsFeed")
            .field("name", &self.name)
            .field("url", &crate::ctx::redacted_url(&self.url))
            .field("origin", &self.origin)
            .field("last_updated", &self.last_updated)
            .field("ttl", &self.ttl)
            .field("version", &self.version)
            .field("stations", &self.stations.len())
            .finish()
    }
}

impl GbfsFeed {
    /// Parses a station feed; a missing `last_updated` or `data.stations` fails.
    pub fn parse(name: &str, body: Body) -> Result<GbfsFeed> {
        let document = parse_json(&body, &format!("GBFS feed `{name}`"))?;
        let malformed = |what: String| {
            body.fault(format!(
                "malformed GBFS feed `{name}`: {what}; nothing was written"
            ))
        };
        let updated = document
            .get("last_updated")
            .or_else(|| document.get("lastUpdatedOther"))
            .ok_or_else(|| malformed("no `last_updated`".to_owned()))?;
        let last_updated = match updated {
            // Seconds (a fraction, which some feeds send, kept to the microsecond); a value too
            // large for them (milliseconds) is refused as malformed.
            Value::Number(n) => super::record::seconds_as_micros(n).map(Timestamp),
            Value::String(s) => parse_datetime(s),
            _ => None,
        }
        .ok_or_else(|| {
            malformed(format!(
                "`last_updated` is {updated}, neither epoch seconds nor an RFC 3339 date-time"
            ))
        })?;
        // Only the staleness warning uses it: a missing or odd one is warned about, not fatal.
        let ttl = match document.get("ttl") {
            None => {
                tracing::warn!(
                    feed = name,
                    url = crate::ctx::redacted_url(&body.url),
                    "GBFS feed without `ttl`: its staleness is not checked"
                );
                None
            }
            Some(ttl) => {
                let seconds = ttl
                    .as_f64()
                    .or_else(|| ttl.as_str().and_then(|text| text.trim().parse().ok()))
                    .filter(|t| t.is_finite() && *t >= 0.0 && *t <= f64::from(u32::MAX))
                    .map(|t| t as u32);
                if seconds.is_none() {
                    tracing::warn!(
                        feed = name,
                        url = crate::ctx::redacted_url(&body.url),
                        %ttl,
                        "GBFS feed whose `ttl` is not a number of seconds: its staleness is not checked"
                    );
                }
                seconds
            }
        };
        let version = document
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if !document
            .get("data")
            .and_then(|d| d.get("stations"))
            .is_some_and(Value::is_array)
        {
            return Err(malformed("no `data.stations` array".to_owned()));
        }
        let stations = records_at(&body, &["data", "stations"], "GBFS feed")?;
        Ok(GbfsFeed {
            name: name.to_owned(),
            url: body.url,
            origin: body.origin,
            last_updated,
            ttl,
            version,
            stations,
        })
    }

    /// How old the data is at `now` (zero when `last_updated` is in the future).
    pub fn age(&self, now: Timestamp) -> Duration {
        Duration::from_micros(u64::try_from(now.0.saturating_sub(self.last_updated.0)).unwrap_or(0))
    }

    /// Whether the data is past its `ttl` at `now` (a `ttl` of 0, "fetch it every time" in
    /// GBFS, is no staleness bound).
    pub fn is_stale(&self, now: Timestamp) -> bool {
        self.ttl
            .filter(|ttl| *ttl > 0)
            .is_some_and(|ttl| self.age(now) > Duration::from_secs(u64::from(ttl)))
    }

    /// Logs a warning when the data is past its `ttl` at `now` (a live feed that stopped
    /// updating).
    pub fn warn_if_stale(&self, now: Timestamp) {
        if self.is_stale(now) {
            tracing::warn!(
                feed = self.name.as_str(),
                url = crate::ctx::redacted_url(&self.url),
                age_s = self.age(now).as_secs(),
                ttl_s = self.ttl.unwrap_or_default(),
                "the GBFS feed is older than its ttl: the publisher may have stopped updating it"
            );
        }
    }

    /// The stations as one page, for [`super::collect_batches`].
    pub fn into_pages(self) -> SinglePage {
        SinglePage::new(Page {
            url: self.url,
            origin: self.origin,
            records: self.stations,
        })
    }
}
