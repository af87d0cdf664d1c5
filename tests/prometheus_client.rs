//! The Prometheus client against a real Prometheus (backfilled history, live scraping, TLS) and
//! against recording HTTP servers (auth, headers, retries, timeouts, error mapping, redaction).

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canary_gate::metrics::prometheus::{
    Credentials, Prometheus, PrometheusConfig, PrometheusError, Secret,
};
use canary_gate::metrics::scrape::{LabelMatch, Scraper};
use support::{PrometheusServer, TestCa, free_port, init_crypto};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Start of the backfilled hour (2023-11-14T22:13:20Z), Unix seconds.
const T0: i64 = 1_700_000_000;
/// Samples every 15 s for an hour: 241 points per series.
const STEPS: i64 = 240;

/// `http_requests_total` for stable (11 requests per 15 s, 1 of them 500) and canary (10 per
/// 15 s, 2 of them 500), as OpenMetrics text.
fn history() -> String {
    let mut s =
        String::from("# HELP http_requests Requests served.\n# TYPE http_requests counter\n");
    for (version, code, per_step) in [
        ("stable", "200", 10),
        ("stable", "500", 1),
        ("canary", "200", 8),
        ("canary", "500", 2),
    ] {
        for i in 0..=STEPS {
            writeln!(
                s,
                "http_requests_total{{version=\"{version}\",code=\"{code}\"}} {} {}",
                per_step * i,
                T0 + 15 * i
            )
            .unwrap();
        }
    }
    s.push_str("# EOF\n");
    s
}

fn client(url: &str) -> Prometheus {
    init_crypto();
    let mut config = PrometheusConfig::new(url);
    config.timeout = Duration::from_secs(5);
    config.retries = 2;
    config.backoff = Duration::from_millis(20);
    Prometheus::new(config).expect("client")
}

fn version_of(labels: &BTreeMap<String, String>) -> &str {
    labels.get("version").map_or("", String::as_str)
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9 * expected.abs().max(1.0),
        "{actual} != {expected}"
    );
}

// ---------------------------------------------------------------------------------------------
// (a) A real Prometheus with backfilled history.

#[tokio::test]
async fn instant_query_returns_both_versions_with_their_labels() {
    let server = PrometheusServer::with_backfill(&history()).await;
    let prom = client(&server.url());
    let at = (T0 + 1800) as f64;
    let mut samples = prom
        .query("sum by (version) (increase(http_requests_total[1m]))", at)
        .await
        .unwrap();
    samples.sort_by(|a, b| version_of(&a.labels).cmp(version_of(&b.labels)));
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert_eq!(
        samples[0].labels,
        BTreeMap::from([("version".to_string(), "canary".to_string())])
    );
    assert_eq!(
        samples[1].labels,
        BTreeMap::from([("version".to_string(), "stable".to_string())])
    );
    // 4 steps of 15 s in a minute: canary 4 × 10, stable 4 × 11.
    assert_close(samples[0].value, 40.0);
    assert_close(samples[1].value, 44.0);
    assert_eq!(samples[0].timestamp, at);

    // Without aggregation every label is kept, including __name__-less series labels.
    let raw = prom
        .query(r#"http_requests_total{version="canary",code="500"}"#, at)
        .await
        .unwrap();
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].labels["__name__"], "http_requests_total");
    assert_eq!(raw[0].labels["code"], "500");
    assert_eq!(raw[0].value, 2.0 * 120.0);

    // A scalar result is one unlabelled sample.
    let scalar = prom
        .query("scalar(sum(http_requests_total))", at)
        .await
        .unwrap();
    assert_eq!(scalar.len(), 1);
    assert!(scalar[0].labels.is_empty());
    assert_eq!(scalar[0].value, 21.0 * 120.0);
}

