//! What the judge says: per-metric verdicts with their evidence, and the overall decision.

use serde::{Deserialize, Serialize};

use super::observation::Counts;

/// A metric's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No evidence of harm, with enough traffic.
    Pass,
    /// Evidence of harm beyond the tolerance at the metric's error budget.
    Fail,
    /// Not enough evidence either way (traffic, missing data, or evidence still building).
    Inconclusive,
}

/// The overall decision after an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// No objection: advance when the step is complete.
    Continue,
    /// Stay at this weight and keep observing.
    Hold,
    /// The last step is complete and every gating metric passed.
    Promote,
    /// Send all traffic back to stable.
    Rollback,
}

impl Decision {
    /// The lowercase name used in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Continue => "continue",
            Decision::Hold => "hold",
            Decision::Promote => "promote",
            Decision::Rollback => "rollback",
        }
    }
}

/// An effect estimate with an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// What is estimated.
    pub quantity: String,
    /// Point estimate (may be infinite while a denominator is zero; serialised as null).
    pub value: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// How the interval was computed.
    pub interval: String,
}

/// Latency quantiles of one version.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Counts behind a verdict, over the whole analysis so far (display; the tests never pool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Stable events and requests (for a gate: not used, zero).
    pub stable: Counts,
    /// Canary events and requests (latency comparisons: requests only).
    pub canary: Counts,
    /// Requests the canary served in the current step.
    pub step_canary_requests: f64,
    /// Latency quantiles (latency metrics only): stable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_quantiles: Option<Quantiles>,
    /// Latency quantiles (latency metrics only): canary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_quantiles: Option<Quantiles>,
}

/// One metric's verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricVerdict {
    /// Metric name from the template.
    pub name: String,
    /// The verdict.
    pub verdict: Outcome,
    /// Why, for a human.
    pub reason: String,
    /// The statistical method.
    pub method: String,
    /// Current e-value `M_t` (evidence of harm; capped at 1e300).
    pub e_value: f64,
    /// Largest e-value so far; `1/max_e_value` is an anytime-valid p-value.
    pub max_e_value: f64,
    /// The e-value at which this metric fails (`1/α_m`, Bonferroni share of α by weight).
    pub fail_at: f64,
    /// Effect estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    /// Counts.
    pub evidence: Evidence,
    /// A failure rolls back on its own.
    pub critical: bool,
    /// Reported only.
    pub dry_run: bool,
    /// Weight.
    pub weight: f64,
}

/// The judge's answer after one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// End of the interval, unix seconds.
    pub t: f64,
    /// The decision.
    pub decision: Decision,
    /// Why, for a human.
    pub reason: String,
    /// Step index.
    pub step: usize,
    /// Canary weight (percent).
    pub weight: f64,
    /// The hold budget is spent and the policy paused the rollout for a human.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub paused: bool,
    /// Per-metric verdicts, in template order.
    pub metrics: Vec<MetricVerdict>,
}

/// Caps an e-value for JSON (which has no infinity).
pub(crate) fn e_value_from_log(log_e: f64) -> f64 {
    log_e.exp().min(1e300)
}
