//! The conditions that follow from what was observed, beside the phase's: the pods of each
//! version (`CanaryAvailable`, `StableAvailable`, and `Healthy` only with the stable's pods), an
//! autoscaler on the target (`AutoscalerConflict`) and what became of a human action
//! (`ActionApplied`).

use super::*;
use crate::controller::status::{ACTION_CONDITION, AUTOSCALER_CONDITION};

/// What became of a human's action: `ActionApplied` True with what it did, or False with why
/// not (and a Warning Event) — an accepted action is never silently dropped.
pub fn report_action(outcome: &mut Outcome, observed: &Observed) {
    match outcome.action_result.clone() {
        Some(Ok(message)) => set_condition(
            &mut outcome.status.conditions,
            ACTION_CONDITION,
            true,
            "Applied",
            &message,
            observed.now,
        ),
        Some(Err((reason, message))) => {
            outcome.notes.push(note(reason, message.clone(), true));
            set_condition(
                &mut outcome.status.conditions,
                ACTION_CONDITION,
                false,
                reason,
                &message,
                observed.now,
            );
        }
        None => {}
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
    let live = canary_live(status.phase) && status.canary_revision.is_some();
    let weight = status.canary_weight.unwrap_or(0);
    let pods: &Availability = &observed.pods;
    let waiting_now = status.waiting_since.is_some();
    let promoting_stable =
        status.phase == Some(RolloutPhase::Promoting) && status.canary_weight == Some(100);
    if live && (!waiting_now || promoting_stable) {
        let need = needed(rollout, pods.total, weight).canary;
        let text = format!(
            "{}: {}/{need} available for {weight}%",
            crate::traffic::workload::name(&rollout.target, crate::traffic::workload::Role::Canary),
            pods.canary
        );
        let ok = ready(rollout, pods, weight);
        set_condition(
            &mut status.conditions,
            "CanaryAvailable",
            ok,
            if ok { "Available" } else { "WaitingForPods" },
            &if ok {
                text
            } else {
                shortfall(rollout, pods, weight)
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
        let need = if live && rollout.kind == StrategyKind::Canary && !rollout.routed {
            needed(rollout, pods.total, weight).stable
        } else {
            pods.total
        };
        let ok = pods.stable >= need;
        let text = format!(
            "{}: {}/{need} available",
            crate::traffic::workload::name(&rollout.target, crate::traffic::workload::Role::Stable),
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
                outcome
                    .notes
                    .push(note("AutoscalerConflict", message.clone(), true));
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
