//! Workloads and a traffic router against a real kube-apiserver: the Gateway API HTTPRoute CRD is
//! installed from a simplified structural copy (its spec is kept as written), and a Rollout is
//! reconciled through adoption, a step with an A/B header rule, an abort and the canary's
//! scale-down. A second Rollout names an Istio VirtualService whose CRD is not installed: it gets
//! a clear condition and the first is not disturbed. No pods run (no controller-manager): the
//! test plays the Deployment controller by writing the stable workload's status.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canary_gate::controller::events::EventWriter;
use canary_gate::controller::reconcile::{Context, reconcile};
use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::{RolloutPhase, RolloutStatus};
use canary_gate::time::parse_rfc3339;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use support::apiserver::{ApiServer, create_namespace, deployment, install_crds, pods_available};
use support::fixtures::NoMetrics;

const NS: &str = "traffic-test";
const T0: u64 = 1_763_856_000;
static NOW: AtomicU64 = AtomicU64::new(T0);

fn now() -> f64 {
    NOW.load(Ordering::SeqCst) as f64
}

/// A router CRD reduced to its names and a structural schema that keeps the spec as written
/// (what the controller reads and writes is all in the spec).
/// A human's action on the Rollout `web`, through the action annotation.
async fn act(rollouts: &Api<Rollout>, action: &str) {
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"canarygate.dev/action": action}}})),
        )
        .await
        .unwrap();
}

async fn install_structural_crd(
    client: &kube::Client,
    group: &str,
    kind: &str,
    plural: &str,
    version: &str,
) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("{plural}.{group}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name,
            "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/891"}},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List")},
            "versions": [{"name": version, "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]
        }
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    for _ in 0..150 {
        let established = crds
            .get(&name)
            .await
            .unwrap()
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the {name} CRD was not Established");
}

async fn install_httproute_crd(client: &kube::Client) {
    install_structural_crd(
        client,
        "gateway.networking.k8s.io",
        "HTTPRoute",
        "httproutes",
        "v1",
    )
    .await;
}

fn istio(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1beta1", kind),
        plural,
    );
    Api::namespaced_with(client.clone(), NS, &resource)
}

fn routes(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    Api::namespaced_with(client.clone(), NS, &resource)
}

async fn status(api: &Api<Rollout>, name: &str) -> RolloutStatus {
    api.get(name).await.unwrap().status.unwrap_or_default()
}

fn condition(s: &RolloutStatus, kind: &str) -> (String, String, String) {
    s.conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// `(service, weight)` of every backendRef of every rule, and the header matches of each rule.
fn backends(route: &DynamicObject) -> Vec<(Vec<(String, i64)>, usize)> {
    route.data["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let refs = rule["backendRefs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap().to_string(),
                        r["weight"].as_i64().unwrap_or(1),
                    )
                })
                .collect();
            let headers = rule["matches"].as_array().map_or(0, |m| {
                m.iter().filter(|m| m.get("headers").is_some()).count()
            });
            (refs, headers)
        })
        .collect()
}

fn pair(stable: i64, canary: i64) -> Vec<(String, i64)> {
    vec![("web-stable".into(), stable), ("web-canary".into(), canary)]
}

async fn replicas(api: &Api<Deployment>, name: &str) -> Option<i32> {
    api.get(name).await.unwrap().spec.unwrap().replicas
}

