//! Canary-vs-stable latency from histogram buckets: one sequential likelihood ratio over the
//! whole histogram, conditional on the traffic split, against one-sided "slower" alternatives
//! built from the pooled histogram.
//!
//! Within an interval the requests are walked from the fastest bucket up, as in a log-rank test:
//! of the requests still "at risk" (not yet completed) before bucket `k`, a share `π_k` belongs
//! to the canary; under "same latency distribution" the requests completing in bucket `k` are a
//! random draw from them, so the canary's count is hypergeometric with mean `π_k · n_k`
//! (the binomial likelihood ratio used here is conservative for it, Hoeffding 1963). The factors
//! of all buckets and all intervals multiply into one test martingale; each bucket factor is
//! conditioned on the ones before, so no multiplicity correction across bucket bounds is needed.
//!
//! Alternatives are distributions derived from the pooled (both versions) histogram seen so far,
//! which the factors condition on: the pooled latency scaled by `m` ("everything m× slower") and
//! the pooled latency with only its tail above a quantile stretched ("p99 ×1.5, median unchanged").
//! They become per-bucket odds ratios of completing, which tilt the canary's share. Only "slower"
//! shapes are bet on when only an increase is bad, so a faster canary never builds evidence.
//!
//! A tolerance (`canary may be up to 10 % slower`) moves the null to the pooled latency scaled by
//! `1 + tolerance`; that null is composite and its validity approximate (checked by simulation).

use super::observation::Histogram;
use super::sequential::{Factor, Mixture, clamp_share, precision_for_jitter, tilt_share};
use super::verdict::Estimate;
use super::{AnalysisError, Direction};

/// Scale multipliers (relative to the null) of the "everything slower" alternatives.
const SCALES: [f64; 5] = [1.1, 1.25, 1.5, 2.0, 3.0];
/// (quantile, stretch) of the "tail slower" alternatives.
const TAILS: [(f64, f64); 4] = [(0.5, 1.5), (0.5, 2.0), (0.9, 2.0), (0.9, 3.0)];
/// Scale ratios followed for the effect estimate only (no weight in the e-value).
const DISPLAY_SCALES: [f64; 10] = [0.67, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2.0];
/// Share of the reference mixed into each alternative so that no bucket gets probability zero.
const DEFENSIVE: f64 = 0.05;
/// Pseudo-count per bucket in the pooled reference.
const PSEUDO_COUNT: f64 = 0.5;
/// Half-width of the likelihood support interval (χ²₁ 95 % / 2).
const SUPPORT_DROP: f64 = 1.920_729;

/// A latency distribution derived from the reference: scaled, then optionally tail-stretched.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    scale: f64,
    tail: Option<(f64, f64)>,
}

