//! Template queries: resolving arguments, rendering placeholders, and turning query results
//! grouped by the version label into the judge's per-version samples. Pure: no I/O.
//!
//! Placeholders: `{{args.NAME}}`, `{{interval}}` (the template's interval as a PromQL duration),
//! `{{versionLabel}}`, `{{stable}}` and `{{canary}}` (the version label values).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::analysis::{Counts, Histogram, Method, MetricKind, MetricSample};
use crate::template::Template;
use crate::template::spec::ArgSpec;

use super::counters::parse_le;

/// Errors preparing or mapping queries.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    /// An argument was given that the template does not declare.
    #[error("argument {name:?} is not declared by the template (declared: {declared})")]
    UnknownArg {
        /// The argument.
        name: String,
        /// What the template declares.
        declared: String,
    },
    /// Required arguments are missing.
    #[error("missing required template arguments: {}; give them as --arg NAME=VALUE", .0.join(", "))]
    MissingArgs(Vec<String>),
    /// An argument is not `NAME=VALUE`.
    #[error("argument {0:?} is not NAME=VALUE")]
    ArgSyntax(String),
    /// A query uses a placeholder that does not exist.
    #[error(
        "metric {metric:?}, query.{field}: unknown placeholder {{{{{placeholder}}}}}; use args.NAME, interval, versionLabel, stable or canary"
    )]
    Placeholder {
        /// Metric name.
        metric: String,
        /// Query field.
        field: &'static str,
        /// The placeholder text.
        placeholder: String,
    },
    /// A query has an unclosed `{{`.
    #[error("metric {metric:?}, query.{field}: unclosed '{{{{'")]
    Unclosed {
        /// Metric name.
        metric: String,
        /// Query field.
        field: &'static str,
    },
    /// A metric has no query (it can only be used with recorded streams).
    #[error("metric {metric:?} has no query; add query.{needed} to read it from Prometheus")]
    NoQuery {
        /// Metric name.
        metric: String,
        /// The field(s) to add.
        needed: &'static str,
    },
}

/// Parses `NAME=VALUE` command-line arguments.
///
/// # Errors
/// When one has no `=`.
pub fn parse_args(args: &[String]) -> Result<Vec<(String, String)>, QueryError> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| QueryError::ArgSyntax(a.clone()))
        })
        .collect()
}

