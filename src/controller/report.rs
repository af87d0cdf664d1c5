//! Stage *report*: the Rollout's status, written by server-side apply with its own field manager
//! and only when it changed, and the Events that go with it (a failure to record an Event is
//! logged, never undoes a decision).

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::crd::Rollout;
use crate::crd::rollout::RolloutStatus;

use super::events::EventWriter;
use super::status::Note;

/// Field manager of the status (separate from any spec manager: on API servers without
/// subresource-aware managed fields, sharing one would steal spec ownership).
pub const STATUS_MANAGER: &str = "canary-gate-status";

/// The status could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The API server refused the status or could not be reached.
    #[error("writing the status: kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl ReportError {
    /// A stable short name (see [`super::error::ReconcileError::category`]).
    pub fn category(&self) -> &'static str {
        "kube_api"
    }
}

/// Writes `new` (server-side apply, [`STATUS_MANAGER`]) when it differs from `old`, then the
/// Events.
///
/// # Errors
/// When the status cannot be written (the Events are then not recorded either).
pub async fn write(
    client: &kube::Client,
    events: &EventWriter,
    rollout: &Rollout,
    old: &RolloutStatus,
    new: RolloutStatus,
    notes: &[Note],
) -> Result<(), ReportError> {
    if &new != old {
        let api: Api<Rollout> =
            Api::namespaced(client.clone(), &rollout.namespace().unwrap_or_default());
        let patch =
            json!({"apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "status": new});
        api.patch_status(
            &rollout.name_any(),
            &PatchParams::apply(STATUS_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    publish(events, rollout, notes).await;
    Ok(())
}

/// Records the notes as Events about the Rollout, in order. Events are a report: a failure to
/// write one is logged and does not undo the decision.
pub async fn publish(events: &EventWriter, rollout: &Rollout, notes: &[Note]) {
    let reference = rollout.object_ref(&());
    for note in notes {
        if let Err(e) = events
            .publish(&reference, note.warning, note.reason, &note.message)
            .await
        {
            tracing::warn!(
                reason = note.reason,
                error = &e as &dyn std::error::Error,
                "could not record an Event"
            );
        }
    }
}
