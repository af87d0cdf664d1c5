//! Tests of the step machine: phases, human actions, outages, promotion and scale-down.
use super::*;
use crate::controller::status::{ACTION_CONDITION, AUTOSCALER_CONDITION};
use crate::controller::validate::validate;
use crate::time::rfc3339;

const T0: f64 = 1_763_856_000.0;

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

fn judged(decision: Decision, paused: bool, reason: &str) -> Judgement {
    Judgement {
        t: 0.0,
        decision,
        reason: reason.into(),
        step: 0,
        weight: 10.0,
        paused,
        metrics: Vec::new(),
    }
}

fn seen(now: f64, revision: &str, action: Option<Action>) -> Observed {
    Observed {
        now,
        revision: revision.into(),
        action,
        stable_ready: true,
        metrics_outage: None,
        pods: all_pods(),
        autoscaler_conflict: None,
    }
}

/// Ten pods in all, every one of both versions available.
fn all_pods() -> Availability {
    Availability {
        total: 10,
        stable: 10,
        canary: 10,
        ..Availability::default()
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

#[test]
fn first_sight_adopts_the_running_revision_as_stable() {
    let o = decide(
        &rollout(),
        &RolloutStatus::default(),
        &seen(T0, "v1", None),
        None,
        10.0,
    );
    assert_eq!(o.status.stable_revision.as_deref(), Some("v1"));
    assert_eq!(o.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(o.requeue_after, None);
    assert_eq!(reasons(&o), ["Adopted"]);
}

#[test]
fn a_new_revision_starts_at_step_zero_with_its_weight() {
    let healthy = RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("v1".into()),
        ..RolloutStatus::default()
    };
    let o = decide(&rollout(), &healthy, &seen(T0, "v2", None), None, 10.0);
    assert_eq!(o.status.canary_revision.as_deref(), Some("v2"));
    assert_eq!(
        (o.status.current_step_index, o.status.canary_weight),
        (Some(0), Some(10))
    );
    assert_eq!(o.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(o.status.started_at, Some(rfc3339(T0)));
    assert_eq!(o.requeue_after, Some(10.0));
    assert_eq!(reasons(&o), ["RolloutStarted"]);
}

#[test]
fn a_passing_step_advances_only_once_its_pause_is_over() {
    let r = rollout();
    let s = rolling(0, T0, RolloutPhase::Progressing);
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let mid = decide(&r, &s, &seen(T0 + 30.0, "v2", None), Some(&pass), 10.0);
    assert_eq!(mid.status.current_step_index, Some(0));
    assert_eq!(mid.requeue_after, Some(10.0));
    let end = decide(&r, &s, &seen(T0 + 60.0, "v2", None), Some(&pass), 10.0);
    assert_eq!(
        (end.status.current_step_index, end.status.canary_weight),
        (Some(1), Some(50))
    );
    assert_eq!(end.status.step_started_at, Some(rfc3339(T0 + 60.0)));
    assert_eq!(reasons(&end), ["StepAdvanced"]);
    // Step 1 is `pause: {}`: it waits for a human.
    assert_eq!(end.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(end.status.decisions.len(), 1);
    assert_eq!(end.status.last_decision.as_deref(), Some("continue"));
}

#[test]
fn inconclusive_evidence_holds_at_the_current_weight() {
    let hold = judged(Decision::Hold, false, "error-rate: insufficient traffic");
    let o = decide(
        &rollout(),
        &rolling(0, T0, RolloutPhase::Progressing),
        &seen(T0 + 70.0, "v2", None),
        Some(&hold),
        10.0,
    );
    assert_eq!(
        (
            o.status.phase,
            o.status.current_step_index,
            o.status.canary_weight
        ),
        (Some(RolloutPhase::Holding), Some(0), Some(10))
    );
    assert_eq!(reasons(&o), ["Holding"]);
    assert_eq!(o.requeue_after, Some(10.0));
    // A hold past the budget under the pause policy waits for a human.
    let paused = judged(Decision::Hold, true, "hold budget spent");
    let o = decide(
        &rollout(),
        &o.status,
        &seen(T0 + 700.0, "v2", None),
        Some(&paused),
        10.0,
    );
    assert_eq!(o.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(o.requeue_after, None);
}

#[test]
fn a_failing_analysis_rolls_back_and_stays_rolled_back() {
    let fail = judged(Decision::Rollback, false, "error-rate: evidence of harm");
    let o = decide(
        &rollout(),
        &rolling(0, T0, RolloutPhase::Progressing),
        &seen(T0 + 20.0, "v2", None),
        Some(&fail),
        10.0,
    );
    assert_eq!(
        (o.status.phase, o.status.canary_weight),
        (Some(RolloutPhase::RolledBack), Some(0))
    );
    // Only the canary's scale-down remains to wake up for.
    assert_eq!(o.requeue_after, Some(30.5));
    assert!(o.notes[0].warning && o.notes[0].reason == "RolledBack");
    let again = decide(
        &rollout(),
        &o.status,
        &seen(T0 + 30.0, "v2", None),
        None,
        10.0,
    );
    assert_eq!(again.status, o.status);
}

#[test]
fn a_manual_pause_waits_until_a_human_promotes() {
    let r = rollout();
    let paused = rolling(1, T0 + 60.0, RolloutPhase::Paused);
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let o = decide(
        &r,
        &paused,
        &seen(T0 + 10_000.0, "v2", None),
        Some(&pass),
        10.0,
    );
    assert_eq!(
        (o.status.phase, o.status.current_step_index),
        (Some(RolloutPhase::Paused), Some(1))
    );
    let o = decide(
        &r,
        &paused,
        &seen(T0 + 10_000.0, "v2", Some(Action::Promote)),
        Some(&pass),
        10.0,
    );
    assert_eq!(
        (o.status.current_step_index, o.status.canary_weight),
        (Some(2), Some(80))
    );
    assert_eq!(o.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(reasons(&o), ["ResumedByHuman", "StepAdvanced"]);
}

#[test]
fn the_last_step_promotes_and_the_canary_becomes_stable() {
    let promote = judged(Decision::Promote, false, "all gating metrics pass");
    let o = decide(
        &rollout(),
        &rolling(2, T0, RolloutPhase::Progressing),
        &seen(T0 + 60.0, "v2", None),
        Some(&promote),
        10.0,
    );
    assert_eq!(
        (o.status.phase, o.status.canary_weight),
        (Some(RolloutPhase::Promoting), Some(100))
    );
    assert_eq!(o.requeue_after, Some(0.0));
    // Traffic stays on the canary until the stable workload runs the new revision.
    let waiting = decide(
        &rollout(),
        &o.status,
        &Observed {
            stable_ready: false,
            ..seen(T0 + 61.0, "v2", None)
        },
        None,
        10.0,
    );
    assert_eq!(
        (waiting.status.phase, waiting.status.canary_weight),
        (Some(RolloutPhase::Promoting), Some(100))
    );
    assert_eq!(waiting.requeue_after, Some(PROMOTION_POLL));
    assert_eq!(waiting.status.scale_down_at, None);
    let done = decide(
        &rollout(),
        &waiting.status,
        &seen(T0 + 70.0, "v2", None),
        None,
        10.0,
    );
    assert_eq!(done.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(done.status.stable_revision.as_deref(), Some("v2"));
    assert_eq!(done.status.canary_revision, None);
    assert_eq!(done.status.canary_weight, Some(0));
    // The canary's pods go 30 s (the default delay) later; the controller wakes up for it.
    assert_eq!(done.status.scale_down_at, Some(rfc3339(T0 + 100.0)));
    assert_eq!(done.requeue_after, Some(30.5));
}

#[test]
fn a_rollback_scales_the_canary_down_after_the_delay_and_a_new_rollout_cancels_that() {
    let fail = judged(Decision::Rollback, false, "errorRate: canary worse");
    let o = decide(
        &rollout(),
        &rolling(0, T0, RolloutPhase::Progressing),
        &seen(T0 + 20.0, "v2", None),
        Some(&fail),
        10.0,
    );
    assert_eq!(o.status.phase, Some(RolloutPhase::RolledBack));
    assert_eq!(o.status.scale_down_at, Some(rfc3339(T0 + 50.0)));
    assert_eq!(o.requeue_after, Some(30.5));
    // Later reconciles keep the time; once it has passed, nothing more to wake up for.
    let later = decide(
        &rollout(),
        &o.status,
        &seen(T0 + 90.0, "v2", None),
        None,
        10.0,
    );
    assert_eq!(later.status.scale_down_at, Some(rfc3339(T0 + 50.0)));
    assert_eq!(later.requeue_after, None);
    let again = decide(
        &rollout(),
        &later.status,
        &seen(T0 + 95.0, "v3", None),
        None,
        10.0,
    );
    assert_eq!(again.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(again.status.scale_down_at, None);
}

#[test]
fn blue_green_keeps_the_old_pods_after_the_switch_so_an_abort_switches_straight_back() {
    let bg = validate(
            &serde_saphyr::from_str(
                "targetRef: {name: web}\nstrategy:\n  blueGreen: {activeService: web, previewService: web-preview, scaleDownDelay: 5m}\n",
            )
            .unwrap(),
        )
        .unwrap();
    let preview = rolling(0, T0, RolloutPhase::Progressing);
    let switched = decide(&bg, &preview, &seen(T0 + 30.0, "v2", None), None, 10.0);
    assert_eq!(
        (switched.status.phase, switched.status.canary_weight),
        (Some(RolloutPhase::Promoting), Some(100))
    );
    // The old pods are kept (not re-templated) until 5 minutes after the switch.
    assert_eq!(switched.status.scale_down_at, Some(rfc3339(T0 + 330.0)));
    let waiting = decide(
        &bg,
        &switched.status,
        &Observed {
            stable_ready: false,
            ..seen(T0 + 60.0, "v2", None)
        },
        None,
        10.0,
    );
    assert_eq!(waiting.status.scale_down_at, Some(rfc3339(T0 + 330.0)));
    // An abort inside the window: all traffic back on the old pods at once.
    let back = decide(
        &bg,
        &waiting.status,
        &seen(T0 + 90.0, "v2", Some(Action::Abort)),
        None,
        10.0,
    );
    assert_eq!(
        (back.status.phase, back.status.canary_weight),
        (Some(RolloutPhase::Aborted), Some(0))
    );
}

#[test]
fn a_metrics_outage_never_ends_a_rollout_that_waits_for_a_human() {
    let outage = Observed {
        metrics_outage: Some(MetricsOutage {
            reason: METRICS_UNAVAILABLE,
            message: "Prometheus http://prom:9090 unreachable".into(),
            budget: 600.0,
            rollback: true,
        }),
        ..seen(T0 + 7.0 * 86_400.0, "v2", None)
    };
    // Step 1 (`pause: {}`) waits for `canary-gate promote`, and a step paused by the
    // judge's hold budget waits too; an outage far past the budget holds both.
    for (step, phase) in [(1, RolloutPhase::Paused), (0, RolloutPhase::Paused)] {
        let mut status = rolling(step, T0, phase);
        status.metrics_unavailable_since = Some(rfc3339(T0 + 60.0));
        let o = decide(&rollout(), &status, &outage, None, 10.0);
        assert_eq!(
            (o.status.phase, o.status.current_step_index),
            (Some(RolloutPhase::Paused), Some(step)),
            "step {step}: {:?}",
            o.status.message
        );
        assert_eq!(
            o.status.canary_weight,
            Some(if step == 1 { 50 } else { 10 })
        );
    }
}

#[test]
fn a_metrics_outage_holds_then_the_templates_policy_acts_after_the_hold_budget() {
    let outage = |rollback| Observed {
        metrics_outage: Some(MetricsOutage {
            reason: METRICS_UNAVAILABLE,
            message: "Prometheus http://prom:9090 unreachable (query error-rate)".into(),
            budget: 600.0,
            rollback,
        }),
        ..seen(T0 + 120.0, "v2", None)
    };
    // Step 0's pause (60 s) is over, yet nothing advances: it holds, says why, once.
    let first = decide(
        &rollout(),
        &rolling(0, T0, RolloutPhase::Progressing),
        &outage(false),
        None,
        10.0,
    );
    assert_eq!(
        (first.status.phase, first.status.current_step_index),
        (Some(RolloutPhase::Holding), Some(0))
    );
    assert_eq!(
        first.status.metrics_unavailable_since,
        Some(rfc3339(T0 + 120.0))
    );
    assert!(
        first
            .status
            .message
            .as_deref()
            .unwrap()
            .contains("metrics unavailable: Prometheus http://prom:9090 unreachable")
    );
    assert!(reasons(&first).contains(&"MetricsUnavailable"));
    let c = first
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "MetricsAvailable")
        .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "MetricsUnavailable")
    );
    let later = decide(
        &rollout(),
        &first.status,
        &Observed {
            now: T0 + 400.0,
            ..outage(false)
        },
        None,
        10.0,
    );
    assert_eq!(later.status.phase, Some(RolloutPhase::Holding));
    assert!(
        !reasons(&later).contains(&"MetricsUnavailable"),
        "one Event per outage"
    );
    // Past the hold budget: pause for a human, or roll back, as the template says.
    let paused = decide(
        &rollout(),
        &later.status,
        &Observed {
            now: T0 + 720.0,
            ..outage(false)
        },
        None,
        10.0,
    );
    assert_eq!(paused.status.phase, Some(RolloutPhase::Paused));
    assert!(
        paused
            .status
            .message
            .as_deref()
            .unwrap()
            .contains("metrics unavailable for 600s")
    );
    let rolled = decide(
        &rollout(),
        &later.status,
        &Observed {
            now: T0 + 720.0,
            ..outage(true)
        },
        None,
        10.0,
    );
    assert_eq!(rolled.status.phase, Some(RolloutPhase::RolledBack));
    // Metrics back: the outage is over.
    let pass = judged(Decision::Continue, false, "no objection");
    let back = decide(
        &rollout(),
        &later.status,
        &seen(T0 + 430.0, "v2", None),
        Some(&pass),
        10.0,
    );
    assert_eq!(back.status.metrics_unavailable_since, None);
    let c = back
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "MetricsAvailable")
        .unwrap();
    assert_eq!(c.status, "True");
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let o = decide(
        &rollout(),
        &rolling(0, T0, RolloutPhase::Progressing),
        &seen(T0 + 5.0, "v2", Some(Action::PromoteFull)),
        None,
        10.0,
    );
    assert_eq!(o.status.phase, Some(RolloutPhase::Promoting));
}

#[test]
fn abort_stops_until_retry_starts_again_from_step_zero() {
    let o = decide(
        &rollout(),
        &rolling(2, T0, RolloutPhase::Progressing),
        &seen(T0 + 5.0, "v2", Some(Action::Abort)),
        None,
        10.0,
    );
    assert_eq!(
        (o.status.phase, o.status.canary_weight),
        (Some(RolloutPhase::Aborted), Some(0))
    );
    let still = decide(
        &rollout(),
        &o.status,
        &seen(T0 + 50.0, "v2", Some(Action::Promote)),
        None,
        10.0,
    );
    assert_eq!(still.status.phase, Some(RolloutPhase::Aborted));
    let retried = decide(
        &rollout(),
        &o.status,
        &seen(T0 + 100.0, "v2", Some(Action::Retry)),
        None,
        10.0,
    );
    assert_eq!(
        (retried.status.phase, retried.status.current_step_index),
        (Some(RolloutPhase::Progressing), Some(0))
    );
    assert_eq!(retried.status.started_at, Some(rfc3339(T0 + 100.0)));
}

#[test]
fn a_newer_revision_mid_rollout_restarts_from_step_zero_against_stable() {
    let o = decide(
        &rollout(),
        &rolling(2, T0, RolloutPhase::Progressing),
        &seen(T0 + 90.0, "v3", None),
        None,
        10.0,
    );
    assert_eq!(o.status.canary_revision.as_deref(), Some("v3"));
    assert_eq!(o.status.stable_revision.as_deref(), Some("v1"));
    assert_eq!(o.status.current_step_index, Some(0));
    assert_eq!(reasons(&o), ["RolloutRestarted"]);
}

#[test]
fn reverting_the_target_to_stable_cancels_the_rollout() {
    let o = decide(
        &rollout(),
        &rolling(1, T0, RolloutPhase::Paused),
        &seen(T0 + 90.0, "v1", None),
        None,
        10.0,
    );
    assert_eq!(
        (o.status.phase, o.status.canary_revision.as_deref()),
        (Some(RolloutPhase::Healthy), None)
    );
    assert_eq!(reasons(&o), ["RolloutCancelled"]);
}

#[test]
fn a_gated_step_without_an_answer_holds_instead_of_advancing() {
    let o = decide(
        &rollout(),
        &rolling(0, T0, RolloutPhase::Progressing),
        &seen(T0 + 120.0, "v2", None),
        None,
        10.0,
    );
    assert_eq!(
        (o.status.phase, o.status.current_step_index),
        (Some(RolloutPhase::Holding), Some(0))
    );
}

#[test]
fn a_restart_mid_step_resumes_the_same_step_and_elapsed_time() {
    // The status alone carries step and start: a fresh controller at T0+45 with the status
    // written at T0+30 still needs 15 s more before step 0 completes.
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let written = decide(
        &rollout(),
        &rolling(0, T0, RolloutPhase::Progressing),
        &seen(T0 + 30.0, "v2", None),
        Some(&pass),
        10.0,
    );
    let resumed = decide(
        &rollout(),
        &written.status,
        &seen(T0 + 45.0, "v2", None),
        Some(&pass),
        10.0,
    );
    assert_eq!(resumed.status.current_step_index, Some(0));
    assert_eq!(resumed.requeue_after, Some(10.0));
    let after = decide(
        &rollout(),
        &resumed.status,
        &seen(T0 + 60.0, "v2", None),
        Some(&pass),
        10.0,
    );
    assert_eq!(after.status.current_step_index, Some(1));
}

#[test]
fn past_intervals_are_assigned_to_the_step_in_force_when_they_ended() {
    let r = rollout();
    let healthy = RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("v1".into()),
        ..RolloutStatus::default()
    };
    let started = decide(&r, &healthy, &seen(T0, "v2", None), None, 10.0).status;
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let advanced = decide(
        &r,
        &started,
        &seen(T0 + 60.0, "v2", None),
        Some(&pass),
        10.0,
    )
    .status;
    assert_eq!(advanced.step_history.len(), 2);
    let ctx = step_contexts(&r, &advanced, &[T0 + 10.0, T0 + 60.0, T0 + 70.0]);
    assert_eq!(ctx.iter().map(|c| c.step).collect::<Vec<_>>(), [0, 0, 1]);
    assert_eq!(
        ctx.iter().map(|c| c.weight).collect::<Vec<_>>(),
        [10.0, 10.0, 50.0]
    );
    assert_eq!(
        ctx.iter().map(|c| c.step_complete).collect::<Vec<_>>(),
        [false, true, false]
    );
}

#[test]
fn conditions_follow_the_phase_and_keep_their_transition_time() {
    let healthy = RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("v1".into()),
        ..RolloutStatus::default()
    };
    let cond = |s: &RolloutStatus, t: &str| {
        s.conditions.iter().find(|c| c.type_ == t).map(|c| {
            (
                c.status.clone(),
                c.reason.clone(),
                c.last_transition_time.0.as_second(),
            )
        })
    };
    let started = decide(&rollout(), &healthy, &seen(T0, "v2", None), None, 10.0).status;
    assert_eq!(
        cond(&started, "Progressing"),
        Some(("True".into(), "Progressing".into(), T0 as i64))
    );
    assert_eq!(cond(&started, "Healthy").unwrap().0, "False");
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let later = decide(
        &rollout(),
        &started,
        &seen(T0 + 30.0, "v2", None),
        Some(&pass),
        10.0,
    )
    .status;
    assert_eq!(
        cond(&later, "Progressing").unwrap().2,
        T0 as i64,
        "unchanged status keeps its time"
    );
    let fail = judged(Decision::Rollback, false, "error-rate: evidence of harm");
    let rolled = decide(
        &rollout(),
        &later,
        &seen(T0 + 40.0, "v2", None),
        Some(&fail),
        10.0,
    )
    .status;
    assert_eq!(
        cond(&rolled, "Progressing"),
        Some(("False".into(), "RolledBack".into(), T0 as i64 + 40))
    );
}

#[test]
fn undo_reverts_to_stable_during_a_rollout_and_to_the_previous_stable_after_promotion() {
    let o = decide(
        &rollout(),
        &rolling(1, T0, RolloutPhase::Paused),
        &seen(T0 + 5.0, "v2", Some(Action::Undo)),
        None,
        10.0,
    );
    assert_eq!(
        (
            o.status.phase,
            o.status.canary_weight,
            o.revert_to.as_deref()
        ),
        (Some(RolloutPhase::Aborted), Some(0), Some("v1"))
    );
    let promoted = decide(
        &rollout(),
        &RolloutStatus {
            canary_weight: Some(100),
            ..rolling(2, T0, RolloutPhase::Promoting)
        },
        &seen(T0 + 5.0, "v2", None),
        None,
        10.0,
    )
    .status;
    assert_eq!(promoted.previous_stable_revision.as_deref(), Some("v1"));
    let undo = decide(
        &rollout(),
        &promoted,
        &seen(T0 + 9.0, "v2", Some(Action::Undo)),
        None,
        10.0,
    );
    assert_eq!(undo.revert_to.as_deref(), Some("v1"));
    let never = RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("v1".into()),
        ..RolloutStatus::default()
    };
    let o = decide(
        &rollout(),
        &never,
        &seen(T0, "v1", Some(Action::Undo)),
        None,
        10.0,
    );
    assert_eq!((o.revert_to, o.notes[0].reason), (None, "UndoImpossible"));
}

#[test]
fn the_decision_record_keeps_the_newest_twenty() {
    let mut s = rolling(0, T0, RolloutPhase::Progressing);
    for i in 0..30 {
        let hold = judged(Decision::Hold, false, &format!("evidence building {i}"));
        s = decide(
            &rollout(),
            &s,
            &seen(T0 + f64::from(i), "v2", None),
            Some(&hold),
            10.0,
        )
        .status;
    }
    assert_eq!(s.decisions.len(), MAX_DECISIONS);
    assert_eq!(s.decisions.last().unwrap().reason, "evidence building 29");
    assert_eq!(s.decisions[0].reason, "evidence building 10");
}

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

fn with_pods(now: f64, canary: i32, problems: &[&str]) -> Observed {
    Observed {
        pods: Availability {
            canary,
            canary_problems: problems.iter().map(|p| p.to_string()).collect(),
            ..all_pods()
        },
        ..seen(now, "v2", None)
    }
}

fn condition<'a>(s: &'a RolloutStatus, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

fn healthy() -> RolloutStatus {
    RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("v1".into()),
        ..RolloutStatus::default()
    }
}