/// Resolves given arguments against the template's declarations: defaults fill in, unknown ones
/// and all missing required ones are reported.
///
/// # Errors
/// On an undeclared argument or missing required ones.
pub fn resolve_args(
    declared: &[ArgSpec],
    given: &[(String, String)],
) -> Result<BTreeMap<String, String>, QueryError> {
    let mut out = BTreeMap::new();
    for (name, value) in given {
        if !declared.iter().any(|a| &a.name == name) {
            return Err(QueryError::UnknownArg {
                name: name.clone(),
                declared: if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        }
        out.insert(name.clone(), value.clone());
    }
    let mut missing = Vec::new();
    for arg in declared {
        if !out.contains_key(&arg.name) {
            match &arg.default {
                Some(d) => {
                    out.insert(arg.name.clone(), d.clone());
                }
                None => missing.push(arg.name.clone()),
            }
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(QueryError::MissingArgs(missing))
    }
}

/// Stand-in values for a template's required arguments (`__NAME__`, valid inside label values
/// and metric names), so that `template lint` can render queries without real values.
pub fn lint_args(template: &Template) -> Vec<(String, String)> {
    template
        .file
        .spec
        .args
        .iter()
        .filter(|a| a.default.is_none())
        .map(|a| (a.name.clone(), format!("__{}__", a.name)))
        .collect()
}

/// Formats a duration the way PromQL range selectors write it (`1m`, `30s`, `1500ms`).
pub fn promql_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// What is substituted into queries.
#[derive(Debug, Clone, PartialEq)]
pub struct Bindings {
    /// Resolved arguments.
    pub args: BTreeMap<String, String>,
    /// `{{interval}}`.
    pub interval: String,
    /// The version label.
    pub version_label: String,
    /// Its value on the stable version.
    pub stable: String,
    /// Its value on the canary.
    pub canary: String,
}

impl Bindings {
    /// Bindings for a template with resolved arguments; the version values may use
    /// `{{args.NAME}}` too (e.g. `{{args.deployment}}-canary`).
    ///
    /// # Errors
    /// When a version value uses an unknown placeholder.
    pub fn new(template: &Template, args: BTreeMap<String, String>) -> Result<Self, QueryError> {
        let spec = &template.file.spec;
        let mut bindings = Self {
            args,
            interval: promql_duration(template.interval),
            version_label: spec
                .version_label
                .clone()
                .unwrap_or_else(|| "version".to_string()),
            stable: "stable".to_string(),
            canary: "canary".to_string(),
        };
        if let Some(v) = &spec.versions {
            let stable = bindings.render("(versions)", "stable", &v.stable)?;
            let canary = bindings.render("(versions)", "canary", &v.canary)?;
            bindings.stable = stable;
            bindings.canary = canary;
        }
        Ok(bindings)
    }

    /// Renders one query.
    ///
    /// # Errors
    /// On an unknown placeholder or an unclosed `{{`.
    pub fn render(
        &self,
        metric: &str,
        field: &'static str,
        query: &str,
    ) -> Result<String, QueryError> {
        let mut out = String::with_capacity(query.len());
        let mut rest = query;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(QueryError::Unclosed {
                    metric: metric.to_string(),
                    field,
                });
            };
            let name = after[..end].trim();
            let value = match name {
                "interval" => Some(&self.interval),
                "versionLabel" => Some(&self.version_label),
                "stable" => Some(&self.stable),
                "canary" => Some(&self.canary),
                _ => name.strip_prefix("args.").and_then(|a| self.args.get(a)),
            };
            match value {
                Some(v) => out.push_str(v),
                None => {
                    return Err(QueryError::Placeholder {
                        metric: metric.to_string(),
                        field,
                        placeholder: name.to_string(),
                    });
                }
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The rendered queries of one metric.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricQueries {
    /// Errors and requests per version.
    ErrorRate {
        /// Failed requests per version over the interval.
        errors: String,
        /// All requests per version over the interval.
        requests: String,
    },
    /// Histogram bucket increases per version and `le`.
    Latency {
        /// The bucket query.
        buckets: String,
    },
    /// One value per version.
    Value {
        /// The value query.
        value: String,
    },
}

impl MetricQueries {
    /// Whether no series at all from the query `field` means zero rather than missing data: an
    /// error counter appears only after the first error (see [`sample_for_metric`]).
    pub fn absent_means_zero(field: &str) -> bool {
        field == "errors"
    }

    /// `(field, query)` pairs.
    pub fn queries(&self) -> Vec<(&'static str, &str)> {
        match self {
            MetricQueries::ErrorRate { errors, requests } => {
                vec![("errors", errors), ("requests", requests)]
            }
            MetricQueries::Latency { buckets } => vec![("buckets", buckets)],
            MetricQueries::Value { value } => vec![("value", value)],
        }
    }
}

/// Renders every metric's queries.
///
/// # Errors
/// When a metric has no query, or a query has a bad placeholder.
pub fn render_template(
    template: &Template,
    bindings: &Bindings,
) -> Result<Vec<MetricQueries>, QueryError> {
    template
        .file
        .spec
        .metrics
        .iter()
        .map(|m| {
            let q = m.query.clone().unwrap_or_default();
            match (&q.errors, &q.requests, &q.buckets, &q.value) {
                (Some(e), Some(r), _, _) => Ok(MetricQueries::ErrorRate {
                    errors: bindings.render(&m.name, "errors", e)?,
                    requests: bindings.render(&m.name, "requests", r)?,
                }),
                (_, _, Some(b), _) => Ok(MetricQueries::Latency {
                    buckets: bindings.render(&m.name, "buckets", b)?,
                }),
                (_, _, _, Some(v)) => Ok(MetricQueries::Value {
                    value: bindings.render(&m.name, "value", v)?,
                }),
                _ => Err(QueryError::NoQuery {
                    metric: m.name.clone(),
                    needed: match m.kind {
                        crate::template::spec::KindSpec::ErrorRate => "errors and query.requests",
                        crate::template::spec::KindSpec::Latency => "buckets",
                        crate::template::spec::KindSpec::Value => "value",
                    },
                }),
            }
        })
        .collect()
}

/// One series' value at one time, with all its labels.
pub type LabeledValue = (BTreeMap<String, String>, f64);

/// Sums the values of series whose version label is `version`; `None` if no series has it.
pub fn sum_for_version(values: &[LabeledValue], label: &str, version: &str) -> Option<f64> {
    let matching: Vec<f64> = values
        .iter()
        .filter(|(labels, _)| labels.get(label).map(String::as_str) == Some(version))
        .map(|(_, v)| *v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Builds a version's per-interval histogram from bucket increases grouped by `le`
/// (cumulative in `le`, as `_bucket` series are). `Err` says why it cannot.
pub fn histogram_for_version(
    values: &[LabeledValue],
    label: &str,
    version: &str,
) -> Result<Histogram, String> {
    let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for (labels, v) in values {
        if labels.get(label).map(String::as_str) != Some(version) {
            continue;
        }
        let Some(le) = labels.get("le") else {
            return Err(format!(
                "a {version} series has no `le` label; group the bucket query by (le, {label})"
            ));
        };
        let le = parse_le(le).map_err(|e| e.to_string())?;
        let entry = by_le.entry(le.to_bits()).or_insert((le, 0.0));
        entry.1 += v;
    }
    let mut buckets: Vec<(f64, f64)> = by_le.into_values().collect();
    if buckets.is_empty() {
        return Err(format!("no {version} series"));
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
        return Err(format!("the {version} histogram has no le=\"+Inf\" bucket"));
    }
    let bounds: Vec<f64> = buckets
        .iter()
        .map(|b| b.0)
        .filter(|b| b.is_finite())
        .collect();
    let mut counts = Vec::with_capacity(buckets.len());
    let mut below = 0.0_f64;
    for (_, cum) in &buckets {
        counts.push((cum - below).max(0.0));
        below = below.max(*cum);
    }
    Histogram::new(bounds, counts, 0.0).map_err(|e| e.to_string())
}

/// Maps one interval's query results of a metric to the judge's sample. `results` holds the
/// values of each query in `MetricQueries::queries` order.
pub fn sample_for_metric(
    kind: MetricKind,
    method: &Method,
    bindings: &Bindings,
    results: &[Vec<LabeledValue>],
) -> MetricSample {
    let label = &bindings.version_label;
    let gate = !matches!(method, Method::Compare { .. });
    match kind {
        MetricKind::Value => match sum_for_version(&results[0], label, &bindings.canary) {
            Some(canary) => MetricSample::Value {
                stable: sum_for_version(&results[0], label, &bindings.stable),
                canary,
            },
            None => MetricSample::Missing(format!(
                "query.value returned no series with {label}=\"{}\"",
                bindings.canary
            )),
        },
        MetricKind::ErrorRate => {
            let (errors, requests) = (&results[0], &results[1]);
            let side = |version: &str| -> Result<Counts, String> {
                let total = sum_for_version(requests, label, version).ok_or_else(|| {
                    format!("query.requests returned no series with {label}=\"{version}\"")
                })?;
                // Error series often appear only after the first error: none means zero.
                let events = sum_for_version(errors, label, version).unwrap_or(0.0);
                Ok(Counts::new(events, total))
            };
            match (side(&bindings.stable), side(&bindings.canary)) {
                (Ok(stable), Ok(canary)) => MetricSample::Counts { stable, canary },
                (Err(_), Ok(canary)) if gate => MetricSample::Counts {
                    stable: Counts::default(),
                    canary,
                },
                (Err(e), _) | (_, Err(e)) => MetricSample::Missing(e),
            }
        }
        MetricKind::Latency => {
            let buckets = &results[0];
            match (
                histogram_for_version(buckets, label, &bindings.stable),
                histogram_for_version(buckets, label, &bindings.canary),
            ) {
                (Ok(stable), Ok(canary)) => MetricSample::Histogram { stable, canary },
                (Err(_), Ok(canary)) if gate => MetricSample::Histogram {
                    stable: Histogram::empty(&canary.bounds),
                    canary,
                },
                (Err(e), _) | (_, Err(e)) => MetricSample::Missing(format!("query.buckets: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn arg(name: &str, default: Option<&str>) -> ArgSpec {
        ArgSpec {
            name: name.into(),
            default: default.map(Into::into),
            description: None,
        }
    }

    #[test]
    fn defaults_fill_in_and_all_missing_arguments_are_named() {
        let declared = [
            arg("service", None),
            arg("namespace", Some("default")),
            arg("route", None),
        ];
        let got = resolve_args(&declared, &[("service".into(), "web".into())]);
        assert_eq!(got, Err(QueryError::MissingArgs(vec!["route".into()])));
        let ok = resolve_args(
            &declared,
            &[
                ("service".into(), "web".into()),
                ("route".into(), "/".into()),
            ],
        )
        .unwrap();
        assert_eq!(ok["namespace"], "default");
        let unknown = resolve_args(&declared, &[("servce".into(), "web".into())]).unwrap_err();
        assert!(
            unknown.to_string().contains("\"servce\" is not declared"),
            "{unknown}"
        );
    }

    #[test]
    fn placeholders_render_and_unknown_ones_are_named() {
        let b = Bindings {
            args: [("service".to_string(), "web".to_string())].into(),
            interval: "1m".into(),
            version_label: "version".into(),
            stable: "stable".into(),
            canary: "canary".into(),
        };
        assert_eq!(
            b.render("m", "errors", r#"sum by ({{versionLabel}}) (increase(x{service="{{ args.service }}"}[{{interval}}]))"#)
                .unwrap(),
            r#"sum by (version) (increase(x{service="web"}[1m]))"#
        );
        let err = b
            .render("m", "errors", "{{args.nope}}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown placeholder {{args.nope}}"), "{err}");
        assert!(b.render("m", "errors", "x{{interval").is_err());
    }

    #[test]
    fn durations_render_as_promql() {
        assert_eq!(promql_duration(Duration::from_secs(60)), "1m");
        assert_eq!(promql_duration(Duration::from_secs(90)), "90s");
        assert_eq!(promql_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(promql_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn bucket_increases_become_per_bucket_histograms_per_version() {
        let values = vec![
            (labels(&[("version", "canary"), ("le", "0.1")]), 8.0),
            (labels(&[("version", "canary"), ("le", "+Inf")]), 10.0),
            (labels(&[("version", "canary"), ("le", "0.5")]), 9.0),
            (labels(&[("version", "stable"), ("le", "0.1")]), 1.0),
        ];
        let h = histogram_for_version(&values, "version", "canary").unwrap();
        assert_eq!(h.bounds, vec![0.1, 0.5]);
        assert_eq!(h.counts, vec![8.0, 1.0, 1.0]);
        let err = histogram_for_version(&values, "version", "stable").unwrap_err();
        assert!(err.contains("+Inf"), "{err}");
    }

    #[test]
    fn missing_error_series_count_as_zero_but_missing_requests_are_missing_data() {
        let b = Bindings {
            args: BTreeMap::new(),
            interval: "1m".into(),
            version_label: "version".into(),
            stable: "stable".into(),
            canary: "canary".into(),
        };
        let method = Method::Compare {
            direction: crate::analysis::Direction::Increase,
            tolerance: 0.0,
            jitter: 0.1,
        };
        let requests = vec![
            (labels(&[("version", "stable"), ("pod", "a")]), 50.0),
            (labels(&[("version", "stable"), ("pod", "b")]), 50.0),
            (labels(&[("version", "canary")]), 10.0),
        ];
        let sample = sample_for_metric(
            MetricKind::ErrorRate,
            &method,
            &b,
            &[vec![], requests.clone()],
        );
        assert_eq!(
            sample,
            MetricSample::Counts {
                stable: Counts::new(0.0, 100.0),
                canary: Counts::new(0.0, 10.0)
            }
        );
        let sample = sample_for_metric(
            MetricKind::ErrorRate,
            &method,
            &b,
            &[vec![], requests[..2].to_vec()],
        );
        assert!(
            matches!(sample, MetricSample::Missing(ref why) if why.contains("version=\"canary\"")),
            "{sample:?}"
        );
    }
}
