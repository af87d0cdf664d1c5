//! `analyze`, `template test` and `template lint --prometheus` against a real Prometheus with an
//! hour of backfilled history: stable and canary of a service, where the canary's error rate
//! jumps from the stable's 0.1 % to 5 % half-way through.

mod support;

use std::fmt::Write as _;
use std::process::Command;

use canary_gate::analysis::StepContext;
use canary_gate::simulation::{DEFAULT_BUCKETS, Generator, Scenario};
use support::PrometheusServer;

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
/// `http_request_duration_seconds{service,version}` at 15 s resolution.
fn history() -> String {
    let clean = Scenario {
        interval: STEP as f64,
        ..Scenario::identical("clean", "clean", 100.0)
    };
    let broken = Scenario {
        canary_error_add: 0.05,
        ..clean.clone()
    };
    let mut before = Generator::new(clean, 7);
    let mut after = Generator::new(broken, 8);
    // Cumulative counters per version: (ok, errors, buckets…)
    let mut totals = [
        (0.0, 0.0, vec![0.0; DEFAULT_BUCKETS.len() + 1]),
        (0.0, 0.0, vec![0.0; DEFAULT_BUCKETS.len() + 1]),
    ];
    let mut requests = String::new();
    let mut latency = String::new();
    let mut t = T0;
    while t <= T0 + 3600 {
        let ctx = StepContext {
            t: t as f64,
            step: 0,
            weight: 10.0,
            step_complete: false,
            last_step: false,
        };
        if t > T0 {
            let i = if t <= BREAK {
                before.interval(ctx)
            } else {
                after.interval(ctx)
            };
            for (total, v) in totals.iter_mut().zip([&i.stable, &i.canary]) {
                total.0 += v.counts.total - v.counts.events;
                total.1 += v.counts.events;
                for (c, d) in total.2.iter_mut().zip(&v.latency.counts) {
                    *c += d;
                }
            }
        }
        for (version, total) in ["stable", "canary"].iter().zip(&totals) {
            for (code, value) in [("200", total.0), ("500", total.1)] {
                writeln!(requests, "http_requests_total{{service=\"web\",version=\"{version}\",code=\"{code}\"}} {value} {t}").unwrap();
            }
            let mut cum = 0.0;
            for (i, c) in total.2.iter().enumerate() {
                cum += c;
                let le = DEFAULT_BUCKETS
                    .get(i)
                    .map_or("+Inf".to_string(), |b| b.to_string());
                writeln!(latency, "http_request_duration_seconds_bucket{{service=\"web\",version=\"{version}\",le=\"{le}\"}} {cum} {t}").unwrap();
            }
            writeln!(latency, "http_request_duration_seconds_count{{service=\"web\",version=\"{version}\"}} {cum} {t}").unwrap();
            writeln!(
                latency,
                "http_request_duration_seconds_sum{{service=\"web\",version=\"{version}\"}} {} {t}",
                cum * 0.05
            )
            .unwrap();
        }
        t += STEP;
    }
    // OpenMetrics wants each series' samples together: sort the lines by series, stable in time.
    let group = |text: String| {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_by_key(|l| l.rsplitn(3, ' ').nth(2).unwrap_or("").to_string());
        lines.join("\n")
    };
    format!(
        "# TYPE http_requests counter\n{}\n# TYPE http_request_duration_seconds histogram\n{}\n# EOF\n",
        group(requests),
        group(latency)
    )
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
