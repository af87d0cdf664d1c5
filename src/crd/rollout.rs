//! The `Rollout` custom resource: which Deployment to roll out, the step plan and the analysis
//! that gates it; its status is the decision record.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A progressive rollout of an existing Deployment: canary steps gated by the statistical judge,
/// or a blue-green switch.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "canarygate.dev",
    version = "v1alpha1",
    kind = "Rollout",
    doc = "A progressive rollout of a Deployment, step by step, gated by canary-gate's statistical judge.",
    namespaced,
    status = "RolloutStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    shortname = "cgr",
    category = "canary-gate",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"integer","jsonPath":".status.currentStepIndex"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"Verdict","type":"string","jsonPath":".status.lastDecision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// The Deployment to roll out. It stays yours (keep it in Git): canary-gate reads its pod
    /// template and runs the new template as a canary next to the running version.
    pub target_ref: TargetRef,
    /// How to roll out: exactly one of `canary` or `blueGreen`.
    pub strategy: Strategy,
    /// How traffic is split between the versions (used by the traffic routers); without it the
    /// canary's share follows its share of replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Pods of the application in all, split between the stable and the canary workloads. An
    /// HPA or KEDA ScaledObject sets it through the Rollout's `scale` subresource (point its
    /// `scaleTargetRef` at this Rollout: `apiVersion: canarygate.dev/v1alpha1`, `kind: Rollout`).
    /// Absent: the target Deployment's `spec.replicas` at adoption (and whenever it changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// How long the canary (for a step's weight) or the stable workload (while a promotion
    /// rolls it out) may take to have its pods available before `onProgressDeadline` acts, e.g.
    /// `10m` (the default, as for Deployments). Also counts while a canary that was available
    /// loses its pods mid-step. A `pause: {}` waiting for a human is never ended by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<String>,
    /// What happens when `progressDeadline` passes: `Rollback` (the default: all traffic back
    /// on the stable version) or `Pause` (stay at the weight in force and wait for a human:
    /// `canary-gate promote` waits again, `abort` or `undo` ends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_progress_deadline: Option<DeadlinePolicy>,
    /// Where this Rollout's events are posted: sinks (a webhook, Slack or Microsoft Teams) that
    /// the cluster's operator configured for the controller (`--notifications-config`), each
    /// with the events it receives. Empty: only the sinks the controller's configuration sends
    /// every Rollout's events to. A name the controller does not know sets the condition
    /// `NotificationsConfigured=False` naming it; the other entries still deliver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationRef>,
    /// Webhooks around the promotion: `prePromotion` gates it, `postPromotion` reports after it.
    /// (A canary step can also be a `webhook` that gates that step.) Each webhook runs once per
    /// revision and step; its progress is in `status.hooks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RolloutHooks>,
}

/// Webhooks around the promotion.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutHooks {
    /// Called in order once the rollout has decided to promote (the judge after the last step,
    /// or a human's `promote`), before any traffic moves to the new version (blue-green: before
    /// the switch). The promotion goes ahead when every one passed; a failed one rolls back or
    /// pauses as its `onFailure` says. The judge keeps watching meanwhile and may still roll
    /// back. At most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_promotion: Vec<Webhook>,
    /// Called in order once the promotion has completed (the stable workload runs the new
    /// revision with all traffic). For information only: a failure is a Warning Event and the
    /// condition `Hooks`, never a rollback (`onFailure` cannot be set). At most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_promotion: Vec<Webhook>,
}

/// A webhook: canary-gate POSTs a JSON description of the rollout (schema
/// `canarygate.dev/hook/v1`) to `url`; any 2xx answer passes. No connection, no answer within
/// `timeout`, 5xx and 429 are tried again (`retries` times, with backoff, or after the
/// `Retry-After` asked for, up to 5 minutes); any other answer (4xx, a redirect) fails at once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Name, unique among the Rollout's webhooks (letters, digits, `-`, `_`, `.`; at most 63);
    /// it keys the webhook's progress in `status.hooks`. Default: `step-<i>` for a webhook
    /// step (`i` its index in `spec.strategy.canary.steps`), `pre-promotion-<i>`,
    /// `post-promotion-<i>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where to POST: an `http://` or `https://` URL (no user or password in it: use a header).
    /// Only its host and port appear in the status, Events and logs, since the path or query
    /// may carry a token.
    pub url: String,
    /// How long one attempt may take, connecting included, e.g. `30s`, `5m` (default `10s`;
    /// 1s to 15m). The attempt runs in the background: it never holds up other Rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Further attempts after a first one that could not connect, got no answer in time, or
    /// got 5xx or 429 (default 2; 0 to 10). They come 5 s, 10 s, 20 s … (at most 30 s) apart,
    /// or after the `Retry-After` the endpoint asked for (at most 5 minutes; longer fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Request headers sent with every attempt, e.g. `Authorization`. Not secret: they are
    /// part of the Rollout, which anyone who can read it sees (never logged by canary-gate).
    /// `Content-Type`, `Content-Length` and `Host` are set by canary-gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebhookHeader>,
    /// Free-form values sent as the payload's `metadata` object, e.g. `cmd` for Flagger's load
    /// tester.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// What a webhook that failed (after its retries) does: `Rollback` (the default: all
    /// traffic back on the stable version) or `Pause` (wait for a human: `canary-gate promote`
    /// goes on without it, `abort` ends the rollout). Not for `postPromotion` hooks, which only
    /// report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<HookFailurePolicy>,
}

