//! GBFS: discovery or direct feeds, `last_updated` and `ttl`, flags as booleans or as 1/0.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use lakehouse_runtime::sources::{GbfsClient, SnapshotFetch, Url};

use super::server::{Reply, TestServer, replay};
use super::*;

/// The part of a GBFS status the tests keep.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "test_gbfs_status")]
pub struct TestGbfsStatus {
    pub station_id: String,
    pub num_bikes_available: i32,
    pub num_docks_available: i32,
    pub is_installed: bool,
    pub is_renting: bool,
    pub is_returning: bool,
    pub last_reported: Timestamp,
}

fn gbfs_row(r: &Record<'_>) -> Result<TestGbfsStatus, Rejected> {
    Ok(TestGbfsStatus {
        station_id: r.id("station_id")?,
        num_bikes_available: r.count("num_bikes_available")?,
        num_docks_available: r.count("num_docks_available")?,
        is_installed: r.flag("is_installed")?,
        is_renting: r.flag("is_renting")?,
        is_returning: r.flag("is_returning")?,
        last_reported: r.epoch_seconds("last_reported")?,
    })
}

async fn read(client: &GbfsClient) -> (lakehouse_runtime::sources::GbfsFeed, Collected) {
    let feed = client.station_status().await.expect("station_status");
    let mut pages = feed.clone().into_pages();
    let collected = collect_batches(
        TestGbfsStatus::DEF.output_arrow_schema(),
        &mut pages,
        gbfs_row,
    )
    .await
    .expect("rows");
    (feed, collected)
}

fn one_batch(collected: &Collected) -> RecordBatch {
    arrow::compute::concat_batches(
        &TestGbfsStatus::DEF.output_arrow_schema(),
        &collected.batches,
    )
    .expect("one batch")
}

fn flags(batch: &RecordBatch, column: &str) -> Vec<bool> {
    let array = batch
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        .expect("boolean column");
    (0..array.len()).map(|i| array.value(i)).collect()
}

fn ids(batch: &RecordBatch) -> Vec<String> {
    let array = batch
        .column_by_name("station_id")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .expect("ids");
    array.iter().map(|v| v.unwrap_or("∅").to_owned()).collect()
}

/// A server whose discovery document points at itself.
fn lyon_server(dir: &'static str) -> TestServer {
    let files = replay(fixtures(dir), LYON);
    let addr = std::sync::OnceLock::<String>::new();
    let addr = Arc::new(addr);
    let base = addr.clone();
    let server = TestServer::start(move |request| {
        let reply = files(request);
        if request.path.ends_with("/gbfs.json") {
            let body = std::fs::read_to_string(
                fixtures(dir).join(format!("{LYON}{LYON_FEEDS}/gbfs.json")),
            )
            .expect("gbfs.json");
            let own = base.get().cloned().unwrap_or_default();
            return Reply::json(200, body.replace(&format!("https://{LYON}"), &own));
        }
        reply
    });
    let _ = addr.set(server.url(""));
    server
}

#[tokio::test]
async fn flags_given_as_booleans_or_as_1_and_0_read_alike() {
    let server = lyon_server("edge");
    let (fetch, _) = http(policy());
    let status = server.url(&format!("{LYON_FEEDS}/station_status.json"));
    let client = GbfsClient::direct(fetch, [("station_status", status.as_str())]).expect("client");

    let (feed, collected) = read(&client).await;

    assert_eq!(feed.ttl, Some(60));
    assert_eq!(feed.version.as_deref(), Some("2.3"));
    assert_eq!(feed.last_updated, Timestamp(1_748_938_500_000_000));
    let batch = one_batch(&collected);
    assert_eq!(
        ids(&batch),
        [
            "3005", "6003", "1002", "2011", "6023", "4012", "10002-B", "3005", "5031", "9999"
        ]
    );
    // 2011 sends 1/1/1, 4012 sends is_returning 0, 6023 false/false/false.
    assert_eq!(
        flags(&batch, "is_installed"),
        [true, true, true, true, false, true, true, true, true, true]
    );
    assert_eq!(
        flags(&batch, "is_returning"),
        [true, true, true, true, false, false, true, true, true, true]
    );
    let reasons: Vec<&str> = collected
        .rejects
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "`num_bikes_available` should be an integer but is the string \"5\"",
            "`num_docks_available` is negative (-2): a count cannot be",
            "`is_renting` should be a flag (true/false, 1/0 or \"OUI\"/\"NON\") but is the string \"true\"",
        ]
    );
}

