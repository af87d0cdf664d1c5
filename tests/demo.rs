//! `canary-gate demo` for real on 127.0.0.1: whole runs through the library and the binary
//! (outcome, traffic served, report, replay of the recorded stream), the router's split and the
//! services' fault injection over real HTTP, the report's SVG helpers, step parsing, and a clean
//! shutdown on SIGINT with every printed port closed afterwards.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canary_gate::demo::html::CHART_TITLES;
use canary_gate::demo::progress::ProgressMode;
use canary_gate::demo::router::{VERSION_HEADER, WeightedRouter};
use canary_gate::demo::scenario::Fault;
use canary_gate::demo::service::{FaultControl, Service};
use canary_gate::demo::svg::{self, LinearScale, LogScale, Scale};
use canary_gate::demo::{DemoOptions, Outcome, Scenario, SourceChoice, Version, parse_steps};
use canary_gate::metrics::scrape::{LabelMatch, Scraper};

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("analysis-templates/generic-http.yaml")
}

/// A short plan: 10 % then 50 %, 4 s each, 300 req/s (≈ 9 s with the settle time).
fn short(scenario: Scenario, dir: &Path, source: SourceChoice) -> DemoOptions {
    let mut o = DemoOptions::new(scenario);
    o.rps = 300.0;
    o.steps = vec![10.0, 50.0];
    o.step_duration = Duration::from_secs(4);
    o.report_dir = Some(dir.to_path_buf());
    o.progress = ProgressMode::Quiet;
    o.seed = Some(7);
    o.source = source;
    o
}

/// Runs `replay` on the stream and returns its decisions.
fn replay(stream: &Path) -> Vec<String> {
    let out = Command::new(BIN)
        .args(["replay", "--template"])
        .arg(template())
        .arg("--input")
        .arg(stream)
        .output()
        .expect("run canary-gate replay");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("replay prints JSON");
            v["decision"].as_str().expect("decision").to_string()
        })
        .collect()
}

