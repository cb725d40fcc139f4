//! The retry policy shared by every HTTP source: timeouts, which failures are retried, exponential
//! backoff with full jitter and a cap, `Retry-After` / `X-RateLimit-Reset`, and a maximum total
//! duration.
//!
//! The loop is ours rather than a crate's: `reqwest-retry` ignores `Retry-After` and does not
//! retry errors while reading a body, `backoff` is unmaintained, and `backon`'s jitter adds to
//! the delay instead of drawing it in `[0, delay]` (full jitter).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use rand::RngExt as _;

use crate::ctx::Settings;
use crate::error::{Error, Result};

/// Waits and tells the time for the retry loop. Tests give their own to record the delays the
/// policy chose without waiting for them.
pub trait Timer: Send + Sync {
    /// Waits `delay`.
    fn sleep(&self, delay: Duration) -> BoxFuture<'_, ()>;
    /// The wall-clock time, used to turn an HTTP-date `Retry-After` or an `X-RateLimit-Reset`
    /// epoch into a delay.
    fn now(&self) -> SystemTime;
}

/// The real clock: tokio's sleep and the system time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemTimer;

impl Timer for SystemTimer {
    fn sleep(&self, delay: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(delay))
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// How a source retries: one policy for every HTTP source, configurable per source (see
/// [`RetryPolicy::from_settings`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Longest wait for a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Longest time for one request, from connecting until the whole body is read (for a
    /// streamed export: until the headers, then between two chunks of the body).
    pub request_timeout: Duration,
    /// Most requests sent for one URL, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubled at each retry. The delay is drawn uniformly in
    /// `[0, min(max_delay, base_delay × 2^retry)]` (full jitter).
    pub base_delay: Duration,
    /// Upper bound of the backoff delay (a server's `Retry-After` may ask for more).
    pub max_delay: Duration,
    /// Longest total time for one URL, attempts and waits included: a retry that would end past
    /// it is not made, and a streamed export's body still arriving then fails.
    pub max_elapsed: Duration,
    /// Largest body read whole (a page, a feed): a bigger one fails rather than fill memory.
    /// Streamed exports are not bounded by it.
    pub max_body_bytes: u64,
    /// The source whose settings the policy was read from (`velib`): errors then advise its own
    /// keys (`opendata.velib.http.timeout`), which override the global ones. `None` for a
    /// policy built in code: errors advise the global keys (`opendata.http.timeout`).
    pub source: Option<String>,
}

/// How a failure to connect starts its message.
pub(crate) const UNREACHED: &str = "could not connect";

/// [`RetryPolicy::max_body_bytes`] by default: 64 MiB, a thousand times a page of records.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 << 20;

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(120),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            source: None,
        }
    }
}

/// The setting names of the policy's fields (`<prefix>.<name>`).
const KEYS: [&str; 7] = [
    "connect_timeout",
    "timeout",
    "max_attempts",
    "base_delay",
    "max_delay",
    "max_elapsed",
    "max_body",
];

/// `64MiB`, `500 KB`, `1GiB`, `1024` → bytes (`None` for anything else, or zero).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = text[..digits].parse().ok()?;
    let factor: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor).filter(|bytes| *bytes > 0)
}