/// A request header of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookHeader {
    /// Header name, e.g. `Authorization`.
    pub name: String,
    /// Its value (not secret: see `headers`).
    pub value: String,
}

/// What a failed webhook does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum HookFailurePolicy {
    /// All traffic back on the stable version (phase RolledBack; `canary-gate retry` runs the
    /// revision's webhooks again).
    #[default]
    Rollback,
    /// Stay at the weight in force and wait for a human (phase Paused).
    Pause,
}

/// One sink that receives this Rollout's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRef {
    /// Name of a sink in the controller's notifications configuration (ask the cluster's
    /// operator which exist; `kubectl get cgr NAME -o yaml` shows in the condition
    /// `NotificationsConfigured` which of yours were found).
    pub sink: String,
    /// The events it receives: `started`, `stepAdvanced`, `held`, `paused`, `rolledBack`,
    /// `promoted`, `aborted`. Empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NotificationEvent>,
}

/// A rollout event that can be notified.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum NotificationEvent {
    /// A revision starts rolling out (a new revision, one replacing the canary, or a retry).
    Started,
    /// The rollout moved on to the next step.
    StepAdvanced,
    /// A step is over but the evidence is inconclusive: the rollout holds at its weight (once
    /// per hold).
    Held,
    /// The rollout waits for a human (a `pause: {}` step, a spent hold budget, a passed
    /// progress deadline with `onProgressDeadline: Pause`).
    Paused,
    /// All traffic went back to the stable version, with the judge's evidence.
    RolledBack,
    /// The revision is being promoted: all traffic moves to it.
    Promoted,
    /// A human aborted (or undid) the rollout.
    Aborted,
}

impl NotificationEvent {
    /// Every event, in the order a rollout meets them.
    pub const ALL: [NotificationEvent; 7] = [
        Self::Started,
        Self::StepAdvanced,
        Self::Held,
        Self::Paused,
        Self::RolledBack,
        Self::Promoted,
        Self::Aborted,
    ];

    /// The name used in `spec.notifications[].events` and in payloads, e.g. `rolledBack`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::StepAdvanced => "stepAdvanced",
            Self::Held => "held",
            Self::Paused => "paused",
            Self::RolledBack => "rolledBack",
            Self::Promoted => "promoted",
            Self::Aborted => "aborted",
        }
    }
}

/// What a passed progress deadline does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum DeadlinePolicy {
    /// Send all traffic back to the stable version (phase RolledBack; `canary-gate retry` starts
    /// again).
    #[default]
    Rollback,
    /// Keep the weight in force and wait for a human (phase Paused).
    Pause,
}

/// A reference to the workload being rolled out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API version of the target; only `apps/v1` is supported.
    #[serde(default = "default_apps_v1")]
    pub api_version: String,
    /// Kind of the target; only `Deployment` is supported.
    #[serde(default = "default_deployment")]
    pub kind: String,
    /// Name of the Deployment in the Rollout's namespace.
    pub name: String,
}

fn default_apps_v1() -> String {
    "apps/v1".into()
}

fn default_deployment() -> String {
    "Deployment".into()
}

/// The rollout strategy: set exactly one field.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// Shift traffic to the canary step by step, judging each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Run the new version beside the active one behind a preview Service, then switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// Canary steps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// The steps, in order. A `setWeight` step shifts traffic; a `pause` step waits (for a
    /// duration, or for a human when empty); an `analysis` step names the templates that gate
    /// the steps from there on; a `webhook` step calls a URL at the current weight and is
    /// complete when it passed.
    pub steps: Vec<CanaryStep>,
    /// Analysis that runs over the whole rollout, in addition to the steps' own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// Highest canary weight before promotion (percent); promotion goes to 100 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<i32>,
    /// How long the canary keeps its pods after a rollback, an abort or a promotion, so traffic
    /// that is still in flight (mesh configuration propagates in seconds) finds them (default
    /// `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<String>,
    /// Whether each gated step is long enough to catch a regression on the traffic the service
    /// actually sees: the condition `StepsUnderpowered` names every step whose pause is too
    /// short, with the duration it needs. Advice only: it never changes a decision. Absent: on,
    /// with `effect: +1pt` and `power: 0.8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_check: Option<PowerCheck>,
}

