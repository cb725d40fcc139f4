//! Opendatasoft paging: exact row counts over several pages, the query each page sends,
//! `total_count` checks, and the exports endpoint past the 10 000 offset cap.

use lakehouse_runtime::Error;
use lakehouse_runtime::sources::{OdsClient, Pages};
use serde_json::{Value, json};

use super::server::{Reply, TestServer, replay};
use super::*;

/// The first paged status page as JSON.
fn first_page() -> Value {
    let file = fixtures("paged/opendata.paris.fr/api/explore/v2.1/catalog/datasets")
        .join(STATUS)
        .join("records@limit=20&offset=0.json");
    serde_json::from_slice(&std::fs::read(file).expect("fixture")).expect("valid page")
}

#[tokio::test]
async fn three_pages_give_every_row_once_with_the_query_on_each_page() {
    let server = TestServer::start(replay(fixtures("paged"), PARIS));
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let collected = read_status(&client).await.expect("paged read");

    assert_eq!(rows(&collected), 45);
    assert_eq!(collected.pages, 3);
    assert!(collected.rejects.is_empty(), "{:?}", collected.rejects);
    // Each page after the first starts with the previous one's last record, read once.
    let batch_rows: Vec<usize> = collected.batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(batch_rows, [20, 19, 6], "one batch per page");
    let requests = server.requests();
    let offsets: Vec<&str> = requests.iter().filter_map(|r| r.param("offset")).collect();
    assert_eq!(offsets, ["0", "19", "38"], "no request past total_count");
    for request in &requests {
        assert_eq!(
            request.path,
            format!("/api/explore/v2.1/catalog/datasets/{STATUS}/records")
        );
        assert_eq!(request.param("limit"), Some("20"));
        assert_eq!(request.param("order_by"), Some("stationcode"));
        assert_eq!(request.param("timezone"), Some("UTC"));
        assert_eq!(
            request.param("select"),
            Some(
                "stationcode,numdocksavailable,numbikesavailable,is_renting,duedate,coordonnees_geo"
            )
        );
        assert_eq!(request.param("where"), None);
    }
}

#[tokio::test]
async fn a_where_clause_is_sent_and_a_page_size_over_100_is_refused() {
    let server = TestServer::start(replay(fixtures("paged"), PARIS));
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");
    let mut pages = client
        .pages(status_query().filter("numbikesavailable > 0"))
        .expect("query");
    pages.next_page().await.expect("page").expect("one page");
    assert_eq!(
        server.requests()[0].param("where"),
        Some("numbikesavailable > 0")
    );

    let error = client
        .pages(status_query().page_size(101))
        .expect_err("limit > 100");
    assert!(error.to_string().contains("to 100"), "{error}");
    let error = client
        .pages(status_query().page_size(1))
        .expect_err("no room for the previous page's last record");
    assert!(error.to_string().contains("from 2"), "{error}");
}

#[tokio::test]
async fn a_total_count_that_changes_between_pages_fails_the_ingestion() {
    let server = TestServer::start(|request| {
        let mut page = first_page();
        if request.param("offset") == Some("19") {
            let results = page["results"].as_array().cloned().unwrap_or_default();
            page["results"] = json!(results[19..]);
            page["total_count"] = json!(44);
        }
        Reply::json(200, page.to_string())
    });
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let error = read_status(&client).await.expect_err("inconsistent total");

    let text = error.to_string();
    assert!(matches!(error, Error::Source { .. }), "{error:?}");
    assert!(
        text.contains("`total_count` changed while paging, from 45 on the first page to 44"),
        "{text}"
    );
    assert!(text.contains("offset=19"), "names the page's URL: {text}");
}

#[tokio::test]
async fn an_empty_page_before_total_count_is_reached_fails_the_ingestion() {
    let server = TestServer::start(|request| {
        let first = first_page();
        if request.param("offset") == Some("0") {
            Reply::json(200, first.to_string())
        } else {
            // The previous page's last record, and none after it.
            let last = first["results"][19].clone();
            Reply::json(
                200,
                json!({"total_count": 45, "results": [last]}).to_string(),
            )
        }
    });
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let error = read_status(&client).await.expect_err("records missing");

    assert!(
        error
            .to_string()
            .contains("no records at offset 20 although `total_count` is 45"),
        "{error}"
    );
}

