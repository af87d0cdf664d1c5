//! Whether a Rollout's own steps can catch a regression (pure): the check behind the
//! controller's `StepsUnderpowered` condition, with the method of [`super`] applied to each
//! gated step's weight and planned pause.
//!
//! A step is **underpowered** when, on the traffic the service sees, the template's judge
//! catches the [`Effect`] within the step's pause in fewer than `power` of the simulated
//! rollouts — equivalently, when the pause is shorter than the duration the step needs (the
//! `power`-quantile of the time to roll back). Each finding carries that duration, the share of
//! rollouts the planned pause catches, the expected bad requests the needed duration costs, and
//! Wald's floor (no sequential test with these error rates is faster on average). Steps are
//! judged on their own (see [`super`]'s limits), which is what a small early step is for: to
//! catch a regression before more users get it.

use std::time::Duration;

use super::{
    AdviseError, Effect, StepSimulation, Traffic, bad_requests, check_inputs, error_tolerance,
    needed_runs, range, simulate_step, wald_seconds,
};
use crate::analysis::JudgeConfig;

/// The shortest horizon a weight is simulated to, seconds: a step's needed duration is found if
/// it is at most this long (or at most four times the step's pause, if that is longer).
pub const MIN_HORIZON: f64 = 3600.0;
/// The most intervals a run is simulated for beyond a step's own pause (bounds the work of a
/// weight that never catches the regression).
pub const MAX_HORIZON_INTERVALS: f64 = 720.0;
/// At most this many steps are named in a message (more are counted).
const MAX_NAMED: usize = 8;

/// One step of the plan to check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedStep {
    /// Index in the plan (as `status.currentStepIndex` counts).
    pub index: usize,
    /// Canary weight, percent.
    pub weight: f64,
    /// Planned pause, seconds.
    pub pause: f64,
}

/// What every gated step should catch: a regression, in a share of rollouts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goal {
    /// The regression.
    pub effect: Effect,
    /// Share of rollouts a step must catch it in.
    pub power: f64,
}

impl Default for Goal {
    /// +1 percentage point of errors, caught in 80 % of rollouts: a regression that spends a
    /// whole 99 %-availability error budget, at the power experiments are conventionally
    /// designed for.
    fn default() -> Self {
        Self {
            effect: Effect::ErrorPoints(0.01),
            power: 0.8,
        }
    }
}

/// What to catch, and how hard to look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// The regression.
    pub effect: Effect,
    /// Share of rollouts a step must catch it in.
    pub power: f64,
    /// Seeded rollouts simulated per weight.
    pub runs: usize,
}

impl Settings {
    /// `goal` looked for with `runs` simulated rollouts per weight.
    pub fn new(goal: Goal, runs: usize) -> Self {
        Self {
            effect: goal.effect,
            power: goal.power,
            runs,
        }
    }
}

/// What the check found for one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFinding {
    /// The step.
    pub step: PlannedStep,
    /// Share of the simulated rollouts the judge rolled back within the planned pause.
    pub caught: f64,
    /// How long the step must last to catch it in `power` of rollouts; `None`: not within
    /// `horizon`.
    pub needed: Option<f64>,
    /// The longest duration simulated at this weight, seconds.
    pub horizon: f64,
    /// Wald's bound on the expected time to catch it at this weight, seconds.
    pub wald: Option<f64>,
    /// Expected extra bad requests the canary serves over `needed`.
    pub bad_requests: Option<f64>,
}

impl StepFinding {
    /// The pause is shorter than the step needs.
    pub fn underpowered(&self) -> bool {
        self.needed
            .is_none_or(|needed| needed > self.step.pause + 1e-9)
    }
}

/// The check of a plan's steps.
#[derive(Debug, Clone, PartialEq)]
pub struct StepsCheck {
    /// The traffic it assumed.
    pub traffic: Traffic,
    /// What it looked for.
    pub settings: Settings,
    /// One finding per checked step, in plan order.
    pub findings: Vec<StepFinding>,
    /// Intervals judged over all runs (the work done).
    pub intervals: u64,
}

