//! A window longer than one Prometheus range query may hold (a canary paused for a week): a real
//! Prometheus refuses it as one query, and the source reads it in parts with no interval lost
//! or doubled at the seams.

mod support;

use std::time::Duration;

use canary_gate::analysis::MetricSample;
use canary_gate::metrics::prometheus::{Prometheus, PrometheusConfig};
use canary_gate::metrics::prometheus_source::{MAX_POINTS, PrometheusSource};
use canary_gate::template;
use support::PrometheusServer;

const TEMPLATE: &str = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: week}
spec:
  interval: 1m
  metrics:
    - name: errors
      kind: errorRate
      query:
        errors: sum by (version) (increase(errors_total[1m]))
        requests: sum by (version) (increase(requests_total[1m]))
"#;

/// 2025-11-23T00:00:00Z.
const T0: u64 = 1_763_856_000;
/// Eight days of one-minute intervals: more than Prometheus' 11 000 points per series.
const INTERVALS: u64 = 8 * 24 * 60;
const SCRAPE: u64 = 30;
/// Requests per second: 90 on stable, 10 on the canary.
const RPS: [(&str, u64); 2] = [("stable", 90), ("canary", 10)];

/// `requests_total{version}` and `errors_total{version}` every 30 s for eight days (no errors:
/// the error counter stays at 0 — a series that never appears would be "no data").
fn history() -> String {
    let mut out = String::new();
    for (family, per_second) in [("requests_total", 1), ("errors_total", 0)] {
        out.push_str(&format!("# TYPE {family} counter\n"));
        for (version, rps) in RPS {
            let mut t = T0;
            while t <= T0 + INTERVALS * 60 {
                let total = (t - T0) * rps * per_second;
                out.push_str(&format!("{family}{{version=\"{version}\"}} {total} {t}\n"));
                t += SCRAPE;
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

#[tokio::test]
async fn a_week_long_window_is_read_in_parts_without_losing_an_interval() {
    support::init_crypto();
    let server = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let mut config = PrometheusConfig::new(server.url());
    config.timeout = Duration::from_secs(30);
    let client = Prometheus::new(config).unwrap();
    let (from, to) = (T0 as f64, (T0 + INTERVALS * 60) as f64);
    const { assert!(INTERVALS as usize > 11_000 && MAX_POINTS < 11_000) };

    // The premise: one range query over the window is refused by Prometheus itself.
    let refused = client
        .query_range(
            "sum by (version) (increase(requests_total[1m]))",
            from + 60.0,
            to,
            Duration::from_secs(60),
        )
        .await
        .expect_err("Prometheus refuses more than 11 000 points per series");
    assert!(
        refused.to_string().contains("11,000") || refused.to_string().contains("resolution"),
        "{refused}"
    );

    let t = template::parse(TEMPLATE, "week.yaml").unwrap();
    let source = PrometheusSource::new(&client, &t, &[]).unwrap();
    let intervals = source.window(from, to).await.expect("the window is read");
    assert_eq!(intervals.len(), INTERVALS as usize);
    for (k, interval) in intervals.iter().enumerate() {
        assert_eq!(interval.t, from + 60.0 * (k + 1) as f64, "interval {k}");
        match &interval.samples[0] {
            MetricSample::Counts { stable, canary } => {
                // increase() over one minute of a counter rising by 90 and 10 per second.
                assert!((stable.total - 5400.0).abs() < 1.0, "{k}: {stable:?}");
                assert!((canary.total - 600.0).abs() < 1.0, "{k}: {canary:?}");
                assert_eq!(stable.events + canary.events, 0.0);
            }
            other => panic!("interval {k} at {}: {other:?}", interval.t),
        }
    }
}
