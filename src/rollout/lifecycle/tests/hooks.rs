//! The webhooks in the lifecycle, on plain types: a webhook step, the pre-promotion gate, the
//! post-promotion report, retries, failures by policy, a human's `promote`, stale reports and
//! the `Hooks` condition's summary.

use super::*;
use crate::rollout::lifecycle::hooks::{RUNNING_POLL_MAX, due, summary};

#[test]
fn an_attempt_under_way_is_looked_at_soon_then_less_often() {
    let spec = hooked(OnFailure::Rollback);
    let post = key(HookKind::PostPromotion, "post-a", "v2", None);
    for (running_for, wake) in [
        (0.0, 1.0),
        (2.0, 2.0),
        (8.0, 8.0),
        (3600.0, RUNNING_POLL_MAX),
    ] {
        let state = State {
            hooks: vec![HookRun {
                started_at: Some(T0),
                ..run(post.clone(), HookPhase::Running, 1, None)
            }],
            stable_revision: Some("v2".into()),
            ..healthy()
        };
        let d = seen(T0 + running_for, "v2").decide(&spec, &state);
        assert_eq!(d.wake_in, Some(wake), "{running_for}");
    }
}

const HOST: &str = "hooks.test:8080";

fn hook(name: &str, on_failure: OnFailure) -> HookSpec {
    HookSpec {
        name: name.into(),
        host: HOST.into(),
        on_failure,
    }
}

/// Ungated steps: 10 % for 60 s, then a webhook step `smoke` at 10 %, then 50 % for 60 s; a
/// pre-promotion webhook `pre-a`, `pre-b` and post-promotion ones `post-a`, `post-b`.
fn hooked(on_failure: OnFailure) -> Spec {
    let mut spec = Spec::canary("web", plan(&[(10.0, 60.0), (10.0, 0.0), (50.0, 60.0)]));
    spec.hooks = HookPlan {
        steps: vec![None, Some(hook("smoke", on_failure)), None],
        pre_promotion: vec![
            hook("pre-a", on_failure),
            hook("pre-b", OnFailure::Rollback),
        ],
        post_promotion: vec![
            hook("post-a", OnFailure::Rollback),
            hook("post-b", OnFailure::Rollback),
        ],
    };
    spec
}

fn key(kind: HookKind, name: &str, revision: &str, step: Option<usize>) -> HookKey {
    HookKey {
        kind,
        name: name.into(),
        revision: revision.into(),
        step,
    }
}

fn smoke() -> HookKey {
    key(HookKind::Step, "smoke", "v2", Some(1))
}

fn run(key: HookKey, phase: HookPhase, attempts: u32, answer: Option<&str>) -> HookRun {
    HookRun {
        key,
        phase,
        attempts,
        answer: answer.map(str::to_string),
        started_at: (attempts > 0).then_some(T0 + 60.0),
        next_attempt_at: (phase == HookPhase::Pending).then_some(T0 + 60.0),
        finished_at: phase.finished().then_some(T0 + 61.0),
    }
}

/// v2 at step 1 (the webhook step, its weight in force since T0 + 60) with the smoke run.
fn at_smoke(phase: HookPhase, attempts: u32, answer: Option<&str>) -> State {
    State {
        weight: Some(10),
        hooks: vec![run(smoke(), phase, attempts, answer)],
        ..rolling(1, T0 + 60.0, Progressing)
    }
}

fn passed(key: HookKey, attempt: u32) -> HookEvent {
    HookEvent::Finished {
        key,
        attempt,
        outcome: HookOutcome {
            passed: true,
            answer: "answered 200".into(),
            retry_in: None,
        },
    }
}

fn failed(key: HookKey, attempt: u32, retry_in: Option<f64>) -> HookEvent {
    HookEvent::Finished {
        key,
        attempt,
        outcome: HookOutcome {
            passed: false,
            answer: "answered 503: overloaded".into(),
            retry_in,
        },
    }
}

fn with(mut seen: Seen, events: Vec<HookEvent>) -> Seen {
    seen.hooks = events;
    seen
}

fn runs(d: &Decided) -> Vec<(String, HookPhase, u32)> {
    d.state
        .hooks
        .iter()
        .map(|r| (r.key.name.clone(), r.phase, r.attempts))
        .collect()
}

