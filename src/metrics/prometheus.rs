//! Prometheus HTTP API client: instant and range queries, server-side PromQL syntax checks,
//! bearer/basic auth, tenant headers (Mimir, Thanos, Cortex), custom CA, bounded retries with
//! exponential backoff, and typed errors that never contain credentials.
//!
//! # Requests
//! Queries are sent as `POST` with an `application/x-www-form-urlencoded` body, so long PromQL
//! never hits URL length limits. Redirects are not followed (a redirected `POST` loses its body
//! and credentials); a 3xx is reported as [`PrometheusError::HttpStatus`].
//!
//! # Retries
//! An attempt is retried — up to [`PrometheusConfig::retries`] times, waiting
//! [`PrometheusConfig::backoff`], then twice that, and so on — only after a connection error, a
//! timeout or a 5xx response. 4xx responses, TLS verification failures and undecodable bodies are
//! final at once.
//!
//! # Syntax checks
//! [`Prometheus::check_syntax`] uses `POST /api/v1/format_query` (Prometheus ≥ 2.38; 2.42 has it),
//! which parses and type-checks the expression without evaluating it: 200 for good PromQL, 400
//! with `errorType: bad_data` and the parser's message otherwise (checked against Prometheus
//! 2.42; `/api/v1/parse_query` does not exist there). When that endpoint answers 404/405 (older
//! Prometheus, some Thanos/Cortex/Mimir front ends) the client remembers it and uses an instant
//! query at `time=0` instead, whose 400 carries the same parse error and which selects no data
//! when the expression is valid.
//!
//! # TLS roots
//! reqwest 0.13 with `rustls-no-provider` verifies certificates with `rustls-platform-verifier`,
//! which on Linux loads the system store through `rustls-native-certs` (`/etc/ssl/certs`, or the
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` environment variables), so plain `https` to a public CA works
//! wherever the system has a CA bundle. [`PrometheusConfig::ca_file`] (a PEM bundle) is *merged*
//! with those roots (`ClientBuilder::tls_certs_merge`, the non-deprecated spelling of
//! `add_root_certificate`). If the system has no CA bundle at all, `http://` URLs still work and
//! `https://` needs `ca_file`. reqwest needs a process-wide rustls crypto provider; when none is
//! installed, [`Prometheus::new`] installs rustls' `ring` provider instead of letting reqwest
//! panic.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tracing::{debug, warn};

/// Longest PromQL text quoted in an error or a log line.
const MAX_QUERY_IN_ERROR: usize = 300;
/// Longest response body quoted in an error.
const MAX_BODY_IN_ERROR: usize = 512;

/// A credential (token or password). `Debug` and `Display` print `[redacted]`; the value is only
/// reachable through [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a secret from a file (a mounted Kubernetes secret, say), without its trailing
    /// newline.
    ///
    /// # Errors
    /// When the file cannot be read, is not UTF-8 or is empty; the error names the file, never
    /// its content.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
            path: path.to_path_buf(),
            source,
        })?;
        let value = text.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(SecretError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        Ok(Self(value.to_string()))
    }

    /// Reads a secret from an environment variable.
    ///
    /// # Errors
    /// When the variable is unset, empty or not Unicode; the error names the variable, never its
    /// value.
    pub fn from_env(var: &str) -> Result<Self, SecretError> {
        match std::env::var(var) {
            Ok(value) if value.is_empty() => Err(SecretError::Env {
                var: var.to_string(),
                reason: "is empty",
            }),
            Ok(value) => Ok(Self(value)),
            Err(std::env::VarError::NotPresent) => Err(SecretError::Env {
                var: var.to_string(),
                reason: "is not set",
            }),
            // `VarError::NotUnicode` carries the value: never format it.
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::Env {
                var: var.to_string(),
                reason: "is not valid Unicode",
            }),
        }
    }

    /// The secret value itself; only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a [`Secret`] could not be loaded. Names the file or variable, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret file cannot be read.
    #[error("cannot read secret file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error (it carries no file content).
        source: std::io::Error,
    },
    /// The secret file is empty (or only a newline).
    #[error("secret file {} is empty", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The environment variable cannot be used.
    #[error("environment variable {var} {reason}")]
    Env {
        /// The variable name.
        var: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// How to authenticate to Prometheus (or the proxy in front of it).
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// HTTP basic auth.
    Basic {
        /// User name (not secret).
        username: String,
        /// Password.
        password: Secret,
    },
}