#[tokio::test]
async fn range_query_returns_series_with_points() {
    let server = PrometheusServer::with_backfill(&history()).await;
    let prom = client(&server.url());
    let start = (T0 + 600) as f64;
    let end = (T0 + 1200) as f64;
    let mut series = prom
        .query_range(
            r#"sum by (version) (rate(http_requests_total{code="500"}[1m]))"#,
            start,
            end,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    series.sort_by(|a, b| version_of(&a.labels).cmp(version_of(&b.labels)));
    assert_eq!(series.len(), 2);
    assert_eq!(version_of(&series[0].labels), "canary");
    assert_eq!(version_of(&series[1].labels), "stable");
    for (s, per_second) in series.iter().zip([2.0 / 15.0, 1.0 / 15.0]) {
        assert_eq!(s.points.len(), 11, "{s:?}");
        assert_eq!(s.points[0].0, start);
        assert_eq!(s.last_timestamp(), Some(end));
        for (_, v) in &s.points {
            assert_close(*v, per_second);
        }
    }
}

#[tokio::test]
async fn syntax_errors_are_bad_query_with_prometheus_text() {
    let server = PrometheusServer::with_backfill(&history()).await;
    let prom = client(&server.url());
    let query = "sum(rate(http_requests_total[1m]) by";
    let err = prom.query(query, (T0 + 60) as f64).await.unwrap_err();
    match &err {
        PrometheusError::BadQuery {
            query: q,
            status,
            error_type,
            error,
        } => {
            assert_eq!(q, query);
            assert_eq!(*status, 400);
            assert_eq!(error_type, "bad_data");
            assert!(error.contains("parse error"), "{error}");
            assert!(error.contains("unexpected <by> in aggregation"), "{error}");
        }
        other => panic!("expected BadQuery, got {other:?}"),
    }
    assert_eq!(err.category(), "bad_query");
    assert!(err.to_string().contains(query), "{err}");
}

#[tokio::test]
async fn check_syntax_accepts_good_promql_and_rejects_bad() {
    let server = PrometheusServer::start().await;
    let prom = client(&server.url());
    prom.check_syntax(
        r#"sum by (version) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (version) (rate(http_requests_total[5m]))"#,
    )
    .await
    .unwrap();
    prom.check_syntax("histogram_quantile(0.99, sum by (le) (rate(latency_seconds_bucket[5m])))")
        .await
        .unwrap();

    let err = prom.check_syntax("sum(rate(x[5m]) by").await.unwrap_err();
    assert_eq!(err.category(), "bad_query");
    assert!(
        err.to_string().contains("unexpected <by> in aggregation"),
        "{err}"
    );
    // Type errors are caught too.
    let err = prom
        .check_syntax("rate(http_requests_total)")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("expected type range vector"),
        "{err}"
    );
}

