//! The step-duration advisor (pure): from the traffic a service sees and a template's judge, how
//! long a canary step at each weight must last for the judge to catch a given error regression
//! with a chosen power, and what that costs in bad requests. [`steps`] applies it to a Rollout's
//! own steps (the controller's `StepsUnderpowered` condition).
//!
//! # Method
//! A power analysis by simulation of the real judge (the template's [`JudgeConfig`], its alpha,
//! tolerances and hold budget): for each step weight `w`, `runs` seeded rollouts of one step at
//! `w` lasting up to `horizon`, on synthetic traffic shaped like the observed ([`Traffic`]:
//! requests per second in all, the stable's error rate; Poisson arrivals split binomially by the
//! weight, each request an error independently) with the canary's error rate raised by the
//! [`Effect`]. The step must last the `power`-quantile of the time the judge takes to roll back
//! (a run that never rolls back counts as never), so a step of that length catches the
//! regression in at least `power` of rollouts. The cost is the expected extra bad requests the
//! canary serves in that time: `rps × w × Δ × duration`.
//!
//! Every `errorRate` metric of the template is given the simulated counts; the other metrics
//! (latency, values) are given no data. They carry no signal about an error regression in the
//! simulated world (both versions are alike there), and the judge still reserves their share of
//! alpha (weighted Holm), so the error metrics are judged exactly as in the template — at a
//! fraction of the cost of simulating histograms. The runs are simulated in lockstep, interval
//! by interval, so [`simulate_step`] can stop as soon as the quantile it is asked for is known.
//!
//! Beside it stands Wald's bound ([`crate::simulation::wald_expected_seconds`]): the expected
//! time of an SPRT that knows the exact alternative, with error rates alpha and `1 − power`; no
//! sequential test with those error rates is faster on average.
//!
//! # Assumptions and limits
//! Stationary traffic and independent requests. Real errors come in bursts (over-dispersion)
//! and traffic swings, so real detection is slower: read the durations as lower bounds. Only
//! error-rate regressions are simulated (latency is judged too, but the advice is for errors).
//! A step is simulated on its own, from fresh evidence and without the holds a step ends in
//! while evidence is building; evidence carried over from earlier steps and those holds only
//! help the real judge. The figures are Monte-Carlo estimates: with `n` runs a power of 80 % is
//! resolved to about `±0.4/√n` (±3 points at 200 runs, ±4 at 100; one standard error).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Poisson};

use crate::analysis::{
    Counts, Decision, Judge, JudgeConfig, Method, MetricKind, MetricSample, StepContext,
};
use crate::simulation::{Scenario, wald_expected_seconds};

pub mod steps;

/// The clock of the simulated rollouts (unix seconds): any time will do, the judge only takes
/// differences.
const SIMULATED_START: f64 = 1_700_000_000.0;

/// The regression to detect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// The canary fails this many more requests in absolute terms (0.01 = +1 percentage point).
    ErrorPoints(f64),
    /// The canary's error rate is this many times the stable's (1.2 = 20 % more errors).
    ErrorRatio(f64),
}

/// Errors building advice.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdviseError {
    /// An effect that is not `+Npt` or `xN`.
    #[error(
        "effect {0:?} is not a regression: write +1pt (the canary fails 1 percentage point more requests) or x1.5 (1.5 times the stable's error rate)"
    )]
    Effect(String),
    /// A parameter out of range.
    #[error("{field}: {problem}")]
    Range {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl std::str::FromStr for Effect {
    type Err = AdviseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        let bad = || AdviseError::Effect(text.to_string());
        if let Some(points) = t.strip_prefix('+').and_then(|p| p.strip_suffix("pt")) {
            let v: f64 = points.trim().parse().map_err(|_| bad())?;
            return (v > 0.0 && v < 100.0)
                .then_some(Effect::ErrorPoints(v / 100.0))
                .ok_or_else(bad);
        }
        if let Some(ratio) = t.strip_prefix('x').or_else(|| t.strip_prefix('×')) {
            let v: f64 = ratio.trim().parse().map_err(|_| bad())?;
            return (v > 1.0 && v.is_finite())
                .then_some(Effect::ErrorRatio(v))
                .ok_or_else(bad);
        }
        Err(bad())
    }
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Effect::ErrorPoints(p) => write!(f, "+{} pt errors", p * 100.0),
            Effect::ErrorRatio(r) => write!(f, "×{r} the stable's error rate"),
        }
    }
}

