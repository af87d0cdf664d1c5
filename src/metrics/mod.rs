//! Metric sources: where observations come from (Prometheus, direct scrapes of `/metrics`, the
//! recorded stream), turned into the judge's per-interval samples.

pub mod counters;
pub mod prometheus;
pub mod prometheus_source;
pub mod query;
pub mod recorded;
pub mod scrape;

/// Errors of metric sources.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A histogram is malformed or changed its buckets.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// A recorded-stream line is not valid.
    #[error("line {line}: {message}")]
    Stream {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// An error and its sources as one line, `error: cause: cause …`, skipping a cause whose text
/// the message already ends with.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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