/// Checks `steps` (each simulated at its weight; steps of equal weight share the simulation)
/// against the judge of `config` whose intervals last `interval` seconds. `None` when
/// `cancelled` answered true.
///
/// # Errors
/// When the traffic or the settings are out of range.
pub fn check(
    config: &JudgeConfig,
    traffic: Traffic,
    interval: f64,
    steps: &[PlannedStep],
    settings: Settings,
    cancelled: &dyn Fn() -> bool,
) -> Result<Option<StepsCheck>, AdviseError> {
    check_inputs(
        traffic,
        settings.power,
        settings.runs,
        "there must be traffic to check",
    )?;
    range(
        "interval",
        interval.is_finite() && interval > 0.0,
        format!("is {interval}s"),
    )?;
    for s in steps {
        range(
            "steps",
            s.weight > 0.0 && s.weight <= 100.0 && s.pause.is_finite() && s.pause >= 0.0,
            format!(
                "step {} ({}% for {}s) is not a timed canary step",
                s.index, s.weight, s.pause
            ),
        )?;
    }
    let added = settings.effect.added(traffic.error_rate);
    // `x1.5` of a stable that served no error adds none: there is nothing to catch, and every
    // step would be reported as needing forever.
    range(
        "effect",
        added > 0.0,
        format!(
            "{} adds no errors when the stable served none; write the regression in points, e.g. +1pt",
            settings.effect
        ),
    )?;
    let tolerance = error_tolerance(config);
    let stop_after = needed_runs(settings.power, settings.runs);
    let mut weights: Vec<f64> = steps.iter().map(|s| s.weight).collect();
    weights.sort_by(f64::total_cmp);
    weights.dedup();
    let mut findings: Vec<StepFinding> = Vec::with_capacity(steps.len());
    let mut intervals = 0;
    let mut by_weight = Vec::with_capacity(weights.len());
    for weight in weights {
        let longest = steps
            .iter()
            .filter(|s| s.weight == weight)
            .map(|s| s.pause)
            .fold(0.0, f64::max);
        let horizon = horizon(longest, interval);
        let step = StepSimulation {
            weight,
            interval,
            runs: settings.runs,
            first_seed: 1,
            horizon,
            stop_after: Some(stop_after),
        };
        let Some(runs) = simulate_step(config, traffic, added, &step, cancelled) else {
            return Ok(None);
        };
        intervals += runs.intervals;
        by_weight.push((weight, horizon, runs));
    }
    for &step in steps {
        let Some((_, horizon, runs)) = by_weight.iter().find(|(w, _, _)| *w == step.weight) else {
            continue;
        };
        let needed = runs.quantile(settings.power);
        findings.push(StepFinding {
            step,
            caught: runs.caught_within(step.pause),
            needed,
            horizon: *horizon,
            wald: wald_seconds(
                config.alpha,
                traffic,
                added,
                step.weight,
                interval,
                settings.power,
                tolerance,
            ),
            bad_requests: needed.map(|s| bad_requests(traffic, added, step.weight, s)),
        });
    }
    Ok(Some(StepsCheck {
        traffic,
        settings,
        findings,
        intervals,
    }))
}

/// How long a weight whose longest step pauses `pause` seconds is simulated: four times the
/// pause but at least [`MIN_HORIZON`], and at most [`MAX_HORIZON_INTERVALS`] intervals beyond
/// the pause; whole intervals.
pub fn horizon(pause: f64, interval: f64) -> f64 {
    let wanted = (4.0 * pause).max(MIN_HORIZON);
    let bounded = wanted.min(pause + MAX_HORIZON_INTERVALS * interval);
    (bounded / interval).ceil() * interval
}

impl StepsCheck {
    /// The steps whose pause is shorter than they need.
    pub fn underpowered(&self) -> impl Iterator<Item = &StepFinding> {
        self.findings.iter().filter(|f| f.underpowered())
    }