impl Shape {
    fn scale(scale: f64) -> Self {
        Self { scale, tail: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Track {
    null: Shape,
    alt: Shape,
    defensive: bool,
}

/// Sequential comparison of the canary's and stable's latency histograms.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyComparison {
    tracks: Vec<Track>,
    display_from: usize,
    mixture: Mixture,
    jitter: f64,
    pooled: Option<Vec<f64>>,
    stable: Option<Histogram>,
    canary: Option<Histogram>,
}

impl LatencyComparison {
    /// A comparison where the canary being slower (`Increase`) or faster (`Decrease`) than the
    /// stable by more than the relative `tolerance` is bad.
    pub fn new(direction: Direction, tolerance: f64, jitter: f64) -> Self {
        let mut tracks = Vec::new();
        if direction.watches_increase() {
            let null = Shape::scale(1.0 + tolerance);
            for g in SCALES {
                tracks.push(Track {
                    null,
                    alt: Shape::scale(null.scale * g),
                    defensive: true,
                });
            }
            for tail in TAILS {
                tracks.push(Track {
                    null,
                    alt: Shape {
                        scale: null.scale,
                        tail: Some(tail),
                    },
                    defensive: true,
                });
            }
        }
        if direction.watches_decrease() {
            let null = Shape::scale(1.0 / (1.0 + tolerance));
            for g in SCALES {
                tracks.push(Track {
                    null,
                    alt: Shape::scale(null.scale / g),
                    defensive: true,
                });
            }
        }
        let display_from = tracks.len();
        let mut weights = vec![1.0; tracks.len()];
        for m in DISPLAY_SCALES {
            tracks.push(Track {
                null: Shape::scale(1.0),
                alt: Shape::scale(m),
                defensive: false,
            });
            weights.push(0.0);
        }
        Self {
            mixture: Mixture::new(&weights),
            tracks,
            display_from,
            jitter,
            pooled: None,
            stable: None,
            canary: None,
        }
    }

    /// Adds one interval.
    ///
    /// # Errors
    /// When the two histograms, or this interval and earlier ones, have different bucket bounds.
    pub fn update(&mut self, stable: &Histogram, canary: &Histogram) -> Result<(), AnalysisError> {
        if stable.bounds != canary.bounds {
            return Err(AnalysisError::HistogramShape(format!(
                "stable and canary histograms have different bucket bounds: {:?} vs {:?}",
                stable.bounds, canary.bounds
            )));
        }
        accumulate(&mut self.stable, stable)?;
        accumulate(&mut self.canary, canary)?;
        let pooled = self
            .pooled
            .get_or_insert_with(|| vec![PSEUDO_COUNT; stable.counts.len()]);
        for (p, (s, c)) in pooled
            .iter_mut()
            .zip(stable.counts.iter().zip(&canary.counts))
        {
            *p += s + c;
        }
        let reference = Reference::new(&stable.bounds, pooled);
        self.walk_buckets(&reference, stable, canary);
        self.mixture.commit();
        Ok(())
    }

    fn walk_buckets(&mut self, reference: &Reference, stable: &Histogram, canary: &Histogram) {
        let k_finite = stable.bounds.len();
        // Per track: log odds-ratio of completing in each bucket, null and alternative.
        let thetas: Vec<(Vec<f64>, Vec<f64>)> = self
            .tracks
            .iter()
            .map(|t| {
                (
                    reference.log_odds_ratios(t.null, false),
                    reference.log_odds_ratios(t.alt, t.defensive),
                )
            })
            .collect();
        let mut at_risk_canary = canary.count();
        let mut at_risk_stable = stable.count();
        for k in 0..k_finite {
            if at_risk_canary <= 0.0 || at_risk_stable <= 0.0 {
                break;
            }
            let (c, s) = (canary.counts[k], stable.counts[k]);
            let n = c + s;
            if n > 0.0 {
                let share = at_risk_canary / (at_risk_canary + at_risk_stable);
                let mut cached: Option<(f64, Factor)> = None;
                for (j, (null_theta, alt_theta)) in thetas.iter().enumerate() {
                    let factor = match cached {
                        Some((theta, f)) if theta == null_theta[k] => f,
                        _ => {
                            let p0 = tilt_share(share, null_theta[k].exp());
                            let f = Factor::new(c, n, p0, precision_for_jitter(p0, self.jitter));
                            cached = Some((null_theta[k], f));
                            f
                        }
                    };
                    self.mixture
                        .add(j, factor.log_lr(tilt_share(share, alt_theta[k].exp())));
                }
            }
            at_risk_canary -= c;
            at_risk_stable -= s;
        }
    }

    /// The e-process.
    pub fn mixture(&self) -> &Mixture {
        &self.mixture
    }

    /// Cumulative histograms of (stable, canary) over all intervals.
    pub fn totals(&self) -> (Option<&Histogram>, Option<&Histogram>) {
        (self.stable.as_ref(), self.canary.as_ref())
    }

    /// Scale ratio canary/stable: the most likely one on a grid, with a likelihood support interval
    /// (ratios whose log-likelihood is within 1.92 of the best).
    pub fn estimate(&self) -> Option<Estimate> {
        let (s, c) = (self.stable.as_ref()?, self.canary.as_ref()?);
        if s.count() <= 0.0 || c.count() <= 0.0 {
            return None;
        }
        let tracks = &self.mixture.tracks()[self.display_from..];
        let best = tracks.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut value = 1.0;
        let mut low = f64::INFINITY;
        let mut high = 0.0_f64;
        for (m, &ll) in DISPLAY_SCALES.iter().zip(tracks) {
            if ll == best {
                value = *m;
            }
            if ll >= best - SUPPORT_DROP {
                low = low.min(*m);
                high = high.max(*m);
            }
        }
        if low == DISPLAY_SCALES[0] {
            low = 0.0;
        }
        if high == DISPLAY_SCALES[DISPLAY_SCALES.len() - 1] {
            high = f64::INFINITY;
        }
        Some(Estimate {
            quantity: "latency scale ratio canary/stable".into(),
            value,
            low,
            high,
            interval: "likelihood support interval on a grid of scale ratios (display only)".into(),
        })
    }
}

fn accumulate(total: &mut Option<Histogram>, h: &Histogram) -> Result<(), AnalysisError> {
    match total {
        Some(t) => t.add(h),
        None => {
            *total = Some(h.clone());
            Ok(())
        }
    }
}

/// The pooled latency distribution as a piecewise-linear CDF through the bucket bounds.
struct Reference<'a> {
    bounds: &'a [f64],
    cdf: Vec<f64>,
}

impl<'a> Reference<'a> {
    fn new(bounds: &'a [f64], pooled: &[f64]) -> Self {
        let total: f64 = pooled.iter().sum();
        let mut cum = 0.0;
        let cdf = pooled[..bounds.len()]
            .iter()
            .map(|c| {
                cum += c;
                cum / total
            })
            .collect();
        Self { bounds, cdf }
    }