#[tokio::test]
async fn workloads_and_an_httproute_follow_the_rollout_on_a_real_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ApiServer::start();
    let client = server.client().await;
    install_crds(&client).await;
    install_httproute_crd(&client).await;
    create_namespace(&client, NS).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let mut web = deployment("web:1");
    web.spec.as_mut().unwrap().replicas = Some(4);
    deployments
        .create(&PostParams::default(), &web)
        .await
        .unwrap();
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"parentRefs": [{"name": "public"}], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "backendRefs": [{"name": "web-stable", "port": 80, "weight": 100}, {"name": "web-canary", "port": 80, "weight": 0}]}]}
    }))
    .unwrap();
    routes(&client)
        .create(&PostParams::default(), &route)
        .await
        .unwrap();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let spec = |target: &str, routing: Value| {
        json!({"targetRef": {"name": target},
            "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {"duration": "10m"}}], "scaleDownDelay": "30s"}},
            "trafficRouting": routing})
    };
    let rollout: Rollout = serde_json::from_value(json!({
        "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": spec("web", json!({"gatewayApi": {"httpRoute": "web", "stableService": "web-stable", "canaryService": "web-canary"},
            "matches": [{"header": "x-canary", "value": "always"}]}))
    }))
    .unwrap();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();
    // A neighbour whose router is not installed (Istio).
    let neighbour: Rollout = serde_json::from_value(json!({
        "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "api"},
        "spec": spec("api", json!({"istio": {"virtualService": "api", "destinationRule": "api"}}))
    }))
    .unwrap();
    let mut api_deployment = deployment("api:1");
    api_deployment.metadata.name = Some("api".into());
    deployments
        .create(&PostParams::default(), &api_deployment)
        .await
        .unwrap();
    rollouts
        .create(&PostParams::default(), &neighbour)
        .await
        .unwrap();

    let ctx = Arc::new(Context::new(client.clone(), Arc::new(NoMetrics), now));
    let step = |name: &'static str| {
        let (rollouts, ctx) = (rollouts.clone(), ctx.clone());
        async move {
            reconcile(Arc::new(rollouts.get(name).await.unwrap()), ctx)
                .await
                .unwrap_or_else(|e| panic!("reconcile {name}: {e}"));
        }
    };

    // 1. Adoption: the stable workload is created with the target's 4 pods; the target keeps its
    //    pods until that workload is available, and the router is not touched yet.
    step("web").await;
    assert_eq!(replicas(&deployments, "web-stable").await, Some(4));
    assert_eq!(replicas(&deployments, "web").await, Some(4));
    let s = status(&rollouts, "web").await;
    assert_eq!(s.phase, Some(RolloutPhase::Healthy));
    assert_eq!(condition(&s, "TrafficRouted").1, "WaitingForStable");

    // The Deployment controller's part: the stable workload's pods are up.
    let stable = deployments.get("web-stable").await.unwrap();
    deployments
        .patch_status(
            "web-stable",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"observedGeneration": stable.metadata.generation,
                "replicas": 4, "updatedReplicas": 4, "readyReplicas": 4, "availableReplicas": 4}}),
            ),
        )
        .await
        .unwrap();

    // 2. The target hands its pods over (canary-gate owns only its spec.replicas), and the route
    //    sends everything to stable.
    step("web").await;
    let target = deployments.get("web").await.unwrap();
    assert_eq!(target.spec.as_ref().unwrap().replicas, Some(0));
    let owned: Vec<_> = target
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some("canary-gate"))
        .map(|m| serde_json::to_string(&m.fields_v1).unwrap())
        .collect();
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert!(
        owned[0].contains("f:replicas") && !owned[0].contains("f:template"),
        "{owned:?}"
    );
    assert_eq!(
        backends(&routes(&client).get("web").await.unwrap()),
        vec![(pair(100, 0), 0)]
    );
    let s = status(&rollouts, "web").await;
    assert_eq!(
        condition(&s, "TrafficRouted"),
        (
            "True".into(),
            "Applied".into(),
            "HTTPRoute web: 0% canary".into()
        )
    );

    // 3. A new template: step 0 sends 10 % to the canary workload, and `x-canary: always` to it.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})),
        )
        .await
        .unwrap();
    NOW.fetch_add(10, Ordering::SeqCst);
    step("web").await;
    // A slow canary: its pod is not available yet, so neither the 10 % nor the A/B rule reach
    // the route, and the step's clock has not started.
    let s = status(&rollouts, "web").await;
    assert_eq!(
        (s.phase, s.canary_weight, s.step_started_at.clone()),
        (Some(RolloutPhase::Progressing), Some(0), None)
    );
    assert_eq!(
        condition(&s, "CanaryAvailable"),
        (
            "False".into(),
            "WaitingForPods".into(),
            "web-canary: 0/1 available".into()
        )
    );
    assert_eq!(
        backends(&routes(&client).get("web").await.unwrap()),
        vec![(pair(100, 0), 0)]
    );
    NOW.fetch_add(7, Ordering::SeqCst);
    step("web").await;
    assert_eq!(status(&rollouts, "web").await.canary_weight, Some(0));
    // The pod is up 37 s later: now the weight is in force and the step starts.
    NOW.fetch_add(30, Ordering::SeqCst);
    pods_available(&client, NS, "web-canary", None, json!([])).await;
    step("web").await;
    let s = status(&rollouts, "web").await;
    assert_eq!(
        (s.phase, s.canary_weight),
        (Some(RolloutPhase::Progressing), Some(10))
    );
    assert_eq!(
        s.step_started_at.as_deref().and_then(parse_rfc3339),
        Some(now()),
        "the step's clock starts when its weight is in force"
    );
    assert_eq!(s.traffic.as_deref(), Some("HTTPRoute web: 10% canary"));
    let canary = deployments.get("web-canary").await.unwrap();
    assert_eq!(canary.spec.as_ref().unwrap().replicas, Some(1));
    let image = &canary
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image;
    assert_eq!(image.as_deref(), Some("web:2"));
    assert_eq!(
        backends(&routes(&client).get("web").await.unwrap()),
        vec![(pair(90, 10), 0), (vec![("web-canary".into(), 1)], 1)]
    );
    // The stable workload still runs web:1 with all its pods.
    let stable = deployments.get("web-stable").await.unwrap();
    let image = &stable
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image;
    assert_eq!(image.as_deref(), Some("web:1"));
    assert_eq!(stable.spec.unwrap().replicas, Some(4));

    // A restarted controller (a fresh context) mid-step resumes exactly: the same step and step
    // start, and not one write to the workloads or the route (nothing differs).
    let versions = |client: kube::Client| async move {
        let d: Api<Deployment> = Api::namespaced(client.clone(), NS);
        (
            routes(&client)
                .get("web")
                .await
                .unwrap()
                .metadata
                .resource_version,
            d.get("web-stable").await.unwrap().metadata.resource_version,
            d.get("web-canary").await.unwrap().metadata.resource_version,
        )
    };
    let before = versions(client.clone()).await;
    let step_before = status(&rollouts, "web").await;
    let restarted = Arc::new(Context {
        events: EventWriter::new(client.clone(), Some("replica-b".into())),
        ..Context::new(client.clone(), Arc::new(NoMetrics), now)
    });
    NOW.fetch_add(5, Ordering::SeqCst);
    reconcile(Arc::new(rollouts.get("web").await.unwrap()), restarted)
        .await
        .unwrap();
    assert_eq!(versions(client.clone()).await, before);
    let step_after = status(&rollouts, "web").await;
    assert_eq!(
        (step_after.current_step_index, step_after.step_started_at),
        (step_before.current_step_index, step_before.step_started_at)
    );

    // 4. An abort: all traffic back to stable and the A/B rule gone at once; the canary keeps
    //    its pod for the scale-down delay, then goes to zero.
    act(&rollouts, "abort@1").await;
    NOW.fetch_add(10, Ordering::SeqCst);
    step("web").await;
    let s = status(&rollouts, "web").await;
    assert_eq!(s.phase, Some(RolloutPhase::Aborted));
    assert_eq!(
        backends(&routes(&client).get("web").await.unwrap()),
        vec![(pair(100, 0), 0)]
    );
    assert_eq!(replicas(&deployments, "web-canary").await, Some(1));
    NOW.fetch_add(31, Ordering::SeqCst);
    step("web").await;
    assert_eq!(replicas(&deployments, "web-canary").await, Some(0));
    assert_eq!(replicas(&deployments, "web-stable").await, Some(4));

    // Retry, then a human skips the steps: the promotion keeps all traffic on the canary while
    // the stable workload takes the new template, and only once that has rolled out does traffic
    // go back to it, with web:2 as the stable revision.
    act(&rollouts, "retry@2").await;
    NOW.fetch_add(10, Ordering::SeqCst);
    step("web").await;
    assert_eq!(
        status(&rollouts, "web").await.phase,
        Some(RolloutPhase::Progressing)
    );
    act(&rollouts, "promote-full@3").await;
    NOW.fetch_add(10, Ordering::SeqCst);
    step("web").await;
    step("web").await;
    // All traffic moves to the canary only once it has all 4 pods available: until then the
    // stable keeps web:1 and the route keeps the 10 % in force (the canary's one pod is still
    // reported available; no kubelet here).
    let s = status(&rollouts, "web").await;
    assert_eq!(s.phase, Some(RolloutPhase::Promoting));
    assert_eq!(replicas(&deployments, "web-canary").await, Some(4));
    assert_eq!(
        backends(&routes(&client).get("web").await.unwrap()),
        vec![(pair(90, 10), 0)]
    );
    pods_available(&client, NS, "web-canary", None, json!([])).await;
    NOW.fetch_add(5, Ordering::SeqCst);
    step("web").await;
    step("web").await;
    let s = status(&rollouts, "web").await;
    assert_eq!(s.phase, Some(RolloutPhase::Promoting));
    assert_eq!(
        backends(&routes(&client).get("web").await.unwrap()),
        vec![(pair(0, 100), 0)]
    );
    let stable = deployments.get("web-stable").await.unwrap();
    let image = &stable
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image;
    assert_eq!(image.as_deref(), Some("web:2"));
    assert_eq!(replicas(&deployments, "web-canary").await, Some(4));
    deployments
        .patch_status(
            "web-stable",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"observedGeneration": stable.metadata.generation,
                "replicas": 4, "updatedReplicas": 4, "readyReplicas": 4, "availableReplicas": 4}}),
            ),
        )
        .await
        .unwrap();
    NOW.fetch_add(5, Ordering::SeqCst);
    step("web").await;
    let s = status(&rollouts, "web").await;
    assert_eq!(s.phase, Some(RolloutPhase::Healthy));
    assert!(
        s.previous_stable_revision.is_some() && s.stable_revision != s.previous_stable_revision
    );
    assert_eq!(
        backends(&routes(&client).get("web").await.unwrap()),
        vec![(pair(100, 0), 0)]
    );

    // 5. The neighbour: its stable workload becomes available, then its router is found missing.
    step("api").await;
    let stable = deployments.get("api-stable").await.unwrap();
    deployments
        .patch_status(
            "api-stable",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"observedGeneration": stable.metadata.generation,
                "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
            ),
        )
        .await
        .unwrap();
    step("api").await;
    let s = status(&rollouts, "api").await;
    let (state, reason, message) = condition(&s, "TrafficRouted");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("False", "RouterNotInstalled"),
        "{message}"
    );
    assert!(
        message.contains("install the CRD destinationrules.networking.istio.io"),
        "{message}"
    );
    // The first Rollout is untouched by its neighbour's problem.
    assert_eq!(
        condition(&status(&rollouts, "web").await, "TrafficRouted").0,
        "True"
    );

    // 6. Deleting a Rollout gives its Deployment the pods back before the finalizer lets go.
    rollouts
        .delete("web", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    step("web").await;
    assert_eq!(replicas(&deployments, "web").await, Some(4));
    assert!(rollouts.get_opt("web").await.unwrap().is_none(), "deleted");
}

