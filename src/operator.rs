//! The operator CLI's work (`canary-gate get|promote|abort|retry|undo`, also installable as the
//! kubectl plugin `kubectl-canary`): render a Rollout the way a human reads it, and ask the
//! controller for an action through the `canarygate.dev/action` annotation — refused, with the
//! reason, when the Rollout's state makes the action meaningless.

use std::fmt::Write as _;

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::crd::Rollout;
use crate::crd::rollout::{RolloutPhase, RolloutStatus};
use crate::rollout::{ACTION_ANNOTATION, Action};

/// Why an action was not sent.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// No such Rollout.
    #[error("rollout {namespace}/{name} not found; `kubectl get cgr -A` lists the Rollouts")]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The action makes no sense in the Rollout's state.
    #[error("cannot {verb} {namespace}/{name}: {why}")]
    Refused {
        /// The action.
        verb: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What state it is in and what to do instead.
        why: String,
    },
    /// The API server failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

fn phase_name(phase: Option<RolloutPhase>) -> String {
    phase.map_or_else(|| "not yet reconciled".to_string(), |p| format!("{p:?}"))
}

/// Whether `request` makes sense for a Rollout in `status`; `Err(why)` otherwise.
///
/// # Errors
/// The reason, naming the state and what to do instead.
pub fn check(request: Action, status: &RolloutStatus) -> Result<(), String> {
    use RolloutPhase::{
        Aborted, Degraded, Healthy, Holding, Paused, Progressing, Promoting, RolledBack,
    };
    let phase = status.phase;
    let now = phase_name(phase);
    match (request, phase) {
        (Action::Promote | Action::PromoteFull, Some(Progressing | Holding | Paused)) => Ok(()),
        (Action::Promote | Action::PromoteFull, Some(Aborted | RolledBack)) => Err(format!(
            "it is {now}; `retry` starts the revision again from the first step"
        )),
        (Action::Promote | Action::PromoteFull, _) => Err(format!(
            "it is {now}; there is no step to end (promote acts on a rollout in progress)"
        )),
        (Action::Abort, Some(Progressing | Holding | Paused | Promoting)) => Ok(()),
        (Action::Abort, _) => Err(format!("it is {now}; nothing is being rolled out")),
        (Action::Retry, Some(Aborted | RolledBack)) => Ok(()),
        (Action::Retry, _) => Err(format!(
            "it is {now}; retry restarts an aborted or rolled-back revision"
        )),
        (Action::Undo, Some(Healthy)) if status.previous_stable_revision.is_none() => Err(format!(
            "it is {now} and no earlier stable revision is known; revert the Deployment (e.g. in Git)"
        )),
        (Action::Undo, Some(Degraded) | None) => Err(format!(
            "it is {now}; fix the Rollout first (see its message)"
        )),
        (Action::Undo, _) => Ok(()),
    }
}

/// Reads a Rollout.
///
/// # Errors
/// [`OperatorError::NotFound`] when it does not exist, or an API failure.
pub async fn get(client: &Client, namespace: &str, name: &str) -> Result<Rollout, OperatorError> {
    Api::<Rollout>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| OperatorError::NotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
}

