//! The Rollout's lifecycle (pure): where a rollout of a Deployment's revisions stands, and what
//! follows from what was seen — the target's revision, a human's action, the pods each version
//! has, the metrics source's health and the judge's decision.
//!
//! ```text
//! from             on                                                to
//! (none)           first sight                                       Healthy: adopted as stable
//! Healthy          a new revision on the target                      Progressing at step 0
//! Progressing      the step is over and the judge continues          Progressing, next step
//! Progressing      the step is over and the judge holds              Holding
//! Holding          the hold budget is spent (pause policy)           Paused until `promote`
//! Progressing      a `pause: {}` step                                Paused until `promote`
//! a live phase     the judge, a progress deadline or an outage       RolledBack until `retry`
//! a live phase     `abort`                                           Aborted until `retry`
//! the last step    the judge promotes, or `promote --full`           Promoting, then Healthy
//! a live phase     the target back on the stable revision            Healthy: canary dropped
//! ```
//!
//! - **Adoption**: the first revision seen becomes stable.
//! - **Start / restart**: a new revision starts at step 0 against the stable one (a newer one
//!   replaces a canary that is still rolling out); the target back on the stable revision cancels.
//! - **Human actions** ([`Action`]): `promote` ends the step (or a hold, or a pause), `promote
//!   --full` skips the remaining steps, `abort` sends all traffic to stable until `retry` starts
//!   again, `undo` reverts the Deployment to the stable (after a promotion: the previous stable)
//!   revision. An action the state makes meaningless is refused with the reason.
//! - **The judge** gates each gated step: continue advances once the step's pause is over, hold
//!   stays, a hold past the budget under the pause policy waits for a human, rollback rolls back.
//!   A gated step without an answer holds: missing evidence never promotes. A metrics outage
//!   holds, and past the template's hold budget its policy acts — unless a human ends the step.
//! - **Pods before traffic**: a step's weight comes into force only once the canary has the
//!   pods for it (the step's clock starts then); a promotion moves all traffic to the canary
//!   once it has every pod, then waits for the stable workload to run the new revision. Every
//!   such wait counts against the progress deadline, which rolls back or pauses.
//!
//! Everything needed to resume lives in [`State`] (the Rollout's status), so a restarted
//! controller continues the same step with the same elapsed time. Times are unix seconds, and the
//! times [`State`] keeps are whole seconds, as the status stores them.

use crate::analysis::{Decision, Judgement, StepContext};

use super::pods::{Availability, ready, shortfall};
use super::{Action, Phase, PlanState, StepPlan};

mod waits;

pub use waits::deadline_due;
use waits::{POD_POLL, Wait, healthy_message, in_force_now, promoting, waiting};

/// Default of `progressDeadline` (as a Deployment's `progressDeadlineSeconds`), seconds.
pub const DEFAULT_PROGRESS_DEADLINE: f64 = 600.0;
/// Default of `scaleDownDelay`, seconds.
pub const DEFAULT_SCALE_DOWN_DELAY: f64 = 30.0;

/// How the Rollout shifts traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    /// Weighted canary steps.
    Canary,
    /// Preview, then switch.
    BlueGreen,
}

/// What the lifecycle needs to know of a Rollout's spec (validated).
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Name of the target Deployment (its workloads are named after it, for messages).
    pub target: String,
    /// Canary steps or blue-green.
    pub kind: StrategyKind,
    /// The step plan.
    pub plan: StepPlan,
    /// Whether a traffic router splits requests (else the pod ratio is the split).
    pub routed: bool,
    /// Seconds the canary keeps its pods after a rollback, an abort or a promotion.
    pub scale_down_delay: f64,
    /// Seconds the pods a step or a promotion waits for may take to become available.
    pub progress_deadline: f64,
    /// At the progress deadline: roll back (true) or pause for a human (false).
    pub deadline_rollback: bool,
}

impl Spec {
    /// Canary steps on `target` with `plan`, the pod ratio as the split and the defaults.
    pub fn canary(target: &str, plan: StepPlan) -> Self {
        Self {
            target: target.to_string(),
            kind: StrategyKind::Canary,
            plan,
            routed: false,
            scale_down_delay: DEFAULT_SCALE_DOWN_DELAY,
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
            deadline_rollback: true,
        }
    }

