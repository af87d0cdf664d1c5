//! The Grafana HTTP client: `POST /api/annotations` through a [`Poster`] (each attempt bounded
//! by a timeout, retried on connection failures, timeouts, 5xx and 429). The token is a
//! [`Secret`]: it is sent as a sensitive `Authorization: Bearer` header and never printed.

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::builder::Annotation;
use super::error::AnnotationError;
use crate::delivery::{DeliveryError, PostConfig, Poster, Secret};

/// Default bound of one attempt (connect, send, read the answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 2;
/// Pause before the first retry (it doubles for each further one).
const BACKOFF: Duration = Duration::from_millis(100);
/// The longest `Retry-After` Grafana's answers are obeyed for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The annotations endpoint, below the base URL.
const ENDPOINT: &str = "api/annotations";

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
    poster: Poster,
    endpoint: Url,
    dashboard_uid: Option<String>,
    panel_id: Option<i64>,
}

impl fmt::Debug for Grafana {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grafana")
            .field("endpoint", &self.endpoint.as_str())
            .field("dashboard_uid", &self.dashboard_uid)
            .field("panel_id", &self.panel_id)
            .field("poster", &self.poster)
            .finish()
    }
}

impl Grafana {
    /// Validates the configuration and builds the HTTP client.
    ///
    /// # Errors
    /// [`AnnotationError::InvalidUrl`] for a URL that is empty, not `http`/`https`, without a
    /// host, with credentials, a query or a fragment, or that already ends in `/api/annotations`;
    /// [`AnnotationError::InvalidToken`] for a token that is not a valid header value;
    /// [`AnnotationError::Client`] for a zero timeout or a client that cannot be built.
    pub fn new(config: GrafanaConfig) -> Result<Self, AnnotationError> {
        let endpoint = endpoint(&config.url)?;
        let mut headers = HeaderMap::new();
        let mut redactions = Vec::new();
        if let Some(token) = &config.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| AnnotationError::InvalidToken)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
            redactions.push(token.clone());
        }
        let post = PostConfig {
            timeout: config.timeout,
            retries: config.retries,
            backoff: BACKOFF,
            max_retry_after: MAX_RETRY_AFTER,
        };
        let poster = Poster::new(
            "Grafana",
            post,
            headers,
            endpoint.scheme() == "http",
            redactions,
        )
        .map_err(|e| from_delivery(&endpoint, e))?;
        Ok(Self {
            poster,
            endpoint,
            dashboard_uid: config.dashboard_uid,
            panel_id: config.panel_id,
        })
    }

    /// The URL annotations are posted to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Posts one annotation, with the configured dashboard and panel unless it names its own.
    /// Each attempt is bounded by the timeout; connection failures, timeouts, 5xx and 429
    /// answers are retried up to `retries` times after 100 ms, doubling; other 4xx answers are
    /// not.
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
        let bytes = serde_json::to_vec(&body).map_err(|e| AnnotationError::Request {
            url: self.endpoint.to_string(),
            reason: format!("cannot encode the annotation: {e}"),
        })?;
        self.poster
            .post(&self.endpoint, &bytes, HeaderMap::new)
            .await
            .map_err(|e| from_delivery(&self.endpoint, e))
    }
}

/// A delivery error, with the Grafana endpoint it concerns.
fn from_delivery(endpoint: &Url, e: DeliveryError) -> AnnotationError {
    let url = endpoint.to_string();
    match e {
        DeliveryError::Client { reason } => AnnotationError::Client { url, reason },
        DeliveryError::Unreachable { reason } => AnnotationError::Unreachable { url, reason },
        DeliveryError::Timeout { timeout } => AnnotationError::Timeout { url, timeout },
        DeliveryError::Request { reason } => AnnotationError::Request { url, reason },
        DeliveryError::Status { status, body, .. } => AnnotationError::Status { url, status, body },
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
}
