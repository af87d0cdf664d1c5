//! Command-line flags for connecting to Prometheus (or Thanos, Mimir, Cortex, VictoriaMetrics).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use canary_gate::metrics::prometheus::{Credentials, Prometheus, PrometheusConfig, Secret};

/// How to reach Prometheus.
#[derive(Debug, Args)]
pub struct PrometheusArgs {
    /// Prometheus base URL, e.g. http://prometheus:9090 (a path prefix is kept).
    #[arg(long, env = "CANARY_GATE_PROMETHEUS_URL")]
    pub prometheus: String,
    /// Read a bearer token from this file.
    #[arg(long, conflicts_with_all = ["bearer_token_env", "basic_user"])]
    pub bearer_token_file: Option<PathBuf>,
    /// Read a bearer token from this environment variable.
    #[arg(long, conflicts_with = "basic_user")]
    pub bearer_token_env: Option<String>,
    /// Basic-auth user name (password from --basic-password-file or --basic-password-env).
    #[arg(long)]
    pub basic_user: Option<String>,
    /// Read the basic-auth password from this file.
    #[arg(long, requires = "basic_user")]
    pub basic_password_file: Option<PathBuf>,
    /// Read the basic-auth password from this environment variable.
    #[arg(long, requires = "basic_user")]
    pub basic_password_env: Option<String>,
    /// Extra request header NAME=VALUE, e.g. X-Scope-OrgID=tenant-1 (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// PEM file with extra CA certificates to trust.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Timeout per query attempt.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub query_timeout: Duration,
    /// Retries after a connection error, timeout or 5xx.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Queries in flight at most; more wait their turn (protects Prometheus when many Rollouts
    /// are analysed at once).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_concurrent_queries: u64,
    /// The largest answer accepted from Prometheus, in MiB; a larger one is refused while it
    /// streams in (aggregate the query instead).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_response_mib: u64,
}

impl PrometheusArgs {
    /// Builds the client.
    pub fn client(&self) -> Result<Prometheus> {
        let mut config = PrometheusConfig::new(self.prometheus.clone());
        config.credentials = match (
            &self.bearer_token_file,
            &self.bearer_token_env,
            &self.basic_user,
        ) {
            (Some(file), _, _) => Credentials::Bearer(Secret::from_file(file)?),
            (None, Some(var), _) => Credentials::Bearer(Secret::from_env(var)?),
            (None, None, Some(user)) => {
                let password = match (&self.basic_password_file, &self.basic_password_env) {
                    (Some(file), _) => Secret::from_file(file)?,
                    (None, Some(var)) => Secret::from_env(var)?,
                    (None, None) => {
                        bail!("--basic-user needs --basic-password-file or --basic-password-env")
                    }
                };
                Credentials::Basic {
                    username: user.clone(),
                    password,
                }
            }
            (None, None, None) => Credentials::None,
        };
        config.headers = self
            .headers
            .iter()
            .map(|h| {
                h.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                    .with_context(|| format!("--header {h:?} is not NAME=VALUE"))
            })
            .collect::<Result<_>>()?;
        config.ca_file = self.ca_file.clone();
        config.timeout = self.query_timeout;
        config.retries = self.retries;
        config.max_concurrent = usize::try_from(self.max_concurrent_queries).unwrap_or(16);
        config.max_response_bytes = usize::try_from(self.max_response_mib << 20)
            .unwrap_or(canary_gate::metrics::prometheus::DEFAULT_MAX_RESPONSE_BYTES);
        Ok(Prometheus::new(config)?)
    }
}