    /// With the replica ratio the pods are the split: the stable's pods count as well.
    pub fn pods_are_the_split(&self) -> bool {
        self.kind == StrategyKind::Canary && !self.routed
    }
}

/// Where a Rollout is (the status' phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecyclePhase {
    /// The stable revision runs with all traffic; nothing is rolling out.
    Healthy,
    /// A step is running (or waits for its pods).
    Progressing,
    /// The step is over but the evidence is inconclusive: staying at this weight.
    Holding,
    /// Waiting for a human (a `pause: {}` step, a spent hold budget, a passed deadline).
    Paused,
    /// All traffic moves to the canary, then the stable workload takes the new revision.
    Promoting,
    /// The judge (or a deadline, or an outage policy) sent all traffic back to stable.
    RolledBack,
    /// A human sent all traffic back to stable.
    Aborted,
    /// The Rollout cannot run (an invalid spec, a missing target); set outside the lifecycle.
    Degraded,
}

impl LifecyclePhase {
    /// A rollout is in progress: the judge runs.
    pub fn analysing(self) -> bool {
        matches!(
            self,
            LifecyclePhase::Progressing | LifecyclePhase::Holding | LifecyclePhase::Paused
        )
    }

    /// A canary takes traffic or is about to.
    pub fn canary_live(self) -> bool {
        self.analysing() || self == LifecyclePhase::Promoting
    }
}

/// When a step began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStart {
    /// Step index.
    pub step: usize,
    /// Unix seconds.
    pub at: f64,
}

/// The resumable state of a Rollout (what its status holds).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// Where it is; `None` before the first reconcile.
    pub phase: Option<LifecyclePhase>,
    /// A human-readable summary of the state.
    pub message: Option<String>,
    /// The revision that has all traffic when nothing is rolling out.
    pub stable_revision: Option<String>,
    /// The stable revision before the last promotion (what `undo` goes back to afterwards).
    pub previous_stable_revision: Option<String>,
    /// The revision being rolled out.
    pub canary_revision: Option<String>,
    /// Index of the current step.
    pub step: Option<usize>,
    /// The canary's weight in force at the routers, percent.
    pub weight: Option<i32>,
    /// When the rollout of the canary revision began.
    pub started_at: Option<f64>,
    /// When the current step's weight came into force; `None` while it waits for its pods.
    pub step_started_at: Option<f64>,
    /// When each step of the current rollout began, oldest first.
    pub step_history: Vec<StepStart>,
    /// Since when the rollout has waited for pods.
    pub waiting_since: Option<f64>,
    /// Since when a gated step's metrics could not be read.
    pub metrics_unavailable_since: Option<f64>,
    /// When the canary's pods go (after a rollback, an abort or a promotion).
    pub scale_down_at: Option<f64>,
}

impl State {
    /// A rollout is in progress: the judge runs.
    pub fn analysing(&self) -> bool {
        self.phase.is_some_and(LifecyclePhase::analysing)
    }

    /// A canary revision takes traffic or is about to.
    pub fn canary_is_live(&self) -> bool {
        self.phase.is_some_and(LifecyclePhase::canary_live) && self.canary_revision.is_some()
    }

    /// Where the step plan stands at `now`.
    pub fn plan_state(&self, now: f64) -> PlanState {
        PlanState {
            step: self.step.unwrap_or(0),
            step_started: self.step_started_at.unwrap_or(now),
            phase: match self.phase {
                Some(LifecyclePhase::Holding) => Phase::Holding,
                Some(LifecyclePhase::RolledBack | LifecyclePhase::Aborted) => Phase::RolledBack,
                Some(LifecyclePhase::Promoting | LifecyclePhase::Healthy) => Phase::Promoted,
                _ => Phase::Progressing,
            },
        }
    }

    fn set_phase(&mut self, phase: LifecyclePhase, message: String) {
        self.phase = Some(phase);
        self.message = Some(message);
    }
}

