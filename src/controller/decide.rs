//! Stage *decide* (pure): the Rollout's lifecycle ([`crate::rollout::lifecycle`]) applied to its
//! status. The status is read as the lifecycle's plain state and what was observed as its
//! inputs; what the lifecycle answers is mapped back here — to the status fields, the
//! conditions, the decision record, the Events and when to look again.
//!
//! Everything needed to resume lives in the status (step, when it started, revisions), so a
//! restarted controller continues the same step with the same elapsed time.

use crate::analysis::Judgement;
use crate::crd::rollout::RolloutStatus;
use crate::rollout::Action;
use crate::rollout::lifecycle::{self, HookEvent, Inputs, OutageKind, Transition, hooks};

use super::availability::Availability;
pub use super::status::{Note, set_condition, set_phase, set_phase_conditions};
use super::status::{state_of, write_state};
use super::validate::ValidatedRollout;
pub use crate::rollout::lifecycle::{ActionResult, MetricsOutage, Side};
pub use conditions::report_action;
use conditions::{
    set_autoscaler_condition, set_availability_conditions, set_hooks_condition,
    set_metrics_condition, set_wait_conditions,
};
use record::record;

/// At most this many decisions are kept in the status.
pub const MAX_DECISIONS: usize = 20;
/// The condition's and Event's reason when a gated step's metrics source failed.
pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
/// The condition's and Event's reason when the Rollout's arguments cannot go into the template's
/// queries (a spec to fix, which holds without a budget).
pub const INVALID_ARGUMENTS: &str = "InvalidArguments";
/// The reason of the condition and Event when the progress deadline passes.
pub const DEADLINE_REASON: &str = "ProgressDeadlineExceeded";

/// What the controller saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Now, unix seconds.
    pub now: f64,
    /// Pod-template hash of the target Deployment's current template.
    pub revision: String,
    /// A pending human action, if any.
    pub action: Option<Action>,
    /// Whether the stable workload runs the canary revision on every pod, available (what a
    /// promotion waits for before traffic goes back to the stable workload).
    pub stable_ready: bool,
    /// The current step is gated by an analysis (the analyze stage says which).
    pub gated: bool,
    /// The judge's latest answer for the current step (`None` when nothing was judged).
    pub judgement: Option<Judgement>,
    /// The metrics could not be read for this step's analysis.
    pub metrics_outage: Option<MetricsOutage>,
    /// Seconds between looks while a step runs (the analysis interval).
    pub interval: f64,
    /// The pods each version has available, and why some are missing.
    pub pods: Availability,
    /// An autoscaler that scales the target Deployment instead of the Rollout (the message,
    /// with the fix).
    pub autoscaler_conflict: Option<String>,
    /// What the hooks stage did about the due webhooks: attempts started or ended.
    pub hooks: Vec<HookEvent>,
}

/// The outcome of deciding.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The status to apply.
    pub status: RolloutStatus,
    /// Events to record.
    pub notes: Vec<Note>,
    /// Seconds until the next reconcile is needed; `None`: only on change.
    pub requeue_after: Option<f64>,
    /// Revert the target Deployment's pod template to this revision (a human's `undo`).
    pub revert_to: Option<String>,
    /// What became of a human's action; `None` without an action.
    pub action_result: Option<ActionResult>,
}

/// Decides what follows from the status and what was observed.
pub fn decide(rollout: &ValidatedRollout, status: &RolloutStatus, observed: &Observed) -> Outcome {
    let now = observed.now;
    let judgement = observed.judgement.as_ref();
    let decided = lifecycle::decide(
        &rollout.lifecycle,
        &state_of(status),
        &Inputs {
            now,
            revision: &observed.revision,
            action: observed.action,
            stable_ready: observed.stable_ready,
            pods: &observed.pods,
            gated: observed.gated,
            judgement,
            metrics_outage: observed.metrics_outage.as_ref(),
            interval: observed.interval,
            hooks: &observed.hooks,
        },
    );
    let mut next = status.clone();
    write_state(&decided.state, &mut next);
    if decided.restarted {
        next.decisions.clear();
        next.last_decision = None;
    }
    if let (true, Some(j)) = (decided.judged, judgement) {
        record(&mut next, j, now);
    }
    if let Some(wait) = &decided.wait {
        set_wait_conditions(&mut next, wait, now);
    }
    let mut outcome = Outcome {
        status: next,
        notes: decided.transitions.iter().map(note).collect(),
        requeue_after: decided.wake_in,
        revert_to: decided.revert_to,
        action_result: decided.action,
    };
    set_phase_conditions(&mut outcome.status, now);
    set_availability_conditions(rollout, observed, &mut outcome);
    if let Some(result) = &outcome.action_result {
        report_action(&mut outcome.status, &mut outcome.notes, result, now);
    }
    set_autoscaler_condition(&mut outcome, observed);
    set_metrics_condition(&mut outcome.status, observed);
    set_hooks_condition(
        &mut outcome.status,
        &rollout.lifecycle.hooks,
        &decided.state,
        now,
    );
    outcome
}

