//! Stage *apply*: make the workloads and the traffic routers say what the decided status says —
//! the stable and canary Deployments (`<target>-stable`, `<target>-canary`), the target scaled to
//! zero once the stable workload is available, and the router objects. Writes are server-side
//! apply with the field manager `canary-gate`, sent only when the object does not already hold
//! the desired values, and the split in force is read back into the status.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::crd::Rollout;
use crate::crd::rollout::{RolloutPhase, RolloutStatus};
use crate::traffic::workload::{self, Role};
use crate::traffic::{self, FIELD_MANAGER, ObjectRef, ROLLOUT_LABEL, Split, contains};

use super::availability;
use super::error::{Conflict, guarded};
use super::observe::{self, Workloads};
use super::status::{Note, TRAFFIC_CONDITION, canary_is_live, set_condition, state_of};
use super::validate::{StrategyKind, ValidatedRollout};
use crate::rollout::pods;
use crate::time::parse_rfc3339;

/// A workload, the target or a router object could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server refused or could not be reached.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The object changed since it was read.
    #[error("{0}")]
    Conflict(#[from] Conflict),
    /// The Rollout has no namespace, name or uid, so nothing can be owned by it (an object read
    /// from the API server always has them).
    #[error("the Rollout has no namespace, name or uid to own its workloads")]
    Unidentified,
}

impl ApplyError {
    /// A stable short name (see [`super::error::ReconcileError::category`]).
    pub fn category(&self) -> &'static str {
        match self {
            ApplyError::Kube(_) => "kube_api",
            ApplyError::Conflict(_) => "conflict",
            ApplyError::Unidentified => "no_namespace",
        }
    }
}

/// What the target Deployment says.
pub struct Target<'a> {
    /// The Deployment.
    pub deployment: &'a Deployment,
    /// Its template's revision.
    pub revision: &'a str,
    /// Pods of the application in all (see `availability::total`).
    pub total: i32,
}

