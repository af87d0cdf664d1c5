//! Direct scrapes of Prometheus `/metrics` endpoints (text format 0.0.4, and the OpenMetrics
//! text most clients also serve), without a Prometheus server: parse the exposition, select
//! series by label, and build a version's cumulative [`VersionCounters`].
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use super::counters::{CumulativeHistogram, VersionCounters, format_le, parse_le};

/// Longest response body or line quoted in an error.
const MAX_TEXT_IN_ERROR: usize = 200;

/// How a label selects series. A missing label compares as the empty string, as in PromQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelMatch {
    /// The label has exactly this value.
    Equal(String),
    /// The label does not have this value.
    NotEqual(String),
    /// The label value starts with this text: `Prefix("5")` selects status codes 5xx.
    Prefix(String),
}

impl LabelMatch {
    /// Whether `value` (the empty string for a missing label) is selected.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            LabelMatch::Equal(v) => value == v,
            LabelMatch::NotEqual(v) => value != v,
            LabelMatch::Prefix(p) => value.starts_with(p.as_str()),
        }
    }
}

impl fmt::Display for LabelMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelMatch::Equal(v) => write!(f, "={v:?}"),
            LabelMatch::NotEqual(v) => write!(f, "!={v:?}"),
            LabelMatch::Prefix(p) => write!(f, "=~\"{}.*\"", p.escape_default()),
        }
    }
}

/// What kind of sample a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// A `# TYPE … counter` sample.
    Counter,
    /// A `# TYPE … gauge` sample.
    Gauge,
    /// No (or an unknown) type; also histogram/summary `_sum` and `_count`.
    Untyped,
    /// A `_bucket` sample of a `# TYPE … histogram` family; its labels include `le`.
    HistogramBucket,
    /// A quantile of a `# TYPE … summary` family; its labels include `quantile`.
    SummaryQuantile,
}

/// One sample of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpositionSample {
    /// The sample name as exposed (`http_requests_total`, `latency_seconds_bucket`, …).
    pub name: String,
    /// All labels, including `le` / `quantile`.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
    /// The kind.
    pub kind: SampleKind,
}

/// A parsed `/metrics` exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    samples: Vec<ExpositionSample>,
}

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
        /// The URL, or `exposition text` for [`parse_exposition`].
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

