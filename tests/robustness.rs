//! Hostile input: the parsers never panic, and the judge never promotes on counts that are not
//! finite, negative, or inconsistent — whatever the interval brings, missing or broken evidence
//! holds instead.

use canary_gate::analysis::{Counts, Decision, Histogram, Judge, MetricSample, StepContext};
use canary_gate::metrics::recorded::RecordedInterval;
use canary_gate::metrics::scrape::parse_exposition;
use proptest::prelude::*;

const TEMPLATE: &str = include_str!("../analysis-templates/generic-http.yaml");
const LINE: &str = r#"{"t": 1700000010, "weight": 5, "step": 0, "step_complete": true, "last_step": true, "stable": {"requests": 950, "errors": 1, "latency": {"buckets": {"0.1": 900, "+Inf": 950}, "sum": 40, "count": 950}}, "canary": {"requests": 50, "errors": 0, "latency": {"buckets": {"0.1": 48, "+Inf": 50}, "sum": 2, "count": 50}}}"#;
const EXPOSITION: &str = "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\",version=\"stable\"} 10\n# TYPE http_request_duration_seconds histogram\nhttp_request_duration_seconds_bucket{le=\"0.1\"} 3\nhttp_request_duration_seconds_bucket{le=\"+Inf\"} 4\nhttp_request_duration_seconds_sum 0.3\nhttp_request_duration_seconds_count 4\n";

/// Replaces up to `n` bytes of `text` at random positions with random characters.
fn mutate(text: &str, edits: &[(usize, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(pos, c) in edits {
        if !chars.is_empty() {
            let i = pos % chars.len();
            chars[i] = c;
        }
    }
    chars.into_iter().collect()
}

fn weird() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-1.0),
        Just(0.0),
        0.0..1e7f64,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn template_parsing_never_panics(edits in prop::collection::vec((any::<usize>(), any::<char>()), 0..8), junk in ".{0,200}") {
        let _ = canary_gate::template::parse(&mutate(TEMPLATE, &edits), "t.yaml");
        let _ = canary_gate::template::parse(&junk, "junk.yaml");
    }

    #[test]
    fn recorded_lines_never_panic(edits in prop::collection::vec((any::<usize>(), any::<char>()), 0..8), junk in ".{0,200}") {
        let _ = RecordedInterval::parse(&mutate(LINE, &edits), 1);
        let _ = RecordedInterval::parse(&junk, 2);
    }

    #[test]
    fn exposition_parsing_never_panics(edits in prop::collection::vec((any::<usize>(), any::<char>()), 0..8), junk in ".{0,200}") {
        let _ = parse_exposition(&mutate(EXPOSITION, &edits));
        let _ = parse_exposition(&junk);
    }

    #[test]
    fn broken_counts_never_promote(
        intervals in prop::collection::vec((weird(), weird(), weird(), weird()), 1..12),
        buckets in prop::collection::vec(weird(), 4),
    ) {
        // Broken counts are no data: the judge given them decides exactly as a judge told
        // "missing" for that metric, and the interval that brings them never promotes (unless a
        // promotion on earlier, sound intervals is repeated).
        let template = canary_gate::template::parse(TEMPLATE, "t.yaml").unwrap();
        let mut judge = Judge::new(template.judge.clone());
        let mut told_missing = Judge::new(template.judge.clone());
        let mut promoted_before = false;
        for (i, (se, st, ce, ct)) in intervals.iter().enumerate() {
            let counts_broken = ![se, st, ce, ct].iter().all(|v| v.is_finite() && **v >= 0.0);
            let buckets_broken = !buckets.iter().all(|b| b.is_finite() && *b >= 0.0);
            let hist = |scale: f64| Histogram::new(vec![0.1, 0.5, 1.0], buckets.iter().map(|b| b * scale).collect(), 0.0);
            let latency = match (hist(1.0), hist(0.1)) {
                (Ok(stable), Ok(canary)) => MetricSample::Histogram { stable, canary },
                _ => MetricSample::Missing("bad histogram".into()),
            };
            prop_assert!(!buckets_broken || matches!(latency, MetricSample::Missing(_)), "a broken histogram was accepted");
            let rate = MetricSample::Counts { stable: Counts::new(*se, *st), canary: Counts::new(*ce, *ct) };
            let missing_rate = if counts_broken { MetricSample::Missing("broken".into()) } else { rate.clone() };
            let ctx = StepContext { t: i as f64 * 60.0, step: 0, weight: 10.0, step_complete: true, last_step: true };
            let j = judge.observe(ctx, &[rate, latency.clone()]).unwrap();
            let m = told_missing.observe(ctx, &[missing_rate, latency]).unwrap();
            prop_assert_eq!(j.decision, m.decision, "broken counts judged unlike missing ones: {:?} vs {:?}", j.reason, m.reason);
            if counts_broken && !promoted_before {
                prop_assert_ne!(j.decision, Decision::Promote, "promoted on broken counts: {:?}", j.reason);
            }
            promoted_before |= j.decision == Decision::Promote;
        }
    }
}
