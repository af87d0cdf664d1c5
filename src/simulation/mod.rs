//! Seeded synthetic canaries: traffic, weighted routing, errors and latency of both versions,
//! interval by interval, driven through the real judge. Used by the calibration tests, the
//! decision-quality bench and `canary-gate simulate`. Deterministic for a given seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Gamma, Poisson};
use statrs::distribution::{ContinuousCDF, LogNormal};

use crate::analysis::{
    Counts, Histogram, Judge, JudgeConfig, MetricKind, MetricSample, StepContext,
};
use crate::metrics::counters::{CumulativeHistogram, VersionCounters};
use crate::metrics::recorded::RecordedInterval;
use crate::rollout::{Phase, Step, StepPlan};

mod scenarios;
pub use scenarios::{
    conditional_error_information, is_common_incident, scenario, standard_scenarios,
    wald_expected_seconds,
};

/// Prometheus client libraries' default histogram buckets (seconds).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// z-score of the 99th percentile of a normal distribution.
const Z99: f64 = 2.326_347_874;

/// A synthetic canary: traffic shape, the versions' behaviour, and the step plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Identifier for the command line (`aa-100`, `errors-1pt-100`, …).
    pub id: String,
    /// Description for reports.
    pub name: String,
    /// Mean total requests per second.
    pub rps: f64,
    /// Observation interval, seconds.
    pub interval: f64,
    /// Steps: (canary weight %, planned duration in seconds).
    pub steps: Vec<(f64, f64)>,
    /// Stable error rate.
    pub error_rate: f64,
    /// Absolute error rate added on the canary (0.01 = +1 percentage point).
    pub canary_error_add: f64,
    /// Stable latency median, seconds (log-normal).
    pub latency_median: f64,
    /// Log-normal σ of latency.
    pub latency_sigma: f64,
    /// Canary latency multiplier (1 = same).
    pub canary_latency_scale: f64,
    /// Canary p99 multiplier at the same median (1 = same): a tail regression.
    pub canary_p99_factor: f64,
    /// Probability that an interval has an error burst hitting both versions.
    pub burst_probability: f64,
    /// Error-rate multiplier during a burst.
    pub burst_multiplier: f64,
    /// Total traffic varies per interval uniformly within ±this share (0.6 = ±60 %).
    pub traffic_swing: f64,
    /// Coefficient of variation of a per-interval, per-version error-probability multiplier,
    /// drawn independently for each version in each interval from a Gamma with mean 1 and shape
    /// `1/cv²` (over-dispersion between versions that is not a regression; the canary's whole
    /// probability, regression included, is multiplied by its own draw).
    pub version_jitter: f64,
    /// Histogram bucket bounds.
    pub buckets: Vec<f64>,
}

impl Scenario {
    /// An A/A canary: identical versions, 0.1 % errors, 50 ms median latency, steps 5/10/25/50 %
    /// of 5 minutes each, 10-second intervals.
    pub fn identical(id: &str, name: &str, rps: f64) -> Self {
        Self {
            id: id.to_string(),
            name: name.to_string(),
            rps,
            interval: 10.0,
            steps: vec![(5.0, 300.0), (10.0, 300.0), (25.0, 300.0), (50.0, 300.0)],
            error_rate: 0.001,
            canary_error_add: 0.0,
            latency_median: 0.05,
            latency_sigma: 0.6,
            canary_latency_scale: 1.0,
            canary_p99_factor: 1.0,
            burst_probability: 0.0,
            burst_multiplier: 1.0,
            traffic_swing: 0.0,
            version_jitter: 0.0,
            buckets: DEFAULT_BUCKETS.to_vec(),
        }
    }

    fn latency(&self, canary: bool) -> LogNormal {
        let (scale, sigma) = if canary {
            (
                self.canary_latency_scale,
                self.latency_sigma + self.canary_p99_factor.ln() / Z99,
            )
        } else {
            (1.0, self.latency_sigma)
        };
        // Parameters are validated by construction: median > 0, sigma > 0.
        LogNormal::new((self.latency_median * scale).ln(), sigma.max(1e-6))
            .unwrap_or_else(|_| LogNormal::new(0.0, 1.0).expect("standard log-normal"))
    }

