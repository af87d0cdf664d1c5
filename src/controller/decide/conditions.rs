//! The conditions that follow from what was observed and decided, beside the phase's: a wait for
//! pods and a passed progress deadline, the pods of each version (`CanaryAvailable`,
//! `StableAvailable`, and `Healthy` only with the stable's pods), an autoscaler on the target
//! (`AutoscalerConflict`), the metrics (`MetricsAvailable`), the webhooks (`Hooks`) and what
//! became of a human action (`ActionApplied`).

use crate::analysis::NO_DATA;
use crate::controller::status::{
    ACTION_CONDITION, AUTOSCALER_CONDITION, HOOKS_CONDITION, Note, canary_is_live, set_condition,
};
use crate::crd::rollout::{RolloutPhase, RolloutStatus};
use crate::rollout::lifecycle::{ActionResult, HookPlan, PodWait, Side, State, hooks};
use crate::rollout::pods::{Availability, needed, ready, shortfall};
use crate::traffic::workload::{self, Role};

use super::{DEADLINE_REASON, Observed, Outcome, ValidatedRollout, outage_reason};

/// What became of a human's action: `ActionApplied` True with what it did, or False with why
/// not (and a Warning Event) — an accepted action is never silently dropped.
pub fn report_action(
    status: &mut RolloutStatus,
    notes: &mut Vec<Note>,
    result: &ActionResult,
    now: f64,
) {
    let (reason, message) = match result {
        ActionResult::Applied(message) => {
            set_condition(
                &mut status.conditions,
                ACTION_CONDITION,
                true,
                "Applied",
                message,
                now,
            );
            return;
        }
        ActionResult::Refused(message) => ("ActionRefused", message),
        ActionResult::UndoImpossible(message) => ("UndoImpossible", message),
    };
    notes.push(Note {
        reason,
        message: message.clone(),
        warning: true,
    });
    set_condition(
        &mut status.conditions,
        ACTION_CONDITION,
        false,
        reason,
        message,
        now,
    );
}

/// The condition that reports a side's pods.
fn availability_condition(side: Side) -> &'static str {
    match side {
        Side::Canary => "CanaryAvailable",
        Side::Stable => "StableAvailable",
    }
}

/// The rollout waits for pods: the side's condition says what is short (`WaitingForPods`); at a
/// passed progress deadline `Progressing` and the side's condition say so.
pub(super) fn set_wait_conditions(status: &mut RolloutStatus, wait: &PodWait, now: f64) {
    let condition = availability_condition(wait.side);
    match &wait.deadline {
        Some(message) => {
            set_condition(
                &mut status.conditions,
                "Progressing",
                false,
                DEADLINE_REASON,
                message,
                now,
            );
            set_condition(
                &mut status.conditions,
                condition,
                false,
                DEADLINE_REASON,
                &wait.detail,
                now,
            );
        }
        None => set_condition(
            &mut status.conditions,
            condition,
            false,
            "WaitingForPods",
            &wait.detail,
            now,
        ),
    }
}

/// `MetricsAvailable`: False with the outage, or with the metrics the judge had no usable
/// numbers for; True once the step's metrics were read and judged.
pub(super) fn set_metrics_condition(status: &mut RolloutStatus, observed: &Observed) {
    let now = observed.now;
    match (&observed.metrics_outage, &observed.judgement) {
        (Some(outage), _) => set_condition(
            &mut status.conditions,
            "MetricsAvailable",
            false,
            outage_reason(outage.kind),
            &outage.message,
            now,
        ),
        (None, Some(j)) => {
            // Prometheus answered, but without usable numbers for some metric (no series,
            // NaN, a stale series): the judge holds on it, and the condition says which.
            let missing: Vec<String> = j
                .metrics
                .iter()
                .filter(|m| m.reason.starts_with(NO_DATA))
                .map(|m| format!("{}: {}", m.name, m.reason))
                .collect();
            if missing.is_empty() {
                set_condition(
                    &mut status.conditions,
                    "MetricsAvailable",
                    true,
                    "Judged",
                    "the step's metrics were read and judged",
                    now,
                );
            } else {
                set_condition(
                    &mut status.conditions,
                    "MetricsAvailable",
                    false,
                    "NoData",
                    &missing.join("; "),
                    now,
                );
            }
        }
        (None, None) => {}
    }
}