#[test]
fn a_webhook_step_is_called_once_its_weight_is_in_force_and_completes_when_it_passed() {
    let spec = hooked(OnFailure::Rollback);
    // Step 0's minute is over: step 1 (the webhook, same 10 %) is in force at once, and its
    // webhook is due now.
    let d = seen(T0 + 60.0, "v2")
        .ungated()
        .decide(&spec, &rolling(0, T0, Progressing));
    assert_eq!(at(&d), (Some(Progressing), Some(1), Some(10)));
    assert_eq!(runs(&d), [("smoke".to_string(), HookPhase::Pending, 0)]);
    assert_eq!(d.state.hooks[0].key, smoke());
    assert_eq!(d.state.hooks[0].next_attempt_at, Some(T0 + 60.0));
    assert_eq!(d.wake_in, Some(0.0));
    // Its attempt starts and is still under way: the step holds (no pause of its own to end),
    // and says what it waits for; it looks again soon.
    let started = HookEvent::Started {
        key: smoke(),
        attempt: 1,
        at: T0 + 61.0,
    };
    let d = with(seen(T0 + 61.0, "v2").ungated(), vec![started.clone()]).decide(&spec, &d.state);
    assert_eq!(at(&d), (Some(Progressing), Some(1), Some(10)));
    assert_eq!(news(&d), ["HookStarted"]);
    assert_eq!(
        d.state.message.as_deref(),
        Some(
            "step 1 at 10%: waits for webhook smoke (step 1, POST to hooks.test:8080): attempt 1 under way"
        )
    );
    assert_eq!(d.wake_in, Some(1.0));
    // The answer: 200. The step is complete and the rollout moves on at once.
    let d = with(seen(T0 + 63.0, "v2").ungated(), vec![passed(smoke(), 1)]).decide(&spec, &d.state);
    assert_eq!(at(&d), (Some(Progressing), Some(2), Some(50)));
    assert_eq!(news(&d), ["HookPassed", "StepAdvanced"]);
    assert_eq!(runs(&d), [("smoke".to_string(), HookPhase::Passed, 1)]);
    assert_eq!(d.state.hooks[0].answer.as_deref(), Some("answered 200"));
}

#[test]
fn a_running_webhook_holds_even_the_last_step_and_an_ungated_rollout_never_promotes_past_it() {
    let mut spec = Spec::canary("web", plan(&[(20.0, 0.0)]));
    spec.hooks.steps = vec![Some(hook("smoke", OnFailure::Rollback))];
    let key0 = key(HookKind::Step, "smoke", "v2", Some(0));
    let state = State {
        hooks: vec![run(key0.clone(), HookPhase::Running, 1, None)],
        ..rolling(0, T0, Progressing)
    };
    // An hour later, still running: no promotion.
    let d = seen(T0 + 3600.0, "v2").ungated().decide(&spec, &state);
    assert_eq!(at(&d), (Some(Progressing), Some(0), Some(20)));
    assert!(news(&d).is_empty(), "{:?}", d.transitions);
    // The step's interval (10 s) comes before the running webhook's poll (at most 15 s).
    assert_eq!(d.wake_in, Some(10.0));
    // Nor when the judge says promote.
    let d = seen(T0 + 3600.0, "v2")
        .judged(&judged(Decision::Promote, false, "all metrics pass"))
        .decide(&spec, &state);
    assert_eq!(d.state.phase, Some(Progressing));
    // Once it passes, the last step promotes.
    let d = with(seen(T0 + 3600.0, "v2").ungated(), vec![passed(key0, 1)]).decide(&spec, &state);
    assert_eq!(at(&d), (Some(Promoting), Some(0), Some(100)));
    assert_eq!(news(&d), ["HookPassed", "Promoting"]);
}