#[tokio::test]
async fn the_authorization_goes_to_the_configured_host_only() {
    // The discovery document lists its feeds on another host (`localhost`, not `127.0.0.1`).
    let files = replay(fixtures("paged"), LYON);
    let port = Arc::new(std::sync::OnceLock::<String>::new());
    let own = port.clone();
    let server = TestServer::start(move |request| {
        if request.path.ends_with("/gbfs.json") {
            let body = std::fs::read_to_string(
                fixtures("paged").join(format!("{LYON}{LYON_FEEDS}/gbfs.json")),
            )
            .expect("gbfs.json");
            let elsewhere = format!(
                "http://localhost:{}",
                own.get().cloned().unwrap_or_default()
            );
            return Reply::json(200, body.replace(&format!("https://{LYON}"), &elsewhere));
        }
        files(request)
    });
    let address = server.url("");
    let _ = port.set(address.rsplit(':').next().unwrap_or_default().to_owned());
    let fetch = lakehouse_runtime::sources::HttpFetch::new(policy())
        .expect("client")
        .with_authorization("Apikey s3cr3t")
        .expect("header");
    let client = GbfsClient::discover(
        Arc::new(fetch),
        &server.url(&format!("{LYON_FEEDS}/gbfs.json")),
    )
    .expect("client");

    let (_, collected) = read(&client).await;

    assert_eq!(rows(&collected), 25);
    let sent: Vec<(String, Option<String>)> = server
        .requests()
        .into_iter()
        .map(|r| (r.path, r.authorization))
        .collect();
    assert_eq!(
        sent,
        [
            (
                format!("{LYON_FEEDS}/gbfs.json"),
                Some("Apikey s3cr3t".to_owned())
            ),
            (format!("{LYON_FEEDS}/station_status.json"), None),
        ]
    );
}

#[tokio::test]
async fn a_refusal_by_a_host_the_authorization_was_kept_from_says_so() {
    let port = Arc::new(std::sync::OnceLock::<String>::new());
    let own = port.clone();
    let server = TestServer::start(move |request| {
        if request.path.ends_with("/gbfs.json") {
            let elsewhere = format!(
                "http://localhost:{}",
                own.get().cloned().unwrap_or_default()
            );
            return Reply::json(
                200,
                format!(
                    "{{\"last_updated\": 1, \"ttl\": 60, \"data\": {{\"en\": {{\"feeds\": \
                     [{{\"name\": \"station_status\", \"url\": \"{elsewhere}/status.json\"}}]}}}}}}"
                ),
            );
        }
        Reply::json(401, r#"{"message": "key required"}"#)
    });
    let _ = port.set(
        server
            .url("")
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_owned(),
    );
    let fetch = lakehouse_runtime::sources::HttpFetch::new(policy())
        .expect("client")
        .with_authorization("Apikey s3cr3t")
        .expect("header");
    let client = GbfsClient::discover(Arc::new(fetch), &server.url("/gbfs.json")).expect("client");

    let error = client
        .station_status()
        .await
        .expect_err("refused")
        .to_string();

    assert!(
        error.contains("HTTP 401")
            && error.contains("the configured authorization was not sent to http://localhost:"),
        "{error}"
    );
}

#[tokio::test]
async fn discovery_finds_the_feeds_in_gbfs_json() {
    let server = lyon_server("paged");
    let (fetch, _) = http(policy());
    let client = GbfsClient::discover(fetch, &server.url(&format!("{LYON_FEEDS}/gbfs.json")))
        .expect("client");

    let (_, collected) = read(&client).await;
    let information = client.station_information().await.expect("information");

    assert_eq!(rows(&collected), 25);
    assert_eq!(information.stations.len(), 25);
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            format!("{LYON_FEEDS}/gbfs.json"),
            format!("{LYON_FEEDS}/station_status.json"),
            format!("{LYON_FEEDS}/station_information.json"),
        ],
        "the discovery document is read once"
    );
}

