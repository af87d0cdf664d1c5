//! Pods before traffic (pure): how many pods each version has available, how many a traffic
//! weight needs, which pods to run while a weight waits for them.
//!
//! A step's weight reaches the routers only once the canary has the pods that weight needs
//! available (with the replica ratio, where pods are the split, the stable side too); until then
//! the weight in force stays and the step's clock has not started. The counts themselves come
//! from the workloads (the controller reads them; see `controller::availability`).

use super::replicas::{self, Replicas};

use super::lifecycle::{LifecyclePhase, Spec, State, StrategyKind};

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Runs the stable revision.
    Stable,
    /// Runs the revision being rolled out.
    Canary,
}

impl Role {
    /// The label value (`stable` / `canary`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
        }
    }
}

/// Name of a workload of the target Deployment `target`: `<target>-stable`, `<target>-canary`.
pub fn workload_name(target: &str, role: Role) -> String {
    format!("{target}-{}", role.as_str())
}

/// What the workloads say about their pods.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Availability {
    /// Pods of the application in all (the Rollout's `spec.replicas`, else the target's).
    pub total: i32,
    /// Available pods of the canary workload running the canary revision.
    pub canary: i32,
    /// Available pods of the stable workload running the stable revision.
    pub stable: i32,
    /// Why canary pods are missing (its Deployment conditions, and its pods' reasons when read).
    pub canary_problems: Vec<String>,
    /// Why stable pods are missing.
    pub stable_problems: Vec<String>,
}

/// The pods each version needs for `weight` to be in force (the canary live).
pub fn needed(spec: &Spec, total: i32, weight: i32) -> Replicas {
    split(spec, total, weight, true)
}

/// The pods of each version for `weight` out of `total`; `live`: the canary is being rolled out
/// (it keeps at least one pod).
pub fn split(spec: &Spec, total: i32, weight: i32, live: bool) -> Replicas {
    match spec.kind {
        StrategyKind::BlueGreen => Replicas {
            stable: total.max(0),
            canary: if live { total.max(0) } else { 0 },
        },
        StrategyKind::Canary if spec.routed => replicas::routed(total, weight, live),
        StrategyKind::Canary => replicas::ratio(total, weight, live),
    }
}

/// Whether the pods for `weight` are available: the canary's, and with the replica ratio (the
/// pods are the split) the stable's too.
pub fn ready(spec: &Spec, pods: &Availability, weight: i32) -> bool {
    let need = needed(spec, pods.total, weight);
    pods.canary >= need.canary && (!spec.pods_are_the_split() || pods.stable >= need.stable)
}

/// `available/needed` of the side that is short for `weight`, for messages, e.g.
/// `web-canary: 0/3 available`.
pub fn shortfall(spec: &Spec, pods: &Availability, weight: i32) -> String {
    let need = needed(spec, pods.total, weight);
    let canary = format!(
        "{}: {}/{} available",
        workload_name(&spec.target, Role::Canary),
        pods.canary,
        need.canary
    );
    let mut parts = Vec::new();
    if pods.canary < need.canary {
        parts.push(canary.clone());
    }
    if spec.pods_are_the_split() && pods.stable < need.stable {
        parts.push(format!(
            "{}: {}/{} available",
            workload_name(&spec.target, Role::Stable),
            pods.stable,
            need.stable
        ));
    }
    if parts.is_empty() {
        parts.push(canary);
    }
    parts.join(", ")
}

/// The weight the rollout is moving to: 100 while promoting, the current step's while it waits
/// for its pods, else the weight in force.
pub fn goal_weight(spec: &Spec, state: &State) -> i32 {
    let in_force = state.weight.unwrap_or(0);
    let live = state.canary_is_live();
    match state.phase {
        Some(LifecyclePhase::Promoting) if live => 100,
        _ if live && state.step_started_at.is_none() => {
            let steps = spec.plan.steps();
            let i = state.step.unwrap_or(0).min(steps.len().saturating_sub(1));
            steps.get(i).map_or(in_force, |s| s.weight.round() as i32)
        }
        _ => in_force,
    }
}

