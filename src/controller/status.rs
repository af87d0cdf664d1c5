//! Status helpers shared by the stages that write the Rollout's status: conditions (set with a
//! transition time that changes only when their status does), the phase and the conditions that
//! follow from it, and the Events ([`Note`]) that go with a status. Times in the status are RFC
//! 3339, read and written with [`crate::time`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::rollout::{RolloutPhase, RolloutStatus};

use super::decide::DEADLINE_REASON;

/// The condition that reports what became of the last human action.
pub const ACTION_CONDITION: &str = "ActionApplied";
/// The condition that reports an autoscaler scaling the target Deployment instead of the
/// Rollout.
pub const AUTOSCALER_CONDITION: &str = "AutoscalerConflict";
/// The condition that reports the traffic routers.
pub const TRAFFIC_CONDITION: &str = "TrafficRouted";

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
