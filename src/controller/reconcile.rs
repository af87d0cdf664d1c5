//! One reconcile, a short driver over named stages: finalizer → validate → observe → analyze →
//! hooks → decide → build → apply → report → when to look again. Only observe, analyze, apply
//! and report (and the finalizer) talk to the API server or the metrics, and hooks to the
//! webhooks; validate, decide (the lifecycle in `rollout::lifecycle` mapped onto the status) and
//! build are pure.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use crate::annotations::AnnotationSink;
use crate::crd::Rollout;

use super::analyze::{MetricWindows, analyze};
use super::apply;
use super::build;
use super::decide;
use super::deployment_cache::DeploymentCache;
use super::error::ReconcileError;
use super::events::EventWriter;
use super::finalizer;
use super::hooks::{self, HookRunner};
use super::judge_memory::JudgeMemory;
use super::observe;
use super::power::{self, PowerChecks};
use super::report;
use super::status_writes::StatusWrites;
use super::telemetry::ControllerMetrics;
use super::validate::validate;

pub use super::finalizer::FINALIZER;
pub use super::report::STATUS_MANAGER;

/// How often a Rollout whose target is missing is looked at again.
const MISSING_TARGET_RETRY: Duration = Duration::from_secs(60);

/// How soon a pass that found the watch cache behind its last status write looks again.
pub const CACHE_BEHIND_RETRY: Duration = Duration::from_secs(1);

/// How soon a pass that wrote a status and has no time of its own to look again makes one
/// more: the pass its own write's watch event used to cause, which the trigger stream now
/// ignores (a status-only change).
pub const SETTLE_AFTER_WRITE: Duration = Duration::from_secs(1);

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
    /// The steps power checks (advice: `StepsUnderpowered`) and their worker.
    pub power: PowerChecks,
    /// Now, unix seconds (a parameter so tests control time).
    pub clock: fn() -> f64,
    /// The controller's own metrics, when served.
    pub telemetry: Option<ControllerMetrics>,
    /// Grafana annotations (best effort), when configured.
    pub annotations: Option<AnnotationSink>,
    /// Notifications to webhooks, Slack and Teams (best effort); the default has no sinks.
    pub notifier: crate::notify::Notifier,
    /// canary-gate's own workloads (a watch cache); `None`: read from the API server.
    pub workloads: Option<Arc<DeploymentCache>>,
    /// The Rollouts' target Deployments (a watch cache); `None`: read from the API server.
    pub target_cache: Option<Arc<DeploymentCache>>,
    /// The cluster's analysis templates (watch caches); `None`: read from the API server.
    pub templates: Option<super::analyze::TemplateStores>,
    /// The cluster's HorizontalPodAutoscalers (a watch cache), to report one that scales a
    /// target Deployment instead of its Rollout; `None`: not watched.
    pub autoscalers: Option<Store<HorizontalPodAutoscaler>>,
    /// The webhook attempts under way (or answered and not yet seen in a status).
    pub hooks: HookRunner,
    /// The status writes the Rollouts' watch cache has not shown yet.
    pub writes: StatusWrites,
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
            power: PowerChecks::default(),
            clock,
            telemetry: None,
            annotations: None,
            notifier: crate::notify::Notifier::default(),
            workloads: None,
            target_cache: None,
            templates: None,
            autoscalers: None,
            hooks: HookRunner::default(),
            writes: StatusWrites::default(),
        }
    }
}

/// Reconciles one Rollout; the answer is when to look again (`None`: on a change only).
///
/// # Errors
/// When the API server or the metrics cannot be reached, or a template is missing or invalid;
/// an invalid spec or a missing target is not an error but a status the user sees.
#[tracing::instrument(skip(rollout, ctx), fields(rollout = %rollout.name_any(), namespace = rollout.namespace().unwrap_or_default(), step, weight))]
pub async fn reconcile(
    rollout: Arc<Rollout>,
    ctx: Arc<Context>,
) -> Result<Option<Duration>, ReconcileError> {
    // The whole pipeline's state lives on the heap: its future is large in debug builds, and a
    // caller that awaits it on a thread's stack (a test) must not overflow it.
    let key = (rollout.namespace(), rollout.name_any());
    let after = Box::pin(reconcile_stages(rollout, ctx.clone())).await?;
    if let (Some(t), (Some(namespace), name)) = (&ctx.telemetry, key) {
        // When it is due again, for the controller's lag and overdue figures.
        t.schedule.set(&namespace, &name, after);
    }
    Ok(after)
}

