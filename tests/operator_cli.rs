//! The operator actions against kube's mocked API (tower-test): each sends exactly one read and,
//! when the Rollout's state allows it, one merge patch of the action annotation; a missing
//! Rollout or a meaningless action is refused with the reason and writes nothing.

use std::time::Duration;

use canary_gate::operator::{OperatorError, act, render};
use canary_gate::rollout::Action;
use http::{Method, Request as HttpRequest, Response};
use kube::client::Body;
use serde_json::{Value, json};

const ROLLOUT: &str = "/apis/canarygate.dev/v1alpha1/namespaces/shop/rollouts/web";

fn rollout(status: Value) -> Value {
    json!({"apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"targetRef": {"name": "web"}, "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}}},
        "status": status})
}

/// Runs `request` against a server that answers the GET with `found` (None: 404) and expects a
/// patch with `annotation` (None: no patch at all).
async fn run(
    request: Action,
    found: Option<Value>,
    annotation: Option<&'static str>,
) -> Result<String, OperatorError> {
    let (service, mut handle) = tower_test::mock::pair::<HttpRequest<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let (get, send) = handle.next_request().await.expect("a GET");
        assert_eq!(get.method(), Method::GET);
        assert_eq!(get.uri().to_string(), ROLLOUT);
        let (code, body) = match &found {
            Some(r) => (200, r.clone()),
            None => (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                    "code": 404, "message": "rollouts.canarygate.dev \"web\" not found", "details": {"name": "web"}}),
            ),
        };
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
        if let Some(value) = annotation {
            let (patch, send) = handle.next_request().await.expect("a PATCH");
            assert_eq!(patch.method(), Method::PATCH);
            assert_eq!(patch.uri().to_string(), format!("{ROLLOUT}?"));
            assert_eq!(
                patch.headers()["content-type"],
                "application/merge-patch+json"
            );
            let bytes = patch.into_body().collect_bytes().await.unwrap();
            let sent: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                sent,
                json!({"metadata": {"annotations": {"canarygate.dev/action": value}}})
            );
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&found.unwrap()).unwrap()))
                    .unwrap(),
            );
        }
        if let Ok(Some((extra, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!("unexpected request {} {}", extra.method(), extra.uri());
        }
    });
    let result = act(&client, "shop", "web", request, "1700000000000").await;
    drop(client);
    server.await.expect("the conversation went as scripted");
    result
}

