//! `canary-gate controller`: run the Kubernetes controller.

use std::net::SocketAddr;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use canary_gate::annotations::{GrafanaConfig, Secret};
use canary_gate::controller::run::{ControllerConfig, Shard, run as run_controller};
use canary_gate::notify::NotifyConfig;

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
    /// Do not serve the judge for Argo Rollouts and Flagger (`/v1/judge`, `/v1/flagger/…` on
    /// the listen address, with the cluster's AnalysisTemplates and ClusterAnalysisTemplates).
    #[arg(long)]
    pub no_gate: bool,
    /// Rollouts reconciled at once at most (never the same Rollout twice at once); the rest
    /// queue. Bounds the controller's memory and API load when thousands wake together.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    /// Grafana base URL for annotations (a region per step, a point per decision); none: off.
    #[arg(long, env = "GRAFANA_URL")]
    pub grafana_url: Option<String>,
    /// Grafana service-account token (better: --grafana-token-file or the env from a Secret).
    #[arg(long, env = "GRAFANA_TOKEN", hide_env_values = true)]
    pub grafana_token: Option<Secret>,
    /// File holding the Grafana token (e.g. a mounted Secret).
    #[arg(long, conflicts_with = "grafana_token")]
    pub grafana_token_file: Option<PathBuf>,
    /// Dashboard the annotations belong to (the shipped dashboard's UID by default).
    #[arg(long, default_value = "canary-gate")]
    pub grafana_dashboard_uid: String,
    /// Panel the annotations belong to (none: the whole dashboard).
    #[arg(long)]
    pub grafana_panel_id: Option<i64>,
    /// Time limit per Grafana request (annotations never delay a decision).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub grafana_timeout: std::time::Duration,
    /// Shard by namespace: watch Rollouts, Deployments, autoscalers and AnalysisTemplates in this
    /// namespace only (ClusterAnalysisTemplates stay cluster-wide). Default: every namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Shard by label: reconcile only the Rollouts this label selector matches (e.g.
    /// `canarygate.dev/shard=a`); give each shard its own --lease-name.
    #[arg(long)]
    pub selector: Option<String>,
    /// Name of the leader-election Lease; shards that split one cluster's Rollouts need one each.
    #[arg(long, default_value = canary_gate::controller::run::LEASE_NAME)]
    pub lease_name: String,
    /// Notification sinks (webhook, Slack, Teams) that Rollouts select in spec.notifications:
    /// a YAML file, best mounted from a Secret; a file that does not exist turns them off.
    #[arg(long)]
    pub notifications_config: Option<PathBuf>,
}

/// Runs the controller until Ctrl-C / SIGTERM.
pub fn run(args: ControllerArgs) -> Result<()> {
    let identity = args.identity.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| format!("canary-gate-{}", std::process::id()))
    });
    let grafana = match &args.grafana_url {
        None => None,
        Some(url) => {
            let token = match (&args.grafana_token, &args.grafana_token_file) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(path)) => Some(Secret::new(
                    std::fs::read_to_string(path)
                        .with_context(|| {
                            format!("cannot read --grafana-token-file {}", path.display())
                        })?
                        .trim()
                        .to_string(),
                )),
                (None, None) => None,
            };
            Some(GrafanaConfig {
                token,
                dashboard_uid: Some(args.grafana_dashboard_uid.clone()),
                panel_id: args.grafana_panel_id,
                timeout: args.grafana_timeout,
                ..GrafanaConfig::new(url.clone())
            })
        }
    };
    let notifications = NotifyConfig::from_flag(args.notifications_config.as_deref())?;
    let config = ControllerConfig {
        grafana,
        notifications,
        prometheus: args.prometheus.client()?,
        listen: args.listen,
        lease_namespace: args.lease_namespace,
        lease_name: args.lease_name,
        shard: Shard {
            namespace: args.namespace,
            selector: args.selector,
        },
        identity,
        leader_election: !args.no_leader_election,
        lease_duration: args.lease_duration,
        concurrency: args.concurrency,
        gate: (!args.no_gate)
            .then(|| args.prometheus.client())
            .transpose()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_controller(config))?;
    Ok(())
}