/// The judge's context for an interval ending at each of `ends`, from the step history: the
/// step in force when the interval ended, whether its pause was over, and its weight.
pub fn step_contexts(plan: &StepPlan, history: &[StepStart], ends: &[f64]) -> Vec<StepContext> {
    let steps = plan.steps();
    ends.iter()
        .map(|&t| {
            let (step, started) = history
                .iter()
                .rev()
                .find(|s| s.at < t)
                .or(history.first())
                .map_or((0, t), |s| (s.step, s.at));
            let step = step.min(steps.len().saturating_sub(1));
            StepContext {
                t,
                step,
                weight: steps.get(step).map_or(0.0, |s| s.weight),
                step_complete: t - started >= steps.get(step).map_or(0.0, |s| s.pause) - 1e-9,
                last_step: step + 1 >= steps.len(),
            }
        })
        .collect()
}

/// The metrics source failed: the step holds, and after the template's hold budget its
/// inconclusive policy acts (pause for a human, or roll back).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsOutage {
    /// What failed (the source's error, naming the query).
    pub message: String,
    /// Seconds an outage may last before the policy acts (the template's hold budget).
    pub budget: f64,
    /// Roll back (true) or pause (false) when the budget is spent.
    pub rollback: bool,
    /// Why the metrics are missing.
    pub kind: OutageKind,
}

/// Why a step's metrics are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageKind {
    /// The source failed (unreachable, slow, an error or garbage).
    Unavailable,
    /// The Rollout's arguments cannot go into the template's queries: a spec to fix, which
    /// holds without a budget.
    InvalidArguments,
}

/// What was seen.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Now, unix seconds.
    pub now: f64,
    /// The target Deployment's current revision.
    pub revision: &'a str,
    /// A pending human action.
    pub action: Option<Action>,
    /// Whether the stable workload runs the canary revision on every pod, available (what a
    /// promotion waits for before traffic goes back to the stable workload).
    pub stable_ready: bool,
    /// The pods each version has available, and why some are missing.
    pub pods: &'a Availability,
    /// The current step is gated by an analysis: it never advances without the judge.
    pub gated: bool,
    /// The judge's latest answer for the current step (`None` when nothing was judged).
    pub judgement: Option<&'a Judgement>,
    /// The metrics of the step's analysis could not be read.
    pub metrics_outage: Option<&'a MetricsOutage>,
    /// Seconds between looks while a step runs (the analysis interval).
    pub interval: f64,
}

/// What a human's action came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    /// Carried out: what it did.
    Applied(String),
    /// Meaningless in this state: why.
    Refused(String),
    /// An `undo` that cannot be carried out: why.
    UndoImpossible(String),
}

/// Which workload a rollout waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The canary, for a step's weight (or all traffic before a promotion).
    Canary,
    /// The stable workload, rolling out the promoted revision.
    Stable,
}

/// The rollout waits for pods.
#[derive(Debug, Clone, PartialEq)]
pub struct PodWait {
    /// Whose.
    pub side: Side,
    /// What is short, with the pods' reasons, e.g. `web-canary: 0/1 available (…)`.
    pub detail: String,
    /// The progress deadline passed (the rollout rolled back or paused): what it says.
    pub deadline: Option<String>,
}