impl Credentials {
    /// Texts to scrub from anything that came back from the network: the secret itself and,
    /// for basic auth, the encoded `Authorization` value a server might echo.
    fn redactions(&self) -> Vec<String> {
        let mut out = match self {
            Credentials::None => Vec::new(),
            Credentials::Bearer(token) => vec![token.expose().to_string()],
            Credentials::Basic { username, password } => vec![
                base64(format!("{username}:{}", password.expose()).as_bytes()),
                password.expose().to_string(),
            ],
        };
        out.retain(|s| !s.is_empty());
        out
    }
}

/// Standard base64 with padding (as in `Authorization: Basic`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

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
}

impl PrometheusConfig {
    /// A configuration for `url` with no credentials, no extra headers, system CA roots, a 10 s
    /// timeout per attempt, 2 retries and a 200 ms first backoff.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credentials: Credentials::None,
            headers: Vec::new(),
            ca_file: None,
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(200),
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
            .finish()
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series labels, as Prometheus returned them (including `__name__` if present).
    pub labels: BTreeMap<String, String>,
    /// The value (always finite: non-finite values are [`PrometheusError::NotANumber`]).
    pub value: f64,
    /// Evaluation time, Unix seconds.
    pub timestamp: f64,
}

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series labels, as Prometheus returned them.
    pub labels: BTreeMap<String, String>,
    /// `(Unix seconds, value)` pairs in time order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// Timestamp of the newest point, if any.
    pub fn last_timestamp(&self) -> Option<f64> {
        self.points.last().map(|p| p.0)
    }
}

/// Errors of the Prometheus client. None of them contains a token or password.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The configuration cannot work: bad URL or header, unreadable CA file, client setup.
    #[error("prometheus client configuration: {0}")]
    Config(String),
    /// No connection could be made (refused, DNS, reset) after every attempt.
    #[error("prometheus at {url} is unreachable after {attempts} attempt(s): {detail}")]
    Unreachable {
        /// The endpoint URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The transport error chain.
        detail: String,
    },
    /// The TLS handshake failed (untrusted certificate, wrong host name); not retried.
    #[error("TLS handshake with {url} failed: {detail}")]
    Tls {
        /// The endpoint URL.
        url: String,
        /// The TLS error chain.
        detail: String,
    },
    /// Every attempt exceeded the per-attempt timeout.
    #[error(
        "query {query:?} timed out after {} per attempt ({attempts} attempt(s))",
        humantime::format_duration(*timeout)
    )]
    Timeout {
        /// The PromQL (shortened if long).
        query: String,
        /// The per-attempt timeout.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// Prometheus rejected the query (HTTP 400 or 422); not retried.
    #[error("prometheus rejected query {query:?} (HTTP {status}, {error_type}): {error}")]
    BadQuery {
        /// The PromQL (shortened if long).
        query: String,
        /// HTTP status.
        status: u16,
        /// Prometheus' `errorType` (`bad_data`, `execution`, …).
        error_type: String,
        /// Prometheus' `error` text.
        error: String,
    },
    /// Authentication or authorization failed (HTTP 401/403); not retried.
    #[error("prometheus at {url} refused the credentials (HTTP {status}): {body}")]
    Unauthorized {
        /// The endpoint URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// Any other unexpected HTTP status (404 for a wrong path prefix, 3xx, 429, …); not retried.
    #[error("prometheus at {url} answered HTTP {status}: {body}")]
    HttpStatus {
        /// The endpoint URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Start of the response body (or the redirect target).
        body: String,
    },
    /// The server failed (5xx) on every attempt.
    #[error("prometheus at {url} failed with HTTP {status} after {attempts} attempt(s): {body}")]
    Server {
        /// The endpoint URL.
        url: String,
        /// The last HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Start of the last response body.
        body: String,
    },
    /// The response is not the JSON the API promises.
    #[error("cannot decode prometheus response to query {query:?}: {detail}")]
    Decode {
        /// The PromQL (shortened if long).
        query: String,
        /// What is wrong.
        detail: String,
    },
    /// The query matched no series.
    #[error("query {query:?} returned no series")]
    Empty {
        /// The PromQL (shortened if long).
        query: String,
    },
    /// A value is NaN or ±Inf (a division by zero, typically).
    #[error("query {query:?} returned {value} for series {labels}")]
    NotANumber {
        /// The PromQL (shortened if long).
        query: String,
        /// The series labels, `{name="value",…}`.
        labels: String,
        /// The offending value.
        value: f64,
    },
    /// The newest point of a range query is older than `end − 2 × step`: data stopped arriving.
    #[error(
        "query {query:?} is stale: newest point is {} old at the end of the range (step {})",
        humantime::format_duration(*age),
        humantime::format_duration(*step)
    )]
    Stale {
        /// The PromQL (shortened if long).
        query: String,
        /// `end` minus the newest point's time (millisecond precision).
        age: Duration,
        /// The query step.
        step: Duration,
    },
}

