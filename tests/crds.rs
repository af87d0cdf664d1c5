//! The CRDs: `canary-gate crd` prints what `deploy/crds/` holds, and the generated schemas keep
//! to what every supported API server accepts (structural, no CEL).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");
const CRDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/crds/canarygate.dev.yaml"
);

#[test]
fn deploy_crds_are_the_output_of_canary_gate_crd() {
    let out = Command::new(BIN)
        .arg("crd")
        .output()
        .expect("run canary-gate crd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let shipped = std::fs::read_to_string(CRDS).expect("deploy/crds/canarygate.dev.yaml");
    assert!(
        printed == shipped,
        "deploy/crds/canarygate.dev.yaml drifted from the Rust types; regenerate it with `cargo run -- crd > deploy/crds/canarygate.dev.yaml`"
    );
}

#[test]
fn the_crds_parse_back_with_schemas_printer_columns_and_status() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let text = std::fs::read_to_string(CRDS).unwrap();
    let crds: Vec<CustomResourceDefinition> = text
        .split("\n---\n")
        .filter(|doc| doc.contains("kind: CustomResourceDefinition"))
        .map(|doc| serde_saphyr::from_str(doc).expect("a CRD"))
        .collect();
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "rollouts.canarygate.dev",
            "analysistemplates.canarygate.dev",
            "clusteranalysistemplates.canarygate.dev"
        ]
    );
    let rollout = &crds[0].spec.versions[0];
    assert!(rollout.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = rollout
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Phase", "Step", "Weight", "Verdict", "Age"]);
    assert!(
        !text.contains("x-kubernetes-validations"),
        "CEL rules are dropped by older API servers"
    );
    // Every field users write is documented for `kubectl explain`.
    let schema = serde_json::to_value(rollout.schema.as_ref().unwrap()).unwrap();
    let mut undocumented = Vec::new();
    fn walk(path: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                if prop.get("description").is_none()
                    && !["apiVersion", "kind", "metadata"].contains(&name.as_str())
                {
                    out.push(here.clone());
                }
                walk(&here, prop, out);
                if let Some(items) = prop.get("items") {
                    walk(&format!("{here}[]"), items, out);
                }
            }
        }
    }
    walk("", &schema["openAPIV3Schema"], &mut undocumented);
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
}
