//! Analysis templates: reading the YAML SREs write and validating it into the judge's
//! configuration, with errors that name the file, the field and the fix.

pub mod spec;

use std::path::Path;
use std::time::Duration;

use crate::analysis::{
    Direction, InconclusivePolicy, JudgeConfig, Method, MetricConfig, MetricKind,
};
use spec::{
    AnalysisTemplateSpec, DirectionSpec, InconclusiveSpec, KindSpec, MetricSpec, TemplateFile,
};

/// The API version template files carry.
pub const API_VERSION: &str = "canarygate.dev/v1alpha1";

/// Default jitter floor for error-rate comparisons: the smallest per-version coefficient of
/// variation of the error rate between intervals the judge assumes (it estimates the actual one
/// online and uses the larger).
pub const DEFAULT_ERROR_JITTER: f64 = 0.05;
/// Default jitter allowance for latency comparisons.
pub const DEFAULT_LATENCY_JITTER: f64 = 0.05;
/// Default minimum requests per version and step.
pub const DEFAULT_MIN_SAMPLES: f64 = 50.0;
/// The smallest `alpha`: below it the evidence asked for (an e-value of `1/alpha`) is out of
/// reach of any canary, so every canary would pass.
pub const MIN_ALPHA: f64 = 1e-6;
/// The shortest interval (`1ns` would ask Prometheus for billions of points).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Whether `name` is a Prometheus label name.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a query's aggregations drop the version label, so its answer can never tell the
/// versions apart: a `by (…)` clause that does not keep `label` (when no `by` clause does), or a
/// `without (…)` clause that names it. Returns the clause. Strings and comments are skipped.
pub fn drops_label(promql: &str, label: &str) -> Option<String> {
    // Blank out strings and comments, keeping positions.
    let mut plain = String::with_capacity(promql.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    for c in promql.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            plain.push(' ');
            continue;
        }
        if comment {
            comment = c != '\n';
            plain.push(' ');
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '#' => comment = true,
            _ => {}
        }
        plain.push(if quote.is_some() || comment { ' ' } else { c });
    }
    let clause = regex::Regex::new(r"\b(by|without)\s*\(([^)]*)\)").ok()?;
    let mut by_clauses = Vec::new();
    for caps in clause.captures_iter(&plain) {
        let keeps = caps[2].split(',').any(|l| l.trim() == label);
        match &caps[1] {
            "without" if keeps => return Some(caps[0].to_string()),
            "by" => by_clauses.push((caps[0].to_string(), keeps)),
            _ => {}
        }
    }
    if !by_clauses.is_empty() && by_clauses.iter().all(|(_, keeps)| !keeps) {
        return by_clauses.into_iter().next().map(|(c, _)| c);
    }
    None
}

/// Whether PromQL calls `rate(` or `irate(` outside strings and comments: per-second rates, not
/// the counts an errorRate or latency query must return.
pub fn calls_rate(promql: &str) -> Option<&'static str> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    let mut word = String::new();
    let mut pending: Option<&'static str> = None;
    for c in promql.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if comment {
            comment = c != '\n';
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            pending = None;
            continue;
        }
        if !word.is_empty() {
            pending = match word.as_str() {
                "rate" => Some("rate"),
                "irate" => Some("irate"),
                _ => None,
            };
            word.clear();
        }
        match c {
            '(' if pending.is_some() => return pending,
            c if c.is_whitespace() => {}
            '"' | '\'' | '`' => {
                quote = Some(c);
                pending = None;
            }
            '#' => {
                comment = true;
                pending = None;
            }
            _ => pending = None,
        }
    }
    None
}