/// Applies workloads and routers for the decided `status` (updated in place: replicas, selector,
/// traffic, the `TrafficRouted` condition). Returns the Events to record.
///
/// # Errors
/// When the API server fails; a missing router object or CRD is a condition, not an error.
pub async fn apply(
    client: &Client,
    rollout: &Rollout,
    validated: &ValidatedRollout,
    target: &Target<'_>,
    workloads: &Workloads,
    status: &mut RolloutStatus,
    now: f64,
) -> Result<Vec<Note>, ApplyError> {
    let mut notes = Vec::new();
    let Some(stable_revision) = status.stable_revision.clone() else {
        return Ok(notes);
    };
    let namespace = rollout.namespace().ok_or(ApplyError::Unidentified)?;
    let rollout_name = rollout.name_any();
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or(ApplyError::Unidentified)?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let target_spec = target.deployment.spec.clone().unwrap_or_default();

    let total = target.total;
    status.replicas = Some(total);
    status.selector = availability::selector_string(target.deployment);
    let phase = status.phase;
    let promoting = phase == Some(RolloutPhase::Promoting);
    let live = canary_is_live(status);
    // The weight in force at the routers; the pods also cover the weight being moved to.
    let weight = status.canary_weight.unwrap_or(0);
    let all_on_canary = promoting && weight == 100;
    let split_pods = pods::placement(&validated.lifecycle, &state_of(status), total);
    // A router may still send in-flight requests to the canary: it keeps its pods until the
    // scale-down time. With the replica ratio the pods are the traffic: they go at once.
    let keep_canary = !live
        && (validated.lifecycle.routed || validated.lifecycle.kind == StrategyKind::BlueGreen)
        && status
            .scale_down_at
            .as_deref()
            .and_then(parse_rfc3339)
            .is_some_and(|at| at > now);

    // The stable workload: the stable revision's template, or the new one while promoting.
    let canary_revision = status
        .canary_revision
        .clone()
        .filter(|c| c == target.revision);
    let target_template = target_spec.template.clone();
    // Blue-green keeps the old pods as they are for a while after the switch (switch-back).
    let switch_back_window = validated.lifecycle.kind == StrategyKind::BlueGreen
        && promoting
        && status
            .scale_down_at
            .as_deref()
            .and_then(parse_rfc3339)
            .is_some_and(|at| at > now);
    let stable_template: Option<(PodTemplateSpec, String)> = if all_on_canary
        && !switch_back_window
        && let Some(c) = &canary_revision
    {
        Some((target_template.clone(), c.clone()))
    } else if let Some(s) = workloads
        .stable
        .as_ref()
        .filter(|s| workload::revision_of(s) == Some(stable_revision.as_str()))
    {
        workload::template_of(s).map(|t| (t, stable_revision.clone()))
    } else if target.revision == stable_revision {
        Some((target_template.clone(), stable_revision.clone()))
    } else {
        template_of_revision(client, target.deployment, &stable_revision)
            .await?
            .map(|t| (t, stable_revision.clone()))
    };
    let stable_pods = split_pods.stable;
    match &stable_template {
        Some((template, revision)) => {
            let desired = workload::desired(
                target.deployment,
                &rollout_name,
                &owner,
                Role::Stable,
                template,
                revision,
                stable_pods,
            );
            write_workload(&deployments, workloads.stable.as_ref(), &desired).await?;
        }
        None => notes.push(Note {
            reason: "StableTemplateMissing",
            message: format!(
                "the template of stable revision {stable_revision} is neither in {} nor in a ReplicaSet of Deployment {}; revert the Deployment to it or let the new revision through",
                workload::name(&validated.target, Role::Stable),
                validated.target
            ),
            warning: true,
        }),
    }

    // The canary workload: the target's template while it is rolled out, else scaled away.
    let canary_desired = match (&canary_revision, &workloads.canary) {
        (Some(revision), _) if live => Some(workload::desired(
            target.deployment,
            &rollout_name,
            &owner,
            Role::Canary,
            &target_template,
            revision,
            split_pods.canary,
        )),
        (_, Some(existing)) => {
            let have = existing.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let pods = if keep_canary { have } else { 0 };
            match (
                workload::template_of(existing),
                workload::revision_of(existing),
            ) {
                (Some(t), Some(r)) => Some(workload::desired(
                    target.deployment,
                    &rollout_name,
                    &owner,
                    Role::Canary,
                    &t,
                    r,
                    pods,
                )),
                _ => None,
            }
        }
        (None, None) | (Some(_), None) => None,
    };
    if let Some(desired) = &canary_desired {
        write_workload(&deployments, workloads.canary.as_ref(), desired).await?;
    }

    // The target hands its pods over once the stable workload is available.
    let stable_available = workloads.stable.as_ref().is_some_and(|s| {
        workload::revision_of(s).is_some_and(|revision| workload::rolled_out(s, revision))
    });
    let mut adopted = target_spec.replicas == Some(0);
    if !adopted && stable_available {
        let body = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": validated.target},
            "spec": {"replicas": 0}
        });
        deployments
            .patch(
                &validated.target,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        notes.push(Note {
            reason: "WorkloadAdopted",
            message: format!(
                "{} runs revision {stable_revision} with {total} pods; Deployment {} scaled to 0 (its replicas are canary-gate's to place)",
                workload::name(&validated.target, Role::Stable),
                validated.target
            ),
            warning: false,
        });
        adopted = true;
    }

    // The routers, once the stable workload serves.
    let routers = traffic::routers(&rollout.spec);
    if routers.is_empty() {
        status.traffic = Some(format!(
            "replica ratio: {} stable, {} canary pods",
            stable_pods,
            canary_desired
                .as_ref()
                .and_then(|d| d.pointer("/spec/replicas"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        ));
        return Ok(notes);
    }
    if !adopted {
        status.traffic = None;
        set_condition(
            &mut status.conditions,
            TRAFFIC_CONDITION,
            false,
            "WaitingForStable",
            &format!(
                "routers wait until {} is available",
                workload::name(&validated.target, Role::Stable)
            ),
            now,
        );
        return Ok(notes);
    }
    let split = Split {
        weight,
        // A/B matches send requests to the canary whatever the weight: only once it has served
        // a step (its pods were available for one), never to a canary still coming up.
        matches: if live && !promoting && !status.step_history.is_empty() {
            rollout
                .spec
                .traffic_routing
                .as_ref()
                .map(|r| r.matches.clone())
                .unwrap_or_default()
        } else {
            Vec::new()
        },
        stable_revision: stable_revision.clone(),
        canary_revision: status.canary_revision.clone(),
    };
    let mut summary = Vec::new();
    let mut problem: Option<(&'static str, String)> = None;
    for router in &routers {
        match route(
            client,
            &namespace,
            &rollout_name,
            &owner,
            router.as_ref(),
            &split,
        )
        .await?
        {
            Ok(text) => summary.push(text),
            Err((reason, message)) => {
                // Later routers depend on earlier ones (Istio's routes on its subsets): stop.
                problem = Some((reason, message));
                break;
            }
        }
    }
    match problem {
        Some((reason, message)) => {
            if status
                .conditions
                .iter()
                .find(|c| c.type_ == TRAFFIC_CONDITION)
                .is_none_or(|c| c.reason != reason || c.message != message)
            {
                notes.push(Note {
                    reason,
                    message: message.clone(),
                    warning: true,
                });
            }
            set_condition(
                &mut status.conditions,
                TRAFFIC_CONDITION,
                false,
                reason,
                &message,
                now,
            );
            status.traffic = None;
        }
        None => {
            let text = summary.join("; ");
            set_condition(
                &mut status.conditions,
                TRAFFIC_CONDITION,
                true,
                "Applied",
                &text,
                now,
            );
            status.traffic = Some(text);
        }
    }
    Ok(notes)
}

/// Whether canary-gate's field manager owns the target's `spec.replicas` (it scaled it to zero).
pub fn replicas_are_ours(target: &Deployment) -> bool {
    target.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER)
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
    })
}

