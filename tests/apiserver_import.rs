//! `canary-gate import` output round-trips through a real kube-apiserver: the binary imports
//! each fixture set, the real `kubectl apply -f` (client-side validation against the published
//! schemas) creates every object — canary-gate's CRDs, Deployments, Services, Ingresses, and the
//! Istio / Gateway API objects (their CRDs installed as structural stand-ins) — and what the API
//! server stored reads back as Rollouts that pass the controller's validation and templates that
//! pass `template`'s.

mod support;

use std::path::Path;
use std::process::Command;

use canary_gate::crd::{AnalysisTemplate, Rollout};
use kube::api::{Api, ListParams};
use support::apiserver::{ApiServer, create_namespace, install_crds};

/// The real `kubectl` against `server` with `stdin`: (success, stdout and stderr together).
fn kubectl(server: &ApiServer, args: &[&str], stdin: &str) -> (bool, String) {
    let (ok, out, err) = server.kubectl(args, stdin);
    (ok, format!("{out}{err}"))
}

/// A CRD that stores any `spec` (the real Istio / Gateway API schemas are not needed here).
fn structural_crd(group: &str, kind: &str, plural: &str, version: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
  annotations: {{api-approved.kubernetes.io: "https://github.com/kubernetes-sigs/gateway-api/pull/891"}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: {plural}, singular: {singular}, kind: {kind}, listKind: {kind}List}}
  versions:
    - name: {version}
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
        singular = kind.to_lowercase()
    )
}

fn import(peer: &str, files: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import");
    let out = Command::new(env!("CARGO_BIN_EXE_canary-gate"))
        .args(["import", peer])
        .args(files.iter().map(|f| root.join(f)))
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "import {peer} {files:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn imported_manifests_apply_with_kubectl_and_read_back_valid() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ApiServer::start();
    let client = server.client().await;
    install_crds(&client).await;
    for (group, kind, plural, version) in [
        (
            "networking.istio.io",
            "VirtualService",
            "virtualservices",
            "v1beta1",
        ),
        (
            "networking.istio.io",
            "DestinationRule",
            "destinationrules",
            "v1beta1",
        ),
        ("gateway.networking.k8s.io", "HTTPRoute", "httproutes", "v1"),
    ] {
        let (ok, out) = kubectl(
            &server,
            &["apply", "-f", "-"],
            &structural_crd(group, kind, plural, version),
        );
        assert!(ok, "{out}");
    }
    for ns in ["shop", "store"] {
        create_namespace(&client, ns).await;
    }
    let sets: &[(&str, &[&str])] = &[
        ("argo", &["argo/canary-istio.yaml", "argo/analysis.yaml"]),
        ("argo", &["argo/bluegreen.yaml"]),
        ("argo", &["argo/workload-ref-nginx.yaml"]),
        ("argo", &["argo/plain-canary.yaml"]),
        ("argo", &["argo/gateway-smi.yaml"]),
        ("flagger", &["flagger/istio.yaml"]),
        ("flagger", &["flagger/nginx-ab.yaml"]),
        ("flagger", &["flagger/gatewayapi.yaml"]),
        ("flagger", &["flagger/blue-green.yaml"]),
        ("flagger", &["flagger/linkerd.yaml"]),
        ("flagger", &["flagger/alerts.yaml"]),
    ];
    // The CRDs' types reach kubectl's discovery a moment after they are Established.
    let mut last = String::new();
    for _ in 0..50 {
        let (ok, out) = kubectl(
            &server,
            &["get", "virtualservices,destinationrules,httproutes", "-A"],
            "",
        );
        if ok {
            break;
        }
        last = out;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        !last.contains("the server doesn't have a resource type") || last.is_empty(),
        "{last}"
    );
    for (peer, files) in sets {
        let yaml = import(peer, files);
        let (ok, out) = kubectl(&server, &["apply", "-f", "-"], &yaml);
        assert!(
            ok,
            "kubectl apply of import {peer} {files:?}:\n{out}\n{yaml}"
        );
    }
    // What the API server stored is what canary-gate reads.
    let rollouts: Api<Rollout> = Api::all(client.clone());
    let stored = rollouts.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = stored
        .items
        .iter()
        .map(|r| r.metadata.name.clone().unwrap_or_default())
        .collect();
    for r in &stored.items {
        canary_gate::controller::validate::validate(&r.spec)
            .unwrap_or_else(|e| panic!("stored Rollout {:?}: {e}", r.metadata.name));
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "api",
            "billing",
            "cart",
            "catalog",
            "checkout",
            "frontend",
            "inventory",
            "ledger",
            "orders",
            "search",
            "search",
            "shop-web"
        ]
    );
    let templates: Api<AnalysisTemplate> = Api::all(client.clone());
    let stored = templates.list(&ListParams::default()).await.unwrap();
    let mut names = Vec::new();
    for t in stored.items {
        let name = t.metadata.name.clone().unwrap_or_default();
        canary_gate::template::from_spec(
            "AnalysisTemplate",
            &name,
            t.metadata.namespace.as_deref(),
            t.spec.0,
            &name,
        )
        .unwrap_or_else(|e| panic!("stored template {name}: {e}"));
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["billing", "cart", "frontend", "http-slo", "search"]);
    // The generated Services and routing objects are there, as kubectl shows them.
    let (ok, out) = kubectl(
        &server,
        &[
            "get",
            "services,virtualservices,destinationrules,httproutes,ingresses",
            "-n",
            "store",
            "-o",
            "name",
        ],
        "",
    );
    assert!(ok, "{out}");
    for expected in [
        "service/frontend-canary",
        "service/frontend-primary",
        "virtualservice.networking.istio.io/frontend",
        "destinationrule.networking.istio.io/frontend",
        "httproute.gateway.networking.k8s.io/search",
    ] {
        assert!(out.contains(expected), "{expected} missing:\n{out}");
    }
}