/// `CanaryAvailable` while a canary is live (unless the rollout is waiting, which set it false),
/// `StableAvailable` always, and `Healthy` only with the stable workload's pods available.
pub(super) fn set_availability_conditions(
    rollout: &ValidatedRollout,
    observed: &Observed,
    outcome: &mut Outcome,
) {
    let now = observed.now;
    let status = &mut outcome.status;
    if status.stable_revision.is_none() {
        return;
    }
    let live = canary_is_live(status);
    let weight = status.canary_weight.unwrap_or(0);
    let pods: &Availability = &observed.pods;
    let waiting_now = status.waiting_since.is_some();
    let promoting_stable =
        status.phase == Some(RolloutPhase::Promoting) && status.canary_weight == Some(100);
    if live && (!waiting_now || promoting_stable) {
        let spec = &rollout.lifecycle;
        let need = needed(spec, pods.total, weight).canary;
        let text = format!(
            "{}: {}/{need} available for {weight}%",
            workload::name(&rollout.target, Role::Canary),
            pods.canary
        );
        let ok = ready(spec, pods, weight);
        set_condition(
            &mut status.conditions,
            "CanaryAvailable",
            ok,
            if ok { "Available" } else { "WaitingForPods" },
            &if ok {
                text
            } else {
                shortfall(spec, pods, weight)
            },
            now,
        );
    } else if !live {
        // No canary: the condition goes, unless it says why the canary failed (the deadline).
        status
            .conditions
            .retain(|c| c.type_ != "CanaryAvailable" || c.reason == DEADLINE_REASON);
    }
    if !(promoting_stable && waiting_now) {
        let need = if live && rollout.lifecycle.pods_are_the_split() {
            needed(&rollout.lifecycle, pods.total, weight).stable
        } else {
            pods.total
        };
        let ok = pods.stable >= need;
        let text = format!(
            "{}: {}/{need} available",
            workload::name(&rollout.target, Role::Stable),
            pods.stable
        );
        set_condition(
            &mut status.conditions,
            "StableAvailable",
            ok,
            if ok { "Available" } else { "WaitingForPods" },
            &text,
            now,
        );
        if !ok && status.phase == Some(RolloutPhase::Healthy) {
            set_condition(
                &mut status.conditions,
                "Healthy",
                false,
                "StableUnavailable",
                &text,
                now,
            );
        }
    }
}

/// `AutoscalerConflict`: True with the fix (one Warning Event when it appears) while an HPA
/// scales the target Deployment; False once it is gone.
pub(super) fn set_autoscaler_condition(outcome: &mut Outcome, observed: &Observed) {
    match &observed.autoscaler_conflict {
        Some(message) => {
            let already = outcome
                .status
                .conditions
                .iter()
                .any(|c| c.type_ == AUTOSCALER_CONDITION && c.status == "True");
            if !already {
                outcome.notes.push(Note {
                    reason: "AutoscalerConflict",
                    message: message.clone(),
                    warning: true,
                });
            }
            set_condition(
                &mut outcome.status.conditions,
                AUTOSCALER_CONDITION,
                true,
                "HPATargetsDeployment",
                message,
                observed.now,
            );
        }
        None => {
            if outcome
                .status
                .conditions
                .iter()
                .any(|c| c.type_ == AUTOSCALER_CONDITION)
            {
                set_condition(
                    &mut outcome.status.conditions,
                    AUTOSCALER_CONDITION,
                    false,
                    "NoConflict",
                    "no autoscaler scales the target Deployment",
                    observed.now,
                );
            }
        }
    }
}

/// `Hooks`: False with the newest failed webhook (what it answered, what followed, the fix) or
/// the one under way, True once every webhook so far passed (or was skipped). Unchanged while
/// no webhook has run.
pub(super) fn set_hooks_condition(
    status: &mut RolloutStatus,
    plan: &HookPlan,
    state: &State,
    now: f64,
) {
    if let Some((passed, reason, message)) = hooks::summary(plan, state) {
        set_condition(
            &mut status.conditions,
            HOOKS_CONDITION,
            passed,
            reason,
            &message,
            now,
        );
    }
}
