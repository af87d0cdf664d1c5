//! `gate serve` over real HTTP: a real Prometheus with an hour of backfilled history in which the
//! canary's error rate jumps from 0.1 % to 5.1 % half-way, the gate on a loopback port, and the
//! requests Argo Rollouts' web provider and Flagger's webhooks send.

mod support;

use std::sync::Arc;

use canary_gate::gate::{GateState, JudgeResponse, router};
use canary_gate::metrics::prometheus::{Prometheus, PrometheusConfig};
use serde_json::json;
use support::PrometheusServer;
use support::history::regression_hour;

/// 2025-11-23T00:00:00Z.
const T0: u64 = 1_763_856_000;
const BREAK: u64 = T0 + 30 * 60;
const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/analysis-templates/generic-http.yaml"
);

fn history() -> String {
    regression_hour(T0, 7)
}

/// Serves the gate on a free loopback port; "now" is `clock`.
async fn gate(prometheus_url: &str, clock: fn() -> f64) -> String {
    support::init_crypto();
    let template = canary_gate::template::load(std::path::Path::new(TEMPLATE)).unwrap();
    let client = Prometheus::new(PrometheusConfig::new(prometheus_url)).unwrap();
    let state = Arc::new(GateState::new(vec![template], client).with_clock(clock));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    url
}

use support::post_json as post;

#[tokio::test]
async fn the_judge_endpoint_passes_a_clean_window_and_fails_the_regression() {
    let prometheus = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let url = gate(&prometheus.url(), || (T0 + 3600) as f64).await;

    let (status, clean) = post(
        &format!("{url}/v1/judge"),
        &json!({"template": "generic-http", "args": {"service": "web"}, "from": T0, "to": BREAK - 60}),
    )
    .await;
    assert_eq!(status, 200, "{clean}");
    let clean: JudgeResponse = serde_json::from_value(clean).unwrap();
    assert_eq!(
        (clean.verdict.as_str(), clean.pass),
        ("pass", true),
        "{}",
        clean.reason
    );
    assert_eq!(clean.metrics.len(), 2);
    assert!(clean.intervals >= 28);

    // Argo Rollouts' web provider: the last 20 minutes up to "now", RFC 3339 accepted too.
    let (status, bad) = post(
        &format!("{url}/v1/judge"),
        &json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "20m"}),
    )
    .await;
    assert_eq!(status, 200, "{bad}");
    assert_eq!(bad["verdict"], "fail");
    assert_eq!(bad["pass"], false);
    assert_eq!(bad["decision"], "rollback");
    let failed = bad["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "error-rate")
        .unwrap();
    assert_eq!(failed["verdict"], "fail");
    let at = bad["first_rollback_at"].as_f64().unwrap();
    assert!(
        at > BREAK as f64,
        "rolled back at {at}, before the regression began"
    );

    // A window with no data is inconclusive, never a pass.
    let (status, empty) = post(
        &format!("{url}/v1/judge"),
        &json!({"template": "generic-http", "args": {"service": "web"}, "from": "2025-11-22T10:00:00Z", "to": "2025-11-22T10:10:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(
        (empty["verdict"].as_str(), empty["pass"].as_bool()),
        (Some("inconclusive"), Some(false))
    );
}

#[tokio::test]
async fn flagger_webhooks_fail_a_check_only_on_failure_and_confirm_only_a_pass() {
    let prometheus = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let during_regression = gate(&prometheus.url(), || (T0 + 3600) as f64).await;
    let before_regression = gate(&prometheus.url(), || (BREAK - 60) as f64).await;
    let payload = json!({"name": "web", "namespace": "shop", "phase": "Progressing",
        "metadata": {"service": "web", "unrelated": "ignored"}});
    let rollout = "/v1/flagger/rollout?template=generic-http&lookback=20m";
    let confirm = "/v1/flagger/confirm-promotion?template=generic-http&lookback=20m";

    let (status, body) = post(&format!("{before_regression}{rollout}"), &payload).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&format!("{during_regression}{rollout}"), &payload).await;
    assert_eq!(
        status, 500,
        "a failing canary fails Flagger's check: {body}"
    );
    assert_eq!(body["verdict"], "fail");

    let (status, _) = post(&format!("{before_regression}{confirm}"), &payload).await;
    assert_eq!(status, 200);
    let (status, _) = post(&format!("{during_regression}{confirm}"), &payload).await;
    assert_eq!(status, 403);

    // Queries that match nothing are never a silent pass: the check fails, naming the query.
    let nothing = json!({"name": "web", "namespace": "shop", "phase": "Progressing",
        "metadata": {"service": "no-such-service"}});
    let (status, body) = post(&format!("{during_regression}{rollout}"), &nothing).await;
    assert_eq!(status, 424, "{body}");
    assert!(
        body["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["reason"].as_str().unwrap_or("").starts_with("no data")),
        "{body}"
    );
    let (status, _) = post(&format!("{during_regression}{confirm}"), &nothing).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn bad_requests_get_4xx_with_the_reason() {
    let prometheus = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let url = gate(&prometheus.url(), || (T0 + 3600) as f64).await;
    let judge = format!("{url}/v1/judge");
    let cases = [
        (
            json!({"template": "nope"}),
            404,
            "no template \"nope\"; loaded: generic-http",
        ),
        (
            json!({"template": "generic-http"}),
            422,
            "missing required template arguments: service",
        ),
        (
            json!({"template": "generic-http", "args": {"servce": "web"}}),
            422,
            "\"servce\" is not declared",
        ),
        (
            json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "5 parsecs"}),
            422,
            "lookback",
        ),
        (
            json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "5m", "from": T0}),
            422,
            "either from or lookback",
        ),
        (
            json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "30d"}),
            422,
            "at most",
        ),
        (
            json!({"template": "generic-http", "window": "5m"}),
            422,
            "unknown field `window`",
        ),
    ];
    for (body, code, text) in cases {
        let (status, answer) = post(&judge, &body).await;
        assert_eq!(status, code, "{body} → {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(text),
            "{body} → {answer}"
        );
    }
    let r = reqwest::Client::new()
        .post(&judge)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/flagger/rollout?lookback=5m"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "the template parameter is required"
    );
}

