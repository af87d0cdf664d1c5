//! The `canary-gate demo` command line: its flags, the runtime, signals and the exit code
//! (0 when the outcome is the scenario's expected one, 1 otherwise, 130 after Ctrl-C, 143
//! after SIGTERM).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use clap::Args;

use super::options::{DemoOptions, SourceChoice};
use super::progress::ProgressMode;
use super::run::run;
use super::{DemoError, Outcome, Scenario, parse_steps};

/// Exit code after SIGINT (Ctrl-C).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code after SIGTERM.
pub const EXIT_TERMINATED: u8 = 143;

/// Canary weights in percent, parsed from `5,10,25,50`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepList(pub Vec<f64>);

fn step_list(text: &str) -> Result<StepList, String> {
    parse_steps(text).map(StepList).map_err(|e| e.to_string())
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. 10s, 500ms, 1m"))
}

/// Flags of `canary-gate demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// What the canary does.
    #[arg(long, value_enum, default_value = "good")]
    pub scenario: Scenario,
    /// Requests per second sent through the router (open loop).
    #[arg(long, default_value_t = 200.0)]
    pub rps: f64,
    /// Canary weights of the steps in percent.
    #[arg(long, default_value = "5,10,25,50", value_parser = step_list)]
    pub steps: StepList,
    /// How long each step lasts before it may advance.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub step_duration: Duration,
    /// Time between observations (and judgements).
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub interval: Duration,
    /// How long a completed step may hold on inconclusive evidence [default: 2 × step duration].
    #[arg(long, value_parser = duration)]
    pub hold_budget: Option<Duration>,
    /// Traffic kept at the final weight after the decision.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub settle: Duration,
    /// Read the counters from this Prometheus, which must scrape the printed ports.
    #[arg(long, value_name = "URL", conflicts_with = "with_prometheus")]
    pub prometheus: Option<String>,
    /// Start a local `prometheus` (from PATH) scraping both instances every second.
    #[arg(long)]
    pub with_prometheus: bool,
    /// The Prometheus binary for --with-prometheus.
    #[arg(long, default_value = "prometheus", value_name = "PATH")]
    pub prometheus_binary: String,
    /// Directory for report.json, report.html and stream.jsonl.
    #[arg(long, default_value = "canary-gate-report", value_name = "DIR")]
    pub report: PathBuf,
    /// Analysis template [default: the built-in analysis-templates/generic-http.yaml].
    #[arg(long, short, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Seed of routing and fault draws [default: from the clock].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Requests in flight at most; a request due beyond it is dropped (and counted).
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Progress display.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Port of the stable instance (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub stable_port: u16,
    /// Port of the canary instance (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub canary_port: u16,
    /// Port of the router (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub router_port: u16,
}

impl DemoArgs {
    /// The run's options.
    pub fn options(&self) -> DemoOptions {
        let source = match (&self.prometheus, self.with_prometheus) {
            (Some(url), _) => SourceChoice::Prometheus(url.clone()),
            (None, true) => SourceChoice::WithPrometheus(self.prometheus_binary.clone()),
            (None, false) => SourceChoice::Scrape,
        };
        DemoOptions {
            scenario: self.scenario,
            rps: self.rps,
            concurrency: self.concurrency,
            steps: self.steps.0.clone(),
            step_duration: self.step_duration,
            interval: self.interval,
            hold_budget: self.hold_budget,
            settle: self.settle,
            source,
            report_dir: Some(self.report.clone()),
            template: self.template.clone(),
            seed: self.seed,
            progress: self.progress,
            ports: [self.stable_port, self.canary_port, self.router_port],
        }
    }
}

/// Runs `canary-gate demo` and returns its exit code.
///
/// # Errors
/// Setup failures (ports, template, Prometheus), an unreadable baseline, an unwritable report.
pub fn main(args: &DemoArgs) -> Result<ExitCode, DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    let signal = Arc::new(AtomicU8::new(0));
    let result = runtime.block_on(run(args.options(), wait_for_signal(signal.clone())));
    runtime.shutdown_timeout(Duration::from_secs(1));
    let result = result?;
    Ok(match result.outcome() {
        Outcome::Interrupted => ExitCode::from(match signal.load(Ordering::Relaxed) {
            0 => EXIT_INTERRUPTED,
            code => code,
        }),
        _ if result.as_expected() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Completes on SIGINT or SIGTERM, storing the exit code that signal calls for.
async fn wait_for_signal(code: Arc<AtomicU8>) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            tracing::warn!("cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        EXIT_INTERRUPTED
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
        EXIT_TERMINATED
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<u8>();
    let received = tokio::select! {
        c = ctrl_c => c,
        c = term => c,
    };
    code.store(received, Ordering::Relaxed);
}
