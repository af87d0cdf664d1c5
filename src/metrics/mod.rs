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
