//! The transport: [`Fetch`] gets the body of a URL. [`HttpFetch`] asks the server, under the
//! [`RetryPolicy`]; the snapshot fetchers ([`super::SnapshotFetch`], [`super::RecordingFetch`])
//! read or write recorded responses. Paging and parsing sit above it and are the same for all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use reqwest::header::HeaderMap;
use url::Url;

use super::json::api_error_message;
use super::retry::{Failure, RetryPolicy, SystemTimer, Timer, retry_hint};
use crate::ctx::redacted_url;
use crate::error::{Error, Result};

/// The `User-Agent` sent to open-data portals, so their operators can tell who calls.
const USER_AGENT: &str = concat!(
    "lakehouse/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/lakehouse-rs/lakehouse)"
);

/// A whole response body.
#[derive(Clone, PartialEq, Eq)]
pub struct Body {
    /// The URL asked for.
    pub url: Url,
    /// Where the bytes came from, for messages: the URL, or the snapshot file and its URL.
    pub origin: String,
    /// The body.
    pub bytes: Vec<u8>,
    /// Whether the bytes were read from a recording (a snapshot): asking again gives the same
    /// bytes, so what is wrong with them is not retried.
    pub replayed: bool,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Its URL without the secrets it may carry; its length, not its bytes.
        f.debug_struct("Body")
            .field("url", &redacted_url(&self.url))
            .field("origin", &self.origin)
            .field("bytes", &self.bytes.len())
            .field("replayed", &self.replayed)
            .finish()
    }
}

impl Body {
    /// A source error about this body: retried unless the body was [replayed](Body::replayed).
    pub fn fault(&self, message: impl Into<String>) -> Error {
        fault(&self.origin, self.replayed, message)
    }

    /// The start of the body for an error message: "it starts with `<!DOCTYPE html>…`" (an HTML
    /// maintenance page served as data, say), or "it is empty".
    pub fn excerpt(&self) -> String {
        const SHOWN: usize = 80;
        let text = String::from_utf8_lossy(&self.bytes[..self.bytes.len().min(4 * SHOWN)]);
        // (A byte order mark is no whitespace, and would show as nothing.)
        let text = text.trim_start_matches('\u{feff}');
        let start: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if start.is_empty() {
            return "it is empty".to_owned();
        }
        let shown: String = start.chars().take(SHOWN).collect();
        let shown = shown.trim_end();
        let cut = if shown.len() < start.len() || self.bytes.len() > 4 * SHOWN {
            "…"
        } else {
            ""
        };
        format!("it starts with `{shown}{cut}` ({} bytes)", self.bytes.len())
    }
}

/// A response body read chunk by chunk (a large export), so it is never all in memory.
pub struct BodyStream {
    /// The URL asked for.
    pub url: Url,
    /// Where the bytes come from, for messages.
    pub origin: String,
    /// The body's chunks; an error ends the stream (a connection lost midway, a timeout).
    pub chunks: BoxStream<'static, Result<Vec<u8>>>,
    /// Whether the bytes are read from a recording (a snapshot), as [`Body::replayed`].
    pub replayed: bool,
}

impl BodyStream {
    /// A source error about this body, as [`Body::fault`].
    pub fn fault(&self, message: impl Into<String>) -> Error {
        fault(&self.origin, self.replayed, message)
    }
}

/// A source error at `origin`: one read from a recording would be met again, so is final.
fn fault(origin: &str, replayed: bool, message: impl Into<String>) -> Error {
    if replayed {
        Error::source_final(origin, message)
    } else {
        Error::source(origin, message)
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("url", &redacted_url(&self.url))
            .field("origin", &self.origin)
            .field("replayed", &self.replayed)
            .finish_non_exhaustive()
    }
}

/// Gets response bodies: from HTTP, from a snapshot directory, or from HTTP while recording a
/// snapshot. Sources page and parse above this trait, so every mode runs the same code.
pub trait Fetch: Send + Sync {
    /// The whole body of `GET url`. Retries, if any, happen inside.
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<Body>>;

    /// The body of `GET url` as a stream of chunks, for responses too large to hold.
    fn stream<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<BodyStream>>;

    /// What the fetcher reads from, for logs (`HTTP`, `snapshot data/opendata`).
    fn describe(&self) -> String;
}

impl std::fmt::Debug for dyn Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fetch({})", self.describe())
    }
}

