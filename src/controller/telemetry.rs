//! The controller's own metrics (prometheus-client), served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
            webhook_attempts: Family::default(),
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
            "webhook_attempts",
            "Webhook attempts that ended, by kind and result",
            m.webhook_attempts.clone(),
        );
        m
    }
}
