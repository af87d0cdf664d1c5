//! Hostile and careless input, one row per case: arguments that try to rewrite the PromQL, a
//! Prometheus (or proxy) that duplicates series, echoes secrets or answers junk, windows and
//! intervals that would exhaust memory, templates that make the judge meaningless, and the
//! gate's HTTP edge. Each row states what must happen instead; the injection rows run against
//! a real Prometheus, the rest against loopback servers that misbehave on purpose.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use canary_gate::analysis::Decision;
use canary_gate::analyze::judge_window;
use canary_gate::controller::analyze::{MetricWindows, PrometheusWindows};
use canary_gate::gate::{GateState, router};
use canary_gate::metrics::prometheus::{Credentials, Prometheus, PrometheusConfig, Secret};
use serde_json::{Value, json};
use support::PrometheusServer;
use support::fake_http::{self, Answer};
use support::history::{GENERIC_HTTP, Plan, Shape, openmetrics};

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");
const GENERIC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/analysis-templates/generic-http.yaml"
);
/// 2025-11-23T00:00:00Z.
const T0: u64 = 1_763_856_000;
const END: u64 = T0 + 3600;

/// generic-http with the service in a regex matcher (as the nginx, linkerd and envoy templates
/// have it).
const REGEX_TEMPLATE: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: regex-http}
spec:
  args: [{name: service}]
  metrics:
    - name: error-rate
      kind: errorRate
      query:
        errors: sum by (version) (increase(http_requests_total{service=~"{{args.service}}", code=~"5.."}[{{interval}}]))
        requests: sum by (version) (increase(http_requests_total{service=~"{{args.service}}"}[{{interval}}]))
      critical: true
"#;

/// generic-http reading a status label the exporter does not have (Caddy 2.6 has no `code` on
/// `caddy_http_requests_total`): the error query never matches anything.
const NEVER_MATCHES: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: never-matches}
spec:
  args: [{name: service}]
  metrics:
    - name: error-rate
      kind: errorRate
      query:
        errors: sum by (version) (increase(http_requests_total{service="{{args.service}}", status=~"5.."}[{{interval}}]))
        requests: sum by (version) (increase(http_requests_total{service="{{args.service}}"}[{{interval}}]))
      critical: true
"#;

/// A second service whose *stable* version is the broken one, with 50 times the traffic:
/// whatever matches it too dilutes the canary's errors and inflates the stable's.
const API: Shape = Shape {
    labels: |v| {
        let swapped = if v == "stable" { "canary" } else { "stable" };
        format!("service=\"api\",version=\"{swapped}\"")
    },
    ..GENERIC_HTTP
};

/// A service whose name holds every character that matters in PromQL strings and regexes
/// (`we"b\x|y.z'`), serving like `web`: escaped values must still match it exactly.
const ODD_NAME: &str = "we\"b\\x|y.z'";
const ODD: Shape = Shape {
    labels: |v| format!("service=\"we\\\"b\\\\x|y.z'\",version=\"{v}\""),
    ..GENERIC_HTTP
};

/// An hour in which `web`'s canary fails 10 points more requests than its stable (0.1 %) from
/// the start — ROLLBACK — next to `api`, whose stable fails 20 % of 50× the traffic.
fn history() -> String {
    let web = Plan {
        t0: T0,
        end: END,
        step: 15,
        break_at: T0,
        rps: 100.0,
        weight: 10.0,
        error_add: 0.1,
    };
    let api = Plan {
        rps: 5000.0,
        weight: 50.0,
        error_add: 0.2,
        ..web
    };
    let odd = merge_families(
        &openmetrics(&GENERIC_HTTP, &web, 7),
        &openmetrics(&ODD, &web, 9),
    );
    merge_families(odd.trim_end_matches("# EOF\n"), &openmetrics(&API, &api, 8))
}

/// Two OpenMetrics texts with the same families in the same order, as one.
fn merge_families(a: &str, b: &str) -> String {
    let families = |text: &str| -> Vec<(String, String)> {
        text.split("# TYPE ")
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let (head, body) = s.split_once('\n').unwrap();
                (head.to_string(), body.trim_end().to_string())
            })
            .collect()
    };
    let mut out = String::new();
    for ((head, x), (head_b, y)) in families(a).into_iter().zip(families(b)) {
        assert_eq!(head, head_b);
        out.push_str(&format!("# TYPE {head}\n{x}\n{y}\n"));
    }
    out.push_str("# EOF\n");
    out
}