/// [`Fetch`] over HTTP with [`reqwest`], retried by a [`RetryPolicy`].
#[derive(Clone)]
pub struct HttpFetch {
    client: reqwest::Client,
    policy: RetryPolicy,
    timer: Arc<dyn Timer>,
    authorization: Option<Authorization>,
}

/// The configured `Authorization` value, and the one origin it is sent to.
#[derive(Clone)]
struct Authorization {
    value: reqwest::header::HeaderValue,
    /// The origin (scheme, host, port) of the first request: the configured service. Shared by
    /// the clones.
    origin: Arc<std::sync::OnceLock<url::Origin>>,
}

impl std::fmt::Debug for HttpFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetch")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl HttpFetch {
    /// An HTTP fetcher with `policy`'s connect timeout, retries and budget.
    pub fn new(policy: RetryPolicy) -> Result<HttpFetch> {
        let client = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::custom(redirect))
            .build()
            .map_err(|e| Error::msg(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(HttpFetch {
            client,
            policy,
            timer: Arc::new(SystemTimer),
            authorization: None,
        })
    }

    /// The same fetcher sending `Authorization: <value>` (an Opendatasoft API key is
    /// `Apikey <key>`) with every request to the origin (scheme, host and port) of its first
    /// request, the configured service; a URL elsewhere (a feed a GBFS discovery document lists
    /// on another host) is asked without it, with a warning: the key is that service's, not
    /// every host's it links to. The value is kept out of logs and `Debug` output.
    pub fn with_authorization(mut self, value: &str) -> Result<HttpFetch> {
        let mut header = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
            Error::Refused(
                "the authorization value is not a valid HTTP header value (printable ASCII only)"
                    .to_owned(),
            )
        })?;
        header.set_sensitive(true);
        self.authorization = Some(Authorization {
            value: header,
            origin: Arc::default(),
        });
        Ok(self)
    }

    /// The same fetcher with another clock for the retry waits (tests record the delays).
    pub fn with_timer(mut self, timer: Arc<dyn Timer>) -> HttpFetch {
        self.timer = timer;
        self
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Sends `GET url`; a non-success status becomes a [`Failure`] (retryable for 5xx but 501
    /// and 505, 408 and 429).
    /// `timeout`, when given, bounds the whole exchange including the body.
    async fn send(
        &self,
        url: &Url,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, Failure> {
        let mut request = self.client.get(url.clone());
        // The configured authorization kept from this request's host, said with a refusal.
        let mut withheld = None;
        if let Some(authorization) = &self.authorization {
            let origin = url.origin();
            let service = authorization.origin.get_or_init(|| origin.clone());
            if *service != origin {
                let why = format!(
                    "the configured authorization was not sent to {}: it is for {} only",
                    origin.ascii_serialization(),
                    service.ascii_serialization()
                );
                tracing::warn!("{why}");
                withheld = Some(why);
            } else if url.scheme() != "https" && !is_loopback(url) {
                // A key travels encrypted only: over https, or to this machine (tests, proxies).
                return Err(Failure::fatal(
                    None,
                    "refusing to send the configured authorization over plain HTTP: use an \
                     https URL"
                        .to_owned(),
                ));
            } else {
                request =
                    request.header(reqwest::header::AUTHORIZATION, authorization.value.clone());
            }
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await.map_err(|e| {
            transport_failure(&e, timeout, "waiting for the response", &self.policy)
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // A server error may pass; one that says the request can never be served (501 Not
        // Implemented, 505 HTTP Version Not Supported) does not.
        let retryable = (status.is_server_error() && !matches!(status.as_u16(), 501 | 505))
            || matches!(status.as_u16(), 408 | 429);
        let headers_hint = if retryable {
            hint(status.as_u16(), response.headers(), self.timer.now())
        } else {
            None
        };
        // Only the start of an error body is read (it is for the message); if it cannot be read
        // the status alone is reported.
        let body = read_capped(response, MAX_ERROR_BODY_BYTES)
            .await
            .map(|(bytes, _)| bytes)
            .unwrap_or_default();
        // Opendatasoft tells when a quota resets in the body only (a daily one: hours away).
        // A header's wait comes first (the body's reset may be another limit's, a day's while
        // the header tells the minute's), but a zero there (`Retry-After: 0`, a rate-limit
        // reset already past) must not hide the body's reset: the quota would be asked again
        // at once, and every retry spent.
        let body_wait = || {
            (status.as_u16() == 429)
                .then(|| super::json::quota_reset_wait(&body, self.timer.now()))
                .flatten()
        };
        let retry_after = match headers_hint {
            Some(wait) if wait.is_zero() => body_wait().or(Some(wait)),
            Some(wait) => Some(wait),
            None => body_wait(),
        };
        let mut message = format!("HTTP {status}: {}", api_error_message(&body));
        if let Some(why) = withheld.filter(|_| matches!(status.as_u16(), 401 | 403)) {
            message.push_str(&format!(" ({why})"));
        }
        Err(Failure {
            retryable,
            status: Some(status.as_u16()),
            message,
            retry_after,
        })
    }

    /// One attempt of [`Fetch::get`]: send and read the whole body within `timeout`, up to
    /// the policy's `max_body_bytes`.
    async fn attempt_get(&self, url: &Url, timeout: Duration) -> Result<Vec<u8>, Failure> {
        let response = self.send(url, Some(timeout)).await?;
        let limit = self.policy.max_body_bytes;
        let announced = response.content_length().filter(|length| *length > limit);
        let too_large = |size: String| {
            Failure::fatal(
                None,
                format!(
                    "the body is {size}, more than the {limit} bytes allowed: raise `{}` if the \
                     response is expected to be this large, or ask for smaller pages",
                    self.policy.setting("max_body")
                ),
            )
        };
        if let Some(length) = announced {
            return Err(too_large(format!("{length} bytes")));
        }
        match read_capped(response, limit).await {
            Ok((bytes, false)) => Ok(bytes),
            Ok((_, true)) => Err(too_large(format!("over {limit} bytes"))),
            Err(e) => Err(transport_failure(
                &e,
                Some(timeout),
                "while reading the body (it was cut short)",
                &self.policy,
            )),
        }
    }

    /// One attempt of [`Fetch::stream`]: the response headers within `timeout`.
    async fn attempt_headers(
        &self,
        url: &Url,
        timeout: Duration,
    ) -> Result<reqwest::Response, Failure> {
        match tokio::time::timeout(timeout, self.send(url, None)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::retryable(
                None,
                format!(
                    "timed out after {} waiting for the response headers",
                    humantime::format_duration(timeout)
                ),
            )),
        }
    }
}

impl Fetch for HttpFetch {
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<Body>> {
        Box::pin(async move {
            let shown = redacted_url(url);
            let bytes = self
                .policy
                .run(self.timer.as_ref(), &shown, |_, timeout| {
                    self.attempt_get(url, timeout)
                })
                .await?;
            tracing::debug!(url = shown, bytes = bytes.len(), "fetched");
            Ok(Body {
                url: url.clone(),
                origin: shown,
                bytes,
                replayed: false,
            })
        })
    }

    fn stream<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<BodyStream>> {
        Box::pin(async move {
            let shown = redacted_url(url);
            // The whole body within the URL's total time, as a page read whole is: a server
            // trickling a chunk now and then would otherwise hold the ingestion for ever.
            let deadline = Instant::now()
                .checked_add(self.policy.max_elapsed)
                .unwrap_or_else(far_future);
            let response = self
                .policy
                .run(self.timer.as_ref(), &shown, |_, timeout| {
                    self.attempt_headers(url, timeout)
                })
                .await?;
            let idle = self.policy.request_timeout;
            let state = ChunkState {
                response,
                url: shown.clone(),
                timeout_setting: self.policy.setting("timeout"),
                deadline,
                max_elapsed: self.policy.max_elapsed,
                max_elapsed_setting: self.policy.setting("max_elapsed"),
                read: 0,
                done: false,
            };
            let chunks = futures::stream::unfold(state, move |state| next_chunk(state, idle));
            Ok(BodyStream {
                url: url.clone(),
                origin: shown,
                chunks: chunks.boxed(),
                replayed: false,
            })
        })
    }

    fn describe(&self) -> String {
        "HTTP".to_owned()
    }
}

/// Whether `url` names this machine.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// How much of an error response's body is read, for its message.
const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;

/// The body of `response`, read chunk by chunk up to `limit` bytes; `true` when it had more.
async fn read_capped(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(bytes.len());
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok((bytes, true));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, false))
}

/// An instant no deadline reaches (a `max_elapsed` too large to add to now).
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600))
        .unwrap_or(now)
}

