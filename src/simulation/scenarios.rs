//! The standard scenario set (A/A and regressions) and Wald's SPRT bound for comparison.

use super::Scenario;

/// A/A scenarios (no regression), common incidents and regressions the judge must catch, as
/// used by the calibration tests and the decision-quality bench.
///
/// Over-dispersion (`-odC` ids): each version's error probability in each interval is drawn
/// independently from a Gamma with the version's mean and coefficient of variation `C` (shape
/// `1/C²`), the canary's regression included. Low traffic: 1, 2 and 5 requests per second.
pub fn standard_scenarios() -> Vec<Scenario> {
    let aa = Scenario::identical;
    let od = |id: &str, name: &str, rps: f64, cv: f64| Scenario {
        version_jitter: cv,
        ..aa(id, name, rps)
    };
    let mut out = vec![
        aa("aa-1", "A/A 1 rps", 1.0),
        aa("aa-2", "A/A 2 rps", 2.0),
        aa("aa-5", "A/A 5 rps", 5.0),
        aa("aa-10", "A/A 10 rps", 10.0),
        aa("aa-100", "A/A 100 rps", 100.0),
        aa("aa-1000", "A/A 1000 rps", 1000.0),
        od(
            "aa-100-od0.3",
            "A/A 100 rps, per-version over-dispersion CV 0.3",
            100.0,
            0.3,
        ),
        od(
            "aa-100-od1",
            "A/A 100 rps, per-version over-dispersion CV 1",
            100.0,
            1.0,
        ),
        od(
            "aa-1000-od0.5",
            "A/A 1000 rps, per-version over-dispersion CV 0.5",
            1000.0,
            0.5,
        ),
        Scenario {
            error_rate: 0.01,
            ..od(
                "aa-100-1pct-od1",
                "A/A 100 rps, 1 % errors, over-dispersion CV 1",
                100.0,
                1.0,
            )
        },
    ];
    out.push(Scenario {
        traffic_swing: 0.6,
        ..aa("aa-100-swing", "A/A 100 rps, traffic ±60 %", 100.0)
    });
    out.push(Scenario {
        burst_probability: 0.1,
        burst_multiplier: 50.0,
        ..aa(
            "aa-100-bursts",
            "A/A 100 rps, error bursts ×50 on both",
            100.0,
        )
    });
    out.push(Scenario {
        burst_probability: 0.1,
        burst_multiplier: 50.0,
        traffic_swing: 0.6,
        version_jitter: 0.1,
        ..aa(
            "aa-1000-noisy",
            "A/A 1000 rps, bursts, ±60 %, 10 % version jitter",
            1000.0,
        )
    });
    out.push(Scenario {
        burst_probability: 0.1,
        burst_multiplier: 50.0,
        ..od(
            "aa-100-bursts-od0.3",
            "A/A 100 rps, bursts ×50 on both, over-dispersion CV 0.3",
            100.0,
            0.3,
        )
    });
    out.push(Scenario {
        canary_error_add: 0.01,
        ..aa("errors-1pt-100", "errors +1 pt over 0.1 %, 100 rps", 100.0)
    });
    out.push(Scenario {
        canary_error_add: 0.002,
        ..aa(
            "errors-0.2pt-1000",
            "errors +0.2 pt over 0.1 %, 1000 rps",
            1000.0,
        )
    });
    out.push(Scenario {
        canary_error_add: 0.01,
        ..od(
            "errors-1pt-100-od0.5",
            "errors +1 pt, 100 rps, over-dispersion CV 0.5",
            100.0,
            0.5,
        )
    });
    out.push(Scenario {
        canary_error_add: 0.002,
        ..od(
            "errors-0.2pt-1000-od0.3",
            "errors +0.2 pt, 1000 rps, over-dispersion CV 0.3",
            1000.0,
            0.3,
        )
    });
    out.push(Scenario {
        canary_error_add: 0.05,
        ..aa("errors-5pt-1", "errors +5 pt over 0.1 %, 1 rps", 1.0)
    });
    out.push(Scenario {
        canary_error_add: 0.03,
        ..aa("errors-3pt-2", "errors +3 pt over 0.1 %, 2 rps", 2.0)
    });
    out.push(Scenario {
        canary_error_add: 0.01,
        ..aa("errors-1pt-5", "errors +1 pt over 0.1 %, 5 rps", 5.0)
    });
    out.push(Scenario {
        canary_p99_factor: 1.5,
        ..aa("p99-1.5x-100", "latency p99 ×1.5, 100 rps", 100.0)
    });
    out.push(Scenario {
        canary_latency_scale: 1.2,
        ..aa(
            "latency-1.2x-100",
            "latency ×1.2 everywhere, 100 rps",
            100.0,
        )
    });
    out.push(Scenario {
        canary_latency_scale: 1.5,
        ..aa("latency-1.5x-5", "latency ×1.5 everywhere, 5 rps", 5.0)
    });
    out
}

