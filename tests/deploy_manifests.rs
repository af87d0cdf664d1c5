//! The install manifests under `deploy/` and the `Dockerfile`: every document is a typed
//! Kubernetes object with no field the type does not know, kustomize lists exactly the files that
//! exist, the RBAC grants exactly what the controller uses (no wildcards, the Lease only in its own
//! namespace), the Deployment matches the binary's contract (probes, port, identity, locked-down
//! non-root), and the image builds the `canary-gate` binary and runs it non-root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const NAMESPACE: &str = "canary-gate-system";
const SERVICE_ACCOUNT: &str = "canary-gate";
/// The controller's `--listen` default.
const DEFAULT_LISTEN_PORT: i32 = 8080;
const MUSL: &str = "x86_64-unknown-linux-musl";

// ---------------------------------------------------------------------------------------------
// Loading

/// One typed object per YAML document.
#[derive(Debug)]
enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    Deployment(Box<Deployment>),
    Service(Service),
    CustomResourceDefinition(CustomResourceDefinition),
}

#[derive(Debug)]
struct Doc {
    /// Path relative to `deploy/`.
    file: String,
    /// The document as written.
    raw: Value,
    object: Object,
}

fn deploy_dir() -> PathBuf {
    Path::new(ROOT).join("deploy")
}

/// Every `.yaml`/`.yml` file under `deploy/`, as paths relative to it with `/` separators.
fn yaml_files() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                let rel = path.strip_prefix(base).unwrap();
                let parts: Vec<_> = rel.iter().map(|p| p.to_str().unwrap()).collect();
                out.push(parts.join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(&deploy_dir(), &deploy_dir(), &mut out);
    out.sort();
    out
}

fn read_deploy(file: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(file))
        .unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// The documents of a YAML stream, split on lines that are exactly `---`, without the ones that