/// News for people (Events), with what each needs to be told.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The first revision seen became stable.
    Adopted {
        /// It.
        revision: String,
    },
    /// `undo` after a promotion: the previous stable revision comes back through the steps.
    UndoRequested {
        /// The revision the Deployment goes back to.
        previous: String,
    },
    /// The target is back on the stable revision: the canary is dropped.
    Cancelled {
        /// The stable revision.
        stable: String,
        /// The canary dropped.
        canary: String,
    },
    /// A newer revision replaced the canary and starts from step 0.
    Restarted {
        /// The new revision.
        revision: String,
        /// The canary it replaced.
        replaced: String,
    },
    /// A new revision starts rolling out.
    Started {
        /// It.
        revision: String,
        /// Against this stable revision.
        stable: String,
    },
    /// `retry`: the revision starts again from step 0.
    Retried {
        /// It.
        revision: String,
    },
    /// `undo` during a rollout: all traffic on stable, the Deployment goes back to it.
    Undone {
        /// The canary undone.
        revision: String,
        /// The stable revision the Deployment goes back to.
        stable: String,
    },
    /// `abort`: all traffic on stable until `retry`.
    Aborted {
        /// The canary aborted.
        revision: String,
    },
    /// `promote`: a human ended the step.
    ResumedByHuman {
        /// The step ended.
        step: usize,
    },
    /// `promote --full`: a human skipped the remaining steps.
    PromotedByHuman,
    /// The rollout waits for pods (said once per wait).
    WaitingForPods {
        /// What it waits for.
        message: String,
    },
    /// The judge advanced to the next step, whose weight is in force at once.
    StepAdvanced {
        /// The step over.
        from: usize,
        /// The new step.
        to: usize,
        /// Its weight, percent.
        weight: f64,
    },
    /// A step's weight came into force once the canary had its pods.
    StepInForce {
        /// The step.
        step: usize,
        /// Its weight, percent.
        weight: i32,
        /// The weight before.
        was: i32,
        /// The canary's pods for it, e.g. `web-canary: 1/1 available`.
        pods: String,
    },
    /// Rolled back on the judge's decision (or an outage policy).
    RolledBack {
        /// The canary.
        revision: String,
        /// Why.
        reason: String,
    },
    /// Promotion begins.
    Promoting {
        /// The canary.
        revision: String,
        /// Why (empty: a human promoted).
        reason: String,
    },
    /// Waiting for a human: the hold budget is spent.
    Paused {
        /// The step.
        step: usize,
        /// Why.
        reason: String,
    },
    /// The step is over, the evidence inconclusive: holding.
    Holding {
        /// The step.
        step: usize,
        /// Why.
        reason: String,
    },
    /// The step's metrics cannot be read (said once per outage).
    MetricsOutage {
        /// Why.
        kind: OutageKind,
        /// What failed.
        message: String,
    },
    /// The pods did not come within the progress deadline.
    DeadlinePassed {
        /// The canary.
        revision: String,
        /// Rolled back (true) or paused (false).
        rolled_back: bool,
        /// What was short, and why.
        message: String,
    },
    /// The stable workload runs the canary revision, which is now stable.
    Promoted {
        /// It.
        revision: String,
    },
}

/// What follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// The next state.
    pub state: State,
    /// What to tell people, in order.
    pub transitions: Vec<Transition>,
    /// Seconds until the next look is needed; `None`: only on a change.
    pub wake_in: Option<f64>,
    /// Revert the target Deployment's pod template to this revision (a human's `undo`).
    pub revert_to: Option<String>,
    /// What became of a human's action; `None` without an action.
    pub action: Option<ActionResult>,
    /// The rollout waits for pods.
    pub wait: Option<PodWait>,
    /// The judge's answer was taken into account (it belongs in the decision record).
    pub judged: bool,
    /// A rollout (re)started at step 0: its decision record starts over.
    pub restarted: bool,
}

impl Decided {
    fn new(state: State, transitions: Vec<Transition>) -> Self {
        Self {
            state,
            transitions,
            wake_in: None,
            revert_to: None,
            action: None,
            wait: None,
            judged: false,
            restarted: false,
        }
    }
}

/// A time as the state keeps it: whole unix seconds (not before 1970), as the status stores it.
fn stamp(t: f64) -> f64 {
    t.max(0.0).floor()
}

/// Decides what follows from `state` given what was seen.
pub fn decide(spec: &Spec, state: &State, input: &Inputs) -> Decided {
    let mut decided = decide_phase(spec, state, input);
    schedule_scale_down(spec, state, &mut decided, input.now);
    decided
}

/// When a canary stops taking traffic, its pods go after the scale-down delay (in-flight requests
/// and slow mesh updates still find them); a live canary has none pending. A blue-green switch
/// keeps the old pods for the delay instead. Wakes up for it.
fn schedule_scale_down(spec: &Spec, old: &State, decided: &mut Decided, now: f64) {
    let live = |s: &State| s.phase.is_some_and(LifecyclePhase::canary_live);
    let next = &mut decided.state;
    let promoting = next.phase == Some(LifecyclePhase::Promoting);
    if promoting && spec.kind == StrategyKind::BlueGreen {
        // Blue-green: the old pods stay as they are for the delay after the switch, so an abort
        // switches the active Service straight back to them.
        if old.phase != Some(LifecyclePhase::Promoting) {
            next.scale_down_at = Some(stamp(now + spec.scale_down_delay));
        }
    } else if live(next) {
        next.scale_down_at = None;
    } else if live(old) && old.canary_revision.is_some() {
        next.scale_down_at = Some(stamp(now + spec.scale_down_delay));
    }
    if let Some(at) = next.scale_down_at
        && at > now - 1.0
    {
        let wait = (at - now).max(0.0) + 0.5;
        decided.wake_in = Some(decided.wake_in.map_or(wait, |r| r.min(wait)));
    }
}

