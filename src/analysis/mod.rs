//! The judge: compares canary and stable observations and decides promote / continue / hold /
//! roll back. Pure: no I/O, no clock, no randomness — the same observations give the same answers.
//!
//! # Methods
//!
//! **Error rate (and any events-per-request ratio), canary vs stable** — [`RateComparison`].
//! In every interval the canary's error count is tested conditional on the interval's error
//! total: each version's count is a negative binomial (Poisson with a per-interval, per-version
//! Gamma rate: over-dispersion), and given the total the canary's count has an exponential-family
//! law that is the binomial with the canary's share of the requests when there is no
//! over-dispersion. The dispersion is estimated online from both versions, from earlier
//! intervals only. Intervals are never pooled, so weight changes and traffic swings cannot bias
//! the comparison (Simpson's paradox), and an incident that raises both versions' rates equally
//! is no evidence against the canary.
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
//! **Over-dispersion.** Errors: the per-version coefficient of variation of the error rate
//! between intervals is estimated online (predictable: earlier intervals only, with a prior at
//! 0.5 worth one interval of 2 errors) and never taken below the template's `jitter` (default
//! 0.05); see [`RateComparison`] for the law, the plug-ins and why they keep the test calibrated.
//! Latency: a fixed `jitter` allowance `c` (default 0.05) models per-interval noise between
//! versions that is not a regression: each bucket factor becomes a beta-binomial with
//! precision `φ = 1/(π(1-π)c²) - 1` in both numerator and denominator. With few events it equals
//! the binomial; with many it caps the evidence one interval can carry. (A beta-binomial
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
//! bounded by the hold budget, after which the policy pauses for a human or rolls back — three
//! budgets while a metric's evidence is building (its e-value between the hold and the failure
//! level): such evidence resolves one way or the other as data comes, and cutting it short is how
//! a regression at low traffic ended paused instead of rolled back. The last step promotes only
//! once no gating metric leans toward harm (e-value above 1) or one hold budget has been spent
//! waiting for it to stop: a regression too small for the steps' traffic gets that much more data
//! at the last weight. Neither changes the false-rollback bound (Ville's inequality holds at any
//! stopping time); they cost A/A rollouts time only when their evidence leans the wrong way.
//! Missing evidence never promotes.
//!
//! Holds follow the evidence, not the traffic volume: at a completed *intermediate* step, a
//! metric that is short of `min_samples` only because the whole service is quiet — the stable
//! served `min_samples`, the canary got at least half its weight's share of the requests, and
//! its e-value is below the hold level — does not hold: the rollout advances on schedule,
//! because a higher weight gathers evidence faster and holding a thin step at 5 % gathers it at
//! the slowest rate (at 1 request/s a +5 pt regression slipped through a paused rollout 3 times
//! in 4). A canary that receives much less than its weight (broken routing, pods not ready)
//! still holds, and the last step still needs `min_samples` per version before promoting.
//!
//! # Assumptions and error rates
//! - Requests are routed to the canary independently of their outcome (random weighted routing).
//!   Session stickiness that concentrates one bad client on one version violates this; the
//!   jitter allowance absorbs mild cases.
//! - With `tolerance = 0`, a known over-dispersion and Poisson-Gamma errors, the false-rollback
//!   probability per rollout is at most `α` (default 1 %) for any number of looks, weight
//!   schedule and traffic pattern; with a tolerance, a latency jitter, or the error dispersion
//!   and common rate estimated online, the guarantee is approximate and is checked by
//!   simulation (`tests/calibration.rs`, and `cargo bench --bench decision_quality` which prints
//!   false-rollback and detection rates against their targets).
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
pub use judge::{INSUFFICIENT_TRAFFIC, Judge, NO_DATA};
pub use latency_comparison::LatencyComparison;
pub use observation::WindowInterval;
pub use observation::{Counts, Histogram, MetricSample, StepContext};
pub use rate_comparison::{MantelHaenszel, RateComparison};
pub use sequential::{Factor, Mixture, log_sum_exp, precision_for_jitter, tilt_share};
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