/// Errors reading or validating a template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("{path}: cannot read template: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not have the template's shape (unknown field, wrong type, bad syntax).
    #[error("{source_name}: {message}")]
    Parse {
        /// File name or other origin.
        source_name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has a value the template does not accept.
    #[error("{source_name}: {field}: {problem}")]
    Invalid {
        /// File name or other origin.
        source_name: String,
        /// Path of the field, e.g. `spec.metrics[1].compare.tolerance`.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// A validated template: the file as written and the judge configuration it yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Where it came from (file name).
    pub source_name: String,
    /// The file as written.
    pub file: TemplateFile,
    /// The judge configuration.
    pub judge: JudgeConfig,
    /// Observation interval.
    pub interval: Duration,
}

impl Template {
    /// The template's name.
    pub fn name(&self) -> &str {
        &self.file.metadata.name
    }
}

/// Reads and validates a template file.
///
/// # Errors
/// When the file cannot be read, parsed or validated; the error names the file and the field.
pub fn load(path: &Path) -> Result<Template, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates template YAML; `source_name` appears in errors.
///
/// # Errors
/// When the YAML is malformed, has unknown fields, or a value is out of range.
pub fn parse(text: &str, source_name: &str) -> Result<Template, TemplateError> {
    let file: TemplateFile = serde_saphyr::from_str(text).map_err(|e| TemplateError::Parse {
        source_name: source_name.to_string(),
        message: with_placeholder_hint(e.to_string(), text),
    })?;
    let invalid = |field: &str, problem: String| TemplateError::Invalid {
        source_name: source_name.to_string(),
        field: field.to_string(),
        problem,
    };
    if file.api_version != API_VERSION {
        return Err(invalid(
            "apiVersion",
            format!("is {:?}; use {API_VERSION:?}", file.api_version),
        ));
    }
    if file.kind != "AnalysisTemplate" && file.kind != "ClusterAnalysisTemplate" {
        return Err(invalid(
            "kind",
            format!(
                "is {:?}; use AnalysisTemplate or ClusterAnalysisTemplate",
                file.kind
            ),
        ));
    }
    if file.metadata.name.trim().is_empty() {
        return Err(invalid(
            "metadata.name",
            "is empty; name the template".into(),
        ));
    }
    validated(file, source_name)
}

/// A parse error on a line holding a placeholder says where placeholders are allowed.
fn with_placeholder_hint(message: String, text: &str) -> String {
    let line = message
        .split("line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    match line.and_then(|n| text.lines().nth(n.checked_sub(1)?)) {
        Some(l) if l.contains("{{") => format!(
            "{message}\nplaceholders ({{{{args.NAME}}}}, {{{{interval}}}}, …) are filled in only in query.* and versions.*; \
             thresholds, alpha, tolerances and other numbers must be literal (one template per limit)"
        ),
        _ => message,
    }
}

/// Validates a template that came from the cluster (an `AnalysisTemplate` or
/// `ClusterAnalysisTemplate` resource); `source_name` (e.g. `AnalysisTemplate shop/web`) appears
/// in errors.
///
/// # Errors
/// When a value is out of range; the error names the field.
pub fn from_spec(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    spec: spec::AnalysisTemplateSpec,
    source_name: &str,
) -> Result<Template, TemplateError> {
    let file = TemplateFile {
        api_version: API_VERSION.to_string(),
        kind: kind.to_string(),
        metadata: spec::Metadata {
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
            labels: Default::default(),
            annotations: Default::default(),
        },
        spec,
    };
    validated(file, source_name)
}

fn validated(file: TemplateFile, source_name: &str) -> Result<Template, TemplateError> {
    let (judge, interval) =
        judge_config(&file.spec).map_err(|(field, problem)| TemplateError::Invalid {
            source_name: source_name.to_string(),
            field: format!("spec.{field}"),
            problem,
        })?;
    Ok(Template {
        source_name: source_name.to_string(),
        file,
        judge,
        interval,
    })
}

type FieldError = (String, String);

fn duration(field: &str, text: &str) -> Result<Duration, FieldError> {
    humantime::parse_duration(text).map_err(|e| {
        (
            field.to_string(),
            format!("{text:?} is not a duration ({e}); write e.g. \"30s\", \"5m\" or \"1h 30m\""),
        )
    })
}

fn in_range(field: &str, value: f64, lo: f64, hi: f64, hint: &str) -> Result<f64, FieldError> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(value)
    } else {
        Err((
            field.to_string(),
            format!("is {value}; must be between {lo} and {hi} ({hint})"),
        ))
    }
}

