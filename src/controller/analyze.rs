//! Stage *analyze*: which analysis gates the current step, its templates (read from the
//! cluster), the intervals that ended since the last reconcile (from the metric source), judged
//! and combined (the most severe decision wins) — or, when the metrics cannot be read, the
//! outage the step holds on. The judging itself, interval by interval in the step each belonged
//! to, with the judge's state kept between reconciles, is [`super::judge_memory`].

use std::future::Future;
use std::pin::Pin;

use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use crate::analysis::{Decision, InconclusivePolicy, Judgement, WindowInterval};
use crate::crd::rollout::{RolloutAnalysis, RolloutStatus};
use crate::crd::{AnalysisTemplate, ClusterAnalysisTemplate, Rollout};
use crate::metrics::prometheus::Prometheus;
use crate::metrics::prometheus_source::{PrometheusSource, SourceError};
use crate::rollout::lifecycle::{MetricsOutage, OutageKind};
use crate::template::{self, Template};

use super::observe::Seen;
pub use super::observed::Analysis;
use super::reconcile::Context;
use super::status::state_of;
use super::telemetry::{CategoryLabel, DecisionLabel};
use super::validate::ValidatedRollout;

/// Seconds between looks at a step without analysis (a gated step looks every interval of its
/// shortest template).
const UNGATED_INTERVAL: f64 = 60.0;

/// A template could not be read or is invalid, or the judge rejected the samples.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The API server refused or could not be reached.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A referenced analysis template does not exist.
    #[error("{0} not found; create it or fix the Rollout's templateName")]
    MissingTemplate(String),
    /// A referenced analysis template is invalid.
    #[error("{0}")]
    InvalidTemplate(#[source] template::TemplateError),
    /// The judge rejected its input (samples that do not match the template's metrics).
    #[error("judge: {0}")]
    Judge(#[from] crate::analysis::AnalysisError),
}

impl AnalyzeError {
    /// A stable short name (see [`super::error::ReconcileError::category`]).
    pub fn category(&self) -> &'static str {
        match self {
            AnalyzeError::Kube(_) => "kube_api",
            AnalyzeError::MissingTemplate(_) => "missing_template",
            AnalyzeError::InvalidTemplate(_) => "invalid_template",
            AnalyzeError::Judge(_) => "analysis",
        }
    }
}

/// Judges the current step: only while the target's revision is being rolled out, the step is
/// gated, and no human action overrides the judge. Only the intervals that ended since the
/// last reconcile are read and judged; a Rollout no longer analysed has its judge state dropped.
///
/// # Errors
/// When a template cannot be read or is invalid, or the judge rejects the samples; a metric
/// source that fails is an outage, not an error.
pub async fn analyze(
    ctx: &Context,
    rollout: &Rollout,
    validated: &ValidatedRollout,
    status: &RolloutStatus,
    seen: &Seen,
    now: f64,
) -> Result<Analysis, AnalyzeError> {
    let (revision, acting) = (seen.revision.as_str(), seen.action.is_some());
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let state = state_of(status);
    let analysis = validated.analysis(state.plan_state(now).step);
    let mut found = Analysis {
        gated: analysis.is_some(),
        judgement: None,
        outage: None,
        interval: UNGATED_INTERVAL,
    };
    if !state.analysing() {
        ctx.memory.forget(&namespace, &name);
    }
    let live = state.analysing() && state.canary_revision.as_deref() == Some(revision);
    let Some(analysis) = analysis.filter(|_| live && !acting) else {
        return Ok(found);
    };
    let started = std::time::Instant::now();
    let from = state.started_at.unwrap_or(now);
    let mut judgements = Vec::new();
    for (template, args) in
        templates(&ctx.client, ctx.templates.as_ref(), &namespace, analysis).await?
    {
        found.interval = found.interval.min(template.interval.as_secs_f64());
        let mut progress = ctx
            .memory
            .take(&namespace, &name, &template, &args, revision, from);
        // Only the intervals that ended since the last reconcile are read and judged.
        if now - progress.until() >= template.interval.as_secs_f64() {
            match ctx
                .metrics
                .window(&template, &args, progress.until(), now)
                .await
            {
                Ok(intervals) => {
                    progress.observe(&validated.lifecycle.plan, &state.step_history, &intervals)?;
                    let power = &ctx.power;
                    power.observe(
                        &namespace, &name, revision, validated, &template, &args, &intervals,
                    );
                }
                Err(e) => {
                    tracing::warn!(template = %template.name(), error = %e, "metrics unavailable");
                    if let Some(t) = &ctx.telemetry {
                        t.failures
                            .get_or_create(&CategoryLabel {
                                category: "metrics".into(),
                            })
                            .inc();
                    }
                    found.outage = Some(outage(&template, &e));
                    ctx.memory.keep(&namespace, &name, &template, progress);
                    break;
                }
            }
        }
        if let Some(j) = progress.judgement() {
            judgements.push(j.clone());
        }
        ctx.memory.keep(&namespace, &name, &template, progress);
    }
    if found.outage.is_none() {
        found.judgement = combine(judgements);
    }
    if let Some(t) = &ctx.telemetry {
        t.analysis.observe(started.elapsed().as_secs_f64());
        if let Some(j) = &found.judgement {
            t.decisions
                .get_or_create(&DecisionLabel {
                    decision: j.decision.as_str().to_string(),
                })
                .inc();
        }
    }
    Ok(found)
}