fn decide_phase(spec: &Spec, old: &State, input: &Inputs) -> Decided {
    let revision = input.revision.to_string();
    let mut next = old.clone();
    let mut news = Vec::new();
    let mut action = input.action;

    // First sight: the running revision becomes stable.
    let Some(stable) = old.stable_revision.clone() else {
        next.stable_revision = Some(revision.clone());
        next.set_phase(
            LifecyclePhase::Healthy,
            healthy_message(spec, input, &revision, "adopted as stable"),
        );
        next.weight = Some(0);
        news.push(Transition::Adopted { revision });
        return Decided {
            action: action.map(|a| {
                ActionResult::Refused(format!(
                    "`{}` does nothing before a stable revision is adopted",
                    a.command()
                ))
            }),
            ..Decided::new(next, news)
        };
    };

    let rolling_out = old.canary_revision.as_deref() == Some(input.revision);
    if revision == stable && action == Some(Action::Undo) {
        return match &old.previous_stable_revision {
            Some(previous) => {
                news.push(Transition::UndoRequested {
                    previous: previous.clone(),
                });
                Decided {
                    revert_to: Some(previous.clone()),
                    action: Some(ActionResult::Applied(format!(
                        "undo: the Deployment goes back to revision {previous}"
                    ))),
                    ..Decided::new(next, news)
                }
            }
            None => Decided {
                action: Some(ActionResult::UndoImpossible(
                    "no previous stable revision is known; revert the Deployment (e.g. in Git)"
                        .into(),
                )),
                ..Decided::new(next, news)
            },
        };
    }
    if revision == stable {
        if let Some(canary) = &old.canary_revision
            && old.phase != Some(LifecyclePhase::Healthy)
        {
            news.push(Transition::Cancelled {
                stable: stable.clone(),
                canary: canary.clone(),
            });
        }
        next.canary_revision = None;
        next.step = None;
        next.step_started_at = None;
        next.waiting_since = None;
        next.weight = Some(0);
        next.set_phase(
            LifecyclePhase::Healthy,
            healthy_message(spec, input, &stable, "runs with all traffic"),
        );
        return Decided {
            action: action.map(|a| {
                ActionResult::Refused(format!(
                    "`{}` does nothing: revision {stable} runs with all traffic and nothing is rolling out",
                    a.command()
                ))
            }),
            ..Decided::new(next, news)
        };
    }
    if !rolling_out {
        // A new revision: start (or restart) from the first step against the current stable.
        news.push(match &old.canary_revision {
            Some(replaced) => Transition::Restarted {
                revision: revision.clone(),
                replaced: replaced.clone(),
            },
            None => Transition::Started {
                revision: revision.clone(),
                stable: stable.clone(),
            },
        });
        let mut decided = start(spec, next, news, input);
        decided.action = action.map(|a| {
            ActionResult::Refused(format!(
                "`{}` came with a new revision {revision}, which starts from step 0; ask again if it still applies",
                a.command(),
            ))
        });
        return decided;
    }

    // The canary revision is the target's: act on actions, then on the judge.
    let phase = old.phase.unwrap_or(LifecyclePhase::Progressing);
    let mut action_result = None;
    {
        use LifecyclePhase::{Aborted, Degraded, Promoting, RolledBack};
        match (action, phase) {
            (Some(Action::Retry), Aborted | RolledBack) => {
                news.push(Transition::Retried {
                    revision: revision.clone(),
                });
                let mut decided = start(spec, next, news, input);
                decided.action = Some(ActionResult::Applied(format!(
                    "retry: revision {revision} starts again from step 0"
                )));
                return decided;
            }
            (Some(Action::Undo), phase) if phase != Degraded => {
                // A live rollout stops first (all traffic on stable); an aborted or rolled-back
                // one already has it there. Either way the Deployment goes back to the stable
                // template.
                if !matches!(phase, Aborted | RolledBack) {
                    next.weight = Some(0);
                    next.waiting_since = None;
                    next.set_phase(
                        Aborted,
                        format!(
                            "undone by a human: all traffic on stable, the Deployment goes back to revision {stable}"
                        ),
                    );
                }
                news.push(Transition::Undone {
                    revision,
                    stable: stable.clone(),
                });
                return Decided {
                    revert_to: Some(stable.clone()),
                    action: Some(ActionResult::Applied(format!(
                        "undo: the Deployment goes back to stable revision {stable}"
                    ))),
                    ..Decided::new(next, news)
                };
            }
            (Some(a), Aborted | RolledBack | Degraded) => {
                return Decided {
                    action: Some(ActionResult::Refused(format!(
                        "`{}` does nothing while the Rollout is {phase:?}: all traffic is on stable revision {stable}; `canary-gate retry` starts revision {revision} again, `undo` reverts the Deployment",
                        a.command(),
                    ))),
                    ..Decided::new(next, news)
                };
            }
            (_, Aborted | RolledBack | Degraded) => return Decided::new(next, news),
            (Some(Action::Retry), _) => {
                // Not meaningful while the rollout runs: say so and carry on.
                action_result = Some(ActionResult::Refused(format!(
                    "`retry` restarts only an aborted or rolled-back revision; revision {revision} is {phase:?}"
                )));
                action = None;
            }
            (Some(Action::Abort), _) => {
                next.weight = Some(0);
                next.waiting_since = None;
                next.set_phase(
                    Aborted,
                    "aborted by a human; all traffic on stable until retry".to_string(),
                );
                news.push(Transition::Aborted { revision });
                return Decided {
                    action: Some(ActionResult::Applied(
                        "abort: all traffic is on stable".into(),
                    )),
                    ..Decided::new(next, news)
                };
            }
            (_, Promoting) => {
                let mut decided = promoting(spec, old, next, news, input, &stable);
                decided.action = action.map(|a| {
                    ActionResult::Refused(format!(
                        "`{}` does nothing: revision {revision} is being promoted already",
                        a.command(),
                    ))
                });
                return decided;
            }
            _ => {}
        }
    }
    run_step(spec, old, next, news, input, action, action_result)
}

