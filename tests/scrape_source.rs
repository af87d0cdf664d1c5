//! Direct `/metrics` scrapes against a real HTTP server on loopback.

mod support;

use std::time::{Duration, Instant};

use canary_gate::metrics::counters::CumulativeHistogram;
use canary_gate::metrics::scrape::{LabelMatch, ScrapeError, Scraper};
use support::free_port;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EXPOSITION: &str = r#"# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{version="stable",code="200",path="/api/items,all"} 9000
http_requests_total{version="stable",code="500",path="/api/items,all"} 12
http_requests_total{version="stable",code="503",path="/api/items,all"} 3
http_requests_total{version="canary",code="200",path="/api/items,all"} 880
http_requests_total{version="canary",code="404",path="/api/items,all"} 40
http_requests_total{version="canary",code="500",path="/api/items,all"} 25
http_requests_total{version="canary",code="502",path="/api/items,all"} 5
# HELP request_duration_seconds Latency.
# TYPE request_duration_seconds histogram
request_duration_seconds_bucket{version="stable",le="0.05"} 7000
request_duration_seconds_bucket{version="stable",le="0.25"} 8900
request_duration_seconds_bucket{version="stable",le="1"} 9010
request_duration_seconds_bucket{version="stable",le="+Inf"} 9015
request_duration_seconds_sum{version="stable"} 451.25
request_duration_seconds_count{version="stable"} 9015
request_duration_seconds_bucket{version="canary",le="0.05"} 600
request_duration_seconds_bucket{version="canary",le="0.25"} 900
request_duration_seconds_bucket{version="canary",le="1"} 945
request_duration_seconds_bucket{version="canary",le="+Inf"} 950
request_duration_seconds_sum{version="canary"} 88.5
request_duration_seconds_count{version="canary"} 950
# HELP process_start_time_seconds Start time.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.7e+09
"#;

async fn serve(status: u16, body: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(
            ResponseTemplate::new(status)
                .set_body_raw(body.to_string(), "text/plain; version=0.0.4"),
        )
        .mount(&server)
        .await;
    server
}

fn scraper() -> Scraper {
    support::init_crypto();
    Scraper::new(Duration::from_secs(2)).unwrap()
}

fn version(v: &str) -> Vec<(&'static str, LabelMatch)> {
    vec![("version", LabelMatch::Equal(v.to_string()))]
}

#[tokio::test]
async fn scrape_and_version_counters_give_exact_numbers() {
    let server = serve(200, EXPOSITION).await;
    let url = format!("{}/metrics", server.uri());
    let exposition = scraper().scrape(&url).await.unwrap();
    let five_xx = [("code", LabelMatch::Prefix("5".into()))];

    let canary = exposition
        .version_counters(
            "http_requests_total",
            &five_xx,
            Some("request_duration_seconds"),
            &version("canary"),
        )
        .unwrap();
    assert_eq!(canary.requests, 950.0);
    assert_eq!(canary.errors, 30.0);
    assert_eq!(
        canary.latency,
        Some(
            CumulativeHistogram::new(
                vec![
                    (0.05, 600.0),
                    (0.25, 900.0),
                    (1.0, 945.0),
                    (f64::INFINITY, 950.0)
                ],
                88.5,
                950.0
            )
            .unwrap()
        )
    );

    let stable = exposition
        .version_counters(
            "http_requests_total",
            &five_xx,
            Some("request_duration_seconds"),
            &version("stable"),
        )
        .unwrap();
    assert_eq!((stable.requests, stable.errors), (9015.0, 15.0));
    let latency = stable.latency.unwrap();
    assert_eq!(latency.count, 9015.0);
    assert_eq!(latency.sum, 451.25);

    // Both versions' histograms summed bucket by bucket.
    let both = exposition
        .histogram("request_duration_seconds", &[])
        .unwrap()
        .unwrap();
    assert_eq!(
        both.buckets,
        vec![
            (0.05, 7600.0),
            (0.25, 9800.0),
            (1.0, 9955.0),
            (f64::INFINITY, 9965.0)
        ]
    );
    assert_eq!(both.sum, 539.75);

    // Label values with commas are kept intact.
    assert_eq!(
        exposition.sum(
            "http_requests_total",
            &[("path", LabelMatch::Equal("/api/items,all".into()))]
        ),
        Some(9965.0)
    );
    assert_eq!(
        exposition.sum("process_start_time_seconds", &[]),
        Some(1.7e9)
    );
    assert_eq!(
        server.received_requests().await.unwrap()[0]
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .map(|a| a.starts_with("text/plain;version=0.0.4")),
        Some(true)
    );
}

#[tokio::test]
async fn a_500_is_a_status_error_naming_the_url() {
    let server = serve(500, "exporter crashed").await;
    let url = format!("{}/metrics", server.uri());
    let err = scraper().scrape(&url).await.unwrap_err();
    match &err {
        ScrapeError::Status {
            url: u,
            status,
            body,
        } => {
            assert_eq!(u, &url);
            assert_eq!(*status, 500);
            assert_eq!(body, "exporter crashed");
        }
        other => panic!("expected Status, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("metrics endpoint {url} answered HTTP 500: exporter crashed")
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported() {
    let url = format!("http://127.0.0.1:{}/metrics", free_port());
    let err = scraper().scrape(&url).await.unwrap_err();
    match &err {
        ScrapeError::Unreachable { url: u, detail } => {
            assert_eq!(u, &url);
            assert!(detail.to_lowercase().contains("refused"), "{detail}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("metrics endpoint {url} is unreachable"))
    );
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let server = MockServer::start().await;
    Mock::given(path("/metrics"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(EXPOSITION)
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    support::init_crypto();
    let started = Instant::now();
    let err = Scraper::new(Duration::from_millis(200))
        .unwrap()
        .scrape(&format!("{}/metrics", server.uri()))
        .await
        .unwrap_err();
    assert!(matches!(err, ScrapeError::Timeout { .. }), "{err:?}");
    assert_eq!(err.category(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn malformed_text_is_a_parse_error_with_url_and_line() {
    let text = "# TYPE http_requests_total counter\n\
                http_requests_total{version=\"canary\"} 10\n\
                http_requests_total{version=\"stable\" 20\n";
    let server = serve(200, text).await;
    let url = format!("{}/metrics", server.uri());
    let err = scraper().scrape(&url).await.unwrap_err();
    match &err {
        ScrapeError::Parse {
            origin,
            line,
            message,
        } => {
            assert_eq!(origin, &url);
            assert_eq!(*line, 3);
            assert!(message.contains("expected ',' or '}'"), "{message}");
        }
        other => panic!("expected Parse, got {other:?}"),
    }

    let server = serve(200, "<html><body>Login</body></html>").await;
    let err = scraper()
        .scrape(&format!("{}/metrics", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.category(), "parse");
}

#[tokio::test]
async fn a_missing_version_is_no_series() {
    let server = serve(200, EXPOSITION).await;
    let exposition = scraper()
        .scrape(&format!("{}/metrics", server.uri()))
        .await
        .unwrap();
    let err = exposition
        .version_counters("http_requests_total", &[], None, &version("preview"))
        .unwrap_err();
    assert_eq!(err.category(), "no_series");
    let err = exposition
        .version_counters(
            "http_requests_total",
            &[],
            Some("no_such_histogram"),
            &version("canary"),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no series of no_such_histogram matches no_such_histogram_bucket{version=\"canary\"}"
    );
}