/// Parses exposition text (Prometheus text format 0.0.4 or OpenMetrics text).
///
/// # Errors
/// [`ScrapeError::Parse`] for the first malformed line: a bad metric or label name, unbalanced
/// braces or quotes, an invalid escape, a value or timestamp that is not a number, a repeated
/// label or series, or a histogram bucket / summary quantile without a valid `le` / `quantile`.
pub fn parse_exposition(text: &str) -> Result<Exposition, ScrapeError> {
    const ORIGIN: &str = "exposition text";
    let parse_error = |line: usize, message: String| ScrapeError::Parse {
        origin: ORIGIN.to_string(),
        line,
        message,
    };

    let mut types: HashMap<String, SampleKind> = HashMap::new();
    let mut histograms: HashSet<String> = HashSet::new();
    let mut summaries: HashSet<String> = HashSet::new();
    let mut seen: HashSet<(String, Vec<(String, String)>)> = HashSet::new();
    let mut normalised = String::with_capacity(text.len());
    let mut direct: Vec<ExpositionSample> = Vec::new();

    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw_line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    return Err(parse_error(
                        number,
                        format!("incomplete TYPE line {}", quote(line)),
                    ));
                };
                match kind {
                    "counter" => {
                        types.insert(name.to_string(), SampleKind::Counter);
                    }
                    "gauge" => {
                        types.insert(name.to_string(), SampleKind::Gauge);
                    }
                    "histogram" => {
                        histograms.insert(name.to_string());
                    }
                    "summary" => {
                        summaries.insert(name.to_string());
                    }
                    _ => {}
                }
                normalised.push_str(line);
                normalised.push('\n');
            }
            continue;
        }

        let sample = tokenize_sample(line)
            .map_err(|m| parse_error(number, format!("{m} in {}", quote(line))))?;
        let mut key_labels: Vec<(String, String)> = sample.labels.clone();
        key_labels.sort();
        if !seen.insert((sample.name.to_string(), key_labels)) {
            return Err(parse_error(
                number,
                format!("duplicate series {}", quote(line)),
            ));
        }
        let label = |name: &str| {
            sample
                .labels
                .iter()
                .find(|l| l.0 == name)
                .map(|l| l.1.as_str())
        };
        let bucket_family = sample
            .name
            .strip_suffix("_bucket")
            .filter(|family| histograms.contains(*family));
        if bucket_family.is_some() {
            match label("le") {
                Some(le) if parse_le(le).is_ok() => {}
                Some(le) => {
                    return Err(parse_error(
                        number,
                        format!("histogram bucket bound le={le:?} is not a number"),
                    ));
                }
                None => {
                    return Err(parse_error(
                        number,
                        format!("histogram bucket without an le label: {}", quote(line)),
                    ));
                }
            }
        }
        if summaries.contains(sample.name) {
            match label("quantile").map(parse_float) {
                Some(Ok(_)) => {}
                _ => {
                    return Err(parse_error(
                        number,
                        format!("summary sample without a numeric quantile: {}", quote(line)),
                    ));
                }
            }
        }

        if sample.name.contains(':') {
            // prometheus-parse cannot read these names; keep the tokenizer's reading.
            let kind = if bucket_family.is_some() {
                SampleKind::HistogramBucket
            } else if summaries.contains(sample.name) {
                SampleKind::SummaryQuantile
            } else {
                types
                    .get(sample.name)
                    .copied()
                    .unwrap_or(SampleKind::Untyped)
            };
            direct.push(ExpositionSample {
                name: sample.name.to_string(),
                labels: sample.labels.into_iter().collect(),
                value: sample.value,
                kind,
            });
            continue;
        }
        normalised.push_str(sample.name);
        if !sample.labels.is_empty() {
            normalised.push('{');
            for (i, (name, value)) in sample.labels.iter().enumerate() {
                if i > 0 {
                    normalised.push(',');
                }
                normalised.push_str(name);
                normalised.push_str("=\"");
                percent_encode(&mut normalised, value);
                normalised.push('"');
            }
            normalised.push('}');
        }
        normalised.push(' ');
        normalised.push_str(&format!("{}", sample.value));
        normalised.push('\n');
    }

    let scrape = prometheus_parse::Scrape::parse(normalised.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| parse_error(0, e.to_string()))?;
    let mut samples = Vec::with_capacity(scrape.samples.len() + direct.len());
    for s in scrape.samples {
        let labels: BTreeMap<String, String> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), percent_decode(v)))
            .collect();
        match s.value {
            prometheus_parse::Value::Counter(v) => {
                samples.push(simple(s.metric, labels, v, SampleKind::Counter))
            }
            prometheus_parse::Value::Gauge(v) => {
                samples.push(simple(s.metric, labels, v, SampleKind::Gauge))
            }
            prometheus_parse::Value::Untyped(v) => {
                samples.push(simple(s.metric, labels, v, SampleKind::Untyped))
            }
            prometheus_parse::Value::Histogram(buckets) => {
                let name = format!("{}_bucket", s.metric);
                for b in buckets {
                    let mut labels = labels.clone();
                    labels.insert("le".to_string(), format_le(b.less_than));
                    samples.push(simple(
                        name.clone(),
                        labels,
                        b.count,
                        SampleKind::HistogramBucket,
                    ));
                }
            }
            prometheus_parse::Value::Summary(quantiles) => {
                for q in quantiles {
                    let mut labels = labels.clone();
                    labels.insert("quantile".to_string(), format!("{}", q.quantile));
                    samples.push(simple(
                        s.metric.clone(),
                        labels,
                        q.count,
                        SampleKind::SummaryQuantile,
                    ));
                }
            }
        }
    }
    samples.extend(direct);
    Ok(Exposition { samples })
}

fn simple(
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    kind: SampleKind,
) -> ExpositionSample {
    ExpositionSample {
        name,
        labels,
        value,
        kind,
    }
}

