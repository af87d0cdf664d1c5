//! Fixtures shared by the controller's tests and the controller-scale bench (which includes this
//! file with `#[path = "../tests/support/fixtures.rs"]`, as benches cannot use `tests/support`):
//! one Rollout builder and one scripted metrics source.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use canary_gate::analysis::{Counts, Histogram, MetricKind, MetricSample, WindowInterval};
use canary_gate::controller::analyze::MetricWindows;
use canary_gate::controller::reconcile::FINALIZER;
use canary_gate::crd::Rollout;
use canary_gate::metrics::prometheus_source::SourceError;
use canary_gate::simulation::DEFAULT_BUCKETS;
use canary_gate::template::Template;
use serde_json::{Value, json};

/// A Rollout, built up from a canary of its target `name` with one step (10 % for 10 minutes)
/// and no status; [`RolloutBuilder::json`] for the API server's store or a create, or
/// [`RolloutBuilder::build`] for the typed object.
#[derive(Debug, Clone)]
pub struct RolloutBuilder {
    metadata: Value,
    spec: Value,
    status: Value,
}

impl RolloutBuilder {
    /// `name`, targeting the Deployment `name`.
    pub fn new(name: &str) -> Self {
        Self {
            metadata: json!({"name": name}),
            spec: json!({"targetRef": {"name": name}, "strategy": {"canary": {
                "steps": [{"setWeight": 10}, {"pause": {"duration": "10m"}}]}}}),
            status: Value::Null,
        }
    }

    /// In `namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.metadata["namespace"] = json!(namespace);
        self
    }

    /// As the API server returns it: with a uid, a generation and a resourceVersion.
    pub fn stored(mut self, uid: &str, generation: i64, resource_version: &str) -> Self {
        self.metadata["uid"] = json!(uid);
        self.metadata["generation"] = json!(generation);
        self.metadata["resourceVersion"] = json!(resource_version);
        self
    }

    /// Carrying canary-gate's finalizer (reconciled before).
    pub fn finalized(mut self) -> Self {
        self.metadata["finalizers"] = json!([FINALIZER]);
        self
    }

    /// The whole spec.
    pub fn spec(mut self, spec: Value) -> Self {
        self.spec = spec;
        self
    }

    /// The canary's steps (`setWeight`, `pause`).
    pub fn steps(mut self, steps: Value) -> Self {
        self.spec["strategy"]["canary"]["steps"] = steps;
        self
    }

    /// A background analysis of the canary with the template `template` and `args`.
    pub fn analysis(mut self, template: &str, args: &[(&str, &str)]) -> Self {
        let args: Vec<Value> = args
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        self.spec["strategy"]["canary"]["analysis"] =
            json!({"templates": [{"templateName": template}], "args": args});
        self
    }

    /// The status (`Value::Null`: none).
    pub fn status(mut self, status: Value) -> Self {
        self.status = status;
        self
    }

    /// The object as JSON.
    pub fn json(&self) -> Value {
        let mut rollout = json!({"apiVersion": "canarygate.dev/v1alpha1", "kind": "Rollout",
            "metadata": self.metadata, "spec": self.spec});
        if !self.status.is_null() {
            rollout["status"] = self.status.clone();
        }
        rollout
    }

    /// The typed object.
    pub fn build(&self) -> Rollout {
        serde_json::from_value(self.json()).expect("a valid Rollout")
    }
}

/// What the canary serves in each interval of a scripted source; the stable always serves 900
/// requests with 1 error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Canary requests per interval.
    pub requests: f64,
    /// Canary errors per interval.
    pub errors: f64,
}

/// A healthy canary: 100 requests, no error.
pub const CLEAN: Traffic = Traffic {
    requests: 100.0,
    errors: 0.0,
};
/// A canary failing 20 % of its 100 requests.
pub const FAILING: Traffic = Traffic {
    requests: 100.0,
    errors: 20.0,
};
/// A canary that hardly gets traffic: 2 requests.
pub const THIN: Traffic = Traffic {
    requests: 2.0,
    errors: 0.0,
};

