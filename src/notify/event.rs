//! What to notify (pure): the Rollout's status before and after one reconcile → the events that
//! happened, each a [`Notice`] — the generic webhook's payload, schema
//! [`API_VERSION`]. No I/O; the time is a parameter.
//!
//! An event is a change of state, so each is told once: `held` when the rollout enters
//! `Holding` (not at every reconcile that keeps holding), `paused` when it enters `Paused`,
//! `stepAdvanced` when the step index moves on, `rolledBack` / `promoted` / `aborted` when it
//! enters `RolledBack` / `Promoting` / `Aborted`, `started` for a new canary revision or a retry.
//! The reason and the evidence come from the decision record the same reconcile added (the
//! judge's `continue`, `hold`, `rollback` or `promote` behind the event); without one (a human's
//! action, a progress deadline, a metrics outage) the reason is the status message and the
//! evidence is empty.

use serde::{Deserialize, Serialize};

use crate::crd::rollout::{
    DecisionRecord, MetricRecord, NotificationEvent, RolloutPhase, RolloutStatus,
};
use crate::decision_record::{metric_line, new_decisions};
use crate::rollout::StepPlan;

/// The payload schema's name and version; a change that alters a field's meaning gets a new
/// version, new optional fields do not.
pub const API_VERSION: &str = "canarygate.dev/notification/v1";

/// One rollout event: the body of a generic webhook's POST (every field present, `null` when
/// unknown), and what the Slack and Teams messages are written from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// [`API_VERSION`].
    pub api_version: String,
    /// Identifies the event (the same in every retry, so a receiver can drop repeats): 32 hex
    /// digits of a SHA-256 over the Rollout, revision, event, step and time.
    pub id: String,
    /// What happened.
    pub event: NotificationEvent,
    /// When the controller saw it (RFC 3339, UTC).
    pub time: String,
    /// The Rollout.
    pub rollout: RolloutName,
    /// The canary revision (pod-template hash) the event concerns.
    pub revision: Option<String>,
    /// The stable revision.
    pub stable_revision: Option<String>,
    /// The Rollout's phase after the event (`Progressing`, `Holding`, `Paused`, `Promoting`,
    /// `RolledBack`, `Aborted`, …).
    pub phase: Option<RolloutPhase>,
    /// The step index after the event.
    pub step: Option<i32>,
    /// The step before it (`stepAdvanced` only).
    pub from_step: Option<i32>,
    /// The canary's traffic share in force now, percent (after a rollback or abort: 0).
    pub weight: Option<i32>,
    /// The planned weight of `step`, percent (a new step's weight comes into force once the
    /// canary has its pods, so `weight` may still be lower).
    pub step_weight: Option<i32>,
    /// The judge's decision behind the event (`continue`, `hold`, `rollback`, `promote`), if
    /// the event came from the judge.
    pub decision: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// Each metric's evidence from the judge's decision (empty without one).
    pub evidence: Vec<Evidence>,
}

/// Namespace and name of a Rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One metric's verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// Metric name (from the analysis template).
    pub metric: String,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: String,
    /// Why.
    pub reason: String,
    /// Effect estimate (e.g. the canary's error rate over the stable's).
    pub estimate: Option<f64>,
    /// The estimate's interval, `[low, high]`.
    pub interval: Option<[f64; 2]>,
    /// Evidence of harm (an e-value); the metric fails when it reaches `failAt`.
    pub e_value: Option<f64>,
    /// The e-value at which the metric fails.
    pub fail_at: Option<f64>,
    /// Canary events / requests, e.g. `31/1000`.
    pub canary: Option<String>,
    /// Stable events / requests.
    pub stable: Option<String>,
    /// All of it as one line, e.g. `error-rate: fail — … (e=31.25/20, estimate 3.1 [2.2, 4.4], …)`.
    pub summary: String,
}

impl From<&MetricRecord> for Evidence {
    fn from(m: &MetricRecord) -> Self {
        Self {
            metric: m.name.clone(),
            verdict: m.verdict.clone(),
            reason: m.reason.clone(),
            estimate: m.estimate,
            interval: m.estimate_low.zip(m.estimate_high).map(|(l, h)| [l, h]),
            e_value: m.e_value,
            fail_at: m.fail_at,
            canary: m.canary.clone(),
            stable: m.stable.clone(),
            summary: metric_line(m),
        }
    }
}

