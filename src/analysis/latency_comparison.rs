//! Canary-vs-stable latency from histogram buckets: one sequential likelihood ratio over the
//! whole histogram, conditional on the traffic split, against one-sided "slower" alternatives
//! built from the pooled histogram.
//!
//! Within an interval the requests are walked from the fastest bucket up, as in a log-rank test:
//! of the requests still "at risk" (not yet completed) before bucket `k`, a share `π_k` belongs
//! to the canary; under "same latency distribution" the requests completing in bucket `k` are a
//! random draw from them, so the canary's count is hypergeometric with mean `π_k · n_k`. It is
//! tested as a binomial over the smallest margin of the bucket's 2×2 table (completers,
//! survivors, canary at risk or stable at risk): conservative by Hoeffding (1963) for any margin,
//! and nearly exact when that margin is a small part of the requests at risk. The factors
//! of all buckets and all intervals multiply into one test martingale; each bucket factor is
//! conditioned on the ones before, so no multiplicity correction across bucket bounds is needed.
//!
//! Alternatives are proportional completion odds (Lehmann / log-rank alternatives): in every
//! bucket the canary's odds of completing, given it has not yet, are `ψ` times the stable's, with
//! `ψ < 1` meaning slower; and tail-only versions where `ψ` applies only above the pooled median
//! or p90 ("p99 ×1.5, median unchanged"). They need no interpolation inside buckets, so they hold
//! for any bucket layout. Only "slower" alternatives are bet on when only an increase is bad, so a
//! faster canary never builds evidence. One more alternative is learned: per bucket, the
//! completion-odds ratio seen in the *earlier* intervals (Mantel-Haenszel, shrunk towards 1 by a
//! pseudo-count), clipped to the bad side. Built from the past only, it is predictable, so the
//! product stays a test martingale; it carries half the prior weight and adapts to shapes the
//! fixed grid misses (about 20 % faster on a p99-only regression in the decision-quality bench).
//!
//! A tolerance (`canary may be up to 10 % slower`) moves the null to "latency scaled by
//! `1 + tolerance`", translated into per-bucket completion odds through a log-normal fitted to the
//! pooled histogram (probit regression of the bucket CDF on log-latency; interpolating inside
//! coarse buckets instead exaggerates small shifts about twofold). Every alternative is taken
//! relative to that null. The null is then composite and its validity approximate (checked by
//! simulation); when no log-normal can be fitted (nearly all requests in one bucket) the tolerance
//! is not applied, which errs towards detecting.

use super::observation::Histogram;
use super::sequential::{Factor, Mixture, clamp_share, precision_for_jitter};
use super::verdict::Estimate;
use statrs::distribution::{ContinuousCDF, Normal};

use super::{AnalysisError, Direction};

/// Completion-odds ratios (canary/stable, "slower" side) of the whole-histogram alternatives.
const ODDS: [f64; 5] = [0.9, 0.8, 0.67, 0.5, 0.33];
/// (pooled quantile from whose bucket on the canary is slower, completion-odds ratio) of the
/// tail-only alternatives: a tail regression (p99 ×1.5 at the same median) shows as odds around
/// 0.5 in the median's bucket and 0.25 in the p90's.
const TAILS: [(f64, f64); 7] = [
    (0.5, 0.5),
    (0.5, 0.25),
    (0.9, 0.5),
    (0.9, 0.25),
    (0.9, 0.1),
    (0.99, 0.3),
    (0.99, 0.1),
];
/// Completion-odds ratios followed for the effect estimate only (no weight in the e-value).
const DISPLAY_ODDS: [f64; 11] = [0.33, 0.5, 0.67, 0.8, 0.9, 1.0, 1.11, 1.25, 1.5, 2.0, 3.0];
/// Pseudo-count added to both sides of each bucket's Mantel-Haenszel odds ratio in the learned
/// alternative: shrinks a bucket seen little towards "no difference".
const LEARNED_PSEUDO: f64 = 1.0;
/// Pseudo-count per bucket in the pooled reference.
const PSEUDO_COUNT: f64 = 0.5;
/// Half-width of the likelihood support interval (χ²₁ 95 % / 2).
const SUPPORT_DROP: f64 = 1.920_729;

/// An alternative relative to the null: the canary's completion odds are `odds` times the null's
/// in every bucket from the pooled quantile `from_quantile` up (0 = everywhere).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Track {
    null_scale: f64,
    odds: f64,
    from_quantile: f64,
    /// A learned alternative instead of a fixed one: per bucket the completion-odds ratio seen
    /// in earlier intervals, clipped to the bad side (`true`: slower is bad).
    learned: Option<bool>,
}