/// hold only comments and blank lines.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().unwrap();
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.into_iter()
        .filter(|doc| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

fn typed<T: serde::de::DeserializeOwned>(file: &str, doc: &str) -> T {
    serde_saphyr::from_str(doc).unwrap_or_else(|e| {
        panic!(
            "deploy/{file}: a {} document does not parse: {e}\n{doc}",
            std::any::type_name::<T>()
        )
    })
}

/// Every Kubernetes document under `deploy/` (all files but `kustomization.yaml`), typed by its
/// `kind`. Panics on a kind this install does not ship.
fn load() -> Vec<Doc> {
    let mut out = Vec::new();
    for file in yaml_files() {
        if file == "kustomization.yaml" {
            continue;
        }
        for doc in documents(&read_deploy(&file)) {
            let raw: Value = serde_saphyr::from_str(&doc)
                .unwrap_or_else(|e| panic!("deploy/{file}: not YAML: {e}\n{doc}"));
            let kind = raw["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("deploy/{file}: no kind"));
            let object = match kind {
                "Namespace" => Object::Namespace(typed(&file, &doc)),
                "ServiceAccount" => Object::ServiceAccount(typed(&file, &doc)),
                "ClusterRole" => Object::ClusterRole(typed(&file, &doc)),
                "ClusterRoleBinding" => Object::ClusterRoleBinding(typed(&file, &doc)),
                "Role" => Object::Role(typed(&file, &doc)),
                "RoleBinding" => Object::RoleBinding(typed(&file, &doc)),
                "Deployment" => Object::Deployment(Box::new(typed(&file, &doc))),
                "Service" => Object::Service(typed(&file, &doc)),
                "CustomResourceDefinition" => Object::CustomResourceDefinition(typed(&file, &doc)),
                other => panic!("deploy/{file}: unexpected kind {other:?}"),
            };
            out.push(Doc {
                file: file.clone(),
                raw,
                object,
            });
        }
    }
    out
}

macro_rules! all_of {
    ($docs:expr, $variant:ident) => {
        $docs
            .iter()
            .filter_map(|d| match &d.object {
                Object::$variant(o) => Some(o),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
}

fn serialize(object: &Object) -> Value {
    match object {
        Object::Namespace(o) => serde_json::to_value(o),
        Object::ServiceAccount(o) => serde_json::to_value(o),
        Object::ClusterRole(o) => serde_json::to_value(o),
        Object::ClusterRoleBinding(o) => serde_json::to_value(o),
        Object::Role(o) => serde_json::to_value(o),
        Object::RoleBinding(o) => serde_json::to_value(o),
        Object::Deployment(o) => serde_json::to_value(o),
        Object::Service(o) => serde_json::to_value(o),
        Object::CustomResourceDefinition(o) => serde_json::to_value(o),
    }
    .unwrap()
}

/// Paths where `written` and `typed` differ: a key the type dropped (a typo or a field it does not
/// have), or a value it read differently.
fn differences(path: &str, written: &Value, typed: &Value, out: &mut Vec<String>) {
    match (written, typed) {
        (Value::Object(w), Value::Object(t)) => {
            for key in w.keys().chain(t.keys()).collect::<BTreeSet<_>>() {
                let here = format!("{path}.{key}");
                match (w.get(key), t.get(key)) {
                    (Some(a), Some(b)) => differences(&here, a, b, out),
                    (Some(_), None) => out.push(format!("{here}: not a field of the type")),
                    (None, Some(_)) => out.push(format!("{here}: added by the type")),
                    (None, None) => unreachable!(),
                }
            }
        }
        (Value::Array(w), Value::Array(t)) if w.len() == t.len() => {
            for (i, (a, b)) in w.iter().zip(t).enumerate() {
                differences(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: written {a}, read as {b}")),
    }
}

fn the_deployment(docs: &[Doc]) -> &Deployment {
    let deployments = all_of!(docs, Deployment);
    assert_eq!(deployments.len(), 1, "one Deployment");
    deployments[0]
}

fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("the Deployment has a pod spec")
}

fn the_container(deployment: &Deployment) -> &Container {
    let containers = &pod_spec(deployment).containers;
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

fn args(container: &Container) -> &[String] {
    container.args.as_deref().unwrap_or_default()
}

/// The value of `--flag V` or `--flag=V` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            Some(args.get(i + 1).expect("a value after the flag").as_str())
        } else {
            a.strip_prefix(&eq)
        }
    })
}

/// The port the controller serves `/livez`, `/readyz` and `/metrics` on, from `--listen`.
fn listen_port(container: &Container) -> i32 {
    match flag(args(container), "--listen") {
        None => DEFAULT_LISTEN_PORT,
        Some(addr) => addr
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("--listen {addr}: no port")),
    }
}

/// A probe or Service port, by number or by the container port's name.
fn resolve_port(container: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("no container port named {name:?}"))
                .container_port
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Every document is a typed object; kustomize lists what exists

#[test]
fn every_deploy_yaml_document_parses_into_its_typed_kubernetes_object() {
    let docs = load();
    let mut unknown = Vec::new();
    for doc in &docs {
        differences(
            &format!("deploy/{}", doc.file),
            &doc.raw,
            &serialize(&doc.object),
            &mut unknown,
        );
    }
    assert!(
        unknown.is_empty(),
        "the typed objects do not read the manifests as written:\n{}",
        unknown.join("\n")
    );

    let mut kinds = BTreeMap::<&str, usize>::new();
    for doc in &docs {
        *kinds.entry(doc.raw["kind"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("ClusterRole", 1),
            ("ClusterRoleBinding", 1),
            ("CustomResourceDefinition", 3),
            ("Deployment", 1),
            ("Namespace", 1),
            ("Role", 1),
            ("RoleBinding", 1),
            ("Service", 1),
            ("ServiceAccount", 1),
        ])
    );

    // Namespaced objects live in the Namespace this install creates.
    let namespaces = all_of!(docs, Namespace);
    assert_eq!(namespaces[0].metadata.name.as_deref(), Some(NAMESPACE));
    for doc in &docs {
        let namespaced = matches!(
            doc.object,
            Object::ServiceAccount(_)
                | Object::Role(_)
                | Object::RoleBinding(_)
                | Object::Deployment(_)
                | Object::Service(_)
        );
        let ns = doc.raw["metadata"]["namespace"].as_str();
        let name = &doc.raw["metadata"]["name"];
        if namespaced {
            assert_eq!(ns, Some(NAMESPACE), "deploy/{}: {name}", doc.file);
        } else {
            assert_eq!(ns, None, "deploy/{}: {name} is cluster-scoped", doc.file);
        }
    }
}

#[test]
fn every_deploy_yaml_file_starts_with_a_comment() {
    for file in yaml_files() {
        let text = read_deploy(&file);
        assert!(
            text.starts_with("# "),
            "deploy/{file} starts with a comment saying what it is"
        );
    }
}

#[test]
fn kustomization_lists_exactly_the_manifests_that_exist() {
    let kustomization: Value = serde_saphyr::from_str(&read_deploy("kustomization.yaml")).unwrap();
    assert_eq!(
        kustomization["apiVersion"],
        "kustomize.config.k8s.io/v1beta1"
    );
    assert_eq!(kustomization["kind"], "Kustomization");
    let keys: BTreeSet<_> = kustomization.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            &"apiVersion".to_string(),
            &"kind".to_string(),
            &"resources".to_string()
        ]),
        "only a resources list: no namespace, prefix or patches that would rewrite the manifests"
    );
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .expect("resources is a list")
        .iter()
        .map(|r| r.as_str().expect("a file name"))
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a file listed twice: {listed:?}"
    );
    let existing: BTreeSet<String> = yaml_files()
        .into_iter()
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(
        unique,
        existing.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    assert_eq!(listed[0], "crds/canarygate.dev.yaml", "the CRDs come first");
}

