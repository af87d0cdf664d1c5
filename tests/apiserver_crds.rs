//! The CRDs on a real kube-apiserver: `canary-gate crd` output applies and becomes Established,
//! Rollouts with every field (canary and blue-green) and every shipped analysis template
//! round-trip, the status subresource works, printer columns show in a table GET, and invalid
//! objects are rejected by the schema with a message naming the field.
//!
//! One API server for the whole binary (≈ 5 s to start), so the scenarios run in one test.

mod support;

use std::time::{Duration, Instant};

use canary_gate::crd::analysis_template::AnalysisTemplateBody;
use canary_gate::crd::{AnalysisTemplate, ClusterAnalysisTemplate, Rollout};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use support::apiserver::{ApiServer, create_namespace};

const NS: &str = "crd-test";

const CANARY: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: Rollout
metadata: {name: web, namespace: crd-test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  strategy:
    canary:
      maxWeight: 80
      scaleDownDelay: 45s
      analysis:
        templates: [{templateName: generic-http}]
        args: [{name: service, value: web}]
      steps:
        - setWeight: 5
        - pause: {duration: 5m}
        - analysis: {templates: [{templateName: slo-absolute, clusterScope: true}]}
        - setWeight: 50
        - pause: {}
  trafficRouting:
    gatewayApi: {httpRoute: web, stableService: web, canaryService: web-canary}
    istio: {virtualService: web, destinationRule: web}
    nginx: {stableIngress: web, stableService: web, canaryService: web-canary}
    matches: [{header: x-canary, value: "yes"}, {cookie: canary, value: always}]
"#;

const BLUE_GREEN: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: Rollout
metadata: {name: shop, namespace: crd-test}
spec:
  targetRef: {name: shop}
  strategy:
    blueGreen:
      activeService: shop
      previewService: shop-preview
      prePromotionAnalysis: {templates: [{templateName: generic-http}], args: [{name: service, value: shop-preview}]}
      autoPromotion: false
      scaleDownDelay: 30s
"#;

#[tokio::test]
async fn the_crds_work_on_a_real_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ApiServer::start();
    let client = server.client().await;

    // 1. `canary-gate crd` output applies and becomes Established.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
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
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("the API server accepts the CRD");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in [
        "rollouts.canarygate.dev",
        "analysistemplates.canarygate.dev",
        "clusteranalysistemplates.canarygate.dev",
    ] {
        loop {
            let crd = crds.get(name).await.unwrap();
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not Established");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    create_namespace(&client, NS).await;

    // 2. Rollouts with every field round-trip.
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    for yaml in [CANARY, BLUE_GREEN] {
        let rollout: Rollout = serde_saphyr::from_str(yaml).unwrap();
        let name = rollout.metadata.name.clone().unwrap();
        rollouts
            .create(&PostParams::default(), &rollout)
            .await
            .expect("a valid Rollout is accepted");
        let back = rollouts.get(&name).await.unwrap();
        assert_eq!(back.spec, rollout.spec, "{name} round-trips");
    }

    // 3. The status subresource, and the printer columns in a table GET.
    let status = json!({"status": {"phase": "Holding", "currentStepIndex": 1, "canaryWeight": 5, "lastDecision": "hold",
        "decisions": [{"time": "2026-11-23T10:00:00Z", "step": 1, "weight": 5, "decision": "hold", "reason": "insufficient traffic",
            "metrics": [{"name": "error-rate", "verdict": "inconclusive", "reason": "insufficient traffic", "eValue": 1.5, "failAt": 200.0}]}]}});
    rollouts
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status is writable");
    let back = rollouts.get("web").await.unwrap();
    let st = back.status.expect("status stored");
    assert_eq!(
        (st.current_step_index, st.canary_weight, st.decisions.len()),
        (Some(1), Some(5), 1)
    );
    let request = http::Request::get(format!(
        "/apis/canarygate.dev/v1alpha1/namespaces/{NS}/rollouts"
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .unwrap();
    let table: serde_json::Value = client.request(request).await.expect("table GET");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["Name", "Phase", "Step", "Weight", "Verdict", "Age"]
    );
    let web = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == "web")
        .unwrap();
    assert_eq!(web["cells"][1], "Holding");
    assert_eq!(web["cells"][3], 5);
    assert_eq!(web["cells"][4], "hold");

    // 4. Invalid objects are rejected by the schema, naming the field.
    let dynamic: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &ApiResource::erase::<Rollout>(&()));
    let invalid = [
        (
            json!({"targetRef": {"name": "x"}, "strategy": {"canary": {"steps": [{"setWeight": "five"}]}}}),
            "setWeight",
        ),
        (
            json!({"strategy": {"canary": {"steps": []}}}),
            "spec.targetRef",
        ),
        (
            json!({"targetRef": {"name": "x"}, "strategy": {"blueGreen": {"autoPromotion": "sometimes"}}}),
            "autoPromotion",
        ),
    ];
    for (i, (spec, field)) in invalid.into_iter().enumerate() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": format!("bad-{i}")}, "spec": spec,
        }))
        .unwrap();
        match dynamic.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{e:?}");
                assert!(
                    e.message.contains(field),
                    "the rejection names {field}: {}",
                    e.message
                );
            }
            other => panic!("invalid Rollout {i} was not rejected: {other:?}"),
        }
    }

    // 5. Every shipped analysis template applies as an AnalysisTemplate (and one as a
    //    ClusterAnalysisTemplate) and round-trips.
    let templates: Api<AnalysisTemplate> = Api::namespaced(client.clone(), NS);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/analysis-templates");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in &files {
        let t = canary_gate::template::load(path).unwrap();
        let object = AnalysisTemplate::new(t.name(), AnalysisTemplateBody(t.file.spec.clone()));
        templates
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            templates.get(t.name()).await.unwrap().spec.0,
            t.file.spec,
            "{} round-trips",
            path.display()
        );
    }
    let cluster: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
    let t = canary_gate::template::load(&files[0]).unwrap();
    cluster
        .create(
            &PostParams::default(),
            &ClusterAnalysisTemplate::new(
                t.name(),
                canary_gate::crd::analysis_template::ClusterAnalysisTemplateBody(
                    t.file.spec.clone(),
                ),
            ),
        )
        .await
        .unwrap();
    assert_eq!(cluster.get(t.name()).await.unwrap().spec.0, t.file.spec);
}

