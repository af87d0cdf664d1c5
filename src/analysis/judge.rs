//! The judge: per-interval samples of every metric → per-metric verdicts → one decision.
//!
//! Stateful but deterministic: the same sequence of observations always produces the same
//! sequence of judgements.

use super::config::{InconclusivePolicy, JudgeConfig, Method, MetricConfig, MetricKind};
use super::latency_comparison::LatencyComparison;
use super::observation::{Counts, Histogram, MetricSample, StepContext};
use super::rate_comparison::RateComparison;
use super::threshold_gate::ThresholdGate;
use super::value_gate::ValueGate;
use super::verdict::{
    Decision, Evidence, Judgement, MetricVerdict, Outcome, Quantiles, e_value_from_log,
};
use super::{AnalysisError, Mixture};

/// How a metric's reason starts when its latest interval had no usable data (missing series,
/// NaN, non-finite counts).
pub const NO_DATA: &str = "no data";

/// How a metric's reason starts when a version served fewer than `min_samples` requests in the
/// current step.
pub const INSUFFICIENT_TRAFFIC: &str = "insufficient traffic";

/// How a metric's reason starts while its e-value is between the hold level `sqrt(1/α_m)` and
/// the failure level `1/α_m`.
pub const EVIDENCE_BUILDING: &str = "evidence building";

/// How many hold budgets a completed step may hold while a metric's evidence is building.
const BUILDING_BUDGETS: f64 = 3.0;

/// The test behind one metric.
#[derive(Debug, Clone, PartialEq)]
enum Engine {
    Rate(RateComparison),
    Latency(LatencyComparison),
    Gate(ThresholdGate),
    Value(ValueGate),
}

impl Engine {
    fn new(metric: &MetricConfig) -> Self {
        match metric.method {
            Method::Compare {
                direction,
                tolerance,
                jitter,
            } => match metric.kind {
                MetricKind::ErrorRate => {
                    Engine::Rate(RateComparison::new(direction, tolerance, jitter))
                }
                MetricKind::Latency => {
                    Engine::Latency(LatencyComparison::new(direction, tolerance, jitter))
                }
                // Validation only allows limits on values; an unlimited gate never fails.
                MetricKind::Value => Engine::Value(ValueGate::new(None, None, 1)),
            },
            Method::MaxRate { max } => Engine::Gate(ThresholdGate::new(max)),
            Method::MaxQuantile { quantile, .. } => {
                Engine::Gate(ThresholdGate::new(1.0 - quantile))
            }
            Method::ValueRange {
                min,
                max,
                fail_after,
            } => Engine::Value(ValueGate::new(min, max, fail_after)),
        }
    }

    /// The e-process of a statistical test; `None` for plain value limits.
    fn mixture(&self) -> Option<&Mixture> {
        match self {
            Engine::Rate(e) => Some(e.mixture()),
            Engine::Latency(e) => Some(e.mixture()),
            Engine::Gate(e) => Some(e.mixture()),
            Engine::Value(_) => None,
        }
    }
}

/// Per-metric running state besides the test.
#[derive(Debug, Clone, PartialEq)]
struct MetricState {
    engine: Engine,
    step_stable: f64,
    step_canary: f64,
    problem: Option<String>,
}

/// Judges a canary interval by interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Judge {
    config: JudgeConfig,
    metrics: Vec<MetricState>,
    step: Option<usize>,
    hold_since: Option<f64>,
    terminal: Option<(Decision, String)>,
    /// Whether the last step waits (up to a hold budget) while a metric leans toward harm;
    /// `false` for a window judged once, which has no later interval to wait for.
    hold_before_promoting: bool,
}

impl Judge {
    /// A judge with fresh evidence.
    pub fn new(config: JudgeConfig) -> Self {
        let metrics = config
            .metrics
            .iter()
            .map(|m| MetricState {
                engine: Engine::new(m),
                step_stable: 0.0,
                step_canary: 0.0,
                problem: None,
            })
            .collect();
        Self {
            config,
            metrics,
            step: None,
            hold_since: None,
            terminal: None,
            hold_before_promoting: true,
        }
    }

