//! What the lifecycle is told each time it decides: [`Inputs`], and a metrics outage.

use crate::analysis::Judgement;
use crate::rollout::Action;
use crate::rollout::pods::Availability;

use super::hooks::HookEvent;

/// The metrics source failed: the step holds, and after the template's hold budget its
/// inconclusive policy acts (pause for a human, or roll back).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsOutage {
    /// What failed (the source's error, naming the query).
    pub message: String,
    /// Seconds an outage may last before the policy acts (the template's hold budget).
    pub budget: f64,
    /// Roll back (true) or pause (false) when the budget is spent.
    pub rollback: bool,
    /// Why the metrics are missing.
    pub kind: OutageKind,
}

/// Why a step's metrics are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageKind {
    /// The source failed (unreachable, slow, an error or garbage).
    Unavailable,
    /// The Rollout's arguments cannot go into the template's queries: a spec to fix, which
    /// holds without a budget.
    InvalidArguments,
}

/// What was seen.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Now, unix seconds.
    pub now: f64,
    /// The target Deployment's current revision.
    pub revision: &'a str,
    /// A pending human action.
    pub action: Option<Action>,
    /// Whether the stable workload runs the canary revision on every pod, available (what a
    /// promotion waits for before traffic goes back to the stable workload).
    pub stable_ready: bool,
    /// The pods each version has available, and why some are missing.
    pub pods: &'a Availability,
    /// The current step is gated by an analysis: it never advances without the judge.
    pub gated: bool,
    /// The judge's latest answer for the current step (`None` when nothing was judged).
    pub judgement: Option<&'a Judgement>,
    /// The metrics of the step's analysis could not be read.
    pub metrics_outage: Option<&'a MetricsOutage>,
    /// Seconds between looks while a step runs (the analysis interval).
    pub interval: f64,
    /// What the hooks stage did about the due webhooks (attempts started or ended).
    pub hooks: &'a [HookEvent],
}
