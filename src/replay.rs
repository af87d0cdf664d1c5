//! `replay`: runs the judge over a recorded observation stream, one decision per input line,
//! written and flushed as soon as the line is read (so it can be driven interactively).

use std::io::{BufRead, Write};

use serde::Serialize;

use crate::analysis::{Decision, Judge, Judgement};
use crate::metrics::MetricsError;
use crate::metrics::recorded::RecordedInterval;
use crate::template::Template;

/// Errors of a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading the input failed.
    #[error("reading the stream: {0}")]
    Read(#[source] std::io::Error),
    /// Writing a decision failed.
    #[error("writing a decision: {0}")]
    Write(#[source] std::io::Error),
    /// A line is not a valid recorded interval.
    #[error(transparent)]
    Stream(#[from] MetricsError),
    /// A line's time is before the previous line's.
    #[error(
        "line {line}: t = {t} is before the previous line's t = {previous}; the stream must be in time order"
    )]
    OutOfOrder {
        /// 1-based line number.
        line: usize,
        /// This line's time.
        t: f64,
        /// The previous line's time.
        previous: f64,
    },
    /// The judge rejected the samples (a bug: one sample per metric is built here).
    #[error("line {line}: {source}")]
    Judge {
        /// 1-based line number.
        line: usize,
        /// The judge's error.
        #[source]
        source: crate::analysis::AnalysisError,
    },
}

/// The first line only sets the counters' baseline.
#[derive(Debug, Serialize)]
struct Baseline<'a> {
    t: f64,
    decision: &'static str,
    reason: &'a str,
    step: usize,
    weight: f64,
    metrics: [(); 0],
}

/// What a replay ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaySummary {
    /// Lines read (excluding blank ones).
    pub lines: usize,
    /// The last judgement, if any line after the first was read.
    pub last: Option<Judgement>,
}

impl ReplaySummary {
    /// The final decision, if any.
    pub fn decision(&self) -> Option<Decision> {
        self.last.as_ref().map(|j| j.decision)
    }
}

/// Replays `input` through a fresh judge configured by `template`, writing one JSON decision
/// per line to `out`.
///
/// # Errors
/// On an unreadable input, a malformed or out-of-order line (the error names the line), or a
/// failed write.
pub fn replay(
    template: &Template,
    input: impl BufRead,
    mut out: impl Write,
) -> Result<ReplaySummary, ReplayError> {
    let mut judge = Judge::new(template.judge.clone());
    let mut previous: Option<RecordedInterval> = None;
    let mut summary = ReplaySummary {
        lines: 0,
        last: None,
    };
    for (index, line) in input.lines().enumerate() {
        let line = line.map_err(ReplayError::Read)?;
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 1;
        summary.lines += 1;
        let current = RecordedInterval::parse(&line, line_no)?;
        let text = match &previous {
            None => serde_json::to_string(&Baseline {
                t: current.t,
                decision: Decision::Hold.as_str(),
                reason: "first observation: baseline of the cumulative counters; decisions start with the next line",
                step: current.step,
                weight: current.weight,
                metrics: [],
            }),
            Some(prev) => {
                if current.t < prev.t {
                    return Err(ReplayError::OutOfOrder {
                        line: line_no,
                        t: current.t,
                        previous: prev.t,
                    });
                }
                let samples = current.samples_since(prev, &template.judge.metrics);
                let judgement = judge
                    .observe(current.context(), &samples)
                    .map_err(|source| ReplayError::Judge {
                        line: line_no,
                        source,
                    })?;
                tracing::debug!(
                    line = line_no,
                    step = current.step,
                    weight = current.weight,
                    decision = judgement.decision.as_str(),
                    "judged interval"
                );
                let text = serde_json::to_string(&judgement);
                summary.last = Some(judgement);
                text
            }
        }
        .map_err(|e| ReplayError::Write(std::io::Error::other(e)))?;
        writeln!(out, "{text}").map_err(ReplayError::Write)?;
        out.flush().map_err(ReplayError::Write)?;
        previous = Some(current);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  metrics:
    - {name: errors, kind: errorRate, minSamples: 10}
"#;

    fn line(
        t: f64,
        step: usize,
        complete: bool,
        last: bool,
        stable: (f64, f64),
        canary: (f64, f64),
    ) -> String {
        format!(
            r#"{{"t":{t},"weight":50,"step":{step},"step_complete":{complete},"last_step":{last},"stable":{{"requests":{},"errors":{}}},"canary":{{"requests":{},"errors":{}}}}}"#,
            stable.0, stable.1, canary.0, canary.1
        )
    }

    #[test]
    fn one_decision_per_line_ending_in_promote_for_a_clean_canary() {
        let template = crate::template::parse(TEMPLATE, "t.yaml").unwrap();
        let input = [
            line(0.0, 0, false, true, (0.0, 0.0), (0.0, 0.0)),
            line(10.0, 0, false, true, (100.0, 0.0), (100.0, 0.0)),
            line(20.0, 0, true, true, (200.0, 1.0), (200.0, 1.0)),
        ]
        .join("\n");
        let mut out = Vec::new();
        let summary = replay(&template, input.as_bytes(), &mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["decision"], "hold");
        assert_eq!(lines[1]["decision"], "continue");
        assert_eq!(lines[2]["decision"], "promote");
        assert_eq!(lines[2]["metrics"][0]["name"], "errors");
        assert_eq!(summary.decision(), Some(Decision::Promote));
    }

    #[test]
    fn a_malformed_line_is_reported_with_its_number() {
        let template = crate::template::parse(TEMPLATE, "t.yaml").unwrap();
        let input = format!(
            "{}\n{{not json\n",
            line(0.0, 0, false, false, (0.0, 0.0), (0.0, 0.0))
        );
        let err = replay(&template, input.as_bytes(), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 2: "), "{err}");
    }

    #[test]
    fn time_going_backwards_is_an_error() {
        let template = crate::template::parse(TEMPLATE, "t.yaml").unwrap();
        let input = [
            line(10.0, 0, false, false, (0.0, 0.0), (0.0, 0.0)),
            line(5.0, 0, false, false, (1.0, 0.0), (1.0, 0.0)),
        ]
        .join("\n");
        let err = replay(&template, input.as_bytes(), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("before the previous line"), "{err}");
    }
}
