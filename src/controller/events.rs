//! Kubernetes Events about Rollouts (`events.k8s.io/v1`): one Event per note, so every step
//! change and decision stays readable in `kubectl describe`; only an identical note (same
//! object, type, reason and text) repeated within [`SERIES_WINDOW`] becomes a count on the first
//! Event instead of a new one.
//!
//! kube-runtime's `Recorder` is not used: it folds every Event with the same reason into the
//! first one's text (so "step 1 → 2" would be shown as "step 0 → 1", twice) and scans its whole
//! cache on every publish, which at 10 000 Rollouts was a quarter of the controller's time.
//! Here the memory of recent Events is bounded ([`CAPACITY`]) and expires in insertion order.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The reporting controller named on every Event.
pub const REPORTING_CONTROLLER: &str = "canary-gate";
/// How long an identical note counts as a repeat of the first.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// How many recent Events are remembered for counting repeats.
pub const CAPACITY: usize = 8192;

/// Errors writing an Event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The API server refused or could not be reached.
    #[error("writing Event {reason:?} about {object}: {source}")]
    Api {
        /// The Event's reason.
        reason: String,
        /// `namespace/name` of the object it is about.
        object: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// Writes Events; cheap to share (one per controller).
pub struct EventWriter {
    client: Client,
    instance: String,
    sequence: std::sync::atomic::AtomicU64,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    seen: HashMap<String, Seen>,
    order: VecDeque<(String, Instant)>,
}

struct Seen {
    name: String,
    count: i32,
    first: Instant,
}

impl Recent {
    fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            if now.duration_since(*at) < SERIES_WINDOW && self.order.len() <= CAPACITY {
                break;
            }
            if self.seen.get(key).is_some_and(|s| s.first == *at) {
                self.seen.remove(key);
            }
            self.order.pop_front();
        }
    }
}

impl EventWriter {
    /// A writer reporting as `canary-gate` from `instance` (the pod name; the controller's name
    /// when unset).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Self {
            client,
            instance: instance.unwrap_or_else(|| REPORTING_CONTROLLER.to_string()),
            sequence: std::sync::atomic::AtomicU64::new(0),
            recent: Mutex::default(),
        }
    }

    /// Writes an Event about `regarding` (in its namespace).
    ///
    /// # Errors
    /// When the API server refuses the Event or cannot be reached.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> Result<(), EventError> {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let object = format!(
            "{namespace}/{}",
            regarding.name.as_deref().unwrap_or_default()
        );
        let key = format!(
            "{}\u{0}{object}\u{0}{warning}\u{0}{reason}\u{0}{note}",
            regarding.uid.as_deref().unwrap_or_default()
        );
        let error = |source| EventError::Api {
            reason: reason.to_string(),
            object: object.clone(),
            source,
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Instant::now();
        let repeat = {
            let mut recent = self.lock();
            recent.expire(now);
            recent.seen.get_mut(&key).map(|s| {
                s.count += 1;
                (s.name.clone(), s.count)
            })
        };
        if let Some((name, count)) = repeat {
            let patch = json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(Timestamp::now()),
            }});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(error)?;
            return Ok(());
        }
        let event = Event {
            metadata: ObjectMeta {
                name: Some(self.event_name(regarding)),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(Timestamp::now())),
            action: Some("Reconcile".into()),
            reason: Some(reason.to_string()),
            note: Some(note.to_string()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        let created = api
            .create(&PostParams::default(), &event)
            .await
            .map_err(error)?;
        let name = created.name_any();
        if !name.is_empty() {
            let mut recent = self.lock();
            recent.order.push_back((key.clone(), now));
            recent.seen.insert(
                key,
                Seen {
                    name,
                    count: 1,
                    first: now,
                },
            );
            recent.expire(now);
        }
        Ok(())
    }

    /// `<object>.<hex>`, unique per writer: the time in nanoseconds plus a sequence number
    /// (`generateName` would end in a dot, which the API server refuses).
    fn event_name(&self, regarding: &ObjectReference) -> String {
        let object = regarding.name.as_deref().unwrap_or(REPORTING_CONTROLLER);
        let object = &object[..object.len().min(200)];
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seq = self
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{object}.{:x}", nanos.wrapping_add(seq))
    }

    /// Recent Events remembered (bounded by [`CAPACITY`]).
    pub fn remembered(&self) -> usize {
        self.lock().seen.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