impl RetryPolicy {
    /// The policy for `source` from the settings: each field is read from
    /// `opendata.<source>.http.<name>`, else `opendata.http.<name>`, else the default. Names:
    /// `connect_timeout`, `timeout`, `base_delay`, `max_delay`, `max_elapsed` (durations such as
    /// `500ms`, `30s`, `2m`), `max_attempts` (a number ≥ 1) and `max_body` (a size such as
    /// `64MiB`, `500KB` or a number of bytes).
    pub fn from_settings(settings: &Settings, source: &str) -> Result<RetryPolicy> {
        let defaults = RetryPolicy::default();
        let key = |name: &str| {
            let specific = format!("opendata.{source}.http.{name}");
            if settings.get(&specific).is_some() {
                specific
            } else {
                format!("opendata.http.{name}")
            }
        };
        let duration = |name: &str, default: Duration| -> Result<Duration> {
            let value: humantime::Duration = settings.parse_or(&key(name), default.into())?;
            Ok(value.into())
        };
        let policy = RetryPolicy {
            connect_timeout: duration(KEYS[0], defaults.connect_timeout)?,
            request_timeout: duration(KEYS[1], defaults.request_timeout)?,
            max_attempts: settings.parse_or(&key(KEYS[2]), defaults.max_attempts)?,
            base_delay: duration(KEYS[3], defaults.base_delay)?,
            max_delay: duration(KEYS[4], defaults.max_delay)?,
            max_elapsed: duration(KEYS[5], defaults.max_elapsed)?,
            max_body_bytes: match settings.get(&key(KEYS[6])) {
                None => defaults.max_body_bytes,
                Some(text) => parse_size(text).ok_or_else(|| {
                    Error::Refused(format!(
                        "setting `{}` = {text:?} is invalid: a size such as `64MiB`, `500KB` or a \
                         number of bytes, above zero",
                        key(KEYS[6])
                    ))
                })?,
            },
            source: Some(source.to_owned()),
        };
        if policy.max_attempts == 0 {
            return Err(Error::Refused(format!(
                "setting `{}` must be at least 1 (the first request counts)",
                key(KEYS[2])
            )));
        }
        Ok(policy)
    }

    /// The setting that configures the policy's `name` field (`timeout`, `max_attempts`, …),
    /// for advice: the source's own key when the policy is a source's, which a raised value
    /// takes effect through whatever the global key says.
    pub fn setting(&self, name: &str) -> String {
        match &self.source {
            Some(source) => format!("opendata.{source}.http.{name}"),
            None => format!("opendata.http.{name}"),
        }
    }

    /// The upper bound of the backoff before retry number `retry` (0 for the first retry):
    /// `min(max_delay, base_delay × 2^retry)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// A backoff delay before retry number `retry`, drawn uniformly in
    /// `[0, backoff_ceiling(retry)]` (full jitter).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy gives up. `attempt` gets
    /// the attempt number (1-based) and the time it may take; `url` names the request in errors.
    pub async fn run<T, F, Fut>(&self, timer: &dyn Timer, url: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut(u32, Duration) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        // Time spent: attempts measured, waits counted as requested (so a test timer that does
        // not wait still sees the budget consumed).
        let mut spent = Duration::ZERO;
        let mut number = 0u32;
        // The last answer the server gave, told when a later attempt fails without one.
        let mut answered: Option<String> = None;
        loop {
            number += 1;
            let remaining = self.max_elapsed.saturating_sub(spent);
            let timeout = self.request_timeout.min(remaining);
            let started = Instant::now();
            let failure = match attempt(number, timeout).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            spent = spent.saturating_add(started.elapsed());
            if failure.status.is_some() {
                answered = Some(failure.message.clone());
            }
            let earlier = match (&answered, failure.status) {
                (Some(answer), None) => format!(" (an earlier attempt got {answer})"),
                _ => String::new(),
            };
            let give_up = |advice: String| Error::Http {
                url: url.to_owned(),
                status: failure.status,
                attempts: number,
                message: format!("{}{earlier}; {advice}", failure.message),
                transient: failure.retryable,
            };
            if !failure.retryable {
                return Err(give_up(failure.advice(self.source.as_deref())));
            }
            if number >= self.max_attempts {
                // Never reached (a host that does not resolve, a port nothing listens on) is
                // not a service failing: its URL may be wrong.
                let why = if failure.status.is_none() && failure.message.starts_with(UNREACHED) {
                    "the service could not be reached: check its URL and the network, retry later"
                } else {
                    "the service is failing: retry later"
                };
                return Err(give_up(format!(
                    "gave up after {}; {why}, or raise `{}`",
                    humantime::format_duration(round_ms(spent)),
                    self.setting("max_attempts")
                )));
            }
            // A server's wait is honoured as given; none, or one already past, means backoff.
            let (delay, why) = match failure.retry_after {
                Some(asked) if !asked.is_zero() => (asked, "the wait the server asked for"),
                _ => (self.backoff(number - 1), "backoff"),
            };
            // A quota's answer (429): a server in trouble (503) may be back before the time it
            // asked for, and the pipeline's own retry, later, may find it so.
            let asked_by_server =
                failure.status == Some(429) && failure.retry_after.is_some_and(|a| !a.is_zero());
            // An attempt needs time of its own: one squeezed into what the wait leaves would
            // time out and hide why the server was failing.
            let useful = self.request_timeout.min(Duration::from_secs(1));
            if spent.saturating_add(delay).saturating_add(useful) > self.max_elapsed {
                let left = self.max_elapsed.saturating_sub(spent);
                let then = if delay <= left {
                    format!(
                        ", and then an attempt of {} at least,",
                        humantime::format_duration(useful)
                    )
                } else {
                    String::new()
                };
                let mut error = give_up(format!(
                    "gave up: waiting {} ({why}){then} would pass the maximum total duration of \
                     {} (`{}`); retry later",
                    humantime::format_duration(round_ms(delay)),
                    humantime::format_duration(self.max_elapsed),
                    self.setting("max_elapsed")
                ));
                // The server said when to come back (a daily quota): a retry of the pipeline
                // sooner would only be refused again.
                if asked_by_server && let Error::Http { transient, .. } = &mut error {
                    *transient = false;
                }
                return Err(error);
            }
            tracing::warn!(
                url,
                attempt = number,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                reason = %failure.message,
                "request failed; retrying after {why}"
            );
            timer.sleep(delay).await;
            spent += delay;
        }
    }
}

