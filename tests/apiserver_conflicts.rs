//! Another writer on the same Rollout, against a real kube-apiserver: a write guarded by the
//! resourceVersion fails on a stale copy (the other writer's change is never overwritten) and the
//! next reconcile, on a fresh read, succeeds; the status, written by server-side apply with its
//! own field manager, takes its fields back from another manager without a conflict error.

mod support;

use std::sync::Arc;

use canary_gate::controller::reconcile::{Context, FINALIZER, STATUS_MANAGER, reconcile};
use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::RolloutPhase;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::apiserver::{ApiServer, create_namespace, deployment, install_crds};
use support::fixtures::{NoMetrics, RolloutBuilder};

const NS: &str = "conflict-test";

fn now() -> f64 {
    1_763_856_000.0
}

#[tokio::test]
async fn a_stale_copy_is_refused_and_retried_and_another_status_writer_never_blocks() {
    support::init_crypto();
    let server = ApiServer::start();
    let client = server.client().await;
    install_crds(&client).await;
    create_namespace(&client, NS).await;
    Api::<Deployment>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &deployment("web:1"))
        .await
        .unwrap();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    rollouts
        .create(&PostParams::default(), &RolloutBuilder::new("web").build())
        .await
        .unwrap();
    let ctx = Arc::new(Context::new(client.clone(), Arc::new(NoMetrics), now));

    // The controller's copy goes stale: someone labels the Rollout after it was read.
    let stale = rollouts.get("web").await.unwrap();
    let stale_version = stale.resource_version().unwrap();
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "shop"}}})),
        )
        .await
        .unwrap();
    let err = reconcile(Arc::new(stale), ctx.clone())
        .await
        .expect_err("a write guarded by a stale resourceVersion is refused");
    let text = err.to_string();
    assert_eq!(err.category(), "conflict", "{text}");
    assert!(
        text.contains(&format!(
            "Rollout {NS}/web changed since it was read (resourceVersion {})",
            stale_version
        )),
        "the refusal says why: {text}"
    );
    let after = rollouts.get("web").await.unwrap();
    assert!(
        after.finalizers().is_empty(),
        "nothing written from the stale copy"
    );
    assert_eq!(after.status.and_then(|s| s.phase), None);

    // The retry reads afresh: finalizer and status written, the label kept.
    reconcile(Arc::new(rollouts.get("web").await.unwrap()), ctx.clone())
        .await
        .expect("the retry succeeds");
    let after = rollouts.get("web").await.unwrap();
    assert_eq!(after.finalizers(), [FINALIZER.to_string()]);
    assert_eq!(after.labels().get("team").map(String::as_str), Some("shop"));
    assert_eq!(
        after.status.as_ref().and_then(|s| s.phase),
        Some(RolloutPhase::Healthy)
    );

    // Another manager overwrites a status field canary-gate owns (force, as `kubectl apply
    // --force-conflicts --subresource=status` would) …
    rollouts
        .patch_status(
            "web",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(
                json!({"apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
                "status": {"message": "edited by hand"}}),
            ),
        )
        .await
        .unwrap();
    // … and the next reconcile writes its status without a conflict error, taking it back.
    reconcile(Arc::new(rollouts.get("web").await.unwrap()), ctx.clone())
        .await
        .expect("no conflict: the status is applied with its own manager and force");
    let after = rollouts.get("web").await.unwrap();
    let status = after.status.clone().unwrap();
    assert_ne!(status.message.as_deref(), Some("edited by hand"));
    assert_eq!(status.phase, Some(RolloutPhase::Healthy));
    let owner_of_message = after
        .managed_fields()
        .iter()
        .find(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:status"].get("f:message").is_some())
        })
        .and_then(|m| m.manager.clone());
    assert_eq!(owner_of_message.as_deref(), Some(STATUS_MANAGER));
}
