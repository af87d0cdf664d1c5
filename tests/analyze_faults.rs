//! `analyze` against a misbehaving Prometheus (a real HTTP server on loopback): no data and NaN
//! hold (never promote), a bad query, a garbage body and a timeout are typed errors naming the
//! metric and query, and a 503 is retried.

use std::time::Duration;

use canary_gate::analysis::{Decision, MetricSample};
use canary_gate::analyze::judge_window;
use canary_gate::metrics::prometheus::{Prometheus, PrometheusConfig, PrometheusError};
use canary_gate::metrics::prometheus_source::{PrometheusSource, SourceError};
use canary_gate::template;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TEMPLATE: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: faults}
spec:
  interval: 1m
  metrics:
    - name: errors
      kind: errorRate
      query:
        errors: sum by (version) (increase(errors_total[1m]))
        requests: sum by (version) (increase(requests_total[1m]))
"#;

fn client(server: &MockServer) -> Prometheus {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = PrometheusConfig::new(server.uri());
    config.timeout = Duration::from_millis(300);
    config.retries = 1;
    config.backoff = Duration::from_millis(10);
    Prometheus::new(config).unwrap()
}

fn matrix(series: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        format!(r#"{{"status":"success","data":{{"resultType":"matrix","result":[{series}]}}}}"#),
        "application/json",
    )
}

/// Ten one-minute points per version.
fn series(version: &str, per_interval: &str) -> String {
    let values: Vec<String> = (1..=10)
        .map(|k| format!(r#"[{},"{per_interval}"]"#, 60 * k))
        .collect();
    format!(
        r#"{{"metric":{{"version":"{version}"}},"values":[{}]}}"#,
        values.join(",")
    )
}

async fn analyze(server: &MockServer) -> Result<(Decision, Vec<Vec<MetricSample>>), SourceError> {
    let t = template::parse(TEMPLATE, "faults.yaml").unwrap();
    let client = client(server);
    let source = PrometheusSource::new(&client, &t, &[])?;
    let intervals = source.window(0.0, 600.0).await?;
    let verdict = judge_window(&t, 0.0, 600.0, &intervals).unwrap();
    Ok((
        verdict.last.decision,
        intervals.into_iter().map(|i| i.samples).collect(),
    ))
}

#[tokio::test]
async fn no_series_at_all_holds_with_no_data() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/query_range"))
        .respond_with(matrix(""))
        .mount(&server)
        .await;
    let (decision, samples) = analyze(&server).await.unwrap();
    assert_eq!(decision, Decision::Hold);
    assert!(
        matches!(&samples[0][0], MetricSample::Missing(why) if why.contains("no data") || why.contains("empty") || why.contains("no series")),
        "{:?}",
        samples[0][0]
    );
}

#[tokio::test]
async fn nan_values_hold_and_never_promote() {
    let server = MockServer::start().await;
    let nan = format!("{},{}", series("stable", "NaN"), series("canary", "NaN"));
    Mock::given(path("/api/v1/query_range"))
        .respond_with(matrix(&nan))
        .mount(&server)
        .await;
    let (decision, samples) = analyze(&server).await.unwrap();
    assert_eq!(decision, Decision::Hold);
    assert!(matches!(&samples[3][0], MetricSample::Missing(_)));
}

#[tokio::test]
async fn a_missing_canary_series_holds() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/query_range"))
        .respond_with(matrix(&series("stable", "100")))
        .mount(&server)
        .await;
    let (decision, samples) = analyze(&server).await.unwrap();
    assert_eq!(decision, Decision::Hold);
    assert!(
        matches!(&samples[0][0], MetricSample::Missing(why) if why.contains("version=\"canary\""))
    );
}

#[tokio::test]
async fn clean_data_promotes_so_the_holds_above_are_about_the_faults() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/query_range"))
        .and(body_string_contains("errors_total"))
        .respond_with(matrix(&format!(
            "{},{}",
            series("stable", "1"),
            series("canary", "0")
        )))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/query_range"))
        .and(body_string_contains("requests_total"))
        .respond_with(matrix(&format!(
            "{},{}",
            series("stable", "900"),
            series("canary", "100")
        )))
        .mount(&server)
        .await;
    let (decision, _) = analyze(&server).await.unwrap();
    assert_eq!(decision, Decision::Promote);
}

#[tokio::test]
async fn a_bad_query_is_an_error_naming_metric_field_and_prometheus_text() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/query_range"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5: unexpected identifier"}"#,
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = analyze(&server).await.unwrap_err();
    assert!(
        matches!(
            &err,
            SourceError::Prometheus {
                source: PrometheusError::BadQuery { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("metric \"errors\", query.errors") && text.contains("unexpected identifier"),
        "{text}"
    );
}

#[tokio::test]
async fn a_garbage_body_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/query_range"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("<html>proxy error</html>", "text/html"),
        )
        .mount(&server)
        .await;
    let err = analyze(&server).await.unwrap_err();
    assert!(
        matches!(
            &err,
            SourceError::Prometheus {
                source: PrometheusError::Decode { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_slower_than_the_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/query_range"))
        .respond_with(matrix("").set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let err = analyze(&server).await.unwrap_err();
    assert!(
        matches!(
            &err,
            SourceError::Prometheus {
                source: PrometheusError::Timeout { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_503_is_retried_and_the_analysis_completes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/query_range"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/query_range"))
        .and(body_string_contains("errors_total"))
        .respond_with(matrix(&format!(
            "{},{}",
            series("stable", "1"),
            series("canary", "0")
        )))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/query_range"))
        .and(body_string_contains("requests_total"))
        .respond_with(matrix(&format!(
            "{},{}",
            series("stable", "900"),
            series("canary", "100")
        )))
        .mount(&server)
        .await;
    let (decision, _) = analyze(&server).await.unwrap();
    assert_eq!(decision, Decision::Promote);
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}