/// Asks the controller for `request` on a Rollout: checks its state, then sets the action
/// annotation to `<verb>@<nonce>` (a merge patch of that one key). Returns what was asked.
///
/// # Errors
/// When the Rollout is missing, the action makes no sense in its state, or the API fails.
pub async fn act(
    client: &Client,
    namespace: &str,
    name: &str,
    request: Action,
    nonce: &str,
) -> Result<String, OperatorError> {
    let rollout = get(client, namespace, name).await?;
    let status = rollout.status.clone().unwrap_or_default();
    check(request, &status).map_err(|why| OperatorError::Refused {
        verb: request.verb(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        why,
    })?;
    let value = format!("{}@{nonce}", request.verb());
    let patch = json!({"metadata": {"annotations": {ACTION_ANNOTATION: value}}});
    Api::<Rollout>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(format!(
        "{} requested for rollout {namespace}/{} ({}); the controller acts on its next reconcile",
        request.verb(),
        rollout.name_any(),
        summary(&status)
    ))
}

fn summary(status: &RolloutStatus) -> String {
    match (status.current_step_index, status.canary_weight) {
        (Some(step), Some(weight)) => {
            format!("{}, step {step} at {weight}%", phase_name(status.phase))
        }
        _ => phase_name(status.phase),
    }
}

/// Every Rollout in `namespace` (all namespaces with `None`), as `canary-gate list` shows them.
///
/// # Errors
/// When the API server cannot be reached.
pub async fn list(client: &Client, namespace: Option<&str>) -> Result<Vec<Rollout>, OperatorError> {
    let api: Api<Rollout> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut items = api.list(&Default::default()).await?.items;
    items.sort_by_key(|r| (r.namespace(), r.name_any()));
    Ok(items)
}

/// A table of Rollouts: namespace (with `all_namespaces`), name, phase, step (as STEP in
/// `kubectl get cgr`), weight, the latest verdict and what the Rollout says.
pub fn list_table(rollouts: &[Rollout], all_namespaces: bool) -> String {
    let mut rows = vec![vec![
        "NAMESPACE".to_string(),
        "NAME".into(),
        "PHASE".into(),
        "STEP".into(),
        "WEIGHT".into(),
        "VERDICT".into(),
        "MESSAGE".into(),
    ]];
    for r in rollouts {
        let s = r.status.clone().unwrap_or_default();
        rows.push(vec![
            r.namespace().unwrap_or_default(),
            r.name_any(),
            phase_name(s.phase),
            s.current_step_index.map_or("-".into(), |i| i.to_string()),
            s.canary_weight.map_or("-".into(), |w| format!("{w}%")),
            s.last_decision.clone().unwrap_or_else(|| "-".into()),
            s.message.clone().unwrap_or_default(),
        ]);
    }
    let skip = usize::from(!all_namespaces);
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = (skip..columns)
            .map(|c| {
                if c + 1 == columns {
                    row[c].clone()
                } else {
                    format!("{:<w$}", row[c], w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("   ").trim_end());
    }
    out
}

/// How a rollout ended for `canary-gate wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The revision is the stable version with all traffic.
    Promoted,
    /// The judge (or the progress deadline) rolled it back.
    RolledBack,
    /// A human aborted (or undid) it.
    Aborted,
    /// The Rollout cannot run (invalid spec, missing target): a human must fix it.
    Degraded,
}

impl Ended {
    /// The exit status `canary-gate wait` gives it: 0 promoted, 2 rolled back, 3 aborted, 4
    /// degraded (5 is the timeout, 1 an error).
    pub fn exit_code(self) -> u8 {
        match self {
            Ended::Promoted => 0,
            Ended::RolledBack => 2,
            Ended::Aborted => 3,
            Ended::Degraded => 4,
        }
    }
}

/// Whether the rollout of `revision` (the target Deployment's current template) has ended, and
/// how. A rollout the controller has not started yet (the Rollout still shows the previous
/// stable) has not ended.
pub fn ended(status: &RolloutStatus, revision: &str) -> Option<Ended> {
    use crate::crd::rollout::RolloutPhase::{Aborted, Degraded, Healthy, RolledBack};
    let mine = status.canary_revision.as_deref() == Some(revision);
    match status.phase {
        Some(Healthy) if status.stable_revision.as_deref() == Some(revision) => {
            Some(Ended::Promoted)
        }
        Some(RolledBack) if mine => Some(Ended::RolledBack),
        Some(Aborted) if mine => Some(Ended::Aborted),
        Some(Degraded) => Some(Ended::Degraded),
        _ => None,
    }
}

/// The human view of a Rollout: where it is, what is in force, and the latest decision with
/// each metric's evidence (like `kubectl argo rollouts get rollout`).
pub fn render(rollout: &Rollout) -> String {
    let s = rollout.status.clone().unwrap_or_default();
    let mut out = String::new();
    let row = |out: &mut String, key: &str, value: &str| {
        let _ = writeln!(out, "{key:<15}{value}");
    };
    row(&mut out, "Name:", &rollout.name_any());
    row(
        &mut out,
        "Namespace:",
        &rollout.namespace().unwrap_or_default(),
    );
    row(
        &mut out,
        "Target:",
        &format!("Deployment {}", rollout.spec.target_ref.name),
    );
    let strategy = if rollout.spec.strategy.blue_green.is_some() {
        "blue-green"
    } else {
        "canary"
    };
    row(&mut out, "Strategy:", strategy);
    row(&mut out, "Phase:", &phase_name(s.phase));
    if let Some(m) = &s.message {
        row(&mut out, "Message:", m);
    }
    // The same step index `kubectl get cgr` shows (STEP): a weight with its pause is one step.
    if rollout.spec.strategy.canary.is_some()
        && let Some(step) = s.current_step_index
    {
        match crate::controller::validate::validate(&rollout.spec) {
            Ok(v) => {
                let plan = v.lifecycle.plan.steps();
                let at = plan.get(step.max(0) as usize);
                row(
                    &mut out,
                    "Step:",
                    &format!(
                        "{step}{} (steps 0–{}, as STEP in kubectl get cgr)",
                        at.map_or(String::new(), |p| format!(" at {}%", p.weight)),
                        plan.len().saturating_sub(1)
                    ),
                );
            }
            Err(_) => row(&mut out, "Step:", &step.to_string()),
        }
    }
    if let Some(w) = s.canary_weight {
        row(&mut out, "Weight:", &format!("{w}%"));
    }
    if let Some(t) = &s.traffic {
        row(&mut out, "Traffic:", t);
    }
    row(
        &mut out,
        "Stable:",
        s.stable_revision.as_deref().unwrap_or("-"),
    );
    row(
        &mut out,
        "Canary:",
        s.canary_revision.as_deref().unwrap_or("-"),
    );
    if let Some(at) = &s.step_started_at {
        row(&mut out, "Step started:", at);
    }
    if !s.hooks.is_empty() {
        out.push_str("Webhooks:\n");
        for h in &s.hooks {
            let which = match (h.kind, h.step) {
                (crate::crd::rollout::HookKind::Step, Some(step)) => format!("step {step}"),
                (crate::crd::rollout::HookKind::PrePromotion, _) => "prePromotion".into(),
                _ => "postPromotion".into(),
            };
            let when = match h.phase {
                crate::crd::rollout::HookPhase::Pending => h
                    .next_attempt_at
                    .as_deref()
                    .map_or(String::new(), |t| format!(", next attempt at {t}")),
                crate::crd::rollout::HookPhase::Running => h
                    .started_at
                    .as_deref()
                    .map_or(String::new(), |t| format!(", since {t}")),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<15}{:<15}{:<9}{} attempt{}{when}{}",
                h.name,
                which,
                format!("{:?}", h.phase),
                h.attempts,
                if h.attempts == 1 { "" } else { "s" },
                h.last_answer
                    .as_deref()
                    .map_or(String::new(), |a| format!(": {a}")),
            );
        }
    }
    if !s.conditions.is_empty() {
        out.push_str("Conditions:\n");
        for c in &s.conditions {
            let _ = writeln!(
                out,
                "  {:<15}{:<6}{}{}",
                c.type_,
                c.status,
                c.reason,
                if c.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.message)
                }
            );
        }
    }
    match s.decisions.last() {
        None => out.push_str("Decision:      none yet\n"),
        Some(d) => {
            let _ = writeln!(
                out,
                "Decision:      {} at {} (step {}, {}%): {}",
                d.decision, d.time, d.step, d.weight, d.reason
            );
            if !d.metrics.is_empty() {
                let _ = writeln!(
                    out,
                    "  {:<18}{:<13}{:<14}{:<22}{:<16}{:<16}REASON",
                    "METRIC", "VERDICT", "E-VALUE", "ESTIMATE", "CANARY", "STABLE"
                );
                for m in &d.metrics {
                    let evalue = match (m.e_value, m.fail_at) {
                        (Some(e), Some(f)) => format!("{}/{}", short(e), short(f)),
                        (Some(e), None) => short(e),
                        _ => "-".into(),
                    };
                    let estimate = match (m.estimate, m.estimate_low, m.estimate_high) {
                        (Some(e), Some(l), Some(h)) => {
                            format!("{} [{}, {}]", short(e), short(l), short(h))
                        }
                        (Some(e), _, _) => short(e),
                        _ => "-".into(),
                    };
                    let _ = writeln!(
                        out,
                        "  {:<18}{:<13}{:<14}{:<22}{:<16}{:<16}{}",
                        m.name,
                        m.verdict,
                        evalue,
                        estimate,
                        m.canary.as_deref().unwrap_or("-"),
                        m.stable.as_deref().unwrap_or("-"),
                        m.reason
                    );
                }
            }
        }
    }
    out
}