impl PrometheusError {
    /// A stable short name for metrics labels and logs: `config`, `unreachable`, `tls`,
    /// `timeout`, `bad_query`, `unauthorized`, `http_status`, `server`, `decode`, `empty`,
    /// `not_a_number` or `stale`.
    pub fn category(&self) -> &'static str {
        match self {
            PrometheusError::Config(_) => "config",
            PrometheusError::Unreachable { .. } => "unreachable",
            PrometheusError::Tls { .. } => "tls",
            PrometheusError::Timeout { .. } => "timeout",
            PrometheusError::BadQuery { .. } => "bad_query",
            PrometheusError::Unauthorized { .. } => "unauthorized",
            PrometheusError::HttpStatus { .. } => "http_status",
            PrometheusError::Server { .. } => "server",
            PrometheusError::Decode { .. } => "decode",
            PrometheusError::Empty { .. } => "empty",
            PrometheusError::NotANumber { .. } => "not_a_number",
            PrometheusError::Stale { .. } => "stale",
        }
    }
}

/// The API endpoints used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Query,
    QueryRange,
    FormatQuery,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Query => "api/v1/query",
            Endpoint::QueryRange => "api/v1/query_range",
            Endpoint::FormatQuery => "api/v1/format_query",
        }
    }
}

/// A Prometheus HTTP API client. Cheap to share behind an `Arc`; requests may run concurrently.
pub struct Prometheus {
    client: reqwest::Client,
    base: Url,
    credentials: Credentials,
    /// Secret texts scrubbed from errors.
    redactions: Vec<String>,
    headers: HeaderMap,
    config: PrometheusConfig,
    /// Set once the server answered 404/405 to `format_query`.
    format_query_missing: AtomicBool,
}

