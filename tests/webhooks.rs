//! The webhooks' client against a real HTTP server on loopback, through the hooks stage and the
//! lifecycle (*decide*), with no API server: what a 2xx, a 500, a 400 and a slow endpoint come
//! to, the exact request (body and headers), an attempt collected by a later reconcile, and a
//! new controller that never calls a webhook that passed and counts a lost attempt as
//! unanswered.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use canary_gate::controller::availability::Availability;
use canary_gate::controller::decide::{Note, Observed, decide};
use canary_gate::controller::hooks::{HookRunner, delivery_id, hooks};
use canary_gate::controller::reconcile::Context;
use canary_gate::controller::telemetry::ControllerMetrics;
use canary_gate::controller::validate::{ValidatedRollout, validate};
use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::{HookPhase, RolloutPhase, RolloutStatus};
use canary_gate::rollout::lifecycle::{HookEvent, HookKey, HookKind};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use support::fake_http::{Answer, FakeHttp, Received, serve};
use support::fixtures::{NoMetrics, RolloutBuilder};

const T0: f64 = 1_763_856_000.0;

fn clock() -> f64 {
    T0
}

/// A Rollout `shop/web` whose only step is a webhook at 10 % to `url` with `extra` fields.
fn rollout(url: &str, extra: Value) -> Rollout {
    let mut webhook = json!({"name": "smoke", "url": url,
        "headers": [{"name": "Authorization", "value": "Bearer abc123"}],
        "metadata": {"cmd": "hey -z 1m http://web-canary.shop/"}});
    if let (Some(w), Value::Object(more)) = (webhook.as_object_mut(), extra) {
        w.extend(more);
    }
    RolloutBuilder::new("web")
        .namespace("shop")
        .stored("u-1", 1, "7")
        .steps(json!([{"setWeight": 10}, {"webhook": webhook}]))
        .build()
}

/// v2 at step 0 (the webhook step) at 10 % since T0, against v1.
fn rolling() -> RolloutStatus {
    RolloutStatus {
        phase: Some(RolloutPhase::Progressing),
        stable_revision: Some("v1".into()),
        canary_revision: Some("v2".into()),
        current_step_index: Some(0),
        canary_weight: Some(10),
        started_at: Some("2025-11-23T00:00:00Z".into()),
        step_started_at: Some("2025-11-23T00:00:00Z".into()),
        ..RolloutStatus::default()
    }
}

struct Harness {
    ctx: Arc<Context>,
    rollout: Rollout,
    validated: ValidatedRollout,
    registry: prometheus_client::registry::Registry,
}

impl Harness {
    /// A controller context whose API server is never asked (the hooks stage does not talk to
    /// it), waiting `inline` for each attempt's answer.
    fn new(rollout: Rollout, inline: Duration) -> Self {
        support::init_crypto();
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let mut ctx = Context::new(
            kube::Client::new(service, "default"),
            Arc::new(NoMetrics),
            clock,
        );
        ctx.hooks = HookRunner::new(inline);
        let mut registry = prometheus_client::registry::Registry::default();
        ctx.telemetry = Some(ControllerMetrics::register(&mut registry));
        let validated = validate(&rollout.spec).expect("a valid spec");
        Self {
            ctx: Arc::new(ctx),
            rollout,
            validated,
            registry,
        }
    }

    /// The controller's own metrics as `/metrics` serves them.
    fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }

    /// One pass at `now`: the hooks stage, then *decide*; the status to go on from, the Events
    /// and what the stage reported.
    async fn pass(
        &self,
        status: &RolloutStatus,
        now: f64,
    ) -> (RolloutStatus, Vec<Note>, Vec<HookEvent>) {
        let events = hooks(
            &self.ctx,
            &self.rollout,
            &self.validated,
            status,
            "v2",
            false,
            now,
        )
        .await;
        let observed = Observed {
            now,
            revision: "v2".into(),
            action: None,
            stable_ready: true,
            gated: false,
            judgement: None,
            metrics_outage: None,
            interval: 60.0,
            pods: Availability {
                total: 10,
                stable: 10,
                canary: 10,
                ..Availability::default()
            },
            autoscaler_conflict: None,
            hooks: events.clone(),
        };
        let o = decide(&self.validated, status, &observed);
        (o.status, o.notes, events)
    }
}

fn reasons(notes: &[Note]) -> Vec<&'static str> {
    notes.iter().map(|n| n.reason).collect()
}

