//! `canary-gate gate serve`: the judge as an HTTP endpoint for Argo Rollouts and Flagger.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use canary_gate::gate::{GateState, router};
use canary_gate::template;

use super::prometheus_args::PrometheusArgs;

/// `gate` subcommands.
#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Serve the judge over HTTP (POST /v1/judge, /v1/flagger/rollout,
    /// /v1/flagger/confirm-promotion) until Ctrl-C.
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
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("gate server failed")
    })
}
