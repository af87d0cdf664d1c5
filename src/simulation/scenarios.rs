//! The standard scenario set (A/A and regressions) and Wald's SPRT bound for comparison.

use super::Scenario;

/// A/A scenarios (no regression) and regressions the judge must catch, as used by the
/// calibration tests and the decision-quality bench.
pub fn standard_scenarios() -> Vec<Scenario> {
    let aa = Scenario::identical;
    let mut out = vec![
        aa("aa-1", "A/A 1 rps", 1.0),
        aa("aa-10", "A/A 10 rps", 10.0),
        aa("aa-100", "A/A 100 rps", 100.0),
        aa("aa-1000", "A/A 1000 rps", 1000.0),
    ];
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
        traffic_swing: 0.6,
        ..aa("aa-100-swing", "A/A 100 rps, traffic ±60 %", 100.0)
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
        canary_error_add: 0.05,
        ..aa("errors-5pt-1", "errors +5 pt over 0.1 %, 1 rps", 1.0)
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
    out
}

/// The scenario with this id.
pub fn scenario(id: &str) -> Option<Scenario> {
    standard_scenarios().into_iter().find(|s| s.id == id)
}

/// Wald's approximation of the expected time (seconds) an SPRT that knows the exact alternative
/// needs to reject its null with error rates `alpha`/`beta`, using every request's
/// (version | outcome) information from errors and latency buckets at the scenario's step
/// weights. The null is the judge's: the canary's error rate up to `1 + error_tolerance` times
/// the stable's, its latency up to `1 + latency_tolerance` times slower. `None` if the plan ends
/// first. No sequential test with these error rates detects faster on average.
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
    let null_buckets = Scenario {
        latency_median: s.latency_median * (1.0 + latency_tolerance),
        canary_latency_scale: 1.0,
        canary_p99_factor: 1.0,
        ..s.clone()
    }
    .bucket_probabilities(false);
    let info_per_second = |w: f64| {
        let p_s = s.error_rate;
        let p_c = (p_s + s.canary_error_add).min(1.0);
        let p_null = (p_s * (1.0 + error_tolerance)).min(1.0);
        let errors_per_request = w * p_c + (1.0 - w) * p_s;
        let error_info = if errors_per_request > 0.0 && p_c > p_null {
            let share_null = w * p_null / (w * p_null + (1.0 - w) * p_s);
            kl(w * p_c / errors_per_request, share_null) * errors_per_request
        } else {
            0.0
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
        let latency_info =
            if s.canary_latency_scale > 1.0 + latency_tolerance || s.canary_p99_factor > 1.0 {
                latency_info
            } else {
                0.0
            };
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

    #[test]
    fn wald_bound_is_none_without_a_regression_and_finite_with_one() {
        let set = standard_scenarios();
        assert!(wald_expected_seconds(&set[2], 0.01, 0.01, 0.0, 0.0).is_none());
        let t = wald_expected_seconds(&set[7], 0.01, 0.01, 0.0, 0.0).unwrap();
        assert!(t > 0.0 && t < 600.0, "{t}");
    }
}