    /// A judge of one window judged once (`analyze`, the gate): there is no later interval, so
    /// its last step promotes on the evidence as it stands instead of holding while a metric
    /// leans toward harm (evidence that is building still holds: it is inconclusive either way).
    #[must_use]
    pub fn judging_one_window(mut self) -> Self {
        self.hold_before_promoting = false;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &JudgeConfig {
        &self.config
    }

    /// Adds one interval (one sample per metric, in template order) and judges.
    ///
    /// # Errors
    /// When the number of samples does not match the metrics.
    pub fn observe(
        &mut self,
        ctx: StepContext,
        samples: &[MetricSample],
    ) -> Result<Judgement, AnalysisError> {
        if samples.len() != self.metrics.len() {
            return Err(AnalysisError::SampleCount {
                expected: self.metrics.len(),
                got: samples.len(),
            });
        }
        if self.step != Some(ctx.step) {
            self.step = Some(ctx.step);
            self.hold_since = None;
            for m in &mut self.metrics {
                m.step_stable = 0.0;
                m.step_canary = 0.0;
            }
        }
        for ((state, config), sample) in self
            .metrics
            .iter_mut()
            .zip(&self.config.metrics)
            .zip(samples)
        {
            state.problem = update(state, config, sample).err();
        }
        let verdicts = self.verdicts();
        let (decision, reason, paused) = self.decide(ctx, &verdicts);
        Ok(Judgement {
            t: ctx.t,
            decision,
            reason,
            step: ctx.step,
            weight: ctx.weight,
            paused,
            metrics: verdicts,
        })
    }

    /// Weighted Holm over the gating metrics on anytime-valid p-values `1/sup M`, then the
    /// per-metric outcome.
    fn verdicts(&self) -> Vec<MetricVerdict> {
        let alpha = self.config.alpha;
        let statistical = |i: usize| self.metrics[i].engine.mixture().is_some();
        // α is shared by weight among the gating statistical metrics.
        let gating_weight: f64 = (0..self.metrics.len())
            .filter(|&i| !self.config.metrics[i].dry_run && statistical(i))
            .map(|i| self.config.metrics[i].weight)
            .sum();
        let p = |i: usize| {
            self.metrics[i]
                .engine
                .mixture()
                .map_or(1.0, |m| (-m.max_log_e()).exp())
        };
        // Holm step-down: order by p/w, reject while p ≤ α·w/W_remaining.
        let mut order: Vec<usize> = (0..self.metrics.len())
            .filter(|&i| !self.config.metrics[i].dry_run && statistical(i))
            .collect();
        order.sort_by(|&a, &b| {
            (p(a) / self.config.metrics[a].weight)
                .total_cmp(&(p(b) / self.config.metrics[b].weight))
                .then(a.cmp(&b))
        });
        let mut rejected = vec![false; self.metrics.len()];
        let mut remaining = gating_weight;
        for &i in &order {
            let w = self.config.metrics[i].weight;
            if p(i) <= alpha * w / remaining {
                rejected[i] = true;
                remaining -= w;
            } else {
                break;
            }
        }

        self.metrics
            .iter()
            .zip(&self.config.metrics)
            .enumerate()
            .map(|(i, (state, config))| {
                let share = if config.dry_run || gating_weight <= 0.0 {
                    config.weight / (gating_weight + config.weight)
                } else {
                    config.weight / gating_weight
                };
                let fail_at = 1.0 / (alpha * share);
                let dry_fail = config.dry_run && p(i) <= alpha * share;
                verdict(state, config, fail_at, rejected[i] || dry_fail)
            })
            .collect()
    }

    fn decide(&mut self, ctx: StepContext, verdicts: &[MetricVerdict]) -> (Decision, String, bool) {
        if let Some((decision, reason)) = &self.terminal {
            return (*decision, reason.clone(), false);
        }
        let gating: Vec<&MetricVerdict> = verdicts.iter().filter(|v| !v.dry_run).collect();
        let total_weight: f64 = gating.iter().map(|v| v.weight).sum();
        let failed: Vec<&MetricVerdict> = gating
            .iter()
            .copied()
            .filter(|v| v.verdict == Outcome::Fail)
            .collect();
        let failed_weight: f64 = failed.iter().map(|v| v.weight).sum();
        if !failed.is_empty()
            && (failed.iter().any(|v| v.critical)
                || failed_weight >= self.config.fail_weight * total_weight)
        {
            let reason = describe(&failed);
            self.terminal = Some((Decision::Rollback, format!("rolled back: {reason}")));
            return (Decision::Rollback, reason, false);
        }
        // A completed intermediate step that is thin only because the whole service is quiet
        // advances on schedule: the canary got its share of the traffic, no evidence is
        // building, and the next weight gathers evidence faster than holding this one would.
        // Promotion still needs `min_samples` per version in the last step.
        let quiet: Vec<bool> = verdicts
            .iter()
            .zip(&self.metrics)
            .zip(&self.config.metrics)
            .map(|((v, state), config)| {
                let total = state.step_canary + state.step_stable;
                ctx.step_complete
                    && !ctx.last_step
                    && !v.dry_run
                    && v.verdict == Outcome::Inconclusive
                    && v.reason.starts_with(INSUFFICIENT_TRAFFIC)
                    && v.e_value < v.fail_at.sqrt()
                    && state.step_stable >= config.min_samples
                    && state.step_canary > 0.0
                    && state.step_canary >= 0.5 * total * ctx.weight / 100.0
            })
            .collect();
        let inconclusive: Vec<&MetricVerdict> = verdicts
            .iter()
            .zip(&quiet)
            .filter(|(v, q)| !v.dry_run && v.verdict == Outcome::Inconclusive && !**q)
            .map(|(v, _)| v)
            .collect();
        let advanced: Vec<&MetricVerdict> = verdicts
            .iter()
            .zip(&quiet)
            .filter(|(_, q)| **q)
            .map(|(v, _)| v)
            .collect();
        if !inconclusive.is_empty() {
            let reason = describe(&inconclusive);
            if !ctx.step_complete {
                return (Decision::Hold, reason, false);
            }
            let since = *self.hold_since.get_or_insert(ctx.t);
            let held = ctx.t - since;
            // Evidence that is building toward a failure gets three budgets before a pause: it
            // resolves one way or the other as data comes, and stopping it early is what lets
            // a regression at low traffic end paused instead of rolled back. The false-rollback
            // bound does not depend on when the judge stops looking.
            let building = inconclusive
                .iter()
                .any(|v| v.reason.starts_with(EVIDENCE_BUILDING));
            let budget = self.config.hold_budget.as_secs_f64()
                * if building { BUILDING_BUDGETS } else { 1.0 };
            if held < budget {
                return (
                    Decision::Hold,
                    format!("{reason} (holding {held:.0}s of {budget:.0}s budget)"),
                    false,
                );
            }
            let spent = format!(
                "hold budget of {budget:.0}s spent at step {} with inconclusive evidence",
                ctx.step
            );
            return match self.config.on_inconclusive {
                InconclusivePolicy::Rollback => {
                    let reason = format!("{spent}, policy rollback: {reason}");
                    self.terminal = Some((Decision::Rollback, reason.clone()));
                    (Decision::Rollback, reason, false)
                }
                InconclusivePolicy::Pause => (
                    Decision::Hold,
                    format!("{spent}, paused for a human: {reason}"),
                    true,
                ),
            };
        }
        // The last step promotes only once no gating metric leans toward harm (e-value above
        // 1), or once a hold budget has been spent on it: a regression too small for the
        // steps' traffic then gets one more budget of data at the last weight before promoting.
        if ctx.step_complete && ctx.last_step && self.hold_before_promoting {
            let leaning: Vec<&MetricVerdict> = gating
                .iter()
                .copied()
                .filter(|v| v.verdict == Outcome::Pass && v.e_value > 1.0)
                .collect();
            if !leaning.is_empty() {
                let since = *self.hold_since.get_or_insert(ctx.t);
                let held = ctx.t - since;
                let budget = self.config.hold_budget.as_secs_f64();
                if held < budget {
                    let reason = format!(
                        "leaning toward harm before promoting (e-value above 1): {} (holding {held:.0}s of {budget:.0}s, then promoting if it has not grown to the hold level)",
                        describe(&leaning)
                    );
                    return (Decision::Hold, reason, false);
                }
            }
        }
        self.hold_since = None;
        let mut reason = "all gating metrics pass".to_string();
        if !failed.is_empty() {
            reason = format!(
                "{reason} except non-critical ones below the failure weight: {}",
                describe(&failed)
            );
        }
        if !advanced.is_empty() {
            reason = format!(
                "no evidence of harm; advancing on schedule with a quiet service (the canary got its share, the next weight gathers evidence faster): {}",
                describe(&advanced)
            );
        }
        if ctx.step_complete && ctx.last_step {
            self.terminal = Some((Decision::Promote, format!("promoted: {reason}")));
            return (Decision::Promote, reason, false);
        }
        (Decision::Continue, reason, false)
    }
}

fn describe(verdicts: &[&MetricVerdict]) -> String {
    verdicts
        .iter()
        .map(|v| format!("{}: {}", v.name, v.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Feeds one sample to a metric. `Err` carries why the interval is unusable.
fn update(
    state: &mut MetricState,
    config: &MetricConfig,
    sample: &MetricSample,
) -> Result<(), String> {
    if let MetricSample::Counts { stable, canary } = sample
        && !(stable.is_valid() && canary.is_valid())
    {
        return Err(format!(
            "{NO_DATA}: the counts are not finite, non-negative numbers"
        ));
    }
    match (&mut state.engine, sample) {
        (_, MetricSample::Missing(why)) => Err(format!("{NO_DATA}: {why}")),
        (Engine::Rate(e), MetricSample::Counts { stable, canary }) => {
            e.update(*stable, *canary);
            state.step_stable += stable.total;
            state.step_canary += canary.total;
            Ok(())
        }
        (Engine::Latency(e), MetricSample::Histogram { stable, canary }) => {
            e.update(stable, canary).map_err(|e| e.to_string())?;
            state.step_stable += stable.count();
            state.step_canary += canary.count();
            Ok(())
        }
        (Engine::Gate(g), MetricSample::Counts { stable, canary }) => {
            g.update(*canary);
            state.step_stable += stable.total;
            state.step_canary += canary.total;
            Ok(())
        }
        (Engine::Gate(g), MetricSample::Histogram { stable, canary }) => {
            let Method::MaxQuantile { bound, .. } = config.method else {
                return Err("a latency histogram was given to a rate gate".into());
            };
            g.update(canary.count_above(bound));
            state.step_stable += stable.count();
            state.step_canary += canary.count();
            Ok(())
        }
        (Engine::Value(g), MetricSample::Value { stable, canary }) => {
            g.update(*stable, *canary);
            Ok(())
        }
        (Engine::Value(_), _) => Err("expected a single value per version".into()),
        (_, MetricSample::Value { .. }) => {
            Err("expected counts or a histogram, got a single value".into())
        }
        (Engine::Rate(_), MetricSample::Histogram { .. }) => {
            Err("expected error counts, got a latency histogram".into())
        }
        (Engine::Latency(_), MetricSample::Counts { .. }) => {
            Err("expected a latency histogram, got counts".into())
        }
    }
}

fn quantiles(h: Option<&Histogram>) -> Option<Quantiles> {
    let h = h?;
    Some(Quantiles {
        p50: h.quantile(0.5),
        p90: h.quantile(0.9),
        p99: h.quantile(0.99),
    })
}

fn verdict(
    state: &MetricState,
    config: &MetricConfig,
    fail_at: f64,
    failed: bool,
) -> MetricVerdict {
    if let Engine::Value(g) = &state.engine {
        return value_verdict(g, state, config);
    }
    let Some(mixture) = state.engine.mixture() else {
        unreachable!("value gates returned above")
    };
    let log_e = mixture.log_e();
    let hold_at = fail_at.sqrt();
    let (method, estimate, evidence) = match &state.engine {
        Engine::Rate(e) => {
            let (stable, canary) = e.totals();
            (
                "conditional binomial mixture SPRT (canary share of errors vs share of requests)",
                e.estimate(),
                Evidence {
                    stable,
                    canary,
                    step_canary_requests: state.step_canary,
                    stable_quantiles: None,
                    canary_quantiles: None,
                },
            )
        }
        Engine::Latency(e) => {
            let (s, c) = e.totals();
            let total = |h: Option<&Histogram>| Counts::new(0.0, h.map_or(0.0, Histogram::count));
            (
                "histogram log-rank mixture SPRT (canary share of completions per bucket)",
                e.estimate(),
                Evidence {
                    stable: total(s),
                    canary: total(c),
                    step_canary_requests: state.step_canary,
                    stable_quantiles: quantiles(s),
                    canary_quantiles: quantiles(c),
                },
            )
        }
        Engine::Value(_) => unreachable!("value gates returned above"),
        Engine::Gate(g) => (
            "one-sided binomial mixture SPRT against the threshold",
            g.estimate(),
            Evidence {
                stable: Counts::default(),
                canary: g.totals(),
                step_canary_requests: state.step_canary,
                stable_quantiles: None,
                canary_quantiles: None,
            },
        ),
    };
    let e_value = e_value_from_log(log_e);
    let min = config.min_samples;
    let (outcome, reason) = if failed {
        (
            Outcome::Fail,
            format!(
                "evidence of harm: e-value {:.3e} reached {:.0}{}",
                e_value_from_log(mixture.max_log_e()),
                fail_at,
                estimate_text(config, &estimate)
            ),
        )
    } else if let Some(problem) = &state.problem {
        (Outcome::Inconclusive, problem.clone())
    } else if state.step_canary < min
        // An absolute gate judges the canary alone; a comparison needs both versions.
        || (!matches!(state.engine, Engine::Gate(_)) && state.step_stable < min)
    {
        (
            Outcome::Inconclusive,
            format!(
                "{INSUFFICIENT_TRAFFIC}: {:.0} canary and {:.0} stable requests in this step, {min:.0} needed",
                state.step_canary, state.step_stable
            ),
        )
    } else if e_value >= hold_at {
        (
            Outcome::Inconclusive,
            format!(
                "{EVIDENCE_BUILDING}: e-value {e_value:.1} (hold from {hold_at:.1}, fail at {fail_at:.0}){}",
                estimate_text(config, &estimate)
            ),
        )
    } else {
        (
            Outcome::Pass,
            format!(
                "no evidence of harm: e-value {e_value:.2} (fail at {fail_at:.0}){}",
                estimate_text(config, &estimate)
            ),
        )
    };
    MetricVerdict {
        name: config.name.clone(),
        verdict: outcome,
        reason,
        method: method.to_string(),
        e_value,
        max_e_value: e_value_from_log(mixture.max_log_e()),
        fail_at,
        estimate,
        evidence,
        critical: config.critical,
        dry_run: config.dry_run,
        weight: config.weight,
    }
}

/// The verdict of a plain value limit: fail after consecutive breaches; no e-value (reported as
/// 1, with `fail_at` infinite — null in JSON).
fn value_verdict(g: &ValueGate, state: &MetricState, config: &MetricConfig) -> MetricVerdict {
    let (breaches, fail_after) = g.breaches();
    let value = g.last().map_or("no value yet".to_string(), |(_, c)| {
        format!("canary value {c}")
    });
    let (outcome, reason) = if g.failed() {
        (
            Outcome::Fail,
            format!("outside the limits for {fail_after} consecutive intervals; {value}"),
        )
    } else if let Some(problem) = &state.problem {
        (Outcome::Inconclusive, problem.clone())
    } else if g.last().is_none() {
        (Outcome::Inconclusive, "no data: no value yet".to_string())
    } else if breaches > 0 {
        (
            Outcome::Inconclusive,
            format!(
                "outside the limits for {breaches} of {fail_after} consecutive intervals; {value}"
            ),
        )
    } else {
        (Outcome::Pass, format!("within the limits; {value}"))
    };
    let seen = |v: Option<f64>| Counts::new(0.0, if v.is_some() { 1.0 } else { 0.0 });
    let (stable, canary) = g.last().map_or((None, None), |(s, c)| (s, Some(c)));
    MetricVerdict {
        name: config.name.clone(),
        verdict: outcome,
        reason,
        method: "plain limits on the canary's value, failing after consecutive breaches (not statistical)".into(),
        e_value: 1.0,
        max_e_value: 1.0,
        fail_at: f64::INFINITY,
        estimate: g.estimate(),
        evidence: Evidence {
            stable: seen(stable),
            canary: seen(canary),
            step_canary_requests: state.step_canary,
            stable_quantiles: None,
            canary_quantiles: None,
        },
        critical: config.critical,
        dry_run: config.dry_run,
        weight: config.weight,
    }
}

fn estimate_text(config: &MetricConfig, estimate: &Option<super::verdict::Estimate>) -> String {
    let Some(e) = estimate else {
        return String::new();
    };
    let fmt = |x: f64| {
        if x.is_finite() {
            format!("{x:.3}")
        } else {
            "∞".to_string()
        }
    };
    let what = match config.method {
        Method::Compare { .. } => match config.kind {
            MetricKind::ErrorRate => "error rate ratio",
            MetricKind::Latency => "completion-odds ratio (below 1: canary slower)",
            MetricKind::Value => "value",
        },
        Method::MaxRate { .. } | Method::MaxQuantile { .. } => "canary rate",
        Method::ValueRange { .. } => "canary value",
    };
    format!(
        "; {what} {} [{}, {}]",
        fmt(e.value),
        fmt(e.low),
        fmt(e.high)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::analysis::{Direction, InconclusivePolicy};

    fn config(metrics: Vec<MetricConfig>) -> JudgeConfig {
        JudgeConfig {
            alpha: 0.01,
            hold_budget: Duration::from_secs(60),
            on_inconclusive: InconclusivePolicy::Rollback,
            fail_weight: 0.5,
            metrics,
        }
    }

    fn errors() -> MetricConfig {
        MetricConfig {
            name: "errors".into(),
            kind: MetricKind::ErrorRate,
            method: Method::Compare {
                direction: Direction::Increase,
                tolerance: 0.0,
                jitter: 0.1,
            },
            critical: false,
            weight: 1.0,
            dry_run: false,
            min_samples: 50.0,
        }
    }

    fn memory(critical: bool) -> MetricConfig {
        MetricConfig {
            name: "memory".into(),
            kind: MetricKind::Value,
            method: Method::ValueRange {
                min: None,
                max: Some(100.0),
                fail_after: 2,
            },
            critical,
            weight: 1.0,
            dry_run: false,
            min_samples: 0.0,
        }
    }

    fn ctx(t: f64, step_complete: bool) -> StepContext {
        StepContext {
            t,
            step: 0,
            weight: 10.0,
            step_complete,
            last_step: true,
        }
    }

    fn clean() -> MetricSample {
        MetricSample::Counts {
            stable: Counts::new(1.0, 900.0),
            canary: Counts::new(0.0, 100.0),
        }
    }

    /// Zero errors on both versions: no information on the error rate, the e-value stays.
    fn neutral() -> MetricSample {
        MetricSample::Counts {
            stable: Counts::new(0.0, 900.0),
            canary: Counts::new(0.0, 100.0),
        }
    }

    /// A first interval (10 % canary) whose e-value lies in `range`, found by raising the
    /// canary's errors over the stable's 3.
    fn first_interval_with_e_in(range: std::ops::Range<f64>) -> MetricSample {
        (0..40)
            .map(|k| MetricSample::Counts {
                stable: Counts::new(3.0, 900.0),
                canary: Counts::new(f64::from(k), 100.0),
            })
            .find(|sample| {
                let j = Judge::new(config(vec![errors()]))
                    .observe(ctx(0.0, false), std::slice::from_ref(sample))
                    .unwrap();
                range.contains(&j.metrics[0].e_value)
            })
            .expect("some canary error count gives an e-value in the range")
    }

    #[test]
    fn the_last_step_holds_one_budget_while_a_metric_leans_toward_harm_then_promotes() {
        let leaning = first_interval_with_e_in(1.05..5.0);
        let mut judge = Judge::new(config(vec![errors()]));
        let j = judge
            .observe(ctx(300.0, true), std::slice::from_ref(&leaning))
            .unwrap();
        assert_eq!(j.decision, Decision::Hold, "{}", j.reason);
        assert!(j.reason.contains("leaning toward harm"), "{}", j.reason);
        let j = judge.observe(ctx(330.0, true), &[neutral()]).unwrap();
        assert_eq!(j.decision, Decision::Hold, "{}", j.reason);
        let j = judge.observe(ctx(360.0, true), &[neutral()]).unwrap();
        assert_eq!(j.decision, Decision::Promote, "budget spent: {}", j.reason);
        // Evidence that stops leaning promotes at once.
        let mut judge = Judge::new(config(vec![errors()]));
        assert_eq!(
            judge
                .observe(ctx(0.0, false), std::slice::from_ref(&leaning))
                .unwrap()
                .decision,
            Decision::Continue
        );
        let fading = MetricSample::Counts {
            stable: Counts::new(30.0, 9000.0),
            canary: Counts::new(1.0, 1000.0),
        };
        let j = judge.observe(ctx(300.0, true), &[fading]).unwrap();
        assert!(j.metrics[0].e_value < 1.0, "{}", j.metrics[0].e_value);
        assert_eq!(j.decision, Decision::Promote, "{}", j.reason);
        // A window judged once has no later interval to wait for.
        let j = Judge::new(config(vec![errors()]))
            .judging_one_window()
            .observe(ctx(300.0, true), &[leaning])
            .unwrap();
        assert_eq!(j.decision, Decision::Promote, "{}", j.reason);
    }

    #[test]
    fn evidence_that_is_building_holds_three_budgets_before_the_policy_acts() {
        let building = first_interval_with_e_in(10.0..100.0);
        let mut judge = Judge::new(config(vec![errors()]));
        let j = judge.observe(ctx(300.0, true), &[building]).unwrap();
        assert_eq!(j.decision, Decision::Hold, "{}", j.reason);
        assert!(j.reason.contains(EVIDENCE_BUILDING), "{}", j.reason);
        let j = judge.observe(ctx(420.0, true), &[neutral()]).unwrap();
        assert_eq!(j.decision, Decision::Hold, "two budgets: {}", j.reason);
        let j = judge.observe(ctx(480.0, true), &[neutral()]).unwrap();
        assert_eq!(j.decision, Decision::Rollback, "{}", j.reason);
        assert!(
            j.reason.contains("hold budget of 180s spent"),
            "{}",
            j.reason
        );
    }

    #[test]
    fn insufficient_traffic_holds_instead_of_rolling_back() {
        let mut judge = Judge::new(config(vec![errors()]));
        let thin = MetricSample::Counts {
            stable: Counts::new(0.0, 190.0),
            canary: Counts::new(1.0, 10.0),
        };
        let j = judge.observe(ctx(10.0, false), &[thin]).unwrap();
        assert_eq!(j.decision, Decision::Hold);
        assert!(j.reason.contains("insufficient traffic"), "{}", j.reason);
    }

    #[test]
    fn a_quiet_service_advances_on_schedule_but_a_starved_canary_holds() {
        let step_end = |last_step| StepContext {
            t: 300.0,
            step: 0,
            weight: 10.0,
            step_complete: true,
            last_step,
        };
        // 1 request/s: the canary got its 10 % share, 30 requests in the step, no errors.
        let quiet = || MetricSample::Counts {
            stable: Counts::new(0.0, 270.0),
            canary: Counts::new(0.0, 30.0),
        };
        let j = Judge::new(config(vec![errors()]))
            .observe(step_end(false), &[quiet()])
            .unwrap();
        assert_eq!(j.decision, Decision::Continue, "{}", j.reason);
        assert!(j.reason.contains("advancing on schedule"), "{}", j.reason);
        // The canary receives far less than its weight (routing broken, pods not ready): hold.
        let starved = MetricSample::Counts {
            stable: Counts::new(0.0, 900.0),
            canary: Counts::new(0.0, 2.0),
        };
        let j = Judge::new(config(vec![errors()]))
            .observe(step_end(false), &[starved])
            .unwrap();
        assert_eq!(j.decision, Decision::Hold, "{}", j.reason);
        assert!(j.reason.contains(INSUFFICIENT_TRAFFIC), "{}", j.reason);
        // The last step still needs min_samples per version before promoting.
        let j = Judge::new(config(vec![errors()]))
            .observe(step_end(true), &[quiet()])
            .unwrap();
        assert_eq!(j.decision, Decision::Hold, "{}", j.reason);
    }

    #[test]
    fn missing_data_never_promotes_and_the_hold_budget_then_applies_the_policy() {
        let mut judge = Judge::new(config(vec![errors()]));
        let missing = [MetricSample::Missing("prometheus unreachable".into())];
        let j = judge.observe(ctx(10.0, true), &missing).unwrap();
        assert_eq!(j.decision, Decision::Hold);
        assert!(
            j.reason.contains("no data: prometheus unreachable"),
            "{}",
            j.reason
        );
        let j = judge.observe(ctx(80.0, true), &missing).unwrap();
        assert_eq!(j.decision, Decision::Rollback);
        assert!(j.reason.contains("hold budget"), "{}", j.reason);
    }

    #[test]
    fn counts_that_are_not_numbers_hold_instead_of_promoting() {
        let mut judge = Judge::new(config(vec![errors()]));
        let fine = judge.observe(ctx(10.0, false), &[clean()]).unwrap();
        assert_eq!(fine.decision, Decision::Continue);
        let broken = MetricSample::Counts {
            stable: Counts::new(f64::NAN, 900.0),
            canary: Counts::new(0.0, 100.0),
        };
        let j = judge.observe(ctx(20.0, true), &[broken]).unwrap();
        assert_eq!(j.decision, Decision::Hold, "{}", j.reason);
        assert!(j.reason.contains("not finite"), "{}", j.reason);
        assert!(!Counts::new(-1.0, 10.0).is_valid());
        assert!(
            Counts::new(12.0, 10.0).is_valid(),
            "errors above requests are capped, not invalid"
        );
    }

    #[test]
    fn a_value_limit_fails_after_consecutive_breaches_and_rolls_back_when_critical() {
        let mut judge = Judge::new(config(vec![errors(), memory(true)]));
        let over = MetricSample::Value {
            stable: Some(80.0),
            canary: 150.0,
        };
        let j = judge
            .observe(ctx(10.0, false), &[clean(), over.clone()])
            .unwrap();
        assert_eq!(j.decision, Decision::Hold);
        assert_eq!(j.metrics[1].verdict, Outcome::Inconclusive);
        assert_eq!(
            j.metrics[0].fail_at, 100.0,
            "a value limit takes no share of alpha"
        );
        let j = judge.observe(ctx(20.0, false), &[clean(), over]).unwrap();
        assert_eq!(j.metrics[1].verdict, Outcome::Fail);
        assert_eq!(j.decision, Decision::Rollback);
    }

    #[test]
    fn a_dry_run_failure_is_reported_but_does_not_act() {
        let mut dry = memory(true);
        dry.dry_run = true;
        let mut judge = Judge::new(config(vec![errors(), dry]));
        let over = MetricSample::Value {
            stable: None,
            canary: 150.0,
        };
        for (t, expected) in [
            (10.0, Outcome::Inconclusive),
            (20.0, Outcome::Fail),
            (30.0, Outcome::Fail),
        ] {
            let j = judge
                .observe(ctx(t, false), &[clean(), over.clone()])
                .unwrap();
            assert_eq!(j.metrics[1].verdict, expected);
            // Neither the breach nor the failure of a dry-run metric holds or rolls back.
            assert_eq!(j.decision, Decision::Continue, "{}", j.reason);
        }
    }
}