impl Effect {
    /// The absolute error rate the canary adds over a stable failing `error_rate`.
    pub fn added(self, error_rate: f64) -> f64 {
        match self {
            Effect::ErrorPoints(p) => p,
            Effect::ErrorRatio(r) => error_rate * (r - 1.0),
        }
        .min(1.0 - error_rate)
        .max(0.0)
    }
}

/// The traffic a service sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Requests per second in all (both versions).
    pub rps: f64,
    /// The stable version's error rate.
    pub error_rate: f64,
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    /// The regression.
    pub effect: Effect,
    /// Step weights, percent.
    pub weights: Vec<f64>,
    /// Share of rollouts the step must catch the regression in (0.8).
    pub power: f64,
    /// The longest step considered, seconds.
    pub horizon: f64,
    /// Seeded rollouts per weight.
    pub runs: usize,
    /// The analysis interval, seconds (the template's).
    pub interval: f64,
}

/// The advice for one step weight.
#[derive(Debug, Clone, PartialEq)]
pub struct StepAdvice {
    /// Canary weight, percent.
    pub weight: f64,
    /// How long the step must last to catch the regression in `power` of rollouts; `None`:
    /// not within the horizon.
    pub seconds: Option<f64>,
    /// Median time to roll back among the runs that did.
    pub median_seconds: Option<f64>,
    /// Wald's bound on the expected time (no test with these error rates is faster on average).
    pub wald_seconds: Option<f64>,
    /// Expected extra bad requests the canary serves over `seconds`.
    pub bad_requests: Option<f64>,
    /// Runs that rolled back within the horizon.
    pub detected: usize,
    /// Runs.
    pub runs: usize,
}

/// Advises step durations (see the module documentation for the method).
///
/// # Errors
/// When the traffic or the study is out of range.
pub fn advise(
    config: &JudgeConfig,
    traffic: Traffic,
    study: &Study,
) -> Result<Vec<StepAdvice>, AdviseError> {
    check_inputs(
        traffic,
        study.power,
        study.runs,
        "the service must have traffic to advise on",
    )?;
    range(
        "horizon",
        study.horizon >= study.interval && study.horizon / study.interval <= 1e5,
        format!(
            "is {}s; give at least one interval ({}s) and at most 100000 of them",
            study.horizon, study.interval
        ),
    )?;
    for &w in &study.weights {
        range(
            "weights",
            w > 0.0 && w <= 100.0,
            format!("{w} is not a weight in (0, 100]"),
        )?;
    }
    let added = study.effect.added(traffic.error_rate);
    let tolerance = error_tolerance(config);
    Ok(study
        .weights
        .iter()
        .map(|&weight| {
            let step = StepSimulation {
                weight,
                interval: study.interval,
                runs: study.runs,
                first_seed: 1,
                horizon: study.horizon,
                stop_after: None,
            };
            let runs =
                simulate_step(config, traffic, added, &step, &|| false).expect("never cancelled");
            let times = &runs.times;
            let seconds = runs.quantile(study.power);
            StepAdvice {
                weight,
                seconds,
                median_seconds: (!times.is_empty()).then(|| times[times.len() / 2]),
                wald_seconds: wald_seconds(
                    config.alpha,
                    traffic,
                    added,
                    weight,
                    study.interval,
                    study.power,
                    tolerance,
                ),
                bad_requests: seconds.map(|s| bad_requests(traffic, added, weight, s)),
                detected: times.len(),
                runs: study.runs,
            }
        })
        .collect())
}

/// `Err(Range)` naming `field` and the problem unless `ok`.
fn range(field: &'static str, ok: bool, problem: String) -> Result<(), AdviseError> {
    ok.then_some(())
        .ok_or(AdviseError::Range { field, problem })
}

/// The checks [`advise`] and [`steps::check`] share: traffic (`no_traffic` says why some is
/// needed), power and runs in range.
fn check_inputs(
    traffic: Traffic,
    power: f64,
    runs: usize,
    no_traffic: &str,
) -> Result<(), AdviseError> {
    range(
        "rps",
        traffic.rps.is_finite() && traffic.rps > 0.0,
        format!("is {}; {no_traffic}", traffic.rps),
    )?;
    range(
        "error rate",
        (0.0..1.0).contains(&traffic.error_rate),
        format!("is {}; it must be in [0, 1)", traffic.error_rate),
    )?;
    range(
        "power",
        power > 0.0 && power < 1.0,
        format!("is {power}; give a share such as 0.8"),
    )?;
    range(
        "runs",
        (1..=100_000).contains(&runs),
        format!("is {runs}; give 1 to 100000"),
    )
}