#[test]
fn a_failed_attempt_is_tried_again_after_the_backoff_and_the_step_keeps_holding() {
    let spec = hooked(OnFailure::Rollback);
    let state = at_smoke(HookPhase::Running, 1, None);
    let d = with(
        seen(T0 + 62.0, "v2").ungated(),
        vec![failed(smoke(), 1, Some(5.0))],
    )
    .decide(&spec, &state);
    assert_eq!(at(&d), (Some(Progressing), Some(1), Some(10)));
    assert_eq!(news(&d), ["HookRetrying"]);
    let r = &d.state.hooks[0];
    assert_eq!((r.phase, r.attempts), (HookPhase::Pending, 1));
    assert_eq!(r.next_attempt_at, Some(T0 + 67.0));
    assert_eq!(r.answer.as_deref(), Some("answered 503: overloaded"));
    assert_eq!(d.wake_in, Some(5.0));
    assert!(
        d.state
            .message
            .as_deref()
            .unwrap()
            .ends_with("attempt 2 due (1 attempt so far: answered 503: overloaded)"),
        "{:?}",
        d.state.message
    );
    // Not due before its time; due at it.
    assert!(due(&d.state, "v2", false, T0 + 66.0).is_empty());
    assert_eq!(due(&d.state, "v2", false, T0 + 67.0).len(), 1);
}

#[test]
fn a_webhook_that_fails_for_good_rolls_back_or_pauses_as_its_on_failure_says() {
    for (policy, phase, weight, transitions, message) in [
        (
            OnFailure::Rollback,
            RolledBack,
            0,
            vec!["HookFailed", "RolledBack"],
            "rolled back: webhook smoke (step 1, POST to hooks.test:8080) failed after 3 attempts: answered 503: overloaded",
        ),
        (
            OnFailure::Pause,
            Paused,
            10,
            vec!["HookFailed", "Paused"],
            "paused: webhook smoke (step 1, POST to hooks.test:8080) failed after 3 attempts: answered 503: overloaded; `canary-gate promote` goes on without it, `abort` ends the rollout",
        ),
    ] {
        let spec = hooked(policy);
        let state = at_smoke(HookPhase::Running, 3, None);
        let d = with(
            seen(T0 + 90.0, "v2").ungated(),
            vec![failed(smoke(), 3, None)],
        )
        .decide(&spec, &state);
        assert_eq!(at(&d), (Some(phase), Some(1), Some(weight)), "{policy:?}");
        assert_eq!(news(&d), transitions, "{policy:?}");
        assert_eq!(d.state.message.as_deref(), Some(message));
        assert_eq!(runs(&d), [("smoke".to_string(), HookPhase::Failed, 3)]);
        let Transition::HookFailed { message, .. } = &d.transitions[0] else {
            panic!("{:?}", d.transitions)
        };
        let fix = match policy {
            OnFailure::Rollback => {
                "the rollout rolls back; fix the endpoint (or what it tests), then `canary-gate retry` runs the webhooks again"
            }
            OnFailure::Pause => {
                "the rollout pauses for a human: `canary-gate promote` goes on without it, `abort` ends the rollout"
            }
        };
        assert!(message.ends_with(fix), "{message}");
        // It stays so: a failed webhook is never called again.
        let again = seen(T0 + 120.0, "v2").ungated().decide(&spec, &d.state);
        assert_eq!(at(&again), at(&d));
        assert!(due(&again.state, "v2", false, T0 + 120.0).is_empty());
        assert!(news(&again).is_empty(), "{:?}", again.transitions);
    }
    // Paused: a human's promote goes on without the webhook.
    let spec = hooked(OnFailure::Pause);
    let paused = State {
        hooks: vec![run(
            smoke(),
            HookPhase::Failed,
            3,
            Some("answered 503: overloaded"),
        )],
        ..rolling(1, T0 + 60.0, Paused)
    };
    let d = seen(T0 + 200.0, "v2")
        .ungated()
        .acting(Action::Promote)
        .decide(&spec, &paused);
    assert_eq!(at(&d), (Some(Progressing), Some(2), Some(50)));
    let r = &d.state.hooks[0];
    assert_eq!(r.phase, HookPhase::Skipped);
    assert_eq!(
        r.answer.as_deref(),
        Some("skipped: a human promoted (last answer: answered 503: overloaded)")
    );
}

