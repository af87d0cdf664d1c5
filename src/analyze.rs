//! `analyze`: the judge over a past window ("would this template have caught yesterday's bad
//! deploy?"), the observation stream it saw (for `replay`), and a report for humans.

use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::WindowInterval;
use crate::analysis::{
    AnalysisError, Counts, Decision, Histogram, Judge, Judgement, MetricSample, StepContext,
};
use crate::metrics::counters::{CumulativeHistogram, VersionCounters};
use crate::metrics::recorded::RecordedInterval;
use crate::template::Template;

/// What the judge made of a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowVerdict {
    /// Template name.
    pub template: String,
    /// Window start, unix seconds.
    pub from: f64,
    /// Window end, unix seconds.
    pub to: f64,
    /// Intervals judged.
    pub intervals: usize,
    /// The first interval that decided to roll back, if any.
    pub first_rollback: Option<Judgement>,
    /// The judgement after the last interval (the whole window as one completed step).
    pub last: Judgement,
    /// The observations as a recorded stream (baseline line first).
    #[serde(skip)]
    pub stream: Vec<RecordedInterval>,
}

/// Judges every interval of a window as one step that completes with the last interval.
///
/// # Errors
/// When the intervals do not carry one sample per metric, or the window is empty.
pub fn judge_window(
    template: &Template,
    from: f64,
    to: f64,
    intervals: &[WindowInterval],
) -> Result<WindowVerdict, AnalysisError> {
    let Some(last_index) = intervals.len().checked_sub(1) else {
        return Err(AnalysisError::SampleCount {
            expected: template.judge.metrics.len(),
            got: 0,
        });
    };
    let mut judge = Judge::new(template.judge.clone()).judging_one_window();
    let mut recorder = Recorder::default();
    let mut stream = vec![recorder.line(from, 0.0, false)];
    let mut first_rollback = None;
    let mut last = None;
    for (i, interval) in intervals.iter().enumerate() {
        let weight = observed_weight(&interval.samples);
        let ctx = StepContext {
            t: interval.t,
            step: 0,
            weight,
            step_complete: i == last_index,
            last_step: true,
        };
        let judgement = judge.observe(ctx, &interval.samples)?;
        if judgement.decision == Decision::Rollback && first_rollback.is_none() {
            first_rollback = Some(judgement.clone());
        }
        recorder.add(&interval.samples);
        stream.push(recorder.line(interval.t, weight, i == last_index));
        last = Some(judgement);
    }
    Ok(WindowVerdict {
        template: template.name().to_string(),
        from,
        to,
        intervals: intervals.len(),
        first_rollback,
        last: last.expect("at least one interval"),
        stream,
    })
}

/// The canary's share of requests in an interval (percent), from the first metric with counts.
fn observed_weight(samples: &[MetricSample]) -> f64 {
    let share = |s: f64, c: f64| {
        if s + c > 0.0 {
            100.0 * c / (s + c)
        } else {
            0.0
        }
    };
    samples
        .iter()
        .find_map(|s| match s {
            MetricSample::Counts { stable, canary } => Some(share(stable.total, canary.total)),
            MetricSample::Histogram { stable, canary } => {
                Some(share(stable.count(), canary.count()))
            }
            MetricSample::Value { .. } | MetricSample::Missing(_) => None,
        })
        .unwrap_or(0.0)
}

/// Accumulates the first error-rate and the first latency metric into cumulative counters.
#[derive(Debug, Default)]
struct Recorder {
    stable: (Counts, Option<Histogram>),
    canary: (Counts, Option<Histogram>),
}

impl Recorder {
    fn add(&mut self, samples: &[MetricSample]) {
        if let Some((s, c)) = samples.iter().find_map(|x| match x {
            MetricSample::Counts { stable, canary } if stable.is_valid() && canary.is_valid() => {
                Some((stable, canary))
            }
            _ => None,
        }) {
            for (acc, d) in [(&mut self.stable.0, s), (&mut self.canary.0, c)] {
                acc.events += d.events;
                acc.total += d.total;
            }
        }
        if let Some((s, c)) = samples.iter().find_map(|x| match x {
            MetricSample::Histogram { stable, canary } => Some((stable, canary)),
            _ => None,
        }) {
            for (acc, d) in [(&mut self.stable.1, s), (&mut self.canary.1, c)] {
                match acc {
                    Some(h) if h.bounds == d.bounds => {
                        let _ = h.add(d);
                    }
                    Some(_) => {}
                    None => *acc = Some(d.clone()),
                }
            }
        }
    }

    fn line(&self, t: f64, weight: f64, complete: bool) -> RecordedInterval {
        let counters = |(counts, hist): &(Counts, Option<Histogram>)| VersionCounters {
            requests: counts.total,
            errors: counts.events,
            latency: hist.as_ref().map(cumulative),
        };
        RecordedInterval {
            t,
            weight,
            step: 0,
            step_complete: complete,
            last_step: true,
            stable: counters(&self.stable),
            canary: counters(&self.canary),
        }
    }
}