/// Validates a spec into the judge configuration and the observation interval.
fn judge_config(spec: &AnalysisTemplateSpec) -> Result<(JudgeConfig, Duration), FieldError> {
    let alpha = match spec.alpha {
        Some(a) if !(MIN_ALPHA..=0.5).contains(&a) => {
            return Err((
                "alpha".into(),
                format!(
                    "is {a:?}; must be between {MIN_ALPHA:?} and 0.5, e.g. 0.01 for a 1 % false-rollback budget (a smaller alpha asks for evidence no canary can gather, so every canary would pass)"
                ),
            ));
        }
        Some(a) => a,
        None => JudgeConfig::DEFAULT_ALPHA,
    };
    let interval = match &spec.interval {
        Some(text) => duration("interval", text)?,
        None => Duration::from_secs(60),
    };
    if interval < MIN_INTERVAL || interval > MAX_INTERVAL {
        return Err((
            "interval".into(),
            format!(
                "is {}; must be between {} and {} (whole milliseconds), e.g. \"1m\"",
                humantime::format_duration(interval),
                humantime::format_duration(MIN_INTERVAL),
                humantime::format_duration(MAX_INTERVAL)
            ),
        ));
    }
    if interval.subsec_nanos() % 1_000_000 != 0 {
        return Err((
            "interval".into(),
            format!(
                "is {}; PromQL durations have millisecond resolution, use whole milliseconds",
                humantime::format_duration(interval)
            ),
        ));
    }
    if let Some(label) = &spec.version_label
        && !is_label_name(label)
    {
        return Err((
            "versionLabel".into(),
            format!(
                "{label:?} is not a Prometheus label name; use letters, digits and '_' (not starting with a digit), e.g. \"version\""
            ),
        ));
    }
    if let Some(v) = &spec.versions {
        for (field, value) in [
            ("versions.stable", &v.stable),
            ("versions.canary", &v.canary),
        ] {
            if value.trim().is_empty() {
                return Err((
                    field.into(),
                    "is empty; give the version label's value on this version".into(),
                ));
            }
        }
        if v.stable == v.canary {
            return Err((
                "versions".into(),
                format!(
                    "stable and canary are both {:?}; the judge would compare the canary with itself — give the two versions' label values",
                    v.stable
                ),
            ));
        }
    }
    let policy = spec.policy.clone().unwrap_or_default();
    let hold_budget = match &policy.hold_budget {
        Some(text) => duration("policy.holdBudget", text)?,
        None => JudgeConfig::DEFAULT_HOLD_BUDGET,
    };
    let fail_weight = match policy.fail_weight {
        Some(w) => in_range(
            "policy.failWeight",
            w,
            1e-9,
            1.0,
            "share of the total metric weight",
        )?,
        None => JudgeConfig::DEFAULT_FAIL_WEIGHT,
    };
    let on_inconclusive = match policy.on_inconclusive {
        Some(InconclusiveSpec::Rollback) => InconclusivePolicy::Rollback,
        Some(InconclusiveSpec::Pause) | None => InconclusivePolicy::Pause,
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, arg) in spec.args.iter().enumerate() {
        if arg.name.is_empty()
            || !arg
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err((
                format!("args[{i}].name"),
                format!(
                    "{:?} is not a valid argument name; use letters, digits, '-' and '_'",
                    arg.name
                ),
            ));
        }
        if !seen.insert(arg.name.as_str()) {
            return Err((
                format!("args[{i}].name"),
                format!("{:?} is declared twice", arg.name),
            ));
        }
        if let Some(pattern) = &arg.pattern {
            let re = crate::metrics::query::arg_pattern(&arg.name, pattern).map_err(|e| {
                (
                    format!("args[{i}].pattern"),
                    format!("{pattern:?} is not a regular expression: {e}"),
                )
            })?;
            if let Some(d) = &arg.default
                && !re.is_match(d)
            {
                return Err((
                    format!("args[{i}].default"),
                    format!("{d:?} does not match the argument's pattern {pattern:?}"),
                ));
            }
        }
    }
    if spec.metrics.is_empty() {
        return Err(("metrics".into(), "is empty; add at least one metric".into()));
    }
    let mut names = std::collections::BTreeSet::new();
    let mut metrics = Vec::with_capacity(spec.metrics.len());
    for (i, m) in spec.metrics.iter().enumerate() {
        let at = |f: &str| format!("metrics[{i}].{f}");
        if m.name.trim().is_empty() {
            return Err((at("name"), "is empty; give the metric a name".into()));
        }
        if !names.insert(m.name.as_str()) {
            return Err((
                at("name"),
                format!("{:?} is used by two metrics; names must be unique", m.name),
            ));
        }
        metrics.push(metric_config(m, &at)?);
    }
    // Every query must keep the version label, or neither version is ever seen (no data).
    let label = spec.version_label.as_deref().unwrap_or("version");
    for (i, m) in spec.metrics.iter().enumerate() {
        let Some(q) = &m.query else { continue };
        for (field, text) in [
            ("errors", &q.errors),
            ("requests", &q.requests),
            ("buckets", &q.buckets),
            ("value", &q.value),
        ] {
            if let Some(clause) = text.as_deref().and_then(|t| drops_label(t, label)) {
                return Err((
                    format!("metrics[{i}].query.{field}"),
                    format!(
                        "aggregates {clause}, which drops the version label {label:?}: the answer can never tell the stable from the canary; keep it (e.g. sum by ({label}) (…)) or set versionLabel to the label this query keeps"
                    ),
                ));
            }
        }
    }
    if metrics.iter().all(|m| m.dry_run) {
        return Err((
            "metrics".into(),
            "every metric is dryRun, so nothing gates the rollout; set dryRun: false on at least one".into(),
        ));
    }
    Ok((
        JudgeConfig {
            alpha,
            hold_budget,
            on_inconclusive,
            fail_weight,
            metrics,
        },
        interval,
    ))
}

