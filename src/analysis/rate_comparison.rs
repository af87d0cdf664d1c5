//! Canary-vs-stable event rates (errors per request), compared within each interval conditional
//! on the traffic split, combined across intervals as a mixture e-process.
//!
//! In interval `i` the canary served `n_c` of `N` requests (share `π = n_c/N`). If the canary's
//! error rate is `r` times the stable's, an error lands on the canary with probability
//! `rπ / (rπ + 1 - π)`; under "no difference" (`r = 1`) that is just `π`. Conditional on the
//! interval's `E` errors, the canary's error count is therefore binomial (exactly: hypergeometric,
//! which is less dispersed, so the binomial likelihood ratio is conservative by Hoeffding's 1963
//! convex-order theorem). Every interval is tested against its own share and only the likelihood
//! ratios are multiplied: weights may change between intervals and total traffic may swing without
//! pooling bias (no Simpson's paradox), and an incident that raises both versions' error rates
//! leaves the shares, and so the test, untouched.

use super::Direction;
use super::observation::Counts;
use super::sequential::{Factor, Mixture, precision_for_jitter, tilt_share};
use super::verdict::Estimate;

/// Multipliers of the null rate ratio that the mixture bets on, each with equal prior weight:
/// from regressions a long rollout can resolve (×1.5) to outages (×20).
const GRID: [f64; 6] = [1.5, 2.0, 3.0, 5.0, 10.0, 20.0];

/// One alternative: a rate ratio and the null it is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Track {
    ratio: f64,
    null_ratio: f64,
}

/// Sequential comparison of canary and stable event rates.
#[derive(Debug, Clone, PartialEq)]
pub struct RateComparison {
    tracks: Vec<Track>,
    mixture: Mixture,
    jitter: f64,
    mh: MantelHaenszel,
    stable: Counts,
    canary: Counts,
}

impl RateComparison {
    /// A comparison where a change of the canary's rate in `direction` beyond the relative
    /// `tolerance` is bad; `jitter` is the per-interval relative noise allowed between versions.
    pub fn new(direction: Direction, tolerance: f64, jitter: f64) -> Self {
        let multipliers = &GRID;
        let mut tracks = Vec::new();
        if direction.watches_increase() {
            let null_ratio = 1.0 + tolerance;
            tracks.extend(multipliers.iter().map(|g| Track {
                ratio: null_ratio * g,
                null_ratio,
            }));
        }
        if direction.watches_decrease() {
            let null_ratio = (1.0 - tolerance).max(1e-6);
            tracks.extend(multipliers.iter().map(|g| Track {
                ratio: null_ratio / g,
                null_ratio,
            }));
        }
        let mixture = Mixture::new(&vec![1.0; tracks.len()]);
        Self {
            tracks,
            mixture,
            jitter,
            mh: MantelHaenszel::default(),
            stable: Counts::default(),
            canary: Counts::default(),
        }
    }

    /// Adds one interval.
    pub fn update(&mut self, stable: Counts, canary: Counts) {
        self.stable.events += stable.events;
        self.stable.total += stable.total;
        self.canary.events += canary.events;
        self.canary.total += canary.total;
        self.mh.add(stable, canary);

        let requests = stable.total + canary.total;
        let events = stable.events + canary.events;
        if stable.total > 0.0 && canary.total > 0.0 && events > 0.0 {
            let share = canary.total / requests;
            let mut cached: Option<(f64, Factor)> = None;
            for (j, track) in self.tracks.iter().enumerate() {
                let factor = match cached {
                    Some((null, f)) if null == track.null_ratio => f,
                    _ => {
                        let p0 = tilt_share(share, track.null_ratio);
                        let f = Factor::new(
                            canary.events,
                            events,
                            p0,
                            precision_for_jitter(p0, self.jitter),
                        );
                        cached = Some((track.null_ratio, f));
                        f
                    }
                };
                self.mixture
                    .add(j, factor.log_lr(tilt_share(share, track.ratio)));
            }
        }
        self.mixture.commit();
    }

    /// The e-process.
    pub fn mixture(&self) -> &Mixture {
        &self.mixture
    }

    /// Totals over all intervals so far (display only: the test never pools them).
    pub fn totals(&self) -> (Counts, Counts) {
        (self.stable, self.canary)
    }

    /// Mantel-Haenszel rate ratio with a Greenland-Robins 95 % interval.
    pub fn estimate(&self) -> Option<Estimate> {
        self.mh.estimate()
    }
}

/// Mantel-Haenszel estimator of a common risk ratio over strata (intervals), with the
/// Greenland & Robins (1985) variance of its logarithm.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MantelHaenszel {
    num: f64,
    den: f64,
    var_num: f64,
}

