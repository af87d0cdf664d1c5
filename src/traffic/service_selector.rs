//! Blue-green router: the active and preview Services select a revision.
//!
//! canary-gate owns one key of each Service's selector, `canarygate.dev/revision` (server-side
//! apply keeps the user's keys): the preview Service selects the new revision while it is
//! judged; the active Service selects the stable revision until promotion, then the new one in
//! one write (an instant switch), and the stable one again on a rollback or abort (an instant
//! switch-back while the old pods still run).

use serde_json::{Value, json};

use super::{ObjectRef, REVISION_LABEL, Router, Split, TrafficError};

/// The Service that receives production traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveService {
    /// Service name.
    pub service: String,
}

/// The Service that reaches the new version before the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewService {
    /// Service name.
    pub service: String,
}

fn service(name: &str) -> ObjectRef {
    ObjectRef {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        name: name.to_string(),
    }
}

fn selecting(name: &str, read: &Value, revision: &str) -> Result<Value, TrafficError> {
    if read.pointer("/spec/selector").is_none_or(|s| {
        s.as_object()
            .is_none_or(|m| m.keys().all(|k| k == REVISION_LABEL))
    }) {
        return Err(TrafficError::Unusable {
            object: format!("Service {name}"),
            problem: "has no selector of its own; give it the application's labels (e.g. app: web) and canary-gate adds the revision".into(),
        });
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {REVISION_LABEL: revision}}
    }))
}

impl Router for ActiveService {
    fn reads(&self) -> ObjectRef {
        service(&self.service)
    }

    fn desired(&self, read: &Value, split: &Split) -> Result<Value, TrafficError> {
        let revision = match &split.canary_revision {
            Some(canary) if split.weight >= 100 => canary,
            _ => &split.stable_revision,
        };
        selecting(&self.service, read, revision)
    }

    fn in_force(&self, _written: &Value) -> Option<i32> {
        None
    }
}

impl Router for PreviewService {
    fn reads(&self) -> ObjectRef {
        service(&self.service)
    }

    fn desired(&self, read: &Value, split: &Split) -> Result<Value, TrafficError> {
        let revision = split
            .canary_revision
            .as_deref()
            .unwrap_or(&split.stable_revision);
        selecting(&self.service, read, revision)
    }

    fn in_force(&self, _written: &Value) -> Option<i32> {
        None
    }
}

/// The revision a Service selects, as read back.
pub fn selected_revision(written: &Value) -> Option<&str> {
    written
        .pointer("/spec/selector")
        .and_then(|s| s.get(REVISION_LABEL))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(weight: i32, canary: Option<&str>) -> Split {
        Split {
            weight,
            matches: vec![],
            stable_revision: "aaa".into(),
            canary_revision: canary.map(str::to_string),
        }
    }

    fn web() -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    }

    fn body(name: &str, revision: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"selector": {REVISION_LABEL: revision}}})
    }

    #[test]
    fn the_active_service_switches_at_promotion_and_back_on_rollback() {
        let active = ActiveService {
            service: "web".into(),
        };
        // Before and during the preview's analysis: the stable revision.
        assert_eq!(
            active.desired(&web(), &split(0, None)).unwrap(),
            body("web", "aaa")
        );
        assert_eq!(
            active.desired(&web(), &split(0, Some("bbb"))).unwrap(),
            body("web", "aaa")
        );
        // Promotion: one write switches every request.
        assert_eq!(
            active.desired(&web(), &split(100, Some("bbb"))).unwrap(),
            body("web", "bbb")
        );
        // Rollback: straight back.
        assert_eq!(
            active.desired(&web(), &split(0, Some("bbb"))).unwrap(),
            body("web", "aaa")
        );
    }

    #[test]
    fn the_preview_service_follows_the_new_revision() {
        let preview = PreviewService {
            service: "web-preview".into(),
        };
        assert_eq!(
            preview.desired(&web(), &split(0, Some("bbb"))).unwrap(),
            body("web-preview", "bbb")
        );
        assert_eq!(
            preview.desired(&web(), &split(0, None)).unwrap(),
            body("web-preview", "aaa")
        );
        assert_eq!(selected_revision(&body("x", "bbb")), Some("bbb"));
    }

    #[test]
    fn a_service_without_its_own_selector_is_refused_with_the_fix() {
        let active = ActiveService {
            service: "web".into(),
        };
        let bare = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
        let e = active
            .desired(&bare, &split(0, None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Service web") && e.contains("app: web"), "{e}");
    }
}
