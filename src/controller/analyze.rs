//! Stage *analyze*: where a rollout's observations come from, and how several templates'
//! judgements combine (the most severe decision wins). The judging itself, interval by interval
//! in the step each belonged to, is [`super::judge_memory`].

use std::future::Future;
use std::pin::Pin;

use crate::analysis::{Decision, Judgement};
use crate::metrics::prometheus::Prometheus;
use crate::metrics::prometheus_source::{PrometheusSource, SourceError, WindowInterval};
use crate::template::Template;

/// Where the observations of a window come from (Prometheus in production).
pub trait MetricWindows: Send + Sync {
    /// The intervals of `template` (with `args`) in `(from, to]`.
    fn window<'a>(
        &'a self,
        template: &'a Template,
        args: &'a [(String, String)],
        from: f64,
        to: f64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WindowInterval>, SourceError>> + Send + 'a>>;
}

/// Observations from Prometheus.
pub struct PrometheusWindows(pub Prometheus);

impl MetricWindows for PrometheusWindows {
    fn window<'a>(
        &'a self,
        template: &'a Template,
        args: &'a [(String, String)],
        from: f64,
        to: f64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WindowInterval>, SourceError>> + Send + 'a>> {
        Box::pin(async move {
            PrometheusSource::new(&self.0, template, args)?
                .window(from, to)
                .await
        })
    }
}

/// The most severe of several templates' judgements: rollback, then hold, then continue; promote
/// only when every template promotes.
pub fn combine(judgements: Vec<Judgement>) -> Option<Judgement> {
    let severity = |d: Decision| match d {
        Decision::Rollback => 3,
        Decision::Hold => 2,
        Decision::Continue => 1,
        Decision::Promote => 0,
    };
    judgements.into_iter().max_by_key(|j| severity(j.decision))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(decision: Decision) -> Judgement {
        Judgement {
            t: 0.0,
            decision,
            reason: decision.as_str().into(),
            step: 0,
            weight: 5.0,
            paused: false,
            metrics: Vec::new(),
        }
    }

    #[test]
    fn the_most_severe_judgement_wins() {
        let pick =
            |ds: &[Decision]| combine(ds.iter().map(|d| j(*d)).collect()).map(|j| j.decision);
        assert_eq!(
            pick(&[Decision::Promote, Decision::Rollback, Decision::Hold]),
            Some(Decision::Rollback)
        );
        assert_eq!(
            pick(&[Decision::Promote, Decision::Continue]),
            Some(Decision::Continue)
        );
        assert_eq!(
            pick(&[Decision::Promote, Decision::Promote]),
            Some(Decision::Promote)
        );
        assert_eq!(pick(&[]), None);
    }
}