/// The pods to run now: enough for the weight in force and for the weight being moved to (the
/// stable keeps the pods it serves with until the canary's are available). Once all traffic is
/// on the canary during a promotion, the stable workload runs every pod of the new revision.
pub fn placement(spec: &Spec, state: &State, total: i32) -> Replicas {
    let live = state.canary_is_live();
    let in_force = state.weight.unwrap_or(0);
    let now = split(spec, total, in_force, live);
    let goal = split(spec, total, goal_weight(spec, state), live);
    let mut pods = Replicas {
        stable: now.stable.max(goal.stable),
        canary: now.canary.max(goal.canary),
    };
    if state.phase == Some(LifecyclePhase::Promoting) && in_force == 100 {
        pods.stable = total.max(0);
    }
    pods
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{Step, StepPlan};

    fn spec(routed: bool) -> Spec {
        let plan = StepPlan::new(vec![
            Step {
                weight: 5.0,
                pause: 60.0,
            },
            Step {
                weight: 25.0,
                pause: 60.0,
            },
        ])
        .unwrap();
        Spec {
            routed,
            ..Spec::canary("web", plan)
        }
    }

    fn pods(total: i32, stable: i32, canary: i32) -> Availability {
        Availability {
            total,
            stable,
            canary,
            ..Availability::default()
        }
    }

    #[test]
    fn a_weight_is_ready_once_the_canary_has_its_pods_and_with_replica_ratio_the_stable_too() {
        let routed = spec(true);
        // A router: 25 % of 10 pods needs 3 canary pods; the stable keeps its 10.
        assert!(!ready(&routed, &pods(10, 10, 2), 25));
        assert!(ready(&routed, &pods(10, 0, 3), 25));
        assert_eq!(
            shortfall(&routed, &pods(10, 10, 0), 25),
            "web-canary: 0/3 available"
        );
        let ratio = spec(false);
        // Replica ratio: 25 % of 10 pods is 7 stable + 3 canary.
        assert!(ready(&ratio, &pods(10, 7, 3), 25));
        assert!(!ready(&ratio, &pods(10, 6, 3), 25));
        assert_eq!(
            shortfall(&ratio, &pods(10, 6, 1), 25),
            "web-canary: 1/3 available, web-stable: 6/7 available"
        );
    }

    #[test]
    fn while_a_step_waits_the_stable_keeps_its_pods_and_the_canary_gets_the_new_ones() {
        let ratio = spec(false);
        let waiting = State {
            phase: Some(LifecyclePhase::Progressing),
            canary_revision: Some("bbb".into()),
            step: Some(1),
            weight: Some(5),
            step_started_at: None,
            ..State::default()
        };
        assert_eq!(goal_weight(&ratio, &waiting), 25);
        // In force 5 % = 9 + 1; moving to 25 % = 7 + 3: run 9 + 3 until the canary's are up.
        assert_eq!(
            placement(&ratio, &waiting, 10),
            Replicas {
                stable: 9,
                canary: 3
            }
        );
        let in_force = State {
            weight: Some(25),
            step_started_at: Some(1_763_856_000.0),
            ..waiting.clone()
        };
        assert_eq!(
            placement(&ratio, &in_force, 10),
            Replicas {
                stable: 7,
                canary: 3
            }
        );
        // Promoting: the canary gets every pod first; the stable takes the new revision with all
        // of them only once the canary carries all traffic.
        let promoting = State {
            phase: Some(LifecyclePhase::Promoting),
            ..in_force.clone()
        };
        assert_eq!(
            placement(&ratio, &promoting, 10),
            Replicas {
                stable: 7,
                canary: 10
            }
        );
        let all_on_canary = State {
            weight: Some(100),
            ..promoting
        };
        assert_eq!(
            placement(&ratio, &all_on_canary, 10),
            Replicas {
                stable: 10,
                canary: 10
            }
        );
    }
}
