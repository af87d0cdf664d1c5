//! Status helpers shared by the stages that write the Rollout's status: the status as the
//! lifecycle's plain [`State`] and back (times: RFC 3339 in the status, unix seconds in the
//! state, through [`crate::time`]), conditions (set with a transition time that changes only
//! when their status does), the phase and the conditions that follow from it, and the Events
//! ([`Note`]) that go with a status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::rollout::{self, RolloutPhase, RolloutStatus};
use crate::rollout::lifecycle::{
    HookKey, HookKind, HookPhase, HookRun, LifecyclePhase, State, StepStart,
};
use crate::time::{parse_rfc3339, rfc3339};

use super::decide::DEADLINE_REASON;

/// The condition that reports what became of the last human action.
pub const ACTION_CONDITION: &str = "ActionApplied";
/// The condition that reports an autoscaler scaling the target Deployment instead of the
/// Rollout.
pub const AUTOSCALER_CONDITION: &str = "AutoscalerConflict";
/// The condition that reports the traffic routers.
pub const TRAFFIC_CONDITION: &str = "TrafficRouted";
/// The condition that reports the webhooks.
pub const HOOKS_CONDITION: &str = "Hooks";

/// The lifecycle's state as the status holds it (a time that cannot be read counts as absent).
pub fn state_of(status: &RolloutStatus) -> State {
    let time = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339);
    State {
        phase: status.phase.map(lifecycle_phase),
        message: status.message.clone(),
        stable_revision: status.stable_revision.clone(),
        previous_stable_revision: status.previous_stable_revision.clone(),
        canary_revision: status.canary_revision.clone(),
        step: status.current_step_index.map(|i| i.max(0) as usize),
        weight: status.canary_weight,
        started_at: time(&status.started_at),
        step_started_at: time(&status.step_started_at),
        step_history: status
            .step_history
            .iter()
            .filter_map(|s| {
                Some(StepStart {
                    step: s.step.max(0) as usize,
                    at: parse_rfc3339(&s.started_at)?,
                })
            })
            .collect(),
        waiting_since: time(&status.waiting_since),
        metrics_unavailable_since: time(&status.metrics_unavailable_since),
        scale_down_at: time(&status.scale_down_at),
        hooks: status
            .hooks
            .iter()
            .map(|h| HookRun {
                key: HookKey {
                    kind: match h.kind {
                        rollout::HookKind::Step => HookKind::Step,
                        rollout::HookKind::PrePromotion => HookKind::PrePromotion,
                        rollout::HookKind::PostPromotion => HookKind::PostPromotion,
                    },
                    name: h.name.clone(),
                    revision: h.revision.clone(),
                    step: h.step.map(|s| s.max(0) as usize),
                },
                phase: match h.phase {
                    rollout::HookPhase::Pending => HookPhase::Pending,
                    rollout::HookPhase::Running => HookPhase::Running,
                    rollout::HookPhase::Passed => HookPhase::Passed,
                    rollout::HookPhase::Failed => HookPhase::Failed,
                    rollout::HookPhase::Skipped => HookPhase::Skipped,
                },
                attempts: h.attempts.max(0) as u32,
                answer: h.last_answer.clone(),
                started_at: time(&h.started_at),
                next_attempt_at: time(&h.next_attempt_at),
                finished_at: time(&h.finished_at),
            })
            .collect(),
    }
}

/// Writes the lifecycle's state into the status (every field the lifecycle owns).
pub fn write_state(state: &State, status: &mut RolloutStatus) {
    let time = |t: Option<f64>| t.map(rfc3339);
    status.phase = state.phase.map(rollout_phase);
    status.message = state.message.clone();
    status.stable_revision = state.stable_revision.clone();
    status.previous_stable_revision = state.previous_stable_revision.clone();
    status.canary_revision = state.canary_revision.clone();
    status.current_step_index = state.step.map(|s| s as i32);
    status.canary_weight = state.weight;
    status.started_at = time(state.started_at);
    status.step_started_at = time(state.step_started_at);
    status.step_history = state
        .step_history
        .iter()
        .map(|s| rollout::StepStart {
            step: s.step as i32,
            started_at: rfc3339(s.at),
        })
        .collect();
    status.waiting_since = time(state.waiting_since);
    status.metrics_unavailable_since = time(state.metrics_unavailable_since);
    status.scale_down_at = time(state.scale_down_at);
    status.hooks = state
        .hooks
        .iter()
        .map(|h| rollout::HookStatus {
            name: h.key.name.clone(),
            kind: match h.key.kind {
                HookKind::Step => rollout::HookKind::Step,
                HookKind::PrePromotion => rollout::HookKind::PrePromotion,
                HookKind::PostPromotion => rollout::HookKind::PostPromotion,
            },
            revision: h.key.revision.clone(),
            step: h.key.step.map(|s| s as i32),
            phase: match h.phase {
                HookPhase::Pending => rollout::HookPhase::Pending,
                HookPhase::Running => rollout::HookPhase::Running,
                HookPhase::Passed => rollout::HookPhase::Passed,
                HookPhase::Failed => rollout::HookPhase::Failed,
                HookPhase::Skipped => rollout::HookPhase::Skipped,
            },
            attempts: i32::try_from(h.attempts).unwrap_or(i32::MAX),
            last_answer: h.answer.clone(),
            started_at: time(h.started_at),
            next_attempt_at: time(h.next_attempt_at),
            finished_at: time(h.finished_at),
        })
        .collect();
}

