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
    /// A line is longer than [`MAX_LINE_BYTES`].
    #[error(
        "line {line} is longer than {max} bytes; a recorded interval is a few kilobytes — is this the right file?"
    )]
    LineTooLong {
        /// 1-based line number.
        line: usize,
        /// The limit.
        max: usize,
    },
    /// A line is not UTF-8.
    #[error("line {line} is not valid UTF-8 text (byte {at}); the stream is JSON Lines")]
    NotUtf8 {
        /// 1-based line number.
        line: usize,
        /// Offset of the first invalid byte in the line.
        at: usize,
    },
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

/// The longest line read (a recorded interval with a latency histogram is about 2 KB).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Reads the next line of at most [`MAX_LINE_BYTES`] into `buf` (without its line break);
/// `false` at the end of the input.
fn next_line(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    line: usize,
) -> Result<bool, ReplayError> {
    buf.clear();
    let n = std::io::Read::take(&mut *input, MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(ReplayError::Read)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > MAX_LINE_BYTES {
        return Err(ReplayError::LineTooLong {
            line,
            max: MAX_LINE_BYTES,
        });
    }
    Ok(true)
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
    mut input: impl BufRead,
    mut out: impl Write,
) -> Result<ReplaySummary, ReplayError> {
    let mut judge = Judge::new(template.judge.clone());
    let mut previous: Option<RecordedInterval> = None;
    let mut summary = ReplaySummary {
        lines: 0,
        last: None,
    };
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        line_no += 1;
        if !next_line(&mut input, &mut buf, line_no)? {
            break;
        }
        let line = std::str::from_utf8(&buf).map_err(|e| ReplayError::NotUtf8 {
            line: line_no,
            at: e.valid_up_to(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        summary.lines += 1;
        let current = RecordedInterval::parse(line, line_no)?;
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

    #[test]
    fn an_overlong_or_non_utf8_line_is_refused_with_its_number() {
        let template = crate::template::parse(TEMPLATE, "t.yaml").unwrap();
        let first = line(0.0, 0, false, false, (0.0, 0.0), (0.0, 0.0));
        let long = format!("{first}\n{}\n", "x".repeat(MAX_LINE_BYTES + 10));
        let err = replay(&template, long.as_bytes(), Vec::new()).unwrap_err();
        assert!(
            matches!(err, ReplayError::LineTooLong { line: 2, .. }),
            "{err}"
        );
        let mut bad = format!("{first}\n").into_bytes();
        bad.extend_from_slice(b"{\"t\": \xff}\n");
        let err = replay(&template, &bad[..], Vec::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "line 2 is not valid UTF-8 text (byte 6); the stream is JSON Lines"
        );
        // A last line without a line break, and CRLF line ends, are read as usual.
        let text = format!(
            "{first}\r\n{}",
            line(10.0, 0, false, false, (10.0, 0.0), (10.0, 0.0))
        );
        assert_eq!(
            replay(&template, text.as_bytes(), Vec::new())
                .unwrap()
                .lines,
            2
        );
    }
}