/// Where a streamed HTTP body is.
struct ChunkState {
    response: reqwest::Response,
    url: String,
    /// The setting that raises `idle`, for the error.
    timeout_setting: String,
    /// When the body must have ended: [`RetryPolicy::max_elapsed`] after the first request.
    deadline: Instant,
    max_elapsed: Duration,
    /// The setting that raises `max_elapsed`, for the error.
    max_elapsed_setting: String,
    read: usize,
    done: bool,
}

/// The next chunk of a streamed body, each within `idle` and all before the state's deadline;
/// an error ends the stream.
async fn next_chunk(
    mut state: ChunkState,
    idle: Duration,
) -> Option<(Result<Vec<u8>>, ChunkState)> {
    if state.done {
        return None;
    }
    let left = state.deadline.saturating_duration_since(Instant::now());
    // (`true`: a retry would most likely meet the same, a body this long at this pace.)
    let (failure, again_the_same) =
        match tokio::time::timeout(idle.min(left), state.response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                state.read += chunk.len();
                return Some((Ok(chunk.to_vec()), state));
            }
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => (format!("the connection failed ({})", chain(&e)), false),
            Err(_) if left < idle => (
                format!(
                    "the maximum total duration for one URL, {} (`{}`), passed",
                    humantime::format_duration(state.max_elapsed),
                    state.max_elapsed_setting
                ),
                true,
            ),
            Err(_) => (
                format!(
                    "no data for {} (`{}`)",
                    humantime::format_duration(idle),
                    state.timeout_setting
                ),
                false,
            ),
        };
    state.done = true;
    let read = state.read;
    let error = if again_the_same {
        Error::source_final(
            state.url.clone(),
            format!(
                "{failure} after {read} bytes of the body, still arriving: the response is \
                 incomplete; nothing was written; raise `{}` for a body this long (a rerun \
                 would most likely stop where this one did)",
                state.max_elapsed_setting
            ),
        )
    } else {
        Error::source(
            state.url.clone(),
            format!(
                "{failure} after {read} bytes of the body: the response is incomplete; nothing \
                 was written; rerun the pipeline"
            ),
        )
    };
    Some((Err(error), state))
}