#[tokio::test]
async fn each_action_patches_only_the_action_annotation_when_it_makes_sense() {
    let paused = rollout(json!({"phase": "Paused", "currentStepIndex": 1, "canaryWeight": 10}));
    let message = run(
        Action::Promote,
        Some(paused.clone()),
        Some("promote@1700000000000"),
    )
    .await
    .unwrap();
    assert_eq!(
        message,
        "promote requested for rollout shop/web (Paused, step 1 at 10%); the controller acts on its next reconcile"
    );
    run(
        Action::PromoteFull,
        Some(paused.clone()),
        Some("promote-full@1700000000000"),
    )
    .await
    .unwrap();
    run(
        Action::Abort,
        Some(paused.clone()),
        Some("abort@1700000000000"),
    )
    .await
    .unwrap();
    run(Action::Undo, Some(paused), Some("undo@1700000000000"))
        .await
        .unwrap();
    run(
        Action::Retry,
        Some(rollout(json!({"phase": "RolledBack"}))),
        Some("retry@1700000000000"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_missing_rollout_is_named_and_nothing_is_written() {
    let e = run(Action::Abort, None, None).await.unwrap_err();
    assert!(matches!(e, OperatorError::NotFound { .. }));
    assert_eq!(
        e.to_string(),
        "rollout shop/web not found; `kubectl get cgr -A` lists the Rollouts"
    );
}

#[tokio::test]
async fn a_meaningless_action_is_refused_with_the_state_and_nothing_is_written() {
    let healthy = rollout(json!({"phase": "Healthy", "stableRevision": "aaa"}));
    let e = run(Action::Promote, Some(healthy.clone()), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot promote shop/web: it is Healthy; there is no step to end (promote acts on a rollout in progress)"
    );
    let e = run(Action::Retry, Some(healthy.clone()), None)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot retry shop/web: it is Healthy"),
        "{e}"
    );
    let e = run(Action::Undo, Some(healthy), None).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("no earlier stable revision is known"),
        "{e}"
    );
    let e = run(
        Action::Promote,
        Some(rollout(json!({"phase": "Aborted"}))),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("`retry` starts the revision again"),
        "{e}"
    );
}

#[test]
fn get_shows_where_the_rollout_is_and_the_evidence_of_the_last_decision() {
    let r: canary_gate::crd::Rollout = serde_json::from_value(rollout(json!({
        "phase": "Holding", "message": "holding at 10%: insufficient traffic", "currentStepIndex": 0,
        "canaryWeight": 10, "stableRevision": "aaa", "canaryRevision": "bbb",
        "traffic": "HTTPRoute web: 10% canary", "stepStartedAt": "2026-12-02T10:00:00Z",
        "conditions": [{"type": "TrafficRouted", "status": "True", "reason": "Applied",
            "message": "HTTPRoute web: 10% canary", "lastTransitionTime": "2026-12-02T10:00:00Z"}],
        "decisions": [{"time": "2026-12-02T10:05:00Z", "step": 0, "weight": 10, "decision": "hold",
            "reason": "error-rate: insufficient traffic", "metrics": [
                {"name": "error-rate", "verdict": "inconclusive", "reason": "insufficient traffic",
                 "eValue": 1.5, "failAt": 40.0, "estimate": 1.25, "estimateLow": 0.5, "estimateHigh": 3.0,
                 "canary": "1/95", "stable": "8/905"}]}]
    })))
    .unwrap();
    let text = render(&r);
    let expected = "\
Name:          web
Namespace:     shop
Target:        Deployment web
Strategy:      canary
Phase:         Holding
Message:       holding at 10%: insufficient traffic
Step:          0 at 10% (steps 0–0, as STEP in kubectl get cgr)
Weight:        10%
Traffic:       HTTPRoute web: 10% canary
Stable:        aaa
Canary:        bbb
Step started:  2026-12-02T10:00:00Z
Conditions:
  TrafficRouted  True  Applied: HTTPRoute web: 10% canary
Decision:      hold at 2026-12-02T10:05:00Z (step 0, 10%): error-rate: insufficient traffic
  METRIC            VERDICT      E-VALUE       ESTIMATE              CANARY          STABLE          REASON
  error-rate        inconclusive 1.5/40        1.25 [0.5, 3]         1/95            8/905           insufficient traffic
";
    assert_eq!(text, expected, "\n{text}");
}

#[test]
fn the_binary_works_as_the_kubectl_plugin_kubectl_canary() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-canary");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_canary-gate"), &plugin).unwrap();
    let help = std::process::Command::new(&plugin)
        .args(["get", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: kubectl-canary get"), "{text}");
    // Without a reachable cluster: a clear error, exit status 1.
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {}}]\n",
    )
    .unwrap();
    let out = std::process::Command::new(&plugin)
        .args(["promote", "web", "-n", "shop"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canary-gate: kubernetes API:") && err.contains("Connection refused"),
        "{err}"
    );
}

#[tokio::test]
async fn list_shows_every_rollouts_phase_step_weight_and_verdict() {
    let (service, mut handle) = tower_test::mock::pair::<HttpRequest<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let (get, send) = handle.next_request().await.expect("a LIST");
        assert_eq!(get.method(), Method::GET);
        assert_eq!(
            get.uri().to_string(),
            "/apis/canarygate.dev/v1alpha1/rollouts?"
        );
        let mut other = rollout(json!({"phase": "Healthy", "canaryWeight": 0,
            "message": "revision abc runs with all traffic"}));
        other["metadata"] = json!({"name": "api", "namespace": "team-b"});
        let list = json!({"apiVersion": "canarygate.dev/v1alpha1", "kind": "RolloutList", "metadata": {},
            "items": [rollout(json!({"phase": "Holding", "currentStepIndex": 0, "canaryWeight": 10,
                "lastDecision": "hold", "message": "holding at 10%: insufficient traffic"})), other]});
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&list).unwrap()))
                .unwrap(),
        );
    });
    let rollouts = tokio::time::timeout(
        Duration::from_secs(5),
        canary_gate::operator::list(&client, None),
    )
    .await
    .unwrap()
    .unwrap();
    server.await.unwrap();
    assert_eq!(
        canary_gate::operator::list_table(&rollouts, true),
        "\
NAMESPACE   NAME   PHASE     STEP   WEIGHT   VERDICT   MESSAGE
shop        web    Holding   0      10%      hold      holding at 10%: insufficient traffic
team-b      api    Healthy   -      0%       -         revision abc runs with all traffic
"
    );
    // One namespace: no namespace column.
    assert!(
        canary_gate::operator::list_table(&rollouts[..1], false)
            .starts_with("NAME   PHASE     STEP   WEIGHT   VERDICT   MESSAGE\nweb ")
    );
}