    pub(crate) fn bucket_probabilities(&self, canary: bool) -> Vec<f64> {
        let dist = self.latency(canary);
        let mut probs = Vec::with_capacity(self.buckets.len() + 1);
        let mut below = 0.0;
        for &b in &self.buckets {
            let c = dist.cdf(b);
            probs.push((c - below).max(0.0));
            below = c;
        }
        probs.push((1.0 - below).max(0.0));
        probs
    }

    /// Whether the canary is worse than the stable in this scenario.
    pub fn has_regression(&self) -> bool {
        self.canary_error_add > 0.0
            || self.canary_latency_scale > 1.0
            || self.canary_p99_factor > 1.0
    }

    /// Expected excess bad canary requests served in the first `seconds` of a rollout that
    /// follows the step plan on schedule (what a judge stopping at that time would have let
    /// through; e.g. at Wald's bound). After the last step, its weight continues.
    pub fn excess_bad_requests_until(&self, seconds: f64) -> f64 {
        let mut left = seconds.max(0.0);
        let mut total = 0.0;
        for (i, &(weight, duration)) in self.steps.iter().enumerate() {
            let span = if i + 1 == self.steps.len() {
                left
            } else {
                left.min(duration)
            };
            total += self.excess_bad_rate(weight / 100.0) * span;
            left -= span;
            if left <= 0.0 {
                break;
            }
        }
        total
    }

    /// Requests served per second at a canary weight (fraction), and the expected
    /// "bad" canary requests per second that a regression adds: extra errors, plus requests
    /// slower than the stable's p99 beyond the 1 % the stable has.
    fn excess_bad_rate(&self, weight: f64) -> f64 {
        let canary_rps = self.rps * weight;
        let errors = self.canary_error_add * canary_rps;
        let p99 = self.latency(false).inverse_cdf(0.99);
        let slow = (1.0 - self.latency(true).cdf(p99) - 0.01).max(0.0) * canary_rps;
        errors + slow
    }
}

/// Counts of one version in one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInterval {
    /// Requests and errors.
    pub counts: Counts,
    /// Latency histogram.
    pub latency: Histogram,
}

/// One simulated interval.
#[derive(Debug, Clone, PartialEq)]
pub struct SimInterval {
    /// Where the rollout stood.
    pub ctx: StepContext,
    /// Stable version.
    pub stable: VersionInterval,
    /// Canary.
    pub canary: VersionInterval,
}

impl SimInterval {
    /// The judge's samples for these metrics.
    pub fn samples(&self, config: &JudgeConfig) -> Vec<MetricSample> {
        config
            .metrics
            .iter()
            .map(|m| match m.kind {
                MetricKind::Value => {
                    MetricSample::Missing("the simulator produces no values".into())
                }
                MetricKind::ErrorRate => MetricSample::Counts {
                    stable: self.stable.counts,
                    canary: self.canary.counts,
                },
                MetricKind::Latency => MetricSample::Histogram {
                    stable: self.stable.latency.clone(),
                    canary: self.canary.latency.clone(),
                },
            })
            .collect()
    }
}

/// Generates intervals of a scenario.
pub struct Generator {
    scenario: Scenario,
    rng: ChaCha8Rng,
    stable_probs: Vec<f64>,
    canary_probs: Vec<f64>,
}