fn cumulative(h: &Histogram) -> CumulativeHistogram {
    let mut cum = 0.0;
    let buckets = h
        .counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cum += c;
            (h.bounds.get(i).copied().unwrap_or(f64::INFINITY), cum)
        })
        .collect();
    CumulativeHistogram {
        buckets,
        sum: h.sum,
        count: cum,
    }
}

fn time(t: f64) -> String {
    std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs_f64(t.max(0.0)))
        .map_or_else(
            || format!("{t}"),
            |st| humantime::format_rfc3339_seconds(st).to_string(),
        )
}

fn number(x: f64) -> String {
    if !x.is_finite() {
        "∞".into()
    } else if x != 0.0 && (x.abs() >= 1e4 || x.abs() < 1e-2) {
        format!("{x:.2e}")
    } else {
        format!("{x:.2}")
    }
}

/// A plain-text report: the decision, when it would have rolled back, and each metric's evidence.
pub fn render_text(v: &WindowVerdict) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "template {} over {} … {} ({} intervals)",
        v.template,
        time(v.from),
        time(v.to),
        v.intervals
    );
    match &v.first_rollback {
        Some(j) => {
            let _ = writeln!(out, "decision: ROLLBACK at {} — {}", time(j.t), j.reason);
        }
        None => {
            let _ = writeln!(
                out,
                "decision: {} — {}",
                v.last.decision.as_str().to_uppercase(),
                v.last.reason
            );
        }
    }
    let shown = v.first_rollback.as_ref().unwrap_or(&v.last);
    let _ = writeln!(
        out,
        "\n{:<16} {:<13} {:>9} {:>8}  {:<22} {:<22} estimate",
        "metric", "verdict", "e-value", "fail at", "canary", "stable"
    );
    for m in &shown.metrics {
        let counts = |c: &Counts| {
            if c.total <= 0.0 {
                "-".to_string()
            } else if c.events > 0.0
                || m.evidence.canary.events > 0.0
                || m.evidence.stable.events > 0.0
            {
                format!(
                    "{}/{} ({:.3}%)",
                    number(c.events),
                    number(c.total),
                    100.0 * c.events / c.total
                )
            } else {
                format!("{} requests", number(c.total))
            }
        };
        let estimate = m.estimate.as_ref().map_or(String::new(), |e| {
            format!(
                "{} {} [{}, {}]",
                e.quantity,
                number(e.value),
                number(e.low),
                number(e.high)
            )
        });
        let _ = writeln!(
            out,
            "{:<16} {:<13} {:>9} {:>8}  {:<22} {:<22} {}",
            m.name,
            format!("{:?}{}", m.verdict, if m.dry_run { " (dry)" } else { "" }).to_lowercase(),
            number(m.e_value),
            number(m.fail_at),
            counts(&m.evidence.canary),
            counts(&m.evidence.stable),
            estimate
        );
        if let (Some(s), Some(c)) = (m.evidence.stable_quantiles, m.evidence.canary_quantiles) {
            let q = |x: Option<f64>| x.map_or("-".into(), number);
            let _ = writeln!(
                out,
                "{:<16} p50/p90/p99 canary {}/{}/{}  stable {}/{}/{}",
                "",
                q(c.p50),
                q(c.p90),
                q(c.p99),
                q(s.p50),
                q(s.p90),
                q(s.p99)
            );
        }
        let _ = writeln!(out, "{:<16} {}", "", m.reason);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  metrics:
    - {name: errors, kind: errorRate, minSamples: 10}
"#;

    fn interval(t: f64, canary_errors: f64) -> WindowInterval {
        WindowInterval {
            t,
            samples: vec![MetricSample::Counts {
                stable: Counts::new(1.0, 900.0),
                canary: Counts::new(canary_errors, 100.0),
            }],
        }
    }

    #[test]
    fn a_regression_in_the_window_is_found_with_its_time() {
        let template = crate::template::parse(TEMPLATE, "t.yaml").unwrap();
        let intervals: Vec<_> = (1..=10)
            .map(|i| interval(60.0 * f64::from(i), if i > 4 { 8.0 } else { 0.0 }))
            .collect();
        let v = judge_window(&template, 0.0, 600.0, &intervals).unwrap();
        let first = v.first_rollback.as_ref().expect("rolled back");
        assert!(first.t > 240.0 && first.t <= 420.0, "{}", first.t);
        assert_eq!(v.stream.len(), 11);
        assert_eq!(v.stream[10].canary.errors, 48.0);
        assert!((v.stream[1].weight - 10.0).abs() < 1e-9);
        let text = render_text(&v);
        assert!(
            text.contains("decision: ROLLBACK at 1970-01-01T00:0"),
            "{text}"
        );
        assert!(text.contains("errors"), "{text}");
    }

    #[test]
    fn a_clean_window_promotes() {
        let template = crate::template::parse(TEMPLATE, "t.yaml").unwrap();
        let intervals: Vec<_> = (1..=10)
            .map(|i| interval(60.0 * f64::from(i), 0.0))
            .collect();
        let v = judge_window(&template, 0.0, 600.0, &intervals).unwrap();
        assert!(v.first_rollback.is_none());
        assert_eq!(v.last.decision, Decision::Promote);
    }
}
