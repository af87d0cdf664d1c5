//! Test support: a real Prometheus server (the `prometheus` binary, Debian package
//! `prometheus`) in a temp dir on a free loopback port, optionally with backfilled history, live
//! scrape targets or TLS; a throw-away CA made with `openssl`; free-port helpers; a scripted
//! metrics source for reconciles ([`scripted`]).
//!
//! Missing binaries fail the test loudly with an install hint — tests are never skipped.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod apiserver;
pub mod fake_http;
pub mod fixtures;
pub mod history;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "install it with `apt-get install -y --no-install-recommends prometheus` \
     (the package also provides promtool)";

/// Installs the rustls crypto provider the crate's clients use (idempotent).
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Finds `name` on `PATH` or panics with an install hint.
pub fn require_binary(name: &str, hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` is not on PATH; {hint}");
}

/// A loopback port that nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A throw-away certificate authority and a server certificate for `127.0.0.1`/`localhost`.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// Generates the CA and server key pairs (EC P-256) with `openssl`.
    pub fn generate() -> Self {
        let openssl = require_binary(
            "openssl",
            "install it with `apt-get install -y --no-install-recommends openssl`",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write extension file");
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(d)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=canary-gate test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        Self { dir }
    }

    /// The CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The server certificate (PEM), signed by the CA.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    /// The server private key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

/// How to start a [`PrometheusServer`].
#[derive(Default)]
pub struct PrometheusBuilder {
    backfill: Option<String>,
    targets: Vec<String>,
    scrape_interval: Option<Duration>,
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl PrometheusBuilder {
    /// OpenMetrics text (timestamps in seconds) loaded with
    /// `promtool tsdb create-blocks-from openmetrics` before the server starts. `# EOF` is
    /// appended if missing. Query it with explicit times inside its range.
    pub fn backfill(mut self, openmetrics: impl Into<String>) -> Self {
        self.backfill = Some(openmetrics.into());
        self
    }

    /// Live scrape targets (`127.0.0.1:PORT`, scraped at `/metrics`).
    pub fn scrape_targets<I, S>(mut self, targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.targets.extend(targets.into_iter().map(Into::into));
        self
    }

    /// Scrape interval of the live targets (default 1 s).
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = Some(interval);
        self
    }

    /// Serve HTTPS with the CA's server certificate.
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some((ca.server_cert(), ca.server_key(), ca.ca_cert()));
        self
    }

    /// Starts the server and waits until `/-/ready` answers (panics with Prometheus' log if it
    /// does not within 20 s).
    pub async fn start(self) -> PrometheusServer {
        let prometheus = require_binary("prometheus", INSTALL_HINT);
        let mut dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create data dir");

        if let Some(text) = &self.backfill {
            let promtool = require_binary("promtool", INSTALL_HINT);
            let mut text = text.trim_end().to_string();
            if !text.ends_with("# EOF") {
                text.push_str("\n# EOF");
            }
            text.push('\n');
            let file = dir.path().join("backfill.om");
            std::fs::write(&file, text).expect("write backfill file");
            let out = Command::new(promtool)
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&file)
                .arg(&data)
                .output()
                .expect("run promtool");
            assert!(
                out.status.success(),
                "promtool tsdb create-blocks-from openmetrics failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let interval = self.scrape_interval.unwrap_or(Duration::from_secs(1));
        let mut config = format!(
            "global:\n  scrape_interval: {0}ms\n  scrape_timeout: {0}ms\n  evaluation_interval: {0}ms\n",
            interval.as_millis()
        );
        if self.targets.is_empty() {
            config.push_str("scrape_configs: []\n");
        } else {
            let targets: Vec<String> = self.targets.iter().map(|t| format!("'{t}'")).collect();
            config.push_str(&format!(
                "scrape_configs:\n  - job_name: canary-gate-test\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write prometheus.yml");

        let mut web_config = None;
        if let Some((cert, key, _)) = &self.tls {
            let file = dir.path().join("web.yml");
            std::fs::write(
                &file,
                format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                    cert.display(),
                    key.display()
                ),
            )
            .expect("write web.yml");
            web_config = Some(file);
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };

        let readiness = {
            let mut b = reqwest::Client::builder().timeout(Duration::from_secs(2));
            if let Some((_, _, ca)) = &self.tls {
                let pem = std::fs::read(ca).expect("read CA");
                b = b
                    .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("parse CA"));
            }
            init_crypto();
            b.build().expect("readiness client")
        };

        // The port is free when chosen but may be taken before Prometheus binds it: retry.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log_path = dir.path().join("prometheus.log");
            let log = std::fs::File::create(&log_path).expect("create log");
            let mut command = Command::new(&prometheus);
            command
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--storage.tsdb.retention.time=3650d")
                .arg("--web.enable-lifecycle")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log);
            if let Some(web) = &web_config {
                command.arg(format!("--web.config.file={}", web.display()));
            }
            let child = command.spawn().expect("spawn prometheus");
            let mut server = PrometheusServer {
                child,
                dir,
                url: format!("{scheme}://127.0.0.1:{port}"),
                log_path,
            };
            match server.wait_ready(&readiness, Duration::from_secs(20)).await {
                Ok(()) => return server,
                Err(reason) => {
                    last_log = server.log();
                    if !last_log.contains("address already in use") {
                        panic!(
                            "prometheus at {} did not become ready: {reason}\n--- prometheus log ---\n{last_log}",
                            server.url
                        );
                    }
                    // Take the temp dir back for the next try; Drop kills the process.
                    let _ = server.child.kill();
                    let _ = server.child.wait();
                    dir =
                        std::mem::replace(&mut server.dir, tempfile::tempdir().expect("temp dir"));
                }
            }
        }
        panic!("prometheus could not bind a free port three times:\n{last_log}");
    }
}