#[test]
fn the_judges_rollback_wins_while_a_webhook_runs() {
    let spec = hooked(OnFailure::Pause);
    let d = seen(T0 + 70.0, "v2")
        .judged(&judged(Decision::Rollback, false, "error-rate fails"))
        .decide(&spec, &at_smoke(HookPhase::Running, 1, None));
    assert_eq!(at(&d), (Some(RolledBack), Some(1), Some(0)));
    // The webhook is no longer needed: it is skipped and never collected.
    assert_eq!(d.state.hooks[0].phase, HookPhase::Skipped);
    assert!(due(&d.state, "v2", false, T0 + 80.0).is_empty());
}

#[test]
fn a_human_promote_skips_the_webhook_that_holds_the_step() {
    let spec = hooked(OnFailure::Rollback);
    let d = seen(T0 + 70.0, "v2")
        .ungated()
        .acting(Action::Promote)
        .decide(
            &spec,
            &at_smoke(HookPhase::Pending, 1, Some("answered 503: overloaded")),
        );
    assert_eq!(at(&d), (Some(Progressing), Some(2), Some(50)));
    assert_eq!(runs(&d), [("smoke".to_string(), HookPhase::Skipped, 1)]);
    assert_eq!(news(&d), ["ResumedByHuman", "StepAdvanced"]);
    // And while a human's action is pending, no webhook of the step is due.
    let state = at_smoke(HookPhase::Pending, 0, None);
    assert!(due(&state, "v2", true, T0 + 70.0).is_empty());
    assert_eq!(due(&state, "v2", false, T0 + 70.0).len(), 1);
}

/// v2 at the last step (50 %), its minute over.
fn last_step(hooks: Vec<HookRun>) -> State {
    State {
        weight: Some(50),
        hooks,
        ..rolling(2, T0 + 100.0, Progressing)
    }
}

fn pre(name: &str) -> HookKey {
    key(HookKind::PrePromotion, name, "v2", None)
}

#[test]
fn pre_promotion_webhooks_run_in_order_once_the_rollout_decided_to_promote() {
    let spec = hooked(OnFailure::Rollback);
    let promote = judged(Decision::Promote, false, "all metrics pass");
    // The judge promotes: the first pre-promotion webhook is due; traffic stays at 50 %.
    let d = seen(T0 + 160.0, "v2")
        .judged(&promote)
        .decide(&spec, &last_step(vec![]));
    assert_eq!(at(&d), (Some(Progressing), Some(2), Some(50)));
    assert_eq!(runs(&d), [("pre-a".to_string(), HookPhase::Pending, 0)]);
    assert_eq!(
        d.state.message.as_deref(),
        Some(
            "the promotion waits for webhook pre-a (prePromotion, POST to hooks.test:8080): about to be called"
        )
    );
    assert_eq!(d.wake_in, Some(0.0));
    assert!(news(&d).is_empty(), "{:?}", d.transitions);
    // It passes while the judge, with a new interval, only continues: the rollout stays decided
    // and calls the next one.
    let d = with(
        seen(T0 + 170.0, "v2").judged(&judged(Decision::Continue, false, "no harm")),
        vec![passed(pre("pre-a"), 1)],
    )
    .decide(&spec, &d.state);
    assert_eq!(at(&d), (Some(Progressing), Some(2), Some(50)));
    assert_eq!(
        runs(&d),
        [
            ("pre-a".to_string(), HookPhase::Passed, 1),
            ("pre-b".to_string(), HookPhase::Pending, 0)
        ]
    );
    // The last one answers within the reconcile that started it: promotion.
    let d = with(
        seen(T0 + 180.0, "v2").judged(&judged(Decision::Hold, false, "thin")),
        vec![
            HookEvent::Started {
                key: pre("pre-b"),
                attempt: 1,
                at: T0 + 180.0,
            },
            passed(pre("pre-b"), 1),
        ],
    )
    .decide(&spec, &d.state);
    assert_eq!(at(&d), (Some(Promoting), Some(2), Some(100)));
    assert_eq!(news(&d), ["HookStarted", "HookPassed", "Promoting"]);
    let Transition::Promoting { reason, .. } = &d.transitions[2] else {
        panic!()
    };
    assert_eq!(reason, "the pre-promotion webhooks passed");
}