#[tokio::test]
async fn a_query_matching_nothing_is_empty() {
    let server = PrometheusServer::with_backfill(&history()).await;
    let prom = client(&server.url());
    let at = (T0 + 600) as f64;
    let err = prom
        .query(r#"http_requests_total{version="nope"}"#, at)
        .await
        .unwrap_err();
    assert!(matches!(err, PrometheusError::Empty { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        r#"query "http_requests_total{version=\"nope\"}" returned no series"#
    );
    let err = prom
        .query_range("no_such_metric", at, at + 60.0, Duration::from_secs(15))
        .await
        .unwrap_err();
    assert_eq!(err.category(), "empty");
}

#[tokio::test]
async fn zero_divided_by_zero_is_not_a_number() {
    let server = PrometheusServer::with_backfill(&history()).await;
    let prom = client(&server.url());
    let at = (T0 + 600) as f64;
    let err = prom.query("0/0", at).await.unwrap_err();
    assert!(matches!(err, PrometheusError::NotANumber { .. }), "{err:?}");
    assert_eq!(err.category(), "not_a_number");

    // A per-version ratio with a zero denominator names the series.
    let err = prom
        .query(
            r#"sum by (version) (http_requests_total{code="500"}) / (sum by (version) (http_requests_total{code="500"}) * 0)"#,
            at,
        )
        .await
        .unwrap_err();
    match &err {
        PrometheusError::NotANumber { labels, value, .. } => {
            assert!(labels.contains("version="), "{labels}");
            assert_eq!(*value, f64::INFINITY);
        }
        other => panic!("expected NotANumber, got {other:?}"),
    }
}

#[tokio::test]
async fn a_range_ending_long_after_the_data_is_stale() {
    let server = PrometheusServer::with_backfill(&history()).await;
    let prom = client(&server.url());
    let data_end = T0 + 15 * STEPS;
    let err = prom
        .query_range(
            "sum by (version) (rate(http_requests_total[1m]))",
            (data_end - 600) as f64,
            (data_end + 1200) as f64,
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    match &err {
        PrometheusError::Stale { age, step, .. } => {
            // The newest evaluation with two samples in its window is at the last sample.
            assert_eq!(*age, Duration::from_secs(1200));
            assert_eq!(*step, Duration::from_secs(60));
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    assert!(err.to_string().contains("20m"), "{err}");
}

#[tokio::test]
async fn a_custom_ca_file_trusts_a_tls_prometheus() {
    let ca = TestCa::generate();
    let server = PrometheusServer::builder().tls(&ca).start().await;
    assert!(server.url().starts_with("https://"));
    init_crypto();

    let mut config = PrometheusConfig::new(server.url());
    config.ca_file = Some(ca.ca_cert());
    let prom = Prometheus::new(config).unwrap();
    let samples = prom.query("vector(7)", 1_700_000_000.0).await.unwrap();
    assert_eq!(samples[0].value, 7.0);

    // System roots only: the handshake fails, once, as a TLS error.
    let mut config = PrometheusConfig::new(server.url());
    config.retries = 3;
    config.backoff = Duration::from_secs(2);
    let prom = Prometheus::new(config).unwrap();
    let started = Instant::now();
    let err = prom.query("vector(7)", 1_700_000_000.0).await.unwrap_err();
    assert!(matches!(err, PrometheusError::Tls { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "TLS errors are not retried"
    );
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn a_live_scrape_agrees_with_a_direct_scrape() {
    let target = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "# TYPE http_requests_total counter\n\
             http_requests_total{version=\"stable\",code=\"200\"} 1000\n\
             http_requests_total{version=\"stable\",code=\"500\"} 5\n\
             http_requests_total{version=\"canary\",code=\"200\"} 90\n\
             http_requests_total{version=\"canary\",code=\"503\"} 10\n",
            "text/plain; version=0.0.4",
        ))
        .mount(&target)
        .await;
    let server = PrometheusServer::with_targets(&[target.address().to_string()]).await;
    server.wait_for_targets_up(1, Duration::from_secs(15)).await;

    let prom = client(&server.url());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let via_prometheus = prom
        .query(
            r#"sum by (version) (http_requests_total{version="canary"})"#,
            now,
        )
        .await
        .unwrap();
    let errors_via_prometheus = prom
        .query(
            r#"sum by (version) (http_requests_total{version="canary",code=~"5.."})"#,
            now,
        )
        .await
        .unwrap();

    let direct = Scraper::new(Duration::from_secs(2))
        .unwrap()
        .scrape(&format!("{}/metrics", target.uri()))
        .await
        .unwrap()
        .version_counters(
            "http_requests_total",
            &[("code", LabelMatch::Prefix("5".into()))],
            None,
            &[("version", LabelMatch::Equal("canary".into()))],
        )
        .unwrap();
    assert_eq!(via_prometheus[0].value, 100.0);
    assert_eq!(direct.requests, via_prometheus[0].value);
    assert_eq!(direct.errors, errors_via_prometheus[0].value);
    assert_eq!(direct.errors, 10.0);
}

// ---------------------------------------------------------------------------------------------
// (b) Recording HTTP servers.

const TOKEN: &str = "tok-DISTINCTIVE-7fQ2xZ";
const PASSWORD: &str = "pw-DISTINCTIVE-9Kq2";

fn vector_body() -> serde_json::Value {
    serde_json::json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [
            {"metric": {"version": "canary"}, "value": [1700000000, "1.5"]}
        ]}
    })
}

async fn mock_ok(server: &MockServer) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(vector_body()))
        .mount(server)
        .await;
}

fn config_for(server: &MockServer) -> PrometheusConfig {
    init_crypto();
    let mut config = PrometheusConfig::new(server.uri());
    config.timeout = Duration::from_secs(5);
    config.backoff = Duration::from_millis(10);
    config
}

fn header<'a>(request: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn bearer_token_and_form_encoded_post_are_sent() {
    let server = MockServer::start().await;
    mock_ok(&server).await;
    let mut config = config_for(&server);
    config.url = format!("{}/prometheus", server.uri());
    config.credentials = Credentials::Bearer(Secret::new(TOKEN));
    let prom = Prometheus::new(config).unwrap();
    let query = r#"sum by (version) (rate(http_requests_total{code=~"5.."}[1m]))"#;
    let samples = prom.query(query, 1_700_000_000.5).await.unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].value, 1.5);
    assert_eq!(samples[0].timestamp, 1_700_000_000.0);
    assert_eq!(samples[0].labels["version"], "canary");

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.url.path(), "/prometheus/api/v1/query");
    assert_eq!(
        header(r, "authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        header(r, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: BTreeMap<String, String> = url_decode_form(&r.body);
    assert_eq!(form["query"], query);
    assert_eq!(form["time"], "1700000000.5");
}

/// Decodes `application/x-www-form-urlencoded` (test-side, independent of the client).
fn url_decode_form(body: &[u8]) -> BTreeMap<String, String> {
    let text = std::str::from_utf8(body).unwrap();
    text.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn basic_auth_is_sent() {
    let server = MockServer::start().await;
    mock_ok(&server).await;
    let mut config = config_for(&server);
    config.credentials = Credentials::Basic {
        username: "alice".into(),
        password: Secret::new(PASSWORD),
    };
    Prometheus::new(config)
        .unwrap()
        .query("up", 1.0)
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    // base64("alice:pw-DISTINCTIVE-9Kq2")
    assert_eq!(
        header(&requests[0], "authorization"),
        Some("Basic YWxpY2U6cHctRElTVElOQ1RJVkUtOUtxMg==")
    );
}

#[tokio::test]
async fn tenant_headers_are_sent() {
    let server = MockServer::start().await;
    mock_ok(&server).await;
    let mut config = config_for(&server);
    config.headers = vec![
        ("X-Scope-OrgID".into(), "team-a|team-b".into()),
        ("X-Extra".into(), "1".into()),
    ];
    let prom = Prometheus::new(config).unwrap();
    prom.query("up", 1.0).await.unwrap();
    prom.query_range("up", 1.0, 61.0, Duration::from_secs(15))
        .await
        .unwrap_err(); // a vector body is not a matrix
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(header(r, "x-scope-orgid"), Some("team-a|team-b"));
        assert_eq!(header(r, "x-extra"), Some("1"));
        assert_eq!(header(r, "authorization"), None);
    }
    assert_eq!(requests[1].url.path(), "/api/v1/query_range");
    let form = url_decode_form(&requests[1].body);
    assert_eq!(
        (
            form["start"].as_str(),
            form["end"].as_str(),
            form["step"].as_str()
        ),
        ("1", "61", "15")
    );
}

#[tokio::test]
async fn a_slow_server_times_out_after_retries_plus_one_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(vector_body())
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let mut config = config_for(&server);
    config.timeout = Duration::from_millis(200);
    config.retries = 2;
    let prom = Prometheus::new(config).unwrap();
    let started = Instant::now();
    let err = prom.query("up", 1.0).await.unwrap_err();
    let elapsed = started.elapsed();
    match &err {
        PrometheusError::Timeout {
            query,
            timeout,
            attempts,
        } => {
            assert_eq!(query, "up");
            assert_eq!(*timeout, Duration::from_millis(200));
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "query \"up\" timed out after 200ms per attempt (3 attempt(s))"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_503_then_200_succeeds_on_the_second_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mock_ok(&server).await;
    let prom = Prometheus::new(config_for(&server)).unwrap();
    let samples = prom.query("up", 1.0).await.unwrap();
    assert_eq!(samples[0].value, 1.5);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn persistent_5xx_is_a_server_error_after_all_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string("x".repeat(5000)))
        .mount(&server)
        .await;
    let mut config = config_for(&server);
    config.retries = 1;
    let err = Prometheus::new(config)
        .unwrap()
        .query("up", 1.0)
        .await
        .unwrap_err();
    match &err {
        PrometheusError::Server {
            status,
            attempts,
            body,
            url,
        } => {
            assert_eq!((*status, *attempts), (502, 2));
            assert!(body.len() < 600 && body.ends_with("(5000 bytes)"), "{body}");
            assert_eq!(url, &format!("{}/api/v1/query", server.uri()));
        }
        other => panic!("expected Server, got {other:?}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_400_is_bad_query_after_exactly_one_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "status": "error",
            "errorType": "bad_data",
            "error": "invalid parameter \"query\": 1:5: parse error: unexpected end of input"
        })))
        .mount(&server)
        .await;
    let mut config = config_for(&server);
    config.retries = 5;
    let err = Prometheus::new(config)
        .unwrap()
        .query("sum(", 1.0)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "prometheus rejected query \"sum(\" (HTTP 400, bad_data): invalid parameter \"query\": \
         1:5: parse error: unexpected end of input"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_401_is_unauthorized_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string("no"))
        .mount(&server)
        .await;
    let err = Prometheus::new(config_for(&server))
        .unwrap()
        .query("up", 1.0)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "unauthorized");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_garbage_body_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy login</html>"))
        .mount(&server)
        .await;
    let err = Prometheus::new(config_for(&server))
        .unwrap()
        .query("up", 1.0)
        .await
        .unwrap_err();
    match &err {
        PrometheusError::Decode { query, detail } => {
            assert_eq!(query, "up");
            assert!(detail.contains("<html>proxy login"), "{detail}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }

    // Valid JSON of the wrong shape too.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": "oops"}]}
        })))
        .mount(&server)
        .await;
    let err = Prometheus::new(config_for(&server))
        .unwrap()
        .query("up", 1.0)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "decode");
}

