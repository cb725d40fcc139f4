//! Open-data sources against a real HTTP server on 127.0.0.1 replaying the project's own
//! fixtures (`tests/fixtures/opendata/`, written by `lakehouse-pipelines`' `generate_opendata`
//! example), and against the same fixtures as a snapshot directory.
//!
//! Retry spacing is asserted on the delays the policy asked its timer for (a fake timer that
//! records them and returns at once), never by measuring time.

mod gbfs;
mod malformed;
mod paging;
mod retry;
pub mod server;
mod snapshot;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use lakehouse_runtime::prelude::*;
use lakehouse_runtime::sources::{
    Area, Collected, HttpFetch, OdsClient, OdsQuery, Record, Rejected, RetryPolicy, Timer,
    collect_batches,
};
use serde::Serialize;

/// The fixtures directory, or one of its subdirectories.
pub fn fixtures(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opendata")
        .join(sub)
}

/// The host the Paris fixtures were recorded from.
pub const PARIS: &str = "opendata.paris.fr";

/// The host the Lyon fixtures were recorded from.
pub const LYON: &str = "download.data.grandlyon.com";

/// The Lyon feeds' directory.
pub const LYON_FEEDS: &str = "/files/rdata/jcd_jcdecaux.jcdvelov";

/// The availability dataset.
pub const STATUS: &str = "velib-disponibilite-en-temps-reel";

/// Paris and around.
pub const PARIS_AREA: Area = Area {
    name: "Paris",
    lon: 2.0..=2.7,
    lat: 48.6..=49.1,
};

/// A timer that records the delays asked for and returns at once, with a fixed wall clock.
pub struct FakeTimer {
    pub delays: Mutex<Vec<Duration>>,
    pub now: SystemTime,
}

impl FakeTimer {
    pub fn new() -> Arc<FakeTimer> {
        Arc::new(FakeTimer {
            delays: Mutex::new(Vec::new()),
            // 2025-06-03T08:15:00Z
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_748_938_500),
        })
    }

    pub fn delays(&self) -> Vec<Duration> {
        self.delays.lock().expect("delays").clone()
    }
}

impl Timer for FakeTimer {
    fn sleep(&self, delay: Duration) -> BoxFuture<'_, ()> {
        self.delays.lock().expect("delays").push(delay);
        Box::pin(std::future::ready(()))
    }

    fn now(&self) -> SystemTime {
        self.now
    }
}

/// A policy with tiny delays for tests.
pub fn policy() -> RetryPolicy {
    RetryPolicy {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_elapsed: Duration::from_secs(30),
        ..RetryPolicy::default()
    }
}

/// An HTTP fetcher with `policy` and a fake timer.
pub fn http(policy: RetryPolicy) -> (Arc<HttpFetch>, Arc<FakeTimer>) {
    let timer = FakeTimer::new();
    let fetch = HttpFetch::new(policy)
        .expect("client")
        .with_timer(timer.clone());
    (Arc::new(fetch), timer)
}

/// The Opendatasoft API base of a test server.
pub fn ods_base(server: &server::TestServer) -> String {
    server.url("/api/explore/v2.1/")
}

/// The availability query, 20 a page.
pub fn status_query() -> OdsQuery {
    OdsQuery::new(STATUS, "stationcode")
        .select(&[
            "stationcode",
            "numdocksavailable",
            "numbikesavailable",
            "is_renting",
            "duedate",
            "coordonnees_geo",
        ])
        .page_size(20)
}

/// The part of a Vélib' status the tests keep.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "test_velib_status")]
pub struct TestStatus {
    pub stationcode: String,
    pub numdocksavailable: i32,
    pub numbikesavailable: i32,
    pub is_renting: bool,
    pub duedate: Option<Timestamp>,
    pub lon: f64,
    pub lat: f64,
}

/// A [`TestStatus`] from an Opendatasoft record.
pub fn status_row(r: &Record<'_>) -> Result<TestStatus, Rejected> {
    let stationcode = r.string("stationcode")?;
    let (lon, lat) = r
        .object("coordonnees_geo")?
        .lon_lat("lon", "lat", &PARIS_AREA)?;
    Ok(TestStatus {
        stationcode,
        numdocksavailable: r.count("numdocksavailable")?,
        numbikesavailable: r.count("numbikesavailable")?,
        is_renting: r.flag("is_renting")?,
        duedate: r.opt_datetime("duedate")?,
        lon,
        lat,
    })
}

/// Every status row of `client`'s availability dataset.
pub async fn read_status(client: &OdsClient) -> lakehouse_runtime::Result<Collected> {
    read_query(client, status_query()).await
}