/// A running Prometheus; killed and its directory removed on drop.
pub struct PrometheusServer {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    log_path: PathBuf,
}

impl PrometheusServer {
    /// A builder for backfill, scrape targets or TLS.
    pub fn builder() -> PrometheusBuilder {
        PrometheusBuilder::default()
    }

    /// An empty server.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A server holding the backfilled OpenMetrics history.
    pub async fn with_backfill(openmetrics: &str) -> Self {
        Self::builder().backfill(openmetrics).start().await
    }

    /// A server scraping `targets` every second.
    pub async fn with_targets<S: AsRef<str>>(targets: &[S]) -> Self {
        Self::builder()
            .scrape_targets(targets.iter().map(|t| t.as_ref().to_string()))
            .start()
            .await
    }

    /// Base URL, `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The server's temp directory (config, data, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Prometheus' combined stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        limit: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let ready = format!("{}/-/ready", self.url);
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("prometheus exited with {status}"));
            }
            match client.get(&ready).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("/-/ready answered {}", r.status()),
                Err(e) => last = format!("{e}"),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("not ready after {limit:?} (last: {last})"))
    }

    /// Waits until `/api/v1/targets` reports at least `count` active targets with health
    /// `up`; panics with the targets JSON and the log after `limit`. Prometheus 2.42 hands
    /// discovered targets to the scrape manager on a 5 s tick, so expect ≈ 5–6 s.
    pub async fn wait_for_targets_up(&self, count: usize, limit: Duration) {
        init_crypto();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(format!("{}/api/v1/targets?state=active", self.url))
                .send()
                .await
                && let Ok(v) = r.json::<serde_json::Value>().await
            {
                let up = v["data"]["activeTargets"]
                    .as_array()
                    .map_or(0, |ts| ts.iter().filter(|t| t["health"] == "up").count());
                if up >= count {
                    return;
                }
                last = v.to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "fewer than {count} targets up after {limit:?}: {last}\n--- prometheus log ---\n{}",
            self.log()
        );
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to a new file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create file");
    f.write_all(text.as_bytes()).expect("write file");
    path
}

/// POSTs `body` as JSON to `url`; the status and the JSON answer.
pub async fn post_json(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("the server answers");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON body"))
}

/// The fenced blocks of `lang` in the README's section that begins with `heading` (up to the
/// next `## ` heading), for tests that check the README shows what the code does.
pub fn readme_blocks(heading: &str, lang: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme.find(heading).expect("the section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n## ").map_or(section.len(), |e| e + 4)];
    let fence = format!("```{lang}\n");
    section
        .split(fence.as_str())
        .skip(1)
        .map(|b| b[..b.find("```").expect("a closing fence")].to_string())
        .collect()
}