#[test]
fn a_step_weight_waits_for_the_canary_pods_and_its_clock_starts_when_it_is_in_force() {
    let r = ungated("");
    let o = decide(&r, &healthy(), &with_pods(T0, 0, &[]), None, 10.0);
    assert_eq!(
        (
            o.status.phase,
            o.status.current_step_index,
            o.status.canary_weight
        ),
        (Some(RolloutPhase::Progressing), Some(0), Some(0))
    );
    assert_eq!(o.status.step_started_at, None);
    assert_eq!(o.status.waiting_since, Some(rfc3339(T0)));
    assert_eq!(
        condition(&o.status, "CanaryAvailable"),
        Some(("False", "WaitingForPods", "web-canary: 0/1 available"))
    );
    assert_eq!(reasons(&o), ["RolloutStarted", "WaitingForPods"]);
    assert_eq!(o.requeue_after, Some(15.0));
    // 40 s later the pod is available: the weight comes into force, the step's 60 s start now.
    let live = decide(&r, &o.status, &with_pods(T0 + 40.0, 1, &[]), None, 10.0);
    assert_eq!(live.status.canary_weight, Some(10));
    assert_eq!(live.status.step_started_at, Some(rfc3339(T0 + 40.0)));
    assert_eq!(live.status.waiting_since, None);
    assert_eq!(live.status.step_history.len(), 1);
    assert_eq!(reasons(&live), ["StepAdvanced"]);
    assert_eq!(
        condition(&live.status, "CanaryAvailable").map(|c| c.0),
        Some("True")
    );
    // The ungated step ends 60 s after the weight came into force, not after the start.
    let early = decide(&r, &live.status, &with_pods(T0 + 60.0, 1, &[]), None, 10.0);
    assert_eq!(early.status.current_step_index, Some(0));
    let due = decide(&r, &live.status, &with_pods(T0 + 100.0, 1, &[]), None, 10.0);
    // Step 1 (50 %) needs 5 canary pods: it waits for them with 10 % still in force.
    assert_eq!(
        (
            due.status.current_step_index,
            due.status.canary_weight,
            due.status.step_started_at.clone()
        ),
        (Some(1), Some(10), None)
    );
    assert!(
        due.status
            .message
            .as_deref()
            .unwrap()
            .contains("step 1 (50%) waits for web-canary: 1/5 available"),
        "{:?}",
        due.status.message
    );
    assert_eq!(reasons(&due), ["WaitingForPods"]);
}

