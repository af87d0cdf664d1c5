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

/// Where in PromQL a placeholder lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Outside any string: a metric or label name, a duration, a number, a function name.
    Bare,
    /// Inside a string quoted with `quote` (`"`, `'` or `` ` ``); `regex` when the string is
    /// the value of a `=~` or `!~` matcher; `after_backslash` when the character before the
    /// placeholder is an unfinished backslash escape.
    Quoted {
        /// The quote character.
        quote: char,
        /// The string is a regex matcher's value.
        regex: bool,
        /// An unfinished `\` escape precedes the placeholder.
        after_backslash: bool,
    },
}

/// A small PromQL lexer that knows only what matters for placing values: strings (with their
/// escapes), whether a string follows a regex matcher operator, and comments.
#[derive(Debug, Default)]
struct Lexer {
    /// Inside a string: its quote, whether it is a regex, whether a `\` is pending.
    string: Option<(char, bool, bool)>,
    /// Inside a `#` comment (until the end of the line).
    comment: bool,
    /// The last two non-blank characters outside strings.
    last: [char; 2],
}

impl Lexer {
    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            match &mut self.string {
                Some((quote, _, escaped)) => {
                    if *escaped {
                        *escaped = false;
                    } else if c == '\\' && *quote != '`' {
                        *escaped = true;
                    } else if c == *quote {
                        self.string = None;
                        self.last = [self.last[1], c];
                    }
                }
                None if self.comment => self.comment = c != '\n',
                None => match c {
                    '"' | '\'' | '`' => {
                        let regex = matches!(self.last, ['=' | '!', '~']);
                        self.string = Some((c, regex, false));
                    }
                    '#' => self.comment = true,
                    c if c.is_whitespace() => {}
                    c => self.last = [self.last[1], c],
                },
            }
        }
    }

    /// A value was placed: outside strings it is a token like any other.
    fn placeholder(&mut self) {
        match &mut self.string {
            Some(_) => {}
            None if self.comment => {}
            None => self.last = [self.last[1], 'x'],
        }
    }

    fn context(&self) -> Context {
        match self.string {
            Some((quote, regex, after_backslash)) => Context::Quoted {
                quote,
                regex,
                after_backslash,
            },
            None => Context::Bare,
        }
    }
}

/// Why a value cannot be placed.
enum Unsafe {
    AfterBackslash,
    Refused(String),
}

/// PromQL words a bare value may not be.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "atan2",
];

/// A value escaped for `context` (see the module documentation); `raw_regex` for arguments
/// declared `regex: true`.
fn escape_value(value: &str, context: Context, raw_regex: bool) -> Result<String, Unsafe> {
    match context {
        Context::Bare => {
            if value.is_empty() {
                Err(Unsafe::Refused(
                    "is empty where a PromQL token is expected".into(),
                ))
            } else if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.'))
                || KEYWORDS.contains(&value.to_ascii_lowercase().as_str())
            {
                Err(Unsafe::Refused(
                    "lands outside a quoted string, where only a plain token (letters, digits, '_', ':', '.'; not a PromQL keyword) is allowed; give a plain value, or quote the placeholder in the template (label=\"{{args.NAME}}\")".into(),
                ))
            } else {
                Ok(value.to_string())
            }
        }
        Context::Quoted {
            after_backslash: true,
            ..
        } => Err(Unsafe::AfterBackslash),
        Context::Quoted { quote, regex, .. } => {
            let value = if regex && !raw_regex {
                regex_escape(value)
            } else {
                value.to_string()
            };
            if quote == '`' {
                if value.contains('`') {
                    return Err(Unsafe::Refused(
                        "contains a backtick and lands in a `raw string`, which cannot escape it; use a \"quoted\" string in the template".into(),
                    ));
                }
                return Ok(value);
            }
            Ok(string_escape(&value, quote))
        }
    }
}