impl Generator {
    /// A generator for `scenario` with `seed`.
    pub fn new(scenario: Scenario, seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            stable_probs: scenario.bucket_probabilities(false),
            canary_probs: scenario.bucket_probabilities(true),
            scenario,
        }
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Draws one interval at `weight` percent.
    pub fn interval(&mut self, ctx: StepContext) -> SimInterval {
        let s = &self.scenario;
        let (swing, expected_rps, interval) = (s.traffic_swing, s.rps, s.interval);
        let (burst_probability, burst_multiplier, error_rate, error_add) = (
            s.burst_probability,
            s.burst_multiplier,
            s.error_rate,
            s.canary_error_add,
        );
        let swing = if swing > 0.0 {
            1.0 + swing * (2.0 * self.rng.random::<f64>() - 1.0)
        } else {
            1.0
        };
        let expected = (expected_rps * interval * swing).max(0.0);
        let total = if expected > 0.0 {
            Poisson::new(expected).map_or(0.0, |p| p.sample(&mut self.rng))
        } else {
            0.0
        } as u64;
        let w = (ctx.weight / 100.0).clamp(0.0, 1.0);
        let n_canary = binomial(&mut self.rng, total, w);
        let n_stable = total - n_canary;
        let burst = if self.rng.random::<f64>() < burst_probability {
            burst_multiplier
        } else {
            1.0
        };
        let base = (error_rate * burst).min(1.0);
        let p_stable = (base * self.jitter()).min(1.0);
        // The canary's whole error probability (stable's plus the regression) varies with the
        // same shape as the stable's: a regression is as noisy as the rest of the version.
        let p_canary = ((base + error_add) * self.jitter()).min(1.0);
        let e_stable = binomial(&mut self.rng, n_stable, p_stable);
        let e_canary = binomial(&mut self.rng, n_canary, p_canary);
        let stable = VersionInterval {
            counts: Counts::new(e_stable as f64, n_stable as f64),
            latency: self.histogram(n_stable, false),
        };
        let canary = VersionInterval {
            counts: Counts::new(e_canary as f64, n_canary as f64),
            latency: self.histogram(n_canary, true),
        };
        SimInterval {
            ctx,
            stable,
            canary,
        }
    }

    fn jitter(&mut self) -> f64 {
        let c = self.scenario.version_jitter;
        if c <= 0.0 {
            return 1.0;
        }
        let shape = 1.0 / (c * c);
        Gamma::new(shape, 1.0 / shape).map_or(1.0, |g| g.sample(&mut self.rng))
    }

    fn histogram(&mut self, n: u64, canary: bool) -> Histogram {
        let probs = if canary {
            &self.canary_probs
        } else {
            &self.stable_probs
        };
        let mut counts = Vec::with_capacity(probs.len());
        let mut left = n;
        let mut mass_left = 1.0;
        for (i, &p) in probs.iter().enumerate() {
            let c = if i + 1 == probs.len() {
                left
            } else if mass_left <= 0.0 {
                0
            } else {
                binomial(&mut self.rng, left, (p / mass_left).clamp(0.0, 1.0))
            };
            counts.push(c as f64);
            left -= c;
            mass_left -= p;
        }
        let bounds = self.scenario.buckets.clone();
        Histogram {
            sum: 0.0,
            bounds,
            counts,
        }
    }
}

fn binomial(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    Binomial::new(n, p).map_or(0, |b| b.sample(rng))
}

/// How a simulated rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Promoted after the last step.
    Promoted,
    /// Rolled back.
    RolledBack,
    /// Paused for a human after the hold budget.
    Paused,
}

/// The result of one simulated rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutResult {
    /// How it ended.
    pub ending: Ending,
    /// Seconds from start to the end.
    pub seconds: f64,
    /// Expected bad canary requests that the regression added before the end.
    pub excess_bad_requests: f64,
    /// Requests served by the canary.
    pub canary_requests: f64,
    /// Intervals spent holding.
    pub hold_intervals: usize,
}

