//! Rollout safety on a real kube-apiserver, with the Deployment status and the pods driven by
//! hand (the test server runs no kubelet or Deployment controller): a crashlooping canary with
//! ungated steps is never promoted and rolls back at its progress deadline naming the pods'
//! reason; the real `kubectl scale` (what an HPA does through the scale subresource) resizes
//! both workloads; an HPA left on the target Deployment is reported with the fix.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canary_gate::controller::reconcile::{Context, reconcile};
use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::{RolloutPhase, RolloutStatus};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use support::apiserver::{ApiServer, create_namespace, deployment, install_crds, pods_available};
use support::fixtures::NoMetrics;

const NS: &str = "safety-test";
const T0: u64 = 1_763_856_000;
static NOW: AtomicU64 = AtomicU64::new(T0);

fn now() -> f64 {
    NOW.load(Ordering::SeqCst) as f64
}

async fn status(rollouts: &Api<Rollout>, name: &str) -> RolloutStatus {
    rollouts.get(name).await.unwrap().status.unwrap_or_default()
}

fn condition(s: &RolloutStatus, type_: &str) -> Option<(String, String, String)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn replicas(deployments: &Api<Deployment>, name: &str) -> Option<i32> {
    deployments.get(name).await.ok()?.spec?.replicas
}

/// A Deployment `name` with `pods` replicas running `image` (labels `app: <name>`).
fn app(name: &str, image: &str, pods: i32) -> Deployment {
    let mut d = deployment(image);
    d.metadata.name = Some(name.into());
    let spec = d.spec.as_mut().unwrap();
    spec.replicas = Some(pods);
    spec.selector.match_labels = Some([("app".to_string(), name.to_string())].into());
    spec.template.metadata.as_mut().unwrap().labels =
        Some([("app".to_string(), name.to_string())].into());
    d
}