/// Every record `query` pages through, as [`TestStatus`] rows.
pub async fn read_query(
    client: &OdsClient,
    query: OdsQuery,
) -> lakehouse_runtime::Result<Collected> {
    let mut pages = client.pages(query)?;
    collect_batches(
        TestStatus::DEF.output_arrow_schema(),
        &mut pages,
        status_row,
    )
    .await
}

/// Number of rows in the batches.
pub fn rows(collected: &Collected) -> usize {
    collected.batches.iter().map(|b| b.num_rows()).sum()
}

/// Stations, as a source writes them.
#[derive(Table)]
#[table(schema = "bronze", name = "fitted_stations")]
pub struct FittedStations {
    pub code: String,
    pub capacity: i32,
}

#[tokio::test]
async fn rows_a_source_makes_that_do_not_fit_its_table_name_it_and_are_not_retried() {
    use lakehouse_runtime::sources::{Page, RawRecord, SinglePage, collect_frame};
    // The row type lacks the NOT NULL `capacity`: a mistake of the pipeline's code.
    #[derive(Serialize)]
    struct Row {
        code: String,
    }
    let test =
        lakehouse_runtime::testing::TestContext::unregistered("fitted_stations").expect("context");
    let page = Page {
        url: url::Url::parse("https://example.test/stations").expect("url"),
        origin: "https://example.test/stations".to_owned(),
        records: vec![RawRecord::parse(br#"{"code": "A1"}"#.to_vec()).expect("json")],
    };
    let error = collect_frame::<FittedStations, _, _>(
        test.ctx(),
        &mut SinglePage::new(page),
        |r: &Record<'_>| {
            Ok(Row {
                code: r.string("code")?,
            })
        },
    )
    .await
    .err()
    .expect("no capacity");
    assert!(!error.is_retryable(), "{error:?}");
    let error = error.to_string();
    assert!(
        error.starts_with(
            "pipeline `fitted_stations`: rows for bronze.fitted_stations: rows do not fit"
        ),
        "{error}"
    );
}

#[test]
fn a_test_context_keeps_its_rejects_through_a_change_of_settings() {
    use lakehouse_runtime::ctx::Reject;
    let test =
        lakehouse_runtime::testing::TestContext::unregistered("fitted_stations").expect("context");
    test.ctx().reject(vec![Reject {
        source: "https://example.test/stations".to_owned(),
        reason: "no code".to_owned(),
        raw: "{}".to_owned(),
    }]);
    let test = test.with_setting("opendata.mode", "snapshot");
    assert_eq!(test.ctx().take_rejects().len(), 1);
}

#[test]
fn a_page_is_read_from_a_json_body_of_ones_own_api() {
    use lakehouse_runtime::sources::{Body, Page, Url};
    let body = |text: &str| Body {
        url: Url::parse("https://shop.example/api/orders").expect("url"),
        origin: "https://shop.example/api/orders".to_owned(),
        bytes: text.as_bytes().to_vec(),
        replayed: false,
    };
    let page = Page::from_json(
        &body(r#"{"count": 2, "orders": [{"id": 1, "amount": "9.50"}, {"id":2,"amount":"x"}]}"#),
        &["orders"],
    )
    .expect("a page");
    let raw: Vec<&str> = page.records.iter().map(|r| r.raw.as_str()).collect();
    assert_eq!(
        raw,
        [r#"{"id": 1, "amount": "9.50"}"#, r#"{"id":2,"amount":"x"}"#]
    );
    assert_eq!(page.url.as_str(), "https://shop.example/api/orders");
    let bare = Page::from_json(&body("[1, 2, 3]"), &[]).expect("a bare array");
    assert_eq!(bare.records.len(), 3);

    for (text, expected) in [
        (
            r#"{"orders": [{"id": 1}, {"id""#,
            "malformed response (EOF while parsing",
        ),
        (
            "<!DOCTYPE html><p>maintenance",
            "it starts with `<!DOCTYPE html>",
        ),
        (r#"{"results": []}"#, "malformed response: "),
    ] {
        let error = Page::from_json(&body(text), &["orders"])
            .expect_err(text)
            .to_string();
        assert!(
            error.contains("https://shop.example/api/orders")
                && error.contains(expected)
                && error.contains("nothing was written"),
            "{text}: {error}"
        );
    }
}

#[tokio::test]
async fn a_reject_keeps_the_pages_url_without_its_secrets() {
    use lakehouse_runtime::sources::{Page, RawRecord, SinglePage, collect_frame};
    #[derive(Serialize)]
    struct Row {
        code: String,
        capacity: i32,
    }
    let test =
        lakehouse_runtime::testing::TestContext::unregistered("fitted_stations").expect("context");
    let url = "https://user:hunter2@example.test/stations?apikey=S3CRET&limit=20";
    let page = Page {
        url: url::Url::parse(url).expect("url"),
        origin: url.to_owned(),
        records: vec![RawRecord::parse(br#"{"code": "A1"}"#.to_vec()).expect("json")],
    };
    let collected = collect_frame::<FittedStations, _, _>(
        test.ctx(),
        &mut SinglePage::new(page),
        |r: &Record<'_>| {
            Ok(Row {
                code: r.string("code")?,
                capacity: r.count("capacity")?,
            })
        },
    )
    .await;
    // One record in one, rejected: over the ratio, the run fails; the reject is kept.
    assert!(collected.is_err());
    let rejects = test.ctx().take_rejects();
    assert_eq!(
        rejects
            .iter()
            .map(|r| r.source.as_str())
            .collect::<Vec<_>>(),
        ["https://redacted:redacted@example.test/stations?apikey=redacted&limit=20"]
    );
}

#[test]
fn debug_output_shows_urls_without_their_secrets() {
    use lakehouse_runtime::sources::{Body, GbfsClient, HttpFetch, RetryPolicy, Url};
    let url = "https://TOKEN@example.test/gbfs.json?sig=S1G&X-Amz-Signature=S2G&lang=fr";
    let body = Body {
        url: Url::parse(url).expect("url"),
        origin: "example".to_owned(),
        bytes: b"{}".to_vec(),
        replayed: false,
    };
    let shown = format!("{body:?}");
    let fetch = std::sync::Arc::new(HttpFetch::new(RetryPolicy::default()).expect("client"));
    let client = GbfsClient::discover(fetch, url).expect("client");
    let shown = format!("{shown} {client:?}");
    for secret in ["TOKEN", "S1G", "S2G"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("lang=fr"), "{shown}");
}

/// Stations of a full list: only the code is required.
#[derive(Table)]
#[table(schema = "bronze", name = "listed_stations")]
pub struct ListedStations {
    pub code: String,
    pub capacity: Option<i32>,
    pub lon: Option<f64>,
}

#[tokio::test]
async fn a_field_read_or_null_keeps_its_record_with_the_reason_outside_the_reject_limit() {
    use lakehouse_runtime::sources::{Page, RawRecord, SinglePage, collect_frame};
    #[derive(Serialize)]
    struct Row {
        code: String,
        capacity: Option<i32>,
        lon: Option<f64>,
    }
    let test = lakehouse_runtime::testing::TestContext::unregistered("listed_stations")
        .expect("context")
        .with_setting("ingest.max_reject_ratio", "0.4");
    let records = [
        r#"{"code": "A1", "capacity": 20, "point": {"lon": 2.35}}"#,
        r#"{"code": "A2", "capacity": "21", "point": {"lon": "x"}}"#,
        r#"{"code": "A3", "capacity": -1, "point": null}"#,
        r#"{"capacity": 5}"#,
    ];
    let page = Page {
        url: url::Url::parse("https://example.test/stations").expect("url"),
        origin: "https://example.test/stations".to_owned(),
        records: records
            .iter()
            .map(|json| RawRecord::parse(json.as_bytes().to_vec()).expect("json"))
            .collect(),
    };
    let frame = collect_frame::<ListedStations, _, _>(
        test.ctx(),
        &mut SinglePage::new(page),
        |r: &Record<'_>| {
            Ok(Row {
                code: r.string("code")?,
                capacity: r.or_null(r.opt_count("capacity")).flatten(),
                // A nested object's reasons name its path, and reach the record's.
                lon: r.or_null(r.object("point").and_then(|p| p.float("lon"))),
            })
        },
    )
    .await
    // 1 rejected of 4 is under the limit; 2 kept with NULLs would have been over it.
    .expect("under the reject limit");
    let batches = frame.collect().await.expect("rows");
    let printed = arrow::util::pretty::pretty_format_batches(&batches)
        .expect("printable")
        .to_string();
    assert_eq!(
        printed.lines().filter(|l| l.starts_with("| A")).count(),
        3,
        "{printed}"
    );
    assert!(printed.contains("| A2   |          |      |"), "{printed}");
    let rejects = test.ctx().take_rejects();
    assert_eq!(
        rejects
            .iter()
            .map(|r| r.reason.as_str())
            .collect::<Vec<_>>(),
        [
            "missing key `code`",
            "kept, with NULL for: `capacity` should be an integer but is the string \"21\"; \
             `point.lon` should be a number but is the string \"x\"",
            "kept, with NULL for: `capacity` is negative (-1): a count cannot be; `point` is null",
        ]
    );
    assert_eq!(rejects[1].raw, records[1]);
}