/// The regression each gated canary step should be able to catch (the `StepsUnderpowered`
/// condition).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PowerCheck {
    /// `false` turns the check and its condition off (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The error regression a step should catch within its pause: `+1pt` (the canary fails 1
    /// percentage point more of its requests than the stable; the default) or `x1.5` (1.5 times
    /// the stable's error rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// The share of rollouts in which a step must catch it, 0.5 to 0.99 (default 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f64>,
}

/// One canary step: set exactly one field.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Send this percentage of traffic (0–100) to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i32>,
    /// Wait at the current weight while the judge watches: for `duration` (e.g. `10m`, `1h30m`),
    /// or until `canary-gate promote` when empty (`pause: {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Gate the following steps on these analysis templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// Call a webhook at the current weight (e.g. a smoke or load test) once the weight is in
    /// force; the step is complete when it passed. A failure rolls back or pauses (its
    /// `onFailure`); the judge keeps watching meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// A pause.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait, e.g. `30s`, `10m`, `1h30m`; absent: wait for a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// Analysis templates and their arguments.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// Templates whose metrics gate the rollout.
    pub templates: Vec<TemplateRef>,
    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisArg>,
}

/// A reference to an analysis template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// Template name.
    pub template_name: String,
    /// `true`: a ClusterAnalysisTemplate; `false` (default): an AnalysisTemplate in the
    /// Rollout's namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

/// A template argument value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisArg {
    /// Argument name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// Blue-green: the new version runs behind the preview Service, then the active Service switches.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Service that receives production traffic; its selector is switched to the new version.
    pub active_service: String,
    /// Service that selects the new version before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Analysis of the preview before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Switch as soon as the analysis passes (default true); false waits for
    /// `canary-gate promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion: Option<bool>,
    /// How long the old version keeps running after the switch, for an instant switch-back
    /// (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<String>,
}

/// How traffic is split between stable and canary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRouting {
    /// Gateway API: weights on the backendRefs of an HTTPRoute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApiRouting>,
    /// Istio: weights on the routes of a VirtualService to DestinationRule subsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioRouting>,
    /// NGINX Ingress: canary annotations on a canary Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxRouting>,
    /// Route requests matching these headers or cookies to the canary (A/B), whatever the weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
}

/// Gateway API routing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiRouting {
    /// The HTTPRoute whose backendRefs are weighted.
    pub http_route: String,
    /// Service of the stable version.
    pub stable_service: String,
    /// Service of the canary.
    pub canary_service: String,
}

/// Istio routing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioRouting {
    /// The VirtualService to weight: every HTTP route whose destinations name the `stable` or
    /// `canary` subset gets both, weighted.
    pub virtual_service: String,
    /// The DestinationRule whose `stable` and `canary` subsets canary-gate keeps selecting the
    /// pods by their `canarygate.dev/version` label.
    pub destination_rule: String,
}

/// NGINX Ingress routing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxRouting {
    /// The stable Ingress (yours, left untouched); canary-gate creates `<stableIngress>-canary`
    /// beside it with the same rules pointing at `canaryService`, and sets its canary annotations.
    pub stable_ingress: String,
    /// The Service the stable Ingress sends traffic to (it selects
    /// `canarygate.dev/version: stable`).
    pub stable_service: String,
    /// The Service of the canary (it selects `canarygate.dev/version: canary`).
    pub canary_service: String,
}

/// A request match that goes to the canary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// Header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// Exact value that selects the canary.
    pub value: String,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RolloutPhase {
    /// Running the steps.
    Progressing,
    /// Waiting at a pause step for a human (`canary-gate promote`).
    Paused,
    /// A step is over but the evidence is inconclusive: staying at this weight.
    Holding,
    /// Shifting all traffic to the new version.
    Promoting,
    /// The current version runs with all traffic; nothing to do.
    Healthy,
    /// The Rollout or its target is invalid; see the message and conditions.
    Degraded,
    /// The judge rolled back: all traffic on the stable version.
    RolledBack,
    /// A human aborted: all traffic on the stable version until `canary-gate retry`.
    Aborted,
}

