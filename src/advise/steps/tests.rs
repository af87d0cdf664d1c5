use super::*;
use crate::advise::{Study, advise};

fn config() -> JudgeConfig {
    crate::template::parse(
        include_str!("../../../analysis-templates/generic-http.yaml"),
        "generic-http.yaml",
    )
    .unwrap()
    .judge
}

/// generic-http's interval.
const MINUTE: f64 = 60.0;

fn steps(plan: &[(f64, f64)]) -> Vec<PlannedStep> {
    plan.iter()
        .enumerate()
        .map(|(index, &(weight, pause))| PlannedStep {
            index,
            weight,
            pause,
        })
        .collect()
}

fn settings(runs: usize) -> Settings {
    Settings::new(Goal::default(), runs)
}

fn traffic(rps: f64) -> Traffic {
    Traffic {
        rps,
        error_rate: 0.001,
    }
}

#[test]
fn thin_traffic_makes_short_steps_underpowered_and_says_what_they_need() {
    // 3 req/s in all: 5 % of it is one canary request every 7 s, so +1 pt is one extra error
    // every 11 minutes; a 5-minute step cannot catch it, a 50 % step needs longer than 5 minutes.
    let plan = steps(&[(5.0, 300.0), (50.0, 300.0), (50.0, 3600.0)]);
    let c = check(
        &config(),
        traffic(3.0),
        MINUTE,
        &plan,
        settings(40),
        &|| false,
    )
    .unwrap()
    .unwrap();
    let f = &c.findings;
    assert_eq!(f.len(), 3);
    assert!(f[0].underpowered() && f[1].underpowered(), "{f:?}");
    assert!(f[0].caught < 0.8 && f[1].caught < 0.8, "{f:?}");
    // The 50 % steps share one simulation: the hour-long one suffices, with what it needs.
    assert!(!f[2].underpowered(), "{f:?}");
    let needed = f[1].needed.expect("within the horizon at 50 %");
    assert_eq!(f[2].needed, Some(needed));
    assert!(needed > 300.0 && needed <= 3600.0, "{needed}");
    assert_eq!(needed % MINUTE, 0.0, "whole intervals");
    // What it costs: rps × weight × effect × duration.
    let bad = f[1].bad_requests.unwrap();
    assert!((bad - 3.0 * 0.5 * 0.01 * needed).abs() < 1e-9, "{bad}");
    // 5 % needs more than the hour simulated (or is just caught at its end).
    assert!(f[0].needed.is_none_or(|n| n > needed), "{f:?}");

    let message = c.message();
    assert!(
        message.starts_with("to catch +1 pt errors with 80 % power at 3.00 req/s (stable 0.10 % errors): step 0 (5% for 5m) catches it in "),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "step 1 (50% for 5m) catches it in {:.0} % of rollouts and needs {} (costing ~{bad:.1} bad requests); Wald's floor {}",
            f[1].caught * 100.0,
            duration(needed),
            duration(f[1].wald.unwrap())
        )),
        "{message}"
    );
    assert!(
        !message.contains("step 2 ("),
        "only the underpowered steps: {message}"
    );
    assert!(
        message.contains(&format!(
            "Fix: lengthen these pauses to what they need, or use fewer, bigger steps (at 50% it needs {})",
            duration(needed)
        )),
        "{message}"
    );
    assert!(
        message.ends_with("(40 simulated rollouts per weight, ±6 pts)"),
        "{message}"
    );
}

#[test]
fn ample_traffic_makes_the_same_steps_suffice() {
    let plan = steps(&[(5.0, 300.0), (25.0, 300.0), (50.0, 300.0)]);
    let c = check(
        &config(),
        traffic(300.0),
        MINUTE,
        &plan,
        settings(40),
        &|| false,
    )
    .unwrap()
    .unwrap();
    assert!(!c.any_underpowered(), "{c:?}");
    for f in &c.findings {
        assert!(f.caught >= 0.8, "{f:?}");
        assert!(f.needed.unwrap() <= 300.0, "{f:?}");
    }
    let message = c.message();
    assert!(
        message.starts_with(
            "every gated step catches +1 pt errors with 80 % power at 300 req/s (stable 0.10 % errors); the slowest, step "
        ),
        "{message}"
    );
}

