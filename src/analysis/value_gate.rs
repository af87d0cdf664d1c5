//! Plain limits on a single value of the canary (memory, CPU, queue length): not a statistical
//! test — a value is either inside `[min, max]` or not — so it fails only after a number of
//! consecutive breaching intervals, to ride out one-off blips. It takes no share of α.

use super::verdict::Estimate;

/// Consecutive-breach gate on the canary's value.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueGate {
    min: Option<f64>,
    max: Option<f64>,
    fail_after: u32,
    consecutive: u32,
    failed: bool,
    last: Option<(Option<f64>, f64)>,
}

impl ValueGate {
    /// A gate on `[min, max]` that fails after `fail_after` (≥ 1) consecutive breaches.
    pub fn new(min: Option<f64>, max: Option<f64>, fail_after: u32) -> Self {
        Self {
            min,
            max,
            fail_after: fail_after.max(1),
            consecutive: 0,
            failed: false,
            last: None,
        }
    }

    /// Adds one interval's values.
    pub fn update(&mut self, stable: Option<f64>, canary: f64) {
        let breach = !canary.is_finite()
            || self.max.is_some_and(|m| canary > m)
            || self.min.is_some_and(|m| canary < m);
        self.consecutive = if breach { self.consecutive + 1 } else { 0 };
        self.failed |= self.consecutive >= self.fail_after;
        self.last = Some((stable, canary));
    }

    /// Whether the gate has failed (sticky).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Consecutive breaching intervals so far, and how many fail.
    pub fn breaches(&self) -> (u32, u32) {
        (self.consecutive, self.fail_after)
    }

    /// The latest values (stable, canary).
    pub fn last(&self) -> Option<(Option<f64>, f64)> {
        self.last
    }

    /// The canary's latest value against the limits.
    pub fn estimate(&self) -> Option<Estimate> {
        let (_, canary) = self.last?;
        Some(Estimate {
            quantity: "canary value (limits as interval)".into(),
            value: canary,
            low: self.min.unwrap_or(f64::NEG_INFINITY),
            high: self.max.unwrap_or(f64::INFINITY),
            interval: "the configured limits, not a confidence interval".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_blip_does_not_fail_but_a_sustained_breach_does() {
        let mut g = ValueGate::new(None, Some(100.0), 3);
        for v in [50.0, 150.0, 60.0, 150.0, 150.0] {
            g.update(None, v);
        }
        assert!(!g.failed());
        assert_eq!(g.breaches(), (2, 3));
        g.update(None, 120.0);
        assert!(g.failed());
        g.update(None, 10.0);
        assert!(g.failed(), "a failure is sticky");
    }

    #[test]
    fn below_the_minimum_and_nan_breach() {
        let mut g = ValueGate::new(Some(1.0), None, 1);
        g.update(Some(5.0), 0.5);
        assert!(g.failed());
        let mut g = ValueGate::new(None, Some(1.0), 1);
        g.update(None, f64::NAN);
        assert!(g.failed());
    }
}
