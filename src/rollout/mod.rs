//! The rollout core (pure: plain types in and out, no Kubernetes types, no I/O).
//!
//! This file is the step plan and its state machine: where a rollout stands, what the judge's
//! decision does to it, and when to look again. Used by the simulator, the local demo and the
//! controller alike: a step runs for its planned pause; at the end a `continue` advances to the
//! next step, a `hold` keeps the weight, a `promote` sends all traffic to the canary and a
//! `rollback` all back to stable. A step with an infinite pause waits for a human:
//! [`StepPlan::resume`] ends it (and any hold).
//!
//! Around it: [`lifecycle`], the whole life of a Rollout in a cluster (adoption, start, human
//! actions, the judge, outages, pods before traffic, promotion), which the controller maps to
//! the status; [`pods`] and [`replicas`], how many pods a weight needs; [`action`](Action), the human actions'
//! vocabulary shared by the CLI and the controller.

use serde::{Deserialize, Serialize};

mod action;
pub mod lifecycle;
pub mod pods;
pub mod replicas;
pub use action::{ACTION_ANNOTATION, Action, UnknownAction};

use crate::analysis::{Decision, StepContext};

/// One step: a canary weight held for a pause.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Canary traffic weight in percent.
    pub weight: f64,
    /// How long the step lasts before it may advance, seconds; `f64::INFINITY` waits for a human.
    pub pause: f64,
}

/// Errors building a plan.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// The plan has no step.
    #[error("the step plan is empty; give at least one step, e.g. 5,10,25,50")]
    Empty,
    /// A weight is outside 0–100.
    #[error("step {index}: weight {weight} is outside 0-100 %")]
    Weight {
        /// Step index.
        index: usize,
        /// The weight.
        weight: f64,
    },
    /// A pause is negative or NaN.
    #[error("step {index}: pause {pause}s must be a non-negative number of seconds")]
    Pause {
        /// Step index.
        index: usize,
        /// The pause.
        pause: f64,
    },
}

/// A validated list of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepPlan {
    steps: Vec<Step>,
}

impl StepPlan {
    /// Validates the steps.
    ///
    /// # Errors
    /// When there is no step, or a weight or pause is out of range.
    pub fn new(steps: Vec<Step>) -> Result<Self, PlanError> {
        if steps.is_empty() {
            return Err(PlanError::Empty);
        }
        for (index, s) in steps.iter().enumerate() {
            if !(0.0..=100.0).contains(&s.weight) {
                return Err(PlanError::Weight {
                    index,
                    weight: s.weight,
                });
            }
            if s.pause.is_nan() || s.pause < 0.0 {
                return Err(PlanError::Pause {
                    index,
                    pause: s.pause,
                });
            }
        }
        Ok(Self { steps })
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The state at the start of a rollout at time `now` (unix seconds).
    pub fn start(&self, now: f64) -> PlanState {
        PlanState {
            step: 0,
            step_started: now,
            phase: Phase::Progressing,
        }
    }

    /// What the judge needs to know at time `now`.
    pub fn context(&self, state: &PlanState, now: f64) -> StepContext {
        let step = self.steps[state.step.min(self.steps.len() - 1)];
        StepContext {
            t: now,
            step: state.step,
            weight: self.weight(state),
            step_complete: now - state.step_started >= step.pause - 1e-9,
            last_step: state.step + 1 >= self.steps.len(),
        }
    }

    /// The canary weight the traffic layer should apply in `state`.
    pub fn weight(&self, state: &PlanState) -> f64 {
        match state.phase {
            Phase::Promoted => 100.0,
            Phase::RolledBack => 0.0,
            _ => self.steps[state.step.min(self.steps.len() - 1)].weight,
        }
    }

    /// Applies a decision taken at `now` for the context `ctx`; `paused` is the judge's flag that
    /// the hold budget ran out under the pause policy.
    pub fn apply(
        &self,
        state: &PlanState,
        ctx: &StepContext,
        decision: Decision,
        paused: bool,
        now: f64,
    ) -> PlanState {
        let mut next = *state;
        if state.phase.is_terminal() {
            return next;
        }
        match decision {
            Decision::Rollback => next.phase = Phase::RolledBack,
            Decision::Promote => next.phase = Phase::Promoted,
            Decision::Hold if paused => next.phase = Phase::Paused,
            Decision::Hold => {
                next.phase = if ctx.step_complete {
                    Phase::Holding
                } else {
                    Phase::Progressing
                }
            }
            Decision::Continue => {
                next.phase = Phase::Progressing;
                if ctx.step_complete && !ctx.last_step {
                    next.step += 1;
                    next.step_started = now;
                }
            }
        }
        next
    }

    /// Whether the current step waits for a human (an infinite pause).
    pub fn waits_for_human(&self, state: &PlanState) -> bool {
        !state.phase.is_terminal()
            && self.steps[state.step.min(self.steps.len() - 1)]
                .pause
                .is_infinite()
    }

    /// A human's `promote`: end the current step (a manual pause, a hold or a paused hold) and go
    /// to the next one, or promote after the last. `full` skips every remaining step.
    pub fn resume(&self, state: &PlanState, now: f64, full: bool) -> PlanState {
        let mut next = *state;
        if state.phase.is_terminal() {
            return next;
        }
        if full || state.step + 1 >= self.steps.len() {
            next.phase = Phase::Promoted;
        } else {
            next.step += 1;
            next.step_started = now;
            next.phase = Phase::Progressing;
        }
        next
    }

    /// When to look again: the next interval, or the end of the step if that comes first.
    pub fn next_wake(&self, state: &PlanState, now: f64, interval: f64) -> Option<f64> {
        if state.phase.is_terminal() || state.phase == Phase::Paused {
            return None;
        }
        let end = state.step_started + self.steps[state.step].pause;
        Some(if end > now + 1e-9 {
            (now + interval).min(end)
        } else {
            now + interval
        })
    }
}

/// Where the rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Running the current step.
    Progressing,
    /// The step is over but the evidence is inconclusive: staying at this weight.
    Holding,
    /// The hold budget ran out: waiting for a human.
    Paused,
    /// All traffic on the new version.
    Promoted,
    /// All traffic back on stable.
    RolledBack,
}

