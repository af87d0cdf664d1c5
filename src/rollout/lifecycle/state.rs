//! What the lifecycle works on: the Rollout's spec as it needs it ([`Spec`]) and its resumable
//! state ([`State`], what the status holds), with the step history the judge reads.

use crate::analysis::StepContext;
use crate::rollout::{Phase, PlanState, StepPlan};

use super::hooks::{HookPlan, HookRun};

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
    /// The webhooks: of steps, before and after the promotion.
    pub hooks: HookPlan,
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
            hooks: HookPlan::default(),
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
    /// The webhooks' runs of the canary (and the stable) revision.
    pub hooks: Vec<HookRun>,
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

    pub(super) fn set_phase(&mut self, phase: LifecyclePhase, message: String) {
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
