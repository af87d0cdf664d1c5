//! The gate as Argo Rollouts' web metric provider and Flagger's webhooks use it, reproduced from
//! their source (argoproj/argo-rollouts `metricproviders/webmetric/webmetric.go`,
//! `utils/evaluate/evaluate.go`, `analysis/analysis.go`, `utils/defaults/defaults.go`;
//! fluxcd/flagger `pkg/controller/webhook.go`, `scheduler.go`, `scheduler_hooks.go`), against a
//! real Prometheus with an hour of history whose canary regresses half-way:
//!
//! - Argo: the request the README's AnalysisTemplate makes (POST, `Content-Type:
//!   application/json` set last, a whole-request timeout of `timeoutSeconds`), a non-2xx or a
//!   transport error is a measurement *Error* (retried; the run errors after more than
//!   `consecutiveErrorLimit`, default 4, in a row), the JSON body is `result` (jsonPath `{$}`),
//!   `successCondition`/`failureCondition` give Successful / Failed / Inconclusive (neither
//!   true), and the run ends Failed past `failureLimit`, Inconclusive past `inconclusiveLimit`
//!   (the rollout pauses), Successful at `count`.
//! - Flagger: POST `{name, namespace, phase, checksum, metadata}` with `Content-Type:
//!   application/json`; success is a status of at most 202. A failed `rollout` hook is a failed
//!   check (rollback at `threshold`); a failed `confirm-promotion` holds the promotion.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canary_gate::gate::{GateState, router};
use canary_gate::metrics::prometheus::{Prometheus, PrometheusConfig};
use serde_json::{Value, json};
use support::PrometheusServer;
use support::history::regression_hour;

/// 2025-11-23T00:00:00Z.
const T0: u64 = 1_763_856_000;
const BREAK: u64 = T0 + 30 * 60;
static NOW: AtomicU64 = AtomicU64::new(T0);

fn clock() -> f64 {
    NOW.load(Ordering::SeqCst) as f64
}

async fn gate(prometheus_url: &str) -> String {
    support::init_crypto();
    let template = canary_gate::template::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analysis-templates/generic-http.yaml"
    )))
    .unwrap();
    let mut config = PrometheusConfig::new(prometheus_url);
    config.timeout = Duration::from_millis(500);
    config.retries = 0;
    let client = Prometheus::new(config).unwrap();
    let state = Arc::new(GateState::new(vec![template], client).with_clock(clock));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    url
}

/// One Argo measurement's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measured {
    Successful,
    Failed,
    Inconclusive,
    Error,
}

/// The README's Argo metric: what Argo's web provider sends and how it reads the answer.
struct ArgoMetric {
    url: String,
    json_body: Value,
    timeout: Duration,
    count: u32,
    interval: u64,
    failure_limit: u32,
    inconclusive_limit: u32,
    consecutive_error_limit: u32,
}

impl ArgoMetric {
    /// The README's AnalysisTemplate (`count: 10`, `interval: 1m`, `failureLimit: 0`,
    /// `inconclusiveLimit: 9`, `consecutiveErrorLimit` left at Argo's default 4,
    /// `timeoutSeconds: 20`, `lookback: 10m`).
    fn readme(gate: &str, service: &str) -> Self {
        Self {
            url: format!("{gate}/v1/judge"),
            json_body: json!({"template": "generic-http", "args": {"service": service},
                "lookback": "10m", "revision": "v2"}),
            timeout: Duration::from_secs(20),
            count: 10,
            interval: 60,
            failure_limit: 0,
            inconclusive_limit: 9,
            consecutive_error_limit: 4,
        }
    }

    async fn measure(&self) -> Measured {
        // webmetric.go: the user's headers are set first, then `Content-Type:
        // application/json` for a jsonBody replaces any the user gave (Header.Set).
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .unwrap();
        let response = client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&self.json_body).unwrap())
            .send()
            .await;
        let Ok(response) = response else {
            return Measured::Error;
        };
        if !response.status().is_success() {
            return Measured::Error;
        }
        let body = response.bytes().await.unwrap_or_default();
        // jsonPath `{$}`: the whole answer is `result`.
        let Ok(result) = serde_json::from_slice::<Value>(&body) else {
            return Measured::Error;
        };
        // successCondition: result.verdict == "pass"; failureCondition: result.verdict == "fail".
        let failed = result["verdict"] == "fail";
        let passed = result["verdict"] == "pass";
        match (failed, passed) {
            (true, _) => Measured::Failed,
            (false, true) => Measured::Successful,
            (false, false) => Measured::Inconclusive,
        }
    }

    /// The metric's run from `start`: measurements every `interval` (errors retried after 10 s,
    /// not counted), until a limit is passed or `count` is reached. Returns the run's phase and
    /// the measurements taken.
    async fn run(&self, start: u64) -> (Measured, Vec<Measured>) {
        NOW.store(start, Ordering::SeqCst);
        let (mut failed, mut inconclusive, mut errors_in_row, mut counted) = (0, 0, 0, 0);
        let mut taken = Vec::new();
        loop {
            let m = self.measure().await;
            taken.push(m);
            match m {
                Measured::Error => errors_in_row += 1,
                other => {
                    errors_in_row = 0;
                    counted += 1;
                    match other {
                        Measured::Failed => failed += 1,
                        Measured::Inconclusive => inconclusive += 1,
                        _ => {}
                    }
                }
            }
            if failed > self.failure_limit {
                return (Measured::Failed, taken);
            }
            if inconclusive > self.inconclusive_limit {
                return (Measured::Inconclusive, taken);
            }
            if errors_in_row > self.consecutive_error_limit {
                return (Measured::Error, taken);
            }
            if counted >= self.count {
                return (Measured::Successful, taken);
            }
            let wait = if m == Measured::Error {
                10
            } else {
                self.interval
            };
            NOW.fetch_add(wait, Ordering::SeqCst);
        }
    }
}