/// Whether a scenario is a common incident (error bursts hitting both versions).
pub fn is_common_incident(s: &Scenario) -> bool {
    s.burst_probability > 0.0 && s.burst_multiplier > 1.0
}

/// The scenario with this id.
pub fn scenario(id: &str) -> Option<Scenario> {
    standard_scenarios().into_iter().find(|s| s.id == id)
}

/// Wald's approximation of the expected time (seconds) an SPRT that knows the exact alternative
/// needs to reject its null with error rates `alpha`/`beta`, at the scenario's step weights:
/// `((1-β) ln((1-β)/α) + β ln(β/(1-α)))` nats of expected log-likelihood ratio, accrued at the
/// Kullback-Leibler information rate of each step. `None` if the plan ends first. No sequential
/// test with these error rates and this null detects faster on average.
///
/// The information is the judge's, and so is the null:
/// - **Errors**: which version each error landed on, given the interval's error total (the
///   judge's conditioning, which removes incidents hitting both versions). The null is the
///   canary's error rate at `1 + error_tolerance` times the stable's. With per-version
///   over-dispersion (`version_jitter` > 0) the oracle knows the Gamma shape and the stable's rate
///   and uses the exact conditional law of the canary's count given the total under independent
///   negative binomials (see [`conditional_error_information`]); without it, the binomial share.
/// - **Latency**: which version each request of each latency bucket came from. The null is
///   one-sided like the judge's ("no slower than `1 + latency_tolerance` times the stable in
///   any bucket's completion hazard"), and the bound is computed against the null distribution
///   closest to the truth: the canary's own hazard where it is no slower than that limit (a
///   canary faster below its median is *in* the null there), the limit's hazard where it is
///   slower. A test that must never build evidence from a faster canary cannot use the faster
///   part, so no such test can beat this bound; a two-sided SPRT could, by also betting on
///   "faster below the median", and would then fail faster canaries.
pub fn wald_expected_seconds(
    s: &Scenario,
    alpha: f64,
    beta: f64,
    error_tolerance: f64,
    latency_tolerance: f64,
) -> Option<f64> {
    let target = (1.0 - beta) * ((1.0 - beta) / alpha).ln() + beta * (beta / (1.0 - alpha)).ln();
    let stable_buckets = s.bucket_probabilities(false);
    let canary_buckets = s.bucket_probabilities(true);
    let limit_buckets = Scenario {
        latency_median: s.latency_median * (1.0 + latency_tolerance),
        canary_latency_scale: 1.0,
        canary_p99_factor: 1.0,
        ..s.clone()
    }
    .bucket_probabilities(false);
    let null_buckets = clip_hazards(&canary_buckets, &limit_buckets);
    let info_per_second = |w: f64| {
        let p_s = s.error_rate;
        let p_c = (p_s + s.canary_error_add).min(1.0);
        let p_null = (p_s * (1.0 + error_tolerance)).min(1.0);
        let error_info = if p_c <= p_null {
            0.0
        } else if s.version_jitter > 0.0 {
            let n = s.rps * s.interval;
            let shape = 1.0 / (s.version_jitter * s.version_jitter);
            conditional_error_information(shape, (1.0 - w) * n * p_s, w * n * p_c, w * n * p_null)
                / s.interval
                / s.rps
        } else {
            let errors_per_request = w * p_c + (1.0 - w) * p_s;
            let share_null = w * p_null / (w * p_null + (1.0 - w) * p_s);
            kl(w * p_c / errors_per_request, share_null) * errors_per_request
        };
        let latency_info: f64 = stable_buckets
            .iter()
            .zip(&canary_buckets)
            .zip(&null_buckets)
            .map(|((&p, &q), &q0)| {
                let m = w * q + (1.0 - w) * p;
                let m0 = w * q0 + (1.0 - w) * p;
                if m > 0.0 && m0 > 0.0 {
                    m * kl(w * q / m, w * q0 / m0)
                } else {
                    0.0
                }
            })
            .sum();
        s.rps * (error_info + latency_info)
    };
    let mut info = 0.0;
    let mut t = 0.0;
    for &(weight, duration) in &s.steps {
        let rate = info_per_second(weight / 100.0);
        if rate > 0.0 && info + rate * duration >= target {
            return Some(t + (target - info) / rate);
        }
        info += rate * duration;
        t += duration;
    }
    None
}

