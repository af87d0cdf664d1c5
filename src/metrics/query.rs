//! Template queries: resolving arguments, rendering placeholders, and turning query results
//! grouped by the version label into the judge's per-version samples. Pure: no I/O.
//!
//! Placeholders: `{{args.NAME}}`, `{{interval}}` (the template's interval as a PromQL duration),
//! `{{versionLabel}}`, `{{stable}}` and `{{canary}}` (the version label values).
//!
//! # Values are data, never PromQL
//! A value is escaped for the place in the query where its placeholder lands, found by lexing
//! the template's PromQL (strings, regex matchers, the rest):
//!
//! - inside a `"…"` or `'…'` string: `\`, the quote, newlines and other control characters are
//!   backslash-escaped, so a value can never end the string;
//! - inside a regex matcher's string (`=~`, `!~`): the value is also regex-escaped (`.` becomes
//!   `\.`, `|` becomes `\|`, …), so it matches itself literally — unless the argument declares
//!   `regex: true`, when it is inserted as a regular expression (still string-escaped);
//! - inside a `` `…` `` raw string, which has no escapes: a value containing a backtick is refused;
//! - anywhere else (a metric name, a duration, a label name, a number): only a plain token of
//!   letters, digits, `_`, `:` and `.` that is not a PromQL keyword; anything else is refused with
//!   an error naming the argument, the metric and the query field.
//!
//! A placeholder directly after a backslash inside a string is a template error (the backslash
//! would escape the value's first character). An argument may also declare a `pattern` that
//! every value must match as a whole, and an empty value is refused unless that pattern allows
//! it (`service=""` would match every series without a `service` label).

mod escape;

#[cfg(test)]
use escape::KEYWORDS;
pub use escape::{Context, regex_escape, string_escape};
use escape::{Lexer, Unsafe, escape_value};

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
    #[error("missing required template arguments: {}", .0.join(", "))]
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
    /// A value cannot be placed safely where its placeholder is.
    #[error(
        "metric {metric:?}, query.{field}: the value of {{{{{placeholder}}}}} ({value}) {problem}"
    )]
    UnsafeValue {
        /// Metric name.
        metric: String,
        /// Query field.
        field: &'static str,
        /// The placeholder, e.g. `args.service`.
        placeholder: String,
        /// The value, quoted and shortened.
        value: String,
        /// Why it is refused and the fix.
        problem: String,
    },
    /// A placeholder right after a backslash inside a string.
    #[error(
        "metric {metric:?}, query.{field}: {{{{{placeholder}}}}} follows a backslash inside a string, which would escape the value's first character; remove the backslash"
    )]
    EscapedPlaceholder {
        /// Metric name.
        metric: String,
        /// Query field.
        field: &'static str,
        /// The placeholder.
        placeholder: String,
    },
    /// A value does not match its argument's declared pattern.
    #[error(
        "argument {name:?} = {value} does not match the pattern {pattern:?} the template declares for it"
    )]
    Pattern {
        /// The argument.
        name: String,
        /// The value, quoted and shortened.
        value: String,
        /// The declared pattern.
        pattern: String,
    },
    /// An argument's declared pattern is not a regular expression.
    #[error("argument {name:?}: pattern {pattern:?} is not a regular expression: {error}")]
    BadPattern {
        /// The argument.
        name: String,
        /// The declared pattern.
        pattern: String,
        /// The regex parser's message.
        error: String,
    },
    /// An argument is empty.
    #[error(
        "argument {name:?} is empty; an empty label value matches every series without that label, so give a value (or declare a pattern that allows empty values)"
    )]
    EmptyArg {
        /// The argument.
        name: String,
    },
    /// Both versions render to the same label value, so the judge would compare a version with
    /// itself.
    #[error(
        "versions.stable and versions.canary both render to {value}; the judge would compare the canary with itself — give the versions different values"
    )]
    SameVersions {
        /// The common value, quoted and shortened.
        value: String,
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
    if !missing.is_empty() {
        return Err(QueryError::MissingArgs(missing));
    }
    for arg in declared {
        let value = &out[&arg.name];
        match &arg.pattern {
            Some(pattern) => {
                let re = arg_pattern(&arg.name, pattern)?;
                if !re.is_match(value) {
                    return Err(QueryError::Pattern {
                        name: arg.name.clone(),
                        value: shown(value),
                        pattern: pattern.clone(),
                    });
                }
            }
            None if value.is_empty() => {
                return Err(QueryError::EmptyArg {
                    name: arg.name.clone(),
                });
            }
            None => {}
        }
    }
    Ok(out)
}