/// Runs a whole rollout through the shared step machine ([`crate::rollout`]): the step plan,
/// advancing on `continue` after each step, holding on `hold`, stopping on `promote`, `rollback`
/// or a pause. Optionally records the stream.
pub fn run_rollout(
    scenario: &Scenario,
    config: &JudgeConfig,
    seed: u64,
    mut record: Option<&mut Vec<RecordedInterval>>,
) -> RolloutResult {
    let plan = StepPlan::new(
        scenario
            .steps
            .iter()
            .map(|&(weight, pause)| Step { weight, pause })
            .collect(),
    )
    .expect("scenario steps are valid by construction");
    let mut generator = Generator::new(scenario.clone(), seed);
    let mut judge = Judge::new(config.clone());
    let start = 1_700_000_000.0;
    let mut state = plan.start(start);
    let mut now = start;
    let mut result = RolloutResult {
        ending: Ending::Paused,
        seconds: 0.0,
        excess_bad_requests: 0.0,
        canary_requests: 0.0,
        hold_intervals: 0,
    };
    let mut cumulative = (
        Cumulative::new(&scenario.buckets),
        Cumulative::new(&scenario.buckets),
    );
    if let Some(rec) = record.as_deref_mut() {
        rec.push(cumulative_line(&plan.context(&state, now), &cumulative));
    }
    // Bounded: the plan, plus a hold budget per step, plus slack.
    let limit = start
        + scenario.steps.iter().map(|s| s.1).sum::<f64>()
        + (scenario.steps.len() as f64 + 1.0)
            * (config.hold_budget.as_secs_f64() + scenario.interval);
    while let Some(wake) = plan.next_wake(&state, now, scenario.interval) {
        if wake > limit {
            break;
        }
        now = wake;
        let ctx = plan.context(&state, now);
        let interval = generator.interval(ctx);
        result.excess_bad_requests +=
            scenario.excess_bad_rate(ctx.weight / 100.0) * scenario.interval;
        result.canary_requests += interval.canary.counts.total;
        if let Some(rec) = record.as_deref_mut() {
            cumulative.0.add(&interval.stable);
            cumulative.1.add(&interval.canary);
            rec.push(cumulative_line(&ctx, &cumulative));
        }
        let judgement = judge
            .observe(ctx, &interval.samples(config))
            .expect("SimInterval::samples yields one sample per metric");
        state = plan.apply(&state, &ctx, judgement.decision, judgement.paused, now);
        if state.phase == Phase::Holding {
            result.hold_intervals += 1;
        }
        result.seconds = now - start;
        result.ending = match state.phase {
            Phase::Promoted => Ending::Promoted,
            Phase::RolledBack => Ending::RolledBack,
            _ => Ending::Paused,
        };
    }
    result
}

struct Cumulative {
    requests: f64,
    errors: f64,
    buckets: Vec<f64>,
    counts: Vec<f64>,
}

impl Cumulative {
    fn new(bounds: &[f64]) -> Self {
        Self {
            requests: 0.0,
            errors: 0.0,
            buckets: bounds.to_vec(),
            counts: vec![0.0; bounds.len() + 1],
        }
    }

    fn add(&mut self, v: &VersionInterval) {
        self.requests += v.counts.total;
        self.errors += v.counts.events;
        for (c, d) in self.counts.iter_mut().zip(&v.latency.counts) {
            *c += d;
        }
    }

    fn counters(&self) -> VersionCounters {
        let mut cum = 0.0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            cum += c;
            let le = self.buckets.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((le, cum));
        }
        VersionCounters {
            requests: self.requests,
            errors: self.errors,
            latency: Some(CumulativeHistogram {
                buckets,
                sum: 0.0,
                count: cum,
            }),
        }
    }
}

fn cumulative_line(ctx: &StepContext, cumulative: &(Cumulative, Cumulative)) -> RecordedInterval {
    RecordedInterval {
        t: ctx.t,
        weight: ctx.weight,
        step: ctx.step,
        step_complete: ctx.step_complete,
        last_step: ctx.last_step,
        stable: cumulative.0.counters(),
        canary: cumulative.1.counters(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_intervals() {
        let s = Scenario::identical("aa", "aa", 100.0);
        let ctx = StepContext {
            t: 0.0,
            step: 0,
            weight: 10.0,
            step_complete: false,
            last_step: false,
        };
        let a: Vec<_> = (0..5)
            .map(|_| Generator::new(s.clone(), 7).interval(ctx))
            .collect();
        let b: Vec<_> = (0..5)
            .map(|_| Generator::new(s.clone(), 7).interval(ctx))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn routing_follows_the_weight_and_latency_follows_the_distribution() {
        let s = Scenario::identical("aa", "aa", 1000.0);
        let mut g = Generator::new(s, 1);
        let ctx = StepContext {
            t: 0.0,
            step: 0,
            weight: 25.0,
            step_complete: false,
            last_step: false,
        };
        let mut canary = 0.0;
        let mut total = 0.0;
        let mut hist = Histogram::empty(&DEFAULT_BUCKETS);
        for _ in 0..100 {
            let i = g.interval(ctx);
            canary += i.canary.counts.total;
            total += i.canary.counts.total + i.stable.counts.total;
            hist.add(&i.stable.latency).unwrap();
        }
        let share = canary / total;
        assert!((share - 0.25).abs() < 0.01, "{share}");
        // Median 50 ms lies in the (0.025, 0.05] bucket boundary: about half below 0.05.
        let below: f64 = hist.counts[..4].iter().sum::<f64>() / hist.count();
        assert!((below - 0.5).abs() < 0.01, "{below}");
    }
}