#[test]
fn no_needed_duration_is_below_walds_bound_nor_far_above_it() {
    // Wald's bound is the expected time of the SPRT that knows the regression (error rates
    // alpha and 0.2): the judge, which does not know it, needs longer to catch it in 80 % of
    // rollouts — measured here 2.8–4.8 times as long at 5–200 req/s, plus a few intervals at
    // high traffic, where the judge's first intervals rule out over-dispersion (1000 req/s: 6
    // intervals of 10 s against Wald's 8 s).
    for (rps, weight, error_rate, interval) in [
        (5.0, 50.0, 0.001, 60.0),
        (20.0, 10.0, 0.001, 10.0),
        (50.0, 5.0, 0.001, 60.0),
        (200.0, 5.0, 0.01, 10.0),
        (1000.0, 25.0, 0.02, 10.0),
    ] {
        let t = Traffic { rps, error_rate };
        let plan = steps(&[(weight, 600.0)]);
        let c = check(&config(), t, interval, &plan, settings(60), &|| false)
            .unwrap()
            .unwrap();
        let f = &c.findings[0];
        let (needed, wald) = (f.needed.unwrap(), f.wald.unwrap());
        assert!(needed >= wald, "{rps} req/s at {weight}%: {f:?}");
        assert!(
            needed <= 5.0 * wald + 6.0 * interval,
            "{rps} req/s at {weight}%: {f:?}"
        );
    }
}

#[test]
fn a_step_of_the_needed_duration_catches_the_regression_in_fresh_rollouts() {
    // Calibration: the duration found on seeds 1–100 catches the regression in about 80 % of
    // 300 other rollouts (seeds 1001–1300); 3 standard errors of both estimates allow 0.69.
    let t = traffic(40.0);
    let c = check(
        &config(),
        t,
        10.0,
        &steps(&[(25.0, 600.0)]),
        settings(100),
        &|| false,
    )
    .unwrap()
    .unwrap();
    let needed = c.findings[0].needed.unwrap();
    let fresh = StepSimulation {
        weight: 25.0,
        interval: 10.0,
        runs: 300,
        first_seed: 1001,
        horizon: needed,
        stop_after: None,
    };
    let runs = simulate_step(&config(), t, 0.01, &fresh, &|| false).unwrap();
    let caught = runs.caught_within(needed);
    assert!((0.69..=0.93).contains(&caught), "{caught} within {needed}s");
}

#[test]
fn stopping_early_finds_what_the_whole_advice_finds() {
    // `canary-gate advise` simulates every run to the horizon; the check stops once the
    // quantile is known. Same seeds, same answer.
    let t = traffic(30.0);
    let study = Study {
        effect: Effect::ErrorPoints(0.01),
        weights: vec![10.0, 50.0],
        power: 0.8,
        horizon: 3600.0,
        runs: 30,
        interval: MINUTE,
    };
    let advice = advise(&config(), t, &study).unwrap();
    let plan = steps(&[(10.0, 600.0), (50.0, 600.0)]);
    let c = check(&config(), t, MINUTE, &plan, settings(30), &|| false)
        .unwrap()
        .unwrap();
    for (a, f) in advice.iter().zip(&c.findings) {
        assert_eq!(a.seconds, f.needed, "{a:?} {f:?}");
        assert_eq!(a.wald_seconds, f.wald);
    }
}

#[test]
fn a_cancelled_check_stops_and_answers_nothing() {
    let asked = std::cell::Cell::new(0);
    let cancelled = || {
        asked.set(asked.get() + 1);
        asked.get() > 3
    };
    let plan = steps(&[(5.0, 300.0)]);
    let answer = check(
        &config(),
        traffic(1.0),
        MINUTE,
        &plan,
        settings(50),
        &cancelled,
    )
    .unwrap();
    assert_eq!(answer, None);
    assert_eq!(
        asked.get(),
        4,
        "asked before every interval, stopped at once"
    );
}

#[test]
fn the_horizon_is_bounded_and_whole_intervals() {
    assert_eq!(horizon(300.0, 60.0), 3600.0);
    assert_eq!(horizon(3600.0, 60.0), 14_400.0);
    // At most 720 intervals beyond the pause.
    assert_eq!(horizon(36_000.0, 10.0), 43_200.0);
    assert_eq!(horizon(0.0, 7.0), 3605.0);
}

