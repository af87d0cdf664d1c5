//! The controller process: leader election, the watches over Rollouts (through
//! `DeserializeGuard`, so one malformed object cannot stall the watch), their target Deployments,
//! autoscalers and templates, which trigger passes run by the dispatcher (`dispatch.rs`, oldest
//! due first), and the health and metrics server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::utils::{Backoff, ResetTimerBackoff, StreamBackoff};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use prometheus_client::registry::Registry;

use crate::annotations::{AnnotationMetrics, AnnotationSink, Grafana, GrafanaConfig};
use crate::crd::{AnalysisTemplate, ClusterAnalysisTemplate, Rollout};
use crate::metrics::prometheus::Prometheus;

use super::analyze::{PrometheusWindows, TemplateStores};
use super::deployment_cache::{self, DeploymentCache};
use super::dispatch::{QueueGauges, dispatch, synced};
use super::error::ReconcileError;
use super::events::EventWriter;
use super::kube_requests::KubeRequests;
use super::leader::LeaseLock;
use super::reconcile::{Context, reconcile};
use super::target_index::TargetIndex;
use super::telemetry::{CategoryLabel, ControllerMetrics, Schedule};

/// Default name of the Lease the replicas share (`--lease-name`).
pub const LEASE_NAME: &str = "canary-gate-controller";

/// Errors starting or running the controller.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Kubernetes client could not be built (no kubeconfig or in-cluster config).
    #[error("kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The Grafana configuration is unusable.
    #[error("grafana: {0}")]
    Grafana(#[source] crate::annotations::AnnotationError),
    /// A notification sink cannot be set up.
    #[error("notifications: {0}")]
    Notifications(#[source] crate::notify::NotifyError),
    /// Leader election failed.
    #[error("leader election on Lease {namespace}/{name}: {source}")]
    Lease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The health server could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// This replica lost the lease; it stops so it can never act beside the new leader.
    #[error("lost the leader lease {namespace}/{name}")]
    LostLease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
    },
}

/// How to run.
pub struct ControllerConfig {
    /// Prometheus for the analysis templates' queries.
    pub prometheus: Prometheus,
    /// Address of /livez, /readyz and /metrics.
    pub listen: SocketAddr,
    /// Namespace of the leader-election Lease.
    pub lease_namespace: String,
    /// Name of the leader-election Lease (one per shard).
    pub lease_name: String,
    /// Which Rollouts this process reconciles.
    pub shard: Shard,
    /// This replica's identity (pod name).
    pub identity: String,
    /// Elect a leader (off only for a single replica run by hand).
    pub leader_election: bool,
    /// How long the Lease holds without renewal; the leader renews every third of it.
    pub lease_duration: Duration,
    /// Grafana for annotations, if any.
    pub grafana: Option<GrafanaConfig>,
    /// Notification sinks (`--notifications-config`; the default has none).
    pub notifications: crate::notify::NotifyConfig,
    /// Rollouts reconciled at once at most.
    pub concurrency: u16,
    /// Serve the judge for Argo Rollouts and Flagger (`/v1/judge`, `/v1/flagger/…`) on the same
    /// listener, with the cluster's templates, querying this Prometheus; `None`: not served.
    pub gate: Option<Prometheus>,
}

/// The part of the cluster's Rollouts one controller process reconciles: beyond what one process
/// carries, run one Deployment per shard, each with its own `--lease-name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shard {
    /// One namespace (Rollouts, Deployments, autoscalers and AnalysisTemplates are watched there
    /// only); `None`: every namespace.
    pub namespace: Option<String>,
    /// A label selector on Rollouts; `None`: all of them.
    pub selector: Option<String>,
}

impl Shard {
    /// The API of a namespaced kind, within the shard's namespace.
    fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }

    /// The watch of Rollouts: the shard's selector.
    fn rollouts(&self) -> watcher::Config {
        match &self.selector {
            Some(selector) => watcher::Config::default().labels(selector),
            None => watcher::Config::default(),
        }
    }
}

