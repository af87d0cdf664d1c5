//! The RBAC in `deploy/rbac.yaml` on a real kube-apiserver, both ways: the controller's
//! reconcile and leader election work as its ServiceAccount, and what the file does not grant
//! (writing Deployments, reading Secrets, Leases elsewhere) is denied.

mod support;

use std::sync::Arc;
use std::time::Duration;

use canary_gate::controller::leader::LeaseLock;
use canary_gate::controller::reconcile::{Context, reconcile};
use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::RolloutPhase;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::apiserver::{ApiServer, create_namespace, deployment, install_crds};
use support::fixtures::{NoMetrics, RolloutBuilder};

const SYSTEM: &str = "canary-gate-system";
const NS: &str = "rbac-test";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:canary-gate-system:canary-gate";

fn now() -> f64 {
    1_763_856_000.0
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(e)) if e.code == 403 => {}
        other => panic!("{what} should be forbidden for the ServiceAccount, got {other:?}"),
    }
}

#[tokio::test]
async fn the_deploy_rbac_grants_what_the_controller_uses_and_nothing_more() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ApiServer::start();
    let admin = server.client().await;
    install_crds(&admin).await;
    for ns in [SYSTEM, NS] {
        create_namespace(&admin, ns).await;
    }
    // Apply deploy/rbac.yaml as it is.
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rbac.yaml")).unwrap();
    for doc in text.split("\n---\n") {
        let value: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
        let pp = PostParams::default();
        match value["kind"].as_str().unwrap() {
            "ServiceAccount" => drop(
                Api::<ServiceAccount>::namespaced(admin.clone(), SYSTEM)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "ClusterRole" => drop(
                Api::<ClusterRole>::all(admin.clone())
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "ClusterRoleBinding" => drop(
                Api::<ClusterRoleBinding>::all(admin.clone())
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "Role" => drop(
                Api::<Role>::namespaced(admin.clone(), SYSTEM)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "RoleBinding" => drop(
                Api::<RoleBinding>::namespaced(admin.clone(), SYSTEM)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            other => panic!("unexpected kind {other} in deploy/rbac.yaml"),
        }
    }
    // The workload and the Rollout, created by a user.
    let admin_deployments: Api<Deployment> = Api::namespaced(admin.clone(), NS);
    admin_deployments
        .create(&PostParams::default(), &deployment("web:1"))
        .await
        .unwrap();
    let rollout = RolloutBuilder::new("web")
        .steps(json!([{"setWeight": 10}, {"pause": {"duration": "1m"}}]))
        .build();
    Api::<Rollout>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();

    // The controller's identity.
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.auth_info.impersonate = Some(SERVICE_ACCOUNT.to_string());
    let controller = kube::Client::try_from(config).unwrap();
    let ctx = Arc::new(Context::new(controller.clone(), Arc::new(NoMetrics), now));
    let rollouts: Api<Rollout> = Api::namespaced(controller.clone(), NS);

    // Granted: watch/get Rollouts, read Deployments and templates, write status and Events.
    reconcile(Arc::new(rollouts.get("web").await.unwrap()), ctx.clone())
        .await
        .expect("adopt as the ServiceAccount");
    admin_deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})))
        .await
        .unwrap();
    reconcile(Arc::new(rollouts.get("web").await.unwrap()), ctx.clone())
        .await
        .expect("start as the ServiceAccount");
    let status = rollouts.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.phase, Some(RolloutPhase::Progressing));
    // The workloads were created by server-side apply as the ServiceAccount.
    for name in ["web-stable", "web-canary"] {
        let w = admin_deployments.get(name).await.unwrap();
        assert!(
            w.metadata
                .managed_fields
                .iter()
                .flatten()
                .any(|m| m.manager.as_deref() == Some("canary-gate")),
            "{name} is canary-gate's"
        );
    }
    rollouts
        .list(&Default::default())
        .await
        .expect("list Rollouts");
    let lock = LeaseLock::new(
        controller.clone(),
        SYSTEM,
        "canary-gate-controller",
        "replica-a",
        Duration::from_secs(15),
    );
    assert!(
        lock.try_acquire_or_renew()
            .await
            .expect("Lease in canary-gate-system")
    );
    assert!(lock.try_acquire_or_renew().await.expect("renew the Lease"));

    // Not granted: writing Deployments, reading Secrets, Leases outside its namespace, CRDs.
    let deployments: Api<Deployment> = Api::namespaced(controller.clone(), NS);
    forbidden(
        deployments.delete("web", &DeleteParams::default()).await,
        "deleting a Deployment",
    );
    forbidden(
        Api::<Service>::namespaced(controller.clone(), NS)
            .list(&Default::default())
            .await,
        "listing Services",
    );
    forbidden(
        Api::<Secret>::namespaced(controller.clone(), NS)
            .list(&Default::default())
            .await,
        "listing Secrets",
    );
    let elsewhere = LeaseLock::new(
        controller.clone(),
        NS,
        "canary-gate-controller",
        "replica-a",
        Duration::from_secs(15),
    );
    forbidden(
        elsewhere.try_acquire_or_renew().await,
        "a Lease outside canary-gate-system",
    );
    forbidden(
        rollouts.delete("web", &DeleteParams::default()).await,
        "deleting a Rollout",
    );
}
