//! The decision record in the status: each judgement that says something new, with every
//! metric's evidence, at most [`MAX_DECISIONS`](super::MAX_DECISIONS) kept.

use crate::analysis::Judgement;
use crate::crd::rollout::{DecisionRecord, MetricRecord, RolloutStatus};
use crate::time::rfc3339;

use super::MAX_DECISIONS;

/// Appends the judgement to the decision record when it says something new (bounded).
pub(super) fn record(status: &mut RolloutStatus, j: &Judgement, now: f64) {
    let decision = j.decision.as_str().to_string();
    let same = status
        .decisions
        .last()
        .is_some_and(|d| d.decision == decision && d.step == j.step as i32 && d.reason == j.reason);
    status.last_decision = Some(decision.clone());
    if same {
        return;
    }
    let fmt = |c: &crate::analysis::Counts| format!("{}/{}", c.events, c.total);
    status.decisions.push(DecisionRecord {
        time: rfc3339(now),
        step: j.step as i32,
        weight: j.weight.round() as i32,
        decision,
        reason: j.reason.clone(),
        window_start: status.started_at.clone(),
        metrics: j
            .metrics
            .iter()
            .map(|m| MetricRecord {
                name: m.name.clone(),
                verdict: format!("{:?}", m.verdict).to_lowercase(),
                reason: m.reason.clone(),
                e_value: Some(m.e_value).filter(|v| v.is_finite()),
                fail_at: Some(m.fail_at).filter(|v| v.is_finite()),
                estimate: m
                    .estimate
                    .as_ref()
                    .map(|e| e.value)
                    .filter(|v| v.is_finite()),
                estimate_low: m.estimate.as_ref().map(|e| e.low).filter(|v| v.is_finite()),
                estimate_high: m
                    .estimate
                    .as_ref()
                    .map(|e| e.high)
                    .filter(|v| v.is_finite()),
                canary: Some(fmt(&m.evidence.canary)),
                stable: Some(fmt(&m.evidence.stable)),
            })
            .collect(),
    });
    if status.decisions.len() > MAX_DECISIONS {
        let drop = status.decisions.len() - MAX_DECISIONS;
        status.decisions.drain(..drop);
    }
}
