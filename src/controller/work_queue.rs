//! The controller's work queue: which Rollouts are due a pass, and which goes next when more
//! are due than the workers can start — the newest due first, unless the oldest has waited
//! [`MAX_WAIT`]: then the oldest ("adaptive LIFO", as in Maurer, "Fail at Scale", ACM Queue
//! 2015).
//!
//! Why not first come, first served: when the API server is saturated (the soak: 1 000 new
//! canaries a minute on two cores), every pass then waits as long as the backlog, about 40 s,
//! and a rollout's eight or so passes each pay it: rollouts outlived the ten minutes between
//! their images, nearly every Rollout stayed mid-rollout, and the controller's memory grew with
//! them. Newest first keeps most passes prompt through a burst; a backlog that lasts (more due
//! than the API server carries) turns it into oldest first among those that waited the bound,
//! and then every pass waits longer — the soak's memory still grew (268 MiB), but no interval
//! went unjudged. Why not kube-runtime's own queue: when its runner is at its
//! `concurrency` limit, every pass that comes due is moved into a hash set and the next free
//! slot takes the first entry in hash order, so a Rollout whose key hashes late can wait for
//! minutes (the soak: windows of up to six minutes unjudged).
//!
//! The other semantics are client-go's work queue (which Kubernetes' own controllers use):
//! - a Rollout is queued at most once; asking again while it is queued changes nothing;
//! - a Rollout is never run twice at once; asked for while its pass runs, it is queued again
//!   when that pass ends (the pass may have read the state from before the change);
//! - a pass asks for its next one after a delay; a timer keeps only the earliest time asked for,
//!   and a change that queues the Rollout at once replaces its timer (the pass it triggers
//!   asks for its own next one).
//!
//! The queue is a plain data structure driven with explicit times (see `dispatch.rs` for the
//! loop that feeds it and runs the passes), so its order is tested without a clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long a due pass may wait behind newer ones; then it goes first. Well under an analysis
/// interval (one minute by default).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// Rollouts due a pass and the timers of those that will be.
#[derive(Debug)]
pub struct WorkQueue<K> {
    /// Due now, oldest first, with the time each came due.
    ready: VecDeque<(K, Instant)>,
    /// The keys in `ready`.
    queued: HashSet<K>,
    /// Passes under way.
    running: HashSet<K>,
    /// Running keys asked for again meanwhile.
    again: HashSet<K>,
    /// Each waiting key's time and the sequence number of its heap entry.
    timers: HashMap<K, (Instant, u64)>,
    /// Timers by time; an entry whose sequence number is no longer in `by_seq` was replaced.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    by_seq: HashMap<u64, K>,
    seq: u64,
}

impl<K> Default for WorkQueue<K> {
    fn default() -> Self {
        Self {
            ready: VecDeque::new(),
            queued: HashSet::new(),
            running: HashSet::new(),
            again: HashSet::new(),
            timers: HashMap::new(),
            heap: BinaryHeap::new(),
            by_seq: HashMap::new(),
            seq: 0,
        }
    }
}

impl<K: Hash + Eq + Clone> WorkQueue<K> {
    /// `key` is due at `now` (a change to it or to something it depends on).
    pub fn add(&mut self, key: K, now: Instant) {
        self.cancel_timer(&key);
        if self.running.contains(&key) {
            self.again.insert(key);
        } else {
            self.enqueue(key, now);
        }
    }

    fn enqueue(&mut self, key: K, at: Instant) {
        if self.queued.insert(key.clone()) {
            self.ready.push_back((key, at));
        }
    }

