//! Scale benchmark of the controller: many Rollouts in various states, driven through the real
//! `reconcile` with in-memory fakes for the API server and the metrics source, on one core.
//!
//! # What it does
//!
//! It populates `ROLLOUTS` Rollouts (default 10 000) over `NAMESPACES` namespaces (default 100),
//! each with its target Deployment and, where it has them, its `-stable` and `-canary`
//! workloads, plus the `generic-http` AnalysisTemplate (from `analysis-templates/`) in every
//! namespace. Rollout `i` is in class `i % 10`:
//!
//! | class | starts as | spec | metrics |
//! |---|---|---|---|
//! | 0, 1 | Healthy, adopted | 3 gated steps (10/30/60 %, 2 min pauses) | clean |
//! | 2, 3, 4 | Progressing at step 0 / 1 / 2 | 3 gated steps | clean |
//! | 5 | Paused, waiting for a human | `setWeight: 10`, `pause: {}`, gated | clean |
//! | 6 | Holding | 3 gated steps | thin canary traffic (holds, then pauses) |
//! | 7 | RolledBack | 3 gated steps | failing canary (rolls back again) |
//! | 8 | Healthy, adopted | 2 ungated steps (1 min pauses) | — |
//! | 9 | new: no status, no finalizer, target not adopted | 3 gated steps | clean |
//!
//! It then drives `ROUNDS` rounds (default 50). A round reconciles every Rollout once,
//! sequentially, on a current-thread tokio runtime (one core); each reconcile reads its Rollout
//! back from the fake store, so the status written by the previous round is the next input. The
//! clock the controller sees advances 60 s per round (the analysis interval). At the start of
//! every round, every `CHANGE_EVERY`-th Rollout (default 10, staggered) gets a new image on its
//! target, so a new rollout starts. With the defaults each Rollout gets about 5 new revisions:
//! **the 50 rounds stand for a working week at one deploy per service per day**, with the
//! rollouts' own steps (about 8 minutes each) kept at real speed and the quiet hours between
//! deploys cut out. Two consequences: every Rollout is reconciled every minute, an upper bound of
//! the real controller's load (it requeues Rollouts under analysis every interval and healthy
//! ones only on a change); and about 3 400 Events are published per simulated minute, roughly
//! ten times a busy hour of a real week (it is what a mass deploy looks like).
//!
//! One controller context serves the whole run, as in the controller: its judge memory keeps
//! each analysed Rollout's evidence between rounds, and its Event writer remembers recent
//! Events (bounded) to count identical repeats.
//!
//! After the week it reconciles one Rollout that has been paused for 7 days: once cold (a
//! restarted controller replays the 10 080 intervals of its window), then minute by minute warm.
//!
//! # What it prints
//!
//! Reconciles/s: wall clock, everything included (the controller, the kube client, the fakes'
//! handling and the bench's own reading of the Rollout), and per CPU second of the bench thread
//! (the machine may be shared: the CPU share of the loop and the load average are printed).
//! p50/p99/max of the wall time spent inside `reconcile`, which includes the fakes' in-process
//! handling, and the same with the time measured inside the fakes subtracted ("excluding fake
//! I/O"), overall and by the phase the Rollout was in. API requests per reconcile by method and
//! kind. Metric-source queries: one `window` call is one range query per PromQL query of the
//! template (3 for `generic-http`), per second of the run and per second at the controller's
//! real pace (one window per analysed Rollout per simulated minute). Memory: VmRSS at the start,
//! after populating, after the first and second rounds and at the end; the growth from the
//! second round to the end (with the fake store's share: statuses fill their decision records);
//! the steady-state growth, comparing the peak RSS of the last third of the week with that of
//! the middle third (RSS rises and falls with the Event cache, so single samples mislead); and
//! VmHWM (peak RSS). The targets from the issue are printed next to the figures.
//!
//! # How to run
//!
//! ```text
//! cargo bench --bench controller_scale
//! ROLLOUTS=1000 ROUNDS=20 cargo bench --bench controller_scale
//! ```
//!
//! Environment: `ROLLOUTS` (10000), `NAMESPACES` (100), `ROUNDS` (50), `CHANGE_EVERY` (10).
//! Progress goes to stderr, the figures to stdout.
//!
//! # What the fakes leave out
//!
//! - The API server is a `HashMap` of JSON bytes, served through an axum handler (axum is a
//!   dependency of the crate; `tower::Service` itself cannot be named without adding one) behind
//!   the kube client's real `Buffer` and codec: no network, TLS, HTTP/2, authentication,
//!   admission, etcd, watch streams, API Priority and Fairness throttling (a real API server
//!   would not take thousands of requests per second from one client), conflicts from
//!   concurrent writers, or `managedFields` (real objects are larger, so real JSON handling
//!   costs more).
//! - Server-side apply is a recursive JSON merge (arrays replaced); applied workloads are rolled
//!   out at once (status: every pod updated and available), so promotions finish immediately.
//! - The controller's watches, reflector store, work queue and requeue timers (`run.rs`) are not
//!   run: the bench calls `reconcile` directly. Their memory (a cached copy of every Rollout) and
//!   CPU (watch decoding, the mappers that scan every Rollout per Deployment event) are not in
//!   these figures; the fake store's own memory is (see "RSS after populating").
//! - The metrics source renders the template's PromQL as `PrometheusWindows` does (counted as
//!   controller time), but answers from memory with the tests' scripted samples
//!   (`tests/support/fixtures.rs`, shared with the bench): no HTTP, no Prometheus evaluation, no JSON
//!   decoding of range-query results.
//! - No tracing subscriber is installed (the controller's spans and logs cost nothing here), no
//!   telemetry and no Grafana annotations (`Context::telemetry` and `annotations` are `None`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body as AxumBody, Bytes};
use axum::handler::Handler;
use canary_gate::analysis::WindowInterval;
use canary_gate::controller::analyze::MetricWindows;
use canary_gate::controller::events::EventWriter;
use canary_gate::controller::observe::revision;
use canary_gate::controller::reconcile::{Context, reconcile};
use canary_gate::crd::Rollout;
use canary_gate::metrics::prometheus_source::SourceError;
use canary_gate::metrics::query::{Bindings, render_template, resolve_args};
use canary_gate::template::Template;
use canary_gate::traffic::workload::{Role, desired};
use http::{Method, Response, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Deserialize;
use serde_json::{Value, json};

/// The fixtures shared with the tests: the Rollout builder and the scripted samples.
#[path = "../tests/support/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
use fixtures::{CLEAN, FAILING, RolloutBuilder, Sampler, THIN, Traffic};

/// The simulated start: 2025-11-23T00:00:00Z.
const T0: f64 = 1_763_856_000.0;
/// Simulated seconds per round (the analysis interval of `generic-http`).
const ROUND_SECONDS: f64 = 60.0;
/// Replicas every Rollout runs.
const REPLICAS: i32 = 10;
/// Throughput target (reconciles per second on one core).
const TARGET_RATE: f64 = 2000.0;
/// Memory target at 10 000 Rollouts, MiB.
const TARGET_RSS_MIB: f64 = 256.0;
/// RSS growth from the second round to the end that still counts as noise.
const NOISE_FRACTION: f64 = 0.05;

// ---------------------------------------------------------------------------------------------
// The clock the controller sees.

static NOW: AtomicU64 = AtomicU64::new(0);

fn set_now(t: f64) {
    NOW.store(t.to_bits(), Ordering::Relaxed);
}

fn sim_clock() -> f64 {
    f64::from_bits(NOW.load(Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// Time spent inside the fakes (nanoseconds), to subtract from reconcile latencies.

static FAKE_API_NANOS: AtomicU64 = AtomicU64::new(0);
static FAKE_METRIC_NANOS: AtomicU64 = AtomicU64::new(0);

fn fake_nanos() -> u64 {
    FAKE_API_NANOS.load(Ordering::Relaxed) + FAKE_METRIC_NANOS.load(Ordering::Relaxed)
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// The fake API server.

/// What a request was, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    GetMissing,
    List,
    Apply,
    StatusApply,
    JsonPatch,
    EventCreate,
    EventPatch,
    Put,
    Other,
}

const KINDS: [(Kind, &str, &str); 10] = [
    (Kind::Get, "GET", "object read"),
    (Kind::GetMissing, "GET", "object read, not found (404)"),
    (Kind::List, "GET", "ReplicaSet list"),
    (Kind::Apply, "PATCH", "server-side apply of a Deployment"),
    (Kind::StatusApply, "PATCH", "Rollout status apply"),
    (Kind::JsonPatch, "PATCH", "Rollout JSON patch (finalizer)"),
    (Kind::EventCreate, "POST", "Event create"),
    (Kind::EventPatch, "PATCH", "Event series patch"),
    (Kind::Put, "PUT", "Deployment replace"),
    (Kind::Other, "OTHER", "unexpected request"),
];

fn kind_index(kind: Kind) -> usize {
    KINDS.iter().position(|(k, _, _)| *k == kind).unwrap_or(0)
}

/// An API server that keeps objects as serialized JSON by their path (bytes: a
/// `serde_json::Value` takes about ten times the memory and would swamp what is measured).
struct FakeApi {
    objects: Mutex<HashMap<String, Bytes>>,
    resource_version: AtomicU64,
    counts: [AtomicU64; KINDS.len()],
}

impl FakeApi {
    fn new() -> Self {
        FakeApi {
            objects: Mutex::new(HashMap::new()),
            resource_version: AtomicU64::new(1000),
            counts: Default::default(),
        }
    }

    fn count(&self, kind: Kind) -> u64 {
        self.counts[kind_index(kind)].load(Ordering::Relaxed)
    }

    fn next_resource_version(&self) -> Value {
        json!((self.resource_version.fetch_add(1, Ordering::Relaxed) + 1).to_string())
    }

    fn insert(&self, path: String, object: &Value) {
        self.objects
            .lock()
            .expect("store lock")
            .insert(path, to_bytes(object));
    }

    /// Reads an object.
    fn get(&self, path: &str) -> Option<Value> {
        let objects = self.objects.lock().expect("store lock");
        objects
            .get(path)
            .and_then(|b| serde_json::from_slice(b).ok())
    }

    /// Changes an object in place.
    fn update(&self, path: &str, change: impl FnOnce(&mut Value)) {
        let mut objects = self.objects.lock().expect("store lock");
        if let Some(bytes) = objects.get_mut(path)
            && let Ok(mut object) = serde_json::from_slice::<Value>(bytes)
        {
            change(&mut object);
            object["metadata"]["resourceVersion"] = self.next_resource_version();
            *bytes = to_bytes(&object);
        }
    }

    /// How many objects are stored, and their bytes.
    fn size(&self) -> (usize, usize) {
        let objects = self.objects.lock().expect("store lock");
        (objects.len(), objects.values().map(Bytes::len).sum())
    }

    /// Answers one request: `(what it was, status code, response body)`.
    fn serve(
        &self,
        method: &Method,
        path: &str,
        content_type: &str,
        body: &Bytes,
    ) -> (Kind, StatusCode, Bytes) {
        let events = path.ends_with("/events") || path.contains("/events/");
        if events && method == Method::POST {
            // The Event as created: the request echoed.
            return (Kind::EventCreate, StatusCode::CREATED, body.clone());
        }
        if events && method == Method::PATCH {
            // A count on a recent identical Event (a small merge patch).
            return (Kind::EventPatch, StatusCode::OK, body.clone());
        }
        match *method {
            Method::GET if path.ends_with("/replicasets") => (
                Kind::List,
                StatusCode::OK,
                Bytes::from_static(
                    br#"{"apiVersion":"apps/v1","kind":"ReplicaSetList","metadata":{},"items":[]}"#,
                ),
            ),
            Method::GET => {
                let objects = self.objects.lock().expect("store lock");
                match objects.get(path) {
                    Some(object) => (Kind::Get, StatusCode::OK, object.clone()),
                    None => (Kind::GetMissing, StatusCode::NOT_FOUND, not_found(path)),
                }
            }
            Method::PATCH => self.patch(path, content_type, body),
            Method::PUT => {
                let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
                    return (
                        Kind::Put,
                        StatusCode::BAD_REQUEST,
                        status(400, "BadRequest"),
                    );
                };
                object["metadata"]["resourceVersion"] = self.next_resource_version();
                let out = to_bytes(&object);
                self.objects
                    .lock()
                    .expect("store lock")
                    .insert(path.to_string(), out.clone());
                (Kind::Put, StatusCode::OK, out)
            }
            _ => (
                Kind::Other,
                StatusCode::METHOD_NOT_ALLOWED,
                status(405, "MethodNotAllowed"),
            ),
        }
    }

    fn patch(&self, path: &str, content_type: &str, body: &[u8]) -> (Kind, StatusCode, Bytes) {
        let Ok(mut patch) = serde_json::from_slice::<Value>(body) else {
            return (
                Kind::Other,
                StatusCode::BAD_REQUEST,
                status(400, "BadRequest"),
            );
        };
        let mut objects = self.objects.lock().expect("store lock");
        let (key, status_only) = match path.strip_suffix("/status") {
            Some(key) => (key, true),
            None => (path, false),
        };
        let stored: Option<Value> = objects
            .get(key)
            .and_then(|b| serde_json::from_slice(b).ok());
        let (kind, object) = if status_only {
            // The status subresource: only the status changes.
            let Some(mut object) = stored else {
                return (Kind::StatusApply, StatusCode::NOT_FOUND, not_found(key));
            };
            object["status"] = patch["status"].take();
            (Kind::StatusApply, object)
        } else if content_type.starts_with("application/json-patch") {
            let Ok(operations) = serde_json::from_value::<json_patch::Patch>(patch) else {
                return (
                    Kind::JsonPatch,
                    StatusCode::BAD_REQUEST,
                    status(400, "BadRequest"),
                );
            };
            let Some(mut object) = stored else {
                return (Kind::JsonPatch, StatusCode::NOT_FOUND, not_found(key));
            };
            // A failed `test` (a stale resourceVersion) changes nothing.
            if json_patch::patch(&mut object, &operations).is_err() {
                return (
                    Kind::JsonPatch,
                    StatusCode::CONFLICT,
                    status(409, "Conflict"),
                );
            }
            (Kind::JsonPatch, object)
        } else {
            // Server-side apply (or a merge patch): the body merged into the object.
            let mut object = stored.unwrap_or_else(|| {
                let (namespace, name) = namespace_and_name(key);
                json!({"metadata": {"name": name, "namespace": namespace, "generation": 0,
                    "uid": format!("uid-{name}")}})
            });
            let before = object.get("spec").cloned();
            merge(&mut object, patch);
            if object.get("spec") != before.as_ref() {
                let generation = object["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                object["metadata"]["generation"] = json!(generation);
            }
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            if name.ends_with("-stable") || name.ends_with("-canary") {
                // The workload rolls out at once: every pod updated and available.
                let pods = object["spec"]["replicas"].as_i64().unwrap_or(1);
                object["status"] = json!({"observedGeneration": object["metadata"]["generation"],
                    "replicas": pods, "updatedReplicas": pods, "readyReplicas": pods,
                    "availableReplicas": pods});
            }
            (Kind::Apply, object)
        };
        let mut object = object;
        object["metadata"]["resourceVersion"] = self.next_resource_version();
        let out = to_bytes(&object);
        objects.insert(key.to_string(), out.clone());
        (kind, StatusCode::OK, out)
    }
}

/// The compact JSON of an object, without the spare capacity `to_vec` leaves (which would
/// double the fake store's memory).
fn to_bytes(object: &Value) -> Bytes {
    let mut json = serde_json::to_vec(object).unwrap_or_default();
    json.shrink_to_fit();
    Bytes::from(json)
}

/// Merges `patch` into `target`: objects key by key, everything else replaced.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value);
                    }
                    _ => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

fn namespace_and_name(path: &str) -> (String, String) {
    let parts: Vec<&str> = path.split('/').collect();
    let namespace = parts
        .iter()
        .position(|p| *p == "namespaces")
        .and_then(|i| parts.get(i + 1))
        .copied()
        .unwrap_or_default();
    (
        namespace.to_string(),
        parts.last().copied().unwrap_or_default().to_string(),
    )
}

fn status(code: u16, reason: &str) -> Bytes {
    to_bytes(
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "reason": reason, "message": reason, "code": code}),
    )
}

fn not_found(path: &str) -> Bytes {
    let (_, name) = namespace_and_name(path);
    to_bytes(
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "reason": "NotFound", "code": 404,
        "message": format!("\"{name}\" not found"), "details": {"name": name}}),
    )
}

