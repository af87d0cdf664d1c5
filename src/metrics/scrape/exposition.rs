//! A parsed exposition and its queries: series selection by label, sums, histograms, counters.

use std::collections::BTreeMap;
use std::fmt;

use super::error::ScrapeError;
use crate::metrics::counters::{CumulativeHistogram, VersionCounters, parse_le};

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
    pub(super) samples: Vec<ExpositionSample>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::counters::counter_delta;
    use crate::metrics::scrape::parse_exposition;

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
}