/// Runs the real `kubectl` against `server` with `stdin`; returns (success, stdout, stderr).
fn kubectl(server: &ApiServer, args: &[&str], stdin: &str) -> (bool, String, String) {
    server.kubectl(args, stdin)
}

#[tokio::test]
async fn kubectl_explains_every_field_and_refuses_a_misspelt_one() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ApiServer::start();
    let client = server.client().await;
    support::apiserver::install_crds(&client).await;
    create_namespace(&client, "shop").await;
    // The published schema takes a moment to reach the OpenAPI document kubectl reads.
    let deadline = Instant::now() + Duration::from_secs(30);
    let explained = loop {
        let (ok, out, err) = kubectl(&server, &["explain", "rollouts.spec.strategy.canary"], "");
        if ok && out.contains("FIELDS:") {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl explain shows no FIELDS: {out}{err}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    for field in ["steps", "analysis", "maxWeight", "scaleDownDelay"] {
        assert!(explained.contains(field), "{field} in {explained}");
    }
    let (ok, out, _) = kubectl(&server, &["explain", "rollouts.spec.progressDeadline"], "");
    assert!(ok && out.contains("10m"), "{out}");
    // kubectl's own validation names a misspelt field instead of storing an empty step.
    let typo = "apiVersion: canarygate.dev/v1alpha1\nkind: Rollout\nmetadata: {name: web, namespace: shop}\nspec:\n  targetRef: {name: web}\n  strategy:\n    canary:\n      steps: [{setWieght: 10}]\n";
    let (ok, out, err) = kubectl(&server, &["apply", "-f", "-"], typo);
    assert!(!ok, "a misspelt field is refused: {out}");
    assert!(err.contains("setWieght"), "{err}");
    let fixed = typo.replace("setWieght", "setWeight");
    let (ok, out, err) = kubectl(&server, &["apply", "-f", "-"], &fixed);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = kubectl(&server, &["get", "cgr", "-n", "shop"], "");
    assert!(ok && out.contains("web"), "{out}{err}");
}
