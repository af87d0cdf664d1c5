//! Canary-vs-stable event rates (errors per request), compared within each interval conditional
//! on the interval's error total, combined across intervals as a mixture e-process.
//!
//! # Method
//! In interval `i` the canary served `n_c` of `N` requests. Each version's error count is
//! modelled as Poisson with a rate that itself varies from interval to interval, independently
//! per version, as a Gamma with coefficient of variation `c` (shape `k = 1/c²`): the negative
//! binomial, the standard over-dispersion model (a noisy pod, a slow dependency, a retry storm
//! on one version). For independent `X_c ~ NB(k, μ_c)` and `X_s ~ NB(k, μ_s)` with a common
//! shape, the canary's count given the interval's total `E` has the law
//! `P(x | E) ∝ C(E,x) Γ(x+k) Γ(E−x+k) ρ^x`, `ρ = (μ_c/(k+μ_c)) / (μ_s/(k+μ_s))`
//! — an exponential family in `x`, so the likelihood ratio of two rates is
//! `(ρ₁/ρ₀)^x · Z(ρ₀)/Z(ρ₁)` with `Z` the normaliser, summed exactly over `x = 0..E`.
//! Without over-dispersion (`k → ∞`) it is the binomial with the canary's share of the
//! requests, `ρ = n_c/n_s`, so nothing changes for Poisson errors. Under "no difference" the
//! means are `μ_v = p·n_v` for a common rate `p`; the alternatives multiply the canary's mean by
//! a ratio from a grid. Intervals are never pooled: weight changes and traffic swings cannot bias
//! the comparison (Simpson's paradox), and an incident that raises both versions' rates is
//! absorbed by conditioning on the total.
//!
//! **Nuisances, estimated without breaking the e-process.** The shape `k = 1/c²` is estimated
//! online from both versions: a method of moments on each version's error count against the
//! mean its own earlier intervals predict (`Var X = m + m²c²`, less the predicted mean's own
//! Poisson variance `m²/errors seen`; weights `1/(1 + 0.09 m)²`, near the efficient ones; a
//! prior at `c = 0.5` worth one version-interval of 2 expected errors),
//! from the **earlier intervals only**: it is predictable, so each interval's factor is the
//! likelihood ratio of a fully specified null law. The template's `jitter` (default 0.05) is the
//! smallest `c` ever used. An incident hitting both versions, or a base rate drifting over the
//! rollout, also inflates this estimate: that errs on the safe side (a more dispersed null) and
//! costs power only while such noise lasts. The common rate `p` enters the null law only through
//! the tilt `(k+μ_s)/(k+μ_c)`; it is taken from the current interval's total or from the stable's
//! earlier intervals, whichever makes the null expect *more* canary errors (fewer for a
//! "decrease is bad" test): an incident on both versions raises the current total, and a quiet
//! interval does not lower the expectation below what earlier ones set.
//!
//! # Error rates
//! With a known shape and rate the product of factors is a test martingale under the null and
//! Ville's inequality gives `P(ever ≥ 1/α) ≤ α`. With the plug-ins it is exact only when the
//! plugged-in dispersion is at least the true one and approximate otherwise; the online
//! estimate converges to the true shape, the prior and the conservative choice of the rate keep
//! the early intervals on the safe side, and the false-alarm rate is checked by simulation
//! (`tests/calibration.rs`: A/A with per-version CV 0.3–1, common incidents; the
//! decision-quality bench: every A/A scenario at most 1 %). Model violations that are not
//! version-specific Gamma noise — a canary whose errors come from one sticky client, a
//! regression in some intervals only — are not covered: the first is a routing assumption,
//! the second is a real (if intermittent) regression, which the estimate partly absorbs as
//! dispersion and so detects later.
//!
//! Counts from Prometheus' `increase()` may be fractional; the conditional law needs integers,
//! so `x` and `E` are rounded (and an interval with more than [`MAX_EVENTS`] errors is scaled
//! down to that many, keeping the canary's share, which weakens but does not bias the factor).