/// A number in at most four significant digits.
fn short(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-3) {
        return format!("{x:.2e}");
    }
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod wait_tests {
    use super::*;
    use crate::crd::rollout::RolloutPhase;

    fn s(phase: RolloutPhase, stable: &str, canary: Option<&str>) -> RolloutStatus {
        RolloutStatus {
            phase: Some(phase),
            stable_revision: Some(stable.into()),
            canary_revision: canary.map(str::to_string),
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn a_wait_ends_only_with_the_target_revision() {
        use RolloutPhase::*;
        let cases = [
            // Not started yet: still the old stable, healthy.
            (s(Healthy, "v1", None), None),
            (s(Progressing, "v1", Some("v2")), None),
            (s(Paused, "v1", Some("v2")), None),
            (s(Promoting, "v1", Some("v2")), None),
            (s(Healthy, "v2", None), Some(Ended::Promoted)),
            (s(RolledBack, "v1", Some("v2")), Some(Ended::RolledBack)),
            (s(Aborted, "v1", Some("v2")), Some(Ended::Aborted)),
            // Another revision's rollback is not this one's.
            (s(RolledBack, "v1", Some("v0")), None),
            (s(Degraded, "v1", None), Some(Ended::Degraded)),
        ];
        for (status, want) in cases {
            assert_eq!(ended(&status, "v2"), want, "{status:?}");
        }
        assert_eq!(
            [
                Ended::Promoted,
                Ended::RolledBack,
                Ended::Aborted,
                Ended::Degraded
            ]
            .map(Ended::exit_code),
            [0, 2, 3, 4]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: RolloutPhase) -> RolloutStatus {
        RolloutStatus {
            phase: Some(phase),
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn actions_are_refused_where_they_make_no_sense_with_the_reason() {
        use RolloutPhase::*;
        assert!(check(Action::Promote, &status(Paused)).is_ok());
        assert!(check(Action::Promote, &status(Holding)).is_ok());
        assert!(check(Action::PromoteFull, &status(Progressing)).is_ok());
        assert!(check(Action::Abort, &status(Promoting)).is_ok());
        assert!(check(Action::Retry, &status(RolledBack)).is_ok());
        assert!(check(Action::Undo, &status(Progressing)).is_ok());
        let why = check(Action::Promote, &status(Healthy)).unwrap_err();
        assert!(why.contains("it is Healthy"), "{why}");
        let why = check(Action::Promote, &status(RolledBack)).unwrap_err();
        assert!(why.contains("`retry`"), "{why}");
        let why = check(Action::Retry, &status(Progressing)).unwrap_err();
        assert!(why.contains("aborted or rolled-back"), "{why}");
        let why = check(Action::Abort, &status(Healthy)).unwrap_err();
        assert!(why.contains("nothing is being rolled out"), "{why}");
        let why = check(Action::Undo, &status(Healthy)).unwrap_err();
        assert!(why.contains("no earlier stable revision"), "{why}");
        let promoted = RolloutStatus {
            previous_stable_revision: Some("aaa".into()),
            ..status(Healthy)
        };
        assert!(check(Action::Undo, &promoted).is_ok());
        assert!(check(Action::Abort, &RolloutStatus::default()).is_err());
    }

    #[test]
    fn get_lists_the_webhooks_with_their_last_answer() {
        use crate::crd::rollout::{HookKind, HookPhase, HookStatus};
        let mut rollout: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"targetRef": {"name": "web"}, "strategy": {"canary": {"steps": [
                {"setWeight": 10}, {"webhook": {"name": "load-test", "url": "http://lt/"}}]}}}
        }))
        .unwrap();
        let run = |name: &str, kind, step, phase, attempts, answer: Option<&str>| HookStatus {
            name: name.into(),
            kind,
            revision: "v2".into(),
            step,
            phase,
            attempts,
            last_answer: answer.map(str::to_string),
            started_at: None,
            next_attempt_at: (phase == HookPhase::Pending)
                .then(|| "2025-11-23T00:00:05Z".to_string()),
            finished_at: None,
        };
        rollout.status = Some(RolloutStatus {
            hooks: vec![
                run(
                    "load-test",
                    HookKind::Step,
                    Some(0),
                    HookPhase::Passed,
                    1,
                    Some("answered 200"),
                ),
                run(
                    "smoke",
                    HookKind::PrePromotion,
                    None,
                    HookPhase::Pending,
                    1,
                    Some("answered 503: busy"),
                ),
            ],
            ..status(RolloutPhase::Progressing)
        });
        let text = render(&rollout);
        assert!(
            text.contains(
                "Webhooks:\n  load-test      step 0         Passed   1 attempt: answered 200\n  smoke          prePromotion   Pending  1 attempt, next attempt at 2025-11-23T00:00:05Z: answered 503: busy\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short(1.0), "1");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(12.3456), "12.346");
        assert_eq!(short(2.0e7), "2.00e7");
        assert_eq!(short(0.0), "0");
    }
}
