//! `AnalysisTemplate` (namespaced) and `ClusterAnalysisTemplate`: the metric gates SREs write,
//! with the same spec as template files (`crate::template::spec::AnalysisTemplateSpec`).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::template::spec::AnalysisTemplateSpec;

/// Metric gates for Rollouts in this namespace: queries, how versions are told apart, and how
/// each metric is judged.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "canarygate.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    doc = "Metric gates (queries and how each is judged) for Rollouts in this namespace.",
    namespaced,
    shortname = "cgat",
    category = "canary-gate"
)]
pub struct AnalysisTemplateBody(pub AnalysisTemplateSpec);

/// Metric gates available to Rollouts in every namespace.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "canarygate.dev",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    doc = "Metric gates (queries and how each is judged) for Rollouts in every namespace.",
    shortname = "cgcat",
    category = "canary-gate"
)]
pub struct ClusterAnalysisTemplateBody(pub AnalysisTemplateSpec);