use super::Direction;
use super::observation::Counts;
use super::sequential::{Mixture, log_sum_exp};
use super::verdict::Estimate;
use statrs::function::gamma::ln_gamma;

/// Multipliers of the null rate ratio that the mixture bets on, each with equal prior weight:
/// from regressions a long rollout can resolve (×1.5) to outages (×20).
const GRID: [f64; 6] = [1.5, 2.0, 3.0, 5.0, 10.0, 20.0];

/// Largest error total an interval is judged at exactly; larger intervals are scaled down.
pub const MAX_EVENTS: f64 = 4000.0;
/// Coefficient of variation per version the dispersion estimate starts from.
const PRIOR_CV: f64 = 0.5;
/// The prior weighs as much as one version-interval with this many expected errors.
const PRIOR_EVENTS: f64 = 2.0;
/// Working CV for the estimating equation's weights (fixed, so the weights do not feed back).
const WEIGHT_CV: f64 = 0.3;

/// One alternative: a rate ratio and the null it is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Track {
    ratio: f64,
    null_ratio: f64,
}

/// Online method-of-moments estimate of the squared per-version coefficient of variation of
/// the error rate between intervals: each version's count against the mean its own earlier
/// intervals predict, `Var X = m + m²c²`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dispersion {
    num: f64,
    den: f64,
    /// (errors, requests) of each version over earlier intervals: the predictable rates.
    stable: (f64, f64),
    canary: (f64, f64),
}

impl Dispersion {
    fn new() -> Self {
        let g = moment_weight(PRIOR_EVENTS);
        let den = g * PRIOR_EVENTS * PRIOR_EVENTS;
        Self {
            num: PRIOR_CV * PRIOR_CV * den,
            den,
            stable: (0.0, 0.0),
            canary: (0.0, 0.0),
        }
    }

    /// The CV to use for the next interval: the estimate, at least `floor`.
    fn cv(&self, floor: f64) -> f64 {
        (self.num / self.den).max(0.0).sqrt().max(floor)
    }

    /// Adds an interval (after it was judged).
    fn add(&mut self, stable: Counts, canary: Counts) {
        for (seen, now) in [(&mut self.stable, stable), (&mut self.canary, canary)] {
            if seen.1 > 0.0 && seen.0 > 0.0 && now.total > 0.0 {
                let m = now.total * seen.0 / seen.1;
                let g = moment_weight(m);
                // The predicted mean is itself estimated from `seen.0` errors: its Poisson
                // variance `m²/seen.0` is not dispersion.
                self.num += g * ((now.events - m).powi(2) - m - m * m / seen.0);
                self.den += g * m * m;
            }
            seen.0 += now.events;
            seen.1 += now.total;
        }
    }

    /// The stable's rate over earlier intervals.
    fn rate(&self) -> Option<f64> {
        (self.stable.1 > 0.0 && self.stable.0 > 0.0).then(|| self.stable.0 / self.stable.1)
    }
}

/// Weight of a version-interval with expected count `m` in the estimating equation
/// `Σ g [(X − m)² − m − m²c²] = 0`: the derivative of the mean of `(X − m)²` in `c²` over its
/// variance, `m² / 2(m + m²c²)²`, up to a constant.
fn moment_weight(m: f64) -> f64 {
    1.0 / (1.0 + m * WEIGHT_CV * WEIGHT_CV).powi(2)
}

/// Sequential comparison of canary and stable event rates.
#[derive(Debug, Clone, PartialEq)]
pub struct RateComparison {
    tracks: Vec<Track>,
    mixture: Mixture,
    jitter: f64,
    dispersion: Dispersion,
    mh: MantelHaenszel,
    stable: Counts,
    canary: Counts,
}

