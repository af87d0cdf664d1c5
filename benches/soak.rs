//! Soak of the real process: the `canary-gate controller` binary against a real kube-apiserver
//! and etcd (the test suite's, `scripts/kube-apiserver-run`) with N Rollouts, a loopback fake
//! Prometheus serving clean and failing canaries, and a fake kubelet; printed every 10 s, then a
//! table per N.
//!
//! # What it does
//!
//! For each N it starts a fresh API server and etcd, applies `deploy/crds/`, and creates N
//! namespaces `soak-<i>`, each with a Deployment `app` (2 replicas), an AnalysisTemplate `http`
//! (the error-rate and latency comparison of `generic-http`, its 1m interval unless
//! `SOAK_INTERVAL` says otherwise) and a Rollout `app` (replica ratio; steps 10 % → two intervals
//! → 50 % → two intervals, every step gated by the template). Then it
//! starts the controller as a user runs it (release binary, leader election on a Lease, the
//! gate served, logs at info to a file), waits until every Rollout is adopted, and soaks: every
//! minute it changes the image of every 10th Deployment (a different tenth each minute, so each
//! Deployment gets a new revision every 10 minutes), and in the first minute of the soak it
//! also touches a label on a tenth of the Rollouts while they are healthy, to measure what a
//! healthy Rollout's reconcile costs.
//!
//! There is no kubelet or Deployment controller: a watch in this process on every Deployment
//! writes what they would (`status`: every pod updated, ready and available on the current
//! generation). The fake Prometheus answers the template's range queries from the query's own
//! `service` label: 90 stable and 10 canary requests per second, 1 % errors on both —
//! except the Rollouts `soak-<i>` with `(i / 10) % 5 == 0` (a fifth of each minute's changes), whose
//! canary serves 30 % errors and is rolled back. It records every query's window: an analysed Rollout that is judged every
//! interval asks for one interval at a time, and one the controller got to late asks for more —
//! the "starved" count is the queries whose window spans more than 2 intervals (a whole interval
//! went by unjudged).
//!
//! # What it prints
//!
//! Every 10 s: the controller's VmRSS and VmHWM, its CPU use (share of one core), reconciles/s
//! and API requests per reconcile (both from its `/metrics`; requests are counted under the kube
//! client by verb, watches apart), watches started (the first ones are the initial watches;
//! more are restarts), the work queue's backlog (Rollouts whose timed reconcile is overdue, and
//! passes due but not started: `queued`) and the mean lag of timed reconciles that started late, Prometheus queries/s and starved queries, and the API server's and etcd's
//! RSS. At the end of each N: steady-state figures over the soak (last third vs middle third of
//! RSS samples, requests per reconcile overall and for healthy Rollouts, reconcile rate, the
//! Rollouts' phases) against the targets.
//!
//! # How to run
//!
//! ```text
//! cargo bench --bench soak                              # N = 1000, 3000, 10000
//! SOAK_N=1000 SOAK_MINUTES=5 cargo bench --bench soak   # one quick size
//! ```
//!
//! Environment: `SOAK_N` (comma list, default `1000,3000,10000`), `SOAK_MINUTES` (comma list,
//! one per N or one for all; default `10,10,30`), `SOAK_CONCURRENCY` (the controller's
//! `--concurrency`, default its own), `SOAK_LOG` (the controller's log file, default a temp
//! file), `SOAK_INTERVAL` (the template's interval in seconds, default 60). Needs the
//! kube-apiserver that `scripts/kube-apiserver-build` caches and `etcd` (`scripts/test` installs
//! both).

