//! Which Rollouts a Deployment event concerns, in O(1): the Rollouts that target it (learned as
//! each Rollout is reconciled), or the one that owns it (its workloads carry the
//! `canarygate.dev/rollout` label). Scanning every Rollout per Deployment event cost O(Rollouts)
//! for every pod-status change in the cluster.
//!
//! A Deployment event before a Rollout's first reconcile maps to nothing, which is harmless: that
//! first reconcile reads the Deployment as it is then.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::traffic::ROLLOUT_LABEL;

/// Rollouts by the Deployment they target, per namespace.
#[derive(Debug, Default)]
pub struct TargetIndex {
    inner: Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    /// (namespace, Deployment) → Rollouts targeting it.
    by_target: HashMap<(String, String), BTreeSet<String>>,
    /// (namespace, Rollout) → its target.
    target_of: HashMap<(String, String), String>,
}

impl TargetIndex {
    /// Records that Rollout `namespace/rollout` targets `target` (`None`: it is gone).
    pub fn set(&self, namespace: &str, rollout: &str, target: Option<&str>) {
        let mut index = self.lock();
        let key = (namespace.to_string(), rollout.to_string());
        if index.target_of.get(&key).map(String::as_str) == target {
            return;
        }
        if let Some(old) = index.target_of.remove(&key) {
            let old_key = (namespace.to_string(), old);
            if let Some(set) = index.by_target.get_mut(&old_key) {
                set.remove(rollout);
                if set.is_empty() {
                    index.by_target.remove(&old_key);
                }
            }
        }
        if let Some(target) = target {
            index
                .by_target
                .entry((namespace.to_string(), target.to_string()))
                .or_default()
                .insert(rollout.to_string());
            index.target_of.insert(key, target.to_string());
        }
    }

    /// The Rollouts (names, in `namespace`) an event of Deployment `name` with `labels` wakes.
    pub fn rollouts_for(
        &self,
        namespace: &str,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut out: Vec<String> = self
            .lock()
            .by_target
            .get(&(namespace.to_string(), name.to_string()))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        if let Some(owner) = labels.get(ROLLOUT_LABEL)
            && !out.contains(owner)
        {
            out.push(owner.clone());
        }
        out
    }

    /// Whether a Rollout targets Deployment `name` in `namespace`.
    pub fn is_target(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .by_target
            .contains_key(&(namespace.to_string(), name.to_string()))
    }

    /// Rollouts indexed.
    pub fn len(&self) -> usize {
        self.lock().target_of.len()
    }

    /// True when no Rollout is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(owner: Option<&str>) -> BTreeMap<String, String> {
        owner
            .map(|o| BTreeMap::from([(ROLLOUT_LABEL.to_string(), o.to_string())]))
            .unwrap_or_default()
    }

    #[test]
    fn a_deployment_wakes_the_rollouts_that_target_it_or_own_it_and_no_others() {
        let index = TargetIndex::default();
        index.set("shop", "web", Some("web"));
        index.set("shop", "web-b", Some("web")); // two Rollouts on one Deployment
        index.set("shop", "api", Some("api"));
        index.set("other", "web", Some("web"));
        assert_eq!(
            index.rollouts_for("shop", "web", &labels(None)),
            ["web", "web-b"]
        );
        assert_eq!(index.rollouts_for("other", "web", &labels(None)), ["web"]);
        // A workload is woken through its label, not its name.
        assert_eq!(
            index.rollouts_for("shop", "web-canary", &labels(Some("web"))),
            ["web"]
        );
        assert!(index.rollouts_for("shop", "db", &labels(None)).is_empty());

        // A Rollout that changes its target, and one that is gone.
        index.set("shop", "web-b", Some("web2"));
        index.set("shop", "api", None);
        assert_eq!(index.rollouts_for("shop", "web", &labels(None)), ["web"]);
        assert_eq!(index.rollouts_for("shop", "web2", &labels(None)), ["web-b"]);
        assert!(index.rollouts_for("shop", "api", &labels(None)).is_empty());
        assert_eq!(index.len(), 3);
    }
}