/// Escapes text for a PromQL string quoted with `quote` (`"` or `'`).
pub fn string_escape(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes every regex metacharacter (RE2 syntax, as Prometheus uses), so the text matches
/// itself literally.
pub fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn arg(name: &str, default: Option<&str>) -> ArgSpec {
        ArgSpec {
            name: name.into(),
            default: default.map(Into::into),
            description: None,
            pattern: None,
            regex: None,
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
            regex_args: Default::default(),
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
            regex_args: Default::default(),
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

    fn bindings(value: &str) -> Bindings {
        Bindings {
            args: [("s".to_string(), value.to_string())].into(),
            interval: "1m".into(),
            version_label: "version".into(),
            stable: "stable".into(),
            canary: "canary".into(),
            regex_args: Default::default(),
        }
    }

    /// Decodes a PromQL string body (Go escapes as the PromQL lexer accepts them).
    fn unquote(body: &str) -> String {
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next().unwrap() {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                other => out.push(other),
            }
        }
        out
    }

    /// Splits rendered PromQL into the text outside strings and the decoded strings.
    fn structure(promql: &str) -> (String, Vec<String>) {
        let (mut code, mut strings) = (String::new(), Vec::new());
        let mut current: Option<(char, String)> = None;
        let mut escaped = false;
        for c in promql.chars() {
            match &mut current {
                Some((q, body)) => {
                    if escaped {
                        escaped = false;
                        body.push(c);
                    } else if c == '\\' && *q != '`' {
                        escaped = true;
                        body.push(c);
                    } else if c == *q {
                        let raw = std::mem::take(body);
                        strings.push(if *q == '`' { raw } else { unquote(&raw) });
                        current = None;
                        code.push('S');
                    } else {
                        body.push(c);
                    }
                }
                None if matches!(c, '"' | '\'' | '`') => current = Some((c, String::new())),
                None => code.push(c),
            }
        }
        assert!(current.is_none(), "unterminated string in {promql}");
        (code, strings)
    }

    const INJECTIONS: &[&str] = &[
        r#"web",code!~"5.."#,
        r#"web"} or vector(0) or x{a=""#,
        "web'",
        r#"web\"#,
        "web\\\",code=\"",
        "web\n\"",
        ".*",
        "web|.*",
        "web`",
        "\u{7}\u{0}\u{85}",
        "}}{{",
    ];

    #[test]
    fn hostile_values_stay_inside_their_string_in_every_quoting() {
        for (template, regex) in [
            (
                r#"sum by (version) (increase(x{service="{{args.s}}", code=~"5.."}[1m]))"#,
                false,
            ),
            (
                r#"sum by (version) (increase(x{service='{{args.s}}'}[1m]))"#,
                false,
            ),
            (r#"x{service=~"{{args.s}}|{{args.s}}-canary"}"#, true),
            (r#"x{service!~'^{{args.s}}$'}"#, true),
        ] {
            let benign = structure(&bindings("web").render("m", "errors", template).unwrap());
            for value in INJECTIONS {
                let rendered = bindings(value).render("m", "errors", template).unwrap();
                let (code, strings) = structure(&rendered);
                assert_eq!(code, benign.0, "{value:?} changed the query: {rendered}");
                let expected = benign.1.iter().map(|s| {
                    if regex && s.contains("web") {
                        s.replace("web", &regex_escape(value))
                    } else {
                        s.replace("web", value)
                    }
                });
                let expected: Vec<String> = expected.collect();
                assert_eq!(strings, expected, "{value:?} in {template}: {rendered}");
                if regex {
                    // The regex matches the value literally, and nothing it would have matched
                    // as a regex (".*" does not match "anything").
                    let re = regex::Regex::new(&format!("^(?:{})$", strings[0])).unwrap();
                    assert!(re.is_match(value), "{rendered}");
                    assert!(!re.is_match("anything"), "{rendered}");
                }
            }
        }
    }

    #[test]
    fn backticks_refuse_what_they_cannot_escape_and_bare_values_must_be_plain_tokens() {
        let raw = "x{service=`{{args.s}}`}";
        assert_eq!(
            bindings("a\"b").render("m", "errors", raw).unwrap(),
            "x{service=`a\"b`}"
        );
        let err = bindings("a`b")
            .render("m", "errors", raw)
            .unwrap_err()
            .to_string();
        assert!(err.contains("backtick"), "{err}");
        let bare = "sum(increase({{args.s}}_total[1m]))";
        assert_eq!(
            bindings("http_requests")
                .render("m", "errors", bare)
                .unwrap(),
            "sum(increase(http_requests_total[1m]))"
        );
        for value in ["a{b=\"c\"}", "a or b", "x-y", "", "or", "x)", "a/b"] {
            let err = bindings(value)
                .render("error-rate", "errors", bare)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("metric \"error-rate\", query.errors: the value of {{args.s}}")
                    && (err.contains("outside a quoted string") || value.is_empty()),
                "{value:?}: {err}"
            );
        }
        let err = bindings("x")
            .render("m", "errors", r#"x{a="\{{args.s}}"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("follows a backslash"), "{err}");
    }

    #[test]
    fn a_regex_argument_is_a_regex_but_cannot_leave_its_string() {
        let mut b = bindings("api|web.*");
        b.regex_args.insert("s".into());
        assert_eq!(
            b.render("m", "errors", r#"x{route=~"{{args.s}}"}"#)
                .unwrap(),
            r#"x{route=~"api|web.*"}"#
        );
        let mut b = bindings(r#"a"} or x{b=""#);
        b.regex_args.insert("s".into());
        let rendered = b
            .render("m", "errors", r#"x{route=~"{{args.s}}"}"#)
            .unwrap();
        assert_eq!(structure(&rendered).0, "x{route=~S}");
    }

    #[test]
    fn versions_that_render_equal_from_the_arguments_are_refused() {
        let text = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args: [{name: a}, {name: b}]
  versions: {stable: "{{args.a}}", canary: "{{args.b}}"}
  metrics:
    - {name: errors, kind: errorRate}
"#;
        let t = crate::template::parse(text, "t.yaml").unwrap();
        let args = |a: &str, b: &str| -> BTreeMap<String, String> {
            [
                ("a".to_string(), a.to_string()),
                ("b".to_string(), b.to_string()),
            ]
            .into()
        };
        let err = Bindings::new(&t, args("web", "web")).unwrap_err();
        assert_eq!(
            err,
            QueryError::SameVersions {
                value: "\"web\"".into()
            }
        );
        // Version values are data: kept as given, escaped only where a query places them.
        let b = Bindings::new(&t, args("web\"", "web-canary")).unwrap();
        assert_eq!(b.stable, "web\"");
        assert_eq!(
            b.render("m", "errors", r#"x{v="{{stable}}"}"#).unwrap(),
            r#"x{v="web\""}"#
        );
    }

    #[test]
    fn declared_patterns_and_empty_values_are_checked_before_rendering() {
        let mut declared = [arg("service", None)];
        declared[0].pattern = Some("[a-z-]+".into());
        let err = resolve_args(&declared, &[("service".into(), "web\"".into())]).unwrap_err();
        assert!(matches!(err, QueryError::Pattern { .. }), "{err}");
        assert!(resolve_args(&declared, &[("service".into(), "web-api".into())]).is_ok());
        let err = resolve_args(
            &[arg("service", None)],
            &[("service".into(), String::new())],
        )
        .unwrap_err();
        assert_eq!(
            err,
            QueryError::EmptyArg {
                name: "service".into()
            }
        );
    }

    /// Pieces random templates are made of: (template text, where its placeholder lands, if it
    /// has one).
    const PIECES: &[(&str, Option<Context>)] = &[
        ("sum by (version) (increase(x", None),
        ("{a=", None),
        (", b!=", None),
        ("}[1m])) or ", None),
        (r#""lit""#, None),
        (
            r#""{{args.s}}""#,
            Some(Context::Quoted {
                quote: '"',
                regex: false,
                after_backslash: false,
            }),
        ),
        (
            r#""pre-{{args.s}}-post""#,
            Some(Context::Quoted {
                quote: '"',
                regex: false,
                after_backslash: false,
            }),
        ),
        (
            "'{{args.s}}'",
            Some(Context::Quoted {
                quote: '\'',
                regex: false,
                after_backslash: false,
            }),
        ),
        (
            r#"=~"{{args.s}}|x""#,
            Some(Context::Quoted {
                quote: '"',
                regex: true,
                after_backslash: false,
            }),
        ),
        (
            "!~ '^{{args.s}}'",
            Some(Context::Quoted {
                quote: '\'',
                regex: true,
                after_backslash: false,
            }),
        ),
        (r#""a\"b""#, None),
        (
            "`{{args.s}}`",
            Some(Context::Quoted {
                quote: '`',
                regex: false,
                after_backslash: false,
            }),
        ),
        (" {{args.s}} ", Some(Context::Bare)),
        ("# note {{args.s}}\n", Some(Context::Bare)),
    ];

    proptest::proptest! {
        /// A template assembled from random pieces, rendered with any value: either the value
        /// is refused (only where it lands bare or in a raw string), or every string of the
        /// query decodes to what the template says with the value in it — nothing outside the
        /// strings changes, whatever the value holds.
        #[test]
        fn random_templates_keep_their_structure_for_any_value(
            picks in proptest::collection::vec(0usize..PIECES.len(), 1..8),
            value in proptest::prelude::any::<String>(),
        ) {
            let template: String = picks.iter().map(|&i| PIECES[i].0).collect();
            let contexts: Vec<Context> = picks.iter().filter_map(|&i| PIECES[i].1).collect();
            let plain = |v: &str| !v.is_empty()
                && v.chars().all(|c| c.is_ascii_alphanumeric() || "_:.".contains(c))
                && !KEYWORDS.contains(&v.to_ascii_lowercase().as_str());
            let marker = "Zq9";
            let benign = bindings(marker).render("m", "errors", &template).unwrap();
            match bindings(&value).render("m", "errors", &template) {
                Ok(rendered) => {
                    for c in &contexts {
                        match c {
                            Context::Bare => proptest::prop_assert!(plain(&value), "{:?} placed bare", value),
                            Context::Quoted { quote: '`', .. } => proptest::prop_assert!(!value.contains('`')),
                            Context::Quoted { .. } => {}
                        }
                    }
                    let (code, strings) = structure(&rendered);
                    let (benign_code, benign_strings) = structure(&benign);
                    // Outside strings only bare placeholders differ, by the plain value.
                    proptest::prop_assert_eq!(code, benign_code.replace(marker, &value));
                    proptest::prop_assert_eq!(strings.len(), benign_strings.len());
                    for (got, want) in strings.iter().zip(&benign_strings) {
                        let regex_escaped = want.replace(marker, &regex_escape(&value));
                        let literal = want.replace(marker, &value);
                        proptest::prop_assert!(
                            *got == literal || *got == regex_escaped,
                            "{:?} in {}: {} (wanted {:?})", value, template, rendered, literal
                        );
                    }
                }
                Err(e) => {
                    let refusable = contexts.iter().any(|c| match c {
                        Context::Bare => !plain(&value),
                        Context::Quoted { quote: '`', .. } => value.contains('`'),
                        Context::Quoted { .. } => false,
                    });
                    proptest::prop_assert!(refusable, "refused {:?} in {}: {}", value, template, e);
                }
            }
        }

        /// Any value — any characters, any length — placed in a double-quoted, a single-quoted
        /// or a regex-matcher string leaves the query's structure as it was and decodes back
        /// to itself; in a bare position it is a plain token or refused.
        #[test]
        fn no_value_changes_the_structure_of_a_query(value in ".{0,40}", pick in 0usize..5) {
            let templates = [
                r#"sum by (version) (increase(x{service="{{args.s}}"}[1m]))"#,
                r#"x{service='{{args.s}}', code=~"5.."}"#,
                r#"x{service=~"{{args.s}}|{{args.s}}-canary"}"#,
                r#"x{a=`{{args.s}}`}"#,
                r#"sum(increase({{args.s}}[1m]))"#,
            ];
            let template = templates[pick];
            let benign = structure(&bindings("v").render("m", "errors", template).unwrap());
            match bindings(&value).render("m", "errors", template) {
                Ok(rendered) => {
                    let (code, strings) = structure(&rendered);
                    if pick == 4 {
                        proptest::prop_assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || "_:.".contains(c)));
                        proptest::prop_assert_eq!(rendered, template.replace("{{args.s}}", &value));
                    } else {
                        proptest::prop_assert_eq!(&code, &benign.0);
                        let want: Vec<String> = if pick == 2 {
                            vec![format!("{0}|{0}-canary", regex_escape(&value))]
                        } else {
                            benign.1.iter().map(|s| if s == "v" { value.clone() } else { s.clone() }).collect()
                        };
                        proptest::prop_assert_eq!(strings, want);
                    }
                }
                Err(e) => {
                    proptest::prop_assert!(pick >= 3, "refused {:?} in a quoted string: {}", value, e);
                    proptest::prop_assert!(e.to_string().contains("{{args.s}}"), "{}", e);
                }
            }
        }
    }
}
