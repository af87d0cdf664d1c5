//! Stage *build* (pure): what the cluster must hold for the decided status — the stable and
//! canary workloads (`<target>-stable`, `<target>-canary`: pod templates and the replica split),
//! whether the target hands its pods over, and the traffic split the routers must carry (or,
//! with the replica ratio, the summary of the pods that are the split). *apply* writes exactly
//! this; *report* puts the summary into the status.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::crd::Rollout;
use crate::crd::rollout::{RolloutPhase, RolloutStatus};
use crate::rollout::pods;
use crate::time::parse_rfc3339;
use crate::traffic::workload::{self, Role};
use crate::traffic::{self, Router, Split};

use super::availability;
use super::observed::Seen;
use super::status::{canary_is_live, state_of};
use super::validate::{StrategyKind, ValidatedRollout};

/// The Rollout cannot own what would be built for it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No name or uid (an object read from the API server always has them).
    #[error("the Rollout has no name or uid to own its workloads")]
    Unidentified,
}

impl BuildError {
    /// A stable short name (see [`super::error::ReconcileError::category`]).
    pub fn category(&self) -> &'static str {
        "no_namespace"
    }
}

/// Where the stable workload's pod template comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum StableTemplate {
    /// Known from what was read: the template and its revision.
    Known(Box<PodTemplateSpec>, String),
    /// Only the target's ReplicaSets may still hold this revision's template (read only then).
    InHistory(String),
    /// The stable workload runs the revision, but its template cannot be read back.
    Unreadable,
}

/// What the cluster must hold.
pub struct Desired {
    /// The owner reference every written object carries (the Rollout).
    pub owner: OwnerReference,
    /// The stable revision.
    pub stable_revision: String,
    /// Pods of the application in all (`status.replicas`).
    pub replicas: i32,
    /// The label selector of the application's pods (`status.selector`).
    pub selector: Option<String>,
    /// The stable workload's apply body; `None` when its revision's template is nowhere.
    pub stable: Option<Value>,
    /// The canary workload's apply body; `None` when there is no canary workload to keep.
    pub canary: Option<Value>,
    /// Scale the target Deployment to zero now: the stable workload is available.
    pub hand_over: bool,
    /// What the routers must carry.
    pub traffic: Traffic,
}

/// The traffic split.
pub enum Traffic {
    /// No router: the pods are the split (the summary for the status).
    ReplicaRatio(String),
    /// The routers wait until the stable workload serves.
    WaitingForStable,
    /// Each router must carry the split.
    Routed {
        /// The routers, in order (later ones may depend on earlier ones).
        routers: Vec<Box<dyn Router>>,
        /// The split in force.
        split: Split,
    },
}

/// Whether a blue-green switch (or a router's in-flight requests) still needs the old pods:
/// the scale-down time has not come.
fn before_scale_down(status: &RolloutStatus, now: f64) -> bool {
    status
        .scale_down_at
        .as_deref()
        .and_then(parse_rfc3339)
        .is_some_and(|at| at > now)
}

/// Where the stable workload's template comes from: the new revision's once all traffic is on
/// the canary during a promotion (after a blue-green switch-back window), else the stable
/// revision's — from the stable workload, or the target when it runs it, or its ReplicaSets.
/// `None` before a stable revision is known.
pub fn stable_template(
    validated: &ValidatedRollout,
    status: &RolloutStatus,
    seen: &Seen,
    now: f64,
) -> Option<StableTemplate> {
    let stable_revision = status.stable_revision.clone()?;
    let promoting = status.phase == Some(RolloutPhase::Promoting);
    let all_on_canary = promoting && status.canary_weight == Some(100);
    // Blue-green keeps the old pods as they are for a while after the switch (switch-back).
    let switch_back_window = validated.lifecycle.kind == StrategyKind::BlueGreen
        && promoting
        && before_scale_down(status, now);
    let target_template = || {
        seen.target
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default()
    };
    let canary_revision = status
        .canary_revision
        .clone()
        .filter(|c| *c == seen.revision);
    Some(
        if all_on_canary
            && !switch_back_window
            && let Some(c) = canary_revision
        {
            StableTemplate::Known(Box::new(target_template()), c)
        } else if let Some(s) = seen
            .workloads
            .stable
            .as_ref()
            .filter(|s| workload::revision_of(s) == Some(stable_revision.as_str()))
        {
            match workload::template_of(s) {
                Some(t) => StableTemplate::Known(Box::new(t), stable_revision),
                None => StableTemplate::Unreadable,
            }
        } else if seen.revision == stable_revision {
            StableTemplate::Known(Box::new(target_template()), stable_revision)
        } else {
            StableTemplate::InHistory(stable_revision)
        },
    )
}