/// One Flagger webhook call: `true` when Flagger counts it a success (status ≤ 202).
async fn flagger_call(url: &str, service: &str, checksum: &str) -> (bool, u16) {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(url)
        .header("Content-Type", "application/json")
        .json(
            &json!({"name": "web", "namespace": "shop", "phase": "Progressing",
            "checksum": checksum, "metadata": {"service": service}}),
        )
        .send()
        .await;
    match response {
        Ok(r) => (r.status().as_u16() <= 202, r.status().as_u16()),
        Err(_) => (false, 0),
    }
}

fn history() -> String {
    regression_hour(T0, 11)
}

// One test: the clock is shared by the gate and both clients.
#[tokio::test]
async fn argo_and_flagger_read_the_gates_answers_as_the_readme_says() {
    let prometheus = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let gate_url = gate(&prometheus.url()).await;

    // Argo, a healthy canary: Successful, having needed evidence (every measurement a pass or
    // an inconclusive while the window filled, never a failure).
    let (phase, taken) = ArgoMetric::readme(&gate_url, "web").run(T0 + 5 * 60).await;
    assert_eq!(phase, Measured::Successful, "{taken:?}");
    assert!(taken.contains(&Measured::Successful), "{taken:?}");
    assert!(!taken.contains(&Measured::Failed), "{taken:?}");

    // Argo, the regressed canary (a new revision from the break on): Failed, the rollout aborts.
    let mut regressed = ArgoMetric::readme(&gate_url, "web");
    regressed.json_body["revision"] = json!("v3");
    let (phase, taken) = regressed.run(BREAK).await;
    assert_eq!(phase, Measured::Failed, "{taken:?}");
    assert!(taken.len() <= 10, "{taken:?}");

    // Argo, no evidence at all (queries that match nothing): never Successful; past
    // inconclusiveLimit the run is Inconclusive and Argo pauses the rollout for a human.
    let (phase, taken) = ArgoMetric::readme(&gate_url, "no-such-service")
        .run(T0 + 5 * 60)
        .await;
    assert_eq!(phase, Measured::Inconclusive, "{taken:?}");
    assert_eq!(taken.len(), 10, "{taken:?}");

    // Argo, Prometheus down: the gate answers 502, a measurement Error each; more than 4 in a
    // row and the run is Error (the rollout aborts) — never Successful.
    let dead = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", free.local_addr().unwrap());
        drop(free);
        gate(&url).await
    };
    let (phase, taken) = ArgoMetric::readme(&dead, "web").run(T0 + 5 * 60).await;
    assert_eq!(phase, Measured::Error, "{taken:?}");
    assert_eq!(
        taken.iter().filter(|m| **m == Measured::Error).count(),
        5,
        "{taken:?}"
    );

    // Flagger, `rollout` hook every minute at threshold 5: the healthy canary fails no check, the
    // regressed one reaches the threshold (rollback), no data fails checks too.
    let rollout = format!("{gate_url}/v1/flagger/rollout?template=generic-http&lookback=10m");
    let confirm =
        format!("{gate_url}/v1/flagger/confirm-promotion?template=generic-http&lookback=10m");
    let checks = |service: &'static str, checksum: &'static str, start: u64| {
        let rollout = rollout.clone();
        async move {
            NOW.store(start, Ordering::SeqCst);
            let mut failed = 0;
            let mut codes = Vec::new();
            for _ in 0..10 {
                let (ok, code) = flagger_call(&rollout, service, checksum).await;
                codes.push(code);
                if !ok {
                    failed += 1;
                    if failed >= 5 {
                        break;
                    }
                }
                NOW.fetch_add(60, Ordering::SeqCst);
            }
            (failed, codes)
        }
    };
    let (failed, codes) = checks("web", "c-clean", T0 + 5 * 60).await;
    assert_eq!(failed, 0, "{codes:?}");
    let (failed, codes) = checks("web", "c-bad", BREAK).await;
    assert_eq!(failed, 5, "the regressed canary is rolled back: {codes:?}");
    assert!(codes.contains(&500), "{codes:?}");
    let (failed, codes) = checks("no-such-service", "c-none", T0 + 5 * 60).await;
    assert_eq!(failed, 5, "no data is never a pass: {codes:?}");
    assert!(codes.iter().all(|c| *c == 424 || *c == 200), "{codes:?}");

    // Flagger, `confirm-promotion`: only a pass lets the promotion through.
    NOW.store(BREAK - 60, Ordering::SeqCst);
    assert!(flagger_call(&confirm, "web", "c-clean").await.0);
    NOW.store(T0 + 3600, Ordering::SeqCst);
    assert!(!flagger_call(&confirm, "web", "c-late").await.0);
    assert!(!flagger_call(&confirm, "no-such-service", "c-none2").await.0);
}
