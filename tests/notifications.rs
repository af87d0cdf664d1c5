//! Notifications over real HTTP: recording stand-ins for a generic webhook, Slack and Teams
//! (tests/support/fake_http on 127.0.0.1) receive what the notifier posts for a rollback — exact bodies and
//! headers, the webhook's HMAC checked by two independent computations (RFC 2104 by hand over
//! SHA-256, and the `openssl` command the README shows); retries on 500 and 429 (waiting as
//! `Retry-After` asks), none on 400; a hanging sink times out without holding up another sink;
//! a full queue drops and counts; and no log line or error ever shows a webhook URL or a key.

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::{DecisionRecord, MetricRecord, RolloutPhase, RolloutStatus};
use canary_gate::notify::{NotificationMetrics, Notifier, NotifyConfig};
use canary_gate::rollout::{Step, StepPlan};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

mod support;

use support::fake_http::{self, Answer, FakeHttp, Received};

const KEY: &str = "whsec-0123456789abcdef-LOOPBACK";
/// The part of the Slack and Teams URLs that is their credential.
const SLACK_SECRET: &str = "T0SECRET/B0SECRET/XXXXSLACKSECRETXXXX";
const TEAMS_SECRET: &str = "sig=TEAMSSECRETSIGNATURE";
/// 2025-11-23T00:00:00Z.
const T0: f64 = 1_763_856_000.0;

/// One answer of a stand-in.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.into(),
        delay: Duration::ZERO,
    }
}

/// A stand-in: what it received, and when.
struct Stand {
    http: FakeHttp,
    times: Arc<Mutex<Vec<Instant>>>,
}

impl Stand {
    fn received(&self) -> Vec<Received> {
        self.http.received.lock().expect("lock").clone()
    }

    fn count(&self) -> usize {
        self.http.received.lock().expect("lock").len()
    }

    fn times(&self) -> Vec<Instant> {
        self.times.lock().expect("lock").clone()
    }
}

fn json_of(r: &Received) -> Value {
    serde_json::from_str(&r.body).expect("a JSON body")
}

/// Starts a stand-in (support::fake_http on 127.0.0.1) answering `script` in order, the last
/// answer repeating; `{path}` in a body is the request's path (a verbose proxy echoing it).
/// Returns its base URL.
async fn stand_in(script: Vec<Reply>) -> (String, Stand) {
    let script = Mutex::new(script);
    let times = Arc::new(Mutex::new(Vec::new()));
    let at = times.clone();
    let http = fake_http::serve(move |request: &Received| {
        at.lock().expect("lock").push(Instant::now());
        let r = {
            let mut script = script.lock().expect("lock");
            if script.len() > 1 {
                script.remove(0)
            } else {
                script[0].clone()
            }
        };
        Answer {
            delay: r.delay,
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Answer::text(
                r.status,
                "text/plain",
                r.body.replace("{path}", request.path()),
            )
        }
    })
    .await;
    (http.url.clone(), Stand { http, times })
}

/// Waits until `done` holds, or fails after `within`.
async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every log line of this test binary, captured at TRACE (set up once, for all tests).
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Captured(buffer))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
}

struct Captured(&'static Mutex<Vec<u8>>);

impl std::io::Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().expect("lock")).into_owned()
}

fn plan() -> StepPlan {
    StepPlan::new(vec![
        Step {
            weight: 10.0,
            pause: 300.0,
        },
        Step {
            weight: 50.0,
            pause: 300.0,
        },
    ])
    .expect("a valid plan")
}

fn rollout(notifications: Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"targetRef": {"name": "web"},
            "strategy": {"canary": {"steps": [{"setWeight": 10}, {"setWeight": 50}]}},
            "notifications": notifications}
    }))
    .expect("a valid Rollout")
}

/// Step 1 at 50 % of `rev-b`, progressing.
fn progressing() -> RolloutStatus {
    RolloutStatus {
        phase: Some(RolloutPhase::Progressing),
        current_step_index: Some(1),
        canary_weight: Some(50),
        stable_revision: Some("rev-a".into()),
        canary_revision: Some("rev-b".into()),
        started_at: Some("2025-11-23T00:00:00Z".into()),
        step_started_at: Some("2025-11-23T00:05:00Z".into()),
        message: Some("step 1 at 50%".into()),
        ..RolloutStatus::default()
    }
}