/// How many redirects one request follows.
const MAX_REDIRECTS: usize = 5;

/// Whether to follow a redirect: a few, never from `https` down to `http` (the answer could be
/// anyone's), and another host's only with a log line saying so. A refused redirect fails the
/// request for good (a loop is not retried).
fn redirect(attempt: reqwest::redirect::Attempt) -> reqwest::redirect::Action {
    let Some(previous) = attempt.previous().last().cloned() else {
        return attempt.follow();
    };
    let next = attempt.url();
    let leaves_https = previous.scheme() == "https" && next.scheme() == "http";
    let other_host = previous.host_str() != next.host_str();
    // Shown in errors and logs: without the secrets either URL may carry.
    let (from, to) = (redacted_url(&previous), redacted_url(next));
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(format!(
            "more than {MAX_REDIRECTS} redirects (the last from {from} to {to}): a redirect loop?"
        ));
    }
    if leaves_https {
        return attempt.error(format!(
            "a redirect from {from} to {to} would leave HTTPS; refused (set the source's base \
             URL to where it should go)"
        ));
    }
    if other_host {
        tracing::warn!(%from, %to, "following a redirect to another host");
    }
    attempt.follow()
}

/// The server's wait request from the response headers, if any.
fn hint(status: u16, headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    retry_hint(status, text("retry-after"), text("x-ratelimit-reset"), now)
}