#[allow(dead_code)]
#[path = "../tests/support/apiserver.rs"]
mod apiserver;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiserver::{ApiServer, create_namespace, install_crds};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");
/// The template's interval, seconds (`SOAK_INTERVAL`, default 60: the shipped templates' 1m);
/// each step pauses two intervals.
static INTERVAL: std::sync::LazyLock<f64> = std::sync::LazyLock::new(|| {
    std::env::var("SOAK_INTERVAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v >= 1.0)
        .unwrap_or(60.0)
});
/// Parallel requests of this harness (creating objects, changing images, the fake kubelet).
const PARALLEL: usize = 24;

fn main() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("install the ring crypto provider");
    let sizes: Vec<usize> = env_list("SOAK_N", "1000,3000,10000");
    let minutes: Vec<usize> = env_list("SOAK_MINUTES", "10,10,30");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut summaries = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let soak = minutes.get(i).or(minutes.last()).copied().unwrap_or(10);
        summaries.push(runtime.block_on(run(n, soak)));
    }
    println!(
        "\n== soak summary (targets at N = 10 000: RSS < 256 MiB and flat within 5 %, no starved query, ≤ 2 API requests per healthy reconcile)"
    );
    println!(
        "{:>6} {:>5} {:>9} {:>10} {:>10} {:>8} {:>11} {:>11} {:>10} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "N",
        "min",
        "adopt s",
        "RSS MiB",
        "HWM MiB",
        "flat %",
        "req/rec all",
        "req/rec hlt",
        "rec/s",
        "CPU %",
        "starved",
        "overdue",
        "watches",
        "apisrv MiB",
        "etcd MiB"
    );
    for s in &summaries {
        println!(
            "{:>6} {:>5} {:>9.0} {:>10.1} {:>10.1} {:>+8.1} {:>11.2} {:>11.2} {:>10.1} {:>9.0} {:>8} {:>8.0} {:>8} {:>10.0} {:>10.0}",
            s.n,
            s.minutes,
            s.adoption_seconds,
            s.rss_last_mib,
            s.hwm_mib,
            s.flat_percent,
            s.requests_per_reconcile,
            s.healthy_requests_per_reconcile,
            s.reconciles_per_second,
            s.cpu_percent,
            s.starved,
            s.max_overdue,
            s.watches,
            s.apiserver_mib,
            s.etcd_mib
        );
    }
    for s in &summaries {
        println!(
            "N = {}: phases at the end {:?}; queries {} (window p50 {:.0} s, p99 {:.0} s, max {:.0} s); a Rollout's JSON {:.1} KiB as stored, {:.1} KiB without managedFields, of which its decision record {:.1} KiB",
            s.n,
            s.phases,
            s.queries,
            s.window_p50,
            s.window_p99,
            s.window_max,
            s.sizes.0 / 1024.0,
            s.sizes.1 / 1024.0,
            s.sizes.2 / 1024.0
        );
        let by: Vec<String> = s
            .by_request
            .iter()
            .map(|(k, per)| format!("{k} {per:.3}"))
            .collect();
        println!(
            "N = {}: API requests per reconcile by verb and resource: {}",
            s.n,
            by.join(", ")
        );
    }
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number"))
        })
        .collect()
}

/// One size's figures.
struct Summary {
    n: usize,
    minutes: usize,
    adoption_seconds: f64,
    rss_last_mib: f64,
    hwm_mib: f64,
    flat_percent: f64,
    requests_per_reconcile: f64,
    healthy_requests_per_reconcile: f64,
    reconciles_per_second: f64,
    cpu_percent: f64,
    starved: u64,
    max_overdue: f64,
    watches: u64,
    apiserver_mib: f64,
    etcd_mib: f64,
    phases: BTreeMap<String, usize>,
    /// Mean JSON bytes of a Rollout: stored, without managedFields, its decision record.
    sizes: (f64, f64, f64),
    queries: u64,
    window_p50: f64,
    window_p99: f64,
    window_max: f64,
    /// API requests per reconcile over the soak, by `verb resource` (watches apart).
    by_request: Vec<(String, f64)>,
}