/// The canary runs a step: a human's `promote` ends it; otherwise the judge's decision (or the
/// ungated step's pause, or an outage) moves it — once the canary has its pods.
fn run_step(
    spec: &Spec,
    old: &State,
    mut next: State,
    mut news: Vec<Transition>,
    input: &Inputs,
    action: Option<Action>,
    mut action_result: Option<ActionResult>,
) -> Decided {
    let now = input.now;
    let plan = &spec.plan;
    let revision = input.revision.to_string();
    let state = old.plan_state(now);
    let ctx = plan.context(&state, now);
    let in_force = old.weight.unwrap_or(0);
    let pending = old.step_started_at.is_none();
    let mut outage_reason: Option<String> = None;
    let mut judged = false;
    let resumed = match action {
        Some(Action::Promote) => {
            news.push(Transition::ResumedByHuman { step: state.step });
            action_result = Some(ActionResult::Applied(format!(
                "promote: step {} ended",
                state.step
            )));
            Some(plan.resume(&state, now, false))
        }
        Some(Action::PromoteFull) => {
            news.push(Transition::PromotedByHuman);
            action_result = Some(ActionResult::Applied(
                "promote --full: remaining steps skipped".into(),
            ));
            Some(plan.resume(&state, now, true))
        }
        _ => None,
    };
    if resumed.is_some() {
        // A human ended the step: any wait for pods counts anew from here.
        next.waiting_since = None;
    }
    let new_state = match resumed {
        Some(s) => s,
        None => {
            let (decision, paused) = match (input.judgement, input.gated) {
                (Some(j), _) => (j.decision, j.paused),
                // An ungated step advances when its pause is over; the last one promotes.
                (None, false) if ctx.step_complete && ctx.last_step => (Decision::Promote, false),
                (None, false) => (Decision::Continue, false),
                // A gated step without an answer holds: never promote blind. A metrics outage
                // longer than the template's hold budget gets its policy.
                (None, true) => match input.metrics_outage {
                    Some(outage) => {
                        let waiting = Waiting {
                            judge_paused: old.phase == Some(LifecyclePhase::Paused)
                                && !plan.waits_for_human(&state),
                            human_step: plan.waits_for_human(&state),
                        };
                        let (decision, paused, reason) =
                            during_outage(old, &mut next, &mut news, outage, waiting, now);
                        outage_reason = Some(reason);
                        (decision, paused)
                    }
                    None => (Decision::Hold, false),
                },
            };
            if input.judgement.is_some() {
                next.metrics_unavailable_since = None;
                judged = true;
            }
            // Pods before traffic: a step whose weight waits for the canary's pods, or a
            // canary that lost them, holds where it is (only a rollback goes ahead).
            if decision != Decision::Rollback {
                let goal = if pending {
                    plan.weight(&state).round() as i32
                } else {
                    in_force
                };
                if !ready(spec, input.pods, goal) {
                    let human = old.phase == Some(LifecyclePhase::Paused)
                        || (!pending && plan.waits_for_human(&state));
                    let wait = Wait {
                        side: Side::Canary,
                        what: shortfall(spec, input.pods, goal),
                        human,
                        phase: if human {
                            LifecyclePhase::Paused
                        } else if pending {
                            LifecyclePhase::Progressing
                        } else {
                            LifecyclePhase::Holding
                        },
                        message: if pending {
                            format!("step {} ({goal}%) waits for the canary's pods", state.step)
                        } else {
                            format!("holding at {in_force}%: the canary lost pods")
                        },
                    };
                    return Decided {
                        action: action_result,
                        judged,
                        ..waiting(spec, old, next, news, input, wait)
                    };
                }
                // The pods are there (again): no wait counts against the deadline.
                next.waiting_since = None;
                if pending {
                    // The weight comes into force now: the step's clock starts.
                    return Decided {
                        action: action_result,
                        judged,
                        ..in_force_now(spec, next, news, input, true)
                    };
                }
            }
            plan.apply(&state, &ctx, decision, paused, now)
        }
    };

    let advanced = new_state.step != state.step && !new_state.phase.is_terminal();
    let new_weight = plan.weight(&new_state).round() as i32;
    let goal_ready = ready(spec, input.pods, new_weight);
    next.step = Some(new_state.step);
    let mut waits_for: Option<String> = None;
    if advanced && !goal_ready {
        // The next step's weight waits for its pods; the weight in force stays.
        next.step_started_at = None;
        next.weight = Some(in_force);
        next.waiting_since = Some(stamp(now));
        let what = shortfall(spec, input.pods, new_weight);
        news.push(Transition::WaitingForPods {
            message: format!("step {} ({new_weight}%) waits for {what}", new_state.step),
        });
        waits_for = Some(what);
    } else {
        next.step_started_at = Some(stamp(new_state.step_started));
        if advanced {
            next.step_history.push(StepStart {
                step: new_state.step,
                at: stamp(new_state.step_started),
            });
        }
        next.weight = Some(new_weight);
        if advanced && new_state.phase == Phase::Progressing {
            news.push(Transition::StepAdvanced {
                from: state.step,
                to: new_state.step,
                weight: plan.weight(&new_state),
            });
        }
    }
    let reason = outage_reason.unwrap_or_else(|| {
        input
            .judgement
            .map_or_else(String::new, |j| j.reason.clone())
    });
    match new_state.phase {
        Phase::RolledBack => {
            next.waiting_since = None;
            next.set_phase(LifecyclePhase::RolledBack, format!("rolled back: {reason}"));
            news.push(Transition::RolledBack { revision, reason });
        }
        Phase::Promoted => {
            if goal_ready {
                next.weight = Some(100);
            } else {
                // All traffic moves to the canary once it has the pods for it.
                next.weight = Some(in_force);
                next.waiting_since = Some(stamp(now));
            }
            next.set_phase(
                LifecyclePhase::Promoting,
                format!("promoting revision {revision}"),
            );
            news.push(Transition::Promoting { revision, reason });
        }
        Phase::Paused => {
            next.set_phase(
                LifecyclePhase::Paused,
                format!("hold budget spent; waiting for a human: {reason}"),
            );
            if old.phase != Some(LifecyclePhase::Paused) {
                news.push(Transition::Paused {
                    step: new_state.step,
                    reason,
                });
            }
        }
        Phase::Holding => {
            next.set_phase(
                LifecyclePhase::Holding,
                format!("holding at {}%: {reason}", plan.weight(&new_state)),
            );
            if old.phase != Some(LifecyclePhase::Holding) {
                news.push(Transition::Holding {
                    step: new_state.step,
                    reason,
                });
            }
        }
        Phase::Progressing => match &waits_for {
            Some(what) => next.set_phase(
                LifecyclePhase::Progressing,
                format!("step {} ({new_weight}%) waits for {what}", new_state.step),
            ),
            None if plan.waits_for_human(&new_state) => next.set_phase(
                LifecyclePhase::Paused,
                format!("step {} waits for `canary-gate promote`", new_state.step),
            ),
            None => next.set_phase(
                LifecyclePhase::Progressing,
                format!("step {} at {}%", new_state.step, plan.weight(&new_state)),
            ),
        },
    }
    let wake_in = match new_state.phase {
        // Promoting completes on the next reconcile, once traffic has moved.
        Phase::Promoted => Some(0.0),
        _ if waits_for.is_some() => Some(POD_POLL.min(spec.progress_deadline)),
        _ => plan
            .next_wake(&new_state, now, input.interval)
            .map(|t| (t - now).max(0.0)),
    };
    Decided {
        wake_in,
        action: action_result,
        judged,
        ..Decided::new(next, news)
    }
}

