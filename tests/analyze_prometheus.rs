//! `analyze`, `template test` and `template lint --prometheus` against a real Prometheus with an
//! hour of backfilled history: stable and canary of a service, where the canary's error rate
//! jumps from the stable's 0.1 % to 5 % half-way through.

mod support;

use std::process::Command;

use support::PrometheusServer;
use support::history::{GENERIC_HTTP, Plan, openmetrics};

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");
const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/analysis-templates/generic-http.yaml"
);
/// 2025-11-23T00:00:00Z.
const T0: u64 = 1_763_856_000;
const STEP: u64 = 15;
/// The canary regresses from here on.
const BREAK: u64 = T0 + 30 * 60;

/// OpenMetrics text for an hour of `http_requests_total{service,version,code}` and
/// `http_request_duration_seconds{service,version}` at 15 s resolution, 100 requests per second
/// with the canary at 10 %.
fn history() -> String {
    let plan = Plan {
        t0: T0,
        end: T0 + 3600,
        step: STEP,
        break_at: BREAK,
        rps: 100.0,
        weight: 10.0,
        error_add: 0.05,
    };
    format!("{}# EOF\n", openmetrics(&GENERIC_HTTP, &plan, 7))
}

fn canary_gate(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run canary-gate")
}

#[tokio::test]
async fn analyze_finds_the_seeded_regression_passes_the_clean_window_and_records_a_replayable_stream()
 {
    support::init_crypto();
    let server = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("stream.jsonl");

    let clean_to = (BREAK - 5 * 60).to_string();
    let out = canary_gate(&[
        "analyze",
        "--template",
        TEMPLATE,
        "--prometheus",
        &url,
        "--arg",
        "service=web",
        "--from",
        &T0.to_string(),
        "--to",
        &clean_to,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "clean window: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("decision: PROMOTE"), "{text}");

    let from = (BREAK - 5 * 60).to_string();
    let to = (T0 + 3600).to_string();
    let out = canary_gate(&[
        "analyze",
        "--template",
        TEMPLATE,
        "--prometheus",
        &url,
        "--arg",
        "service=web",
        "--from",
        &from,
        "--to",
        &to,
        "--json",
        "--record",
        record.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(10),
        "regression window: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rollback_at = verdict["first_rollback"]["t"].as_f64().unwrap();
    assert!(
        rollback_at > BREAK as f64 && rollback_at <= (BREAK + 15 * 60) as f64,
        "rolled back at {rollback_at}, regression began at {BREAK}"
    );
    let errors = verdict["first_rollback"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "error-rate")
        .unwrap();
    assert_eq!(errors["verdict"], "fail");
    // Real counts came through: about 10 canary requests per second.
    assert!(
        errors["evidence"]["canary"]["total"].as_f64().unwrap() > 1000.0,
        "{errors}"
    );

    // The recorded stream replays to the same verdict.
    let out = canary_gate(&[
        "replay",
        "--template",
        TEMPLATE,
        "--input",
        record.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["decision"], "rollback");
}

#[tokio::test]
async fn template_test_shows_both_versions_and_lint_parses_promql_with_prometheus() {
    support::init_crypto();
    let server = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let url = server.url();
    let at = (T0 + 1800).to_string();
    let out = canary_gate(&[
        "template",
        "test",
        TEMPLATE,
        "--prometheus",
        &url,
        "--arg",
        "service=web",
        "--time",
        &at,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("version=\"canary\"") && text.contains("version=\"stable\""),
        "{text}"
    );
    assert!(text.contains("le=\"+Inf\""), "labels are kept: {text}");

    // A wrong argument name is refused with the declared ones listed.
    let out = canary_gate(&[
        "template",
        "test",
        TEMPLATE,
        "--prometheus",
        &url,
        "--arg",
        "servce=web",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("declared: service"));

    let out = canary_gate(&["template", "lint", TEMPLATE, "--prometheus", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(TEMPLATE).unwrap().replace(
            "sum by (version) (increase(http_requests_total{service=\"{{args.service}}\"}",
            "sum by (version) (increase(http_requests_total{service=\"{{args.service}}\"",
        ),
    )
    .unwrap();
    let out = canary_gate(&[
        "template",
        "lint",
        broken.to_str().unwrap(),
        "--prometheus",
        &url,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metric \"error-rate\", query.requests"),
        "{err}"
    );
}
