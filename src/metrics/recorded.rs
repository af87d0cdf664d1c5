//! The recorded observation stream (JSON Lines, one interval a line, cumulative counters), as
//! `demo` and `analyze --record` write it and `replay` reads it.

use serde::{Deserialize, Serialize};

use crate::analysis::{MetricConfig, MetricKind, MetricSample, StepContext};

use super::MetricsError;
use super::counters::VersionCounters;

/// One line of the stream: where the rollout stood and both versions' cumulative counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedInterval {
    /// End of the interval, unix seconds.
    pub t: f64,
    /// Canary weight in percent (0–100).
    pub weight: f64,
    /// Step index.
    pub step: usize,
    /// The step's planned pause is over.
    #[serde(default)]
    pub step_complete: bool,
    /// No step follows this one.
    #[serde(default)]
    pub last_step: bool,
    /// Stable version counters.
    pub stable: VersionCounters,
    /// Canary counters.
    pub canary: VersionCounters,
}

impl RecordedInterval {
    /// Parses one line (`line_no` is 1-based, for the error).
    ///
    /// # Errors
    /// When the line is not valid JSON of this shape, or has impossible values.
    pub fn parse(text: &str, line_no: usize) -> Result<Self, MetricsError> {
        let err = |message: String| MetricsError::Stream {
            line: line_no,
            message,
        };
        let rec: RecordedInterval =
            serde_json::from_str(text).map_err(|e| err(format!("not a recorded interval: {e}")))?;
        if !rec.t.is_finite() {
            return Err(err("t must be a finite unix time in seconds".into()));
        }
        if !(0.0..=100.0).contains(&rec.weight) {
            return Err(err(format!(
                "weight is {}; must be a percentage 0-100",
                rec.weight
            )));
        }
        for (name, v) in [("stable", &rec.stable), ("canary", &rec.canary)] {
            if !(v.requests.is_finite()
                && v.requests >= 0.0
                && v.errors.is_finite()
                && v.errors >= 0.0)
            {
                return Err(err(format!(
                    "{name}: requests and errors must be non-negative numbers"
                )));
            }
        }
        Ok(rec)
    }

    /// The step context of this line.
    pub fn context(&self) -> StepContext {
        StepContext {
            t: self.t,
            step: self.step,
            weight: self.weight,
            step_complete: self.step_complete,
            last_step: self.last_step,
        }
    }

    /// The judge's samples for the interval from `prev` to `self`, one per metric: error-rate
    /// metrics read requests and errors, latency metrics the histogram.
    pub fn samples_since(
        &self,
        prev: &RecordedInterval,
        metrics: &[MetricConfig],
    ) -> Vec<MetricSample> {
        metrics
            .iter()
            .map(|m| match m.kind {
                MetricKind::Value => MetricSample::Missing(
                    "the recorded stream carries requests, errors and latency, not values".into(),
                ),
                MetricKind::ErrorRate => MetricSample::Counts {
                    stable: self.stable.counts_since(Some(&prev.stable)),
                    canary: self.canary.counts_since(Some(&prev.canary)),
                },
                MetricKind::Latency => {
                    let delta =
                        |cur: &VersionCounters, prev: &VersionCounters, name: &str| match &cur
                            .latency
                        {
                            None => Err(format!("the stream has no latency histogram for {name}")),
                            Some(h) => h
                                .delta(prev.latency.as_ref())
                                .map_err(|e| format!("{name}: {e}")),
                        };
                    match (
                        delta(&self.stable, &prev.stable, "stable"),
                        delta(&self.canary, &prev.canary, "canary"),
                    ) {
                        (Ok(stable), Ok(canary)) => MetricSample::Histogram { stable, canary },
                        (Err(e), _) | (_, Err(e)) => MetricSample::Missing(e),
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"t": 1700000010, "weight": 5, "step": 0, "step_complete": false, "last_step": false,
        "stable": {"requests": 950, "errors": 1, "latency": {"buckets": {"0.1": 900, "+Inf": 950}, "sum": 40, "count": 950}},
        "canary": {"requests": 50, "errors": 0, "latency": {"buckets": {"0.1": 48, "+Inf": 50}, "sum": 2, "count": 50}}}"#;

    #[test]
    fn a_design_shaped_line_parses() {
        let rec = RecordedInterval::parse(&LINE.replace('\n', " "), 1).unwrap();
        assert_eq!(rec.weight, 5.0);
        assert_eq!(rec.canary.latency.as_ref().unwrap().count, 50.0);
    }

    #[test]
    fn errors_name_the_line() {
        let err = RecordedInterval::parse("{\"t\": 1}", 7)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 7: "), "{err}");
        let err = RecordedInterval::parse(
            &LINE
                .replace("\"weight\": 5", "\"weight\": 500")
                .replace('\n', " "),
            3,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("weight is 500"), "{err}");
    }
}
