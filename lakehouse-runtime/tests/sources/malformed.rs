//! Malformed data: a bad page fails the whole ingestion with an error naming where it came from;
//! a bad record is quarantined with its reason and raw JSON, never dropped, never a crash.

use std::sync::Arc;

use lakehouse_runtime::Error;
use lakehouse_runtime::sources::{OPENDATA_PARIS, OdsClient, SnapshotFetch};

use super::server::{Reply, TestServer, replay};
use super::*;

#[tokio::test]
async fn a_page_cut_short_in_a_well_framed_response_fails_without_retry() {
    // The server sends the 300 bytes it has with a matching length: the HTTP exchange is fine,
    // the JSON is not.
    let server = TestServer::start(replay(fixtures("truncated"), PARIS));
    let (fetch, timer) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let error = read_status(&client).await.expect_err("truncated page");

    assert_eq!(server.requests().len(), 1);
    assert!(timer.delays().is_empty());
    let text = error.to_string();
    assert!(matches!(error, Error::Source { .. }), "{error:?}");
    assert!(text.contains("records?select="), "names the URL: {text}");
    assert!(
        text.contains("malformed Opendatasoft records page"),
        "{text}"
    );
    assert!(text.contains("EOF while parsing"), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
    // A live answer may be whole next time: the pipeline's retries may ask again.
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn invalid_json_fails_with_its_position() {
    let server = TestServer::start(replay(fixtures("invalid"), PARIS));
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let error = read_status(&client).await.expect_err("invalid page");

    let text = error.to_string();
    assert!(
        text.contains("malformed Opendatasoft records page"),
        "{text}"
    );
    assert!(text.contains("line 3 column 1"), "{text}");
}

#[tokio::test]
async fn a_malformed_snapshot_file_fails_naming_the_file() {
    let fetch = Arc::new(SnapshotFetch::new(fixtures("truncated")));
    let client = OdsClient::new(fetch, OPENDATA_PARIS).expect("client");

    let error = read_status(&client).await.expect_err("truncated file");

    let text = error.to_string();
    assert!(
        text.contains("truncated/opendata.paris.fr/api/explore/v2.1/catalog/datasets/velib-disponibilite-en-temps-reel/records@limit=20&offset=0.json"),
        "{text}"
    );
    assert!(
        text.contains("(snapshot of https://opendata.paris.fr/"),
        "{text}"
    );
    // A recording gives the same bytes at every attempt: not retried.
    assert!(!error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn edge_records_are_quarantined_with_their_reasons_and_raw_json() {
    let server = TestServer::start(replay(fixtures("edge"), PARIS));
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let collected = read_status(&client).await.expect("edge page");

    assert_eq!(rows(&collected), 10);
    let reasons: Vec<&str> = collected
        .rejects
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "`numdocksavailable` should be an integer but is the string \"17\"",
            "`coordonnees_geo` is null",
            "`stationcode` is null",
            "`coordonnees_geo.lon` 48.8484 and `coordonnees_geo.lat` 2.3339 look swapped: the \
             point is outside Paris unless they are exchanged",
            "`numdocksavailable` is negative (-1): a count cannot be",
            "missing key `coordonnees_geo.lat`",
            "`is_renting` should be a flag (true/false, 1/0 or \"OUI\"/\"NON\") but is the string \"1\"",
        ]
    );
    let first = &collected.rejects[0];
    assert!(
        first
            .raw
            .starts_with(r#"{"stationcode": "5119", "name": "Claude Bernard - Gay-Lussac""#),
        "the raw record, byte for byte: {}",
        first.raw
    );
    assert!(
        first.source.contains("/records?select="),
        "{}",
        first.source
    );
    for reject in &collected.rejects {
        let parsed: serde_json::Value =
            serde_json::from_str(&reject.raw).expect("raw is the record's JSON");
        assert!(parsed.is_object());
    }
}

#[tokio::test]
async fn records_kept_from_the_edge_page_keep_their_oddities() {
    let fetch = Arc::new(SnapshotFetch::new(fixtures("edge")));
    let client = OdsClient::new(fetch, OPENDATA_PARIS).expect("client");

    let collected = read_status(&client).await.expect("edge page");

    let batch =
        arrow::compute::concat_batches(&TestStatus::DEF.output_arrow_schema(), &collected.batches)
            .expect("one batch");
    let codes = batch
        .column_by_name("stationcode")
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
        .expect("codes");
    let codes: Vec<&str> = codes.iter().map(|c| c.unwrap_or("∅")).collect();
    assert_eq!(
        codes,
        [
            "14007", "4003", "20003", "40021", "14007", "8027", "14118", "7026", "11104", "12127"
        ],
        "closed station, duplicate key, old schema, unknown field, null duedate, a date from a \
         broken clock and overflow kept"
    );
    let duedate = batch.column_by_name("duedate").expect("duedate");
    assert_eq!(duedate.null_count(), 1, "the null duedate");
}

#[test]
fn the_export_splitter_survives_brackets_and_quotes_inside_strings_at_any_chunk_size() {
    use lakehouse_runtime::sources::ArraySplitter;
    let body =
        br#" [ {"name": "Quai [rive] \"gauche\", \\ ok", "n": [1, {"x": "}"}]}, 2 ,"three"] "#;
    for chunk in [1, 2, 3, 7, body.len()] {
        let mut splitter = ArraySplitter::new();
        let mut elements = Vec::new();
        for part in body.chunks(chunk) {
            elements.extend(splitter.push(part).expect("valid so far"));
        }
        splitter.finish().expect("complete");
        let texts: Vec<String> = elements
            .iter()
            .map(|e| String::from_utf8(e.clone()).expect("utf-8"))
            .collect();
        assert_eq!(
            texts,
            [
                r#"{"name": "Quai [rive] \"gauche\", \\ ok", "n": [1, {"x": "}"}]}"#,
                "2 ",
                r#""three""#
            ],
            "chunks of {chunk}"
        );
    }

    let mut empty = ArraySplitter::new();
    assert!(empty.push(b"[]").expect("empty array").is_empty());
    empty.finish().expect("closed");

    let mut cut = ArraySplitter::new();
    cut.push(br#"[{"a": 1}, {"b": "#).expect("so far");
    let error = cut.finish().expect_err("cut short");
    assert!(error.contains("cut short"), "{error}");

    let mut trailing = ArraySplitter::new();
    let error = trailing.push(br#"[1, ]"#).expect_err("trailing comma");
    assert!(error.contains("empty element"), "{error}");

    let mut object = ArraySplitter::new();
    let error = object
        .push(br#"{"total_count": 1}"#)
        .expect_err("not an array");
    assert!(error.contains("expected a JSON array"), "{error}");
}

#[test]
fn raw_records_keep_their_exact_text_through_escapes_and_nesting() {
    use lakehouse_runtime::sources::raw_elements;
    let body = br#"{"total_count": 2, "note": "a \"results\": [x]", "results": [
{"name": "Quai \"Ouest\" ]", "geo": {"lon": 2.1, "lat": 48.9}},
{"tags": ["a", "b"], "n": -1.5e3}
]}"#;
    let raw = raw_elements(body, &["results"]).expect("elements");
    let texts: Vec<&str> = raw
        .iter()
        .map(|r| std::str::from_utf8(r).expect("utf-8"))
        .collect();
    assert_eq!(
        texts,
        [
            r#"{"name": "Quai \"Ouest\" ]", "geo": {"lon": 2.1, "lat": 48.9}}"#,
            r#"{"tags": ["a", "b"], "n": -1.5e3}"#,
        ]
    );
    let nested = br#"{"last_updated": 1, "data": {"other": [1], "stations": [{"id": "1"}]}}"#;
    let raw = raw_elements(nested, &["data", "stations"]).expect("nested");
    assert_eq!(raw, [br#"{"id": "1"}"#.as_slice()]);
}

#[tokio::test]
async fn an_html_page_served_as_data_is_shown_in_the_error() {
    let page = "<!DOCTYPE html>\n<html><head><title>Maintenance en cours</title></head>\n\
                <body>Le service revient bientôt.</body></html>";
    let server =
        TestServer::start(move |_| Reply::json(200, page).header("Content-Type", "text/html"));
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let error = read_status(&client).await.expect_err("not JSON");

    assert_eq!(server.requests().len(), 1);
    let text = error.to_string();
    assert!(
        text.contains(
            "(it starts with `<!DOCTYPE html> <html><head><title>Maintenance en cours</title></head> \
             <body>Le…` (119 bytes))"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_fails_without_retry_whether_announced_or_not() {
    let records: Vec<String> = (0..100)
        .map(|i| format!("{{\"stationcode\": \"{i}\"}}"))
        .collect();
    let body = format!(
        "{{\"total_count\": 100, \"results\": [{}]}}",
        records.join(", ")
    );
    for announced in [true, false] {
        let body = body.clone();
        let server = TestServer::start(move |_| {
            let reply = Reply::json(200, body.clone());
            if announced {
                reply
            } else {
                reply.without_length()
            }
        });
        let (fetch, _) = http(RetryPolicy {
            max_body_bytes: 1000,
            ..policy()
        });
        let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

        let error = read_status(&client).await.expect_err("too large");

        assert_eq!(server.requests().len(), 1, "not retried");
        // Nor by the pipeline's retries: the same body is as large again.
        assert!(!error.is_retryable(), "{error:?}");
        let text = error.to_string();
        let size = if announced {
            "2323 bytes"
        } else {
            "over 1000 bytes"
        };
        assert!(
            text.contains(&format!(
                "the body is {size}, more than the 1000 bytes allowed: raise \
                 `opendata.http.max_body`"
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_record_with_bytes_that_are_not_utf8_is_kept_and_noted_not_the_page_failed() {
    // One record of the page has a Latin-1 `é` (byte 0xE9) in its station code.
    let record = |code: &[u8], docks: u32| {
        let mut json = br#"{"stationcode": ""#.to_vec();
        json.extend_from_slice(code);
        json.extend_from_slice(
            format!(
                r#"", "numdocksavailable": {docks}, "numbikesavailable": 1, "is_renting": "OUI", "duedate": null, "coordonnees_geo": {{"lon": 2.35, "lat": 48.85}}}}"#
            )
            .as_bytes(),
        );
        json
    };
    let mut body = br#"{"total_count": 2, "results": ["#.to_vec();
    body.extend(record(b"16107", 3));
    body.push(b',');
    body.extend(record(b"R\xe9publique", 4));
    body.extend_from_slice(b"]}");
    let server = TestServer::start(move |_| Reply::json(200, body.clone()));
    let (fetch, _) = http(policy());
    let client = OdsClient::new(fetch, &ods_base(&server)).expect("client");

    let collected = read_status(&client).await.expect("the page is read");

    assert_eq!(rows(&collected), 2, "both records kept");
    assert!(collected.rejects.is_empty(), "{:?}", collected.rejects);
    let noted: Vec<(&str, &str)> = collected
        .kept_with_nulls
        .iter()
        .map(|r| (r.reason.as_str(), r.raw.as_str()))
        .collect();
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert_eq!(
        noted[0].0,
        "kept, with U+FFFD (`�`) for bytes that are not UTF-8"
    );
    assert!(noted[0].1.contains("R\u{FFFD}publique"), "{}", noted[0].1);
}
