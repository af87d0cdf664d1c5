//! Decision quality of the judge on the standard scenario set, with the shipped `generic-http`
//! template and its defaults: false rollbacks on A/A canaries and common incidents, detection of
//! regressions, median time-to-detect against Wald's SPRT bound, bad requests served before
//! rollback, and how long A/A rollouts take to promote. Ends with one PASS/FAIL line per target.
//!
//! `cargo bench --bench decision_quality` (env: `RUNS=N` seeded rollouts per scenario, default
//! 1000; `ONLY=a,b` runs only scenarios whose id contains one of these; `THREADS=N`, default 1).

use std::time::Instant;

use canary_gate::analysis::{Method, MetricKind};
use canary_gate::simulation::{
    Ending, RolloutResult, Scenario, is_common_incident, run_rollout, standard_scenarios,
    wald_expected_seconds,
};

/// Largest false-rollback share on A/A scenarios and common incidents.
const MAX_FALSE_ROLLBACK: f64 = 0.01;
/// Smallest mean and worst detection share over the regression scenarios.
const MIN_DETECTION_MEAN: f64 = 0.99;
const MIN_DETECTION_WORST: f64 = 0.97;
/// Largest ratio of the median time-to-detect to Wald's bound, per regression scenario.
const MAX_WALD_RATIO: f64 = 1.3;
/// Largest median of bad requests served before rollback (over all detected regressions).
const MAX_BAD_REQUESTS: f64 = 4.0;

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

/// The `q` quantile (nearest rank), `None` when empty.
fn quantile(mut v: Vec<f64>, q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

struct Row {
    scenario: Scenario,
    results: Vec<RolloutResult>,
    wald: Option<f64>,
}

impl Row {
    fn share(&self, e: Ending) -> f64 {
        self.results.iter().filter(|r| r.ending == e).count() as f64 / self.results.len() as f64
    }

    fn of(&self, e: Ending, f: impl Fn(&RolloutResult) -> f64) -> Vec<f64> {
        self.results
            .iter()
            .filter(|r| r.ending == e)
            .map(f)
            .collect()
    }

    fn detect_median(&self) -> Option<f64> {
        median(self.of(Ending::RolledBack, |r| r.seconds))
    }

    fn ratio(&self) -> Option<f64> {
        Some(self.detect_median()? / self.wald?)
    }

    /// Bad requests a rollout on schedule serves by Wald's time.
    fn wald_bad(&self) -> Option<f64> {
        Some(self.scenario.excess_bad_requests_until(self.wald?))
    }
}

fn run(
    scenario: &Scenario,
    judge: &canary_gate::analysis::JudgeConfig,
    runs: u64,
    threads: u64,
) -> Vec<RolloutResult> {
    let threads = threads.max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..runs)
                        .filter(|seed| seed % threads == t)
                        .map(|seed| (seed, run_rollout(scenario, judge, seed, None)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("a simulation thread panicked"))
            .collect();
        all.sort_by_key(|(seed, _)| *seed);
        all.into_iter().map(|(_, r)| r).collect()
    })
}

