//! The client: construction, queries, syntax checks, and each request with its retries.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde::de::IgnoredAny;
use tracing::{debug, warn};

use super::config::{PrometheusConfig, build_headers, parse_base_url};
use super::decode::{
    ApiBody, Limits, QueryData, Sample, Series, check_series, decode_data, decode_error,
};
use super::error::{PrometheusError, format_labels, shorten, truncate_body};
use super::form::{form_append, format_number};
use super::retry::{Failure, Transient, backoff_delay};
use super::secret::Credentials;
use crate::metrics::error_chain;

/// The most of an error (non-2xx) body read: enough for Prometheus' error JSON.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The API endpoints used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Query,
    QueryRange,
    FormatQuery,
}

impl Endpoint {
    pub(super) fn path(self) -> &'static str {
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
    /// Bounds the requests in flight (`max_concurrent`).
    permits: tokio::sync::Semaphore,
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
            permits: tokio::sync::Semaphore::new(config.max_concurrent.max(1)),
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
        let data = decode_data(promql, &body, &|t| self.redact(t))?;
        drop(body);
        let samples = match data {
            QueryData::Vector(raw) => {
                check_series(promql, raw.iter().map(|s| (&s.metric, 1)), self.limits())?;
                raw.into_iter()
                    .map(|s| {
                        let Some((timestamp, value)) = s.value else {
                            return Err(decode_error(
                                promql,
                                "sample has no \"value\" (native histograms are not supported)",
                            ));
                        };
                        Ok(Sample {
                            labels: s.metric,
                            value: value.0,
                            timestamp,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            QueryData::Scalar((timestamp, value)) => vec![Sample {
                labels: BTreeMap::new(),
                value: value.0,
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
        let series = self.query_range_sparse(promql, start, end, step).await?;
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

    /// As [`Prometheus::query_range`] but the series as returned, possibly none or none
    /// recent: for queries whose absence means zero (an error counter that has not appeared).
    ///
    /// # Errors
    /// As [`Prometheus::query`] (any NaN or ±Inf point is [`PrometheusError::NotANumber`]).
    pub async fn query_range_sparse(
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
        let raw = match decode_data(promql, &body, &|t| self.redact(t))? {
            QueryData::Matrix(raw) => raw,
            other => {
                return Err(decode_error(
                    promql,
                    &format!("expected a range vector (matrix), got {}", other.kind()),
                ));
            }
        };
        drop(body);
        check_series(
            promql,
            raw.iter().map(|s| (&s.metric, s.values.len())),
            self.limits(),
        )?;
        let mut series = Vec::with_capacity(raw.len());
        for s in raw {
            if s.values.is_empty() && s.histograms.is_some() {
                return Err(decode_error(
                    promql,
                    "series has only native histogram points, which are not supported",
                ));
            }
            let points: Vec<(f64, f64)> = s.values.into_iter().map(|(t, v)| (t, v.0)).collect();
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
                // A 200 only counts with the API's `{"status": "success", "data": …}`: an HTML
                // page or `"status": "error"` from a proxy is not Prometheus parsing the query.
                Ok(body) => {
                    return decode_data::<IgnoredAny>(promql, &body, &|t| self.redact(t))
                        .map(|_| ());
                }
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
        let body = self
            .call(Endpoint::Query, promql, &[("time", "0".to_string())])
            .await?;
        decode_data::<QueryData>(promql, &body, &|t| self.redact(t)).map(|_| ())
    }

    fn limits(&self) -> Limits {
        Limits {
            max_series: self.config.max_series,
            max_points_per_series: self.config.max_points_per_series,
        }
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
            // A permit per attempt, not held through the backoff; the semaphore is never
            // closed, so acquiring only waits.
            let permit = self.permits.acquire().await.ok();
            let outcome = self.attempt(&url, &url_text, &query, form.clone()).await;
            drop(permit);
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
        // Read at most the limit (an error body needs only its start), while it streams in:
        // one oversized answer must not take the process down.
        let limit = if status.is_success() {
            self.config.max_response_bytes
        } else {
            MAX_ERROR_BODY
        };
        let body = self
            .read_body(response, limit, status.is_success(), url_text, query)
            .await?;
        debug!(query = %query, status = status.as_u16(), bytes = body.len(), "prometheus response");

        if status.is_success() {
            return Ok(body);
        }
        let code = status.as_u16();
        let redact = |t: &str| self.redact(t);
        if status.is_server_error() {
            return Err(Failure::Transient(Transient::Status {
                status: code,
                body: truncate_body(&body, &redact),
            }));
        }
        Err(Failure::Final(match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                let (error_type, error) = match serde_json::from_slice::<ApiBody<IgnoredAny>>(&body)
                {
                    Ok(api) => (
                        truncate_body(api.error_type.unwrap_or_default().as_bytes(), &redact),
                        truncate_body(api.error.unwrap_or_default().as_bytes(), &redact),
                    ),
                    Err(_) => (String::new(), truncate_body(&body, &redact)),
                };
                PrometheusError::BadQuery {
                    query: query.to_string(),
                    status: code,
                    error_type,
                    error,
                }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PrometheusError::Unauthorized {
                url: url_text.to_string(),
                status: code,
                body: truncate_body(&body, &redact),
            },
            _ => PrometheusError::HttpStatus {
                url: url_text.to_string(),
                status: code,
                body: match location {
                    Some(to) if status.is_redirection() => {
                        format!(
                            "redirect to {} (not followed)",
                            truncate_body(to.as_bytes(), &redact)
                        )
                    }
                    _ => truncate_body(&body, &redact),
                },
            },
        }))
    }

    /// Reads a body of at most `limit` bytes chunk by chunk. A larger 2xx body is
    /// [`PrometheusError::ResponseTooLarge`] (refused from `Content-Length` before reading when
    /// the server sends one); a larger error body is cut at the limit.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        limit: usize,
        refuse_larger: bool,
        url_text: &str,
        query: &str,
    ) -> Result<Vec<u8>, Failure> {
        let too_large = || {
            Failure::Final(PrometheusError::ResponseTooLarge {
                query: query.to_string(),
                limit,
            })
        };
        let announced = response.content_length().unwrap_or(0);
        if refuse_larger && announced > limit as u64 {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0).min(limit));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_failure(url_text, e))?
        {
            if body.len() + chunk.len() > limit {
                if refuse_larger {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
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

    /// Removes every credential from text that came from the network or a transport error.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.redactions {
            out = out.replace(secret.as_str(), "[redacted]");
        }
        out
    }
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