/// How long the watches must run without an error before their backoff starts small again.
const WATCH_BACKOFF_RESET: Duration = Duration::from_secs(30);

/// Backoff of the watches that wake Rollouts after an error: 250 ms doubling to 4 s. All
/// watches share one backoff in kube-runtime, and its default (800 ms doubling to 30 s, reset
/// after 2 min of calm) left the controller deaf for up to a minute after a few seconds of API
/// server restart (tests/controller_process.rs); a list-and-watch every 4 s at worst is cheap.
#[derive(Debug, Clone, Copy)]
struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(4);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(now)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        *self = Self::default();
    }
}

struct RunContext {
    inner: Arc<Context>,
    telemetry: ControllerMetrics,
    /// Which Rollouts each Deployment concerns, kept as Rollouts are reconciled.
    targets: Arc<TargetIndex>,
}

/// Runs until Ctrl-C / SIGTERM, or until the lease is lost.
///
/// # Errors
/// See [`RunError`].
pub async fn run(config: ControllerConfig) -> Result<(), RunError> {
    let mut registry = Registry::default();
    let telemetry = ControllerMetrics::register(&mut registry);
    // Every request the controller sends is counted by verb and resource.
    let requests = KubeRequests::register(&mut registry);
    let kube_config = kube::Config::infer()
        .await
        .map_err(|e| RunError::Client(kube::Error::InferConfig(e)))?;
    let client = kube::client::ClientBuilder::try_from(kube_config)
        .map_err(RunError::Client)?
        .with_layer(&requests)
        .build();
    let annotations = match config.grafana.clone() {
        Some(grafana) => {
            let grafana = Grafana::new(grafana).map_err(RunError::Grafana)?;
            tracing::info!(grafana = grafana.endpoint(), "posting Grafana annotations");
            Some(AnnotationSink::start(
                grafana,
                AnnotationMetrics::register(&mut registry),
            ))
        }
        None => None,
    };
    let notifier = crate::notify::Notifier::start(
        config.notifications.clone(),
        crate::notify::NotificationMetrics::register(&mut registry),
    )
    .map_err(RunError::Notifications)?;
    let registry = Arc::new(registry);
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: config.listen,
            source,
        })?;
    // The cluster's templates (watch caches of both kinds): what the analyses read, and the
    // judge over HTTP serves.
    let templates = {
        let (namespaced, writer) = reflector::store::<AnalysisTemplate>();
        spawn_reflector(writer, config.shard.api::<AnalysisTemplate>(&client));
        let (cluster, writer) = reflector::store::<ClusterAnalysisTemplate>();
        spawn_reflector(writer, Api::<ClusterAnalysisTemplate>::all(client.clone()));
        TemplateStores {
            namespaced,
            cluster,
        }
    };
    let gate = config.gate.map(|prometheus| {
        crate::gate::serve::with_limits(
            crate::gate::router(Arc::new(crate::gate::GateState::cluster(
                templates.namespaced.clone(),
                templates.cluster.clone(),
                prometheus,
            ))),
            crate::gate::serve::ServeLimits::default(),
        )
    });
    tokio::spawn(serve_health(
        listener,
        registry,
        telemetry.schedule.clone(),
        ready.clone(),
        gate,
    ));

    let lease_namespace = config.lease_namespace.clone();
    let mut lost = None;
    let mut held: Option<Arc<LeaseLock>> = None;
    if config.leader_election {
        let lease_duration = config.lease_duration;
        let lock = Arc::new(LeaseLock::new(
            client.clone(),
            &lease_namespace,
            &config.lease_name,
            &config.identity,
            lease_duration,
        ));
        held = Some(lock.clone());
        tracing::info!(identity = %config.identity, namespace = %lease_namespace, "waiting to become leader");
        lock.acquire((lease_duration / 5).max(Duration::from_millis(200)))
            .await
            .map_err(|source| RunError::Lease {
                namespace: lease_namespace.clone(),
                name: config.lease_name.clone(),
                source,
            })?;
        tracing::info!(identity = %config.identity, "became leader");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        lost = Some(rx);
        tokio::spawn(async move {
            let mut last_renewal = Instant::now();
            let mut pause = lease_duration / 3;
            loop {
                tokio::time::sleep(pause).await;
                // After a failed renewal, retry often until the deadline: an API server that
                // restarts for a few seconds must not cost the lease.
                pause = (lease_duration / 15).max(Duration::from_millis(200));
                match lock.try_acquire_or_renew().await {
                    Ok(true) => {
                        last_renewal = Instant::now();
                        pause = lease_duration / 3;
                    }
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(
                            error = &e as &dyn std::error::Error,
                            "could not renew the lease"
                        );
                        if last_renewal.elapsed() > lease_duration * 2 / 3 {
                            break;
                        }
                    }
                }
            }
            let _ = tx.send(());
        });
    }

    let targets = Arc::new(TargetIndex::default());
    // HorizontalPodAutoscalers, cached: one that scales a target Deployment (which canary-gate
    // keeps at zero pods) is reported on its Rollout with the fix.
    let (autoscalers, writer) = reflector::store::<HorizontalPodAutoscaler>();
    spawn_reflector(writer, config.shard.api::<HorizontalPodAutoscaler>(&client));
    // canary-gate's own workloads, cached: a reconcile reads them without a request.
    let workloads = Arc::new(DeploymentCache::default());
    workloads.spawn(config.shard.api(&client));
    // The Rollouts' targets, cached from the Deployment watch that wakes them (below): a
    // healthy Rollout's reconcile then reads nothing from the API server.
    let target_cache = Arc::new(DeploymentCache::of_targets(targets.clone()));
    let context = Arc::new(RunContext {
        targets: targets.clone(),
        inner: Arc::new(Context {
            events: EventWriter::new(client.clone(), Some(config.identity.clone())),
            telemetry: Some(telemetry.clone()),
            annotations,
            notifier,
            autoscalers: Some(autoscalers),
            workloads: Some(workloads),
            target_cache: Some(target_cache.clone()),
            templates: Some(templates),
            ..Context::new(
                client.clone(),
                Arc::new(PrometheusWindows(config.prometheus)),
                now,
            )
        }),
        telemetry,
    });
    let rollouts: Api<DeserializeGuard<Rollout>> = config.shard.api(&client);
    tracing::info!(namespace = config.shard.namespace.as_deref().unwrap_or("(all)"), selector = config.shard.selector.as_deref().unwrap_or("(all)"), lease = %config.lease_name, "reconciling Rollouts");
    // The Rollouts' cache holds them without managedFields: at 10 000 Rollouts the status
    // manager's field lists alone are tens of megabytes nobody reads.
    let (store, writer) = reflector::store::<DeserializeGuard<Rollout>>();
    // The cache sees every change; a pass is triggered only by one to the spec, labels,
    // annotations (actions), finalizers or deletion — not by the status writes the controller
    // makes itself, which would otherwise cost a pass (and an API read) each.
    let rollout_triggers = reflector(
        writer,
        watcher(rollouts, config.shard.rollouts()).modify(|r| r.managed_fields_mut().clear()),
    )
    .applied_objects()
    .predicate_filter(not_status_only, PredicateConfig::default())
    .map_ok(|guard| ObjectRef::from_obj(&guard));
    {
        let (store, ready) = (store.clone(), ready.clone());
        tokio::spawn(async move {
            if synced(store).await {
                tracing::info!("caches synced; ready");
                ready.store(true, Ordering::SeqCst);
            }
        });
    }
    // A Deployment's new template starts a rollout, and a workload's progress ends a promotion:
    // wake the Rollouts that target it or own it.
    let deployment_triggers = rollouts_of(
        watcher(
            config.shard.api::<Deployment>(&client),
            watcher::Config::default(),
        )
        // canary-gate's own entries stay: they tell its 0 replicas from a human's.
        .modify(deployment_cache::keep_own_fields)
        .inspect_ok(move |event| target_cache.take(event))
        .touched_objects(),
        {
            let targets = targets.clone();
            move |d: Deployment| {
                let namespace = d.namespace().unwrap_or_default();
                rollout_refs(
                    &namespace,
                    targets.rollouts_for(&namespace, &d.name_any(), d.labels()),
                )
            }
        },
    );
    // An autoscaler that appears, changes or goes: the Rollouts of the Deployment it scales.
    let autoscaler_triggers = rollouts_of(
        watcher(
            config.shard.api::<HorizontalPodAutoscaler>(&client),
            watcher::Config::default(),
        )
        .touched_objects(),
        {
            let targets = targets.clone();
            move |h: HorizontalPodAutoscaler| {
                let namespace = h.namespace().unwrap_or_default();
                let name = h
                    .spec
                    .as_ref()
                    .map(|s| s.scale_target_ref.name.clone())
                    .unwrap_or_default();
                rollout_refs(
                    &namespace,
                    targets.rollouts_for(&namespace, &name, &std::collections::BTreeMap::new()),
                )
            }
        },
    );
    // A changed template re-judges the Rollouts that use it.
    let template_triggers = rollouts_of(
        watcher(
            config.shard.api::<AnalysisTemplate>(&client),
            watcher::Config::default(),
        )
        .touched_objects(),
        {
            let store = store.clone();
            move |t: AnalysisTemplate| {
                using_template(&store, &t.name_any(), t.namespace().as_deref())
            }
        },
    );
    let cluster_template_triggers = rollouts_of(
        watcher(
            Api::<ClusterAnalysisTemplate>::all(client.clone()),
            watcher::Config::default(),
        )
        .touched_objects(),
        {
            let store = store.clone();
            move |t: ClusterAnalysisTemplate| using_template(&store, &t.name_any(), None)
        },
    );
    let triggers = StreamBackoff::new(
        futures::stream::select_all([
            rollout_triggers.boxed(),
            deployment_triggers,
            autoscaler_triggers,
            template_triggers,
            cluster_template_triggers,
        ]),
        ResetTimerBackoff::new(WatchBackoff::default(), WATCH_BACKOFF_RESET),
    );
    let gauges = QueueGauges {
        ready: context.telemetry.queue_ready.clone(),
        running: context.telemetry.queue_running.clone(),
    };
    let pass = move |guard: Arc<DeserializeGuard<Rollout>>| {
        let ctx = context.clone();
        async move {
            match reconcile_guarded(&guard, &ctx).await {
                Ok(next) => next,
                Err(e) => Some(error_policy(&guard, &e, &ctx)),
            }
        }
    };
    let work = dispatch(
        triggers,
        store,
        usize::from(config.concurrency),
        gauges,
        pass,
        shutdown_signal(),
    );
    match lost {
        Some(lost) => tokio::select! {
            () = work => {
                // A graceful stop (SIGTERM, as Kubernetes sends): hand the lease on at once.
                if let Some(lock) = held {
                    match lock.release().await {
                        Ok(()) => tracing::info!("lease released"),
                        Err(e) => tracing::warn!(error = &e as &dyn std::error::Error, "could not release the lease"),
                    }
                }
                Ok(())
            }
            _ = lost => Err(RunError::LostLease { namespace: lease_namespace, name: config.lease_name.clone() }),
        },
        None => {
            work.await;
            Ok(())
        }
    }
}

