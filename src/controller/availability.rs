//! Pods before traffic (pure): how many pods each version has available, how many a traffic
//! weight needs, which pods to run while a weight waits for them, and why pods are missing.
//!
//! A step's weight reaches the routers only once the canary has the pods that weight needs
//! available (with the replica ratio, where pods are the split, the stable side too); until then
//! the weight in force stays and the step's clock has not started. The numbers come from the
//! workloads' Deployment status (there is no other source of truth for "available"), and the
//! reasons for missing pods from their conditions and, once, from the pods themselves.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;

use crate::crd::rollout::{RolloutPhase, RolloutStatus};
use crate::traffic::replicas::{self, Replicas};
use crate::traffic::workload::{self, Role};

use super::validate::{StrategyKind, ValidatedRollout};

/// What the workloads say about their pods.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Availability {
    /// Pods of the application in all (the Rollout's `spec.replicas`, else the target's).
    pub total: i32,
    /// Available pods of `<target>-canary` running the canary revision.
    pub canary: i32,
    /// Available pods of `<target>-stable` running the stable revision.
    pub stable: i32,
    /// Why canary pods are missing (its Deployment conditions, and its pods' reasons when read).
    pub canary_problems: Vec<String>,
    /// Why stable pods are missing.
    pub stable_problems: Vec<String>,
}

impl Availability {
    /// Reads the counts from the workloads: pods of `canary_revision` in the canary workload and
    /// of `stable_revision` in the stable one (during a promotion the stable workload takes the
    /// new revision; its count is then that revision's).
    pub fn of(
        total: i32,
        stable: Option<&Deployment>,
        stable_revision: Option<&str>,
        canary: Option<&Deployment>,
        canary_revision: Option<&str>,
    ) -> Self {
        let count = |w: Option<&Deployment>, revision: Option<&str>| match (w, revision) {
            (Some(w), Some(r)) => available_pods(w, r),
            _ => 0,
        };
        Self {
            total,
            canary: count(canary, canary_revision),
            stable: stable.map_or(0, |w| {
                count(
                    Some(w),
                    stable_revision
                        .filter(|r| workload::revision_of(w) == Some(*r))
                        .or(workload::revision_of(w)),
                )
            }),
            canary_problems: canary.map(deployment_problems).unwrap_or_default(),
            stable_problems: stable.map(deployment_problems).unwrap_or_default(),
        }
    }
}

/// Available pods of a workload that run `revision` (0 when its template is another revision).
/// `min(updated, available)`: a pod counts when it runs the current template and is available.
pub fn available_pods(w: &Deployment, revision: &str) -> i32 {
    if workload::revision_of(w) != Some(revision) {
        return 0;
    }
    w.status.as_ref().map_or(0, |s| {
        s.available_replicas
            .unwrap_or(0)
            .min(s.updated_replicas.unwrap_or(0))
            .max(0)
    })
}

/// Pods in all: the Rollout's `spec.replicas` (an HPA's), else what the target asks for — its 0
/// is canary-gate's own after the hand-over (then `last`, the total in the status, stands) unless
/// `ours` says a human set it.
pub fn total(
    spec_replicas: Option<i32>,
    target: &Deployment,
    ours: bool,
    last: Option<i32>,
) -> i32 {
    if let Some(n) = spec_replicas {
        return n.max(0);
    }
    let asked = target.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if asked > 0 || !ours {
        asked
    } else {
        last.unwrap_or(asked)
    }
}

/// Whether a phase has a canary that takes traffic or is about to.
pub fn canary_live(phase: Option<RolloutPhase>) -> bool {
    matches!(
        phase,
        Some(
            RolloutPhase::Progressing
                | RolloutPhase::Holding
                | RolloutPhase::Paused
                | RolloutPhase::Promoting
        )
    )
}

/// The pods each version needs for `weight` to be in force (the canary live).
pub fn needed(rollout: &ValidatedRollout, total: i32, weight: i32) -> Replicas {
    split(rollout, total, weight, true)
}