impl MantelHaenszel {
    /// Adds a stratum.
    pub fn add(&mut self, stable: Counts, canary: Counts) {
        let n = stable.total + canary.total;
        if stable.total <= 0.0 || canary.total <= 0.0 {
            return;
        }
        self.num += canary.events * stable.total / n;
        self.den += stable.events * canary.total / n;
        self.var_num += (canary.total * stable.total * (canary.events + stable.events)
            - canary.events * stable.events * n)
            / (n * n);
    }

    /// The estimate, `None` while neither version had an event.
    pub fn estimate(&self) -> Option<Estimate> {
        if self.num <= 0.0 && self.den <= 0.0 {
            return None;
        }
        let value = if self.den > 0.0 {
            self.num / self.den
        } else {
            f64::INFINITY
        };
        // Without events on one side the log-ratio has no finite variance: the interval is open.
        let (low, high) = if self.num > 0.0 && self.den > 0.0 {
            let se = (self.var_num / (self.num * self.den)).max(0.0).sqrt();
            (
                value * (-1.959_964 * se).exp(),
                value * (1.959_964 * se).exp(),
            )
        } else {
            (0.0, f64::INFINITY)
        };
        Some(Estimate {
            quantity: "rate ratio canary/stable".into(),
            value,
            low,
            high,
            interval:
                "Mantel-Haenszel over intervals, Greenland-Robins 95% (fixed-sample, display only)"
                    .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(events: f64, total: f64) -> Counts {
        Counts::new(events, total)
    }

    /// Two strata (a=10,n1=100,b=20,n0=400) and (a=5,n1=50,b=30,n0=600). statsmodels 0.14
    /// `StratifiedTable(...).riskratio_pooled` = 2.0; Greenland-Robins variance of ln RR computed
    /// independently in Python from the published formula: 0.08362581796549674, so the 95 %
    /// interval is [1.1346931528274713, 3.525182107632049].
    #[test]
    fn mantel_haenszel_matches_hand_computation() {
        let mut mh = MantelHaenszel::default();
        mh.add(c(20.0, 400.0), c(10.0, 100.0));
        mh.add(c(30.0, 600.0), c(5.0, 50.0));
        let e = mh.estimate().unwrap();
        assert!((e.value - 2.0).abs() < 1e-9, "{}", e.value);
        assert!((e.low - 1.134_693_152_827_471).abs() < 1e-9, "{}", e.low);
        assert!((e.high - 3.525_182_107_632_049).abs() < 1e-9, "{}", e.high);
    }

    #[test]
    fn equal_rates_at_any_weight_build_no_evidence() {
        let mut cmp = RateComparison::new(Direction::Increase, 0.0, 0.0);
        // Canary gets exactly its share of errors at 5 % and then 50 %.
        for _ in 0..20 {
            cmp.update(c(19.0, 1900.0), c(1.0, 100.0));
        }
        for _ in 0..20 {
            cmp.update(c(10.0, 1000.0), c(10.0, 1000.0));
        }
        assert!(cmp.mixture().log_e() < 0.0);
    }

    #[test]
    fn a_canary_with_ten_times_the_errors_builds_strong_evidence() {
        let mut cmp = RateComparison::new(Direction::Increase, 0.0, 0.1);
        for _ in 0..5 {
            cmp.update(c(6.0, 5700.0), c(3.0, 300.0));
        }
        assert!(
            cmp.mixture().log_e() > 100f64.ln(),
            "{}",
            cmp.mixture().log_e()
        );
    }

    #[test]
    fn an_incident_on_both_versions_is_not_evidence_against_the_canary() {
        let mut cmp = RateComparison::new(Direction::Increase, 0.0, 0.1);
        // 30 % errors everywhere, canary at 10 % of traffic with 10 % of errors.
        for _ in 0..10 {
            cmp.update(c(270.0, 900.0), c(30.0, 100.0));
        }
        assert!(cmp.mixture().max_log_e() < 1.0);
    }

    #[test]
    fn pooling_would_mislead_but_stratifying_does_not() {
        // Simpson: step 1 at 5 % with a high common error rate, step 2 at 50 % with a low one.
        // Pooled, the canary looks better (rate 1.1 % vs 2.8 %) although per interval it is equal.
        let mut cmp = RateComparison::new(Direction::Decrease, 0.0, 0.0);
        cmp.update(c(190.0, 1900.0), c(10.0, 100.0));
        cmp.update(c(1.0, 1000.0), c(1.0, 1000.0));
        let (s, k) = cmp.totals();
        assert!(k.rate().unwrap() < 0.5 * s.rate().unwrap());
        assert!(cmp.mixture().max_log_e() < 0.5);
        let est = cmp.estimate().unwrap();
        assert!((est.value - 1.0).abs() < 0.05, "{}", est.value);
    }
}