/// Fields added to the objects this install uses after Kubernetes 1.20, by (parent key, key):
/// not exhaustive, but the ones a manifest edit is likely to reach for.
const NEWER_THAN_1_20: &[(&str, &str, &str)] = &[
    ("spec", "os", "1.23"),
    ("spec", "hostUsers", "1.25"),
    ("spec", "schedulingGates", "1.26"),
    ("spec", "resourceClaims", "1.26"),
    ("spec", "internalTrafficPolicy", "1.21"),
    ("spec", "loadBalancerClass", "1.21"),
    ("spec", "trafficDistribution", "1.30"),
    ("containers", "resizePolicy", "1.27"),
    ("containers", "restartPolicy", "1.28"),
    ("initContainers", "restartPolicy", "1.28"),
    ("livenessProbe", "grpc", "1.23"),
    ("readinessProbe", "grpc", "1.23"),
    ("startupProbe", "grpc", "1.23"),
    ("livenessProbe", "terminationGracePeriodSeconds", "1.21"),
    ("startupProbe", "terminationGracePeriodSeconds", "1.21"),
    ("securityContext", "appArmorProfile", "1.30"),
    ("securityContext", "supplementalGroupsPolicy", "1.31"),
    ("securityContext", "seLinuxChangePolicy", "1.32"),
    ("resources", "claims", "1.26"),
    ("topologySpreadConstraints", "minDomains", "1.24"),
    ("topologySpreadConstraints", "matchLabelKeys", "1.25"),
    ("topologySpreadConstraints", "nodeAffinityPolicy", "1.25"),
    ("topologySpreadConstraints", "nodeTaintsPolicy", "1.25"),
    ("preStop", "sleep", "1.29"),
    ("postStart", "sleep", "1.29"),
    ("lifecycle", "stopSignal", "1.33"),
];

/// API versions every API server from 1.20 on serves, by kind.
const API_VERSIONS: &[(&str, &str)] = &[
    ("Namespace", "v1"),
    ("ServiceAccount", "v1"),
    ("Service", "v1"),
    ("Deployment", "apps/v1"),
    ("ClusterRole", "rbac.authorization.k8s.io/v1"),
    ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
    ("Role", "rbac.authorization.k8s.io/v1"),
    ("RoleBinding", "rbac.authorization.k8s.io/v1"),
    ("CustomResourceDefinition", "apiextensions.k8s.io/v1"),
];