fn metric_config(m: &MetricSpec, at: &dyn Fn(&str) -> String) -> Result<MetricConfig, FieldError> {
    let kind = match m.kind {
        KindSpec::ErrorRate => MetricKind::ErrorRate,
        KindSpec::Latency => MetricKind::Latency,
        KindSpec::Value => MetricKind::Value,
    };
    if let Some(q) = &m.query {
        // Which query fields each kind takes.
        let (needed, takes): (&[(&str, bool)], &str) = match kind {
            MetricKind::ErrorRate => (
                &[
                    ("errors", q.errors.is_some()),
                    ("requests", q.requests.is_some()),
                ],
                "an errorRate metric takes query.errors and query.requests",
            ),
            MetricKind::Latency => (
                &[("buckets", q.buckets.is_some())],
                "a latency metric takes query.buckets",
            ),
            MetricKind::Value => (
                &[("value", q.value.is_some())],
                "a value metric takes query.value",
            ),
        };
        let given = [
            ("errors", q.errors.is_some()),
            ("requests", q.requests.is_some()),
            ("buckets", q.buckets.is_some()),
            ("value", q.value.is_some()),
        ];
        for (field, present) in given {
            if present && !needed.iter().any(|(n, _)| *n == field) {
                return Err((
                    at(&format!("query.{field}")),
                    format!("does not belong here; {takes}"),
                ));
            }
        }
        if let Some((field, _)) = needed.iter().find(|(_, present)| !present) {
            return Err((
                at(&format!("query.{field}")),
                format!("is missing; {takes}"),
            ));
        }
        // Counts, not rates: the judge's evidence grows with the number of requests, and a
        // per-second rate shrinks them by the interval's length (60× for 1m).
        for (field, text) in [
            ("errors", &q.errors),
            ("requests", &q.requests),
            ("buckets", &q.buckets),
        ] {
            if let Some(f) = text.as_deref().and_then(calls_rate) {
                return Err((
                    at(&format!("query.{field}")),
                    format!(
                        "uses {f}(), a per-second rate; this query must return counts per interval: use increase(…[{{{{interval}}}}]) instead"
                    ),
                ));
            }
        }
    }
    if let Some(t) = &m.threshold
        && kind != MetricKind::Value
        && (t.min.is_some() || t.fail_after.is_some())
    {
        return Err((
            at("threshold"),
            "min and failAfter are for value metrics".into(),
        ));
    }
    if kind == MetricKind::Value {
        return value_metric(m, at);
    }
    let method = match (&m.compare, &m.threshold) {
        (Some(_), Some(_)) => {
            return Err((
                at("threshold"),
                "a metric is either a comparison (compare) or an absolute gate (threshold); remove one".into(),
            ));
        }
        (compare, None) => {
            let c = compare.clone().unwrap_or_default();
            let direction = match c.direction.unwrap_or(DirectionSpec::Increase) {
                DirectionSpec::Increase => Direction::Increase,
                DirectionSpec::Decrease => Direction::Decrease,
                DirectionSpec::Both => Direction::Both,
            };
            let max_tolerance = if direction.watches_decrease() {
                0.99
            } else {
                10.0
            };
            let tolerance = in_range(
                &at("compare.tolerance"),
                c.tolerance.unwrap_or(0.0),
                0.0,
                max_tolerance,
                "relative: 0.1 means the canary may be 10 % worse",
            )?;
            let default_jitter = match kind {
                MetricKind::Latency => DEFAULT_LATENCY_JITTER,
                MetricKind::ErrorRate | MetricKind::Value => DEFAULT_ERROR_JITTER,
            };
            let jitter = in_range(
                &at("compare.jitter"),
                c.jitter.unwrap_or(default_jitter),
                0.0,
                1.0,
                "relative per-interval noise between versions, e.g. 0.1",
            )?;
            Method::Compare {
                direction,
                tolerance,
                jitter,
            }
        }
        (None, Some(t)) => match kind {
            MetricKind::ErrorRate | MetricKind::Value => {
                if t.quantile.is_some() || t.max.is_some() {
                    return Err((
                        at("threshold"),
                        "quantile and max are for latency metrics; an errorRate gate takes maxRate"
                            .into(),
                    ));
                }
                let Some(max) = t.max_rate else {
                    return Err((
                        at("threshold.maxRate"),
                        "is missing; e.g. maxRate: 0.01 for \"below 1 %\"".into(),
                    ));
                };
                Method::MaxRate {
                    max: in_range(
                        &at("threshold.maxRate"),
                        max,
                        1e-9,
                        0.999_999,
                        "a rate, e.g. 0.01",
                    )?,
                }
            }
            MetricKind::Latency => {
                if t.max_rate.is_some() {
                    return Err((
                        at("threshold.maxRate"),
                        "is for errorRate metrics; a latency gate takes quantile and max".into(),
                    ));
                }
                let (Some(quantile), Some(bound)) = (t.quantile, t.max) else {
                    return Err((
                        at("threshold"),
                        "a latency gate needs quantile and max, e.g. quantile: 0.99, max: 0.5"
                            .into(),
                    ));
                };
                let quantile = in_range(
                    &at("threshold.quantile"),
                    quantile,
                    1e-6,
                    0.999_999,
                    "e.g. 0.99",
                )?;
                if !(bound.is_finite() && bound > 0.0) {
                    return Err((
                        at("threshold.max"),
                        format!("is {bound}; must be a positive latency in the histogram's unit"),
                    ));
                }
                Method::MaxQuantile { quantile, bound }
            }
        },
    };
    let weight = in_range(
        &at("weight"),
        m.weight.unwrap_or(1.0),
        1e-9,
        1e9,
        "a positive weight",
    )?;
    let min_samples = in_range(
        &at("minSamples"),
        m.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES),
        0.0,
        1e12,
        "requests per version and step",
    )?;
    Ok(MetricConfig {
        name: m.name.clone(),
        kind,
        method,
        critical: m.critical.unwrap_or(false),
        weight,
        dry_run: m.dry_run.unwrap_or(false),
        min_samples,
    })
}

