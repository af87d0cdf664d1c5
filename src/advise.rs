//! The step-duration advisor (pure): from the traffic a service sees and a template's judge, how
//! long a canary step at each weight must last for the judge to catch a given error regression
//! with a chosen power, and what that costs in bad requests.
//!
//! # Method
//! A power analysis by simulation of the real judge (the template's [`JudgeConfig`], its alpha,
//! tolerances and hold budget): for each step weight `w`, `runs` seeded rollouts of one step at
//! `w` lasting up to `horizon`, on synthetic traffic shaped like the observed ([`Traffic`]:
//! requests per second in all, the stable's error rate; Poisson arrivals, each request an error
//! independently, see [`crate::simulation`]) with the canary's error rate raised by the
//! [`Effect`]. The step must last the `power`-quantile of the time the judge takes to roll back
//! (a run that never rolls back counts as never), so a step of that length catches the
//! regression in at least `power` of rollouts. The cost is the expected extra bad requests the
//! canary serves in that time: `rps × w × Δ × duration`.
//!
//! Beside it stands Wald's bound ([`crate::simulation::wald_expected_seconds`]): the expected
//! time of an SPRT that knows the exact alternative, with error rates alpha and `1 − power`; no
//! sequential test with those error rates is faster on average.
//!
//! # Assumptions and limits
//! Stationary traffic and independent requests. Real errors come in bursts (over-dispersion)
//! and traffic swings, so real detection is slower: read the durations as lower bounds. Only
//! error-rate regressions are simulated (latency is judged too, but the advice is for errors).
//! The figures are Monte-Carlo estimates: with 200 runs a power of 80 % is resolved to about
//! ±3 points.

use crate::analysis::{JudgeConfig, Method, MetricKind};
use crate::simulation::{Ending, Scenario, run_rollout, wald_expected_seconds};

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
    let range = |field, ok: bool, problem: String| {
        if ok {
            Ok(())
        } else {
            Err(AdviseError::Range { field, problem })
        }
    };
    range(
        "rps",
        traffic.rps.is_finite() && traffic.rps > 0.0,
        format!(
            "is {}; the service must have traffic to advise on",
            traffic.rps
        ),
    )?;
    range(
        "error rate",
        (0.0..1.0).contains(&traffic.error_rate),
        format!("is {}; it must be in [0, 1)", traffic.error_rate),
    )?;
    range(
        "power",
        study.power > 0.0 && study.power < 1.0,
        format!("is {}; give a share such as 0.8", study.power),
    )?;
    range(
        "runs",
        (1..=100_000).contains(&study.runs),
        format!("is {}; give 1 to 100000", study.runs),
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
    let error_tolerance = config
        .metrics
        .iter()
        .find(|m| m.kind == MetricKind::ErrorRate)
        .and_then(|m| match m.method {
            Method::Compare { tolerance, .. } => Some(tolerance),
            _ => None,
        })
        .unwrap_or(0.0);
    Ok(study
        .weights
        .iter()
        .map(|&weight| {
            let scenario = Scenario {
                interval: study.interval,
                steps: vec![(weight, study.horizon)],
                error_rate: traffic.error_rate,
                canary_error_add: added,
                ..Scenario::identical("advise", "advise", traffic.rps)
            };
            let mut times: Vec<f64> = (0..study.runs)
                .filter_map(|seed| {
                    let r = run_rollout(&scenario, config, seed as u64 + 1, None);
                    (r.ending == Ending::RolledBack).then_some(r.seconds)
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let needed = ((study.power * study.runs as f64).ceil() as usize).max(1);
            let seconds = times.get(needed - 1).copied();
            StepAdvice {
                weight,
                seconds,
                median_seconds: (!times.is_empty()).then(|| times[times.len() / 2]),
                wald_seconds: wald_expected_seconds(
                    &scenario,
                    config.alpha,
                    1.0 - study.power,
                    error_tolerance,
                    0.0,
                ),
                bad_requests: seconds.map(|s| traffic.rps * weight / 100.0 * added * s),
                detected: times.len(),
                runs: study.runs,
            }
        })
        .collect())
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