/// The Event for a transition of the lifecycle.
pub fn note(transition: &Transition) -> Note {
    let (reason, message, warning) = match transition {
        Transition::Adopted { revision } => (
            "Adopted",
            format!("revision {revision} is the stable version"),
            false,
        ),
        Transition::UndoRequested { previous } => (
            "UndoRequested",
            format!(
                "reverting the Deployment to the previous stable revision {previous}; it rolls out through the steps"
            ),
            false,
        ),
        Transition::Cancelled { stable, canary } => (
            "RolloutCancelled",
            format!("the target is back on stable revision {stable}; canary {canary} dropped"),
            false,
        ),
        Transition::Restarted { revision, replaced } => (
            "RolloutRestarted",
            format!("revision {revision} replaces canary {replaced}; starting again from step 0"),
            false,
        ),
        Transition::Started { revision, stable } => (
            "RolloutStarted",
            format!("rolling out revision {revision} against stable {stable}"),
            false,
        ),
        Transition::Retried { revision } => (
            "RolloutRetried",
            format!("retrying revision {revision} from step 0"),
            false,
        ),
        Transition::Undone { revision, stable } => (
            "RolloutUndone",
            format!("revision {revision} undone; reverting the Deployment to {stable}"),
            true,
        ),
        Transition::Aborted { revision } => (
            "RolloutAborted",
            format!("revision {revision} aborted"),
            true,
        ),
        Transition::ResumedByHuman { step } => (
            "ResumedByHuman",
            format!("step {step} ended by a human"),
            false,
        ),
        Transition::PromotedByHuman => (
            "PromotedByHuman",
            "remaining steps skipped by a human".to_string(),
            false,
        ),
        Transition::WaitingForPods { message } => ("WaitingForPods", message.clone(), false),
        Transition::StepAdvanced { from, to, weight } => (
            "StepAdvanced",
            format!("step {from} → {to} at weight {weight}%"),
            false,
        ),
        Transition::StepInForce {
            step,
            weight,
            was,
            pods,
        } => (
            "StepAdvanced",
            format!("step {step} at weight {weight}% (was {was}%): {pods}"),
            false,
        ),
        Transition::RolledBack { revision, reason } => {
            ("RolledBack", format!("revision {revision}: {reason}"), true)
        }
        Transition::Promoting { revision, reason } => (
            "Promoting",
            format!(
                "revision {revision}: {}",
                if reason.is_empty() {
                    "promoted by a human"
                } else {
                    reason
                }
            ),
            false,
        ),
        Transition::Paused { step, reason } => ("Paused", format!("step {step}: {reason}"), true),
        Transition::Holding { step, reason } => {
            ("Holding", format!("step {step}: {reason}"), false)
        }
        Transition::MetricsOutage { kind, message } => {
            (outage_reason(*kind), format!("holding: {message}"), true)
        }
        Transition::DeadlinePassed {
            revision,
            rolled_back,
            message,
        } => (
            DEADLINE_REASON,
            format!(
                "revision {revision} {}: {message}",
                if *rolled_back {
                    "rolled back"
                } else {
                    "paused"
                }
            ),
            true,
        ),
        Transition::Promoted { revision } => (
            "Promoted",
            format!("revision {revision} is the stable version"),
            false,
        ),
        Transition::HookStarted { key, host } => (
            "HookStarted",
            format!("calling {}", hooks::describe(key, host)),
            false,
        ),
        Transition::HookPassed {
            key,
            host,
            answer,
            attempts,
        } => (
            "HookPassed",
            format!(
                "{} passed: {answer} (attempt {attempts})",
                hooks::describe(key, host)
            ),
            false,
        ),
        Transition::HookRetrying {
            key,
            host,
            answer,
            attempt,
            retry_in,
        } => (
            "HookRetrying",
            format!(
                "{}: attempt {attempt} failed: {answer}; trying again in {retry_in:.0}s",
                hooks::describe(key, host)
            ),
            true,
        ),
        Transition::HookFailed { message, .. } => ("HookFailed", message.clone(), true),
    };
    Note {
        reason,
        message,
        warning,
    }
}

/// The condition's and Event's reason for missing metrics.
pub fn outage_reason(kind: OutageKind) -> &'static str {
    match kind {
        OutageKind::Unavailable => METRICS_UNAVAILABLE,
        OutageKind::InvalidArguments => INVALID_ARGUMENTS,
    }
}

mod conditions;
mod record;
#[cfg(test)]
mod tests;
