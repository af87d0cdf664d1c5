//! `canary-gate wait` on a real kube-apiserver, as a CI job runs it: it blocks while the rollout
//! of the Deployment's current template runs (the Rollout's status set by hand: no controller
//! here), and exits 0 once it is promoted, 2 when it is rolled back, 5 at its timeout — printing
//! the Rollout and its decision record.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canary_gate::controller::observe::revision;
use canary_gate::crd::Rollout;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::apiserver::{ApiServer, create_namespace, deployment, install_crds};
use support::fixtures::RolloutBuilder;

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");
const NS: &str = "wait-test";

/// Starts `canary-gate wait web` in the background.
fn wait(server: &ApiServer, timeout: &str) -> std::process::Child {
    Command::new(BIN)
        .env("KUBECONFIG", server.kubeconfig())
        .args(["wait", "web", "-n", NS, "--timeout", timeout])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start canary-gate wait")
}

/// Waits for the process to exit (at most `limit`); its exit code and stdout.
fn finished(mut child: std::process::Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("canary-gate wait did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn running(child: &mut std::process::Child) -> bool {
    child.try_wait().unwrap().is_none()
}

#[tokio::test]
async fn wait_ends_with_the_rollouts_outcome_for_the_deployments_template() {
    support::init_crypto();
    let server = ApiServer::start();
    let client = server.client().await;
    install_crds(&client).await;
    create_namespace(&client, NS).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let stored = deployments
        .create(&PostParams::default(), &deployment("web:2"))
        .await
        .unwrap();
    // The revision as the controller computes it: from the stored (defaulted) template.
    let new = revision(&stored.spec.unwrap().template);
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    rollouts
        .create(
            &PostParams::default(),
            &RolloutBuilder::new("web")
                .steps(json!([{"setWeight": 10}, {"pause": {"duration": "1m"}}]))
                .build(),
        )
        .await
        .unwrap();
    let set = |status: serde_json::Value| {
        let rollouts = rollouts.clone();
        async move {
            rollouts
                .patch_status(
                    "web",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
                .unwrap();
        }
    };
    // Not started yet (the previous stable is healthy): wait does not take that for the end.
    set(json!({"phase": "Healthy", "stableRevision": "old1234567"})).await;
    let mut child = wait(&server, "60s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        running(&mut child),
        "the old stable's health is not this revision's promotion"
    );
    set(json!({"phase": "Progressing", "canaryRevision": new, "currentStepIndex": 0, "canaryWeight": 10})).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(running(&mut child));
    set(
        json!({"phase": "Healthy", "stableRevision": new, "canaryRevision": null,
        "lastDecision": "promote", "message": format!("revision {new} promoted and stable")}),
    )
    .await;
    let (code, out) = finished(child, Duration::from_secs(20));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Phase:") && out.contains("Healthy"), "{out}");

    // Rolled back: exit 2, with the decision record printed.
    set(
        json!({"phase": "RolledBack", "stableRevision": "old1234567", "canaryRevision": new,
        "message": "rolled back: error-rate: evidence of harm"}),
    )
    .await;
    let (code, out) = finished(wait(&server, "60s"), Duration::from_secs(20));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("evidence of harm"), "{out}");

    // Still running at the timeout: exit 5.
    set(json!({"phase": "Progressing", "canaryRevision": new})).await;
    let (code, _) = finished(wait(&server, "2s"), Duration::from_secs(20));
    assert_eq!(code, Some(5));
}
