//! Stage *observe*: what the cluster says — the target Deployment and its revision, the stable
//! and canary workloads, a pending human action; the pods each version has available (with,
//! once at a progress deadline, the pods' own reasons for not being available) and an autoscaler
//! on the target; and, when only they still have it, the stable revision's pod template from the
//! target's ReplicaSets.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::crd::Rollout;
use crate::crd::rollout::RolloutStatus;
use crate::rollout::lifecycle::{self, Side};
use crate::rollout::{ACTION_ANNOTATION, Action, UnknownAction};
use crate::traffic::workload::{self, Role};

use super::availability::{self, Availability};
use super::build::StableTemplate;
use super::deployment_cache::DeploymentCache;
pub use super::observed::{Seen, Workloads, revision};
use super::reconcile::Context;
use super::status::state_of;
use super::validate::ValidatedRollout;

/// Reads the target (from `targets` once it has synced and holds it, else from the API server,
/// which then keeps it), its workloads (from `cache` once it has synced, else from the API
/// server) and a pending action; `None` when the target does not exist.
///
/// # Errors
/// When the API server cannot be reached, or the action annotation names no action.
pub async fn observe(
    client: &Client,
    cache: Option<&DeploymentCache>,
    targets: Option<&DeploymentCache>,
    rollout: &Rollout,
    validated: &ValidatedRollout,
    status: &RolloutStatus,
) -> Result<Option<Seen>, ObserveError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let targets = targets.filter(|c| c.synced());
    let cached = targets.and_then(|c| c.get(&namespace, &validated.target));
    let target = match cached {
        Some(target) => target,
        None => {
            let Some(target) = target(client, &namespace, &validated.target).await? else {
                return Ok(None);
            };
            if let Some(cache) = targets {
                cache.fill(&target);
            }
            target
        }
    };
    let workloads = match cache.filter(|c| c.synced()) {
        Some(cache) => Workloads {
            stable: cache.get(&namespace, &workload::name(&validated.target, Role::Stable)),
            canary: cache.get(&namespace, &workload::name(&validated.target, Role::Canary)),
        },
        None => workloads(client, &namespace, &validated.target).await?,
    };
    let action = action(rollout, status.handled_action.as_deref())?;
    Ok(Some(Seen {
        revision: revision(&target.spec.clone().unwrap_or_default().template),
        total: availability::total(
            validated.replicas,
            &target,
            availability::replicas_are_ours(&target),
            status.replicas,
        ),
        target,
        workloads,
        action,
    }))
}

/// The pods each version has available (with, once the progress deadline of a wait for pods
/// has passed, the pods' own reasons), and an autoscaler that scales the target instead of the
/// Rollout (from the controller's cache).
///
/// # Errors
/// When the pods cannot be listed.
pub async fn pods(
    ctx: &Context,
    rollout: &Rollout,
    validated: &ValidatedRollout,
    status: &RolloutStatus,
    seen: &Seen,
    now: f64,
) -> Result<(Availability, Option<String>), ObserveError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let workloads = &seen.workloads;
    let mut pods = availability::of(
        seen.total,
        workloads.stable.as_ref(),
        status.stable_revision.as_deref(),
        workloads.canary.as_ref(),
        status
            .canary_revision
            .as_deref()
            .filter(|c| *c == seen.revision.as_str()),
    );
    let waiting = status.waiting_since.is_some();
    if waiting
        && let Some(side) = lifecycle::deadline_due(&validated.lifecycle, &state_of(status), now)
    {
        // Once, when the deadline passes: the pods' own reasons for the message.
        let (workload, problems) = match side {
            Side::Canary => (workloads.canary.as_ref(), &mut pods.canary_problems),
            Side::Stable => (workloads.stable.as_ref(), &mut pods.stable_problems),
        };
        problems.extend(pod_reasons(&ctx.client, &namespace, workload).await?);
    }
    let autoscaler_conflict = ctx.autoscalers.as_ref().and_then(|store| {
        // Only this namespace's autoscalers are looked at (and cloned).
        let here = store.state_filter(|h| h.metadata.namespace.as_deref() == Some(&namespace));
        availability::autoscaler_conflict(
            here.iter().map(|h| h.as_ref()),
            &namespace,
            &validated.target,
            &rollout.name_any(),
        )
    });
    Ok((pods, autoscaler_conflict))
}