impl fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prometheus")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Prometheus {
    /// Validates the configuration and builds the HTTP client.
    ///
    /// # Errors
    /// [`PrometheusError::Config`] for a URL that is not `http`/`https`, has no host or embeds
    /// credentials; an invalid header; an unreadable or certificate-less CA file (named); or a
    /// client that cannot be built.
    pub fn new(config: PrometheusConfig) -> Result<Self, PrometheusError> {
        let base = parse_base_url(&config.url)?;
        let headers = build_headers(&config.headers)?;

        let mut extra_roots = Vec::new();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                PrometheusError::Config(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                PrometheusError::Config(format!(
                    "CA file {} is not a PEM certificate bundle: {}",
                    path.display(),
                    error_chain(&e)
                ))
            })?;
            if certs.is_empty() {
                return Err(PrometheusError::Config(format!(
                    "CA file {} contains no PEM certificate",
                    path.display()
                )));
            }
            extra_roots = certs;
        }

        ensure_crypto_provider();
        let builder = || {
            reqwest::Client::builder()
                .timeout(config.timeout)
                .connect_timeout(config.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("canary-gate/", env!("CARGO_PKG_VERSION")))
        };
        let client = match builder().tls_certs_merge(extra_roots.clone()).build() {
            Ok(client) => client,
            // No system CA bundle (a minimal container): plain http needs no roots at all.
            Err(_) if base.scheme() == "http" => builder()
                .tls_certs_only(extra_roots)
                .build()
                .map_err(|e| PrometheusError::Config(client_build_error(&config, &e)))?,
            Err(e) => return Err(PrometheusError::Config(client_build_error(&config, &e))),
        };

        Ok(Self {
            client,
            base,
            credentials: config.credentials.clone(),
            redactions: config.credentials.redactions(),
            headers,
            config,
            format_query_missing: AtomicBool::new(false),
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &PrometheusConfig {
        &self.config
    }

    /// Evaluates `promql` at `time` (Unix seconds) and returns the instant vector. A scalar
    /// result is returned as one sample with no labels.
    ///
    /// # Errors
    /// Transport and HTTP errors as documented on [`PrometheusError`];
    /// [`PrometheusError::Empty`] when no series matched; [`PrometheusError::NotANumber`] when a
    /// value is NaN or ±Inf; [`PrometheusError::Decode`] for a range-vector, string or native
    /// histogram result.
    pub async fn query(&self, promql: &str, time: f64) -> Result<Vec<Sample>, PrometheusError> {
        let body = self
            .call(Endpoint::Query, promql, &[("time", format_number(time))])
            .await?;
        let data = decode_data(promql, &body).map_err(|e| self.redact_error(e))?;
        let samples = match data {
            QueryData::Vector(raw) => raw
                .into_iter()
                .map(|s| {
                    let Some((timestamp, value)) = s.value else {
                        return Err(decode_error(
                            promql,
                            "sample has no \"value\" (native histograms are not supported)",
                        ));
                    };
                    Ok(Sample {
                        labels: s.metric,
                        value: parse_value(promql, &value)?,
                        timestamp,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            QueryData::Scalar((timestamp, value)) => vec![Sample {
                labels: BTreeMap::new(),
                value: parse_value(promql, &value)?,
                timestamp,
            }],
            QueryData::Matrix(_) => {
                return Err(decode_error(
                    promql,
                    "expected an instant vector or scalar, got a range vector (matrix)",
                ));
            }
            QueryData::String(_) => {
                return Err(decode_error(
                    promql,
                    "expected an instant vector or scalar, got a string",
                ));
            }
        };
        if samples.is_empty() {
            return Err(PrometheusError::Empty {
                query: shorten(promql),
            });
        }
        if let Some(bad) = samples.iter().find(|s| !s.value.is_finite()) {
            return Err(PrometheusError::NotANumber {
                query: shorten(promql),
                labels: format_labels(&bad.labels),
                value: bad.value,
            });
        }
        Ok(samples)
    }

    /// Evaluates `promql` from `start` to `end` (Unix seconds) every `step`.
    ///
    /// # Errors
    /// As [`Prometheus::query`] (any NaN or ±Inf point is [`PrometheusError::NotANumber`]), and
    /// [`PrometheusError::Stale`] when the newest point of all series is older than
    /// `end − 2 × step`. Per-series freshness is left to the caller
    /// ([`Series::last_timestamp`]).
    pub async fn query_range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> Result<Vec<Series>, PrometheusError> {
        let body = self
            .call(
                Endpoint::QueryRange,
                promql,
                &[
                    ("start", format_number(start)),
                    ("end", format_number(end)),
                    ("step", format_number(step.as_secs_f64())),
                ],
            )
            .await?;
        let raw = match decode_data(promql, &body).map_err(|e| self.redact_error(e))? {
            QueryData::Matrix(raw) => raw,
            other => {
                return Err(decode_error(
                    promql,
                    &format!("expected a range vector (matrix), got {}", other.kind()),
                ));
            }
        };
        let mut series = Vec::with_capacity(raw.len());
        for s in raw {
            if s.values.is_empty() && s.histograms.is_some() {
                return Err(decode_error(
                    promql,
                    "series has only native histogram points, which are not supported",
                ));
            }
            let points = s
                .values
                .into_iter()
                .map(|(t, v)| parse_value(promql, &v).map(|v| (t, v)))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(&(_, value)) = points.iter().find(|p| !p.1.is_finite()) {
                return Err(PrometheusError::NotANumber {
                    query: shorten(promql),
                    labels: format_labels(&s.metric),
                    value,
                });
            }
            series.push(Series {
                labels: s.metric,
                points,
            });
        }
        let newest = series
            .iter()
            .filter_map(Series::last_timestamp)
            .fold(f64::NEG_INFINITY, f64::max);
        if series.is_empty() || newest == f64::NEG_INFINITY {
            return Err(PrometheusError::Empty {
                query: shorten(promql),
            });
        }
        let step_secs = step.as_secs_f64();
        if newest < end - 2.0 * step_secs {
            let age_ms = ((end - newest) * 1000.0).round();
            return Err(PrometheusError::Stale {
                query: shorten(promql),
                age: Duration::from_millis(age_ms as u64),
                step,
            });
        }
        Ok(series)
    }

    /// Checks that `promql` parses (and type-checks) on the server, without evaluating it. Uses
    /// `/api/v1/format_query`, or an instant query at `time=0` on servers without it (see the
    /// module documentation).
    ///
    /// # Errors
    /// [`PrometheusError::BadQuery`] carrying Prometheus' parse error, or a transport/HTTP error.
    pub async fn check_syntax(&self, promql: &str) -> Result<(), PrometheusError> {
        if !self.format_query_missing.load(Ordering::Relaxed) {
            match self.call(Endpoint::FormatQuery, promql, &[]).await {
                Ok(_) => return Ok(()),
                Err(PrometheusError::HttpStatus { status, .. })
                    if status == 404 || status == 405 =>
                {
                    debug!(
                        status,
                        "format_query is not available; checking syntax with an instant query at time 0"
                    );
                    self.format_query_missing.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        self.call(Endpoint::Query, promql, &[("time", "0".to_string())])
            .await
            .map(|_| ())
    }

    /// Sends one API request with retries; returns the body of a 2xx response.
    async fn call(
        &self,
        endpoint: Endpoint,
        promql: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<u8>, PrometheusError> {
        let url = self
            .base
            .join(endpoint.path())
            .map_err(|e| PrometheusError::Config(format!("cannot build API URL: {e}")))?;
        let url_text = url.to_string();
        let query = shorten(promql);
        let mut form = String::new();
        form_append(&mut form, "query", promql);
        for (k, v) in params {
            form_append(&mut form, k, v);
        }

        let attempts = self.config.retries.saturating_add(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            debug!(query = %query, endpoint = endpoint.path(), attempt, "prometheus request");
            let outcome = self.attempt(&url, &url_text, &query, form.clone()).await;
            let transient = match outcome {
                Ok(body) => return Ok(body),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Transient(t)) => t,
            };
            if attempt >= attempts {
                return Err(transient.into_error(&url_text, &query, self.config.timeout, attempt));
            }
            let delay = backoff_delay(self.config.backoff, attempt - 1);
            match &transient {
                Transient::Status { status, .. } => warn!(
                    query = %query, attempt, status, delay_ms = delay.as_millis() as u64,
                    "prometheus server error; retrying"
                ),
                Transient::Timeout => warn!(
                    query = %query, attempt, delay_ms = delay.as_millis() as u64,
                    "prometheus request timed out; retrying"
                ),
                Transient::Connection(detail) => warn!(
                    query = %query, attempt, error = %detail, delay_ms = delay.as_millis() as u64,
                    "prometheus unreachable; retrying"
                ),
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        url: &Url,
        url_text: &str,
        query: &str,
        form: String,
    ) -> Result<Vec<u8>, Failure> {
        let mut request = self
            .client
            .post(url.clone())
            .headers(self.headers.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form);
        request = match &self.credentials {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token.expose()),
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_failure(url_text, e))?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_failure(url_text, e))?
            .to_vec();
        debug!(query = %query, status = status.as_u16(), bytes = body.len(), "prometheus response");

        if status.is_success() {
            return Ok(body);
        }
        let code = status.as_u16();
        if status.is_server_error() {
            return Err(Failure::Transient(Transient::Status {
                status: code,
                body: self.redact(&truncate_body(&body)),
            }));
        }
        Err(Failure::Final(match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                let (error_type, error) = match serde_json::from_slice::<ApiBody<IgnoredAny>>(&body)
                {
                    Ok(api) => (
                        api.error_type.unwrap_or_default(),
                        api.error.unwrap_or_default(),
                    ),
                    Err(_) => (String::new(), truncate_body(&body)),
                };
                PrometheusError::BadQuery {
                    query: query.to_string(),
                    status: code,
                    error_type: self.redact(&error_type),
                    error: self.redact(&error),
                }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PrometheusError::Unauthorized {
                url: url_text.to_string(),
                status: code,
                body: self.redact(&truncate_body(&body)),
            },
            _ => PrometheusError::HttpStatus {
                url: url_text.to_string(),
                status: code,
                body: match location {
                    Some(to) if status.is_redirection() => {
                        format!("redirect to {} (not followed)", self.redact(&to))
                    }
                    _ => self.redact(&truncate_body(&body)),
                },
            },
        }))
    }

    fn transport_failure(&self, url_text: &str, e: reqwest::Error) -> Failure {
        let e = e.without_url();
        if e.is_timeout() {
            return Failure::Transient(Transient::Timeout);
        }
        let detail = self.redact(&error_chain(&e));
        if e.is_builder() {
            return Failure::Final(PrometheusError::Config(format!(
                "cannot build a request to {url_text}: {detail}"
            )));
        }
        if is_tls_error(&e) {
            return Failure::Final(PrometheusError::Tls {
                url: url_text.to_string(),
                detail,
            });
        }
        Failure::Transient(Transient::Connection(detail))
    }

    /// Removes credentials from a decode error, which quotes the response body.
    fn redact_error(&self, e: PrometheusError) -> PrometheusError {
        match e {
            PrometheusError::Decode { query, detail } => PrometheusError::Decode {
                query,
                detail: self.redact(&detail),
            },
            other => other,
        }
    }

    /// Removes every credential from text that came from the network or a transport error.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.redactions {
            out = out.replace(secret.as_str(), "[redacted]");
        }
        out
    }
}

/// An attempt's failure: final, or worth retrying.
enum Failure {
    Final(PrometheusError),
    Transient(Transient),
}

enum Transient {
    Timeout,
    Connection(String),
    Status { status: u16, body: String },
}

impl Transient {
    fn into_error(
        self,
        url: &str,
        query: &str,
        timeout: Duration,
        attempts: u32,
    ) -> PrometheusError {
        match self {
            Transient::Timeout => PrometheusError::Timeout {
                query: query.to_string(),
                timeout,
                attempts,
            },
            Transient::Connection(detail) => PrometheusError::Unreachable {
                url: url.to_string(),
                attempts,
                detail,
            },
            Transient::Status { status, body } => PrometheusError::Server {
                url: url.to_string(),
                status,
                attempts,
                body,
            },
        }
    }
}

/// `backoff × 2^retry`, saturating.
fn backoff_delay(backoff: Duration, retry: u32) -> Duration {
    backoff.saturating_mul(2u32.saturating_pow(retry))
}

fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn client_build_error(config: &PrometheusConfig, e: &reqwest::Error) -> String {
    match &config.ca_file {
        Some(path) => format!(
            "cannot build the HTTP client with CA file {}: {}",
            path.display(),
            error_chain(e)
        ),
        None => format!(
            "cannot build the HTTP client (no usable system CA certificates? set ca_file or \
             SSL_CERT_FILE): {}",
            error_chain(e)
        ),
    }
}

fn parse_base_url(raw: &str) -> Result<Url, PrometheusError> {
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

fn build_headers(headers: &[(String, String)]) -> Result<HeaderMap, PrometheusError> {
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

/// `error: cause: cause …` without the URL (reqwest errors already stripped of it).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whether a transport error comes from TLS (rustls), which retrying cannot fix.
fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    // `io::Error::source` skips the error it wraps, and I/O errors get wrapped in I/O errors:
    // walk both `source()` and `io::Error::get_ref()` links.
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    let mut visited = 0;
    while let Some(err) = pending.pop() {
        visited += 1;
        if visited > 64 {
            break;
        }
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            pending.push(inner);
        }
        if let Some(source) = err.source() {
            pending.push(source);
        }
    }
    false
}

/// Appends `key=value` to an `application/x-www-form-urlencoded` body.
fn form_append(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    form_encode(out, key);
    out.push('=');
    form_encode(out, value);
}

fn form_encode(out: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(other >> 4)] as char);
                out.push(HEX[usize::from(other & 0xf)] as char);
            }
        }
    }
}