/// A new rollout of the target's revision (or a retried one) from step 0; its weight comes into
/// force at once when the canary has the pods for it.
fn start(spec: &Spec, mut next: State, mut news: Vec<Transition>, input: &Inputs) -> Decided {
    let now = input.now;
    let plan = &spec.plan;
    let state = plan.start(now);
    next.canary_revision = Some(input.revision.to_string());
    next.started_at = Some(stamp(now));
    next.step = Some(0);
    next.step_history.clear();
    next.waiting_since = None;
    next.metrics_unavailable_since = None;
    let weight = plan.weight(&state).round() as i32;
    if !ready(spec, input.pods, weight) {
        // Step 0's weight reaches the routers once the canary has its pods.
        next.weight = Some(0);
        next.step_started_at = None;
        next.waiting_since = Some(stamp(now));
        let what = shortfall(spec, input.pods, weight);
        news.push(Transition::WaitingForPods {
            message: format!("step 0 ({weight}%) waits for {what}"),
        });
        next.set_phase(
            LifecyclePhase::Progressing,
            format!("step 0 ({weight}%) waits for {what}"),
        );
        return Decided {
            wake_in: Some(POD_POLL.min(spec.progress_deadline)),
            wait: Some(PodWait {
                side: Side::Canary,
                detail: what,
                deadline: None,
            }),
            restarted: true,
            ..Decided::new(next, news)
        };
    }
    // Step 0's pods are there already: its weight is in force at once (Started says so).
    Decided {
        restarted: true,
        ..in_force_now(spec, next, news, input, false)
    }
}

