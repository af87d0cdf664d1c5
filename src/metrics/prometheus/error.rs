//! The client's typed errors, and the shortened texts (queries, bodies, labels) they quote.

use std::collections::BTreeMap;
use std::time::Duration;

/// Longest PromQL text quoted in an error or a log line.
const MAX_QUERY_IN_ERROR: usize = 300;
/// Longest response body quoted in an error.
const MAX_BODY_IN_ERROR: usize = 512;

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
    /// The response is larger than the client accepts.
    #[error(
        "the answer to query {query:?} is larger than {limit} bytes; aggregate the query (e.g. sum by (version) (…)) or raise the limit (--max-response-mib)"
    )]
    ResponseTooLarge {
        /// The PromQL (shortened if long).
        query: String,
        /// The limit, bytes.
        limit: usize,
    },
    /// The response holds more series than the client accepts.
    #[error(
        "query {query:?} returned {series} series, more than {limit}; aggregate it by the version label (sum by (version) (…))"
    )]
    TooManySeries {
        /// The PromQL (shortened if long).
        query: String,
        /// Series returned.
        series: usize,
        /// The limit.
        limit: usize,
    },
    /// A series holds more points than were asked for.
    #[error("query {query:?} returned {points} points for series {labels}, more than {limit}")]
    TooManyPoints {
        /// The PromQL (shortened if long).
        query: String,
        /// The series labels.
        labels: String,
        /// Points returned.
        points: usize,
        /// The limit.
        limit: usize,
    },
    /// Two series of one answer have identical labels; summing them would count the same
    /// requests twice.
    #[error(
        "query {query:?} returned series {labels} more than once; a correct Prometheus never does (a proxy or federation merging answers?), and summing the copies would multiply the evidence"
    )]
    DuplicateSeries {
        /// The PromQL (shortened if long).
        query: String,
        /// The duplicated label set.
        labels: String,
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
    /// `not_a_number`, `stale`, `response_too_large`, `too_many_series`, `too_many_points` or
    /// `duplicate_series`.
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
            PrometheusError::ResponseTooLarge { .. } => "response_too_large",
            PrometheusError::TooManySeries { .. } => "too_many_series",
            PrometheusError::TooManyPoints { .. } => "too_many_points",
            PrometheusError::DuplicateSeries { .. } => "duplicate_series",
        }
    }
}

/// Shortens PromQL for errors and logs.
pub(super) fn shorten(promql: &str) -> String {
    match promql.char_indices().nth(MAX_QUERY_IN_ERROR) {
        Some((cut, _)) => format!("{}…", &promql[..cut]),
        None => promql.to_string(),
    }
}

/// The start of an error body for an error message: `redact` runs over the whole body first,
/// so a secret that spans the cut cannot leave a prefix behind.
pub(super) fn truncate_body(body: &[u8], redact: &dyn Fn(&str) -> String) -> String {
    let text = redact(&String::from_utf8_lossy(body));
    let text = text.trim();
    match text.char_indices().nth(MAX_BODY_IN_ERROR) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], body.len()),
        None => text.to_string(),
    }
}

/// `{a="b", c="d"}`.
pub(super) fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_queries_are_shortened_in_errors() {
        let q = "a".repeat(1000);
        let s = shorten(&q);
        assert_eq!(s.chars().count(), MAX_QUERY_IN_ERROR + 1);
        assert!(s.ends_with('…'));
    }
}
