//! What a demo run takes and gives: its options (with the defaults of `canary-gate demo`), the
//! choice of observation source, and the result.

use std::path::PathBuf;
use std::time::Duration;

use super::progress::ProgressMode;
use super::report::{Report, ReportFiles};
use super::{Outcome, Scenario};

/// The template used without `--template`.
pub const BUILTIN_TEMPLATE: &str = include_str!("../../analysis-templates/generic-http.yaml");
/// Its name in messages.
pub const BUILTIN_TEMPLATE_NAME: &str = "analysis-templates/generic-http.yaml (built in)";

/// Where observations come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// Scrape both instances' `/metrics` directly.
    Scrape,
    /// Query a running Prometheus (which must scrape the printed ports).
    Prometheus(String),
    /// Start `binary` (normally `prometheus`) for the run.
    WithPrometheus(String),
}

/// Everything a demo run needs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Scenario.
    pub scenario: Scenario,
    /// Requests per second.
    pub rps: f64,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Canary weights of the steps, percent.
    pub steps: Vec<f64>,
    /// Planned duration of each step.
    pub step_duration: Duration,
    /// Time between observations.
    pub interval: Duration,
    /// Hold budget for the judge; `None` = twice the step duration.
    pub hold_budget: Option<Duration>,
    /// Traffic kept at the final weight after the decision.
    pub settle: Duration,
    /// Observation source.
    pub source: SourceChoice,
    /// Report directory; `None` writes nothing.
    pub report_dir: Option<PathBuf>,
    /// Template file; `None` = the built-in generic HTTP template.
    pub template: Option<PathBuf>,
    /// Seed of routing and fault draws; `None` = from the clock.
    pub seed: Option<u64>,
    /// Progress display.
    pub progress: ProgressMode,
    /// Ports (0 = any free one): stable, canary, router.
    pub ports: [u16; 3],
}

impl DemoOptions {
    /// The defaults of `canary-gate demo` for `scenario`: 200 req/s, steps 5/10/25/50 % of 10 s,
    /// 1 s interval, direct scrape, report in `./canary-gate-report`, quiet.
    pub fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            rps: 200.0,
            concurrency: 128,
            steps: vec![5.0, 10.0, 25.0, 50.0],
            step_duration: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            hold_budget: None,
            settle: Duration::from_secs(1),
            source: SourceChoice::Scrape,
            report_dir: Some(PathBuf::from("canary-gate-report")),
            template: None,
            seed: None,
            progress: ProgressMode::Quiet,
            ports: [0; 3],
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct DemoResult {
    /// The report (also written to disk when a directory was given).
    pub report: Report,
    /// The files written.
    pub files: Option<ReportFiles>,
}

impl DemoResult {
    /// The outcome.
    pub fn outcome(&self) -> Outcome {
        self.report.outcome
    }

    /// Whether the outcome is the scenario's expected one.
    pub fn as_expected(&self) -> bool {
        self.report.as_expected
    }
}
