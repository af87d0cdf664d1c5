//! Reading the decision record in a Rollout's status, for every report of it (Grafana
//! annotations, notifications): which records one reconcile added, and each metric's evidence as
//! one line a human reads.

use crate::crd::rollout::{DecisionRecord, MetricRecord};

/// The records of `new` that `old` does not hold. Both are newest last and capped, so `new` is a
/// tail of `old` (possibly with its oldest entries dropped) followed by the new records: the new
/// ones are what follows the longest suffix of `old` that `new` begins with.
pub fn new_decisions<'a>(
    old: &[DecisionRecord],
    new: &'a [DecisionRecord],
) -> &'a [DecisionRecord] {
    let kept = (0..=old.len())
        .map(|dropped| &old[dropped..])
        .find(|tail| new.starts_with(tail))
        .map_or(0, <[DecisionRecord]>::len);
    &new[kept..]
}

/// `name: verdict — reason (e=<e>/<failAt>, estimate <x> [<low>, <high>], canary <c>, stable <s>)`,
/// leaving out what the record does not hold.
pub fn metric_line(m: &MetricRecord) -> String {
    let mut line = format!("{}: {}", m.name, m.verdict);
    if !m.reason.is_empty() {
        line.push_str(" — ");
        line.push_str(&m.reason);
    }
    let mut parts = Vec::new();
    if let Some(e) = m.e_value {
        parts.push(match m.fail_at {
            Some(at) => format!("e={}/{}", num(e), num(at)),
            None => format!("e={}", num(e)),
        });
    } else if let Some(at) = m.fail_at {
        parts.push(format!("fails at e={}", num(at)));
    }
    if let Some(x) = m.estimate {
        let mut part = format!("estimate {}", num(x));
        if let (Some(low), Some(high)) = (m.estimate_low, m.estimate_high) {
            part.push_str(&format!(" [{}, {}]", num(low), num(high)));
        }
        parts.push(part);
    }
    if let Some(c) = &m.canary {
        parts.push(format!("canary {c}"));
    }
    if let Some(s) = &m.stable {
        parts.push(format!("stable {s}"));
    }
    if !parts.is_empty() {
        line.push_str(&format!(" ({})", parts.join(", ")));
    }
    line
}

/// A number with four significant digits at most, without trailing zeros: `20`, `25.31`,
/// `0.0312`.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 15) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A failing error-rate metric with every piece of evidence, for tests of the reports.
#[cfg(test)]
pub(crate) fn failing_error_rate() -> MetricRecord {
    MetricRecord {
        name: "error-rate".into(),
        verdict: "fail".into(),
        reason: "canary errors above stable".into(),
        e_value: Some(31.25),
        fail_at: Some(20.0),
        estimate: Some(3.1),
        estimate_low: Some(2.2),
        estimate_high: Some(4.4),
        canary: Some("31/1000".into()),
        stable: Some("10/1000".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(20.0), "20");
        assert_eq!(num(31.25), "31.25");
        assert_eq!(num(0.031_234), "0.03123");
        assert_eq!(num(1_234_567.8), "1234568");
        assert_eq!(num(-2.5), "-2.5");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn a_metric_line_leaves_out_what_the_record_lacks() {
        assert_eq!(
            metric_line(&failing_error_rate()),
            "error-rate: fail — canary errors above stable (e=31.25/20, estimate 3.1 [2.2, 4.4], canary 31/1000, stable 10/1000)"
        );
        let bare = MetricRecord {
            name: "latency".into(),
            verdict: "inconclusive".into(),
            fail_at: Some(100.0),
            ..MetricRecord::default()
        };
        assert_eq!(metric_line(&bare), "latency: inconclusive (fails at e=100)");
    }
}
