//! Traffic routers and canary workloads: what the cluster's objects must say for a given split.
//!
//! Every router is pure: from the object as read from the API server and the [`Split`] in force,
//! it builds the server-side apply body that puts the split in place, and reads back the weight
//! an object carries. The controller's *apply* stage does the I/O (read, apply when different,
//! read back) with the field manager [`FIELD_MANAGER`].
//!
//! Routers, chosen by `spec.trafficRouting` (see the README's table):
//! - replica ratio (no `trafficRouting`): one Service selects both versions; the weight becomes
//!   pod counts ([`replicas`]) — coarse: with 4 pods the canary gets 0, 25, 50, 75 or 100 %;
//! - Gateway API `HTTPRoute` backendRef weights ([`gateway_api`]);
//! - Istio `VirtualService` route weights to `DestinationRule` subsets ([`istio`]);
//! - NGINX Ingress canary annotations on a canary Ingress ([`nginx`]);
//! - blue-green: the active and preview Services' selectors ([`service_selector`]).

pub mod gateway_api;
pub mod istio;
pub mod matching;
pub mod nginx;
/// How many pods each version runs for a weight (pure; part of the rollout core).
pub use crate::rollout::replicas;
pub mod service_selector;
pub mod workload;

use serde_json::Value;

use crate::crd::rollout::{RolloutSpec, RouteMatch};

/// Field manager of everything canary-gate applies outside its own status.
pub const FIELD_MANAGER: &str = "canary-gate";
/// Pod label naming the role of a pod's version: `stable` or `canary`.
pub const VERSION_LABEL: &str = "canarygate.dev/version";
/// Pod label carrying the revision (pod-template hash) a pod runs.
pub const REVISION_LABEL: &str = "canarygate.dev/revision";
/// Label on the objects canary-gate creates, naming the Rollout they belong to.
pub const ROLLOUT_LABEL: &str = "canarygate.dev/rollout";

/// The traffic split to put in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Percentage of traffic (0–100) for the canary.
    pub weight: i32,
    /// Requests matching any of these go to the canary whatever the weight (A/B). Empty when no
    /// canary is live (healthy, rolled back, aborted).
    pub matches: Vec<RouteMatch>,
    /// Revision of the stable version.
    pub stable_revision: String,
    /// Revision being rolled out, if any.
    pub canary_revision: Option<String>,
}

/// An object a router reads or writes, in the Rollout's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// API group (empty for the core group).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Resource (plural, lowercase).
    pub plural: &'static str,
    /// Object name.
    pub name: String,
}

impl ObjectRef {
    /// `group/version` or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The CRD that defines this kind (`plural.group`), when it is not a built-in.
    pub fn crd_name(&self) -> Option<String> {
        match self.group {
            "" | "apps" | "networking.k8s.io" => None,
            group => Some(format!("{}.{group}", self.plural)),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// Why a router cannot build its object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrafficError {
    /// The object read does not have what the router needs.
    #[error("{object}: {problem}")]
    Unusable {
        /// The object, e.g. `HTTPRoute web`.
        object: String,
        /// What is missing or wrong, and how to fix it.
        problem: String,
    },
    /// The Rollout asks for something this router cannot express.
    #[error("{field}: {problem}")]
    Unsupported {
        /// The Rollout field, e.g. `spec.trafficRouting.matches[1]`.
        field: String,
        /// Why, and what to use instead.
        problem: String,
    },
}

/// A way of moving traffic: pure functions over the objects it reads and writes.
pub trait Router: Send + Sync {
    /// The object read to build the write (the user's object, or what a created object copies).
    fn reads(&self) -> ObjectRef;

    /// The object written; the one read unless the router creates its own.
    fn writes(&self) -> ObjectRef {
        self.reads()
    }

    /// Whether canary-gate creates the written object (it then carries an owner reference to
    /// the Rollout and goes away with it).
    fn creates(&self) -> bool {
        false
    }

    /// The server-side apply body (apiVersion, kind, metadata.name and the fields canary-gate
    /// owns) that puts `split` in force, given the object read.
    ///
    /// # Errors
    /// When the object read lacks what the router needs, or the split cannot be expressed.
    fn desired(&self, read: &Value, split: &Split) -> Result<Value, TrafficError>;

    /// The canary weight the written object carries, as read back; `None` when it carries none
    /// canary-gate recognises.
    fn in_force(&self, written: &Value) -> Option<i32>;
}

/// The routers a Rollout's spec asks for (empty: replica ratio, which only scales workloads).
pub fn routers(spec: &RolloutSpec) -> Vec<Box<dyn Router>> {
    let mut out: Vec<Box<dyn Router>> = Vec::new();
    if let Some(bg) = &spec.strategy.blue_green {
        out.push(Box::new(service_selector::ActiveService {
            service: bg.active_service.clone(),
        }));
        if let Some(preview) = &bg.preview_service {
            out.push(Box::new(service_selector::PreviewService {
                service: preview.clone(),
            }));
        }
        return out;
    }
    let Some(routing) = &spec.traffic_routing else {
        return out;
    };
    if let Some(g) = &routing.gateway_api {
        out.push(Box::new(gateway_api::HttpRoute {
            route: g.http_route.clone(),
            stable_service: g.stable_service.clone(),
            canary_service: g.canary_service.clone(),
        }));
    }
    if let Some(i) = &routing.istio {
        out.push(Box::new(istio::DestinationRuleSubsets {
            destination_rule: i.destination_rule.clone(),
        }));
        out.push(Box::new(istio::VirtualServiceRoutes {
            virtual_service: i.virtual_service.clone(),
        }));
    }
    if let Some(n) = &routing.nginx {
        out.push(Box::new(nginx::CanaryIngress {
            stable_ingress: n.stable_ingress.clone(),
            stable_service: n.stable_service.clone(),
            canary_service: n.canary_service.clone(),
        }));
    }
    out
}

/// Whether `current` already holds every value of `desired` (objects compared key by key,
/// everything else exactly): applying `desired` would change nothing.
pub fn contains(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(c), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| c.get(k).is_some_and(|cv| contains(cv, dv)) || dv.is_null()),
        (c, d) => c == d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contains_compares_objects_by_key_and_lists_exactly() {
        let current = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        assert!(contains(&current, &json!({"b": {"c": [1, 2]}})));
        assert!(!contains(&current, &json!({"b": {"c": [1]}})));
        assert!(!contains(&current, &json!({"e": 1})));
        assert!(!contains(&current, &json!({"a": 2})));
    }
}
