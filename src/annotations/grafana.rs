//! The Grafana HTTP client: `POST /api/annotations`, each attempt bounded by a timeout, retried
//! on connection failures, timeouts and 5xx answers. The token is a [`Secret`]: it is sent as a
//! sensitive `Authorization: Bearer` header and never printed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::builder::Annotation;
use super::error::AnnotationError;
use crate::metrics::error_chain;

/// Default bound of one attempt (connect, send, read the answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 2;
/// Pause before retry `n` is `n` times this.
const BACKOFF: Duration = Duration::from_millis(100);
/// At most this many characters of an error answer go into the error.
const MAX_BODY_IN_ERROR: usize = 200;
/// At most this many bytes of an answer are read.
const MAX_BODY_READ: usize = 4096;
/// The annotations endpoint, below the base URL.
const ENDPOINT: &str = "api/annotations";

/// A secret text (the Grafana token): its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Self(secret.to_string())
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    /// Any text (so `clap` can parse `--grafana-token` straight into a `Secret`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// Where and how to post annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct GrafanaConfig {
    /// Grafana's base URL (`--grafana-url`), e.g. `http://grafana:3000` or
    /// `https://example.com/grafana`; the client posts to `<url>/api/annotations`.
    pub url: String,
    /// A service-account token (`--grafana-token`), sent as `Authorization: Bearer`.
    pub token: Option<Secret>,
    /// The dashboard the annotations belong to (e.g. `canary-gate`, the shipped dashboard's
    /// UID); none: organization annotations, shown by tag queries only.
    pub dashboard_uid: Option<String>,
    /// The panel the annotations belong to, within the dashboard.
    pub panel_id: Option<i64>,
    /// Bound of one attempt (default 2 s).
    pub timeout: Duration,
    /// Retries after a failed first attempt (default 2).
    pub retries: u32,
}

impl Default for GrafanaConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            token: None,
            dashboard_uid: None,
            panel_id: None,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
        }
    }
}

impl GrafanaConfig {
    /// The defaults for Grafana at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// A Grafana annotations client.
pub struct Grafana {
    client: reqwest::Client,
    endpoint: Url,
    dashboard_uid: Option<String>,
    panel_id: Option<i64>,
    timeout: Duration,
    retries: u32,
}

impl fmt::Debug for Grafana {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grafana")
            .field("endpoint", &self.endpoint.as_str())
            .field("dashboard_uid", &self.dashboard_uid)
            .field("panel_id", &self.panel_id)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl Grafana {
    /// Validates the configuration and builds the HTTP client (installing the `ring` rustls
    /// provider if none is).
    ///
    /// # Errors
    /// [`AnnotationError::InvalidUrl`] for a URL that is empty, not `http`/`https`, without a
    /// host, with credentials, a query or a fragment, or that already ends in `/api/annotations`;
    /// [`AnnotationError::InvalidToken`] for a token that is not a valid header value;
    /// [`AnnotationError::Client`] for a zero timeout or a client that cannot be built.
    pub fn new(config: GrafanaConfig) -> Result<Self, AnnotationError> {
        let endpoint = endpoint(&config.url)?;
        if config.timeout.is_zero() {
            return Err(AnnotationError::Client {
                url: endpoint.to_string(),
                reason: "the timeout must be more than zero".into(),
            });
        }
        let mut headers = HeaderMap::new();
        if let Some(token) = &config.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| AnnotationError::InvalidToken)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
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
            Ok(client) => client,
            // No system CA bundle (a minimal container): plain http needs no roots at all.
            Err(_) if endpoint.scheme() == "http" => builder()
                .tls_certs_only(Vec::new())
                .build()
                .map_err(|e| client_error(&endpoint, &e))?,
            Err(e) => return Err(client_error(&endpoint, &e)),
        };
        Ok(Self {
            client,
            endpoint,
            dashboard_uid: config.dashboard_uid,
            panel_id: config.panel_id,
            timeout: config.timeout,
            retries: config.retries,
        })
    }

