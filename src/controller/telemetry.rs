//! The controller's own metrics (prometheus-client), served on `/metrics`: reconciles, failures,
//! decisions, durations, and the work queue's timeliness — how late a timed reconcile starts
//! (`reconcile_lag_seconds`) and how many are due but not started (`reconciles_overdue`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of a failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    /// The error's stable category.
    pub category: String,
}

/// Label of a decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    /// continue, hold, promote or rollback.
    pub decision: String,
}

/// Label of a webhook attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabel {
    /// `step`, `prePromotion` or `postPromotion`.
    pub kind: String,
    /// `passed`, `retrying` (failed, another attempt follows) or `failed` (for good).
    pub result: String,
}

/// Counters and timings of reconciles.
#[derive(Clone)]
pub struct ControllerMetrics {
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles that failed, by error category.
    pub failures: Family<CategoryLabel, Counter>,
    /// Judge decisions, by outcome.
    pub decisions: Family<DecisionLabel, Counter>,
    /// Seconds per reconcile (including the metric queries).
    pub duration: Histogram,
    /// Seconds spent reading metrics and judging, per reconcile that analysed.
    pub analysis: Histogram,
    /// Webhook attempts that ended, by kind and result.
    pub webhook_attempts: Family<WebhookLabel, Counter>,
    /// When each Rollout is due again.
    pub schedule: std::sync::Arc<Schedule>,
    /// Rollouts due a pass that has not started (the work queue's ready backlog).
    pub queue_ready: Gauge,
    /// Passes under way.
    pub queue_running: Gauge,
}

/// When each Rollout asked to be looked at again, to measure how late the work queue runs: the
/// lag of a timed reconcile that starts after its time, and the number due but not started.
#[derive(Debug)]
pub struct Schedule {
    due: Mutex<HashMap<(String, String), Instant>>,
    lag: Histogram,
    overdue: Gauge,
}

impl Schedule {
    fn new() -> Self {
        Self {
            due: Mutex::new(HashMap::new()),
            lag: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            overdue: Gauge::default(),
        }
    }

    /// A reconcile of `namespace/name` asked to run again `after` (`None`: on a change only).
    pub fn set(&self, namespace: &str, name: &str, after: Option<Duration>) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), name.to_string());
        match after {
            Some(after) => {
                due.insert(key, Instant::now() + after);
            }
            None => {
                due.remove(&key);
            }
        }
    }

    /// A reconcile of `namespace/name` starts: records its lag when it was due (timed).
    pub fn started(&self, namespace: &str, name: &str) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = due.remove(&(namespace.to_string(), name.to_string())) {
            let now = Instant::now();
            if now >= at {
                self.lag.observe((now - at).as_secs_f64());
            }
        }
    }

    /// Counts the reconciles due for more than a second that have not started, into the gauge;
    /// returns the count.
    pub fn refresh(&self) -> i64 {
        let due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        let late = Instant::now() - Duration::from_secs(1);
        let overdue = due.values().filter(|at| **at < late).count() as i64;
        self.overdue.set(overdue);
        overdue
    }
}

impl ControllerMetrics {
    /// Registers the metrics under `canary_gate_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Counter::default(),
            failures: Family::default(),
            decisions: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            analysis: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            schedule: std::sync::Arc::new(Schedule::new()),
            webhook_attempts: Family::default(),
            queue_ready: Gauge::default(),
            queue_running: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("canary_gate");
        r.register("reconciles", "Reconciles run", m.reconciles.clone());
        r.register(
            "reconcile_failures",
            "Reconciles that failed, by error category",
            m.failures.clone(),
        );
        r.register(
            "decisions",
            "Judge decisions, by outcome",
            m.decisions.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Seconds per reconcile",
            m.duration.clone(),
        );
        r.register(
            "analysis_duration_seconds",
            "Seconds reading metrics and judging, per reconcile that analysed",
            m.analysis.clone(),
        );
        r.register(
            "reconcile_lag_seconds",
            "Seconds a timed reconcile started after the time it asked for",
            m.schedule.lag.clone(),
        );
        r.register(
            "reconciles_overdue",
            "Rollouts whose timed reconcile is more than a second overdue and not started (the work queue's backlog)",
            m.schedule.overdue.clone(),
        );
        r.register(
            "work_queue_ready",
            "Rollouts due a pass that has not started (newest first unless one has waited 20 s)",
            m.queue_ready.clone(),
        );
        r.register(
            "work_queue_running",
            "Passes under way (at most --concurrency)",
            m.queue_running.clone(),
        );
        r.register(
            "webhook_attempts",
            "Webhook attempts that ended, by kind and result",
            m.webhook_attempts.clone(),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_counts_what_is_overdue_and_measures_the_lag_of_what_starts_late() {
        let schedule = Schedule::new();
        schedule.set("shop", "web", Some(Duration::ZERO));
        schedule.set("shop", "api", Some(Duration::from_secs(3600)));
        schedule.set("shop", "old", Some(Duration::ZERO));
        schedule.set("shop", "old", None);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            schedule.refresh(),
            1,
            "web is overdue, api is not due, old waits for a change"
        );
        schedule.started("shop", "web");
        assert_eq!(schedule.refresh(), 0);
        let mut text = String::new();
        let mut registry = Registry::default();
        registry.register("lag", "", schedule.lag.clone());
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("lag_count 1"), "{text}");
    }
}
