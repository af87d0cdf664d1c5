//! The judge in the cluster: `kubectl apply -k deploy/` on a real kube-apiserver, the controller
//! process (run here: the test server has no kubelet) serving the gate routes on its listener,
//! an AnalysisTemplate read from the API server, and a real Prometheus with an hour of history in
//! which the canary's error rate jumps half-way. The URL the README gives Argo and Flagger is what
//! deploy/'s Service serves.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::PrometheusServer;
use support::apiserver::ApiServer;
use support::history::regression_hour;

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");
/// 2025-11-23T00:00:00Z.
const T0: u64 = 1_763_856_000;
const BREAK: u64 = T0 + 30 * 60;

fn kubectl(server: &ApiServer, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

use support::post_json as post;

#[tokio::test]
async fn deploy_serves_the_judge_with_the_clusters_templates_at_the_documented_url() {
    support::init_crypto();
    let server = ApiServer::start();

    // deploy/ as a user installs it, with the real kubectl (kustomize built in).
    let applied = kubectl(
        &server,
        &[
            "apply",
            "-k",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy"),
        ],
    );
    assert!(applied.contains("service/canary-gate created"), "{applied}");
    // The README's URL is the Service deploy/ creates: canary-gate.canary-gate-system:8080.
    let service: Value = serde_json::from_str(&kubectl(
        &server,
        &[
            "get",
            "service",
            "canary-gate",
            "-n",
            "canary-gate-system",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(service["spec"]["ports"][0]["port"], 8080, "{service}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for url in [
        "http://canary-gate.canary-gate-system:8080/v1/judge",
        "http://canary-gate.canary-gate-system:8080/v1/flagger/rollout?",
    ] {
        assert!(readme.contains(url), "the README gives {url}");
    }
    // The template lives in the cluster, in the team's namespace.
    kubectl(&server, &["create", "namespace", "shop"]);
    kubectl(
        &server,
        &[
            "apply",
            "-n",
            "shop",
            "-f",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/analysis-templates/generic-http.yaml"
            ),
        ],
    );

    let prometheus = PrometheusServer::builder()
        .backfill(regression_hour(T0, 7))
        .start()
        .await;
    let port = support::free_port();
    let _controller = Controller(
        Command::new(BIN)
            .env("KUBECONFIG", server.kubeconfig())
            .args([
                "controller",
                "--prometheus",
                &prometheus.url(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--no-leader-election",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the controller"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let judge = format!("{base}/v1/judge");
    // Until the template cache has synced the template is unknown (404); then it judges.
    let clean_window = json!({"template": "generic-http", "namespace": "shop",
        "args": {"service": "web"}, "from": T0, "to": BREAK - 60});
    let deadline = Instant::now() + Duration::from_secs(30);
    let clean = loop {
        if let Ok(r) = reqwest::Client::new()
            .post(&judge)
            .json(&clean_window)
            .send()
            .await
            && r.status().as_u16() == 200
        {
            break r.json::<Value>().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the controller never judged with the cluster's template"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(clean["verdict"], "pass", "{clean}");
    let (status, bad) = post(
        &judge,
        &json!({"template": "generic-http", "namespace": "shop",
            "args": {"service": "web"}, "from": BREAK, "to": T0 + 3600}),
    )
    .await;
    assert_eq!(
        (status, bad["verdict"].as_str()),
        (200, Some("fail")),
        "{bad}"
    );
    // Flagger's webhook: the template from the canary's namespace.
    let (status, flagger) = post(
        &format!("{base}/v1/flagger/confirm-promotion?template=generic-http&lookback=10m"),
        &json!({"name": "web", "namespace": "shop", "phase": "Progressing",
            "metadata": {"service": "web"}}),
    )
    .await;
    assert!(status == 200 || status == 403, "{status} {flagger}");
    assert_eq!(flagger["template"], "generic-http", "{flagger}");
    // A template that is not there is named.
    let (status, missing) = post(
        &judge,
        &json!({"template": "generic-http", "namespace": "other", "args": {"service": "web"}}),
    )
    .await;
    assert_eq!(status, 404, "{missing}");
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|e| e.contains("no AnalysisTemplate other/generic-http")),
        "{missing}"
    );
}
