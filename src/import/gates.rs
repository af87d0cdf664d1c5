//! A peer's threshold check (a PromQL query and the limits its value must stay within) as a
//! canary-gate metric that judges the same numbers: an error or success ratio becomes an
//! `errorRate` gate (`threshold.maxRate`), a `histogram_quantile` a `latency` gate
//! (`threshold.quantile`/`max`), anything else a `value` gate (`threshold.min`/`max`). The query's
//! whole selection is labelled `version="canary"` with `label_replace`, since the peer judged
//! its result as the canary's number. For ratios and quantiles the canary-vs-stable comparison
//! is suggested beside it (never added on the user's behalf).

use crate::template::spec::{KindSpec, MetricSpec, QuerySpec, ThresholdSpec};

use super::condition::Limits;
use super::promql::{self, Shape, negate};

/// The version label the imported templates use; the label `label_replace` gives the canary.
pub const VERSION_LABEL: &str = "version";

/// A carried-over gate.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The canary-gate metric.
    pub metric: MetricSpec,
    /// How it differs from the peer's check (for the report).
    pub changes: Vec<String>,
    /// The canary-vs-stable comparison of the same numbers, when the shape allows one.
    pub suggestion: Option<String>,
}

fn as_canary(expr: &str) -> String {
    format!("label_replace({expr}, \"{VERSION_LABEL}\", \"canary\", \"\", \"\")")
}

fn fmt_num(v: f64) -> String {
    let r = (v * 1e9).round() / 1e9;
    format!("{r}")
}

