//! The shape of a peer's PromQL query, parsed with `promql-parser`: an error (or success) ratio of
//! one counter, a `histogram_quantile` over one histogram, or anything else — each possibly
//! scaled (`* 100`, `100 - …`, `/ 1000`). Recognised shapes become canary-gate's count queries
//! (`increase(…[{{interval}}])`, what the judge needs); placeholders (`{{args.NAME}}`,
//! `{{interval}}`) survive the round trip.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, value::ValueType};

/// `value = offset + scale * core`: how the query's number relates to its core ratio or quantile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Added.
    pub offset: f64,
    /// Multiplied.
    pub scale: f64,
}

impl Affine {
    const IDENTITY: Self = Self {
        offset: 0.0,
        scale: 1.0,
    };

    /// The core value at which the query's value is `v`.
    pub fn core(&self, v: f64) -> f64 {
        (v - self.offset) / self.scale
    }
}

/// A metric selector: name and label matchers, printable as PromQL.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Metric name.
    pub metric: String,
    /// Label matchers.
    pub matchers: Vec<Matcher>,
    /// The placeholders the sentinels stand for.
    restore: Vec<(String, String)>,
}

impl Selector {
    /// `metric{a="b",…}` with `extra` appended, placeholders restored.
    pub fn render(&self, extra: Option<&Matcher>) -> String {
        let mut parts: Vec<String> = self.matchers.iter().map(|m| m.to_string()).collect();
        if let Some(m) = extra {
            parts.push(m.to_string());
        }
        let text = if parts.is_empty() {
            self.metric.clone()
        } else {
            format!("{}{{{}}}", self.metric, parts.join(", "))
        };
        restore(&text, &self.restore)
    }

    /// `increase(<selector>[{{interval}}])`.
    pub fn increase(&self, extra: Option<&Matcher>) -> String {
        format!("increase({}[{{{{interval}}}}])", self.render(extra))
    }
}

/// What a query computes.
#[derive(Debug, Clone)]
pub enum Shape {
    /// `sum(rate(M{S, E}[w])) / sum(rate(M{S}[w]))`: the share of `trials` matching `event`.
    Ratio {
        /// The denominator: all trials.
        trials: Selector,
        /// The numerator's one extra matcher.
        event: Matcher,
        /// How the query's value relates to the ratio.
        value: Affine,
    },
    /// `histogram_quantile(q, sum by (le) (rate(M_bucket{S}[w])))`.
    Quantile {
        /// The quantile.
        q: f64,
        /// The bucket series.
        buckets: Selector,
        /// How the query's value relates to the quantile (e.g. `/ 1000`: ms to s).
        value: Affine,
    },
    /// Anything else; `scalar` when it evaluates to a scalar.
    Other {
        /// Whether the query returns a scalar rather than a vector.
        scalar: bool,
    },
}

