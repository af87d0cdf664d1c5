//! Stage *report*: the one place the status is finished and written. *decide* maps the
//! lifecycle onto it; here go what *apply* answered (the pods in all and their selector, the
//! traffic in force and `TrafficRouted`, the hand-over of the target's pods, an undo's revert),
//! the action taken and the generation seen — or, when the Rollout cannot run, the `Degraded`
//! status of an invalid spec or a missing target. The status is written by server-side apply
//! with its own field manager and only when it changed, then the Events (a failure to record
//! one is logged, never undoes a decision), then the Grafana annotations (queued, best effort).

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::annotations::annotations;
use crate::crd::Rollout;
use crate::crd::rollout::{RolloutPhase, RolloutStatus};
use crate::rollout::Action;
use crate::rollout::StepPlan;
use crate::rollout::lifecycle::ActionResult;
use crate::traffic::workload::{self, Role};

use super::apply::{Applied, Reverted};
use super::build::{Desired, Traffic};
use super::decide::{Outcome, report_action};
use super::events::EventWriter;
use super::reconcile::Context;
use super::status::{Note, TRAFFIC_CONDITION, set_condition};
use super::validate::SpecError;

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

/// The status of a Rollout whose spec is invalid: `Degraded`, `InvalidSpec` True with the field
/// and the fix, and a Warning saying the same.
pub fn invalid_spec(status: &RolloutStatus, error: &SpecError, now: f64) -> (RolloutStatus, Note) {
    let mut next = status.clone();
    next.phase = Some(RolloutPhase::Degraded);
    next.message = Some(format!("invalid spec: {error}"));
    set_condition(
        &mut next.conditions,
        "InvalidSpec",
        true,
        "InvalidSpec",
        &error.to_string(),
        now,
    );
    let note = Note {
        reason: "InvalidSpec",
        message: error.to_string(),
        warning: true,
    };
    (next, note)
}

/// The status of a Rollout whose target Deployment does not exist: `Degraded`, and a Warning.
pub fn target_missing(
    status: &RolloutStatus,
    namespace: &str,
    target: &str,
) -> (RolloutStatus, Note) {
    let mut next = status.clone();
    let message = format!("target Deployment {namespace}/{target} not found");
    next.phase = Some(RolloutPhase::Degraded);
    next.message = Some(message.clone());
    let note = Note {
        reason: "TargetMissing",
        message,
        warning: true,
    };
    (next, note)
}

/// The status and Events of a pass: the decided status and its Events, what *apply* wrote (the
/// desired objects) and what the API server answered (with an undo's revert), the action
/// annotation value taken (acted on once), and the spec generation seen.
pub fn compose(
    rollout: &Rollout,
    decided: Outcome,
    desired: Option<&Desired>,
    answer: Applied,
    action: Option<(Action, String)>,
    now: f64,
) -> (RolloutStatus, Vec<Note>) {
    let (mut status, mut notes) = (decided.status, decided.notes);
    if let Some(desired) = desired {
        let target = &rollout.spec.target_ref.name;
        applied(&mut status, &mut notes, target, desired, &answer, now);
    }
    if let Some(reverted) = answer.reverted {
        self::reverted(&mut status, &mut notes, reverted, now);
    }
    if let Some((_, value)) = action {
        status.handled_action = Some(value);
    }
    status.observed_generation = rollout.metadata.generation;
    (status, notes)
}

/// Reports a pass: logs a move of phase, step or weight, writes the status and the Events, then
/// queues the Grafana annotations and the notifications of what changed (never awaited; `plan`
/// gives the notifications each step's planned weight).
///
/// Answers whether a status was written.
///
/// # Errors
/// When the status cannot be written.
pub async fn report(
    ctx: &Context,
    rollout: &Rollout,
    plan: Option<&StepPlan>,
    old: &RolloutStatus,
    mut new: RolloutStatus,
    notes: &[Note],
    now: f64,
) -> Result<bool, ReportError> {
    tracing::Span::current().record("step", new.current_step_index.unwrap_or(0));
    tracing::Span::current().record("weight", new.canary_weight.unwrap_or(0));
    let marks = ctx.annotations.as_ref().map(|_| {
        annotations(
            &rollout.name_any(),
            &rollout.namespace().unwrap_or_default(),
            old,
            &new,
            (now * 1000.0) as i64,
        )
    });
    // The notifications' condition is part of the status written below.
    let notices = ctx.notifier.prepare(rollout, plan, old, &mut new, now);
    if (new.phase, new.current_step_index, new.canary_weight)
        != (old.phase, old.current_step_index, old.canary_weight)
    {
        tracing::info!(
            phase = ?new.phase,
            step = new.current_step_index,
            weight = new.canary_weight,
            decision = new.last_decision.as_deref(),
            message = new.message.as_deref(),
            "rollout moved"
        );
    }
    let wrote = write(ctx, rollout, old, new, notes).await?;
    // Grafana only after the status is written; queued, never awaited.
    if let (Some(sink), Some(marks)) = (&ctx.annotations, marks)
        && !marks.is_empty()
    {
        sink.send(marks);
    }
    ctx.notifier.send(notices);
    Ok(wrote)
}

