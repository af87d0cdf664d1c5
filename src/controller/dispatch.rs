//! The loop that runs the controller's passes: the watches' triggers and each pass's request for
//! its next look go into the [`WorkQueue`]; at most `concurrency` passes run at once, each on its
//! own task, and a free slot takes the newest due pass unless one has waited too long (see
//! `work_queue.rs`).
//!
//! It stands where kube-runtime's `Controller::run` stood, with the same contract for a pass
//! (the object as the watch cache holds it; nothing runs until that cache has synced; a pass
//! of an object no longer cached is skipped) and its own order, see `work_queue.rs`. A pass that
//! panics is logged and retried like a failed one. On shutdown no pass starts and the running
//! ones finish; dropping the loop instead (a lost lease) aborts them.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use prometheus_client::metrics::gauge::Gauge;
use tokio::task::{JoinError, JoinHandle};

use super::work_queue::WorkQueue;

/// How soon a pass that panicked is tried again.
pub const PANIC_RETRY: Duration = Duration::from_secs(15);

/// The work queue's figures, published as they change.
#[derive(Clone, Default)]
pub struct QueueGauges {
    /// Due and not started.
    pub ready: Gauge,
    /// Under way.
    pub running: Gauge,
}

/// Runs passes until `shutdown` completes (then lets the running ones finish) or the triggers
/// end. `run` is one pass of an object; its answer is when to run it again (`None`: on a
/// change only).
pub async fn dispatch<K, T, E, F, Fut>(
    triggers: T,
    store: Store<K>,
    concurrency: usize,
    gauges: QueueGauges,
    mut run: F,
    shutdown: impl Future<Output = ()>,
) where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Unpin,
    T: Stream<Item = Result<ObjectRef<K>, E>>,
    E: std::error::Error + 'static,
    F: FnMut(Arc<K>) -> Fut,
    Fut: Future<Output = Option<Duration>> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let mut queue = WorkQueue::default();
    let mut running = FuturesUnordered::new();
    let mut triggers = std::pin::pin!(triggers.fuse());
    let mut synced = std::pin::pin!(synced(store.clone()).fuse());
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    let (mut ready, mut stopping) = (false, false);
    loop {
        let now = Instant::now();
        queue.promote(now);
        while ready && !stopping && running.len() < concurrency {
            let Some(key) = queue.start(now) else { break };
            match store.get(&key) {
                Some(object) => running.push(Pass {
                    handle: tokio::spawn(run(object)),
                    key: Some(key),
                }),
                // Gone from the cache (deleted): nothing to do until it comes back.
                None => queue.done(&key, None, now),
            }
        }
        gauges.ready.set(queue.ready_len() as i64);
        gauges.running.set(running.len() as i64);
        if stopping && running.is_empty() {
            return;
        }
        let timer = queue.next_timer();
        let wake = tokio::time::Instant::from_std(
            timer.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
        );
        tokio::select! {
            biased;
            () = &mut shutdown, if !stopping => {
                tracing::info!(running = running.len(), "shutting down: no new passes, waiting for the running ones");
                stopping = true;
            }
            Some((key, result)) = running.next(), if !running.is_empty() => {
                let next = result.unwrap_or_else(|e: JoinError| {
                    tracing::error!(object = %key, error = &e as &dyn std::error::Error, "a pass panicked; trying again later");
                    Some(PANIC_RETRY)
                });
                let now = Instant::now();
                queue.done(&key, next.map(|after| now + after), now);
            }
            trigger = triggers.next(), if !stopping => match trigger {
                Some(Ok(key)) => queue.add(key, Instant::now()),
                Some(Err(e)) => tracing::warn!(error = &e as &dyn std::error::Error, "watch failed; it is retried"),
                None => {
                    tracing::info!("the watches ended: no new passes");
                    stopping = true;
                }
            },
            synced_now = &mut synced, if !ready => {
                if !synced_now {
                    tracing::error!("the Rollout cache will never sync; stopping");
                    return;
                }
                ready = true;
            }
            () = tokio::time::sleep_until(wake), if timer.is_some() => {}
        }
    }
}

/// Waits until the store has synced; false: its writer is gone, it never will.
pub async fn synced<K>(store: Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    // kube-runtime's store wakes only its latest waiter: ask again every half second.
    loop {
        match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => {}
        }
    }
}

/// A pass on its task; dropping it aborts the task.
struct Pass<K> {
    handle: JoinHandle<Option<Duration>>,
    key: Option<K>,
}

impl<K: Unpin> Future for Pass<K> {
    type Output = (K, Result<Option<Duration>, JoinError>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.handle.poll_unpin(cx).map(|result| {
            let key = this.key.take().expect("a pass is polled after it ended");
            (key, result)
        })
    }
}