async fn new_image(deployments: &Api<Deployment>, name: &str, image: &str) {
    deployments
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn rollout_safety_on_a_real_api_server() {
    support::init_crypto();
    let server = ApiServer::start();
    let client = server.client().await;
    install_crds(&client).await;
    create_namespace(&client, NS).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);

    // The controller's HorizontalPodAutoscaler cache, on the real server.
    let (autoscalers, writer) = reflector::store::<HorizontalPodAutoscaler>();
    let hpa_watch = tokio::spawn(
        reflector(
            writer,
            watcher(
                Api::<HorizontalPodAutoscaler>::all(client.clone()),
                watcher::Config::default(),
            ),
        )
        .default_backoff()
        .for_each(|_| async {}),
    );
    tokio::time::timeout(Duration::from_secs(10), autoscalers.wait_until_ready())
        .await
        .expect("the HPA cache syncs")
        .unwrap();
    let ctx = Arc::new(Context {
        autoscalers: Some(autoscalers.clone()),
        ..Context::new(client.clone(), Arc::new(NoMetrics), now)
    });
    let step = |name: &'static str| {
        let (rollouts, ctx) = (rollouts.clone(), ctx.clone());
        async move {
            reconcile(Arc::new(rollouts.get(name).await.unwrap()), ctx)
                .await
                .expect("reconcile succeeds");
        }
    };

    // --- A crashlooping canary with ungated steps: never promoted, rolled back at the deadline.
    deployments
        .create(&PostParams::default(), &app("web", "web:1", 2))
        .await
        .unwrap();
    rollouts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
                "spec": {"targetRef": {"name": "web"}, "progressDeadline": "5m",
                    "strategy": {"canary": {"steps": [
                        {"setWeight": 50}, {"pause": {"duration": "1m"}}, {"setWeight": 100}]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    step("web").await;
    // Adopted, but not healthy until the stable workload's pods are available.
    let s = status(&rollouts, "web").await;
    assert_eq!(s.phase, Some(RolloutPhase::Healthy));
    assert_eq!(
        condition(&s, "Healthy").map(|c| c.1),
        Some("StableUnavailable".into()),
        "{:?}",
        s.conditions
    );
    assert_eq!(
        s.message.as_deref(),
        Some(
            format!(
                "revision {} is stable; waiting for web-stable: 0/2 available",
                s.stable_revision.clone().unwrap()
            )
            .as_str()
        )
    );
    pods_available(&client, NS, "web-stable", None, json!([])).await;
    step("web").await;
    let s = status(&rollouts, "web").await;
    assert_eq!(condition(&s, "Healthy").map(|c| c.0), Some("True".into()));

    new_image(&deployments, "web", "web:2").await;
    step("web").await;
    // The canary's pod crashes: its container waits in CrashLoopBackOff (the kubelet's part,
    // written by hand), and its Deployment says it has no minimum availability.
    let canary = deployments.get("web-canary").await.unwrap();
    let labels = canary
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-canary-5f6d-abcde", "labels": labels},
            "spec": {"containers": [{"name": "web", "image": "web:2"}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    pods.patch_status(
        "web-canary-5f6d-abcde",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"phase": "Running", "containerStatuses": [{
            "name": "web", "ready": false, "restartCount": 6, "image": "web:2", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": "back-off 5m0s restarting failed container=web"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": "2025-11-23T00:01:00Z", "finishedAt": "2025-11-23T00:01:01Z"}}}]}}),
        ),
    )
    .await
    .unwrap();
    pods_available(
        &client,
        NS,
        "web-canary",
        Some(0),
        json!([{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
            "message": "Deployment does not have minimum availability."}]),
    )
    .await;
    // The ungated steps never move on without the canary's pod: no weight, no promotion.
    for minutes in [1, 2, 3, 4] {
        NOW.store(T0 + minutes * 60, Ordering::SeqCst);
        step("web").await;
        let s = status(&rollouts, "web").await;
        assert_eq!(
            (s.phase, s.current_step_index, s.canary_weight),
            (Some(RolloutPhase::Progressing), Some(0), Some(0)),
            "after {minutes} min: {:?}",
            s.message
        );
        assert_eq!(
            condition(&s, "CanaryAvailable").map(|c| c.1),
            Some("WaitingForPods".into())
        );
    }
    // The routers never saw the canary: with the replica ratio, the stable keeps its 2 pods.
    assert_eq!(replicas(&deployments, "web-stable").await, Some(2));
    NOW.store(T0 + 5 * 60, Ordering::SeqCst);
    step("web").await;
    let s = status(&rollouts, "web").await;
    assert_eq!(
        (s.phase, s.canary_weight),
        (Some(RolloutPhase::RolledBack), Some(0))
    );
    let (state, reason, message) = condition(&s, "Progressing").unwrap();
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("False", "ProgressDeadlineExceeded")
    );
    assert!(
        message.contains("1 pod: CrashLoopBackOff (container web), last exit 1 Error")
            && message.contains("web-canary: 0/1 available"),
        "{message}"
    );
    let warned = Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("ProgressDeadlineExceeded")
                && e.type_.as_deref() == Some("Warning")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("CrashLoopBackOff"))
        });
    assert!(warned, "a Warning Event names the pods' reason");

    // --- An HPA left on the target Deployment: a condition with the fix, nothing fought.
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web"},
                "spec": {"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70,
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    step("web").await;
    let s = status(&rollouts, "web").await;
    let (state, reason, message) =
        condition(&s, "AutoscalerConflict").expect("an AutoscalerConflict condition");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("True", "HPATargetsDeployment")
    );
    assert!(
        message.contains("point its scaleTargetRef at the Rollout instead"),
        "{message}"
    );

    // --- An HPA on the Rollout: `kubectl scale` through the scale subresource resizes both
    //     workloads by the split in force.
    deployments
        .create(&PostParams::default(), &app("api", "api:1", 2))
        .await
        .unwrap();
    rollouts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "api"},
                "spec": {"targetRef": {"name": "api"}, "replicas": 2,
                    "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "api"},
                "spec": {"minReplicas": 2, "maxReplicas": 10,
                    "scaleTargetRef": {"apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "name": "api"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    step("api").await;
    pods_available(&client, NS, "api-stable", None, json!([])).await;
    step("api").await;
    new_image(&deployments, "api", "api:2").await;
    step("api").await;
    pods_available(&client, NS, "api-canary", None, json!([])).await;
    step("api").await;
    let s = status(&rollouts, "api").await;
    assert_eq!(
        (s.canary_weight, s.selector.as_deref()),
        (Some(50), Some("app=api"))
    );
    assert_eq!(
        condition(&s, "AutoscalerConflict"),
        None,
        "an HPA on the Rollout is what is asked for"
    );
    // What an HPA reads and writes: the Rollout's scale subresource, through the real kubectl.
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .args(["-n", NS])
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let scale: serde_json::Value = serde_json::from_str(&kubectl(&[
        "get",
        "--raw",
        &format!("/apis/canarygate.dev/v1alpha1/namespaces/{NS}/rollouts/api/scale"),
    ]))
    .unwrap();
    assert_eq!(scale["spec"]["replicas"], 2, "{scale}");
    assert_eq!(scale["status"]["replicas"], 2, "{scale}");
    assert_eq!(scale["status"]["selector"], "app=api", "{scale}");
    kubectl(&["scale", "rollouts.canarygate.dev/api", "--replicas=6"]);
    step("api").await;
    // 50 % of 6 with the replica ratio: 3 stable + 3 canary (the canary's new pods are not up
    // yet: the step holds meanwhile).
    assert_eq!(replicas(&deployments, "api-stable").await, Some(3));
    assert_eq!(replicas(&deployments, "api-canary").await, Some(3));
    let s = status(&rollouts, "api").await;
    assert_eq!(s.replicas, Some(6));
    pods_available(&client, NS, "api-canary", None, json!([])).await;
    pods_available(&client, NS, "api-stable", None, json!([])).await;
    step("api").await;
    let s = status(&rollouts, "api").await;
    assert_eq!(
        (s.phase, s.canary_weight),
        (Some(RolloutPhase::Paused), Some(50)),
        "{:?}",
        s.message
    );
    assert_eq!(
        condition(&s, "CanaryAvailable").map(|c| c.0),
        Some("True".into())
    );
    // An open watch would hold the API server's graceful stop for a minute.
    hpa_watch.abort();
    let _ = hpa_watch.await;
}