/// A number as Prometheus parses it (`1700000000`, `1700000000.5`, `15`).
fn format_number(x: f64) -> String {
    format!("{x}")
}

/// Shortens PromQL for errors and logs.
fn shorten(promql: &str) -> String {
    match promql.char_indices().nth(MAX_QUERY_IN_ERROR) {
        Some((cut, _)) => format!("{}…", &promql[..cut]),
        None => promql.to_string(),
    }
}

fn truncate_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_BODY_IN_ERROR) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], body.len()),
        None => text.to_string(),
    }
}

/// `{a="b", c="d"}`.
fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn decode_error(promql: &str, detail: &str) -> PrometheusError {
    PrometheusError::Decode {
        query: shorten(promql),
        detail: detail.to_string(),
    }
}

/// Parses a sample value as the API encodes it (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`).
fn parse_value(promql: &str, text: &str) -> Result<f64, PrometheusError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        other => other
            .parse::<f64>()
            .map_err(|_| decode_error(promql, &format!("sample value {other:?} is not a number"))),
    }
}

#[derive(Deserialize)]
struct ApiBody<T> {
    status: String,
    data: Option<T>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum QueryData {
    Vector(Vec<RawSample>),
    Scalar(RawPoint),
    Matrix(Vec<RawSeries>),
    String(IgnoredAny),
}

impl QueryData {
    fn kind(&self) -> &'static str {
        match self {
            QueryData::Vector(_) => "an instant vector",
            QueryData::Scalar(_) => "a scalar",
            QueryData::Matrix(_) => "a range vector",
            QueryData::String(_) => "a string",
        }
    }
}