/// The distribution closest (in Kullback-Leibler divergence from `truth`) to `truth` among those
/// whose completion hazard in every bucket is at least `limit`'s: bucket by bucket, the larger
/// of the two hazards. (KL of two bucket distributions is the survival-weighted sum of the
/// per-bucket Bernoulli divergences of their hazards, so the minimum is taken bucket by bucket.)
fn clip_hazards(truth: &[f64], limit: &[f64]) -> Vec<f64> {
    let (mut surv_t, mut surv_l, mut surv_out) = (1.0_f64, 1.0_f64, 1.0_f64);
    let last = truth.len().saturating_sub(1);
    truth
        .iter()
        .zip(limit)
        .enumerate()
        .map(|(k, (&t, &l))| {
            let hazard = |p: f64, surv: f64| {
                if surv > 1e-300 {
                    (p / surv).clamp(0.0, 1.0)
                } else {
                    1.0
                }
            };
            let h = if k == last {
                1.0
            } else {
                hazard(t, surv_t).max(hazard(l, surv_l))
            };
            surv_t -= t;
            surv_l -= l;
            let out = surv_out * h;
            surv_out -= out;
            out
        })
        .collect()
}

/// Expected Kullback-Leibler information, per interval, in the canary's error count given the
/// interval's error total, when each version's error count is a Gamma-Poisson (negative
/// binomial) with shape `shape` and means `stable_mean` and `canary_mean` (alternative) or
/// `null_canary_mean` (null).
///
/// For independent `X ~ NB(k, μ_c)` and `Y ~ NB(k, μ_s)` with a common shape `k`,
/// `P(X = x | X + Y = E) ∝ C(E, x) Γ(x+k) Γ(E−x+k) ρ^x` with `ρ = (μ_c/(k+μ_c)) / (μ_s/(k+μ_s))`.
/// The information is `Σ_E P₁(E) KL(P₁(·|E) ‖ P₀(·|E))`, summed until the remaining
/// probability of `E` is negligible.
pub fn conditional_error_information(
    shape: f64,
    stable_mean: f64,
    canary_mean: f64,
    null_canary_mean: f64,
) -> f64 {
    use statrs::function::gamma::ln_gamma;
    let k = shape;
    let ln_nb = |x: f64, mu: f64| {
        ln_gamma(x + k) - ln_gamma(k) - ln_gamma(x + 1.0)
            + k * (k / (k + mu)).ln()
            + if x > 0.0 {
                x * (mu / (k + mu)).ln()
            } else {
                0.0
            }
    };
    let total_mean = stable_mean + canary_mean;
    let sd = (total_mean + (stable_mean.powi(2) + canary_mean.powi(2)) / k).sqrt();
    let e_max = (total_mean + 12.0 * sd + 20.0).min(20_000.0) as usize;
    let mut info = 0.0;
    for e in 1..=e_max {
        let ef = e as f64;
        let joint1: Vec<f64> = (0..=e)
            .map(|x| {
                let x = x as f64;
                ln_nb(x, canary_mean) + ln_nb(ef - x, stable_mean)
            })
            .collect();
        let joint0: Vec<f64> = (0..=e)
            .map(|x| {
                let x = x as f64;
                ln_nb(x, null_canary_mean) + ln_nb(ef - x, stable_mean)
            })
            .collect();
        let norm1 = crate::analysis::log_sum_exp(joint1.iter().copied());
        let norm0 = crate::analysis::log_sum_exp(joint0.iter().copied());
        let p_e = norm1.exp();
        if p_e <= 0.0 {
            continue;
        }
        let kl_e: f64 = joint1
            .iter()
            .zip(&joint0)
            .map(|(l1, l0)| {
                let c1 = l1 - norm1;
                c1.exp() * (c1 - (l0 - norm0))
            })
            .sum();
        info += p_e * kl_e.max(0.0);
    }
    info
}

