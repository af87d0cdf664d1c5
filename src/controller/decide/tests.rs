//! Tests of the mapping from the lifecycle to the status: fields, conditions, the decision
//! record and the Events. The lifecycle itself is tested on plain types in
//! `rollout/lifecycle/tests.rs`.

use super::*;
use crate::analysis::Decision;
use crate::controller::status::{ACTION_CONDITION, AUTOSCALER_CONDITION};
use crate::controller::validate::validate;
use crate::crd::rollout::RolloutPhase;
use crate::rollout::lifecycle::OutageKind;
use crate::time::rfc3339;

const T0: f64 = 1_763_856_000.0;

/// Steps 10 % for 60 s, 50 % until a human promotes, 80 % for 60 s, gated by an analysis.
fn rollout() -> ValidatedRollout {
    let spec = serde_saphyr::from_str(
        r#"
targetRef: {name: web}
strategy:
  canary:
    analysis: {templates: [{templateName: generic-http}]}
    steps:
      - setWeight: 10
      - pause: {duration: 60s}
      - setWeight: 50
      - pause: {}
      - setWeight: 80
      - pause: {duration: 60s}
"#,
    )
    .unwrap();
    validate(&spec).unwrap()
}

/// Steps 10 % and 50 %, 60 s each, not gated.
fn ungated(extra: &str) -> ValidatedRollout {
    let spec = serde_saphyr::from_str(&format!(
        r#"
targetRef: {{name: web}}
{extra}
strategy:
  canary:
    steps:
      - setWeight: 10
      - pause: {{duration: 60s}}
      - setWeight: 50
      - pause: {{duration: 60s}}
"#
    ))
    .unwrap();
    validate(&spec).unwrap()
}

fn judged(decision: Decision, reason: &str) -> Judgement {
    Judgement {
        t: 0.0,
        decision,
        reason: reason.into(),
        step: 0,
        weight: 10.0,
        paused: false,
        metrics: Vec::new(),
    }
}

/// At `now`, the target on `revision`, every pod available, the step gated.
fn seen(now: f64, revision: &str, action: Option<Action>) -> Observed {
    Observed {
        now,
        revision: revision.into(),
        action,
        stable_ready: true,
        gated: true,
        judgement: None,
        metrics_outage: None,
        interval: 10.0,
        pods: Availability {
            total: 10,
            stable: 10,
            canary: 10,
            ..Availability::default()
        },
        autoscaler_conflict: None,
        hooks: Vec::new(),
    }
}

/// An ungated step, the canary with `canary` of the 10 pods available.
fn with_pods(now: f64, canary: i32, problems: &[&str]) -> Observed {
    let mut o = seen(now, "v2", None);
    o.gated = false;
    o.pods.canary = canary;
    o.pods.canary_problems = problems.iter().map(|p| p.to_string()).collect();
    o
}

/// Decides with the judge's answer `judgement`.
fn decided(
    rollout: &ValidatedRollout,
    status: &RolloutStatus,
    observed: &Observed,
    judgement: Option<&Judgement>,
) -> Outcome {
    let observed = Observed {
        judgement: judgement.cloned(),
        ..observed.clone()
    };
    decide(rollout, status, &observed)
}

fn healthy() -> RolloutStatus {
    RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("v1".into()),
        ..RolloutStatus::default()
    }
}

fn rolling(step: i32, started: f64, phase: RolloutPhase) -> RolloutStatus {
    RolloutStatus {
        phase: Some(phase),
        stable_revision: Some("v1".into()),
        canary_revision: Some("v2".into()),
        started_at: Some(rfc3339(T0)),
        step_started_at: Some(rfc3339(started)),
        current_step_index: Some(step),
        ..RolloutStatus::default()
    }
}

fn reasons(o: &Outcome) -> Vec<&'static str> {
    o.notes.iter().map(|n| n.reason).collect()
}

fn condition<'a>(s: &'a RolloutStatus, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

