//! The retry policy over HTTP: what is retried, how long it waits (as asked of its timer), and
//! the errors it gives up with.

use std::time::Duration;

use lakehouse_runtime::Error;
use lakehouse_runtime::ctx::Settings;
use lakehouse_runtime::sources::{Fetch, RetryPolicy, Url, retry_hint};

use super::server::{Reply, TestServer, replay};
use super::*;

/// The first status page of the paged fixtures.
fn page_one() -> Reply {
    Reply::file(
        200,
        &fixtures("paged/opendata.paris.fr/api/explore/v2.1/catalog/datasets")
            .join(STATUS)
            .join("records@limit=20&offset=0.json"),
    )
}

/// GETs `path` on `server` through `fetch`.
async fn get(
    fetch: &dyn Fetch,
    server: &TestServer,
    path: &str,
) -> lakehouse_runtime::Result<Vec<u8>> {
    let url = Url::parse(&server.url(path)).expect("URL");
    fetch.get(&url).await.map(|body| body.bytes)
}

const RECORDS: &str = "/api/explore/v2.1/catalog/datasets/velib-disponibilite-en-temps-reel/records?limit=20&offset=0";

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_exactly_the_time_asked() {
    let server = TestServer::start(|request| {
        if request.index == 0 {
            Reply::file(429, &fixtures("errors/ods_429_quota.json"))
                .header("Retry-After", "1")
                .header("X-RateLimit-Remaining", "0")
        } else {
            page_one()
        }
    });
    let (fetch, timer) = http(policy());

    let body = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect("second attempt");

    assert!(body.starts_with(br#"{"total_count": 45"#));
    assert_eq!(server.requests().len(), 2);
    assert_eq!(timer.delays(), [Duration::from_secs(1)]);
}

#[tokio::test]
async fn a_429_waits_until_x_ratelimit_reset_when_there_is_no_retry_after() {
    let server = TestServer::start(|request| {
        if request.index == 0 {
            // The fake clock is at 1_748_938_500: the quota resets 3 s later.
            Reply::file(429, &fixtures("errors/ods_429_quota.json"))
                .header("X-RateLimit-Remaining", "0")
                .header("X-RateLimit-Reset", "1748938503")
        } else {
            page_one()
        }
    });
    let (fetch, timer) = http(policy());

    get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect("after the reset");

    assert_eq!(timer.delays(), [Duration::from_secs(3)]);
}

#[tokio::test]
async fn a_503_twice_then_success_backs_off_with_full_jitter_under_the_cap() {
    let server = TestServer::start(|request| {
        if request.index < 2 {
            Reply::file(503, &fixtures("errors/gateway_503.html"))
        } else {
            page_one()
        }
    });
    let policy = policy();
    let (fetch, timer) = http(policy.clone());

    get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect("third attempt");

    assert_eq!(server.requests().len(), 3);
    let delays = timer.delays();
    assert_eq!(delays.len(), 2);
    assert!(delays[0] <= Duration::from_millis(10), "{delays:?}");
    assert!(delays[1] <= Duration::from_millis(20), "{delays:?}");
}

#[test]
fn backoff_doubles_up_to_the_cap_and_draws_below_it() {
    let policy = policy();
    let ceilings: Vec<u64> = (0..5)
        .map(|n| policy.backoff_ceiling(n).as_millis() as u64)
        .collect();
    assert_eq!(ceilings, [10, 20, 40, 40, 40]);
    for retry in 0..5 {
        let ceiling = policy.backoff_ceiling(retry);
        let draws: Vec<Duration> = (0..400).map(|_| policy.backoff(retry)).collect();
        assert!(draws.iter().all(|d| *d <= ceiling), "{draws:?}");
        // Jittered over the whole range (full jitter), not a constant, not always zero: the
        // mean of 400 uniform draws is within a fifth of half the ceiling (by far: its
        // standard deviation is about 1.5 % of the ceiling).
        let mean = draws.iter().sum::<Duration>() / 400;
        let half = ceiling / 2;
        assert!(
            mean > half * 4 / 5 && mean < half * 6 / 5,
            "mean {mean:?}, ceiling {ceiling:?}"
        );
        let distinct: std::collections::BTreeSet<Duration> = draws.into_iter().collect();
        assert!(distinct.len() > 10, "{distinct:?}");
    }
    assert_eq!(policy.backoff_ceiling(200), Duration::from_millis(40));
}

#[test]
fn retry_after_is_read_as_seconds_or_as_an_http_date() {
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_748_938_500);
    assert_eq!(
        retry_hint(503, Some("7"), None, now),
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        retry_hint(429, Some("Tue, 03 Jun 2025 08:15:30 GMT"), None, now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        retry_hint(429, Some("Tue, 03 Jun 2025 08:00:00 GMT"), None, now),
        Some(Duration::ZERO),
        "a date in the past means now"
    );
    assert_eq!(retry_hint(503, None, Some("1748938510"), now), None);
    assert_eq!(
        retry_hint(429, None, Some("1748938510"), now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(retry_hint(503, Some("soon"), None, now), None);
}

#[tokio::test]
async fn a_400_fails_at_once_with_the_apis_error_code_and_message() {
    let server = TestServer::start(|_| Reply::file(400, &fixtures("errors/ods_400_limit.json")));
    let (fetch, timer) = http(policy());

    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("400");

    assert_eq!(server.requests().len(), 1, "not retried");
    assert!(timer.delays().is_empty());
    let Error::Http {
        url,
        status,
        attempts,
        message,
        ..
    } = &error
    else {
        panic!("expected an HTTP error, got {error:?}");
    };
    assert!(url.ends_with(RECORDS), "{url}");
    assert_eq!((*status, *attempts), (Some(400), 1));
    assert!(
        message.contains(
            "InvalidRESTParameterError: Invalid value for limit API parameter: 200 was found but \
             -1 <= limit <= 100 is expected."
        ),
        "{message}"
    );
    assert!(message.contains("not retried"), "{message}");
}

#[tokio::test]
async fn an_odsql_error_names_the_clause() {
    let server = TestServer::start(|_| Reply::file(400, &fixtures("errors/ods_400_odsql.json")));
    let (fetch, _) = http(policy());

    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("400");

    assert!(
        error
            .to_string()
            .contains("ODSQLError: ODSQL query is malformed"),
        "{error}"
    );
}

#[tokio::test]
async fn a_404_is_not_retried() {
    let server = TestServer::start(replay(fixtures("paged"), PARIS));
    let (fetch, _) = http(policy());

    let error = get(
        fetch.as_ref(),
        &server,
        "/api/explore/v2.1/catalog/datasets/nope/records",
    )
    .await
    .expect_err("404");

    assert_eq!(server.requests().len(), 1);
    assert!(error.to_string().contains("HTTP 404 Not Found"), "{error}");
    assert!(error.to_string().contains("check the URL"), "{error}");
    assert!(!error.is_retryable(), "nor by the pipeline's retries");
}

#[tokio::test]
async fn a_408_from_a_proxy_is_retried() {
    let served = std::sync::atomic::AtomicUsize::new(0);
    let server = TestServer::start(move |_| {
        if served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::json(408, "")
        } else {
            page_one()
        }
    });
    let (fetch, timer) = http(policy());
    get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect("the second attempt");
    assert_eq!(server.requests().len(), 2);
    assert_eq!(timer.delays().len(), 1);
}

#[tokio::test]
async fn a_server_failing_every_time_is_given_up_after_max_attempts() {
    let server = TestServer::start(|_| Reply::file(500, &fixtures("errors/gateway_503.html")));
    let (fetch, timer) = http(policy());

    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("persistent 500");

    assert_eq!(server.requests().len(), 4);
    assert_eq!(timer.delays().len(), 3);
    let text = error.to_string();
    assert!(text.contains("failed after 4 attempt(s)"), "{text}");
    assert!(
        text.contains("HTTP 500 Internal Server Error: 503 Service Unavailable"),
        "the HTML page's title: {text}"
    );
    assert!(text.contains("retry later"), "{text}");
    assert!(
        text.contains("raise `opendata.http.max_attempts`"),
        "{text}"
    );
}

#[tokio::test]
async fn advice_names_the_sources_own_setting() {
    // The source's own key overrides the global one: raising the global key, as the advice
    // said before, changed nothing for a source configured on its own.
    let server = TestServer::start(|_| Reply::file(500, &fixtures("errors/gateway_503.html")));
    let mut settings = Settings::new();
    settings
        .set("opendata.velov.http.max_attempts", "2")
        .set("opendata.velov.http.base_delay", "1ms");
    let policy = RetryPolicy::from_settings(&settings, "velov").expect("policy");
    assert_eq!(policy.setting("timeout"), "opendata.velov.http.timeout");
    let (fetch, _) = http(policy);

    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("persistent 500");

    assert_eq!(server.requests().len(), 2);
    let text = error.to_string();
    assert!(
        text.contains("raise `opendata.velov.http.max_attempts`"),
        "{text}"
    );
}

#[tokio::test]
async fn no_attempt_is_squeezed_into_the_end_of_the_budget() {
    // The wait asked for leaves 100 ms of the budget, and the server is slow to answer: an
    // attempt then timed out, and its timeout hid the 503.
    let served = std::sync::atomic::AtomicUsize::new(0);
    let server = TestServer::start(move |_| {
        if served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::json(503, "").header("Retry-After", "29")
        } else {
            page_one().delay(Duration::from_secs(2))
        }
    });
    let (fetch, timer) = http(RetryPolicy {
        max_elapsed: Duration::from_millis(29_100),
        ..policy()
    });
    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("given up");
    assert_eq!(server.requests().len(), 1);
    assert!(timer.delays().is_empty());
    let text = error.to_string();
    assert!(
        text.contains("HTTP 503")
            && text.contains(
                "waiting 29s (the wait the server asked for), and then an attempt of 1s at least, \
                 would pass the maximum total duration of 29s 100ms"
            ),
        "{text}"
    );
    // A server in trouble may be back by the pipeline's own retry: only a quota's wait is final.
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn a_timeout_after_an_answer_tells_the_answer_too() {
    let served = std::sync::atomic::AtomicUsize::new(0);
    let server = TestServer::start(move |_| {
        if served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::json(503, "")
        } else {
            page_one().delay(Duration::from_secs(2))
        }
    });
    let (fetch, _) = http(RetryPolicy {
        request_timeout: Duration::from_millis(100),
        max_attempts: 2,
        ..policy()
    });
    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("timed out");
    let text = error.to_string();
    assert!(
        text.contains("timed out after 100ms")
            && text.contains("(an earlier attempt got HTTP 503 Service Unavailable"),
        "{text}"
    );
}

#[tokio::test]
async fn a_timeout_cut_short_by_the_total_budget_advises_raising_the_budget() {
    let server = TestServer::start(|_| page_one().delay(Duration::from_secs(2)));
    let (fetch, _) = http(RetryPolicy {
        max_elapsed: Duration::from_millis(300),
        source: Some("velib".to_owned()),
        ..policy()
    });
    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("timed out");
    let text = error.to_string();
    assert!(
        text.contains(
            "timed out after 300ms waiting for the response (raise \
             `opendata.velib.http.max_elapsed` if the service is slow)"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_refused_key_names_the_sources_setting() {
    let server = TestServer::start(|_| Reply::json(401, r#"{"message": "Invalid API key"}"#));
    let (fetch, _) = http(RetryPolicy {
        source: Some("velib".to_owned()),
        ..policy()
    });
    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("needs an API key (`opendata.velib.authorization`)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_error_that_cannot_pass_is_not_retried() {
    let server = TestServer::start(|_| Reply::json(501, ""));
    let (fetch, timer) = http(policy());
    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("not implemented");
    assert_eq!(server.requests().len(), 1);
    assert!(timer.delays().is_empty());
    let text = error.to_string();
    assert!(
        text.contains("HTTP 501") && text.contains("not retried: the service cannot serve"),
        "{text}"
    );
}

#[tokio::test]
async fn a_wait_longer_than_the_total_budget_is_not_made() {
    // The quota resets in a day; the budget is 30 s.
    let server = TestServer::start(|_| {
        Reply::file(429, &fixtures("errors/ods_429_quota.json")).header("Retry-After", "86400")
    });
    let (fetch, timer) = http(policy());

    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("over budget");

    assert_eq!(server.requests().len(), 1);
    assert!(timer.delays().is_empty());
    let text = error.to_string();
    assert!(
        text.contains("10002: Too many requests on the domain"),
        "the API's errorcode and message: {text}"
    );
    assert!(
        text.contains("the quota resets at 2025-06-04T00:00:00Z"),
        "{text}"
    );
    assert!(text.contains("maximum total duration"), "{text}");
    // The server said when to come back: retrying the pipeline sooner is pointless.
    assert!(!error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn a_quota_reset_told_in_the_body_only_is_waited_for_too() {
    // Opendatasoft's daily quota: its reset time in the body, and no header, or one saying to
    // wait nothing (which must not hide the body's reset).
    for zero_header in [None, Some("0")] {
        quota_reset_in_the_body(zero_header).await;
    }
}

async fn quota_reset_in_the_body(retry_after: Option<&'static str>) {
    let server = TestServer::start(move |_| {
        let reply = Reply::json(
            429,
            r#"{"errorcode": 10005, "reset_time": "2099-01-01T00:00:00Z", "limit_time_unit": "day", "call_limit": 1000, "error": "You have exceeded the requests limit for anonymous users."}"#,
        );
        match retry_after {
            Some(wait) => reply.header("Retry-After", wait),
            None => reply,
        }
    });
    let (fetch, timer) = http(policy());

    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("over budget");

    // Not asked again 3 times within seconds, nor retried with the pipeline.
    assert_eq!(server.requests().len(), 1);
    assert!(timer.delays().is_empty());
    assert!(!error.is_retryable(), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("(the wait the server asked for)")
            && text.contains("the quota resets at 2099-01-01T00:00:00Z"),
        "{text}"
    );
}

#[tokio::test]
async fn waits_too_long_to_count_are_refused_not_a_panic() {
    // After a first wait of 1 s, a wait of u64::MAX seconds; then a reset past what a clock
    // holds.
    let server = TestServer::start(|request| match request.index {
        0 => Reply::file(503, &fixtures("errors/ods_429_quota.json")).header("Retry-After", "1"),
        _ => Reply::file(503, &fixtures("errors/ods_429_quota.json"))
            .header("Retry-After", &u64::MAX.to_string()),
    });
    let (fetch, timer) = http(policy());
    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("over budget");
    assert_eq!(server.requests().len(), 2);
    assert_eq!(timer.delays(), [Duration::from_secs(1)]);
    assert!(
        error.to_string().contains("maximum total duration"),
        "{error}"
    );

    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_748_938_500);
    let reset = (1u64 << 63).to_string();
    assert_eq!(
        retry_hint(429, None, Some(&reset), now),
        Some(Duration::MAX)
    );
}

#[tokio::test]
async fn a_slow_server_times_out_and_is_retried() {
    let server = TestServer::start(|_| page_one().delay(Duration::from_secs(2)));
    let policy = RetryPolicy {
        request_timeout: Duration::from_millis(100),
        max_attempts: 2,
        ..policy()
    };
    let (fetch, timer) = http(policy);

    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("timeout");

    assert_eq!(server.requests().len(), 2);
    assert_eq!(timer.delays().len(), 1);
    let text = error.to_string();
    assert!(text.contains("timed out after 100ms"), "{text}");
    assert!(
        matches!(error, Error::Http { status: None, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_body_cut_short_is_retried_then_reported() {
    let server = TestServer::start(|_| page_one().cut_after(300));
    let policy = RetryPolicy {
        max_attempts: 3,
        ..policy()
    };
    let (fetch, _) = http(policy);

    let error = get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect_err("truncated");

    assert_eq!(
        server.requests().len(),
        3,
        "a cut body is a connection error"
    );
    let text = error.to_string();
    assert!(
        text.contains("the connection failed while reading the body (it was cut short)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_cut_once_then_whole_succeeds() {
    let server = TestServer::start(|request| {
        if request.index == 0 {
            page_one().cut_after(300)
        } else {
            page_one()
        }
    });
    let (fetch, timer) = http(policy());

    get(fetch.as_ref(), &server, RECORDS)
        .await
        .expect("retried");

    assert_eq!(server.requests().len(), 2);
    assert_eq!(timer.delays().len(), 1);
}

/// A port with nothing listening: bound, noted, closed.
fn port_nothing_listens_on() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test]
async fn a_failed_tls_handshake_is_not_retried() {
    use std::io::{Read as _, Write as _};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A plain HTTP server where an https:// URL points: it answers the TLS greeting with a 400.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let connections = Arc::new(AtomicUsize::new(0));
    {
        let connections = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                connections.fetch_add(1, Ordering::SeqCst);
                let mut greeting = [0u8; 1024];
                let _ = stream.read(&mut greeting);
                let _ = stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
    }
    let (fetch, timer) = http(policy());
    let url = Url::parse(&format!("https://127.0.0.1:{port}/gbfs.json")).expect("URL");

    let error = fetch.get(&url).await.expect_err("no TLS there").to_string();

    // Once: every attempt would fail alike.
    assert_eq!(connections.load(Ordering::SeqCst), 1, "{error}");
    assert!(timer.delays().is_empty(), "{error}");
    assert!(
        error.contains("failed after 1 attempt(s): the TLS handshake failed (")
            && error.contains("no TLS server answers at this address (an http:// service?)")
            && error.ends_with("; not retried"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    let port = port_nothing_listens_on();
    let (fetch, timer) = http(policy());
    let url = Url::parse(&format!("http://127.0.0.1:{port}/gbfs.json")).expect("URL");

    let error = fetch.get(&url).await.expect_err("refused");

    assert_eq!(timer.delays().len(), 3);
    assert!(error.to_string().contains("could not connect"), "{error}");
    // Not a service failing: one never reached, whose URL may be wrong.
    assert!(
        error
            .to_string()
            .contains("the service could not be reached: check its URL and the network"),
        "{error}"
    );
    // The attempts counted once, and the URL named once, by the error (not again by the HTTP
    // client's message inside it).
    assert_eq!(
        error.to_string().matches("attempt(s)").count(),
        1,
        "{error}"
    );
    assert_eq!(
        error
            .to_string()
            .matches(&format!("127.0.0.1:{port}"))
            .count(),
        1,
        "{error}"
    );
}

#[tokio::test]
async fn a_redirect_to_where_nothing_answers_names_the_url_once() {
    let port = port_nothing_listens_on();
    let target = format!("http://127.0.0.1:{port}/moved/gbfs.json");
    let server = TestServer::start(move |_| Reply::json(302, "").header("Location", &target));
    let (fetch, _) = http(policy());

    let error = get(fetch.as_ref(), &server, "/gbfs.json")
        .await
        .expect_err("the target refuses");

    let message = error.to_string();
    assert!(message.contains(&server.url("/gbfs.json")), "{message}");
    // reqwest's error names the URL requested, not the redirect's target: told once.
    assert_eq!(message.matches("127.0.0.1").count(), 1, "{message}");
}

#[test]
fn the_policy_is_configured_per_source_from_settings() {
    let mut settings = Settings::new();
    settings
        .set("opendata.http.max_attempts", "7")
        .set("opendata.http.timeout", "45s")
        .set("opendata.velov.http.max_attempts", "2")
        .set("opendata.velov.http.base_delay", "250ms");

    let velib = RetryPolicy::from_settings(&settings, "velib").expect("velib");
    let velov = RetryPolicy::from_settings(&settings, "velov").expect("velov");

    assert_eq!(velib.max_attempts, 7);
    assert_eq!(velib.request_timeout, Duration::from_secs(45));
    assert_eq!(velib.base_delay, RetryPolicy::default().base_delay);
    assert_eq!(velov.max_attempts, 2);
    assert_eq!(velov.request_timeout, Duration::from_secs(45));
    assert_eq!(velov.base_delay, Duration::from_millis(250));

    assert_eq!(velib.max_body_bytes, 64 << 20);
    for (size, bytes) in [("2MiB", 2 << 20), ("500 KB", 500_000), ("1024", 1024)] {
        settings.set("opendata.velib.http.max_body", size);
        let velib = RetryPolicy::from_settings(&settings, "velib").expect(size);
        assert_eq!(velib.max_body_bytes, bytes, "{size}");
    }
    for size in ["0", "2 MiBs", "-1"] {
        settings.set("opendata.velib.http.max_body", size);
        let error = RetryPolicy::from_settings(&settings, "velib").expect_err(size);
        assert!(
            error.to_string().contains(&format!(
                "setting `opendata.velib.http.max_body` = {size:?} is invalid"
            )),
            "{error}"
        );
        // A setting does not parse better on a retry.
        assert!(!error.is_retryable(), "{error}");
    }
    settings.set("opendata.velib.http.max_body", "1024");
    settings.set("opendata.velib.http.max_attempts", "0");
    let error = RetryPolicy::from_settings(&settings, "velib").expect_err("no attempt");
    assert!(
        error.to_string().contains("must be at least 1") && !error.is_retryable(),
        "{error}"
    );
    settings.set("opendata.velib.http.max_attempts", "2");
    settings.set("ingest.max_reject_ratio", "10");
    let error = lakehouse_runtime::sources::max_reject_ratio(&settings, "velib_station_info")
        .expect_err("a ratio past 1");
    assert!(
        error.to_string().contains("from 0 to 1") && !error.is_retryable(),
        "{error}"
    );
    for url in ["::nope", "http://"] {
        let fetch: std::sync::Arc<dyn lakehouse_runtime::sources::Fetch> =
            std::sync::Arc::new(HttpFetch::new(policy()).expect("client"));
        let error =
            lakehouse_runtime::sources::OdsClient::new(fetch.clone(), url).expect_err("no URL");
        assert!(!error.is_retryable(), "{error}");
        let error =
            lakehouse_runtime::sources::GbfsClient::discover(fetch, url).expect_err("no URL");
        assert!(!error.is_retryable(), "{error}");
    }

    settings.set("opendata.http.max_elapsed", "soon");
    let error = RetryPolicy::from_settings(&settings, "velov").expect_err("bad duration");
    assert!(
        error.to_string().contains("opendata.http.max_elapsed"),
        "{error}"
    );
}

#[tokio::test]
async fn a_redirect_loop_fails_at_once_and_a_redirect_is_followed() {
    // Every request is sent back to itself: before, reqwest followed 10 and the loop was
    // retried as a failed connection (5 × 10 requests against a daily quota).
    let server = TestServer::start(|request| {
        if request.path.starts_with("/loop") {
            Reply::json(302, "").header("Location", "/loop")
        } else if request.path.starts_with("/moved") {
            Reply::json(301, "").header("Location", RECORDS)
        } else {
            page_one()
        }
    });
    let (fetch, timer) = http(policy());
    let error = get(fetch.as_ref(), &server, "/loop")
        .await
        .expect_err("a loop");
    let message = error.to_string();
    assert!(
        message.contains("more than 5 redirects") && message.contains("a redirect loop?"),
        "{message}"
    );
    assert_eq!(
        server.requests().len(),
        6,
        "the first request and 5 redirects"
    );
    assert!(timer.delays().is_empty(), "not retried");
    assert!(!error.is_retryable(), "nor by the pipeline's retries");
    // A redirect within the host is followed.
    let body = get(fetch.as_ref(), &server, "/moved")
        .await
        .expect("followed");
    assert!(body.starts_with(br#"{"total_count": 45"#));
}

#[tokio::test]
async fn errors_name_the_url_without_its_secrets() {
    let server = TestServer::start(|_| Reply::file(500, &fixtures("errors/gateway_503.html")));
    let (fetch, _) = http(policy());
    let secret = format!("{RECORDS}&apikey=S3CRET&Token=T0KEN");

    let error = get(fetch.as_ref(), &server, &secret)
        .await
        .expect_err("persistent 500")
        .to_string();

    assert!(
        !error.contains("S3CRET") && !error.contains("T0KEN"),
        "{error}"
    );
    assert!(
        error.contains("limit=20&offset=0&apikey=redacted&Token=redacted failed after 4"),
        "{error}"
    );
    // The request itself carried the key.
    assert!(server.requests()[0].target.contains("apikey=S3CRET"));

    // Nothing listens there: reqwest's own message names the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let url = Url::parse(&format!("http://127.0.0.1:{port}/x?key=S3CRET")).expect("URL");
    let error = fetch.get(&url).await.expect_err("refused").to_string();
    assert!(!error.contains("S3CRET"), "{error}");
    assert!(error.contains("could not connect"), "{error}");
    assert!(error.contains("/x?key=redacted"), "{error}");
}