#[test]
fn manifests_use_no_api_version_or_field_newer_than_kubernetes_1_20() {
    fn walk(parent: &str, path: &str, v: &Value, hits: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = format!("{path}.{key}");
                    if let Some((_, _, since)) = NEWER_THAN_1_20
                        .iter()
                        .find(|(p, k, _)| *p == parent && k == key)
                    {
                        hits.push(format!("{here} (Kubernetes {since})"));
                    }
                    walk(key, &here, child, hits);
                }
            }
            // Array items keep the array's key as their parent: `containers[0].resizePolicy`.
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(parent, &format!("{path}[{i}]"), item, hits);
                }
            }
            _ => {}
        }
    }
    let mut hits = Vec::new();
    for doc in load() {
        let kind = doc.raw["kind"].as_str().unwrap();
        let expected = API_VERSIONS.iter().find(|(k, _)| *k == kind).unwrap().1;
        assert_eq!(
            doc.raw["apiVersion"], expected,
            "deploy/{}: {kind}",
            doc.file
        );
        match doc.object {
            // CRD schemas name arbitrary properties; what matters there is no CEL and no
            // selectable fields (1.25, 1.30), which older API servers drop.
            Object::CustomResourceDefinition(_) => {
                let text = doc.raw.to_string();
                for newer in ["x-kubernetes-validations", "selectableFields"] {
                    assert!(!text.contains(newer), "deploy/{}: {newer}", doc.file);
                }
            }
            _ => walk("", &format!("deploy/{}", doc.file), &doc.raw, &mut hits),
        }
    }
    assert!(
        hits.is_empty(),
        "fields a 1.20 API server does not have:\n{}",
        hits.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// (b) RBAC: least privilege, exactly

/// Where a rule applies: cluster-wide (a ClusterRole) or in one namespace (a Role).
type Scope = Option<String>;

/// What the controller does with the API, as (scope, group, resource, verb).
fn expected_grants() -> BTreeSet<(Scope, String, String, String)> {
    let cluster: &[(&str, &str, &[&str])] = &[
        (
            "canarygate.dev",
            "rollouts",
            &["get", "list", "watch", "patch"],
        ),
        (
            "canarygate.dev",
            "rollouts/status",
            &["get", "patch", "update"],
        ),
        (
            "canarygate.dev",
            "analysistemplates",
            &["get", "list", "watch"],
        ),
        (
            "canarygate.dev",
            "clusteranalysistemplates",
            &["get", "list", "watch"],
        ),
        (
            "apps",
            "deployments",
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        ("apps", "replicasets", &["list"]),
        ("", "pods", &["list"]),
        (
            "autoscaling",
            "horizontalpodautoscalers",
            &["list", "watch"],
        ),
        ("", "services", &["get", "patch"]),
        (
            "networking.k8s.io",
            "ingresses",
            &["get", "create", "patch"],
        ),
        ("gateway.networking.k8s.io", "httproutes", &["get", "patch"]),
        ("networking.istio.io", "virtualservices", &["get", "patch"]),
        ("networking.istio.io", "destinationrules", &["get", "patch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
    ];
    let namespaced: &[(&str, &str, &[&str])] = &[(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    )];
    let mut out = BTreeSet::new();
    for (scope, rules) in [(None, cluster), (Some(NAMESPACE.to_string()), namespaced)] {
        for (group, resource, verbs) in rules {
            for verb in *verbs {
                out.insert((
                    scope.clone(),
                    group.to_string(),
                    resource.to_string(),
                    verb.to_string(),
                ));
            }
        }
    }
    out
}

/// Every role as (kind, namespace, name, rules).
fn roles(docs: &[Doc]) -> Vec<(&'static str, Scope, String, &[PolicyRule])> {
    let mut out = Vec::new();
    for role in all_of!(docs, ClusterRole) {
        assert!(
            role.aggregation_rule.is_none(),
            "an aggregated ClusterRole grants what other roles say"
        );
        out.push((
            "ClusterRole",
            None,
            role.metadata.name.clone().unwrap(),
            role.rules.as_deref().unwrap_or_default(),
        ));
    }
    for role in all_of!(docs, Role) {
        out.push((
            "Role",
            role.metadata.namespace.clone(),
            role.metadata.name.clone().unwrap(),
            role.rules.as_deref().unwrap_or_default(),
        ));
    }
    out
}

#[test]
fn rbac_has_no_wildcards_resource_names_or_non_resource_urls() {
    let docs = load();
    for (kind, _, name, rules) in roles(&docs) {
        assert!(!rules.is_empty(), "{kind} {name} grants nothing");
        for rule in rules {
            let lists = [
                ("apiGroups", rule.api_groups.as_deref().unwrap_or_default()),
                ("resources", rule.resources.as_deref().unwrap_or_default()),
                ("verbs", rule.verbs.as_slice()),
            ];
            for (field, values) in lists {
                assert!(!values.is_empty(), "{kind} {name}: a rule without {field}");
                assert!(
                    values.iter().all(|v| !v.contains('*')),
                    "{kind} {name}: a wildcard in {field}: {values:?}"
                );
            }
            assert!(
                rule.non_resource_urls.is_none(),
                "{kind} {name}: nonResourceURLs"
            );
            assert!(
                rule.resource_names.is_none(),
                "{kind} {name}: resourceNames"
            );
        }
    }
}

#[test]
fn rbac_grants_exactly_what_the_controller_uses_and_leases_only_in_its_namespace() {
    let docs = load();
    let mut granted = BTreeSet::new();
    for (_, scope, _, rules) in roles(&docs) {
        for rule in rules {
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        granted.insert((
                            scope.clone(),
                            group.clone(),
                            resource.clone(),
                            verb.clone(),
                        ));
                    }
                }
            }
        }
    }
    let expected = expected_grants();
    let extra: Vec<_> = granted.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&granted).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "RBAC differs from what the controller uses\n  granted but unused: {extra:?}\n  used but not granted: {missing:?}"
    );
    for (kind, scope, name, rules) in roles(&docs) {
        let leases = rules.iter().any(|r| {
            r.resources
                .iter()
                .flatten()
                .any(|res| res.starts_with("leases"))
        });
        if leases {
            assert_eq!(
                (kind, scope.as_deref()),
                ("Role", Some(NAMESPACE)),
                "{kind} {name}: leases only in a Role in the controller's namespace"
            );
        }
    }
}