#[tokio::test]
async fn a_closed_port_is_unreachable_after_all_attempts() {
    init_crypto();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut config = PrometheusConfig::new(&url);
    config.retries = 2;
    config.backoff = Duration::from_millis(10);
    let err = Prometheus::new(config)
        .unwrap()
        .query("up", 1.0)
        .await
        .unwrap_err();
    match &err {
        PrometheusError::Unreachable {
            url: u,
            attempts,
            detail,
        } => {
            assert_eq!(u, &format!("{url}/api/v1/query"));
            assert_eq!(*attempts, 3);
            assert!(detail.to_lowercase().contains("refused"), "{detail}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert_eq!(err.category(), "unreachable");
}

#[tokio::test]
async fn check_syntax_falls_back_to_a_query_at_time_zero_without_format_query() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/format_query"))
        .respond_with(ResponseTemplate::new(404).set_body_string("404 page not found"))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "status": "success", "data": {"resultType": "vector", "result": []}
        })))
        .mount(&server)
        .await;
    let prom = Prometheus::new(config_for(&server)).unwrap();
    prom.check_syntax("up").await.unwrap();
    prom.check_syntax("up == 1").await.unwrap();
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    // format_query is tried once, then remembered as missing.
    assert_eq!(
        paths,
        ["/api/v1/format_query", "/api/v1/query", "/api/v1/query"]
    );
    let last = server.received_requests().await.unwrap().pop().unwrap();
    assert_eq!(url_decode_form(&last.body)["time"], "0");
}