fn main() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(default)
    };
    let runs = env("RUNS", 1000);
    let threads = env("THREADS", 1);
    let only: Vec<String> = std::env::var("ONLY")
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
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
        "decision quality, template generic-http (alpha {alpha}, defaults), {runs} rollouts per scenario, steps 5/10/25/50 % × 5 min, 10 s intervals"
    );
    println!(
        "Wald: expected time of the SPRT knowing the exact alternative, per-metric alpha {alpha_metric}, beta 0.01, the judge's null (tolerances {error_tolerance}/{latency_tolerance}, latency one-sided per bucket) and information (errors given each interval's total; the over-dispersion's shape known)"
    );
    println!(
        "detect: share rolled back; TTD: median seconds to rollback; bad: median excess bad canary requests (errors, or requests slower than stable p99) before rollback, Wald: those served by Wald's time on schedule; promote s: median / 90th percentile of the seconds to promote\n"
    );
    println!(
        "{:<72} {:>8} {:>8} {:>7} {:>8} {:>7} {:>7} {:>11} {:>6} {:>6} {:>11} {:>7}",
        "scenario",
        "rollback",
        "promote",
        "paused",
        "detect",
        "TTD s",
        "Wald s",
        "ratio≤1.3",
        "bad",
        "Wald",
        "promote s",
        "time"
    );
    let mut rows = Vec::new();
    for scenario in standard_scenarios() {
        if !only.is_empty() && !only.iter().any(|o| scenario.id.contains(o.as_str())) {
            continue;
        }
        let started = Instant::now();
        let results = run(&scenario, &template.judge, runs, threads);
        let wald = wald_expected_seconds(
            &scenario,
            alpha_metric,
            0.01,
            error_tolerance,
            latency_tolerance,
        );
        let row = Row {
            scenario,
            results,
            wald,
        };
        let regression = row.scenario.has_regression();
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        println!(
            "{:<72} {:>8} {:>8} {:>7} {:>8} {:>7} {:>7} {:>11} {:>6} {:>6} {:>11} {:>6.0}s",
            format!("{} ({})", row.scenario.name, row.scenario.id),
            pct(row.share(Ending::RolledBack)),
            pct(row.share(Ending::Promoted)),
            pct(row.share(Ending::Paused)),
            if regression {
                pct(row.share(Ending::RolledBack))
            } else {
                "-".into()
            },
            if regression {
                fmt(row.detect_median(), 0)
            } else {
                "-".into()
            },
            fmt(row.wald, 0),
            fmt(row.ratio(), 2),
            if regression {
                fmt(
                    median(row.of(Ending::RolledBack, |r| r.excess_bad_requests)),
                    1,
                )
            } else {
                "-".into()
            },
            if regression {
                fmt(row.wald_bad(), 1)
            } else {
                "-".into()
            },
            if regression {
                "-".into()
            } else {
                let seconds = row.of(Ending::Promoted, |r| r.seconds);
                format!(
                    "{}/{}",
                    fmt(median(seconds.clone()), 0),
                    fmt(quantile(seconds, 0.9), 0)
                )
            },
            started.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    summary(&rows);
}

fn summary(rows: &[Row]) {
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let worst = |rows: Vec<&Row>, f: &dyn Fn(&Row) -> f64, max: bool| {
        rows.into_iter()
            .map(|r| (f(r), r.scenario.id.clone()))
            .reduce(|a, b| if (b.0 > a.0) == max { b } else { a })
    };
    println!();
    let aa: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.scenario.has_regression() && !is_common_incident(&r.scenario))
        .collect();
    let incidents: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.scenario.has_regression() && is_common_incident(&r.scenario))
        .collect();
    let regressions: Vec<&Row> = rows
        .iter()
        .filter(|r| r.scenario.has_regression())
        .collect();
    for (what, set) in [
        ("false rollbacks, every A/A scenario", aa),
        ("false rollbacks, every common incident", incidents),
    ] {
        if let Some((x, id)) = worst(set, &|r| r.share(Ending::RolledBack), true) {
            println!(
                "{:<52} worst {:>6.2}% ({id}) ≤ {:.0}%   {}",
                what,
                100.0 * x,
                100.0 * MAX_FALSE_ROLLBACK,
                verdict(x <= MAX_FALSE_ROLLBACK)
            );
        }
    }
    if regressions.is_empty() {
        return;
    }
    let detect = |r: &Row| r.share(Ending::RolledBack);
    let mean = regressions.iter().map(|r| detect(r)).sum::<f64>() / regressions.len() as f64;
    println!(
        "{:<52} mean  {:>6.2}% ≥ {:.0}%   {}",
        "detection over the regression scenarios",
        100.0 * mean,
        100.0 * MIN_DETECTION_MEAN,
        verdict(mean >= MIN_DETECTION_MEAN)
    );
    if let Some((x, id)) = worst(regressions.clone(), &detect, false) {
        println!(
            "{:<52} worst {:>6.2}% ({id}) ≥ {:.0}%   {}",
            "detection, every regression scenario",
            100.0 * x,
            100.0 * MIN_DETECTION_WORST,
            verdict(x >= MIN_DETECTION_WORST)
        );
    }
    if let Some((x, id)) = worst(
        regressions.clone(),
        &|r| r.ratio().unwrap_or(f64::INFINITY),
        true,
    ) {
        println!(
            "{:<52} worst {:>6.2}× ({id}) ≤ {MAX_WALD_RATIO}×   {}",
            "median time-to-detect / Wald, every regression",
            x,
            verdict(x <= MAX_WALD_RATIO)
        );
    }
    let pooled: Vec<f64> = regressions
        .iter()
        .flat_map(|r| r.of(Ending::RolledBack, |x| x.excess_bad_requests))
        .collect();
    let per_scenario = median(
        regressions
            .iter()
            .filter_map(|r| median(r.of(Ending::RolledBack, |x| x.excess_bad_requests)))
            .collect(),
    );
    let pooled_ttd = median(
        regressions
            .iter()
            .flat_map(|r| r.of(Ending::RolledBack, |x| x.seconds))
            .collect(),
    );
    let wald_bad = median(regressions.iter().filter_map(|r| r.wald_bad()).collect());
    if let Some(bad) = median(pooled) {
        println!(
            "{:<52} median {:>5.1} (of scenario medians {}; Wald's, same way: {}) ≤ {MAX_BAD_REQUESTS}   {}",
            "bad requests before rollback, all regressions",
            bad,
            fmt(per_scenario, 1),
            fmt(wald_bad, 1),
            verdict(bad <= MAX_BAD_REQUESTS)
        );
    }
    println!(
        "{:<52} median {:>5} s (information only)",
        "time-to-detect, all regressions pooled",
        fmt(pooled_ttd, 0)
    );
}
