//! Direct scrapes of Prometheus `/metrics` endpoints (text format 0.0.4, and the OpenMetrics
//! text most clients also serve), without a Prometheus server: parse the exposition, select
//! series by label, and build a version's cumulative
//! [`VersionCounters`](crate::metrics::counters::VersionCounters).
//!
//! # Parsing
//! The samples come from the `prometheus-parse` crate, which represents a counter, gauge or
//! untyped line as one sample named as written (OpenMetrics `foo_total` under `# TYPE foo counter`
//! is therefore *untyped*), groups the `_bucket` lines of a `# TYPE … histogram` family into one
//! histogram value per label set (named after the family, `le` removed from the labels), groups
//! summary quantiles likewise, and leaves `_sum` / `_count` as untyped samples. It is lenient
//! to a fault: a line it cannot read is silently skipped, label values are split on `,` and `=`
//! without honouring quotes or escapes, and names with `:` are not recognised. So every line is
//! first checked by a strict tokenizer here (a malformed line is a [`ScrapeError::Parse`] with
//! its line number), and the text handed to `prometheus-parse` is normalised: one
//! `name{label="value",…} value` per sample, label values percent-encoded so that quotes,
//! commas, braces and escapes survive (and decoded afterwards). Samples of names containing `:`
//! (recording-rule style, which `prometheus-parse` cannot read) are taken from the tokenizer
//! directly. Timestamps and OpenMetrics exemplars are accepted and ignored.

mod error;
mod exposition;
mod parse;
mod scraper;
mod tokenize;

pub use error::ScrapeError;
pub use exposition::{Exposition, ExpositionSample, LabelMatch, SampleKind};
pub use parse::parse_exposition;
pub use scraper::Scraper;
