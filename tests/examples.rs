//! The example Rollouts in examples/rollouts/ (one per router) parse into the Rust types, pass
//! validation, and the objects shipped beside them work with their router: each router builds
//! its 5 % split from them without error.

use canary_gate::controller::validate::validate;
use canary_gate::crd::Rollout;
use canary_gate::traffic::{Split, VERSION_LABEL, routers};
use serde_json::Value;

const EXAMPLES: &[&str] = &[
    "replica-ratio.yaml",
    "gateway-api.yaml",
    "istio.yaml",
    "nginx.yaml",
    "blue-green.yaml",
    "webhooks.yaml",
];

fn documents(file: &str) -> Vec<Value> {
    let path = format!("{}/examples/rollouts/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

#[test]
fn every_example_directory_entry_is_checked() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rollouts");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut listed: Vec<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

#[test]
fn every_example_rollout_validates_and_its_objects_work_with_its_router() {
    for file in EXAMPLES {
        let docs = documents(file);
        let rollout: Rollout = serde_json::from_value(
            docs.iter()
                .find(|d| d["kind"] == "Rollout")
                .unwrap_or_else(|| panic!("{file}: no Rollout"))
                .clone(),
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        validate(&rollout.spec).unwrap_or_else(|e| panic!("{file}: {e}"));
        let split = Split {
            weight: 5,
            matches: rollout
                .spec
                .traffic_routing
                .as_ref()
                .map(|r| r.matches.clone())
                .unwrap_or_default(),
            stable_revision: "aaa".into(),
            canary_revision: Some("bbb".into()),
        };
        for router in routers(&rollout.spec) {
            let wanted = router.reads();
            let object = docs
                .iter()
                .find(|d| d["kind"] == wanted.kind && d["metadata"]["name"] == wanted.name.as_str())
                .unwrap_or_else(|| panic!("{file}: no {wanted} beside the Rollout"));
            assert_eq!(
                object["apiVersion"],
                wanted.api_version(),
                "{file}: {wanted}"
            );
            router
                .desired(object, &split)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        // Services a router weights select one version each.
        for service in docs.iter().filter(|d| d["kind"] == "Service") {
            let name = service["metadata"]["name"].as_str().unwrap();
            let version = &service["spec"]["selector"][VERSION_LABEL];
            if name.ends_with("-canary") {
                assert_eq!(version, "canary", "{file}: Service {name}");
            } else if rollout.spec.traffic_routing.is_some() {
                assert_eq!(version, "stable", "{file}: Service {name}");
            } else {
                assert!(
                    version.is_null(),
                    "{file}: Service {name} selects both versions"
                );
            }
        }
    }
}