    fn cdf_at(&self, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        match self.bounds.iter().position(|&b| b >= x) {
            None => *self.cdf.last().unwrap_or(&1.0),
            Some(k) => {
                let (lo_b, lo_f) = if k == 0 {
                    (0.0, 0.0)
                } else {
                    (self.bounds[k - 1], self.cdf[k - 1])
                };
                let width = self.bounds[k] - lo_b;
                if width <= 0.0 {
                    self.cdf[k]
                } else {
                    lo_f + (self.cdf[k] - lo_f) * (x - lo_b) / width
                }
            }
        }
    }

    fn inverse(&self, q: f64) -> f64 {
        if q <= 0.0 {
            return 0.0;
        }
        match self.cdf.iter().position(|&f| f >= q) {
            None => *self.bounds.last().unwrap_or(&0.0),
            Some(k) => {
                let (lo_b, lo_f) = if k == 0 {
                    (0.0, 0.0)
                } else {
                    (self.bounds[k - 1], self.cdf[k - 1])
                };
                let height = self.cdf[k] - lo_f;
                if height <= 0.0 {
                    self.bounds[k]
                } else {
                    lo_b + (self.bounds[k] - lo_b) * (q - lo_f) / height
                }
            }
        }
    }

    /// The shape's CDF at `x`.
    fn shape_cdf(&self, shape: Shape, x: f64) -> f64 {
        let scaled = |x: f64| self.cdf_at(x / shape.scale);
        match shape.tail {
            None => scaled(x),
            Some((q, stretch)) => {
                let f = scaled(x);
                if f <= q {
                    f
                } else {
                    let xq = shape.scale * self.inverse(q);
                    scaled(xq + (x - xq) / stretch)
                }
            }
        }
    }

