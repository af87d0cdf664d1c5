//! Grafana annotations: a region per rollout step and a point per decision, posted best effort.
//!
//! [`annotations`] (pure) turns the Rollout's status before and after a reconcile into
//! [`Annotation`]s; [`Grafana`] posts one to `POST /api/annotations` with a timeout and retries;
//! [`AnnotationSink`] queues them for a background worker ([`crate::delivery::Outbox`]) so a
//! Grafana outage never delays or changes a decision, counting each result in [`AnnotationMetrics`]
//! (`canary_gate_grafana_annotations_total{result}`). The shipped dashboard
//! (`dashboards/canary-gate.json`, UID `canary-gate`) shows them by tag.

mod builder;
mod error;
mod grafana;
mod sink;

pub use crate::delivery::Secret;
pub use builder::{
    ABORTED, ADVANCED, Annotation, CANCELLED, DEGRADED, PROMOTED, RESTARTED, ROLLED_BACK, STARTED,
    TAG, annotations,
};
pub use error::AnnotationError;
pub use grafana::{DEFAULT_RETRIES, DEFAULT_TIMEOUT, Grafana, GrafanaConfig};
pub use sink::{
    AnnotationMetrics, AnnotationSink, DROPPED, FAILURE, QUEUE_CAPACITY, ResultLabel, SUCCESS,
};