/// The relative tolerance of the template's first error-rate comparison (0 without one): the
/// null Wald's bound is computed against.
pub fn error_tolerance(config: &JudgeConfig) -> f64 {
    config
        .metrics
        .iter()
        .find(|m| m.kind == MetricKind::ErrorRate)
        .and_then(|m| match m.method {
            Method::Compare { tolerance, .. } => Some(tolerance),
            _ => None,
        })
        .unwrap_or(0.0)
}

/// Expected extra bad requests the canary serves at `weight` (percent) over `seconds` when it
/// fails `added` more of its requests.
pub fn bad_requests(traffic: Traffic, added: f64, weight: f64, seconds: f64) -> f64 {
    traffic.rps * weight / 100.0 * added * seconds
}

/// Wald's bound on the expected time (seconds) to catch `added` more errors at `weight`
/// (percent), with error rates `alpha` and `1 − power`, against the null of the template's
/// `tolerance`; `None` when there is nothing to catch (no information accrues).
pub fn wald_seconds(
    alpha: f64,
    traffic: Traffic,
    added: f64,
    weight: f64,
    interval: f64,
    power: f64,
    tolerance: f64,
) -> Option<f64> {
    let scenario = Scenario {
        interval,
        // One step long enough for any bound (a century).
        steps: vec![(weight, 3.2e9)],
        error_rate: traffic.error_rate,
        canary_error_add: added,
        ..Scenario::identical("advise", "advise", traffic.rps)
    };
    wald_expected_seconds(&scenario, alpha, 1.0 - power, tolerance, 0.0)
}

/// The runs of one simulated step: when each rolled back.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRuns {
    /// Seconds from the step's start to the rollback, ascending, of the runs that rolled back
    /// before the simulation stopped.
    pub times: Vec<f64>,
    /// Runs simulated.
    pub runs: usize,
    /// Seconds simulated (the horizon, or less when stopped early).
    pub simulated: f64,
    /// Intervals judged over all runs (the work done).
    pub intervals: u64,
}

impl StepRuns {
    /// The shortest duration within which the judge rolled back in at least `power` of the runs;
    /// `None` when fewer than that did before the simulation stopped.
    pub fn quantile(&self, power: f64) -> Option<f64> {
        self.times.get(needed_runs(power, self.runs) - 1).copied()
    }

    /// The share of runs that rolled back within `seconds` (exact for `seconds` up to
    /// [`StepRuns::simulated`], a lower bound beyond).
    pub fn caught_within(&self, seconds: f64) -> f64 {
        let caught = self.times.partition_point(|&t| t <= seconds + 1e-9);
        caught as f64 / self.runs.max(1) as f64
    }
}

/// How many of `runs` must roll back for a power of `power`.
pub fn needed_runs(power: f64, runs: usize) -> usize {
    ((power * runs as f64).ceil() as usize).clamp(1, runs.max(1))
}

/// One step to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSimulation {
    /// Canary weight, percent.
    pub weight: f64,
    /// Seconds between the judge's looks (the template's interval).
    pub interval: f64,
    /// Seeded rollouts: run `i` has seed `first_seed + i`.
    pub runs: usize,
    /// Seed of the first run (1 in the advice).
    pub first_seed: u64,
    /// The longest time simulated, seconds.
    pub horizon: f64,
    /// Stop as soon as this many runs rolled back (the quantile asked for is then known).
    pub stop_after: Option<usize>,
}

