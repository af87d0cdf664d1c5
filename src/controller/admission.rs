//! Which reconcile runs next when more are ready than may run at once: Rollouts in the middle of
//! a rollout (an analysis interval, a step, a rollback) before the rest (a new revision on a
//! healthy Rollout, adoption, a label change), so an API server slowed by a burst of new
//! rollouts delays the new ones, not the judging of those already under way.
//!
//! A fixed number of permits; a waiter is *urgent* or *normal*. A freed permit goes to the oldest
//! urgent waiter, unless the oldest normal one has waited longer than `max_wait` (then to it:
//! nothing waits for ever while urgent work keeps coming). FIFO within each class. A waiter that
//! gives up (its future is dropped) is skipped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The gate; clone it freely (the clones share the permits).
#[derive(Clone, Debug)]
pub struct Admission {
    inner: Arc<Mutex<State>>,
    max_wait: Duration,
}

#[derive(Debug)]
struct State {
    free: usize,
    urgent: VecDeque<oneshot::Sender<Permit>>,
    normal: VecDeque<(Instant, oneshot::Sender<Permit>)>,
}

/// The right to run one reconcile; freed when dropped.
#[derive(Debug)]
pub struct Permit {
    gate: Option<Admission>,
}

impl Admission {
    /// `permits` reconciles at once; a normal waiter goes first once it has waited `max_wait`.
    pub fn new(permits: usize, max_wait: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                free: permits.max(1),
                urgent: VecDeque::new(),
                normal: VecDeque::new(),
            })),
            max_wait,
        }
    }

    /// Waits for a permit.
    pub async fn acquire(&self, urgent: bool) -> Permit {
        let since = Instant::now();
        loop {
            let receiver = {
                let mut state = self.lock();
                if state.free > 0 && state.urgent.is_empty() && state.normal.is_empty() {
                    state.free -= 1;
                    return Permit {
                        gate: Some(self.clone()),
                    };
                }
                let (sender, receiver) = oneshot::channel();
                if urgent {
                    state.urgent.push_back(sender);
                } else {
                    state.normal.push_back((since, sender));
                }
                // Permits can be free with waiters queued only when those gave up.
                self.hand_out(&mut state);
                receiver
            };
            // A queued sender is only ever dropped after sending; should that change, queue
            // again rather than run without a permit.
            if let Ok(permit) = receiver.await {
                return permit;
            }
        }
    }

    /// Waiters queued (urgent, normal), for tests and metrics.
    pub fn waiting(&self) -> (usize, usize) {
        let state = self.lock();
        (state.urgent.len(), state.normal.len())
    }

    fn release(&self) {
        let mut state = self.lock();
        state.free += 1;
        self.hand_out(&mut state);
    }

    /// Gives free permits to waiters, in order, skipping those that gave up.
    fn hand_out(&self, state: &mut State) {
        while state.free > 0 {
            let overdue = state
                .normal
                .front()
                .is_some_and(|(since, _)| since.elapsed() >= self.max_wait);
            let next = if overdue || state.urgent.is_empty() {
                state.normal.pop_front().map(|(_, s)| s)
            } else {
                state.urgent.pop_front()
            };
            let Some(sender) = next else { return };
            state.free -= 1;
            let permit = Permit {
                gate: Some(self.clone()),
            };
            if let Err(mut unsent) = sender.send(permit) {
                // The waiter gave up: the permit comes back without re-entering the lock.
                unsent.gate = None;
                state.free += 1;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `acquire` once: queued (pending) or admitted.
    fn try_now(
        gate: &Admission,
        urgent: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Permit> + Send>> {
        let gate = gate.clone();
        Box::pin(async move { gate.acquire(urgent).await })
    }

    fn poll(
        f: &mut std::pin::Pin<Box<dyn std::future::Future<Output = Permit> + Send>>,
    ) -> Option<Permit> {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(p) => Some(p),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn urgent_waiters_go_before_normal_ones_and_fifo_within_a_class() {
        let gate = Admission::new(1, Duration::from_secs(60));
        let held = poll(&mut try_now(&gate, false)).expect("a free permit");
        let mut normal_1 = try_now(&gate, false);
        let mut normal_2 = try_now(&gate, false);
        let mut urgent_1 = try_now(&gate, true);
        let mut urgent_2 = try_now(&gate, true);
        for f in [&mut normal_1, &mut normal_2, &mut urgent_1, &mut urgent_2] {
            assert!(poll(f).is_none(), "no permit is free");
        }
        assert_eq!(gate.waiting(), (2, 2));
        drop(held);
        assert!(poll(&mut normal_1).is_none(), "urgent first");
        let p = poll(&mut urgent_1).expect("the oldest urgent waiter");
        assert!(poll(&mut urgent_2).is_none());
        drop(p);
        let p = poll(&mut urgent_2).expect("then the next urgent one");
        drop(p);
        assert!(poll(&mut normal_2).is_none(), "FIFO among normal waiters");
        let p = poll(&mut normal_1).expect("then the normal ones");
        drop(p);
        let p = poll(&mut normal_2).expect("in order");
        drop(p);
        assert_eq!(gate.waiting(), (0, 0));
        // All permits back: the next one is admitted at once.
        assert!(poll(&mut try_now(&gate, false)).is_some());
    }

    #[test]
    fn a_normal_waiter_past_its_max_wait_goes_before_urgent_ones() {
        let gate = Admission::new(1, Duration::from_millis(20));
        let held = poll(&mut try_now(&gate, true)).expect("a free permit");
        let mut normal = try_now(&gate, false);
        assert!(poll(&mut normal).is_none());
        std::thread::sleep(Duration::from_millis(30));
        let mut urgent = try_now(&gate, true);
        assert!(poll(&mut urgent).is_none());
        drop(held);
        assert!(poll(&mut urgent).is_none());
        let p = poll(&mut normal).expect("the normal waiter waited long enough");
        drop(p);
        assert!(poll(&mut urgent).is_some());
    }

    #[test]
    fn a_waiter_that_gives_up_loses_nothing() {
        let gate = Admission::new(2, Duration::from_secs(60));
        let a = poll(&mut try_now(&gate, false)).unwrap();
        let b = poll(&mut try_now(&gate, false)).unwrap();
        let mut gone = try_now(&gate, true);
        assert!(poll(&mut gone).is_none());
        let mut waiting = try_now(&gate, false);
        assert!(poll(&mut waiting).is_none());
        drop(gone);
        drop(a);
        // The permit skipped the dropped waiter.
        let c = poll(&mut waiting).expect("the next live waiter");
        drop((b, c));
        // Both permits are free again.
        let x = poll(&mut try_now(&gate, true)).unwrap();
        let y = poll(&mut try_now(&gate, true)).unwrap();
        assert!(poll(&mut try_now(&gate, true)).is_none());
        drop((x, y));
    }
}
