//! What the cluster and the metrics said, as plain data for the pure stages: [`Seen`] (the
//! *observe* stage's answer: the target, its revision, the workloads, a pending action) and
//! [`Analysis`] (the *analyze* stage's answer), and the two together as *decide* takes them.
//! The I/O stages fill these in; *decide* and *build* only read them. A revision is named by
//! [`revision`], a hash of its pod template.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::analysis::Judgement;
use crate::rollout::Action;
use crate::rollout::lifecycle::MetricsOutage;
use crate::traffic::workload;

use super::availability::Availability;
use super::decide::Observed;

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

/// What the cluster says about a Rollout's target.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The target Deployment.
    pub target: Deployment,
    /// Its pod template's revision.
    pub revision: String,
    /// The stable and canary workloads.
    pub workloads: Workloads,
    /// A pending human action, with the annotation value that asked for it.
    pub action: Option<(Action, String)>,
    /// Pods of the application in all (see [`super::availability::total`]).
    pub total: i32,
}

impl Seen {
    /// What *decide* needs of what was seen: the revision, the action, whether the stable
    /// workload runs the revision, the pods (see `observe::pods`), and the analyze stage's answer.
    pub fn observed(
        &self,
        now: f64,
        analysis: Analysis,
        (pods, autoscaler_conflict): (Availability, Option<String>),
    ) -> Observed {
        Observed {
            now,
            stable_ready: self.workloads.stable_runs(&self.revision),
            revision: self.revision.clone(),
            action: self.action.as_ref().map(|(a, _)| *a),
            gated: analysis.gated,
            judgement: analysis.judgement,
            metrics_outage: analysis.outage,
            interval: analysis.interval,
            pods,
            autoscaler_conflict,
            hooks: Vec::new(),
        }
    }
}

/// The stable and canary workloads as read.
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    /// `<target>-stable`, if it exists.
    pub stable: Option<Deployment>,
    /// `<target>-canary`, if it exists.
    pub canary: Option<Deployment>,
}

impl Workloads {
    /// Whether the stable workload runs `revision` on every pod, available.
    pub fn stable_runs(&self, revision: &str) -> bool {
        self.stable
            .as_ref()
            .is_some_and(|s| workload::rolled_out(s, revision))
    }
}

/// What the analyze stage found.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The current step is gated by an analysis (its own, or the background one): it never
    /// advances without the judge's answer.
    pub gated: bool,
    /// The judge's answer for the step, all templates combined; `None` when nothing was judged
    /// (no analysis now, a human action, or an outage).
    pub judgement: Option<Judgement>,
    /// The metrics could not be read: the step holds on this.
    pub outage: Option<MetricsOutage>,
    /// Seconds until the next interval ends (the shortest template interval).
    pub interval: f64,
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
}
