//! The demo HTTP service: one instance per version, with fault injection (error probability,
//! log-normal latency plus an extra delay, changeable while it runs) and Prometheus metrics
//! from `prometheus-client` at `/metrics`:
//! `http_requests_total{code,version}` (counter) and
//! `http_request_duration_seconds{version}` (histogram, the default Prometheus buckets).
//!
//! Both series are created at start (codes 200 and 500 at zero), so the first scrape — the
//! judge's baseline — sees every series before any traffic.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rand_distr::LogNormal;

use super::rng::SharedRng;
use super::scenario::Fault;
use super::server::{ServerHandle, bind_loopback};
use super::{DemoError, Version};
use crate::simulation::DEFAULT_BUCKETS;

/// The request counter's name as exposed.
pub const REQUESTS_METRIC: &str = "http_requests_total";
/// The latency histogram's family name as exposed.
pub const LATENCY_METRIC: &str = "http_request_duration_seconds";
/// The label that tells the versions apart.
pub const VERSION_LABEL: &str = "version";
/// A label carrying the run's id, so a shared Prometheus can tell this run's series apart.
pub const RUN_LABEL: &str = "demo_run";

/// The OpenMetrics content type `prometheus-client` encodes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// The fault configuration of one instance, read on every request and changeable at any time.
#[derive(Debug, Clone, Default)]
pub struct FaultControl(Arc<RwLock<Fault>>);

impl FaultControl {
    /// A control starting with `fault`.
    pub fn new(fault: Fault) -> Self {
        Self(Arc::new(RwLock::new(fault)))
    }

    /// The current fault.
    pub fn get(&self) -> Fault {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the fault; the next request uses it.
    pub fn set(&self, fault: Fault) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = fault;
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

struct ServiceState {
    version: Version,
    faults: FaultControl,
    rng: SharedRng,
    requests: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    registry: Registry,
}

impl ServiceState {
    fn request_labels(&self, code: u16) -> Labels {
        vec![
            ("code", code.to_string()),
            (VERSION_LABEL, self.version.as_str().to_string()),
        ]
    }

    fn version_labels(&self) -> Labels {
        vec![(VERSION_LABEL, self.version.as_str().to_string())]
    }
}

/// A running instance of the demo service.
#[derive(Debug)]
pub struct Service {
    version: Version,
    faults: FaultControl,
    server: ServerHandle,
}

impl Service {
    /// Starts an instance of `version` on `127.0.0.1:port` (0 = any free port). `run_id` is
    /// exposed as the `demo_run` label; `seed` seeds the fault draws.
    ///
    /// # Errors
    /// [`DemoError::Bind`] when the port cannot be bound.
    pub async fn start(
        version: Version,
        port: u16,
        faults: FaultControl,
        run_id: &str,
        seed: u64,
    ) -> Result<Self, DemoError> {
        let role = format!("{} service", version.as_str());
        let listener = bind_loopback(&role, port).await?;
        let mut registry = Registry::with_labels(
            [(Cow::Borrowed(RUN_LABEL), Cow::Owned(run_id.to_string()))].into_iter(),
        );
        let requests = Family::<Labels, Counter>::default();
        let duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests served, by status code and version",
            requests.clone(),
        );
        registry.register(
            LATENCY_METRIC,
            "HTTP request latency in seconds, by version",
            duration.clone(),
        );
        let state = Arc::new(ServiceState {
            version,
            faults: faults.clone(),
            rng: SharedRng::new(seed),
            requests,
            duration,
            registry,
        });
        // Series exist from the first scrape on.
        for code in [200, 500] {
            let _ = state.requests.get_or_create(&state.request_labels(code));
        }
        let _ = state.duration.get_or_create(&state.version_labels());
        let app = axum::Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .fallback(handle)
            .with_state(state);
        let server = ServerHandle::spawn(&role, listener, app)?;
        Ok(Self {
            version,
            faults,
            server,
        })
    }

    /// The version it serves.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Its fault control.
    pub fn faults(&self) -> &FaultControl {
        &self.faults
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The `/metrics` URL.
    pub fn metrics_url(&self) -> String {
        format!("{}/metrics", self.server.url())
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// Stops the server (in-flight requests finish first, at most 2 s).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Any path but `/metrics` and `/healthz`: waits the drawn latency, fails with the fault's
/// probability, and records the outcome.
async fn handle(State(state): State<Arc<ServiceState>>) -> Response {
    let started = Instant::now();
    let fault = state.faults.get();
    let fail = state.rng.uniform() < fault.error_rate;
    let drawn = LogNormal::new(fault.latency_median.max(1e-6).ln(), fault.latency_sigma)
        .map_or(fault.latency_median, |d| state.rng.sample(&d));
    let delay = (drawn + fault.added_latency).clamp(0.0, 30.0);
    tokio::time::sleep(std::time::Duration::from_secs_f64(delay)).await;
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    state
        .requests
        .get_or_create(&state.request_labels(status.as_u16()))
        .inc();
    state
        .duration
        .get_or_create(&state.version_labels())
        .observe(started.elapsed().as_secs_f64());
    let body = if fail {
        format!("{} failed (injected fault)\n", state.version.as_str())
    } else {
        format!("hello from {}\n", state.version.as_str())
    };
    (status, [("x-version", state.version.as_str())], body).into_response()
}

async fn metrics(State(state): State<Arc<ServiceState>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}
