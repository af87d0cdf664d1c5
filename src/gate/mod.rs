//! `canary-gate gate serve`: the judge over HTTP, for teams on Argo Rollouts (web metric
//! provider) or Flagger (rollout and confirm-promotion webhooks) who want canary-vs-stable
//! statistics without migrating.
//!
//! - `POST /v1/judge` — `{"template", "args", "lookback" | "from"/"to"}` → the verdict with
//!   evidence: `verdict` is `pass`, `fail` or `inconclusive`, `pass` a boolean.
//! - `POST /v1/flagger/rollout?template=T&lookback=5m` — Flagger's webhook body; template
//!   arguments come from its `metadata`. 200 unless the canary fails (then 500, which Flagger
//!   counts as a failed check): inconclusive evidence never fails a check.
//! - `POST /v1/flagger/confirm-promotion?template=T&lookback=5m` — 200 only when the canary
//!   passes; otherwise 403 and Flagger waits.
//! - `GET /healthz`.
//!
//! Bad requests get 4xx with the reason; Prometheus failures 502 (504 on a timeout). The
//! limits on connections, headers, bodies and time per request are [`serve`]'s.

pub mod serve;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use kube::runtime::reflector::{ObjectRef, Store};

use crate::analysis::{Decision, MetricVerdict};
use crate::analyze::judge_window;
use crate::crd::{AnalysisTemplate, ClusterAnalysisTemplate};
use crate::metrics::prometheus::{Prometheus, PrometheusError};
use crate::metrics::prometheus_source::{PrometheusSource, SourceError};
use crate::metrics::query::QueryError;
use crate::template::Template;

/// The longest window a request may ask for.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What the server judges with.
pub struct GateState {
    templates: Templates,
    prometheus: Prometheus,
    clock: fn() -> f64,
    /// When each canary revision was first asked about (see [`JudgeRequest::revision`]).
    anchors: std::sync::Mutex<BTreeMap<String, f64>>,
}

/// Revisions remembered for anchoring at most; the oldest are forgotten first.
pub const MAX_ANCHORS: usize = 10_000;

/// Where the gate finds its templates.
enum Templates {
    /// Loaded from files (`gate serve --template`), by name.
    Files(BTreeMap<String, Template>),
    /// The cluster's AnalysisTemplates and ClusterAnalysisTemplates, from watch caches (the
    /// controller serving the gate).
    Cluster {
        namespaced: Store<AnalysisTemplate>,
        cluster: Store<ClusterAnalysisTemplate>,
    },
}