/// One request through the fake, timed.
async fn handle(api: Arc<FakeApi>, request: axum::extract::Request) -> Response<AxumBody> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (kind, code, out) = api.serve(&parts.method, parts.uri.path(), content_type, &bytes);
    api.counts[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    let response = Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(AxumBody::from(out))
        .expect("a response");
    FAKE_API_NANOS.fetch_add(nanos(started.elapsed()), Ordering::Relaxed);
    response
}

// ---------------------------------------------------------------------------------------------
// The fake metrics source.

/// Per-minute samples from the fixtures shared with the tests (`tests/support/fixtures.rs`): the
/// stable serves 900 requests with 1 error; the canary 100 requests (2 when thin), 20 % failing
/// when failing; latencies from one histogram shape.
struct FakeMetrics {
    sampler: Sampler,
    calls: AtomicU64,
    range_queries: AtomicU64,
    intervals: AtomicU64,
    max_intervals: AtomicU64,
    render_nanos: AtomicU64,
}

impl FakeMetrics {
    fn new() -> Self {
        FakeMetrics {
            sampler: Sampler::new(&[CLEAN, THIN, FAILING]),
            calls: AtomicU64::new(0),
            range_queries: AtomicU64::new(0),
            intervals: AtomicU64::new(0),
            max_intervals: AtomicU64::new(0),
            render_nanos: AtomicU64::new(0),
        }
    }
}