fn selects(labels: &BTreeMap<String, String>, matchers: &[(&str, LabelMatch)]) -> bool {
    matchers
        .iter()
        .all(|(name, m)| m.matches(labels.get(*name).map_or("", String::as_str)))
}

/// `metric{a="b",c!="d"}`.
fn selector(metric: &str, matchers: &[(&str, LabelMatch)]) -> String {
    let inner: Vec<String> = matchers.iter().map(|(n, m)| format!("{n}{m}")).collect();
    format!("{metric}{{{}}}", inner.join(","))
}

fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    /// All samples, histogram buckets and summary quantiles one per line as exposed.
    pub fn samples(&self) -> &[ExpositionSample] {
        &self.samples
    }

    /// Sum of the counter, gauge and untyped series named `metric` that match all `matchers`;
    /// `None` if none matched.
    pub fn sum(&self, metric: &str, matchers: &[(&str, LabelMatch)]) -> Option<f64> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == metric
                    && matches!(
                        s.kind,
                        SampleKind::Counter | SampleKind::Gauge | SampleKind::Untyped
                    )
                    && selects(&s.labels, matchers)
            })
            .fold(None, |acc, s| Some(acc.unwrap_or(0.0) + s.value))
    }

    /// The histogram family `metric` (its `_bucket`, `_sum` and `_count` series) summed bucket
    /// by bucket over the label sets matching `matchers` (`le` is not matched); `Ok(None)` if none
    /// matched. Buckets of an untyped family (no `# TYPE` line) are accepted too.
    ///
    /// # Errors
    /// [`ScrapeError::Histogram`] when a matched series lacks `+Inf` or `_sum`, repeats a bound,
    /// or when matched series have different bucket bounds.
    pub fn histogram(
        &self,
        metric: &str,
        matchers: &[(&str, LabelMatch)],
    ) -> Result<Option<CumulativeHistogram>, ScrapeError> {
        let histogram_error = |message: String| ScrapeError::Histogram {
            metric: metric.to_string(),
            message,
        };
        let bucket_name = format!("{metric}_bucket");
        let sum_name = format!("{metric}_sum");
        let count_name = format!("{metric}_count");

        // Label set without `le` → (le, cumulative count).
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in &self.samples {
            if s.name != bucket_name
                || !matches!(s.kind, SampleKind::HistogramBucket | SampleKind::Untyped)
            {
                continue;
            }
            let mut labels = s.labels.clone();
            let Some(le) = labels.remove("le") else {
                continue;
            };
            if !selects(&labels, matchers) {
                continue;
            }
            let le = parse_le(&le).map_err(|e| histogram_error(e.to_string()))?;
            series.entry(labels).or_default().push((le, s.value));
        }
        let scalar = |name: &str, labels: &BTreeMap<String, String>| {
            self.samples
                .iter()
                .find(|s| {
                    s.name == name
                        && &s.labels == labels
                        && matches!(
                            s.kind,
                            SampleKind::Counter | SampleKind::Gauge | SampleKind::Untyped
                        )
                })
                .map(|s| s.value)
        };

        let mut total: Option<(BTreeMap<String, String>, CumulativeHistogram)> = None;
        for (labels, buckets) in series {
            let inf = buckets.iter().find(|b| b.0 == f64::INFINITY).map(|b| b.1);
            let count = scalar(&count_name, &labels).or(inf).unwrap_or(0.0);
            let sum = scalar(&sum_name, &labels).ok_or_else(|| {
                histogram_error(format!(
                    "series {} has no {sum_name}",
                    format_labels(&labels)
                ))
            })?;
            let h = CumulativeHistogram::new(buckets, sum, count)
                .map_err(|e| histogram_error(format!("series {}: {e}", format_labels(&labels))))?;
            total = Some(match total {
                None => (labels, h),
                Some((first_labels, mut acc)) => {
                    let same_bounds = acc.buckets.len() == h.buckets.len()
                        && acc.buckets.iter().zip(&h.buckets).all(|(a, b)| a.0 == b.0);
                    if !same_bounds {
                        return Err(histogram_error(format!(
                            "matched series have different bucket bounds: {} has {:?}, {} has {:?}",
                            format_labels(&first_labels),
                            acc.bounds(),
                            format_labels(&labels),
                            h.bounds()
                        )));
                    }
                    for (a, b) in acc.buckets.iter_mut().zip(&h.buckets) {
                        a.1 += b.1;
                    }
                    acc.sum += h.sum;
                    acc.count += h.count;
                    (first_labels, acc)
                }
            });
        }
        Ok(total.map(|(_, h)| h))
    }

    /// A version's cumulative counters: `requests` = [`Exposition::sum`] of `requests` over
    /// `matchers`; `errors` = the same sum with `error_matchers` added (0 when no series
    /// matches: error series often appear only after the first error); `latency` = the
    /// [`Exposition::histogram`] `latency` over `matchers`.
    ///
    /// # Errors
    /// [`ScrapeError::NoSeries`] when no request series (or, if asked for, no latency series)
    /// matches; histogram errors as [`Exposition::histogram`].
    pub fn version_counters(
        &self,
        requests: &str,
        error_matchers: &[(&str, LabelMatch)],
        latency: Option<&str>,
        matchers: &[(&str, LabelMatch)],
    ) -> Result<VersionCounters, ScrapeError> {
        let request_total = self
            .sum(requests, matchers)
            .ok_or_else(|| ScrapeError::NoSeries {
                metric: requests.to_string(),
                selector: selector(requests, matchers),
            })?;
        let error_selection: Vec<(&str, LabelMatch)> =
            matchers.iter().chain(error_matchers).cloned().collect();
        let errors = self.sum(requests, &error_selection).unwrap_or(0.0);
        let latency = match latency {
            None => None,
            Some(name) => {
                Some(
                    self.histogram(name, matchers)?
                        .ok_or_else(|| ScrapeError::NoSeries {
                            metric: name.to_string(),
                            selector: selector(&format!("{name}_bucket"), matchers),
                        })?,
                )
            }
        };
        Ok(VersionCounters {
            requests: request_total,
            errors,
            latency,
        })
    }
}