#[test]
fn rbac_binds_every_role_to_the_controller_service_account_and_nothing_else() {
    let docs = load();
    let service_accounts = all_of!(docs, ServiceAccount);
    assert_eq!(service_accounts.len(), 1);
    assert_eq!(
        (
            service_accounts[0].metadata.name.as_deref(),
            service_accounts[0].metadata.namespace.as_deref()
        ),
        (Some(SERVICE_ACCOUNT), Some(NAMESPACE))
    );
    let the_controller = vec![Subject {
        kind: "ServiceAccount".into(),
        name: SERVICE_ACCOUNT.into(),
        namespace: Some(NAMESPACE.into()),
        api_group: None,
    }];

    // (kind, namespace, name) of each role a binding points at.
    let mut bound = BTreeSet::new();
    for binding in all_of!(docs, ClusterRoleBinding) {
        let name = binding.metadata.name.as_deref().unwrap();
        assert_eq!(
            binding.subjects.as_ref(),
            Some(&the_controller),
            "ClusterRoleBinding {name}"
        );
        assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
        assert_eq!(
            binding.role_ref.kind, "ClusterRole",
            "ClusterRoleBinding {name}"
        );
        bound.insert(("ClusterRole", None, binding.role_ref.name.clone()));
    }
    for binding in all_of!(docs, RoleBinding) {
        let name = binding.metadata.name.as_deref().unwrap();
        assert_eq!(
            binding.subjects.as_ref(),
            Some(&the_controller),
            "RoleBinding {name}"
        );
        assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
        assert_eq!(
            binding.role_ref.kind, "Role",
            "RoleBinding {name}: a Role in its own namespace"
        );
        bound.insert((
            "Role",
            binding.metadata.namespace.clone(),
            binding.role_ref.name.clone(),
        ));
    }
    let defined: BTreeSet<_> = roles(&docs)
        .into_iter()
        .map(|(kind, scope, name, _)| (kind, scope, name))
        .collect();
    assert_eq!(
        bound, defined,
        "every binding points at a role shipped here, and every role is bound"
    );
}

// ---------------------------------------------------------------------------------------------
// (c) The Deployment matches the binary's contract

#[test]
fn deployment_probes_hit_livez_and_readyz_on_the_listen_port() {
    let docs = load();
    let container = the_container(the_deployment(&docs));
    let port = listen_port(container);
    let declared: Vec<i32> = container
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(
        declared,
        [port],
        "the container declares the port the controller listens on"
    );

    for (which, probe, path) in [
        ("liveness", &container.liveness_probe, "/livez"),
        ("readiness", &container.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("a {which} probe by HTTP GET"));
        assert_eq!(get.path.as_deref(), Some(path), "{which} probe path");
        assert_eq!(
            resolve_port(container, &get.port),
            port,
            "{which} probe port"
        );
        assert!(
            matches!(get.scheme.as_deref(), None | Some("HTTP")),
            "{which} probe: the controller serves plain HTTP"
        );
    }
}