/// A source that failed: missing evidence holds (never promotes), and the template's policy acts
/// once the outage outlasts its hold budget. Arguments the queries refuse are a spec to fix: the
/// step holds (no budget, no policy) until they are.
fn outage(template: &Template, e: &SourceError) -> MetricsOutage {
    if matches!(e, SourceError::Query(_)) {
        MetricsOutage {
            message: format!(
                "template {}: {e}; fix the Rollout's analysis args (the step holds until then)",
                template.name()
            ),
            budget: f64::INFINITY,
            rollback: false,
            kind: OutageKind::InvalidArguments,
        }
    } else {
        MetricsOutage {
            message: format!("template {}: {e}", template.name()),
            budget: template.judge.hold_budget.as_secs_f64(),
            rollback: template.judge.on_inconclusive == InconclusivePolicy::Rollback,
            kind: OutageKind::Unavailable,
        }
    }
}

/// The cluster's templates, as the controller's watch caches hold them (the gate serves from the
/// same caches).
#[derive(Clone)]
pub struct TemplateStores {
    /// AnalysisTemplates.
    pub namespaced: Store<AnalysisTemplate>,
    /// ClusterAnalysisTemplates.
    pub cluster: Store<ClusterAnalysisTemplate>,
}

/// Loads and validates the templates an analysis names, with its arguments: from `stores` when
/// they hold them, else from the API server.
///
/// # Errors
/// When a template is missing or invalid (the error names it).
pub async fn templates(
    client: &Client,
    stores: Option<&TemplateStores>,
    namespace: &str,
    analysis: &RolloutAnalysis,
) -> Result<Vec<(Template, Vec<(String, String)>)>, AnalyzeError> {
    let args: Vec<(String, String)> = analysis
        .args
        .iter()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect();
    let mut out = Vec::new();
    for reference in &analysis.templates {
        let name = &reference.template_name;
        // From the watch caches when they hold it, else (not synced yet, or not there) asked.
        let (kind, spec, source) = if reference.cluster_scope {
            let cached = stores.and_then(|s| s.cluster.get(&ObjectRef::new(name)));
            let spec = match cached {
                Some(t) => t.spec.0.clone(),
                None => {
                    let api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
                    api.get_opt(name)
                        .await?
                        .ok_or_else(|| {
                            AnalyzeError::MissingTemplate(format!("ClusterAnalysisTemplate {name}"))
                        })?
                        .spec
                        .0
                }
            };
            (
                "ClusterAnalysisTemplate",
                spec,
                format!("ClusterAnalysisTemplate {name}"),
            )
        } else {
            let cached =
                stores.and_then(|s| s.namespaced.get(&ObjectRef::new(name).within(namespace)));
            let spec = match cached {
                Some(t) => t.spec.0.clone(),
                None => {
                    let api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), namespace);
                    api.get_opt(name)
                        .await?
                        .ok_or_else(|| {
                            AnalyzeError::MissingTemplate(format!(
                                "AnalysisTemplate {namespace}/{name}"
                            ))
                        })?
                        .spec
                        .0
                }
            };
            (
                "AnalysisTemplate",
                spec,
                format!("AnalysisTemplate {namespace}/{name}"),
            )
        };
        let template = template::from_spec(kind, name, Some(namespace), spec, &source)
            .map_err(AnalyzeError::InvalidTemplate)?;
        // Each template takes only the arguments it declares.
        let mine = args
            .iter()
            .filter(|(k, _)| template.file.spec.args.iter().any(|a| &a.name == k))
            .cloned()
            .collect();
        out.push((template, mine));
    }
    Ok(out)
}

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

#[cfg(test)]
mod template_tests {
    use super::*;
    use crate::crd::analysis_template::AnalysisTemplateBody;
    use kube::runtime::{reflector, watcher};

    #[tokio::test]
    async fn templates_come_from_the_watch_caches_without_a_request() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/analysis-templates/generic-http.yaml"
        ))
        .unwrap();
        let file = template::parse(&text, "generic-http.yaml").unwrap();
        let mut cached =
            AnalysisTemplate::new("generic-http", AnalysisTemplateBody(file.file.spec.clone()));
        cached.metadata.namespace = Some("shop".into());
        let (namespaced, mut writer) = reflector::store::<AnalysisTemplate>();
        writer.apply_watcher_event(&watcher::Event::Apply(cached));
        let (cluster, _) = reflector::store::<ClusterAnalysisTemplate>();
        let stores = TemplateStores {
            namespaced,
            cluster,
        };
        // An API server that answers nothing: a request would fail the call.
        let (service, handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        drop(handle);
        let client = Client::new(service, "default");
        let analysis: RolloutAnalysis = serde_json::from_value(serde_json::json!({
            "templates": [{"templateName": "generic-http"}],
            "args": [{"name": "service", "value": "web"}]
        }))
        .unwrap();
        let found = templates(&client, Some(&stores), "shop", &analysis)
            .await
            .expect("from the cache");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, [("service".to_string(), "web".to_string())]);
        // Not cached: the API server is asked (and here fails).
        assert!(
            templates(&client, Some(&stores), "other", &analysis)
                .await
                .is_err()
        );
    }
}