#[tokio::test]
async fn config_errors_name_the_problem() {
    init_crypto();
    let mut config = PrometheusConfig::new("http://127.0.0.1:9090");
    config.ca_file = Some("/nonexistent/canary-gate/ca.pem".into());
    let err = Prometheus::new(config).unwrap_err();
    assert_eq!(err.category(), "config");
    assert!(
        err.to_string().contains("/nonexistent/canary-gate/ca.pem"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let not_pem = support::write_file(dir.path(), "ca.pem", "hello\n");
    let mut config = PrometheusConfig::new("http://127.0.0.1:9090");
    config.ca_file = Some(not_pem.clone());
    let err = Prometheus::new(config).unwrap_err();
    assert!(
        err.to_string().contains(&*not_pem.to_string_lossy()),
        "{err}"
    );
    assert!(err.to_string().contains("no PEM certificate"), "{err}");

    let err = Prometheus::new(PrometheusConfig::new("127.0.0.1:9090")).unwrap_err();
    assert_eq!(err.category(), "config");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::Write::write(&mut *self.0.lock().unwrap(), buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Answers with the request's `Authorization` header and a secret the server knows.
struct Echo {
    status: u16,
    known: String,
}

impl wiremock::Respond for Echo {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let auth = header(request, "authorization").unwrap_or_default();
        ResponseTemplate::new(self.status)
            .set_body_string(format!("you sent {auth} / {}", self.known))
    }
}

#[tokio::test]
async fn secrets_never_appear_in_debug_display_errors_or_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let bearer = Credentials::Bearer(Secret::new(TOKEN));
    let basic = Credentials::Basic {
        username: "alice".into(),
        password: Secret::new(PASSWORD),
    };
    let mut shown: Vec<String> = vec![
        format!("{bearer:?}"),
        format!("{basic:?}"),
        format!("{:?} {}", Secret::new(TOKEN), Secret::new(TOKEN)),
    ];
    let mut errors: Vec<PrometheusError> = Vec::new();
    for (credentials, plain) in [(bearer, TOKEN), (basic, PASSWORD)] {
        // A hostile server echoes what it was sent (and knows) in every error body.
        let server = MockServer::start().await;
        for (prefix, status) in [
            ("bad", 400),
            ("server", 500),
            ("auth", 403),
            ("missing", 404),
            ("garbage", 200),
        ] {
            Mock::given(path(format!("/{prefix}/api/v1/query")))
                .respond_with(Echo {
                    status,
                    known: plain.to_string(),
                })
                .mount(&server)
                .await;
        }
        Mock::given(path("/slow/api/v1/query"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        for prefix in ["bad", "server", "auth", "missing", "garbage", "slow"] {
            let mut config = config_for(&server);
            config.url = format!("{}/{prefix}", server.uri());
            config.credentials = credentials.clone();
            config.retries = 1;
            config.timeout = Duration::from_millis(150);
            let prom = Prometheus::new(config.clone()).unwrap();
            shown.push(format!("{config:?}"));
            shown.push(format!("{prom:?}"));
            errors.push(
                prom.query(&format!("up{{x=\"{prefix}\"}}"), 1.0)
                    .await
                    .unwrap_err(),
            );
        }
        let mut config = PrometheusConfig::new(format!("http://127.0.0.1:{}", free_port()));
        config.credentials = credentials.clone();
        config.backoff = Duration::from_millis(5);
        errors.push(
            Prometheus::new(config)
                .unwrap()
                .query("up", 1.0)
                .await
                .unwrap_err(),
        );
        // Credentials in the URL are refused without echoing them.
        let config = PrometheusConfig::new(format!("http://alice:{TOKEN}@127.0.0.1:9090"));
        errors.push(Prometheus::new(config).unwrap_err());
        let mut config = PrometheusConfig::new("http://127.0.0.1:9090");
        config.headers = vec![("X-Token".into(), format!("{TOKEN}\n"))];
        errors.push(Prometheus::new(config).unwrap_err());
    }
    let categories: Vec<&str> = errors.iter().map(PrometheusError::category).collect();
    for expected in [
        "bad_query",
        "server",
        "unauthorized",
        "http_status",
        "decode",
        "timeout",
        "unreachable",
        "config",
    ] {
        assert!(
            categories.contains(&expected),
            "{expected} missing: {categories:?}"
        );
    }
    // The echoed body did reach the errors, redacted.
    assert!(
        errors.iter().any(|e| e
            .to_string()
            .contains("you sent Bearer [redacted] / [redacted]")),
        "{errors:?}"
    );
    for e in &errors {
        shown.push(format!("{e}"));
        shown.push(format!("{e:?}"));
    }
    drop(_guard);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("retrying"),
        "expected retry warnings in:\n{logs}"
    );
    assert!(logs.contains("attempt=1"), "{logs}");
    shown.push(logs);
    for text in &shown {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
        assert!(
            !text.contains("YWxpY2U6cHct"),
            "basic auth header leaked: {text}"
        );
    }
}

/// A loopback HTTP server that answers every request after `delay` with an empty vector and
/// records the most requests it had in flight at once.
async fn counting_server(delay: Duration) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let peak = most.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (now, most) = (now.clone(), most.clone());
            tokio::spawn(async move {
                // Read the head and the form body (Content-Length).
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(inside, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, peak)
}

#[tokio::test]
async fn queries_in_flight_are_bounded_by_max_concurrent() {
    init_crypto();
    let (url, peak) = counting_server(Duration::from_millis(150)).await;
    let mut config = PrometheusConfig::new(url);
    config.max_concurrent = 3;
    let client = Arc::new(Prometheus::new(config).unwrap());
    let started = Instant::now();
    let queries: Vec<_> = (0..12)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.query(&format!("up{{i=\"{i}\"}}"), 0.0).await })
        })
        .collect();
    for q in queries {
        // An empty vector is "no data" to the client; the request itself went through.
        let _ = q.await.unwrap();
    }
    assert_eq!(
        peak.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "twelve queries at once, three in flight at most (and three used)"
    );
    // Four waves of three, 150 ms each.
    assert!(
        started.elapsed() >= Duration::from_millis(590),
        "{:?}",
        started.elapsed()
    );
}