#[test]
fn the_lifecycles_state_is_written_to_the_status_fields() {
    let o = decided(&rollout(), &healthy(), &seen(T0, "v2", None), None);
    let s = &o.status;
    assert_eq!(s.phase, Some(RolloutPhase::Progressing));
    assert_eq!(s.canary_revision.as_deref(), Some("v2"));
    assert_eq!((s.current_step_index, s.canary_weight), (Some(0), Some(10)));
    assert_eq!(s.started_at.as_deref(), Some("2025-11-23T00:00:00Z"));
    assert_eq!(s.step_started_at.as_deref(), Some("2025-11-23T00:00:00Z"));
    assert_eq!(s.step_history.len(), 1);
    assert_eq!(s.message.as_deref(), Some("step 0 at 10%"));
    assert_eq!(o.requeue_after, Some(10.0));
    assert_eq!(
        o.notes,
        [Note {
            reason: "RolloutStarted",
            message: "rolling out revision v2 against stable v1".into(),
            warning: false
        }]
    );
    // Read back, it is the same state: nothing changes without news.
    assert_eq!(state_of(s), state_of(&o.status));
    let again = decided(
        &rollout(),
        s,
        &seen(T0 + 5.0, "v2", None),
        Some(&judged(Decision::Continue, "all gating metrics pass")),
    );
    assert_eq!(again.status.step_history, s.step_history);
    assert!(again.notes.is_empty());
}

