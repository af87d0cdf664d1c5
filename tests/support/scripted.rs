//! A scripted metrics source for reconciles against a real API server: every minute 900 stable
//! and 100 canary requests with the same latency; the canary fails 20 % of its requests while
//! `failing` is set. Keeps every window it was asked for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use canary_gate::analysis::{Counts, Histogram, MetricKind, MetricSample};
use canary_gate::controller::analyze::MetricWindows;
use canary_gate::metrics::prometheus_source::{SourceError, WindowInterval};
use canary_gate::simulation::DEFAULT_BUCKETS;
use canary_gate::template::Template;

/// The source; share it (`Arc`) between the test and the reconciles' context.
#[derive(Default)]
pub struct Scripted {
    /// Whether the canary fails 20 % of its requests.
    pub failing: AtomicBool,
    /// Every window asked for, `(from, to)`.
    pub windows: Mutex<Vec<(f64, f64)>>,
}

impl Scripted {
    /// Makes the canary fail (or heal).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The last window asked for.
    pub fn last_window(&self) -> Option<(f64, f64)> {
        self.windows.lock().unwrap().last().copied()
    }
}

impl MetricWindows for Scripted {
    fn window<'a>(
        &'a self,
        template: &'a Template,
        _args: &'a [(String, String)],
        from: f64,
        to: f64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WindowInterval>, SourceError>> + Send + 'a>> {
        let failing = self.failing.load(Ordering::SeqCst);
        self.windows.lock().unwrap().push((from, to));
        Box::pin(async move {
            let mut out = Vec::new();
            let mut t = from + 60.0;
            let hist = |n: f64| {
                let shape = [
                    0.0, 0.01, 0.1, 0.35, 0.35, 0.15, 0.03, 0.01, 0.0, 0.0, 0.0, 0.0,
                ];
                Histogram::new(
                    DEFAULT_BUCKETS.to_vec(),
                    shape.iter().map(|p| p * n).collect(),
                    0.0,
                )
                .unwrap()
            };
            while t <= to + 1e-9 {
                let samples = template
                    .judge
                    .metrics
                    .iter()
                    .map(|m| match m.kind {
                        MetricKind::ErrorRate => MetricSample::Counts {
                            stable: Counts::new(1.0, 900.0),
                            canary: Counts::new(if failing { 20.0 } else { 0.0 }, 100.0),
                        },
                        MetricKind::Latency => MetricSample::Histogram {
                            stable: hist(900.0),
                            canary: hist(100.0),
                        },
                        MetricKind::Value => MetricSample::Missing("not scripted".into()),
                    })
                    .collect();
                out.push(WindowInterval { t, samples });
                t += 60.0;
            }
            Ok(out)
        })
    }
}