#[test]
fn a_failed_pre_promotion_webhook_rolls_back_and_retry_runs_the_webhooks_again() {
    let spec = hooked(OnFailure::Rollback);
    let state = last_step(vec![
        run(smoke(), HookPhase::Passed, 1, Some("answered 200")),
        run(pre("pre-a"), HookPhase::Running, 1, None),
    ]);
    let d = with(
        seen(T0 + 170.0, "v2").judged(&judged(Decision::Continue, false, "no harm")),
        vec![HookEvent::Finished {
            key: pre("pre-a"),
            attempt: 1,
            outcome: HookOutcome {
                passed: false,
                answer: "answered 400: bad request".into(),
                retry_in: None,
            },
        }],
    )
    .decide(&spec, &state);
    assert_eq!(at(&d), (Some(RolledBack), Some(2), Some(0)));
    assert_eq!(news(&d), ["HookFailed", "RolledBack"]);
    assert_eq!(
        d.state.message.as_deref(),
        Some(
            "rolled back: webhook pre-a (prePromotion, POST to hooks.test:8080) failed after 1 attempt: answered 400: bad request"
        )
    );
    // retry: step 0 again, and every step and pre-promotion webhook of v2 runs again.
    let d = seen(T0 + 300.0, "v2")
        .ungated()
        .acting(Action::Retry)
        .decide(&spec, &d.state);
    assert_eq!(at(&d), (Some(Progressing), Some(0), Some(10)));
    assert!(d.state.hooks.is_empty(), "{:?}", d.state.hooks);
}

#[test]
fn a_human_promote_still_runs_the_pre_promotion_webhooks_and_a_second_one_skips_them() {
    let spec = hooked(OnFailure::Pause);
    // promote --full at step 0: the steps are skipped, not the promotion's webhooks.
    let d = seen(T0 + 10.0, "v2")
        .ungated()
        .acting(Action::PromoteFull)
        .decide(&spec, &rolling(0, T0, Progressing));
    assert_eq!(at(&d), (Some(Progressing), Some(0), Some(10)));
    assert_eq!(runs(&d), [("pre-a".to_string(), HookPhase::Pending, 0)]);
    // pre-a fails (onFailure: Pause): the rollout waits for a human.
    let d = with(
        seen(T0 + 20.0, "v2").ungated(),
        vec![failed(pre("pre-a"), 1, None)],
    )
    .decide(&spec, &d.state);
    assert_eq!(at(&d), (Some(Paused), Some(0), Some(10)));
    // A second promote goes on without it; pre-b still runs.
    let d = seen(T0 + 30.0, "v2")
        .ungated()
        .acting(Action::Promote)
        .decide(&spec, &d.state);
    assert_eq!(
        runs(&d),
        [
            ("pre-a".to_string(), HookPhase::Skipped, 1),
            ("pre-b".to_string(), HookPhase::Pending, 0)
        ]
    );
    assert_eq!(d.state.phase, Some(Progressing));
    let d = with(
        seen(T0 + 40.0, "v2").ungated(),
        vec![passed(pre("pre-b"), 1)],
    )
    .decide(&spec, &d.state);
    assert_eq!(at(&d), (Some(Promoting), Some(0), Some(100)));
}