/// A transport error as a retry-loop failure: timeouts and connection errors are retried.
fn transport_failure(
    error: &reqwest::Error,
    timeout: Option<Duration>,
    stage: &str,
    policy: &RetryPolicy,
) -> Failure {
    // reqwest names the URL in its message, secrets included.
    let mut detail = chain(error);
    if let Some(url) = error.url() {
        // The error this failure ends in names the URL already (redacted). (After a redirect,
        // reqwest's error names the URL requested too, not the redirect's target.)
        detail = detail.replacen(&format!(" for url ({url})"), "", 1);
        detail = detail.replace(url.as_str(), &redacted_url(url));
    }
    // reqwest reports a connection that timed out as both.
    if error.is_timeout() && error.is_connect() {
        Failure::retryable(
            None,
            format!(
                "could not connect within {} (raise `{}` if the network is slow)",
                humantime::format_duration(policy.connect_timeout),
                policy.setting("connect_timeout")
            ),
        )
    } else if error.is_timeout() {
        // To the millisecond: the budget's remainder is no round figure.
        let after = timeout
            .map(|t| {
                let millis = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
                format!(
                    " after {}",
                    humantime::format_duration(Duration::from_millis(millis))
                )
            })
            .unwrap_or_default();
        // The attempt had what was left of the whole budget, less than its own timeout.
        let raise = if timeout.is_some_and(|t| t < policy.request_timeout) {
            "max_elapsed"
        } else {
            "timeout"
        };
        Failure::retryable(
            None,
            format!(
                "timed out{after} {stage} (raise `{}` if the service is slow)",
                policy.setting(raise)
            ),
        )
    } else if error.is_builder() {
        Failure::fatal(None, format!("invalid request: {detail}"))
    } else if error.is_redirect() {
        Failure::fatal(None, format!("redirect refused: {detail}"))
    } else if let Some(tls) = tls_error(error).filter(|tls| error.is_connect() && refused(tls)) {
        // reqwest counts it as a connection error; every attempt would fail alike.
        Failure::fatal(
            None,
            format!(
                "the TLS handshake failed ({tls}): no TLS server answers at this address (an \
                 http:// service?), or its certificate is not one this host trusts (self-signed, \
                 expired, a proxy's own) or does not name this host; it fails alike every time"
            ),
        )
    } else if error.is_connect() {
        Failure::retryable(None, format!("{}: {detail}", super::retry::UNREACHED))
    } else {
        Failure::retryable(None, format!("the connection failed {stage}: {detail}"))
    }
}

/// The TLS error (rustls's) behind a transport error, if the handshake is what failed: a
/// certificate refused, or a peer that does not speak TLS. (A connection cut during the
/// handshake is an I/O error, which may pass.)
fn tls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // tokio-rustls hands rustls's error on inside an I/O error (itself inside another),
        // whose `source` skips it: the error it wraps is looked into instead.
        cause = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

/// Whether a TLS error is a refusal that another handshake meets again: a certificate this
/// host does not take (but one not valid yet, which a clock set right after boot mends), or a
/// peer that does not speak TLS, or not a version this client does. An alert, a decryption
/// error or a misbehaving peer (a load balancer redeployed mid-handshake) may pass.
fn refused(tls: &rustls::Error) -> bool {
    use rustls::{CertificateError, Error};
    match tls {
        Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => false,
        Error::InvalidCertificate(_)
        | Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::NoCertificatesPresented
        | Error::UnsupportedNameType
        | Error::PeerIncompatible(_) => true,
        _ => false,
    }
}

/// An error and its causes, joined with `: ` (reqwest's own message names none of them).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::Body;

    #[test]
    fn a_certificate_refused_or_no_tls_peer_is_not_retried_and_a_passing_failure_is() {
        use rustls::{AlertDescription, CertificateError, Error, InvalidMessage};
        for refused in [
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
            Error::InvalidCertificate(CertificateError::Expired),
            Error::InvalidCertificate(CertificateError::NotValidForName),
            Error::InvalidMessage(InvalidMessage::InvalidContentType),
            Error::NoCertificatesPresented,
        ] {
            assert!(super::refused(&refused), "{refused:?}");
        }
        // The clock just after boot, a peer failing for a moment.
        for passing in [
            Error::InvalidCertificate(CertificateError::NotValidYet),
            Error::AlertReceived(AlertDescription::InternalError),
            Error::DecryptError,
        ] {
            assert!(!super::refused(&passing), "{passing:?}");
        }
    }

    #[test]
    fn an_excerpt_leaves_a_byte_order_mark_out() {
        let body = Body {
            url: url::Url::parse("https://example.org/records").expect("url"),
            origin: "https://example.org/records".to_owned(),
            bytes: "\u{feff}[{\"id\": 1},".as_bytes().to_vec(),
            replayed: false,
        };
        assert_eq!(body.excerpt(), "it starts with `[{\"id\": 1},` (14 bytes)");
    }
}
