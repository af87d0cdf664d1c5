//! Tests of the lifecycle on plain types: phases, human actions, outages, pods before traffic,
//! promotion and scale-down; the webhooks in [`hooks`](self::hooks).

use super::waits::PROMOTION_POLL;
use super::*;
use crate::analysis::{Decision, Judgement};
use crate::rollout::pods::Availability;
use crate::rollout::{Step, StepPlan};

const T0: f64 = 1_763_856_000.0;

fn plan(steps: &[(f64, f64)]) -> StepPlan {
    StepPlan::new(
        steps
            .iter()
            .map(|&(weight, pause)| Step { weight, pause })
            .collect(),
    )
    .unwrap()
}

/// Steps 10 % for 60 s, 50 % until a human promotes, 80 % for 60 s (as `setWeight: 10`,
/// `pause: {duration: 60s}`, `setWeight: 50`, `pause: {}`, …), every one gated by an analysis.
fn gated() -> Spec {
    Spec::canary(
        "web",
        plan(&[(10.0, 60.0), (50.0, f64::INFINITY), (80.0, 60.0)]),
    )
}

/// Steps 10 % and 50 %, 60 s each, not gated (`seen(…).ungated()`).
fn ungated() -> Spec {
    Spec::canary("web", plan(&[(10.0, 60.0), (50.0, 60.0)]))
}