/// Sequential comparison of the canary's and stable's latency histograms.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyComparison {
    tracks: Vec<Track>,
    display_from: usize,
    mixture: Mixture,
    jitter: f64,
    pooled: Option<Vec<f64>>,
    /// Per bucket, the Mantel-Haenszel numerator and denominator of the canary/stable
    /// completion-odds ratio over all earlier intervals.
    learned: Vec<(f64, f64)>,
    stable: Option<Histogram>,
    canary: Option<Histogram>,
}

impl LatencyComparison {
    /// A comparison where the canary being slower (`Increase`) or faster (`Decrease`) than the
    /// stable by more than the relative `tolerance` is bad.
    pub fn new(direction: Direction, tolerance: f64, jitter: f64) -> Self {
        let mut tracks = Vec::new();
        if direction.watches_increase() {
            let null_scale = 1.0 + tolerance;
            tracks.extend(ODDS.iter().map(|&odds| Track {
                null_scale,
                odds,
                from_quantile: 0.0,
                learned: None,
            }));
            tracks.extend(TAILS.iter().map(|&(from_quantile, odds)| Track {
                null_scale,
                odds,
                from_quantile,
                learned: None,
            }));
        }
        if direction.watches_decrease() {
            let null_scale = 1.0 / (1.0 + tolerance);
            tracks.extend(ODDS.iter().map(|&odds| Track {
                null_scale,
                odds: 1.0 / odds,
                from_quantile: 0.0,
                learned: None,
            }));
        }
        // The learned tracks carry half of the prior weight, the fixed grid the other half.
        let fixed = tracks.len() as f64;
        let mut weights = vec![1.0; tracks.len()];
        let sides = [
            (direction.watches_increase(), true),
            (direction.watches_decrease(), false),
        ];
        let learned_sides: Vec<bool> = sides.iter().filter(|s| s.0).map(|s| s.1).collect();
        for &slower in &learned_sides {
            tracks.push(Track {
                null_scale: if slower {
                    1.0 + tolerance
                } else {
                    1.0 / (1.0 + tolerance)
                },
                odds: 1.0,
                from_quantile: 0.0,
                learned: Some(slower),
            });
            weights.push(fixed / learned_sides.len() as f64);
        }
        let display_from = tracks.len();
        for odds in DISPLAY_ODDS {
            tracks.push(Track {
                null_scale: 1.0,
                odds,
                from_quantile: 0.0,
                learned: None,
            });
            weights.push(0.0);
        }
        Self {
            mixture: Mixture::new(&weights),
            tracks,
            display_from,
            jitter,
            pooled: None,
            learned: Vec::new(),
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
        // Per track: log odds-ratio of completing in each bucket, null and alternative, relative
        // to "same distribution".
        let mut null_cache: Option<(f64, Vec<f64>)> = None;
        let thetas: Vec<(Vec<f64>, Vec<f64>)> = self
            .tracks
            .iter()
            .map(|t| {
                let null = match &null_cache {
                    Some((scale, theta)) if *scale == t.null_scale => theta.clone(),
                    _ => {
                        let theta = reference.scale_log_odds_ratios(t.null_scale);
                        null_cache = Some((t.null_scale, theta.clone()));
                        theta
                    }
                };
                let alt = match t.learned {
                    Some(slower) => null
                        .iter()
                        .enumerate()
                        .map(|(k, th)| {
                            let seen = self.learned.get(k).map_or(0.0, |(num, den)| {
                                ((num + LEARNED_PSEUDO) / (den + LEARNED_PSEUDO)).ln()
                            });
                            if slower { seen.min(*th) } else { seen.max(*th) }
                        })
                        .collect(),
                    None => {
                        let from = reference.bucket_of_quantile(t.from_quantile);
                        null.iter()
                            .enumerate()
                            .map(|(k, th)| if k >= from { th + t.odds.ln() } else { *th })
                            .collect()
                    }
                };
                (null, alt)
            })
            .collect();
        let mut at_risk_canary = canary.count();
        let mut at_risk_stable = stable.count();
        if self.learned.len() < k_finite {
            self.learned.resize(k_finite, (0.0, 0.0));
        }
        let mut seen = vec![(0.0, 0.0); k_finite];
        for k in 0..k_finite {
            if at_risk_canary <= 0.0 || at_risk_stable <= 0.0 {
                break;
            }
            let (c, s) = (canary.counts[k], stable.counts[k]);
            let completed = c + s;
            let at_risk = at_risk_canary + at_risk_stable;
            let survived = at_risk - completed;
            if completed > 0.0 && survived > 0.0 {
                // The canary's count in this bucket's 2×2 table is hypergeometric, which is
                // symmetric in its margins; a binomial over a margin of m trials out of the
                // population overstates its variance by 1/(1 − m/population). Use the smallest
                // margin: the canary's at-risk requests at low weights, otherwise the completers
                // or the survivors (Hoeffding's bound holds for each).
                let margins = [completed, survived, at_risk_canary, at_risk_stable];
                let smallest = (0..4)
                    .min_by(|&a, &b| margins[a].total_cmp(&margins[b]))
                    .unwrap_or(0);
                let (x, n) = match smallest {
                    0 => (c, completed),
                    1 => (at_risk_canary - c, survived),
                    2 => (c, at_risk_canary),
                    _ => (s, at_risk_stable),
                };
                let share = |theta: f64| {
                    let canary_completed =
                        cornfield(at_risk_canary, at_risk_stable, completed, theta.exp());
                    match smallest {
                        0 => canary_completed / completed,
                        1 => (at_risk_canary - canary_completed) / survived,
                        2 => canary_completed / at_risk_canary,
                        _ => (completed - canary_completed) / at_risk_stable,
                    }
                };
                let mut cached: Option<(f64, Factor)> = None;
                for (j, (null_theta, alt_theta)) in thetas.iter().enumerate() {
                    let factor = match cached {
                        Some((theta, f)) if theta == null_theta[k] => f,
                        _ => {
                            let p0 = share(null_theta[k]);
                            let f = Factor::new(x, n, p0, precision_for_jitter(p0, self.jitter));
                            cached = Some((null_theta[k], f));
                            f
                        }
                    };
                    self.mixture.add(j, factor.log_lr(share(alt_theta[k])));
                }
            }
            if at_risk > 0.0 {
                seen[k] = (
                    c * (at_risk_stable - s) / at_risk,
                    s * (at_risk_canary - c) / at_risk,
                );
            }
            at_risk_canary -= c;
            at_risk_stable -= s;
        }
        // Only now, so that this interval's alternative was built from earlier ones alone.
        for (acc, (num, den)) in self.learned.iter_mut().zip(seen) {
            acc.0 += num;
            acc.1 += den;
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

    /// Completion-odds ratio canary/stable (below 1: the canary is slower): the most likely one
    /// on a grid, with a likelihood support interval (ratios within 1.92 log-likelihood of it).
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
        for (odds, &ll) in DISPLAY_ODDS.iter().zip(tracks) {
            if ll == best {
                value = *odds;
            }
            if ll >= best - SUPPORT_DROP {
                low = low.min(*odds);
                high = high.max(*odds);
            }
        }
        if low == DISPLAY_ODDS[0] {
            low = 0.0;
        }
        if high == DISPLAY_ODDS[DISPLAY_ODDS.len() - 1] {
            high = f64::INFINITY;
        }
        Some(Estimate {
            quantity:
                "completion-odds ratio canary/stable per bucket (1 = same, below 1 = canary slower)"
                    .into(),
            value,
            low,
            high,
            interval: "likelihood support interval on a grid (display only)".into(),
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

    /// The bucket that holds the pooled `q`-quantile (its upper bound's CDF reaches `q`).
    fn bucket_of_quantile(&self, q: f64) -> usize {
        self.cdf
            .iter()
            .position(|&f| f >= q)
            .unwrap_or(self.bounds.len())
    }

    /// A log-normal `(μ, σ)` fitted to the bucket CDF by least squares of `Φ⁻¹(F)` on
    /// `ln(bound)`, using bounds with `F` in (0.005, 0.995); `None` with fewer than two.
    fn lognormal_fit(&self) -> Option<(f64, f64)> {
        let normal = Normal::standard();
        let points: Vec<(f64, f64)> = self
            .bounds
            .iter()
            .zip(&self.cdf)
            .filter(|(b, f)| **b > 0.0 && **f > 0.005 && **f < 0.995)
            .map(|(b, f)| (b.ln(), normal.inverse_cdf(*f)))
            .collect();
        if points.len() < 2 {
            return None;
        }
        let n = points.len() as f64;
        let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
        let my = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        if sxx <= 0.0 || sxy <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let sigma = 1.0 / slope;
        let mu = mx - my / slope;
        Some((mu, sigma))
    }

    /// Per finite bucket: `logit(hazard when latency is scaled by s) − logit(hazard)`, from the
    /// fitted log-normal; all zeros for `s = 1` or without a fit.
    fn scale_log_odds_ratios(&self, scale: f64) -> Vec<f64> {
        let zeros = vec![0.0; self.bounds.len()];
        if scale == 1.0 {
            return zeros;
        }
        let Some((mu, sigma)) = self.lognormal_fit() else {
            return zeros;
        };
        let normal = Normal::standard();
        let cdf = |x: f64, mu: f64| {
            if x <= 0.0 {
                0.0
            } else {
                normal.cdf((x.ln() - mu) / sigma)
            }
        };
        let mut out = Vec::with_capacity(self.bounds.len());
        let (mut prev_g, mut prev_f) = (0.0, 0.0);
        for &b in self.bounds {
            let f = cdf(b, mu);
            let g = cdf(b, mu + scale.ln());
            let hazard_g = clamp_share((g - prev_g) / (1.0 - prev_g));
            let hazard_f = clamp_share((f - prev_f) / (1.0 - prev_f));
            out.push(logit(hazard_g) - logit(hazard_f));
            prev_g = g;
            prev_f = f;
        }
        out
    }
}

/// Cornfield's approximation to the mean of Fisher's noncentral hypergeometric distribution:
/// of `completed` requests drawn from `canary + stable` at risk, how many are the canary's when
/// the canary's odds of completing are `odds` times the stable's. Solves
/// `x (stable − completed + x) = odds (canary − x)(completed − x)` for the root in range.
fn cornfield(canary: f64, stable: f64, completed: f64, odds: f64) -> f64 {
    let b = stable - completed + odds * (canary + completed);
    let disc = b * b + 4.0 * (1.0 - odds) * odds * canary * completed;
    let x = 2.0 * odds * canary * completed / (b + disc.max(0.0).sqrt());
    x.clamp((completed - stable).max(0.0), completed.min(canary))
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
            cmp.update(&hist(base.map(|c| c * 19.0)), &hist(base))
                .unwrap();
        }
        assert!(
            cmp.mixture().max_log_e() < 0.1,
            "{}",
            cmp.mixture().max_log_e()
        );
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
        assert!(
            good.mixture().max_log_e() < 0.1,
            "{}",
            good.mixture().max_log_e()
        );
        assert!(bad.estimate().unwrap().value < 1.0);
        assert!(good.estimate().unwrap().value > 1.0);
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
        assert!(
            cmp.mixture().log_e() > 100f64.ln(),
            "{}",
            cmp.mixture().log_e()
        );
    }

    /// Cornfield's equation at ψ = 1 gives the central mean; at ψ = 4 with margins (20, 30, 25)
    /// the root of x(5+x) = 4(20−x)(25−x) in [0, 20] is 13.980209653202763
    /// (`numpy.roots([3, -185, 2000])` = [47.686…, 13.980…]).
    #[test]
    fn cornfield_solves_the_noncentral_mean_equation() {
        assert!((cornfield(20.0, 30.0, 25.0, 1.0) - 10.0).abs() < 1e-12);
        let x = cornfield(20.0, 30.0, 25.0, 4.0);
        assert!(
            (x * (5.0 + x) - 4.0 * (20.0 - x) * (25.0 - x)).abs() < 1e-9,
            "{x}"
        );
        assert!((x - 13.980_209_653_202_763).abs() < 1e-9, "{x}");
    }

    #[test]
    fn mismatched_bounds_are_an_error() {
        let mut cmp = LatencyComparison::new(Direction::Increase, 0.0, 0.0);
        let other = Histogram::new(vec![0.1, 1.0], vec![1.0, 1.0, 1.0], 0.0).unwrap();
        let err = cmp.update(&hist([1.0; 7]), &other).unwrap_err();
        assert!(err.to_string().contains("bucket bounds"));
    }

    #[test]
    fn the_log_normal_fit_recovers_median_and_sigma_from_buckets() {
        // Bucket CDF of LogNormal(ln 0.05, 0.6) at the default bounds (scipy 1.17.1
        // `lognorm(s=0.6, scale=0.05).cdf(bounds)`), as cumulative counts per million.
        let bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
        let cdf = [
            62.0,
            3_655.0,
            123_995.0,
            500_000.0,
            876_005.0,
            996_345.0,
            999_938.0,
            1_000_000.0,
        ];
        let mut counts = vec![cdf[0]];
        counts.extend(cdf.windows(2).map(|w| w[1] - w[0]));
        counts.push(0.0);
        let r = Reference::new(&bounds, &counts);
        let (mu, sigma) = r.lognormal_fit().unwrap();
        assert!((mu.exp() - 0.05).abs() < 0.001, "median {}", mu.exp());
        assert!((sigma - 0.6).abs() < 0.01, "sigma {sigma}");
        assert_eq!(r.bucket_of_quantile(0.0), 0);
        assert_eq!(r.bucket_of_quantile(0.5), 3);
        assert_eq!(r.bucket_of_quantile(0.9), 5);
        // 5 % slower: the odds of completing in the (0.05, 0.1] bucket drop by about 9 %.
        let theta = r.scale_log_odds_ratios(1.05);
        assert!((theta[4] + 0.09).abs() < 0.01, "{theta:?}");
        assert!(r.scale_log_odds_ratios(1.0).iter().all(|t| *t == 0.0));
    }
}
