//! Stage *apply*: writes what *build* returned and reports what the API server answered — the
//! stable and canary Deployments (`<target>-stable`, `<target>-canary`), the target scaled to
//! zero once the stable workload is available, and the router objects (each read, its desired
//! object made by its pure `traffic::Router` from what was read and the split, written, and the
//! split in force read back). Writes are server-side apply with the field manager
//! `canary-gate`, sent only when the object does not already hold the desired values. A human's
//! `undo` reverts the target's template here too.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::crd::Rollout;
use crate::traffic::{self, FIELD_MANAGER, ObjectRef, ROLLOUT_LABEL, Split, contains};

use super::build::{Desired, Traffic};
use super::error::{Conflict, guarded};
use super::observe::{self, Seen};

/// A workload, the target or a router object could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server refused or could not be reached.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The object changed since it was read.
    #[error("{0}")]
    Conflict(#[from] Conflict),
}

impl ApplyError {
    /// A stable short name (see [`super::error::ReconcileError::category`]).
    pub fn category(&self) -> &'static str {
        match self {
            ApplyError::Kube(_) => "kube_api",
            ApplyError::Conflict(_) => "conflict",
        }
    }
}

/// What the API server answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The target's pods were handed over (scaled to zero) now.
    pub handed_over: bool,
    /// The routers: what each carries, joined (`HTTPRoute web: 5% canary; …`), or the first
    /// problem as `(reason, message)` — a missing router object or CRD, a refusal; `None` when
    /// no router was written.
    pub routed: Option<Result<String, (&'static str, String)>>,
    /// What became of an `undo`'s revert of the target, when one was asked.
    pub reverted: Option<Reverted>,
}

/// Writes what *build* returned — the stable and canary workloads, the target's hand-over, then
/// each router in order (read, its desired object from what was read, applied when it differs,
/// the split in force read back), stopping at the first problem — and, for a human's `undo`,
/// reverts the target's template to `revert_to`.
///
/// # Errors
/// When the API server fails; a missing router object or CRD is in [`Applied::routed`].
pub async fn apply(
    client: &Client,
    rollout: &Rollout,
    seen: &Seen,
    desired: Option<&Desired>,
    revert_to: Option<&str>,
) -> Result<Applied, ApplyError> {
    let mut applied = Applied::default();
    if let Some(desired) = desired {
        applied.handed_over = desired.hand_over;
        applied.routed = write(client, rollout, seen, desired).await?;
    }
    if let Some(revision) = revert_to {
        applied.reverted = Some(revert(client, seen.target.clone(), revision).await?);
    }
    Ok(applied)
}

/// Writes the workloads, the hand-over and the routers; returns what the routers carry.
async fn write(
    client: &Client,
    rollout: &Rollout,
    seen: &Seen,
    desired: &Desired,
) -> Result<Option<Result<String, (&'static str, String)>>, ApplyError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let target = seen.target.name_any();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    if let Some(stable) = &desired.stable {
        write_workload(&deployments, seen.workloads.stable.as_ref(), stable).await?;
    }
    if let Some(canary) = &desired.canary {
        write_workload(&deployments, seen.workloads.canary.as_ref(), canary).await?;
    }
    if desired.hand_over {
        let body = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": target},
            "spec": {"replicas": 0}
        });
        deployments
            .patch(
                &target,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
    }
    let Traffic::Routed { routers, split } = &desired.traffic else {
        return Ok(None);
    };
    let mut summary = Vec::new();
    for router in routers {
        let answer = route(
            client,
            &namespace,
            &rollout.name_any(),
            &desired.owner,
            router.as_ref(),
            split,
        )
        .await?;
        match answer {
            Ok(text) => summary.push(text),
            // Later routers depend on earlier ones (Istio's routes on its subsets): stop.
            Err(problem) => return Ok(Some(Err(problem))),
        }
    }
    Ok(Some(Ok(summary.join("; "))))
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
    owner: &OwnerReference,
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
async fn revert(
    client: &Client,
    mut target: Deployment,
    revision: &str,
) -> Result<Reverted, ApplyError> {
    let name = target.name_any();
    let namespace = target.namespace().unwrap_or_default();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let template = observe::template_of_revision(client, &target, revision).await?;
    let Some(template) = template else {
        return Ok(Reverted::Impossible(format!(
            "no ReplicaSet of Deployment {namespace}/{name} has revision {revision} any more; revert the Deployment (e.g. in Git)"
        )));
    };
    if let Some(spec) = target.spec.as_mut() {
        spec.template = template;
    }
    // The target may come from the watch cache, which keeps only canary-gate's own entries: a
    // non-empty list in an update replaces the server's, an absent one keeps them.
    target.metadata.managed_fields = None;
    let resource_version = target.resource_version();
    deployments
        .replace(&name, &PostParams::default(), &target)
        .await
        .map_err(guarded::<ApplyError>(
            format!("Deployment {namespace}/{name}"),
            resource_version,
        ))?;
    Ok(Reverted::Done {
        deployment: format!("{namespace}/{name}"),
        revision: revision.to_string(),
    })
}

/// What became of an `undo`'s revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reverted {
    /// The Deployment is back on the revision.
    Done {
        /// `namespace/name`.
        deployment: String,
        /// The revision it runs again.
        revision: String,
    },
    /// It cannot be done: why.
    Impossible(String),
}
