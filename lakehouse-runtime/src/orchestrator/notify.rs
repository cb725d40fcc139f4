//! Run notifications: each run's outcome POSTed as JSON to a webhook (Slack, Mattermost,
//! a pager or any HTTP endpoint), as an orchestrator's alerting.

use std::time::Duration;

use super::{RunReport, Status};
use crate::error::{Error, Result};

/// How long a notification may take before it is given up: the run is over, but its report
/// (and the next run of a loop) waits for it this long at most.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which runs a [`Webhook`] is told of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NotifyOn {
    /// Runs that did not succeed (a pipeline failed, was skipped or cancelled).
    #[default]
    Failure,
    /// Every run.
    Always,
}

/// A URL each run's outcome is POSTed to as JSON: a `text` line (what Slack's and Mattermost's
/// incoming webhooks display) and the report's fields. Delivery is tried once, with a time limit
/// and no redirect; a failure is logged and never fails the run. The URL (which often holds a
/// token) is kept out of logs and errors but its host.
#[derive(Clone)]
pub struct Webhook {
    url: url::Url,
    on: NotifyOn,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("host", &self.url.host_str())
            .field("on", &self.on)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A webhook at `url`: https, or http to this machine (a token must not travel in clear).
    pub fn new(url: &str, on: NotifyOn) -> Result<Webhook> {
        let parsed = checked_url(url)?;
        let mut builder = reqwest::Client::builder();
        if parsed.scheme() == "http" {
            // Plain HTTP is for this machine only: an `HTTP_PROXY` would carry it, and a token in
            // it, in clear to another.
            builder = builder.no_proxy();
        }
        let client = builder
            .timeout(NOTIFY_TIMEOUT)
            // A redirect could send the report elsewhere, or in clear.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lakehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::msg(format!("cannot build the HTTP client: {e}")))?;
        Ok(Webhook {
            url: parsed,
            on,
            client,
        })
    }

    /// Tells the webhook of `report`, if it asked for such runs; `unrecorded` is the error that
    /// kept the run from being recorded in the ledger (such a run counts as failed). Never
    /// fails: a delivery error is logged.
    pub async fn notify(&self, report: &RunReport, unrecorded: Option<&Error>) {
        if self.on == NotifyOn::Failure && report.succeeded() && unrecorded.is_none() {
            return;
        }
        let mut body = report.to_json();
        if let Some(error) = unrecorded {
            body["recorded"] = serde_json::json!(false);
            body["status"] = serde_json::json!(Status::Failed.as_str());
            body["text"] = serde_json::json!(unrecorded_summary(report, &error.to_string()));
        }
        self.send(body, &report.run_id).await;
    }

    /// Tells the webhook that a run could not start (the ledger unreachable, say): always,
    /// whatever runs it asked for.
    pub async fn notify_not_started(&self, error: &Error) {
        let body = serde_json::json!({
            "text": format!("lakehouse run could not start: {error}"),
            "status": "not started",
            "error": error.to_string(),
        });
        self.send(body, "-").await;
    }

    async fn send(&self, body: serde_json::Value, run_id: &str) {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        match self.deliver(&body).await {
            Ok(()) => tracing::info!(%host, run_id, "run notification sent"),
            Err(error) => tracing::warn!(
                %host,
                run_id,
                %error,
                "the run notification could not be sent"
            ),
        }
    }

    /// POSTs `body`: delivered when the endpoint answers 2xx. A redirect is not followed (the
    /// report could go elsewhere, or in clear), so it is no delivery either.
    async fn deliver(&self, body: &serde_json::Value) -> Result<(), String> {
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|error| {
                // reqwest's message omits the cause (refused, timed out, TLS); it holds no URL.
                let error = error.without_url();
                let mut text = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    text.push_str(": ");
                    text.push_str(&cause.to_string());
                    source = cause.source();
                }
                text
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err(format!(
                "HTTP {status}: the webhook answered with a redirect, which is not followed: \
                 give the URL it redirects to"
            ))
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

/// `url` as a webhook may be: https, or http to this machine. The error names neither the path
/// nor the query (where tokens are), only the scheme and host.
pub fn checked_url(url: &str) -> Result<url::Url> {
    let parsed = url::Url::parse(url).map_err(|e| {
        Error::msg(format!(
            "the webhook (--notify or LAKEHOUSE_NOTIFY_URL) is not a URL ({e}): pass an \
             https:// URL"
        ))
    })?;
    let local = match parsed.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if local => Ok(parsed),
        scheme => Err(Error::msg(format!(
            "the webhook (--notify or LAKEHOUSE_NOTIFY_URL) must be https (or http to this \
             machine), not {scheme}://{}/…: pass an https:// URL",
            parsed.host_str().unwrap_or_default()
        ))),
    }
}

/// The report's summary, saying once that the run could not be recorded because of `error`.
fn unrecorded_summary(report: &RunReport, error: &str) -> String {
    let summary = report.summary();
    // The summary ends with the error already when it is the run's only trouble (and only
    // then: a failed pipeline's error may hold the same text).
    match summary.strip_suffix(&format!(" — {error}")) {
        Some(run) if report.unrecorded.as_deref() == Some(error) => {
            format!("{run} — the run could not be recorded: {error}")
        }
        _ => format!("{summary} — and the run could not be recorded: {error}"),
    }
}

impl RunReport {
    /// One line for people: the run, its status, the counts per status, and the first failure.
    pub fn summary(&self) -> String {
        let mut counts = Vec::new();
        for status in [
            Status::Failed,
            Status::Cancelled,
            Status::Skipped,
            Status::Succeeded,
        ] {
            let n = self.results.iter().filter(|r| r.status == status).count();
            if n > 0 {
                counts.push(format!("{n} {status}"));
            }
        }
        let failure = self
            .results
            .iter()
            .find(|r| r.status == Status::Failed)
            // Or a pipeline that failed an attempt and was cancelled before its retry.
            .or_else(|| {
                self.results
                    .iter()
                    .find(|r| r.status == Status::Cancelled && r.attempts > 0)
            })
            .map(|r| {
                let error = r.error.as_deref().unwrap_or_default();
                let first_line = error.lines().next().unwrap_or_default();
                format!(" — {}: {first_line}", r.pipeline)
            })
            .or_else(|| {
                (!self.not_resumed.is_empty()).then(|| {
                    format!(
                        " — {}: no longer registered, not resumed",
                        self.not_resumed.join(", ")
                    )
                })
            })
            // Every pipeline succeeded, but the run is not wholly recorded: that is why.
            .or_else(|| self.unrecorded.as_ref().map(|why| format!(" — {why}")))
            .unwrap_or_default();
        format!(
            "lakehouse run {} (run_at {}) {}: {}{failure}",
            self.run_id,
            self.run_at,
            self.status(),
            counts.join(", ")
        )
    }

