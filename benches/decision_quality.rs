//! Decision quality of the judge on the standard scenario set: false-rollback rate, detection
//! rate, median time-to-detect against Wald's SPRT bound, and bad requests served before rollback.
//!
//! `cargo bench --bench decision_quality` (set `RUNS=N` for more or fewer rollouts per scenario).

use std::time::Instant;

use canary_gate::analysis::{Method, MetricKind};
use canary_gate::simulation::{Ending, run_rollout, standard_scenarios, wald_expected_seconds};

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

fn main() {
    let runs: u64 = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1000);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analysis-templates/generic-http.yaml"
    );
    let template =
        canary_gate::template::load(std::path::Path::new(path)).expect("shipped template is valid");
    let alpha = template.judge.alpha;
    // Each metric's own false-rollback budget (equal weights): the error rate Wald's bound uses.
    let gating = template.judge.metrics.iter().filter(|m| !m.dry_run).count() as f64;
    let alpha_metric = alpha / gating;
    let tolerance = |kind| {
        template
            .judge
            .metrics
            .iter()
            .find(|m| m.kind == kind)
            .and_then(|m| match m.method {
                Method::Compare { tolerance, .. } => Some(tolerance),
                _ => None,
            })
            .unwrap_or(0.0)
    };
    let (error_tolerance, latency_tolerance) = (
        tolerance(MetricKind::ErrorRate),
        tolerance(MetricKind::Latency),
    );
    println!(
        "decision quality, template generic-http (alpha {alpha}), {runs} rollouts per scenario, steps 5/10/25/50 % × 5 min, 10 s intervals"
    );
    println!(
        "Wald: SPRT knowing the exact alternative, per-metric alpha {alpha_metric}, beta 0.01, same null (tolerances {error_tolerance}/{latency_tolerance});\nbad reqs: median excess bad canary requests (errors, or requests slower than stable p99) before rollback\n"
    );
    println!(
        "{:<52} {:>9} {:>9} {:>8} {:>10} {:>10} {:>7} {:>10} {:>8}",
        "scenario",
        "rollback",
        "promote",
        "paused",
        "median s",
        "Wald s",
        "ratio",
        "bad reqs",
        "time"
    );
    for scenario in standard_scenarios() {
        let started = Instant::now();
        let results: Vec<_> = (0..runs)
            .map(|seed| run_rollout(&scenario, &template.judge, seed, None))
            .collect();
        let share =
            |e: Ending| results.iter().filter(|r| r.ending == e).count() as f64 / runs as f64;
        let detect_times = median(
            results
                .iter()
                .filter(|r| r.ending == Ending::RolledBack)
                .map(|r| r.seconds)
                .collect(),
        );
        let bad = median(
            results
                .iter()
                .filter(|r| r.ending == Ending::RolledBack)
                .map(|r| r.excess_bad_requests)
                .collect(),
        );
        let wald = wald_expected_seconds(
            &scenario,
            alpha_metric,
            0.01,
            error_tolerance,
            latency_tolerance,
        );
        let fmt =
            |x: Option<f64>, digits: usize| x.map_or("-".to_string(), |v| format!("{v:.digits$}"));
        let ratio = match (detect_times, wald) {
            (Some(t), Some(w)) if scenario.has_regression() => Some(t / w),
            _ => None,
        };
        println!(
            "{:<52} {:>8.2}% {:>8.2}% {:>7.2}% {:>10} {:>10} {:>7} {:>10} {:>7.1}s",
            scenario.name,
            100.0 * share(Ending::RolledBack),
            100.0 * share(Ending::Promoted),
            100.0 * share(Ending::Paused),
            if scenario.has_regression() {
                fmt(detect_times, 0)
            } else {
                "-".into()
            },
            fmt(wald, 0),
            fmt(ratio, 2),
            if scenario.has_regression() {
                fmt(bad, 1)
            } else {
                "-".into()
            },
            started.elapsed().as_secs_f64()
        );
    }
}
