use super::*;
use crate::analysis::Counts;
use crate::controller::validate::validate;
use crate::crd::rollout::RolloutSpec;

const T0: f64 = 1_763_856_000.0;

fn template() -> Template {
    crate::template::parse(
        include_str!("../../../analysis-templates/generic-http.yaml"),
        "generic-http.yaml",
    )
    .unwrap()
}

/// generic-http gating 5 % and 50 % steps of `pause` each, plus `extra` canary fields.
fn spec(pause: &str, extra: &str) -> RolloutSpec {
    serde_saphyr::from_str(&format!(
        r#"
targetRef: {{name: web}}
strategy:
  canary:
    analysis: {{templates: [{{templateName: generic-http}}]}}
    steps:
      - setWeight: 5
      - pause: {{duration: {pause}}}
      - setWeight: 50
      - pause: {{duration: {pause}}}
      - pause: {{}}
{extra}
"#
    ))
    .unwrap()
}

fn rollout(pause: &str) -> ValidatedRollout {
    validate(&spec(pause, "")).unwrap()
}

/// `n` one-minute intervals from `from`: `rps` in all, 10 % on the canary, the stable failing
/// 1 in 1000.
fn intervals(template: &Template, from: f64, n: usize, rps: f64) -> Vec<WindowInterval> {
    (1..=n)
        .map(|k| WindowInterval {
            t: from + 60.0 * k as f64,
            samples: template
                .judge
                .metrics
                .iter()
                .map(|m| match m.kind {
                    MetricKind::ErrorRate => MetricSample::Counts {
                        stable: Counts::new(rps * 54.0 / 1000.0, rps * 54.0),
                        canary: Counts::new(0.0, rps * 6.0),
                    },
                    _ => MetricSample::Missing("not needed".into()),
                })
                .collect(),
        })
        .collect()
}

fn checks() -> PowerChecks {
    PowerChecks::new(100, 20)
}

fn idle(checks: &PowerChecks) {
    assert!(
        checks.wait_idle(Duration::from_secs(120)),
        "the check ended"
    );
}

#[test]
fn the_goal_defaults_to_one_point_at_80_percent_and_bad_values_name_the_field() {
    assert_eq!(rollout("5m").power_check, Some(Goal::default()));
    let off = validate(&spec("5m", "    powerCheck: {enabled: false}")).unwrap();
    assert_eq!(off.power_check, None);
    let set = validate(&spec("5m", "    powerCheck: {effect: x2, power: 0.9}")).unwrap();
    assert_eq!(
        set.power_check,
        Some(Goal {
            effect: Effect::ErrorRatio(2.0),
            power: 0.9
        })
    );
    let err = validate(&spec("5m", "    powerCheck: {effect: 1pt}")).unwrap_err();
    assert_eq!(err.field, "spec.strategy.canary.powerCheck.effect");
    assert!(err.problem.contains("write +1pt"), "{err}");
    let err = validate(&spec("5m", "    powerCheck: {power: 1.5}")).unwrap_err();
    assert_eq!(err.field, "spec.strategy.canary.powerCheck.power");
    assert!(err.problem.contains("between 0.5 and 0.99"), "{err}");
}

#[test]
fn the_evidence_is_the_first_five_minutes_with_traffic() {
    let t = template();
    let mut e = Evidence::default();
    e.add(&intervals(&t, T0, 4, 10.0), 0, 60.0);
    assert!(!e.complete(), "{e:?}");
    e.add(&intervals(&t, T0 + 240.0, 3, 10.0), 0, 60.0);
    assert!(e.complete());
    assert_eq!(e.intervals, 5, "never more than it needs");
    let traffic = e.traffic();
    assert!((traffic.rps - 10.0).abs() < 1e-9, "{traffic:?}");
    assert!((traffic.error_rate - 0.001).abs() < 1e-12, "{traffic:?}");
    // No traffic is no evidence, however long.
    let mut quiet = Evidence::default();
    quiet.add(&intervals(&t, T0, 10, 0.0), 0, 60.0);
    assert!(!quiet.complete());
}

#[test]
fn only_the_timed_canary_steps_the_template_gates_are_checked() {
    let v = validate(&spec(
        "5m",
        "      - setWeight: 100\n      - pause: {duration: 5m}",
    ))
    .unwrap();
    let gated = gated_steps(&v, &template());
    // Not the `pause: {}` a human ends, nor 100 % (nothing left to compare with).
    assert_eq!(
        gated,
        vec![
            PlannedStep {
                index: 0,
                weight: 5.0,
                pause: 300.0
            },
            PlannedStep {
                index: 1,
                weight: 50.0,
                pause: 300.0
            },
        ]
    );
    let ungated: RolloutSpec = serde_saphyr::from_str(
        "targetRef: {name: web}\nstrategy: {canary: {steps: [{setWeight: 5}, {pause: {duration: 5m}}]}}",
    )
    .unwrap();
    assert!(gated_steps(&validate(&ungated).unwrap(), &template()).is_empty());
}