/// A `value` metric: limits only, no comparison, no minimum traffic.
fn value_metric(m: &MetricSpec, at: &dyn Fn(&str) -> String) -> Result<MetricConfig, FieldError> {
    if m.compare.is_some() {
        return Err((
            at("compare"),
            "a value metric is judged against limits: use threshold.max and/or threshold.min"
                .into(),
        ));
    }
    let t = m.threshold.clone().unwrap_or_default();
    if t.max_rate.is_some() || t.quantile.is_some() {
        return Err((
            at("threshold"),
            "maxRate and quantile are for errorRate and latency metrics; a value metric takes max, min and failAfter".into(),
        ));
    }
    if t.max.is_none() && t.min.is_none() {
        return Err((
            at("threshold"),
            "a value metric needs threshold.max and/or threshold.min".into(),
        ));
    }
    for (field, v) in [("threshold.max", t.max), ("threshold.min", t.min)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err((at(field), "must be a finite number".into()));
        }
    }
    if let (Some(lo), Some(hi)) = (t.min, t.max)
        && lo > hi
    {
        return Err((
            at("threshold.min"),
            format!("is {lo}, above threshold.max {hi}"),
        ));
    }
    let fail_after = t.fail_after.unwrap_or(3);
    if fail_after == 0 {
        return Err((at("threshold.failAfter"), "must be at least 1".into()));
    }
    Ok(MetricConfig {
        name: m.name.clone(),
        kind: MetricKind::Value,
        method: Method::ValueRange {
            min: t.min,
            max: t.max,
            fail_after,
        },
        critical: m.critical.unwrap_or(false),
        weight: in_range(
            &at("weight"),
            m.weight.unwrap_or(1.0),
            1e-9,
            1e9,
            "a positive weight",
        )?,
        dry_run: m.dry_run.unwrap_or(false),
        min_samples: 0.0,
    })
}

