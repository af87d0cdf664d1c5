//! Judge speed: one verdict for 10 metrics (5 error-rate, 5 latency with the 11 default buckets),
//! each with 2 × 10 000 observations (requests of stable and canary).
//!
//! - `one interval`: the incremental update and verdict when an interval brings 10 000 requests
//!   per version to every metric (what a controller pays per reconcile);
//! - `100 intervals`: judging the same 2 × 10 000 requests per metric spread over 100 intervals
//!   from scratch (what a restart without saved state, or `replay`, pays).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use canary_gate::analysis::{
    Counts, Direction, Histogram, Judge, JudgeConfig, Method, MetricConfig, MetricKind,
    MetricSample, StepContext,
};
use canary_gate::simulation::DEFAULT_BUCKETS;

fn config() -> JudgeConfig {
    let metric = |i: usize, kind| MetricConfig {
        name: format!("m{i}"),
        kind,
        method: Method::Compare {
            direction: Direction::Increase,
            tolerance: if kind == MetricKind::Latency {
                0.05
            } else {
                0.0
            },
            jitter: 0.1,
        },
        critical: false,
        weight: 1.0,
        dry_run: false,
        min_samples: 50.0,
    };
    JudgeConfig {
        alpha: 0.01,
        hold_budget: std::time::Duration::from_secs(600),
        on_inconclusive: canary_gate::analysis::InconclusivePolicy::Pause,
        fail_weight: 0.5,
        metrics: (0..10)
            .map(|i| {
                metric(
                    i,
                    if i < 5 {
                        MetricKind::ErrorRate
                    } else {
                        MetricKind::Latency
                    },
                )
            })
            .collect(),
    }
}

/// Samples with `n` requests per version: 0.5 % errors, a log-normal-ish latency spread.
fn samples(config: &JudgeConfig, n: f64) -> Vec<MetricSample> {
    let shape = [
        0.0, 0.01, 0.1, 0.35, 0.35, 0.15, 0.03, 0.008, 0.002, 0.0, 0.0, 0.0,
    ];
    let hist = |scale: f64| {
        Histogram::new(
            DEFAULT_BUCKETS.to_vec(),
            shape.iter().map(|p| (p * n * scale).round()).collect(),
            0.0,
        )
        .unwrap()
    };
    config
        .metrics
        .iter()
        .map(|m| match m.kind {
            MetricKind::ErrorRate => MetricSample::Counts {
                stable: Counts::new(n * 0.005, n),
                canary: Counts::new(n * 0.006, n),
            },
            MetricKind::Latency => MetricSample::Histogram {
                stable: hist(1.0),
                canary: hist(1.0),
            },
            MetricKind::Value => MetricSample::Value {
                stable: Some(1.0),
                canary: 1.0,
            },
        })
        .collect()
}

fn ctx(i: usize) -> StepContext {
    StepContext {
        t: i as f64,
        step: 0,
        weight: 50.0,
        step_complete: false,
        last_step: false,
    }
}

fn bench(c: &mut Criterion) {
    let config = config();
    let big = samples(&config, 10_000.0);
    let warm = samples(&config, 100.0);
    let mut judge = Judge::new(config.clone());
    for i in 0..20 {
        judge.observe(ctx(i), &warm).unwrap();
    }
    c.bench_function(
        "judge: one interval, 10 metrics × 2×10000 requests",
        |b| {
            b.iter_batched(
                || judge.clone(),
                |mut j| black_box(j.observe(ctx(21), black_box(&big)).unwrap()),
                criterion::BatchSize::SmallInput,
            )
        },
    );
    c.bench_function(
        "judge: 100 intervals, 10 metrics × 2×10000 requests",
        |b| {
            b.iter(|| {
                let mut j = Judge::new(config.clone());
                let mut last = None;
                for i in 0..100 {
                    last = Some(j.observe(ctx(i), black_box(&warm)).unwrap());
                }
                black_box(last)
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