    /// Whether any step is underpowered.
    pub fn any_underpowered(&self) -> bool {
        self.underpowered().next().is_some()
    }

    /// What the check assumed: the effect, the power and the traffic.
    fn premise(&self) -> String {
        format!(
            "{} with {:.0} % power at {} req/s (stable {:.2} % errors)",
            self.settings.effect,
            self.settings.power * 100.0,
            rate(self.traffic.rps),
            self.traffic.error_rate * 100.0
        )
    }

    /// The condition's message: each underpowered step (weight, planned duration, the duration
    /// it needs, the bad requests that costs, Wald's floor) and the fix; or, when every step
    /// suffices, a short summary.
    pub fn message(&self) -> String {
        let under: Vec<&StepFinding> = self.underpowered().collect();
        let runs = self.settings.runs;
        let precision = format!(
            "{runs} simulated rollouts per weight, ±{:.0} pts",
            100.0 * (self.settings.power * (1.0 - self.settings.power) / runs as f64).sqrt()
        );
        if under.is_empty() {
            let slowest = self
                .findings
                .iter()
                .max_by(|a, b| a.needed.unwrap_or(0.0).total_cmp(&b.needed.unwrap_or(0.0)));
            let slowest = slowest.map_or(String::new(), |f| {
                format!(
                    "; the slowest, step {} ({}), needs {} (Wald's floor {})",
                    f.step.index,
                    planned(&f.step),
                    duration(f.needed.unwrap_or(0.0)),
                    f.wald.map_or("none".into(), duration)
                )
            });
            return format!(
                "every gated step catches {}{slowest} ({precision})",
                self.premise()
            );
        }
        let mut parts: Vec<String> = under
            .iter()
            .take(MAX_NAMED)
            .map(|f| {
                let need = match (f.needed, f.bad_requests) {
                    (Some(n), Some(bad)) => {
                        format!("needs {} (costing ~{bad:.1} bad requests)", duration(n))
                    }
                    _ => format!("needs more than {}", duration(f.horizon)),
                };
                format!(
                    "step {} ({}) catches it in {:.0} % of rollouts and {need}; Wald's floor {}",
                    f.step.index,
                    planned(&f.step),
                    f.caught * 100.0,
                    f.wald.map_or("none".into(), duration)
                )
            })
            .collect();
        if under.len() > MAX_NAMED {
            parts.push(format!("and {} more", under.len() - MAX_NAMED));
        }
        // The biggest checked weight that suffices shows what fewer, bigger steps would need.
        let bigger = self
            .findings
            .iter()
            .filter(|f| !f.underpowered())
            .max_by(|a, b| a.step.weight.total_cmp(&b.step.weight))
            .map_or(String::new(), |f| {
                format!(
                    " (at {}% it needs {})",
                    f.step.weight,
                    duration(f.needed.unwrap_or(0.0))
                )
            });
        format!(
            "to catch {}: {}. Fix: lengthen these pauses to what they need, or use fewer, bigger steps{bigger}. Advice only, decisions are unchanged ({precision})",
            self.premise(),
            parts.join("; ")
        )
    }
}

/// `5% for 5m`.
fn planned(step: &PlannedStep) -> String {
    format!("{}% for {}", step.weight, duration(step.pause))
}

/// Whole seconds as humantime writes them (`1h 10m 3s`).
pub fn duration(seconds: f64) -> String {
    humantime::format_duration(Duration::from_secs(seconds.max(0.0).round() as u64)).to_string()
}

/// Requests per second with three significant digits (`15.0`, `2.00`, `300`).
pub fn rate(rps: f64) -> String {
    if rps >= 100.0 {
        format!("{rps:.0}")
    } else if rps >= 10.0 {
        format!("{rps:.1}")
    } else {
        format!("{rps:.2}")
    }
}

#[cfg(test)]
mod tests;
