//! The cost of the controller's steps power check (`StepsUnderpowered`): one check of a
//! Rollout's steps — what the controller's worker thread runs once per revision — for the
//! shipped `generic-http` template (1-minute intervals) at several traffic levels, and the cost
//! per judged interval. Prints medians of `REPEATS` (default 5) checks.
//!
//! `cargo bench --bench power_check` (`RUNS=100` simulated rollouts per weight, the controller's
//! default).

use std::time::Instant;

use canary_gate::advise::steps::{PlannedStep, Settings, check};
use canary_gate::advise::{Effect, Traffic};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let template = canary_gate::template::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analysis-templates/generic-http.yaml"
    )))
    .expect("the shipped template");
    let runs = env("RUNS", 100);
    let repeats = env("REPEATS", 5).max(1);
    let interval = template.interval.as_secs_f64();
    let steps: Vec<PlannedStep> = [5.0, 10.0, 25.0, 50.0]
        .iter()
        .enumerate()
        .map(|(index, &weight)| PlannedStep {
            index,
            weight,
            pause: 300.0,
        })
        .collect();
    let settings = Settings {
        effect: Effect::ErrorPoints(0.01),
        power: 0.8,
        runs,
    };
    for interval in [interval, 10.0] {
        println!(
            "\nsteps power check: template generic-http's judge at {interval}s intervals, steps 5/10/25/50 % × 5m, +1 pt errors, power 0.8, {runs} runs per weight, median of {repeats}"
        );
        println!(
            "{:>9}  {:>12}  {:>12}  {:>16}  {:>13}",
            "req/s", "check (ms)", "intervals", "µs per interval", "underpowered"
        );
        for rps in [0.5, 2.0, 10.0, 50.0, 200.0, 1000.0, 10000.0] {
            let traffic = Traffic {
                rps,
                error_rate: 0.001,
            };
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..repeats {
                let started = Instant::now();
                let c = check(
                    &template.judge,
                    traffic,
                    interval,
                    &steps,
                    settings,
                    &|| false,
                )
                .expect("valid")
                .expect("not cancelled");
                times.push(started.elapsed().as_secs_f64());
                last = Some(c);
            }
            let c = last.expect("one check");
            let ms = median(times) * 1000.0;
            println!(
                "{rps:>9}  {ms:>12.1}  {:>12}  {:>16.2}  {:>13}",
                c.intervals,
                ms * 1000.0 / c.intervals.max(1) as f64,
                format!("{}/{}", c.underpowered().count(), c.findings.len())
            );
        }
    }
    reconcile_cost(&template);
}

/// What a reconcile pays: `PowerChecks::observe` once the revision's check is answered (every
/// later reconcile of an analysed Rollout takes this path), and `finding`.
fn reconcile_cost(template: &canary_gate::template::Template) {
    use canary_gate::analysis::{Counts, MetricKind, MetricSample, WindowInterval};
    use canary_gate::controller::power::PowerChecks;
    use canary_gate::controller::validate::validate;

    let spec = serde_saphyr::from_str(
        "targetRef: {name: web}\nstrategy: {canary: {analysis: {templates: [{templateName: generic-http}]}, steps: [{setWeight: 5}, {pause: {duration: 5m}}, {setWeight: 50}, {pause: {duration: 5m}}]}}",
    )
    .expect("a Rollout spec");
    let validated = validate(&spec).expect("valid");
    let interval = |t: f64| WindowInterval {
        t,
        samples: template
            .judge
            .metrics
            .iter()
            .map(|m| match m.kind {
                MetricKind::ErrorRate => MetricSample::Counts {
                    stable: Counts::new(5.0, 5000.0),
                    canary: Counts::new(0.0, 500.0),
                },
                _ => MetricSample::Missing("not needed".into()),
            })
            .collect(),
    };
    let checks = PowerChecks::default();
    let args = [("service".to_string(), "web".to_string())];
    let evidence: Vec<WindowInterval> = (1..=5).map(|k| interval(f64::from(k) * 60.0)).collect();
    checks.observe("shop", "web", "r1", &validated, template, &args, &evidence);
    assert!(checks.wait_idle(std::time::Duration::from_secs(60)));
    assert!(checks.finding("shop", "web").is_some());
    let next = [interval(360.0)];
    let mut observe = Vec::new();
    let mut finding = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        for _ in 0..1000 {
            checks.observe("shop", "web", "r1", &validated, template, &args, &next);
        }
        observe.push(started.elapsed().as_secs_f64() / 1000.0);
        let started = Instant::now();
        for _ in 0..1000 {
            std::hint::black_box(checks.finding("shop", "web"));
        }
        finding.push(started.elapsed().as_secs_f64() / 1000.0);
    }
    println!(
        "\nper reconcile once answered: observe {:.1} µs, finding {:.2} µs (medians of 21 × 1000 calls)",
        median(observe) * 1e6,
        median(finding) * 1e6
    );
}