fn smoke() -> HookKey {
    HookKey {
        kind: HookKind::Step,
        name: "smoke".into(),
        revision: "v2".into(),
        step: Some(0),
    }
}

fn count(server: &FakeHttp) -> usize {
    server.received.lock().unwrap().len()
}

fn last(server: &FakeHttp) -> Received {
    server
        .received
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("a request")
}

#[tokio::test]
async fn a_2xx_passes_with_the_exact_body_and_headers_and_the_step_completes() {
    let server = serve(|_| Answer::json(204, "")).await;
    let h = Harness::new(
        rollout(&format!("{}/run?token=s3cr3t", server.url), json!({})),
        Duration::from_secs(5),
    );
    // The step's weight is in force: its webhook is scheduled, nothing is called yet.
    let (status, _, events) = h.pass(&rolling(), T0).await;
    assert!(events.is_empty());
    assert_eq!(status.hooks[0].phase, HookPhase::Pending);
    assert_eq!(count(&server), 0);
    // The next reconcile calls it; the quick answer is taken at once: promoted (last step).
    let (status, notes, _) = h.pass(&status, T0 + 1.0).await;
    assert_eq!(count(&server), 1);
    let request = last(&server);
    assert_eq!(
        request.head.lines().next(),
        Some("POST /run?token=s3cr3t HTTP/1.1")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), Some("Bearer abc123"));
    assert_eq!(request.header("x-canary-gate-hook"), Some("smoke"));
    assert_eq!(request.header("x-canary-gate-attempt"), Some("1"));
    let id = delivery_id(&h.rollout, &smoke());
    assert_eq!(request.header("x-canary-gate-delivery"), Some(id.as_str()));
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "apiVersion": "canarygate.dev/hook/v1",
            "id": id,
            "hook": {"name": "smoke", "kind": "step"},
            "attempt": 1,
            "name": "web",
            "namespace": "shop",
            "revision": "v2",
            "stableRevision": "v1",
            "step": 0,
            "weight": 10,
            "phase": "Progressing",
            "time": "2025-11-23T00:00:01Z",
            "workloads": {"stable": "web-stable", "canary": "web-canary"},
            "metadata": {"cmd": "hey -z 1m http://web-canary.shop/"}
        })
    );
    assert_eq!(reasons(&notes), ["HookStarted", "HookPassed", "Promoting"]);
    assert!(
        notes[1]
            .message
            .starts_with("webhook smoke (step 0, POST to 127.0.0.1:"),
        "{}",
        notes[1].message
    );
    assert!(
        notes[1]
            .message
            .ends_with("passed: answered 204 (attempt 1)")
    );
    assert_eq!(status.phase, Some(RolloutPhase::Promoting));
    let run = &status.hooks[0];
    assert_eq!(
        (run.phase, run.attempts, run.last_answer.as_deref()),
        (HookPhase::Passed, 1, Some("answered 204"))
    );
    // Never again for this revision.
    let (_, _, events) = h.pass(&status, T0 + 2.0).await;
    assert!(events.is_empty());
    assert_eq!(count(&server), 1);
}

#[tokio::test]
async fn a_500_is_tried_again_after_the_backoff_and_then_passes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let server = serve(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Answer::json(500, "{\"error\":\"warming up\"}")
        } else {
            Answer::json(200, "ok")
        }
    })
    .await;
    let h = Harness::new(rollout(&server.url, json!({})), Duration::from_secs(5));
    let (status, _, _) = h.pass(&rolling(), T0).await;
    let (status, notes, _) = h.pass(&status, T0 + 1.0).await;
    assert_eq!(reasons(&notes), ["HookStarted", "HookRetrying"]);
    assert!(
        notes[1].message.ends_with(
            "attempt 1 failed: answered 500: {\"error\":\"warming up\"}; trying again in 5s"
        ),
        "{}",
        notes[1].message
    );
    let run = &status.hooks[0];
    assert_eq!(
        (run.phase, run.attempts, run.next_attempt_at.as_deref()),
        (HookPhase::Pending, 1, Some("2025-11-23T00:00:06Z"))
    );
    assert_eq!(status.phase, Some(RolloutPhase::Progressing));
    // Not before its time.
    let (same, _, events) = h.pass(&status, T0 + 3.0).await;
    assert!(events.is_empty());
    assert_eq!(count(&server), 1);
    // At it: the second attempt passes.
    let (status, notes, _) = h.pass(&same, T0 + 6.0).await;
    assert_eq!(count(&server), 2);
    assert_eq!(last(&server).header("x-canary-gate-attempt"), Some("2"));
    assert_eq!(reasons(&notes), ["HookPassed", "Promoting"]);
    assert!(
        notes[0]
            .message
            .ends_with("passed: answered 200 (attempt 2)")
    );
    assert_eq!(status.hooks[0].attempts, 2);
    let metrics = h.metrics();
    for line in [
        "canary_gate_webhook_attempts_total{kind=\"step\",result=\"retrying\"} 1",
        "canary_gate_webhook_attempts_total{kind=\"step\",result=\"passed\"} 1",
    ] {
        assert!(metrics.contains(line), "{metrics}");
    }
}

