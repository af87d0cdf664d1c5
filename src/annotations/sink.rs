//! The best-effort sink: reconciles hand annotations over without waiting; one worker task posts
//! them to Grafana in order (a [`crate::delivery::Outbox`]). A slow or failing Grafana fills a
//! bounded queue, after which new annotations are dropped and counted, so it never delays or
//! changes a decision.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::builder::Annotation;
use super::grafana::Grafana;
use crate::delivery::{Deliver, Outbox, Tally};

/// How many annotations wait for the worker at most.
pub const QUEUE_CAPACITY: usize = 1024;

/// Result label value: Grafana stored the annotation.
pub const SUCCESS: &str = "success";
/// Result label value: Grafana could not be reached or refused it, after the retries.
pub const FAILURE: &str = "failure";
/// Result label value: the queue was full; the annotation was never sent.
pub const DROPPED: &str = "dropped";

/// Label of an annotation's fate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `success`, `failure` or `dropped`.
    pub result: String,
}

/// Counters of annotations, by result (`canary_gate_grafana_annotations_total`).
#[derive(Clone, Debug, Default)]
pub struct AnnotationMetrics {
    /// Annotations by result: `success`, `failure` or `dropped`.
    pub annotations: Family<ResultLabel, Counter>,
}

impl AnnotationMetrics {
    /// Registers the counters under `canary_gate_`, each result present (at zero) from the start.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        for result in [SUCCESS, FAILURE, DROPPED] {
            m.counter(result);
        }
        let r = registry.sub_registry_with_prefix("canary_gate");
        r.register(
            "grafana_annotations",
            "Grafana annotations, by result (success, failure, dropped)",
            m.annotations.clone(),
        );
        m
    }

    /// How many annotations ended with `result` so far.
    pub fn count(&self, result: &str) -> u64 {
        self.counter(result).get()
    }

    fn counter(&self, result: &str) -> Counter {
        self.annotations
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .clone()
    }
}

/// Where reconciles send annotations: a handle on the worker's queue (cheap to clone).
#[derive(Clone, Debug)]
pub struct AnnotationSink {
    outbox: Outbox<Annotation>,
}

impl Deliver<Annotation> for Grafana {
    async fn deliver(&mut self, annotation: Annotation) -> bool {
        match self.post(&annotation).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    time = annotation.time,
                    tags = %annotation.tags.join(","),
                    "Grafana annotation lost"
                );
                false
            }
        }
    }
}

impl AnnotationSink {
    /// Spawns the worker that posts queued annotations to `grafana`, one at a time and in
    /// order, counting each result in `metrics`. The worker ends when every sink is dropped.
    ///
    /// # Panics
    /// Outside a Tokio runtime (it spawns a task).
    pub fn start(grafana: Grafana, metrics: AnnotationMetrics) -> AnnotationSink {
        let tally = Tally {
            success: metrics.counter(SUCCESS),
            failure: metrics.counter(FAILURE),
            dropped: metrics.counter(DROPPED),
        };
        AnnotationSink {
            outbox: Outbox::start("Grafana annotations", QUEUE_CAPACITY, tally, grafana),
        }
    }

    /// Queues `annotations` for the worker and returns at once; never blocks. When the queue is
    /// full (Grafana slow or down), the annotations that do not fit are dropped and counted.
    pub fn send(&self, annotations: Vec<Annotation>) {
        self.outbox.send(annotations);
    }
}