impl<K> Drop for Pass<K> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::{mpsc, oneshot};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use std::sync::Mutex;

    fn config_map(name: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("ns".into());
        c
    }

    fn key(name: &str) -> ObjectRef<ConfigMap> {
        ObjectRef::new(name).within("ns")
    }

    /// A store holding `names`, synced.
    fn store(names: &[&str]) -> Store<ConfigMap> {
        let mut writer = Writer::<ConfigMap>::default();
        let store = writer.as_reader();
        writer.apply_watcher_event(&Event::Init);
        for name in names {
            writer.apply_watcher_event(&Event::InitApply(config_map(name)));
        }
        writer.apply_watcher_event(&Event::InitDone);
        // The reader stays valid while the writer is alive; keep it for the test's life.
        std::mem::forget(writer);
        store
    }

    type Triggers = mpsc::UnboundedSender<Result<ObjectRef<ConfigMap>, std::io::Error>>;

    #[tokio::test]
    async fn a_burst_runs_once_each_newest_first_and_timers_come_back() {
        let (triggers, rx): (Triggers, _) = mpsc::unbounded();
        let started = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel::<()>();
        let run = {
            let started = started.clone();
            move |c: Arc<ConfigMap>| {
                let started = started.clone();
                async move {
                    let name = c.metadata.name.clone().unwrap_or_default();
                    started.lock().unwrap().push(name.clone());
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    // "a" asks to run again; the others wait for a change.
                    (name == "a").then_some(Duration::from_millis(150))
                }
            }
        };
        // One slot; "gone" is not in the cache (deleted): skipped.
        for name in ["a", "b", "a", "c", "b", "gone"] {
            triggers.unbounded_send(Ok(key(name))).unwrap();
        }
        let gauges = QueueGauges::default();
        let loop_ = tokio::spawn(dispatch(
            rx,
            store(&["a", "b", "c"]),
            1,
            gauges.clone(),
            run,
            stopped.map(|_| ()),
        ));
        tokio::time::sleep(Duration::from_millis(400)).await;
        stop.send(()).unwrap();
        loop_.await.unwrap();
        let started = started.lock().unwrap().clone();
        assert_eq!(
            started[..3],
            ["c", "b", "a"],
            "each once, newest first: {started:?}"
        );
        assert!(
            started.len() > 3 && started[3..].iter().all(|n| n == "a"),
            "then only a's timer: {started:?}"
        );
        assert_eq!(gauges.running.get(), 0);
    }

    #[tokio::test]
    async fn on_shutdown_the_running_pass_finishes_and_no_other_starts() {
        let (triggers, rx): (Triggers, _) = mpsc::unbounded();
        let (stop, stopped) = oneshot::channel::<()>();
        let finished = Arc::new(Mutex::new(Vec::new()));
        let run = {
            let finished = finished.clone();
            move |c: Arc<ConfigMap>| {
                let finished = finished.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    finished
                        .lock()
                        .unwrap()
                        .push(c.metadata.name.clone().unwrap_or_default());
                    None
                }
            }
        };
        triggers.unbounded_send(Ok(key("a"))).unwrap();
        triggers.unbounded_send(Ok(key("b"))).unwrap();
        let loop_ = tokio::spawn(dispatch(
            rx,
            store(&["a", "b"]),
            1,
            QueueGauges::default(),
            run,
            stopped.map(|_| ()),
        ));
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), loop_)
            .await
            .expect("the loop ends once the running pass has")
            .unwrap();
        assert_eq!(
            finished.lock().unwrap().len(),
            1,
            "the one running finished, the other never started"
        );
    }

    #[tokio::test]
    async fn a_pass_that_panics_is_logged_and_does_not_stop_the_others() {
        let (triggers, rx): (Triggers, _) = mpsc::unbounded();
        let (stop, stopped) = oneshot::channel::<()>();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let run = {
            let ran = ran.clone();
            move |c: Arc<ConfigMap>| {
                let ran = ran.clone();
                async move {
                    let name = c.metadata.name.clone().unwrap_or_default();
                    ran.lock().unwrap().push(name.clone());
                    assert_ne!(name, "bad", "a pass that panics");
                    None
                }
            }
        };
        for name in ["bad", "good"] {
            triggers.unbounded_send(Ok(key(name))).unwrap();
        }
        let loop_ = tokio::spawn(dispatch(
            rx,
            store(&["bad", "good"]),
            2,
            QueueGauges::default(),
            run,
            stopped.map(|_| ()),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        loop_.await.unwrap();
        let mut ran = ran.lock().unwrap().clone();
        ran.sort();
        assert_eq!(ran, ["bad", "good"]);
    }
}
