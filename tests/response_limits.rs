//! Memory is bounded by design: a 100 MB answer is refused while it streams in, and 2 × 12.6 MB
//! (a template without `sum by` over 24 hours) is judged in a few tens of MB, not 1.6 GB.
//! Measured as how far this process's peak resident set (`VmHWM`) rises above its resident set
//! before the step (`VmRSS`) — an upper bound; one test in this binary so nothing else runs.

mod support;

use std::sync::Arc;
use std::time::Duration;

use canary_gate::metrics::prometheus::{Prometheus, PrometheusConfig, PrometheusError};
use canary_gate::metrics::prometheus_source::PrometheusSource;
use support::fake_http::{self, Answer};

/// 2025-11-23T00:00:00Z.
const T0: u64 = 1_763_856_000;
const MIB: f64 = 1024.0 * 1024.0;

/// A line of `/proc/self/status` (`VmHWM`: peak resident set, `VmRSS`: now), bytes.
fn status(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("the field in /proc/self/status");
    kb * 1024.0
}

/// How far the peak resident set rose above the resident set at `before`, MiB (an upper
/// bound of what the step needed).
fn grew_since(before: f64) -> f64 {
    (status("VmHWM") - before) / MIB
}

const TEMPLATE: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: per-pod}
spec:
  interval: 1m
  metrics:
    - name: error-rate
      kind: errorRate
      query:
        errors: increase(http_requests_total{code=~"5.."}[1m])
        requests: increase(http_requests_total[1m])
"#;

/// `pods` series per version, one point a minute for 24 hours.
fn per_pod_answer(pods: usize, value: f64) -> Vec<u8> {
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for version in ["stable", "canary"] {
        for pod in 0..pods {
            if !out.ends_with('[') {
                out.push(',');
            }
            out.push_str(&format!(
                r#"{{"metric":{{"__name__":"http_requests_total","version":"{version}","pod":"web-{version}-7d9f8c6b5-{pod:05}","namespace":"shop","service":"web","instance":"10.0.{}.{}:8080","job":"kubernetes-pods"}},"values":["#,
                pod / 250,
                pod % 250
            ));
            for m in 1..=1440u64 {
                if m > 1 {
                    out.push(',');
                }
                out.push_str(&format!("[{},\"{value}\"]", T0 + 60 * m));
            }
            out.push_str("]}");
        }
    }
    out.push_str("]}}");
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_refused_while_it_streams_and_a_large_one_is_judged_in_bounded_memory() {
    support::init_crypto();
    // Built before the baseline: the fake server's copy is not the client's memory.
    let errors = Arc::new(per_pod_answer(240, 0.5));
    let requests = Arc::new(per_pod_answer(240, 100.0));
    let body_mib = (errors.len() + requests.len()) as f64 / MIB;
    assert!(body_mib > 14.0, "{body_mib} MiB");

    // 100 MB of a matrix that never ends, streamed without Content-Length.
    let head = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"version":"canary"},"values":["#.to_vec();
    let chunk = br#"[1763856060,"1"],"#.repeat(4096);
    let times = 100_000_000 / chunk.len();
    let huge = fake_http::serve(move |_| Answer {
        repeat: (chunk.clone(), times),
        ..Answer::json(200, head.clone())
    })
    .await;
    let mut config = PrometheusConfig::new(huge.url.clone());
    config.timeout = Duration::from_secs(60);
    let client = Prometheus::new(config).unwrap();

    let before = status("VmRSS");
    let started = std::time::Instant::now();
    let err = client
        .query_range(
            "up",
            T0 as f64,
            (T0 + 86_400) as f64,
            Duration::from_secs(60),
        )
        .await
        .expect_err("100 MB is more than the limit");
    let grew = grew_since(before);
    assert!(
        matches!(err, PrometheusError::ResponseTooLarge { limit, .. } if limit == 32 << 20),
        "{err}"
    );
    assert!(
        err.to_string().contains("larger than 33554432 bytes")
            && err.to_string().contains("\"up\""),
        "{err}"
    );
    eprintln!(
        "100 MB answer: refused after {:?}, peak RSS grew {grew:.1} MiB",
        started.elapsed()
    );
    assert!(
        grew < 100.0,
        "peak RSS grew {grew:.1} MiB on a refused answer"
    );

    // 2 × 12.6 MB: 240 pods per version without `sum by`, a day of minutes, judged.
    let large = fake_http::serve(move |r| {
        let body = if r.body.contains("code") {
            &errors
        } else {
            &requests
        };
        Answer::json(200, body.as_slice())
    })
    .await;
    let mut config = PrometheusConfig::new(large.url.clone());
    config.timeout = Duration::from_secs(60);
    let client = Prometheus::new(config).unwrap();
    let template = canary_gate::template::parse(TEMPLATE, "per-pod.yaml").unwrap();
    let source = PrometheusSource::new(&client, &template, &[]).unwrap();
    let before = status("VmRSS");
    let intervals = source
        .window(T0 as f64, (T0 + 86_400) as f64)
        .await
        .expect("the window is read");
    let verdict =
        canary_gate::analyze::judge_window(&template, T0 as f64, (T0 + 86_400) as f64, &intervals)
            .unwrap();
    let grew = grew_since(before);
    assert_eq!(intervals.len(), 1440);
    match &intervals[0].samples[0] {
        canary_gate::analysis::MetricSample::Counts { stable, canary } => {
            assert_eq!((stable.events, stable.total), (120.0, 24_000.0));
            assert_eq!((canary.events, canary.total), (120.0, 24_000.0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(verdict.intervals, 1440);
    eprintln!("{body_mib:.1} MiB of answers over 24 h: peak RSS grew {grew:.1} MiB");
    assert!(grew < 100.0, "peak RSS grew {grew:.1} MiB");
}