type RawPoint = (f64, String);

#[derive(Deserialize)]
struct RawSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<RawPoint>,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<RawPoint>,
    #[serde(default)]
    histograms: Option<IgnoredAny>,
}

/// Decodes a 2xx query response into its `data`.
fn decode_data(promql: &str, body: &[u8]) -> Result<QueryData, PrometheusError> {
    let api: ApiBody<QueryData> = serde_json::from_slice(body).map_err(|e| {
        decode_error(
            promql,
            &format!("{e}; body starts with {:?}", truncate_chars(body, 120)),
        )
    })?;
    if api.status != "success" {
        return Err(decode_error(
            promql,
            &format!(
                "status {:?} ({}: {}) in a 2xx response",
                api.status,
                api.error_type.unwrap_or_default(),
                api.error.unwrap_or_default()
            ),
        ));
    }
    for warning in &api.warnings {
        warn!(query = %shorten(promql), warning = %warning, "prometheus warning");
    }
    api.data
        .ok_or_else(|| decode_error(promql, "successful response without \"data\""))
}

fn truncate_chars(body: &[u8], n: usize) -> String {
    String::from_utf8_lossy(body).chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_promql() {
        let mut out = String::new();
        form_append(
            &mut out,
            "query",
            r#"sum(rate(x{code=~"5.."}[1m])) / 2 + a&b"#,
        );
        form_append(&mut out, "time", "1.5");
        assert_eq!(
            out,
            "query=sum%28rate%28x%7Bcode%3D%7E%225..%22%7D%5B1m%5D%29%29+%2F+2+%2B+a%26b&time=1.5"
        );
    }

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
    fn values_parse_like_the_api_encodes_them() {
        assert_eq!(parse_value("q", "1.5").unwrap(), 1.5);
        assert!(parse_value("q", "NaN").unwrap().is_nan());
        assert_eq!(parse_value("q", "+Inf").unwrap(), f64::INFINITY);
        assert_eq!(parse_value("q", "-Inf").unwrap(), f64::NEG_INFINITY);
        assert_eq!(parse_value("q", "x").unwrap_err().category(), "decode");
    }

    #[test]
    fn base64_matches_the_basic_auth_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"alice:pw-DISTINCTIVE-9Kq2"),
            "YWxpY2U6cHctRElTVElOQ1RJVkUtOUtxMg=="
        );
    }

    #[test]
    fn backoff_doubles_and_saturates() {
        let b = Duration::from_millis(200);
        assert_eq!(backoff_delay(b, 0), Duration::from_millis(200));
        assert_eq!(backoff_delay(b, 1), Duration::from_millis(400));
        assert_eq!(backoff_delay(b, 2), Duration::from_millis(800));
        assert_eq!(backoff_delay(b, 200), b.saturating_mul(u32::MAX));
    }

    #[test]
    fn long_queries_are_shortened_in_errors() {
        let q = "a".repeat(1000);
        let s = shorten(&q);
        assert_eq!(s.chars().count(), MAX_QUERY_IN_ERROR + 1);
        assert!(s.ends_with('…'));
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

    #[test]
    fn secret_from_file_trims_the_newline_and_names_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().expose(), "s3cr3t");
        std::fs::write(&path, "\n").unwrap();
        let err = Secret::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("token") && err.contains("empty"), "{err}");
        let err = Secret::from_file(dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn secret_from_env_names_the_variable() {
        let err = Secret::from_env("CANARY_GATE_TEST_SURELY_UNSET_VAR")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment variable CANARY_GATE_TEST_SURELY_UNSET_VAR is not set"
        );
    }

    #[test]
    fn decode_rejects_unexpected_shapes() {
        assert!(decode_data("q", b"<html>").is_err());
        assert!(decode_data("q", br#"{"status":"success"}"#).is_err());
        assert!(
            decode_data(
                "q",
                br#"{"status":"success","data":{"resultType":"vector","result":{}}}"#
            )
            .is_err()
        );
        match decode_data(
            "q",
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#,
        ) {
            Ok(QueryData::Scalar((t, v))) => assert_eq!((t, v.as_str()), (1.0, "2")),
            _ => panic!("scalar expected"),
        }
    }
}
