//! `canary-gate controller`: run the Kubernetes controller.

use std::net::SocketAddr;

use anyhow::Result;
use clap::Args;

use canary_gate::controller::run::{ControllerConfig, run as run_controller};

use super::prometheus_args::PrometheusArgs;

/// Flags of `controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Address of /livez, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "canary-gate-system")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long the leader's Lease holds without renewal (it renews every third of it).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: std::time::Duration,
    /// Do not elect a leader (only for a single replica run by hand).
    #[arg(long)]
    pub no_leader_election: bool,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

/// Runs the controller until Ctrl-C / SIGTERM.
pub fn run(args: ControllerArgs) -> Result<()> {
    let identity = args.identity.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| format!("canary-gate-{}", std::process::id()))
    });
    let config = ControllerConfig {
        prometheus: args.prometheus.client()?,
        listen: args.listen,
        lease_namespace: args.lease_namespace,
        identity,
        leader_election: !args.no_leader_election,
        lease_duration: args.lease_duration,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_controller(config))?;
    Ok(())
}