/// Scrapes `/metrics` endpoints over HTTP(S).
#[derive(Debug, Clone)]
pub struct Scraper {
    client: reqwest::Client,
    timeout: Duration,
}

impl Scraper {
    /// A scraper whose requests (connect, send, read the body) time out after `timeout`. TLS
    /// uses the system roots (see the `prometheus` module); the `ring` rustls provider is
    /// installed if none is.
    ///
    /// # Errors
    /// [`ScrapeError::Config`] when the HTTP client cannot be built.
    pub fn new(timeout: Duration) -> Result<Self, ScrapeError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .user_agent(concat!("canary-gate/", env!("CARGO_PKG_VERSION")))
        };
        let client = builder()
            .build()
            // Without a system CA bundle, plain-http scrapes still work.
            .or_else(|_| builder().tls_certs_only(Vec::new()).build())
            .map_err(|e| ScrapeError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, timeout })
    }

    /// Fetches `url` and parses the exposition.
    ///
    /// # Errors
    /// [`ScrapeError::Unreachable`], [`ScrapeError::Timeout`], [`ScrapeError::Status`] for a
    /// non-2xx answer, or [`ScrapeError::Parse`] naming the URL.
    pub async fn scrape(&self, url: &str) -> Result<Exposition, ScrapeError> {
        let shown = display_url(url);
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ScrapeError::Config(format!("invalid metrics URL {shown}: {e}")))?;
        let transport = |e: reqwest::Error| {
            let e = e.without_url();
            if e.is_timeout() {
                ScrapeError::Timeout {
                    url: shown.clone(),
                    timeout: self.timeout,
                }
            } else {
                ScrapeError::Unreachable {
                    url: shown.clone(),
                    detail: error_chain(&e),
                }
            }
        };
        tracing::debug!(url = %shown, "scraping");
        let response = self
            .client
            .get(parsed)
            .header(
                reqwest::header::ACCEPT,
                "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5,*/*;q=0.1",
            )
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ScrapeError::Status {
                url: shown,
                status: status.as_u16(),
                body: truncate(&String::from_utf8_lossy(&body)),
            });
        }
        let text = std::str::from_utf8(&body).map_err(|e| ScrapeError::Parse {
            origin: shown.clone(),
            line: 0,
            message: format!("body is not UTF-8 text: {e}"),
        })?;
        parse_exposition(text).map_err(|e| match e {
            ScrapeError::Parse { line, message, .. } => ScrapeError::Parse {
                origin: shown.clone(),
                line,
                message,
            },
            other => other,
        })
    }
}