#[test]
fn a_crashlooping_canary_with_ungated_steps_is_never_promoted_and_rolls_back_at_the_deadline() {
    let r = ungated("progressDeadline: 5m");
    let crash = ["1 pod: CrashLoopBackOff (container web), last exit 1 Error"];
    let mut s = decide(&r, &healthy(), &with_pods(T0, 0, &crash), None, 10.0).status;
    for t in [60.0, 120.0, 299.0] {
        let o = decide(&r, &s, &with_pods(T0 + t, 0, &crash), None, 10.0);
        assert_eq!(
            (o.status.phase, o.status.canary_weight),
            (Some(RolloutPhase::Progressing), Some(0)),
            "at {t}s"
        );
        assert!(
            o.notes.is_empty(),
            "one WaitingForPods Event only: {:?}",
            o.notes
        );
        s = o.status;
    }
    let o = decide(&r, &s, &with_pods(T0 + 300.0, 0, &crash), None, 10.0);
    assert_eq!(
        (o.status.phase, o.status.canary_weight),
        (Some(RolloutPhase::RolledBack), Some(0))
    );
    let (status, reason, message) = condition(&o.status, "Progressing").unwrap();
    assert_eq!((status, reason), ("False", DEADLINE_REASON));
    assert_eq!(
        message,
        "progress deadline 5m passed: web-canary: 0/1 available (1 pod: CrashLoopBackOff (container web), last exit 1 Error)"
    );
    assert_eq!(reasons(&o), [DEADLINE_REASON]);
    assert!(o.notes[0].warning);
    assert_eq!(
        o.requeue_after,
        Some(30.5),
        "only the canary's scale-down is left"
    );
    // The reason stays on the condition while the rollback stands.
    let later = decide(&r, &o.status, &with_pods(T0 + 400.0, 0, &crash), None, 10.0);
    assert_eq!(
        condition(&later.status, "Progressing").map(|c| c.1),
        Some(DEADLINE_REASON)
    );
}