async fn run(n: usize, minutes: usize) -> Summary {
    eprintln!("== N = {n}: starting the API server");
    let server = ApiServer::start();
    let client = server.client().await;
    install_crds(&client).await;
    create_namespace(&client, "canary-gate-system").await;

    let prometheus = FakePrometheus::start().await;
    let kubelet = tokio::spawn(fake_kubelet(client.clone()));

    let started = Instant::now();
    populate(&client, n).await;
    eprintln!(
        "   created {n} namespaces, Deployments, AnalysisTemplates and Rollouts in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let mut controller = Controller::start(&server, &prometheus.url);
    controller.wait_ready().await;
    let adopting = Instant::now();
    wait_adopted(&client, n).await;
    // Adopted means each Rollout's first pass is done; the passes that follow (creating the
    // stable workloads, handing the targets' pods over) must be done too before the healthy
    // window measures an idle Rollout's cost.
    controller.wait_caught_up(&prometheus).await;
    let adoption_seconds = adopting.elapsed().as_secs_f64();
    eprintln!("   every Rollout adopted and the work queue empty in {adoption_seconds:.0} s");

    let mut samples: Vec<Sample> = Vec::new();
    let mut previous = controller.sample(&prometheus).await;
    let soak_started = Instant::now();
    let soak = Duration::from_secs(60 * minutes as u64);
    let mut minute = 0usize;
    let mut healthy_window: Option<(Sample, Sample)> = None;
    println!(
        "\nN = {n}: {:>5} {:>8} {:>8} {:>6} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>9} {:>8}",
        "t s",
        "RSS MiB",
        "HWM MiB",
        "CPU %",
        "rec/s",
        "req/rec",
        "watches",
        "overdue",
        "queued",
        "lag s",
        "prom q/s",
        "starved",
        "apisrv MiB",
        "etcd MiB"
    );
    while soak_started.elapsed() < soak {
        let elapsed = soak_started.elapsed();
        if elapsed >= Duration::from_secs(60 * minute as u64) {
            if minute == 0 {
                // Healthy Rollouts first: a label on a tenth of them, each one reconcile.
                let before = controller.sample(&prometheus).await;
                touch_rollouts(&client, n).await;
                tokio::time::sleep(Duration::from_secs(15)).await;
                let after = controller.sample(&prometheus).await;
                healthy_window = Some((before, after));
            }
            change_images(&client, n, minute).await;
            minute += 1;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let now = controller.sample(&prometheus).await;
        let line = now.line_since(&previous, soak_started.elapsed().as_secs_f64());
        println!("N = {n}: {line}");
        samples.push(now.clone());
        previous = now;
    }
    let phases = count_phases(&client).await;
    let sizes = rollout_sizes(&client).await;
    let last = samples.last().cloned().unwrap_or_else(|| previous.clone());
    let first = samples.first().cloned().unwrap_or_else(|| previous.clone());
    controller.stop();
    kubelet.abort();

    let third = samples.len() / 3;
    let peak = |s: &[Sample]| s.iter().map(|x| x.rss_kib).max().unwrap_or(0) as f64;
    let (middle, end) = (
        peak(&samples[third..2 * third.max(1).min(samples.len())]),
        peak(&samples[(2 * third).min(samples.len())..]),
    );
    let (healthy_before, healthy_after) = healthy_window.expect("the healthy window ran");
    let windows = prometheus.windows();
    Summary {
        n,
        minutes,
        adoption_seconds,
        rss_last_mib: last.rss_kib as f64 / 1024.0,
        hwm_mib: last.hwm_kib as f64 / 1024.0,
        flat_percent: if middle > 0.0 {
            100.0 * (end - middle) / middle
        } else {
            0.0
        },
        requests_per_reconcile: last.requests_per_reconcile_since(&first),
        healthy_requests_per_reconcile: healthy_after.requests_per_reconcile_since(&healthy_before),
        reconciles_per_second: (last.reconciles - first.reconciles)
            / (last.at - first.at).max(1e-9),
        cpu_percent: 100.0 * (last.cpu_seconds - first.cpu_seconds)
            / (last.at - first.at).max(1e-9),
        starved: last.starved,
        max_overdue: samples.iter().map(|s| s.overdue).fold(0.0, f64::max),
        watches: last.watches,
        apiserver_mib: last.apiserver_kib as f64 / 1024.0,
        etcd_mib: last.etcd_kib as f64 / 1024.0,
        phases,
        sizes,
        queries: last.queries,
        window_p50: quantile(&windows, 0.5),
        window_p99: quantile(&windows, 0.99),
        window_max: windows.iter().copied().fold(0.0, f64::max),
        by_request: {
            let reconciles = (last.reconciles - first.reconciles).max(1.0);
            let mut v: Vec<(String, f64)> = last
                .by_request
                .iter()
                .map(|(k, n)| {
                    let before = first.by_request.get(k).copied().unwrap_or(0.0);
                    (k.clone(), (n - before) / reconciles)
                })
                .filter(|(_, per)| *per > 0.0)
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1));
            v
        },
    }
}

fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Creates the namespaces, templates, Deployments and Rollouts, `PARALLEL` requests at a time.
async fn populate(client: &Client, n: usize) {
    futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            async move {
                let ns = format!("soak-{i}");
                create_namespace(&client, &ns).await;
                create(&client, &ns, template()).await;
                create(&client, &ns, app_deployment()).await;
                create(&client, &ns, rollout(&ns)).await;
            }
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
}

async fn create(client: &Client, namespace: &str, object: serde_json::Value) {
    let gvk = kube::core::GroupVersionKind::try_from(&kube::core::TypeMeta {
        api_version: object["apiVersion"].as_str().unwrap_or_default().into(),
        kind: object["kind"].as_str().unwrap_or_default().into(),
    })
    .expect("a known kind");
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .expect("the API server serves the kind");
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource);
    let object: kube::api::DynamicObject = serde_json::from_value(object).expect("an object");
    let mut attempt = 0;
    loop {
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => return,
            Err(e) if attempt < 5 => {
                attempt += 1;
                eprintln!("   retrying a create in {namespace}: {e}");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => panic!("create {} in {namespace}: {e}", object.name_any()),
        }
    }
}

fn template() -> serde_json::Value {
    json!({
        "apiVersion": "canarygate.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "http"},
        "spec": {
            "args": [{"name": "service"}],
            "versionLabel": "version",
            "interval": format!("{}s", *INTERVAL),
            "alpha": 0.01,
            "policy": {"holdBudget": "5m", "onInconclusive": "pause"},
            "metrics": [
                {"name": "error-rate", "kind": "errorRate", "critical": true,
                 "query": {
                    "errors": "sum by (version) (increase(http_requests_total{service=\"{{args.service}}\", code=~\"5..\"}[{{interval}}]))",
                    "requests": "sum by (version) (increase(http_requests_total{service=\"{{args.service}}\"}[{{interval}}]))"},
                 "compare": {"direction": "increase", "tolerance": 0}},
                {"name": "latency", "kind": "latency",
                 "query": {"buckets": "sum by (version, le) (increase(http_request_duration_seconds_bucket{service=\"{{args.service}}\"}[{{interval}}]))"},
                 "compare": {"direction": "increase", "tolerance": 0.05}}
            ]
        }
    })
}

fn app_deployment() -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:0",
                    "ports": [{"containerPort": 8080}],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]}}}
    })
}

fn rollout(namespace: &str) -> serde_json::Value {
    json!({
        "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "app"},
        "spec": {
            "targetRef": {"name": "app"},
            "strategy": {"canary": {
                "analysis": {"templates": [{"templateName": "http"}], "args": [{"name": "service", "value": namespace}]},
                "steps": [{"setWeight": 10}, {"pause": {"duration": format!("{}s", 2.0 * *INTERVAL)}},
                          {"setWeight": 50}, {"pause": {"duration": format!("{}s", 2.0 * *INTERVAL)}}]
            }}
        }
    })
}

/// Waits until every Rollout is past adoption (a phase other than none).
async fn wait_adopted(client: &Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let phases = count_phases(client).await;
        let adopted: usize = phases
            .iter()
            .filter(|(p, _)| p.as_str() != "none")
            .map(|(_, c)| c)
            .sum();
        eprintln!("   adopted {adopted} of {n}: {phases:?}");
        if adopted >= n {
            return;
        }
        assert!(Instant::now() < deadline, "Rollouts not adopted in 30 min");
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// The Rollouts' phases (a paged list, 500 at a time).
async fn count_phases(client: &Client) -> BTreeMap<String, usize> {
    let api: Api<canary_gate::crd::Rollout> = Api::all(client.clone());
    let mut phases = BTreeMap::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.expect("list Rollouts");
        for r in &page.items {
            let phase = r
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map_or("none".to_string(), |p| format!("{p:?}"));
            *phases.entry(phase).or_insert(0) += 1;
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return phases,
        }
    }
}