/// An argument's declared pattern, anchored to match whole values.
///
/// # Errors
/// When it is not a regular expression.
pub fn arg_pattern(name: &str, pattern: &str) -> Result<regex::Regex, QueryError> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| QueryError::BadPattern {
        name: name.to_string(),
        pattern: pattern.to_string(),
        error: e.to_string(),
    })
}

/// A value for an error message: quoted, escaped, and shortened to 80 characters.
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(80).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    format!("{out:?}")
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

/// Bindings for `template lint`: defaults, and [`lint_args`] stand-ins for required arguments,
/// which are not checked against the arguments' patterns (the stand-in is no real value).
///
/// # Errors
/// As [`Bindings::new`].
pub fn lint_bindings(template: &Template) -> Result<Bindings, QueryError> {
    let mut args: BTreeMap<String, String> = lint_args(template).into_iter().collect();
    for arg in &template.file.spec.args {
        if let Some(d) = &arg.default {
            args.insert(arg.name.clone(), d.clone());
        }
    }
    Bindings::new(template, args)
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
    /// Arguments declared `regex: true`: inserted into regex matchers as regular expressions.
    pub regex_args: std::collections::BTreeSet<String>,
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
            regex_args: spec
                .args
                .iter()
                .filter(|a| a.regex == Some(true))
                .map(|a| a.name.clone())
                .collect(),
        };
        if let Some(v) = &spec.versions {
            // Version values are label values (data), compared with what queries return; they
            // are escaped where `{{stable}}` / `{{canary}}` land in a query.
            let stable = bindings.substitute("(versions)", "stable", &v.stable, |_, v, _| {
                Ok(v.to_string())
            })?;
            let canary = bindings.substitute("(versions)", "canary", &v.canary, |_, v, _| {
                Ok(v.to_string())
            })?;
            if stable == canary {
                return Err(QueryError::SameVersions {
                    value: shown(&stable),
                });
            }
            bindings.stable = stable;
            bindings.canary = canary;
        }
        Ok(bindings)
    }

    /// Renders one query, each value escaped for where its placeholder lands (see the module
    /// documentation).
    ///
    /// # Errors
    /// On an unknown placeholder, an unclosed `{{`, a placeholder after a backslash in a string,
    /// or a value that cannot be placed safely where its placeholder is.
    pub fn render(
        &self,
        metric: &str,
        field: &'static str,
        query: &str,
    ) -> Result<String, QueryError> {
        self.substitute(metric, field, query, |placeholder, value, context| {
            let raw_regex = placeholder
                .strip_prefix("args.")
                .is_some_and(|a| self.regex_args.contains(a));
            escape_value(value, context, raw_regex).map_err(|problem| match problem {
                Unsafe::AfterBackslash => QueryError::EscapedPlaceholder {
                    metric: metric.to_string(),
                    field,
                    placeholder: placeholder.to_string(),
                },
                Unsafe::Refused(problem) => QueryError::UnsafeValue {
                    metric: metric.to_string(),
                    field,
                    placeholder: placeholder.to_string(),
                    value: shown(value),
                    problem,
                },
            })
        })
    }

    /// Replaces every placeholder of `text` by `place(placeholder, value, context)`.
    fn substitute(
        &self,
        metric: &str,
        field: &'static str,
        text: &str,
        mut place: impl FnMut(&str, &str, Context) -> Result<String, QueryError>,
    ) -> Result<String, QueryError> {
        let mut out = String::with_capacity(text.len());
        let mut lexer = Lexer::default();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            lexer.feed(&rest[..start]);
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
                Some(v) => out.push_str(&place(name, v, lexer.context())?),
                None => {
                    return Err(QueryError::Placeholder {
                        metric: metric.to_string(),
                        field,
                        placeholder: name.to_string(),
                    });
                }
            }
            lexer.placeholder();
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
    /// Whether no series from the query `field` in an interval means zero rather than missing
    /// data: an error counter appears only after the first error (see [`sample_for_metric`]).
    /// Only once the query has been seen to match: one that returns no series in a whole
    /// window while the requests query does is missing data (see
    /// [`PrometheusSource::window`](super::prometheus_source::PrometheusSource::window)).
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

/// A series' labels, shared by all of its points.
pub type Labels = std::sync::Arc<BTreeMap<String, String>>;

/// One series' value at one time, with its labels.
pub type LabeledValue = (Labels, f64);

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
                // Error series often appear only after the first error: none means zero (the
                // source has made sure the error query matches at all).
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
mod tests;
