//! The pods each version has, read from the workloads (pure functions of what was read): how
//! many are available (the workloads' Deployment status is the only source of truth for
//! "available"), why some are missing (their conditions and, once, the pods themselves), the
//! pods in all, the selector for the scale subresource, and an autoscaler that scales the target
//! instead of the Rollout. What a weight needs is the pure [`crate::rollout::pods`].

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;

use crate::traffic::workload::{self, Role};

pub use crate::rollout::pods::Availability;

/// Reads the counts from the workloads: pods of `canary_revision` in the canary workload and
/// of `stable_revision` in the stable one (during a promotion the stable workload takes the
/// new revision; its count is then that revision's).
pub fn of(
    total: i32,
    stable: Option<&Deployment>,
    stable_revision: Option<&str>,
    canary: Option<&Deployment>,
    canary_revision: Option<&str>,
) -> Availability {
    let count = |w: Option<&Deployment>, revision: Option<&str>| match (w, revision) {
        (Some(w), Some(r)) => available_pods(w, r),
        _ => 0,
    };
    Availability {
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

/// Whether canary-gate's field manager owns the target's `spec.replicas` (it scaled it to zero).
pub fn replicas_are_ours(target: &Deployment) -> bool {
    target.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(crate::traffic::FIELD_MANAGER)
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
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
    use serde_json::json;

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
