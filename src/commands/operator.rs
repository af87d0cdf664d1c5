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
use canary_gate::operator::{self, Request};

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
pub fn act(target: &Target, request: Request) -> Result<()> {
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
