//! Webhooks end to end against a real kube-apiserver: a Rollout with a webhook step, a
//! pre-promotion webhook and two post-promotion ones (one of which fails) rolls out against a
//! loopback server. The status records each run, the Events name each webhook and its host,
//! the server gets exactly the requests expected — a webhook that passed is not called again by
//! a restarted controller, an attempt the restart interrupted is tried again, and a failed
//! post-promotion webhook is a Warning and a condition, never a rollback.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use canary_gate::controller::reconcile::{Context, reconcile};
use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::{HookKind, HookPhase, RolloutPhase, RolloutStatus};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use support::apiserver::{pods_available, set_image, with_web};
use support::fake_http::{Answer, FakeHttp, Received, serve};
use support::fixtures::{NoMetrics, RolloutBuilder};

const NS: &str = "hooks-test";
const T0: u64 = 1_763_856_000;
static NOW: AtomicU64 = AtomicU64::new(T0);

fn now() -> f64 {
    NOW.load(Ordering::SeqCst) as f64
}

async fn status(rollouts: &Api<Rollout>) -> RolloutStatus {
    rollouts
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

fn requests(server: &FakeHttp, path: &str) -> Vec<Received> {
    server
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path() == path)
        .cloned()
        .collect()
}

fn body(r: &Received) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test]
async fn webhooks_gate_a_rollout_on_a_real_api_server_and_a_restart_never_repeats_a_passed_one() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // /load and /tell answer at once; /smoke's first call takes 3 s (longer than a reconcile
    // waits); /audit is gone (404).
    let smoke_calls = Arc::new(AtomicUsize::new(0));
    let calls = smoke_calls.clone();
    let server = serve(move |r| match r.path() {
        "/smoke" if calls.fetch_add(1, Ordering::SeqCst) == 0 => Answer {
            delay: Duration::from_secs(3),
            ..Answer::json(200, "late")
        },
        "/audit" => Answer::json(404, "no such route"),
        _ => Answer::json(200, "ok"),
    })
    .await;
    let url = |path: &str| format!("{}{path}", server.url);
    let host = server.url.trim_start_matches("http://").to_string();

    let (_apiserver, client) = with_web(NS).await;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let rollout = RolloutBuilder::new("web")
        .spec(json!({"targetRef": {"name": "web"},
            "strategy": {"canary": {"steps": [
                {"setWeight": 20},
                {"webhook": {"name": "load", "url": url("/load"), "metadata": {"cmd": "hey -z 1m"}}},
                {"pause": {"duration": "1m"}}]}},
            "hooks": {
                "prePromotion": [{"name": "smoke", "url": url("/smoke"), "timeout": "10s"}],
                "postPromotion": [{"name": "tell", "url": url("/tell")},
                                  {"name": "audit", "url": url("/audit"), "retries": 0}]}}))
        .build();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .expect("the API server accepts webhook steps and spec.hooks");
    let stored = rollouts.get("web").await.unwrap();
    assert_eq!(
        stored.spec.hooks.as_ref().unwrap().post_promotion[1].retries,
        Some(0),
        "the CRD's schema keeps the webhook fields"
    );

    let ctx = Arc::new(Context::new(client.clone(), Arc::new(NoMetrics), now));
    let step = |ctx: Arc<Context>| {
        let rollouts = rollouts.clone();
        async move {
            reconcile(Arc::new(rollouts.get("web").await.unwrap()), ctx)
                .await
                .expect("reconcile succeeds")
        }
    };

    // Adopted, then a new image starts the rollout; the pods come.
    step(ctx.clone()).await;
    set_image(&client, NS, "web:2").await;
    step(ctx.clone()).await;
    pods_available(&client, NS, "web-stable", None, json!([])).await;
    pods_available(&client, NS, "web-canary", None, json!([])).await;
    step(ctx.clone()).await;
    let s = status(&rollouts).await;
    let revision = s.canary_revision.clone().expect("a canary revision");
    assert_eq!(
        (s.phase, s.current_step_index, s.canary_weight),
        (Some(RolloutPhase::Progressing), Some(0), Some(20))
    );
    // The webhook step's weight is in force: its webhook is due, not yet called.
    assert_eq!(s.hooks.len(), 1);
    assert_eq!(
        (s.hooks[0].name.as_str(), s.hooks[0].phase),
        ("load", HookPhase::Pending)
    );
    assert!(requests(&server, "/load").is_empty());

    // 1. The webhook step: called, passes at once, the step is complete.
    step(ctx.clone()).await;
    let s = status(&rollouts).await;
    assert_eq!(
        (s.current_step_index, s.canary_weight),
        (Some(1), Some(20)),
        "{:?}",
        s.message
    );
    assert_eq!(
        (s.hooks[0].phase, s.hooks[0].attempts),
        (HookPhase::Passed, 1)
    );
    let load = requests(&server, "/load");
    assert_eq!(load.len(), 1);
    let sent = body(&load[0]);
    assert_eq!(
        (
            &sent["hook"],
            &sent["step"],
            &sent["weight"],
            &sent["revision"],
            &sent["metadata"]
        ),
        (
            &json!({"name": "load", "kind": "step"}),
            &json!(0),
            &json!(20),
            &json!(revision),
            &json!({"cmd": "hey -z 1m"})
        )
    );

    // 2. A restarted controller never calls the webhook that passed.
    let restarted = Arc::new(Context::new(client.clone(), Arc::new(NoMetrics), now));
    step(restarted.clone()).await;
    assert_eq!(requests(&server, "/load").len(), 1);

    // 3. The last step's minute is over: the rollout decides to promote and calls its
    //    pre-promotion webhook first; traffic stays at 20 %. The call takes longer than a
    //    reconcile waits: it goes on in the background.
    NOW.fetch_add(60, Ordering::SeqCst);
    step(restarted.clone()).await;
    let s = status(&rollouts).await;
    assert_eq!(
        (s.phase, s.canary_weight),
        (Some(RolloutPhase::Progressing), Some(20))
    );
    assert_eq!(s.hooks[1].phase, HookPhase::Pending);
    let begun = std::time::Instant::now();
    step(restarted.clone()).await;
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "{:?}",
        begun.elapsed()
    );
    let s = status(&rollouts).await;
    assert_eq!(
        (
            s.hooks[1].name.as_str(),
            s.hooks[1].phase,
            s.hooks[1].attempts
        ),
        ("smoke", HookPhase::Running, 1)
    );
    assert_eq!(requests(&server, "/smoke").len(), 1);

    // 4. The controller restarts mid-attempt: that attempt's answer is lost; it counts as
    //    unanswered and the next attempt comes after the backoff — and passes: promotion.
    let again = Arc::new(Context::new(client.clone(), Arc::new(NoMetrics), now));
    step(again.clone()).await;
    let s = status(&rollouts).await;
    assert_eq!(
        (s.hooks[1].phase, s.hooks[1].attempts),
        (HookPhase::Pending, 1)
    );
    assert_eq!(
        s.hooks[1].last_answer.as_deref(),
        Some("attempt 1's answer is unknown: the controller restarted while it ran")
    );
    NOW.fetch_add(5, Ordering::SeqCst);
    step(again.clone()).await;
    let s = status(&rollouts).await;
    assert_eq!(s.phase, Some(RolloutPhase::Promoting), "{:?}", s.message);
    let smoke = requests(&server, "/smoke");
    assert_eq!(smoke.len(), 2);
    assert_eq!(
        smoke
            .iter()
            .map(|r| r.header("x-canary-gate-attempt").unwrap().to_string())
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(
        smoke[0].header("x-canary-gate-delivery"),
        smoke[1].header("x-canary-gate-delivery"),
        "one id for every attempt of a run"
    );
    assert_eq!(body(&smoke[1])["hook"]["kind"], "prePromotion");

    // 5. The promotion completes (the pods come); then the post-promotion webhooks run in
    //    order. /audit's 404 is a Warning and the condition; the rollout stays Healthy.
    for _ in 0..8 {
        pods_available(&client, NS, "web-canary", None, json!([])).await;
        pods_available(&client, NS, "web-stable", None, json!([])).await;
        NOW.fetch_add(5, Ordering::SeqCst);
        step(again.clone()).await;
        let s = status(&rollouts).await;
        if s.hooks
            .iter()
            .filter(|h| h.kind == HookKind::PostPromotion)
            .all(|h| matches!(h.phase, HookPhase::Passed | HookPhase::Failed))
            && s.hooks.len() == 4
        {
            break;
        }
    }
    let s = status(&rollouts).await;
    assert_eq!(s.phase, Some(RolloutPhase::Healthy), "{:?}", s.message);
    assert_eq!(s.stable_revision.as_deref(), Some(revision.as_str()));
    let runs: BTreeMap<&str, (HookKind, HookPhase, i32, Option<&str>)> = s
        .hooks
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                (h.kind, h.phase, h.attempts, h.last_answer.as_deref()),
            )
        })
        .collect();
    assert_eq!(
        runs,
        BTreeMap::from([
            (
                "load",
                (HookKind::Step, HookPhase::Passed, 1, Some("answered 200"))
            ),
            (
                "smoke",
                (
                    HookKind::PrePromotion,
                    HookPhase::Passed,
                    2,
                    Some("answered 200")
                )
            ),
            (
                "tell",
                (
                    HookKind::PostPromotion,
                    HookPhase::Passed,
                    1,
                    Some("answered 200")
                )
            ),
            (
                "audit",
                (
                    HookKind::PostPromotion,
                    HookPhase::Failed,
                    1,
                    Some("answered 404: no such route")
                )
            ),
        ])
    );
    let tell = requests(&server, "/tell");
    assert_eq!(tell.len(), 1);
    let sent = body(&tell[0]);
    assert_eq!(
        (
            &sent["hook"]["kind"],
            &sent["phase"],
            &sent["stableRevision"]
        ),
        (&json!("postPromotion"), &json!("Healthy"), &json!(revision))
    );
    assert_eq!(requests(&server, "/audit").len(), 1);
    let condition = s.conditions.iter().find(|c| c.type_ == "Hooks").unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "HookFailed")
    );
    assert_eq!(
        condition.message,
        format!(
            "webhook audit (postPromotion, POST to {host}) failed after 1 attempt: answered 404: no such route; reported only: the promotion stands; fix the endpoint, the next promotion calls it again"
        )
    );
    // Nothing more is due: later reconciles call nothing.
    let before = server.received.lock().unwrap().len();
    NOW.fetch_add(60, Ordering::SeqCst);
    step(again.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // the first /smoke answer lands
    assert_eq!(server.received.lock().unwrap().len(), before);

    // The Events: each webhook named with its host, never its path.
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let notes: Vec<(String, String, String)> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.type_.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect();
    let has = |reason: &str, kind: &str, text: &str| {
        notes
            .iter()
            .any(|(r, k, n)| r == reason && k == kind && n.contains(text))
    };
    for (reason, kind, text) in [
        (
            "HookStarted",
            "Normal",
            format!("calling webhook load (step 0, POST to {host})"),
        ),
        (
            "HookPassed",
            "Normal",
            format!("webhook load (step 0, POST to {host}) passed: answered 200 (attempt 1)"),
        ),
        (
            "HookRetrying",
            "Warning",
            format!(
                "webhook smoke (prePromotion, POST to {host}): attempt 1 failed: attempt 1's answer is unknown"
            ),
        ),
        (
            "HookPassed",
            "Normal",
            format!(
                "webhook smoke (prePromotion, POST to {host}) passed: answered 200 (attempt 2)"
            ),
        ),
        (
            "Promoting",
            "Normal",
            "the pre-promotion webhooks passed".to_string(),
        ),
        (
            "HookPassed",
            "Normal",
            format!("webhook tell (postPromotion, POST to {host}) passed"),
        ),
        (
            "HookFailed",
            "Warning",
            format!("webhook audit (postPromotion, POST to {host}) failed after 1 attempt"),
        ),
    ] {
        assert!(
            has(reason, kind, &text),
            "no {reason} {kind} Event with {text:?} in {notes:#?}"
        );
    }
    assert!(
        notes
            .iter()
            .all(|(_, _, n)| !n.contains("/smoke") && !n.contains("/load")),
        "{notes:#?}"
    );
    assert!(!notes.iter().any(|(r, _, _)| r == "RolledBack"));
}
