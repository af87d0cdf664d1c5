//! The Rollouts whose last status write the watch cache has not shown yet, so that no pass
//! decides from a status older than the one it wrote.
//!
//! The controller does not reconcile on the watch events its own status writes cause (the
//! Rollouts' trigger stream ignores status-only changes, see `run.rs`): a pass that comes later
//! — a timer, a Deployment's change — reads the Rollout from the watch cache. Under a loaded API
//! server that cache can lag behind the write by seconds, and a pass that decided from the older
//! status would redo what the last one did (advance a step twice, repeat its Events). Status is
//! written by server-side apply without a precondition, so nothing on the server would stop it.
//!
//! Each write remembers the `resourceVersion` of the object the pass read; a pass that reads
//! that same version again knows the cache is behind and waits. Resource versions are compared
//! for equality only (they are opaque). A write the server took as a no-op (the version it
//! returns is the one read) is not remembered: the cache is then not behind.

use std::collections::HashMap;
use std::sync::Mutex;

/// The `resourceVersion` each Rollout had when a status was last written over it, until the
/// watch cache shows a newer one.
#[derive(Default)]
pub struct StatusWrites {
    behind: Mutex<HashMap<(String, String), String>>,
}

impl StatusWrites {
    /// A status was written over the Rollout as it was at `read` (its `resourceVersion` as the
    /// pass read it); the server answered with `written`.
    pub fn wrote(&self, namespace: &str, name: &str, read: Option<&str>, written: Option<&str>) {
        let mut behind = self.behind.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_string(), name.to_string());
        match (read, written) {
            (Some(read), Some(written)) if read != written => {
                behind.insert(key, read.to_string());
            }
            _ => {
                behind.remove(&key);
            }
        }
    }

    /// Whether the Rollout as read (`resourceVersion` `seen`) is older than its last status
    /// write; once it is not, the write is forgotten.
    pub fn cache_is_behind(&self, namespace: &str, name: &str, seen: Option<&str>) -> bool {
        let mut behind = self.behind.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_string(), name.to_string());
        match (behind.get(&key), seen) {
            (Some(read), Some(seen)) if read == seen => true,
            (Some(_), _) => {
                behind.remove(&key);
                false
            }
            (None, _) => false,
        }
    }

    /// A Rollout that is gone.
    pub fn forget(&self, namespace: &str, name: &str) {
        let mut behind = self.behind.lock().unwrap_or_else(|p| p.into_inner());
        behind.remove(&(namespace.to_string(), name.to_string()));
    }

    /// How many writes the cache has not shown yet.
    pub fn len(&self) -> usize {
        self.behind.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache has shown every write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_reading_the_version_it_wrote_over_waits_until_the_cache_moves_on() {
        let writes = StatusWrites::default();
        writes.wrote("ns", "web", Some("100"), Some("101"));
        assert!(writes.cache_is_behind("ns", "web", Some("100")));
        assert!(
            writes.cache_is_behind("ns", "web", Some("100")),
            "still behind"
        );
        assert!(
            !writes.cache_is_behind("ns", "api", Some("100")),
            "another Rollout"
        );
        assert!(
            !writes.cache_is_behind("other", "web", Some("100")),
            "another namespace"
        );
        // The cache shows the write (or anything newer): forgotten.
        assert!(!writes.cache_is_behind("ns", "web", Some("101")));
        assert!(writes.is_empty());
        assert!(!writes.cache_is_behind("ns", "web", Some("100")));
    }

    #[test]
    fn a_write_the_server_took_as_a_no_op_or_without_versions_is_not_remembered() {
        let writes = StatusWrites::default();
        writes.wrote("ns", "web", Some("100"), Some("100"));
        assert!(!writes.cache_is_behind("ns", "web", Some("100")));
        writes.wrote("ns", "web", None, Some("101"));
        writes.wrote("ns", "web", Some("100"), None);
        assert!(writes.is_empty());
        assert!(!writes.cache_is_behind("ns", "web", None));
    }

    #[test]
    fn a_later_write_replaces_the_earlier_and_a_deleted_rollout_is_forgotten() {
        let writes = StatusWrites::default();
        writes.wrote("ns", "web", Some("100"), Some("101"));
        writes.wrote("ns", "web", Some("101"), Some("102"));
        assert!(!writes.cache_is_behind("ns", "web", Some("102")));
        writes.wrote("ns", "web", Some("102"), Some("103"));
        assert!(writes.cache_is_behind("ns", "web", Some("102")));
        writes.forget("ns", "web");
        assert!(!writes.cache_is_behind("ns", "web", Some("102")));
        assert_eq!(writes.len(), 0);
    }
}