/// Checks a finished run's files: traffic really served, charts drawn, and the recorded
/// stream replaying to the same decisions, line by line.
fn check_report(dir: &Path, outcome: &str) {
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    assert_eq!(report["outcome"], outcome, "{report:#}");
    let served = &report["totals"]["served"];
    let (stable, canary) = (
        served["stable"].as_f64().unwrap_or(0.0),
        served["canary"].as_f64().unwrap_or(0.0),
    );
    assert!(stable > 200.0, "stable served {stable}");
    assert!(canary > 20.0, "canary served {canary}");
    let load = &report["totals"]["load"];
    assert!(load["sent"].as_u64().unwrap_or(0) as f64 >= stable + canary - 1.0);
    let intervals = report["intervals"].as_array().expect("intervals");
    assert!(!intervals.is_empty(), "at least one judged interval");
    let last = &intervals[intervals.len() - 1];
    assert_eq!(last["judgement"]["decision"], outcome);
    assert!(last["judgement"]["metrics"][0]["evidence"].is_object());

    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(html.contains("<svg"));
    for title in CHART_TITLES {
        assert!(html.contains(title), "missing chart {title:?}");
    }
    assert!(!html.contains("<script") && !html.contains("src=\"http"));

    let decisions = replay(&dir.join("stream.jsonl"));
    let judged: Vec<&str> = intervals
        .iter()
        .filter_map(|i| i["judgement"]["decision"].as_str())
        .collect();
    assert_eq!(
        decisions.len(),
        judged.len() + 1,
        "baseline line + one per interval"
    );
    assert_eq!(&decisions[1..], judged.as_slice());
    assert_eq!(decisions.last().map(String::as_str), Some(outcome));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_is_promoted_and_its_stream_replays_to_promote() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let result = canary_gate::demo::run(
        short(Scenario::Good, dir.path(), SourceChoice::Scrape),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        result.outcome(),
        Outcome::Promote,
        "{}",
        result.report.reason
    );
    assert!(result.as_expected());
    let after = result
        .report
        .after_decision
        .as_ref()
        .expect("after decision");
    assert_eq!(after.weight, 100.0);
    // After the promotion the canary has all new traffic; the window starts at the last
    // interval, so requests sent at 50 % before the switch took effect count for stable (more
    // of them on a loaded machine): well above the 1:1 of the last step, not infinite.
    assert!(
        after.canary.requests > 3.0 * after.stable.requests.max(1.0),
        "canary {} vs stable {} requests after the decision",
        after.canary.requests,
        after.stable.requests
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    check_report(dir.path(), "promote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_regression_is_rolled_back_and_its_stream_replays_to_rollback() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let result = canary_gate::demo::run(
        short(Scenario::ErrorRegression, dir.path(), SourceChoice::Scrape),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        result.outcome(),
        Outcome::Rollback,
        "{}",
        result.report.reason
    );
    assert!(result.report.reason.contains("error-rate"));
    let after = result
        .report
        .after_decision
        .as_ref()
        .expect("after decision");
    assert_eq!((after.weight, after.canary.requests <= 5.0), (0.0, true));
    check_report(dir.path(), "rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_regression_is_rolled_back_through_a_local_prometheus() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let result = canary_gate::demo::run(
        short(
            Scenario::LatencyRegression,
            dir.path(),
            SourceChoice::WithPrometheus("prometheus".into()),
        ),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        result.outcome(),
        Outcome::Rollback,
        "{}",
        result.report.reason
    );
    assert!(result.report.reason.contains("latency"));
    assert!(result.report.endpoints.prometheus.is_some());
    check_report(dir.path(), "rollback");
}

async fn get_many(client: &reqwest::Client, url: &str, n: usize) -> Vec<(u16, String)> {
    let mut out = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(25) {
        let batch = (chunk * 25..n.min(chunk * 25 + 25)).map(|_| {
            let (client, url) = (client.clone(), url.to_string());
            async move {
                let r = client.get(&url).send().await.expect("request");
                let version = r
                    .headers()
                    .get(VERSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                (r.status().as_u16(), version)
            }
        });
        out.extend(futures_join_all(batch).await);
    }
    out
}

/// Joins futures without the `futures` crate: spawn each and await in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

fn fast() -> Fault {
    Fault {
        error_rate: 0.0,
        latency_median: 0.0005,
        latency_sigma: 0.1,
        added_latency: 0.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_splits_real_requests_by_the_weight() {
    init();
    let stable = Service::start(Version::Stable, 0, FaultControl::new(fast()), "t", 1)
        .await
        .unwrap();
    let canary = Service::start(Version::Canary, 0, FaultControl::new(fast()), "t", 2)
        .await
        .unwrap();
    let router = WeightedRouter::start(&stable.url(), &canary.url(), 20.0, 0, 3)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/", router.url());
    let answers = get_many(&client, &url, 1500).await;
    assert!(answers.iter().all(|a| a.0 == 200));
    let share = answers.iter().filter(|a| a.1 == "canary").count() as f64 / 1500.0;
    // Binomial sd ≈ 1 %: ±4 % is 4 sd.
    assert!((share - 0.2).abs() < 0.04, "canary share {share}");
    let counts = router.control().counts();
    assert_eq!(counts.stable + counts.canary, 1500);

    router.control().set_weight(100.0);
    let all = get_many(&client, &url, 100).await;
    assert!(all.iter().all(|a| a.1 == "canary"));
    router.control().set_weight(0.0);
    let none = get_many(&client, &url, 100).await;
    assert!(none.iter().all(|a| a.1 == "stable"));

    // The services counted what the router sent them.
    let scraper = Scraper::new(Duration::from_secs(2)).unwrap();
    let sel = |v: &str| [("version", LabelMatch::Equal(v.to_string()))];
    let c = scraper.scrape(&canary.metrics_url()).await.unwrap();
    let c = c
        .version_counters("http_requests_total", &[], None, &sel("canary"))
        .unwrap();
    assert_eq!(c.requests as u64, counts.canary + 100);
    router.shutdown().await;
    stable.shutdown().await;
    canary.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_produces_the_configured_error_rate_and_latency() {
    init();
    let faults = FaultControl::new(Fault {
        error_rate: 0.3,
        ..fast()
    });
    let service = Service::start(Version::Canary, 0, faults.clone(), "t", 11)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/", service.url());
    let answers = get_many(&client, &url, 1200).await;
    let errors = answers.iter().filter(|a| a.0 == 500).count();
    let rate = errors as f64 / 1200.0;
    // Binomial sd ≈ 1.3 %.
    assert!((rate - 0.3).abs() < 0.055, "error rate {rate}");

    // Changed while running: the next requests follow the new fault.
    faults.set(Fault {
        error_rate: 1.0,
        ..fast()
    });
    assert!(get_many(&client, &url, 50).await.iter().all(|a| a.0 == 500));
    faults.set(Fault {
        error_rate: 0.0,
        added_latency: 0.06,
        ..fast()
    });
    let t = Instant::now();
    assert!(get_many(&client, &url, 25).await.iter().all(|a| a.0 == 200));
    assert!(t.elapsed() >= Duration::from_millis(60));

    // /metrics agrees: errors are code 5xx, the histogram has every request.
    let scraper = Scraper::new(Duration::from_secs(2)).unwrap();
    let exposition = scraper.scrape(&service.metrics_url()).await.unwrap();
    let counters = exposition
        .version_counters(
            "http_requests_total",
            &[("code", LabelMatch::Prefix("5".into()))],
            Some("http_request_duration_seconds"),
            &[("version", LabelMatch::Equal("canary".into()))],
        )
        .unwrap();
    assert_eq!(counters.requests, 1275.0);
    assert_eq!(counters.errors, (errors + 50) as f64);
    let latency = counters.latency.unwrap();
    assert_eq!(latency.count, 1275.0);
    let slow = latency.count
        - latency
            .buckets
            .iter()
            .find(|b| b.0 == 0.05)
            .map_or(0.0, |b| b.1);
    // The 25 delayed requests are above 50 ms (a few others may be, on a loaded machine).
    assert!((25.0..=40.0).contains(&slow), "{slow} requests above 50 ms");
    service.shutdown().await;
}

#[test]
fn svg_scales_ticks_and_paths() {
    let x = LinearScale::new((0.0, 10.0), (100.0, 200.0));
    assert_eq!((x.map(0.0), x.map(5.0), x.map(10.0)), (100.0, 150.0, 200.0));
    let y = LinearScale::new((0.0, 1.0), (50.0, 10.0));
    assert_eq!(y.map(0.25), 40.0);
    let empty = LinearScale::new((3.0, 3.0), (0.0, 10.0));
    assert!(empty.map(3.0).is_finite());
    let log = LogScale::new((1.0, 1000.0), (0.0, 30.0));
    assert!((log.map(10.0) - 10.0).abs() < 1e-9);
    assert_eq!(log.map(0.0), 0.0, "non-positive values clamp to the bottom");

    assert_eq!(
        svg::nice_ticks(0.0, 10.0, 5),
        vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    );
    assert_eq!(svg::nice_ticks(0.0, 0.3, 3), vec![0.0, 0.1, 0.2, 0.3]);
    assert_eq!(svg::log_ticks(0.5, 200.0), vec![1.0, 10.0, 100.0]);

    let pts = [
        (0.0, Some(0.0)),
        (5.0, Some(1.0)),
        (6.0, None),
        (10.0, Some(0.5)),
    ];
    assert_eq!(
        svg::path_data(&pts, &x, &y),
        "M100.0 50.0 L150.0 10.0 M200.0 30.0",
        "a gap restarts the line"
    );
    assert_eq!(
        svg::step_path_data(&[(0.0, 0.0), (5.0, 1.0)], &x, &y),
        "M100.0 50.0 H150.0 V10.0"
    );
    assert_eq!(svg::escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}

#[test]
fn steps_parse_and_bad_values_are_explained() {
    assert_eq!(
        parse_steps("5,10,25,50").unwrap(),
        vec![5.0, 10.0, 25.0, 50.0]
    );
    let err = parse_steps("5,ten").unwrap_err().to_string();
    assert!(err.contains("step 2 (\"ten\") is not a number"), "{err}");
    assert!(err.contains("e.g. 5,10,25,50"), "{err}");
    let out = Command::new(BIN)
        .args(["demo", "--steps", "50,10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not above the previous step"), "{stderr}");
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

#[test]
fn sigint_stops_the_demo_with_130_and_closes_every_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--steps",
            "50",
            "--step-duration",
            "60s",
            "--rps",
            "100",
            "--progress",
            "plain",
            "--report",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut ports = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Wait for the ports and two judged intervals (traffic is flowing).
    let mut judged = 0;
    while judged < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the demo prints its ports and intervals");
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            ports.push(digits.parse::<u16>().unwrap());
        }
        if line.starts_with('[') {
            judged += 1;
        }
    }
    assert_eq!(ports.len(), 3, "stable, canary, router: {ports:?}");
    assert!(ports.iter().all(|&p| port_open(p)));

    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the demo did not stop within 10 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert!(
        sent.elapsed() < Duration::from_secs(6),
        "{:?}",
        sent.elapsed()
    );
    for p in ports {
        assert!(!port_open(p), "port {p} still open after exit");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["outcome"], "interrupted");
}