/// The events between `old` and `new`, the status of Rollout `namespace/name` before and after
/// one reconcile at `now` (unix seconds), in the order they happened. `plan` (the validated step
/// plan) gives each step's planned weight.
pub fn events(
    namespace: &str,
    name: &str,
    plan: Option<&StepPlan>,
    old: &RolloutStatus,
    new: &RolloutStatus,
    now: f64,
) -> Vec<Notice> {
    let added = new_decisions(&old.decisions, &new.decisions);
    let base = Base {
        namespace,
        name,
        plan,
        new,
        added,
        time: crate::time::rfc3339(now),
    };
    let mut out = Vec::new();
    let revision = new.canary_revision.as_deref();
    let retried = new.started_at.is_some() && new.started_at != old.started_at;
    let started = revision.is_some() && (old.canary_revision.as_deref() != revision || retried);
    if let Some(rev) = revision.filter(|_| started) {
        let reason = match old.canary_revision.as_deref() {
            None => format!(
                "rolling out revision {rev} against stable {}",
                new.stable_revision.as_deref().unwrap_or("?")
            ),
            Some(previous) if previous != rev => {
                format!("revision {rev} replaces canary {previous}")
            }
            Some(_) => format!("retrying revision {rev}"),
        };
        out.push(base.notice(NotificationEvent::Started, Some(reason)));
    } else if revision.is_some()
        && on_a_step(old.phase)
        && on_a_step(new.phase)
        && old.current_step_index != new.current_step_index
    {
        let mut n = base.notice(NotificationEvent::StepAdvanced, None);
        n.from_step = Some(old.current_step_index.unwrap_or(0));
        out.push(n);
    }
    let entered = |phase| new.phase == Some(phase) && (old.phase != Some(phase) || started);
    for (phase, event) in [
        (RolloutPhase::Holding, NotificationEvent::Held),
        (RolloutPhase::Paused, NotificationEvent::Paused),
        (RolloutPhase::RolledBack, NotificationEvent::RolledBack),
        (RolloutPhase::Promoting, NotificationEvent::Promoted),
        (RolloutPhase::Aborted, NotificationEvent::Aborted),
    ] {
        if revision.is_some() && entered(phase) {
            out.push(base.notice(event, None));
        }
    }
    // A promotion that completed within one reconcile (no Promoting in between).
    if new.phase == Some(RolloutPhase::Healthy)
        && on_a_step(old.phase)
        && old.canary_revision.is_some()
        && new.stable_revision == old.canary_revision
    {
        let mut n = base.notice(NotificationEvent::Promoted, None);
        n.revision = old.canary_revision.clone();
        n.step = old.current_step_index;
        n.step_weight = step_weight(plan, n.step);
        out.push(n);
    }
    out
}

/// Whether a phase runs the steps of a canary revision.
fn on_a_step(phase: Option<RolloutPhase>) -> bool {
    matches!(
        phase,
        Some(RolloutPhase::Progressing | RolloutPhase::Holding | RolloutPhase::Paused)
    )
}

/// The judge's decision that causes an event, as the decision record writes it.
fn cause(event: NotificationEvent) -> Option<&'static str> {
    match event {
        NotificationEvent::StepAdvanced => Some("continue"),
        NotificationEvent::Held | NotificationEvent::Paused => Some("hold"),
        NotificationEvent::RolledBack => Some("rollback"),
        NotificationEvent::Promoted => Some("promote"),
        NotificationEvent::Started | NotificationEvent::Aborted => None,
    }
}

fn step_weight(plan: Option<&StepPlan>, step: Option<i32>) -> Option<i32> {
    let step = usize::try_from(step?).ok()?;
    plan?.steps().get(step).map(|s| s.weight.round() as i32)
}

/// What every notice of one reconcile shares.
struct Base<'a> {
    namespace: &'a str,
    name: &'a str,
    plan: Option<&'a StepPlan>,
    new: &'a RolloutStatus,
    added: &'a [DecisionRecord],
    time: String,
}

impl Base<'_> {
    /// A notice of `event` from the new status; `reason` unless the judge gave one.
    fn notice(&self, event: NotificationEvent, reason: Option<String>) -> Notice {
        let new = self.new;
        let record = cause(event)
            .and_then(|decision| self.added.iter().rev().find(|d| d.decision == decision));
        let reason = record
            .map(|r| r.reason.clone())
            .filter(|r| !r.is_empty())
            .or(reason)
            .or_else(|| new.message.clone())
            .unwrap_or_default();
        let mut n = Notice {
            api_version: API_VERSION.to_string(),
            id: String::new(),
            event,
            time: self.time.clone(),
            rollout: RolloutName {
                namespace: self.namespace.to_string(),
                name: self.name.to_string(),
            },
            revision: new.canary_revision.clone(),
            stable_revision: new.stable_revision.clone(),
            phase: new.phase,
            step: new.current_step_index,
            from_step: None,
            weight: new.canary_weight,
            step_weight: step_weight(self.plan, new.current_step_index),
            decision: record.map(|r| r.decision.clone()),
            reason,
            evidence: record
                .map(|r| r.metrics.iter().map(Evidence::from).collect())
                .unwrap_or_default(),
        };
        n.id = id(&n);
        n
    }
}

