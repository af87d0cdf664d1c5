//! Errors of direct scrapes, and the shortened quotes of bodies and lines they carry.

use std::time::Duration;

/// Longest response body or line quoted in an error.
const MAX_TEXT_IN_ERROR: usize = 200;

/// Errors of direct scrapes. Each names the URL or metric concerned.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The HTTP client cannot be built, or the URL is not usable.
    #[error("scrape configuration: {0}")]
    Config(String),
    /// The endpoint could not be reached (refused, DNS, reset, TLS).
    #[error("metrics endpoint {url} is unreachable: {detail}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The transport error chain.
        detail: String,
    },
    /// The scrape took longer than the timeout.
    #[error("scraping {url} timed out after {}", humantime::format_duration(*timeout))]
    Timeout {
        /// The endpoint.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The endpoint answered with a non-2xx status.
    #[error("metrics endpoint {url} answered HTTP {status}: {body}")]
    Status {
        /// The endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// The exposition text is malformed.
    #[error("cannot parse metrics from {origin}: line {line}: {message}")]
    Parse {
        /// The URL, or `exposition text` for [`parse_exposition`](super::parse_exposition).
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, quoting the line.
        message: String,
    },
    /// A histogram is incomplete or its matched series disagree on bucket bounds.
    #[error("histogram {metric}: {message}")]
    Histogram {
        /// The histogram family name.
        metric: String,
        /// What is wrong.
        message: String,
    },
    /// No series of the metric matched the selector.
    #[error("no series of {metric} matches {selector}")]
    NoSeries {
        /// The metric.
        metric: String,
        /// The selector, PromQL style.
        selector: String,
    },
}

impl ScrapeError {
    /// A stable short name for metrics labels: `config`, `unreachable`, `timeout`, `status`,
    /// `parse`, `histogram` or `no_series`.
    pub fn category(&self) -> &'static str {
        match self {
            ScrapeError::Config(_) => "config",
            ScrapeError::Unreachable { .. } => "unreachable",
            ScrapeError::Timeout { .. } => "timeout",
            ScrapeError::Status { .. } => "status",
            ScrapeError::Parse { .. } => "parse",
            ScrapeError::Histogram { .. } => "histogram",
            ScrapeError::NoSeries { .. } => "no_series",
        }
    }
}

pub(super) fn truncate(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_TEXT_IN_ERROR) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

pub(super) fn quote(line: &str) -> String {
    format!("{:?}", truncate(line))
}
