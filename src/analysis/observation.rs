//! What the judge reads: per-interval counts and latency histograms of both versions.
//!
//! Counts are `f64` because Prometheus' `increase()` extrapolates and returns fractional
//! counts; every formula in the judge uses the continuous extension (log-gamma) and accepts them.

use serde::{Deserialize, Serialize};

use super::AnalysisError;

/// Event counts of one version over one interval: `events` out of `total`
/// (errors out of requests, or requests slower than a bound out of all requests).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Requests (or other trials) that had the event.
    pub events: f64,
    /// All requests (trials) in the interval.
    pub total: f64,
}

impl Counts {
    /// Counts with events capped at `total` (scrape skew can make errors exceed requests for one
    /// interval). Non-finite or negative input is kept as invalid (NaN), never clamped into a
    /// plausible number: see [`Counts::is_valid`].
    pub fn new(events: f64, total: f64) -> Self {
        if !(total.is_finite() && total >= 0.0 && events.is_finite() && events >= 0.0) {
            return Self {
                events: f64::NAN,
                total: f64::NAN,
            };
        }
        Self {
            events: events.min(total),
            total,
        }
    }

    /// Whether both counts are finite and non-negative.
    pub fn is_valid(&self) -> bool {
        self.events.is_finite() && self.total.is_finite() && self.events >= 0.0 && self.total >= 0.0
    }

    /// The event rate, or `None` without trials.
    pub fn rate(&self) -> Option<f64> {
        (self.total > 0.0).then(|| self.events / self.total)
    }
}

/// A latency histogram over one interval, with per-bucket (non-cumulative) counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Finite upper bounds (`le`), strictly increasing, in the metric's unit; the `+Inf` bucket is
    /// implicit.
    pub bounds: Vec<f64>,
    /// Observations per bucket: `bounds.len() + 1` entries, the last one above the last bound.
    pub counts: Vec<f64>,
    /// Sum of the observed values (for the mean), as the exposition's `_sum`.
    pub sum: f64,
}

impl Histogram {
    /// Builds a histogram from per-bucket counts, checking the shape.
    ///
    /// # Errors
    /// When the bounds are not finite and strictly increasing, or `counts` is not one longer.
    pub fn new(bounds: Vec<f64>, counts: Vec<f64>, sum: f64) -> Result<Self, AnalysisError> {
        if counts.len() != bounds.len() + 1 {
            return Err(AnalysisError::HistogramShape(format!(
                "{} bucket counts for {} finite bounds (expected {})",
                counts.len(),
                bounds.len(),
                bounds.len() + 1
            )));
        }
        if bounds.iter().any(|b| !b.is_finite())
            || bounds
                .windows(2)
                .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
        {
            return Err(AnalysisError::HistogramShape(format!(
                "bucket bounds must be finite and strictly increasing, got {bounds:?}"
            )));
        }
        if counts.iter().any(|c| !c.is_finite() || *c < 0.0) {
            return Err(AnalysisError::HistogramShape(
                "bucket counts must be finite and non-negative".to_string(),
            ));
        }
        Ok(Self {
            bounds,
            counts,
            sum,
        })
    }

    /// An empty histogram with these bounds.
    pub fn empty(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: vec![0.0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    /// All observations.
    pub fn count(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// Adds another histogram with the same bounds.
    ///
    /// # Errors
    /// When the bounds differ.
    pub fn add(&mut self, other: &Histogram) -> Result<(), AnalysisError> {
        if self.bounds != other.bounds {
            return Err(AnalysisError::HistogramShape(format!(
                "bucket bounds differ: {:?} vs {:?}",
                self.bounds, other.bounds
            )));
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        Ok(())
    }

    /// Observations above `bound` (which must be one of the bounds; otherwise the largest bound
    /// below it is used, which counts more requests as slow — the safe side for a gate).
    pub fn count_above(&self, bound: f64) -> Counts {
        let idx = self.bounds.iter().rposition(|&b| b <= bound);
        let above: f64 = match idx {
            Some(i) => self.counts[i + 1..].iter().sum(),
            None => self.count(),
        };
        Counts::new(above, self.count())
    }

    /// The `q`-quantile by linear interpolation inside the bucket, the way PromQL's
    /// `histogram_quantile` estimates it (first bucket starts at 0; a quantile in the `+Inf`
    /// bucket reports the last finite bound). `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 || self.bounds.is_empty() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut cum = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            if i == self.bounds.len() {
                return self.bounds.last().copied();
            }
            if cum + c >= rank && c > 0.0 {
                let lo = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let hi = self.bounds[i];
                return Some(lo + (hi - lo) * (rank - cum) / c);
            }
            cum += c;
        }
        self.bounds.last().copied()
    }
}

/// One metric of one interval, for both versions.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricSample {
    /// Event counts (error rate, a generic ratio, requests above a bound).
    Counts {
        /// The stable version.
        stable: Counts,
        /// The canary.
        canary: Counts,
    },
    /// Latency histograms with identical bounds.
    Histogram {
        /// The stable version.
        stable: Histogram,
        /// The canary.
        canary: Histogram,
    },
    /// A single value per version (a gauge or a computed value, e.g. memory in bytes).
    Value {
        /// The stable version's value, if it has one.
        stable: Option<f64>,
        /// The canary's value.
        canary: f64,
    },
    /// No usable data for this interval; the text says why (shown in the verdict).
    Missing(String),
}

/// One interval of a window of observations: every metric's sample for the interval that ends
/// at `t`, in the template's metric order — what a metric source returns and the judge reads.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowInterval {
    /// End of the interval, unix seconds.
    pub t: f64,
    /// One sample per metric, in template order.
    pub samples: Vec<MetricSample>,
}

/// Where the rollout stands when an interval ends: what the decision may do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepContext {
    /// End of the interval, unix seconds.
    pub t: f64,
    /// Index of the current step.
    pub step: usize,
    /// Canary traffic weight in percent (0–100) as configured for the step.
    pub weight: f64,
    /// The step's planned pause is over.
    pub step_complete: bool,
    /// No step follows this one.
    pub last_step: bool,
}