/// What a Rollout's change must touch to trigger a pass: its generation (the spec), labels,
/// annotations, finalizers or deletion. A status-only change — nearly always this controller's
/// own write — does not: the pass that made it already asked for its next look
/// ([`reconcile::SETTLE_AFTER_WRITE`] when it had none).
fn not_status_only<K: Resource>(object: &K) -> Option<u64> {
    predicates::generation
        .combine(predicates::labels)
        .combine(predicates::annotations)
        .combine(predicates::finalizers)
        .combine(|o: &K| Some(u64::from(o.meta().deletion_timestamp.is_some())))
        .hash_property(object)
}

/// The Rollouts whose analyses name a template (`namespace` `None`: a cluster-scoped one).
fn using_template(
    store: &kube::runtime::reflector::Store<DeserializeGuard<Rollout>>,
    name: &str,
    namespace: Option<&str>,
) -> Vec<ObjectRef<DeserializeGuard<Rollout>>> {
    store
        .state()
        .into_iter()
        .filter(|g| {
            let Ok(r) = &g.0 else { return false };
            let canary = r.spec.strategy.canary.as_ref();
            let blue_green = r.spec.strategy.blue_green.as_ref();
            let analyses = canary
                .and_then(|c| c.analysis.as_ref())
                .into_iter()
                .chain(
                    canary
                        .into_iter()
                        .flat_map(|c| c.steps.iter().filter_map(|s| s.analysis.as_ref())),
                )
                .chain(blue_green.and_then(|b| b.pre_promotion_analysis.as_ref()));
            let mut refs = analyses.flat_map(|a| a.templates.iter());
            refs.any(|t| {
                t.template_name == name
                    && match namespace {
                        Some(ns) => !t.cluster_scope && r.namespace().as_deref() == Some(ns),
                        None => t.cluster_scope,
                    }
            })
        })
        .map(|g| ObjectRef::from_obj(&*g))
        .collect()
}

