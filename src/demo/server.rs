//! Binding and stopping the demo's loopback HTTP servers: every server is bound to
//! `127.0.0.1`, shut down gracefully at the end and aborted if its handle is dropped, so no port
//! outlives the run.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::DemoError;

/// How long a graceful shutdown may take before the server task is aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Binds `127.0.0.1:port` (0 picks a free port).
///
/// # Errors
/// [`DemoError::Bind`] naming `role` and the address.
pub async fn bind_loopback(role: &str, port: u16) -> Result<TcpListener, DemoError> {
    let addr = format!("127.0.0.1:{port}");
    TcpListener::bind(&addr)
        .await
        .map_err(|source| DemoError::Bind {
            role: role.to_string(),
            addr,
            source,
        })
}

/// A running axum server.
#[derive(Debug)]
pub struct ServerHandle {
    role: String,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Serves `app` on `listener` until [`ServerHandle::shutdown`] or drop.
    ///
    /// # Errors
    /// [`DemoError::Bind`] when the listener has no local address.
    pub fn spawn(role: &str, listener: TcpListener, app: axum::Router) -> Result<Self, DemoError> {
        let addr = listener.local_addr().map_err(|source| DemoError::Bind {
            role: role.to_string(),
            addr: "127.0.0.1".to_string(),
            source,
        })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let name = role.to_string();
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!(server = %name, error = %e, "server stopped with an error");
            }
        });
        tracing::debug!(server = role, %addr, "listening");
        Ok(Self {
            role: role.to_string(),
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (at most 2 s), then aborts.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!(server = %self.role, "graceful shutdown timed out; aborting");
            self.task.abort();
            let _ = (&mut self.task).await;
        }
        tracing::debug!(server = %self.role, addr = %self.addr, "stopped");
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}
