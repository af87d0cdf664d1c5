//! Grafana annotations over real HTTP: a recording Grafana stand-in (axum on 127.0.0.1) receives
//! what the sink posts for a whole rollout; a failing, a hanging and a slow Grafana never hold
//! up `send`. Also checks the shipped dashboard (`dashboards/canary-gate.json`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use canary_gate::annotations::{
    AnnotationError, AnnotationMetrics, AnnotationSink, Grafana, GrafanaConfig, QUEUE_CAPACITY,
    Secret, annotations,
};
use canary_gate::controller::telemetry::{CategoryLabel, ControllerMetrics, DecisionLabel};
use canary_gate::crd::rollout::{
    DecisionRecord, MetricRecord, RolloutPhase, RolloutStatus, StepStart,
};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

const TOKEN: &str = "glsa_test-token-123";
/// 2025-11-23T00:00:00Z.
const T0_MS: i64 = 1_763_856_000_000;
const MIN: i64 = 60_000;

/// How the stand-in answers.
#[derive(Clone, Copy)]
enum Mode {
    /// 200 `{"id":1,"message":"Annotation added"}`.
    Store,
    /// This status, with a JSON error body.
    Fail(u16),
    /// Never within the test: sleeps 30 s before answering.
    Hang,
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct Stand {
    mode: Mode,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Stand {
    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }
}

async fn record(
    State(stand): State<Stand>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    stand.received.lock().expect("lock").push(Received {
        method,
        path: uri.path().to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    match stand.mode {
        Mode::Store => (
            StatusCode::OK,
            r#"{"id":1,"message":"Annotation added"}"#.into(),
        ),
        Mode::Fail(status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            r#"{"message":"database is locked"}"#.into(),
        ),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (StatusCode::OK, "{}".into())
        }
    }
}

/// Starts the stand-in; returns its base URL.
async fn grafana_stand_in(mode: Mode) -> (String, Stand) {
    let stand = Stand {
        mode,
        received: Arc::default(),
    };
    let app = Router::new().fallback(record).with_state(stand.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), stand)
}

fn config(url: &str, timeout: Duration, retries: u32) -> GrafanaConfig {
    GrafanaConfig {
        token: Some(Secret::new(TOKEN)),
        dashboard_uid: Some("canary-gate".into()),
        panel_id: Some(1),
        timeout,
        retries,
        ..GrafanaConfig::new(url)
    }
}

/// Waits until `done` holds, or fails after `within`.
async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn one_annotation() -> Vec<canary_gate::annotations::Annotation> {
    let healthy = RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("rev-a".into()),
        ..RolloutStatus::default()
    };
    let started = RolloutStatus {
        phase: Some(RolloutPhase::Progressing),
        canary_revision: Some("rev-b".into()),
        current_step_index: Some(0),
        canary_weight: Some(10),
        started_at: Some(rfc3339(T0_MS)),
        ..healthy.clone()
    };
    annotations("web", "shop", &healthy, &started, T0_MS)
}

