//! The judge's validated configuration: which metrics, which test, which policy.
//!
//! Built from an analysis template (`crate::template`) after validation; every value here is
//! already in range, so the judge never re-checks it.

use std::time::Duration;

/// Which change of the canary's value is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Only an increase is bad (errors, latency).
    Increase,
    /// Only a decrease is bad (success rate, throughput).
    Decrease,
    /// Any change beyond the tolerance is bad.
    Both,
}

impl Direction {
    /// Whether an increase is bad.
    pub fn watches_increase(self) -> bool {
        matches!(self, Direction::Increase | Direction::Both)
    }

    /// Whether a decrease is bad.
    pub fn watches_decrease(self) -> bool {
        matches!(self, Direction::Decrease | Direction::Both)
    }
}

/// What a metric's observations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Events out of requests (errors / requests), from counters.
    ErrorRate,
    /// A latency histogram (buckets, sum, count).
    Latency,
    /// A single value per version (gauge), judged against fixed limits only.
    Value,
}

/// How a metric is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Canary against stable in the same intervals (sequential, conditional on the traffic split).
    Compare {
        /// Which way is bad.
        direction: Direction,
        /// Relative change tolerated before it counts as bad (0.1 = 10 % worse is fine).
        tolerance: f64,
        /// Per-interval noise that is not evidence. Error rates: the smallest per-version
        /// coefficient of variation of the rate between intervals (the judge estimates the
        /// actual one online and uses the larger). Latency: relative noise between versions per
        /// bucket (beta-binomial dispersion). 0 means none.
        jitter: f64,
    },
    /// The canary's event rate must stay at or below `max` (an absolute SLO).
    MaxRate {
        /// Largest acceptable rate, in (0, 1).
        max: f64,
    },
    /// The canary's value must stay within `[min, max]`; not a statistical test: it fails after
    /// `fail_after` consecutive intervals outside, so a single blip does not roll back.
    ValueRange {
        /// Smallest acceptable value.
        min: Option<f64>,
        /// Largest acceptable value.
        max: Option<f64>,
        /// Consecutive breaching intervals that fail the metric.
        fail_after: u32,
    },
    /// The canary's latency quantile `quantile` must stay at or below `bound`.
    MaxQuantile {
        /// The quantile, in (0, 1), e.g. 0.99.
        quantile: f64,
        /// The largest acceptable value of that quantile (a histogram bucket bound).
        bound: f64,
    },
}

/// One metric the judge evaluates.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricConfig {
    /// Name, unique in the template.
    pub name: String,
    /// What the observations are.
    pub kind: MetricKind,
    /// How they are judged.
    pub method: Method,
    /// A failure of this metric rolls back on its own.
    pub critical: bool,
    /// Share of the error budget (α) and of the failure vote.
    pub weight: f64,
    /// Evaluated and reported, never acted on.
    pub dry_run: bool,
    /// Requests each version must serve in the current step before the metric can pass.
    pub min_samples: f64,
}

/// What happens when a step is over and the evidence is still inconclusive for longer than the
/// hold budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InconclusivePolicy {
    /// Keep holding at the current weight and ask a human (the rollout pauses).
    Pause,
    /// Roll back.
    Rollback,
}

/// The judge's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeConfig {
    /// Probability of rolling back a canary that is no worse than tolerated, over the whole
    /// rollout (family-wise across metrics, anytime-valid).
    pub alpha: f64,
    /// How long a completed step may hold on inconclusive evidence before `on_inconclusive` acts.
    pub hold_budget: Duration,
    /// What happens when the hold budget is spent.
    pub on_inconclusive: InconclusivePolicy,
    /// Failed non-critical metrics roll back when their weight reaches this share of the total.
    pub fail_weight: f64,
    /// The metrics, in template order.
    pub metrics: Vec<MetricConfig>,
}

impl JudgeConfig {
    /// Defaults for a template's top-level policy.
    pub const DEFAULT_ALPHA: f64 = 0.01;
    /// Default hold budget.
    pub const DEFAULT_HOLD_BUDGET: Duration = Duration::from_secs(600);
    /// Default failing-weight share that rolls back.
    pub const DEFAULT_FAIL_WEIGHT: f64 = 0.5;
}
