//! One reconcile at a time against a real kube-apiserver: the status written by server-side
//! apply, the Events recorded, and the step machine driven by metrics from a scripted source.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use canary_gate::controller::reconcile::{Context, reconcile};
use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::RolloutPhase;
use k8s_openapi::api::events::v1::Event;
use kube::Resource;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::apiserver::{pods_available, set_image, with_web};
use support::fixtures::{CLEAN, FAILING, RolloutBuilder, ScriptedMetrics};

const NS: &str = "reconcile-test";
const T0: u64 = 1_763_856_000;
static NOW: AtomicU64 = AtomicU64::new(T0);

fn now() -> f64 {
    NOW.load(Ordering::SeqCst) as f64
}

async fn status_of(api: &Api<Rollout>, name: &str) -> canary_gate::crd::RolloutStatus {
    api.get(name).await.unwrap().status.unwrap_or_default()
}

#[tokio::test]
async fn reconciles_drive_a_rollout_through_its_steps_on_a_real_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_server, client) = with_web(NS).await;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let rollout = RolloutBuilder::new("web")
        .analysis("generic-http", &[("service", "web")])
        .steps(json!([{"setWeight": 10}, {"pause": {"duration": "2m"}},
            {"setWeight": 50}, {"pause": {"duration": "2m"}}]))
        .build();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();

    // Every minute 900 stable and 100 canary requests; the canary fails 20 % of them when told.
    let metrics = Arc::new(ScriptedMetrics::new(CLEAN));
    let ctx = Arc::new(Context::new(client.clone(), metrics.clone(), now));
    let step = |name: &'static str| {
        let (rollouts, ctx) = (rollouts.clone(), ctx.clone());
        async move {
            reconcile(Arc::new(rollouts.get(name).await.unwrap()), ctx)
                .await
                .expect("reconcile succeeds")
        }
    };

    // 1. First sight: the running template is adopted as stable.
    step("web").await;
    let s = status_of(&rollouts, "web").await;
    assert_eq!(s.phase, Some(RolloutPhase::Healthy), "{s:?}");
    let stable = s.stable_revision.clone().expect("stable revision");

    // 2. A new image starts the rollout at step 0, 10 %.
    set_image(&client, NS, "web:2").await;
    step("web").await;
    let s = status_of(&rollouts, "web").await;
    // The canary has no pod yet: step 0's 10 % waits for it, no traffic moves.
    assert_eq!(
        (s.phase, s.current_step_index, s.canary_weight),
        (Some(RolloutPhase::Progressing), Some(0), Some(0))
    );
    assert_eq!(s.step_started_at, None);
    assert_ne!(s.canary_revision.as_deref(), Some(stable.as_str()));
    // The pods come up (both versions; with the replica ratio the pods are the split).
    pods_available(&client, NS, "web-stable", None, json!([])).await;
    pods_available(&client, NS, "web-canary", None, json!([])).await;
    step("web").await;
    let s = status_of(&rollouts, "web").await;
    assert_eq!(
        (s.phase, s.current_step_index, s.canary_weight),
        (Some(RolloutPhase::Progressing), Some(0), Some(10))
    );

    // 3. Two clean minutes later the step is over and passes: step 1 at 50 % (one pod in all:
    //    the canary's one pod is all 50 % needs, so it comes into force at once).
    NOW.store(T0 + 120, Ordering::SeqCst);
    step("web").await;
    let s = status_of(&rollouts, "web").await;
    assert_eq!(
        (s.current_step_index, s.canary_weight),
        (Some(1), Some(50)),
        "{:?}",
        s.message
    );
    assert_eq!(s.last_decision.as_deref(), Some("continue"));
    assert_eq!(
        metrics.windows().last(),
        Some(&((T0) as f64, (T0 + 120) as f64))
    );

    // 4. The canary starts failing: rolled back, with the evidence in the decision record.
    metrics.set(FAILING);
    NOW.store(T0 + 300, Ordering::SeqCst);
    step("web").await;
    let s = status_of(&rollouts, "web").await;
    assert_eq!(
        (s.phase, s.canary_weight),
        (Some(RolloutPhase::RolledBack), Some(0)),
        "{:?}",
        s.message
    );
    // Only the minutes since the last reconcile were read; the judge kept the rest.
    assert_eq!(
        metrics.windows().last(),
        Some(&((T0 + 120) as f64, (T0 + 300) as f64))
    );
    let last = s.decisions.last().expect("decision record");
    assert_eq!(last.decision, "rollback");
    assert!(
        last.metrics
            .iter()
            .any(|m| m.name == "error-rate" && m.verdict == "fail")
    );

    // 5. A human retries through the action annotation: step 0 again, acted on once.
    metrics.set(CLEAN);
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"canarygate.dev/action": "retry@1"}}}),
            ),
        )
        .await
        .unwrap();
    step("web").await;
    let s = status_of(&rollouts, "web").await;
    assert_eq!(
        (s.phase, s.current_step_index, s.handled_action.as_deref()),
        (Some(RolloutPhase::Progressing), Some(0), Some("retry@1"))
    );
    // The retried canary has its pods at 10 % again (the rollback took them).
    pods_available(&client, NS, "web-canary", None, json!([])).await;

    // 6. A Rollout with an invalid spec gets a clear status and does not disturb the other.
    let bad = RolloutBuilder::new("bad")
        .spec(json!({"targetRef": {"name": "web"}, "strategy": {
            "canary": {"steps": [{"setWeight": 10}]}, "blueGreen": {"activeService": "web"}}}))
        .build();
    rollouts.create(&PostParams::default(), &bad).await.unwrap();
    step("bad").await;
    let s = status_of(&rollouts, "bad").await;
    assert_eq!(s.phase, Some(RolloutPhase::Degraded));
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "InvalidSpec" && c.status == "True"),
        "{:?}",
        s.conditions
    );
    assert!(
        s.message
            .unwrap()
            .contains("spec.strategy: has both canary and blueGreen")
    );
    let web = status_of(&rollouts, "web").await;
    assert_eq!(web.phase, Some(RolloutPhase::Progressing));
    assert!(
        web.conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.status == "True"),
        "{:?}",
        web.conditions
    );

    // Events were recorded for every change.
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for expected in [
        "Adopted",
        "RolloutStarted",
        "StepAdvanced",
        "RolledBack",
        "RolloutRetried",
        "InvalidSpec",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "no {expected} Event in {reasons:?}"
        );
    }

    // An identical note repeated is a count on the first Event, accepted by the real server.
    let reference = rollouts.get("web").await.unwrap().object_ref(&());
    for _ in 0..2 {
        ctx.events
            .publish(&reference, true, "Repeated", "the same words")
            .await
            .expect("the API server accepts the Event and its series");
    }
    let repeated: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Repeated"))
        .collect();
    assert_eq!(repeated.len(), 1);
    assert_eq!(repeated[0].series.as_ref().map(|s| s.count), Some(2));
}