use crate::time::now;

/// A Rollout as the dispatcher names it.
type RolloutRef = ObjectRef<DeserializeGuard<Rollout>>;

/// The Rollouts each object of a watch concerns (by `mapper`), one trigger each.
fn rollouts_of<K, S, F>(
    touched: S,
    mapper: F,
) -> futures::stream::BoxStream<'static, Result<RolloutRef, watcher::Error>>
where
    S: futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    F: Fn(K) -> Vec<RolloutRef> + Send + 'static,
{
    touched
        .map_ok(move |object| futures::stream::iter(mapper(object).into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// The Rollouts `names` in `namespace`.
fn rollout_refs(namespace: &str, names: Vec<String>) -> Vec<RolloutRef> {
    names
        .into_iter()
        .map(|name| ObjectRef::new(&name).within(namespace))
        .collect()
}

/// Completes on Ctrl-C or SIGTERM (what Kubernetes sends a Pod it stops).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "cannot listen for SIGTERM"
                );
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// One pass; the answer is when to run it again (`None`: on a change only).
async fn reconcile_guarded(
    guard: &DeserializeGuard<Rollout>,
    ctx: &RunContext,
) -> Result<Option<Duration>, ReconcileError> {
    let started = Instant::now();
    ctx.telemetry.reconciles.inc();
    ctx.telemetry
        .schedule
        .started(&guard.namespace().unwrap_or_default(), &guard.name_any());
    let result = match &guard.0 {
        Ok(rollout) => {
            let target = rollout
                .metadata
                .deletion_timestamp
                .is_none()
                .then_some(rollout.spec.target_ref.name.as_str());
            ctx.targets.set(
                &rollout.namespace().unwrap_or_default(),
                &rollout.name_any(),
                target,
            );
            reconcile(Arc::new(rollout.clone()), ctx.inner.clone()).await
        }
        Err(invalid) => {
            // A malformed Rollout: say so on the object and wait for a change; others proceed.
            let note = format!("the Rollout cannot be read: {}", invalid.error);
            if let Err(e) = ctx
                .inner
                .events
                .publish(&guard.object_ref(&()), true, "Malformed", &note)
                .await
            {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "could not record an Event"
                );
            }
            Ok(None)
        }
    };
    ctx.telemetry
        .duration
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        ctx.telemetry
            .failures
            .get_or_create(&CategoryLabel {
                category: e.category().to_string(),
            })
            .inc();
    }
    result
}