#[test]
fn post_promotion_webhooks_run_in_order_after_the_promotion_and_a_failure_is_only_reported() {
    let spec = hooked(OnFailure::Rollback);
    let promoting = State {
        weight: Some(100),
        hooks: vec![run(
            pre("pre-a"),
            HookPhase::Passed,
            1,
            Some("answered 200"),
        )],
        ..rolling(2, T0 + 100.0, Promoting)
    };
    // The stable workload runs v2: promoted; the first post-promotion webhook is due.
    let d = seen(T0 + 200.0, "v2").decide(&spec, &promoting);
    assert_eq!(at(&d), (Some(Healthy), None, Some(0)));
    assert_eq!(news(&d), ["Promoted"]);
    let post = |name: &str| key(HookKind::PostPromotion, name, "v2", None);
    assert_eq!(
        runs(&d),
        [
            ("pre-a".to_string(), HookPhase::Passed, 1),
            ("post-a".to_string(), HookPhase::Pending, 0)
        ]
    );
    assert_eq!(due(&d.state, "v2", false, T0 + 200.0).len(), 1);
    // It fails for good: a Warning, nothing else changes; post-b follows.
    let d = with(
        seen(T0 + 210.0, "v2"),
        vec![failed(post("post-a"), 3, None)],
    )
    .decide(&spec, &d.state);
    assert_eq!(at(&d), (Some(Healthy), None, Some(0)));
    assert_eq!(news(&d), ["HookFailed"]);
    let Transition::HookFailed { message, .. } = &d.transitions[0] else {
        panic!()
    };
    assert_eq!(
        message,
        "webhook post-a (postPromotion, POST to hooks.test:8080) failed after 3 attempts: answered 503: overloaded; reported only: the promotion stands; fix the endpoint, the next promotion calls it again"
    );
    assert_eq!(d.state.hooks[2].key, post("post-b"));
    assert_eq!(d.state.hooks[2].phase, HookPhase::Pending);
    let d = with(seen(T0 + 220.0, "v2"), vec![passed(post("post-b"), 1)]).decide(&spec, &d.state);
    assert_eq!(d.state.hooks.len(), 3);
    assert!(due(&d.state, "v2", false, T0 + 1e6).is_empty());
    // The condition: the failure first.
    let (ok, reason, _) = summary(&spec.hooks, &d.state).unwrap();
    assert_eq!((ok, reason), (false, "HookFailed"));
}

#[test]
fn blue_green_calls_the_pre_promotion_webhooks_before_the_switch() {
    let mut spec = blue_green(30.0);
    spec.hooks.pre_promotion = vec![hook("smoke", OnFailure::Rollback)];
    let preview = State {
        weight: Some(0),
        ..rolling(0, T0, Progressing)
    };
    let d = seen(T0 + 5.0, "v2").ungated().decide(&spec, &preview);
    assert_eq!(at(&d), (Some(Progressing), Some(0), Some(0)));
    assert_eq!(runs(&d), [("smoke".to_string(), HookPhase::Pending, 0)]);
    let d = with(
        seen(T0 + 6.0, "v2").ungated(),
        vec![passed(key(HookKind::PrePromotion, "smoke", "v2", None), 1)],
    )
    .decide(&spec, &d.state);
    assert_eq!(at(&d), (Some(Promoting), Some(0), Some(100)));
}

#[test]
fn stale_or_repeated_reports_of_an_attempt_change_nothing() {
    let spec = hooked(OnFailure::Rollback);
    let done = at_smoke(HookPhase::Passed, 1, Some("answered 200"));
    // A copy of the status from before the answer reports it again: nothing changes.
    let d = with(
        seen(T0 + 70.0, "v2").ungated(),
        vec![failed(smoke(), 1, None)],
    )
    .decide(&spec, &done);
    assert_eq!(d.state.hooks[0].phase, HookPhase::Passed);
    assert!(!news(&d).contains(&"HookFailed".to_string()));
    // An older attempt's answer is not taken for the current one.
    let retrying = at_smoke(HookPhase::Running, 2, None);
    let d =
        with(seen(T0 + 70.0, "v2").ungated(), vec![passed(smoke(), 1)]).decide(&spec, &retrying);
    assert_eq!(d.state.hooks[0].phase, HookPhase::Running);
    // A start reported twice is said once.
    let started = HookEvent::Started {
        key: smoke(),
        attempt: 2,
        at: T0 + 65.0,
    };
    let d = with(seen(T0 + 70.0, "v2").ungated(), vec![started]).decide(&spec, &retrying);
    assert!(news(&d).is_empty(), "{:?}", d.transitions);
}

