//! `canary-gate analyze`: the judge over a past window of Prometheus data.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use canary_gate::analysis::Decision;
use canary_gate::analyze::{judge_window, render_text};
use canary_gate::metrics::prometheus_source::PrometheusSource;
use canary_gate::metrics::query::parse_args;
use canary_gate::template;

use super::prometheus_args::PrometheusArgs;
use super::{parse_time, runtime};

/// Flags of `analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Analysis template (YAML).
    #[arg(long, short)]
    pub template: PathBuf,
    /// Template argument NAME=VALUE (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    pub args: Vec<String>,
    /// Window start: unix seconds or RFC 3339.
    #[arg(long)]
    pub from: String,
    /// Window end: unix seconds or RFC 3339.
    #[arg(long)]
    pub to: String,
    /// Write the observation stream (for `replay`) to this file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Print the verdict as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

/// Runs `analyze`; returns the window's decision (the first rollback, else the final one).
pub fn run(a: AnalyzeArgs) -> Result<Decision> {
    let template = template::load(&a.template)?;
    let (from, to) = (parse_time(&a.from)?, parse_time(&a.to)?);
    let args = parse_args(&a.args)?;
    let client = a.prometheus.client()?;
    let source = PrometheusSource::new(&client, &template, &args).map_err(super::source_error)?;
    let intervals = runtime()?.block_on(source.window(from, to))?;
    let verdict = judge_window(&template, from, to, &intervals)?;
    if let Some(path) = &a.record {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        for line in &verdict.stream {
            writeln!(file, "{}", serde_json::to_string(line)?)?;
        }
        file.flush()?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&verdict)?)?;
    } else {
        write!(out, "{}", render_text(&verdict))?;
    }
    Ok(verdict
        .first_rollback
        .as_ref()
        .map_or(verdict.last.decision, |j| j.decision))
}