/// When a failed pass is tried again: an invalid template or action waits for a change (or 5
/// minutes); anything else is retried.
fn error_policy(
    guard: &DeserializeGuard<Rollout>,
    error: &ReconcileError,
    ctx: &RunContext,
) -> Duration {
    tracing::warn!(
        category = error.category(),
        error = error as &dyn std::error::Error,
        "reconcile error"
    );
    let after = if error.waits_for_a_change() {
        Duration::from_secs(300)
    } else if error.is_conflict() {
        // Another writer was faster: look again at once (its change also wakes the watch).
        Duration::from_secs(1)
    } else {
        Duration::from_secs(15)
    };
    ctx.telemetry.schedule.set(
        &guard.namespace().unwrap_or_default(),
        &guard.name_any(),
        Some(after),
    );
    after
}

/// Keeps a watch cache of `api`'s objects in `writer`'s store, for the life of the process.
fn spawn_reflector<K>(writer: reflector::store::Writer<K>, api: Api<K>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let kind = K::kind(&()).to_string();
    tokio::spawn(
        reflector(
            writer,
            watcher(api, watcher::Config::default()).modify(|o| o.managed_fields_mut().clear()),
        )
        .default_backoff()
        .for_each(move |event| {
            if let Err(e) = &event {
                tracing::warn!(kind = %kind, error = e as &dyn std::error::Error, "watch cache");
            }
            async {}
        }),
    );
}