fn split(rollout: &ValidatedRollout, total: i32, weight: i32, live: bool) -> Replicas {
    match rollout.kind {
        StrategyKind::BlueGreen => Replicas {
            stable: total.max(0),
            canary: if live { total.max(0) } else { 0 },
        },
        StrategyKind::Canary if rollout.routed => replicas::routed(total, weight, live),
        StrategyKind::Canary => replicas::ratio(total, weight, live),
    }
}

/// Whether the pods for `weight` are available: the canary's, and with the replica ratio (the
/// pods are the split) the stable's too.
pub fn ready(rollout: &ValidatedRollout, pods: &Availability, weight: i32) -> bool {
    let need = needed(rollout, pods.total, weight);
    let ratio = rollout.kind == StrategyKind::Canary && !rollout.routed;
    pods.canary >= need.canary && (!ratio || pods.stable >= need.stable)
}

/// `available/needed` of the side that is short for `weight`, for messages, e.g.
/// `web-canary: 0/3 available`.
pub fn shortfall(rollout: &ValidatedRollout, pods: &Availability, weight: i32) -> String {
    let need = needed(rollout, pods.total, weight);
    let mut parts = Vec::new();
    if pods.canary < need.canary {
        parts.push(format!(
            "{}: {}/{} available",
            workload::name(&rollout.target, Role::Canary),
            pods.canary,
            need.canary
        ));
    }
    if rollout.kind == StrategyKind::Canary && !rollout.routed && pods.stable < need.stable {
        parts.push(format!(
            "{}: {}/{} available",
            workload::name(&rollout.target, Role::Stable),
            pods.stable,
            need.stable
        ));
    }
    if parts.is_empty() {
        parts.push(format!(
            "{}: {}/{} available",
            workload::name(&rollout.target, Role::Canary),
            pods.canary,
            need.canary
        ));
    }
    parts.join(", ")
}

/// The weight the rollout is moving to: 100 while promoting, the current step's while it waits
/// for its pods, else the weight in force.
pub fn goal_weight(rollout: &ValidatedRollout, status: &RolloutStatus) -> i32 {
    let in_force = status.canary_weight.unwrap_or(0);
    let live = canary_live(status.phase) && status.canary_revision.is_some();
    match status.phase {
        Some(RolloutPhase::Promoting) if live => 100,
        _ if live && status.step_started_at.is_none() => {
            let steps = rollout.plan.steps();
            let i = (status.current_step_index.unwrap_or(0).max(0) as usize)
                .min(steps.len().saturating_sub(1));
            steps.get(i).map_or(in_force, |s| s.weight.round() as i32)
        }
        _ => in_force,
    }
}

/// The pods to run now: enough for the weight in force and for the weight being moved to (the
/// stable keeps the pods it serves with until the canary's are available). Once all traffic is
/// on the canary during a promotion, the stable workload runs every pod of the new revision.
pub fn placement(rollout: &ValidatedRollout, status: &RolloutStatus, total: i32) -> Replicas {
    let live = canary_live(status.phase) && status.canary_revision.is_some();
    let in_force = status.canary_weight.unwrap_or(0);
    let now = split(rollout, total, in_force, live);
    let goal = split(rollout, total, goal_weight(rollout, status), live);
    let mut pods = Replicas {
        stable: now.stable.max(goal.stable),
        canary: now.canary.max(goal.canary),
    };
    if status.phase == Some(RolloutPhase::Promoting) && in_force == 100 {
        pods.stable = total.max(0);
    }
    pods
}

/// The problems a workload's Deployment conditions name: `ReplicaFailure` (e.g. a quota) and a
/// `Progressing` or `Available` condition that is false, as `Reason: message`.
pub fn deployment_problems(w: &Deployment) -> Vec<String> {
    w.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| {
            (c.type_ == "ReplicaFailure" && c.status == "True")
                || (matches!(c.type_.as_str(), "Progressing" | "Available") && c.status == "False")
        })
        .map(|c| {
            let reason = c.reason.clone().unwrap_or_else(|| c.type_.clone());
            match c.message.as_deref().filter(|m| !m.is_empty()) {
                Some(m) => format!("{reason}: {m}"),
                None => reason,
            }
        })
        .collect()
}