#[test]
fn first_sight_adopts_and_says_so() {
    let o = decided(
        &rollout(),
        &RolloutStatus::default(),
        &seen(T0, "v1", None),
        None,
    );
    assert_eq!(o.status.stable_revision.as_deref(), Some("v1"));
    assert_eq!(o.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(reasons(&o), ["Adopted"]);
    assert_eq!(condition(&o.status, "Healthy").map(|c| c.0), Some("True"));
}

#[test]
fn conditions_follow_the_phase_and_keep_their_transition_time() {
    let cond = |s: &RolloutStatus, t: &str| {
        s.conditions.iter().find(|c| c.type_ == t).map(|c| {
            (
                c.status.clone(),
                c.reason.clone(),
                c.last_transition_time.0.as_second(),
            )
        })
    };
    let started = decided(&rollout(), &healthy(), &seen(T0, "v2", None), None).status;
    assert_eq!(
        cond(&started, "Progressing"),
        Some(("True".into(), "Progressing".into(), T0 as i64))
    );
    assert_eq!(cond(&started, "Healthy").unwrap().0, "False");
    let pass = judged(Decision::Continue, "all gating metrics pass");
    let later = decided(
        &rollout(),
        &started,
        &seen(T0 + 30.0, "v2", None),
        Some(&pass),
    )
    .status;
    assert_eq!(
        cond(&later, "Progressing").unwrap().2,
        T0 as i64,
        "unchanged status keeps its time"
    );
    let fail = judged(Decision::Rollback, "error-rate: evidence of harm");
    let rolled = decided(
        &rollout(),
        &later,
        &seen(T0 + 40.0, "v2", None),
        Some(&fail),
    );
    assert_eq!(
        cond(&rolled.status, "Progressing"),
        Some(("False".into(), "RolledBack".into(), T0 as i64 + 40))
    );
    assert_eq!(reasons(&rolled), ["RolledBack"]);
    assert!(rolled.notes[0].warning);
    assert_eq!(
        rolled.notes[0].message,
        "revision v2: error-rate: evidence of harm"
    );
}

#[test]
fn the_decision_record_keeps_the_newest_twenty_and_a_new_rollout_starts_it_over() {
    let mut s = rolling(0, T0, RolloutPhase::Progressing);
    for i in 0..30 {
        let hold = judged(Decision::Hold, &format!("evidence building {i}"));
        s = decided(
            &rollout(),
            &s,
            &seen(T0 + f64::from(i), "v2", None),
            Some(&hold),
        )
        .status;
    }
    assert_eq!(s.decisions.len(), MAX_DECISIONS);
    assert_eq!(s.decisions.last().unwrap().reason, "evidence building 29");
    assert_eq!(s.decisions[0].reason, "evidence building 10");
    assert_eq!(s.last_decision.as_deref(), Some("hold"));
    let restarted = decided(&rollout(), &s, &seen(T0 + 60.0, "v3", None), None).status;
    assert!(restarted.decisions.is_empty());
    assert_eq!(restarted.last_decision, None);
}

#[test]
fn a_wait_for_pods_is_the_canarys_condition_until_the_weight_is_in_force() {
    let r = ungated("");
    let o = decided(&r, &healthy(), &with_pods(T0, 0, &[]), None);
    assert_eq!(
        condition(&o.status, "CanaryAvailable"),
        Some(("False", "WaitingForPods", "web-canary: 0/1 available"))
    );
    assert_eq!(o.status.waiting_since, Some(rfc3339(T0)));
    assert_eq!(reasons(&o), ["RolloutStarted", "WaitingForPods"]);
    assert_eq!(
        o.notes[1].message,
        "step 0 (10%) waits for web-canary: 0/1 available"
    );
    let live = decided(&r, &o.status, &with_pods(T0 + 40.0, 1, &[]), None);
    assert_eq!(
        condition(&live.status, "CanaryAvailable"),
        Some(("True", "Available", "web-canary: 1/1 available for 10%"))
    );
    assert_eq!(
        live.notes,
        [Note {
            reason: "StepAdvanced",
            message: "step 0 at weight 10% (was 0%): web-canary: 1/1 available".into(),
            warning: false
        }]
    );
}

#[test]
fn a_passed_deadline_stays_the_progressing_conditions_reason_while_the_rollback_stands() {
    let r = ungated("progressDeadline: 5m");
    let crash = ["1 pod: CrashLoopBackOff (container web), last exit 1 Error"];
    let s = decided(&r, &healthy(), &with_pods(T0, 0, &crash), None).status;
    let o = decided(&r, &s, &with_pods(T0 + 300.0, 0, &crash), None);
    let message = "progress deadline 5m passed: web-canary: 0/1 available (1 pod: CrashLoopBackOff (container web), last exit 1 Error)";
    assert_eq!(
        condition(&o.status, "Progressing"),
        Some(("False", DEADLINE_REASON, message))
    );
    assert_eq!(
        condition(&o.status, "CanaryAvailable").map(|c| (c.0, c.1)),
        Some(("False", DEADLINE_REASON))
    );
    assert_eq!(reasons(&o), [DEADLINE_REASON]);
    assert_eq!(
        o.notes[0].message,
        format!("revision v2 rolled back: {message}")
    );
    assert!(o.notes[0].warning);
    let later = decided(&r, &o.status, &with_pods(T0 + 400.0, 0, &crash), None);
    assert_eq!(
        condition(&later.status, "Progressing").map(|c| c.1),
        Some(DEADLINE_REASON)
    );
    assert_eq!(
        condition(&later.status, "CanaryAvailable").map(|c| c.1),
        Some(DEADLINE_REASON),
        "the reason the canary failed stays"
    );
}

#[test]
fn the_metrics_condition_says_whether_the_step_was_judged() {
    let outage = Observed {
        metrics_outage: Some(MetricsOutage {
            kind: OutageKind::Unavailable,
            message: "Prometheus http://prom:9090 unreachable (query error-rate)".into(),
            budget: 600.0,
            rollback: false,
        }),
        ..seen(T0 + 120.0, "v2", None)
    };
    let o = decided(
        &rollout(),
        &rolling(0, T0, RolloutPhase::Progressing),
        &outage,
        None,
    );
    assert_eq!(
        condition(&o.status, "MetricsAvailable").map(|c| (c.0, c.1)),
        Some(("False", METRICS_UNAVAILABLE))
    );
    assert_eq!(reasons(&o), [METRICS_UNAVAILABLE, "Holding"]);
    assert_eq!(
        o.notes[0].message,
        "holding: Prometheus http://prom:9090 unreachable (query error-rate)"
    );
    assert_eq!(
        o.status.metrics_unavailable_since,
        Some(rfc3339(T0 + 120.0))
    );
    let invalid = Observed {
        metrics_outage: Some(MetricsOutage {
            kind: OutageKind::InvalidArguments,
            ..outage.metrics_outage.clone().unwrap()
        }),
        ..outage.clone()
    };
    let o = decided(
        &rollout(),
        &rolling(0, T0, RolloutPhase::Progressing),
        &invalid,
        None,
    );
    assert_eq!(reasons(&o)[0], INVALID_ARGUMENTS);
    let pass = judged(Decision::Continue, "no objection");
    let back = decided(
        &rollout(),
        &o.status,
        &seen(T0 + 130.0, "v2", None),
        Some(&pass),
    );
    assert_eq!(
        condition(&back.status, "MetricsAvailable").map(|c| (c.0, c.1)),
        Some(("True", "Judged"))
    );
    assert_eq!(back.status.metrics_unavailable_since, None);
}

#[test]
fn an_action_that_cannot_be_carried_out_says_why_in_a_condition_and_a_warning() {
    let rolled = RolloutStatus {
        canary_weight: Some(0),
        ..rolling(0, T0, RolloutPhase::RolledBack)
    };
    let o = decided(
        &rollout(),
        &rolled,
        &seen(T0, "v2", Some(Action::Promote)),
        None,
    );
    let (status, reason, message) = condition(&o.status, ACTION_CONDITION).unwrap();
    assert_eq!((status, reason), ("False", "ActionRefused"));
    assert!(
        message.contains("`canary-gate retry` starts revision v2 again"),
        "{message}"
    );
    assert_eq!(reasons(&o), ["ActionRefused"]);
    assert!(o.notes[0].warning);
    let undo = decided(
        &rollout(),
        &rolled,
        &seen(T0, "v2", Some(Action::Undo)),
        None,
    );
    assert_eq!(undo.revert_to.as_deref(), Some("v1"));
    assert_eq!(
        condition(&undo.status, ACTION_CONDITION).map(|c| (c.0, c.1)),
        Some(("True", "Applied"))
    );
    let none = decided(
        &rollout(),
        &healthy(),
        &seen(T0, "v1", Some(Action::Undo)),
        None,
    );
    assert_eq!(
        condition(&none.status, ACTION_CONDITION).map(|c| (c.0, c.1)),
        Some(("False", "UndoImpossible"))
    );
    assert_eq!(reasons(&none), ["UndoImpossible"]);
}

#[test]
fn an_hpa_on_the_target_is_reported_once_with_the_fix() {
    let conflict = Observed {
        autoscaler_conflict: Some("HorizontalPodAutoscaler web scales Deployment shop/web".into()),
        ..seen(T0, "v1", None)
    };
    let o = decided(&rollout(), &healthy(), &conflict, None);
    assert_eq!(
        condition(&o.status, AUTOSCALER_CONDITION).map(|c| (c.0, c.1)),
        Some(("True", "HPATargetsDeployment"))
    );
    assert_eq!(reasons(&o), ["AutoscalerConflict"]);
    let again = decided(&rollout(), &o.status, &conflict, None);
    assert!(again.notes.is_empty());
    let gone = decided(&rollout(), &again.status, &seen(T0, "v1", None), None);
    assert_eq!(
        condition(&gone.status, AUTOSCALER_CONDITION).map(|c| c.0),
        Some("False")
    );
}

#[test]
fn adoption_is_not_healthy_until_the_stable_workload_has_its_pods() {
    let mut short = seen(T0, "v1", None);
    short.pods.stable = 0;
    let o = decided(&rollout(), &RolloutStatus::default(), &short, None);
    assert_eq!(
        o.status.message.as_deref(),
        Some("revision v1 is stable; waiting for web-stable: 0/10 available")
    );
    assert_eq!(
        condition(&o.status, "Healthy").map(|c| (c.0, c.1)),
        Some(("False", "StableUnavailable"))
    );
    assert_eq!(
        condition(&o.status, "StableAvailable").map(|c| c.0),
        Some("False")
    );
}

#[test]
fn every_transition_becomes_one_event_with_its_reason() {
    let all = [
        (
            Transition::Promoting {
                revision: "v2".into(),
                reason: String::new(),
            },
            ("Promoting", "revision v2: promoted by a human", false),
        ),
        (
            Transition::StepAdvanced {
                from: 0,
                to: 1,
                weight: 50.0,
            },
            ("StepAdvanced", "step 0 → 1 at weight 50%", false),
        ),
        (
            Transition::DeadlinePassed {
                revision: "v2".into(),
                rolled_back: false,
                message: "progress deadline 5m passed".into(),
            },
            (
                DEADLINE_REASON,
                "revision v2 paused: progress deadline 5m passed",
                true,
            ),
        ),
        (
            Transition::Undone {
                revision: "v2".into(),
                stable: "v1".into(),
            },
            (
                "RolloutUndone",
                "revision v2 undone; reverting the Deployment to v1",
                true,
            ),
        ),
    ];
    for (transition, (reason, message, warning)) in all {
        assert_eq!(
            note(&transition),
            Note {
                reason,
                message: message.into(),
                warning
            }
        );
    }
}

/// Steps 10 % for 60 s, then a webhook step `smoke` (pausing on failure), ungated; a
/// post-promotion webhook.
fn hooked() -> ValidatedRollout {
    let spec = serde_saphyr::from_str(
        r#"
targetRef: {name: web}
strategy:
  canary:
    steps:
      - setWeight: 10
      - pause: {duration: 60s}
      - webhook: {name: smoke, url: "http://smoke.shop:8080/run?token=t0ps3cret", onFailure: Pause}
hooks:
  postPromotion: [{name: tell, url: "http://tracker.shop/"}]
"#,
    )
    .unwrap();
    validate(&spec).unwrap()
}

#[test]
fn webhook_runs_are_written_to_the_status_with_a_condition_and_events_naming_the_host() {
    use crate::crd::rollout::{HookKind, HookPhase, HookStatus};
    use crate::rollout::lifecycle::{HookEvent, HookKey, HookKind as Kind, HookOutcome};
    let rollout = hooked();
    let mut observed = seen(T0 + 60.0, "v2", None);
    observed.gated = false;
    // Step 0's minute is over: the webhook step's weight is in force, its webhook due.
    let o = decide(
        &rollout,
        &rolling(0, T0, RolloutPhase::Progressing),
        &observed,
    );
    assert_eq!(o.status.current_step_index, Some(1));
    assert_eq!(
        o.status.hooks,
        [HookStatus {
            name: "smoke".into(),
            kind: HookKind::Step,
            revision: "v2".into(),
            step: Some(1),
            phase: HookPhase::Pending,
            attempts: 0,
            last_answer: None,
            started_at: None,
            next_attempt_at: Some("2025-11-23T00:01:00Z".into()),
            finished_at: None,
        }]
    );
    assert_eq!(
        condition(&o.status, "Hooks"),
        Some((
            "False",
            "HookRunning",
            "webhook smoke (step 1, POST to smoke.shop:8080): about to be called"
        ))
    );
    assert_eq!(o.requeue_after, Some(0.0));
    // Read back and written again, it is the same run.
    let mut again = RolloutStatus::default();
    write_state(&state_of(&o.status), &mut again);
    assert_eq!(again.hooks, o.status.hooks);
    // Its attempt: three answers of 503, the last final; the rollout pauses (onFailure).
    let key = HookKey {
        kind: Kind::Step,
        name: "smoke".into(),
        revision: "v2".into(),
        step: Some(1),
    };
    let mut observed = seen(T0 + 61.0, "v2", None);
    observed.gated = false;
    observed.hooks = vec![
        HookEvent::Started {
            key: key.clone(),
            attempt: 1,
            at: T0 + 61.0,
        },
        HookEvent::Finished {
            key: key.clone(),
            attempt: 1,
            outcome: HookOutcome {
                passed: false,
                answer: "answered 503: busy".into(),
                retry_in: Some(5.0),
            },
        },
    ];
    let retrying = decide(&rollout, &o.status, &observed);
    assert_eq!(reasons(&retrying), ["HookStarted", "HookRetrying"]);
    assert_eq!(
        retrying.notes[0].message,
        "calling webhook smoke (step 1, POST to smoke.shop:8080)"
    );
    assert_eq!(
        retrying.notes[1].message,
        "webhook smoke (step 1, POST to smoke.shop:8080): attempt 1 failed: answered 503: busy; trying again in 5s"
    );
    assert!(retrying.notes[1].warning);
    let h = &retrying.status.hooks[0];
    assert_eq!(
        (h.phase, h.attempts, h.next_attempt_at.as_deref()),
        (HookPhase::Pending, 1, Some("2025-11-23T00:01:06Z"))
    );
    assert_eq!(retrying.requeue_after, Some(5.0));
    let mut observed = seen(T0 + 80.0, "v2", None);
    observed.gated = false;
    observed.hooks = vec![HookEvent::Finished {
        key,
        attempt: 3,
        outcome: HookOutcome {
            passed: false,
            answer: "answered 503: busy".into(),
            retry_in: None,
        },
    }];
    let failed = decide(&rollout, &retrying.status, &observed);
    assert_eq!(failed.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(reasons(&failed), ["HookFailed", "Paused"]);
    let (status, reason, message) = condition(&failed.status, "Hooks").unwrap();
    assert_eq!((status, reason), ("False", "HookFailed"));
    assert_eq!(
        message,
        "webhook smoke (step 1, POST to smoke.shop:8080) failed after 3 attempts: answered 503: busy; the rollout pauses for a human: `canary-gate promote` goes on without it, `abort` ends the rollout"
    );
    // Never the path or query (the token).
    for text in failed
        .notes
        .iter()
        .map(|n| n.message.as_str())
        .chain([message, failed.status.message.as_deref().unwrap()])
    {
        assert!(
            !text.contains("t0ps3cret") && !text.contains("/run"),
            "{text}"
        );
    }
    assert_eq!(
        condition(&failed.status, "Paused").map(|c| c.0),
        Some("True")
    );
}