/// What *apply* answered, in the status and the notes: the pods in all and their selector, a
/// stable template that is nowhere to be found, the target's pods handed over, and the traffic in
/// force with `TrafficRouted` (a router problem is a Warning when it is new).
fn applied(
    status: &mut RolloutStatus,
    notes: &mut Vec<Note>,
    target: &str,
    desired: &Desired,
    applied: &Applied,
    now: f64,
) {
    let stable_workload = workload::name(target, Role::Stable);
    let stable_revision = &desired.stable_revision;
    status.replicas = Some(desired.replicas);
    status.selector.clone_from(&desired.selector);
    if desired.stable.is_none() {
        notes.push(Note {
            reason: "StableTemplateMissing",
            message: format!(
                "the template of stable revision {stable_revision} is neither in {stable_workload} nor in a ReplicaSet of Deployment {target}; revert the Deployment to it or let the new revision through"
            ),
            warning: true,
        });
    }
    if applied.handed_over {
        notes.push(Note {
            reason: "WorkloadAdopted",
            message: format!(
                "{stable_workload} runs revision {stable_revision} with {} pods; Deployment {target} scaled to 0 (its replicas are canary-gate's to place)",
                desired.replicas
            ),
            warning: false,
        });
    }
    let (on, reason, message) = match (&desired.traffic, &applied.routed) {
        (Traffic::ReplicaRatio(summary), _) => {
            status.traffic = Some(summary.clone());
            return;
        }
        (Traffic::WaitingForStable, _) => (
            false,
            "WaitingForStable",
            format!("routers wait until {stable_workload} is available"),
        ),
        (Traffic::Routed { .. }, Some(Ok(summary))) => (true, "Applied", summary.clone()),
        (Traffic::Routed { .. }, Some(Err((reason, message)))) => {
            let known = status
                .conditions
                .iter()
                .find(|c| c.type_ == TRAFFIC_CONDITION)
                .is_some_and(|c| c.reason == *reason && c.message == *message);
            if !known {
                notes.push(Note {
                    reason,
                    message: message.clone(),
                    warning: true,
                });
            }
            (false, *reason, message.clone())
        }
        (Traffic::Routed { .. }, None) => return,
    };
    status.traffic = on.then(|| message.clone());
    set_condition(
        &mut status.conditions,
        TRAFFIC_CONDITION,
        on,
        reason,
        &message,
        now,
    );
}

/// What became of an `undo`'s revert: an Event when it is done; when it cannot be done, the
/// accepted action says why (`ActionApplied` False, a Warning) — never silence.
fn reverted(status: &mut RolloutStatus, notes: &mut Vec<Note>, reverted: Reverted, now: f64) {
    match reverted {
        Reverted::Done {
            deployment,
            revision,
        } => notes.push(Note {
            reason: "DeploymentReverted",
            message: format!("Deployment {deployment} is back on revision {revision}"),
            warning: false,
        }),
        Reverted::Impossible(why) => {
            report_action(status, notes, &ActionResult::UndoImpossible(why), now);
        }
    }
}

/// Writes `new` (server-side apply, [`STATUS_MANAGER`]) when it differs from `old`, then the
/// Events; remembers the write until the watch cache shows it. Answers whether it wrote.
///
/// # Errors
/// When the status cannot be written (the Events are then not recorded either).
pub async fn write(
    ctx: &Context,
    rollout: &Rollout,
    old: &RolloutStatus,
    new: RolloutStatus,
    notes: &[Note],
) -> Result<bool, ReportError> {
    let wrote = &new != old;
    if wrote {
        let namespace = rollout.namespace().unwrap_or_default();
        let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch =
            json!({"apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "status": new});
        let written = api
            .patch_status(
                &rollout.name_any(),
                &PatchParams::apply(STATUS_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        ctx.writes.wrote(
            &namespace,
            &rollout.name_any(),
            rollout.metadata.resource_version.as_deref(),
            written.metadata.resource_version.as_deref(),
        );
    }
    publish(&ctx.events, rollout, notes).await;
    Ok(wrote)
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