/// The gate for `query` (canary-gate placeholders) whose value passes within `limits`;
/// `fail_after` consecutive intervals outside them fail a `value` gate.
///
/// # Errors
/// When the limits are empty (nothing can fail).
pub fn gate(name: &str, query: &str, limits: Limits, fail_after: u32) -> Result<Gate, String> {
    if limits.min.is_none() && limits.max.is_none() {
        return Err("has no limit, so it never fails".into());
    }
    let query = query.trim();
    let mut changes = Vec::new();
    let shape = match promql::shape(query) {
        Ok(s) => s,
        Err(e) => {
            changes.push(format!(
                "the importer could not parse the query ({e}); check it with `canary-gate template lint --prometheus URL`"
            ));
            Shape::Other { scalar: false }
        }
    };
    let core = |value: promql::Affine| {
        let (a, b) = (
            limits.min.map(|v| value.core(v)),
            limits.max.map(|v| value.core(v)),
        );
        if value.scale > 0.0 { (a, b) } else { (b, a) }
    };
    match &shape {
        Shape::Ratio {
            trials,
            event,
            value,
        } => {
            let (lo, hi) = core(*value);
            let chosen = match (lo, hi) {
                (None, Some(hi)) => Some((event.clone(), hi)),
                (Some(lo), None) => Some((negate(event), 1.0 - lo)),
                _ => None,
            };
            if let Some((events, max_rate)) = chosen.filter(|(_, r)| *r > 1e-9 && *r < 0.999_999) {
                let errors = as_canary(&format!("sum({})", trials.increase(Some(&events))));
                let requests = as_canary(&format!("sum({})", trials.increase(None)));
                changes.push(format!(
                    "judged as an errorRate gate: the share of {} requests matching {events} may be at most {} (maxRate); \
                     canary-gate counts them per interval (increase over {{{{interval}}}} instead of the query's own rate window) \
                     and tests the canary's rate against the limit sequentially, so a few errors at low traffic do not fail it",
                    trials.metric,
                    fmt_num(max_rate)
                ));
                let suggestion = format!(
                    "a canary-vs-stable comparison of the same ratio (no fixed limit; a regression relative to the stable version fails): \
                     kind: errorRate, compare: {{direction: increase}}, query.errors: sum by ({VERSION_LABEL}) ({}), \
                     query.requests: sum by ({VERSION_LABEL}) ({}) — for series that carry {VERSION_LABEL}=stable|canary and a selector that matches both versions",
                    trials.increase(Some(&events)),
                    trials.increase(None)
                );
                return Ok(Gate {
                    metric: MetricSpec {
                        name: name.to_string(),
                        kind: KindSpec::ErrorRate,
                        query: Some(QuerySpec {
                            errors: Some(errors),
                            requests: Some(requests),
                            ..QuerySpec::default()
                        }),
                        compare: None,
                        threshold: Some(ThresholdSpec {
                            max_rate: Some((max_rate * 1e9).round() / 1e9),
                            ..ThresholdSpec::default()
                        }),
                        critical: Some(true),
                        weight: None,
                        dry_run: None,
                        min_samples: None,
                    },
                    changes,
                    suggestion: Some(suggestion),
                });
            }
        }
        Shape::Quantile { q, buckets, value } => {
            let (lo, hi) = core(*value);
            if let (None, Some(bound)) = (lo, hi)
                && bound > 0.0
                && *q > 0.0
                && *q < 1.0
            {
                let query = format!(
                    "sum by ({VERSION_LABEL}, le) ({})",
                    as_canary(&buckets.increase(None))
                );
                changes.push(format!(
                    "judged as a latency gate: the {} quantile of {} may be at most {} in the histogram's unit{}; canary-gate \
                     counts the buckets per interval (increase over {{{{interval}}}}) and tests the share of requests slower than \
                     the bound sequentially — use a bucket bound",
                    q,
                    buckets.metric,
                    fmt_num(bound),
                    if value.scale == 1.0 && value.offset == 0.0 {
                        String::new()
                    } else {
                        " (the query's scaling undone)".to_string()
                    }
                ));
                let suggestion = format!(
                    "a canary-vs-stable comparison of the whole latency distribution (a slower canary fails, no fixed limit): \
                     kind: latency, compare: {{tolerance: 0.05}}, query.buckets: sum by ({VERSION_LABEL}, le) ({}) — for series that \
                     carry {VERSION_LABEL}=stable|canary and a selector that matches both versions",
                    buckets.increase(None)
                );
                return Ok(Gate {
                    metric: MetricSpec {
                        name: name.to_string(),
                        kind: KindSpec::Latency,
                        query: Some(QuerySpec {
                            buckets: Some(query),
                            ..QuerySpec::default()
                        }),
                        compare: None,
                        threshold: Some(ThresholdSpec {
                            quantile: Some(*q),
                            max: Some((bound * 1e9).round() / 1e9),
                            ..ThresholdSpec::default()
                        }),
                        critical: Some(true),
                        weight: None,
                        dry_run: None,
                        min_samples: None,
                    },
                    changes,
                    suggestion: Some(suggestion),
                });
            }
        }
        Shape::Other { .. } => {}
    }
    // Any other query, or limits an errorRate / latency gate cannot express: its value.
    let scalar = matches!(shape, Shape::Other { scalar: true });
    let inner = if scalar {
        format!("vector({query})")
    } else {
        format!("({query})")
    };
    let agg = if limits.max.is_none() { "min" } else { "max" };
    changes.push(format!(
        "judged as a value gate: the query's value must stay within the limits, {fail_after} consecutive interval(s) \
         outside fail it{}",
        if scalar {
            String::new()
        } else {
            format!("; when it returns several series the {} is judged", if agg == "min" { "lowest" } else { "highest" })
        }
    ));
    Ok(Gate {
        metric: MetricSpec {
            name: name.to_string(),
            kind: KindSpec::Value,
            query: Some(QuerySpec {
                value: Some(format!(
                    "{agg} by ({VERSION_LABEL}) ({})",
                    as_canary(&inner)
                )),
                ..QuerySpec::default()
            }),
            compare: None,
            threshold: Some(ThresholdSpec {
                min: limits.min,
                max: limits.max,
                fail_after: Some(fail_after.max(1)),
                ..ThresholdSpec::default()
            }),
            critical: Some(true),
            weight: None,
            dry_run: None,
            min_samples: None,
        },
        changes,
        suggestion: matches!(shape, Shape::Ratio { .. } | Shape::Quantile { .. }).then(|| {
            "the query is a ratio or a quantile whose limits the importer could not turn into an errorRate or latency gate; \
             a canary-vs-stable comparison (kind errorRate or latency with compare) would judge it without a fixed limit"
                .to_string()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(min: Option<f64>, max: Option<f64>) -> Limits {
        Limits { min, max }
    }

    #[test]
    fn a_success_ratio_with_a_minimum_becomes_an_error_rate_gate_on_its_complement() {
        let q = "sum(irate(envoy_cluster_upstream_rq_xx{envoy_cluster_name=\"{{args.cluster}}\",envoy_response_code_class!~\"5.*\"}[5m])) /\n sum(irate(envoy_cluster_upstream_rq_xx{envoy_cluster_name=\"{{args.cluster}}\"}[5m]))";
        let g = gate("success-rate", q, lim(Some(0.99), None), 4).unwrap();
        let query = g.metric.query.unwrap();
        assert_eq!(
            query.errors.unwrap(),
            "label_replace(sum(increase(envoy_cluster_upstream_rq_xx{envoy_cluster_name=\"{{args.cluster}}\", envoy_response_code_class=~\"5.*\"}[{{interval}}])), \"version\", \"canary\", \"\", \"\")"
        );
        assert_eq!(
            query.requests.unwrap(),
            "label_replace(sum(increase(envoy_cluster_upstream_rq_xx{envoy_cluster_name=\"{{args.cluster}}\"}[{{interval}}])), \"version\", \"canary\", \"\", \"\")"
        );
        assert_eq!(g.metric.threshold.unwrap().max_rate, Some(0.01));
        assert_eq!(g.metric.critical, Some(true));
        assert!(g.suggestion.unwrap().contains("sum by (version) (increase(envoy_cluster_upstream_rq_xx{envoy_cluster_name=\"{{args.cluster}}\", envoy_response_code_class=~\"5.*\"}[{{interval}}]))"));
    }

    #[test]
    fn an_error_percentage_with_a_maximum_keeps_its_event_matcher() {
        let q = "100 - sum(rate(http_requests_total{job=\"{{args.target}}\", status!~\"5.*\"}[{{interval}}])) / sum(rate(http_requests_total{job=\"{{args.target}}\"}[{{interval}}])) * 100";
        let g = gate("error-rate", q, lim(None, Some(1.0)), 1).unwrap();
        let errors = g.metric.query.unwrap().errors.unwrap();
        assert!(errors.contains("status=~\"5.*\""), "{errors}");
        assert_eq!(g.metric.threshold.unwrap().max_rate, Some(0.01));
    }

    #[test]
    fn a_p99_in_seconds_over_a_millisecond_histogram_is_a_latency_gate_in_milliseconds() {
        let q = "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{destination_workload=~\"{{args.target}}\"}[{{interval}}])) by (le)) / 1000";
        let g = gate("latency", q, lim(None, Some(0.5)), 1).unwrap();
        let t = g.metric.threshold.clone().unwrap();
        assert_eq!((t.quantile, t.max), (Some(0.99), Some(500.0)));
        assert_eq!(
            g.metric.query.unwrap().buckets.unwrap(),
            "sum by (version, le) (label_replace(increase(istio_request_duration_milliseconds_bucket{destination_workload=~\"{{args.target}}\"}[{{interval}}]), \"version\", \"canary\", \"\", \"\"))"
        );
    }

    #[test]
    fn other_queries_and_unexpressible_limits_are_value_gates() {
        let g = gate(
            "mem",
            "avg(process_resident_memory_bytes{app=\"x\"})",
            lim(None, Some(1e9)),
            3,
        )
        .unwrap();
        assert_eq!(g.metric.kind, KindSpec::Value);
        assert_eq!(
            g.metric.query.unwrap().value.unwrap(),
            "max by (version) (label_replace((avg(process_resident_memory_bytes{app=\"x\"})), \"version\", \"canary\", \"\", \"\"))"
        );
        assert_eq!(g.metric.threshold.unwrap().fail_after, Some(3));
        // A latency quantile with a lower limit is not a latency gate.
        let q = "histogram_quantile(0.5, sum(rate(x_bucket[1m])) by (le))";
        let g = gate("p50", q, lim(Some(0.1), None), 1).unwrap();
        assert_eq!(g.metric.kind, KindSpec::Value);
        assert!(g.suggestion.is_some());
        let g = gate("s", "scalar(sum(up))", lim(Some(1.0), None), 1).unwrap();
        assert!(
            g.metric
                .query
                .unwrap()
                .value
                .unwrap()
                .starts_with("min by (version) (label_replace(vector(scalar(sum(up)))")
        );
        assert!(gate("x", "up", Limits::default(), 1).is_err());
    }
}