#[test]
fn deployment_runs_non_root_with_a_read_only_root_and_no_capabilities() {
    let docs = load();
    let deployment = the_deployment(&docs);
    let pod = pod_spec(deployment)
        .security_context
        .clone()
        .unwrap_or_default();
    let container = the_container(deployment)
        .security_context
        .clone()
        .expect("a container securityContext");

    // The container's setting wins over the pod's.
    let run_as_non_root = container.run_as_non_root.or(pod.run_as_non_root);
    let run_as_user = container.run_as_user.or(pod.run_as_user);
    let seccomp = container.seccomp_profile.or(pod.seccomp_profile);
    assert_eq!(run_as_non_root, Some(true));
    assert!(
        matches!(run_as_user, Some(uid) if uid != 0),
        "a non-root uid: {run_as_user:?}"
    );
    assert_eq!(container.allow_privilege_escalation, Some(false));
    assert_eq!(container.read_only_root_filesystem, Some(true));
    assert_ne!(container.privileged, Some(true));
    let capabilities = container.capabilities.expect("capabilities");
    assert_eq!(capabilities.drop, Some(vec!["ALL".to_string()]));
    assert_eq!(capabilities.add, None);
    assert_eq!(seccomp.map(|s| s.type_), Some("RuntimeDefault".to_string()));
    assert_ne!(pod_spec(deployment).host_network, Some(true));
}

#[test]
fn deployment_uses_the_service_account_args_identity_and_resources_the_controller_needs() {
    let docs = load();
    let deployment = the_deployment(&docs);
    let spec = deployment.spec.as_ref().unwrap();
    let pod = pod_spec(deployment);
    let container = the_container(deployment);

    assert_eq!(deployment.metadata.name.as_deref(), Some("canary-gate"));
    assert!(
        spec.replicas.unwrap_or(1) >= 2,
        "a standby replica behind leader election"
    );
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(!selector.is_empty());
    assert!(
        selector
            .iter()
            .all(|(k, v)| template_labels.get(k) == Some(v)),
        "the selector matches the pod template's labels"
    );

    assert_eq!(pod.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
    assert_ne!(
        pod.automount_service_account_token,
        Some(false),
        "the controller needs its token"
    );

    let args = args(container);
    assert_eq!(
        args.first().map(String::as_str),
        Some("controller"),
        "args: {args:?}"
    );
    let prometheus = flag(args, "--prometheus").expect("--prometheus");
    assert!(prometheus.starts_with("http://") || prometheus.starts_with("https://"));
    if let Some(ns) = flag(args, "--lease-namespace") {
        assert_eq!(ns, NAMESPACE, "the Lease lives where its Role grants it");
    }

    let field_refs: BTreeMap<&str, &str> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| {
            let path = e
                .value_from
                .as_ref()?
                .field_ref
                .as_ref()?
                .field_path
                .as_str();
            Some((e.name.as_str(), path))
        })
        .collect();
    assert_eq!(
        field_refs,
        BTreeMap::from([
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace")
        ])
    );

    // Grafana's URL and token come from an optional Secret, never inline.
    for name in ["GRAFANA_URL", "GRAFANA_TOKEN"] {
        let var = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(var.value.is_none(), "{name} is not inline");
        let secret = var
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap_or_else(|| panic!("{name} from a Secret"));
        assert_eq!(
            (secret.name.as_str(), secret.optional),
            ("canary-gate-grafana", Some(true))
        );
    }

    let image = container.image.as_deref().expect("an image");
    assert_eq!(image, format!("canary-gate:{}", env!("CARGO_PKG_VERSION")));

    let resources = container.resources.as_ref().expect("resources");
    let requests = resources.requests.as_ref().expect("resource requests");
    assert!(
        requests.contains_key("cpu") && requests.contains_key("memory"),
        "{requests:?}"
    );
    let limits = resources.limits.as_ref().expect("resource limits");
    assert!(limits.contains_key("memory"), "{limits:?}");
}