/// The statuses one reconcile after another writes for a whole canary rollout of `rev-b`:
/// Healthy → step 0 at 10 % → step 1 at 50 % (the judge continued) → Promoting (the judge
/// promoted) → Healthy on `rev-b`; with the time of each reconcile.
fn full_rollout() -> Vec<(RolloutStatus, i64)> {
    let healthy = RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("rev-a".into()),
        canary_weight: Some(0),
        ..RolloutStatus::default()
    };
    let step0 = RolloutStatus {
        phase: Some(RolloutPhase::Progressing),
        current_step_index: Some(0),
        canary_weight: Some(10),
        canary_revision: Some("rev-b".into()),
        started_at: Some(rfc3339(T0_MS)),
        step_started_at: Some(rfc3339(T0_MS)),
        step_history: vec![StepStart {
            step: 0,
            started_at: rfc3339(T0_MS),
        }],
        ..healthy.clone()
    };
    let continued = DecisionRecord {
        time: rfc3339(T0_MS + 5 * MIN),
        step: 0,
        weight: 10,
        decision: "continue".into(),
        reason: "no evidence of harm".into(),
        window_start: Some(rfc3339(T0_MS)),
        metrics: vec![MetricRecord {
            name: "error-rate".into(),
            verdict: "pass".into(),
            reason: "canary error rate not above stable".into(),
            e_value: Some(0.42),
            fail_at: Some(20.0),
            estimate: Some(0.9),
            estimate_low: Some(0.5),
            estimate_high: Some(1.6),
            canary: Some("3/1000".into()),
            stable: Some("33/10000".into()),
        }],
    };
    let mut step1 = step0.clone();
    step1.current_step_index = Some(1);
    step1.canary_weight = Some(50);
    step1.step_started_at = Some(rfc3339(T0_MS + 5 * MIN));
    step1.step_history.push(StepStart {
        step: 1,
        started_at: rfc3339(T0_MS + 5 * MIN),
    });
    step1.last_decision = Some("continue".into());
    step1.decisions = vec![continued];
    let mut promoting = step1.clone();
    promoting.phase = Some(RolloutPhase::Promoting);
    promoting.canary_weight = Some(100);
    promoting.last_decision = Some("promote".into());
    promoting.decisions.push(DecisionRecord {
        time: rfc3339(T0_MS + 15 * MIN),
        step: 1,
        weight: 50,
        decision: "promote".into(),
        reason: "every metric passes".into(),
        window_start: Some(rfc3339(T0_MS)),
        metrics: Vec::new(),
    });
    let mut promoted = promoting.clone();
    promoted.phase = Some(RolloutPhase::Healthy);
    promoted.previous_stable_revision = Some("rev-a".into());
    promoted.stable_revision = Some("rev-b".into());
    promoted.canary_revision = None;
    promoted.current_step_index = None;
    promoted.step_started_at = None;
    promoted.canary_weight = Some(0);
    vec![
        (healthy, T0_MS - MIN),
        (step0, T0_MS),
        (step1, T0_MS + 5 * MIN),
        (promoting, T0_MS + 15 * MIN),
        (promoted, T0_MS + 16 * MIN),
    ]
}