/// The Rollout's observed state and the decision record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Where the rollout is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,
    /// A human-readable summary of the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Index of the current step in `spec.strategy.canary.steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Traffic percentage the canary receives now (the weight in force at the routers; a step's
    /// weight comes into force once the canary has the pods it needs available).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// Pod-template hash of the version that has all traffic when nothing is rolling out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// The stable revision before the last promotion (what `undo` goes back to afterwards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_stable_revision: Option<String>,
    /// Pod-template hash of the version being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Pods the application should run in all (the target Deployment's `spec.replicas`, taken
    /// over by the stable and canary workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The label selector of the application's pods (both versions), as a string: what an HPA
    /// targeting the Rollout through its `scale` subresource measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Since when the rollout has waited for pods to become available (RFC 3339): the canary's
    /// for the weight of its step (which reaches the routers only then), or the stable
    /// workload's while a promotion rolls it out. `spec.progressDeadline` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<String>,
    /// When the canary workload goes to zero pods (RFC 3339), after a rollback, an abort or a
    /// promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<String>,
    /// Since when the metrics of a gated step could not be read (RFC 3339); the step holds, and
    /// the template's inconclusive policy acts once this outlasts its hold budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_unavailable_since: Option<String>,
    /// The traffic split in force as read back from the routers, e.g. `HTTPRoute web: 5% canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<String>,
    /// When the rollout of the canary revision began (RFC 3339): the start of its analysis window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the current step's weight came into force (RFC 3339): its pause and analysis count
    /// from here. Absent while the step waits for the canary's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
    /// When each step of the current rollout began, oldest first: the analysis of a restarted
    /// controller assigns every past interval to its step from this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_history: Vec<StepStart>,
    /// The last value of the `canarygate.dev/action` annotation that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_action: Option<String>,
    /// The latest decision: continue, hold, promote or rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
    /// Standard conditions (`Progressing`, `Healthy`, `Paused`, `InvalidSpec`, `TrafficRouted`,
    /// `CanaryAvailable`, `StableAvailable`, `MetricsAvailable`, `AutoscalerConflict`,
    /// `ActionApplied`, `NotificationsConfigured`, `Hooks`, `StepsUnderpowered`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The decision record, newest last: one entry per decision that changed something, at most
    /// 20 (older ones are dropped; Events and Grafana annotations keep the full history).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<DecisionRecord>,
    /// The webhooks of the revision rolling out (and of the stable one), one entry per webhook
    /// and step: what they answered and whether they passed. A webhook that passed or failed
    /// is never called again for that revision and step (after a controller restart neither);
    /// `canary-gate retry` starts them over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookStatus>,
}

/// Which gate a webhook is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HookKind {
    /// A `webhook` canary step.
    Step,
    /// `spec.hooks.prePromotion`.
    PrePromotion,
    /// `spec.hooks.postPromotion`.
    PostPromotion,
}

/// Where a webhook's run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HookPhase {
    /// Waiting for its next attempt (`nextAttemptAt`).
    Pending,
    /// An attempt is under way (since `startedAt`).
    Running,
    /// It answered 2xx.
    Passed,
    /// It failed after its retries (`lastAnswer` says why).
    Failed,
    /// Not needed any more: a human's `promote` went on without it, or the rollout ended.
    Skipped,
}

/// One webhook's run for one revision (and step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    /// The webhook's name.
    pub name: String,
    /// Which gate it is.
    pub kind: HookKind,
    /// The revision it ran for.
    pub revision: String,
    /// The step it gates (as `currentStepIndex`), for a webhook step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// Where it is.
    pub phase: HookPhase,
    /// Attempts started.
    #[serde(default)]
    pub attempts: i32,
    /// What the last attempt got: `answered 200`, `answered 503: …`, `no answer within 10s` …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_answer: Option<String>,
    /// When the last attempt started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the next attempt is due (RFC 3339), while `Pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// When it passed, failed or was skipped (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// When a step began.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStart {
    /// Step index.
    pub step: i32,
    /// When it began (RFC 3339).
    pub started_at: String,
}

/// One decision with its evidence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Step index.
    pub step: i32,
    /// Canary weight at the time.
    pub weight: i32,
    /// continue, hold, promote or rollback.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Start of the analysed window (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<String>,
    /// Per-metric verdicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricRecord>,
}

/// One metric's verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricRecord {
    /// Metric name.
    pub name: String,
    /// pass, fail or inconclusive.
    pub verdict: String,
    /// Why.
    pub reason: String,
    /// Evidence of harm (e-value); the metric fails at `failAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_value: Option<f64>,
    /// The e-value at which the metric fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_at: Option<f64>,
    /// Effect estimate (e.g. error-rate ratio canary/stable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
    /// Lower end of the estimate's interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_low: Option<f64>,
    /// Upper end of the estimate's interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_high: Option<f64>,
    /// Canary events / requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Stable events / requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
}