/// Kullback-Leibler divergence of Bernoulli(p) from Bernoulli(q).
fn kl(p: f64, q: f64) -> f64 {
    let term = |a: f64, b: f64| if a > 0.0 { a * (a / b).ln() } else { 0.0 };
    term(p, q) + term(1.0 - p, 1.0 - q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_matches_closed_form() {
        // scipy 1.17.1: scipy.special.rel_entr(0.5,0.25)+rel_entr(0.5,0.75) = 0.14384103622589045
        assert!((kl(0.5, 0.25) - 0.143_841_036_225_890_45).abs() < 1e-12);
    }

    /// scipy 1.17.1: with `l(x, μ) = nbinom.logpmf(x, k, k/(k+μ))`, the joint laws
    /// `l(x, μ_c) + l(E−x, μ_s)` normalised over `x` for each `E` in 1..=300, and
    /// `Σ_E P₁(E) Σ_x P₁(x|E) (ln P₁(x|E) − ln P₀(x|E))`:
    /// shape 4, stable mean 9.5, canary mean 1.5 vs 0.5 → 0.5258770416961973; with shape 1e6
    /// → 0.5995064081768618, the binomial value `11·kl(1.5/11, 0.05)` = 0.5995064551545917.
    #[test]
    fn conditional_error_information_matches_scipy() {
        let od = conditional_error_information(4.0, 9.5, 1.5, 0.5);
        assert!((od - 0.525_877_041_696_197_3).abs() < 1e-9, "{od}");
        let poisson = conditional_error_information(1e6, 9.5, 1.5, 0.5);
        assert!(
            (poisson - 0.599_506_408_176_861_8).abs() < 1e-6,
            "{poisson}"
        );
        assert!((11.0 * kl(1.5 / 11.0, 0.05) - 0.599_506_455_154_591_7).abs() < 1e-12);
    }

    #[test]
    fn a_one_sided_null_takes_no_information_from_a_faster_part() {
        // p99 ×1.5 at the same median: faster below the median, slower above. Against the
        // hazard-clipped null the information is less than against "identical", and positive.
        let tail = scenario("p99-1.5x-100").unwrap();
        let one_sided = wald_expected_seconds(&tail, 0.005, 0.01, 0.0, 0.0).unwrap();
        let truth = tail.bucket_probabilities(true);
        let clipped = clip_hazards(&truth, &tail.bucket_probabilities(false));
        assert!((clipped.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // Well below the median the canary completes sooner: the clipped null keeps its buckets.
        // (In the median's own bucket, (25 ms, 50 ms], the wider canary's hazard is already the
        // lower one.)
        for k in 0..3 {
            assert!((clipped[k] - truth[k]).abs() < 1e-12, "{k}: {clipped:?}");
        }
        assert!(one_sided > 0.0 && one_sided.is_finite());
        // A canary slower everywhere is clipped to the limit everywhere.
        let slow = scenario("latency-1.2x-100").unwrap();
        let limit = slow.bucket_probabilities(false);
        let clipped = clip_hazards(&slow.bucket_probabilities(true), &limit);
        for (c, l) in clipped.iter().zip(&limit).take(8) {
            assert!((c - l).abs() < 1e-9, "{clipped:?} vs {limit:?}");
        }
    }

    #[test]
    fn wald_bound_is_none_without_a_regression_and_finite_with_one() {
        let aa = scenario("aa-100").unwrap();
        assert!(wald_expected_seconds(&aa, 0.01, 0.01, 0.0, 0.0).is_none());
        let t = wald_expected_seconds(&scenario("errors-1pt-100").unwrap(), 0.01, 0.01, 0.0, 0.0)
            .unwrap();
        assert!(t > 0.0 && t < 600.0, "{t}");
    }
}
