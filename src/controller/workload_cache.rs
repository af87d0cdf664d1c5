//! A watch cache of canary-gate's own workloads (the Deployments labelled
//! `canarygate.dev/rollout`), so a reconcile reads `<target>-stable` and `<target>-canary` from
//! memory instead of two GETs. Each object is kept as compact JSON without its `managedFields`
//! (about a quarter of the memory of the decoded object) and decoded when read.
//!
//! A reconcile may read a workload a moment before its own last write shows up here; what it
//! then does is what it did with a stale GET: server-side apply again (idempotent), or wait for
//! pods that the next watch event reports — the watch wakes the Rollout either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};

use crate::traffic::ROLLOUT_LABEL;

type Key = (String, String);

/// The cache; share it (`Arc`) between the watch task and the reconciles.
#[derive(Debug, Default)]
pub struct WorkloadCache {
    objects: RwLock<HashMap<Key, Arc<[u8]>>>,
    /// Filled during a (re)list before it replaces `objects`.
    relisting: RwLock<HashMap<Key, Arc<[u8]>>>,
    synced: AtomicBool,
}

impl WorkloadCache {
    /// The workload `name` in `namespace`, as last seen; `None` when there is none. Only
    /// meaningful once [`WorkloadCache::synced`].
    pub fn get(&self, namespace: &str, name: &str) -> Option<Deployment> {
        let bytes = self
            .objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether the first list has been read (before that, reads go to the API server).
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.objects.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one watch event.
    pub fn take(&self, event: Event<Deployment>) {
        match event {
            Event::Apply(d) => {
                if let Some((key, bytes)) = encode(d) {
                    self.write().insert(key, bytes);
                }
            }
            Event::Delete(d) => {
                self.write().remove(&key(&d));
            }
            Event::Init => self.relist().clear(),
            Event::InitApply(d) => {
                if let Some((key, bytes)) = encode(d) {
                    self.relist().insert(key, bytes);
                }
            }
            Event::InitDone => {
                let fresh = std::mem::take(&mut *self.relist());
                *self.write() = fresh;
                self.synced.store(true, Ordering::Release);
            }
        }
    }

    /// Keeps the cache of `api`'s labelled Deployments for the life of the process.
    pub fn spawn(self: &Arc<Self>, api: Api<Deployment>) {
        let cache = self.clone();
        let config = watcher::Config::default().labels(ROLLOUT_LABEL);
        tokio::spawn(
            watcher::watcher(api, config)
                .default_backoff()
                .for_each(move |event| {
                    match event {
                        Ok(event) => cache.take(event),
                        Err(e) => tracing::warn!(
                            error = &e as &dyn std::error::Error,
                            "workload cache watch"
                        ),
                    }
                    async {}
                }),
        );
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Arc<[u8]>>> {
        self.objects.write().unwrap_or_else(|e| e.into_inner())
    }

    fn relist(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Arc<[u8]>>> {
        self.relisting.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(d: &Deployment) -> Key {
    (d.namespace().unwrap_or_default(), d.name_any())
}

/// The object as compact JSON without `managedFields`.
fn encode(mut d: Deployment) -> Option<(Key, Arc<[u8]>)> {
    d.meta_mut().managed_fields = None;
    let bytes = serde_json::to_vec(&d).ok()?;
    Some((key(&d), Arc::from(bytes.into_boxed_slice())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str, replicas: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "labels": {ROLLOUT_LABEL: "web"},
                "managedFields": [{"manager": "canary-gate", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn a_relist_replaces_everything_and_watch_events_keep_it_current() {
        let cache = WorkloadCache::default();
        assert!(!cache.synced());
        cache.take(Event::Init);
        cache.take(Event::InitApply(workload("web-stable", 4)));
        cache.take(Event::InitApply(workload("web-canary", 1)));
        assert!(
            cache.get("shop", "web-stable").is_none(),
            "not before InitDone"
        );
        cache.take(Event::InitDone);
        assert!(cache.synced());
        let stable = cache.get("shop", "web-stable").unwrap();
        assert_eq!(stable.spec.unwrap().replicas, Some(4));
        assert!(
            stable.metadata.managed_fields.is_none(),
            "managedFields are not kept"
        );

        cache.take(Event::Apply(workload("web-stable", 5)));
        cache.take(Event::Delete(workload("web-canary", 1)));
        assert_eq!(
            cache
                .get("shop", "web-stable")
                .unwrap()
                .spec
                .unwrap()
                .replicas,
            Some(5)
        );
        assert!(cache.get("shop", "web-canary").is_none());

        // A relist after a watch restart: what is gone from the list is gone from the cache.
        cache.take(Event::Init);
        cache.take(Event::InitApply(workload("api-stable", 2)));
        cache.take(Event::InitDone);
        assert!(cache.get("shop", "web-stable").is_none());
        assert_eq!(cache.len(), 1);
    }
}
