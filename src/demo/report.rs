//! The demo's report: what happened in every interval (counts per version, weight, step, the
//! judge's verdicts with their evidence), the outcome and the totals of real requests served —
//! written as `report.json`, a self-contained `report.html` and the replayable `stream.jsonl`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::Judgement;
use crate::metrics::counters::VersionCounters;
use crate::metrics::recorded::RecordedInterval;
use crate::rollout::{Phase, Step};

use super::load::LoadCounts;
use super::router::RouterCounts;
use super::{DemoError, Outcome, Scenario};

/// One version over one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VersionStats {
    /// Requests served in the interval.
    pub requests: f64,
    /// Of which errors (5xx).
    pub errors: f64,
    /// `errors / requests`, when there were requests.
    pub error_rate: Option<f64>,
    /// Requests per second.
    pub rps: f64,
    /// Median latency in the interval (seconds, interpolated in the histogram buckets).
    pub p50: Option<f64>,
    /// 99th percentile latency in the interval (seconds).
    pub p99: Option<f64>,
    /// Requests served since the start (cumulative counter).
    pub total_requests: f64,
}

impl VersionStats {
    /// The stats between the cumulative snapshots `prev` and `cur`, `seconds` apart.
    pub fn between(cur: &VersionCounters, prev: &VersionCounters, seconds: f64) -> Self {
        let counts = cur.counts_since(Some(prev));
        let delta = cur
            .latency
            .as_ref()
            .and_then(|h| h.delta(prev.latency.as_ref()).ok());
        Self {
            requests: counts.total,
            errors: counts.events,
            error_rate: counts.rate(),
            rps: if seconds > 0.0 {
                counts.total / seconds
            } else {
                0.0
            },
            p50: delta.as_ref().and_then(|h| h.quantile(0.5)),
            p99: delta.as_ref().and_then(|h| h.quantile(0.99)),
            total_requests: cur.requests,
        }
    }
}

/// One observation interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalRecord {
    /// End of the interval, unix seconds.
    pub t: f64,
    /// Seconds since traffic started.
    pub elapsed: f64,
    /// Step index.
    pub step: usize,
    /// Canary weight during the interval, percent.
    pub weight: f64,
    /// The step's planned pause was over.
    pub step_complete: bool,
    /// No step follows.
    pub last_step: bool,
    /// Stable.
    pub stable: VersionStats,
    /// Canary.
    pub canary: VersionStats,
    /// Why the observation is missing, when it is (the judge held).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// The judge's answer (none for the baseline).
    pub judgement: Option<Judgement>,
    /// The rollout's phase after the decision.
    pub phase: Phase,
    /// The router's canary weight after the decision.
    pub weight_after: f64,
}

/// Traffic after the final decision, at the final weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AfterDecision {
    /// Seconds observed.
    pub seconds: f64,
    /// Canary weight, percent.
    pub weight: f64,
    /// Stable.
    pub stable: VersionStats,
    /// Canary.
    pub canary: VersionStats,
}

/// Requests served by both versions over the whole run, from their own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Served {
    /// Stable requests.
    pub stable: f64,
    /// Stable errors.
    pub stable_errors: f64,
    /// Canary requests.
    pub canary: f64,
    /// Canary errors.
    pub canary_errors: f64,
}

/// Totals of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    /// What the load generator sent and got back.
    pub load: LoadCounts,
    /// What the router forwarded.
    pub router: RouterCounts,
    /// What the services counted.
    pub served: Served,
}

/// The run's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Requests per second.
    pub rps: f64,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// The step plan.
    pub steps: Vec<Step>,
    /// Seconds between observations.
    pub interval_seconds: f64,
    /// Hold budget used by the judge, seconds.
    pub hold_budget_seconds: f64,
    /// Seed of the routing and fault draws.
    pub seed: u64,
    /// The template's name and origin.
    pub template: String,
    /// The judge's α.
    pub alpha: f64,
    /// Metric names in template order.
    pub metrics: Vec<String>,
    /// Where observations came from.
    pub source: String,
}

/// Where the demo's servers listened.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Endpoints {
    /// Stable service.
    pub stable: String,
    /// Canary service.
    pub canary: String,
    /// Router.
    pub router: String,
    /// Prometheus, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Scenario.
    pub scenario: Scenario,
    /// What the scenario does.
    pub scenario_description: String,
    /// The outcome a sound judge reaches.
    pub expected: Outcome,
    /// The outcome.
    pub outcome: Outcome,
    /// `outcome == expected`.
    pub as_expected: bool,
    /// The judge's reason for the final decision.
    pub reason: String,
    /// Seconds after traffic started when the final decision was taken.
    pub decided_at: Option<f64>,
    /// Settings.
    pub settings: Settings,
    /// Endpoints.
    pub endpoints: Endpoints,
    /// Traffic start, unix seconds.
    pub started_at: f64,
    /// Wall time of the whole run, seconds.
    pub wall_seconds: f64,
    /// Every interval, the baseline first.
    pub intervals: Vec<IntervalRecord>,
    /// Traffic after the final decision.
    pub after_decision: Option<AfterDecision>,
    /// Totals.
    pub totals: Totals,
}

/// The files written.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    /// `report.json`.
    pub json: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// `stream.jsonl`.
    pub stream: PathBuf,
}

/// Writes `report.json`, `report.html` and `stream.jsonl` into `dir` (created if needed).
///
/// # Errors
/// [`DemoError::Report`] naming the file.
pub fn write(
    dir: &Path,
    report: &Report,
    stream: &[RecordedInterval],
) -> Result<ReportFiles, DemoError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Report { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let files = ReportFiles {
        json: dir.join("report.json"),
        html: dir.join("report.html"),
        stream: dir.join("stream.jsonl"),
    };
    let json = serde_json::to_string_pretty(report).map_err(|e| DemoError::Report {
        path: files.json.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&files.json, json + "\n").map_err(io_error(&files.json))?;
    std::fs::write(&files.html, super::html::render(report)).map_err(io_error(&files.html))?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&files.stream).map_err(io_error(&files.stream))?,
    );
    for line in stream {
        let text = serde_json::to_string(line).map_err(|e| DemoError::Report {
            path: files.stream.clone(),
            source: std::io::Error::other(e),
        })?;
        writeln!(out, "{text}").map_err(io_error(&files.stream))?;
    }
    out.flush().map_err(io_error(&files.stream))?;
    Ok(files)
}