/// Whether a rollout waits for a human: paused by the judge's hold budget, or at a step whose
/// pause has no end.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    judge_paused: bool,
    human_step: bool,
}

/// A gated step whose metrics cannot be read: hold (recording since when, said once per
/// outage); once the outage outlasts the template's hold budget, its policy acts — unless a
/// human is the one to end the step, then it only holds. Returns the decision, the judge-pause
/// flag and the reason.
fn during_outage(
    old: &State,
    next: &mut State,
    news: &mut Vec<Transition>,
    outage: &MetricsOutage,
    waiting: Waiting,
    now: f64,
) -> (Decision, bool, String) {
    let since = old.metrics_unavailable_since.unwrap_or(now);
    next.metrics_unavailable_since = Some(stamp(since));
    if old.metrics_unavailable_since.is_none() {
        news.push(Transition::MetricsOutage {
            kind: outage.kind,
            message: outage.message.clone(),
        });
    }
    let spent = now - since >= outage.budget && !(waiting.judge_paused || waiting.human_step);
    let reason = if spent {
        format!(
            "metrics unavailable for {:.0}s (hold budget {:.0}s): {}",
            now - since,
            outage.budget,
            outage.message
        )
    } else {
        format!("metrics unavailable: {}", outage.message)
    };
    let (decision, paused) = match (spent, outage.rollback) {
        (true, true) => (Decision::Rollback, false),
        (true, false) => (Decision::Hold, true),
        (false, _) => (Decision::Hold, waiting.judge_paused),
    };
    (decision, paused, reason)
}

#[cfg(test)]
mod tests;