/// Mean JSON size of a Rollout as stored, without its managedFields, and of its decision record
/// (bytes): what the controller's Rollout cache holds, decoded.
async fn rollout_sizes(client: &Client) -> (f64, f64, f64) {
    let api: Api<canary_gate::crd::Rollout> = Api::all(client.clone());
    let (mut whole, mut bare, mut decisions, mut n) = (0usize, 0usize, 0usize, 0usize);
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.expect("list Rollouts");
        for r in &page.items {
            whole += serde_json::to_vec(r).map_or(0, |v| v.len());
            let mut r = r.clone();
            r.metadata.managed_fields = None;
            bare += serde_json::to_vec(&r).map_or(0, |v| v.len());
            decisions += r
                .status
                .as_ref()
                .and_then(|s| serde_json::to_vec(&s.decisions).ok())
                .map_or(0, |v| v.len());
            n += 1;
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let n = n.max(1) as f64;
    (whole as f64 / n, bare as f64 / n, decisions as f64 / n)
}

/// A new image on every 10th target Deployment (a different tenth each minute).
async fn change_images(client: &Client, n: usize, minute: usize) {
    let started = Instant::now();
    let changed = futures::stream::iter((0..n).filter(|i| i % 10 == minute % 10))
        .map(|i| {
            let client = client.clone();
            async move {
                let api: Api<Deployment> = Api::namespaced(client, &format!("soak-{i}"));
                let patch = json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": format!("registry.example/app:{}", minute + 1)}]}}}});
                api.patch("app", &PatchParams::default(), &Patch::Strategic(patch))
                    .await
                    .is_ok()
            }
        })
        .buffer_unordered(PARALLEL)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    eprintln!(
        "   minute {minute}: {changed} Deployments got a new image in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A label on every 10th Rollout: one reconcile each while they are healthy.
async fn touch_rollouts(client: &Client, n: usize) {
    futures::stream::iter((0..n).filter(|i| i % 10 == 5))
        .map(|i| {
            let client = client.clone();
            async move {
                let api: Api<canary_gate::crd::Rollout> =
                    Api::namespaced(client, &format!("soak-{i}"));
                let patch = json!({"metadata": {"labels": {"soak/touched": "yes"}}});
                let _ = api
                    .patch("app", &PatchParams::default(), &Patch::Merge(patch))
                    .await;
            }
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
}

/// The kubelet's and Deployment controller's part: every Deployment reports all its pods updated,
/// ready and available on its current generation.
async fn fake_kubelet(client: Client) {
    let api: Api<Deployment> = Api::all(client.clone());
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    events
        .try_filter_map(|d: Deployment| async move {
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = d.status.clone().unwrap_or_default();
            let settled = status.observed_generation == d.metadata.generation
                && status.replicas == Some(want)
                && status.updated_replicas == Some(want)
                && status.available_replicas == Some(want);
            Ok((!settled).then_some(d))
        })
        .for_each_concurrent(PARALLEL, |d| {
            let client = client.clone();
            async move {
                let Ok(d) = d else { return };
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let api: Api<Deployment> =
                    Api::namespaced(client, &d.namespace().unwrap_or_default());
                let status = json!({"status": {
                    "observedGeneration": d.metadata.generation,
                    "replicas": want, "updatedReplicas": want, "readyReplicas": want,
                    "availableReplicas": want,
                    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                   {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}});
                let _ = api
                    .patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(status))
                    .await;
            }
        })
        .await;
}

/// The loopback fake Prometheus and what it saw.
struct FakePrometheus {
    url: String,
    state: Arc<PromState>,
}

#[derive(Default)]
struct PromState {
    queries: AtomicU64,
    starved: AtomicU64,
    /// Window length (seconds) of every query.
    windows: Mutex<Vec<f64>>,
}

impl FakePrometheus {
    async fn start() -> Self {
        let state = Arc::new(PromState::default());
        let app = axum::Router::new()
            .route(
                "/api/v1/query_range",
                axum::routing::post({
                    let state = state.clone();
                    move |body: String| {
                        let state = state.clone();
                        async move { answer(&state, &body) }
                    }
                }),
            )
            .route(
                "/api/v1/format_query",
                axum::routing::post(|| async {
                    axum::Json(json!({"status": "success", "data": ""}))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Prometheus");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn windows(&self) -> Vec<f64> {
        self.state.windows.lock().expect("windows").clone()
    }
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn form(body: &str) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// A range query's answer: per-interval increases by version (and `le` for buckets).
fn answer(state: &PromState, body: &str) -> axum::Json<serde_json::Value> {
    let form = form(body);
    let query = form.get("query").cloned().unwrap_or_default();
    let number = |k: &str| {
        form.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (start, end, step) = (number("start"), number("end"), number("step").max(1.0));
    state.queries.fetch_add(1, Ordering::Relaxed);
    let window = end - start + step;
    // Judged every interval, a window holds one interval (two when the reconcile came a moment
    // after the boundary); more means a whole interval went by unjudged.
    if window > 2.0 * *INTERVAL + 1e-6 {
        state.starved.fetch_add(1, Ordering::Relaxed);
    }
    state.windows.lock().expect("windows").push(window);
    let service = query
        .split("service=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    // A fifth of every tenth that gets a new image in the same minute.
    let failing = service
        .strip_prefix("soak-")
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| (i / 10) % 5 == 0);
    let times: Vec<f64> = (0..)
        .map(|k| start + k as f64 * step)
        .take_while(|t| *t <= end + 1e-9)
        .collect();
    // Per second: 90 stable, 10 canary requests.
    let requests = |canary: bool| if canary { 10.0 } else { 90.0 } * step;
    let series = |labels: serde_json::Value, value: &dyn Fn(f64) -> f64| json!({"metric": labels, "values": times.iter().map(|t| json!([t, format!("{}", value(*t))])).collect::<Vec<_>>()});
    let mut result = Vec::new();
    for (version, canary) in [("stable", false), ("canary", true)] {
        if query.contains("_bucket") {
            // Latency: the same distribution for both versions.
            for (le, share) in [
                ("0.05", 0.5),
                ("0.1", 0.8),
                ("0.25", 0.95),
                ("0.5", 0.99),
                ("+Inf", 1.0),
            ] {
                let n = requests(canary);
                result.push(series(json!({"version": version, "le": le}), &move |_| {
                    (n * share).round()
                }));
            }
        } else if query.contains("code=~") {
            let rate = if canary && failing { 0.30 } else { 0.01 };
            let n = requests(canary);
            result.push(series(json!({"version": version}), &move |t| {
                // 1 % ± one error, varying by interval, so the judge sees noise.
                let wobble = ((t / *INTERVAL) as i64 % 3 - 1) as f64;
                (n * rate + wobble).max(0.0).round()
            }));
        } else {
            let n = requests(canary);
            result.push(series(json!({"version": version}), &move |_| n));
        }
    }
    axum::Json(json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
}

/// The controller process.
struct Controller {
    child: Child,
    url: String,
}

/// One look at the processes.
#[derive(Clone)]
struct Sample {
    at: f64,
    rss_kib: u64,
    hwm_kib: u64,
    cpu_seconds: f64,
    reconciles: f64,
    /// Requests other than watches, from the controller's `/metrics`.
    requests: f64,
    /// The same by `verb resource`.
    by_request: BTreeMap<String, f64>,
    /// Rollouts whose timed reconcile is overdue (the work queue's backlog).
    overdue: f64,
    /// Passes due and not started, and under way (the controller's work queue).
    queued: f64,
    running: f64,
    /// Timed reconciles that started late, and their summed lag (seconds).
    lag_count: f64,
    lag_sum: f64,
    watches: u64,
    queries: u64,
    starved: u64,
    apiserver_kib: u64,
    etcd_kib: u64,
}

impl Sample {
    fn requests_per_reconcile_since(&self, earlier: &Sample) -> f64 {
        let reconciles = self.reconciles - earlier.reconciles;
        if reconciles <= 0.0 {
            return 0.0;
        }
        (self.requests - earlier.requests) / reconciles
    }

    fn line_since(&self, earlier: &Sample, t: f64) -> String {
        let dt = (self.at - earlier.at).max(1e-9);
        format!(
            "{t:>5.0} {:>8.1} {:>8.1} {:>6.0} {:>7.1} {:>8.2} {:>7} {:>7.0} {:>7.0} {:>7.2} {:>8.1} {:>8} {:>9.0} {:>8.0}",
            self.rss_kib as f64 / 1024.0,
            self.hwm_kib as f64 / 1024.0,
            100.0 * (self.cpu_seconds - earlier.cpu_seconds) / dt,
            (self.reconciles - earlier.reconciles) / dt,
            self.requests_per_reconcile_since(earlier),
            self.watches,
            self.overdue,
            self.queued,
            {
                let n = self.lag_count - earlier.lag_count;
                if n > 0.0 {
                    (self.lag_sum - earlier.lag_sum) / n
                } else {
                    0.0
                }
            },
            (self.queries - earlier.queries) as f64 / dt,
            self.starved,
            self.apiserver_kib as f64 / 1024.0,
            self.etcd_kib as f64 / 1024.0
        )
    }
}

impl Controller {
    fn start(server: &ApiServer, prometheus: &str) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("address").port()
        };
        let log = std::env::var("SOAK_LOG").unwrap_or_else(|_| {
            std::env::temp_dir()
                .join(format!("canary-gate-soak-{}.log", std::process::id()))
                .display()
                .to_string()
        });
        let log_file = std::fs::File::create(&log).expect("create the controller log");
        eprintln!("   controller log: {log}");
        let mut args = vec![
            "controller".to_string(),
            "--prometheus".into(),
            prometheus.into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--lease-namespace".into(),
            "canary-gate-system".into(),
            "--identity".into(),
            "soak".into(),
        ];
        if let Ok(c) = std::env::var("SOAK_CONCURRENCY") {
            args.extend(["--concurrency".into(), c]);
        }
        let child = Command::new(BIN)
            .env("KUBECONFIG", &server.kubeconfig)
            .env("CANARY_GATE_LOG", "info")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start canary-gate controller");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.url)).await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "the controller was not ready");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until the controller has caught up: no pass waiting in its queue, none overdue.
    async fn wait_caught_up(&self, prometheus: &FakePrometheus) {
        let started = Instant::now();
        loop {
            let s = self.sample(prometheus).await;
            if s.queued == 0.0 && s.overdue == 0.0 {
                eprintln!(
                    "   the work queue emptied {:.0} s after adoption",
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1800),
                "the controller never caught up: {} queued, {} running, {} overdue",
                s.queued,
                s.running,
                s.overdue
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn sample(&self, prometheus: &FakePrometheus) -> Sample {
        let metrics = match reqwest::get(format!("{}/metrics", self.url)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let mut reconciles = 0.0;
        let mut requests = 0.0;
        let mut by_request = BTreeMap::new();
        let mut watches = 0;
        let (mut overdue, mut lag_count, mut lag_sum) = (0.0, 0.0, 0.0);
        let (mut queued, mut running) = (0.0, 0.0);
        for line in metrics.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(0.0);
            if name == "canary_gate_reconciles_total" {
                reconciles = value;
            } else if name == "canary_gate_reconciles_overdue" {
                overdue = value;
            } else if name == "canary_gate_work_queue_ready" {
                queued = value;
            } else if name == "canary_gate_work_queue_running" {
                running = value;
            } else if name == "canary_gate_reconcile_lag_seconds_count" {
                lag_count = value;
            } else if name == "canary_gate_reconcile_lag_seconds_sum" {
                lag_sum = value;
            } else if name.starts_with("canary_gate_kube_requests_total{") {
                if name.contains("verb=\"watch\"") {
                    watches += value as u64;
                } else {
                    requests += value;
                    let label = |key: &str| {
                        name.split(&format!("{key}=\""))
                            .nth(1)
                            .and_then(|v| v.split('"').next())
                            .unwrap_or("?")
                            .to_string()
                    };
                    *by_request
                        .entry(format!("{} {}", label("verb"), label("resource")))
                        .or_insert(0.0) += value;
                }
            }
        }
        let pid = self.child.id();
        let (rss_kib, hwm_kib) = memory(pid);
        Sample {
            at: Instant::now().duration_since(*EPOCH).as_secs_f64(),
            rss_kib,
            hwm_kib,
            cpu_seconds: cpu_seconds(pid),
            reconciles,
            requests,
            by_request,
            overdue,
            queued,
            running,
            lag_count,
            lag_sum,
            watches,
            queries: prometheus.state.queries.load(Ordering::Relaxed),
            starved: prometheus.state.starved.load(Ordering::Relaxed),
            apiserver_kib: process_rss("kube-apiserver"),
            etcd_kib: process_rss("etcd"),
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// VmRSS and VmHWM of a process, KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (in parentheses): utime and stime are the 14th and 15th fields.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // `after` starts at field 3 (state): utime is field 14 → index 11. Ticks are USER_HZ (100
    // on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

/// RSS (KiB) of the newest process whose command name is `name`.
fn process_rss(name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .max()
        .map_or(0, |pid| memory(pid).0)
}