/// The stable workload's pod template and revision, as [`StableTemplate`] says where it is: the
/// target's ReplicaSets are read only when they are the last place it can be.
///
/// # Errors
/// When the ReplicaSets cannot be listed.
pub async fn stable_template(
    client: &Client,
    target: &Deployment,
    source: Option<StableTemplate>,
) -> Result<Option<(PodTemplateSpec, String)>, ObserveError> {
    Ok(match source {
        Some(StableTemplate::Known(template, revision)) => Some((*template, revision)),
        Some(StableTemplate::InHistory(revision)) => {
            template_of_revision(client, target, &revision)
                .await?
                .map(|t| (t, revision))
        }
        Some(StableTemplate::Unreadable) | None => None,
    })
}

/// The pod template of revision `wanted` from the ReplicaSets a Deployment owns (they keep its
/// history, as `kubectl rollout undo` uses it).
///
/// # Errors
/// When the API server fails.
pub async fn template_of_revision(
    client: &Client,
    target: &Deployment,
    wanted: &str,
) -> Result<Option<PodTemplateSpec>, kube::Error> {
    let name = target.name_any();
    let namespace = target.namespace().unwrap_or_default();
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let template = replicasets
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Deployment" && o.name == name)
        })
        .filter_map(|rs| rs.spec.and_then(|s| s.template))
        .map(|mut t| {
            if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
                labels.remove("pod-template-hash");
            }
            t
        })
        .find(|t| revision(t) == wanted);
    Ok(template)
}

/// The cluster could not be read, or what it holds cannot be acted on.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The API server refused or could not be reached.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The action annotation names no action.
    #[error("{0}")]
    InvalidAction(#[from] UnknownAction),
}

impl ObserveError {
    /// A stable short name (see [`super::error::ReconcileError::category`]).
    pub fn category(&self) -> &'static str {
        match self {
            ObserveError::Kube(_) => "kube_api",
            ObserveError::InvalidAction(_) => "invalid_action",
        }
    }
}

/// Reads both workloads of `target`.
///
/// # Errors
/// When the API server cannot be reached.
pub async fn workloads(
    client: &Client,
    namespace: &str,
    target: &str,
) -> Result<Workloads, ObserveError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    Ok(Workloads {
        stable: api.get_opt(&workload::name(target, Role::Stable)).await?,
        canary: api.get_opt(&workload::name(target, Role::Canary)).await?,
    })
}

/// The target Deployment; `None` when it does not exist.
///
/// # Errors
/// When the API server cannot be reached.
pub async fn target(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Deployment>, ObserveError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    Ok(deployments.get_opt(name).await?)
}

/// The pods' own reasons (CrashLoopBackOff, ImagePullBackOff, Unschedulable …) why a workload's
/// pods are not available: its pods, listed by its selector.
///
/// # Errors
/// When the API server cannot be reached.
pub async fn pod_reasons(
    client: &Client,
    namespace: &str,
    workload: Option<&Deployment>,
) -> Result<Vec<String>, ObserveError> {
    let Some(selector) = workload.and_then(availability::selector_string) else {
        return Ok(Vec::new());
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(availability::pod_problems(&list.items))
}

/// The pending action on a Rollout: `(action, annotation value)` unless that value was handled.
///
/// # Errors
/// When the annotation holds an unknown action (the message lists the valid ones).
pub fn action(
    rollout: &Rollout,
    handled: Option<&str>,
) -> Result<Option<(Action, String)>, ObserveError> {
    let Some(value) = rollout.annotations().get(ACTION_ANNOTATION) else {
        return Ok(None);
    };
    if handled == Some(value.as_str()) {
        return Ok(None);
    }
    let action = Action::parse(value)?;
    Ok(Some((action, value.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_is_taken_once_per_value_and_unknown_ones_are_explained() {
        let mut r: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "annotations": {ACTION_ANNOTATION: "promote@1"}},
            "spec": {"targetRef": {"name": "web"}, "strategy": {}}
        }))
        .unwrap();
        assert_eq!(
            action(&r, None).unwrap(),
            Some((Action::Promote, "promote@1".into()))
        );
        assert_eq!(action(&r, Some("promote@1")).unwrap(), None);
        r.annotations_mut()
            .insert(ACTION_ANNOTATION.into(), "promot".into());
        assert!(
            action(&r, None)
                .unwrap_err()
                .to_string()
                .contains("use promote, promote-full, abort, retry or undo")
        );
    }
}
