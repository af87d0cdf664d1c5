//! A real rollout on whatever cluster `KUBECONFIG` points at (opt-in):
//! `cargo test --test cluster_rollout -- --ignored`. It installs the CRDs if they are missing,
//! runs the controller in-process in a temporary namespace, changes a Deployment's image and
//! waits for the Rollout to pass its (ungated) steps and promote; the namespace is deleted after.

use std::time::{Duration, Instant};

use canary_gate::controller::run::{ControllerConfig, run};
use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::RolloutPhase;
use canary_gate::metrics::prometheus::{Prometheus, PrometheusConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn wait_for_phase(rollouts: &Api<Rollout>, phase: RolloutPhase, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let current = rollouts
            .get("web")
            .await
            .ok()
            .and_then(|r| r.status)
            .and_then(|s| s.phase);
        if current == Some(phase) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {phase:?}, the Rollout is {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_rollout_promotes_on_a_real_cluster() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .expect("a kubeconfig for the cluster");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    if crds
        .get_opt("rollouts.canarygate.dev")
        .await
        .unwrap()
        .is_none()
    {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/crds/canarygate.dev.yaml"
        ))
        .unwrap();
        for doc in text
            .split("\n---\n")
            .filter(|d| d.contains("kind: CustomResourceDefinition"))
        {
            let crd: CustomResourceDefinition = serde_saphyr::from_str(doc).unwrap();
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let ns = format!("canary-gate-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();

    let controller = tokio::spawn(run(ControllerConfig {
        prometheus: Prometheus::new(PrometheusConfig::new("http://127.0.0.1:9")).unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        lease_namespace: ns.clone(),
        lease_name: canary_gate::controller::run::LEASE_NAME.into(),
        // Only this test's namespace: a real cluster's other Rollouts are not touched.
        shard: canary_gate::controller::run::Shard {
            namespace: Some(ns.clone()),
            selector: None,
        },
        identity: "e2e".into(),
        leader_election: false,
        lease_duration: Duration::from_secs(15),
        grafana: None,
        notifications: Default::default(),
        concurrency: 8,
        gate: None,
    }));

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.9"}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns);
    let rollout: Rollout = serde_json::from_value(json!({
        "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"targetRef": {"name": "web"}, "strategy": {"canary": {"steps": [
            {"setWeight": 20}, {"pause": {"duration": "2s"}}, {"setWeight": 60}, {"pause": {"duration": "2s"}}]}}}
    }))
    .unwrap();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();
    wait_for_phase(&rollouts, RolloutPhase::Healthy, Duration::from_secs(30)).await;
    let stable = rollouts
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .stable_revision
        .unwrap();

    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"canary-gate.dev/e2e": "v2"}}}}})))
        .await
        .unwrap();
    wait_for_phase(
        &rollouts,
        RolloutPhase::Progressing,
        Duration::from_secs(30),
    )
    .await;
    wait_for_phase(&rollouts, RolloutPhase::Healthy, Duration::from_secs(60)).await;
    let status = rollouts.get("web").await.unwrap().status.unwrap();
    assert_ne!(
        status.stable_revision.as_deref(),
        Some(stable.as_str()),
        "the new revision is stable"
    );
    assert!(status.canary_revision.is_none());

    controller.abort();
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}
