//! Anytime-valid evidence: mixtures of likelihood ratios over a grid of alternatives
//! (a discrete mixture SPRT), and the conditional binomial / beta-binomial factors they multiply.
//!
//! A test martingale is a product of per-interval likelihood-ratio factors whose expectation under
//! the null is at most 1. A weighted average of test martingales is one too, so
//! `M_t = Σ_j w_j Π_i LR_ij` is an e-process, and by Ville's inequality
//! `P_H0(∃t: M_t ≥ 1/α) ≤ α`: the judge may look after every interval and stop at the first
//! crossing without inflating false alarms.
//!
//! Each factor compares how many of `n` events fell on the canary (`x`) under an alternative share
//! `p1` against the null share `p0`, either as a binomial or — to allow per-interval jitter between
//! the versions — as a beta-binomial with the same precision `φ` on both sides (see
//! [`precision_for_jitter`]).

use statrs::function::gamma::ln_gamma;

/// Precision `φ` of a beta-binomial whose share varies with a relative jitter `c` (the coefficient
/// of variation of one version's rate relative to the other's within one interval), or `None`
/// when the jitter is negligible and the binomial applies.
///
/// A rate multiplier with mean 1 and CV `c` moves the canary's share `p` of events by about
/// `p(1-p)(M-1)`, with variance `p²(1-p)²c²`; a `Beta(pφ, (1-p)φ)` share has variance
/// `p(1-p)/(φ+1)`, hence `φ = 1/(p(1-p)c²) - 1`.
pub fn precision_for_jitter(p0: f64, jitter: f64) -> Option<f64> {
    if jitter <= 0.0 {
        return None;
    }
    let p0 = clamp_share(p0);
    let phi = 1.0 / (p0 * (1.0 - p0) * jitter * jitter) - 1.0;
    (phi < 1e6).then_some(phi.max(2.0))
}

/// Keeps a share strictly inside (0, 1) so that logarithms stay finite.
pub fn clamp_share(p: f64) -> f64 {
    p.clamp(1e-12, 1.0 - 1e-12)
}

/// The null half of a factor: the terms of `log P(x | n, p0)` that depend on `p0`, precomputed
/// once per factor and shared by every alternative.
#[derive(Debug, Clone, Copy)]
pub struct Factor {
    x: f64,
    n: f64,
    p0: f64,
    phi: Option<f64>,
    null_log: f64,
}

impl Factor {
    /// `x` of `n` events on the canary, null share `p0`, optional beta-binomial precision `phi`.
    pub fn new(x: f64, n: f64, p0: f64, phi: Option<f64>) -> Self {
        let p0 = clamp_share(p0);
        let x = x.clamp(0.0, n.max(0.0));
        let null_log = kernel(x, n, p0, phi);
        Self {
            x,
            n,
            p0,
            phi,
            null_log,
        }
    }

    /// `log(P(x | p1) / P(x | p0))`.
    pub fn log_lr(&self, p1: f64) -> f64 {
        if self.n <= 0.0 {
            return 0.0;
        }
        let p1 = clamp_share(p1);
        match self.phi {
            None => {
                self.x * (p1 / self.p0).ln()
                    + (self.n - self.x) * ((1.0 - p1) / (1.0 - self.p0)).ln()
            }
            Some(_) => kernel(self.x, self.n, p1, self.phi) - self.null_log,
        }
    }
}

/// The share-dependent part of the log-likelihood (binomial: omitted, handled in closed form;
/// beta-binomial: `ln B(x+a, n-x+b) - ln B(a, b)` without the terms that cancel in a ratio with
/// equal precision).
fn kernel(x: f64, n: f64, p: f64, phi: Option<f64>) -> f64 {
    match phi {
        None => 0.0,
        Some(phi) => {
            let a = p * phi;
            let b = (1.0 - p) * phi;
            (ln_gamma(x + a) - ln_gamma(a)) + (ln_gamma(n - x + b) - ln_gamma(b))
        }
    }
}

/// The share a binomial alternative gives the canary when its per-request odds are multiplied by
/// `ratio` relative to the null share `p0`: `ratio·p0 / (ratio·p0 + 1 - p0)`.
pub fn tilt_share(p0: f64, ratio: f64) -> f64 {
    let p0 = clamp_share(p0);
    ratio * p0 / (ratio * p0 + 1.0 - p0)
}

/// A mixture e-process: cumulative log likelihood ratios for a grid of alternatives with prior
/// weights. Tracks with weight zero are followed for estimation only and never count as evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixture {
    log_weights: Vec<f64>,
    log_lr: Vec<f64>,
    max_log_e: f64,
}