#[test]
fn only_webhooks_of_the_revision_and_step_in_force_are_due() {
    let state = State {
        hooks: vec![
            run(smoke(), HookPhase::Pending, 0, None),
            run(
                key(HookKind::Step, "other", "v2", Some(0)),
                HookPhase::Pending,
                0,
                None,
            ),
            run(pre("pre-a"), HookPhase::Running, 1, None),
            run(
                key(HookKind::PostPromotion, "post-a", "v1", None),
                HookPhase::Running,
                1,
                None,
            ),
            run(
                key(HookKind::Step, "done", "v2", Some(1)),
                HookPhase::Passed,
                1,
                None,
            ),
        ],
        ..rolling(1, T0 + 60.0, Progressing)
    };
    let names = |revision: &str, acting: bool| -> Vec<String> {
        due(&state, revision, acting, T0 + 60.0)
            .iter()
            .map(|r| r.key.name.clone())
            .collect()
    };
    assert_eq!(names("v2", false), ["smoke", "pre-a", "post-a"]);
    // Another revision on the target: only the stable's post-promotion webhook runs on.
    assert_eq!(names("v3", false), ["post-a"]);
    assert_eq!(names("v2", true), ["post-a"]);
    // Not before the step's weight is in force.
    let waiting = State {
        step_started_at: None,
        ..state.clone()
    };
    let due_now: Vec<_> = due(&waiting, "v2", false, T0 + 60.0)
        .iter()
        .map(|r| r.key.name.clone())
        .collect();
    assert_eq!(due_now, ["pre-a", "post-a"]);
}

#[test]
fn a_new_revision_drops_the_old_canarys_webhooks_and_keeps_the_stables_post_promotion_ones() {
    let spec = hooked(OnFailure::Rollback);
    let state = State {
        hooks: vec![
            run(smoke(), HookPhase::Running, 1, None),
            run(
                key(HookKind::PostPromotion, "post-a", "v1", None),
                HookPhase::Running,
                1,
                None,
            ),
        ],
        ..rolling(1, T0 + 60.0, Progressing)
    };
    let d = seen(T0 + 70.0, "v3").ungated().decide(&spec, &state);
    assert_eq!(news(&d)[0], "Restarted");
    assert_eq!(runs(&d), [("post-a".to_string(), HookPhase::Running, 1)]);
    // A webhook removed from the spec is skipped, not called.
    let mut without = spec.clone();
    without.hooks.steps[1] = None;
    let d = seen(T0 + 70.0, "v2").ungated().decide(&without, &state);
    assert_eq!(d.state.hooks[0].phase, HookPhase::Skipped);
    assert_eq!(
        d.state.hooks[0].answer.as_deref(),
        Some("skipped: the webhook was removed from the spec")
    );
}

#[test]
fn the_hooks_condition_says_a_failure_first_then_one_under_way_then_what_passed() {
    let spec = hooked(OnFailure::Rollback);
    let of = |hooks: Vec<HookRun>| State {
        hooks,
        ..rolling(1, T0 + 60.0, Progressing)
    };
    assert_eq!(summary(&spec.hooks, &of(vec![])), None);
    let ok = run(smoke(), HookPhase::Passed, 1, Some("answered 200"));
    let running = run(pre("pre-a"), HookPhase::Running, 2, Some("answered 503: x"));
    let bad = run(pre("pre-b"), HookPhase::Failed, 1, Some("answered 404: no"));
    assert_eq!(
        summary(&spec.hooks, &of(vec![ok.clone()])),
        Some((
            true,
            "HooksPassed",
            "smoke (step 1): answered 200".to_string()
        ))
    );
    assert_eq!(
        summary(&spec.hooks, &of(vec![ok.clone(), running.clone()])),
        Some((
            false,
            "HookRunning",
            "webhook pre-a (prePromotion, POST to hooks.test:8080): attempt 2 under way"
                .to_string()
        ))
    );
    let (passed, reason, message) =
        summary(&spec.hooks, &of(vec![ok, running.clone(), bad])).unwrap();
    assert_eq!((passed, reason), (false, "HookFailed"));
    assert!(
        message.starts_with(
            "webhook pre-b (prePromotion, POST to hooks.test:8080) failed after 1 attempt: answered 404: no; the rollout rolls back"
        ),
        "{message}"
    );
    // The stable revision's failed post-promotion webhook does not hide the canary's own.
    let old = run(
        key(HookKind::PostPromotion, "post-a", "v1", None),
        HookPhase::Failed,
        1,
        Some("answered 500: x"),
    );
    let (_, reason, _) = summary(&spec.hooks, &of(vec![old.clone(), running])).unwrap();
    assert_eq!(reason, "HookRunning");
    // Once nothing rolls out, the stable's runs are what the condition reports.
    let healthy = State {
        hooks: vec![old],
        ..healthy()
    };
    assert_eq!(summary(&spec.hooks, &healthy).unwrap().1, "HookFailed");
}