/// 32 hex digits of SHA-256 over what makes an event unique.
fn id(n: &Notice) -> String {
    let key = format!(
        "{}/{}/{}/{}/{}/{}",
        n.rollout.namespace,
        n.rollout.name,
        n.revision.as_deref().unwrap_or(""),
        n.event.as_str(),
        n.step.unwrap_or(-1),
        n.time
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    super::signature::hex(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::rollout::StepStart;
    use crate::rollout::Step;
    use NotificationEvent::*;

    /// 2025-11-23T00:00:00Z.
    const T0: f64 = 1_763_856_000.0;
    const T0S: &str = "2025-11-23T00:00:00Z";

    fn plan() -> StepPlan {
        StepPlan::new(vec![
            Step {
                weight: 10.0,
                pause: 300.0,
            },
            Step {
                weight: 50.0,
                pause: f64::INFINITY,
            },
            Step {
                weight: 80.0,
                pause: 300.0,
            },
        ])
        .expect("a valid plan")
    }

    fn healthy() -> RolloutStatus {
        RolloutStatus {
            phase: Some(RolloutPhase::Healthy),
            stable_revision: Some("rev-a".into()),
            canary_weight: Some(0),
            message: Some("revision rev-a runs with all traffic".into()),
            ..RolloutStatus::default()
        }
    }

    /// `phase` on `step` at `weight` of revision `rev-b`.
    fn on(phase: RolloutPhase, step: i32, weight: i32, message: &str) -> RolloutStatus {
        RolloutStatus {
            phase: Some(phase),
            current_step_index: Some(step),
            canary_weight: Some(weight),
            canary_revision: Some("rev-b".into()),
            started_at: Some(T0S.into()),
            step_started_at: Some(T0S.into()),
            step_history: vec![StepStart {
                step: 0,
                started_at: T0S.into(),
            }],
            message: Some(message.into()),
            ..healthy()
        }
    }

    fn decision(step: i32, weight: i32, decision: &str, reason: &str) -> DecisionRecord {
        DecisionRecord {
            time: "2025-11-23T00:05:00Z".into(),
            step,
            weight,
            decision: decision.into(),
            reason: reason.into(),
            window_start: Some(T0S.into()),
            metrics: vec![MetricRecord {
                verdict: if decision == "rollback" {
                    "fail"
                } else {
                    "pass"
                }
                .into(),
                ..crate::decision_record::failing_error_rate()
            }],
        }
    }

    fn with(mut s: RolloutStatus, records: Vec<DecisionRecord>) -> RolloutStatus {
        s.decisions = records;
        s
    }

    /// (event, step, fromStep, weight, stepWeight, decision, reason, evidence count) of each
    /// notice.
    type Row = (
        NotificationEvent,
        Option<i32>,
        Option<i32>,
        Option<i32>,
        Option<i32>,
        Option<String>,
        String,
        usize,
    );

    fn rows(old: &RolloutStatus, new: &RolloutStatus) -> Vec<Row> {
        events("shop", "web", Some(&plan()), old, new, T0 + 300.0)
            .into_iter()
            .map(|n| {
                (
                    n.event,
                    n.step,
                    n.from_step,
                    n.weight,
                    n.step_weight,
                    n.decision,
                    n.reason,
                    n.evidence.len(),
                )
            })
            .collect()
    }

    fn row(
        event: NotificationEvent,
        step: i32,
        weight: i32,
        step_weight: i32,
        decision: Option<&str>,
        reason: &str,
        evidence: usize,
    ) -> Row {
        (
            event,
            Some(step),
            None,
            Some(weight),
            Some(step_weight),
            decision.map(str::to_string),
            reason.to_string(),
            evidence,
        )
    }

    #[test]
    fn each_change_of_state_is_one_event() {
        use RolloutPhase as P;
        let continued = decision(0, 10, "continue", "no evidence of harm");
        let held = decision(0, 10, "hold", "insufficient traffic: 14 canary requests");
        let rolled = decision(1, 50, "rollback", "error-rate fails");
        let promoted = decision(2, 80, "promote", "every metric passes");
        let advanced = {
            let (old, new) = (
                on(P::Progressing, 0, 10, "step 0 at 10%"),
                with(
                    on(P::Progressing, 1, 50, "step 1 at 50%"),
                    vec![continued.clone()],
                ),
            );
            let mut r = row(
                StepAdvanced,
                1,
                50,
                50,
                Some("continue"),
                "no evidence of harm",
                1,
            );
            r.2 = Some(0);
            (old, new, vec![r])
        };
        let table: Vec<(&str, RolloutStatus, RolloutStatus, Vec<Row>)> = vec![
            (
                "a new revision starts",
                healthy(),
                on(P::Progressing, 0, 0, "step 0 (10%) waits for web-canary"),
                vec![row(
                    Started,
                    0,
                    0,
                    10,
                    None,
                    "rolling out revision rev-b against stable rev-a",
                    0,
                )],
            ),
            ("the judge continues", advanced.0, advanced.1, advanced.2),
            (
                "a step ends inconclusive: held, with the hold's reason",
                on(P::Progressing, 0, 10, "step 0 at 10%"),
                with(
                    on(P::Holding, 0, 10, "holding at 10%: insufficient traffic"),
                    vec![held.clone()],
                ),
                vec![row(
                    Held,
                    0,
                    10,
                    10,
                    Some("hold"),
                    "insufficient traffic: 14 canary requests",
                    1,
                )],
            ),
            (
                "still holding is no new event",
                with(on(P::Holding, 0, 10, "holding"), vec![held.clone()]),
                with(
                    on(P::Holding, 0, 10, "holding"),
                    vec![held.clone(), decision(0, 10, "hold", "still thin")],
                ),
                vec![],
            ),
            (
                "a hold from a metrics outage: the status message is the reason",
                on(P::Progressing, 0, 10, "step 0 at 10%"),
                on(
                    P::Holding,
                    0,
                    10,
                    "holding at 10%: metrics unavailable: timeout",
                ),
                vec![row(
                    Held,
                    0,
                    10,
                    10,
                    None,
                    "holding at 10%: metrics unavailable: timeout",
                    0,
                )],
            ),
            (
                "advancing to a pause for a human: advanced, then paused",
                on(P::Progressing, 0, 10, "step 0 at 10%"),
                on(P::Paused, 1, 50, "step 1 waits for `canary-gate promote`"),
                vec![
                    {
                        let mut r = row(
                            StepAdvanced,
                            1,
                            50,
                            50,
                            None,
                            "step 1 waits for `canary-gate promote`",
                            0,
                        );
                        r.2 = Some(0);
                        r
                    },
                    row(
                        Paused,
                        1,
                        50,
                        50,
                        None,
                        "step 1 waits for `canary-gate promote`",
                        0,
                    ),
                ],
            ),
            (
                "a rollback carries the judge's evidence",
                on(P::Progressing, 1, 50, "step 1 at 50%"),
                with(
                    on(P::RolledBack, 1, 0, "rolled back: error-rate fails"),
                    vec![rolled.clone()],
                ),
                vec![row(
                    RolledBack,
                    1,
                    0,
                    50,
                    Some("rollback"),
                    "error-rate fails",
                    1,
                )],
            ),
            (
                "a rollback at the progress deadline has no judge's evidence",
                with(
                    on(P::Progressing, 1, 50, "step 1 at 50%"),
                    vec![continued.clone()],
                ),
                with(
                    on(
                        P::RolledBack,
                        1,
                        0,
                        "rolled back: progress deadline: 0/1 pods",
                    ),
                    vec![continued.clone()],
                ),
                vec![row(
                    RolledBack,
                    1,
                    0,
                    50,
                    None,
                    "rolled back: progress deadline: 0/1 pods",
                    0,
                )],
            ),
            (
                "a promotion",
                on(P::Progressing, 2, 80, "step 2 at 80%"),
                with(
                    on(P::Promoting, 2, 100, "promoting revision rev-b"),
                    vec![promoted.clone()],
                ),
                vec![row(
                    Promoted,
                    2,
                    100,
                    80,
                    Some("promote"),
                    "every metric passes",
                    1,
                )],
            ),
            (
                "the promotion completing is no new event",
                on(P::Promoting, 2, 100, "promoting revision rev-b"),
                RolloutStatus {
                    stable_revision: Some("rev-b".into()),
                    ..healthy()
                },
                vec![],
            ),
            (
                "a human aborts",
                on(P::Holding, 0, 10, "holding"),
                on(
                    P::Aborted,
                    0,
                    0,
                    "aborted by a human; all traffic on stable until retry",
                ),
                vec![row(
                    Aborted,
                    0,
                    0,
                    10,
                    None,
                    "aborted by a human; all traffic on stable until retry",
                    0,
                )],
            ),
            (
                "a retry starts the revision again",
                on(P::Aborted, 0, 0, "aborted"),
                RolloutStatus {
                    started_at: Some("2025-11-23T00:05:00Z".into()),
                    ..on(P::Progressing, 0, 10, "step 0 at 10%")
                },
                vec![row(Started, 0, 10, 10, None, "retrying revision rev-b", 0)],
            ),
            (
                "a newer revision replaces the canary",
                on(P::Holding, 1, 50, "holding"),
                RolloutStatus {
                    canary_revision: Some("rev-c".into()),
                    started_at: Some("2025-11-23T00:05:00Z".into()),
                    ..on(P::Progressing, 0, 0, "step 0 (10%) waits")
                },
                vec![row(
                    Started,
                    0,
                    0,
                    10,
                    None,
                    "revision rev-c replaces canary rev-b",
                    0,
                )],
            ),
            (
                "the target back on stable cancels without an event",
                on(P::Progressing, 0, 10, "step 0 at 10%"),
                healthy(),
                vec![],
            ),
            ("nothing changed", healthy(), healthy(), vec![]),
        ];
        for (what, old, new, want) in table {
            assert_eq!(rows(&old, &new), want, "{what}");
        }
    }

    #[test]
    fn a_rollback_notice_is_the_documented_payload() {
        let old = RolloutStatus {
            phase: Some(RolloutPhase::Progressing),
            ..on(RolloutPhase::Progressing, 1, 50, "step 1 at 50%")
        };
        let new = with(
            on(
                RolloutPhase::RolledBack,
                1,
                0,
                "rolled back: error-rate fails",
            ),
            vec![decision(1, 50, "rollback", "error-rate fails")],
        );
        let got = events("shop", "web", Some(&plan()), &old, &new, T0 + 450.0);
        assert_eq!(got.len(), 1);
        let json = serde_json::to_value(&got[0]).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "canarygate.dev/notification/v1",
                "id": got[0].id,
                "event": "rolledBack",
                "time": "2025-11-23T00:07:30Z",
                "rollout": {"namespace": "shop", "name": "web"},
                "revision": "rev-b",
                "stableRevision": "rev-a",
                "phase": "RolledBack",
                "step": 1,
                "fromStep": null,
                "weight": 0,
                "stepWeight": 50,
                "decision": "rollback",
                "reason": "error-rate fails",
                "evidence": [{
                    "metric": "error-rate",
                    "verdict": "fail",
                    "reason": "canary errors above stable",
                    "estimate": 3.1,
                    "interval": [2.2, 4.4],
                    "eValue": 31.25,
                    "failAt": 20.0,
                    "canary": "31/1000",
                    "stable": "10/1000",
                    "summary": "error-rate: fail — canary errors above stable (e=31.25/20, estimate 3.1 [2.2, 4.4], canary 31/1000, stable 10/1000)"
                }]
            })
        );
        assert_eq!(got[0].id.len(), 32);
        assert!(got[0].id.chars().all(|c| c.is_ascii_hexdigit()));
        // The same event seen again has the same id; another time, another id.
        let again = events("shop", "web", Some(&plan()), &old, &new, T0 + 450.0);
        assert_eq!(again[0].id, got[0].id);
        let later = events("shop", "web", Some(&plan()), &old, &new, T0 + 451.0);
        assert_ne!(later[0].id, got[0].id);
    }

    #[test]
    fn without_a_plan_the_step_weight_is_unknown() {
        let got = events(
            "shop",
            "web",
            None,
            &healthy(),
            &on(RolloutPhase::Progressing, 0, 10, "step 0 at 10%"),
            T0,
        );
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].weight, got[0].step_weight), (Some(10), None));
    }

    #[test]
    fn a_promotion_done_in_one_reconcile_is_still_told() {
        let old = on(RolloutPhase::Progressing, 2, 80, "step 2 at 80%");
        let new = RolloutStatus {
            stable_revision: Some("rev-b".into()),
            previous_stable_revision: Some("rev-a".into()),
            ..healthy()
        };
        let got = events("shop", "web", Some(&plan()), &old, &new, T0);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].event,
                got[0].revision.as_deref(),
                got[0].step,
                got[0].step_weight
            ),
            (Promoted, Some("rev-b"), Some(2), Some(80))
        );
    }
}