/// Server-side applies a workload unless it already holds the desired values.
async fn write_workload(
    deployments: &Api<Deployment>,
    current: Option<&Deployment>,
    desired: &Value,
) -> Result<(), ApplyError> {
    let current = current.map(|c| serde_json::to_value(c).unwrap_or(Value::Null));
    if current.as_ref().is_some_and(|c| contains(c, desired)) {
        return Ok(());
    }
    let name = desired
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    deployments
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(desired),
        )
        .await?;
    Ok(())
}

fn api_for(client: &Client, namespace: &str, object: &ObjectRef) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: object.group.to_string(),
        version: object.version.to_string(),
        api_version: object.api_version(),
        kind: object.kind.to_string(),
        plural: object.plural.to_string(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Reads an object; `Err((reason, message))` when it or its kind is missing.
async fn read(
    api: &Api<DynamicObject>,
    namespace: &str,
    object: &ObjectRef,
) -> Result<Result<Option<Value>, (&'static str, String)>, ApplyError> {
    match api.get(&object.name).await {
        Ok(found) => Ok(Ok(Some(serde_json::to_value(found).unwrap_or(Value::Null)))),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let named = s.details.as_ref().is_some_and(|d| d.name == object.name);
            if named {
                return Ok(Ok(None));
            }
            Ok(Err((
                "RouterNotInstalled",
                match object.crd_name() {
                    Some(crd) => format!(
                        "the API server does not serve {} ({}); install the CRD {crd}",
                        object.kind,
                        object.api_version()
                    ),
                    None => format!(
                        "the API server does not serve {} ({})",
                        object.kind,
                        object.api_version()
                    ),
                },
            )))
        }
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(Err((
            "RouterForbidden",
            format!(
                "canary-gate may not read {object} in namespace {namespace}: {}; grant it in the controller's ClusterRole",
                s.message
            ),
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Puts the split in force through one router; `Ok(Err(..))` is a condition for the user.
async fn route(
    client: &Client,
    namespace: &str,
    rollout: &str,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    router: &dyn traffic::Router,
    split: &Split,
) -> Result<Result<String, (&'static str, String)>, ApplyError> {
    let source = router.reads();
    let api = api_for(client, namespace, &source);
    let read_value = match read(&api, namespace, &source).await? {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Ok(Err((
                "RouterObjectMissing",
                format!(
                    "{source} not found in namespace {namespace}; create it or fix spec.trafficRouting"
                ),
            )));
        }
        Err(problem) => return Ok(Err(problem)),
    };
    let mut desired = match router.desired(&read_value, split) {
        Ok(d) => d,
        Err(e) => return Ok(Err(("RouterMisconfigured", e.to_string()))),
    };
    let written = router.writes();
    let current = if written == source {
        Some(read_value)
    } else {
        match read(&api, namespace, &written).await? {
            Ok(found) => found,
            Err(problem) => return Ok(Err(problem)),
        }
    };
    if router.creates()
        && let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("ownerReferences".into(), json!([owner]));
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(ROLLOUT_LABEL.into(), json!(rollout));
        }
    }
    let in_force = if current.as_ref().is_some_and(|c| contains(c, &desired)) {
        current.as_ref().and_then(|c| router.in_force(c))
    } else {
        let applied = api
            .patch(
                &written.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await;
        match applied {
            Ok(obj) => router.in_force(&serde_json::to_value(obj).unwrap_or(Value::Null)),
            Err(kube::Error::Api(s)) if s.code == 403 => {
                return Ok(Err((
                    "RouterForbidden",
                    format!(
                        "canary-gate may not change {written} in namespace {namespace}: {}; grant patch in the controller's ClusterRole",
                        s.message
                    ),
                )));
            }
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
                return Ok(Err((
                    "RouterRejected",
                    format!("the API server rejected {written}: {}", s.message),
                )));
            }
            Err(e) => return Err(e.into()),
        }
    };
    Ok(Ok(match in_force {
        Some(w) => format!("{written}: {w}% canary"),
        None => match traffic::service_selector::selected_revision(&desired) {
            Some(revision) => format!("{written}: revision {revision}"),
            None => format!("{written}: applied"),
        },
    }))
}

/// A human's `undo`: puts the template of `revision` back on the Deployment, taken from the
/// ReplicaSets it owns (as `kubectl rollout undo` does). The replace carries the resourceVersion,
/// so a concurrent change fails with a conflict and the next reconcile tries again. `Err`: why it
/// is impossible.
///
/// # Errors
/// When the API server refuses (a [`Conflict`] when the Deployment changed since it was read).
pub async fn revert(
    client: &Client,
    mut target: Deployment,
    revision: &str,
) -> Result<Result<Note, String>, ApplyError> {
    let name = target.name_any();
    let namespace = target.namespace().unwrap_or_default();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let template = template_of_revision(client, &target, revision).await?;
    let Some(template) = template else {
        return Ok(Err(format!(
            "no ReplicaSet of Deployment {namespace}/{name} has revision {revision} any more; revert the Deployment (e.g. in Git)"
        )));
    };
    if let Some(spec) = target.spec.as_mut() {
        spec.template = template;
    }
    let resource_version = target.resource_version();
    deployments
        .replace(&name, &PostParams::default(), &target)
        .await
        .map_err(guarded::<ApplyError>(
            format!("Deployment {namespace}/{name}"),
            resource_version,
        ))?;
    Ok(Ok(Note {
        reason: "DeploymentReverted",
        message: format!("Deployment {namespace}/{name} is back on revision {revision}"),
        warning: false,
    }))
}

/// The pod template of `revision` from the ReplicaSets a Deployment owns (they keep its
/// history, as `kubectl rollout undo` uses it).
///
/// # Errors
/// When the API server fails.
pub async fn template_of_revision(
    client: &Client,
    target: &Deployment,
    revision: &str,
) -> Result<Option<PodTemplateSpec>, ApplyError> {
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
        .find(|t| observe::revision(t) == revision);
    Ok(template)
}