#[test]
fn notification_sinks_come_from_an_optional_secret_mounted_where_the_flag_points() {
    let docs = load();
    let deployment = the_deployment(&docs);
    let container = the_container(deployment);
    let file = flag(args(container), "--notifications-config").expect("--notifications-config");
    let path = Path::new(file);
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| Some(Path::new(&m.mount_path)) == path.parent())
        .unwrap_or_else(|| panic!("no volume mounted at the directory of {file}"));
    assert_eq!(mount.read_only, Some(true));
    let volume = pod_spec(deployment)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the mounted volume");
    let secret = volume.secret.as_ref().expect("a Secret volume");
    assert_eq!(
        (secret.secret_name.as_deref(), secret.optional),
        (Some("canary-gate-notifications"), Some(true))
    );
    // No `items`: the Secret's key is the file name the flag names.
    assert_eq!(secret.items, None);
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some("notifications.yaml")
    );
}

#[test]
fn service_selects_the_controller_pods_on_the_metrics_port() {
    let docs = load();
    let deployment = the_deployment(&docs);
    let container = the_container(deployment);
    let services = all_of!(docs, Service);
    assert_eq!(services.len(), 1);
    let spec = services[0].spec.as_ref().expect("a Service spec");
    let selector = spec.selector.clone().unwrap_or_default();
    let template_labels = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(!selector.is_empty());
    assert!(
        selector
            .iter()
            .all(|(k, v)| template_labels.get(k) == Some(v)),
        "the Service selects the controller's pods"
    );
    let ports = spec.ports.as_deref().unwrap_or_default();
    assert_eq!(ports.len(), 1);
    let target = ports[0]
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(ports[0].port));
    assert_eq!(resolve_port(container, &target), listen_port(container));
}

// ---------------------------------------------------------------------------------------------
// (d) The Dockerfile

/// One Dockerfile instruction: keyword (upper case) and the rest of the line.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    rest: String,
}

/// The Dockerfile's stages, each a list of instructions starting with its `FROM`.
fn dockerfile_stages() -> Vec<Vec<Instruction>> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for line in logical {
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_uppercase(),
            rest: rest.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if instruction.keyword == "FROM" {
            stages.push(vec![instruction]);
        } else {
            stages
                .last_mut()
                .expect("the Dockerfile starts with FROM")
                .push(instruction);
        }
    }
    stages
}

fn all<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.rest.as_str())
        .collect()
}

/// `FROM image [AS name]` as (image, name).
fn from(stage: &[Instruction]) -> (&str, Option<&str>) {
    let words: Vec<&str> = stage[0].rest.split(' ').collect();
    match words.as_slice() {
        [image] => (image, None),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => (image, Some(name)),
        other => panic!("FROM {other:?}"),
    }
}

fn workdir(stage: &[Instruction]) -> &str {
    all(stage, "WORKDIR").last().copied().expect("a WORKDIR")
}

#[test]
fn dockerfile_builds_the_canary_gate_binary_statically_with_the_locked_dependencies() {
    // The test harness builds the binary target this name refers to.
    assert!(env!("CARGO_BIN_EXE_canary-gate").ends_with("canary-gate"));

    let stages = dockerfile_stages();
    assert_eq!(stages.len(), 2, "a build stage and a final stage");
    let build = &stages[0];
    assert_eq!(from(build), ("rust:1-bookworm", Some("build")));
    let runs = all(build, "RUN");
    assert!(
        runs.iter()
            .any(|r| r.contains("apt-get install") && r.contains("musl-tools")),
        "musl-tools for the C parts (ring) of the musl build"
    );
    assert!(runs.contains(&format!("rustup target add {MUSL}").as_str()));
    let cargo_build = runs
        .iter()
        .find(|r| r.starts_with("cargo build"))
        .expect("a cargo build");
    let words: Vec<&str> = cargo_build.split(' ').collect();
    for w in ["--release", "--locked"] {
        assert!(words.contains(&w), "{cargo_build}: {w}");
    }
    let value = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1).copied())
    };
    assert_eq!(value("--bin"), Some("canary-gate"), "{cargo_build}");
    assert_eq!(value("--target"), Some(MUSL), "{cargo_build}");
}