#[test]
fn a_revision_is_checked_once_from_its_first_intervals_and_again_when_the_steps_change() {
    let (t, v, checks) = (template(), rollout("5m"), checks());
    checks.observe("shop", "web", "r1", &v, &t, &[], &intervals(&t, T0, 3, 2.0));
    idle(&checks);
    assert_eq!(
        checks.finding("shop", "web"),
        None,
        "three minutes are not evidence yet"
    );
    checks.observe(
        "shop",
        "web",
        "r1",
        &v,
        &t,
        &[],
        &intervals(&t, T0 + 180.0, 4, 2.0),
    );
    idle(&checks);
    let first = checks.finding("shop", "web").expect("checked");
    assert_eq!(first.revision, "r1");
    assert_eq!(first.plan_key, plan_key(&v));
    assert!((first.check.traffic.rps - 2.0).abs() < 1e-9);
    assert!(first.check.any_underpowered(), "2 req/s, 5-minute steps");
    // More intervals of the same revision change nothing (no second check).
    checks.observe(
        "shop",
        "web",
        "r1",
        &v,
        &t,
        &[],
        &intervals(&t, T0 + 420.0, 5, 500.0),
    );
    assert_eq!(checks.shared.pending.load(Ordering::Acquire), 0);
    assert!(Arc::ptr_eq(&first, &checks.finding("shop", "web").unwrap()));
    // Longer steps: checked again from the same evidence.
    let longer = rollout("1h");
    checks.observe("shop", "web", "r1", &longer, &t, &[], &[]);
    idle(&checks);
    let again = checks.finding("shop", "web").unwrap();
    assert_eq!(again.plan_key, plan_key(&longer));
    assert_eq!(again.check.traffic, first.check.traffic);
    // A new revision, or the template with other arguments, gathers its evidence again.
    for (revision, args) in [
        ("r2", vec![]),
        ("r1", vec![("service".into(), "api".into())]),
    ] {
        checks.observe(
            "shop",
            "web",
            revision,
            &longer,
            &t,
            &args,
            &intervals(&t, T0, 2, 2.0),
        );
        idle(&checks);
        assert_eq!(checks.finding("shop", "web"), None, "{revision} {args:?}");
    }
}

#[test]
fn a_turned_off_check_or_a_template_without_error_rates_keeps_nothing() {
    let t = template();
    let checks = checks();
    let off = validate(&spec("5m", "    powerCheck: {enabled: false}")).unwrap();
    checks.observe(
        "shop",
        "web",
        "r1",
        &off,
        &t,
        &[],
        &intervals(&t, T0, 6, 2.0),
    );
    let mut latency_only = t.clone();
    latency_only
        .judge
        .metrics
        .retain(|m| m.kind != MetricKind::ErrorRate);
    checks.observe("shop", "api", "r1", &rollout("5m"), &latency_only, &[], &[]);
    assert!(checks.is_empty());
}

#[test]
fn the_checks_are_bounded_and_forget_deleted_rollouts() {
    let (t, v) = (template(), rollout("5m"));
    let checks = PowerChecks::new(3, 5);
    for name in ["a", "b", "c", "d", "e"] {
        checks.observe("shop", name, "r1", &v, &t, &[], &intervals(&t, T0, 1, 2.0));
        assert!(checks.len() <= 3);
    }
    assert_eq!(checks.len(), 3);
    checks.forget("shop", "e");
    checks.forget("shop", "nobody");
    assert_eq!(checks.len(), 2);
}

