//! `canary-gate gate serve`: the judge as an HTTP endpoint for Argo Rollouts and Flagger.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use canary_gate::gate::serve::{Drained, ServeLimits, serve, with_limits};
use canary_gate::gate::{GateState, router};
use canary_gate::template;
use tokio::signal::unix::SignalKind;

use super::prometheus_args::PrometheusArgs;

/// `gate` subcommands.
#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Serve the judge over HTTP (POST /v1/judge, /v1/flagger/rollout,
    /// /v1/flagger/confirm-promotion) until SIGTERM or Ctrl-C.
    Serve(Box<ServeArgs>),
}

/// Flags of `gate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Analysis templates to serve, by their metadata.name (repeatable; a directory loads every
    /// .yaml in it).
    #[arg(long = "template", short, required = true)]
    pub templates: Vec<PathBuf>,
    /// Time a client has to send a request's headers.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Time a request has from its headers to its answer, judging included (keep it below the
    /// clients' timeouts: Argo's timeoutSeconds, Flagger's webhook timeout).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_connections: u64,
    /// How long SIGTERM / Ctrl-C waits for requests in flight before exiting.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

/// Runs the gate command.
pub fn run(command: GateCommand) -> Result<()> {
    let GateCommand::Serve(args) = command;
    let mut templates = Vec::new();
    for path in &args.templates {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            for f in files {
                templates.push(template::load(&f)?);
            }
        } else {
            templates.push(template::load(path)?);
        }
    }
    let mut names: Vec<&str> = templates.iter().map(|t| t.name()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "two templates are named {:?}; template names must be unique",
            w[0]
        );
    }
    let names = names.join(", ");
    if args.request_timeout.is_zero() || args.header_timeout.is_zero() {
        bail!("--request-timeout and --header-timeout must be longer than zero");
    }
    let limits = ServeLimits {
        header_timeout: args.header_timeout,
        request_deadline: args.request_timeout,
        max_connections: usize::try_from(args.max_connections).unwrap_or(256),
        shutdown_timeout: args.shutdown_timeout,
        ..ServeLimits::default()
    };
    let client = args.prometheus.client()?;
    let state = Arc::new(GateState::new(templates, client));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        println!(
            "canary-gate gate serving {names} on http://{}",
            listener.local_addr()?
        );
        let mut terminate = tokio::signal::unix::signal(SignalKind::terminate())
            .context("cannot handle SIGTERM")?;
        let stop = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        let routes = with_limits(router(state), limits);
        match serve(listener, routes, limits, stop).await? {
            Drained::Clean => eprintln!("canary-gate gate stopped"),
            Drained::Dropped(n) => eprintln!(
                "canary-gate gate stopped; {n} connection(s) still open after {} were dropped",
                humantime::format_duration(limits.shutdown_timeout)
            ),
        }
        Ok(())
    })
}