#[test]
fn the_pause_policy_waits_for_a_human_at_the_deadline_and_promote_waits_again() {
    let r = ungated("progressDeadline: 5m\nonProgressDeadline: Pause");
    let s = decide(&r, &healthy(), &with_pods(T0, 0, &[]), None, 10.0).status;
    let o = decide(&r, &s, &with_pods(T0 + 300.0, 0, &[]), None, 10.0);
    assert_eq!(o.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(
        condition(&o.status, "Progressing").map(|c| (c.0, c.1)),
        Some(("False", DEADLINE_REASON))
    );
    // Paused: an hour later nothing has changed and nothing rolls back.
    let later = decide(&r, &o.status, &with_pods(T0 + 3900.0, 0, &[]), None, 10.0);
    assert_eq!(later.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(later.status.message, o.status.message);
    assert!(later.notes.is_empty());
}

#[test]
fn a_canary_that_loses_its_pods_mid_step_holds_the_step_and_counts_against_the_deadline() {
    let r = ungated("progressDeadline: 5m");
    let s = RolloutStatus {
        canary_weight: Some(10),
        ..rolling(0, T0, RolloutPhase::Progressing)
    };
    // The step's pause is over, but the canary has no pod: no advance.
    let o = decide(&r, &s, &with_pods(T0 + 100.0, 0, &[]), None, 10.0);
    assert_eq!(
        (
            o.status.phase,
            o.status.current_step_index,
            o.status.canary_weight
        ),
        (Some(RolloutPhase::Holding), Some(0), Some(10))
    );
    assert_eq!(o.status.waiting_since, Some(rfc3339(T0 + 100.0)));
    // A judge's rollback still goes ahead.
    let fail = judged(Decision::Rollback, false, "error-rate: evidence of harm");
    let rolled = decide(&r, &s, &with_pods(T0 + 100.0, 0, &[]), Some(&fail), 10.0);
    assert_eq!(rolled.status.phase, Some(RolloutPhase::RolledBack));
    // The pods come back: the step goes on from where it was.
    let back = decide(&r, &o.status, &with_pods(T0 + 130.0, 5, &[]), None, 10.0);
    assert_eq!(
        (back.status.current_step_index, back.status.canary_weight),
        (Some(1), Some(50))
    );
    assert_eq!(back.status.waiting_since, None);
    // They do not: rolled back 5 minutes after they went.
    let gone = decide(&r, &o.status, &with_pods(T0 + 400.0, 0, &[]), None, 10.0);
    assert_eq!(gone.status.phase, Some(RolloutPhase::RolledBack));
}

#[test]
fn a_manual_pause_is_never_ended_by_the_deadline() {
    let r = rollout(); // step 1 is `pause: {}` at 50 %
    let s = RolloutStatus {
        canary_weight: Some(50),
        waiting_since: Some(rfc3339(T0)),
        ..rolling(1, T0, RolloutPhase::Paused)
    };
    let o = decide(&r, &s, &with_pods(T0 + 86_400.0, 0, &[]), None, 10.0);
    assert_eq!(o.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(
        condition(&o.status, "CanaryAvailable").map(|c| (c.0, c.1)),
        Some(("False", "WaitingForPods"))
    );
    assert_eq!(deadline_due(&r, &s, T0 + 86_400.0), None);
}

#[test]
fn a_promotion_moves_all_traffic_only_to_an_available_canary_then_waits_for_the_stable() {
    let r = ungated("progressDeadline: 5m");
    let s = RolloutStatus {
        canary_weight: Some(50),
        ..rolling(1, T0, RolloutPhase::Progressing)
    };
    // The last step's pause is over: promote, but 100 % needs all 10 pods on the canary.
    let o = decide(&r, &s, &with_pods(T0 + 60.0, 5, &[]), None, 10.0);
    assert_eq!(
        (o.status.phase, o.status.canary_weight),
        (Some(RolloutPhase::Promoting), Some(50))
    );
    let still = decide(&r, &o.status, &with_pods(T0 + 70.0, 7, &[]), None, 10.0);
    assert_eq!(still.status.canary_weight, Some(50));
    assert_eq!(
        condition(&still.status, "CanaryAvailable"),
        Some(("False", "WaitingForPods", "web-canary: 7/10 available"))
    );
    let all = decide(
        &r,
        &still.status,
        &with_pods(T0 + 80.0, 10, &[]),
        None,
        10.0,
    );
    assert_eq!(all.status.canary_weight, Some(100));
    assert_eq!(all.status.waiting_since, None);
    // The stable workload never rolls the new revision out: rolled back at its deadline.
    let stable_stuck = |t: f64| Observed {
        stable_ready: false,
        pods: Availability {
            stable: 3,
            stable_problems: vec!["FailedCreate: exceeded quota".into()],
            ..all_pods()
        },
        ..seen(t, "v2", None)
    };
    let wait = decide(&r, &all.status, &stable_stuck(T0 + 90.0), None, 10.0);
    assert_eq!(wait.status.phase, Some(RolloutPhase::Promoting));
    assert_eq!(
        deadline_due(&r, &wait.status, T0 + 390.0),
        Some(Side::Stable)
    );
    let o = decide(&r, &wait.status, &stable_stuck(T0 + 390.0), None, 10.0);
    assert_eq!(
        (o.status.phase, o.status.canary_weight),
        (Some(RolloutPhase::RolledBack), Some(0))
    );
    assert!(
        o.status.message.as_deref().unwrap().ends_with(
            "web-stable: 3/10 available with revision v2 (FailedCreate: exceeded quota)"
        ),
        "{:?}",
        o.status.message
    );
}

#[test]
fn an_action_that_cannot_be_carried_out_says_why_in_a_condition_and_a_warning() {
    let rolled = RolloutStatus {
        canary_weight: Some(0),
        ..rolling(0, T0, RolloutPhase::RolledBack)
    };
    let o = decide(
        &rollout(),
        &rolled,
        &seen(T0, "v2", Some(Action::Promote)),
        None,
        10.0,
    );
    let (status, reason, message) = condition(&o.status, ACTION_CONDITION).unwrap();
    assert_eq!((status, reason), ("False", "ActionRefused"));
    assert!(
        message.contains("`canary-gate retry` starts revision v2 again"),
        "{message}"
    );
    assert_eq!(reasons(&o), ["ActionRefused"]);
    assert!(o.notes[0].warning);
    // Undo of an aborted or rolled-back rollout reverts the Deployment to the stable revision.
    let undo = decide(
        &rollout(),
        &rolled,
        &seen(T0, "v2", Some(Action::Undo)),
        None,
        10.0,
    );
    assert_eq!(undo.revert_to.as_deref(), Some("v1"));
    assert_eq!(
        condition(&undo.status, ACTION_CONDITION).map(|c| (c.0, c.1)),
        Some(("True", "Applied"))
    );
    // Undo with nothing to go back to.
    let none = decide(
        &rollout(),
        &healthy(),
        &seen(T0, "v1", Some(Action::Undo)),
        None,
        10.0,
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
    let o = decide(&rollout(), &healthy(), &conflict, None, 10.0);
    assert_eq!(
        condition(&o.status, AUTOSCALER_CONDITION).map(|c| (c.0, c.1)),
        Some(("True", "HPATargetsDeployment"))
    );
    assert_eq!(reasons(&o), ["AutoscalerConflict"]);
    let again = decide(&rollout(), &o.status, &conflict, None, 10.0);
    assert!(again.notes.is_empty());
    let gone = decide(&rollout(), &again.status, &seen(T0, "v1", None), None, 10.0);
    assert_eq!(
        condition(&gone.status, AUTOSCALER_CONDITION).map(|c| c.0),
        Some("False")
    );
}

#[test]
fn adoption_is_not_healthy_until_the_stable_workload_has_its_pods() {
    let o = decide(
        &rollout(),
        &RolloutStatus::default(),
        &Observed {
            pods: Availability {
                stable: 0,
                ..all_pods()
            },
            ..seen(T0, "v1", None)
        },
        None,
        10.0,
    );
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
fn blue_green_judges_only_an_available_preview_and_switches_only_to_it() {
    let spec = serde_saphyr::from_str(
        "targetRef: {name: web}\nstrategy:\n  blueGreen: {activeService: web, previewService: web-preview}\n",
    )
    .unwrap();
    let r = validate(&spec).unwrap();
    // The preview needs every pod (10) before its step is in force.
    let o = decide(&r, &healthy(), &with_pods(T0, 4, &[]), None, 10.0);
    assert_eq!(o.status.step_started_at, None);
    assert_eq!(
        condition(&o.status, "CanaryAvailable").map(|c| c.2.to_string()),
        Some("web-canary: 4/10 available".into())
    );
    let ready = decide(&r, &o.status, &with_pods(T0 + 20.0, 10, &[]), None, 10.0);
    assert_eq!(ready.status.step_started_at, Some(rfc3339(T0 + 20.0)));
    // Auto-promotion switches at once, but only while the preview still has its pods.
    let promote = decide(
        &r,
        &ready.status,
        &with_pods(T0 + 21.0, 10, &[]),
        None,
        10.0,
    );
    assert_eq!(
        (promote.status.phase, promote.status.canary_weight),
        (Some(RolloutPhase::Promoting), Some(100))
    );
    let lost = decide(&r, &ready.status, &with_pods(T0 + 21.0, 9, &[]), None, 10.0);
    assert_ne!(lost.status.canary_weight, Some(100));
}
