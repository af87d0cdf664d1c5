//! One POST with a timeout per attempt, retried with backoff on connection failures, timeouts,
//! 5xx and 429 (waiting as long as `Retry-After` asks, within a bound), never on other 4xx.

use std::time::{Duration, SystemTime};

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};

use super::error::DeliveryError;
use super::secret::Secret;
use crate::metrics::error_chain;

/// At most this many characters of an error answer go into the error.
const MAX_BODY_IN_ERROR: usize = 200;
/// At most this many bytes of an answer are read.
const MAX_BODY_READ: usize = 4096;
/// The longest pause between two attempts without `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostConfig {
    /// Bound of one attempt (connect, send, read the answer).
    pub timeout: Duration,
    /// Retries after a failed first attempt.
    pub retries: u32,
    /// Pause before the first retry; it doubles for each further one (at most 30 s).
    pub backoff: Duration,
    /// The longest `Retry-After` a 429 or 503 is obeyed for; one asking longer ends the
    /// delivery as a failure (the worker must not stall its queue for it).
    pub max_retry_after: Duration,
}

impl PostConfig {
    /// How long to wait before retry number `retry` (from 0) after `error`; `None` when no
    /// retry follows: the error is not one another attempt may fix (see
    /// [`DeliveryError::is_transient`]), the retries are spent, or `Retry-After` asks for longer
    /// than `max_retry_after`. Without `Retry-After` the backoff doubles from `backoff`, at most
    /// 30 s.
    pub fn pause_before(&self, retry: u32, error: &DeliveryError) -> Option<Duration> {
        if !error.is_transient() || retry >= self.retries {
            return None;
        }
        match error {
            DeliveryError::Status {
                retry_after: Some(asked),
                ..
            } => (*asked <= self.max_retry_after).then_some(*asked),
            _ => Some(
                self.backoff
                    .saturating_mul(1 << retry.min(16))
                    .min(MAX_BACKOFF),
            ),
        }
    }
}