/// `d` rounded down to whole milliseconds, for messages.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why one attempt failed, as the retry loop sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Whether another attempt may succeed (timeouts, connection errors, 5xx, 429).
    pub retryable: bool,
    /// The HTTP status, if a response was received.
    pub status: Option<u16>,
    /// What happened, with the API's error code and message when it sent them.
    pub message: String,
    /// How long the server asked to wait (`Retry-After`, or `X-RateLimit-Reset` on a 429).
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure that another attempt may fix.
    pub fn retryable(status: Option<u16>, message: impl Into<String>) -> Failure {
        Failure {
            retryable: true,
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure that no retry fixes.
    pub fn fatal(status: Option<u16>, message: impl Into<String>) -> Failure {
        Failure {
            retryable: false,
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// What to do about a failure that is not retried, from `source` (`velib`), whose settings
    /// it names.
    fn advice(&self, source: Option<&str>) -> String {
        match self.status {
            Some(401 | 403) => format!(
                "not retried: check the URL and whether the dataset needs an API key (`opendata.{}.authorization`)",
                source.unwrap_or("<source>")
            ),
            Some(404) => "not retried: check the URL and the dataset or feed name".into(),
            Some(501 | 505) => {
                "not retried: the service cannot serve this request at all; check the URL".into()
            }
            Some(status) if (400..500).contains(&status) => {
                "not retried: the request itself is wrong; fix its parameters (dataset, select, \
                 where, order_by, limit)"
                    .into()
            }
            _ => "not retried".into(),
        }
    }
}

/// How long the server asks to wait before the next request, from `Retry-After` (seconds or an
/// HTTP-date) or, on a 429, `X-RateLimit-Reset` (the epoch second the quota resets). A time in
/// the past means "now" (zero); an unreadable value is ignored.
pub fn retry_hint(
    status: u16,
    retry_after: Option<&str>,
    rate_limit_reset: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(value) = retry_after.map(str::trim) {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    if status == 429
        && let Some(reset) = rate_limit_reset.and_then(|v| v.trim().parse::<u64>().ok())
    {
        // An epoch second past what the clock can hold is a wait longer than any budget.
        let wait = match SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(reset)) {
            Some(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
            None => Duration::MAX,
        };
        return Some(wait);
    }
    None
}