#[tokio::test]
async fn a_400_fails_at_once_and_rolls_back() {
    let server = serve(|_| Answer::json(400, "{\"error\":\"unknown test suite\"}")).await;
    let h = Harness::new(
        rollout(&server.url, json!({"retries": 5})),
        Duration::from_secs(5),
    );
    let (status, _, _) = h.pass(&rolling(), T0).await;
    let (status, notes, _) = h.pass(&status, T0 + 1.0).await;
    assert_eq!(count(&server), 1);
    assert_eq!(reasons(&notes), ["HookStarted", "HookFailed", "RolledBack"]);
    assert!(
        notes[1].message.contains(
            "failed after 1 attempt: answered 400: {\"error\":\"unknown test suite\"}; the rollout rolls back"
        ),
        "{}",
        notes[1].message
    );
    assert_eq!(status.phase, Some(RolloutPhase::RolledBack));
    assert_eq!(status.hooks[0].phase, HookPhase::Failed);
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Hooks")
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "HookFailed")
    );
}

#[tokio::test]
async fn no_answer_within_the_timeout_counts_as_a_failed_attempt() {
    let server = serve(|_| Answer {
        delay: Duration::from_secs(5),
        ..Answer::json(200, "late")
    })
    .await;
    let h = Harness::new(
        rollout(&server.url, json!({"timeout": "1s", "retries": 0})),
        Duration::from_secs(4),
    );
    let (status, _, _) = h.pass(&rolling(), T0).await;
    let started = std::time::Instant::now();
    let (status, notes, _) = h.pass(&status, T0 + 1.0).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reasons(&notes), ["HookStarted", "HookFailed", "RolledBack"]);
    assert_eq!(
        status.hooks[0].last_answer.as_deref(),
        Some("no answer within 1s")
    );
    assert_eq!(status.hooks[0].attempts, 1);
}

