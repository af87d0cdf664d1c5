//! One reconcile: validate → observe → analyze → decide → apply (workloads, traffic) → report
//! (status, Events) → when to look again. Only the ends talk to the API server; the middle is the pure step machine and judge.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use crate::annotations::{AnnotationSink, annotations};
use crate::crd::Rollout;
use crate::crd::rollout::RolloutPhase;

use super::analyze::{MetricWindows, analyze};
use super::apply;
use super::build;
use super::decide::{self, Observed};
use super::error::ReconcileError;
use super::events::EventWriter;
use super::finalizer;
use super::judge_memory::JudgeMemory;
use super::observe;
use super::report;
use super::status::{Note, set_condition};
use super::telemetry::ControllerMetrics;
use super::validate::validate;

pub use super::finalizer::FINALIZER;
pub use super::report::STATUS_MANAGER;

/// How often a Rollout whose target is missing is looked at again.
const MISSING_TARGET_RETRY: Duration = Duration::from_secs(60);

/// What every reconcile needs.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Metric observations.
    pub metrics: Arc<dyn MetricWindows>,
    /// Event writer.
    pub events: EventWriter,
    /// The judge's progress per Rollout between reconciles.
    pub memory: JudgeMemory,
    /// Now, unix seconds (a parameter so tests control time).
    pub clock: fn() -> f64,
    /// The controller's own metrics, when served.
    pub telemetry: Option<ControllerMetrics>,
    /// Grafana annotations (best effort), when configured.
    pub annotations: Option<AnnotationSink>,
    /// The cluster's HorizontalPodAutoscalers (a watch cache), to report one that scales a
    /// target Deployment instead of its Rollout; `None`: not watched.
    pub autoscalers: Option<Store<HorizontalPodAutoscaler>>,
}

impl Context {
    /// A context on `client` reading `metrics`, with an empty judge memory, Events reported by
    /// the instance `canary-gate`, and no telemetry or Grafana.
    pub fn new(client: Client, metrics: Arc<dyn MetricWindows>, clock: fn() -> f64) -> Self {
        Self {
            events: EventWriter::new(client.clone(), None),
            client,
            metrics,
            memory: JudgeMemory::default(),
            clock,
            telemetry: None,
            annotations: None,
            autoscalers: None,
        }
    }
}

/// Reconciles one Rollout.
///
/// # Errors
/// When the API server or the metrics cannot be reached, or a template is missing or invalid;
/// an invalid spec or a missing target is not an error but a status the user sees.
#[tracing::instrument(skip(rollout, ctx), fields(rollout = %rollout.name_any(), namespace = rollout.namespace().unwrap_or_default(), step, weight))]
pub async fn reconcile(
    rollout: Arc<Rollout>,
    ctx: Arc<Context>,
) -> Result<Requeue, ReconcileError> {
    // The whole pipeline's state lives on the heap: its future is large in debug builds, and a
    // caller that awaits it on a thread's stack (a test) must not overflow it.
    Box::pin(reconcile_stages(rollout, ctx)).await
}

