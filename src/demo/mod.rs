//! `canary-gate demo`: a whole canary run for real on loopback, no cluster.
//!
//! Two instances of a small HTTP service ([`service`]) — stable and canary — expose
//! `http_requests_total{code,version}` and `http_request_duration_seconds{version}` at
//! `/metrics` and inject faults (error probability, log-normal latency) that a [`scenario`]
//! changes over time. A weighted reverse proxy ([`router`]) sends each request independently to
//! the canary with the step's weight; a load generator ([`load`]) drives real HTTP requests
//! through it, open loop. Every interval the orchestration ([`run`]) reads both versions'
//! cumulative counters ([`source`]: a direct scrape of `/metrics`, or a Prometheus that scrapes
//! them, possibly one started here by [`local_prometheus`]), records them as a
//! [`RecordedInterval`](crate::metrics::recorded::RecordedInterval), hands the interval's delta
//! to the real [`Judge`](crate::analysis::Judge) and lets the shared step machine
//! ([`crate::rollout`]) act on the decision: advance, hold, promote (router weight 100 %) or roll
//! back (0 %). [`progress`] shows it live; at the end everything is stopped and [`report`] writes
//! `report.json`, a self-contained `report.html` ([`html`], [`svg`]) and the replayable
//! `stream.jsonl`. [`options`] holds what a run takes and gives; [`cli`] is the command line entry
//! point (Ctrl-C → exit code 130). Every server binds `127.0.0.1` and is shut down at the end, on
//! an error and on an interrupt alike.

pub mod cli;
mod finish;
pub mod html;
pub mod load;
pub mod local_prometheus;
pub mod options;
pub mod progress;
pub mod report;
pub mod rng;
pub mod router;
pub mod run;
pub mod scenario;
pub mod server;
pub mod service;
pub mod source;
pub mod svg;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use options::{DemoOptions, DemoResult, SourceChoice};
pub use run::run;
pub use scenario::Scenario;

/// The two versions the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    /// The version currently serving.
    Stable,
    /// The new version under test.
    Canary,
}

impl Version {
    /// The value of the `version` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Stable => "stable",
            Version::Canary => "canary",
        }
    }
}

/// How a demo run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The canary took all traffic.
    Promote,
    /// All traffic went back to stable.
    Rollback,
    /// The hold budget ran out and the template's policy waits for a human.
    Paused,
    /// Stopped by a signal before a decision.
    Interrupted,
}

impl Outcome {
    /// Lowercase name, as in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Promote => "promote",
            Outcome::Rollback => "rollback",
            Outcome::Paused => "paused",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// Errors of the demo. Each names what it was doing: which port, which URL, which file.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A command-line value is not usable.
    #[error("{0}")]
    Usage(String),
    /// The analysis template cannot be used.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// The step plan is invalid.
    #[error("step plan: {0}")]
    Plan(#[from] crate::rollout::PlanError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A loopback server could not bind its port.
    #[error("cannot bind the {role} server to {addr}: {source}")]
    Bind {
        /// Which server (`stable service`, `router`, …).
        role: String,
        /// The address asked for.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP client could not be built.
    #[error("cannot build the HTTP client for the {role}: {detail}")]
    Client {
        /// Who needs it.
        role: String,
        /// The builder's error.
        detail: String,
    },
    /// The first observation (the counters' baseline) could not be read.
    #[error("cannot read the baseline observation from {origin} within {}: {detail}",
        humantime::format_duration(*waited))]
    Baseline {
        /// Where it was read from (URLs).
        origin: String,
        /// How long it was retried.
        waited: Duration,
        /// The last error.
        detail: String,
    },
    /// `--with-prometheus` but no `prometheus` binary.
    #[error(
        "--with-prometheus needs a `prometheus` binary on PATH ({binary} not found: {detail}); install it (Debian: apt-get install prometheus) or pass --prometheus URL, or drop the flag to scrape /metrics directly"
    )]
    PrometheusNotFound {
        /// The binary looked for.
        binary: String,
        /// The spawn error.
        detail: String,
    },
    /// The local Prometheus could not be prepared, started or did not become ready.
    #[error("local prometheus at {url}: {detail}")]
    PrometheusStart {
        /// Its URL.
        url: String,
        /// What went wrong (with the end of its log when available).
        detail: String,
    },
    /// The Prometheus client could not be configured.
    #[error("prometheus at {url}: {detail}")]
    PrometheusClient {
        /// Its URL.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// The judge rejected its input (a bug: one sample per metric is built).
    #[error("judge: {0}")]
    Judge(#[from] crate::analysis::AnalysisError),
    /// Writing the report failed.
    #[error("cannot write the report {}: {source}", path.display())]
    Report {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Parses a step list such as `5,10,25,50` (canary weights in percent, strictly increasing, each
/// in (0, 100]); a trailing `%` on a weight is accepted.
///
/// # Errors
/// [`DemoError::Usage`] naming the bad entry and the expected form.
pub fn parse_steps(text: &str) -> Result<Vec<f64>, DemoError> {
    let usage = |what: String| {
        DemoError::Usage(format!(
            "--steps {text:?}: {what}; expected comma-separated canary weights in percent, increasing, e.g. 5,10,25,50"
        ))
    };
    if text.trim().is_empty() {
        return Err(usage("no step given".into()));
    }
    let mut steps: Vec<f64> = Vec::new();
    for (i, raw) in text.split(',').enumerate() {
        let item = raw.trim();
        let number = item.strip_suffix('%').unwrap_or(item).trim();
        let weight: f64 = number
            .parse()
            .map_err(|_| usage(format!("step {} ({item:?}) is not a number", i + 1)))?;
        if !(weight.is_finite() && weight > 0.0 && weight <= 100.0) {
            return Err(usage(format!(
                "step {} is {weight}; a weight must be above 0 and at most 100",
                i + 1
            )));
        }
        if let Some(&last) = steps.last()
            && weight <= last
        {
            return Err(usage(format!(
                "step {} ({weight}) is not above the previous step ({last})",
                i + 1
            )));
        }
        steps.push(weight);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_with_spaces_and_percent_signs() {
        assert_eq!(
            parse_steps("5, 10%,25,50").unwrap(),
            vec![5.0, 10.0, 25.0, 50.0]
        );
    }

    #[test]
    fn bad_steps_name_the_entry() {
        for (text, needle) in [
            ("", "no step"),
            ("5,x", "step 2 (\"x\") is not a number"),
            ("5,0", "step 2 is 0"),
            ("5,150", "at most 100"),
            ("10,5", "not above the previous"),
            ("5,,10", "step 2"),
        ] {
            let err = parse_steps(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