#[tokio::test]
async fn a_feed_the_preferred_language_lacks_is_taken_from_another() {
    // `fr` (preferred) lists the station information only; `en` both feeds, another URL.
    // (Relative feed URLs, as some feeds write them.)
    let server = TestServer::start(|request| match request.path.as_str() {
        "/gbfs.json" => Reply::json(
            200,
            serde_json::json!({
                "last_updated": 1_781_678_906, "ttl": 60, "version": "2.3",
                "data": {
                    "en": {"feeds": [
                        {"name": "station_information", "url": "/en/info.json"},
                        {"name": "station_status", "url": "/en/status.json"}
                    ]},
                    "fr": {"feeds": [
                        {"name": "station_information", "url": "/fr/info.json"}
                    ]}
                }
            })
            .to_string(),
        ),
        _ => Reply::json(404, "{}"),
    });
    let (fetch, _) = http(policy());
    let client = GbfsClient::discover(fetch, &server.url("/gbfs.json")).expect("client");

    // Both are asked: which URL each feed was taken from is what the requests show.
    let _ = client.station_information().await;
    let _ = client.station_status().await;

    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/gbfs.json", "/fr/info.json", "/en/status.json"]);
}

#[tokio::test]
async fn an_unknown_feed_names_the_ones_there_are() {
    let fetch = Arc::new(SnapshotFetch::new(fixtures("paged")));
    let client = GbfsClient::discover(fetch, &format!("https://{LYON}{LYON_FEEDS}/gbfs.json"))
        .expect("client");

    let error = client
        .station_feed("free_bike_status")
        .await
        .expect_err("unknown");

    assert!(
        error
            .to_string()
            .contains("no GBFS feed `free_bike_status` (feeds: station_information, station_status, system_information)"),
        "{error}"
    );
    // The recorded discovery document lists the same feeds at every attempt.
    assert!(!error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn a_feed_is_stale_past_its_ttl() {
    let fetch = Arc::new(SnapshotFetch::new(fixtures("paged")));
    let url = format!("https://{LYON}{LYON_FEEDS}/station_status.json");
    let client = GbfsClient::direct(fetch, [("station_status", url.as_str())]).expect("client");
    let feed = client.station_status().await.expect("feed");

    let updated = feed.last_updated.0;
    assert!(!feed.is_stale(Timestamp(updated + 59_000_000)));
    assert!(feed.is_stale(Timestamp(updated + 61_000_000)));
    assert_eq!(feed.url, Url::parse(&url).expect("URL"));
    // A ttl of 0 ("fetch it every time") bounds nothing; a time far off is no overflow.
    let always = lakehouse_runtime::sources::GbfsFeed {
        ttl: Some(0),
        ..feed.clone()
    };
    assert!(!always.is_stale(Timestamp(updated + 3_600_000_000)));
    let ancient = lakehouse_runtime::sources::GbfsFeed {
        last_updated: Timestamp(i64::MIN),
        ..feed
    };
    assert!(ancient.is_stale(Timestamp(i64::MAX)));
}

#[tokio::test]
async fn a_feed_without_stations_is_malformed() {
    let server =
        TestServer::start(|_| Reply::json(200, r#"{"last_updated": 1, "ttl": 60, "data": {}}"#));
    let (fetch, _) = http(policy());
    let url = server.url("/station_status.json");
    let client = GbfsClient::direct(fetch, [("station_status", url.as_str())]).expect("client");

    let error = client.station_status().await.expect_err("no stations");

    assert!(
        error
            .to_string()
            .contains("malformed GBFS feed `station_status`: no `data.stations` array"),
        "{error}"
    );
}

#[tokio::test]
async fn last_updated_is_read_as_seconds_with_a_fraction_or_a_date_time_and_milliseconds_refused() {
    for (updated, expected) in [
        ("1748938500", Ok(1_748_938_500_000_000)),
        ("1748938500.5", Ok(1_748_938_500_500_000)),
        ("\"2025-06-03T08:15:00+02:00\"", Ok(1_748_931_300_000_000)),
        (
            "1748938500000",
            Err("neither epoch seconds nor an RFC 3339 date-time"),
        ),
        (
            "1.0e300",
            Err("neither epoch seconds nor an RFC 3339 date-time"),
        ),
    ] {
        let body =
            format!("{{\"last_updated\": {updated}, \"ttl\": 60, \"data\": {{\"stations\": []}}}}");
        let server = TestServer::start(move |_| Reply::json(200, body.clone()));
        let (fetch, _) = http(policy());
        let url = server.url("/station_status.json");
        let client = GbfsClient::direct(fetch, [("station_status", url.as_str())]).expect("client");
        let read = client.station_status().await;
        match expected {
            Ok(micros) => assert_eq!(
                read.map(|feed| feed.last_updated)
                    .map_err(|e| e.to_string()),
                Ok(Timestamp(micros)),
                "{updated}"
            ),
            Err(why) => {
                let error = read.expect_err(updated).to_string();
                assert!(error.contains(why), "{updated}: {error}");
            }
        }
    }
}

#[tokio::test]
async fn a_byte_order_mark_and_an_odd_ttl_do_not_fail_a_feed() {
    // Before, the mark failed the parse ("expected value at line 1 column 1") and a `ttl` of
    // null, 60.5 or "60" failed the feed, though only the staleness warning uses it.
    for (ttl, expected) in [("null", None), ("60.5", Some(60)), ("\"60\"", Some(60))] {
        let body = format!(
            "\u{feff}{{\"last_updated\": 1, \"ttl\": {ttl}, \"data\": {{\"stations\": \
             [{{\"station_id\": \"1\"}}]}}}}"
        );
        let server = TestServer::start(move |_| Reply::json(200, body.clone()));
        let (fetch, _) = http(policy());
        let url = server.url("/station_status.json");
        let client = GbfsClient::direct(fetch, [("station_status", url.as_str())]).expect("client");
        let feed = client.station_status().await.expect("read");
        assert_eq!(feed.ttl, expected, "ttl {ttl}");
        assert_eq!(feed.stations.len(), 1);
        // Without a ttl, never stale.
        assert!(expected.is_some() || !feed.is_stale(Timestamp(i64::MAX)));
    }
}

#[test]
fn a_count_written_as_a_whole_float_is_read_and_a_fraction_or_text_rejected() {
    let read = |value: serde_json::Value| {
        let record = serde_json::json!({ "num_bikes_available": value });
        Record::new(&record)
            .expect("an object")
            .count("num_bikes_available")
            .map_err(|rejected| rejected.0)
    };
    assert_eq!(read(serde_json::json!(20)), Ok(20));
    assert_eq!(read(serde_json::json!(20.0)), Ok(20));
    assert_eq!(
        read(serde_json::json!(20.5)),
        Err("`num_bikes_available` should be an integer but is the number 20.5".to_owned())
    );
    assert_eq!(
        read(serde_json::json!(3e10)),
        Err(
            "`num_bikes_available` should be an integer but is the number 30000000000.0".to_owned()
        )
    );
    assert_eq!(
        read(serde_json::json!("5")),
        Err("`num_bikes_available` should be an integer but is the string \"5\"".to_owned())
    );
    assert_eq!(
        read(serde_json::json!(-2.0)),
        Err("`num_bikes_available` is negative (-2): a count cannot be".to_owned())
    );
}

#[test]
fn last_reported_is_read_as_seconds_however_a_feed_writes_them() {
    let read = |value: serde_json::Value| {
        let record = serde_json::json!({ "last_reported": value });
        Record::new(&record)
            .expect("an object")
            .epoch_seconds("last_reported")
            .map(|t| t.0)
            .map_err(|rejected| rejected.0)
    };
    let at = 1_781_678_906_000_000;
    // Whole seconds, a fraction, the same written as text, and RFC 3339.
    assert_eq!(read(serde_json::json!(1_781_678_906)), Ok(at));
    assert_eq!(read(serde_json::json!(1_781_678_906.25)), Ok(at + 250_000));
    assert_eq!(read(serde_json::json!("1781678906")), Ok(at));
    assert_eq!(read(serde_json::json!(" 1781678906.5 ")), Ok(at + 500_000));
    assert_eq!(read(serde_json::json!("2026-06-17T06:48:26Z")), Ok(at));
    // Milliseconds are refused, as numbers or text; so is what is no time.
    for millis in [
        serde_json::json!(1_781_678_906_000_i64),
        serde_json::json!("1781678906000"),
    ] {
        let error = read(millis).expect_err("milliseconds");
        assert!(
            error.contains("too large for seconds since the epoch"),
            "{error}"
        );
    }
    let error = read(serde_json::json!("yesterday")).expect_err("no time");
    assert!(
        error.contains("seconds since the epoch or an RFC 3339 date-time"),
        "{error}"
    );
}