async fn reconcile_stages(
    rollout: Arc<Rollout>,
    ctx: Arc<Context>,
) -> Result<Requeue, ReconcileError> {
    let namespace = rollout.namespace().ok_or(ReconcileError::NoNamespace)?;
    let now = (ctx.clock)();
    let status = rollout.status.clone().unwrap_or_default();

    // A deleted Rollout hands the pods back to its Deployment before its workloads go.
    if rollout.metadata.deletion_timestamp.is_some() {
        ctx.memory.forget(&namespace, &rollout.name_any());
        finalizer::release(&ctx.client, &ctx.events, &rollout, &status).await?;
        return Ok(Requeue::await_change());
    }
    finalizer::ensure(&ctx.client, &rollout).await?;

    // validate
    let validated = match validate(&rollout.spec) {
        Ok(v) => v,
        Err(e) => {
            let mut next = status.clone();
            next.phase = Some(RolloutPhase::Degraded);
            next.message = Some(format!("invalid spec: {e}"));
            set_condition(
                &mut next.conditions,
                "InvalidSpec",
                true,
                "InvalidSpec",
                &e.to_string(),
                now,
            );
            let note = Note {
                reason: "InvalidSpec",
                message: e.to_string(),
                warning: true,
            };
            report::write(&ctx.client, &ctx.events, &rollout, &status, next, &[note]).await?;
            return Ok(Requeue::await_change());
        }
    };

    // observe
    let Some(seen) = observe::observe(&ctx.client, &rollout, &validated, &status).await? else {
        let mut next = status.clone();
        next.phase = Some(RolloutPhase::Degraded);
        next.message = Some(format!(
            "target Deployment {namespace}/{} not found",
            validated.target
        ));
        let note = Note {
            reason: "TargetMissing",
            message: next.message.clone().unwrap_or_default(),
            warning: true,
        };
        report::write(&ctx.client, &ctx.events, &rollout, &status, next, &[note]).await?;
        return Ok(Requeue::requeue(MISSING_TARGET_RETRY));
    };

    // analyze
    let analysis = analyze(
        &ctx,
        &rollout,
        &validated,
        &status,
        &seen.revision,
        seen.action.is_some(),
        now,
    )
    .await?;

    // decide
    let (pods, autoscaler_conflict) =
        observe::pods(&ctx, &rollout, &validated, &status, &seen, now).await?;
    let observed = Observed {
        now,
        stable_ready: seen.workloads.stable_runs(&seen.revision),
        revision: seen.revision.clone(),
        action: seen.action.as_ref().map(|(a, _)| *a),
        gated: analysis.gated,
        metrics_outage: analysis.outage,
        pods,
        autoscaler_conflict,
    };
    let outcome = decide::decide(
        &validated,
        &status,
        &observed,
        analysis.judgement.as_ref(),
        analysis.interval,
    );
    let mut notes = outcome.notes;
    let mut next = outcome.status;

    // build, apply
    let source = build::stable_template(&validated, &next, &seen, now);
    let template = observe::stable_template(&ctx.client, &seen.target, source).await?;
    if let Some(desired) = build::build(&rollout, &validated, &next, &seen, template, now)? {
        let applied = apply::apply(&ctx.client, &rollout, &seen, &desired).await?;
        report::applied(
            &mut next,
            &mut notes,
            &validated.target,
            &desired,
            &applied,
            now,
        );
    }
    if let Some(to) = &outcome.revert_to {
        let reverted = apply::revert(&ctx.client, seen.target.clone(), to).await?;
        report::reverted(&mut next, &mut notes, reverted, now);
    }
    if let Some((_, value)) = seen.action {
        next.handled_action = Some(value);
    }
    next.observed_generation = rollout.metadata.generation;
    tracing::Span::current().record("step", next.current_step_index.unwrap_or(0));
    tracing::Span::current().record("weight", next.canary_weight.unwrap_or(0));

    // report
    let marks = ctx.annotations.as_ref().map(|_| {
        annotations(
            &rollout.name_any(),
            &namespace,
            &status,
            &next,
            (now * 1000.0) as i64,
        )
    });
    if (next.phase, next.current_step_index, next.canary_weight)
        != (
            status.phase,
            status.current_step_index,
            status.canary_weight,
        )
    {
        tracing::info!(
            phase = ?next.phase,
            step = next.current_step_index,
            weight = next.canary_weight,
            decision = next.last_decision.as_deref(),
            message = next.message.as_deref(),
            "rollout moved"
        );
    }
    report::write(&ctx.client, &ctx.events, &rollout, &status, next, &notes).await?;
    // Grafana only after the status is written; queued, never awaited.
    if let (Some(sink), Some(marks)) = (&ctx.annotations, marks)
        && !marks.is_empty()
    {
        sink.send(marks);
    }
    Ok(match outcome.requeue_after {
        Some(seconds) => Requeue::requeue(Duration::from_secs_f64(seconds.max(0.5))),
        None => Requeue::await_change(),
    })
}
