//! What the lifecycle answers: [`Decided`] — the next state, the [`Transition`]s to tell people,
//! what became of a human's action, a wait for pods, and when to look again.

use super::hooks::HookKey;
use super::{OutageKind, State};

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
    /// A webhook's first attempt began.
    HookStarted {
        /// Which run.
        key: HookKey,
        /// Where it goes (host and port).
        host: String,
    },
    /// A webhook answered 2xx.
    HookPassed {
        /// Which run.
        key: HookKey,
        /// Where it went (host and port).
        host: String,
        /// What it answered.
        answer: String,
        /// After how many attempts.
        attempts: u32,
    },
    /// A webhook's attempt failed; another follows.
    HookRetrying {
        /// Which run.
        key: HookKey,
        /// Where it went (host and port).
        host: String,
        /// What it got.
        answer: String,
        /// The attempt that failed.
        attempt: u32,
        /// Seconds until the next one.
        retry_in: f64,
    },
    /// A webhook failed after its retries.
    HookFailed {
        /// Which run.
        key: HookKey,
        /// What failed, what follows and the fix.
        message: String,
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
    pub(super) fn new(state: State, transitions: Vec<Transition>) -> Self {
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