#[tokio::test]
async fn a_slow_answer_is_collected_by_a_later_reconcile_without_a_second_call() {
    let server = serve(|_| Answer {
        delay: Duration::from_millis(1500),
        ..Answer::json(200, "done")
    })
    .await;
    let h = Harness::new(rollout(&server.url, json!({})), Duration::from_millis(100));
    let (status, _, _) = h.pass(&rolling(), T0).await;
    let begun = std::time::Instant::now();
    let (status, notes, _) = h.pass(&status, T0 + 1.0).await;
    // The reconcile did not wait for it.
    assert!(
        begun.elapsed() < Duration::from_secs(1),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(reasons(&notes), ["HookStarted"]);
    assert_eq!(status.hooks[0].phase, HookPhase::Running);
    assert_eq!(status.phase, Some(RolloutPhase::Progressing));
    // A reconcile that still reads the status from before the attempt began (a watch cache
    // behind) takes the same attempt rather than calling again.
    let (_, _, events) = h.pass(&rolling_with_pending(&status), T0 + 1.0).await;
    assert!(
        matches!(events.as_slice(), [HookEvent::Started { attempt: 1, .. }]),
        "{events:?}"
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (status, notes, _) = h.pass(&status, T0 + 3.0).await;
    assert_eq!(reasons(&notes), ["HookPassed", "Promoting"]);
    assert_eq!(count(&server), 1);
    assert_eq!(h.ctx.hooks.attempts_held(), 1);
    // Once a status read shows the answer recorded, the runner forgets it.
    let _ = h.pass(&status, T0 + 4.0).await;
    assert_eq!(h.ctx.hooks.attempts_held(), 0);
}

/// `status` as it was before its webhook's attempt began (the run pending, no attempt).
fn rolling_with_pending(status: &RolloutStatus) -> RolloutStatus {
    let mut old = status.clone();
    old.hooks[0].phase = HookPhase::Pending;
    old.hooks[0].attempts = 0;
    old.hooks[0].started_at = None;
    old.hooks[0].next_attempt_at = Some("2025-11-23T00:00:00Z".into());
    old
}

#[tokio::test]
async fn a_new_controller_never_calls_a_passed_webhook_again_and_retries_an_attempt_it_lost() {
    let server = serve(|_| Answer::json(200, "ok")).await;
    let spec = rollout(&server.url, json!({}));
    // A status with the webhook passed, read by a controller that just started.
    let h = Harness::new(spec.clone(), Duration::from_secs(5));
    let (status, _, _) = h.pass(&rolling(), T0).await;
    let mut passed = status.clone();
    passed.hooks[0].phase = HookPhase::Passed;
    passed.hooks[0].attempts = 1;
    passed.hooks[0].last_answer = Some("answered 200".into());
    let restarted = Harness::new(spec.clone(), Duration::from_secs(5));
    let (next, _, events) = restarted.pass(&passed, T0 + 10.0).await;
    assert!(events.is_empty());
    assert_eq!(count(&server), 0);
    assert_eq!(next.phase, Some(RolloutPhase::Promoting));
    // A status with an attempt under way that no process of this controller runs (it
    // restarted mid-attempt): the answer is unknown, the attempt counts as unanswered and the
    // next one comes after the backoff.
    let mut running = status.clone();
    running.hooks[0].phase = HookPhase::Running;
    running.hooks[0].attempts = 1;
    running.hooks[0].started_at = Some("2025-11-23T00:00:01Z".into());
    let restarted = Harness::new(spec, Duration::from_secs(5));
    let (next, notes, _) = restarted.pass(&running, T0 + 10.0).await;
    assert_eq!(count(&server), 0);
    assert_eq!(reasons(&notes), ["HookRetrying"]);
    assert_eq!(
        next.hooks[0].last_answer.as_deref(),
        Some("attempt 1's answer is unknown: the controller restarted while it ran")
    );
    assert_eq!(
        next.hooks[0].next_attempt_at.as_deref(),
        Some("2025-11-23T00:00:15Z")
    );
    let (next, notes, _) = restarted.pass(&next, T0 + 15.0).await;
    assert_eq!(count(&server), 1);
    assert_eq!(last(&server).header("x-canary-gate-attempt"), Some("2"));
    assert_eq!(reasons(&notes), ["HookPassed", "Promoting"]);
    assert_eq!(next.hooks[0].attempts, 2);
}

/// The keys of `value`'s objects, nested, as paths.
fn shape(value: &Value, at: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        for (k, v) in map {
            let path = format!("{at}.{k}");
            shape(v, &path, out);
            out.push(path);
        }
    }
    out.sort();
}

#[test]
fn the_readmes_rollout_and_payload_are_what_the_code_reads_and_sends() {
    let yaml = support::readme_blocks("### Webhooks", "yaml");
    let snippet: Value = serde_saphyr::from_str(&yaml[0]).expect("the README's Rollout snippet");
    let example: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/rollouts/webhooks.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    for part in ["/spec/strategy/canary/steps", "/spec/hooks"] {
        assert_eq!(
            snippet.pointer(part),
            example.pointer(part),
            "the README shows {part} of examples/rollouts/webhooks.yaml"
        );
    }
    let json = support::readme_blocks("### Webhooks", "json");
    let written: Value = serde_json::from_str(&json[0]).expect("the README's payload is JSON");
    let rollout = rollout("http://smoke.shop/", json!({}));
    let validated = validate(&rollout.spec).unwrap();
    let def = validated.hook(HookKind::Step, "smoke").unwrap();
    let run = canary_gate::rollout::lifecycle::HookRun {
        key: smoke(),
        phase: canary_gate::rollout::lifecycle::HookPhase::Pending,
        attempts: 0,
        answer: None,
        started_at: None,
        next_attempt_at: None,
        finished_at: None,
    };
    let sent = canary_gate::controller::hooks::payload(&rollout, &rolling(), def, &run, 1, T0);
    let (mut theirs, mut ours) = (Vec::new(), Vec::new());
    shape(&written, "", &mut theirs);
    shape(&sent, "", &mut ours);
    // The README's metadata is its example's; the rest is every field, no other.
    theirs.retain(|p| !p.starts_with(".metadata."));
    ours.retain(|p| !p.starts_with(".metadata."));
    assert_eq!(theirs, ours);
}