/// The traffic of the Rollout a `service` argument names (`app-<index>`): class 6 is thin,
/// class 7 failing.
fn traffic_of(args: &[(String, String)]) -> Traffic {
    let index = args
        .iter()
        .find(|(k, _)| k == "service")
        .and_then(|(_, v)| v.strip_prefix("app-"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    match index % 10 {
        6 => THIN,
        7 => FAILING,
        _ => CLEAN,
    }
}

impl MetricWindows for FakeMetrics {
    fn window<'a>(
        &'a self,
        template: &'a Template,
        args: &'a [(String, String)],
        from: f64,
        to: f64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WindowInterval>, SourceError>> + Send + 'a>> {
        Box::pin(async move {
            // What `PrometheusWindows` does before it queries: bind the arguments and render the
            // PromQL (controller work, not counted as fake time).
            let rendering = Instant::now();
            let given = resolve_args(&template.file.spec.args, args)?;
            let bindings = Bindings::new(template, given)?;
            let queries = render_template(template, &bindings)?;
            let range_queries: usize = queries.iter().map(|q| q.queries().len()).sum();
            self.render_nanos
                .fetch_add(nanos(rendering.elapsed()), Ordering::Relaxed);

            let answering = Instant::now();
            let out = self.sampler.window(template, traffic_of(args), from, to);
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.range_queries
                .fetch_add(range_queries as u64, Ordering::Relaxed);
            self.intervals
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            self.max_intervals
                .fetch_max(out.len() as u64, Ordering::Relaxed);
            FAKE_METRIC_NANOS.fetch_add(nanos(answering.elapsed()), Ordering::Relaxed);
            Ok(out)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// A latency histogram of fixed size (log-linear, 64 sub-buckets per power of two: ±1.6 %), so
// measuring does not grow the memory being measured.

struct LogHistogram {
    counts: Vec<u64>,
    n: u64,
    sum: u128,
    max: u64,
}

impl LogHistogram {
    const SIZE: usize = 59 * 64;

    fn new() -> Self {
        LogHistogram {
            counts: vec![0; Self::SIZE],
            n: 0,
            sum: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 64 {
            return v as usize;
        }
        let e = 63 - u64::from(v.leading_zeros());
        let sub = (v >> (e - 6)) & 63;
        ((e - 5) * 64 + sub) as usize
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        if i < 64 {
            return i as u64;
        }
        let e = (i / 64) as u64 + 5;
        let sub = (i % 64) as u64;
        ((64 + sub) << (e - 6)) + ((1u64 << (e - 6)) >> 1)
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v).min(Self::SIZE - 1)] += 1;
        self.n += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }

    fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum as f64 / self.n as f64
        }
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------------
// The objects.

fn name_of(i: usize) -> String {
    format!("app-{i:05}")
}

fn image(name: &str, version: u32) -> String {
    format!("registry.example.com/shop/{name}:1.{version}.0")
}

/// The target Deployment (`replicas` 0 once adopted).
fn deployment(namespace: &str, name: &str, image: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("d-{name}"),
            "generation": 1, "resourceVersion": "1", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app", "image": image,
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "SERVICE", "value": name}, {"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"memory": "256Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                        "periodSeconds": 5}
                }]}
            }
        }
    })
}

