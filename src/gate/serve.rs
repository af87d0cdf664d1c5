//! Serving the gate's routes on a listener with the limits a shared service needs: one slow or
//! hostile client must not hold the gate for every team.
//!
//! - **Headers** must arrive within [`ServeLimits::header_timeout`] of the connection opening or
//!   of the previous answer (hyper's HTTP/1 header read timeout), else the connection is closed:
//!   idle and half-sent connections do not stay open.
//! - **Each request** — reading its body, judging, answering — has
//!   [`ServeLimits::request_deadline`] (15 s, below the 20 s the README gives Argo's
//!   `timeoutSeconds` and Flagger's 30 s); past it the answer is 504 with the reason. Bodies
//!   larger than [`ServeLimits::max_body_bytes`] are refused with 413.
//! - **Connections**: at most [`ServeLimits::max_connections`] are served at once; more wait in
//!   the kernel's accept queue.
//! - **Shutdown** (SIGTERM from Kubernetes, or Ctrl-C): the listener closes, idle connections
//!   close, requests in flight finish, and after [`ServeLimits::shutdown_timeout`] whatever is
//!   left is dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::ErrorBody;

/// Limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a request has from its headers to its answer (body read and judging included).
    pub request_deadline: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
}

impl Default for ServeLimits {
    /// Headers within 10 s, answers within 15 s, 256 connections, 64 KiB bodies, 20 s to
    /// drain.
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_deadline: Duration::from_secs(15),
            max_connections: 256,
            max_body_bytes: 64 * 1024,
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

/// Errors of [`serve`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting connections failed for good.
    #[error("accepting connections on {addr} failed: {source}")]
    Accept {
        /// The listening address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How a shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished.
    Clean,
    /// This many connections were still open at the shutdown timeout and were dropped.
    Dropped(usize),
}

/// The deadline and body limit around `routes`.
pub fn with_limits(routes: Router, limits: ServeLimits) -> Router {
    routes
        .layer(axum::middleware::from_fn_with_state(
            limits.request_deadline,
            deadline,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
}

async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            axum::Json(ErrorBody {
                error: format!(
                    "no answer within the gate's request deadline of {}: the client sent its body too slowly or Prometheus answered too slowly; judge a shorter window or check Prometheus",
                    humantime::format_duration(limit)
                ),
            }),
        )
            .into_response(),
    }
}

/// Serves `routes` (already wrapped by [`with_limits`]) on `listener` until `shutdown`
/// completes, then drains.
///
/// # Errors
/// When accepting fails for a reason other than a per-connection error or a lack of file
/// descriptors (which wait and retry).
pub async fn serve(
    listener: TcpListener,
    routes: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<Drained, ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopped) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) if is_out_of_descriptors(&e) => {
                    tracing::warn!(error = %e, "out of file descriptors; accepting again in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(source) => return Err(ServeError::Accept { addr, source }),
            },
        };
        // Reap finished connections so the set stays as small as the connection limit.
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(routes.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "gate connection ended");
                        }
                        break;
                    }
                    _ = stopped.changed() => connection.as_mut().graceful_shutdown(),
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let open = connections.len();
    tracing::info!(open, "gate shutting down; draining connections");
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(match drained {
        Ok(()) => Drained::Clean,
        Err(_) => {
            let left = connections.len();
            connections.abort_all();
            Drained::Dropped(left)
        }
    })
}

fn is_per_connection(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::Interrupted
    )
}

fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    // EMFILE, ENFILE
    matches!(e.raw_os_error(), Some(23 | 24))
}
