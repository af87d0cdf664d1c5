//! Reconcile against kube's mocked API service (tower-test), controller-rs style: each scenario
//! states the exact conversation — method, path with the field manager, and the body the
//! controller sends — and fails on a request that was not expected or one that never came.

mod support;

use std::sync::Arc;
use std::time::Duration;

use canary_gate::controller::analyze::MetricWindows;
use canary_gate::controller::observe::revision;
use canary_gate::controller::reconcile::{Context, reconcile};
use canary_gate::crd::Rollout;
use canary_gate::traffic::workload::{Role, desired};
use http::{Method, Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::client::Body;
use kube::runtime::{reflector, watcher};
use serde_json::{Value, json};
use support::fixtures::{CLEAN, FAILING, RolloutBuilder, ScriptedMetrics, THIN};

const T0: f64 = 1_763_856_000.0;

fn clock() -> f64 {
    T0 + 300.0
}

fn deployment(image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}}}
    }))
    .unwrap()
}

fn rev(image: &str) -> String {
    revision(&deployment(image).spec.unwrap().template)
}

/// The target after adoption: its pods handed over to the workloads (canary-gate's field
/// manager owns its `spec.replicas`).
fn adopted(image: &str) -> Value {
    let mut d = serde_json::to_value(deployment(image)).unwrap();
    d["spec"]["replicas"] = json!(0);
    d["metadata"]["managedFields"] = json!([{"manager": "canary-gate", "operation": "Apply",
        "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
    d
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "canarygate.dev/v1alpha1".into(),
        kind: "Rollout".into(),
        name: "web".into(),
        uid: "u-1".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// A workload as the API server returns it: running `image` with `pods`, all available.
fn workload(role: Role, image: &str, pods: i32) -> Value {
    let template = deployment(image).spec.unwrap().template;
    let mut w = desired(
        &deployment(image),
        "web",
        &owner(),
        role,
        &template,
        &rev(image),
        pods,
    );
    w["metadata"]["namespace"] = json!("shop");
    w["metadata"]["generation"] = json!(2);
    w["status"] = json!({"observedGeneration": 2, "replicas": pods, "updatedReplicas": pods, "availableReplicas": pods});
    w
}

/// The exact workload body canary-gate applies.
fn workload_body(role: Role, image: &str, pods: i32) -> Value {
    let template = deployment(image).spec.unwrap().template;
    desired(
        &deployment(image),
        "web",
        &owner(),
        role,
        &template,
        &rev(image),
        pods,
    )
}

const STABLE: &str = "/apis/apps/v1/namespaces/shop/deployments/web-stable";
const CANARY: &str = "/apis/apps/v1/namespaces/shop/deployments/web-canary";
const STABLE_APPLY: &str =
    "/apis/apps/v1/namespaces/shop/deployments/web-stable?&force=true&fieldManager=canary-gate";
const CANARY_APPLY: &str =
    "/apis/apps/v1/namespaces/shop/deployments/web-canary?&force=true&fieldManager=canary-gate";

/// The reads every reconcile of an adopted target begins with: the target (web:2), the stable
/// workload (web:1 with `stable` pods) and the canary workload (web:2 with `canary` pods, or none).
fn reads(stable: i32, canary: Option<i32>) -> Vec<Expect> {
    vec![
        expect(Method::GET, DEPLOYMENT, |_| {}, adopted("web:2")),
        expect(
            Method::GET,
            STABLE,
            |_| {},
            workload(Role::Stable, "web:1", stable),
        ),
        match canary {
            Some(pods) => expect(
                Method::GET,
                CANARY,
                |_| {},
                workload(Role::Canary, "web:2", pods),
            ),
            None => missing(CANARY, "web-canary"),
        },
    ]
}

fn then(mut first: Vec<Expect>, more: Vec<Expect>) -> Vec<Expect> {
    first.extend(more);
    first
}

/// An exact server-side apply of a workload.
fn applies(path: &'static str, want: Value) -> Expect {
    let response = want.clone();
    expect(
        Method::PATCH,
        path,
        move |body| assert_eq!(body, &want, "{path}"),
        response,
    )
}

/// The Rollout `shop/web` as read, reconciled before (the finalizer is on).
fn rollout(spec: Value, status: Value) -> Rollout {
    RolloutBuilder::new("web")
        .namespace("shop")
        .stored("u-1", 3, "41")
        .finalized()
        .spec(spec)
        .status(status)
        .build()
}

fn canary_spec() -> Value {
    json!({"targetRef": {"name": "web"}, "strategy": {"canary": {
        "analysis": {"templates": [{"templateName": "generic-http"}], "args": [{"name": "service", "value": "web"}]},
        "steps": [{"setWeight": 10}, {"pause": {"duration": "10m"}}]}}})
}

/// One expected request: method, path and query, and a check of its JSON body; the response.
struct Expect {
    method: Method,
    path: String,
    body: Box<dyn Fn(&Value) + Send>,
    response: Value,
    code: u16,
}

fn expect(
    method: Method,
    path: &str,
    body: impl Fn(&Value) + Send + 'static,
    response: Value,
) -> Expect {
    Expect {
        method,
        path: path.to_string(),
        body: Box::new(body),
        response,
        code: 200,
    }
}

/// A GET answered 404 the way the API server answers for a missing object.
fn missing(path: &str, name: &str) -> Expect {
    Expect {
        code: 404,
        ..expect(
            Method::GET,
            path,
            |_| {},
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                "message": format!("\"{name}\" not found"), "details": {"name": name}}),
        )
    }
}

/// Runs one reconcile against a mocked API server that answers `script` in order.
async fn converse(rollout: Rollout, metrics: Arc<dyn MetricWindows>, script: Vec<Expect>) {
    converse_seeing(rollout, metrics, script, None).await;
}

/// [`converse`], with the controller's cache of HorizontalPodAutoscalers holding `autoscalers`.
async fn converse_seeing(
    rollout: Rollout,
    metrics: Arc<dyn MetricWindows>,
    script: Vec<Expect>,
    autoscalers: Option<Vec<HorizontalPodAutoscaler>>,
) {
    let (client, server) = serve(script);
    let mut ctx = Context::new(client, metrics, clock);
    if let Some(hpas) = autoscalers {
        let (store, mut writer) = reflector::store::<HorizontalPodAutoscaler>();
        for hpa in hpas {
            writer.apply_watcher_event(&watcher::Event::Apply(hpa));
        }
        ctx.autoscalers = Some(store);
    }
    let ctx = Arc::new(ctx);
    tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(rollout), ctx))
        .await
        .expect("reconcile finished")
        .expect("reconcile succeeded");
    server.await.expect("the conversation went as scripted");
}

/// A client on a mocked API server that answers `script` in order, then fails the test on any
/// further request; the server's task ends when the conversation is over.
fn serve(script: Vec<Expect>) -> (kube::Client, tokio::task::JoinHandle<()>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        for (i, step) in script.into_iter().enumerate() {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                panic!("request {i} ({} {}) never came", step.method, step.path)
            });
            assert_eq!(request.method(), step.method, "request {i}");
            assert_eq!(request.uri().to_string(), step.path, "request {i}");
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            (step.body)(&body);
            let bytes = match &step.response {
                Value::String(text) => text.clone().into_bytes(),
                other => serde_json::to_vec(other).unwrap(),
            };
            send.send_response(
                Response::builder()
                    .status(step.code)
                    .body(Body::from(bytes))
                    .unwrap(),
            );
        }
        // Nothing else may be asked (the client may also just be gone).
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!(
                "an unexpected extra request: {} {}",
                request.method(),
                request.uri()
            );
        }
    });
    (client, server)
}

