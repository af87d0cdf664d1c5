//! Watch caches of Deployments, so a reconcile reads them from memory instead of the API
//! server: canary-gate's own workloads (the Deployments labelled `canarygate.dev/rollout`, from a
//! label-filtered watch) and the Rollouts' target Deployments (from the watch of every
//! Deployment that wakes the Rollouts, keeping only those a Rollout targets). Each object is kept
//! as compact JSON (about a quarter of the memory of the decoded object) and decoded when read.
//!
//! A target's `status` is dropped (nothing reads it). `managedFields` are dropped — except, in
//! the target cache, canary-gate's own entries: whether canary-gate owns a target's
//! `spec.replicas` (its 0 after the hand-over, not a human's) is read from them
//! ([`super::availability::replicas_are_ours`]), and that entry is a few bytes. A cached target
//! therefore carries a partial `managedFields` list: never write one back as it is (a non-empty
//! list in an update replaces the server's; clear it first, as `undo` does).
//!
//! A target is kept from the first watch event after a Rollout that targets it was indexed, or
//! from the GET of a reconcile that did not find it here ([`DeploymentCache::fill`]); from then
//! on every event of it is applied, so a kept object is as current as the watch. A Deployment no
//! Rollout targets is not kept: a cluster's other Deployments cost nothing.
//!
//! A reconcile may read a Deployment a moment before its own last write shows up here; what it
//! then does is what it did with a stale GET: server-side apply again (idempotent), or wait for
//! pods that the next watch event reports — the watch wakes the Rollout either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::traffic::{FIELD_MANAGER, ROLLOUT_LABEL};

use super::target_index::TargetIndex;

type Key = (String, String);

/// The cache; share it (`Arc`) between the watch task and the reconciles.
#[derive(Debug, Default)]
pub struct DeploymentCache {
    objects: RwLock<HashMap<Key, Arc<[u8]>>>,
    /// Filled during a (re)list before it replaces `objects`.
    relisting: RwLock<HashMap<Key, Arc<[u8]>>>,
    synced: AtomicBool,
    /// `None`: keep every Deployment the watch delivers (canary-gate's workloads, a
    /// label-filtered watch), without `managedFields`; `Some`: only those a Rollout targets (and
    /// those already kept), with canary-gate's own `managedFields` entries.
    targets: Option<Arc<TargetIndex>>,
}

impl DeploymentCache {
    /// A cache of the Rollouts' target Deployments, fed by a watch of every Deployment.
    pub fn of_targets(index: Arc<TargetIndex>) -> Self {
        Self {
            targets: Some(index),
            ..Self::default()
        }
    }

    /// A Deployment a reconcile read from the API server because it was not kept here: kept
    /// from now on (the watch keeps it current) unless the watch has delivered it meanwhile.
    pub fn fill(&self, deployment: &Deployment) {
        if !self.synced() {
            return;
        }
        let key = key(deployment);
        if let Some(bytes) = self.encode(deployment) {
            self.write().entry(key).or_insert(bytes);
        }
    }

    /// Whether to keep the Deployment `key` (held now in `held`).
    fn keeps(&self, key: &Key, held: &HashMap<Key, Arc<[u8]>>) -> bool {
        match &self.targets {
            None => true,
            Some(index) => index.is_target(&key.0, &key.1) || held.contains_key(key),
        }
    }