    /// Per finite bucket: `logit(hazard under shape) − logit(hazard under the reference)`.
    fn log_odds_ratios(&self, shape: Shape, defensive: bool) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.bounds.len());
        let (mut prev_g, mut prev_f) = (0.0, 0.0);
        for (k, &b) in self.bounds.iter().enumerate() {
            let f = self.cdf[k];
            let mut g = self.shape_cdf(shape, b);
            if defensive {
                g = (1.0 - DEFENSIVE) * g + DEFENSIVE * f;
            }
            let hazard_g = clamp_share((g - prev_g) / (1.0 - prev_g));
            let hazard_f = clamp_share((f - prev_f) / (1.0 - prev_f));
            out.push(logit(hazard_g) - logit(hazard_f));
            prev_g = g.max(prev_g);
            prev_f = f;
        }
        out
    }
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: [f64; 6] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

    fn hist(counts: [f64; 7]) -> Histogram {
        Histogram::new(BOUNDS.to_vec(), counts.to_vec(), 0.0).unwrap()
    }

    #[test]
    fn identical_shapes_at_any_split_build_no_evidence() {
        let mut cmp = LatencyComparison::new(Direction::Increase, 0.0, 0.0);
        let base = [400.0, 300.0, 200.0, 60.0, 30.0, 8.0, 2.0];
        for _ in 0..10 {
            cmp.update(&hist(base.map(|c| c * 19.0)), &hist(base)).unwrap();
        }
        assert!(cmp.mixture().max_log_e() < 0.1, "{}", cmp.mixture().max_log_e());
        let est = cmp.estimate().unwrap();
        assert_eq!(est.value, 1.0);
    }

    #[test]
    fn a_slower_canary_builds_evidence_and_a_faster_one_does_not() {
        let stable = [4000.0, 3000.0, 2000.0, 600.0, 300.0, 80.0, 20.0];
        // Canary: a tenth of the traffic, shifted one bucket to the right.
        let slower = [0.0, 40.0, 300.0, 400.0, 200.0, 50.0, 10.0];
        let faster = [700.0, 250.0, 50.0, 0.0, 0.0, 0.0, 0.0];
        let mut bad = LatencyComparison::new(Direction::Increase, 0.0, 0.05);
        let mut good = LatencyComparison::new(Direction::Increase, 0.0, 0.05);
        for _ in 0..3 {
            bad.update(&hist(stable), &hist(slower)).unwrap();
            good.update(&hist(stable), &hist(faster)).unwrap();
        }
        assert!(bad.mixture().log_e() > 100f64.ln());
        assert!(good.mixture().max_log_e() < 0.1, "{}", good.mixture().max_log_e());
        assert!(bad.estimate().unwrap().value > 1.0);
        assert!(good.estimate().unwrap().value < 1.0);
    }

    #[test]
    fn a_tail_only_regression_is_seen() {
        // Same fast bulk, but the canary's slowest 10 % are much slower.
        let stable = [5000.0, 3000.0, 1500.0, 400.0, 80.0, 15.0, 5.0];
        let canary = [500.0, 300.0, 100.0, 20.0, 30.0, 30.0, 20.0];
        let mut cmp = LatencyComparison::new(Direction::Increase, 0.0, 0.05);
        for _ in 0..3 {
            cmp.update(&hist(stable), &hist(canary)).unwrap();
        }
        assert!(cmp.mixture().log_e() > 100f64.ln(), "{}", cmp.mixture().log_e());
    }

    #[test]
    fn mismatched_bounds_are_an_error() {
        let mut cmp = LatencyComparison::new(Direction::Increase, 0.0, 0.0);
        let other = Histogram::new(vec![0.1, 1.0], vec![1.0, 1.0, 1.0], 0.0).unwrap();
        let err = cmp.update(&hist([1.0; 7]), &other).unwrap_err();
        assert!(err.to_string().contains("bucket bounds"));
    }

    #[test]
    fn reference_cdf_interpolates_like_histogram_quantile() {
        let bounds = [1.0, 2.0];
        let r = Reference::new(&bounds, &[50.0, 50.0, 0.0]);
        assert!((r.cdf_at(0.5) - 0.25).abs() < 1e-12);
        assert!((r.cdf_at(1.5) - 0.75).abs() < 1e-12);
        assert!((r.inverse(0.75) - 1.5).abs() < 1e-12);
        // A scale of 2 halves the CDF argument.
        assert!((r.shape_cdf(Shape::scale(2.0), 2.0) - 0.5).abs() < 1e-12);
    }
}