impl GateState {
    /// Templates (by name) and the Prometheus they query.
    pub fn new(templates: Vec<Template>, prometheus: Prometheus) -> Self {
        Self {
            templates: Templates::Files(
                templates
                    .into_iter()
                    .map(|t| (t.name().to_string(), t))
                    .collect(),
            ),
            prometheus,
            clock: now,
            anchors: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// When the revision `key` was first asked about (now, if it is new). Bounded: past
    /// [`MAX_ANCHORS`] the revision first seen longest ago is forgotten.
    fn anchor(&self, key: String, now: f64) -> f64 {
        let mut anchors = self
            .anchors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = anchors.get(&key) {
            return *t;
        }
        if anchors.len() >= MAX_ANCHORS
            && let Some(oldest) = anchors
                .iter()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(k, _)| k.clone())
        {
            anchors.remove(&oldest);
        }
        anchors.insert(key, now);
        now
    }

    /// The cluster's templates, read from watch caches: a request that names a `namespace`
    /// judges with the AnalysisTemplate there, else with the ClusterAnalysisTemplate.
    pub fn cluster(
        namespaced: Store<AnalysisTemplate>,
        cluster: Store<ClusterAnalysisTemplate>,
        prometheus: Prometheus,
    ) -> Self {
        Self {
            templates: Templates::Cluster {
                namespaced,
                cluster,
            },
            prometheus,
            clock: now,
            anchors: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// The template `name` (in `namespace`, for the cluster's AnalysisTemplates).
    fn template(&self, name: &str, namespace: Option<&str>) -> Result<Template, Failure> {
        match &self.templates {
            Templates::Files(map) => map.get(name).cloned().ok_or_else(|| {
                Failure(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no template {name:?}; loaded: {}",
                        map.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            }),
            Templates::Cluster {
                namespaced,
                cluster,
            } => {
                let (kind, spec, source) = match namespace {
                    Some(ns) => {
                        let found = namespaced
                            .get(&ObjectRef::new(name).within(ns))
                            .ok_or_else(|| {
                                Failure(
                                    StatusCode::NOT_FOUND,
                                    format!(
                                        "no AnalysisTemplate {ns}/{name}; create it there (or name a ClusterAnalysisTemplate without a namespace)"
                                    ),
                                )
                            })?;
                        (
                            "AnalysisTemplate",
                            found.spec.0.clone(),
                            format!("AnalysisTemplate {ns}/{name}"),
                        )
                    }
                    None => {
                        let found = cluster.get(&ObjectRef::new(name)).ok_or_else(|| {
                            Failure(
                                StatusCode::NOT_FOUND,
                                format!(
                                    "no ClusterAnalysisTemplate {name}; create it, or give the namespace of an AnalysisTemplate"
                                ),
                            )
                        })?;
                        (
                            "ClusterAnalysisTemplate",
                            found.spec.0.clone(),
                            format!("ClusterAnalysisTemplate {name}"),
                        )
                    }
                };
                crate::template::from_spec(kind, name, namespace, spec, &source).map_err(|e| {
                    Failure(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("{source} is invalid: {e}"),
                    )
                })
            }
        }
    }

    /// Replaces the clock (tests judge backfilled history "now").
    pub fn with_clock(mut self, clock: fn() -> f64) -> Self {
        self.clock = clock;
        self
    }
}

use crate::time::now;

/// The HTTP routes.
pub fn router(state: Arc<GateState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/judge", post(judge))
        .route("/v1/flagger/rollout", post(flagger_rollout))
        .route("/v1/flagger/confirm-promotion", post(flagger_confirm))
        .with_state(state)
}

/// A request to judge a window.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeRequest {
    /// Template name (`metadata.name` of a loaded template).
    pub template: String,
    /// In the cluster (the controller serving the gate): the namespace of the AnalysisTemplate;
    /// without it, the ClusterAnalysisTemplate of that name. Ignored for templates from files.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Template arguments.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// The canary revision being judged (Argo Rollouts: an analysis arg with
    /// `valueFrom.podTemplateHashValue: Latest`; Flagger: the webhook's checksum, taken
    /// automatically). The window then never starts before the gate was first asked about this
    /// revision, so a new revision is not judged on the previous canary's data.
    #[serde(default)]
    pub revision: Option<String>,
    /// Judge the last `lookback` (e.g. `10m`) up to now; default `5m` unless `from` is given.
    #[serde(default)]
    pub lookback: Option<String>,
    /// Window start: unix seconds or RFC 3339.
    #[serde(default)]
    pub from: Option<TimeValue>,
    /// Window end (default now): unix seconds or RFC 3339.
    #[serde(default)]
    pub to: Option<TimeValue>,
}

/// A time as unix seconds or RFC 3339 text.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TimeValue {
    /// Unix seconds.
    Seconds(f64),
    /// RFC 3339.
    Text(String),
}

/// The verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeResponse {
    /// Template name.
    pub template: String,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: String,
    /// `verdict == "pass"`, for conditions like Argo's `result.pass == true`.
    pub pass: bool,
    /// The judge's decision for the window: promote, continue, hold or rollback.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Window start, unix seconds.
    pub from: f64,
    /// Window end, unix seconds.
    pub to: f64,
    /// Intervals judged.
    pub intervals: usize,
    /// When the judge would first have rolled back, if it would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_rollback_at: Option<f64>,
    /// Per-metric verdicts with evidence.
    pub metrics: Vec<MetricVerdict>,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and how to fix it.
    pub error: String,
}

struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

fn unprocessable(text: impl Into<String>) -> Failure {
    Failure(StatusCode::UNPROCESSABLE_ENTITY, text.into())
}

fn parse_time(field: &str, t: &TimeValue) -> Result<f64, Failure> {
    match t {
        TimeValue::Seconds(s) if s.is_finite() => Ok(*s),
        TimeValue::Seconds(s) => Err(unprocessable(format!("{field}: {s} is not a time"))),
        TimeValue::Text(text) => crate::time::parse_rfc3339(text).ok_or_else(|| {
            unprocessable(format!(
                "{field}: {text:?} is not unix seconds or RFC 3339 (2026-11-23T10:00:00Z)"
            ))
        }),
    }
}

async fn judge(
    State(state): State<Arc<GateState>>,
    body: Result<Json<JudgeRequest>, JsonRejection>,
) -> Result<Json<JudgeResponse>, Failure> {
    let Json(request) =
        body.map_err(|e| Failure(e.status(), format!("bad request body: {}", e.body_text())))?;
    run(&state, &request).await.map(Json)
}

async fn run(state: &GateState, request: &JudgeRequest) -> Result<JudgeResponse, Failure> {
    let template = state.template(&request.template, request.namespace.as_deref())?;
    let template = &template;
    let to = match &request.to {
        Some(t) => parse_time("to", t)?,
        None => (state.clock)(),
    };
    let from = match (&request.from, &request.lookback) {
        (Some(_), Some(_)) => return Err(unprocessable("give either from or lookback, not both")),
        (Some(f), None) => parse_time("from", f)?,
        (None, lookback) => {
            let text = lookback.as_deref().unwrap_or("5m");
            let d = humantime::parse_duration(text).map_err(|e| {
                unprocessable(format!(
                    "lookback: {text:?} is not a duration ({e}); e.g. 10m"
                ))
            })?;
            to - d.as_secs_f64()
        }
    };
    // Anchored to the revision: nothing from before it was first asked about.
    let from = match request.revision.as_deref().filter(|r| !r.is_empty()) {
        Some(revision) => {
            let key = format!(
                "{}/{}/{:?}/{revision}",
                request.namespace.as_deref().unwrap_or(""),
                request.template,
                request.args
            );
            let anchor = state.anchor(key, (state.clock)());
            if to - anchor < template.interval.as_secs_f64() {
                return Ok(JudgeResponse {
                    template: request.template.clone(),
                    verdict: "inconclusive".into(),
                    pass: false,
                    decision: Decision::Hold.as_str().to_string(),
                    reason: format!(
                        "revision {revision} was first asked about at {anchor:.0}: its evidence starts there and no interval has ended yet"
                    ),
                    from: anchor,
                    to,
                    intervals: 0,
                    first_rollback_at: None,
                    metrics: Vec::new(),
                });
            }
            from.max(anchor)
        }
        None => from,
    };
    if to <= from || to - from > MAX_WINDOW.as_secs_f64() {
        return Err(unprocessable(format!(
            "the window from {from} to {to} must be positive and at most {}",
            humantime::format_duration(MAX_WINDOW)
        )));
    }
    let args: Vec<(String, String)> = request
        .args
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let source = PrometheusSource::new(&state.prometheus, template, &args).map_err(|e| {
        unprocessable(match &e {
            SourceError::Query(QueryError::MissingArgs(_)) => format!(
                "{e}; give them in the request's \"args\" (Flagger: in the webhook's metadata)"
            ),
            _ => e.to_string(),
        })
    })?;
    let intervals = source.window(from, to).await.map_err(|e| match &e {
        SourceError::Prometheus {
            source: PrometheusError::Timeout { .. },
            ..
        } => Failure(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
        SourceError::Prometheus { .. } => Failure(StatusCode::BAD_GATEWAY, e.to_string()),
        _ => unprocessable(e.to_string()),
    })?;
    let verdict =
        judge_window(template, from, to, &intervals).map_err(|e| unprocessable(e.to_string()))?;
    let shown = verdict.first_rollback.as_ref().unwrap_or(&verdict.last);
    let word = match (&verdict.first_rollback, verdict.last.decision) {
        (Some(_), _) => "fail",
        (None, Decision::Promote | Decision::Continue) => "pass",
        (None, _) => "inconclusive",
    };
    tracing::info!(template = %request.template, from, to, verdict = word, "judged a window");
    Ok(JudgeResponse {
        template: request.template.clone(),
        verdict: word.to_string(),
        pass: word == "pass",
        decision: shown.decision.as_str().to_string(),
        reason: shown.reason.clone(),
        from,
        to,
        intervals: verdict.intervals,
        first_rollback_at: verdict.first_rollback.as_ref().map(|j| j.t),
        metrics: shown.metrics.clone(),
    })
}

/// Query parameters of the Flagger endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlaggerQuery {
    /// Template name.
    pub template: String,
    /// How far back to judge (default 5m).
    #[serde(default)]
    pub lookback: Option<String>,
}

/// Flagger's webhook payload (the fields canary-gate reads; others are ignored).
#[derive(Debug, Deserialize)]
pub struct FlaggerPayload {
    /// Canary name.
    #[serde(default)]
    pub name: String,
    /// Canary namespace.
    #[serde(default)]
    pub namespace: String,
    /// Flagger's phase.
    #[serde(default)]
    pub phase: String,
    /// The webhook's `metadata`: template arguments (non-argument keys are ignored).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The canary's checksum (its revision), which anchors the window (see
    /// [`JudgeRequest::revision`]).
    #[serde(default)]
    pub checksum: String,
}

async fn flagger(
    state: &GateState,
    query: Result<Query<FlaggerQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Json<FlaggerPayload>, JsonRejection>,
) -> Result<JudgeResponse, Failure> {
    let Query(query) = query.map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("bad query string: {}", e.body_text()),
        )
    })?;
    let Json(payload) =
        body.map_err(|e| Failure(e.status(), format!("bad request body: {}", e.body_text())))?;
    // In the cluster: the canary's namespace holds the AnalysisTemplate, else the
    // ClusterAnalysisTemplate of that name is used.
    let namespace = match &state.templates {
        Templates::Cluster { namespaced, .. }
            if namespaced
                .get(&ObjectRef::new(&query.template).within(&payload.namespace))
                .is_some() =>
        {
            Some(payload.namespace.clone())
        }
        _ => None,
    };
    let template = state.template(&query.template, namespace.as_deref()).ok();
    // Only the template's declared arguments are taken from Flagger's metadata.
    let args = payload
        .metadata
        .into_iter()
        .filter(|(k, _)| {
            template
                .as_ref()
                .is_some_and(|t| t.file.spec.args.iter().any(|a| &a.name == k))
        })
        .collect();
    tracing::debug!(canary = %payload.name, namespace = %payload.namespace, phase = %payload.phase, "flagger webhook");
    run(
        state,
        &JudgeRequest {
            template: query.template,
            namespace,
            revision: Some(payload.checksum.clone()).filter(|c| !c.is_empty()),
            args,
            lookback: query.lookback,
            from: None,
            to: None,
        },
    )
    .await
}

