//! Absolute gates on the canary alone ("error rate below 1 %", "p99 below 500 ms"), tested
//! sequentially so that a handful of bad requests at low traffic does not fail them.
//!
//! A gate "rate ≤ p_max" (for a latency quantile `q ≤ bound`: the share of requests slower than
//! `bound` is at most `1 - q`) is the null of a one-sided binomial test on the canary's counts
//! per interval. The mixture bets on `p_max × {1.5, 2, 3, 5, 10}`; as the likelihood ratio is
//! monotone in the count, every rate below `p_max` is covered too (a one-sided composite null in a
//! one-parameter exponential family). Assumes independent requests; bursts within the canary count
//! against it, as an SLO should.

use super::observation::Counts;
use super::sequential::{Factor, Mixture};
use super::verdict::Estimate;

const GRID: [f64; 5] = [1.5, 2.0, 3.0, 5.0, 10.0];

/// Sequential test that the canary's event rate stays at or below a maximum.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdGate {
    max_rate: f64,
    alternatives: Vec<f64>,
    mixture: Mixture,
    canary: Counts,
}

impl ThresholdGate {
    /// A gate at `max_rate` (a probability in (0, 1)).
    pub fn new(max_rate: f64) -> Self {
        let alternatives: Vec<f64> = GRID
            .iter()
            .map(|g| (max_rate * g).min(0.5 * (1.0 + max_rate)))
            .collect();
        Self {
            max_rate,
            mixture: Mixture::new(&vec![1.0; alternatives.len()]),
            alternatives,
            canary: Counts::default(),
        }
    }

    /// Adds one interval of the canary's counts.
    pub fn update(&mut self, canary: Counts) {
        self.canary.events += canary.events;
        self.canary.total += canary.total;
        if canary.total > 0.0 {
            let factor = Factor::new(canary.events, canary.total, self.max_rate, None);
            for (j, p1) in self.alternatives.iter().enumerate() {
                self.mixture.add(j, factor.log_lr(*p1));
            }
        }
        self.mixture.commit();
    }

    /// The e-process.
    pub fn mixture(&self) -> &Mixture {
        &self.mixture
    }

    /// The canary's counts over all intervals.
    pub fn totals(&self) -> Counts {
        self.canary
    }

    /// The canary's rate with a Wilson 95 % interval (display only).
    pub fn estimate(&self) -> Option<Estimate> {
        let n = self.canary.total;
        if n <= 0.0 {
            return None;
        }
        let p = self.canary.events / n;
        let z: f64 = 1.959_964;
        let denom = 1.0 + z * z / n;
        let centre = (p + z * z / (2.0 * n)) / denom;
        let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
        Some(Estimate {
            quantity: format!("canary rate (gate at {})", self.max_rate),
            value: p,
            low: (centre - half).max(0.0),
            high: (centre + half).min(1.0),
            interval: "Wilson 95% (fixed-sample, display only)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// statsmodels 0.14 `proportion_confint(10, 100, method="wilson")` =
    /// (0.05522913706067509, 0.17436566150491348); R `prop.test(10, 100, correct = FALSE)` agrees.
    #[test]
    fn wilson_interval_matches_r() {
        let mut g = ThresholdGate::new(0.01);
        g.update(Counts::new(10.0, 100.0));
        let e = g.estimate().unwrap();
        assert!((e.low - 0.055_229_137_060_675).abs() < 1e-9, "{}", e.low);
        assert!((e.high - 0.174_365_661_504_913).abs() < 1e-9, "{}", e.high);
    }

    #[test]
    fn one_error_in_fifty_requests_does_not_breach_a_one_percent_gate() {
        let mut g = ThresholdGate::new(0.01);
        g.update(Counts::new(1.0, 50.0));
        assert!(g.mixture().log_e() < 10f64.ln());
    }

    #[test]
    fn a_sustained_five_percent_rate_breaches_a_one_percent_gate() {
        let mut g = ThresholdGate::new(0.01);
        for _ in 0..5 {
            g.update(Counts::new(10.0, 200.0));
        }
        assert!(g.mixture().log_e() > 100f64.ln());
    }
}
