//! The `canary-gate controller` process against a real kube-apiserver: ready once its caches
//! synced, adopts a Rollout's running revision, starts a rollout when the Deployment's template
//! changes (through the Deployment watch), serves /metrics, and a second replica stays passive
//! until the leader is gone and its Lease has expired; and the controller's watches survive the
//! API server restarting under it.

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use canary_gate::crd::Rollout;
use canary_gate::crd::rollout::RolloutPhase;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::apiserver::{ApiServer, create_namespace, deployment, install_crds, pods_available};
use support::fixtures::RolloutBuilder;

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");
const NS: &str = "ctrl-test";
const LEASE_NS: &str = "canary-gate-system";

/// A controller replica, stopped with SIGTERM when dropped.
struct Replica {
    child: Child,
    url: String,
}

impl Replica {
    fn start(server: &ApiServer, identity: &str) -> Self {
        Self::with_lease(server, identity, "3s")
    }

    fn with_lease(server: &ApiServer, identity: &str, lease: &str) -> Self {
        Self::with_args(server, identity, lease, &[])
    }

    fn with_args(server: &ApiServer, identity: &str, lease: &str, extra: &[&str]) -> Self {
        let port = support::free_port();
        let child = Command::new(BIN)
            .env("KUBECONFIG", &server.kubeconfig)
            .env("CANARY_GATE_LOG", "info")
            .args([
                "controller",
                "--prometheus",
                "http://127.0.0.1:9",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--lease-namespace",
                LEASE_NS,
                "--identity",
                identity,
                "--lease-duration",
                lease,
            ])
            .args(extra)
            .spawn()
            .expect("start canary-gate controller");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    async fn wait_ready(&self) {
        eventually("the replica ready", Duration::from_secs(30), || async {
            self.get("/readyz").await.is_some_and(|(s, _)| s == 200)
        })
        .await;
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::get(format!("{}{path}", self.url)).await.ok()?;
        Some((r.status().as_u16(), r.text().await.ok()?))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An API server with the CRDs and the test and Lease namespaces, and an admin client.
async fn cluster() -> (ApiServer, kube::Client) {
    support::init_crypto();
    let server = ApiServer::start();
    let client = server.client().await;
    install_crds(&client).await;
    for ns in [NS, LEASE_NS] {
        create_namespace(&client, ns).await;
    }
    (server, client)
}

#[tokio::test]
async fn the_controller_process_reconciles_and_elects_one_leader() {
    let (server, client) = cluster().await;
    // A lease of a minute: replica-b can take over within seconds only if replica-a gives it up.
    let a = Replica::with_lease(&server, "replica-a", "60s");
    a.wait_ready().await;
    assert_eq!(a.get("/livez").await.map(|r| r.0), Some(200));

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments
        .create(&PostParams::default(), &deployment("web:1"))
        .await
        .unwrap();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let rollout = RolloutBuilder::new("web").build();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();
    let phase = |rollouts: Api<Rollout>| async move {
        rollouts
            .get("web")
            .await
            .ok()
            .and_then(|r| r.status)
            .and_then(|s| s.phase)
    };
    eventually(
        "the Rollout adopted as Healthy",
        Duration::from_secs(20),
        || {
            let r = rollouts.clone();
            async move { phase(r).await == Some(RolloutPhase::Healthy) }
        },
    )
    .await;

    // A new image: the Deployment watch wakes the Rollout, which starts at step 0, 10 %.
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})))
        .await
        .unwrap();
    eventually("the rollout started", Duration::from_secs(20), || {
        let r = rollouts.clone();
        async move { phase(r).await == Some(RolloutPhase::Progressing) }
    })
    .await;
    let status = rollouts.get("web").await.unwrap().status.unwrap();
    assert_eq!(
        (status.current_step_index, status.canary_weight),
        (Some(0), Some(0)),
        "step 0 waits for the canary's pod: {:?}",
        status.message
    );
    // The pods come up (set by hand: no kubelet here); the workloads' watch wakes the Rollout
    // and step 0's 10 % comes into force.
    eventually("the canary workload", Duration::from_secs(20), || {
        let d = deployments.clone();
        async move { d.get("web-canary").await.is_ok() }
    })
    .await;
    pods_available(&client, NS, "web-stable", None, json!([])).await;
    pods_available(&client, NS, "web-canary", None, json!([])).await;
    eventually("10 % in force", Duration::from_secs(20), || {
        let r = rollouts.clone();
        async move {
            r.get("web")
                .await
                .ok()
                .and_then(|r| r.status)
                .and_then(|s| s.canary_weight)
                == Some(10)
        }
    })
    .await;
    let (code, metrics) = a.get("/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("canary_gate_reconciles_total"),
        "{metrics}"
    );

    // A second replica stays passive while replica-a holds the lease …
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NS);
    let holder = |leases: Api<Lease>| async move {
        leases
            .get("canary-gate-controller")
            .await
            .ok()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    };
    let mut a = a;
    let b = Replica::start(&server, "replica-b");
    eventually("replica-b alive", Duration::from_secs(10), || async {
        b.get("/livez").await.is_some_and(|(s, _)| s == 200)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(holder(leases.clone()).await.as_deref(), Some("replica-a"));
    assert_ne!(
        b.get("/readyz").await.map(|r| r.0),
        Some(200),
        "a standby replica does not run the controller"
    );

    // … and takes over as soon as replica-a stops on SIGTERM and releases the lease (it would
    // otherwise hold it for a minute).
    a.stop();
    eventually("replica-b to lead", Duration::from_secs(15), || {
        let l = leases.clone();
        async move { holder(l).await.as_deref() == Some("replica-b") }
    })
    .await;
    b.wait_ready().await;
}

#[tokio::test]
async fn the_controllers_watches_survive_an_api_server_restart() {
    let (server, client) = cluster().await;
    // A lease long enough to outlive the restart: this is about the watches, not the lease.
    let replica = Replica::with_lease(&server, "replica-a", "120s");
    replica.wait_ready().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let create = |name: &'static str| {
        let (deployments, rollouts) = (deployments.clone(), rollouts.clone());
        async move {
            let mut d = deployment(&format!("{name}:1"));
            d.metadata.name = Some(name.into());
            deployments
                .create(&PostParams::default(), &d)
                .await
                .unwrap();
            let rollout = RolloutBuilder::new(name).build();
            rollouts
                .create(&PostParams::default(), &rollout)
                .await
                .unwrap();
        }
    };
    let phase_is = |name: &'static str, want: RolloutPhase| {
        let rollouts = rollouts.clone();
        move || {
            let rollouts = rollouts.clone();
            async move {
                rollouts
                    .get(name)
                    .await
                    .ok()
                    .and_then(|r| r.status)
                    .and_then(|s| s.phase)
                    == Some(want)
            }
        }
    };
    create("web").await;
    eventually(
        "web adopted",
        Duration::from_secs(20),
        phase_is("web", RolloutPhase::Healthy),
    )
    .await;

    let down = Instant::now();
    server.restart();
    let outage = down.elapsed();
    eprintln!("API server back after {:.1} s", outage.as_secs_f64());

    // The Deployment watch is back: a new image starts web's rollout …
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})))
        .await
        .unwrap();
    eventually(
        "web's rollout started after the restart",
        Duration::from_secs(60),
        phase_is("web", RolloutPhase::Progressing),
    )
    .await;
    // … and the Rollout watch too: a Rollout created after the restart is adopted.
    create("api").await;
    eventually(
        "api adopted after the restart",
        Duration::from_secs(60),
        phase_is("api", RolloutPhase::Healthy),
    )
    .await;
    assert_eq!(replica.get("/livez").await.map(|r| r.0), Some(200));
    assert_eq!(replica.get("/readyz").await.map(|r| r.0), Some(200));
    eprintln!(
        "API server restarted in {:.1} s; the controller recovered {:.1} s after it went down",
        outage.as_secs_f64(),
        down.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn two_controllers_split_the_rollouts_by_label_each_with_its_own_lease() {
    use k8s_openapi::api::events::v1::Event;
    use kube::api::ListParams;
    let (server, client) = cluster().await;
    let a = Replica::with_args(
        &server,
        "shard-a",
        "15s",
        &[
            "--selector",
            "canarygate.dev/shard=a",
            "--lease-name",
            "canary-gate-a",
        ],
    );
    let b = Replica::with_args(
        &server,
        "shard-b",
        "15s",
        &[
            "--selector",
            "canarygate.dev/shard=b",
            "--lease-name",
            "canary-gate-b",
        ],
    );
    a.wait_ready().await;
    b.wait_ready().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    for (name, shard) in [("web", Some("a")), ("api", Some("b")), ("other", None)] {
        let mut d = deployment(&format!("{name}:1"));
        d.metadata.name = Some(name.into());
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
        let labels = shard.map_or(json!({}), |s| json!({"canarygate.dev/shard": s}));
        let rollout: Rollout = serde_json::from_value(json!({
            "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "labels": labels},
            "spec": {"targetRef": {"name": name}, "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {"duration": "10m"}}]}}}
        }))
        .unwrap();
        rollouts
            .create(&PostParams::default(), &rollout)
            .await
            .unwrap();
    }
    let phase = |name: &'static str| {
        let rollouts = rollouts.clone();
        async move {
            rollouts
                .get(name)
                .await
                .ok()
                .and_then(|r| r.status)
                .and_then(|s| s.phase)
        }
    };
    for name in ["web", "api"] {
        eventually(
            &format!("{name} adopted"),
            Duration::from_secs(20),
            || async { phase(name).await == Some(RolloutPhase::Healthy) },
        )
        .await;
    }
    // Each Rollout was reconciled by its own shard only (the Events name the reporting replica),
    // and one that no shard selects is left alone.
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let reporters = |name: &str, list: &[Event]| {
        let mut r: Vec<String> = list
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|o| o.name.as_deref()) == Some(name))
            .filter_map(|e| e.reporting_instance.clone())
            .collect();
        r.sort();
        r.dedup();
        r
    };
    // A pass writes the status, then its Events: wait for both Rollouts' Events to show.
    eventually("both Rollouts' Events", Duration::from_secs(10), || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        !reporters("web", &list).is_empty() && !reporters("api", &list).is_empty()
    })
    .await;
    let list = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(reporters("web", &list), ["shard-a"]);
    assert_eq!(reporters("api", &list), ["shard-b"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(phase("other").await, None, "no shard selects it");
    assert!(
        rollouts
            .get("other")
            .await
            .unwrap()
            .metadata
            .finalizers
            .unwrap_or_default()
            .is_empty()
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NS);
    for (lease, holder) in [("canary-gate-a", "shard-a"), ("canary-gate-b", "shard-b")] {
        let held = leases
            .get(lease)
            .await
            .unwrap()
            .spec
            .and_then(|s| s.holder_identity);
        assert_eq!(held.as_deref(), Some(holder), "{lease}");
    }
}

/// `name value` pairs of a Prometheus text exposition, summed by metric name and the labels
/// given (e.g. `canary_gate_kube_requests_total{verb="get",resource="deployments"}`).
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|l| series.contains(l))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// One controller process (a long lease: its renewals stay out of counts) and the Rollout `web`
/// settled at its 10 % step with a 10-minute pause: nothing is due for ten minutes.
async fn a_settled_rollout(server: &ApiServer, client: &kube::Client) -> (Replica, Api<Rollout>) {
    let replica = Replica::with_lease(server, "replica-a", "120s");
    replica.wait_ready().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments
        .create(&PostParams::default(), &deployment("web:1"))
        .await
        .unwrap();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let rollout: Rollout = serde_json::from_value(json!({
        "apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"targetRef": {"name": "web"}, "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {"duration": "10m"}}]}}}
    }))
    .unwrap();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();
    eventually("the stable workload", Duration::from_secs(20), || {
        let d = deployments.clone();
        async move { d.get("web-stable").await.is_ok() }
    })
    .await;
    pods_available(client, NS, "web-stable", None, json!([])).await;
    // At most one pod poll (15 s) after the stable workload is available, should its change
    // reach the trigger before the workload cache.
    eventually("the pods handed over", Duration::from_secs(30), || {
        let d = deployments.clone();
        async move {
            d.get("web")
                .await
                .ok()
                .and_then(|d| d.spec)
                .and_then(|s| s.replicas)
                == Some(0)
        }
    })
    .await;
    pods_available(client, NS, "web", None, json!([])).await;
    // Settled: the next reconciles change nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    (replica, rollouts)
}

