//! A real kube-apiserver (1.20, built from Debian's source by `scripts/kube-apiserver-build`)
//! with etcd on free loopback ports, started through `scripts/kube-apiserver-run`; stopped, with
//! its temporary directory, when the handle is dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running API server.
pub struct ApiServer {
    child: Child,
    /// Its admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// What the script prints after the kubeconfig line.
    lines: std::sync::Mutex<std::sync::mpsc::Receiver<String>>,
}

/// Where `scripts/kube-apiserver-build` caches the binary.
pub fn binary() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::var_os("APISERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/canary-gate/kube-apiserver/kube-apiserver"))
}

impl ApiServer {
    /// Starts etcd and the API server and waits until it is ready (about 5 s).
    pub fn start() -> Self {
        let binary = binary();
        assert!(
            binary.is_file(),
            "no kube-apiserver at {}: run scripts/kube-apiserver-build (scripts/test does it first)",
            binary.display()
        );
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kube-apiserver-run");
        let mut child = Command::new(script)
            .env("APISERVER", &binary)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/kube-apiserver-run");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
                && let Some(path) = line.strip_prefix("KUBECONFIG=")
            {
                return Self {
                    child,
                    kubeconfig: PathBuf::from(path),
                    lines: std::sync::Mutex::new(rx),
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "scripts/kube-apiserver-run exited with {status} before the API server was ready"
                );
            }
            assert!(
                Instant::now() < deadline,
                "the API server was not ready within 120 s"
            );
        }
    }

    /// Stops the API server and starts a new one on the same port and etcd (every watch breaks,
    /// no object is lost); returns once the new one is ready.
    #[allow(dead_code)] // not every test binary restarts the server
    pub fn restart(&self) {
        let status = Command::new("kill")
            .arg("-USR1")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "signal the API server script");
        let lines = self.lines.lock().unwrap();
        loop {
            match lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) if line == "RESTARTED" => return,
                Ok(_) => {}
                Err(e) => panic!("the API server did not come back within 120 s: {e}"),
            }
        }
    }

    /// The admin kubeconfig (for the real `kubectl`).
    #[allow(dead_code)] // not every test binary runs kubectl
    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Runs the real `kubectl` against this server with `stdin`: (success, stdout, stderr).
    #[allow(dead_code)] // not every test binary runs kubectl
    pub fn kubectl(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl (installed on the image)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// An admin client.
    pub async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig"),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("client config");
        kube::Client::try_from(config).expect("client")
    }
}

/// Creates the namespace `name`.
pub async fn create_namespace(client: &kube::Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// Applies `deploy/crds/` and waits until every CRD is Established.
pub async fn install_crds(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, PostParams};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/crds/canarygate.dev.yaml"
    ))
    .unwrap();
    let mut names = Vec::new();
    for doc in text
        .split("\n---\n")
        .filter(|d| d.contains("kind: CustomResourceDefinition"))
    {
        let crd: CustomResourceDefinition = serde_saphyr::from_str(doc).unwrap();
        names.push(crd.metadata.name.clone().unwrap());
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("the API server accepts the CRD");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let crd = crds.get(&name).await.unwrap();
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not Established");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // The script's trap stops etcd and the API server and removes its directory.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A `web` Deployment running `image`, as the API-server tests create it.
pub fn deployment(image: &str) -> k8s_openapi::api::apps::v1::Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}}}
    }))
    .expect("a valid Deployment")
}

/// A started API server with the CRDs, and in `namespace` the `generic-http` template and the
/// Deployment `web` on `web:1`: where a Rollout of `web` can be reconciled.
pub async fn with_web(namespace: &str) -> (ApiServer, kube::Client) {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, PostParams};
    let server = ApiServer::start();
    let client = server.client().await;
    install_crds(&client).await;
    create_namespace(&client, namespace).await;
    create_generic_http_template(&client, namespace).await;
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &deployment("web:1"))
        .await
        .expect("the Deployment web");
    (server, client)
}

/// Creates the shipped `generic-http` AnalysisTemplate in `namespace`.
pub async fn create_generic_http_template(client: &kube::Client, namespace: &str) {
    use canary_gate::crd::AnalysisTemplate;
    use canary_gate::crd::analysis_template::AnalysisTemplateBody;
    use kube::api::{Api, PostParams};
    let template = canary_gate::template::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analysis-templates/generic-http.yaml"
    )))
    .expect("the shipped template");
    Api::<AnalysisTemplate>::namespaced(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &AnalysisTemplate::new(
                "generic-http",
                AnalysisTemplateBody(template.file.spec.clone()),
            ),
        )
        .await
        .expect("the API server accepts the template");
}

/// Gives the Deployment `web` the pod template of [`deployment`]`(image)`: a new revision.
pub async fn set_image(client: &kube::Client, namespace: &str, image: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, PostParams};
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut d = deployments.get("web").await.expect("the Deployment web");
    d.spec.as_mut().expect("a spec").template = deployment(image).spec.expect("a spec").template;
    deployments
        .replace("web", &PostParams::default(), &d)
        .await
        .expect("the new template is written");
}

/// The Deployment controller's and the kubelet's part (the test server runs neither): the
/// workload `name` reports `available` of its pods available (all of them with `None`), on its
/// current template, with `conditions` as given.
pub async fn pods_available(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    available: Option<i32>,
    conditions: serde_json::Value,
) {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let current = api.get(name).await.expect("the workload exists");
    let want = current.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = available.unwrap_or(want);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {
            "observedGeneration": current.metadata.generation,
            "replicas": want, "updatedReplicas": want, "readyReplicas": available,
            "availableReplicas": available, "unavailableReplicas": want - available,
            "conditions": conditions}})),
    )
    .await
    .expect("the workload's status is written");
}
