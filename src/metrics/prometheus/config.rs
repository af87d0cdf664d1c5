//! Where and how to reach Prometheus, checked into a base URL and request headers.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::error::PrometheusError;
use super::secret::Credentials;

/// Where and how to reach Prometheus.
#[derive(Clone)]
pub struct PrometheusConfig {
    /// Base URL, possibly with a path prefix (`https://mimir.example/prometheus`); the API paths
    /// (`api/v1/query`, …) are appended to it. Must not embed credentials.
    pub url: String,
    /// Authentication.
    pub credentials: Credentials,
    /// Extra request headers, e.g. `X-Scope-OrgID` for Mimir/Thanos/Cortex tenants.
    pub headers: Vec<(String, String)>,
    /// PEM bundle of extra CA certificates, merged with the system roots.
    pub ca_file: Option<PathBuf>,
    /// Timeout of one attempt (connect, send and read the whole response).
    pub timeout: Duration,
    /// Retries after the first attempt (connection errors, timeouts and 5xx only).
    pub retries: u32,
    /// Delay before the first retry; doubles for each further one.
    pub backoff: Duration,
    /// Requests in flight at most (one client shared by every Rollout: 10 000 Rollouts waking
    /// together queue here instead of stampeding Prometheus). At least 1.
    pub max_concurrent: usize,
    /// The largest answer read, bytes; a larger one is
    /// [`PrometheusError::ResponseTooLarge`](super::PrometheusError::ResponseTooLarge), refused
    /// while it streams in.
    pub max_response_bytes: usize,
    /// The most series one answer may hold.
    pub max_series: usize,
    /// The most points one series of an answer may hold (Prometheus itself refuses range
    /// queries of more than 11 000 points per series).
    pub max_points_per_series: usize,
}

/// Default [`PrometheusConfig::max_response_bytes`]: 32 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Default [`PrometheusConfig::max_series`].
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// Default [`PrometheusConfig::max_points_per_series`].
pub const DEFAULT_MAX_POINTS_PER_SERIES: usize = 11_000;

impl PrometheusConfig {
    /// A configuration for `url` with no credentials, no extra headers, system CA roots, a 10 s
    /// timeout per attempt, 2 retries, a 200 ms first backoff, at most 16 requests in flight,
    /// and answers of at most 32 MiB, 10 000 series and 11 000 points per series.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credentials: Credentials::None,
            headers: Vec::new(),
            ca_file: None,
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(200),
            max_concurrent: 16,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_series: DEFAULT_MAX_SERIES,
            max_points_per_series: DEFAULT_MAX_POINTS_PER_SERIES,
        }
    }
}

/// Header names whose values are treated as secrets (not shown by `Debug`, marked sensitive).
fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization"
        || name == "proxy-authorization"
        || name == "cookie"
        || name.contains("token")
        || name.contains("key")
        || name.contains("secret")
        || name.contains("password")
}

impl fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let shown = if is_sensitive_header(k) {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("PrometheusConfig")
            .field("url", &self.url)
            .field("credentials", &self.credentials)
            .field("headers", &headers)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_concurrent", &self.max_concurrent)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_series", &self.max_series)
            .field("max_points_per_series", &self.max_points_per_series)
            .finish()
    }
}

pub(super) fn parse_base_url(raw: &str) -> Result<Url, PrometheusError> {
    let mut url = Url::parse(raw.trim())
        .map_err(|e| PrometheusError::Config(format!("invalid prometheus URL {raw:?}: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Don't echo the URL: it holds the credentials.
        return Err(PrometheusError::Config(
            "the prometheus URL must not embed credentials; use Credentials::Basic or \
             Credentials::Bearer"
                .to_string(),
        ));
    }
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(PrometheusError::Config(format!(
            "prometheus URL {raw:?} must use http or https"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(PrometheusError::Config(format!(
            "prometheus URL {raw:?} has no host"
        )));
    }
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

pub(super) fn build_headers(headers: &[(String, String)]) -> Result<HeaderMap, PrometheusError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PrometheusError::Config(format!("invalid header name {name:?}")))?;
        let mut header_value = HeaderValue::from_str(value)
            .map_err(|_| PrometheusError::Config(format!("invalid value for header {name:?}")))?;
        if is_sensitive_header(name) {
            header_value.set_sensitive(true);
        }
        map.append(header, header_value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::prometheus::client::Endpoint;
    use crate::metrics::prometheus::secret::Secret;

    #[test]
    fn base_url_keeps_its_path_prefix() {
        let url = parse_base_url("https://mimir.example/prometheus").unwrap();
        assert_eq!(
            url.join(Endpoint::Query.path()).unwrap().as_str(),
            "https://mimir.example/prometheus/api/v1/query"
        );
        let url = parse_base_url("http://127.0.0.1:9090").unwrap();
        assert_eq!(
            url.join(Endpoint::QueryRange.path()).unwrap().as_str(),
            "http://127.0.0.1:9090/api/v1/query_range"
        );
    }

    #[test]
    fn urls_with_credentials_are_rejected_without_echoing_them() {
        let err = parse_base_url("https://user:hunter2@prom.example").unwrap_err();
        assert_eq!(err.category(), "config");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(parse_base_url("ftp://prom.example").is_err());
        assert!(parse_base_url("not a url").is_err());
    }

    #[test]
    fn secrets_and_sensitive_headers_are_not_debug_printed() {
        let mut config = PrometheusConfig::new("http://127.0.0.1:9090");
        config.credentials = Credentials::Basic {
            username: "alice".into(),
            password: Secret::new("pa55-Very-Secret"),
        };
        config.headers = vec![
            ("X-Scope-OrgID".into(), "tenant-a".into()),
            ("X-Api-Key".into(), "key-Very-Secret".into()),
        ];
        let text = format!("{config:?}");
        assert!(
            text.contains("tenant-a") && text.contains("alice"),
            "{text}"
        );
        assert!(!text.contains("Very-Secret"), "{text}");
    }
}