/// A canary revision takes traffic or is about to.
pub fn canary_is_live(status: &RolloutStatus) -> bool {
    status
        .phase
        .is_some_and(|p| lifecycle_phase(p).canary_live())
        && status.canary_revision.is_some()
}

/// The lifecycle's name for a status phase.
pub fn lifecycle_phase(phase: RolloutPhase) -> LifecyclePhase {
    match phase {
        RolloutPhase::Progressing => LifecyclePhase::Progressing,
        RolloutPhase::Paused => LifecyclePhase::Paused,
        RolloutPhase::Holding => LifecyclePhase::Holding,
        RolloutPhase::Promoting => LifecyclePhase::Promoting,
        RolloutPhase::Healthy => LifecyclePhase::Healthy,
        RolloutPhase::Degraded => LifecyclePhase::Degraded,
        RolloutPhase::RolledBack => LifecyclePhase::RolledBack,
        RolloutPhase::Aborted => LifecyclePhase::Aborted,
    }
}

/// The status phase of a lifecycle phase.
pub fn rollout_phase(phase: LifecyclePhase) -> RolloutPhase {
    match phase {
        LifecyclePhase::Progressing => RolloutPhase::Progressing,
        LifecyclePhase::Paused => RolloutPhase::Paused,
        LifecyclePhase::Holding => RolloutPhase::Holding,
        LifecyclePhase::Promoting => RolloutPhase::Promoting,
        LifecyclePhase::Healthy => RolloutPhase::Healthy,
        LifecyclePhase::Degraded => RolloutPhase::Degraded,
        LifecyclePhase::RolledBack => RolloutPhase::RolledBack,
        LifecyclePhase::Aborted => RolloutPhase::Aborted,
    }
}

/// A Kubernetes Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Event reason (CamelCase).
    pub reason: &'static str,
    /// Event message.
    pub message: String,
    /// Warning (true) or Normal.
    pub warning: bool,
}

/// The standard conditions that follow from the phase: `Progressing` (a rollout is under way),
/// `Healthy` (the stable version runs with all traffic), `Paused` (waiting for a human), and
/// `InvalidSpec` cleared (the spec validated).
pub fn set_phase_conditions(status: &mut RolloutStatus, now: f64) {
    let phase = status.phase.unwrap_or(RolloutPhase::Healthy);
    let reason = format!("{phase:?}");
    let message = status.message.clone().unwrap_or_default();
    let progressing = matches!(
        phase,
        RolloutPhase::Progressing
            | RolloutPhase::Holding
            | RolloutPhase::Paused
            | RolloutPhase::Promoting
    );
    // A passed progress deadline stays the Progressing condition's reason while its
    // rollback or pause stands.
    let deadline_stands = matches!(phase, RolloutPhase::RolledBack | RolloutPhase::Paused)
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.reason == DEADLINE_REASON);
    if !deadline_stands {
        set_condition(
            &mut status.conditions,
            "Progressing",
            progressing,
            &reason,
            &message,
            now,
        );
    }
    set_condition(
        &mut status.conditions,
        "Healthy",
        phase == RolloutPhase::Healthy,
        &reason,
        &message,
        now,
    );
    set_condition(
        &mut status.conditions,
        "Paused",
        phase == RolloutPhase::Paused,
        &reason,
        &message,
        now,
    );
    if status.conditions.iter().any(|c| c.type_ == "InvalidSpec") {
        set_condition(
            &mut status.conditions,
            "InvalidSpec",
            false,
            "Valid",
            "the spec is valid",
            now,
        );
    }
}

/// Sets a condition; its `lastTransitionTime` changes only when its status does.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    now: f64,
) {
    let status = if on { "True" } else { "False" };
    let time = Time(Timestamp::from_second(now as i64).unwrap_or(Timestamp::UNIX_EPOCH));
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = time;
                c.status = status.to_string();
            }
            c.reason = reason.to_string();
            c.message = message.to_string();
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: time,
            observed_generation: None,
        }),
    }
}

/// Sets the phase and its message.
pub fn set_phase(status: &mut RolloutStatus, phase: RolloutPhase, message: String) {
    status.phase = Some(phase);
    status.message = Some(message);
}
