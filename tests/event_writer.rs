//! Events as the API server receives them (kube's mocked service, exact requests): every
//! distinct note is its own Event, even under the same reason; only an identical repeat becomes
//! a count on the first; a refusal is an error naming the Event and the object.

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::client::Body;
use serde_json::{Value, json};

use canary_gate::controller::events::EventWriter;

const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events?";

fn web() -> ObjectReference {
    ObjectReference {
        api_version: Some("canarygate.dev/v1alpha1".into()),
        kind: Some("Rollout".into()),
        name: Some("web".into()),
        namespace: Some("shop".into()),
        uid: Some("u-1".into()),
        ..ObjectReference::default()
    }
}

/// Answers each expected `(method, path)` with `(code, body)` and returns the request bodies.
async fn serve(
    script: Vec<(Method, &'static str, u16, Value)>,
) -> (EventWriter, tokio::task::JoinHandle<Vec<Value>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for (i, (method, path, code, response)) in script.into_iter().enumerate() {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), method, "request {i}");
            assert_eq!(request.uri().to_string(), path, "request {i}");
            let bytes = request.into_body().collect_bytes().await.unwrap();
            bodies.push(serde_json::from_slice(&bytes).unwrap());
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&response).unwrap()))
                    .unwrap(),
            );
        }
        bodies
    });
    (
        EventWriter::new(client, Some("canary-gate-0".into())),
        server,
    )
}

fn created(name: &str) -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "shop"}, "eventTime": "2026-12-02T05:00:00.000000Z"})
}

#[tokio::test]
async fn each_note_is_its_own_event_and_only_identical_repeats_are_counted() {
    let (writer, server) = serve(vec![
        (Method::POST, EVENTS, 201, created("web.a1")),
        (Method::POST, EVENTS, 201, created("web.a2")),
        (
            Method::PATCH,
            "/apis/events.k8s.io/v1/namespaces/shop/events/web.a1?",
            200,
            created("web.a1"),
        ),
    ])
    .await;
    let reference = web();
    writer
        .publish(
            &reference,
            false,
            "StepAdvanced",
            "step 0 → 1 at weight 10%",
        )
        .await
        .unwrap();
    writer
        .publish(
            &reference,
            false,
            "StepAdvanced",
            "step 1 → 2 at weight 50%",
        )
        .await
        .unwrap();
    writer
        .publish(
            &reference,
            false,
            "StepAdvanced",
            "step 0 → 1 at weight 10%",
        )
        .await
        .unwrap();
    let bodies = server.await.unwrap();
    for (body, note) in bodies[..2]
        .iter()
        .zip(["step 0 → 1 at weight 10%", "step 1 → 2 at weight 50%"])
    {
        let name = body["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web.") && name.len() > 4, "{name}");
        assert_eq!(body["reason"], "StepAdvanced");
        assert_eq!(body["note"], note, "the note is kept, not folded");
        assert_eq!(body["type"], "Normal");
        assert_eq!(body["action"], "Reconcile");
        assert_eq!(body["regarding"]["name"], "web");
        assert_eq!(body["regarding"]["uid"], "u-1");
        assert_eq!(body["reportingController"], "canary-gate");
        assert_eq!(body["reportingInstance"], "canary-gate-0");
        assert!(body["eventTime"].is_string());
    }
    assert_eq!(bodies[2]["series"]["count"], 2, "{}", bodies[2]);
    assert!(bodies[2]["series"]["lastObservedTime"].is_string());
    assert_eq!(writer.remembered(), 2);
}

#[tokio::test]
async fn a_refused_event_is_an_error_naming_the_event_and_the_object() {
    let (writer, server) = serve(vec![(
        Method::POST,
        EVENTS,
        403,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
            "message": "events.events.k8s.io is forbidden: User \"system:serviceaccount:canary-gate:canary-gate\" cannot create resource \"events\""}),
    )])
    .await;
    let err = writer
        .publish(&web(), true, "MetricsUnavailable", "holding")
        .await
        .unwrap_err();
    server.await.unwrap();
    let text = err.to_string();
    assert!(
        text.contains("\"MetricsUnavailable\"") && text.contains("shop/web"),
        "{text}"
    );
    assert_eq!(
        writer.remembered(),
        0,
        "a failed Event is not counted later"
    );
}
