//! Stage *observe*: what the cluster says — the target Deployment's revision and a pending human
//! action.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;

use crate::crd::Rollout;

use super::error::ReconcileError;

use crate::rollout::{ACTION_ANNOTATION, Action};

/// A stable hash of a pod template (FNV-1a 64 over its JSON), as the revision name.
pub fn revision(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in json {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")[..10].to_string()
}

/// The pending action on a Rollout: `(action, annotation value)` unless that value was handled.
///
/// # Errors
/// When the annotation holds an unknown action (the message lists the valid ones).
pub fn action(
    rollout: &Rollout,
    handled: Option<&str>,
) -> Result<Option<(Action, String)>, ReconcileError> {
    let Some(value) = rollout.annotations().get(ACTION_ANNOTATION) else {
        return Ok(None);
    };
    if handled == Some(value.as_str()) {
        return Ok(None);
    }
    let action = Action::parse(value).map_err(|e| ReconcileError::InvalidAction(e.to_string()))?;
    Ok(Some((action, value.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_revision_is_stable_and_changes_with_the_template() {
        assert_eq!(revision(&pod("web:1")), revision(&pod("web:1")));
        assert_ne!(revision(&pod("web:1")), revision(&pod("web:2")));
        assert_eq!(revision(&pod("web:1")).len(), 10);
    }

    #[test]
    fn an_action_is_taken_once_per_value_and_unknown_ones_are_explained() {
        let mut r: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "annotations": {ACTION_ANNOTATION: "promote@1"}},
            "spec": {"targetRef": {"name": "web"}, "strategy": {}}
        }))
        .unwrap();
        assert_eq!(
            action(&r, None).unwrap(),
            Some((Action::Promote, "promote@1".into()))
        );
        assert_eq!(action(&r, Some("promote@1")).unwrap(), None);
        r.annotations_mut()
            .insert(ACTION_ANNOTATION.into(), "promot".into());
        assert!(
            action(&r, None)
                .unwrap_err()
                .to_string()
                .contains("use promote, promote-full, abort, retry or undo")
        );
    }
}
