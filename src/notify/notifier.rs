//! The notifier: per sink an [`Outbox`] whose worker posts that sink's format, so one slow sink
//! never delays another or a reconcile. A reconcile calls [`Notifier::prepare`] before its status
//! write (it sets the `NotificationsConfigured` condition and works out what to send) and
//! [`Notifier::send`] after it (queued, never awaited), so an event is told only once the status
//! that records it is written.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kube::ResourceExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use reqwest::Url;
use reqwest::header::HeaderMap;

use super::config::{NotifyConfig, SinkKind};
use super::error::NotifyError;
use super::event::{Notice, events};
use super::select::{CONDITION, select, set_condition};
use super::signature::{self, SigningKey};
use super::{slack, teams};
use crate::crd::Rollout;
use crate::crd::rollout::RolloutStatus;
use crate::delivery::{Deliver, Outbox, PostConfig, Poster, Secret, Tally};
use crate::rollout::StepPlan;

/// Result label value: the sink took the notification.
pub const SUCCESS: &str = "success";
/// Result label value: the sink could not be reached or refused it, after the retries.
pub const FAILURE: &str = "failure";
/// Result label value: the sink's queue was full; the notification was never sent.
pub const DROPPED: &str = "dropped";

/// Labels of a notification's fate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkResultLabel {
    /// The sink's name.
    pub sink: String,
    /// `success`, `failure` or `dropped`.
    pub result: String,
}

/// Counters of notifications, by sink and result (`canary_gate_notifications_total`).
#[derive(Clone, Debug, Default)]
pub struct NotificationMetrics {
    /// Notifications by sink and result.
    pub notifications: Family<SinkResultLabel, Counter>,
}

impl NotificationMetrics {
    /// Registers the counters under `canary_gate_` (each sink's results appear, at zero, once
    /// the notifier starts).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.sub_registry_with_prefix("canary_gate").register(
            "notifications",
            "Notifications, by sink and result (success, failure, dropped)",
            m.notifications.clone(),
        );
        m
    }

    /// How many notifications to `sink` ended with `result` so far.
    pub fn count(&self, sink: &str, result: &str) -> u64 {
        self.counter(sink, result).get()
    }

    fn counter(&self, sink: &str, result: &str) -> Counter {
        self.notifications
            .get_or_create(&SinkResultLabel {
                sink: sink.to_string(),
                result: result.to_string(),
            })
            .clone()
    }
}

/// What one reconcile will send: each notice with the sink (index) it goes to.
#[derive(Debug, Default)]
pub struct Pending {
    deliveries: Vec<(usize, Arc<Notice>)>,
}

impl Pending {
    /// `(sink index, notice)` pairs; the index is into [`Notifier::sinks`].
    pub fn deliveries(&self) -> &[(usize, Arc<Notice>)] {
        &self.deliveries
    }
}

/// Where reconciles send rollout events (cheap to clone). The default has no sinks: every
/// Rollout that selects one gets `NotificationsConfigured=False` saying so.
#[derive(Clone, Debug)]
pub struct Notifier {
    config: Arc<NotifyConfig>,
    outboxes: Arc<[Outbox<Arc<Notice>>]>,
}

impl Default for Notifier {
    fn default() -> Self {
        let config = NotifyConfig::from_flag(None).unwrap_or_default();
        Self {
            config: Arc::new(config),
            outboxes: Arc::from(Vec::new()),
        }
    }
}