async fn serve_health(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    schedule: Arc<Schedule>,
    ready: Arc<AtomicBool>,
    gate: Option<Router>,
) {
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::SeqCst) {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let (registry, schedule) = (registry.clone(), schedule.clone());
                async move {
                    // The backlog as of this scrape.
                    schedule.refresh();
                    let mut text = String::new();
                    match prometheus_client::encoding::text::encode(&mut text, &registry) {
                        Ok(()) => (StatusCode::OK, text),
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                    }
                }
            }),
        );
    let app = match gate {
        Some(gate) => app.merge(gate),
        None => app,
    };
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(
            error = &e as &dyn std::error::Error,
            "health server stopped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_backoff_doubles_to_four_seconds_and_starts_over_on_reset() {
        let mut b = WatchBackoff::default();
        let ms: Vec<u128> = b.by_ref().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 4000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn a_status_only_change_triggers_no_pass_and_any_other_change_does() {
        use crate::crd::rollout::RolloutStatus;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let mut rollout: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "generation": 3,
                "resourceVersion": "41", "finalizers": ["canarygate.dev/finalizer"]},
            "spec": {"targetRef": {"name": "web"}, "strategy": {"canary": {"steps": []}}}
        }))
        .unwrap();
        let key = |r: &Rollout| not_status_only(&DeserializeGuard(Ok(r.clone())));
        let first = key(&rollout);
        assert!(first.is_some());
        // The controller's own write: a new status and resourceVersion, nothing else.
        rollout.status = Some(RolloutStatus {
            message: Some("step 0 at 10%".into()),
            ..RolloutStatus::default()
        });
        rollout.metadata.resource_version = Some("42".into());
        assert_eq!(key(&rollout), first);
        let changed = |edit: &dyn Fn(&mut Rollout)| {
            let mut r = rollout.clone();
            edit(&mut r);
            key(&r)
        };
        assert_ne!(changed(&|r| r.metadata.generation = Some(4)), first, "spec");
        assert_ne!(
            changed(&|r| {
                r.annotations_mut()
                    .insert("canarygate.dev/action".into(), "promote".into());
            }),
            first,
            "an action"
        );
        assert_ne!(
            changed(&|r| {
                r.labels_mut().insert("shard".into(), "b".into());
            }),
            first,
            "labels"
        );
        assert_ne!(
            changed(&|r| r.finalizers_mut().clear()),
            first,
            "finalizers"
        );
        assert_ne!(
            changed(&|r| r.metadata.deletion_timestamp = Some(Time(Default::default()))),
            first,
            "deletion"
        );
    }
}