/// Why pods are not available, from the pods themselves: containers waiting (CrashLoopBackOff,
/// ImagePullBackOff, ErrImagePull, CreateContainerConfigError …) with their last exit,
/// unschedulable pods with the scheduler's message. One line per reason, with how many pods.
pub fn pod_problems(pods: &[Pod]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        for c in status.conditions.iter().flatten() {
            if c.type_ == "PodScheduled" && c.status == "False" {
                let reason = c.reason.clone().unwrap_or_else(|| "Unschedulable".into());
                let line = match c.message.as_deref().filter(|m| !m.is_empty()) {
                    Some(m) => format!("{reason}: {m}"),
                    None => reason,
                };
                *seen.entry(line).or_default() += 1;
            }
        }
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for c in containers {
            let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let Some(reason) = waiting.reason.clone() else {
                continue;
            };
            if reason == "ContainerCreating" || reason == "PodInitializing" {
                continue;
            }
            let mut line = format!("{reason} (container {})", c.name);
            if let Some(t) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
                line.push_str(&format!(
                    ", last exit {} {}",
                    t.exit_code,
                    t.reason.as_deref().unwrap_or("")
                ));
                line = line.trim_end().to_string();
            }
            if let Some(m) = waiting.message.as_deref().filter(|m| !m.is_empty()) {
                line.push_str(&format!(": {m}"));
            }
            *seen.entry(line).or_default() += 1;
        }
    }
    let mut lines: Vec<(usize, String)> = seen.into_iter().map(|(l, n)| (n, l)).collect();
    lines.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    lines
        .into_iter()
        .take(5)
        .map(|(n, l)| {
            if n == 1 {
                format!("1 pod: {l}")
            } else {
                format!("{n} pods: {l}")
            }
        })
        .collect()
}