fn typed(deployment: &Value) -> Deployment {
    Deployment::deserialize(deployment).expect("a valid Deployment")
}

fn revision_of_value(deployment: &Value) -> String {
    revision(&typed(deployment).spec.unwrap_or_default().template)
}

/// A workload as the API server returns it: `pods`, all available.
fn workload(target: &Value, rollout: &str, owner: &OwnerReference, role: Role, pods: i32) -> Value {
    let d = typed(target);
    let template = d.spec.clone().unwrap_or_default().template;
    let mut w = desired(
        &d,
        rollout,
        owner,
        role,
        &template,
        &revision(&template),
        pods,
    );
    w["metadata"]["namespace"] = target["metadata"]["namespace"].clone();
    w["metadata"]["generation"] = json!(1);
    w["metadata"]["resourceVersion"] = json!("1");
    w["status"] = json!({"observedGeneration": 1, "replicas": pods, "updatedReplicas": pods,
        "readyReplicas": pods, "availableReplicas": pods});
    w
}

fn rfc3339(t: f64) -> String {
    canary_gate::time::rfc3339(t)
}

fn analysis(name: &str) -> Value {
    json!({"templates": [{"templateName": "generic-http"}], "args": [{"name": "service", "value": name}]})
}

fn spec(class: usize, name: &str) -> Value {
    let steps = match class {
        5 => json!([{"setWeight": 10}, {"pause": {}}]),
        8 => json!([{"setWeight": 20}, {"pause": {"duration": "1m"}},
                    {"setWeight": 60}, {"pause": {"duration": "1m"}}]),
        _ => json!([{"setWeight": 10}, {"pause": {"duration": "2m"}},
                    {"setWeight": 30}, {"pause": {"duration": "2m"}},
                    {"setWeight": 60}, {"pause": {"duration": "2m"}}]),
    };
    let mut canary = json!({"steps": steps});
    if class != 8 {
        canary["analysis"] = analysis(name);
    }
    json!({"targetRef": {"name": name}, "strategy": {"canary": canary}})
}

const STEP_WEIGHTS: [i32; 3] = [10, 30, 60];

