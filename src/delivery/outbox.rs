//! The outbox: callers hand items over without waiting; one worker task delivers them in order.
//! A slow or failing endpoint fills a bounded queue, after which new items are dropped and
//! counted, so the caller (a reconcile) is never delayed.

use std::future::Future;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

/// What became of the items: delivered, lost after the retries, or dropped before a try.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Delivered.
    pub success: Counter,
    /// Not delivered after the retries.
    pub failure: Counter,
    /// Never tried: the queue was full or the worker gone.
    pub dropped: Counter,
}

/// How the worker delivers one item (it logs a failure with its own context).
pub trait Deliver<T>: Send + 'static {
    /// Delivers `item`; whether it arrived.
    fn deliver(&mut self, item: T) -> impl Future<Output = bool> + Send;
}

/// A handle on the worker's queue (cheap to clone); the worker ends when every handle is gone.
#[derive(Debug)]
pub struct Outbox<T> {
    queue: mpsc::Sender<T>,
    tally: Tally,
    what: String,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            tally: self.tally.clone(),
            what: self.what.clone(),
        }
    }
}

impl<T: Send + 'static> Outbox<T> {
    /// Spawns the worker that hands each queued item to `deliver`, one at a time and in order,
    /// counting each result in `tally`. `what` names the items in log lines (e.g. `Grafana
    /// annotations`); at most `capacity` wait.
    ///
    /// # Panics
    /// Outside a Tokio runtime (it spawns a task), or with a zero capacity.
    pub fn start(
        what: impl Into<String>,
        capacity: usize,
        tally: Tally,
        mut deliver: impl Deliver<T>,
    ) -> Self {
        let (queue, mut pending) = mpsc::channel::<T>(capacity);
        let counters = tally.clone();
        tokio::spawn(async move {
            while let Some(item) = pending.recv().await {
                if deliver.deliver(item).await {
                    counters.success.inc();
                } else {
                    counters.failure.inc();
                }
            }
        });
        Self {
            queue,
            tally,
            what: what.into(),
        }
    }

    /// Queues `items` for the worker and returns at once; never blocks. Items that do not fit
    /// (the endpoint is slow or down) are dropped and counted; returns how many.
    pub fn send(&self, items: impl IntoIterator<Item = T>) -> u64 {
        let mut dropped = 0_u64;
        let mut closed = false;
        for item in items {
            match self.queue.try_send(item) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    dropped += 1;
                    closed = true;
                }
            }
        }
        if dropped > 0 {
            self.tally.dropped.inc_by(dropped);
            if closed {
                tracing::warn!(dropped, what = %self.what, "dropped: the worker has stopped");
            } else {
                tracing::warn!(
                    dropped,
                    what = %self.what,
                    capacity = self.queue.max_capacity(),
                    "dropped: the queue is full (the endpoint is slow or down)"
                );
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// Delivers odd numbers, fails even ones, and blocks on 0 until released.
    struct Parity {
        seen: Arc<Mutex<Vec<u32>>>,
        gate: Arc<tokio::sync::Notify>,
    }

    impl Deliver<u32> for Parity {
        async fn deliver(&mut self, item: u32) -> bool {
            if item == 0 {
                self.gate.notified().await;
            }
            self.seen.lock().expect("lock").push(item);
            item % 2 == 1
        }
    }

    #[tokio::test]
    async fn items_go_in_order_and_each_result_is_counted() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Notify::new());
        let tally = Tally::default();
        let outbox = Outbox::start(
            "numbers",
            2,
            tally.clone(),
            Parity {
                seen: seen.clone(),
                gate: gate.clone(),
            },
        );
        // The worker takes 0 and waits; two fit in the queue; the rest are dropped.
        assert_eq!(outbox.send([0]), 0);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(outbox.clone().send([1, 2, 3, 5]), 2);
        assert_eq!(tally.dropped.get(), 2);
        gate.notify_one();
        for _ in 0..200 {
            if seen.lock().expect("lock").len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*seen.lock().expect("lock"), vec![0, 1, 2]);
        assert_eq!((tally.success.get(), tally.failure.get()), (1, 2));
    }
}