impl RateComparison {
    /// A comparison where a change of the canary's rate in `direction` beyond the relative
    /// `tolerance` is bad; `jitter` is the smallest per-version coefficient of variation of the
    /// error rate between intervals assumed (the estimate from the data is used when larger).
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
            dispersion: Dispersion::new(),
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

        let events = stable.events + canary.events;
        if stable.total > 0.0 && canary.total > 0.0 && events > 0.0 {
            // Everything the null law uses comes from earlier intervals, or from this interval's
            // total, which the test conditions on.
            let law = ConditionalLaw::new(canary.events, events, self.dispersion.cv(self.jitter));
            let past_rate = self.dispersion.rate();
            let (ns, nc) = (stable.total, canary.total);
            let mut cached: Option<(f64, f64, f64, f64)> = None;
            for (j, track) in self.tracks.iter().enumerate() {
                let (rate, log_rho0, log_z0) = match cached {
                    Some((null, rate, rho, z)) if null == track.null_ratio => (rate, rho, z),
                    _ => {
                        let increase = track.ratio > track.null_ratio;
                        let rate = law.null_rate(ns, nc, track.null_ratio, past_rate, increase);
                        let rho = law.log_rho(ns, nc, track.null_ratio, rate);
                        let z = law.log_z(rho);
                        cached = Some((track.null_ratio, rate, rho, z));
                        (rate, rho, z)
                    }
                };
                let log_rho1 = law.log_rho(ns, nc, track.ratio, rate);
                self.mixture.add(j, law.log_lr(log_rho1, log_rho0, log_z0));
            }
        }
        self.mh.add(stable, canary);
        self.dispersion.add(stable, canary);
        self.mixture.commit();
    }

    /// The coefficient of variation per version the next interval will be judged with.
    pub fn dispersion_cv(&self) -> f64 {
        self.dispersion.cv(self.jitter)
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

/// The canary's error count given the interval's total under independent negative binomials
/// with a common shape (binomial when the shape is infinite), as an exponential family in the
/// log-odds `ln ρ`.
struct ConditionalLaw {
    x: f64,
    total: f64,
    /// Events before rounding, for the current rate.
    raw_total: f64,
    shape: Option<f64>,
    /// `ln C(E,x) + ln Γ(x+k) + ln Γ(E−x+k)` without the terms constant in `x`, for x = 0..=E.
    base: Vec<f64>,
}

impl ConditionalLaw {
    fn new(x: f64, total: f64, cv: f64) -> Self {
        let (mut xr, mut er) = (x.round(), total.round());
        if er > MAX_EVENTS {
            xr = (xr * MAX_EVENTS / er).round();
            er = MAX_EVENTS;
        }
        let xr = xr.clamp(0.0, er);
        let shape = (cv > 0.0).then(|| 1.0 / (cv * cv)).filter(|k| *k < 1e8);
        let base = (0..=er as usize)
            .map(|i| {
                let i = i as f64;
                let binomial = -ln_gamma(i + 1.0) - ln_gamma(er - i + 1.0);
                match shape {
                    None => binomial,
                    Some(k) => binomial + ln_gamma(i + k) + ln_gamma(er - i + k),
                }
            })
            .collect();
        Self {
            x: xr,
            total: er,
            raw_total: total,
            shape,
            base,
        }
    }

    /// `ln ρ` when the canary's rate is `ratio` times a stable rate `rate`.
    fn log_rho(&self, ns: f64, nc: f64, ratio: f64, rate: f64) -> f64 {
        let (mu_s, mu_c) = (rate * ns, ratio * rate * nc);
        match self.shape {
            None => (ratio * nc / ns).ln(),
            Some(k) => (mu_c / (k + mu_c)).ln() - (mu_s / (k + mu_s)).ln(),
        }
    }

    /// The stable rate the null law uses: from this interval's total or from the earlier
    /// intervals, whichever gives the canary more expected errors (`more`), or fewer.
    fn null_rate(&self, ns: f64, nc: f64, null_ratio: f64, past: Option<f64>, more: bool) -> f64 {
        let current = self.raw_total / (ns + null_ratio * nc);
        let Some(past) = past else {
            return current;
        };
        let (a, b) = (
            self.log_rho(ns, nc, null_ratio, current),
            self.log_rho(ns, nc, null_ratio, past),
        );
        if (b > a) == more { past } else { current }
    }

    /// `ln Z(ρ)`, the normaliser.
    fn log_z(&self, log_rho: f64) -> f64 {
        log_sum_exp(
            self.base
                .iter()
                .enumerate()
                .map(|(i, b)| b + i as f64 * log_rho),
        )
    }

    /// `ln(P(x | ρ₁) / P(x | ρ₀))`.
    fn log_lr(&self, log_rho1: f64, log_rho0: f64, log_z0: f64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        self.x * (log_rho1 - log_rho0) - (self.log_z(log_rho1) - log_z0)
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

    /// scipy 1.17.1: with `l(x, μ) = nbinom.logpmf(x, 2, 2/(2+μ))`, the law of the canary's
    /// count given a total of 7, `l(x, μ_c) + l(7−x, 5)` normalised over x = 0..=7; at x = 3,
    /// μ_c = 3 against μ_c = 1: 0.6198792209530661. Without over-dispersion it is the binomial:
    /// `binom.logpmf(3, 7, 3/8) - binom.logpmf(3, 7, 1/6)` = 1.2820623588418631.
    #[test]
    fn the_conditional_law_matches_scipy() {
        let lr = |cv: f64| {
            let law = ConditionalLaw::new(3.0, 7.0, cv);
            let rho0 = law.log_rho(5.0, 1.0, 1.0, 1.0);
            law.log_lr(law.log_rho(5.0, 1.0, 3.0, 1.0), rho0, law.log_z(rho0))
        };
        let od = lr(0.5f64.sqrt());
        assert!((od - 0.619_879_220_953_066_1).abs() < 1e-9, "{od}");
        let poisson = lr(0.0);
        assert!(
            (poisson - 1.282_062_358_841_863_1).abs() < 1e-9,
            "{poisson}"
        );
    }

    /// The factor is a likelihood ratio of proper laws: its expectation under the null law is 1.
    #[test]
    fn expected_likelihood_ratio_under_the_null_law_is_one() {
        for cv in [0.0, 0.3, 1.0] {
            let mut total = 0.0;
            for x in 0..=12 {
                let law = ConditionalLaw::new(f64::from(x), 12.0, cv);
                let rho0 = law.log_rho(40.0, 3.0, 1.0, 0.2);
                let z0 = law.log_z(rho0);
                let p0 = (law.base[x as usize] + f64::from(x) * rho0 - z0).exp();
                total += p0 * law.log_lr(law.log_rho(40.0, 3.0, 2.5, 0.2), rho0, z0).exp();
            }
            assert!((total - 1.0).abs() < 1e-9, "cv {cv}: {total}");
        }
    }

    #[test]
    fn the_dispersion_estimate_follows_the_data() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Gamma, Poisson};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for cv in [0.0, 0.5, 1.0] {
            let mut d = Dispersion::new();
            let gamma = Gamma::new(1.0 / (cv * cv), cv * cv).ok();
            let mut draw = |mean: f64| {
                let m = gamma.as_ref().map_or(1.0, |g| g.sample(&mut rng)) * mean;
                if m > 0.0 {
                    Poisson::new(m).unwrap().sample(&mut rng)
                } else {
                    0.0
                }
            };
            for _ in 0..300 {
                d.add(c(draw(20.0), 20_000.0), c(draw(20.0), 20_000.0));
            }
            let est = d.cv(0.0);
            assert!((est - cv).abs() < 0.12, "cv {cv}: estimated {est}");
        }
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