fn canary_gate(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run canary-gate")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn post(url: &str, body: &Value) -> (u16, Value) {
    support::init_crypto();
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("gate answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The gate with `templates`, in process on a loopback port.
async fn gate(prometheus: Prometheus, templates: Vec<canary_gate::template::Template>) -> String {
    let state = Arc::new(GateState::new(templates, prometheus).with_clock(|| END as f64));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    url
}

/// Argument values that try to make the canary pass (each would, pasted unescaped, in one of
/// the two templates).
const INJECTIONS: &[&str] = &[
    // Issue 15's probe: the error query no longer matches any 5xx.
    r#"web",code!~"5.."#,
    r#"web",code=~"2.."#,
    r#"web"} or vector(0) or http_requests_total{service=""#,
    r#"web\",code!~\"5.."#,
    "web\"\n,code!~\"5..",
    r#"web\"#,
    "web'",
    "web`",
    // Regex matchers: matching api too makes the canary look better than the stable.
    ".*",
    "web|api",
    "(web|api)",
    "[wa][ep][bi]",
    "web|api\"}",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_arguments_never_turn_a_rollback_into_a_pass() {
    support::init_crypto();
    let server = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let regex_file = support::write_file(dir.path(), "regex.yaml", REGEX_TEMPLATE);
    let regex_file = regex_file.to_str().unwrap();
    let (from, to) = ((T0 + 600).to_string(), END.to_string());
    let generic = canary_gate::template::load(Path::new(GENERIC)).unwrap();
    let regex = canary_gate::template::parse(REGEX_TEMPLATE, "regex.yaml").unwrap();
    let gate_url = gate(
        Prometheus::new(PrometheusConfig::new(url.clone())).unwrap(),
        vec![generic.clone(), regex.clone()],
    )
    .await;
    let windows = PrometheusWindows(Prometheus::new(PrometheusConfig::new(url.clone())).unwrap());

    // The rows can fail: the honest argument rolls back everywhere.
    for (template, file) in [(&generic, GENERIC), (&regex, regex_file)] {
        let out = canary_gate(&[
            "analyze",
            "-t",
            file,
            "--prometheus",
            &url,
            "--arg",
            "service=web",
            "--from",
            &from,
            "--to",
            &to,
        ]);
        assert_eq!(out.status.code(), Some(10), "{}", text(&out));
        let (status, body) = post(
            &format!("{gate_url}/v1/judge"),
            &json!({"template": template.name(), "args": {"service": "web"}, "lookback": "50m"}),
        )
        .await;
        assert_eq!(
            (status, body["verdict"].as_str()),
            (200, Some("fail")),
            "{body}"
        );
    }
    // Escaped values are valid PromQL that match exactly themselves: the odd name's data is
    // found (and rolls back) in both templates.
    for file in [GENERIC, regex_file] {
        let out = canary_gate(&[
            "analyze",
            "-t",
            file,
            "--prometheus",
            &url,
            "--arg",
            &format!("service={ODD_NAME}"),
            "--from",
            &from,
            "--to",
            &to,
        ]);
        assert_eq!(out.status.code(), Some(10), "{file}: {}", text(&out));
    }
    // Unescaped, api's traffic would have made the canary pass: the premise of the regex rows.
    let out = canary_gate(&[
        "analyze",
        "-t",
        regex_file,
        "--prometheus",
        &url,
        "--arg",
        "service=api",
        "--from",
        &from,
        "--to",
        &to,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "api alone passes: {}",
        text(&out)
    );

    for value in INJECTIONS {
        for (template, file) in [(&generic, GENERIC), (&regex, regex_file)] {
            let row = format!("{value:?} in {}", template.name());
            // The CLI.
            let out = canary_gate(&[
                "analyze",
                "-t",
                file,
                "--prometheus",
                &url,
                "--arg",
                &format!("service={value}"),
                "--from",
                &from,
                "--to",
                &to,
            ]);
            assert_ne!(out.status.code(), Some(0), "{row}: {}", text(&out));
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains("PROMOTE"),
                "{row}: {}",
                text(&out)
            );
            // The gate.
            let (status, body) = post(
                &format!("{gate_url}/v1/judge"),
                &json!({"template": template.name(), "args": {"service": value}, "lookback": "50m"}),
            )
            .await;
            assert!(
                status != 200 || (body["verdict"] != "pass" && body["pass"] == false),
                "{row}: gate {status} {body}"
            );
            // Flagger: arguments from the webhook's metadata.
            let payload = json!({"name": "web", "namespace": "shop", "phase": "Progressing", "metadata": {"service": value}});
            let (status, body) = post(
                &format!(
                    "{gate_url}/v1/flagger/confirm-promotion?template={}&lookback=50m",
                    template.name()
                ),
                &payload,
            )
            .await;
            assert_ne!(status, 200, "{row}: flagger confirm-promotion {body}");
            let (_, body) = post(
                &format!(
                    "{gate_url}/v1/flagger/rollout?template={}&lookback=50m",
                    template.name()
                ),
                &payload,
            )
            .await;
            assert_ne!(body["verdict"], "pass", "{row}: flagger rollout {body}");
            // The controller's own arguments (a Rollout's spec.strategy.canary.analysis.args).
            let args = [("service".to_string(), value.to_string())];
            if let Ok(intervals) = windows
                .window(template, &args, (T0 + 600) as f64, END as f64)
                .await
            {
                let v = judge_window(template, (T0 + 600) as f64, END as f64, &intervals).unwrap();
                let decision = v.first_rollback.map_or(v.last.decision, |j| j.decision);
                assert!(
                    matches!(decision, Decision::Rollback | Decision::Hold),
                    "{row}: controller {decision:?}"
                );
            }
        }
    }

    // A template that declares a pattern refuses other values before any query, naming it.
    let file = support::write_file(dir.path(), "pattern.yaml", GENERIC_PATTERN);
    let out = canary_gate(&[
        "analyze",
        "-t",
        file.to_str().unwrap(),
        "--prometheus",
        &url,
        "--arg",
        r#"service=web",code!~"5.."#,
        "--from",
        &from,
        "--to",
        &to,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match the pattern \"[a-z0-9-]+\""),
        "{}",
        text(&out)
    );

    // An error query that never matches while the requests query does is "no data" (hold,
    // exit 11, the query named), never zero errors — although the canary is 10 points worse.
    let file = support::write_file(dir.path(), "never.yaml", NEVER_MATCHES);
    let out = canary_gate(&[
        "analyze",
        "-t",
        file.to_str().unwrap(),
        "--prometheus",
        &url,
        "--arg",
        "service=web",
        "--from",
        &from,
        "--to",
        &to,
    ]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no data: query.errors") && stdout.contains("status=~"),
        "{stdout}"
    );
}

const GENERIC_PATTERN: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: pattern}
spec:
  args: [{name: service, pattern: "[a-z0-9-]+"}]
  metrics:
    - name: error-rate
      kind: errorRate
      query:
        errors: sum by (version) (increase(http_requests_total{service="{{args.service}}", code=~"5.."}[{{interval}}]))
        requests: sum by (version) (increase(http_requests_total{service="{{args.service}}"}[{{interval}}]))
"#;

/// A range-query answer: `series` as (labels JSON, value) with one point per minute of the
/// window.
fn matrix(series: &[(&str, f64)], from: u64, to: u64) -> String {
    let points: Vec<u64> = (from / 60 + 1..=to / 60).map(|m| m * 60).collect();
    let result: Vec<String> = series
        .iter()
        .map(|(labels, v)| {
            let values: Vec<String> = points.iter().map(|t| format!("[{t},\"{v}\"]")).collect();
            format!(r#"{{"metric":{labels},"values":[{}]}}"#, values.join(","))
        })
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
        result.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_that_repeats_a_series_is_an_error_naming_the_query_never_more_evidence() {
    // The canary at 10 % errors against 0.44 %, its series sent 20 times.
    let (from, to) = (T0, T0 + 1800);
    let fake = fake_http::serve(move |r| {
        let errors = r.body.contains("code");
        let (stable, canary) = if errors { (4.0, 10.0) } else { (900.0, 100.0) };
        let mut series = vec![(r#"{"version":"stable"}"#, stable)];
        series.extend(std::iter::repeat_n((r#"{"version":"canary"}"#, canary), 20));
        Answer::json(200, matrix(&series, from, to))
    })
    .await;
    let out = canary_gate(&[
        "analyze",
        "-t",
        GENERIC,
        "--prometheus",
        &fake.url,
        "--arg",
        "service=web",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr.contains("query.errors") && stderr.contains("more than once"),
        "{stderr}"
    );
    let prometheus = Prometheus::new(PrometheusConfig::new(fake.url.clone())).unwrap();
    let generic = canary_gate::template::load(Path::new(GENERIC)).unwrap();
    let state =
        Arc::new(GateState::new(vec![generic], prometheus).with_clock(|| (T0 + 1800) as f64));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gate_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let (status, body) = post(
        &format!("{gate_url}/v1/judge"),
        &json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "30m"}),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("more than once"),
        "{body}"
    );

    // More series than an answer may hold (a query without `sum by` over thousands of pods),
    // and more points per series than were asked for: errors naming the query and the fix.
    let many = fake_http::serve(move |r| {
        if r.body.contains("errors") {
            let labels: Vec<String> = (0..10_001)
                .map(|i| format!(r#"{{"version":"canary","pod":"p{i}"}}"#))
                .collect();
            let series: Vec<(&str, f64)> = labels.iter().map(|l| (l.as_str(), 1.0)).collect();
            Answer::json(200, matrix(&series, from, from + 60))
        } else {
            Answer::json(
                200,
                matrix(
                    &[(r#"{"version":"canary"}"#, 1.0)],
                    from,
                    from + 12_000 * 60,
                ),
            )
        }
    })
    .await;
    let client = Prometheus::new(PrometheusConfig::new(many.url.clone())).unwrap();
    let step = std::time::Duration::from_secs(60);
    let err = client
        .query_range_sparse("errors_by_pod", from as f64, to as f64, step)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"errors_by_pod\" returned 10001 series, more than 10000")
            && err.contains("sum by (version)"),
        "{err}"
    );
    let err = client
        .query_range_sparse("requests", from as f64, to as f64, step)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("returned 12000 points"), "{err}");
}

const TOKEN: &str = "tok-5ecret-0123456789abcdefghijklmnopqrstuvwxyz";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_echoed_across_any_cut_never_shows() {
    // Each answer echoes the token so that it straddles a place where the text is cut (the
    // 512 characters of an error body, the 120 of a decode error's body quote).
    let dir = tempfile::tempdir().unwrap();
    let token_file = support::write_file(dir.path(), "token", &format!("{TOKEN}\n"));
    let rows: Vec<(&str, u16, &str, usize)> = vec![
        ("503 body", 503, "text/plain", 500),
        ("401 body", 401, "text/plain", 500),
        ("404 body", 404, "text/html", 505),
        ("400 error JSON", 400, "application/json", 0),
        ("200 junk", 200, "text/html", 110),
        ("200 status error", 200, "application/json", 0),
        ("302 Location", 302, "text/plain", 0),
    ];
    for (name, status, content_type, at) in rows {
        let body = match (status, at) {
            (400, _) => format!(
                r#"{{"status":"error","errorType":"bad_data","error":"{}{TOKEN}"}}"#,
                "x".repeat(500)
            ),
            (200, 0) => format!(
                r#"{{"status":"error","errorType":"internal","error":"{}{TOKEN}"}}"#,
                "x".repeat(590)
            ),
            _ => format!("{}{TOKEN} and more text after it", "x".repeat(at)),
        };
        let fake = fake_http::serve(move |_| {
            let mut answer = Answer::text(status, content_type, body.clone());
            if status == 302 {
                // A redirect target that carries the token across the cut of a header value.
                answer.headers = vec![(
                    "location".into(),
                    format!("https://login.example/{}?t={TOKEN}", "p".repeat(480)),
                )];
            }
            answer
        })
        .await;
        let out = canary_gate(&[
            "analyze",
            "-t",
            GENERIC,
            "--prometheus",
            &fake.url,
            "--bearer-token-file",
            token_file.to_str().unwrap(),
            "--retries",
            "0",
            "--arg",
            "service=web",
            "--from",
            &T0.to_string(),
            "--to",
            &(T0 + 600).to_string(),
        ]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {all}");
        // The token file's newline is not part of the token: it reached the server intact.
        let head = fake.received.lock().unwrap()[0].head.clone();
        assert!(
            head.contains(&format!("authorization: Bearer {TOKEN}\r\n")),
            "{name}: {head}"
        );
        for n in [8, 12, 20] {
            assert!(
                !all.contains(&TOKEN[..n]),
                "{name}: {n} characters of the token leaked: {all}"
            );
        }
    }

    // The gate's 502 body goes to any HTTP client: the same holds there.
    let body = format!("{}{TOKEN} and more", "x".repeat(500));
    let fake = fake_http::serve(move |_| Answer::text(503, "text/plain", body.clone())).await;
    let mut config = PrometheusConfig::new(fake.url.clone());
    config.credentials = Credentials::Bearer(Secret::new(TOKEN));
    config.retries = 0;
    let generic = canary_gate::template::load(Path::new(GENERIC)).unwrap();
    let gate_url = gate(Prometheus::new(config).unwrap(), vec![generic]).await;
    let (status, answer) = post(
        &format!("{gate_url}/v1/judge"),
        &json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "10m"}),
    )
    .await;
    assert_eq!(status, 502, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("[redacted]") && !error.contains(&TOKEN[..8]),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_intervals_and_lines_that_would_exhaust_memory_are_refused_before_any_request() {
    let fake = fake_http::serve(|_| Answer::json(500, "must not be asked")).await;
    let dir = tempfile::tempdir().unwrap();
    for (from, to, says) in [
        ("0", "1763856000", "more than 100000"),
        ("-1e18", "1e18", "not a time"),
        ("1e300", "1e301", "not a time"),
    ] {
        let started = std::time::Instant::now();
        let out = canary_gate(&[
            "analyze",
            "-t",
            GENERIC,
            "--prometheus",
            &fake.url,
            "--arg",
            "service=web",
            &format!("--from={from}"),
            &format!("--to={to}"),
        ]);
        assert_eq!(out.status.code(), Some(1), "{from}..{to}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{from}..{to}: {}",
            text(&out)
        );
        assert!(started.elapsed().as_secs() < 10);
    }
    assert!(fake.received.lock().unwrap().is_empty());

    // The gate: 422 with the reason, no request to Prometheus either.
    let generic = canary_gate::template::load(Path::new(GENERIC)).unwrap();
    let gate_url = gate(
        Prometheus::new(PrometheusConfig::new(fake.url.clone())).unwrap(),
        vec![generic],
    )
    .await;
    for body in [
        json!({"template": "generic-http", "args": {"service": "web"}, "from": -1e18, "to": 1e18}),
        json!({"template": "generic-http", "args": {"service": "web"}, "from": 0, "to": 1}),
    ] {
        let (status, answer) = post(&format!("{gate_url}/v1/judge"), &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
    }
    assert!(fake.received.lock().unwrap().is_empty());

    // replay: a 2 MiB line is refused with its number, not read whole.
    let stream = support::write_file(
        dir.path(),
        "stream.jsonl",
        &format!("{}\n", "x".repeat(2 << 20)),
    );
    let out = canary_gate(&["replay", "-t", GENERIC, "--input", stream.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1 is longer than 1048576 bytes"),
        "{}",
        text(&out)
    );
    // …and invalid UTF-8 names its line.
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, b"\n{\"t\": \xff}\n").unwrap();
    let out = canary_gate(&["replay", "-t", GENERIC, "--input", path.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2 is not valid UTF-8"),
        "{}",
        text(&out)
    );
}

/// generic-http with one edit.
fn generic_with(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(GENERIC).unwrap();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_refuses_templates_that_make_the_judge_meaningless_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        (
            "same versions",
            generic_with(
                "versionLabel: version\n",
                "versionLabel: version\n  versions: {stable: canary, canary: canary}\n",
            ),
            "spec.versions: stable and canary are both \"canary\"",
        ),
        (
            "alpha 1e-320",
            generic_with("alpha: 0.01", "alpha: 1.0e-320"),
            "spec.alpha: is 1e-320; must be between 1e-6 and 0.5",
        ),
        (
            "empty versionLabel",
            generic_with("versionLabel: version", "versionLabel: \"\""),
            "spec.versionLabel: \"\" is not a Prometheus label name",
        ),
        (
            "interval 1ns",
            generic_with("interval: 1m", "interval: 1ns"),
            "spec.interval: is 1ns; must be between 1s and 1day",
        ),
        (
            "rate() in a count query",
            generic_with("(increase(http_requests_total", "(rate(http_requests_total"),
            "spec.metrics[0].query.errors: uses rate(), a per-second rate",
        ),
        (
            "a placeholder in a threshold",
            generic_with(
                "      compare:\n        direction: increase\n        tolerance: 0\n",
                "      threshold: {maxRate: \"{{args.max}}\"}\n",
            ),
            "placeholders",
        ),
    ];
    for (name, template, says) in rows {
        let file = support::write_file(dir.path(), "t.yaml", &template);
        let out = canary_gate(&["template", "lint", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{name}: {}",
            text(&out)
        );
    }

    // A template whose argument declares a pattern lints (the stand-in is not checked).
    let file = support::write_file(dir.path(), "pattern.yaml", GENERIC_PATTERN);
    let out = canary_gate(&["template", "lint", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // --prometheus: a 200 that is not the API's success is not "parsed by Prometheus".
    for (name, answer) in [
        (
            "an HTML page",
            ("text/html", "<html><body>login</body></html>"),
        ),
        (
            "status error",
            (
                "application/json",
                r#"{"status":"error","errorType":"bad_data","error":"nope"}"#,
            ),
        ),
    ] {
        let fake = fake_http::serve(move |_| Answer::text(200, answer.0, answer.1)).await;
        let out = canary_gate(&["template", "lint", GENERIC, "--prometheus", &fake.url]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("parsed by Prometheus"),
            "{name}: {}",
            text(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_said_once_and_in_the_words_of_the_interface_that_got_them() {
    // The CLI prints each cause once.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let out = canary_gate(&[
        "analyze",
        "-t",
        GENERIC,
        "--prometheus",
        &url,
        "--retries",
        "0",
        "--arg",
        "service=web",
        "--from",
        &T0.to_string(),
        "--to",
        &(T0 + 600).to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("is unreachable").count(), 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // HTTP clients are not told about command-line flags.
    let fake = fake_http::serve(|_| Answer::json(500, "unused")).await;
    let generic = canary_gate::template::load(Path::new(GENERIC)).unwrap();
    let gate_url = gate(
        Prometheus::new(PrometheusConfig::new(fake.url.clone())).unwrap(),
        vec![generic],
    )
    .await;
    let (status, body) = post(
        &format!("{gate_url}/v1/judge"),
        &json!({"template": "generic-http", "lookback": "10m"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("service") && error.contains("\"args\"") && !error.contains("--arg"),
        "{error}"
    );
    let out = canary_gate(&[
        "analyze",
        "-t",
        GENERIC,
        "--prometheus",
        &fake.url,
        "--from",
        "0",
        "--to",
        "60",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("give them as --arg NAME=VALUE"),
        "{}",
        text(&out)
    );

    // A token file with a line break inside is refused by name, not "failed to parse header
    // value".
    let dir = tempfile::tempdir().unwrap();
    let token = support::write_file(dir.path(), "token", "line-one\nline-two\n");
    let out = canary_gate(&[
        "analyze",
        "-t",
        GENERIC,
        "--prometheus",
        &fake.url,
        "--bearer-token-file",
        token.to_str().unwrap(),
        "--arg",
        "service=web",
        "--from",
        "0",
        "--to",
        "60",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds a line break")
            && stderr.contains("token")
            && !stderr.contains("line-two"),
        "{stderr}"
    );
}

/// `gate serve` as a process with tight limits, its URL read from its first line.
struct GateProcess {
    child: std::process::Child,
    url: String,
    addr: String,
}

impl GateProcess {
    fn start(prometheus: &str) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .args([
                "gate",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "-t",
                GENERIC,
                "--prometheus",
                prometheus,
                "--retries",
                "0",
                "--query-timeout",
                "30s",
                "--header-timeout",
                "1s",
                "--request-timeout",
                "2s",
                "--max-connections",
                "4",
                "--shutdown-timeout",
                "3s",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start gate serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        let addr = url.trim_start_matches("http://").to_string();
        Self { child, url, addr }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Waits for the process to exit; its exit code and how long that took.
    fn wait(&mut self, limit: std::time::Duration) -> (Option<i32>, std::time::Duration) {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("gate serve did not exit within {limit:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for GateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds until the server closes `stream` (reads return 0), or `None` past `limit`.
async fn closed_after(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> Option<f64> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed().as_secs_f64()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_serve_bounds_slow_clients_slow_prometheus_and_shuts_down_on_sigterm() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    support::init_crypto();
    let second = std::time::Duration::from_secs(1);
    // A Prometheus that takes 1.2 s per answer: two queries make a judge request take 2.4 s,
    // beyond the 2 s request deadline.
    let slow = fake_http::serve(|_| Answer {
        delay: std::time::Duration::from_millis(1200),
        ..Answer::json(
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
        )
    })
    .await;
    let mut gate = GateProcess::start(&slow.url);

    // Rows: (what the client does, the longest the connection may stay open).
    // An idle connection and a half-sent header are closed by the 1 s header timeout.
    let mut idle = TcpStream::connect(&gate.addr).await.unwrap();
    let mut half = TcpStream::connect(&gate.addr).await.unwrap();
    half.write_all(b"POST /v1/judge HTTP/1.1\r\nHost: gate\r\nContent-Le")
        .await
        .unwrap();
    // A body that never finishes is answered 504 at the 2 s request deadline.
    let mut slow_body = TcpStream::connect(&gate.addr).await.unwrap();
    slow_body
        .write_all(b"POST /v1/judge HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"templ")
        .await
        .unwrap();
    for (name, stream, limit) in [
        ("idle", &mut idle, 3 * second),
        ("half-sent header", &mut half, 3 * second),
        ("unfinished body", &mut slow_body, 4 * second),
    ] {
        let after = closed_after(stream, limit).await;
        assert!(after.is_some(), "{name}: still open after {limit:?}");
    }

    // A judge request against the slow Prometheus: 504 with the reason at the deadline, not
    // after the 27–31 s the issue measured.
    let started = std::time::Instant::now();
    let (status, body) = post(
        &format!("{}/v1/judge", gate.url),
        &json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "10m"}),
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(status, 504, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("request deadline"),
        "{body}"
    );
    assert!((1.9..3.5).contains(&took), "answered after {took:.2}s");

    // A body over 64 KiB is refused with 413 and the reason.
    let (status, body) = post(
        &format!("{}/v1/judge", gate.url),
        &json!({"template": "generic-http", "args": {"service": "x".repeat(100_000)}}),
    )
    .await;
    assert_eq!(status, 413, "{body}");

    // At most 4 connections: with 4 idle ones open, a fifth is served only once the header
    // timeout has closed them.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&gate.addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let answer = reqwest::get(format!("{}/healthz", gate.url)).await.unwrap();
    let waited = started.elapsed().as_secs_f64();
    assert_eq!(answer.status(), 200);
    assert!(
        waited > 0.5 && waited < 3.0,
        "the fifth connection waited {waited:.2}s"
    );
    drop(held);

    // SIGTERM with a request in flight: it is answered, then the process exits 0 within the
    // shutdown timeout, and nothing listens any more.
    let url = gate.url.clone();
    let in_flight = tokio::spawn(async move {
        post(
            &format!("{url}/v1/judge"),
            &json!({"template": "generic-http", "args": {"service": "web"}, "lookback": "10m"}),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut lingering = TcpStream::connect(&gate.addr).await.unwrap();
    lingering
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    gate.signal("TERM");
    let (status, _) = in_flight.await.unwrap();
    assert_eq!(status, 504, "the request in flight got its answer");
    let (code, took) = gate.wait(6 * second);
    assert_eq!(code, Some(0));
    assert!(took.as_secs_f64() < 4.0, "exited {took:?} after SIGTERM");
    assert!(
        TcpStream::connect(&gate.addr).await.is_err(),
        "still listening"
    );

    // Ctrl-C (SIGINT) with only a half-sent request open exits at once.
    let mut gate = GateProcess::start(&slow.url);
    let mut half = TcpStream::connect(&gate.addr).await.unwrap();
    half.write_all(b"POST /v1/judge HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    gate.signal("INT");
    let (code, took) = gate.wait(6 * second);
    assert_eq!(code, Some(0));
    assert!(took.as_secs_f64() < 2.0, "exited {took:?} after SIGINT");
}
