//! The analysis template as SREs write it (YAML): the raw, serde-shaped spec.
//!
//! The same `AnalysisTemplateSpec` is the `spec` of a template file, and (with the controller)
//! of the `AnalysisTemplate` / `ClusterAnalysisTemplate` custom resources. Unknown fields are
//! rejected everywhere so that a typo never silently changes a gate.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A template file: a Kubernetes-shaped object, so the same file can be `kubectl apply`-ed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TemplateFile {
    /// Must be `canarygate.dev/v1alpha1`.
    pub api_version: String,
    /// `AnalysisTemplate` or `ClusterAnalysisTemplate`.
    pub kind: String,
    /// Name (and optional namespace, labels, annotations).
    pub metadata: Metadata,
    /// The template.
    pub spec: AnalysisTemplateSpec,
}

/// Object metadata of a template file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Template name.
    pub name: String,
    /// Namespace (namespaced templates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What an analysis template says: arguments, how versions are told apart, and the metrics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Arguments the queries use as `{{args.NAME}}`; an argument without a default is required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgSpec>,
    /// Label whose value tells the versions apart in query results (default `version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_label: Option<String>,
    /// Label values of the two versions (default `stable` and `canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<VersionsSpec>,
    /// Length of one observation interval, e.g. `1m` (default `1m`); `{{interval}}` in queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Probability of rolling back a canary that is no worse than tolerated, over the whole
    /// rollout and all metrics (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// What to do with inconclusive and failing evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySpec>,
    /// The metrics (at least one that is not `dryRun`).
    pub metrics: Vec<MetricSpec>,
}

/// A template argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArgSpec {
    /// Name used as `{{args.NAME}}`.
    pub name: String,
    /// Value used when none is given; without one the argument is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// What the argument is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A regular expression every value must match as a whole (e.g. `[a-z0-9-]+`); values that
    /// do not are refused before any query is rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The value is a regular expression: inside a regex matcher (`=~`, `!~`) it is inserted
    /// as a regex instead of being matched literally (default false). It is still escaped for
    /// the string it lands in, so it cannot end the string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<bool>,
}

/// Label values that identify the two versions; they may use `{{args.NAME}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VersionsSpec {
    /// Value of the version label on the stable version.
    pub stable: String,
    /// Value of the version label on the canary.
    pub canary: String,
}

/// Policy for inconclusive and failing evidence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    /// How long a completed step may hold on inconclusive evidence (default `10m`); three times
    /// as long while a metric's evidence is building toward a failure. The last step also holds
    /// up to this long before promoting while a metric leans toward harm (e-value above 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_budget: Option<String>,
    /// After the hold budget: `pause` (wait for a human, the default) or `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_inconclusive: Option<InconclusiveSpec>,
    /// Failed non-critical metrics roll back when their weight reaches this share (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_weight: Option<f64>,
}

/// What to do when the hold budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InconclusiveSpec {
    /// Keep the current weight and wait for a human.
    Pause,
    /// Roll back.
    Rollback,
}

/// One metric of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricSpec {
    /// Unique name.
    pub name: String,
    /// `errorRate` (errors out of requests — or any events out of trials, a generic ratio),
    /// `latency` (a histogram) or `value` (one number per version, against limits).
    pub kind: KindSpec,
    /// PromQL returning both versions, grouped by the version label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<QuerySpec>,
    /// Compare the canary with the stable version (the default when no `threshold` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareSpec>,
    /// An absolute gate on the canary instead of a comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ThresholdSpec>,
    /// A failure rolls back on its own (default false: failures are weighed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<bool>,
    /// Share of the error budget and of the failure vote (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Evaluate and report, never act (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Requests each version must serve in a step before the metric can pass (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<f64>,
}

/// Metric kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum KindSpec {
    /// Errors out of requests.
    ErrorRate,
    /// A latency histogram.
    Latency,
    /// One value per version (a gauge: memory, CPU, queue length), judged against limits.
    Value,
}

/// PromQL for a metric. Each query must return one series per version (grouped by the version
/// label; `latency` also by `le`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuerySpec {
    /// `errorRate`: failed requests per version over `{{interval}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
    /// `errorRate`: all requests per version over `{{interval}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<String>,
    /// `latency`: histogram bucket increases per version and `le` over `{{interval}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<String>,
    /// `value`: one value per version, e.g. `max by (version) (container_memory_working_set_bytes{…})`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Options of a canary-vs-stable comparison.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CompareSpec {
    /// Which change is bad: `increase` (default), `decrease` or `both`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<DirectionSpec>,
    /// Relative change tolerated, e.g. 0.1 = "the canary may be up to 10 % worse" (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Per-interval noise that is not evidence. Error rates: the smallest per-version
    /// coefficient of variation of the error rate between intervals (default 0.05); the judge
    /// estimates the actual one online from both versions and uses the larger. Latency: the
    /// relative noise between versions per bucket (default 0.05; 0 = pure binomial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
}

/// Direction of a bad change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DirectionSpec {
    /// Only an increase is bad.
    Increase,
    /// Only a decrease is bad.
    Decrease,
    /// Any change is bad.
    Both,
}

/// An absolute gate on the canary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ThresholdSpec {
    /// `errorRate`: the largest acceptable error rate, e.g. 0.01.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<f64>,
    /// `latency`: the quantile, e.g. 0.99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// `latency`: the largest acceptable value of the quantile, in the histogram's unit (use a
    /// bucket bound). `value`: the largest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// `value`: the smallest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// `value`: consecutive intervals outside the limits that fail the metric (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_after: Option<u32>,
}