/// The label selector of a Deployment's pods as a string (`app=web,tier=front`), what the scale
/// subresource gives an HPA (`matchLabels` only; expressions are not expressible there).
pub fn selector_string(target: &Deployment) -> Option<String> {
    let labels = target.spec.as_ref()?.selector.match_labels.as_ref()?;
    if labels.is_empty() {
        return None;
    }
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// An HPA (KEDA creates one per ScaledObject) that scales the target Deployment itself, which
/// canary-gate keeps at zero pods: the HPA then sees no pods and stops. Returns the message with
/// the fix.
pub fn autoscaler_conflict<'a>(
    hpas: impl IntoIterator<Item = &'a HorizontalPodAutoscaler>,
    namespace: &str,
    target: &str,
    rollout: &str,
) -> Option<String> {
    let names: Vec<String> = hpas
        .into_iter()
        .filter(|h| h.metadata.namespace.as_deref() == Some(namespace))
        .filter(|h| {
            h.spec.as_ref().is_some_and(|s| {
                s.scale_target_ref.kind == "Deployment"
                    && s.scale_target_ref.name == target
                    && s.scale_target_ref
                        .api_version
                        .as_deref()
                        .is_none_or(|v| v.starts_with("apps/"))
            })
        })
        .filter_map(|h| h.metadata.name.clone())
        .collect();
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "HorizontalPodAutoscaler {} scales Deployment {namespace}/{target}, whose pods canary-gate runs in {}/{}; point its scaleTargetRef at the Rollout instead (apiVersion: canarygate.dev/v1alpha1, kind: Rollout, name: {rollout}) and set the Rollout's spec.replicas — for KEDA, the ScaledObject's scaleTargetRef",
        names.join(", "),
        workload::name(target, Role::Stable),
        workload::name(target, Role::Canary),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::rollout::RolloutSpec;
    use crate::rollout::{Step, StepPlan};
    use serde_json::json;

    fn rollout(routed: bool) -> ValidatedRollout {
        let spec: RolloutSpec = serde_json::from_value(json!({
            "targetRef": {"name": "web"},
            "strategy": {"canary": {"steps": [{"setWeight": 5}, {"setWeight": 25}]}}
        }))
        .unwrap();
        let mut v = super::super::validate::validate(&spec).unwrap();
        v.routed = routed;
        v.plan = StepPlan::new(vec![
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
        v
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
        let routed = rollout(true);
        // A router: 25 % of 10 pods needs 3 canary pods; the stable keeps its 10.
        assert!(!ready(&routed, &pods(10, 10, 2), 25));
        assert!(ready(&routed, &pods(10, 0, 3), 25));
        assert_eq!(
            shortfall(&routed, &pods(10, 10, 0), 25),
            "web-canary: 0/3 available"
        );
        let ratio = rollout(false);
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
        let ratio = rollout(false);
        let status = RolloutStatus {
            phase: Some(RolloutPhase::Progressing),
            canary_revision: Some("bbb".into()),
            current_step_index: Some(1),
            canary_weight: Some(5),
            step_started_at: None,
            ..RolloutStatus::default()
        };
        assert_eq!(goal_weight(&ratio, &status), 25);
        // In force 5 % = 9 + 1; moving to 25 % = 7 + 3: run 9 + 3 until the canary's are up.
        assert_eq!(
            placement(&ratio, &status, 10),
            Replicas {
                stable: 9,
                canary: 3
            }
        );
        let in_force = RolloutStatus {
            canary_weight: Some(25),
            step_started_at: Some("2025-11-23T00:00:00Z".into()),
            ..status.clone()
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
        let promoting = RolloutStatus {
            phase: Some(RolloutPhase::Promoting),
            ..in_force.clone()
        };
        assert_eq!(
            placement(&ratio, &promoting, 10),
            Replicas {
                stable: 7,
                canary: 10
            }
        );
        let all_on_canary = RolloutStatus {
            canary_weight: Some(100),
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

    #[test]
    fn pods_of_another_revision_are_not_available() {
        let w: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web-canary"},
            "spec": {"replicas": 3, "selector": {},
                "template": {"metadata": {"labels": {"canarygate.dev/revision": "bbb"}}}},
            "status": {"replicas": 3, "updatedReplicas": 2, "availableReplicas": 3,
                "conditions": [
                    {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
                    {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "pods \"web-canary-1\" is forbidden: exceeded quota"},
                    {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}
        }))
        .unwrap();
        assert_eq!(available_pods(&w, "bbb"), 2);
        assert_eq!(available_pods(&w, "ccc"), 0);
        assert_eq!(
            deployment_problems(&w),
            vec![
                "MinimumReplicasUnavailable: Deployment does not have minimum availability."
                    .to_string(),
                "FailedCreate: pods \"web-canary-1\" is forbidden: exceeded quota".to_string()
            ]
        );
    }

    #[test]
    fn the_pods_own_reasons_are_counted_once_each() {
        let crashing: Pod = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "status": {"containerStatuses": [{"name": "web", "ready": false, "restartCount": 4, "image": "web:2", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}
        }))
        .unwrap();
        let unschedulable: Pod = serde_json::from_value(json!({
            "metadata": {"name": "b"},
            "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
        }))
        .unwrap();
        assert_eq!(
            pod_problems(&[crashing.clone(), crashing, unschedulable]),
            vec![
                "2 pods: CrashLoopBackOff (container web), last exit 1 Error: back-off 40s restarting failed container".to_string(),
                "1 pod: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.".to_string(),
            ]
        );
    }

    #[test]
    fn an_hpa_on_the_target_deployment_is_a_conflict_with_the_fix() {
        let hpa = |ns: &str, kind: &str, name: &str| -> HorizontalPodAutoscaler {
            serde_json::from_value(json!({
                "metadata": {"name": "web-hpa", "namespace": ns},
                "spec": {"maxReplicas": 10, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name}}
            }))
            .unwrap()
        };
        let on_deployment = hpa("shop", "Deployment", "web");
        let message = autoscaler_conflict([&on_deployment], "shop", "web", "web").unwrap();
        assert!(message.starts_with("HorizontalPodAutoscaler web-hpa scales Deployment shop/web"));
        assert!(message.contains("kind: Rollout, name: web"), "{message}");
        let on_rollout = hpa("shop", "Rollout", "web");
        let elsewhere = hpa("other", "Deployment", "web");
        assert_eq!(
            autoscaler_conflict([&on_rollout, &elsewhere], "shop", "web", "web"),
            None
        );
    }

    #[test]
    fn the_selector_is_the_targets_match_labels() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"tier": "front", "app": "web"}}, "template": {}}
        }))
        .unwrap();
        assert_eq!(selector_string(&d).as_deref(), Some("app=web,tier=front"));
    }
}