#[tokio::test]
async fn an_unreachable_prometheus_is_a_502_naming_it() {
    let port = support::free_port();
    let url = gate(&format!("http://127.0.0.1:{port}"), || (T0 + 3600) as f64).await;
    let (status, body) = post(
        &format!("{url}/v1/judge"),
        &json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "5m"}),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("127.0.0.1"),
        "{body}"
    );
}

static NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(BREAK);

fn moving_clock() -> f64 {
    NOW.load(std::sync::atomic::Ordering::SeqCst) as f64
}

#[tokio::test]
async fn a_new_revision_is_never_judged_on_the_previous_canarys_data() {
    use std::sync::atomic::Ordering;
    let prometheus = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let url = gate(&prometheus.url(), moving_clock).await;
    let judge = format!("{url}/v1/judge");
    let ask = |revision: Option<&str>| {
        let mut body =
            json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "30m"});
        if let Some(r) = revision {
            body["revision"] = json!(r);
        }
        body
    };
    // The bad canary v2 is first asked about when it starts (the break); 20 minutes later its
    // evidence fails it.
    NOW.store(BREAK, Ordering::SeqCst);
    let (status, first) = post(&judge, &ask(Some("v2"))).await;
    assert_eq!(
        (status, first["verdict"].as_str()),
        (200, Some("inconclusive")),
        "{first}"
    );
    NOW.store(BREAK + 20 * 60, Ordering::SeqCst);
    let (_, v2) = post(&judge, &ask(Some("v2"))).await;
    assert_eq!(v2["verdict"], "fail", "{v2}");
    assert_eq!(
        v2["from"], BREAK as f64,
        "the window starts at v2's first check"
    );
    // v3 replaces it at that moment. A sliding 30-minute lookback would judge v3 on v2's errors
    // and fail it; anchored to v3, nothing of v2's is used.
    let (_, sliding) = post(&judge, &ask(None)).await;
    assert_eq!(sliding["verdict"], "fail", "{sliding}");
    let (status, v3) = post(&judge, &ask(Some("v3"))).await;
    assert_eq!(status, 200, "{v3}");
    assert_eq!(v3["verdict"], "inconclusive", "{v3}");
    assert_eq!(v3["intervals"], 0, "{v3}");
    // Flagger's checksum anchors the same way.
    let flagger = |checksum: &str| {
        json!({"name": "web", "namespace": "test", "phase": "Progressing", "checksum": checksum,
            "metadata": {"service": "web"}})
    };
    let (status, body) = post(
        &format!("{url}/v1/flagger/rollout?template=generic-http&lookback=30m"),
        &flagger("c3"),
    )
    .await;
    assert_eq!(
        status, 200,
        "a new checksum has no evidence yet, and that never fails: {body}"
    );
}
