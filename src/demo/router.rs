//! The weighted router: a reverse proxy that sends each request independently to the canary
//! with probability `weight / 100` and otherwise to stable — the random, outcome-blind split the
//! judge assumes. The weight changes while it runs. Answers carry `x-canary-gate-version`;
//! an unreachable upstream is a 502.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::rng::SharedRng;
use super::server::{ServerHandle, bind_loopback};
use super::{DemoError, Version};

/// Response header naming the version that served a request.
pub const VERSION_HEADER: &str = "x-canary-gate-version";
/// Largest request body forwarded.
const MAX_BODY: usize = 1 << 20;

/// Requests the router forwarded, per version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RouterCounts {
    /// Sent to stable.
    pub stable: u64,
    /// Sent to the canary.
    pub canary: u64,
    /// Upstream unreachable or broken (answered 502).
    pub upstream_failures: u64,
}

/// The live controls of a running router.
#[derive(Debug)]
pub struct RouterControl {
    weight_bits: AtomicU64,
    stable: AtomicU64,
    canary: AtomicU64,
    upstream_failures: AtomicU64,
}

impl RouterControl {
    fn new(weight: f64) -> Self {
        Self {
            weight_bits: AtomicU64::new(weight.clamp(0.0, 100.0).to_bits()),
            stable: AtomicU64::new(0),
            canary: AtomicU64::new(0),
            upstream_failures: AtomicU64::new(0),
        }
    }

    /// The canary weight in percent.
    pub fn weight(&self) -> f64 {
        f64::from_bits(self.weight_bits.load(Ordering::Relaxed))
    }

    /// Sets the canary weight in percent (clamped to 0–100); applies to the next request.
    pub fn set_weight(&self, weight: f64) {
        self.weight_bits
            .store(weight.clamp(0.0, 100.0).to_bits(), Ordering::Relaxed);
    }

    /// Requests forwarded so far.
    pub fn counts(&self) -> RouterCounts {
        RouterCounts {
            stable: self.stable.load(Ordering::Relaxed),
            canary: self.canary.load(Ordering::Relaxed),
            upstream_failures: self.upstream_failures.load(Ordering::Relaxed),
        }
    }
}

struct RouterState {
    control: Arc<RouterControl>,
    stable: String,
    canary: String,
    client: reqwest::Client,
    rng: SharedRng,
}

/// A running router.
#[derive(Debug)]
pub struct WeightedRouter {
    control: Arc<RouterControl>,
    server: ServerHandle,
}

impl WeightedRouter {
    /// Starts a router on `127.0.0.1:port` (0 = any free port) in front of the `stable` and
    /// `canary` base URLs, sending `weight` percent to the canary; `seed` seeds the split.
    ///
    /// # Errors
    /// [`DemoError::Bind`] or [`DemoError::Client`].
    pub async fn start(
        stable: &str,
        canary: &str,
        weight: f64,
        port: u16,
        seed: u64,
    ) -> Result<Self, DemoError> {
        let listener = bind_loopback("router", port).await?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .http1_only()
            .build()
            .map_err(|e| DemoError::Client {
                role: "router".into(),
                detail: e.to_string(),
            })?;
        let control = Arc::new(RouterControl::new(weight));
        let state = Arc::new(RouterState {
            control: control.clone(),
            stable: stable.trim_end_matches('/').to_string(),
            canary: canary.trim_end_matches('/').to_string(),
            client,
            rng: SharedRng::new(seed),
        });
        let app = axum::Router::new().fallback(proxy).with_state(state);
        let server = ServerHandle::spawn("router", listener, app)?;
        Ok(Self { control, server })
    }

    /// The live controls (weight, counts).
    pub fn control(&self) -> &Arc<RouterControl> {
        &self.control
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// Stops the router (in-flight requests finish first, at most 2 s).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

async fn proxy(State(state): State<Arc<RouterState>>, request: Request) -> Response {
    let canary = state.rng.uniform() * 100.0 < state.control.weight();
    let (version, base, counter) = if canary {
        (Version::Canary, &state.canary, &state.control.canary)
    } else {
        (Version::Stable, &state.stable, &state.control.stable)
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let method = request.method().clone();
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}\n"),
            )
                .into_response();
        }
    };
    let upstream = format!("{base}{path}");
    let answer = async {
        let response = state
            .client
            .request(method, &upstream)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes))
    }
    .await;
    let mut response = match answer {
        Ok((status, bytes)) => (status, Body::from(bytes)).into_response(),
        Err(e) => {
            state
                .control
                .upstream_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%upstream, error = %e.without_url(), "upstream failed");
            (
                StatusCode::BAD_GATEWAY,
                format!("{} upstream unreachable\n", version.as_str()),
            )
                .into_response()
        }
    };
    response
        .headers_mut()
        .insert(VERSION_HEADER, HeaderValue::from_static(version.as_str()));
    response
}
