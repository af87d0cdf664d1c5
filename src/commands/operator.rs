//! Handlers of the operator commands (`get [-w]`, `promote [--full]`, `abort`, `retry`, `undo`),
//! using the user's kubeconfig — the same binary works as the kubectl plugin `kubectl-canary`.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use canary_gate::crd::Rollout;
use canary_gate::operator;
use canary_gate::rollout::Action;

/// Which Rollout.
#[derive(Debug, Args)]
pub struct Target {
    /// Rollout name.
    pub name: String,
    /// Namespace (default: the kubeconfig context's).
    #[arg(long, short)]
    pub namespace: Option<String>,
}

async fn connect(target: &Target) -> Result<(Client, String)> {
    let client = Client::try_default().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the cluster from the kubeconfig (KUBECONFIG or ~/.kube/config): {e}"
        )
    })?;
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    Ok((client, namespace))
}

/// `get`: prints the Rollout; with `watch`, again on every change until Ctrl-C.
pub fn get(target: &Target, watch: bool) -> Result<()> {
    super::runtime()?.block_on(async {
        let (client, namespace) = connect(target).await?;
        let rollout = operator::get(&client, &namespace, &target.name).await?;
        let mut out = std::io::stdout().lock();
        write!(out, "{}", operator::render(&rollout))?;
        out.flush()?;
        drop(out);
        if !watch {
            return Ok(());
        }
        let api: Api<Rollout> = Api::namespaced(client, &namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", target.name));
        let mut changes = watcher(api, config).applied_objects().boxed();
        while let Some(next) = changes.next().await {
            let rollout = next?;
            let mut out = std::io::stdout().lock();
            // Clear the screen and redraw, like `kubectl argo rollouts get -w`.
            write!(out, "\x1b[2J\x1b[H{}", operator::render(&rollout))?;
            out.flush()?;
        }
        Ok(())
    })
}

/// `promote`, `abort`, `retry`, `undo`: asks the controller through the action annotation.
pub fn act(target: &Target, request: Action) -> Result<()> {
    super::runtime()?.block_on(async {
        let (client, namespace) = connect(target).await?;
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
            .to_string();
        let message = operator::act(&client, &namespace, &target.name, request, &nonce).await?;
        println!("{message}");
        Ok(())
    })
}

/// `wait`: blocks until the rollout of the target Deployment's current template ends, printing
/// the Rollout (with its decision record) then; returns the exit status (5 on `timeout`).
pub fn wait(target: &Target, timeout: std::time::Duration) -> Result<u8> {
    super::runtime()?.block_on(async {
        let (client, namespace) = connect(target).await?;
        let rollout = operator::get(&client, &namespace, &target.name).await?;
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(client.clone(), &namespace);
        let deployment = &rollout.spec.target_ref.name;
        let template = deployments
            .get_opt(deployment)
            .await?
            .and_then(|d| d.spec)
            .map(|s| s.template)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the target Deployment {namespace}/{deployment} of rollout {} does not exist",
                    target.name
                )
            })?;
        let revision = canary_gate::controller::observe::revision(&template);
        let api: Api<Rollout> = Api::namespaced(client, &namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", target.name));
        let mut changes = watcher(api, config).applied_objects().boxed();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = rollout;
        loop {
            if let Some(end) = last
                .status
                .as_ref()
                .and_then(|s| operator::ended(s, &revision))
            {
                print!("{}", operator::render(&last));
                eprintln!(
                    "rollout {namespace}/{} of revision {revision}: {end:?}",
                    target.name
                );
                return Ok(end.exit_code());
            }
            match tokio::time::timeout_at(deadline, changes.next()).await {
                Ok(Some(next)) => last = next?,
                Ok(None) => anyhow::bail!("the watch of rollout {namespace}/{} ended", target.name),
                Err(_) => {
                    print!("{}", operator::render(&last));
                    eprintln!(
                        "rollout {namespace}/{} of revision {revision} has not ended after {}",
                        target.name,
                        humantime::format_duration(timeout)
                    );
                    return Ok(5);
                }
            }
        }
    })
}

/// `list`: a table of the Rollouts in the namespace (every namespace with `all`).
pub fn list(namespace: Option<&str>, all: bool) -> Result<()> {
    super::runtime()?.block_on(async {
        let client = Client::try_default().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the cluster from the kubeconfig (KUBECONFIG or ~/.kube/config): {e}"
            )
        })?;
        let namespace = if all {
            None
        } else {
            Some(
                namespace
                    .map(str::to_string)
                    .unwrap_or_else(|| client.default_namespace().to_string()),
            )
        };
        let rollouts = operator::list(&client, namespace.as_deref()).await?;
        if rollouts.is_empty() {
            match &namespace {
                Some(ns) => println!("no Rollouts in namespace {ns}"),
                None => println!("no Rollouts in any namespace"),
            }
            return Ok(());
        }
        print!("{}", operator::list_table(&rollouts, all));
        Ok(())
    })
}