/// The negation of a matcher (`=~` ↔ `!~`, `=` ↔ `!=`).
pub fn negate(m: &Matcher) -> Matcher {
    let op = match &m.op {
        MatchOp::Equal => MatchOp::NotEqual,
        MatchOp::NotEqual => MatchOp::Equal,
        MatchOp::Re(r) => MatchOp::NotRe(r.clone()),
        MatchOp::NotRe(r) => MatchOp::Re(r.clone()),
    };
    Matcher {
        op,
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

/// Replaces each `{{…}}` with a sentinel PromQL accepts anywhere a name or string goes (and a
/// placeholder that is a whole range, `[{{interval}}]`, with `[1m]`); returns the text and the
/// sentinels to restore.
fn with_sentinels(query: &str) -> (String, Vec<(String, String)>) {
    let mut out = String::with_capacity(query.len());
    let mut restore: Vec<(String, String)> = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let placeholder = &rest[start..start + len + 2];
        out.push_str(&rest[..start]);
        let before = out.trim_end().ends_with('[');
        let after = rest[start + len + 2..].trim_start().starts_with(']');
        if before && after {
            out.push_str("1m");
        } else if let Some((sentinel, _)) = restore.iter().find(|(_, p)| p.as_str() == placeholder)
        {
            // The same placeholder gets the same sentinel, so equal selectors stay equal.
            out.push_str(sentinel);
        } else {
            let sentinel = format!("cgph{}x", restore.len());
            out.push_str(&sentinel);
            restore.push((sentinel, placeholder.to_string()));
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    (out, restore)
}

fn restore(text: &str, restore: &[(String, String)]) -> String {
    let mut out = text.to_string();
    // Longest sentinels first, so `cgph1x` never replaces inside `cgph11x`.
    let mut pairs: Vec<&(String, String)> = restore.iter().collect();
    pairs.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    for (sentinel, placeholder) in pairs {
        out = out.replace(sentinel.as_str(), placeholder);
    }
    out
}

/// Parses `query` (with placeholders) and recognises its shape.
///
/// # Errors
/// When PromQL cannot be parsed; the parser's message.
pub fn shape(query: &str) -> Result<Shape, String> {
    let (text, sentinels) = with_sentinels(query);
    let expr = parser::parse(&text)?;
    let scalar = expr.value_type() == ValueType::Scalar;
    let (core, value) = affine(&expr);
    if let Some((trials, event)) = ratio(core, &sentinels) {
        return Ok(Shape::Ratio {
            trials,
            event,
            value,
        });
    }
    if let Some((q, buckets)) = quantile(core, &sentinels) {
        return Ok(Shape::Quantile { q, buckets, value });
    }
    Ok(Shape::Other { scalar })
}

fn number(e: &Expr) -> Option<f64> {
    match e {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Paren(p) => number(&p.expr),
        _ => None,
    }
}

/// Peels `k * e`, `e * k`, `e / k`, `k - e`, `e - k`, `e + k`, `k + e` and parentheses.
fn affine(e: &Expr) -> (&Expr, Affine) {
    match e {
        Expr::Paren(p) => affine(&p.expr),
        Expr::Binary(b) if b.modifier.is_none() => {
            let op = b.op.to_string();
            match (number(&b.lhs), number(&b.rhs), op.as_str()) {
                (None, Some(k), "*") | (Some(k), None, "*") => {
                    let inner = if number(&b.lhs).is_some() {
                        &b.rhs
                    } else {
                        &b.lhs
                    };
                    let (core, a) = affine(inner);
                    (
                        core,
                        Affine {
                            offset: a.offset * k,
                            scale: a.scale * k,
                        },
                    )
                }
                (None, Some(k), "/") if k != 0.0 => {
                    let (core, a) = affine(&b.lhs);
                    (
                        core,
                        Affine {
                            offset: a.offset / k,
                            scale: a.scale / k,
                        },
                    )
                }
                (Some(k), None, "-") => {
                    let (core, a) = affine(&b.rhs);
                    (
                        core,
                        Affine {
                            offset: k - a.offset,
                            scale: -a.scale,
                        },
                    )
                }
                (None, Some(k), "-") => {
                    let (core, a) = affine(&b.lhs);
                    (
                        core,
                        Affine {
                            offset: a.offset - k,
                            scale: a.scale,
                        },
                    )
                }
                (None, Some(k), "+") | (Some(k), None, "+") => {
                    let inner = if number(&b.lhs).is_some() {
                        &b.rhs
                    } else {
                        &b.lhs
                    };
                    let (core, a) = affine(inner);
                    (
                        core,
                        Affine {
                            offset: a.offset + k,
                            scale: a.scale,
                        },
                    )
                }
                _ => (e, Affine::IDENTITY),
            }
        }
        _ => (e, Affine::IDENTITY),
    }
}

/// `rate|irate|increase(M{…}[w])`, optionally inside a `sum` without grouping.
fn counter(e: &Expr, sentinels: &[(String, String)]) -> Option<Selector> {
    match e {
        Expr::Paren(p) => counter(&p.expr, sentinels),
        Expr::Aggregate(a) if a.op.to_string() == "sum" && a.param.is_none() => {
            let grouped = a.modifier.as_ref().is_some_and(|m| {
                matches!(m, promql_parser::parser::LabelModifier::Exclude(_))
                    || !m.labels().labels.is_empty()
            });
            if grouped {
                return None;
            }
            counter(&a.expr, sentinels)
        }
        Expr::Call(c) if matches!(c.func.name, "rate" | "irate" | "increase") => {
            match c.args.args.first().map(|b| b.as_ref()) {
                Some(Expr::MatrixSelector(m)) if m.vs.offset.is_none() && m.vs.at.is_none() => {
                    selector(&m.vs, sentinels)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn selector(
    vs: &promql_parser::parser::VectorSelector,
    sentinels: &[(String, String)],
) -> Option<Selector> {
    if !vs.matchers.or_matchers.is_empty() {
        return None;
    }
    let metric = vs.name.clone()?;
    Some(Selector {
        metric,
        matchers: vs
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name != "__name__")
            .cloned()
            .collect(),
        restore: sentinels.to_vec(),
    })
}

fn same(a: &Matcher, b: &Matcher) -> bool {
    a.name == b.name && a.value == b.value && a.op.to_string() == b.op.to_string()
}

/// `N / D` where N selects what D selects plus one matcher.
fn ratio(e: &Expr, sentinels: &[(String, String)]) -> Option<(Selector, Matcher)> {
    let Expr::Binary(b) = e else { return None };
    if b.op.to_string() != "/" || b.modifier.is_some() {
        return None;
    }
    let num = counter(&b.lhs, sentinels)?;
    let den = counter(&b.rhs, sentinels)?;
    if num.metric != den.metric || num.matchers.len() != den.matchers.len() + 1 {
        return None;
    }
    let mut extra = Vec::new();
    for m in &num.matchers {
        if !den.matchers.iter().any(|d| same(d, m)) {
            extra.push(m.clone());
        }
    }
    if extra.len() != 1
        || den
            .matchers
            .iter()
            .any(|d| !num.matchers.iter().any(|m| same(d, m)))
    {
        return None;
    }
    Some((den, extra.remove(0)))
}

/// `histogram_quantile(q, sum by (le) (rate(M{…}[w])))`.
fn quantile(e: &Expr, sentinels: &[(String, String)]) -> Option<(f64, Selector)> {
    let Expr::Call(c) = e else { return None };
    if c.func.name != "histogram_quantile" || c.args.args.len() != 2 {
        return None;
    }
    let q = number(&c.args.args[0])?;
    let mut inner = c.args.args[1].as_ref();
    while let Expr::Paren(p) = inner {
        inner = &p.expr;
    }
    let Expr::Aggregate(a) = inner else {
        return None;
    };
    let by_le = matches!(&a.modifier, Some(promql_parser::parser::LabelModifier::Include(ls))
        if ls.labels.len() == 1 && ls.labels[0] == "le");
    if a.op.to_string() != "sum" || !by_le {
        return None;
    }
    let Expr::Call(rate) = a.expr.as_ref() else {
        return None;
    };
    if !matches!(rate.func.name, "rate" | "irate" | "increase") {
        return None;
    }
    match rate.args.args.first().map(|b| b.as_ref()) {
        Some(Expr::MatrixSelector(m)) if m.vs.offset.is_none() && m.vs.at.is_none() => {
            Some((q, selector(&m.vs, sentinels)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_ratio_in_percent_is_a_ratio_with_its_event_matcher() {
        let q = r#"100 - sum(rate(istio_requests_total{reporter="source", destination_workload=~"{{args.target}}", response_code!~"5.*"}[{{interval}}])) / sum(rate(istio_requests_total{reporter="source", destination_workload=~"{{args.target}}"}[{{interval}}])) * 100"#;
        let Shape::Ratio {
            trials,
            event,
            value,
        } = shape(q).unwrap()
        else {
            panic!("not a ratio")
        };
        assert_eq!(
            value,
            Affine {
                offset: 100.0,
                scale: -100.0
            }
        );
        assert_eq!(event.to_string(), "response_code!~\"5.*\"");
        assert_eq!(
            trials.increase(Some(&negate(&event))),
            r#"increase(istio_requests_total{reporter="source", destination_workload=~"{{args.target}}", response_code=~"5.*"}[{{interval}}])"#
        );
        // 99 % success at least: the ratio of non-5xx at least 0.99.
        assert!((value.core(1.0) - 0.99).abs() < 1e-12);
    }

    #[test]
    fn a_quantile_in_seconds_of_a_millisecond_histogram_keeps_its_scale() {
        let q = "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter=\"source\"}[1m])) by (le)) / 1000";
        let Shape::Quantile { q, buckets, value } = shape(q).unwrap() else {
            panic!("not a quantile")
        };
        assert_eq!(q, 0.99);
        assert_eq!(value.core(0.5), 500.0);
        assert_eq!(
            buckets.render(None),
            "istio_request_duration_milliseconds_bucket{reporter=\"source\"}"
        );
    }

    #[test]
    fn grouped_sums_other_metrics_and_scalars_are_other() {
        for q in [
            "sum(rate(a{x=\"1\",code=\"500\"}[1m])) by (pod) / sum(rate(a{x=\"1\"}[1m])) by (pod)",
            "sum(rate(a{code=\"500\"}[1m])) / sum(rate(b[1m]))",
            "sum(rate(a{code=\"500\", y=\"2\"}[1m])) / sum(rate(a[1m]))",
            "avg(container_memory_working_set_bytes{pod=~\"{{args.app}}-.*\"})",
        ] {
            assert!(
                matches!(shape(q).unwrap(), Shape::Other { scalar: false }),
                "{q}"
            );
        }
        assert!(matches!(
            shape("scalar(sum(up))").unwrap(),
            Shape::Other { scalar: true }
        ));
        assert!(shape("sum(rate(x[5m]").is_err());
    }
}