const STATUS_PATCH: &str = "/apis/canarygate.dev/v1alpha1/namespaces/shop/rollouts/web/status?&force=true&fieldManager=canary-gate-status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events?";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/web";

fn event_with(reason: &'static str, kind: &'static str) -> impl Fn(&Value) + Send {
    move |body: &Value| {
        assert_eq!(body["reason"], reason, "{body}");
        assert_eq!(body["type"], kind, "{body}");
        assert_eq!(body["regarding"]["name"], "web");
        assert_eq!(body["reportingController"], "canary-gate");
    }
}

#[tokio::test]
async fn the_first_reconcile_of_a_new_revision_starts_step_zero() {
    let old = revision(&deployment("web:1").spec.unwrap().template);
    let rollout = rollout(
        canary_spec(),
        json!({"phase": "Healthy", "stableRevision": old, "replicas": 10}),
    );
    let new = revision(&deployment("web:2").spec.unwrap().template);
    let expected_revision = new.clone();
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(FAILING)),
        then(
            reads(10, None),
            vec![
                // The stable keeps its 10 pods (no write) until the canary's pod is available;
                // only then does step 0's weight come into force.
                applies(CANARY_APPLY, workload_body(Role::Canary, "web:2", 1)),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    move |body| {
                        assert_eq!(body["apiVersion"], "canarygate.dev/v1alpha1");
                        assert_eq!(body["kind"], "Rollout");
                        let s = &body["status"];
                        assert_eq!(s["phase"], "Progressing", "{body}");
                        assert_eq!(s["canaryRevision"], expected_revision.as_str());
                        assert_eq!(
                            (s["currentStepIndex"].as_i64(), s["canaryWeight"].as_i64()),
                            (Some(0), Some(0))
                        );
                        assert_eq!(s["stepStartedAt"], Value::Null);
                        assert_eq!(s["waitingSince"], "2025-11-23T00:05:00Z");
                        assert_eq!(
                            s["message"],
                            "step 0 (10%) waits for web-canary: 0/1 available"
                        );
                        assert!(
                            s["conditions"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|c| c["type"] == "CanaryAvailable"
                                    && c["status"] == "False"
                                    && c["reason"] == "WaitingForPods"),
                            "{body}"
                        );
                        assert_eq!(s["startedAt"], "2025-11-23T00:05:00Z");
                        assert_eq!(s["observedGeneration"], 3);
                        assert!(
                            s["conditions"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|c| c["type"] == "Progressing" && c["status"] == "True")
                        );
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("RolloutStarted", "Normal"),
                    json!({}),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("WaitingForPods", "Normal"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn the_step_weight_comes_into_force_once_the_canary_pod_is_available() {
    let rollout = rollout(
        canary_spec(),
        json!({"phase": "Progressing", "stableRevision": rev("web:1"), "canaryRevision": rev("web:2"),
            "replicas": 10, "canaryWeight": 0, "currentStepIndex": 0,
            "startedAt": "2025-11-23T00:04:00Z", "waitingSince": "2025-11-23T00:04:00Z"}),
    );
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(10, Some(1)),
            vec![
                expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
                // Now the stable gives up the pod the canary took over.
                applies(STABLE_APPLY, workload_body(Role::Stable, "web:1", 9)),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (s["phase"].as_str(), s["canaryWeight"].as_i64()),
                            (Some("Progressing"), Some(10)),
                            "{body}"
                        );
                        assert_eq!(s["stepStartedAt"], "2025-11-23T00:05:00Z");
                        assert_eq!(s["waitingSince"], Value::Null);
                        assert_eq!(
                            s["stepHistory"],
                            json!([{"step": 0, "startedAt": "2025-11-23T00:05:00Z"}])
                        );
                        assert!(
                            s["conditions"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|c| c["type"] == "CanaryAvailable" && c["status"] == "True"),
                            "{body}"
                        );
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("StepAdvanced", "Normal"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn a_failing_analysis_rolls_back_with_the_evidence() {
    let canary = revision(&deployment("web:2").spec.unwrap().template);
    let status = json!({"phase": "Progressing", "stableRevision": rev("web:1"), "canaryRevision": canary, "replicas": 10,
        "startedAt": "2025-11-23T00:00:00Z", "stepStartedAt": "2025-11-23T00:00:00Z", "currentStepIndex": 0,
        "stepHistory": [{"step": 0, "startedAt": "2025-11-23T00:00:00Z"}]});
    let rollout = rollout(canary_spec(), status);
    let template = canary_gate::template::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analysis-templates/generic-http.yaml"
    )))
    .unwrap();
    let template_object = json!({"apiVersion": "canarygate.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "generic-http", "namespace": "shop"}, "spec": template.file.spec});
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(FAILING)),
        then(
            reads(9, Some(1)),
            vec![
                expect(
                    Method::GET,
                    "/apis/canarygate.dev/v1alpha1/namespaces/shop/analysistemplates/generic-http",
                    |_| {},
                    template_object,
                ),
                applies(STABLE_APPLY, workload_body(Role::Stable, "web:1", 10)),
                applies(CANARY_APPLY, workload_body(Role::Canary, "web:2", 0)),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (s["phase"].as_str(), s["canaryWeight"].as_i64()),
                            (Some("RolledBack"), Some(0)),
                            "{body}"
                        );
                        let last = s["decisions"].as_array().unwrap().last().unwrap();
                        assert_eq!(last["decision"], "rollback");
                        let errors = last["metrics"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|m| m["name"] == "error-rate")
                            .unwrap();
                        assert_eq!(errors["verdict"], "fail");
                        assert!(
                            errors["eValue"].as_f64().unwrap()
                                >= errors["failAt"].as_f64().unwrap()
                        );
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("RolledBack", "Warning"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

/// A Rollout with `spec` is Degraded with an `InvalidSpec` condition and a Warning Event, its
/// message holding each of `expected`; nothing else is written.
async fn invalid_spec_is_reported(spec: Value, expected: &'static [&'static str]) {
    let rollout = rollout(spec, json!({}));
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(FAILING)),
        vec![
            expect(
                Method::PATCH,
                STATUS_PATCH,
                move |body| {
                    let s = &body["status"];
                    assert_eq!(s["phase"], "Degraded");
                    let message = s["message"].as_str().unwrap();
                    assert!(expected.iter().all(|e| message.contains(e)), "{body}");
                    assert!(
                        s["conditions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|c| c["type"] == "InvalidSpec" && c["status"] == "True")
                    );
                },
                serde_json::to_value(&rollout).unwrap(),
            ),
            expect(
                Method::POST,
                EVENTS,
                event_with("InvalidSpec", "Warning"),
                json!({}),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_invalid_spec_gets_a_clear_status_without_touching_anything_else() {
    invalid_spec_is_reported(
        json!({"targetRef": {"name": "web"}, "strategy": {"canary": {"steps": [{"setWeight": 150}]}}}),
        &["spec.strategy.canary.steps[0].setWeight: is 150"],
    )
    .await;
}

/// The trigger stream ignores the controller's own status writes, so a later pass reads the
/// Rollout from a watch cache that may not show the write yet: that pass must not decide again
/// from the older status (nor touch the API server) — it looks again in a second.
#[tokio::test]
async fn a_pass_that_reads_the_version_it_wrote_over_waits_for_the_watch_cache() {
    let read = rollout(
        json!({"targetRef": {"name": "web"}, "strategy": {"canary": {"steps": [{"setWeight": 150}]}}}),
        json!({}),
    );
    let mut written = serde_json::to_value(&read).unwrap();
    written["metadata"]["resourceVersion"] = json!("42");
    let (client, server) = serve(vec![
        expect(Method::PATCH, STATUS_PATCH, |_| {}, written.clone()),
        expect(
            Method::POST,
            EVENTS,
            event_with("InvalidSpec", "Warning"),
            json!({}),
        ),
    ]);
    let ctx = Arc::new(Context::new(
        client,
        Arc::new(ScriptedMetrics::new(FAILING)),
        clock,
    ));
    let pass = |rollout: &Rollout| {
        tokio::time::timeout(
            Duration::from_secs(5),
            reconcile(Arc::new(rollout.clone()), ctx.clone()),
        )
    };
    // The write: then one more pass in a second (the one its watch event used to cause).
    let first = pass(&read).await.unwrap().unwrap();
    assert_eq!(first, Some(Duration::from_secs(1)));
    assert_eq!(ctx.writes.len(), 1);
    // The cache still shows resourceVersion 41: no request, look again in a second.
    let stale = pass(&read).await.unwrap().unwrap();
    assert_eq!(stale, Some(Duration::from_secs(1)));
    server.await.expect("the conversation went as scripted");
    assert_eq!(ctx.writes.len(), 1, "still waiting for the cache");
}

#[tokio::test]
async fn a_power_check_goal_out_of_range_is_an_invalid_spec_naming_the_field() {
    invalid_spec_is_reported(
        json!({"targetRef": {"name": "web"}, "strategy": {"canary": {
            "steps": [{"setWeight": 10}, {"pause": {"duration": "5m"}}],
            "powerCheck": {"effect": "+1pt", "power": 1.5}}}}),
        &[
            "spec.strategy.canary.powerCheck.power: is 1.5",
            "between 0.5 and 0.99",
        ],
    )
    .await;
}

fn template_object() -> Value {
    let template = canary_gate::template::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analysis-templates/generic-http.yaml"
    )))
    .unwrap();
    json!({"apiVersion": "canarygate.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "generic-http", "namespace": "shop"}, "spec": template.file.spec})
}

const TEMPLATE_GET: &str =
    "/apis/canarygate.dev/v1alpha1/namespaces/shop/analysistemplates/generic-http";

/// Status of a rollout of web:2 at `step`, begun at T0, the step begun at `step_started`.
fn rolling(step: i64, step_started: &str, phase: &str) -> Value {
    let canary = revision(&deployment("web:2").spec.unwrap().template);
    // The weight in force: the steps' 10 % then 50 %.
    let weight = if step == 0 { 10 } else { 50 };
    json!({"phase": phase, "stableRevision": rev("web:1"), "canaryRevision": canary, "replicas": 10,
        "canaryWeight": weight,
        "startedAt": "2025-11-23T00:00:00Z", "stepStartedAt": step_started, "currentStepIndex": step,
        "stepHistory": [{"step": 0, "startedAt": "2025-11-23T00:00:00Z"}]})
}

fn two_steps() -> Value {
    json!({"targetRef": {"name": "web"}, "strategy": {"canary": {
        "analysis": {"templates": [{"templateName": "generic-http"}], "args": [{"name": "service", "value": "web"}]},
        "steps": [{"setWeight": 10}, {"pause": {"duration": "2m"}}, {"setWeight": 50}, {"pause": {"duration": "2m"}}]}}})
}

#[tokio::test]
async fn a_passing_step_advances_and_its_weight_waits_for_the_canary_pods() {
    let rollout = rollout(
        two_steps(),
        rolling(0, "2025-11-23T00:00:00Z", "Progressing"),
    );
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(9, Some(1)),
            vec![
                expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
                // Step 1 (50 %) needs 5 canary pods: the canary gets them, the stable keeps its
                // 9 (no write) and 10 % stays in force until they are available.
                applies(CANARY_APPLY, workload_body(Role::Canary, "web:2", 5)),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (s["currentStepIndex"].as_i64(), s["canaryWeight"].as_i64()),
                            (Some(1), Some(10)),
                            "{body}"
                        );
                        assert_eq!(s["stepStartedAt"], Value::Null);
                        assert_eq!(s["waitingSince"], "2025-11-23T00:05:00Z");
                        assert_eq!(s["stepHistory"].as_array().unwrap().len(), 1);
                        assert_eq!(s["lastDecision"], "continue");
                        assert_eq!(
                            s["message"],
                            "step 1 (50%) waits for web-canary: 1/5 available"
                        );
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("WaitingForPods", "Normal"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn thin_traffic_holds_at_the_current_weight() {
    let rollout = rollout(
        two_steps(),
        rolling(0, "2025-11-23T00:00:00Z", "Progressing"),
    );
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(THIN)),
        then(
            reads(9, Some(1)),
            vec![
                expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (
                                s["phase"].as_str(),
                                s["currentStepIndex"].as_i64(),
                                s["canaryWeight"].as_i64()
                            ),
                            (Some("Holding"), Some(0), Some(10)),
                            "{body}"
                        );
                        assert!(
                            s["message"]
                                .as_str()
                                .unwrap()
                                .contains("insufficient traffic"),
                            "{body}"
                        );
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("Holding", "Normal"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn a_manual_pause_waits_and_a_human_promote_resumes_it() {
    let spec = json!({"targetRef": {"name": "web"}, "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}}});
    // Without an action: it stays paused at 10 % however long it waited (no Event).
    let waiting = rollout(spec.clone(), rolling(0, "2025-11-23T00:00:00Z", "Paused"));
    converse(
        waiting.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(9, Some(1)),
            vec![expect(
                Method::PATCH,
                STATUS_PATCH,
                |body| {
                    let s = &body["status"];
                    assert_eq!(
                        (
                            s["phase"].as_str(),
                            s["currentStepIndex"].as_i64(),
                            s["canaryWeight"].as_i64()
                        ),
                        (Some("Paused"), Some(0), Some(10)),
                        "{body}"
                    );
                    assert!(
                        s["conditions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|c| c["type"] == "Paused" && c["status"] == "True")
                    );
                    assert!(s.get("handledAction").is_none());
                },
                serde_json::to_value(&waiting).unwrap(),
            )],
        ),
    )
    .await;
    // With `canarygate.dev/action: promote@1`: the last step ends and the canary is promoted.
    let mut asked = waiting;
    asked.metadata.annotations =
        Some([("canarygate.dev/action".to_string(), "promote@1".to_string())].into());
    converse(
        asked.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(9, Some(1)),
            vec![
                // All traffic moves to the canary only once it has all 10 pods available: it
                // gets them first; the stable keeps web:1 (no write) and 90 % meanwhile.
                applies(CANARY_APPLY, workload_body(Role::Canary, "web:2", 10)),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (s["phase"].as_str(), s["canaryWeight"].as_i64()),
                            (Some("Promoting"), Some(10)),
                            "{body}"
                        );
                        assert_eq!(s["waitingSince"], "2025-11-23T00:05:00Z");
                        assert_eq!(s["handledAction"], "promote@1");
                        assert!(
                            s["conditions"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|c| c["type"] == "ActionApplied"
                                    && c["status"] == "True"
                                    && c["message"] == "promote: step 0 ended"),
                            "{body}"
                        );
                    },
                    serde_json::to_value(&asked).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("ResumedByHuman", "Normal"),
                    json!({}),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("Promoting", "Normal"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn a_restart_mid_step_resumes_without_repeating_work() {
    // A new controller finds step 1 begun at 00:04 (one minute ago): no new step, no Events,
    // the step's start kept; only the fresh verdict is recorded.
    let mut status = rolling(1, "2025-11-23T00:04:00Z", "Progressing");
    status["stepHistory"] = json!([{"step": 0, "startedAt": "2025-11-23T00:00:00Z"}, {"step": 1, "startedAt": "2025-11-23T00:04:00Z"}]);
    let rollout = rollout(two_steps(), status);
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(5, Some(5)),
            vec![
                expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (s["currentStepIndex"].as_i64(), s["stepStartedAt"].as_str()),
                            (Some(1), Some("2025-11-23T00:04:00Z")),
                            "{body}"
                        );
                        assert_eq!(s["stepHistory"].as_array().unwrap().len(), 2);
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn undo_puts_the_stable_template_back_and_sends_traffic_to_stable() {
    let stable = revision(&deployment("web:1").spec.unwrap().template);
    let mut status = rolling(0, "2025-11-23T00:00:00Z", "Progressing");
    status["stableRevision"] = json!(stable);
    let mut rollout = rollout(two_steps(), status);
    rollout.metadata.annotations =
        Some([("canarygate.dev/action".to_string(), "undo@1".to_string())].into());
    // The ReplicaSet the Deployment controller made for web:1, with its pod-template-hash label.
    let mut old_rs_template =
        serde_json::to_value(deployment("web:1").spec.unwrap().template).unwrap();
    old_rs_template["metadata"]["labels"]["pod-template-hash"] = json!("5d4f8c");
    let replicasets = json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": [
        {"metadata": {"name": "web-5d4f8c", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-1"}]},
         "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": old_rs_template}},
        {"metadata": {"name": "other-1", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "other", "uid": "d-2"}]},
         "spec": {"selector": {"matchLabels": {"app": "other"}}, "template": serde_json::to_value(deployment("web:1").spec.unwrap().template).unwrap()}}
    ]});
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(9, Some(1)),
            vec![
                applies(STABLE_APPLY, workload_body(Role::Stable, "web:1", 10)),
                applies(CANARY_APPLY, workload_body(Role::Canary, "web:2", 0)),
                expect(
                    Method::GET,
                    "/apis/apps/v1/namespaces/shop/replicasets?",
                    |_| {},
                    replicasets,
                ),
                expect(
                    Method::PUT,
                    "/apis/apps/v1/namespaces/shop/deployments/web?",
                    |body| {
                        let template = &body["spec"]["template"];
                        assert_eq!(
                            template["spec"]["containers"][0]["image"], "web:1",
                            "{body}"
                        );
                        assert!(
                            template["metadata"]["labels"]
                                .get("pod-template-hash")
                                .is_none(),
                            "{body}"
                        );
                        // The target read carries canary-gate's entry only (as the watch cache
                        // keeps it): sent back, it would replace every other manager's.
                        assert!(
                            body["metadata"].get("managedFields").is_none(),
                            "an update must not carry a partial managedFields list: {body}"
                        );
                    },
                    serde_json::to_value(deployment("web:1")).unwrap(),
                ),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (s["phase"].as_str(), s["canaryWeight"].as_i64()),
                            (Some("Aborted"), Some(0)),
                            "{body}"
                        );
                        assert_eq!(s["handledAction"], "undo@1");
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("RolloutUndone", "Warning"),
                    json!({}),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("DeploymentReverted", "Normal"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn adoption_creates_the_stable_workload_then_hands_the_targets_pods_over() {
    let mut target = serde_json::to_value(deployment("web:1")).unwrap();
    target["spec"]["replicas"] = json!(4);
    // First sight: the running revision becomes stable; its workload is created with the
    // target's 4 pods, and the target keeps its pods until that workload is available.
    let first = rollout(canary_spec(), json!({}));
    converse(
        first.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        vec![
            expect(Method::GET, DEPLOYMENT, |_| {}, target.clone()),
            missing(STABLE, "web-stable"),
            missing(CANARY, "web-canary"),
            applies(STABLE_APPLY, workload_body(Role::Stable, "web:1", 4)),
            expect(
                Method::PATCH,
                STATUS_PATCH,
                |body| {
                    let s = &body["status"];
                    assert_eq!(s["phase"], "Healthy", "{body}");
                    assert_eq!(s["replicas"], 4);
                    assert_eq!(s["traffic"], "replica ratio: 4 stable, 0 canary pods");
                },
                serde_json::to_value(&first).unwrap(),
            ),
            expect(
                Method::POST,
                EVENTS,
                event_with("Adopted", "Normal"),
                json!({}),
            ),
        ],
    )
    .await;
    // The stable workload is available: the target is scaled to zero (only spec.replicas, with
    // canary-gate's field manager); the stable workload already holds what it should.
    let second = rollout(
        canary_spec(),
        json!({"phase": "Healthy", "stableRevision": rev("web:1"), "replicas": 4, "canaryWeight": 0}),
    );
    converse(
        second.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        vec![
            expect(Method::GET, DEPLOYMENT, |_| {}, target.clone()),
            expect(
                Method::GET,
                STABLE,
                |_| {},
                workload(Role::Stable, "web:1", 4),
            ),
            missing(CANARY, "web-canary"),
            expect(
                Method::PATCH,
                "/apis/apps/v1/namespaces/shop/deployments/web?&force=true&fieldManager=canary-gate",
                |body| {
                    assert_eq!(
                        body,
                        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web"}, "spec": {"replicas": 0}})
                    );
                },
                adopted("web:1"),
            ),
            expect(
                Method::PATCH,
                STATUS_PATCH,
                |body| {
                    let s = &body["status"];
                    assert_eq!(
                        (s["phase"].as_str(), s["replicas"].as_i64()),
                        (Some("Healthy"), Some(4)),
                        "{body}"
                    );
                },
                serde_json::to_value(&second).unwrap(),
            ),
            expect(
                Method::POST,
                EVENTS,
                event_with("WorkloadAdopted", "Normal"),
                json!({}),
            ),
        ],
    )
    .await;
}

fn istio_spec() -> Value {
    json!({"targetRef": {"name": "web"},
        "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {"duration": "10m"}}]}},
        "trafficRouting": {"istio": {"virtualService": "web", "destinationRule": "web"}}})
}

const DESTINATION_RULE: &str =
    "/apis/networking.istio.io/v1beta1/namespaces/shop/destinationrules/web";

#[tokio::test]
async fn a_router_crd_that_is_not_installed_is_a_condition_not_a_failure() {
    let rollout = rollout(
        istio_spec(),
        rolling(0, "2025-11-23T00:00:00Z", "Progressing"),
    );
    // A group the API server does not serve answers a plain-text 404.
    let not_served = Expect {
        code: 404,
        ..expect(
            Method::GET,
            DESTINATION_RULE,
            |_| {},
            json!("404 page not found"),
        )
    };
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(10, Some(1)),
            vec![
                not_served,
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(s["phase"], "Progressing", "{body}");
                        let c = s["conditions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|c| c["type"] == "TrafficRouted")
                            .unwrap();
                        assert_eq!(
                            (c["status"].as_str(), c["reason"].as_str()),
                            (Some("False"), Some("RouterNotInstalled"))
                        );
                        assert_eq!(
                            c["message"],
                            "the API server does not serve DestinationRule (networking.istio.io/v1beta1); install the CRD destinationrules.networking.istio.io"
                        );
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("RouterNotInstalled", "Warning"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn a_missing_router_object_is_named_in_the_condition() {
    let rollout = rollout(
        istio_spec(),
        rolling(0, "2025-11-23T00:00:00Z", "Progressing"),
    );
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(10, Some(1)),
            vec![
                missing(DESTINATION_RULE, "web"),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let c = body["status"]["conditions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|c| c["type"] == "TrafficRouted")
                            .unwrap()
                            .clone();
                        assert_eq!(c["reason"], "RouterObjectMissing", "{body}");
                        assert_eq!(
                            c["message"],
                            "DestinationRule web not found in namespace shop; create it or fix spec.trafficRouting"
                        );
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("RouterObjectMissing", "Warning"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn a_rollout_without_the_finalizer_gets_it_guarded_by_its_resource_version() {
    let mut fresh = rollout(
        json!({"targetRef": {"name": "web"}, "strategy": {"canary": {"steps": [{"setWeight": 150}]}}}),
        json!({"phase": "Degraded"}),
    );
    fresh.metadata.finalizers = None;
    converse(
        fresh.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        vec![
            expect(
                Method::PATCH,
                "/apis/canarygate.dev/v1alpha1/namespaces/shop/rollouts/web?",
                |body| {
                    assert_eq!(
                        body,
                        &json!([
                            {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
                            {"op": "add", "path": "/metadata/finalizers", "value": ["canarygate.dev/release"]}
                        ])
                    );
                },
                serde_json::to_value(&fresh).unwrap(),
            ),
            expect(Method::PATCH, STATUS_PATCH, |_| {}, serde_json::to_value(&fresh).unwrap()),
            expect(Method::POST, EVENTS, event_with("InvalidSpec", "Warning"), json!({})),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_deleted_rollout_gives_the_deployment_its_pods_back_then_lets_go() {
    let mut deleted = rollout(
        two_steps(),
        rolling(0, "2025-11-23T00:00:00Z", "Progressing"),
    );
    deleted.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2025-11-23T00:04:00Z".parse().unwrap(),
        ));
    converse(
        deleted.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        vec![
            expect(Method::GET, DEPLOYMENT, |_| {}, adopted("web:2")),
            expect(
                Method::PATCH,
                "/apis/apps/v1/namespaces/shop/deployments/web?&force=true&fieldManager=canary-gate",
                |body| {
                    assert_eq!(
                        body,
                        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web"}, "spec": {"replicas": 10}})
                    );
                },
                serde_json::to_value(deployment("web:2")).unwrap(),
            ),
            expect(Method::POST, EVENTS, event_with("Released", "Normal"), json!({})),
            expect(
                Method::PATCH,
                "/apis/canarygate.dev/v1alpha1/namespaces/shop/rollouts/web?",
                |body| {
                    assert_eq!(
                        body,
                        &json!([
                            {"op": "test", "path": "/metadata/finalizers/0", "value": "canarygate.dev/release"},
                            {"op": "remove", "path": "/metadata/finalizers/0"}
                        ])
                    );
                },
                serde_json::to_value(&deleted).unwrap(),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_human_scaling_the_deployment_to_zero_scales_the_application_to_zero() {
    // `kubectl scale --replicas 0` takes spec.replicas from canary-gate's field manager: that 0
    // is the new total, not the hand-over.
    let mut target = serde_json::to_value(deployment("web:1")).unwrap();
    target["spec"]["replicas"] = json!(0);
    let healthy = rollout(
        canary_spec(),
        json!({"phase": "Healthy", "stableRevision": rev("web:1"), "replicas": 10, "canaryWeight": 0}),
    );
    converse(
        healthy.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        vec![
            expect(Method::GET, DEPLOYMENT, |_| {}, target),
            expect(
                Method::GET,
                STABLE,
                |_| {},
                workload(Role::Stable, "web:1", 10),
            ),
            missing(CANARY, "web-canary"),
            applies(STABLE_APPLY, workload_body(Role::Stable, "web:1", 0)),
            expect(
                Method::PATCH,
                STATUS_PATCH,
                |body| assert_eq!(body["status"]["replicas"], 0, "{body}"),
                serde_json::to_value(&healthy).unwrap(),
            ),
        ],
    )
    .await;
}

/// One misbehaving Prometheus answer for every query (`None`: nothing listens).
struct Fault {
    name: &'static str,
    answer: Option<wiremock::ResponseTemplate>,
    /// The request fails (an outage: held, then the template's policy) rather than returning
    /// unusable numbers (no data: held by the judge).
    outage: bool,
    /// What the MetricsAvailable condition's message must mention.
    says: &'static str,
}

fn matrix(values: &str) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"version":"stable"}},"values":{values}}},{{"metric":{{"version":"canary"}},"values":{values}}}]}}}}"#
    )
}

fn faults() -> Vec<Fault> {
    use wiremock::ResponseTemplate;
    let json = |body: String| ResponseTemplate::new(200).set_body_raw(body, "application/json");
    // The window holds the five minutes after T0.
    let nan: Vec<String> = (1..=5)
        .map(|k| format!(r#"[{},"NaN"]"#, T0 as u64 + 60 * k))
        .collect();
    vec![
        Fault {
            name: "unreachable",
            answer: None,
            outage: true,
            says: "127.0.0.1",
        },
        Fault {
            name: "5xx burst",
            answer: Some(ResponseTemplate::new(503).set_body_string("overloaded")),
            outage: true,
            says: "503",
        },
        Fault {
            name: "garbage JSON",
            answer: Some(json("<html>proxy error</html>".into())),
            outage: true,
            says: "query.errors",
        },
        Fault {
            name: "slower than the timeout",
            answer: Some(json(matrix("[]")).set_delay(Duration::from_secs(2))),
            outage: true,
            says: "timed out",
        },
        Fault {
            name: "stale series",
            answer: Some(json(matrix(&format!(r#"[[{},"5"]]"#, T0 as u64 - 3600)))),
            outage: true,
            says: "stale",
        },
        Fault {
            name: "NaN",
            answer: Some(json(matrix(&format!("[{}]", nan.join(","))))),
            outage: false,
            says: "NaN",
        },
        Fault {
            name: "empty result",
            answer: Some(json(
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#.into(),
            )),
            outage: false,
            says: "no series",
        },
    ]
}

#[tokio::test]
async fn every_prometheus_fault_holds_the_step_with_the_right_condition_and_never_advances() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    for fault in faults() {
        let server = wiremock::MockServer::start().await;
        let url = match fault.answer {
            Some(answer) => {
                wiremock::Mock::given(wiremock::matchers::path("/api/v1/query_range"))
                    .respond_with(answer)
                    .mount(&server)
                    .await;
                server.uri()
            }
            None => {
                let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                format!("http://{}", free.local_addr().unwrap())
            }
        };
        let mut config = canary_gate::metrics::prometheus::PrometheusConfig::new(url);
        config.timeout = Duration::from_millis(300);
        config.retries = 1;
        config.backoff = Duration::from_millis(10);
        let prometheus = canary_gate::metrics::prometheus::Prometheus::new(config).unwrap();
        let rollout = rollout(
            two_steps(),
            rolling(0, "2025-11-23T00:00:00Z", "Progressing"),
        );
        let (name, outage, says) = (fault.name, fault.outage, fault.says);
        let mut events = vec![];
        if outage {
            events.push(expect(
                Method::POST,
                EVENTS,
                event_with("MetricsUnavailable", "Warning"),
                json!({}),
            ));
        }
        events.push(expect(
            Method::POST,
            EVENTS,
            event_with("Holding", "Normal"),
            json!({}),
        ));
        let mut script = vec![
            expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
            expect(
                Method::PATCH,
                STATUS_PATCH,
                move |body| {
                    let s = &body["status"];
                    // The step's pause is over, yet it holds at 10 %: never advance on bad data.
                    assert_eq!(
                        (
                            s["phase"].as_str(),
                            s["currentStepIndex"].as_i64(),
                            s["canaryWeight"].as_i64()
                        ),
                        (Some("Holding"), Some(0), Some(10)),
                        "{name}: {body}"
                    );
                    let c = s["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|c| c["type"] == "MetricsAvailable")
                        .unwrap()
                        .clone();
                    let reason = if outage {
                        "MetricsUnavailable"
                    } else {
                        "NoData"
                    };
                    assert_eq!(
                        (c["status"].as_str(), c["reason"].as_str()),
                        (Some("False"), Some(reason)),
                        "{name}: {c}"
                    );
                    let message = c["message"].as_str().unwrap();
                    assert!(message.contains(says), "{name}: {message}");
                    if outage {
                        // Since this reconcile, naming where the failing query is.
                        assert_eq!(
                            s["metricsUnavailableSince"], "2025-11-23T00:05:00Z",
                            "{name}"
                        );
                        assert!(
                            message.starts_with(
                                "template generic-http: metric \"error-rate\", query."
                            ),
                            "{name}: {message}"
                        );
                    } else {
                        assert!(s["metricsUnavailableSince"].is_null(), "{name}: {body}");
                    }
                },
                serde_json::to_value(&rollout).unwrap(),
            ),
        ];
        script.extend(events);
        converse(
            rollout.clone(),
            Arc::new(canary_gate::controller::analyze::PrometheusWindows(
                prometheus,
            )),
            then(reads(9, Some(1)), script),
        )
        .await;
    }
}

#[tokio::test]
async fn a_deleted_target_deployment_is_a_degraded_status_and_nothing_else_is_touched() {
    let rollout = rollout(
        two_steps(),
        rolling(0, "2025-11-23T00:00:00Z", "Progressing"),
    );
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        vec![
            missing(DEPLOYMENT, "web"),
            expect(
                Method::PATCH,
                STATUS_PATCH,
                |body| {
                    let s = &body["status"];
                    assert_eq!(s["phase"], "Degraded", "{body}");
                    assert_eq!(s["message"], "target Deployment shop/web not found");
                    // Where the rollout stood is kept for when the Deployment is back.
                    assert_eq!(
                        (s["currentStepIndex"].as_i64(), s["canaryWeight"].as_i64()),
                        (Some(0), Some(10))
                    );
                    assert_eq!(s["startedAt"], "2025-11-23T00:00:00Z");
                },
                serde_json::to_value(&rollout).unwrap(),
            ),
            expect(
                Method::POST,
                EVENTS,
                event_with("TargetMissing", "Warning"),
                json!({}),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_canary_past_its_progress_deadline_rolls_back_naming_the_pods_reasons() {
    let mut spec = canary_spec();
    spec["progressDeadline"] = json!("5m");
    let rollout = rollout(
        spec,
        json!({"phase": "Progressing", "stableRevision": rev("web:1"), "canaryRevision": rev("web:2"),
            "replicas": 10, "canaryWeight": 0, "currentStepIndex": 0,
            "startedAt": "2025-11-23T00:00:00Z", "waitingSince": "2025-11-23T00:00:00Z"}),
    );
    // The canary's one pod never becomes available; its Deployment says so, its pod says why.
    let mut canary = workload(Role::Canary, "web:2", 1);
    canary["status"] = json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
        "unavailableReplicas": 1, "conditions": [{"type": "Available", "status": "False",
        "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."}]});
    let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        {"metadata": {"name": "web-canary-7d9-x1", "namespace": "shop"},
         "status": {"phase": "Running", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 5,
            "image": "web:2", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff",
            "message": "back-off 2m40s restarting failed container=web"}},
            "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}}]});
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        vec![
            expect(Method::GET, DEPLOYMENT, |_| {}, adopted("web:2")),
            expect(
                Method::GET,
                STABLE,
                |_| {},
                workload(Role::Stable, "web:1", 10),
            ),
            expect(Method::GET, CANARY, |_| {}, canary),
            expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
            // Read once, at the deadline: the pods of the canary workload, by its selector.
            expect(
                Method::GET,
                "/api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb%2Ccanarygate.dev%2Fversion%3Dcanary",
                |_| {},
                pods,
            ),
            applies(CANARY_APPLY, workload_body(Role::Canary, "web:2", 0)),
            expect(
                Method::PATCH,
                STATUS_PATCH,
                |body| {
                    let s = &body["status"];
                    assert_eq!(
                        (s["phase"].as_str(), s["canaryWeight"].as_i64()),
                        (Some("RolledBack"), Some(0)),
                        "{body}"
                    );
                    let progressing = s["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|c| c["type"] == "Progressing")
                        .unwrap();
                    assert_eq!(progressing["status"], "False");
                    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
                    assert_eq!(
                        progressing["message"],
                        "progress deadline 5m passed: web-canary: 0/1 available (MinimumReplicasUnavailable: Deployment does not have minimum availability.; 1 pod: CrashLoopBackOff (container web), last exit 2 Error: back-off 2m40s restarting failed container=web)"
                    );
                },
                serde_json::to_value(&rollout).unwrap(),
            ),
            expect(
                Method::POST,
                EVENTS,
                event_with("ProgressDeadlineExceeded", "Warning"),
                json!({}),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_hpa_scaling_the_target_deployment_is_a_condition_with_the_fix_and_one_warning() {
    let rollout = rollout(
        canary_spec(),
        json!({"phase": "Healthy", "stableRevision": rev("web:2"), "replicas": 10, "canaryWeight": 0}),
    );
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"minReplicas": 2, "maxReplicas": 20,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}
    }))
    .unwrap();
    let on_rollout: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"maxReplicas": 20,
            "scaleTargetRef": {"apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "name": "api"}}
    }))
    .unwrap();
    converse_seeing(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        vec![
            expect(Method::GET, DEPLOYMENT, |_| {}, adopted("web:2")),
            expect(
                Method::GET,
                STABLE,
                |_| {},
                workload(Role::Stable, "web:2", 10),
            ),
            missing(CANARY, "web-canary"),
            expect(
                Method::PATCH,
                STATUS_PATCH,
                |body| {
                    let s = &body["status"];
                    assert_eq!(s["phase"], "Healthy", "{body}");
                    assert_eq!(s["selector"], "app=web");
                    let c = s["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|c| c["type"] == "AutoscalerConflict")
                        .unwrap();
                    assert_eq!((c["status"].as_str(), c["reason"].as_str()), (Some("True"), Some("HPATargetsDeployment")));
                    assert!(
                        c["message"].as_str().unwrap().contains(
                            "point its scaleTargetRef at the Rollout instead (apiVersion: canarygate.dev/v1alpha1, kind: Rollout, name: web)"
                        ),
                        "{c}"
                    );
                },
                serde_json::to_value(&rollout).unwrap(),
            ),
            expect(
                Method::POST,
                EVENTS,
                event_with("AutoscalerConflict", "Warning"),
                json!({}),
            ),
        ],
        Some(vec![hpa, on_rollout]),
    )
    .await;
}

#[tokio::test]
async fn undo_of_a_rolled_back_rollout_reverts_the_deployment_or_says_why_it_cannot() {
    let mut status = rolling(0, "2025-11-23T00:00:00Z", "RolledBack");
    status["canaryWeight"] = json!(0);
    let mut rollout = rollout(two_steps(), status);
    rollout.metadata.annotations =
        Some([("canarygate.dev/action".to_string(), "undo@1".to_string())].into());
    // No ReplicaSet holds web:1 any more: the undo cannot be carried out, and the status says so.
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(10, Some(0)),
            vec![
                expect(
                    Method::GET,
                    "/apis/apps/v1/namespaces/shop/replicasets?",
                    |_| {},
                    json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": []}),
                ),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(s["handledAction"], "undo@1", "{body}");
                        let c = s["conditions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|c| c["type"] == "ActionApplied")
                            .unwrap();
                        assert_eq!(
                            (c["status"].as_str(), c["reason"].as_str()),
                            (Some("False"), Some("UndoImpossible")),
                            "{c}"
                        );
                        assert!(c["message"].as_str().unwrap().contains("no ReplicaSet of Deployment shop/web has revision"));
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("RolloutUndone", "Warning"),
                    json!({}),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("UndoImpossible", "Warning"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn arguments_the_queries_refuse_hold_the_step_as_invalid_arguments_never_spending_a_budget() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // No Prometheus is asked: the queries are refused before any request.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = canary_gate::metrics::prometheus::PrometheusConfig::new(format!(
        "http://{}",
        free.local_addr().unwrap()
    ));
    let prometheus = canary_gate::metrics::prometheus::Prometheus::new(config).unwrap();
    let mut spec = two_steps();
    spec["strategy"]["canary"]["analysis"]["args"] = json!([{"name": "service", "value": ""}]);
    // Refused for a day already: far past any hold budget, it still only holds.
    let mut status = rolling(0, "2025-11-23T00:00:00Z", "Progressing");
    status["metricsUnavailableSince"] = json!("2025-11-22T00:05:00Z");
    let rollout = rollout(spec, status);
    converse(
        rollout.clone(),
        Arc::new(canary_gate::controller::analyze::PrometheusWindows(
            prometheus,
        )),
        then(
            reads(9, Some(1)),
            vec![
                expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (s["phase"].as_str(), s["canaryWeight"].as_i64()),
                            (Some("Holding"), Some(10)),
                            "{body}"
                        );
                        let c = s["conditions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|c| c["type"] == "MetricsAvailable")
                            .unwrap();
                        assert_eq!(
                            (c["status"].as_str(), c["reason"].as_str()),
                            (Some("False"), Some("InvalidArguments")),
                            "{c}"
                        );
                        let message = c["message"].as_str().unwrap();
                        assert!(
                            message.contains("service")
                                && message.ends_with(
                                    "fix the Rollout's analysis args (the step holds until then)"
                                ),
                            "{message}"
                        );
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(
                    Method::POST,
                    EVENTS,
                    event_with("Holding", "Normal"),
                    json!({}),
                ),
            ],
        ),
    )
    .await;
}

/// Makes a pass's Rollout from the status the previous pass wrote.
type MakeRollout = Box<dyn Fn(&Value) -> Rollout>;

/// Reconciles on one context, one pass after another, against one scripted conversation: each
/// pass's Rollout is made from the status the previous pass wrote (`Value::Null` for the first),
/// and `between` runs after every pass.
async fn converse_in_passes(
    metrics: Arc<dyn MetricWindows>,
    passes: Vec<(MakeRollout, Vec<Expect>)>,
    between: impl Fn(&Context),
) {
    let written = Arc::new(std::sync::Mutex::new(Value::Null));
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let mut script = Vec::new();
    let mut makers = Vec::new();
    for (make, expected) in passes {
        makers.push(make);
        for mut step in expected {
            if step.method == Method::PATCH && step.path == STATUS_PATCH {
                let (check, keep) = (step.body, written.clone());
                step.body = Box::new(move |body: &Value| {
                    check(body);
                    *keep.lock().unwrap() = body["status"].clone();
                });
            }
            script.push(step);
        }
    }
    let server = tokio::spawn(async move {
        for (i, step) in script.into_iter().enumerate() {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                panic!("request {i} ({} {}) never came", step.method, step.path)
            });
            assert_eq!(request.method(), step.method, "request {i}");
            assert_eq!(request.uri().to_string(), step.path, "request {i}");
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            (step.body)(&body);
            send.send_response(
                Response::builder()
                    .status(step.code)
                    .body(Body::from(serde_json::to_vec(&step.response).unwrap()))
                    .unwrap(),
            );
        }
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!(
                "an unexpected extra request: {} {}",
                request.method(),
                request.uri()
            );
        }
    });
    let ctx = Arc::new(Context::new(client, metrics, clock));
    for make in makers {
        let rollout = make(&written.lock().unwrap().clone());
        tokio::time::timeout(
            Duration::from_secs(5),
            reconcile(Arc::new(rollout), ctx.clone()),
        )
        .await
        .expect("reconcile finished")
        .expect("reconcile succeeded");
        between(&ctx);
    }
    drop(ctx);
    server.await.expect("the conversation went as scripted");
}

/// The condition the README's `StepsUnderpowered` section shows; its `powerCheck` snippet
/// checked to validate as written.
fn readme_steps_underpowered() -> Value {
    let blocks = support::readme_blocks("### Are the steps long enough?", "yaml");
    let snippet: Value = serde_saphyr::from_str(&blocks[1]).expect("the powerCheck snippet");
    let mut spec = two_steps();
    spec["strategy"]["canary"]["powerCheck"] = snippet["strategy"]["canary"]["powerCheck"].clone();
    let spec: canary_gate::crd::rollout::RolloutSpec = serde_json::from_value(spec).unwrap();
    let goal = canary_gate::controller::validate::validate(&spec)
        .expect("the README's powerCheck validates")
        .power_check
        .expect("on");
    assert_eq!(
        (goal.effect.to_string().as_str(), goal.power),
        ("×2 the stable's error rate", 0.9)
    );
    let conditions: Vec<Value> = serde_saphyr::from_str(&blocks[0]).expect("the condition");
    conditions[0].clone()
}

fn steps_underpowered(status: &Value) -> Option<&Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "StepsUnderpowered")
}

#[tokio::test]
async fn steps_too_short_for_the_traffic_are_a_warning_condition_that_changes_no_decision() {
    // 2-minute steps at 10 % and 50 % of 15 req/s (the stable's 900 requests a minute, the thin
    // canary's 2) cannot catch +1 pt errors in 80 % of rollouts. The first reconcile reads the
    // first five minutes (the evidence) and queues the check; the next one reports it.
    let first: MakeRollout = Box::new(|_| {
        rollout(
            two_steps(),
            rolling(0, "2025-11-23T00:00:00Z", "Progressing"),
        )
    });
    let next: MakeRollout = Box::new(|written| rollout(two_steps(), written.clone()));
    let written_first = Arc::new(std::sync::Mutex::new(Value::Null));
    let keep = written_first.clone();
    converse_in_passes(
        Arc::new(ScriptedMetrics::new(THIN)),
        vec![
            (
                first,
                then(
                    reads(9, Some(1)),
                    vec![
                        expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
                        expect(
                            Method::PATCH,
                            STATUS_PATCH,
                            move |body| {
                                let s = &body["status"];
                                assert_eq!(s["phase"], "Holding", "{body}");
                                assert_eq!(steps_underpowered(s), None, "not checked yet");
                                *keep.lock().unwrap() = s.clone();
                            },
                            serde_json::to_value(rollout(two_steps(), json!({}))).unwrap(),
                        ),
                        expect(
                            Method::POST,
                            EVENTS,
                            event_with("Holding", "Normal"),
                            json!({}),
                        ),
                    ],
                ),
            ),
            (
                next,
                then(
                    reads(9, Some(1)),
                    vec![
                        expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
                        expect(
                            Method::PATCH,
                            STATUS_PATCH,
                            move |body| {
                                let s = &body["status"];
                                let c = steps_underpowered(s).expect("the condition");
                                assert_eq!(
                                    (c["status"].as_str(), c["reason"].as_str()),
                                    (Some("True"), Some("StepsTooShort")),
                                    "{c}"
                                );
                                assert_eq!(c["lastTransitionTime"], "2025-11-23T00:05:00Z");
                                let m = c["message"].as_str().unwrap();
                                assert_eq!(m, readme_steps_underpowered()["message"], "the README shows this message");
                                for part in [
                                    "template AnalysisTemplate shop/generic-http: to catch +1 pt errors with 80 % power at 15.0 req/s (stable 0.11 % errors): step 0 (10% for 2m) catches it in ",
                                    "; step 1 (50% for 2m) catches it in ",
                                    " (costing ~",
                                    "; Wald's floor ",
                                    ". Fix: lengthen these pauses to what they need, or use fewer, bigger steps. Advice only, decisions are unchanged (100 simulated rollouts per weight, ±4 pts)",
                                ] {
                                    assert!(m.contains(part), "{part:?} in {m}");
                                }
                                // Nothing else changed: the decision is the judge's alone.
                                let mut without = s.clone();
                                without["conditions"]
                                    .as_array_mut()
                                    .unwrap()
                                    .retain(|c| c["type"] != "StepsUnderpowered");
                                assert_eq!(without, *written_first.lock().unwrap());
                            },
                            serde_json::to_value(rollout(two_steps(), json!({}))).unwrap(),
                        ),
                        expect(
                            Method::POST,
                            EVENTS,
                            |body| {
                                event_with("StepsUnderpowered", "Warning")(body);
                                let note = body["note"].as_str().unwrap();
                                assert!(
                                    note.starts_with("2 of 2 gated steps cannot catch +1 pt errors in 80 % of rollouts at 15.0 req/s: step 0 (10% for 2m) needs "),
                                    "{note}"
                                );
                            },
                            json!({}),
                        ),
                    ],
                ),
            ),
        ],
        |ctx| assert!(ctx.power.wait_idle(Duration::from_secs(60)), "the check ended"),
    )
    .await;
}

/// Steps: a webhook `smoke` to `url` at 10 %, then 50 % for 2 minutes, judged throughout.
fn webhook_steps(url: &str) -> Value {
    json!({"targetRef": {"name": "web"}, "strategy": {"canary": {
        "analysis": {"templates": [{"templateName": "generic-http"}], "args": [{"name": "service", "value": "web"}]},
        "steps": [{"setWeight": 10}, {"webhook": {"name": "smoke", "url": url}},
            {"setWeight": 50}, {"pause": {"duration": "2m"}}]}}})
}

/// The `Hooks` condition of a status as written: status, reason, message.
fn hooks_condition(status: &Value) -> (&str, &str, &str) {
    let c = status["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == "Hooks"))
        .expect("the Hooks condition");
    let text = |k: &str| c[k].as_str().unwrap_or_default();
    (text("status"), text("reason"), text("message"))
}

/// At the webhook step since T0 (10 % in force), its webhook due since then.
fn at_webhook_step() -> Value {
    let mut status = rolling(0, "2025-11-23T00:00:00Z", "Progressing");
    status["hooks"] = json!([{"name": "smoke", "kind": "step", "revision": rev("web:2"), "step": 0,
        "phase": "Pending", "attempts": 0, "nextAttemptAt": "2025-11-23T00:00:00Z"}]);
    status
}

#[tokio::test]
async fn a_webhook_step_that_passes_completes_the_step_and_the_rollout_advances() {
    let server = support::fake_http::serve(|_| support::fake_http::Answer::json(200, "ok")).await;
    let host = server.url.trim_start_matches("http://").to_string();
    let rollout = rollout(
        webhook_steps(&format!("{}/smoke?token=t0k3n", server.url)),
        at_webhook_step(),
    );
    let canary = rev("web:2");
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(9, Some(1)),
            vec![
                expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
                // The webhook passed within the reconcile: step 1 (50 %) gets its pods.
                applies(CANARY_APPLY, workload_body(Role::Canary, "web:2", 5)),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    move |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (s["currentStepIndex"].as_i64(), s["canaryWeight"].as_i64()),
                            (Some(1), Some(10)),
                            "{body}"
                        );
                        assert_eq!(s["lastDecision"], "continue");
                        assert_eq!(
                            s["hooks"],
                            json!([{"name": "smoke", "kind": "step", "revision": canary, "step": 0,
                                "phase": "Passed", "attempts": 1, "lastAnswer": "answered 200",
                                "startedAt": "2025-11-23T00:05:00Z", "finishedAt": "2025-11-23T00:05:00Z"}])
                        );
                        assert_eq!(
                            hooks_condition(s),
                            ("True", "HooksPassed", "smoke (step 0): answered 200")
                        );
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(Method::POST, EVENTS, event_with("HookStarted", "Normal"), json!({})),
                expect(
                    Method::POST,
                    EVENTS,
                    move |body| {
                        event_with("HookPassed", "Normal")(body);
                        assert_eq!(
                            body["note"],
                            format!(
                                "webhook smoke (step 0, POST to {host}) passed: answered 200 (attempt 1)"
                            )
                        );
                    },
                    json!({}),
                ),
                expect(Method::POST, EVENTS, event_with("WaitingForPods", "Normal"), json!({})),
            ],
        ),
    )
    .await;
    let requests = server.received.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path(), "/smoke");
    let body: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(
        (
            &body["hook"],
            &body["step"],
            &body["weight"],
            &body["revision"]
        ),
        (
            &json!({"name": "smoke", "kind": "step"}),
            &json!(0),
            &json!(10),
            &json!(rev("web:2"))
        )
    );
}

#[tokio::test]
async fn a_webhook_step_that_fails_rolls_the_rollout_back() {
    let server = support::fake_http::serve(|_| {
        support::fake_http::Answer::json(400, "{\"error\":\"smoke suite failed: /checkout 500\"}")
    })
    .await;
    let host = server.url.trim_start_matches("http://").to_string();
    let rollout = rollout(
        webhook_steps(&format!("{}/smoke", server.url)),
        at_webhook_step(),
    );
    let message = format!(
        "rolled back: webhook smoke (step 0, POST to {host}) failed after 1 attempt: answered 400: {{\"error\":\"smoke suite failed: /checkout 500\"}}"
    );
    converse(
        rollout.clone(),
        Arc::new(ScriptedMetrics::new(CLEAN)),
        then(
            reads(9, Some(1)),
            vec![
                expect(Method::GET, TEMPLATE_GET, |_| {}, template_object()),
                // The judge found no harm, but the webhook failed: all traffic back on stable.
                applies(STABLE_APPLY, workload_body(Role::Stable, "web:1", 10)),
                applies(CANARY_APPLY, workload_body(Role::Canary, "web:2", 0)),
                expect(
                    Method::PATCH,
                    STATUS_PATCH,
                    move |body| {
                        let s = &body["status"];
                        assert_eq!(
                            (s["phase"].as_str(), s["canaryWeight"].as_i64()),
                            (Some("RolledBack"), Some(0)),
                            "{body}"
                        );
                        assert_eq!(s["message"], message.as_str());
                        assert_eq!(s["hooks"][0]["phase"], "Failed");
                        assert_eq!(s["hooks"][0]["attempts"], 1);
                        let (status, reason, _) = hooks_condition(s);
                        assert_eq!((status, reason), ("False", "HookFailed"));
                    },
                    serde_json::to_value(&rollout).unwrap(),
                ),
                expect(Method::POST, EVENTS, event_with("HookStarted", "Normal"), json!({})),
                expect(
                    Method::POST,
                    EVENTS,
                    |body| {
                        event_with("HookFailed", "Warning")(body);
                        assert!(
                            body["note"].as_str().unwrap().ends_with(
                                "the rollout rolls back; fix the endpoint (or what it tests), then `canary-gate retry` runs the webhooks again"
                            ),
                            "{body}"
                        );
                    },
                    json!({}),
                ),
                expect(Method::POST, EVENTS, event_with("RolledBack", "Warning"), json!({})),
            ],
        ),
    )
    .await;
    assert_eq!(server.received.lock().unwrap().len(), 1);
}