/// Latency histograms of one shape (DEFAULT_BUCKETS) for both versions, made once per request
/// count.
pub struct Sampler {
    stable: Histogram,
    canary: Vec<(f64, Histogram)>,
}

impl Sampler {
    /// Histograms for the stable's 900 requests and each of `traffic`'s canaries.
    pub fn new(traffic: &[Traffic]) -> Self {
        Self {
            stable: histogram(900.0),
            canary: traffic
                .iter()
                .map(|t| (t.requests, histogram(t.requests)))
                .collect(),
        }
    }

    /// The intervals of `template` that end in `(from, to]`, one per template interval, with
    /// `traffic` on the canary.
    pub fn window(
        &self,
        template: &Template,
        traffic: Traffic,
        from: f64,
        to: f64,
    ) -> Vec<WindowInterval> {
        let made;
        let canary = match self.canary.iter().find(|(n, _)| *n == traffic.requests) {
            Some((_, h)) => h,
            None => {
                made = histogram(traffic.requests);
                &made
            }
        };
        let interval = template.interval.as_secs_f64();
        let mut out = Vec::new();
        let mut t = from + interval;
        while t <= to + 1e-9 {
            let samples = template
                .judge
                .metrics
                .iter()
                .map(|m| match m.kind {
                    MetricKind::ErrorRate => MetricSample::Counts {
                        stable: Counts::new(1.0, 900.0),
                        canary: Counts::new(traffic.errors, traffic.requests),
                    },
                    MetricKind::Latency => MetricSample::Histogram {
                        stable: self.stable.clone(),
                        canary: canary.clone(),
                    },
                    MetricKind::Value => MetricSample::Missing("not scripted".into()),
                })
                .collect();
            out.push(WindowInterval { t, samples });
            t += interval;
        }
        out
    }
}

/// `n` requests spread over the buckets in one fixed shape.
fn histogram(n: f64) -> Histogram {
    let shape = [0.0, 0.0, 0.1, 0.4, 0.4, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    Histogram::new(
        DEFAULT_BUCKETS.to_vec(),
        shape.iter().map(|p| p * n).collect(),
        0.0,
    )
    .expect("a valid histogram")
}

/// A metrics source that answers every window with scripted traffic, which a test may change
/// between reconciles, and remembers the windows asked for.
pub struct ScriptedMetrics {
    sampler: Sampler,
    traffic: Mutex<Traffic>,
    windows: Mutex<Vec<(f64, f64)>>,
}

impl ScriptedMetrics {
    /// Answers with `traffic` on the canary.
    pub fn new(traffic: Traffic) -> Self {
        Self {
            sampler: Sampler::new(&[CLEAN, FAILING, THIN]),
            traffic: Mutex::new(traffic),
            windows: Mutex::new(Vec::new()),
        }
    }

    /// Answers with `traffic` from now on.
    pub fn set(&self, traffic: Traffic) {
        *self.traffic.lock().expect("traffic lock") = traffic;
    }

    /// Every window asked for so far, `(from, to)`.
    pub fn windows(&self) -> Vec<(f64, f64)> {
        self.windows.lock().expect("windows lock").clone()
    }
}

impl MetricWindows for ScriptedMetrics {
    fn window<'a>(
        &'a self,
        template: &'a Template,
        _args: &'a [(String, String)],
        from: f64,
        to: f64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WindowInterval>, SourceError>> + Send + 'a>> {
        self.windows.lock().expect("windows lock").push((from, to));
        let traffic = *self.traffic.lock().expect("traffic lock");
        Box::pin(async move { Ok(self.sampler.window(template, traffic, from, to)) })
    }
}

/// A metrics source with no observations (for Rollouts whose steps are not gated, or tests
/// about objects rather than evidence).
pub struct NoMetrics;

impl MetricWindows for NoMetrics {
    fn window<'a>(
        &'a self,
        _: &'a Template,
        _: &'a [(String, String)],
        _: f64,
        _: f64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WindowInterval>, SourceError>> + Send + 'a>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