/// An HTTP client that posts JSON bodies to one kind of endpoint.
pub struct Poster {
    client: reqwest::Client,
    config: PostConfig,
    /// What is posted to, for log lines (e.g. `Grafana`, `sink oncall`).
    label: String,
    /// Texts scrubbed from anything the server sends back.
    redactions: Vec<Secret>,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("label", &self.label)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Poster {
    /// Builds the client (installing the `ring` rustls provider if none is), sending
    /// `headers` (e.g. a sensitive `Authorization`) with every request. `plain_http`: the
    /// endpoint is `http`, which needs no CA certificates (a minimal container may have none).
    ///
    /// # Errors
    /// [`DeliveryError::Client`] for a zero timeout or a client that cannot be built.
    pub fn new(
        label: impl Into<String>,
        config: PostConfig,
        headers: HeaderMap,
        plain_http: bool,
        redactions: Vec<Secret>,
    ) -> Result<Self, DeliveryError> {
        if config.timeout.is_zero() {
            return Err(DeliveryError::Client {
                reason: "the timeout must be more than zero".into(),
            });
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let builder = || {
            reqwest::Client::builder()
                .timeout(config.timeout)
                .connect_timeout(config.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(headers.clone())
                .user_agent(concat!("canary-gate/", env!("CARGO_PKG_VERSION")))
        };
        let client = match builder().build() {
            Ok(client) => Ok(client),
            // No system CA bundle (a minimal container): plain http needs no roots at all.
            Err(_) if plain_http => builder().tls_certs_only(Vec::new()).build(),
            Err(e) => Err(e),
        }
        .map_err(|e| DeliveryError::Client {
            reason: error_chain(&e.without_url()),
        })?;
        Ok(Self {
            client,
            config,
            label: label.into(),
            redactions,
        })
    }

    /// Posts `body` (JSON) to `url` with the headers `headers()` gives for each attempt (so a
    /// signature can carry the time it is sent). Each attempt is bounded by the timeout;
    /// connection failures, timeouts, 5xx and 429 are retried up to `retries` times, after the
    /// backoff or as long as `Retry-After` asks (when within `max_retry_after`).
    ///
    /// # Errors
    /// The last attempt's error; it holds neither the URL nor any secret.
    pub async fn post(
        &self,
        url: &Url,
        body: &[u8],
        headers: impl Fn() -> HeaderMap,
    ) -> Result<(), DeliveryError> {
        let mut retry = 0;
        loop {
            let e = match self
                .post_once(url, body, headers(), self.config.timeout)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let Some(pause) = self.config.pause_before(retry, &e) else {
                return Err(e);
            };
            retry += 1;
            tracing::debug!(
                to = %self.label,
                error = %e,
                retry,
                retries = self.config.retries,
                pause_ms = pause.as_millis() as u64,
                "POST failed; retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// One POST of `body` (JSON) to `url` with `headers`, bounded by `timeout` (connecting,
    /// sending and reading the answer; at most the configured timeout, which bounds the
    /// client): the status code of a 2xx answer. The caller decides about retries
    /// ([`PostConfig::pause_before`]).
    ///
    /// # Errors
    /// Why it did not succeed; the error holds neither the URL nor any secret.
    pub async fn post_once(
        &self,
        url: &Url,
        body: &[u8],
        mut headers: HeaderMap,
        timeout: Duration,
    ) -> Result<u16, DeliveryError> {
        let timeout = timeout.min(self.config.timeout);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let exchange = async {
            let mut response = self
                .client
                .post(url.clone())
                .timeout(timeout)
                .headers(headers)
                .body(body.to_vec())
                .send()
                .await
                .map_err(|e| self.transport_error(e, timeout))?;
            let status = response.status();
            let retry_after = retry_after(response.headers(), SystemTime::now());
            // Read (a bounded part of) the answer, so the connection can be reused.
            let mut answer = Vec::new();
            while answer.len() < MAX_BODY_READ {
                match response.chunk().await {
                    Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(e) if status.is_success() => {
                        // Taken already; an unreadable confirmation changes nothing.
                        tracing::debug!(to = %self.label, error = %self.scrub(&error_chain(&e.without_url())), "reading the answer");
                        break;
                    }
                    Err(e) => return Err(self.transport_error(e, timeout)),
                }
            }
            if status.is_success() {
                Ok(status.as_u16())
            } else {
                Err(DeliveryError::Status {
                    status: status.as_u16(),
                    // Scrubbed before it is cut, so no part of a secret survives the cut.
                    body: excerpt(self.scrub(&String::from_utf8_lossy(&answer)).as_bytes()),
                    retry_after: retry_after
                        .filter(|_| status.as_u16() == 429 || status.is_server_error()),
                })
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(DeliveryError::Timeout { timeout }))
    }

    fn transport_error(&self, e: reqwest::Error, timeout: Duration) -> DeliveryError {
        let e = e.without_url();
        if e.is_timeout() {
            DeliveryError::Timeout { timeout }
        } else if e.is_connect() {
            DeliveryError::Unreachable {
                reason: self.scrub(&error_chain(&e)),
            }
        } else {
            DeliveryError::Request {
                reason: self.scrub(&error_chain(&e)),
            }
        }
    }

    /// `text` with every secret replaced by `***`.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.redactions {
            if !secret.expose().is_empty() {
                out = out.replace(secret.expose(), "***");
            }
        }
        out
    }
}

/// How long a `Retry-After` header asks to wait at `now`: delay-seconds or an HTTP date
/// (a date in the past: no wait).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The beginning of an answer's body, trimmed, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_BODY_IN_ERROR) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_856_000);
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("header"));
            retry_after(&h, now)
        };
        assert_eq!(with("3"), Some(Duration::from_secs(3)));
        assert_eq!(with(" 0 "), Some(Duration::ZERO));
        // 2025-11-23T00:00:00Z is a Sunday.
        assert_eq!(
            with("Sun, 23 Nov 2025 00:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(with("Sat, 22 Nov 2025 23:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
        assert_eq!(with("-1"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn error_bodies_are_cut() {
        assert_eq!(
            excerpt(b"  {\"message\":\"bad\"}\n"),
            "{\"message\":\"bad\"}"
        );
        assert_eq!(excerpt(b""), "(empty body)");
        let long = "x".repeat(500);
        assert_eq!(
            excerpt(long.as_bytes()).chars().count(),
            MAX_BODY_IN_ERROR + 1
        );
    }

    #[test]
    fn the_pause_before_a_retry_doubles_obeys_retry_after_and_ends_with_the_retries() {
        let config = PostConfig {
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        };
        let status = |status: u16, retry_after: Option<u64>| DeliveryError::Status {
            status,
            body: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
        };
        let timeout = DeliveryError::Timeout {
            timeout: Duration::from_secs(5),
        };
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        assert_eq!(secs(config.pause_before(0, &timeout)), Some(5));
        assert_eq!(secs(config.pause_before(1, &status(503, None))), Some(10));
        assert_eq!(secs(config.pause_before(2, &status(500, None))), Some(20));
        // The retries are spent.
        assert_eq!(config.pause_before(3, &timeout), None);
        // Another attempt cannot fix a 4xx other than 429.
        assert_eq!(config.pause_before(0, &status(400, None)), None);
        assert_eq!(config.pause_before(0, &status(404, None)), None);
        // Retry-After is obeyed within the bound; beyond it the delivery ends.
        assert_eq!(
            secs(config.pause_before(0, &status(429, Some(42)))),
            Some(42)
        );
        assert_eq!(config.pause_before(0, &status(429, Some(61))), None);
        // The backoff is at most 30 s.
        let many = PostConfig {
            retries: 10,
            ..config
        };
        assert_eq!(secs(many.pause_before(8, &timeout)), Some(30));
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let config = PostConfig {
            timeout: Duration::ZERO,
            retries: 0,
            backoff: Duration::from_millis(1),
            max_retry_after: Duration::from_secs(1),
        };
        let e = Poster::new("x", config, HeaderMap::new(), true, Vec::new())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot build the HTTP client: the timeout must be more than zero"
        );
    }
}