#[test]
fn dropping_the_checks_abandons_the_running_one() {
    let (t, v) = (template(), rollout("5m"));
    // A slow check: 2000 runs at 0.5 req/s never catch anything and run to the horizon.
    let checks = PowerChecks::new(10, 2000);
    checks.observe("shop", "web", "r1", &v, &t, &[], &intervals(&t, T0, 5, 0.5));
    let shared = Arc::clone(&checks.shared);
    assert_eq!(shared.pending.load(Ordering::Acquire), 1);
    std::thread::sleep(Duration::from_millis(50));
    drop(checks);
    let until = Instant::now() + Duration::from_secs(10);
    while shared.pending.load(Ordering::Acquire) > 0 {
        assert!(Instant::now() < until, "the worker stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(shared.lock().get_mut("shop", "web").unwrap().done.is_none());
}

/// A finding for revision `r1` of `v`, with or without an underpowered step.
fn finding(v: &ValidatedRollout, rps: f64) -> Finding {
    let t = template();
    let settings = Settings::new(Goal::default(), 20);
    let check = check(
        &t.judge,
        Traffic {
            rps,
            error_rate: 0.001,
        },
        60.0,
        &gated_steps(v, &t),
        settings,
        &|| false,
    )
    .unwrap()
    .unwrap();
    Finding {
        revision: "r1".into(),
        plan_key: plan_key(v),
        template: "AnalysisTemplate shop/generic-http".into(),
        check,
    }
}

fn live(revision: &str) -> RolloutStatus {
    serde_json::from_value(serde_json::json!({
        "phase": "Progressing", "stableRevision": "r0", "canaryRevision": revision,
        "currentStepIndex": 0, "canaryWeight": 5}))
    .unwrap()
}

fn condition(status: &RolloutStatus) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[test]
fn underpowered_steps_are_a_true_condition_and_one_warning() {
    let v = rollout("5m");
    let thin = finding(&v, 2.0);
    let old = live("r1");
    let (mut status, mut notes) = (old.clone(), Vec::new());
    assert!(!report(
        Some(&thin),
        &v,
        "r1",
        &old,
        &mut status,
        &mut notes,
        T0
    ));
    let (on, reason, message) = condition(&status).unwrap();
    assert_eq!((on.as_str(), reason.as_str()), ("True", TOO_SHORT));
    assert!(
        message.starts_with("template AnalysisTemplate shop/generic-http: to catch +1 pt errors with 80 % power at 2.00 req/s"),
        "{message}"
    );
    assert!(
        message.contains("step 0 (5% for 5m) catches it in"),
        "{message}"
    );
    assert_eq!(notes.len(), 1);
    assert_eq!((notes[0].reason, notes[0].warning), (CONDITION, true));
    assert!(
        notes[0].message.starts_with("2 of 2 gated steps cannot catch +1 pt errors in 80 % of rollouts at 2.00 req/s: step 0 (5% for 5m) needs "),
        "{}",
        notes[0].message
    );
    assert!(notes[0].message.len() <= 1000);
    // Already true: no second Event.
    let again = status.clone();
    notes.clear();
    report(
        Some(&thin),
        &v,
        "r1",
        &again,
        &mut status,
        &mut notes,
        T0 + 60.0,
    );
    assert!(notes.is_empty());
    assert_eq!(condition(&status).unwrap().0, "True");
}

#[test]
fn steps_that_suffice_are_a_false_condition_without_an_event() {
    let v = rollout("1h");
    let busy = finding(&v, 500.0);
    let old = live("r1");
    let (mut status, mut notes) = (old.clone(), Vec::new());
    report(Some(&busy), &v, "r1", &old, &mut status, &mut notes, T0);
    let (on, reason, message) = condition(&status).unwrap();
    assert_eq!((on.as_str(), reason.as_str()), ("False", SUFFICE));
    assert!(
        message.contains("every gated step catches +1 pt errors"),
        "{message}"
    );
    assert!(notes.is_empty());
}

#[test]
fn the_condition_waits_for_evidence_goes_with_a_new_revision_and_follows_the_spec() {
    let v = rollout("5m");
    let thin = finding(&v, 2.0);
    let old = live("r1");
    let (mut status, mut notes) = (old.clone(), Vec::new());
    // No evidence yet: absent.
    report(None, &v, "r1", &old, &mut status, &mut notes, T0);
    assert_eq!(condition(&status), None);
    report(Some(&thin), &v, "r1", &old, &mut status, &mut notes, T0);
    let set = status.clone();
    // A finding for other steps (the spec changed; its check is on its way): kept as it is.
    let longer = rollout("1h");
    report(
        Some(&thin),
        &longer,
        "r1",
        &set,
        &mut status,
        &mut notes,
        T0,
    );
    assert_eq!(status, set);
    // A new canary revision starts: the old answer goes until the new one's comes.
    let mut next = set.clone();
    next.canary_revision = Some("r2".into());
    report(Some(&thin), &v, "r2", &set, &mut next, &mut notes, T0);
    assert_eq!(condition(&next), None);
    // Turned off: gone.
    let off = validate(&spec("5m", "    powerCheck: {enabled: false}")).unwrap();
    let mut status = set.clone();
    report(Some(&thin), &off, "r1", &set, &mut status, &mut notes, T0);
    assert_eq!(condition(&status), None);
    // Once the rollout is over, the answer in the status is all that is needed.
    let mut done = set.clone();
    done.phase = Some(crate::crd::rollout::RolloutPhase::Healthy);
    done.canary_revision = None;
    assert!(report(
        Some(&thin),
        &v,
        "r1",
        &set,
        &mut done,
        &mut Vec::new(),
        T0
    ));
}