impl Mixture {
    /// A mixture with these (unnormalised, non-negative) weights; at least one must be positive.
    pub fn new(weights: &[f64]) -> Self {
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        let log_weights = weights
            .iter()
            .map(|&w| {
                if w > 0.0 {
                    (w / total).ln()
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        Self {
            log_weights,
            log_lr: vec![0.0; weights.len()],
            max_log_e: 0.0,
        }
    }

    /// Number of tracks.
    pub fn len(&self) -> usize {
        self.log_lr.len()
    }

    /// True when there are no tracks.
    pub fn is_empty(&self) -> bool {
        self.log_lr.is_empty()
    }

    /// Multiplies track `j` by `exp(delta)`.
    pub fn add(&mut self, j: usize, delta: f64) {
        self.log_lr[j] += delta;
    }

    /// Call after every interval: records the running maximum of the e-value.
    pub fn commit(&mut self) {
        self.max_log_e = self.max_log_e.max(self.log_e());
    }

    /// Natural log of the current e-value `M_t`.
    pub fn log_e(&self) -> f64 {
        log_sum_exp(
            self.log_weights
                .iter()
                .zip(&self.log_lr)
                .filter(|(w, _)| w.is_finite())
                .map(|(w, l)| w + l),
        )
    }

    /// Natural log of `sup_{s≤t} M_s`; `1/exp(this)` is an anytime-valid p-value.
    pub fn max_log_e(&self) -> f64 {
        self.max_log_e
    }

    /// Cumulative log likelihood ratio of each track.
    pub fn tracks(&self) -> &[f64] {
        &self.log_lr
    }
}

/// `ln Σ exp(x)` without overflow; `-∞` for an empty input.
pub fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scipy 1.17.1: `binom.logpmf(3, 10, 0.4) - binom.logpmf(3, 10, 0.2)` =
    /// 0.06566703451736888 (by hand: 3·ln 2 + 7·ln(0.6/0.8)).
    #[test]
    fn binomial_factor_matches_scipy() {
        let f = Factor::new(3.0, 10.0, 0.2, None);
        assert!((f.log_lr(0.4) - 0.065_667_034_517_368_88).abs() < 1e-12);
    }

    /// scipy 1.17.1: `betabinom.logpmf(3, 10, 0.4*50, 0.6*50) - betabinom.logpmf(3, 10, 0.2*50,
    /// 0.8*50)` = 0.08775094905766068.
    #[test]
    fn beta_binomial_factor_matches_scipy() {
        let f = Factor::new(3.0, 10.0, 0.2, Some(50.0));
        assert!(
            (f.log_lr(0.4) - 0.087_750_949_057_660_68).abs() < 1e-9,
            "{}",
            f.log_lr(0.4)
        );
    }

    #[test]
    fn beta_binomial_approaches_binomial_for_large_precision() {
        let bin = Factor::new(7.0, 40.0, 0.1, None).log_lr(0.2);
        let bb = Factor::new(7.0, 40.0, 0.1, Some(1e6)).log_lr(0.2);
        assert!((bin - bb).abs() < 1e-3, "{bin} vs {bb}");
    }

    #[test]
    fn beta_binomial_weighs_a_big_interval_less_than_the_binomial() {
        // 60 of 600 errors on a 5 % canary: overwhelming for the binomial, tempered by jitter.
        let phi = precision_for_jitter(0.05, 0.3);
        let bin = Factor::new(60.0, 600.0, 0.05, None).log_lr(0.1);
        let bb = Factor::new(60.0, 600.0, 0.05, phi).log_lr(0.1);
        assert!(bb < bin && bb > 0.0, "bb {bb} bin {bin}");
    }

    #[test]
    fn expected_likelihood_ratio_under_the_null_is_one() {
        // Σ_x P0(x) · LR(x) = Σ_x P1(x) = 1 for the binomial factor.
        let n = 12u32;
        let (p0, p1): (f64, f64) = (0.3, 0.55);
        let mut total = 0.0;
        for x in 0..=n {
            let p = statrs::function::factorial::binomial(n as u64, x as u64)
                * p0.powi(x as i32)
                * (1.0 - p0).powi((n - x) as i32);
            total += p * Factor::new(f64::from(x), f64::from(n), p0, None)
                .log_lr(p1)
                .exp();
        }
        assert!((total - 1.0).abs() < 1e-12, "{total}");
    }

    #[test]
    fn mixture_weights_average_the_tracks() {
        let mut m = Mixture::new(&[1.0, 1.0, 0.0]);
        m.add(0, 2f64.ln());
        m.add(1, 4f64.ln());
        m.add(2, 1000.0);
        assert!((m.log_e() - 3f64.ln()).abs() < 1e-12);
        m.commit();
        m.add(1, -10.0);
        m.commit();
        assert!((m.max_log_e() - 3f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn tilt_share_moves_the_odds() {
        assert!((tilt_share(0.05, 1.0) - 0.05).abs() < 1e-15);
        // odds 0.05/0.95 × 19 = 1 → share 0.5
        assert!((tilt_share(0.05, 19.0) - 0.5).abs() < 1e-12);
    }
}