/// The stages; the answer is when to look again (`None`: on a change only).
async fn reconcile_stages(
    rollout: Arc<Rollout>,
    ctx: Arc<Context>,
) -> Result<Option<Duration>, ReconcileError> {
    let namespace = rollout.namespace().ok_or(ReconcileError::NoNamespace)?;
    // Never decide from a status older than the one this controller last wrote.
    if ctx.writes.cache_is_behind(
        &namespace,
        &rollout.name_any(),
        rollout.metadata.resource_version.as_deref(),
    ) {
        tracing::debug!("the watch cache has not shown the last status write yet");
        return Ok(Some(CACHE_BEHIND_RETRY));
    }
    let now = (ctx.clock)();
    let status = rollout.status.clone().unwrap_or_default();

    // A deleted Rollout hands the pods back to its Deployment before its workloads go.
    if rollout.metadata.deletion_timestamp.is_some() {
        ctx.memory.forget(&namespace, &rollout.name_any());
        ctx.power.forget(&namespace, &rollout.name_any());
        ctx.writes.forget(&namespace, &rollout.name_any());
        finalizer::release(&ctx.client, &ctx.events, &rollout, &status).await?;
        return Ok(None);
    }
    finalizer::ensure(&ctx.client, &rollout).await?;

    let validated = match validate(&rollout.spec) {
        Ok(validated) => validated,
        Err(e) => {
            let (next, note) = report::invalid_spec(&status, &e, now);
            let wrote = report::write(&ctx, &rollout, &status, next, &[note]).await?;
            return Ok(wrote.then_some(SETTLE_AFTER_WRITE));
        }
    };
    let Some(seen) = observe::observe(
        &ctx.client,
        ctx.workloads.as_deref(),
        ctx.target_cache.as_deref(),
        &rollout,
        &validated,
        &status,
    )
    .await?
    else {
        let (next, note) = report::target_missing(&status, &namespace, &validated.target);
        report::write(&ctx, &rollout, &status, next, &[note]).await?;
        return Ok(Some(MISSING_TARGET_RETRY));
    };
    // The steps power check's answer as it stands before this pass (one that arrives meanwhile
    // waits for the next pass).
    let power = ctx.power.finding(&namespace, &rollout.name_any());
    let analysis = analyze(&ctx, &rollout, &validated, &status, &seen, now).await?;
    let acting = seen.action.is_some();
    let hook_events = hooks::hooks(
        &ctx,
        &rollout,
        &validated,
        &status,
        &seen.revision,
        acting,
        now,
    )
    .await;
    let pods = observe::pods(&ctx, &rollout, &validated, &status, &seen, now).await?;
    let mut observed = seen.observed(now, analysis, pods);
    observed.hooks = hook_events;
    let mut decided = decide::decide(&validated, &status, &observed);
    let (next, notes) = (&mut decided.status, &mut decided.notes);
    if power::report(
        power.as_deref(),
        &validated,
        &seen.revision,
        &status,
        next,
        notes,
        now,
    ) {
        ctx.power.forget(&namespace, &rollout.name_any());
    }

    let source = build::stable_template(&validated, &decided.status, &seen, now);
    let template = observe::stable_template(&ctx.client, &seen.target, source).await?;
    let desired = build::build(&rollout, &validated, &decided.status, &seen, template, now)?;
    let revert_to = decided.revert_to.as_deref();
    let applied = apply::apply(&ctx.client, &rollout, &seen, desired.as_ref(), revert_to).await?;

    let requeue = decided.requeue_after;
    let (next, notes) = report::compose(
        &rollout,
        decided,
        desired.as_ref(),
        applied,
        seen.action,
        now,
    );
    let plan = &validated.lifecycle.plan;
    let wrote = report::report(&ctx, &rollout, Some(plan), &status, next, &notes, now).await?;
    Ok(match requeue {
        Some(seconds) => Some(Duration::from_secs_f64(seconds.max(0.5))),
        None => wrote.then_some(SETTLE_AFTER_WRITE),
    })
}
