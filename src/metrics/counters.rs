//! Cumulative counters as metric sources expose them, and their per-interval deltas with
//! counter-reset handling (a counter that goes down restarted from zero, as PromQL's `increase`).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::analysis::{Counts, Histogram};

use super::MetricsError;

/// The increase of a counter from `prev` to `cur`; a decrease means the process restarted and
/// the counter began again at zero, so the increase is `cur`.
pub fn counter_delta(prev: f64, cur: f64) -> f64 {
    if cur < prev { cur } else { cur - prev }
}

/// A cumulative latency histogram: `(le, cumulative count)` pairs sorted by `le`, the last one
/// `+Inf`, plus `_sum` and `_count`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CumulativeHistogram {
    /// `(upper bound, observations ≤ bound)`, sorted, ending with `f64::INFINITY`.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of all observations.
    pub sum: f64,
    /// Number of observations (equals the `+Inf` bucket).
    pub count: f64,
}

impl CumulativeHistogram {
    /// Builds one from unsorted `(le, cumulative)` pairs.
    ///
    /// # Errors
    /// Without a `+Inf` bucket, with a non-finite count or a repeated bound.
    pub fn new(mut buckets: Vec<(f64, f64)>, sum: f64, count: f64) -> Result<Self, MetricsError> {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(MetricsError::Histogram(
                "histogram has no +Inf bucket".to_string(),
            ));
        }
        if buckets.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(MetricsError::Histogram(
                "histogram repeats a bucket bound".to_string(),
            ));
        }
        if buckets.iter().any(|b| !b.1.is_finite() || b.1 < 0.0) || !count.is_finite() {
            return Err(MetricsError::Histogram(
                "histogram has a negative or non-finite count".to_string(),
            ));
        }
        Ok(Self {
            buckets,
            sum,
            count,
        })
    }

    /// Finite bucket bounds.
    pub fn bounds(&self) -> Vec<f64> {
        self.buckets
            .iter()
            .map(|b| b.0)
            .filter(|b| b.is_finite())
            .collect()
    }

    /// The observations between `prev` and `self` as per-bucket counts. A decrease of the count
    /// or of any bucket is a reset: the whole of `self` is the increase.
    ///
    /// # Errors
    /// When the two snapshots have different bucket bounds.
    pub fn delta(&self, prev: Option<&CumulativeHistogram>) -> Result<Histogram, MetricsError> {
        let bounds = self.bounds();
        let mut cumulative: Vec<f64> = self.buckets.iter().map(|b| b.1).collect();
        let mut sum = self.sum;
        if let Some(prev) = prev {
            if prev.buckets.len() != self.buckets.len()
                || prev
                    .buckets
                    .iter()
                    .zip(&self.buckets)
                    .any(|(a, b)| a.0 != b.0)
            {
                return Err(MetricsError::Histogram(format!(
                    "bucket bounds changed between snapshots: {:?} → {:?}",
                    prev.bounds(),
                    bounds
                )));
            }
            let reset = self.count < prev.count
                || prev
                    .buckets
                    .iter()
                    .zip(&self.buckets)
                    .any(|(a, b)| b.1 < a.1);
            if !reset {
                for (c, p) in cumulative.iter_mut().zip(&prev.buckets) {
                    *c -= p.1;
                }
                sum -= prev.sum;
            }
        }
        let mut counts = Vec::with_capacity(cumulative.len());
        let mut below = 0.0;
        for c in cumulative {
            counts.push((c - below).max(0.0));
            below = c.max(below);
        }
        Histogram::new(bounds, counts, sum).map_err(|e| MetricsError::Histogram(e.to_string()))
    }
}

impl Serialize for CumulativeHistogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Buckets<'a>(&'a [(f64, f64)]);
        impl Serialize for Buckets<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (le, n) in self.0 {
                    map.serialize_entry(&format_le(*le), n)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("buckets", &Buckets(&self.buckets))?;
        map.serialize_entry("sum", &self.sum)?;
        map.serialize_entry("count", &self.count)?;
        map.end()
    }
}

/// Formats a bucket bound the way Prometheus labels `le` (`+Inf`, `0.005`, `1`).
pub fn format_le(le: f64) -> String {
    if le == f64::INFINITY {
        "+Inf".to_string()
    } else {
        format!("{le}")
    }
}