/// A server whose dataset is the first page's 20 records and 25 more, changed by `change`
/// (the records as they are) once the first page was sent.
fn changing_dataset(change: fn(&mut Vec<Value>)) -> TestServer {
    let sent_first = std::sync::atomic::AtomicBool::new(false);
    TestServer::start(move |request| {
        let first = first_page();
        let mut records = first["results"].as_array().cloned().unwrap_or_default();
        let template = records[0].clone();
        records.extend((0..25).map(|i| {
            let mut record = template.clone();
            record["stationcode"] = json!(format!("{}", 90_000 + i));
            record
        }));
        if sent_first.swap(true, std::sync::atomic::Ordering::SeqCst) {
            change(&mut records);
        }
        let offset: usize = request
            .param("offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let limit: usize = request
            .param("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(20);
        let page: Vec<Value> = records.iter().skip(offset).take(limit).cloned().collect();
        Reply::json(
            200,
            json!({"total_count": records.len(), "results": page}).to_string(),
        )
    })
}

#[tokio::test]
async fn pages_shifted_by_records_added_and_removed_meanwhile_fail_the_ingestion() {
    // One added before the offset and one removed after it: the next page would send the
    // previous one's last record again. One removed before and one added after: it would skip
    // a record, and nothing would repeat. `total_count` is the same either way.
    let shifts: [fn(&mut Vec<Value>); 2] = [
        |records| {
            let mut added = records[0].clone();
            added["stationcode"] = json!("00001");
            records.insert(0, added);
            records.pop();
        },
        |records| {
            let mut added = records[0].clone();
            added["stationcode"] = json!("99999");
            records.remove(5);
            records.push(added);
        },
    ];
    // Whether the record is told by its whole text or by its key.
    let queries = [
        status_query(),
        status_query().identified_by(&["stationcode"]),
    ];
    for (shift, query) in shifts
        .into_iter()
        .flat_map(|s| queries.clone().map(|q| (s, q)))
    {
        let server = changing_dataset(shift);
        let (fetch, _) = http(policy());
        let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

        let error = read_query(&client, query).await.expect_err("shifted pages");

        let text = error.to_string();
        assert!(matches!(error, Error::Source { .. }), "{error:?}");
        assert!(
            text.contains(
                "the page from offset 19 does not start with the record the previous page ended \
                 with: records were added or removed before it"
            ) && text.contains("offset=19"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_record_updated_between_two_page_requests_is_the_same_record_when_its_key_identifies_it()
{
    // The 20th record, the one the second page starts with, has new counts once the first page
    // was sent (a real-time dataset updated every minute): no page shifted.
    let updated: fn(&mut Vec<Value>) = |records| {
        records[19]["numbikesavailable"] = json!(99);
        records[19]["duedate"] = json!("2030-01-01T00:00:00+00:00");
    };
    let server = changing_dataset(updated);
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");
    let collected = read_query(&client, status_query().identified_by(&["stationcode"]))
        .await
        .expect("the same station starts the second page");

    assert_eq!(rows(&collected), 45);
    assert_eq!(collected.pages, 3);

    // An identity field left out of `select` is refused: every record would be told the same.
    let unselected = client
        .pages(status_query().identified_by(&["station_code"]))
        .expect_err("not selected");
    assert!(
        unselected
            .to_string()
            .contains("the identity field(s) station_code are not selected"),
        "{unselected}"
    );

    // Told by the whole record (the default), the update reads as a shift.
    let server = changing_dataset(updated);
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");
    let error = read_status(&client).await.expect_err("another record");
    assert!(
        error
            .to_string()
            .contains("the page from offset 19 does not start with the record"),
        "{error}"
    );
}

#[tokio::test]
async fn a_record_held_twice_across_a_page_boundary_is_read_twice() {
    // Identical records at 19 and 20 (a `select` of fields that do not tell them apart): the
    // page from 19 starts with the first of them, as the previous page ended.
    let server = TestServer::start(|request| {
        let first = first_page();
        let mut records = first["results"].as_array().cloned().unwrap_or_default();
        let twice = records[19].clone();
        records.push(twice.clone());
        records.extend((0..24).map(|i| {
            let mut record = twice.clone();
            record["stationcode"] = json!(format!("{}", 90_000 + i));
            record
        }));
        let offset: usize = request
            .param("offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let page: Vec<Value> = records.iter().skip(offset).take(20).cloned().collect();
        Reply::json(200, json!({"total_count": 45, "results": page}).to_string())
    });
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let collected = read_status(&client).await.expect("no shift");

    assert_eq!(rows(&collected) + collected.rejects.len(), 45);
    let asked: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.param("offset").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(asked, ["0", "19", "38"]);
}

/// `count` status records for an export, from the fixture's, with distinct station codes.
fn export_body(count: usize) -> String {
    let template = first_page()["results"][0].clone();
    let records: Vec<Value> = (0..count)
        .map(|i| {
            let mut record = template.clone();
            record["stationcode"] = json!(format!("{}", 100_000 + i));
            record
        })
        .collect();
    Value::Array(records).to_string()
}

#[tokio::test]
async fn an_export_asked_for_reads_the_whole_dataset_in_one_request() {
    let export = export_body(45);
    let server = TestServer::start(move |request| {
        if request.path.ends_with("/exports/json") {
            return Reply::json(200, export.clone());
        }
        Reply::file(400, &fixtures("errors/ods_400_offset_limit.json"))
    });
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");
    let mut pages = client.export(status_query()).expect("export");
    let collected = collect_batches(
        TestStatus::DEF.output_arrow_schema(),
        &mut pages,
        status_row,
    )
    .await
    .expect("read through the export");

    assert_eq!(rows(&collected), 45);
    assert!(
        collected.batches.iter().all(|b| b.num_rows() <= 20),
        "handed on in pages of the query's size"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].path.ends_with("/exports/json"), "{requests:?}");
    assert_eq!(requests[0].param("order_by"), Some("stationcode"));
    assert_eq!(requests[0].param("limit"), None);
}

#[tokio::test]
async fn past_the_10000_offset_cap_the_export_is_streamed_instead_of_paging() {
    const TOTAL: usize = 10_050;
    let export = export_body(TOTAL);
    let server = TestServer::start(move |request| {
        if request.path.ends_with("/exports/json") {
            return Reply::json(200, export.clone());
        }
        if request.param("offset") == Some("0") {
            let mut page = first_page();
            page["total_count"] = json!(TOTAL);
            return Reply::json(200, page.to_string());
        }
        Reply::file(400, &fixtures("errors/ods_400_offset_limit.json"))
    });
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let collected = read_status(&client).await.expect("read through the export");

    assert_eq!(rows(&collected), TOTAL);
    assert!(
        collected.batches.iter().all(|b| b.num_rows() <= 20),
        "the export is cut into pages, never held whole"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].param("offset"), Some("0"));
    let export = &requests[1];
    assert_eq!(
        export.path,
        format!("/api/explore/v2.1/catalog/datasets/{STATUS}/exports/json")
    );
    assert_eq!(export.param("order_by"), Some("stationcode"));
    assert_eq!(export.param("timezone"), Some("UTC"));
    assert!(export.param("select").is_some());
    assert_eq!(export.param("offset"), None);
    assert_eq!(export.param("limit"), None);
}

#[tokio::test]
async fn an_export_shorter_than_total_count_fails_the_ingestion() {
    let export = export_body(10_001);
    let server = TestServer::start(move |request| {
        if request.path.ends_with("/exports/json") {
            return Reply::json(200, export.clone());
        }
        let mut page = first_page();
        page["total_count"] = json!(10_002);
        Reply::json(200, page.to_string())
    });
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let error = read_status(&client).await.expect_err("count mismatch");

    assert!(
        error
            .to_string()
            .contains("the export has 10001 records but `total_count` was 10002"),
        "{error}"
    );
}

#[tokio::test]
async fn an_export_cut_short_fails_the_ingestion() {
    let export = export_body(10_001);
    let cut = export.len() / 2;
    let server = TestServer::start(move |request| {
        if request.path.ends_with("/exports/json") {
            return Reply::json(200, export.clone()).cut_after(cut);
        }
        let mut page = first_page();
        page["total_count"] = json!(10_001);
        Reply::json(200, page.to_string())
    });
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let error = read_status(&client).await.expect_err("cut export");

    let text = error.to_string();
    assert!(text.contains("exports/json"), "names the URL: {text}");
    assert!(
        text.contains("the response is incomplete") || text.contains("cut short"),
        "{text}"
    );
}

#[tokio::test]
async fn an_export_trickling_past_the_total_time_for_its_url_fails_the_ingestion() {
    // Every piece well within the idle timeout, the whole body never: the URL's total time
    // bounds it, as it bounds a page read whole.
    let export = export_body(10_001);
    let server = TestServer::start(move |request| {
        if request.path.ends_with("/exports/json") {
            return Reply::json(200, export.clone()).trickle(4096, Duration::from_millis(50));
        }
        let mut page = first_page();
        page["total_count"] = json!(10_001);
        Reply::json(200, page.to_string())
    });
    let (fetch, _) = http(RetryPolicy {
        max_elapsed: Duration::from_secs(1),
        ..policy()
    });
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let error = read_status(&client)
        .await
        .expect_err("the export never ends in time");

    let text = error.to_string();
    assert!(text.contains("exports/json"), "names the URL: {text}");
    assert!(
        text.contains(
            "the maximum total duration for one URL, 1s (`opendata.http.max_elapsed`), passed after"
        ),
        "says which limit passed and the setting that raises it: {text}"
    );
    assert!(
        text.contains(
            "bytes of the body, still arriving: the response is incomplete; nothing was \
             written; raise `opendata.http.max_elapsed` for a body this long"
        ),
        "{text}"
    );
    // A body this long at this pace would stop again: not retried with the pipeline.
    assert!(!error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn an_api_key_is_sent_with_every_request_and_kept_out_of_debug_output() {
    use lakehouse_runtime::ctx::Settings;
    use lakehouse_runtime::sources::OpenData;
    let server = TestServer::start(replay(fixtures("paged"), PARIS));
    let mut settings = Settings::new();
    settings.set("opendata.mode", "live").set(
        "opendata.velib.authorization",
        "env:LAKEHOUSE_TEST_PARIS_KEY",
    );
    // The variable is read only when a request is to be sent: a snapshot run needs no key.
    settings.set("opendata.mode", "snapshot");
    OpenData::from_settings(&settings, "velib", &fixtures("paged"))
        .expect("settings")
        .fetch()
        .expect("a snapshot needs no key");
    settings.set("opendata.mode", "live");
    let unset = OpenData::from_settings(&settings, "velib", std::path::Path::new("unused"))
        .expect("settings")
        .fetch()
        .expect_err("the variable is not set");
    assert!(
        unset.to_string().contains(
            "reads the environment variable `LAKEHOUSE_TEST_PARIS_KEY`, which is not set"
        ),
        "{unset}"
    );
    assert!(
        !unset.is_retryable(),
        "the same at every attempt: {unset:?}"
    );
    settings.set("opendata.velib.authorization", "Apikey s3cr3t");
    let open = OpenData::from_settings(&settings, "velib", std::path::Path::new("unused"))
        .expect("settings");
    assert!(!format!("{open:?}").contains("s3cr3t"), "{open:?}");
    let client = OdsClient::new(open.fetch().expect("fetch"), &ods_base(&server)).expect("client");

    let collected = read_status(&client).await.expect("paged read");

    assert!(collected.rows > 0);
    let sent: Vec<Option<String>> = server
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert!(sent.len() > 1, "{sent:?}");
    assert!(
        sent.iter().all(|a| a.as_deref() == Some("Apikey s3cr3t")),
        "{sent:?}"
    );
    // Only encrypted, or to this machine: a plain-HTTP host elsewhere gets nothing.
    let elsewhere = OdsClient::new(
        open.fetch().expect("fetch"),
        "http://192.0.2.1/api/explore/v2.1/",
    )
    .expect("client");
    let refused = read_status(&elsewhere).await.expect_err("not sent");
    assert!(
        refused
            .to_string()
            .contains("refusing to send the configured authorization over plain HTTP"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_base_urls_query_goes_with_every_request_and_stays_out_of_the_rejects() {
    let server = TestServer::start(replay(fixtures("paged"), PARIS));
    let (fetch, _) = http(policy());
    let base = format!("{}?apikey=SECRET", ods_base(&server));
    let client = OdsClient::new(fetch.clone(), &base).expect("client");

    let collected = read_status(&client).await.expect("paged read");

    assert_eq!(rows(&collected), 45);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|r| r.param("apikey") == Some("SECRET")),
        "every request carries the key"
    );
    assert!(
        collected
            .rejects
            .iter()
            .chain(&collected.kept_with_nulls)
            .all(|r| !r.source.contains("SECRET")),
        "{:?}",
        collected.rejects
    );
    // A key the client sets for each request is refused in the base URL.
    let error = OdsClient::new(fetch.clone(), &format!("{}?limit=5", ods_base(&server)))
        .expect_err("limit is the client's");
    assert!(
        error
            .to_string()
            .contains("sets `limit`, which the client sets for each request"),
        "{error}"
    );
    // A key in it travels encrypted only, as an authorization header does: over https, or to
    // this machine (above).
    let error = OdsClient::new(
        fetch.clone(),
        "http://opendata.example.org/api/explore/v2.1/?apikey=SECRET",
    )
    .expect_err("a key over plain HTTP");
    let text = error.to_string();
    assert!(
        text.contains("holds a key, which would travel unencrypted over plain HTTP")
            && !text.contains("SECRET"),
        "{text}"
    );
    OdsClient::new(
        fetch,
        "https://opendata.example.org/api/explore/v2.1/?apikey=SECRET",
    )
    .expect("over https");
}