impl Notifier {
    /// Starts one worker per sink of `config`, counting results in `metrics`.
    ///
    /// # Errors
    /// A sink whose HTTP client cannot be built.
    ///
    /// # Panics
    /// With sinks, outside a Tokio runtime (it spawns their workers).
    pub fn start(config: NotifyConfig, metrics: NotificationMetrics) -> Result<Self, NotifyError> {
        let d = &config.delivery;
        let post = PostConfig {
            timeout: d.timeout,
            retries: d.retries,
            backoff: d.backoff,
            max_retry_after: d.max_retry_after,
        };
        let mut outboxes = Vec::new();
        for sink in &config.sinks {
            let invalid = |problem: &str| NotifyError::Invalid {
                origin: config.origin.clone(),
                field: format!("sink {}: url", sink.name),
                problem: problem.to_string(),
            };
            let url = Url::parse(sink.url.expose().trim()).map_err(|_| invalid("is not a URL"))?;
            // A server may echo the URL, or only its path (where Slack's and Teams' credential
            // is): scrub both, and the key.
            let mut redactions = vec![sink.url.clone()];
            if url.path().len() > 1 {
                redactions.push(Secret::new(url.path()));
            }
            if let Some(query) = url.query() {
                redactions.push(Secret::new(query));
            }
            redactions.extend(sink.signing_key.clone());
            let poster = Poster::new(
                format!("sink {}", sink.name),
                post.clone(),
                HeaderMap::new(),
                url.scheme() == "http",
                redactions,
            )
            .map_err(|source| NotifyError::Client {
                sink: sink.name.clone(),
                source,
            })?;
            let tally = Tally {
                success: metrics.counter(&sink.name, SUCCESS),
                failure: metrics.counter(&sink.name, FAILURE),
                dropped: metrics.counter(&sink.name, DROPPED),
            };
            let worker = SinkWorker {
                name: sink.name.clone(),
                kind: sink.kind,
                url,
                key: sink
                    .signing_key
                    .as_ref()
                    .map(|k| SigningKey::new(k.expose())),
                poster,
            };
            outboxes.push(Outbox::start(
                format!("notifications to sink {}", sink.name),
                d.queue,
                tally,
                worker,
            ));
        }
        if !config.sinks.is_empty() {
            let sinks: Vec<String> = config
                .sinks
                .iter()
                .map(|s| format!("{} ({})", s.name, s.kind.as_str()))
                .collect();
            tracing::info!(sinks = %sinks.join(", "), origin = %config.origin, "posting notifications");
        }
        Ok(Self {
            config: Arc::new(config),
            outboxes: Arc::from(outboxes),
        })
    }

    /// Before the status write of a reconcile of `rollout` (`old` → `next` at `now`, unix
    /// seconds; `plan` gives the steps' weights): sets `NotificationsConfigured` on `next` and
    /// returns what to send once `next` is written.
    pub fn prepare(
        &self,
        rollout: &Rollout,
        plan: Option<&StepPlan>,
        old: &RolloutStatus,
        next: &mut RolloutStatus,
        now: f64,
    ) -> Pending {
        let namespace = rollout.namespace().unwrap_or_default();
        let name = rollout.name_any();
        let wanted = &rollout.spec.notifications;
        let selection = select(&self.config, &namespace, wanted);
        set_condition(next, &self.config, wanted, &selection, now);
        if !selection.problems.is_empty() {
            let said = |s: &RolloutStatus| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == CONDITION)
                    .map(|c| (c.status.clone(), c.message.clone()))
            };
            if said(old) != said(next) {
                tracing::warn!(
                    rollout = %name,
                    %namespace,
                    problems = %selection.problems.join("; "),
                    "spec.notifications names sinks that cannot be used"
                );
            }
        }
        if selection.routes.is_empty() {
            return Pending::default();
        }
        let mut deliveries = Vec::new();
        for notice in events(&namespace, &name, plan, old, next, now) {
            let notice = Arc::new(notice);
            for sink in selection.sinks_for(notice.event) {
                deliveries.push((sink, notice.clone()));
            }
        }
        Pending { deliveries }
    }

    /// Queues what [`Notifier::prepare`] found, after the status write; never blocks.
    pub fn send(&self, pending: Pending) {
        for (sink, notice) in pending.deliveries {
            if let Some(outbox) = self.outboxes.get(sink) {
                outbox.send([notice]);
            }
        }
    }

    /// The configured sinks' names, in order (a [`Pending`] delivery's index points here).
    pub fn sinks(&self) -> impl Iterator<Item = &str> {
        self.config.names()
    }
}

/// Posts one sink's notices in its format.
struct SinkWorker {
    name: String,
    kind: SinkKind,
    url: Url,
    key: Option<SigningKey>,
    poster: Poster,
}

impl Deliver<Arc<Notice>> for SinkWorker {
    async fn deliver(&mut self, n: Arc<Notice>) -> bool {
        let body = match self.kind {
            SinkKind::Webhook => serde_json::to_vec(&*n),
            SinkKind::Slack => serde_json::to_vec(&slack::body(&n)),
            SinkKind::Teams => serde_json::to_vec(&teams::body(&n)),
        };
        let result = match body {
            Err(e) => Err(format!("cannot encode the notification: {e}")),
            Ok(body) => {
                let headers = || match self.kind {
                    SinkKind::Webhook => {
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                        signature::headers(n.event.as_str(), &n.id, now, &body, self.key.as_ref())
                    }
                    SinkKind::Slack | SinkKind::Teams => HeaderMap::new(),
                };
                self.poster
                    .post(&self.url, &body, headers)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        match result {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(
                    sink = %self.name,
                    kind = self.kind.as_str(),
                    event = n.event.as_str(),
                    rollout = %format!("{}/{}", n.rollout.namespace, n.rollout.name),
                    id = %n.id,
                    %error,
                    "notification lost"
                );
                false
            }
        }
    }
}