impl Phase {
    /// Nothing more happens.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Promoted | Phase::RolledBack)
    }
}

/// The resumable state of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanState {
    /// Current step index.
    pub step: usize,
    /// When the current step began (unix seconds).
    pub step_started: f64,
    /// Phase.
    pub phase: Phase,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> StepPlan {
        StepPlan::new(vec![
            Step {
                weight: 5.0,
                pause: 30.0,
            },
            Step {
                weight: 50.0,
                pause: 30.0,
            },
        ])
        .unwrap()
    }

    #[test]
    fn continue_advances_only_when_the_step_is_complete() {
        let p = plan();
        let s = p.start(0.0);
        let ctx = p.context(&s, 10.0);
        assert!(!ctx.step_complete);
        assert_eq!(p.apply(&s, &ctx, Decision::Continue, false, 10.0).step, 0);
        let ctx = p.context(&s, 30.0);
        let next = p.apply(&s, &ctx, Decision::Continue, false, 30.0);
        assert_eq!(
            (next.step, next.step_started, p.weight(&next)),
            (1, 30.0, 50.0)
        );
    }

    #[test]
    fn hold_after_the_step_keeps_the_weight_and_reports_holding() {
        let p = plan();
        let s = p.start(0.0);
        let ctx = p.context(&s, 40.0);
        let next = p.apply(&s, &ctx, Decision::Hold, false, 40.0);
        assert_eq!(
            (next.step, next.phase, p.weight(&next)),
            (0, Phase::Holding, 5.0)
        );
    }

    #[test]
    fn a_paused_hold_waits_for_a_human() {
        let p = plan();
        let s = p.start(0.0);
        let ctx = p.context(&s, 40.0);
        let next = p.apply(&s, &ctx, Decision::Hold, true, 40.0);
        assert_eq!(next.phase, Phase::Paused);
        assert_eq!(p.next_wake(&next, 40.0, 10.0), None);
    }

    #[test]
    fn promote_and_rollback_set_the_final_weight_and_stay() {
        let p = plan();
        let s = p.start(0.0);
        let ctx = p.context(&s, 5.0);
        let rolled = p.apply(&s, &ctx, Decision::Rollback, false, 5.0);
        assert_eq!((rolled.phase, p.weight(&rolled)), (Phase::RolledBack, 0.0));
        assert_eq!(
            p.apply(&rolled, &ctx, Decision::Promote, false, 6.0),
            rolled
        );
        let promoted = p.apply(&s, &ctx, Decision::Promote, false, 5.0);
        assert_eq!(p.weight(&promoted), 100.0);
    }

    #[test]
    fn the_last_step_never_advances_past_the_plan() {
        let p = plan();
        let s = PlanState {
            step: 1,
            step_started: 0.0,
            phase: Phase::Progressing,
        };
        let ctx = p.context(&s, 30.0);
        assert!(ctx.last_step && ctx.step_complete);
        assert_eq!(p.apply(&s, &ctx, Decision::Continue, false, 30.0).step, 1);
    }

    #[test]
    fn the_next_wake_is_the_interval_or_the_step_end() {
        let p = plan();
        let s = p.start(0.0);
        assert_eq!(p.next_wake(&s, 0.0, 10.0), Some(10.0));
        assert_eq!(p.next_wake(&s, 25.0, 10.0), Some(30.0));
        assert_eq!(p.next_wake(&s, 35.0, 10.0), Some(45.0));
    }

    #[test]
    fn a_manual_pause_never_completes_on_time_and_resume_ends_it() {
        let p = StepPlan::new(vec![
            Step {
                weight: 10.0,
                pause: f64::INFINITY,
            },
            Step {
                weight: 50.0,
                pause: 30.0,
            },
        ])
        .unwrap();
        let s = p.start(0.0);
        assert!(p.waits_for_human(&s));
        let ctx = p.context(&s, 1e9);
        assert!(!ctx.step_complete);
        assert_eq!(p.apply(&s, &ctx, Decision::Continue, false, 1e9).step, 0);
        assert_eq!(p.next_wake(&s, 100.0, 10.0), Some(110.0));
        let resumed = p.resume(&s, 500.0, false);
        assert_eq!(
            (resumed.step, resumed.step_started, p.weight(&resumed)),
            (1, 500.0, 50.0)
        );
        assert_eq!(p.resume(&resumed, 600.0, false).phase, Phase::Promoted);
        assert_eq!(p.resume(&s, 500.0, true).phase, Phase::Promoted);
    }

    #[test]
    fn bad_plans_are_rejected() {
        assert_eq!(StepPlan::new(vec![]), Err(PlanError::Empty));
        assert!(matches!(
            StepPlan::new(vec![Step {
                weight: 120.0,
                pause: 1.0
            }]),
            Err(PlanError::Weight { index: 0, .. })
        ));
    }
}