/// The URL with any password hidden.
fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("[redacted]"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => url.to_string(),
    }
}

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

fn truncate(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_TEXT_IN_ERROR) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn quote(line: &str) -> String {
    format!("{:?}", truncate(line))
}

/// One sample line as the tokenizer reads it.
struct TokenizedSample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: f64,
}

fn is_name_start(b: u8, colon: bool) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || (colon && b == b':')
}

fn is_name_char(b: u8, colon: bool) -> bool {
    is_name_start(b, colon) || b.is_ascii_digit()
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Reads `name[{label="value",…}] value [timestamp] [# exemplar]`.
fn tokenize_sample(line: &str) -> Result<TokenizedSample<'_>, String> {
    let bytes = line.as_bytes();
    let len = bytes.len();
    let mut i = 0;
    let skip_blanks = |i: &mut usize| {
        while *i < len && is_blank(bytes[*i]) {
            *i += 1;
        }
    };

    if i >= len || !is_name_start(bytes[i], true) {
        return Err("expected a metric name".to_string());
    }
    while i < len && is_name_char(bytes[i], true) {
        i += 1;
    }
    let name = &line[..i];
    let after_name = i;
    skip_blanks(&mut i);

    let mut labels: Vec<(String, String)> = Vec::new();
    if i >= len || bytes[i] != b'{' {
        i = after_name;
    } else {
        i += 1;
        loop {
            skip_blanks(&mut i);
            if i < len && bytes[i] == b'}' {
                i += 1;
                break;
            }
            let start = i;
            if i >= len || !is_name_start(bytes[i], false) {
                return Err("expected a label name or '}'".to_string());
            }
            while i < len && is_name_char(bytes[i], false) {
                i += 1;
            }
            let label = &line[start..i];
            skip_blanks(&mut i);
            if i >= len || bytes[i] != b'=' {
                return Err(format!("expected '=' after label {label}"));
            }
            i += 1;
            skip_blanks(&mut i);
            if i >= len || bytes[i] != b'"' {
                return Err(format!("expected '\"' to open the value of label {label}"));
            }
            i += 1;
            let mut value = String::new();
            let mut segment = i;
            loop {
                if i >= len {
                    return Err(format!("unterminated value of label {label}"));
                }
                match bytes[i] {
                    b'"' => {
                        value.push_str(&line[segment..i]);
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        value.push_str(&line[segment..i]);
                        match bytes.get(i + 1) {
                            Some(b'\\') => value.push('\\'),
                            Some(b'"') => value.push('"'),
                            Some(b'n') => value.push('\n'),
                            _ => {
                                return Err(format!(
                                    "invalid escape in the value of label {label}"
                                ));
                            }
                        }
                        i += 2;
                        segment = i;
                    }
                    _ => i += 1,
                }
            }
            if labels.iter().any(|(l, _)| l == label) {
                return Err(format!("label {label} appears twice"));
            }
            labels.push((label.to_string(), value));
            skip_blanks(&mut i);
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err("expected ',' or '}' after a label".to_string()),
            }
        }
    }

    let before_value = i;
    skip_blanks(&mut i);
    if i == before_value && i < len {
        return Err("expected a blank before the value".to_string());
    }
    let start = i;
    while i < len && !is_blank(bytes[i]) {
        i += 1;
    }
    if start == i {
        return Err("missing value".to_string());
    }
    let value = parse_float(&line[start..i])
        .map_err(|_| format!("value {:?} is not a number", &line[start..i]))?;
    skip_blanks(&mut i);
    if i < len && bytes[i] != b'#' {
        let start = i;
        while i < len && !is_blank(bytes[i]) {
            i += 1;
        }
        let ts = &line[start..i];
        if parse_float(ts).map(f64::is_finite) != Ok(true) {
            return Err(format!("timestamp {ts:?} is not a number"));
        }
        skip_blanks(&mut i);
        if i < len && bytes[i] != b'#' {
            return Err(format!(
                "unexpected text {:?} after the timestamp",
                &line[i..]
            ));
        }
    }
    // Anything from `#` on is an OpenMetrics exemplar, ignored.
    Ok(TokenizedSample {
        name,
        labels,
        value,
    })
}

