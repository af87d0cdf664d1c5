//! The load generator: real HTTP requests at a fixed rate, open loop (requests are issued on
//! schedule whether or not earlier ones have answered), with a cap on requests in flight —
//! a request due while the cap is reached is counted as dropped instead of delaying the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::DemoError;

/// Timeout of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`LoadGenerator::stop`] waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(3);

/// What the load generator did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LoadCounts {
    /// Requests sent.
    pub sent: u64,
    /// Answered 2xx.
    pub ok: u64,
    /// Answered 5xx (served, but an error).
    pub server_errors: u64,
    /// No usable answer: transport error, timeout, or any other status.
    pub failed: u64,
    /// Due while the in-flight cap was reached: not sent.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    server_errors: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> LoadCounts {
        LoadCounts {
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// A running load generator.
#[derive(Debug)]
pub struct LoadGenerator {
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl LoadGenerator {
    /// Starts sending `GET target` at `rps` requests per second with at most `concurrency` in
    /// flight.
    ///
    /// # Errors
    /// [`DemoError::Usage`] for a rate or cap that is not positive, [`DemoError::Client`] when
    /// the HTTP client cannot be built.
    pub fn start(target: &str, rps: f64, concurrency: usize) -> Result<Self, DemoError> {
        if !(rps.is_finite() && rps > 0.0) {
            return Err(DemoError::Usage(format!(
                "--rps {rps}: must be a positive rate"
            )));
        }
        if concurrency == 0 {
            return Err(DemoError::Usage("--concurrency must be at least 1".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(concurrency)
            .http1_only()
            .build()
            .map_err(|e| DemoError::Client {
                role: "load generator".into(),
                detail: e.to_string(),
            })?;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(pace(
            client,
            target.to_string(),
            rps,
            concurrency,
            counters.clone(),
            stopped,
        ));
        Ok(Self {
            counters,
            stop,
            task: Some(task),
        })
    }

    /// Counts so far.
    pub fn counts(&self) -> LoadCounts {
        self.counters.snapshot()
    }

    /// Stops issuing requests, waits up to 3 s for those in flight, aborts the rest, and returns
    /// the final counts.
    pub async fn stop(mut self) -> LoadCounts {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(DRAIN + Duration::from_secs(1), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        self.counters.snapshot()
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Issues requests on schedule: at every tick, as many as are due since the start.
async fn pace(
    client: reqwest::Client,
    target: String,
    rps: f64,
    concurrency: usize,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut in_flight = JoinSet::new();
    let period = Duration::from_secs_f64((1.0 / rps).clamp(0.001, 0.01));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut issued: u64 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => break,
        }
        let due = (start.elapsed().as_secs_f64() * rps) as u64;
        while issued < due {
            issued += 1;
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let (client, target, counters) = (client.clone(), target.clone(), counters.clone());
            in_flight.spawn(async move {
                let _permit = permit;
                let outcome = match client.get(&target).send().await {
                    Ok(response) => {
                        let status = response.status();
                        // Read the body so the connection can be reused.
                        match response.bytes().await {
                            Ok(_) if status.is_success() => &counters.ok,
                            Ok(_) if status.is_server_error() => &counters.server_errors,
                            _ => &counters.failed,
                        }
                    }
                    Err(_) => &counters.failed,
                };
                outcome.fetch_add(1, Ordering::Relaxed);
            });
        }
        while in_flight.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(DRAIN, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(left = in_flight.len(), "aborting requests still in flight");
        in_flight.abort_all();
    }
}