fn tags(step: i32, weight: i32, verdict: &str) -> Value {
    json!([
        "canary-gate",
        "rollout:web",
        "namespace:shop",
        "revision:rev-b",
        format!("step:{step}"),
        format!("weight:{weight}"),
        format!("verdict:{verdict}"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rollout_posts_these_exact_requests() {
    let (url, stand) = grafana_stand_in(Mode::Store).await;
    let mut registry = Registry::default();
    let metrics = AnnotationMetrics::register(&mut registry);
    let grafana = Grafana::new(config(&url, Duration::from_secs(2), 2)).expect("config");
    let sink = AnnotationSink::start(grafana, metrics.clone());

    let statuses = full_rollout();
    for pair in statuses.windows(2) {
        let ((old, _), (new, now)) = (&pair[0], &pair[1]);
        sink.send(annotations("web", "shop", old, new, *now));
    }

    eventually(Duration::from_secs(5), "five annotations", || {
        metrics.count("success") == 5
    })
    .await;
    let received = stand.received();
    let bodies: Vec<Value> = received.iter().map(|r| r.body.clone()).collect();
    assert_eq!(
        bodies,
        vec![
            json!({
                "time": T0_MS,
                "tags": tags(0, 10, "started"),
                "text": "web: rolling out revision rev-b against stable rev-a; step 0 at 10%",
                "dashboardUID": "canary-gate",
                "panelId": 1,
            }),
            json!({
                "time": T0_MS + 5 * MIN,
                "tags": tags(0, 10, "continue"),
                "text": "web step 0 at 10% — continue: no evidence of harm\n\
                         error-rate: pass — canary error rate not above stable \
                         (e=0.42/20, estimate 0.9 [0.5, 1.6], canary 3/1000, stable 33/10000)",
                "dashboardUID": "canary-gate",
                "panelId": 1,
            }),
            json!({
                "time": T0_MS,
                "timeEnd": T0_MS + 5 * MIN,
                "tags": tags(0, 10, "advanced"),
                "text": "web step 0 at 10%: advanced after 5m0s\ncontinue: no evidence of harm",
                "dashboardUID": "canary-gate",
                "panelId": 1,
            }),
            json!({
                "time": T0_MS + 15 * MIN,
                "tags": tags(1, 50, "promote"),
                "text": "web step 1 at 50% — promote: every metric passes",
                "dashboardUID": "canary-gate",
                "panelId": 1,
            }),
            json!({
                "time": T0_MS + 5 * MIN,
                "timeEnd": T0_MS + 15 * MIN,
                "tags": tags(1, 50, "promoted"),
                "text": "web step 1 at 50%: promoted after 10m0s\npromote: every metric passes",
                "dashboardUID": "canary-gate",
                "panelId": 1,
            }),
        ]
    );
    for r in &received {
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, "/api/annotations");
        assert_eq!(
            r.authorization.as_deref(),
            Some("Bearer glsa_test-token-123")
        );
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(metrics.count("failure"), 0);
    assert_eq!(metrics.count("dropped"), 0);

    let mut exposition = String::new();
    prometheus_client::encoding::text::encode(&mut exposition, &registry).expect("encode");
    assert!(
        exposition.contains("canary_gate_grafana_annotations_total{result=\"success\"} 5"),
        "{exposition}"
    );
    assert!(
        exposition.contains("canary_gate_grafana_annotations_total{result=\"dropped\"} 0"),
        "{exposition}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_grafana_is_retried_then_counted_as_a_failure() {
    let (url, stand) = grafana_stand_in(Mode::Fail(500)).await;
    let metrics = AnnotationMetrics::default();
    let grafana = Grafana::new(config(&url, Duration::from_secs(2), 2)).expect("config");
    let sink = AnnotationSink::start(grafana, metrics.clone());

    let annotations = one_annotation();
    let sent = Instant::now();
    sink.send(annotations);
    assert!(sent.elapsed() < Duration::from_millis(50), "send waited");

    eventually(Duration::from_secs(5), "the failure", || {
        metrics.count("failure") == 1
    })
    .await;
    assert_eq!(stand.count(), 3, "one attempt and two retries");
    assert_eq!(metrics.count("success"), 0);
    // Backoff 100 ms, then 200 ms.
    assert!(sent.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_not_retried() {
    let (url, stand) = grafana_stand_in(Mode::Fail(403)).await;
    let metrics = AnnotationMetrics::default();
    let grafana = Grafana::new(config(&url, Duration::from_secs(2), 2)).expect("config");
    let sink = AnnotationSink::start(grafana, metrics.clone());
    sink.send(one_annotation());
    eventually(Duration::from_secs(5), "the failure", || {
        metrics.count("failure") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stand.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_url_status_and_body_but_never_the_token() {
    let (url, _stand) = grafana_stand_in(Mode::Fail(503)).await;
    let grafana = Grafana::new(config(&url, Duration::from_secs(2), 0)).expect("config");
    let annotation = one_annotation().remove(0);
    let e = grafana.post(&annotation).await.expect_err("503");
    assert_eq!(
        e,
        AnnotationError::Status {
            url: format!("{url}/api/annotations"),
            status: 503,
            body: r#"{"message":"database is locked"}"#.into(),
        }
    );
    let text = e.to_string();
    assert_eq!(
        text,
        format!(
            "POST {url}/api/annotations: Grafana answered 503: {{\"message\":\"database is locked\"}}"
        )
    );

    // Nothing listens on a port that was just freed: unreachable, retried, token-free.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = free.local_addr().expect("address");
    drop(free);
    let grafana =
        Grafana::new(config(&format!("http://{addr}"), Duration::from_secs(2), 1)).expect("config");
    let e = grafana.post(&annotation).await.expect_err("refused");
    assert!(matches!(e, AnnotationError::Unreachable { .. }), "{e:?}");
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(
            shown.contains(&format!("http://{addr}/api/annotations")),
            "{shown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_grafana_never_holds_up_send() {
    let (url, stand) = grafana_stand_in(Mode::Hang).await;
    let metrics = AnnotationMetrics::default();
    let grafana = Grafana::new(config(&url, Duration::from_millis(200), 1)).expect("config");
    let sink = AnnotationSink::start(grafana, metrics.clone());

    let annotations = one_annotation();
    let sent = Instant::now();
    sink.send(annotations);
    assert!(
        sent.elapsed() < Duration::from_millis(50),
        "send took {:?}",
        sent.elapsed()
    );

    eventually(Duration::from_secs(5), "the failure", || {
        metrics.count("failure") == 1
    })
    .await;
    let took = sent.elapsed();
    // Two attempts of 200 ms and a 100 ms pause.
    assert!(took >= Duration::from_millis(500), "failed after {took:?}");
    assert!(took < Duration::from_secs(3), "failed after {took:?}");
    assert_eq!(stand.count(), 2);
    assert_eq!(metrics.count("success"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let (url, stand) = grafana_stand_in(Mode::Hang).await;
    let metrics = AnnotationMetrics::default();
    let grafana = Grafana::new(config(&url, Duration::from_secs(20), 0)).expect("config");
    let sink = AnnotationSink::start(grafana, metrics.clone());

    // The worker takes the first annotation and waits on Grafana…
    sink.send(one_annotation());
    eventually(Duration::from_secs(5), "the first request", || {
        stand.count() == 1
    })
    .await;
    // …so the queue holds QUEUE_CAPACITY more, and the rest are dropped.
    let flood: Vec<_> = (0..QUEUE_CAPACITY + 3)
        .flat_map(|_| one_annotation())
        .collect();
    let sent = Instant::now();
    sink.send(flood);
    sink.clone().send(one_annotation());
    assert!(
        sent.elapsed() < Duration::from_millis(50),
        "send took {:?}",
        sent.elapsed()
    );
    assert_eq!(metrics.count("dropped"), 4);
    assert_eq!(metrics.count("failure"), 0);
    assert_eq!(metrics.count("success"), 0);
}

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/canary-gate.json");
    let text = std::fs::read_to_string(path).expect("dashboards/canary-gate.json");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

#[test]
fn the_dashboard_is_importable_and_shows_the_annotations() {
    let d = dashboard();
    assert_eq!(d["schemaVersion"], 39);
    assert_eq!(d["uid"], "canary-gate");
    assert!(d["id"].is_null());
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus")
    );

    let variables: BTreeSet<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        variables,
        BTreeSet::from(["namespace", "rollout", "service"])
    );

    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6);
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("title");
        assert!(
            ids.insert(p["id"].as_i64().expect("id")),
            "{title}: id reused"
        );
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no target");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: empty expression");
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        }
    }
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.contains(
        &"sum by (version) (rate(http_requests_total{service=\"$service\", code=~\"5..\"}[1m])) / sum by (version) (rate(http_requests_total{service=\"$service\"}[1m]))"
    ));
    assert!(exprs.contains(
        &"histogram_quantile(0.99, rate(canary_gate_reconcile_duration_seconds_bucket[5m]))"
    ));
    assert!(exprs.contains(&"rate(canary_gate_reconciles_total[5m])"));
    for needle in [
        "histogram_quantile(0.5, sum by (version, le) (rate(http_request_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (version, le) (rate(http_request_duration_seconds_bucket",
        "canary_gate_reconcile_failures_total",
        "canary_gate_decisions_total",
        "canary_gate_grafana_annotations_total",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needle)),
            "no panel uses {needle}"
        );
    }

    let annotations = d["annotations"]["list"].as_array().expect("annotations");
    let ours: Vec<&Value> = annotations.iter().filter(|a| a["enable"] == true).collect();
    assert_eq!(ours.len(), 1, "one enabled annotation query");
    let target = &ours[0]["target"];
    assert_eq!(target["type"], "tags");
    assert_eq!(target["tags"], json!(["canary-gate", "rollout:$rollout"]));
    assert_eq!(target["matchAny"], false);
    assert_eq!(ours[0]["datasource"]["uid"], "-- Grafana --");
}

/// Every `canary_gate_*` series the dashboard queries is one the controller exposes.
#[test]
fn the_dashboard_queries_only_metrics_the_controller_exposes() {
    let mut registry = Registry::default();
    let controller = ControllerMetrics::register(&mut registry);
    // A family shows in the exposition once it has a series.
    controller
        .failures
        .get_or_create(&CategoryLabel {
            category: "kube".into(),
        })
        .inc();
    controller
        .decisions
        .get_or_create(&DecisionLabel {
            decision: "hold".into(),
        })
        .inc();
    let _annotations = AnnotationMetrics::register(&mut registry);
    let mut exposition = String::new();
    prometheus_client::encoding::text::encode(&mut exposition, &registry).expect("encode");
    let mut exposed = BTreeSet::new();
    for line in exposition.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                exposed.insert(format!("{name}{suffix}"));
            }
        }
    }

    let d = dashboard();
    let mut queried = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            let mut rest = expr;
            while let Some(at) = rest.find("canary_gate_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 5, "{queried:?}");
    let missing: Vec<_> = queried.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "not exposed: {missing:?}; exposed: {exposed:?}"
    );
}
