//! The finalizer that lets a deleted Rollout give the target Deployment its pods back before its
//! workloads are garbage-collected.
//!
//! Hand-rolled rather than `kube::runtime::finalizer`: that helper guards the addition with a
//! `test` of the finalizer list (a stale copy of the Rollout would get the finalizer and go on)
//! and ends the reconcile after adding it, waiting for the watch to start the next one. Here
//! the addition is guarded by the resourceVersion, so a reconcile of a stale copy writes nothing
//! and fails as a conflict (tests/apiserver_conflicts.rs), and the first reconcile goes on to
//! adopt the target at once.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::crd::Rollout;
use crate::crd::rollout::RolloutStatus;

use super::error::{Conflict, guarded};
use super::events::EventWriter;
use super::report;
use super::status::Note;

/// The finalizer's name.
pub const FINALIZER: &str = "canarygate.dev/release";

/// Adding or removing the finalizer, or handing the pods back, failed.
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError {
    /// The API server refused or could not be reached.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The Rollout changed since it was read.
    #[error("{0}")]
    Conflict(#[from] Conflict),
}

impl FinalizerError {
    /// A stable short name (see [`super::error::ReconcileError::category`]).
    pub fn category(&self) -> &'static str {
        match self {
            FinalizerError::Kube(_) => "kube_api",
            FinalizerError::Conflict(_) => "conflict",
        }
    }
}

/// Whether the Rollout carries [`FINALIZER`].
pub fn present(rollout: &Rollout) -> bool {
    rollout.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds [`FINALIZER`] unless it is there: a JSON patch guarded by the resourceVersion, so a
/// concurrent change fails and is retried rather than lost.
///
/// # Errors
/// When the API server refuses (a [`Conflict`] when the Rollout changed since it was read).
pub async fn ensure(client: &Client, rollout: &Rollout) -> Result<(), FinalizerError> {
    if present(rollout) {
        return Ok(());
    }
    let add = if rollout.metadata.finalizers.is_none() {
        add(&["metadata", "finalizers"], json!([FINALIZER]))
    } else {
        add(&["metadata", "finalizers", "-"], json!(FINALIZER))
    };
    let patch = vec![
        test(
            &["metadata", "resourceVersion"],
            json!(rollout.resource_version()),
        ),
        add,
    ];
    patch_rollout(client, rollout, patch).await
}

/// The Rollout is being deleted: scale the target Deployment back to the pods canary-gate held
/// for it (its workloads are garbage-collected with the Rollout), say so in an Event, then drop
/// the finalizer. Nothing to do without the finalizer.
///
/// # Errors
/// When the API server refuses (the finalizer then stays, and the next reconcile tries again).
pub async fn release(
    client: &Client,
    events: &EventWriter,
    rollout: &Rollout,
    status: &RolloutStatus,
) -> Result<(), FinalizerError> {
    if !present(rollout) {
        return Ok(());
    }
    let namespace = rollout.namespace().unwrap_or_default();
    let target = &rollout.spec.target_ref.name;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    if let (Some(replicas), Some(current)) = (status.replicas, deployments.get_opt(target).await?)
        && current.spec.as_ref().and_then(|s| s.replicas) == Some(0)
    {
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": target}, "spec": {"replicas": replicas}});
        deployments
            .patch(
                target,
                &PatchParams::apply(crate::traffic::FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        let note = Note {
            reason: "Released",
            message: format!(
                "Rollout deleted: Deployment {namespace}/{target} runs its own {replicas} pods again"
            ),
            warning: false,
        };
        report::publish(events, rollout, &[note]).await;
    }
    let index = rollout
        .finalizers()
        .iter()
        .position(|f| f == FINALIZER)
        .unwrap_or_default()
        .to_string();
    let at = ["metadata", "finalizers", index.as_str()];
    let patch = vec![
        test(&at, json!(FINALIZER)),
        PatchOperation::Remove(RemoveOperation {
            path: PointerBuf::from_tokens(at.iter().copied()),
        }),
    ];
    patch_rollout(client, rollout, patch).await
}

fn test(path: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: PointerBuf::from_tokens(path.iter().copied()),
        value,
    })
}

fn add(path: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(path.iter().copied()),
        value,
    })
}

async fn patch_rollout(
    client: &Client,
    rollout: &Rollout,
    operations: Vec<PatchOperation>,
) -> Result<(), FinalizerError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let api: Api<Rollout> = Api::namespaced(client.clone(), &namespace);
    api.patch(
        &rollout.name_any(),
        &PatchParams::default(),
        &Patch::<()>::Json(json_patch::Patch(operations)),
    )
    .await
    .map_err(guarded::<FinalizerError>(
        format!("Rollout {namespace}/{}", rollout.name_any()),
        rollout.resource_version(),
    ))?;
    Ok(())
}