    /// The workload `name` in `namespace`, as last seen; `None` when there is none. Only
    /// meaningful once [`DeploymentCache::synced`].
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
    pub fn take(&self, event: &Event<Deployment>) {
        match event {
            Event::Apply(d) => {
                let key = key(d);
                // Encoded outside the write lock: reconciles read while the watch writes.
                let keep = self.keeps(
                    &key,
                    &self.objects.read().unwrap_or_else(|e| e.into_inner()),
                );
                if keep && let Some(bytes) = self.encode(d) {
                    self.write().insert(key, bytes);
                }
            }
            Event::Delete(d) => {
                self.write().remove(&key(d));
            }
            Event::Init => self.relist().clear(),
            Event::InitApply(d) => {
                let key = key(d);
                let keep = self.keeps(
                    &key,
                    &self.objects.read().unwrap_or_else(|e| e.into_inner()),
                );
                if keep && let Some(bytes) = self.encode(d) {
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
                        Ok(event) => cache.take(&event),
                        Err(e) => tracing::warn!(
                            error = &e as &dyn std::error::Error,
                            "workload cache watch (canary-gate's own Deployments)"
                        ),
                    }
                    async {}
                }),
        );
    }

    /// The object as compact JSON, with only the `managedFields` this cache keeps; a target
    /// without its `status` (nothing reads a target's status, and an update ignores it).
    fn encode(&self, d: &Deployment) -> Option<Arc<[u8]>> {
        let mut d = d.clone();
        if self.targets.is_some() {
            keep_own_fields(&mut d);
            d.status = None;
        } else {
            d.metadata.managed_fields = None;
        }
        let bytes = serde_json::to_vec(&d).ok()?;
        Some(Arc::from(bytes.into_boxed_slice()))
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

/// Drops every `managedFields` entry but canary-gate's own ([`FIELD_MANAGER`]); `None` when
/// none is left.
pub fn keep_own_fields(d: &mut Deployment) {
    let fields = &mut d.metadata.managed_fields;
    if let Some(list) = fields.as_mut() {
        list.retain(|m| m.manager.as_deref() == Some(FIELD_MANAGER));
        if list.is_empty() {
            *fields = None;
        }
    }
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
        let cache = DeploymentCache::default();
        assert!(!cache.synced());
        cache.take(&Event::Init);
        cache.take(&Event::InitApply(workload("web-stable", 4)));
        cache.take(&Event::InitApply(workload("web-canary", 1)));
        assert!(
            cache.get("shop", "web-stable").is_none(),
            "not before InitDone"
        );
        cache.take(&Event::InitDone);
        assert!(cache.synced());
        let stable = cache.get("shop", "web-stable").unwrap();
        assert_eq!(stable.spec.unwrap().replicas, Some(4));
        assert!(
            stable.metadata.managed_fields.is_none(),
            "managedFields are not kept"
        );

        cache.take(&Event::Apply(workload("web-stable", 5)));
        cache.take(&Event::Delete(workload("web-canary", 1)));
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
        cache.take(&Event::Init);
        cache.take(&Event::InitApply(workload("api-stable", 2)));
        cache.take(&Event::InitDone);
        assert!(cache.get("shop", "web-stable").is_none());
        assert_eq!(cache.len(), 1);
    }

    fn target(name: &str, image: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop",
                "managedFields": [
                    {"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}},
                    {"manager": "canary-gate", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {"selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": image}]}}},
            "status": {"replicas": 2, "availableReplicas": 2}
        }))
        .unwrap()
    }

    fn image(cache: &DeploymentCache, name: &str) -> Option<String> {
        cache
            .get("shop", name)?
            .spec?
            .template
            .spec?
            .containers
            .first()?
            .image
            .clone()
    }

    #[test]
    fn the_target_cache_keeps_only_what_a_rollout_targets_and_keeps_it_current() {
        let index = Arc::new(TargetIndex::default());
        let cache = DeploymentCache::of_targets(index.clone());
        cache.take(&Event::Init);
        cache.take(&Event::InitApply(target("web", "web:1")));
        cache.take(&Event::InitApply(target("batch", "batch:1")));
        cache.take(&Event::InitDone);
        assert!(cache.synced());
        assert!(cache.is_empty(), "no Rollout targets anything yet");

        // A Rollout is indexed: the next event of its target is kept, another Deployment's not.
        index.set("shop", "web", Some("web"));
        cache.take(&Event::Apply(target("web", "web:2")));
        cache.take(&Event::Apply(target("batch", "batch:2")));
        assert_eq!(image(&cache, "web").as_deref(), Some("web:2"));
        assert!(cache.get("shop", "batch").is_none());
        // Only canary-gate's own managedFields entry is kept: it says whose the replicas are.
        let cached = cache.get("shop", "web").unwrap();
        let managers: Vec<_> = cached
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|m| m.manager.clone().unwrap_or_default())
            .collect();
        assert_eq!(managers, ["canary-gate"]);
        assert!(cached.status.is_none(), "a target's status is not kept");
        assert!(crate::controller::availability::replicas_are_ours(&cached));

        // A reconcile's GET fills a miss, but never over what the watch delivered.
        index.set("shop", "api", Some("api"));
        cache.fill(&target("api", "api:1"));
        assert_eq!(image(&cache, "api").as_deref(), Some("api:1"));
        cache.fill(&target("web", "web:1"));
        assert_eq!(image(&cache, "web").as_deref(), Some("web:2"));
        // Once kept, every event applies — even after the Rollout stopped targeting it.
        index.set("shop", "api", None);
        cache.take(&Event::Apply(target("api", "api:2")));
        assert_eq!(image(&cache, "api").as_deref(), Some("api:2"));

        // A relist keeps what is targeted or held; a deleted target is gone.
        cache.take(&Event::Delete(target("web", "web:2")));
        assert!(cache.get("shop", "web").is_none());
        cache.take(&Event::Init);
        cache.take(&Event::InitApply(target("web", "web:3")));
        cache.take(&Event::InitApply(target("api", "api:3")));
        cache.take(&Event::InitApply(target("batch", "batch:3")));
        cache.take(&Event::InitDone);
        assert_eq!(image(&cache, "web").as_deref(), Some("web:3"));
        assert_eq!(image(&cache, "api").as_deref(), Some("api:3"));
        assert!(cache.get("shop", "batch").is_none());
    }

    #[test]
    fn nothing_is_filled_before_the_first_list() {
        let index = Arc::new(TargetIndex::default());
        index.set("shop", "web", Some("web"));
        let cache = DeploymentCache::of_targets(index);
        cache.fill(&target("web", "web:1"));
        assert!(cache.is_empty());
    }
}
