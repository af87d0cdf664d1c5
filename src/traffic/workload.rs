//! The stable and canary workloads: two Deployments canary-gate owns, `<target>-stable` and
//! `<target>-canary`, built from the target Deployment (which stays yours and is scaled to zero
//! once the stable workload is available).
//!
//! Their pods carry the target's labels plus `canarygate.dev/version: stable|canary` and
//! `canarygate.dev/revision: <hash>`, which analysis templates and Services select on. The stable
//! workload keeps the stable revision's template; on promotion it takes the new one.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

use super::{REVISION_LABEL, ROLLOUT_LABEL, VERSION_LABEL};

/// Which workload, and a workload's name: defined with the pure rollout core, which names the
/// workloads in its messages.
pub use crate::rollout::pods::{Role, workload_name as name};

/// The server-side apply body of a workload: `template` (the revision's pod template, as in the
/// target) labelled for `role` and `revision`, with `replicas` pods; the selector, strategy and
/// rollout settings come from the target.
pub fn desired(
    target: &Deployment,
    rollout: &str,
    owner: &OwnerReference,
    role: Role,
    template: &PodTemplateSpec,
    revision: &str,
    replicas: i32,
) -> Value {
    let spec = target.spec.clone().unwrap_or_default();
    let mut template = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    let labels = template
        .as_object_mut()
        .map(|t| t.entry("metadata").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
        .map(|m| m.entry("labels").or_insert_with(|| json!({})));
    if let Some(Value::Object(labels)) = labels {
        labels.insert(VERSION_LABEL.into(), json!(role.as_str()));
        labels.insert(REVISION_LABEL.into(), json!(revision));
    }
    let mut selector = serde_json::to_value(&spec.selector).unwrap_or_else(|_| json!({}));
    if let Some(s) = selector.as_object_mut() {
        let match_labels = s.entry("matchLabels").or_insert_with(|| json!({}));
        if let Some(m) = match_labels.as_object_mut() {
            m.insert(VERSION_LABEL.into(), json!(role.as_str()));
        }
    }
    let mut body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name(&target.metadata.name.clone().unwrap_or_default(), role),
            "labels": {ROLLOUT_LABEL: rollout, VERSION_LABEL: role.as_str()},
            "ownerReferences": [owner],
        },
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": template,
        }
    });
    let spec_out = &mut body["spec"];
    if let Some(strategy) = &spec.strategy {
        spec_out["strategy"] = serde_json::to_value(strategy).unwrap_or(Value::Null);
    }
    if let Some(seconds) = spec.min_ready_seconds {
        spec_out["minReadySeconds"] = json!(seconds);
    }
    if let Some(seconds) = spec.progress_deadline_seconds {
        spec_out["progressDeadlineSeconds"] = json!(seconds);
    }
    body
}

/// The revision a workload's pod template carries.
pub fn revision_of(workload: &Deployment) -> Option<&str> {
    workload
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

/// The workload's pod template as the target had it (canary-gate's labels removed).
pub fn template_of(workload: &Deployment) -> Option<PodTemplateSpec> {
    let mut template = workload.spec.as_ref()?.template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(VERSION_LABEL);
        labels.remove(REVISION_LABEL);
    }
    Some(template)
}

/// Whether a workload runs `revision` on all its pods, available: the Deployment controller has
/// seen the latest spec and every desired pod is updated and available.
pub fn rolled_out(workload: &Deployment, revision: &str) -> bool {
    if revision_of(workload) != Some(revision) {
        return false;
    }
    let want = workload.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &workload.status else {
        return want == 0;
    };
    let seen = status.observed_generation.unwrap_or(0) >= workload.metadata.generation.unwrap_or(0);
    seen && status.updated_replicas.unwrap_or(0) >= want
        && status.available_replicas.unwrap_or(0) >= want
        && status.replicas.unwrap_or(0) <= want
}

/// `available/desired` pods of a workload, for messages.
pub fn availability(workload: &Deployment) -> String {
    let want = workload.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = workload
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    format!("{available}/{want} available")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "minReadySeconds": 5,
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "web:2"}]}}
            }
        }))
        .unwrap()
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "canarygate.dev/v1alpha1".into(),
            kind: "Rollout".into(),
            name: "web".into(),
            uid: "u-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn a_workload_is_the_target_labelled_for_its_role_and_revision() {
        let t = target();
        let template = t.spec.clone().unwrap().template;
        let body = desired(&t, "web", &owner(), Role::Canary, &template, "bbb", 1);
        assert_eq!(
            body,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {
                    "name": "web-canary",
                    "labels": {ROLLOUT_LABEL: "web", VERSION_LABEL: "canary"},
                    "ownerReferences": [{"apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
                        "name": "web", "uid": "u-1", "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web", VERSION_LABEL: "canary"}},
                    "template": {
                        "metadata": {"labels": {"app": "web", VERSION_LABEL: "canary", REVISION_LABEL: "bbb"}},
                        "spec": {"containers": [{"name": "web", "image": "web:2"}]}
                    },
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                    "minReadySeconds": 5
                }
            })
        );
        // Read back: the revision, and the template as the target had it.
        let workload: Deployment = serde_json::from_value(body).unwrap();
        assert_eq!(revision_of(&workload), Some("bbb"));
        assert_eq!(template_of(&workload), Some(template));
    }

    #[test]
    fn rolled_out_needs_the_revision_and_every_pod_updated_and_available() {
        let t = target();
        let template = t.spec.clone().unwrap().template;
        let mut w: Deployment = serde_json::from_value(desired(
            &t,
            "web",
            &owner(),
            Role::Stable,
            &template,
            "bbb",
            2,
        ))
        .unwrap();
        w.metadata.generation = Some(3);
        assert!(!rolled_out(&w, "bbb"), "no status yet");
        w.status = serde_json::from_value(json!({
            "observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2
        }))
        .unwrap();
        assert!(!rolled_out(&w, "bbb"), "an old pod is still there");
        w.status.as_mut().unwrap().replicas = Some(2);
        assert!(rolled_out(&w, "bbb"));
        assert!(!rolled_out(&w, "aaa"), "another revision");
        w.status.as_mut().unwrap().observed_generation = Some(2);
        assert!(!rolled_out(&w, "bbb"), "the latest spec is not seen yet");
        assert_eq!(availability(&w), "2/2 available");
    }
}