async fn flagger_rollout(
    State(state): State<Arc<GateState>>,
    query: Result<Query<FlaggerQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Json<FlaggerPayload>, JsonRejection>,
) -> Response {
    match flagger(&state, query, body).await {
        Ok(r) if r.verdict == "fail" => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(r)).into_response()
        }
        // A query that returns nothing is never a silent pass: the check fails (424), so a
        // template that does not match the canary's series is noticed (Flagger counts it
        // toward the canary's threshold) instead of waving every canary through.
        Ok(r)
            if r.metrics
                .iter()
                .any(|m| m.reason.starts_with(crate::analysis::NO_DATA)) =>
        {
            (StatusCode::FAILED_DEPENDENCY, Json(r)).into_response()
        }
        Ok(r) => (StatusCode::OK, Json(r)).into_response(),
        Err(f) => f.into_response(),
    }
}

async fn flagger_confirm(
    State(state): State<Arc<GateState>>,
    query: Result<Query<FlaggerQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Json<FlaggerPayload>, JsonRejection>,
) -> Response {
    match flagger(&state, query, body).await {
        Ok(r) if r.pass => (StatusCode::OK, Json(r)).into_response(),
        Ok(r) => (StatusCode::FORBIDDEN, Json(r)).into_response(),
        Err(f) => f.into_response(),
    }
}