/// Parses an `le` label value.
///
/// # Errors
/// When it is not a number or `+Inf`.
pub fn parse_le(le: &str) -> Result<f64, MetricsError> {
    match le {
        "+Inf" | "Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        other => other
            .parse::<f64>()
            .ok()
            .filter(|v| !v.is_nan())
            .ok_or_else(|| {
                MetricsError::Histogram(format!("bucket bound {other:?} is not a number"))
            }),
    }
}

impl<'de> Deserialize<'de> for CumulativeHistogram {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            buckets: RawBuckets,
            sum: f64,
            count: f64,
        }
        struct RawBuckets(Vec<(f64, f64)>);
        impl<'de> Deserialize<'de> for RawBuckets {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = RawBuckets;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str(
                            "a map from bucket bound (\"0.005\", …, \"+Inf\") to cumulative count",
                        )
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<RawBuckets, A::Error> {
                        let mut out = Vec::new();
                        while let Some((k, v)) = map.next_entry::<String, f64>()? {
                            out.push((parse_le(&k).map_err(de::Error::custom)?, v));
                        }
                        Ok(RawBuckets(out))
                    }
                }
                d.deserialize_map(V)
            }
        }
        let raw = Raw::deserialize(deserializer)?;
        CumulativeHistogram::new(raw.buckets.0, raw.sum, raw.count).map_err(de::Error::custom)
    }
}

/// Cumulative counters of one version: requests, errors and optionally a latency histogram.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionCounters {
    /// Requests served.
    pub requests: f64,
    /// Requests that failed.
    pub errors: f64,
    /// Latency histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<CumulativeHistogram>,
}

impl VersionCounters {
    /// Requests and errors between `prev` and `self` (resets handled per counter).
    pub fn counts_since(&self, prev: Option<&VersionCounters>) -> Counts {
        let (requests, errors) = match prev {
            Some(p) => (
                counter_delta(p.requests, self.requests),
                counter_delta(p.errors, self.errors),
            ),
            None => (self.requests, self.errors),
        };
        Counts::new(errors, requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(buckets: &[(f64, f64)], sum: f64) -> CumulativeHistogram {
        let count = buckets.last().unwrap().1;
        CumulativeHistogram::new(buckets.to_vec(), sum, count).unwrap()
    }

    #[test]
    fn counter_reset_counts_from_zero() {
        assert_eq!(counter_delta(100.0, 130.0), 30.0);
        assert_eq!(counter_delta(100.0, 7.0), 7.0);
    }

    #[test]
    fn histogram_delta_turns_cumulative_buckets_into_per_bucket_counts() {
        let a = h(&[(0.1, 10.0), (0.5, 15.0), (f64::INFINITY, 16.0)], 2.0);
        let b = h(&[(0.1, 30.0), (0.5, 40.0), (f64::INFINITY, 45.0)], 7.0);
        let d = b.delta(Some(&a)).unwrap();
        assert_eq!(d.bounds, vec![0.1, 0.5]);
        assert_eq!(d.counts, vec![20.0, 5.0, 4.0]);
        assert!((d.sum - 5.0).abs() < 1e-12);
    }

    #[test]
    fn histogram_reset_uses_the_new_snapshot_whole() {
        let a = h(&[(0.1, 10.0), (f64::INFINITY, 16.0)], 2.0);
        let b = h(&[(0.1, 3.0), (f64::INFINITY, 4.0)], 0.5);
        assert_eq!(b.delta(Some(&a)).unwrap().counts, vec![3.0, 1.0]);
    }

    #[test]
    fn changed_bounds_are_reported() {
        let a = h(&[(0.1, 10.0), (f64::INFINITY, 16.0)], 2.0);
        let b = h(&[(0.2, 10.0), (f64::INFINITY, 16.0)], 2.0);
        let err = b.delta(Some(&a)).unwrap_err().to_string();
        assert!(err.contains("bucket bounds changed"), "{err}");
    }

    #[test]
    fn json_round_trip_keeps_numeric_bucket_order() {
        let a = h(
            &[(0.005, 1.0), (0.01, 2.0), (1.0, 3.0), (f64::INFINITY, 4.0)],
            1.5,
        );
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"buckets":{"0.005":1.0,"0.01":2.0,"1":3.0,"+Inf":4.0},"sum":1.5,"count":4.0}"#
        );
        let back: CumulativeHistogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn a_histogram_without_inf_bucket_is_rejected() {
        let err = serde_json::from_str::<CumulativeHistogram>(
            r#"{"buckets":{"0.1":1},"sum":0,"count":1}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("+Inf"), "{err}");
    }
}