#[test]
fn bad_settings_and_steps_are_refused_naming_them() {
    let c = config();
    let plan = steps(&[(5.0, 300.0)]);
    let err = check(&c, traffic(0.0), MINUTE, &plan, settings(10), &|| false).unwrap_err();
    assert!(err.to_string().starts_with("rps: is 0"), "{err}");
    let human = steps(&[(5.0, f64::INFINITY)]);
    let err = check(&c, traffic(5.0), MINUTE, &human, settings(10), &|| false).unwrap_err();
    assert!(err.to_string().starts_with("steps: step 0"), "{err}");
    // A ratio of no errors is no regression: refused rather than every step "needing forever".
    let clean = Traffic {
        rps: 5.0,
        error_rate: 0.0,
    };
    let ratio = Settings {
        effect: Effect::ErrorRatio(1.5),
        ..settings(10)
    };
    let err = check(&c, clean, MINUTE, &plan, ratio, &|| false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "effect: ×1.5 the stable's error rate adds no errors when the stable served none; write the regression in points, e.g. +1pt"
    );
}

#[test]
fn a_long_list_of_steps_names_the_first_eight_and_counts_the_rest() {
    let plan: Vec<(f64, f64)> = (1..=11).map(|w| (f64::from(w), 60.0)).collect();
    let c = check(
        &config(),
        traffic(1.0),
        MINUTE,
        &steps(&plan),
        settings(5),
        &|| false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.underpowered().count(), 11);
    let message = c.message();
    assert!(message.contains("step 7 (8% for 1m)"), "{message}");
    assert!(!message.contains("step 8 ("), "{message}");
    assert!(message.contains("; and 3 more. Fix:"), "{message}");
}

#[test]
fn independent_figures_bound_a_thin_short_step_and_a_long_busy_one() {
    // 2 req/s × 5 % × 5 min = 30 canary requests; at 0.1 % + 1 pt its errors are Poisson with
    // mean 30 × 0.011 = 0.33, so a rollout sees no canary error at all with probability
    // e^−0.33 = 0.719. A judge cannot roll back a canary that served no error, so it catches
    // the regression in at most 1 − 0.719 = 28.1 % of rollouts (+3 standard errors of 100 runs:
    // 0.42) — far from 80 %: underpowered, whatever the method.
    let thin = check(
        &config(),
        traffic(2.0),
        MINUTE,
        &steps(&[(5.0, 300.0)]),
        settings(100),
        &|| false,
    )
    .unwrap()
    .unwrap();
    let f = &thin.findings[0];
    let bound = 1.0 - (-2.0_f64 * 0.05 * 300.0 * 0.011).exp();
    assert!((bound - 0.281).abs() < 1e-3, "{bound}");
    assert!(
        f.caught <= bound + 3.0 * (bound * (1.0 - bound) / 100.0).sqrt(),
        "{f:?}"
    );
    assert!(f.underpowered(), "{f:?}");
    assert!(thin.any_underpowered());
    assert!(
        thin.message().contains("step 0 (5% for 5m) catches it in "),
        "{}",
        thin.message()
    );

    // 100 req/s × 25 % × 30 min. After its first 10 minutes alone the canary served 15 000
    // requests and the stable 45 000: a one-shot two-proportion z-test of 1.1 % against 0.1 %
    // gives z = 0.01 / √(0.011·0.989/15000 + 0.001·0.999/45000) = 11.5, against 2.33 at
    // α = 0.01. Even a test several times less efficient than that catches it within a third of
    // the step in nearly every rollout: not underpowered.
    let z = 0.01 / (0.011 * 0.989 / 15000.0 + 0.001 * 0.999 / 45000.0_f64).sqrt();
    assert!((z - 11.5).abs() < 0.1, "{z}");
    let busy = check(
        &config(),
        traffic(100.0),
        MINUTE,
        &steps(&[(25.0, 1800.0)]),
        settings(100),
        &|| false,
    )
    .unwrap()
    .unwrap();
    let f = &busy.findings[0];
    assert!(!f.underpowered(), "{f:?}");
    assert!(f.caught >= 0.8, "{f:?}");
    assert!(f.needed.is_some_and(|n| n <= 600.0), "{f:?}");
    assert!(!busy.any_underpowered());
    assert!(
        busy.message()
            .starts_with("every gated step catches +1 pt errors"),
        "{}",
        busy.message()
    );
}