#[cfg(test)]
mod grouping_tests {
    use super::drops_label;

    #[test]
    fn an_aggregation_that_drops_the_version_label_is_found() {
        let q = "sum by (version) (increase(x{code=~\"5..\"}[1m]))";
        assert_eq!(drops_label(q, "version"), None);
        assert_eq!(drops_label(q, "app").as_deref(), Some("by (version)"));
        assert_eq!(
            drops_label("sum without (pod, version) (x)", "version").as_deref(),
            Some("without (pod, version)")
        );
        assert_eq!(drops_label("sum without (pod) (x)", "version"), None);
        // Not an aggregation: a label value or a comment that reads like one.
        assert_eq!(drops_label("x{path=\"by (x)\"} # by (y)", "version"), None);
        // One clause keeping it is enough (an inner one may group finer).
        assert_eq!(
            drops_label("sum by (version) (max by (version, pod) (x))", "version"),
            None
        );
        assert_eq!(drops_label("increase(x[1m])", "version"), None);
    }

    #[test]
    fn a_template_whose_queries_drop_its_version_label_is_refused() {
        // generic-http's queries with versionLabel changed for Flagger (`app`), queries kept.
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/analysis-templates/generic-http.yaml"
        ))
        .unwrap()
        .replace("versionLabel: version", "versionLabel: app");
        let err = super::parse(&text, "flagger.yaml").unwrap_err().to_string();
        assert!(
            err.contains("metrics[0].query.errors: aggregates by (version), which drops the version label \"app\""),
            "{err}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: t
spec:
  metrics:
    - name: errors
      kind: errorRate
    - name: latency
      kind: latency
      compare:
        tolerance: 0.1
"#;

    #[test]
    fn a_minimal_template_gets_the_documented_defaults() {
        let t = parse(MINIMAL, "t.yaml").unwrap();
        assert_eq!(t.judge.alpha, 0.01);
        assert_eq!(t.judge.hold_budget, Duration::from_secs(600));
        assert_eq!(t.judge.on_inconclusive, InconclusivePolicy::Pause);
        assert_eq!(
            t.judge.metrics[0].method,
            Method::Compare {
                direction: Direction::Increase,
                tolerance: 0.0,
                jitter: DEFAULT_ERROR_JITTER
            }
        );
        assert_eq!(
            t.judge.metrics[1].method,
            Method::Compare {
                direction: Direction::Increase,
                tolerance: 0.1,
                jitter: DEFAULT_LATENCY_JITTER
            }
        );
        assert_eq!(t.interval, Duration::from_secs(60));
    }

    #[test]
    fn an_unknown_field_is_rejected_with_its_name() {
        let text = MINIMAL.replace("tolerance: 0.1", "tolerence: 0.1");
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(err.starts_with("t.yaml:"), "{err}");
        assert!(err.contains("tolerence"), "{err}");
    }

    #[test]
    fn an_out_of_range_value_names_the_field_and_the_fix() {
        let text = MINIMAL.replace("tolerance: 0.1", "tolerance: -1");
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert_eq!(
            err,
            "t.yaml: spec.metrics[1].compare.tolerance: is -1; must be between 0 and 10 (relative: 0.1 means the canary may be 10 % worse)"
        );
    }

    #[test]
    fn a_bad_duration_is_explained() {
        let text = MINIMAL.replace("spec:\n", "spec:\n  policy:\n    holdBudget: soon\n");
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(err.contains("spec.policy.holdBudget"), "{err}");
        assert!(err.contains("\"5m\""), "{err}");
    }

    #[test]
    fn compare_and_threshold_together_are_rejected() {
        let text = MINIMAL.replace(
            "      compare:\n        tolerance: 0.1\n",
            "      compare: {}\n      threshold: {quantile: 0.99, max: 0.5}\n",
        );
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(err.contains("spec.metrics[1].threshold"), "{err}");
    }

    #[test]
    fn a_latency_gate_needs_quantile_and_max() {
        let text = MINIMAL.replace(
            "      compare:\n        tolerance: 0.1\n",
            "      threshold: {quantile: 0.99}\n",
        );
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(err.contains("needs quantile and max"), "{err}");
    }

    #[test]
    fn duplicate_metric_names_are_rejected() {
        let text = MINIMAL.replace("name: latency", "name: errors");
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(err.contains("spec.metrics[1].name"), "{err}");
    }

    #[test]
    fn all_dry_run_is_rejected() {
        let text = MINIMAL
            .replace("kind: errorRate\n", "kind: errorRate\n      dryRun: true\n")
            .replace("kind: latency\n", "kind: latency\n      dryRun: true\n");
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(err.contains("every metric is dryRun"), "{err}");
    }

    #[test]
    fn a_value_metric_takes_limits_and_consecutive_breaches() {
        let text = MINIMAL.replace(
            "      compare:\n        tolerance: 0.1\n",
            "      compare:\n        tolerance: 0.1\n    - name: memory\n      kind: value\n      threshold: {max: 5.0e8}\n",
        );
        let t = parse(&text, "t.yaml").unwrap();
        assert_eq!(
            t.judge.metrics[2].method,
            Method::ValueRange {
                min: None,
                max: Some(5.0e8),
                fail_after: 3
            }
        );
        let text = text.replace(
            "threshold: {max: 5.0e8}",
            "threshold: {quantile: 0.9, max: 1}",
        );
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(
            err.contains("spec.metrics[2].threshold: maxRate and quantile"),
            "{err}"
        );
        let text = MINIMAL.replace(
            "kind: errorRate\n",
            "kind: errorRate\n      query: {buckets: x}\n",
        );
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(
            err.contains("spec.metrics[0].query.buckets: does not belong here"),
            "{err}"
        );
    }

    #[test]
    fn a_template_resource_validates_like_a_file() {
        let file = parse(MINIMAL, "t.yaml").unwrap().file;
        let t = from_spec(
            "AnalysisTemplate",
            "web",
            Some("shop"),
            file.spec.clone(),
            "AnalysisTemplate shop/web",
        )
        .unwrap();
        assert_eq!(t.judge, parse(MINIMAL, "t.yaml").unwrap().judge);
        let mut bad = file.spec;
        bad.alpha = Some(2.0);
        let err = from_spec(
            "AnalysisTemplate",
            "web",
            Some("shop"),
            bad,
            "AnalysisTemplate shop/web",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("AnalysisTemplate shop/web: spec.alpha: is 2"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_api_version_is_rejected() {
        let text = MINIMAL.replace("canarygate.dev/v1alpha1", "argoproj.io/v1alpha1");
        let err = parse(&text, "t.yaml").unwrap_err().to_string();
        assert!(err.contains("apiVersion"), "{err}");
    }

    #[test]
    fn templates_that_make_the_judge_meaningless_are_refused_with_the_fix() {
        let cases = [
            (
                "spec:\n  versions: {stable: canary, canary: canary}\n",
                "spec.versions: stable and canary are both \"canary\"",
            ),
            (
                "spec:\n  alpha: 1.0e-320\n",
                "spec.alpha: is 1e-320; must be between 1e-6 and 0.5",
            ),
            (
                "spec:\n  versionLabel: \"\"\n",
                "spec.versionLabel: \"\" is not a Prometheus label name",
            ),
            (
                "spec:\n  versionLabel: \"a b\"\n",
                "spec.versionLabel: \"a b\" is not a Prometheus label name",
            ),
            (
                "spec:\n  interval: 1ns\n",
                "spec.interval: is 1ns; must be between 1s and 1day",
            ),
            (
                "spec:\n  interval: 2days\n",
                "spec.interval: is 2days; must be between 1s and 1day",
            ),
            (
                "spec:\n  args: [{name: s, pattern: \"[a-z\"}]\n",
                "spec.args[0].pattern: \"[a-z\" is not a regular expression",
            ),
            (
                "spec:\n  args: [{name: s, pattern: \"[a-z]+\", default: \"A\"}]\n",
                "spec.args[0].default: \"A\" does not match",
            ),
        ];
        for (insert, want) in cases {
            let text = MINIMAL.replace("spec:\n", insert);
            let err = parse(&text, "t.yaml").unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("t.yaml: {want}")),
                "{insert}: {err}"
            );
        }
    }

    #[test]
    fn a_count_query_using_rate_is_refused() {
        for (query, refused) in [
            (
                "sum by (version) (rate(x{code=~\"5..\"}[1m]))",
                Some("rate"),
            ),
            ("sum by (version) (irate (x[1m]))", Some("irate")),
            ("sum by (version) (increase(x[1m]))", None),
            ("sum by (version) (increase(x{route=\"rate(\"}[1m]))", None),
            ("sum by (version) (increase(my_rate(x[1m])))", None),
            ("sum by (version) (increase(x:rate5m[1m]))", None),
        ] {
            let text = MINIMAL.replace(
                "kind: errorRate\n",
                &format!("kind: errorRate\n      query: {{errors: '{query}', requests: 'sum by (version) (increase(x[1m]))'}}\n"),
            );
            match (parse(&text, "t.yaml"), refused) {
                (Ok(_), None) => {}
                (Err(e), Some(f)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(&format!(
                            "spec.metrics[0].query.errors: uses {f}(), a per-second rate"
                        )) && e.contains("increase("),
                        "{e}"
                    );
                }
                (got, want) => panic!("{query}: {got:?}, wanted {want:?}"),
            }
        }
    }
}