/// The judge rolled it back at 00:07:30 with this evidence.
fn rolled_back() -> RolloutStatus {
    RolloutStatus {
        phase: Some(RolloutPhase::RolledBack),
        canary_weight: Some(0),
        message: Some("rolled back: error-rate fails: e=31.25 >= 20".into()),
        last_decision: Some("rollback".into()),
        decisions: vec![DecisionRecord {
            time: "2025-11-23T00:07:30Z".into(),
            step: 1,
            weight: 50,
            decision: "rollback".into(),
            reason: "error-rate fails: e=31.25 >= 20".into(),
            window_start: Some("2025-11-23T00:00:00Z".into()),
            metrics: vec![
                MetricRecord {
                    name: "latency".into(),
                    verdict: "pass".into(),
                    reason: "canary not slower".into(),
                    e_value: Some(0.5),
                    fail_at: Some(20.0),
                    ..MetricRecord::default()
                },
                MetricRecord {
                    name: "error-rate".into(),
                    verdict: "fail".into(),
                    reason: "canary errors above stable".into(),
                    e_value: Some(31.25),
                    fail_at: Some(20.0),
                    estimate: Some(3.1),
                    estimate_low: Some(2.2),
                    estimate_high: Some(4.4),
                    canary: Some("31/1000".into()),
                    stable: Some("10/1000".into()),
                },
            ],
        }],
        ..progressing()
    }
}

/// The rollback's reconcile: prepare (which sets the condition), then send.
fn notify_rollback(notifier: &Notifier, rollout: &Rollout) -> RolloutStatus {
    let mut next = rolled_back();
    let pending = notifier.prepare(
        rollout,
        Some(&plan()),
        &progressing(),
        &mut next,
        T0 + 450.0,
    );
    notifier.send(pending);
    next
}

fn sink(name: &str, kind: &str, url: &str, extra: &str) -> String {
    format!("- name: {name}\n  kind: {kind}\n  url: {url}\n{extra}")
}

fn config(sinks: &[String], delivery: &str) -> NotifyConfig {
    let text = format!("sinks:\n{}{delivery}", sinks.concat());
    let mut c = NotifyConfig::parse(&text, "--notifications-config test.yaml").expect("valid");
    c.delivery.backoff = Duration::from_millis(50);
    c
}

/// HMAC-SHA256 by RFC 2104 from SHA-256 alone, independent of the HMAC the crate uses.
fn hmac_by_hand(key: &[u8], message: &[u8]) -> String {
    let sha = |parts: &[&[u8]]| {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for p in parts {
            ctx.update(p);
        }
        ctx.finish().as_ref().to_vec()
    };
    let mut block = if key.len() > 64 {
        sha(&[key])
    } else {
        key.to_vec()
    };
    block.resize(64, 0);
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha(&[&ipad, message]);
    sha(&[&opad, &inner])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the README's verification line prints: `openssl dgst -sha256 -hmac KEY`.
fn hmac_by_openssl(key: &str, message: &[u8]) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl on PATH (apt-get install openssl; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message)
        .expect("write to openssl");
    let out = child.wait_with_output().expect("openssl ran");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("text");
    text.rsplit("= ")
        .next()
        .expect("a digest")
        .trim()
        .to_string()
}

