//! The judge: compares canary and stable observations and decides promote / continue / hold /
//! roll back. Pure: no I/O, no clock, no randomness — the same observations give the same answers.
//!
//! # Methods
//!
//! **Error rate (and any events-per-request ratio), canary vs stable** — [`RateComparison`].
//! In every interval the canary's share of the errors is compared with its share of the requests:
//! under "no difference" an error is on the canary with probability `π = n_canary / n_total`.
//! Conditional on the interval's error total the canary's count is binomial in that share (exactly
//! hypergeometric; the binomial likelihood ratio is conservative for it). Intervals are never
//! pooled, so weight changes and traffic swings cannot bias the comparison (Simpson's paradox),
//! and an incident that raises both versions' rates equally is no evidence against the canary.
//!
//! **Latency, canary vs stable** — [`LatencyComparison`]. The histogram buckets are walked from
//! the fastest up (log-rank style): among requests not yet completed, the canary's share of those
//! completing in the next bucket is compared with its share of those at risk (binomial over the
//! smaller of completers and survivors, alternative means from Cornfield's approximation to the
//! noncentral hypergeometric). Alternatives are proportional completion odds (whole histogram, or
//! only above the pooled median / p90 / p99) plus one learned from earlier intervals, all on the
//! "slower" side; a tolerance maps "up to x % slower" through a log-normal fitted to the pooled
//! histogram. One likelihood ratio covers the whole histogram, so there is no multiplicity across
//! bucket bounds. p50/p90/p99 are estimated for display by linear interpolation inside buckets,
//! as PromQL's `histogram_quantile` does.
//!
//! **Absolute gates** — [`ThresholdGate`]: "canary error rate ≤ 1 %", "canary p99 ≤ 500 ms"
//! (= at most 1 % of requests above the 0.5 s bucket bound), one-sided binomial tests on the
//! canary alone.
//!
//! **Value limits** — [`ValueGate`]: a single value per version (memory, CPU, queue length) kept
//! within `[min, max]`. Not statistical: it fails after `failAfter` consecutive intervals outside
//! the limits, takes no share of α and is not part of the Holm procedure.
//!
//! **Sequential validity.** Each test is a mixture of likelihood ratios over a fixed grid of
//! alternatives (a discrete mixture SPRT, cf. Robbins 1970; Johari, Pekelis & Walsh 2017), i.e.
//! an e-process `M_t` with `E[M_τ] ≤ 1` under the null at any stopping time `τ`. Ville's
//! inequality bounds the probability that it *ever* reaches `1/α` by `α`, so the judge looks
//! after every interval and may stop at once. Wald's SPRT (which knows the exact alternative)
//! is the floor for the expected time to detect; the mixture pays about `ln(grid size)` nats more.
//!
//! **Over-dispersion.** A `jitter` allowance `c` (default 0.1 for errors, 0.05 for latency) models
//! per-interval noise between versions that is not a regression (a noisy pod, a slow node): each
//! factor becomes a beta-binomial with precision `φ = 1/(π(1-π)c²) - 1` in both numerator and
//! denominator. With few events it equals the binomial; with many it caps the evidence one
//! interval can carry, so a ±`c` wobble never accumulates into a rollback. (A beta-binomial
//! *denominator* under a binomial *numerator* is not valid: near-null alternatives then have
//! expected likelihood ratio above 1 — we keep the same precision on both sides.)
//!
//! **Multiplicity across metrics.** Each gating metric gets a share `α·w/Σw` of the error
//! budget by its weight; failures are decided by the weighted Holm step-down on the anytime-valid
//! p-values `1/sup M_t`. Dry-run metrics are computed and reported, never counted.
//!
//! **Decisions.** A metric *fails* when Holm rejects it; it is *inconclusive* when its data is
//! missing, when either version served fewer than `min_samples` requests in the current step
//! ("insufficient traffic"), or while the current e-value is at least `sqrt(1/α_m)` ("evidence
//! building"); otherwise it *passes*. Overall: a critical failure, or failures carrying at least
//! `fail_weight` of the weight, roll back; any inconclusive gating metric holds; a completed last
//! step with every metric passing promotes; else continue. Holding after a step is complete is
//! bounded by the hold budget, after which the policy pauses for a human or rolls back. Missing
//! evidence never promotes.
//!
//! # Assumptions and error rates
//! - Requests are routed to the canary independently of their outcome (random weighted routing).
//!   Session stickiness that concentrates one bad client on one version violates this; the
//!   jitter allowance absorbs mild cases.
//! - With `tolerance = 0` the false-rollback probability per rollout is at most `α` (default 1 %)
//!   for any number of looks, weight schedule and traffic pattern; with a tolerance or jitter the
//!   guarantee is approximate and is checked by simulation (`tests/calibration.rs`, and
//!   `cargo bench --bench decision_quality` which prints false-rollback and detection rates).
//! - Counters come from the same intervals for both versions; a version without traffic in an
//!   interval contributes nothing to the comparison.

mod config;
mod judge;
mod latency_comparison;
mod observation;
mod rate_comparison;
mod sequential;
mod threshold_gate;
mod value_gate;
mod verdict;

pub use config::{Direction, InconclusivePolicy, JudgeConfig, Method, MetricConfig, MetricKind};
pub use judge::{Judge, NO_DATA};
pub use latency_comparison::LatencyComparison;
pub use observation::WindowInterval;
pub use observation::{Counts, Histogram, MetricSample, StepContext};
pub use rate_comparison::{MantelHaenszel, RateComparison};
pub use sequential::{Factor, Mixture, precision_for_jitter, tilt_share};
pub use threshold_gate::ThresholdGate;
pub use value_gate::ValueGate;
pub use verdict::{Decision, Estimate, Evidence, Judgement, MetricVerdict, Outcome, Quantiles};

/// Errors of the judge.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnalysisError {
    /// A histogram's buckets are malformed or differ from the ones seen before.
    #[error("latency histogram: {0}")]
    HistogramShape(String),
    /// The caller passed a different number of samples than there are metrics.
    #[error("expected one sample per metric ({expected}), got {got}")]
    SampleCount {
        /// Metrics in the configuration.
        expected: usize,
        /// Samples passed.
        got: usize,
    },
}