    /// The URL annotations are posted to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Posts one annotation, with the configured dashboard and panel unless it names its own.
    /// Each attempt is bounded by the timeout; connection failures, timeouts and 5xx answers
    /// are retried up to `retries` times after 100 ms × the attempt number; 4xx answers are not.
    ///
    /// # Errors
    /// The last attempt's error (see [`AnnotationError`]); it never contains the token.
    pub async fn post(&self, annotation: &Annotation) -> Result<(), AnnotationError> {
        let body = Annotation {
            dashboard_uid: annotation
                .dashboard_uid
                .clone()
                .or_else(|| self.dashboard_uid.clone()),
            panel_id: annotation.panel_id.or(self.panel_id),
            ..annotation.clone()
        };
        let mut attempt = 0;
        loop {
            match self.attempt(&body).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && attempt < self.retries => {
                    attempt += 1;
                    tracing::debug!(
                        error = %e,
                        attempt,
                        retries = self.retries,
                        "Grafana annotation failed; retrying"
                    );
                    tokio::time::sleep(BACKOFF * attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One POST, bounded by the timeout.
    async fn attempt(&self, body: &Annotation) -> Result<(), AnnotationError> {
        let exchange = async {
            let mut response = self
                .client
                .post(self.endpoint.clone())
                .json(body)
                .send()
                .await
                .map_err(|e| self.transport_error(e))?;
            let status = response.status();
            // Read (a bounded part of) the answer, so the connection can be reused.
            let mut answer = Vec::new();
            while answer.len() < MAX_BODY_READ {
                match response.chunk().await {
                    Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(e) if status.is_success() => {
                        // Stored already; an unreadable confirmation changes nothing.
                        tracing::debug!(error = %error_chain(&e), "reading Grafana's answer");
                        break;
                    }
                    Err(e) => return Err(self.transport_error(e)),
                }
            }
            if status.is_success() {
                Ok(())
            } else {
                Err(AnnotationError::Status {
                    url: self.endpoint.to_string(),
                    status: status.as_u16(),
                    body: excerpt(&answer),
                })
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(AnnotationError::Timeout {
                    url: self.endpoint.to_string(),
                    timeout: self.timeout,
                })
            })
    }

    fn transport_error(&self, e: reqwest::Error) -> AnnotationError {
        let e = e.without_url();
        let url = self.endpoint.to_string();
        if e.is_timeout() {
            AnnotationError::Timeout {
                url,
                timeout: self.timeout,
            }
        } else if e.is_connect() {
            AnnotationError::Unreachable {
                url,
                reason: error_chain(&e),
            }
        } else {
            AnnotationError::Request {
                url,
                reason: error_chain(&e),
            }
        }
    }
}

/// `<base>/api/annotations`, from a validated `--grafana-url`.
fn endpoint(raw: &str) -> Result<Url, AnnotationError> {
    let raw = raw.trim();
    let invalid = |reason: &str| AnnotationError::InvalidUrl {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    if raw.is_empty() {
        return Err(invalid(
            "is empty; give Grafana's base URL, e.g. http://grafana:3000",
        ));
    }
    let mut url = Url::parse(raw).map_err(|e| {
        invalid(&format!(
            "is not a URL ({e}); give Grafana's base URL, e.g. http://grafana:3000"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        // Don't echo the URL: it holds the credentials.
        return Err(AnnotationError::InvalidUrl {
            url: "<redacted>".into(),
            reason: "must not embed credentials; pass a service-account token with --grafana-token"
                .into(),
        });
    }
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or a fragment"));
    }
    let base = url.path().trim_end_matches('/');
    if base.ends_with("/api/annotations") {
        return Err(invalid(
            "is Grafana's base URL, without /api/annotations (e.g. http://grafana:3000)",
        ));
    }
    let path = format!("{base}/{ENDPOINT}");
    url.set_path(&path);
    Ok(url)
}

fn client_error(endpoint: &Url, e: &reqwest::Error) -> AnnotationError {
    AnnotationError::Client {
        url: endpoint.to_string(),
        reason: error_chain(e),
    }
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

    const TOKEN: &str = "glsa_s3cr3t-t0ken";

    fn config() -> GrafanaConfig {
        GrafanaConfig {
            token: Some(Secret::new(TOKEN)),
            dashboard_uid: Some("canary-gate".into()),
            panel_id: Some(1),
            ..GrafanaConfig::new("http://grafana:3000")
        }
    }

    #[test]
    fn the_token_is_never_printed() {
        let config = config();
        let debug = format!("{config:?}");
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(debug.contains("***"), "{debug}");
        assert_eq!(format!("{}", Secret::new(TOKEN)), "***");
        assert_eq!(format!("{:?}", Secret::new(TOKEN)), "***");
        let grafana = Grafana::new(config).map(|g| format!("{g:?}"));
        assert!(
            grafana.as_ref().is_ok_and(|g| !g.contains(TOKEN)),
            "{grafana:?}"
        );
    }

    #[test]
    fn defaults() {
        let c = GrafanaConfig::new("http://grafana:3000");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.retries, 2);
        assert_eq!(c.token, None);
        assert_eq!(
            "t".parse::<Secret>().ok().map(|s| s.expose().to_string()),
            Some("t".into())
        );
    }

    #[test]
    fn the_endpoint_is_below_the_base_url() {
        let at = |url: &str| endpoint(url).map(|u| u.to_string());
        assert_eq!(
            at("http://grafana:3000"),
            Ok("http://grafana:3000/api/annotations".into())
        );
        assert_eq!(
            at(" https://example.com/grafana/ "),
            Ok("https://example.com/grafana/api/annotations".into())
        );
    }

    #[test]
    fn bad_urls_name_the_flag() {
        for (url, reason) in [
            ("", "is empty"),
            ("grafana:3000", "must use http or https"),
            ("not a url", "is not a URL"),
            ("ftp://grafana", "must use http or https"),
            ("http://grafana:3000/?orgId=1", "query"),
            (
                "http://grafana:3000/api/annotations",
                "without /api/annotations",
            ),
        ] {
            let e = Grafana::new(GrafanaConfig::new(url))
                .map(|_| ())
                .unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with("--grafana-url"), "{url}: {text}");
            assert!(text.contains(reason), "{url}: {text}");
        }
        let e = Grafana::new(GrafanaConfig::new("http://admin:hunter2@grafana:3000"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--grafana-token") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn a_token_that_is_no_header_value_is_refused_without_echoing_it() {
        let config = GrafanaConfig {
            token: Some(Secret::new("line\nbreak")),
            ..GrafanaConfig::new("http://grafana:3000")
        };
        let e = Grafana::new(config).map(|_| ()).unwrap_err();
        assert_eq!(e, AnnotationError::InvalidToken);
        assert!(!e.to_string().contains("line"));
    }

    #[test]
    fn only_connection_failures_timeouts_and_5xx_are_retried() {
        let status = |status| AnnotationError::Status {
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert!(status(500).is_transient());
        assert!(status(503).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(401).is_transient());
        assert!(
            AnnotationError::Timeout {
                url: "u".into(),
                timeout: DEFAULT_TIMEOUT
            }
            .is_transient()
        );
        assert!(!AnnotationError::InvalidToken.is_transient());
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
}