const SUMMARY: &str = "error-rate: fail — canary errors above stable (e=31.25/20, estimate 3.1 [2.2, 4.4], canary 31/1000, stable 10/1000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_posts_these_exact_requests_to_each_kind_of_sink() {
    let _ = logs();
    let (hook_url, hook) = stand_in(vec![reply(204, "")]).await;
    let (slack_url, slack) = stand_in(vec![reply(200, "ok")]).await;
    let (teams_url, teams) = stand_in(vec![reply(202, "")]).await;
    let config = config(
        &[
            sink(
                "audit",
                "webhook",
                &format!("{hook_url}/hooks/canary-gate"),
                &format!("  signingKey: {KEY}\n"),
            ),
            sink(
                "oncall",
                "slack",
                &format!("{slack_url}/services/{SLACK_SECRET}"),
                "  namespaces: [shop]\n",
            ),
            sink(
                "teams",
                "teams",
                &format!("{teams_url}/workflows/run?api-version=1&{TEAMS_SECRET}"),
                "",
            ),
        ],
        "",
    );
    let mut registry = Registry::default();
    let metrics = NotificationMetrics::register(&mut registry);
    let notifier = Notifier::start(config, metrics.clone()).expect("sinks");
    let rollout = rollout(json!([
        {"sink": "audit"},
        {"sink": "oncall", "events": ["rolledBack", "aborted"]},
        {"sink": "teams", "events": ["rolledBack"]},
    ]));

    let sent = Instant::now();
    let next = notify_rollback(&notifier, &rollout);
    assert!(sent.elapsed() < Duration::from_millis(50), "send waited");
    let condition = next
        .conditions
        .iter()
        .find(|c| c.type_ == "NotificationsConfigured")
        .expect("the condition");
    assert_eq!(condition.status, "True");
    assert_eq!(
        condition.message,
        "events go to audit (all events), oncall (rolledBack, aborted), teams (rolledBack)"
    );

    eventually(Duration::from_secs(5), "three deliveries", || {
        ["audit", "oncall", "teams"]
            .iter()
            .all(|s| metrics.count(s, "success") == 1)
    })
    .await;

    // The generic webhook: the documented JSON, signed.
    let got = hook.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path(), "/hooks/canary-gate");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("user-agent"), Some("canary-gate/0.1.0"));
    assert_eq!(r.header("x-canary-gate-event"), Some("rolledBack"));
    let body = json_of(r);
    let id = body["id"].as_str().expect("an id").to_string();
    assert_eq!(r.header("x-canary-gate-delivery"), Some(id.as_str()));
    assert_eq!(id.len(), 32);
    assert_eq!(
        body,
        json!({
            "apiVersion": "canarygate.dev/notification/v1",
            "id": id,
            "event": "rolledBack",
            "time": "2025-11-23T00:07:30Z",
            "rollout": {"namespace": "shop", "name": "web"},
            "revision": "rev-b",
            "stableRevision": "rev-a",
            "phase": "RolledBack",
            "step": 1,
            "fromStep": null,
            "weight": 0,
            "stepWeight": 50,
            "decision": "rollback",
            "reason": "error-rate fails: e=31.25 >= 20",
            "evidence": [
                {"metric": "latency", "verdict": "pass", "reason": "canary not slower",
                 "estimate": null, "interval": null, "eValue": 0.5, "failAt": 20.0,
                 "canary": null, "stable": null,
                 "summary": "latency: pass — canary not slower (e=0.5/20)"},
                {"metric": "error-rate", "verdict": "fail", "reason": "canary errors above stable",
                 "estimate": 3.1, "interval": [2.2, 4.4], "eValue": 31.25, "failAt": 20.0,
                 "canary": "31/1000", "stable": "10/1000", "summary": SUMMARY},
            ]
        })
    );
    let timestamp = r.header("x-canary-gate-timestamp").expect("a timestamp");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let ts: u64 = timestamp.parse().expect("unix seconds");
    assert!(now.abs_diff(ts) <= 5, "timestamp {ts}, now {now}");
    let signed = [timestamp.as_bytes(), b".", r.body.as_bytes()].concat();
    let signature = r.header("x-canary-gate-signature").expect("a signature");
    assert_eq!(
        signature,
        format!("sha256={}", hmac_by_hand(KEY.as_bytes(), &signed))
    );
    assert_eq!(
        signature,
        format!("sha256={}", hmac_by_openssl(KEY, &signed))
    );

    // Slack: text and blocks, mrkdwn escaped, no signature headers.
    let got = slack.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path(), format!("/services/{SLACK_SECRET}"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-canary-gate-signature"), None);
    assert_eq!(
        json_of(r),
        json!({
            "text": "shop/web: rolled back revision rev-b: error-rate fails: e=31.25 &gt;= 20",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text",
                    "text": ":warning: shop/web: rolled back revision rev-b", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "error-rate fails: e=31.25 &gt;= 20"}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Revision*\nrev-b"},
                    {"type": "mrkdwn", "text": "*Stable*\nrev-a"},
                    {"type": "mrkdwn", "text": "*Step*\n1 (planned 50%)"},
                    {"type": "mrkdwn", "text": "*Canary weight now*\n0%"},
                    {"type": "mrkdwn", "text": "*Phase*\nRolledBack"},
                    {"type": "mrkdwn", "text": "*Decision*\nrollback"},
                ]},
                {"type": "section", "text": {"type": "mrkdwn", "text": format!(
                    "*Evidence*\n• {SUMMARY}\n• latency: pass — canary not slower (e=0.5/20)")}},
                {"type": "context", "elements": [{"type": "mrkdwn",
                    "text": format!("canary-gate · rolledBack · 2025-11-23T00:07:30Z · {id}")}]},
            ]
        })
    );

    // Teams: a message with one Adaptive Card.
    let got = teams.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path(), "/workflows/run");
    assert_eq!(
        r.query(),
        Some(format!("api-version=1&{TEAMS_SECRET}").as_str())
    );
    assert_eq!(
        json_of(r),
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": "shop/web: rolled back revision rev-b",
                         "weight": "Bolder", "size": "Medium", "wrap": true, "color": "Attention"},
                        {"type": "TextBlock", "text": "error-rate fails: e=31.25 >= 20", "wrap": true},
                        {"type": "FactSet", "facts": [
                            {"title": "Revision", "value": "rev-b"},
                            {"title": "Stable", "value": "rev-a"},
                            {"title": "Step", "value": "1 (planned 50%)"},
                            {"title": "Canary weight now", "value": "0%"},
                            {"title": "Phase", "value": "RolledBack"},
                            {"title": "Decision", "value": "rollback"},
                        ]},
                        {"type": "TextBlock", "text": "Evidence", "weight": "Bolder", "wrap": true},
                        {"type": "TextBlock", "text": SUMMARY, "wrap": true, "spacing": "Small"},
                        {"type": "TextBlock", "text": "latency: pass — canary not slower (e=0.5/20)",
                         "wrap": true, "spacing": "Small"},
                        {"type": "TextBlock",
                         "text": format!("canary-gate · rolledBack · 2025-11-23T00:07:30Z · {id}"),
                         "isSubtle": true, "size": "Small", "wrap": true},
                    ],
                },
            }],
        })
    );

    // Only the chosen events: a promotion goes to the webhook (all events), not to Slack or Teams.
    let mut promoting = RolloutStatus {
        phase: Some(RolloutPhase::Promoting),
        canary_weight: Some(100),
        message: Some("promoting revision rev-b".into()),
        ..progressing()
    };
    notifier.send(notifier.prepare(
        &rollout,
        Some(&plan()),
        &progressing(),
        &mut promoting,
        T0 + 600.0,
    ));
    eventually(Duration::from_secs(5), "the promotion", || {
        metrics.count("audit", "success") == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!((slack.count(), teams.count()), (1, 1));
    assert_eq!(json_of(&hook.received()[1])["event"], "promoted");

    let mut exposition = String::new();
    prometheus_client::encoding::text::encode(&mut exposition, &registry).expect("encode");
    for line in [
        "canary_gate_notifications_total{sink=\"audit\",result=\"success\"} 2",
        "canary_gate_notifications_total{sink=\"oncall\",result=\"success\"} 1",
        "canary_gate_notifications_total{sink=\"teams\",result=\"dropped\"} 0",
        "canary_gate_notifications_total{sink=\"oncall\",result=\"failure\"} 0",
    ] {
        assert!(exposition.contains(line), "no {line} in\n{exposition}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_and_a_429_are_retried_as_retry_after_asks_and_a_400_is_not() {
    let _ = logs();
    let limited = Reply {
        headers: vec![("retry-after", "1".into())],
        ..reply(429, "rate_limited")
    };
    let (flaky_url, flaky) = stand_in(vec![reply(500, "oops"), limited, reply(200, "ok")]).await;
    let (refusing_url, refusing) = stand_in(vec![reply(400, "invalid_payload")]).await;
    let config = config(
        &[
            sink("flaky", "webhook", &format!("{flaky_url}/h"), ""),
            sink(
                "refusing",
                "slack",
                &format!("{refusing_url}/services/{SLACK_SECRET}"),
                "",
            ),
        ],
        "delivery:\n  retries: 3\n",
    );
    let metrics = NotificationMetrics::default();
    let notifier = Notifier::start(config, metrics.clone()).expect("sinks");
    let sent = Instant::now();
    notify_rollback(
        &notifier,
        &rollout(json!([{"sink": "flaky"}, {"sink": "refusing"}])),
    );
    eventually(Duration::from_secs(10), "both results", || {
        metrics.count("flaky", "success") == 1 && metrics.count("refusing", "failure") == 1
    })
    .await;
    let got = flaky.received();
    assert_eq!(got.len(), 3, "500, 429, then 200");
    // The backoff after the 500, then the second Retry-After asked for.
    let at = flaky.times();
    assert!(at[1] - at[0] >= Duration::from_millis(50));
    assert!(
        at[2] - at[1] >= Duration::from_secs(1),
        "{:?}",
        at[2] - at[1]
    );
    // Every attempt carries the same delivery id, and the same body.
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("x-canary-gate-delivery").map(str::to_string))
        .collect();
    assert!(ids.iter().all(|i| i.is_some() && *i == ids[0]), "{ids:?}");
    assert!(got.iter().all(|r| r.body == got[0].body));
    assert!(sent.elapsed() >= Duration::from_secs(1));
    // A 400 is final.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(refusing.count(), 1);
    assert_eq!(metrics.count("refusing", "success"), 0);
    assert_eq!(metrics.count("flaky", "failure"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_bound_ends_the_delivery() {
    let _ = logs();
    let limited = Reply {
        headers: vec![("retry-after", "120".into())],
        ..reply(429, "slow down")
    };
    let (url, stand) = stand_in(vec![limited]).await;
    let config = config(
        &[sink("limited", "webhook", &format!("{url}/h"), "")],
        "delivery:\n  maxRetryAfter: 2s\n",
    );
    let metrics = NotificationMetrics::default();
    let notifier = Notifier::start(config, metrics.clone()).expect("sinks");
    let sent = Instant::now();
    notify_rollback(&notifier, &rollout(json!([{"sink": "limited"}])));
    eventually(Duration::from_secs(5), "the failure", || {
        metrics.count("limited", "failure") == 1
    })
    .await;
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert_eq!(stand.count(), 1);
    assert!(
        logged().contains("answered 429: slow down (Retry-After 120s)"),
        "the log says why"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_sink_times_out_without_holding_up_another() {
    let _ = logs();
    let hang = Reply {
        delay: Duration::from_secs(30),
        ..reply(200, "ok")
    };
    let (hang_url, hanging) = stand_in(vec![hang]).await;
    let (fast_url, fast) = stand_in(vec![reply(200, "ok")]).await;
    let config = config(
        &[
            sink("hanging", "webhook", &format!("{hang_url}/h"), ""),
            sink("fast", "webhook", &format!("{fast_url}/h"), ""),
        ],
        "delivery:\n  timeout: 200ms\n  retries: 1\n",
    );
    let metrics = NotificationMetrics::default();
    let notifier = Notifier::start(config, metrics.clone()).expect("sinks");
    let sent = Instant::now();
    notify_rollback(
        &notifier,
        &rollout(json!([{"sink": "hanging"}, {"sink": "fast"}])),
    );
    assert!(sent.elapsed() < Duration::from_millis(50), "send waited");
    eventually(Duration::from_secs(2), "the fast sink", || {
        metrics.count("fast", "success") == 1
    })
    .await;
    assert!(
        sent.elapsed() < Duration::from_millis(200),
        "the fast sink waited"
    );
    assert_eq!(fast.count(), 1);
    eventually(Duration::from_secs(5), "the timeout", || {
        metrics.count("hanging", "failure") == 1
    })
    .await;
    // Two attempts of 200 ms and a 50 ms pause.
    let took = sent.elapsed();
    assert!(took >= Duration::from_millis(450), "failed after {took:?}");
    assert!(took < Duration::from_secs(3), "failed after {took:?}");
    assert_eq!(hanging.count(), 2);
    assert!(logged().contains("no answer within 200ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let _ = logs();
    let hang = Reply {
        delay: Duration::from_secs(30),
        ..reply(200, "ok")
    };
    let (url, stand) = stand_in(vec![hang]).await;
    let config = config(
        &[sink("slow", "webhook", &format!("{url}/h"), "")],
        "delivery:\n  timeout: 20s\n  retries: 0\n  queue: 2\n",
    );
    let metrics = NotificationMetrics::default();
    let notifier = Notifier::start(config, metrics.clone()).expect("sinks");
    let rollout = rollout(json!([{"sink": "slow"}]));
    // The worker takes the first and waits on the sink…
    notify_rollback(&notifier, &rollout);
    eventually(Duration::from_secs(5), "the first request", || {
        stand.count() == 1
    })
    .await;
    // …two more fit in the queue, the rest are dropped.
    let sent = Instant::now();
    for _ in 0..5 {
        notify_rollback(&notifier, &rollout);
    }
    assert!(sent.elapsed() < Duration::from_millis(50), "send waited");
    assert_eq!(metrics.count("slow", "dropped"), 3);
    assert_eq!(metrics.count("slow", "failure"), 0);
    assert!(logged().contains("dropped: the queue is full"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_and_keys_never_appear_in_a_log_line_or_an_error() {
    let _ = logs();
    // A proxy that echoes the secret path in its error, and a sink nobody listens on.
    let (echo_url, echo) = stand_in(vec![reply(502, "no upstream for {path}")]).await;
    let free = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let closed = free.local_addr().expect("address");
    drop(free);
    let config = config(
        &[
            sink(
                "echo",
                "slack",
                &format!("{echo_url}/services/{SLACK_SECRET}"),
                "",
            ),
            sink(
                "closed",
                "webhook",
                &format!("http://{closed}/x/{TEAMS_SECRET}"),
                &format!("  signingKey: {KEY}\n"),
            ),
        ],
        "delivery:\n  retries: 1\n",
    );
    let shown = format!("{config:?}");
    let metrics = NotificationMetrics::default();
    let notifier = Notifier::start(config, metrics.clone()).expect("sinks");
    let shown = format!("{shown}\n{notifier:?}");
    notify_rollback(
        &notifier,
        &rollout(json!([{"sink": "echo"}, {"sink": "closed"}, {"sink": "unknown"}])),
    );
    eventually(Duration::from_secs(5), "both failures", || {
        metrics.count("echo", "failure") == 1 && metrics.count("closed", "failure") == 1
    })
    .await;
    assert_eq!(echo.count(), 2);
    let logs = logged();
    assert!(
        logs.contains("notification lost") && logs.contains("sink=echo"),
        "{logs}"
    );
    assert!(logs.contains("answered 502: no upstream for ***"), "{logs}");
    assert!(
        logs.contains("sink=closed") && logs.contains("unreachable"),
        "{logs}"
    );
    assert!(
        logs.contains("spec.notifications[2].sink: no sink is named \"unknown\""),
        "{logs}"
    );
    for text in [&logs, &shown] {
        for secret in [
            SLACK_SECRET,
            "XXXXSLACKSECRETXXXX",
            TEAMS_SECRET,
            "TEAMSSECRETSIGNATURE",
            KEY,
        ] {
            assert!(!text.contains(secret), "{secret} shown in:\n{text}");
        }
    }
}

#[test]
fn the_controller_refuses_to_start_on_an_invalid_config_naming_the_field_not_the_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("notifications.yaml");
    std::fs::write(
        &file,
        format!(
            "sinks:\n- name: oncall\n  kind: slack\n  url: https://hooks.slack.com/services/{SLACK_SECRET}\n  signingKey: {KEY}\n"
        ),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_canary-gate"))
        .args([
            "controller",
            "--prometheus",
            "http://127.0.0.1:9",
            "--notifications-config",
        ])
        .arg(&file)
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .output()
        .expect("run canary-gate");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "canary-gate: --notifications-config {}: sinks[0].signingKey: a slack webhook does not check signatures; remove signingKey (its URL is its credential)",
            file.display()
        )
    );
}

#[test]
fn the_readmes_configuration_rollout_and_payload_are_what_the_code_reads() {
    let yaml = support::readme_blocks("### Notifications", "yaml");
    let config = NotifyConfig::parse(&yaml[0], "README").expect("the README's configuration");
    assert_eq!(
        config.names().collect::<Vec<_>>(),
        ["audit", "shop-oncall", "shop-teams"]
    );
    // The delivery block spells out the defaults.
    assert_eq!(
        config.delivery,
        canary_gate::notify::DeliveryConfig::default()
    );
    let rollout: Value = serde_saphyr::from_str(&yaml[1]).expect("the Rollout snippet");
    let wanted: Vec<canary_gate::crd::rollout::NotificationRef> =
        serde_json::from_value(rollout["spec"]["notifications"].clone()).expect("entries");
    let mut status = RolloutStatus::default();
    let selection = canary_gate::notify::select(&config, "shop", &wanted);
    canary_gate::notify::set_condition(&mut status, &config, &wanted, &selection, T0);
    assert_eq!(
        status.conditions[0].message,
        "events go to audit (rolledBack, promoted, aborted), shop-oncall (paused, rolledBack, aborted), shop-teams (all events)"
    );
    let json = support::readme_blocks("### Notifications", "json");
    let notice: canary_gate::notify::Notice =
        serde_json::from_str(&json[0]).expect("the README's payload is a notice");
    let again = serde_json::to_value(&notice).expect("serializes");
    let written: Value = serde_json::from_str(&json[0]).expect("JSON");
    assert_eq!(again, written, "every field of the schema, no other");
}