/// A rollout of `canary` begun `ago` seconds before T0, now at `step` (begun a minute ago).
fn rolling(stable: &str, canary: &str, phase: &str, step: usize, ago: f64) -> Value {
    let started = T0 - ago;
    let history: Vec<Value> = (0..=step)
        .map(|s| {
            let at = if s == step {
                T0 - 60.0
            } else {
                started + 180.0 * s as f64
            };
            json!({"step": s, "startedAt": rfc3339(at)})
        })
        .collect();
    let step_started = if step == 0 { started } else { T0 - 60.0 };
    json!({"phase": phase, "stableRevision": stable, "canaryRevision": canary,
        "replicas": REPLICAS, "canaryWeight": STEP_WEIGHTS[step],
        "startedAt": rfc3339(started), "stepStartedAt": rfc3339(step_started),
        "currentStepIndex": step, "stepHistory": history})
}

/// Pods of the canary at `weight` (the replica ratio), at least one.
fn canary_pods(weight: i32) -> i32 {
    ((REPLICAS * weight + 99) / 100).max(1)
}

struct Item {
    key: String,
    target_key: String,
    version: u32,
}

/// Stores the Rollouts, their Deployments and the templates; returns the Rollouts in order.
fn populate(api: &FakeApi, rollouts: usize, namespaces: usize, template: &Template) -> Vec<Item> {
    for n in 0..namespaces {
        let namespace = format!("team-{n:03}");
        api.insert(
            format!(
                "/apis/canarygate.dev/v1alpha1/namespaces/{namespace}/analysistemplates/generic-http"
            ),
            &json!({"apiVersion": "canarygate.dev/v1alpha1", "kind": "AnalysisTemplate",
                "metadata": {"name": "generic-http", "namespace": namespace, "uid": format!("t-{n}"),
                    "resourceVersion": "1"},
                "spec": template.file.spec}),
        );
    }
    let mut items = Vec::with_capacity(rollouts);
    for i in 0..rollouts {
        let class = i % 10;
        let namespace = format!("team-{:03}", i % namespaces);
        let name = name_of(i);
        let uid = format!("r-{i}");
        let owner = OwnerReference {
            api_version: "canarygate.dev/v1alpha1".into(),
            kind: "Rollout".into(),
            name: name.clone(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let deployments = format!("/apis/apps/v1/namespaces/{namespace}/deployments");
        let v1 = deployment(&namespace, &name, &image(&name, 1), 0);
        let rev1 = revision_of_value(&v1);
        let in_progress = matches!(class, 2..=7);
        let version = if in_progress { 2 } else { 1 };
        let replicas = if class == 9 { 4 } else { 0 };
        let target = deployment(&namespace, &name, &image(&name, version), replicas);
        let rev = revision_of_value(&target);
        let (status, stable_pods, canary) = match class {
            0 | 1 | 8 => (
                json!({"phase": "Healthy", "stableRevision": rev1, "replicas": REPLICAS,
                    "canaryWeight": 0}),
                REPLICAS,
                None,
            ),
            2..=4 => {
                let step = class - 2;
                let w = STEP_WEIGHTS[step];
                (
                    rolling(&rev1, &rev, "Progressing", step, 60.0 + 180.0 * step as f64),
                    REPLICAS - canary_pods(w),
                    Some(canary_pods(w)),
                )
            }
            5 => (
                rolling(&rev1, &rev, "Paused", 0, 600.0),
                REPLICAS - 1,
                Some(1),
            ),
            6 => (
                rolling(&rev1, &rev, "Holding", 0, 180.0),
                REPLICAS - 1,
                Some(1),
            ),
            7 => {
                let mut s = rolling(&rev1, &rev, "RolledBack", 0, 900.0);
                s["canaryWeight"] = json!(0);
                (s, REPLICAS, Some(0))
            }
            _ => (Value::Null, 0, None),
        };
        let mut rollout = RolloutBuilder::new(&name)
            .namespace(&namespace)
            .stored(&uid, 1, "1")
            .spec(spec(class, &name))
            .status(status);
        if class != 9 {
            rollout = rollout.finalized();
            api.insert(
                format!("{deployments}/{name}-stable"),
                &workload(&v1, &name, &owner, Role::Stable, stable_pods),
            );
        }
        if let Some(pods) = canary {
            api.insert(
                format!("{deployments}/{name}-canary"),
                &workload(&target, &name, &owner, Role::Canary, pods),
            );
        }
        let key = format!("/apis/canarygate.dev/v1alpha1/namespaces/{namespace}/rollouts/{name}");
        api.insert(key.clone(), &rollout.json());
        let target_key = format!("{deployments}/{name}");
        api.insert(target_key.clone(), &target);
        items.push(Item {
            key,
            target_key,
            version,
        });
    }
    items
}

/// Puts a new image on a target: a new revision to roll out.
fn change_image(api: &FakeApi, item: &mut Item) {
    item.version += 1;
    let version = item.version;
    api.update(&item.target_key, |target| {
        let name = target["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        target["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image(&name, version));
        let generation = target["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        target["metadata"]["generation"] = json!(generation);
    });
}

fn read_rollout(api: &FakeApi, key: &str) -> Rollout {
    let objects = api.objects.lock().expect("store lock");
    serde_json::from_slice(&objects[key]).expect("a valid Rollout")
}

// ---------------------------------------------------------------------------------------------
// Process memory.

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rss_mib() -> f64 {
    mib(proc_kib("VmRSS"))
}

/// CPU time of the calling thread, seconds (`/proc/thread-self/schedstat`; 0 if unavailable).
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The phase a Rollout was in, for latencies by phase.

const GROUPS: [&str; 5] = [
    "new (no status)",
    "Healthy",
    "under analysis (Progressing/Holding/Paused)",
    "Promoting",
    "RolledBack/Aborted/Degraded",
];

fn group_of(rollout: &Rollout) -> usize {
    use canary_gate::crd::rollout::RolloutPhase as P;
    match rollout.status.as_ref().and_then(|s| s.phase) {
        None => 0,
        Some(P::Healthy) => 1,
        Some(P::Progressing | P::Holding | P::Paused) => 2,
        Some(P::Promoting) => 3,
        Some(_) => 4,
    }
}

fn context(client: &kube::Client, metrics: &Arc<FakeMetrics>) -> Arc<Context> {
    Arc::new(Context {
        events: EventWriter::new(client.clone(), Some("bench-0".into())),
        ..Context::new(client.clone(), metrics.clone(), sim_clock)
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// The controller binary's allocator (src/main.rs), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let rollouts = env_usize("ROLLOUTS", 10_000).max(1);
    let namespaces = env_usize("NAMESPACES", 100).clamp(1, rollouts);
    let rounds = env_usize("ROUNDS", 50).max(2);
    let change_every = env_usize("CHANGE_EVERY", 10).max(1);
    let began = Instant::now();
    set_now(T0);

    let rss_start = rss_mib();
    let template = canary_gate::template::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analysis-templates/generic-http.yaml"
    )))
    .expect("the generic-http template");

    let api = Arc::new(FakeApi::new());
    let mut items = populate(&api, rollouts, namespaces, &template);
    let (stored_objects, stored_bytes) = api.size();
    let rss_populated = rss_mib();

    let service = {
        let api = api.clone();
        (move |request: axum::extract::Request| handle(api.clone(), request)).with_state(())
    };
    let client = kube::Client::new(service, "default");
    let metrics = Arc::new(FakeMetrics::new());
    let ctx = context(&client, &metrics);

    let mut total = LogHistogram::new();
    let mut controller_only = LogHistogram::new();
    let mut by_group: Vec<LogHistogram> = GROUPS.iter().map(|_| LogHistogram::new()).collect();
    let mut errors = 0u64;
    let mut first_errors: Vec<String> = Vec::new();
    let mut fake_sum = 0u64;
    let mut reconciles = 0u64;
    let mut image_changes = 0u64;
    let mut round_rates: Vec<f64> = Vec::with_capacity(rounds);
    let mut analysed_calls_per_round: Vec<u64> = Vec::with_capacity(rounds);
    let mut rss_after_round: Vec<f64> = Vec::with_capacity(rounds);
    let mut store_after_round: Vec<f64> = Vec::with_capacity(rounds);
    let load_before = load_average();
    let cpu_started = thread_cpu_seconds();
    let loop_started = Instant::now();

    for round in 0..rounds {
        set_now(T0 + round as f64 * ROUND_SECONDS);
        if round > 0 {
            for (i, item) in items.iter_mut().enumerate() {
                if (i + round) % change_every == 0 {
                    change_image(&api, item);
                    image_changes += 1;
                }
            }
        }
        let calls_before = metrics.calls.load(Ordering::Relaxed);
        let round_started = Instant::now();
        for item in &items {
            let rollout = read_rollout(&api, &item.key);
            let group = group_of(&rollout);
            let fake_before = fake_nanos();
            let started = Instant::now();
            let result = reconcile(Arc::new(rollout), ctx.clone()).await;
            let elapsed = nanos(started.elapsed());
            let fake = fake_nanos() - fake_before;
            fake_sum += fake;
            reconciles += 1;
            total.record(elapsed);
            controller_only.record(elapsed.saturating_sub(fake));
            by_group[group].record(elapsed.saturating_sub(fake));
            if let Err(e) = result {
                errors += 1;
                if first_errors.len() < 5 {
                    first_errors.push(format!("{}: {e}", item.key));
                }
            }
        }
        let seconds = round_started.elapsed().as_secs_f64();
        round_rates.push(items.len() as f64 / seconds);
        analysed_calls_per_round.push(metrics.calls.load(Ordering::Relaxed) - calls_before);
        rss_after_round.push(rss_mib());
        store_after_round.push(api.size().1 as f64 / 1024.0 / 1024.0);
        eprintln!(
            "round {:>3}/{rounds}: {:>6} reconciles in {seconds:6.2} s ({:>6.0}/s), {:>5} metric windows, RSS {:7.1} MiB, fake store {:5.1} MiB",
            round + 1,
            items.len(),
            items.len() as f64 / seconds,
            analysed_calls_per_round[round],
            rss_after_round[round],
            store_after_round[round],
        );
    }
    let loop_seconds = loop_started.elapsed().as_secs_f64();
    let loop_cpu_seconds = thread_cpu_seconds() - cpu_started;
    let load_after = load_average();
    let rss_end = rss_mib();
    let hwm_end = mib(proc_kib("VmHWM"));

    // The phases at the end of the week.
    let mut phases: BTreeMap<String, usize> = BTreeMap::new();
    for item in &items {
        let phase = api
            .get(&item.key)
            .and_then(|r| r["status"]["phase"].as_str().map(str::to_string))
            .unwrap_or_else(|| "(none)".into());
        *phases.entry(phase).or_default() += 1;
    }
    let (_, stored_bytes_end) = api.size();
    let requests: Vec<u64> = KINDS.iter().map(|(k, _, _)| api.count(*k)).collect();
    let calls = metrics.calls.load(Ordering::Relaxed);
    let range_queries = metrics.range_queries.load(Ordering::Relaxed);
    let intervals = metrics.intervals.load(Ordering::Relaxed);
    let max_intervals = metrics.max_intervals.load(Ordering::Relaxed);
    let render_ns = metrics.render_nanos.load(Ordering::Relaxed);

    // A Rollout paused for a week: the judge's window then spans 7 days.
    let week_paused = {
        let i = (0..items.len()).find(|i| i % 10 == 5);
        match i {
            None => None,
            Some(i) => {
                let now = T0 + rounds as f64 * ROUND_SECONDS;
                set_now(now);
                let item = &mut items[i];
                change_image(&api, item);
                let canary = revision_of_value(&api.get(&item.target_key).expect("the target"));
                api.update(&item.key, |rollout| {
                    let status = &mut rollout["status"];
                    let since = rfc3339(now - 7.0 * 86_400.0);
                    status["phase"] = json!("Paused");
                    status["canaryRevision"] = json!(canary);
                    status["startedAt"] = json!(since);
                    status["stepStartedAt"] = json!(since);
                    status["currentStepIndex"] = json!(0);
                    status["canaryWeight"] = json!(10);
                    status["stepHistory"] = json!([{"step": 0, "startedAt": since}]);
                });
                // Cold: a fresh context (a restarted controller) replays the whole window.
                let cold_ctx = context(&client, &metrics);
                let intervals_before = metrics.intervals.load(Ordering::Relaxed);
                let rollout = read_rollout(&api, &item.key);
                let fake_before = fake_nanos();
                let started = Instant::now();
                if let Err(e) = reconcile(Arc::new(rollout), cold_ctx.clone()).await {
                    eprintln!("week-paused reconcile failed: {e}");
                }
                let cold = nanos(started.elapsed()).saturating_sub(fake_nanos() - fake_before);
                let replayed = metrics.intervals.load(Ordering::Relaxed) - intervals_before;
                // Warm: the next minutes judge one new interval each.
                let mut warm = LogHistogram::new();
                let intervals_before = metrics.intervals.load(Ordering::Relaxed);
                let calls_before = metrics.calls.load(Ordering::Relaxed);
                for minute in 1..=5 {
                    set_now(now + 60.0 * f64::from(minute));
                    let rollout = read_rollout(&api, &item.key);
                    let fake_before = fake_nanos();
                    let started = Instant::now();
                    let result = reconcile(Arc::new(rollout), cold_ctx.clone()).await;
                    let elapsed = nanos(started.elapsed());
                    warm.record(elapsed.saturating_sub(fake_nanos() - fake_before));
                    if let Err(e) = result {
                        eprintln!("week-paused reconcile failed: {e}");
                    }
                }
                let windows = metrics.calls.load(Ordering::Relaxed) - calls_before;
                let judged =
                    (metrics.intervals.load(Ordering::Relaxed) - intervals_before) / windows.max(1);
                Some((cold, replayed, warm.quantile(0.5), judged))
            }
        }
    };
    let runtime_seconds = began.elapsed().as_secs_f64();

    // ---- report
    let n = reconciles as f64;
    let rate = n / loop_seconds;
    let controller_seconds = (total.sum as f64 - fake_sum as f64) / 1e9;
    let simulated_minutes = rounds as f64 * ROUND_SECONDS / 60.0;
    let rss_second = rss_after_round[1];
    let growth = rss_end - rss_second;
    let store_growth = store_after_round[rounds - 1] - store_after_round[1];
    // Steady state: RSS rises and falls with the Event cache (and the allocator's pools), so the
    // peaks of the middle and the last third of the week are compared.
    let third = (rounds / 3).max(1);
    let (middle, last) = if rounds >= 3 {
        (third..2 * third, 2 * third..rounds)
    } else {
        (1..2, 1..rounds)
    };
    let peak = |of: &[f64], r: &std::ops::Range<usize>| {
        of[r.clone()].iter().copied().fold(0.0_f64, f64::max)
    };
    let (rss_middle, rss_last) = (
        peak(&rss_after_round, &middle),
        peak(&rss_after_round, &last),
    );
    let steady_growth = rss_last
        - rss_middle
        - (peak(&store_after_round, &last) - peak(&store_after_round, &middle));
    let flat = steady_growth <= NOISE_FRACTION * rss_middle;
    println!("canary-gate controller scale benchmark");
    println!("rollouts: {rollouts}");
    println!("namespaces: {namespaces}");
    println!(
        "rounds: {rounds} (60 simulated s each, {simulated_minutes:.0} simulated minutes; a new image every {change_every} rounds per Rollout)"
    );
    println!(
        "represents: {:.1} deploys per Rollout with their steps at real speed and the time between deploys cut out (defaults: a working week at one deploy per service per day)",
        (rounds - 1) as f64 / change_every as f64
    );
    println!(
        "image changes (new rollouts started): {image_changes} ({:.1} per Rollout)",
        image_changes as f64 / rollouts as f64
    );
    println!("reconciles: {reconciles}");
    println!("reconcile errors: {errors}");
    for e in &first_errors {
        println!("  error: {e}");
    }
    println!("run time (whole bench): {runtime_seconds:.1} s");
    println!("reconcile loop time: {loop_seconds:.1} s");
    println!();
    println!(
        "reconciles/s (wall, one core): {rate:.0}  [target >= {TARGET_RATE:.0}: {}]",
        verdict(rate >= TARGET_RATE)
    );
    let cpu_rate = n / loop_cpu_seconds.max(1e-9);
    println!(
        "reconciles per CPU second of the bench thread: {cpu_rate:.0}  [target >= {TARGET_RATE:.0}: {}]",
        verdict(cpu_rate >= TARGET_RATE)
    );
    println!(
        "CPU time of the reconcile loop: {loop_cpu_seconds:.1} s ({:.0} % of wall; less means other processes took the core)",
        100.0 * loop_cpu_seconds / loop_seconds
    );
    println!(
        "machine: {} CPUs, load average {load_before} before the loop, {load_after} after",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!(
        "reconciles/s excluding fake I/O (controller time only): {:.0}",
        n / controller_seconds.max(1e-9)
    );
    println!(
        "reconciles/s first round: {:.0}",
        round_rates.first().copied().unwrap_or(0.0)
    );
    println!(
        "reconciles/s last round: {:.0}",
        round_rates.last().copied().unwrap_or(0.0)
    );
    println!(
        "reconciles/s slowest round: {:.0}",
        round_rates.iter().copied().fold(f64::INFINITY, f64::min)
    );
    println!(
        "reconcile latency p50 (incl. fake): {:.1} us",
        us(total.quantile(0.5))
    );
    println!(
        "reconcile latency p99 (incl. fake): {:.1} us",
        us(total.quantile(0.99))
    );
    println!(
        "reconcile latency max (incl. fake): {:.1} us",
        us(total.max)
    );
    println!(
        "reconcile latency mean (incl. fake): {:.1} us",
        total.mean() / 1000.0
    );
    println!(
        "fake I/O time per reconcile (API + metrics, mean): {:.1} us",
        fake_sum as f64 / n / 1000.0
    );
    println!(
        "  fake API server per reconcile (mean): {:.1} us",
        FAKE_API_NANOS.load(Ordering::Relaxed) as f64 / n / 1000.0
    );
    println!(
        "  fake metrics source per reconcile (mean): {:.1} us",
        FAKE_METRIC_NANOS.load(Ordering::Relaxed) as f64 / n / 1000.0
    );
    println!(
        "reconcile latency p50 (excluding fake I/O): {:.1} us",
        us(controller_only.quantile(0.5))
    );
    println!(
        "reconcile latency p99 (excluding fake I/O): {:.1} us",
        us(controller_only.quantile(0.99))
    );
    println!(
        "reconcile latency max (excluding fake I/O): {:.1} us",
        us(controller_only.max)
    );
    for (name, h) in GROUPS.iter().zip(&by_group) {
        if h.n == 0 {
            continue;
        }
        println!(
            "  {name}: {} reconciles, p50 {:.1} us, p99 {:.1} us (excluding fake I/O)",
            h.n,
            us(h.quantile(0.5)),
            us(h.quantile(0.99))
        );
    }
    println!();
    let all: u64 = requests.iter().sum();
    println!(
        "API requests per reconcile: {:.2} ({:.0} requests/s)",
        all as f64 / n,
        all as f64 / loop_seconds
    );
    for method in ["GET", "PATCH", "POST", "PUT", "OTHER"] {
        let count: u64 = KINDS
            .iter()
            .zip(&requests)
            .filter(|((_, m, _), _)| *m == method)
            .map(|(_, c)| *c)
            .sum();
        if count > 0 || method != "OTHER" {
            println!("  {method} per reconcile: {:.3}", count as f64 / n);
        }
    }
    for ((_, method, what), count) in KINDS.iter().zip(&requests) {
        if *count > 0 {
            println!(
                "    {method} {what}: {:.3} per reconcile",
                *count as f64 / n
            );
        }
    }
    println!();
    let per_minute = calls as f64 / rounds as f64;
    println!(
        "metric windows (MetricWindows::window calls): {calls} ({:.3} per reconcile)",
        calls as f64 / n
    );
    // As counted by the fake while it rendered each window's PromQL.
    let queries_per_window = range_queries as f64 / calls.max(1) as f64;
    println!("range queries per window (generic-http): {queries_per_window}");
    println!(
        "metric queries/s at bench speed: {:.0} windows/s, {:.0} range queries/s",
        calls as f64 / loop_seconds,
        range_queries as f64 / loop_seconds
    );
    println!(
        "metric queries/s at the controller's pace (one window per analysed Rollout per minute): {:.1} windows/s, {:.1} range queries/s",
        per_minute / 60.0,
        per_minute * queries_per_window / 60.0
    );
    println!(
        "intervals per window: mean {:.1}, max {max_intervals}",
        intervals as f64 / calls.max(1) as f64
    );
    println!(
        "PromQL rendering per window (controller time, included above): {:.1} us",
        render_ns as f64 / calls.max(1) as f64 / 1000.0
    );
    if let Some((cold, replayed, warm, judged)) = week_paused {
        println!(
            "reconcile of a Rollout paused for 7 days, excluding fake I/O: cold (restarted controller) {:.1} ms replaying {replayed} intervals; warm p50 {:.3} ms judging {judged} interval(s) per minute",
            cold as f64 / 1e6,
            warm as f64 / 1e6
        );
    }
    println!();
    println!("RSS at start: {rss_start:.1} MiB");
    println!(
        "fake API store: {stored_objects} objects, {:.1} MiB as JSON",
        stored_bytes as f64 / 1024.0 / 1024.0
    );
    println!(
        "fake API store at the end: {:.1} MiB as JSON",
        stored_bytes_end as f64 / 1024.0 / 1024.0
    );
    println!("RSS after populating (mostly the fake store): {rss_populated:.1} MiB");
    println!("RSS after round 1: {:.1} MiB", rss_after_round[0]);
    println!("RSS after round 2: {rss_second:.1} MiB");
    println!("RSS at the end of the week: {rss_end:.1} MiB");
    println!(
        "RSS growth from round 2 to the end: {growth:+.1} MiB ({:+.1} %)",
        100.0 * growth / rss_second
    );
    println!(
        "  of which the fake store's growth (statuses filling their decision records): {store_growth:+.1} MiB"
    );
    println!(
        "peak RSS in rounds {}-{}: {rss_middle:.1} MiB",
        middle.start + 1,
        middle.end
    );
    println!(
        "peak RSS in rounds {}-{}: {rss_last:.1} MiB",
        last.start + 1,
        last.end
    );
    println!(
        "steady-state RSS growth (last vs middle third of the week, peaks, without the fake store's growth): {steady_growth:+.1} MiB ({:+.1} %)  [target flat, <= {:.0} % noise: {}]",
        100.0 * steady_growth / rss_middle,
        NOISE_FRACTION * 100.0,
        verdict(flat)
    );
    println!(
        "peak RSS (VmHWM): {hwm_end:.1} MiB  [target < {TARGET_RSS_MIB:.0} MiB at 10000 Rollouts: {}]",
        if rollouts == 10_000 {
            verdict(hwm_end < TARGET_RSS_MIB)
        } else {
            "n/a at this count"
        }
    );
    println!();
    println!("phases at the end of the week:");
    for (phase, count) in &phases {
        println!("  {phase}: {count}");
    }
    // The fake store and the runtime need no tearing down.
    std::process::exit(0);
}
