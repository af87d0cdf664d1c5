//! `canary-gate advise`: how long each canary step must last to catch a regression, from the
//! traffic Prometheus saw (see `canary_gate::advise` for the method).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use canary_gate::advise::{Effect, Study, Traffic, advise};
use canary_gate::analysis::MetricSample;
use canary_gate::metrics::prometheus_source::PrometheusSource;
use canary_gate::metrics::query::parse_args;
use canary_gate::template;

use super::prometheus_args::PrometheusArgs;
use super::{parse_time, runtime};

/// Flags of `advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// Analysis template (YAML): its error-rate metric's queries read the traffic, its judge is
    /// simulated.
    #[arg(long, short)]
    pub template: PathBuf,
    /// Template argument NAME=VALUE (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    pub args: Vec<String>,
    /// The regression to catch: `+1pt` (the canary fails 1 percentage point more requests) or
    /// `x1.5` (1.5 times the stable's error rate).
    #[arg(long, default_value = "+1pt")]
    pub effect: Effect,
    /// Share of rollouts the step must catch it in.
    #[arg(long, default_value_t = 0.8)]
    pub power: f64,
    /// Canary weights of the steps, percent, comma-separated.
    #[arg(long, default_value = "5,10,25,50", value_delimiter = ',')]
    pub steps: Vec<f64>,
    /// The traffic of the last WINDOW up to `--to` (default now).
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// End of the traffic window: unix seconds or RFC 3339 (default now).
    #[arg(long)]
    pub to: Option<String>,
    /// Longest step considered.
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    pub horizon: Duration,
    /// Simulated rollouts per step.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

/// Runs `advise`.
pub fn run(a: AdviseArgs) -> Result<()> {
    let template = template::load(&a.template)?;
    let args = parse_args(&a.args)?;
    let to = match &a.to {
        Some(t) => parse_time(t)?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64(),
    };
    let from = to - a.window.as_secs_f64();
    let Some(metric) = template
        .judge
        .metrics
        .iter()
        .position(|m| m.kind == canary_gate::analysis::MetricKind::ErrorRate)
    else {
        bail!(
            "template {} has no errorRate metric, whose queries tell the traffic and the error rate",
            template.name()
        );
    };
    let client = a.prometheus.client()?;
    let source = PrometheusSource::new(&client, &template, &args).map_err(super::source_error)?;
    let intervals = runtime()?.block_on(source.window(from, to))?;
    // Both versions' requests are the service's traffic; the stable's errors its error rate.
    let (mut requests, mut stable_errors, mut stable_requests) = (0.0, 0.0, 0.0);
    for interval in &intervals {
        if let Some(MetricSample::Counts { stable, canary }) = interval.samples.get(metric) {
            for c in [stable, canary] {
                if c.total.is_finite() && c.total > 0.0 {
                    requests += c.total;
                }
            }
            if stable.total.is_finite() && stable.events.is_finite() && stable.total > 0.0 {
                stable_requests += stable.total;
                stable_errors += stable.events;
            }
        }
    }
    if stable_requests <= 0.0 {
        bail!(
            "no stable traffic from {from:.0} to {to:.0}: the template's requests query returned nothing for version {:?}; check --arg and the window",
            "stable"
        );
    }
    let traffic = Traffic {
        rps: requests / (to - from),
        error_rate: stable_errors / stable_requests,
    };
    let study = Study {
        effect: a.effect,
        weights: a.steps.clone(),
        power: a.power,
        horizon: a.horizon.as_secs_f64(),
        runs: a.runs,
        interval: template.interval.as_secs_f64(),
    };
    let advice = advise(&template.judge, traffic, &study)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "traffic  {:.2} req/s in all, stable error rate {:.3} % (the last {} of template {})",
        traffic.rps,
        traffic.error_rate * 100.0,
        humantime::format_duration(a.window),
        template.name()
    )?;
    writeln!(
        out,
        "catch    {} on the canary in {:.0} % of rollouts; alpha {} (the template's); {} simulated rollouts per step",
        a.effect,
        a.power * 100.0,
        template.judge.alpha,
        a.runs
    )?;
    writeln!(
        out,
        "{:>7}  {:>18}  {:>14}  {:>12}  {:>12}  {:>9}",
        "weight", "step must last", "median catch", "Wald bound", "bad requests", "caught"
    )?;
    let dur = |s: Option<f64>| {
        s.map_or("—".to_string(), |s| {
            humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string()
        })
    };
    for s in &advice {
        writeln!(
            out,
            "{:>6}%  {:>18}  {:>14}  {:>12}  {:>12}  {:>9}",
            s.weight,
            s.seconds.map_or_else(
                || format!("> {}", humantime::format_duration(a.horizon)),
                |v| dur(Some(v))
            ),
            dur(s.median_seconds),
            dur(s.wald_seconds),
            s.bad_requests.map_or("—".into(), |b| format!("{b:.1}")),
            format!("{}/{}", s.detected, s.runs)
        )?;
    }
    writeln!(
        out,
        "(independent requests assumed: bursty real traffic needs longer; a step shorter than this lets the regression through more often)"
    )?;
    Ok(())
}