    /// `key` is due at `at` unless something queues it sooner; of several times asked for, the
    /// earliest holds. Ignored while the key is queued or runs (its pass asks for its next).
    pub fn add_at(&mut self, key: K, at: Instant) {
        if self.queued.contains(&key) || self.running.contains(&key) {
            return;
        }
        if self.timers.get(&key).is_some_and(|(t, _)| *t <= at) {
            return;
        }
        self.cancel_timer(&key);
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq)));
        self.by_seq.insert(self.seq, key.clone());
        self.timers.insert(key, (at, self.seq));
        self.compact();
    }

    /// Moves every timer due by `now` into the ready queue, earliest first.
    pub fn promote(&mut self, now: Instant) {
        while let Some(Reverse((at, seq))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if let Some(key) = self.by_seq.remove(&seq) {
                self.timers.remove(&key);
                self.enqueue(key, at);
            }
        }
    }

    /// When the earliest timer is due.
    pub fn next_timer(&mut self) -> Option<Instant> {
        // Drop replaced entries at the top so the caller does not wake for nothing.
        while let Some(Reverse((_, seq))) = self.heap.peek() {
            if self.by_seq.contains_key(seq) {
                break;
            }
            self.heap.pop();
        }
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next key, now marked running: the newest due, unless the oldest has waited
    /// [`MAX_WAIT`] since it came due (then the oldest); `None` when nothing is due.
    pub fn start(&mut self, now: Instant) -> Option<K> {
        let overdue = self
            .ready
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= MAX_WAIT);
        let (key, _) = if overdue {
            self.ready.pop_front()?
        } else {
            self.ready.pop_back()?
        };
        self.queued.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// The pass of `key` ended at `now` and asked to be run again at `next` (`None`: on a change
    /// only). A key asked for while it ran is queued at once instead.
    pub fn done(&mut self, key: &K, next: Option<Instant>, now: Instant) {
        self.running.remove(key);
        if self.again.remove(key) {
            self.enqueue(key.clone(), now);
        } else if let Some(at) = next {
            self.add_at(key.clone(), at);
        }
    }

    /// Keys due now and not started.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Passes under way.
    pub fn running_len(&self) -> usize {
        self.running.len()
    }

    /// Keys waiting for their time.
    pub fn waiting_len(&self) -> usize {
        self.timers.len()
    }

    fn cancel_timer(&mut self, key: &K) {
        if let Some((_, seq)) = self.timers.remove(key) {
            self.by_seq.remove(&seq);
        }
    }

    /// Replaced timers stay in the heap until their time; rebuild it when they outnumber the
    /// live ones, so its size stays bounded by the number of Rollouts.
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.timers.len() + 1024 {
            self.heap = self
                .timers
                .values()
                .map(|(at, seq)| Reverse((*at, *seq)))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn drain(q: &mut WorkQueue<&'static str>, now: Instant) -> Vec<&'static str> {
        std::iter::from_fn(|| q.start(now)).collect()
    }

    #[test]
    fn the_newest_due_goes_first_until_the_oldest_has_waited_max_wait() {
        let t0 = Instant::now();
        let mut q = WorkQueue::default();
        // Timers set in one order, due in another.
        q.add_at("c", t0 + s(3));
        q.add_at("a", t0 + s(1));
        q.add_at("b", t0 + s(2));
        q.add_at("late", t0 + s(60));
        q.add("now", t0);
        assert_eq!(q.next_timer(), Some(t0 + s(1)));
        q.promote(t0 + s(10));
        assert_eq!(q.waiting_len(), 1, "late is not due yet");
        // A burst: newest first while nobody has waited MAX_WAIT.
        assert_eq!(drain(&mut q, t0 + s(10)), ["c", "b", "a", "now"]);
        for key in ["now", "a", "b", "c"] {
            q.done(&key, None, t0 + s(11));
        }
        // A backlog: the ones that came due MAX_WAIT ago go first, oldest first...
        q.add("old-1", t0);
        q.add("old-2", t0 + s(1));
        q.add("new-1", t0 + s(15));
        q.add("new-2", t0 + s(16));
        let now = t0 + s(1) + MAX_WAIT;
        assert_eq!(q.start(now), Some("old-1"));
        assert_eq!(q.start(now), Some("old-2"));
        // ...then newest first again.
        assert_eq!(drain(&mut q, now), ["new-2", "new-1"]);
    }

    #[test]
    fn a_key_is_queued_once_and_never_runs_twice_at_once() {
        let t0 = Instant::now();
        let mut q = WorkQueue::default();
        q.add("web", t0);
        q.add("web", t0);
        q.add_at("web", t0);
        assert_eq!(q.ready_len(), 1);
        assert_eq!(q.start(t0), Some("web"));
        // Asked for while it runs: not handed out again now...
        q.add("web", t0);
        q.add_at("web", t0);
        assert_eq!(q.start(t0), None);
        // ...but queued as soon as the pass ends, whatever the pass asked for.
        q.done(&"web", Some(t0 + s(60)), t0);
        assert_eq!(q.waiting_len(), 0);
        assert_eq!(q.start(t0), Some("web"));
        q.done(&"web", None, t0);
        assert_eq!((q.ready_len(), q.running_len(), q.waiting_len()), (0, 0, 0));
    }

    #[test]
    fn the_earliest_time_asked_for_holds_and_a_change_replaces_the_timer() {
        let t0 = Instant::now();
        let mut q = WorkQueue::default();
        q.add_at("web", t0 + s(60));
        q.add_at("web", t0 + s(30));
        q.add_at("web", t0 + s(90));
        assert_eq!(q.next_timer(), Some(t0 + s(30)));
        q.promote(t0 + s(29));
        assert_eq!(q.start(t0 + s(29)), None);
        q.promote(t0 + s(30));
        assert_eq!(q.start(t0 + s(30)), Some("web"));
        q.promote(t0 + s(100));
        q.done(&"web", Some(t0 + s(200)), t0 + s(100));
        // A change queues it now and drops the timer: its pass asks for its own next one.
        q.add("web", t0 + s(101));
        assert_eq!(q.next_timer(), None);
        assert_eq!(q.start(t0 + s(101)), Some("web"));
        q.done(&"web", None, t0 + s(102));
        q.promote(t0 + s(300));
        assert_eq!(
            q.start(t0 + s(300)),
            None,
            "the dropped timer does not fire"
        );
    }

    #[test]
    fn replaced_timers_do_not_pile_up() {
        let t0 = Instant::now();
        let mut q = WorkQueue::default();
        for i in 0..10_000u64 {
            q.add_at("web", t0 + s(100_000 - i));
        }
        assert!(q.heap.len() <= 1025, "{}", q.heap.len());
        assert_eq!(q.next_timer(), Some(t0 + s(100_000 - 9_999)));
        assert_eq!(q.waiting_len(), 1);
    }
}