/// Builds what the cluster must hold for the decided `status`, with the stable workload's
/// `template` (see [`stable_template`]; `None`: nowhere to be found). `None` before a stable
/// revision is known.
///
/// # Errors
/// When the Rollout has no name or uid to own the workloads.
pub fn build(
    rollout: &Rollout,
    validated: &ValidatedRollout,
    status: &RolloutStatus,
    seen: &Seen,
    template: Option<(PodTemplateSpec, String)>,
    now: f64,
) -> Result<Option<Desired>, BuildError> {
    let Some(stable_revision) = status.stable_revision.clone() else {
        return Ok(None);
    };
    let rollout_name = rollout.name_any();
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or(BuildError::Unidentified)?;
    let target = &seen.target;
    let target_spec = target.spec.clone().unwrap_or_default();
    let live = canary_is_live(status);
    let promoting = status.phase == Some(RolloutPhase::Promoting);
    // The pods cover the weight in force and the weight being moved to.
    let split_pods = pods::placement(&validated.lifecycle, &state_of(status), seen.total);

    let stable = template.map(|(t, revision)| {
        workload::desired(
            target,
            &rollout_name,
            &owner,
            Role::Stable,
            &t,
            &revision,
            split_pods.stable,
        )
    });

    // The canary workload: the target's template while it is rolled out, else scaled away —
    // at once with the replica ratio (the pods are the traffic); a router may still send
    // in-flight requests to it, so there it keeps its pods until the scale-down time.
    let keep_canary = !live
        && (validated.lifecycle.routed || validated.lifecycle.kind == StrategyKind::BlueGreen)
        && before_scale_down(status, now);
    let canary_revision = status
        .canary_revision
        .clone()
        .filter(|c| *c == seen.revision);
    let canary = match (&canary_revision, &seen.workloads.canary) {
        (Some(revision), _) if live => Some(workload::desired(
            target,
            &rollout_name,
            &owner,
            Role::Canary,
            &target_spec.template,
            revision,
            split_pods.canary,
        )),
        (_, Some(existing)) => {
            let have = existing.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let pods = if keep_canary { have } else { 0 };
            match (
                workload::template_of(existing),
                workload::revision_of(existing),
            ) {
                (Some(t), Some(r)) => Some(workload::desired(
                    target,
                    &rollout_name,
                    &owner,
                    Role::Canary,
                    &t,
                    r,
                    pods,
                )),
                _ => None,
            }
        }
        (None, None) | (Some(_), None) => None,
    };

    // The target hands its pods over once the stable workload is available.
    let stable_available = seen.workloads.stable.as_ref().is_some_and(|s| {
        workload::revision_of(s).is_some_and(|revision| workload::rolled_out(s, revision))
    });
    let handed_over = target_spec.replicas == Some(0);
    let hand_over = !handed_over && stable_available;

    // The routers, once the stable workload serves.
    let routers = traffic::routers(&rollout.spec);
    let traffic = if routers.is_empty() {
        Traffic::ReplicaRatio(format!(
            "replica ratio: {} stable, {} canary pods",
            split_pods.stable,
            canary
                .as_ref()
                .and_then(|d| d.pointer("/spec/replicas"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        ))
    } else if !(handed_over || hand_over) {
        Traffic::WaitingForStable
    } else {
        let split = Split {
            weight: status.canary_weight.unwrap_or(0),
            // A/B matches send requests to the canary whatever the weight: only once it has
            // served a step (its pods were available for one), never to a canary still coming
            // up.
            matches: if live && !promoting && !status.step_history.is_empty() {
                rollout
                    .spec
                    .traffic_routing
                    .as_ref()
                    .map(|r| r.matches.clone())
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
            stable_revision: stable_revision.clone(),
            canary_revision: status.canary_revision.clone(),
        };
        Traffic::Routed { routers, split }
    };
    Ok(Some(Desired {
        owner,
        stable_revision,
        replicas: seen.total,
        selector: availability::selector_string(target),
        stable,
        canary,
        hand_over,
        traffic,
    }))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use super::*;
    use crate::controller::observed::{Workloads, revision};
    use crate::controller::validate::validate;
    use crate::time::rfc3339;

    const T0: f64 = 1_763_856_000.0;

    fn rollout(routing: Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {"targetRef": {"name": "web"}, "trafficRouting": routing,
                "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {"duration": "1m"}}]}}}
        }))
        .unwrap()
    }

    fn target(image: &str, replicas: i32) -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
    }

    fn rev(image: &str) -> String {
        revision(&target(image, 1).spec.unwrap().template)
    }

    /// A workload running `image` with `pods`, all available.
    fn workload(role: Role, image: &str, pods: i32) -> Deployment {
        let t = target(image, pods);
        let owner = rollout(Value::Null).controller_owner_ref(&()).unwrap();
        let template = t.spec.clone().unwrap().template;
        let mut w = workload::desired(&t, "web", &owner, role, &template, &rev(image), pods);
        w["status"] = json!({"replicas": pods, "updatedReplicas": pods, "availableReplicas": pods});
        serde_json::from_value(w).unwrap()
    }

    fn seen(target: Deployment, stable: Option<Deployment>) -> Seen {
        Seen {
            revision: revision(&target.spec.clone().unwrap().template),
            target,
            workloads: Workloads {
                stable,
                canary: None,
            },
            action: None,
            total: 10,
        }
    }

    /// v2 (`web:2`) rolling out against v1 (`web:1`) at step 0.
    fn rolling(phase: RolloutPhase, weight: i32, started: Option<f64>) -> RolloutStatus {
        RolloutStatus {
            phase: Some(phase),
            stable_revision: Some(rev("web:1")),
            canary_revision: Some(rev("web:2")),
            current_step_index: Some(0),
            canary_weight: Some(weight),
            step_started_at: started.map(rfc3339),
            ..RolloutStatus::default()
        }
    }

    fn replicas(body: Option<&Value>) -> Option<i64> {
        body.and_then(|b| b.pointer("/spec/replicas"))
            .and_then(Value::as_i64)
    }

    #[test]
    fn a_weight_waiting_for_its_pods_keeps_the_stables_and_gives_the_canary_the_goals() {
        let r = rollout(Value::Null);
        let v = validate(&r.spec).unwrap();
        let seen = seen(
            target("web:2", 10),
            Some(workload(Role::Stable, "web:1", 10)),
        );
        let status = rolling(RolloutPhase::Progressing, 0, None);
        let source = stable_template(&v, &status, &seen, T0);
        let Some(StableTemplate::Known(template, revision)) = source else {
            panic!("{source:?}")
        };
        assert_eq!(revision, rev("web:1"), "the stable workload's own template");
        let d = build(&r, &v, &status, &seen, Some((*template, revision)), T0)
            .unwrap()
            .unwrap();
        assert_eq!(replicas(d.stable.as_ref()), Some(10));
        assert_eq!(replicas(d.canary.as_ref()), Some(1));
        assert!(d.hand_over, "the stable workload is available");
        assert_eq!((d.replicas, d.selector.as_deref()), (10, Some("app=web")));
        let Traffic::ReplicaRatio(summary) = &d.traffic else {
            panic!("no router: the pods are the split")
        };
        assert_eq!(summary, "replica ratio: 10 stable, 1 canary pods");
    }

    #[test]
    fn routers_wait_for_the_stable_workload_then_carry_the_weight_in_force() {
        let r = rollout(json!({"istio": {"virtualService": "web", "destinationRule": "web"}}));
        let v = validate(&r.spec).unwrap();
        let status = rolling(RolloutPhase::Progressing, 10, Some(T0));
        let coming_up = seen(target("web:2", 10), None);
        let d = build(&r, &v, &status, &coming_up, None, T0)
            .unwrap()
            .unwrap();
        assert!(matches!(d.traffic, Traffic::WaitingForStable));
        assert_eq!(d.stable, None, "no template known: nothing to write");
        let handed_over = seen(target("web:2", 0), None);
        let d = build(&r, &v, &status, &handed_over, None, T0)
            .unwrap()
            .unwrap();
        let Traffic::Routed { routers, split } = &d.traffic else {
            panic!("routed")
        };
        assert_eq!(routers.len(), 2);
        assert_eq!(
            (split.weight, split.canary_revision.clone()),
            (10, Some(rev("web:2")))
        );
    }

    #[test]
    fn the_stable_workload_takes_the_new_template_once_all_traffic_is_on_the_canary() {
        let r = rollout(Value::Null);
        let v = validate(&r.spec).unwrap();
        let seen = seen(
            target("web:2", 0),
            Some(workload(Role::Stable, "web:1", 10)),
        );
        let promoting = rolling(RolloutPhase::Promoting, 100, Some(T0));
        assert_eq!(
            stable_template(&v, &promoting, &seen, T0),
            Some(StableTemplate::Known(
                Box::new(seen.target.spec.clone().unwrap().template),
                rev("web:2")
            ))
        );
        // Neither a workload nor the target has the stable revision: only the ReplicaSets may.
        let elsewhere = Seen {
            workloads: Workloads::default(),
            ..seen.clone()
        };
        assert_eq!(
            stable_template(
                &v,
                &rolling(RolloutPhase::Progressing, 10, Some(T0)),
                &elsewhere,
                T0
            ),
            Some(StableTemplate::InHistory(rev("web:1")))
        );
    }
}