/// Blue-green: one step at weight 0 that ends at once (auto-promotion), not gated.
fn blue_green(scale_down_delay: f64) -> Spec {
    Spec {
        kind: StrategyKind::BlueGreen,
        routed: true,
        scale_down_delay,
        ..Spec::canary("web", plan(&[(0.0, 0.0)]))
    }
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

/// What a reconcile saw, owned (the lifecycle borrows it).
#[derive(Clone)]
struct Seen {
    now: f64,
    revision: &'static str,
    action: Option<Action>,
    stable_ready: bool,
    pods: Availability,
    gated: bool,
    judgement: Option<Judgement>,
    outage: Option<MetricsOutage>,
    hooks: Vec<HookEvent>,
}

/// At `now`, the target on `revision`, every pod of both versions available, the step gated.
fn seen(now: f64, revision: &'static str) -> Seen {
    Seen {
        now,
        revision,
        action: None,
        stable_ready: true,
        pods: all_pods(),
        gated: true,
        judgement: None,
        outage: None,
        hooks: Vec::new(),
    }
}

impl Seen {
    fn acting(self, action: Action) -> Self {
        Self {
            action: Some(action),
            ..self
        }
    }

    fn judged(self, judgement: &Judgement) -> Self {
        Self {
            judgement: Some(judgement.clone()),
            ..self
        }
    }

    fn ungated(self) -> Self {
        Self {
            gated: false,
            ..self
        }
    }

    /// The canary has `canary` of the 10 pods available, for `problems`.
    fn canary_pods(self, canary: i32, problems: &[&str]) -> Self {
        Self {
            pods: Availability {
                canary,
                canary_problems: problems.iter().map(|p| p.to_string()).collect(),
                ..all_pods()
            },
            ..self
        }
    }

    fn outage(self, budget: f64, rollback: bool) -> Self {
        Self {
            outage: Some(MetricsOutage {
                kind: OutageKind::Unavailable,
                message: "Prometheus http://prom:9090 unreachable (query error-rate)".into(),
                budget,
                rollback,
            }),
            ..self
        }
    }

    fn decide(&self, spec: &Spec, state: &State) -> Decided {
        decide(
            spec,
            state,
            &Inputs {
                now: self.now,
                revision: self.revision,
                action: self.action,
                stable_ready: self.stable_ready,
                pods: &self.pods,
                gated: self.gated,
                judgement: self.judgement.as_ref(),
                metrics_outage: self.outage.as_ref(),
                interval: 10.0,
                hooks: &self.hooks,
            },
        )
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

fn healthy() -> State {
    State {
        phase: Some(LifecyclePhase::Healthy),
        stable_revision: Some("v1".into()),
        ..State::default()
    }
}

/// Revision v2 rolling out against v1 since T0, at `step` since `started`.
fn rolling(step: usize, started: f64, phase: LifecyclePhase) -> State {
    State {
        phase: Some(phase),
        stable_revision: Some("v1".into()),
        canary_revision: Some("v2".into()),
        started_at: Some(T0),
        step_started_at: Some(started),
        step: Some(step),
        ..State::default()
    }
}

/// The transitions' names, e.g. `["Started", "WaitingForPods"]`.
fn news(d: &Decided) -> Vec<String> {
    d.transitions
        .iter()
        .map(|t| {
            format!("{t:?}")
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect()
        })
        .collect()
}

fn at(d: &Decided) -> (Option<LifecyclePhase>, Option<usize>, Option<i32>) {
    (d.state.phase, d.state.step, d.state.weight)
}

use LifecyclePhase::{Aborted, Healthy, Holding, Paused, Progressing, Promoting, RolledBack};

#[test]
fn first_sight_adopts_the_running_revision_as_stable() {
    let d = seen(T0, "v1").decide(&gated(), &State::default());
    assert_eq!(d.state.stable_revision.as_deref(), Some("v1"));
    assert_eq!(d.state.phase, Some(Healthy));
    assert_eq!(
        d.state.message.as_deref(),
        Some("revision v1 adopted as stable")
    );
    assert_eq!(d.wake_in, None);
    assert_eq!(news(&d), ["Adopted"]);
}

#[test]
fn adoption_says_what_the_stable_workload_still_lacks() {
    let mut short = seen(T0, "v1");
    short.pods.stable = 0;
    let d = short.decide(&gated(), &State::default());
    assert_eq!(
        d.state.message.as_deref(),
        Some("revision v1 is stable; waiting for web-stable: 0/10 available")
    );
    // It looks again on its own while it waits (the workload's change may come first).
    assert_eq!(d.wake_in, Some(15.0));
    let mut later = seen(T0 + 15.0, "v1");
    later.pods.stable = 4;
    assert_eq!(later.decide(&gated(), &d.state).wake_in, Some(15.0));
    later.pods.stable = 10;
    assert_eq!(later.decide(&gated(), &d.state).wake_in, None, "all there");
}

#[test]
fn a_new_revision_starts_at_step_zero_with_its_weight() {
    let d = seen(T0, "v2").decide(&gated(), &healthy());
    assert_eq!(d.state.canary_revision.as_deref(), Some("v2"));
    assert_eq!(at(&d), (Some(Progressing), Some(0), Some(10)));
    assert_eq!(d.state.started_at, Some(T0));
    assert_eq!(d.wake_in, Some(10.0));
    assert!(d.restarted, "a fresh decision record");
    assert_eq!(news(&d), ["Started"]);
}

#[test]
fn a_passing_step_advances_only_once_its_pause_is_over() {
    let s = rolling(0, T0, Progressing);
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let mid = seen(T0 + 30.0, "v2").judged(&pass).decide(&gated(), &s);
    assert_eq!(mid.state.step, Some(0));
    assert_eq!(mid.wake_in, Some(10.0));
    assert!(mid.judged);
    let end = seen(T0 + 60.0, "v2").judged(&pass).decide(&gated(), &s);
    // Step 1 is `pause: {}`: it waits for a human.
    assert_eq!(at(&end), (Some(Paused), Some(1), Some(50)));
    assert_eq!(end.state.step_started_at, Some(T0 + 60.0));
    assert_eq!(
        end.state.step_history,
        [StepStart {
            step: 1,
            at: T0 + 60.0
        }]
    );
    assert_eq!(news(&end), ["StepAdvanced"]);
    assert!(end.judged, "the judgement goes into the decision record");
}

#[test]
fn inconclusive_evidence_holds_at_the_current_weight() {
    let hold = judged(Decision::Hold, false, "error-rate: insufficient traffic");
    let d = seen(T0 + 70.0, "v2")
        .judged(&hold)
        .decide(&gated(), &rolling(0, T0, Progressing));
    assert_eq!(at(&d), (Some(Holding), Some(0), Some(10)));
    assert_eq!(
        d.state.message.as_deref(),
        Some("holding at 10%: error-rate: insufficient traffic")
    );
    assert_eq!(news(&d), ["Holding"]);
    assert_eq!(d.wake_in, Some(10.0));
    // A hold past the budget under the pause policy waits for a human.
    let paused = judged(Decision::Hold, true, "hold budget spent");
    let d = seen(T0 + 700.0, "v2")
        .judged(&paused)
        .decide(&gated(), &d.state);
    assert_eq!(d.state.phase, Some(Paused));
    assert_eq!(news(&d), ["Paused"]);
    assert_eq!(d.wake_in, None);
}

#[test]
fn a_failing_analysis_rolls_back_and_stays_rolled_back() {
    let fail = judged(Decision::Rollback, false, "error-rate: evidence of harm");
    let d = seen(T0 + 20.0, "v2")
        .judged(&fail)
        .decide(&gated(), &rolling(0, T0, Progressing));
    assert_eq!((d.state.phase, d.state.weight), (Some(RolledBack), Some(0)));
    // Only the canary's scale-down remains to wake up for.
    assert_eq!(d.wake_in, Some(30.5));
    assert_eq!(
        d.transitions,
        [Transition::RolledBack {
            revision: "v2".into(),
            reason: "error-rate: evidence of harm".into()
        }]
    );
    let again = seen(T0 + 30.0, "v2").decide(&gated(), &d.state);
    assert_eq!(again.state, d.state);
    assert!(again.transitions.is_empty());
}

#[test]
fn a_manual_pause_waits_until_a_human_promotes() {
    let paused = rolling(1, T0 + 60.0, Paused);
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let d = seen(T0 + 10_000.0, "v2")
        .judged(&pass)
        .decide(&gated(), &paused);
    assert_eq!((d.state.phase, d.state.step), (Some(Paused), Some(1)));
    let d = seen(T0 + 10_000.0, "v2")
        .judged(&pass)
        .acting(Action::Promote)
        .decide(&gated(), &paused);
    assert_eq!(at(&d), (Some(Progressing), Some(2), Some(80)));
    assert_eq!(news(&d), ["ResumedByHuman", "StepAdvanced"]);
    assert_eq!(
        d.action,
        Some(ActionResult::Applied("promote: step 1 ended".into()))
    );
}

#[test]
fn the_last_step_promotes_and_the_canary_becomes_stable() {
    let promote = judged(Decision::Promote, false, "all gating metrics pass");
    let d = seen(T0 + 60.0, "v2")
        .judged(&promote)
        .decide(&gated(), &rolling(2, T0, Progressing));
    assert_eq!(
        (d.state.phase, d.state.weight),
        (Some(Promoting), Some(100))
    );
    assert_eq!(d.wake_in, Some(0.0));
    // Traffic stays on the canary until the stable workload runs the new revision.
    let waiting = Seen {
        stable_ready: false,
        ..seen(T0 + 61.0, "v2")
    }
    .decide(&gated(), &d.state);
    assert_eq!(
        (waiting.state.phase, waiting.state.weight),
        (Some(Promoting), Some(100))
    );
    assert_eq!(waiting.wake_in, Some(PROMOTION_POLL));
    assert_eq!(waiting.state.scale_down_at, None);
    let done = seen(T0 + 70.0, "v2").decide(&gated(), &waiting.state);
    assert_eq!(done.state.phase, Some(Healthy));
    assert_eq!(done.state.stable_revision.as_deref(), Some("v2"));
    assert_eq!(done.state.previous_stable_revision.as_deref(), Some("v1"));
    assert_eq!(done.state.canary_revision, None);
    assert_eq!(done.state.weight, Some(0));
    assert_eq!(news(&done), ["Promoted"]);
    // The canary's pods go 30 s (the default delay) later; the lifecycle wakes up for it.
    assert_eq!(done.state.scale_down_at, Some(T0 + 100.0));
    assert_eq!(done.wake_in, Some(30.5));
}

#[test]
fn a_rollback_scales_the_canary_down_after_the_delay_and_a_new_rollout_cancels_that() {
    let fail = judged(Decision::Rollback, false, "errorRate: canary worse");
    let d = seen(T0 + 20.0, "v2")
        .judged(&fail)
        .decide(&gated(), &rolling(0, T0, Progressing));
    assert_eq!(d.state.phase, Some(RolledBack));
    assert_eq!(d.state.scale_down_at, Some(T0 + 50.0));
    assert_eq!(d.wake_in, Some(30.5));
    // Later decisions keep the time; once it has passed, nothing more to wake up for.
    let later = seen(T0 + 90.0, "v2").decide(&gated(), &d.state);
    assert_eq!(later.state.scale_down_at, Some(T0 + 50.0));
    assert_eq!(later.wake_in, None);
    let again = seen(T0 + 95.0, "v3").decide(&gated(), &later.state);
    assert_eq!(again.state.phase, Some(Progressing));
    assert_eq!(again.state.scale_down_at, None);
}

#[test]
fn times_are_kept_to_the_whole_second_as_the_status_stores_them() {
    let fail = judged(Decision::Rollback, false, "errorRate: canary worse");
    let d = seen(T0 + 20.7, "v2")
        .judged(&fail)
        .decide(&gated(), &rolling(0, T0, Progressing));
    assert_eq!(d.state.scale_down_at, Some(T0 + 50.0));
    // Woken for the stored time, not the unrounded one.
    assert!((d.wake_in.unwrap() - 29.8).abs() < 1e-6, "{:?}", d.wake_in);
    let started = seen(T0 + 0.9, "v2").decide(&gated(), &healthy());
    assert_eq!(started.state.started_at, Some(T0));
}

#[test]
fn blue_green_keeps_the_old_pods_after_the_switch_so_an_abort_switches_straight_back() {
    let bg = blue_green(300.0);
    let preview = rolling(0, T0, Progressing);
    let switched = seen(T0 + 30.0, "v2").ungated().decide(&bg, &preview);
    assert_eq!(
        (switched.state.phase, switched.state.weight),
        (Some(Promoting), Some(100))
    );
    // The old pods are kept (not re-templated) until 5 minutes after the switch.
    assert_eq!(switched.state.scale_down_at, Some(T0 + 330.0));
    let waiting = Seen {
        stable_ready: false,
        ..seen(T0 + 60.0, "v2").ungated()
    }
    .decide(&bg, &switched.state);
    assert_eq!(waiting.state.scale_down_at, Some(T0 + 330.0));
    assert_eq!(
        waiting.wait, None,
        "inside the window it is no wait for pods"
    );
    // An abort inside the window: all traffic back on the old pods at once.
    let back = seen(T0 + 90.0, "v2")
        .ungated()
        .acting(Action::Abort)
        .decide(&bg, &waiting.state);
    assert_eq!(
        (back.state.phase, back.state.weight),
        (Some(Aborted), Some(0))
    );
}

#[test]
fn a_metrics_outage_never_ends_a_rollout_that_waits_for_a_human() {
    // Step 1 (`pause: {}`) waits for `canary-gate promote`, and a step paused by the
    // judge's hold budget waits too; an outage far past the budget holds both.
    for (step, weight) in [(1, 50), (0, 10)] {
        let mut state = rolling(step, T0, Paused);
        state.metrics_unavailable_since = Some(T0 + 60.0);
        let d = seen(T0 + 7.0 * 86_400.0, "v2")
            .outage(600.0, true)
            .decide(&gated(), &state);
        assert_eq!(
            at(&d),
            (Some(Paused), Some(step), Some(weight)),
            "step {step}: {:?}",
            d.state.message
        );
    }
}

#[test]
fn a_metrics_outage_holds_then_the_templates_policy_acts_after_the_hold_budget() {
    // Step 0's pause (60 s) is over, yet nothing advances: it holds, says why, once.
    let first = seen(T0 + 120.0, "v2")
        .outage(600.0, false)
        .decide(&gated(), &rolling(0, T0, Progressing));
    assert_eq!(
        (first.state.phase, first.state.step),
        (Some(Holding), Some(0))
    );
    assert_eq!(first.state.metrics_unavailable_since, Some(T0 + 120.0));
    assert!(
        first
            .state
            .message
            .as_deref()
            .unwrap()
            .contains("metrics unavailable: Prometheus http://prom:9090 unreachable")
    );
    assert_eq!(news(&first), ["MetricsOutage", "Holding"]);
    let later = seen(T0 + 400.0, "v2")
        .outage(600.0, false)
        .decide(&gated(), &first.state);
    assert_eq!(later.state.phase, Some(Holding));
    assert!(later.transitions.is_empty(), "said once per outage");
    // Past the hold budget: pause for a human, or roll back, as the template says.
    let paused = seen(T0 + 720.0, "v2")
        .outage(600.0, false)
        .decide(&gated(), &later.state);
    assert_eq!(paused.state.phase, Some(Paused));
    assert!(
        paused
            .state
            .message
            .as_deref()
            .unwrap()
            .contains("metrics unavailable for 600s")
    );
    let rolled = seen(T0 + 720.0, "v2")
        .outage(600.0, true)
        .decide(&gated(), &later.state);
    assert_eq!(rolled.state.phase, Some(RolledBack));
    // Metrics back: the outage is over.
    let pass = judged(Decision::Continue, false, "no objection");
    let back = seen(T0 + 430.0, "v2")
        .judged(&pass)
        .decide(&gated(), &later.state);
    assert_eq!(back.state.metrics_unavailable_since, None);
}

#[test]
fn invalid_arguments_hold_without_a_budget() {
    let mut s = seen(T0 + 86_400.0, "v2");
    s.outage = Some(MetricsOutage {
        kind: OutageKind::InvalidArguments,
        message: "template generic-http: argument service is refused".into(),
        budget: f64::INFINITY,
        rollback: false,
    });
    let mut state = rolling(0, T0, Holding);
    state.metrics_unavailable_since = Some(T0);
    let d = s.decide(&gated(), &state);
    assert_eq!(d.state.phase, Some(Holding));
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let d = seen(T0 + 5.0, "v2")
        .acting(Action::PromoteFull)
        .decide(&gated(), &rolling(0, T0, Progressing));
    assert_eq!(d.state.phase, Some(Promoting));
    assert_eq!(news(&d), ["PromotedByHuman", "Promoting"]);
}

#[test]
fn abort_stops_until_retry_starts_again_from_step_zero() {
    let d = seen(T0 + 5.0, "v2")
        .acting(Action::Abort)
        .decide(&gated(), &rolling(2, T0, Progressing));
    assert_eq!((d.state.phase, d.state.weight), (Some(Aborted), Some(0)));
    let still = seen(T0 + 50.0, "v2")
        .acting(Action::Promote)
        .decide(&gated(), &d.state);
    assert_eq!(still.state.phase, Some(Aborted));
    assert!(matches!(still.action, Some(ActionResult::Refused(_))));
    let retried = seen(T0 + 100.0, "v2")
        .acting(Action::Retry)
        .decide(&gated(), &d.state);
    assert_eq!(
        (retried.state.phase, retried.state.step),
        (Some(Progressing), Some(0))
    );
    assert_eq!(retried.state.started_at, Some(T0 + 100.0));
    assert!(retried.restarted);
    assert_eq!(news(&retried), ["Retried"]);
}

#[test]
fn retry_while_running_is_refused_and_the_step_goes_on() {
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let d = seen(T0 + 60.0, "v2")
        .judged(&pass)
        .acting(Action::Retry)
        .decide(&gated(), &rolling(0, T0, Progressing));
    assert_eq!(d.state.step, Some(1));
    assert_eq!(
        d.action,
        Some(ActionResult::Refused(
            "`retry` restarts only an aborted or rolled-back revision; revision v2 is Progressing"
                .into()
        ))
    );
}

#[test]
fn a_newer_revision_mid_rollout_restarts_from_step_zero_against_stable() {
    let d = seen(T0 + 90.0, "v3").decide(&gated(), &rolling(2, T0, Progressing));
    assert_eq!(d.state.canary_revision.as_deref(), Some("v3"));
    assert_eq!(d.state.stable_revision.as_deref(), Some("v1"));
    assert_eq!(d.state.step, Some(0));
    assert_eq!(
        d.transitions,
        [Transition::Restarted {
            revision: "v3".into(),
            replaced: "v2".into()
        }]
    );
}

#[test]
fn reverting_the_target_to_stable_cancels_the_rollout() {
    let d = seen(T0 + 90.0, "v1").decide(&gated(), &rolling(1, T0, Paused));
    assert_eq!(
        (d.state.phase, d.state.canary_revision.as_deref()),
        (Some(Healthy), None)
    );
    assert_eq!(news(&d), ["Cancelled"]);
}

#[test]
fn a_gated_step_without_an_answer_holds_instead_of_advancing() {
    let d = seen(T0 + 120.0, "v2").decide(&gated(), &rolling(0, T0, Progressing));
    assert_eq!((d.state.phase, d.state.step), (Some(Holding), Some(0)));
    // Not gated, the same step is over and advances.
    let d = seen(T0 + 120.0, "v2")
        .ungated()
        .decide(&ungated(), &rolling(0, T0, Progressing));
    assert_eq!(at(&d), (Some(Progressing), Some(1), Some(50)));
}

#[test]
fn a_restart_mid_step_resumes_the_same_step_and_elapsed_time() {
    // The state alone carries step and start: a fresh controller at T0+45 with the state
    // written at T0+30 still needs 15 s more before step 0 completes.
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let written = seen(T0 + 30.0, "v2")
        .judged(&pass)
        .decide(&gated(), &rolling(0, T0, Progressing));
    let resumed = seen(T0 + 45.0, "v2")
        .judged(&pass)
        .decide(&gated(), &written.state);
    assert_eq!(resumed.state.step, Some(0));
    assert_eq!(resumed.wake_in, Some(10.0));
    let after = seen(T0 + 60.0, "v2")
        .judged(&pass)
        .decide(&gated(), &resumed.state);
    assert_eq!(after.state.step, Some(1));
}

#[test]
fn past_intervals_are_assigned_to_the_step_in_force_when_they_ended() {
    let spec = gated();
    let started = seen(T0, "v2").decide(&spec, &healthy()).state;
    let pass = judged(Decision::Continue, false, "all gating metrics pass");
    let advanced = seen(T0 + 60.0, "v2")
        .judged(&pass)
        .decide(&spec, &started)
        .state;
    assert_eq!(advanced.step_history.len(), 2);
    let ctx = step_contexts(
        &spec.plan,
        &advanced.step_history,
        &[T0 + 10.0, T0 + 60.0, T0 + 70.0],
    );
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
fn undo_reverts_to_stable_during_a_rollout_and_to_the_previous_stable_after_promotion() {
    let d = seen(T0 + 5.0, "v2")
        .acting(Action::Undo)
        .decide(&gated(), &rolling(1, T0, Paused));
    assert_eq!(
        (d.state.phase, d.state.weight, d.revert_to.as_deref()),
        (Some(Aborted), Some(0), Some("v1"))
    );
    assert_eq!(news(&d), ["Undone"]);
    let promoted = seen(T0 + 5.0, "v2")
        .decide(
            &gated(),
            &State {
                weight: Some(100),
                ..rolling(2, T0, Promoting)
            },
        )
        .state;
    assert_eq!(promoted.previous_stable_revision.as_deref(), Some("v1"));
    let undo = seen(T0 + 9.0, "v2")
        .acting(Action::Undo)
        .decide(&gated(), &promoted);
    assert_eq!(undo.revert_to.as_deref(), Some("v1"));
    assert_eq!(news(&undo), ["UndoRequested"]);
    let never = seen(T0, "v1")
        .acting(Action::Undo)
        .decide(&gated(), &healthy());
    assert_eq!(never.revert_to, None);
    assert_eq!(
        never.action,
        Some(ActionResult::UndoImpossible(
            "no previous stable revision is known; revert the Deployment (e.g. in Git)".into()
        ))
    );
}

#[test]
fn an_action_that_cannot_be_carried_out_is_refused_with_the_reason() {
    let rolled = State {
        weight: Some(0),
        ..rolling(0, T0, RolledBack)
    };
    let d = seen(T0, "v2")
        .acting(Action::Promote)
        .decide(&gated(), &rolled);
    let Some(ActionResult::Refused(why)) = &d.action else {
        panic!("{:?}", d.action)
    };
    assert!(
        why.contains("`canary-gate retry` starts revision v2 again"),
        "{why}"
    );
    assert_eq!(d.state, rolled, "nothing else changes");
    // Undo of an aborted or rolled-back rollout reverts the Deployment to the stable revision.
    let undo = seen(T0, "v2")
        .acting(Action::Undo)
        .decide(&gated(), &rolled);
    assert_eq!(undo.revert_to.as_deref(), Some("v1"));
    assert!(matches!(undo.action, Some(ActionResult::Applied(_))));
    // An action that comes with a new revision is not carried over to it.
    let new = seen(T0, "v3")
        .acting(Action::Promote)
        .decide(&gated(), &rolled);
    assert_eq!(new.state.step, Some(0));
    assert!(matches!(new.action, Some(ActionResult::Refused(_))));
}

#[test]
fn a_step_weight_waits_for_the_canary_pods_and_its_clock_starts_when_it_is_in_force() {
    let spec = ungated();
    let d = seen(T0, "v2")
        .ungated()
        .canary_pods(0, &[])
        .decide(&spec, &healthy());
    assert_eq!(at(&d), (Some(Progressing), Some(0), Some(0)));
    assert_eq!(d.state.step_started_at, None);
    assert_eq!(d.state.waiting_since, Some(T0));
    assert_eq!(
        d.wait,
        Some(PodWait {
            side: Side::Canary,
            detail: "web-canary: 0/1 available".into(),
            deadline: None
        })
    );
    assert_eq!(news(&d), ["Started", "WaitingForPods"]);
    assert_eq!(d.wake_in, Some(15.0));
    // 40 s later the pod is available: the weight comes into force, the step's 60 s start now.
    let live = seen(T0 + 40.0, "v2")
        .ungated()
        .canary_pods(1, &[])
        .decide(&spec, &d.state);
    assert_eq!(live.state.weight, Some(10));
    assert_eq!(live.state.step_started_at, Some(T0 + 40.0));
    assert_eq!(live.state.waiting_since, None);
    assert_eq!(live.state.step_history.len(), 1);
    assert_eq!(
        live.transitions,
        [Transition::StepInForce {
            step: 0,
            weight: 10,
            was: 0,
            pods: "web-canary: 1/1 available".into()
        }]
    );
    assert_eq!(live.wait, None);
    // The ungated step ends 60 s after the weight came into force, not after the start.
    let early = seen(T0 + 60.0, "v2")
        .ungated()
        .canary_pods(1, &[])
        .decide(&spec, &live.state);
    assert_eq!(early.state.step, Some(0));
    let due = seen(T0 + 100.0, "v2")
        .ungated()
        .canary_pods(1, &[])
        .decide(&spec, &live.state);
    // Step 1 (50 %) needs 5 canary pods: it waits for them with 10 % still in force.
    assert_eq!(
        (due.state.step, due.state.weight, due.state.step_started_at),
        (Some(1), Some(10), None)
    );
    assert_eq!(
        due.state.message.as_deref(),
        Some("step 1 (50%) waits for web-canary: 1/5 available")
    );
    assert_eq!(news(&due), ["WaitingForPods"]);
}

#[test]
fn a_crashlooping_canary_with_ungated_steps_is_never_promoted_and_rolls_back_at_the_deadline() {
    let spec = Spec {
        progress_deadline: 300.0,
        ..ungated()
    };
    let crash = ["1 pod: CrashLoopBackOff (container web), last exit 1 Error"];
    let look = |t: f64| seen(T0 + t, "v2").ungated().canary_pods(0, &crash);
    let mut s = look(0.0).decide(&spec, &healthy()).state;
    for t in [60.0, 120.0, 299.0] {
        let d = look(t).decide(&spec, &s);
        assert_eq!(
            (d.state.phase, d.state.weight),
            (Some(Progressing), Some(0)),
            "at {t}s"
        );
        assert!(d.transitions.is_empty(), "said once: {:?}", d.transitions);
        s = d.state;
    }
    let d = look(300.0).decide(&spec, &s);
    assert_eq!((d.state.phase, d.state.weight), (Some(RolledBack), Some(0)));
    let message = "progress deadline 5m passed: web-canary: 0/1 available (1 pod: CrashLoopBackOff (container web), last exit 1 Error)";
    assert_eq!(
        d.wait.as_ref().and_then(|w| w.deadline.as_deref()),
        Some(message)
    );
    assert_eq!(
        d.transitions,
        [Transition::DeadlinePassed {
            revision: "v2".into(),
            rolled_back: true,
            message: message.into()
        }]
    );
    assert_eq!(
        d.wake_in,
        Some(30.5),
        "only the canary's scale-down is left"
    );
}

#[test]
fn the_pause_policy_waits_for_a_human_at_the_deadline_and_promote_waits_again() {
    let spec = Spec {
        progress_deadline: 300.0,
        deadline_rollback: false,
        ..ungated()
    };
    let look = |t: f64| seen(T0 + t, "v2").ungated().canary_pods(0, &[]);
    let s = look(0.0).decide(&spec, &healthy()).state;
    let d = look(300.0).decide(&spec, &s);
    assert_eq!(d.state.phase, Some(Paused));
    assert!(d.wait.as_ref().is_some_and(|w| w.deadline.is_some()));
    // Paused: an hour later nothing has changed and nothing rolls back.
    let later = look(3900.0).decide(&spec, &d.state);
    assert_eq!(later.state.phase, Some(Paused));
    assert_eq!(later.state.message, d.state.message);
    assert!(later.transitions.is_empty());
    // `promote` waits again, with a fresh deadline.
    let again = look(3900.0).acting(Action::Promote).decide(&spec, &d.state);
    assert_eq!(again.state.waiting_since, Some(T0 + 3900.0));
}

#[test]
fn a_canary_that_loses_its_pods_mid_step_holds_the_step_and_counts_against_the_deadline() {
    let spec = Spec {
        progress_deadline: 300.0,
        ..ungated()
    };
    let s = State {
        weight: Some(10),
        ..rolling(0, T0, Progressing)
    };
    let look = |t: f64, pods: i32| seen(T0 + t, "v2").ungated().canary_pods(pods, &[]);
    // The step's pause is over, but the canary has no pod: no advance.
    let d = look(100.0, 0).decide(&spec, &s);
    assert_eq!(at(&d), (Some(Holding), Some(0), Some(10)));
    assert_eq!(d.state.waiting_since, Some(T0 + 100.0));
    // A judge's rollback still goes ahead.
    let fail = judged(Decision::Rollback, false, "error-rate: evidence of harm");
    let rolled = look(100.0, 0).judged(&fail).decide(&spec, &s);
    assert_eq!(rolled.state.phase, Some(RolledBack));
    // The pods come back: the step goes on from where it was.
    let back = look(130.0, 5).decide(&spec, &d.state);
    assert_eq!((back.state.step, back.state.weight), (Some(1), Some(50)));
    assert_eq!(back.state.waiting_since, None);
    // They do not: rolled back 5 minutes after they went.
    let gone = look(400.0, 0).decide(&spec, &d.state);
    assert_eq!(gone.state.phase, Some(RolledBack));
}

#[test]
fn a_manual_pause_is_never_ended_by_the_deadline() {
    let spec = gated(); // step 1 is `pause: {}` at 50 %
    let s = State {
        weight: Some(50),
        waiting_since: Some(T0),
        ..rolling(1, T0, Paused)
    };
    let d = seen(T0 + 86_400.0, "v2")
        .canary_pods(0, &[])
        .decide(&spec, &s);
    assert_eq!(d.state.phase, Some(Paused));
    assert_eq!(
        d.wait.map(|w| (w.side, w.deadline)),
        Some((Side::Canary, None))
    );
    assert_eq!(deadline_due(&spec, &s, T0 + 86_400.0), None);
}

#[test]
fn a_promotion_moves_all_traffic_only_to_an_available_canary_then_waits_for_the_stable() {
    let spec = Spec {
        progress_deadline: 300.0,
        ..ungated()
    };
    let s = State {
        weight: Some(50),
        ..rolling(1, T0, Progressing)
    };
    let look = |t: f64, pods: i32| seen(T0 + t, "v2").ungated().canary_pods(pods, &[]);
    // The last step's pause is over: promote, but 100 % needs all 10 pods on the canary.
    let d = look(60.0, 5).decide(&spec, &s);
    assert_eq!((d.state.phase, d.state.weight), (Some(Promoting), Some(50)));
    let still = look(70.0, 7).decide(&spec, &d.state);
    assert_eq!(still.state.weight, Some(50));
    assert_eq!(
        still.wait.map(|w| (w.side, w.detail)),
        Some((Side::Canary, "web-canary: 7/10 available".into()))
    );
    let all = look(80.0, 10).decide(&spec, &still.state);
    assert_eq!(all.state.weight, Some(100));
    assert_eq!(all.state.waiting_since, None);
    // The stable workload never rolls the new revision out: rolled back at its deadline.
    let stable_stuck = |t: f64| Seen {
        stable_ready: false,
        pods: Availability {
            stable: 3,
            stable_problems: vec!["FailedCreate: exceeded quota".into()],
            ..all_pods()
        },
        ..seen(T0 + t, "v2").ungated()
    };
    let wait = stable_stuck(90.0).decide(&spec, &all.state);
    assert_eq!(wait.state.phase, Some(Promoting));
    assert_eq!(
        deadline_due(&spec, &wait.state, T0 + 390.0),
        Some(Side::Stable)
    );
    let d = stable_stuck(390.0).decide(&spec, &wait.state);
    assert_eq!((d.state.phase, d.state.weight), (Some(RolledBack), Some(0)));
    assert!(
        d.state.message.as_deref().unwrap().ends_with(
            "web-stable: 3/10 available with revision v2 (FailedCreate: exceeded quota)"
        ),
        "{:?}",
        d.state.message
    );
}

#[test]
fn blue_green_judges_only_an_available_preview_and_switches_only_to_it() {
    let bg = blue_green(30.0);
    let look = |t: f64, pods: i32| seen(T0 + t, "v2").ungated().canary_pods(pods, &[]);
    // The preview needs every pod (10) before its step is in force.
    let d = look(0.0, 4).decide(&bg, &healthy());
    assert_eq!(d.state.step_started_at, None);
    assert_eq!(
        d.wait.map(|w| w.detail),
        Some("web-canary: 4/10 available".into())
    );
    let ready = look(20.0, 10).decide(&bg, &d.state);
    assert_eq!(ready.state.step_started_at, Some(T0 + 20.0));
    // Auto-promotion switches at once, but only while the preview still has its pods.
    let promote = look(21.0, 10).decide(&bg, &ready.state);
    assert_eq!(
        (promote.state.phase, promote.state.weight),
        (Some(Promoting), Some(100))
    );
    let lost = look(21.0, 9).decide(&bg, &ready.state);
    assert_ne!(lost.state.weight, Some(100));
}

mod hooks;