#[test]
fn dockerfile_final_stage_is_distroless_and_non_root_with_only_the_binary() {
    let stages = dockerfile_stages();
    let (build, last) = (&stages[0], stages.last().unwrap());
    assert_eq!(
        from(last),
        ("gcr.io/distroless/static-debian12:nonroot", None)
    );

    let built = format!("{}/target/{MUSL}/release/canary-gate", workdir(build));
    let build_name = from(build).1.unwrap();
    assert_eq!(
        all(last, "COPY"),
        [format!("--from={build_name} {built} /canary-gate").as_str()],
        "only the binary"
    );
    assert!(all(last, "RUN").is_empty(), "distroless has no shell");

    let user = *all(last, "USER").last().expect("a USER in the final stage");
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let uid: i64 = uid
        .parse()
        .expect("a numeric uid, so runAsNonRoot can check it");
    let gid: i64 = gid.parse().expect("a numeric gid");
    assert!(uid != 0 && gid != 0, "USER {user}");
    // The Deployment's securityContext names the same user.
    let docs = load();
    let deployment = the_deployment(&docs);
    let run_as_user = the_container(deployment)
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_spec(deployment).security_context.as_ref()?.run_as_user);
    assert_eq!(run_as_user, Some(uid));

    assert_eq!(all(last, "ENTRYPOINT"), [r#"["/canary-gate"]"#]);
    assert_eq!(all(last, "CMD"), [r#"["controller"]"#]);
}

#[test]
fn dockerfile_build_context_has_every_file_the_build_reads() {
    let stages = dockerfile_stages();
    let build = &stages[0];
    // What the build stage copies in, as paths relative to the repository.
    let mut copied = Vec::new();
    for copy in all(build, "COPY") {
        let words: Vec<&str> = copy.split(' ').filter(|w| !w.starts_with("--")).collect();
        let (sources, _dest) = words.split_at(words.len() - 1);
        for source in sources {
            assert!(
                Path::new(ROOT).join(source).exists(),
                "COPY {source}: not in the repository"
            );
            copied.push(source.trim_end_matches('/').to_string());
        }
    }
    let is_copied = |path: &str| {
        copied
            .iter()
            .any(|c| path == c || path.starts_with(&format!("{c}/")))
    };

    // The manifest, the lock file, and every target path Cargo resolves when it loads the manifest.
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    for line in manifest.lines() {
        if let Some(path) = line
            .trim()
            .strip_prefix("path = \"")
            .and_then(|p| p.strip_suffix('"'))
        {
            needed.push(path.to_string());
        }
    }
    if manifest.contains("[[bench]]") {
        needed.push("benches".to_string());
    }
    if Path::new(ROOT).join("build.rs").exists() {
        needed.push("build.rs".to_string());
    }
    // And every file the sources embed.
    fn embedded(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                embedded(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for mac in ["include_str!(\"", "include_bytes!(\""] {
                    for (at, _) in text.match_indices(mac) {
                        let rest = &text[at + mac.len()..];
                        let literal = &rest[..rest.find('"').unwrap()];
                        out.push(path.parent().unwrap().join(literal));
                    }
                }
            }
        }
    }
    let mut includes = Vec::new();
    embedded(&Path::new(ROOT).join("src"), &mut includes);
    let root = Path::new(ROOT).canonicalize().unwrap();
    for include in includes {
        let full = include
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", include.display()));
        let rel = full.strip_prefix(&root).expect("inside the repository");
        let parts: Vec<_> = rel.iter().map(|p| p.to_str().unwrap()).collect();
        needed.push(parts.join("/"));
    }
    let missing: Vec<_> = needed.iter().filter(|n| !is_copied(n)).collect();
    assert!(
        missing.is_empty(),
        "the build stage does not COPY {missing:?}"
    );

    // .dockerignore keeps build output and history out, and nothing the build needs.
    let ignore =
        std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).expect(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target/", ".git/"] {
        assert!(patterns.contains(&must), ".dockerignore: {must}");
    }
    for pattern in &patterns {
        let p = pattern.trim_end_matches('/');
        assert!(
            !copied
                .iter()
                .any(|c| c == p || c.starts_with(&format!("{p}/"))),
            ".dockerignore {pattern} hides what the build copies"
        );
    }
}