/// Parses a value as Go's `strconv.ParseFloat` writes them in expositions.
fn parse_float(text: &str) -> Result<f64, ()> {
    match text.to_ascii_lowercase().as_str() {
        "nan" => Ok(f64::NAN),
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        other => {
            if other.is_empty()
                || !other
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
            {
                return Err(());
            }
            other.parse::<f64>().map_err(|_| ())
        }
    }
}

/// Percent-encodes the characters `prometheus-parse` would misread inside a label value.
fn percent_encode(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '%' | ',' | '=' | '{' | '}' | '"' | '\\' | ' ' | '\t' => {
                out.push_str(&format!("%{:02X}", c as u32))
            }
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::counters::counter_delta;

    const TEXT: &str = r#"
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{version="stable",code="200"} 1000
http_requests_total{version="stable",code="503"} 10
http_requests_total{version="canary",code="200"} 90 1700000000000
http_requests_total{version="canary",code="500"} 7
http_requests_total{version="canary",code="404"} 3
# TYPE latency_seconds histogram
latency_seconds_bucket{version="canary",le="0.1"} 50
latency_seconds_bucket{version="canary",le="0.5"} 95
latency_seconds_bucket{version="canary",le="+Inf"} 100
latency_seconds_sum{version="canary"} 12.5
latency_seconds_count{version="canary"} 100
latency_seconds_bucket{version="stable",le="0.1"} 900
latency_seconds_bucket{version="stable",le="0.5"} 1000
latency_seconds_bucket{version="stable",le="+Inf"} 1010
latency_seconds_sum{version="stable"} 80
latency_seconds_count{version="stable"} 1010
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 0.2
rpc_duration_seconds_sum 10
rpc_duration_seconds_count 50
queue_depth 4
"#;

    fn eq(v: &str) -> LabelMatch {
        LabelMatch::Equal(v.to_string())
    }

    #[test]
    fn counters_are_summed_by_label_selection() {
        let e = parse_exposition(TEXT).unwrap();
        assert_eq!(e.sum("http_requests_total", &[]), Some(1110.0));
        assert_eq!(
            e.sum("http_requests_total", &[("version", eq("canary"))]),
            Some(100.0)
        );
        assert_eq!(
            e.sum(
                "http_requests_total",
                &[
                    ("version", eq("canary")),
                    ("code", LabelMatch::Prefix("5".into()))
                ]
            ),
            Some(7.0)
        );
        assert_eq!(
            e.sum(
                "http_requests_total",
                &[("code", LabelMatch::NotEqual("200".into()))]
            ),
            Some(20.0)
        );
        assert_eq!(
            e.sum("http_requests_total", &[("version", eq("nope"))]),
            None
        );
        assert_eq!(e.sum("queue_depth", &[]), Some(4.0));
        assert_eq!(e.sum("missing", &[]), None);
        // Summary quantiles are not summable; its _sum/_count are untyped samples.
        assert_eq!(e.sum("rpc_duration_seconds", &[]), None);
        assert_eq!(e.sum("rpc_duration_seconds_count", &[]), Some(50.0));
    }

    #[test]
    fn sample_kinds_follow_the_type_lines() {
        let e = parse_exposition(TEXT).unwrap();
        let kind = |name: &str| e.samples().iter().find(|s| s.name == name).unwrap().kind;
        assert_eq!(kind("http_requests_total"), SampleKind::Counter);
        assert_eq!(kind("latency_seconds_bucket"), SampleKind::HistogramBucket);
        assert_eq!(kind("latency_seconds_sum"), SampleKind::Untyped);
        assert_eq!(kind("rpc_duration_seconds"), SampleKind::SummaryQuantile);
        assert_eq!(kind("queue_depth"), SampleKind::Untyped);
        assert_eq!(e.samples().len(), 5 + 6 + 4 + 3 + 1);
    }

    #[test]
    fn histograms_are_summed_bucket_by_bucket() {
        let e = parse_exposition(TEXT).unwrap();
        let canary = e
            .histogram("latency_seconds", &[("version", eq("canary"))])
            .unwrap()
            .unwrap();
        assert_eq!(
            canary.buckets,
            vec![(0.1, 50.0), (0.5, 95.0), (f64::INFINITY, 100.0)]
        );
        assert_eq!((canary.sum, canary.count), (12.5, 100.0));
        let all = e.histogram("latency_seconds", &[]).unwrap().unwrap();
        assert_eq!(
            all.buckets,
            vec![(0.1, 950.0), (0.5, 1095.0), (f64::INFINITY, 1110.0)]
        );
        assert_eq!((all.sum, all.count), (92.5, 1110.0));
        assert_eq!(
            e.histogram("latency_seconds", &[("version", eq("x"))])
                .unwrap(),
            None
        );
    }

    #[test]
    fn histograms_with_different_bounds_are_an_error() {
        let text = "# TYPE h histogram\n\
                    h_bucket{pod=\"a\",le=\"0.1\"} 1\nh_bucket{pod=\"a\",le=\"+Inf\"} 2\nh_sum{pod=\"a\"} 1\nh_count{pod=\"a\"} 2\n\
                    h_bucket{pod=\"b\",le=\"0.2\"} 1\nh_bucket{pod=\"b\",le=\"+Inf\"} 2\nh_sum{pod=\"b\"} 1\nh_count{pod=\"b\"} 2\n";
        let e = parse_exposition(text).unwrap();
        let err = e.histogram("h", &[]).unwrap_err();
        assert_eq!(err.category(), "histogram");
        let msg = err.to_string();
        assert!(
            msg.contains("different bucket bounds") && msg.contains("pod=\"b\""),
            "{msg}"
        );
        assert!(e.histogram("h", &[("pod", eq("b"))]).unwrap().is_some());
    }

    #[test]
    fn untyped_histograms_and_colon_names_are_read() {
        let text = "h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 4\nh_sum 2.5\nh_count 4\n\
                    job:requests:rate5m{job=\"a\"} 1.5\n";
        let e = parse_exposition(text).unwrap();
        let h = e.histogram("h", &[]).unwrap().unwrap();
        assert_eq!(h.buckets, vec![(1.0, 3.0), (f64::INFINITY, 4.0)]);
        assert_eq!(e.sum("job:requests:rate5m", &[("job", eq("a"))]), Some(1.5));
    }

    #[test]
    fn label_values_with_commas_quotes_and_escapes_survive() {
        let text = r#"req_total{path="/a,b=c",ua="say \"hi\"",x="back\\slash\nnew{}",e=""} 2"#;
        let e = parse_exposition(text).unwrap();
        let s = &e.samples()[0];
        assert_eq!(s.labels["path"], "/a,b=c");
        assert_eq!(s.labels["ua"], "say \"hi\"");
        assert_eq!(s.labels["x"], "back\\slash\nnew{}");
        assert_eq!(s.labels["e"], "");
        assert_eq!(s.labels.len(), 4);
        assert_eq!(e.sum("req_total", &[("path", eq("/a,b=c"))]), Some(2.0));
    }

    #[test]
    fn openmetrics_text_is_accepted() {
        let text = "# TYPE foo counter\nfoo_total{a=\"b\"} 3 1700000000.123 # {trace_id=\"x\"} 1\nfoo_created{a=\"b\"} 1700000000\n\
                    empty{} 1\nspecial NaN\ninf +Inf\n# EOF\n";
        let e = parse_exposition(text).unwrap();
        assert_eq!(e.sum("foo_total", &[]), Some(3.0));
        assert_eq!(e.sum("empty", &[]), Some(1.0));
        assert!(e.sum("special", &[]).unwrap().is_nan());
        assert_eq!(e.sum("inf", &[]), Some(f64::INFINITY));
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let cases = [
            ("ok 1\nbad{a=\"b\" 1\n", 2),
            ("x{a=\"b\"} one\n", 1),
            ("x{a=b} 1\n", 1),
            ("x{a=\"unterminated} 1\n", 1),
            ("x 1 2 3\n", 1),
            ("x\n", 1),
            ("{a=\"b\"} 1\n", 1),
            ("x{a=\"\\q\"} 1\n", 1),
            ("x{a=\"1\",a=\"2\"} 1\n", 1),
            ("x 1\nx 2\n", 2),
            ("# TYPE h histogram\nh_bucket{x=\"1\"} 3\n", 2),
            ("# TYPE h histogram\nh_bucket{le=\"abc\"} 3\n", 2),
            ("# TYPE s summary\ns 3\n", 2),
            ("<html>oops</html>\n", 1),
        ];
        for (text, line) in cases {
            match parse_exposition(text) {
                Err(ScrapeError::Parse {
                    line: l, origin, ..
                }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert_eq!(origin, "exposition text");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn version_counters_combine_requests_errors_and_latency() {
        let e = parse_exposition(TEXT).unwrap();
        let v = e
            .version_counters(
                "http_requests_total",
                &[("code", LabelMatch::Prefix("5".into()))],
                Some("latency_seconds"),
                &[("version", eq("canary"))],
            )
            .unwrap();
        assert_eq!((v.requests, v.errors), (100.0, 7.0));
        assert_eq!(v.latency.unwrap().count, 100.0);
        let err = e
            .version_counters(
                "http_requests_total",
                &[],
                None,
                &[("version", eq("other"))],
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no series of http_requests_total matches http_requests_total{version=\"other\"}"
        );
    }

    #[test]
    fn two_scrapes_with_a_counter_reset_give_the_right_delta() {
        let selection = [("version", eq("canary"))];
        let first = parse_exposition(TEXT)
            .unwrap()
            .version_counters(
                "http_requests_total",
                &[("code", LabelMatch::Prefix("5".into()))],
                Some("latency_seconds"),
                &selection,
            )
            .unwrap();
        // The canary pod restarted: its counters began again from zero.
        let after_restart = r#"
# TYPE http_requests_total counter
http_requests_total{version="canary",code="200"} 18
http_requests_total{version="canary",code="500"} 2
# TYPE latency_seconds histogram
latency_seconds_bucket{version="canary",le="0.1"} 10
latency_seconds_bucket{version="canary",le="0.5"} 19
latency_seconds_bucket{version="canary",le="+Inf"} 20
latency_seconds_sum{version="canary"} 3
latency_seconds_count{version="canary"} 20
"#;
        let second = parse_exposition(after_restart)
            .unwrap()
            .version_counters(
                "http_requests_total",
                &[("code", LabelMatch::Prefix("5".into()))],
                Some("latency_seconds"),
                &selection,
            )
            .unwrap();
        assert_eq!(counter_delta(first.requests, second.requests), 20.0);
        let counts = second.counts_since(Some(&first));
        assert_eq!(counts, crate::analysis::Counts::new(2.0, 20.0));
        let latency = second
            .latency
            .as_ref()
            .unwrap()
            .delta(first.latency.as_ref())
            .unwrap();
        assert_eq!(latency.counts, vec![10.0, 9.0, 1.0]);

        // Without a reset the delta is the difference.
        let later = VersionCounters {
            requests: 50.0,
            errors: 5.0,
            latency: None,
        };
        assert_eq!(
            later.counts_since(Some(&second)),
            crate::analysis::Counts::new(3.0, 30.0)
        );
    }

    #[test]
    fn percent_encoding_round_trips() {
        for v in ["", "plain", "%41", "a,b=c{d}\"e\\f g\th\n", "ünïcode ✓"] {
            let mut enc = String::new();
            percent_encode(&mut enc, v);
            assert!(!enc.contains([',', '=', '"', '{', '}', ' ']), "{enc}");
            assert_eq!(percent_decode(&enc), v);
        }
    }
}