#[tokio::test]
async fn istio_subsets_and_route_weights_with_a_cookie_match_on_a_real_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ApiServer::start();
    let client = server.client().await;
    install_crds(&client).await;
    install_structural_crd(
        &client,
        "networking.istio.io",
        "DestinationRule",
        "destinationrules",
        "v1beta1",
    )
    .await;
    install_structural_crd(
        &client,
        "networking.istio.io",
        "VirtualService",
        "virtualservices",
        "v1beta1",
    )
    .await;
    create_namespace(&client, NS).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let mut web = deployment("web:1");
    web.spec.as_mut().unwrap().replicas = Some(2);
    deployments
        .create(&PostParams::default(), &web)
        .await
        .unwrap();
    let host = "web.traffic-test.svc.cluster.local";
    let rules = istio(&client, "DestinationRule", "destinationrules");
    rules
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
                "metadata": {"name": "web", "namespace": NS}, "spec": {"host": host}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let services = istio(&client, "VirtualService", "virtualservices");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                "metadata": {"name": "web", "namespace": NS}, "spec": {"hosts": [host], "http": [
                    {"name": "primary", "route": [{"destination": {"host": host, "subset": "stable"}, "weight": 100}]}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    rollouts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
                "spec": {"targetRef": {"name": "web"},
                    "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "10m"}}]}},
                    "trafficRouting": {"istio": {"virtualService": "web", "destinationRule": "web"},
                        "matches": [{"cookie": "beta", "value": "yes"}]}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let ctx = Arc::new(Context::new(client.clone(), Arc::new(NoMetrics), now));
    let step = || {
        let (rollouts, ctx) = (rollouts.clone(), ctx.clone());
        async move {
            reconcile(Arc::new(rollouts.get("web").await.unwrap()), ctx)
                .await
                .unwrap();
        }
    };
    step().await;
    let stable = deployments.get("web-stable").await.unwrap();
    deployments
        .patch_status(
            "web-stable",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"observedGeneration": stable.metadata.generation,
                "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}}),
            ),
        )
        .await
        .unwrap();
    step().await;
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})),
        )
        .await
        .unwrap();
    step().await;
    // The canary's pod comes up: the weight and the cookie route come into force.
    pods_available(&client, NS, "web-canary", None, json!([])).await;
    step().await;

    // The subsets select pods by canary-gate's version label.
    let rule = rules.get("web").await.unwrap();
    assert_eq!(
        rule.data["spec"]["subsets"],
        json!([{"name": "stable", "labels": {"canarygate.dev/version": "stable"}},
               {"name": "canary", "labels": {"canarygate.dev/version": "canary"}}])
    );
    // The cookie route first, then the weighted route at 20 %.
    let vs = services.get("web").await.unwrap();
    let http = vs.data["spec"]["http"].as_array().unwrap();
    assert_eq!(http.len(), 2, "{http:?}");
    assert_eq!(http[0]["name"], "canary-gate-ab-0");
    assert_eq!(http[0]["route"][0]["destination"]["subset"], "canary");
    assert!(
        http[0]["match"][0]["headers"]["cookie"]["regex"]
            .as_str()
            .unwrap()
            .contains("beta=yes"),
        "{http:?}"
    );
    assert_eq!(http[1]["name"], "primary");
    assert_eq!(
        (
            http[1]["route"][0]["weight"].as_i64(),
            http[1]["route"][1]["weight"].as_i64()
        ),
        (Some(80), Some(20))
    );
    let s = status(&rollouts, "web").await;
    assert_eq!(
        s.traffic.as_deref(),
        Some("DestinationRule web: applied; VirtualService web: 20% canary")
    );
}