/// Simulates the runs of `step` in lockstep, one interval at a time, on `traffic` with `added`
/// more errors on the canary, through the judge of `config`; the same arguments give the same
/// runs. `cancelled` is asked before every interval; `None` when it answered true.
pub fn simulate_step(
    config: &JudgeConfig,
    traffic: Traffic,
    added: f64,
    step: &StepSimulation,
    cancelled: &dyn Fn() -> bool,
) -> Option<StepRuns> {
    let StepSimulation {
        weight,
        interval,
        runs,
        first_seed,
        horizon,
        stop_after,
    } = *step;
    let w = (weight / 100.0).clamp(0.0, 1.0);
    let p_stable = traffic.error_rate.clamp(0.0, 1.0);
    let p_canary = (traffic.error_rate + added).clamp(0.0, 1.0);
    let arrivals = Poisson::new(traffic.rps * interval).ok();
    // Error metrics get the counts; every other metric no data (see the module docs).
    let errors: Vec<usize> = (0..config.metrics.len())
        .filter(|&i| config.metrics[i].kind == MetricKind::ErrorRate)
        .collect();
    let blank: Vec<MetricSample> = config
        .metrics
        .iter()
        .map(|_| MetricSample::Missing("not simulated: the advice is about error rates".into()))
        .collect();
    let mut alive: Vec<(ChaCha8Rng, Judge, Vec<MetricSample>)> = (0..runs)
        .map(|i| {
            (
                ChaCha8Rng::seed_from_u64(first_seed + i as u64),
                Judge::new(config.clone()),
                blank.clone(),
            )
        })
        .collect();
    let mut out = StepRuns {
        times: Vec::new(),
        runs,
        simulated: 0.0,
        intervals: 0,
    };
    let stop_after = stop_after.unwrap_or(usize::MAX);
    let mut k = 1u64;
    while !alive.is_empty() && out.times.len() < stop_after {
        let elapsed = k as f64 * interval;
        if elapsed > horizon + 1e-9 {
            break;
        }
        if cancelled() {
            return None;
        }
        let ctx = StepContext {
            t: SIMULATED_START + elapsed,
            step: 0,
            weight,
            step_complete: false,
            last_step: true,
        };
        alive.retain_mut(|(rng, judge, samples)| {
            let total = arrivals.map_or(0, |p| p.sample(rng) as u64);
            let n_canary = binomial(rng, total, w);
            let n_stable = total - n_canary;
            let stable = Counts::new(binomial(rng, n_stable, p_stable) as f64, n_stable as f64);
            let canary = Counts::new(binomial(rng, n_canary, p_canary) as f64, n_canary as f64);
            for &i in &errors {
                samples[i] = MetricSample::Counts { stable, canary };
            }
            out.intervals += 1;
            let rolled_back = judge
                .observe(ctx, samples)
                .is_ok_and(|j| j.decision == Decision::Rollback);
            if rolled_back {
                out.times.push(elapsed);
            }
            !rolled_back
        });
        out.simulated = elapsed;
        k += 1;
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> JudgeConfig {
        crate::template::parse(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/analysis-templates/generic-http.yaml"
            ))
            .unwrap(),
            "generic-http.yaml",
        )
        .unwrap()
        .judge
    }

    #[test]
    fn effects_are_written_as_points_or_ratios() {
        assert_eq!("+1pt".parse(), Ok(Effect::ErrorPoints(0.01)));
        assert_eq!("x1.5".parse(), Ok(Effect::ErrorRatio(1.5)));
        assert_eq!("×2".parse(), Ok(Effect::ErrorRatio(2.0)));
        assert!("1pt".parse::<Effect>().is_err());
        assert!("x0.5".parse::<Effect>().is_err());
        assert!((Effect::ErrorRatio(1.5).added(0.02) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn thin_traffic_needs_longer_steps_and_none_beats_walds_bound() {
        let study = Study {
            effect: Effect::ErrorPoints(0.02),
            weights: vec![10.0, 50.0],
            power: 0.8,
            horizon: 3600.0,
            runs: 40,
            interval: 10.0,
        };
        let busy = advise(
            &config(),
            Traffic {
                rps: 50.0,
                error_rate: 0.005,
            },
            &study,
        )
        .unwrap();
        let thin = advise(
            &config(),
            Traffic {
                rps: 5.0,
                error_rate: 0.005,
            },
            &study,
        )
        .unwrap();
        for (b, t) in busy.iter().zip(&thin) {
            let (b_s, t_s) = (b.seconds.unwrap(), t.seconds.unwrap_or(f64::INFINITY));
            assert!(t_s > b_s, "{t:?} vs {b:?}");
            // An 80 %-quantile of detection times is never below Wald's expected time.
            assert!(b_s >= b.wald_seconds.unwrap(), "{b:?}");
        }
        // A larger share of traffic detects sooner.
        assert!(
            busy[1].seconds.unwrap() < busy[0].seconds.unwrap(),
            "{busy:?}"
        );
        assert!(busy[0].bad_requests.unwrap() > 0.0);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let study = Study {
            effect: Effect::ErrorPoints(0.01),
            weights: vec![0.0],
            power: 0.8,
            horizon: 600.0,
            runs: 10,
            interval: 10.0,
        };
        let err = advise(
            &config(),
            Traffic {
                rps: 5.0,
                error_rate: 0.01,
            },
            &study,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("weights: 0 is not a weight"),
            "{err}"
        );
        let err = advise(
            &config(),
            Traffic {
                rps: 0.0,
                error_rate: 0.01,
            },
            &Study {
                weights: vec![5.0],
                ..study
            },
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("rps: is 0"), "{err}");
    }
}