#[tokio::test]
async fn a_healthy_rollouts_reconcile_reads_nothing_from_the_api_server() {
    let (server, client) = cluster().await;
    let (replica, rollouts) = a_settled_rollout(&server, &client).await;
    let before = replica.get("/metrics").await.unwrap().1;
    for i in 0..5 {
        rollouts
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"touched": i.to_string()}}})),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = replica.get("/metrics").await.unwrap().1;
    let delta =
        |name: &str, labels: &[&str]| metric(&after, name, labels) - metric(&before, name, labels);
    let reconciles = delta("canary_gate_reconciles_total", &[]);
    assert!(
        reconciles >= 5.0,
        "one reconcile per change at least: {reconciles}"
    );
    // The target and the workloads come from the watch caches, and nothing changed.
    let all = delta("canary_gate_kube_requests_total", &[])
        - delta("canary_gate_kube_requests_total", &["verb=\"watch\""]);
    assert_eq!(
        all, 0.0,
        "{all} API requests for {reconciles} reconciles of a healthy Rollout:\n{after}"
    );
    // The cached target's 0 replicas are canary-gate's own (the cache keeps its managedFields
    // entry), not a human's: the stable workload keeps its pod, the target stays at 0.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let replicas = |d: Deployment| d.spec.and_then(|s| s.replicas);
    assert_eq!(
        replicas(deployments.get("web-stable").await.unwrap()),
        Some(1)
    );
    assert_eq!(replicas(deployments.get("web").await.unwrap()), Some(0));
}

/// Status-only changes — the controller's own writes, as far as its watch can tell — trigger no
/// pass; a change to anything else does.
#[tokio::test]
async fn status_only_changes_trigger_no_reconcile() {
    let (server, client) = cluster().await;
    let (replica, rollouts) = a_settled_rollout(&server, &client).await;
    let reconciles = || async {
        metric(
            &replica.get("/metrics").await.unwrap().1,
            "canary_gate_reconciles_total",
            &[],
        )
    };
    let before = reconciles().await;
    for i in 0..5 {
        rollouts
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"observedGeneration": 100 + i}})),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_status = reconciles().await;
    assert_eq!(
        after_status,
        before,
        "five status-only changes caused {} reconciles",
        after_status - before
    );
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"team": "shop"}}})),
        )
        .await
        .unwrap();
    eventually(
        "a reconcile of the annotation change",
        Duration::from_secs(10),
        || async { reconciles().await > after_status },
    )
    .await;
}