    /// The report as JSON: `text` ([`RunReport::summary`]), `run_id`, `sequence`, `run_at`,
    /// `status`, `duration_ms`, and `pipelines` (each `pipeline`, `table`, `status`, `attempts`,
    /// `rows_written`, `rows_deleted`, `version`, `replayed`, `nothing_new`, `duration_ms`,
    /// `error`), `unrecorded` (why the run is not wholly recorded in `lakehouse.runs`, or null)
    /// and `not_resumed` (a resumed run's pipelines no longer registered that never succeeded).
    pub fn to_json(&self) -> serde_json::Value {
        let pipelines: Vec<serde_json::Value> = self
            .results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "pipeline": r.pipeline,
                    "table": r.table,
                    "status": r.status.as_str(),
                    "attempts": r.attempts,
                    "rows_written": r.rows_written,
                    "rows_deleted": r.rows_deleted,
                    "version": r.version,
                    "replayed": r.replayed,
                    "nothing_new": r.nothing_new,
                    "duration_ms": r.duration.as_millis() as u64,
                    "error": r.error,
                })
            })
            .collect();
        serde_json::json!({
            "text": self.summary(),
            "run_id": self.run_id,
            "sequence": self.sequence,
            "run_at": self.run_at.to_string(),
            "status": self.status().as_str(),
            "duration_ms": self.duration.as_millis() as u64,
            "pipelines": pipelines,
            "unrecorded": self.unrecorded,
            "not_resumed": self.not_resumed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::{NotifyOn, Webhook, unrecorded_summary};
    use crate::orchestrator::{PipelineResult, RunReport, Status};
    use crate::table::Timestamp;

    fn report(failed_with: Option<&str>, unrecorded: Option<&str>) -> RunReport {
        RunReport {
            run_id: "r1".to_owned(),
            sequence: 1,
            run_at: Timestamp(0),
            results: vec![PipelineResult {
                pipeline: "sales",
                table: "silver.sales".to_owned(),
                status: if failed_with.is_some() {
                    Status::Failed
                } else {
                    Status::Succeeded
                },
                attempts: 1,
                rows_written: None,
                rows_deleted: None,
                version: None,
                replayed: false,
                nothing_new: false,
                duration: std::time::Duration::ZERO,
                error: failed_with.map(str::to_owned),
            }],
            duration: std::time::Duration::ZERO,
            unrecorded: unrecorded.map(str::to_owned),
            not_resumed: Vec::new(),
        }
    }

    #[test]
    fn an_unrecorded_run_is_said_so_once() {
        let error = "disk full";
        // The run's only trouble: the summary's tail is the error, said as the reason.
        let text = unrecorded_summary(&report(None, Some(error)), error);
        assert!(
            text.ends_with("1 succeeded — the run could not be recorded: disk full"),
            "{text}"
        );
        assert_eq!(text.matches(error).count(), 1, "{text}");
        // A pipeline failed with the same text: its line is kept, the recording added.
        let text = unrecorded_summary(&report(Some(error), Some(error)), error);
        assert!(
            text.ends_with("sales: disk full — and the run could not be recorded: disk full"),
            "{text}"
        );
    }

    /// A server on 127.0.0.1 answering one request with `status_line` and no body.
    fn answering_once(status_line: &'static str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let answer = format!(
                "HTTP/1.1 {status_line}\r\nlocation: https://elsewhere.example/\r\n\
                 content-length: 0\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(answer.as_bytes()).expect("answer");
        });
        format!("http://{address}/hook")
    }

    #[tokio::test]
    async fn only_a_2xx_answer_is_a_delivery() {
        let body = serde_json::json!({"text": "hello"});
        let ok = Webhook::new(&answering_once("204 No Content"), NotifyOn::Always).expect("url");
        assert_eq!(ok.deliver(&body).await, Ok(()));
        let moved = Webhook::new(&answering_once("302 Found"), NotifyOn::Always).expect("url");
        let error = moved
            .deliver(&body)
            .await
            .expect_err("a redirect is no delivery");
        assert!(
            error.starts_with("HTTP 302 Found: the webhook answered with a redirect"),
            "{error}"
        );
        let failing = Webhook::new(&answering_once("503 Service Unavailable"), NotifyOn::Always)
            .expect("url");
        assert_eq!(
            failing.deliver(&body).await,
            Err("HTTP 503 Service Unavailable".to_owned())
        );
    }
}
