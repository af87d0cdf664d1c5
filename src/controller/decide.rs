//! Stage *decide* (pure): the Rollout's status, the target's current revision, a human action
//! and the judge's decision → the next status, what to tell people, and when to look again.
//!
//! Everything needed to resume lives in the status (step, when it started, revisions), so a
//! restarted controller continues the same step with the same elapsed time.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::analysis::StepContext;
use crate::analysis::{Decision, Judgement, NO_DATA};
use crate::crd::rollout::{DecisionRecord, MetricRecord, RolloutPhase, RolloutStatus, StepStart};
use crate::rollout::{Phase, PlanState};

use super::validate::{StrategyKind, ValidatedRollout};

/// At most this many decisions are kept in the status.
pub const MAX_DECISIONS: usize = 20;

/// A human's request, set on the Rollout (see `canary-gate promote|abort|retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// End the current pause or hold and go to the next step.
    Promote,
    /// Skip every remaining step.
    PromoteFull,
    /// Send all traffic back to stable and stop until `Retry`.
    Abort,
    /// Start an aborted or rolled-back revision again from the first step.
    Retry,
    /// Put the target Deployment back on the stable revision's template (during a rollout), or
    /// on the previous stable revision's (after a promotion), like `kubectl rollout undo`.
    Undo,
}

/// What the controller saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Now, unix seconds.
    pub now: f64,
    /// Pod-template hash of the target Deployment's current template.
    pub revision: String,
    /// A pending human action, if any.
    pub action: Option<Action>,
    /// Whether the stable workload runs the canary revision on every pod, available (what a
    /// promotion waits for before traffic goes back to the stable workload).
    pub stable_ready: bool,
    /// The metrics could not be read for this step's analysis.
    pub metrics_outage: Option<MetricsOutage>,
}

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
}

/// How often a promotion looks whether the stable workload has rolled out.
const PROMOTION_POLL: f64 = 5.0;

/// A Kubernetes Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Event reason (CamelCase).
    pub reason: &'static str,
    /// Event message.
    pub message: String,
    /// Warning (true) or Normal.
    pub warning: bool,
}

/// The outcome of deciding.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The status to apply.
    pub status: RolloutStatus,
    /// Events to record.
    pub notes: Vec<Note>,
    /// Seconds until the next reconcile is needed; `None`: only on change.
    pub requeue_after: Option<f64>,
    /// Revert the target Deployment's pod template to this revision (a human's `undo`).
    pub revert_to: Option<String>,
}

/// Whether the judge should run for this status: a rollout is in progress.
pub fn analysing(status: &RolloutStatus) -> bool {
    matches!(
        status.phase,
        Some(RolloutPhase::Progressing | RolloutPhase::Holding | RolloutPhase::Paused)
    )
}

/// Decides. `judgement` is the judge's latest answer for the current step (`None` when the step
/// has no analysis, which then only waits for its pause); `interval` is the analysis interval
/// (seconds) used to schedule the next look.
pub fn decide(
    rollout: &ValidatedRollout,
    status: &RolloutStatus,
    observed: &Observed,
    judgement: Option<&Judgement>,
    interval: f64,
) -> Outcome {
    let mut outcome = decide_phase(rollout, status, observed, judgement, interval);
    schedule_scale_down(rollout, status, &mut outcome, observed.now);
    set_phase_conditions(&mut outcome.status, observed.now);
    match (&observed.metrics_outage, judgement) {
        (Some(outage), _) => set_condition(
            &mut outcome.status.conditions,
            "MetricsAvailable",
            false,
            "MetricsUnavailable",
            &outage.message,
            observed.now,
        ),
        (None, Some(j)) => {
            // Prometheus answered, but without usable numbers for some metric (no series,
            // NaN, a stale series): the judge holds on it, and the condition says which.
            let missing: Vec<String> = j
                .metrics
                .iter()
                .filter(|m| m.reason.starts_with(NO_DATA))
                .map(|m| format!("{}: {}", m.name, m.reason))
                .collect();
            if missing.is_empty() {
                set_condition(
                    &mut outcome.status.conditions,
                    "MetricsAvailable",
                    true,
                    "Judged",
                    "the step's metrics were read and judged",
                    observed.now,
                );
            } else {
                set_condition(
                    &mut outcome.status.conditions,
                    "MetricsAvailable",
                    false,
                    "NoData",
                    &missing.join("; "),
                    observed.now,
                );
            }
        }
        (None, None) => {}
    }
    outcome
}

/// Whether a phase has a canary that takes traffic or is about to.
fn canary_live(phase: Option<RolloutPhase>) -> bool {
    matches!(
        phase,
        Some(
            RolloutPhase::Progressing
                | RolloutPhase::Holding
                | RolloutPhase::Paused
                | RolloutPhase::Promoting
        )
    )
}

/// When a canary stops taking traffic, its pods go after the scale-down delay (in-flight requests
/// and slow mesh updates still find them); a live canary has none pending. A blue-green switch
/// keeps the old pods for the delay instead. Wakes up for it.
fn schedule_scale_down(
    rollout: &ValidatedRollout,
    old: &RolloutStatus,
    outcome: &mut Outcome,
    now: f64,
) {
    let next = &mut outcome.status;
    let promoting = next.phase == Some(RolloutPhase::Promoting);
    if promoting && rollout.kind == StrategyKind::BlueGreen {
        // Blue-green: the old pods stay as they are for the delay after the switch, so an abort
        // switches the active Service straight back to them.
        if old.phase != Some(RolloutPhase::Promoting) {
            next.scale_down_at = Some(rfc3339(now + rollout.scale_down_delay));
        }
    } else if canary_live(next.phase) {
        next.scale_down_at = None;
    } else if canary_live(old.phase) && old.canary_revision.is_some() {
        next.scale_down_at = Some(rfc3339(now + rollout.scale_down_delay));
    }
    if let Some(at) = next.scale_down_at.as_deref().and_then(parse_rfc3339)
        && at > now - 1.0
    {
        let wait = (at - now).max(0.0) + 0.5;
        outcome.requeue_after = Some(outcome.requeue_after.map_or(wait, |r| r.min(wait)));
    }
}

fn decide_phase(
    rollout: &ValidatedRollout,
    status: &RolloutStatus,
    observed: &Observed,
    judgement: Option<&Judgement>,
    interval: f64,
) -> Outcome {
    let now = observed.now;
    let mut next = status.clone();
    let mut notes = Vec::new();
    let plan = &rollout.plan;

    // First sight: the running revision becomes stable.
    let Some(stable) = status.stable_revision.clone() else {
        next.stable_revision = Some(observed.revision.clone());
        set_phase(
            &mut next,
            RolloutPhase::Healthy,
            format!("revision {} adopted as stable", observed.revision),
        );
        next.canary_weight = Some(0);
        notes.push(note(
            "Adopted",
            format!("revision {} is the stable version", observed.revision),
            false,
        ));
        return Outcome {
            status: next,
            notes,
            requeue_after: None,
            revert_to: None,
        };
    };

    let rolling_out = status.canary_revision.as_deref() == Some(observed.revision.as_str());
    if observed.revision == stable && observed.action == Some(Action::Undo) {
        return match &status.previous_stable_revision {
            Some(previous) => {
                notes.push(note(
                    "UndoRequested",
                    format!("reverting the Deployment to the previous stable revision {previous}; it rolls out through the steps"),
                    false,
                ));
                Outcome {
                    status: next,
                    notes,
                    requeue_after: None,
                    revert_to: Some(previous.clone()),
                }
            }
            None => {
                notes.push(note(
                    "UndoImpossible",
                    "no previous stable revision is known; revert the Deployment (e.g. in Git)"
                        .into(),
                    true,
                ));
                Outcome {
                    status: next,
                    notes,
                    requeue_after: None,
                    revert_to: None,
                }
            }
        };
    }
    if observed.revision == stable {
        if status.canary_revision.is_some() && !matches!(status.phase, Some(RolloutPhase::Healthy))
        {
            notes.push(note(
                "RolloutCancelled",
                format!(
                    "the target is back on stable revision {stable}; canary {} dropped",
                    status.canary_revision.clone().unwrap_or_default()
                ),
                false,
            ));
        }
        next.canary_revision = None;
        next.current_step_index = None;
        next.step_started_at = None;
        next.canary_weight = Some(0);
        set_phase(
            &mut next,
            RolloutPhase::Healthy,
            format!("revision {stable} runs with all traffic"),
        );
        return Outcome {
            status: next,
            notes,
            requeue_after: None,
            revert_to: None,
        };
    }
    if !rolling_out {
        // A new revision: start (or restart) from the first step against the current stable.
        if let Some(old) = &status.canary_revision {
            notes.push(note(
                "RolloutRestarted",
                format!(
                    "revision {} replaces canary {old}; starting again from step 0",
                    observed.revision
                ),
                false,
            ));
        } else {
            notes.push(note(
                "RolloutStarted",
                format!(
                    "rolling out revision {} against stable {stable}",
                    observed.revision
                ),
                false,
            ));
        }
        return start(rollout, next, notes, &observed.revision, now, interval);
    }

    // The canary revision is the target's: act on actions, then on the judge.
    let phase = status.phase.unwrap_or(RolloutPhase::Progressing);
    match (observed.action, phase) {
        (Some(Action::Retry), RolloutPhase::Aborted | RolloutPhase::RolledBack) => {
            notes.push(note(
                "RolloutRetried",
                format!("retrying revision {} from step 0", observed.revision),
                false,
            ));
            return start(rollout, next, notes, &observed.revision, now, interval);
        }
        (_, RolloutPhase::Aborted | RolloutPhase::RolledBack | RolloutPhase::Degraded) => {
            return Outcome {
                status: next,
                notes,
                requeue_after: None,
                revert_to: None,
            };
        }
        (Some(Action::Undo), _) => {
            next.canary_weight = Some(0);
            set_phase(
                &mut next,
                RolloutPhase::Aborted,
                format!(
                    "undone by a human: all traffic on stable, the Deployment goes back to revision {stable}"
                ),
            );
            notes.push(note(
                "RolloutUndone",
                format!(
                    "revision {} undone; reverting the Deployment to {stable}",
                    observed.revision
                ),
                true,
            ));
            return Outcome {
                status: next,
                notes,
                requeue_after: None,
                revert_to: Some(stable),
            };
        }
        (Some(Action::Abort), _) => {
            next.canary_weight = Some(0);
            set_phase(
                &mut next,
                RolloutPhase::Aborted,
                "aborted by a human; all traffic on stable until retry".to_string(),
            );
            notes.push(note(
                "RolloutAborted",
                format!("revision {} aborted", observed.revision),
                true,
            ));
            return Outcome {
                status: next,
                notes,
                requeue_after: None,
                revert_to: None,
            };
        }
        (_, RolloutPhase::Promoting) if !observed.stable_ready => {
            // Traffic is on the canary while the stable workload takes the new template.
            set_phase(
                &mut next,
                RolloutPhase::Promoting,
                format!(
                    "promoting revision {}: waiting for the stable workload to run it",
                    observed.revision
                ),
            );
            return Outcome {
                status: next,
                notes,
                requeue_after: Some(PROMOTION_POLL),
                revert_to: None,
            };
        }
        (_, RolloutPhase::Promoting) => {
            // The stable workload runs the new revision: traffic goes back to it.
            next.previous_stable_revision = Some(stable.clone());
            next.stable_revision = Some(observed.revision.clone());
            next.canary_revision = None;
            next.current_step_index = None;
            next.step_started_at = None;
            next.canary_weight = Some(0);
            set_phase(
                &mut next,
                RolloutPhase::Healthy,
                format!("revision {} promoted and stable", observed.revision),
            );
            notes.push(note(
                "Promoted",
                format!("revision {} is the stable version", observed.revision),
                false,
            ));
            return Outcome {
                status: next,
                notes,
                requeue_after: None,
                revert_to: None,
            };
        }
        _ => {}
    }

    let state = plan_state(status, now);
    let ctx = plan.context(&state, now);
    let mut outage_reason: Option<String> = None;
    let new_state = match observed.action {
        Some(Action::Promote) => {
            notes.push(note(
                "ResumedByHuman",
                format!("step {} ended by a human", state.step),
                false,
            ));
            plan.resume(&state, now, false)
        }
        Some(Action::PromoteFull) => {
            notes.push(note(
                "PromotedByHuman",
                "remaining steps skipped by a human".to_string(),
                false,
            ));
            plan.resume(&state, now, true)
        }
        _ => {
            let gated = rollout
                .step_analysis
                .get(state.step)
                .copied()
                .flatten()
                .is_some()
                || rollout.background.is_some();
            let (decision, paused) = match (judgement, gated) {
                (Some(j), _) => (j.decision, j.paused),
                // An ungated step advances when its pause is over; the last one promotes.
                (None, false) if ctx.step_complete && ctx.last_step => (Decision::Promote, false),
                (None, false) => (Decision::Continue, false),
                // A gated step without an answer holds: never promote blind. A metrics outage
                // longer than the template's hold budget gets its policy.
                (None, true) => match &observed.metrics_outage {
                    Some(outage) => {
                        let since = status
                            .metrics_unavailable_since
                            .as_deref()
                            .and_then(parse_rfc3339)
                            .unwrap_or(now);
                        next.metrics_unavailable_since = Some(rfc3339(since));
                        if status.metrics_unavailable_since.is_none() {
                            notes.push(note(
                                "MetricsUnavailable",
                                format!("holding: {}", outage.message),
                                true,
                            ));
                        }
                        // A rollout waiting for a human is the human's to end: an outage
                        // then only holds, whatever the template's policy.
                        let judge_paused = status.phase == Some(RolloutPhase::Paused)
                            && !plan.waits_for_human(&state);
                        let waiting = judge_paused || plan.waits_for_human(&state);
                        let spent = now - since >= outage.budget && !waiting;
                        outage_reason = Some(if spent {
                            format!(
                                "metrics unavailable for {:.0}s (hold budget {:.0}s): {}",
                                now - since,
                                outage.budget,
                                outage.message
                            )
                        } else {
                            format!("metrics unavailable: {}", outage.message)
                        });
                        match (spent, outage.rollback) {
                            (true, true) => (Decision::Rollback, false),
                            (true, false) => (Decision::Hold, true),
                            (false, _) => (Decision::Hold, judge_paused),
                        }
                    }
                    None => (Decision::Hold, false),
                },
            };
            if let Some(j) = judgement {
                next.metrics_unavailable_since = None;
                record(&mut next, j, now);
            }
            plan.apply(&state, &ctx, decision, paused, now)
        }
    };

    next.current_step_index = Some(new_state.step as i32);
    next.step_started_at = Some(rfc3339(new_state.step_started));
    if new_state.step != state.step {
        next.step_history.push(StepStart {
            step: new_state.step as i32,
            started_at: rfc3339(new_state.step_started),
        });
    }
    next.canary_weight = Some(plan.weight(&new_state).round() as i32);
    if new_state.step != state.step && new_state.phase == Phase::Progressing {
        notes.push(note(
            "StepAdvanced",
            format!(
                "step {} → {} at weight {}%",
                state.step,
                new_state.step,
                plan.weight(&new_state)
            ),
            false,
        ));
    }
    let reason =
        outage_reason.unwrap_or_else(|| judgement.map_or_else(String::new, |j| j.reason.clone()));
    match new_state.phase {
        Phase::RolledBack => {
            set_phase(
                &mut next,
                RolloutPhase::RolledBack,
                format!("rolled back: {reason}"),
            );
            notes.push(note(
                "RolledBack",
                format!("revision {}: {reason}", observed.revision),
                true,
            ));
        }
        Phase::Promoted => {
            next.canary_weight = Some(100);
            set_phase(
                &mut next,
                RolloutPhase::Promoting,
                format!("promoting revision {}", observed.revision),
            );
            notes.push(note(
                "Promoting",
                format!(
                    "revision {}: {}",
                    observed.revision,
                    if reason.is_empty() {
                        "promoted by a human"
                    } else {
                        &reason
                    }
                ),
                false,
            ));
        }
        Phase::Paused => {
            set_phase(
                &mut next,
                RolloutPhase::Paused,
                format!("hold budget spent; waiting for a human: {reason}"),
            );
            if status.phase != Some(RolloutPhase::Paused) {
                notes.push(note(
                    "Paused",
                    format!("step {}: {reason}", new_state.step),
                    true,
                ));
            }
        }
        Phase::Holding => {
            if status.phase != Some(RolloutPhase::Holding) {
                notes.push(note(
                    "Holding",
                    format!("step {}: {reason}", new_state.step),
                    false,
                ));
            }
            set_phase(
                &mut next,
                RolloutPhase::Holding,
                format!("holding at {}%: {reason}", plan.weight(&new_state)),
            );
        }
        Phase::Progressing if plan.waits_for_human(&new_state) => {
            set_phase(
                &mut next,
                RolloutPhase::Paused,
                format!("step {} waits for `canary-gate promote`", new_state.step),
            );
        }
        Phase::Progressing => {
            set_phase(
                &mut next,
                RolloutPhase::Progressing,
                format!("step {} at {}%", new_state.step, plan.weight(&new_state)),
            );
        }
    }
    let requeue_after = match new_state.phase {
        // Promoting completes on the next reconcile, once traffic has moved.
        Phase::Promoted => Some(0.0),
        _ => plan
            .next_wake(&new_state, now, interval)
            .map(|t| (t - now).max(0.0)),
    };
    Outcome {
        status: next,
        notes,
        requeue_after,
        revert_to: None,
    }
}

fn start(
    rollout: &ValidatedRollout,
    mut next: RolloutStatus,
    notes: Vec<Note>,
    revision: &str,
    now: f64,
    interval: f64,
) -> Outcome {
    let plan = &rollout.plan;
    let state = plan.start(now);
    next.canary_revision = Some(revision.to_string());
    next.started_at = Some(rfc3339(now));
    next.step_started_at = Some(rfc3339(now));
    next.current_step_index = Some(0);
    next.canary_weight = Some(plan.weight(&state).round() as i32);
    next.decisions.clear();
    next.last_decision = None;
    next.step_history = vec![StepStart {
        step: 0,
        started_at: rfc3339(now),
    }];
    let phase = if plan.waits_for_human(&state) {
        RolloutPhase::Paused
    } else {
        RolloutPhase::Progressing
    };
    set_phase(
        &mut next,
        phase,
        format!("step 0 at {}%", plan.weight(&state)),
    );
    let requeue_after = plan.next_wake(&state, now, interval).map(|t| t - now);
    Outcome {
        status: next,
        notes,
        requeue_after,
        revert_to: None,
    }
}

/// The judge's context for an interval ending at each of `ends`, from the step history: the
/// step in force when the interval ended, whether its pause was over, and its weight.
pub fn step_contexts(
    rollout: &ValidatedRollout,
    status: &RolloutStatus,
    ends: &[f64],
) -> Vec<StepContext> {
    let starts: Vec<(usize, f64)> = status
        .step_history
        .iter()
        .filter_map(|s| Some((s.step.max(0) as usize, parse_rfc3339(&s.started_at)?)))
        .collect();
    let steps = rollout.plan.steps();
    ends.iter()
        .map(|&t| {
            let (step, started) = starts
                .iter()
                .rev()
                .find(|(_, at)| *at < t)
                .or(starts.first())
                .copied()
                .unwrap_or((0, t));
            let step = step.min(steps.len().saturating_sub(1));
            StepContext {
                t,
                step,
                weight: steps.get(step).map_or(0.0, |s| s.weight),
                step_complete: t - started >= steps.get(step).map_or(0.0, |s| s.pause) - 1e-9,
                last_step: step + 1 >= steps.len(),
            }
        })
        .collect()
}

/// The plan state the status describes.
pub fn plan_state(status: &RolloutStatus, now: f64) -> PlanState {
    PlanState {
        step: status.current_step_index.unwrap_or(0).max(0) as usize,
        step_started: status
            .step_started_at
            .as_deref()
            .and_then(parse_rfc3339)
            .unwrap_or(now),
        phase: match status.phase {
            Some(RolloutPhase::Holding) => Phase::Holding,
            Some(RolloutPhase::RolledBack | RolloutPhase::Aborted) => Phase::RolledBack,
            Some(RolloutPhase::Promoting | RolloutPhase::Healthy) => Phase::Promoted,
            _ => Phase::Progressing,
        },
    }
}

/// The standard conditions that follow from the phase: `Progressing` (a rollout is under way),
/// `Healthy` (the stable version runs with all traffic), `Paused` (waiting for a human), and
/// `InvalidSpec` cleared (the spec validated).
pub fn set_phase_conditions(status: &mut RolloutStatus, now: f64) {
    let phase = status.phase.unwrap_or(RolloutPhase::Healthy);
    let reason = format!("{phase:?}");
    let message = status.message.clone().unwrap_or_default();
    let progressing = matches!(
        phase,
        RolloutPhase::Progressing
            | RolloutPhase::Holding
            | RolloutPhase::Paused
            | RolloutPhase::Promoting
    );
    set_condition(
        &mut status.conditions,
        "Progressing",
        progressing,
        &reason,
        &message,
        now,
    );
    set_condition(
        &mut status.conditions,
        "Healthy",
        phase == RolloutPhase::Healthy,
        &reason,
        &message,
        now,
    );
    set_condition(
        &mut status.conditions,
        "Paused",
        phase == RolloutPhase::Paused,
        &reason,
        &message,
        now,
    );
    if status.conditions.iter().any(|c| c.type_ == "InvalidSpec") {
        set_condition(
            &mut status.conditions,
            "InvalidSpec",
            false,
            "Valid",
            "the spec is valid",
            now,
        );
    }
}

/// Sets a condition; its `lastTransitionTime` changes only when its status does.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    now: f64,
) {
    let status = if on { "True" } else { "False" };
    let time = Time(Timestamp::from_second(now as i64).unwrap_or(Timestamp::UNIX_EPOCH));
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = time;
                c.status = status.to_string();
            }
            c.reason = reason.to_string();
            c.message = message.to_string();
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: time,
            observed_generation: None,
        }),
    }
}

fn set_phase(status: &mut RolloutStatus, phase: RolloutPhase, message: String) {
    status.phase = Some(phase);
    status.message = Some(message);
}

fn note(reason: &'static str, message: String, warning: bool) -> Note {
    Note {
        reason,
        message,
        warning,
    }
}

/// Appends the judgement to the decision record when it says something new (bounded).
fn record(status: &mut RolloutStatus, j: &Judgement, now: f64) {
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

/// Unix seconds as RFC 3339 (whole seconds, UTC).
pub fn rfc3339(t: f64) -> String {
    let st = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0.0) as u64);
    humantime::format_rfc3339_seconds(st).to_string()
}

/// RFC 3339 as unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::validate::validate;

    const T0: f64 = 1_763_856_000.0;

    fn rollout() -> ValidatedRollout {
        let spec = serde_saphyr::from_str(
            r#"
targetRef: {name: web}
strategy:
  canary:
    analysis: {templates: [{templateName: generic-http}]}
    steps:
      - setWeight: 10
      - pause: {duration: 60s}
      - setWeight: 50
      - pause: {}
      - setWeight: 80
      - pause: {duration: 60s}
"#,
        )
        .unwrap();
        validate(&spec).unwrap()
    }

    fn judged(decision: Decision, paused: bool, reason: &str) -> Judgement {
        Judgement {
            t: 0.0,
            decision,
            reason: reason.into(),
            step: 0,
            weight: 10.0,
            paused,
            metrics: Vec::new(),
        }
    }

    fn seen(now: f64, revision: &str, action: Option<Action>) -> Observed {
        Observed {
            now,
            revision: revision.into(),
            action,
            stable_ready: true,
            metrics_outage: None,
        }
    }

    fn rolling(step: i32, started: f64, phase: RolloutPhase) -> RolloutStatus {
        RolloutStatus {
            phase: Some(phase),
            stable_revision: Some("v1".into()),
            canary_revision: Some("v2".into()),
            started_at: Some(rfc3339(T0)),
            step_started_at: Some(rfc3339(started)),
            current_step_index: Some(step),
            ..RolloutStatus::default()
        }
    }

    fn reasons(o: &Outcome) -> Vec<&'static str> {
        o.notes.iter().map(|n| n.reason).collect()
    }

    #[test]
    fn first_sight_adopts_the_running_revision_as_stable() {
        let o = decide(
            &rollout(),
            &RolloutStatus::default(),
            &seen(T0, "v1", None),
            None,
            10.0,
        );
        assert_eq!(o.status.stable_revision.as_deref(), Some("v1"));
        assert_eq!(o.status.phase, Some(RolloutPhase::Healthy));
        assert_eq!(o.requeue_after, None);
        assert_eq!(reasons(&o), ["Adopted"]);
    }

    #[test]
    fn a_new_revision_starts_at_step_zero_with_its_weight() {
        let healthy = RolloutStatus {
            phase: Some(RolloutPhase::Healthy),
            stable_revision: Some("v1".into()),
            ..RolloutStatus::default()
        };
        let o = decide(&rollout(), &healthy, &seen(T0, "v2", None), None, 10.0);
        assert_eq!(o.status.canary_revision.as_deref(), Some("v2"));
        assert_eq!(
            (o.status.current_step_index, o.status.canary_weight),
            (Some(0), Some(10))
        );
        assert_eq!(o.status.phase, Some(RolloutPhase::Progressing));
        assert_eq!(o.status.started_at, Some(rfc3339(T0)));
        assert_eq!(o.requeue_after, Some(10.0));
        assert_eq!(reasons(&o), ["RolloutStarted"]);
    }

    #[test]
    fn a_passing_step_advances_only_once_its_pause_is_over() {
        let r = rollout();
        let s = rolling(0, T0, RolloutPhase::Progressing);
        let pass = judged(Decision::Continue, false, "all gating metrics pass");
        let mid = decide(&r, &s, &seen(T0 + 30.0, "v2", None), Some(&pass), 10.0);
        assert_eq!(mid.status.current_step_index, Some(0));
        assert_eq!(mid.requeue_after, Some(10.0));
        let end = decide(&r, &s, &seen(T0 + 60.0, "v2", None), Some(&pass), 10.0);
        assert_eq!(
            (end.status.current_step_index, end.status.canary_weight),
            (Some(1), Some(50))
        );
        assert_eq!(end.status.step_started_at, Some(rfc3339(T0 + 60.0)));
        assert_eq!(reasons(&end), ["StepAdvanced"]);
        // Step 1 is `pause: {}`: it waits for a human.
        assert_eq!(end.status.phase, Some(RolloutPhase::Paused));
        assert_eq!(end.status.decisions.len(), 1);
        assert_eq!(end.status.last_decision.as_deref(), Some("continue"));
    }

    #[test]
    fn inconclusive_evidence_holds_at_the_current_weight() {
        let hold = judged(Decision::Hold, false, "error-rate: insufficient traffic");
        let o = decide(
            &rollout(),
            &rolling(0, T0, RolloutPhase::Progressing),
            &seen(T0 + 70.0, "v2", None),
            Some(&hold),
            10.0,
        );
        assert_eq!(
            (
                o.status.phase,
                o.status.current_step_index,
                o.status.canary_weight
            ),
            (Some(RolloutPhase::Holding), Some(0), Some(10))
        );
        assert_eq!(reasons(&o), ["Holding"]);
        assert_eq!(o.requeue_after, Some(10.0));
        // A hold past the budget under the pause policy waits for a human.
        let paused = judged(Decision::Hold, true, "hold budget spent");
        let o = decide(
            &rollout(),
            &o.status,
            &seen(T0 + 700.0, "v2", None),
            Some(&paused),
            10.0,
        );
        assert_eq!(o.status.phase, Some(RolloutPhase::Paused));
        assert_eq!(o.requeue_after, None);
    }

    #[test]
    fn a_failing_analysis_rolls_back_and_stays_rolled_back() {
        let fail = judged(Decision::Rollback, false, "error-rate: evidence of harm");
        let o = decide(
            &rollout(),
            &rolling(0, T0, RolloutPhase::Progressing),
            &seen(T0 + 20.0, "v2", None),
            Some(&fail),
            10.0,
        );
        assert_eq!(
            (o.status.phase, o.status.canary_weight),
            (Some(RolloutPhase::RolledBack), Some(0))
        );
        // Only the canary's scale-down remains to wake up for.
        assert_eq!(o.requeue_after, Some(30.5));
        assert!(o.notes[0].warning && o.notes[0].reason == "RolledBack");
        let again = decide(
            &rollout(),
            &o.status,
            &seen(T0 + 30.0, "v2", None),
            None,
            10.0,
        );
        assert_eq!(again.status, o.status);
    }

    #[test]
    fn a_manual_pause_waits_until_a_human_promotes() {
        let r = rollout();
        let paused = rolling(1, T0 + 60.0, RolloutPhase::Paused);
        let pass = judged(Decision::Continue, false, "all gating metrics pass");
        let o = decide(
            &r,
            &paused,
            &seen(T0 + 10_000.0, "v2", None),
            Some(&pass),
            10.0,
        );
        assert_eq!(
            (o.status.phase, o.status.current_step_index),
            (Some(RolloutPhase::Paused), Some(1))
        );
        let o = decide(
            &r,
            &paused,
            &seen(T0 + 10_000.0, "v2", Some(Action::Promote)),
            Some(&pass),
            10.0,
        );
        assert_eq!(
            (o.status.current_step_index, o.status.canary_weight),
            (Some(2), Some(80))
        );
        assert_eq!(o.status.phase, Some(RolloutPhase::Progressing));
        assert_eq!(reasons(&o), ["ResumedByHuman", "StepAdvanced"]);
    }

    #[test]
    fn the_last_step_promotes_and_the_canary_becomes_stable() {
        let promote = judged(Decision::Promote, false, "all gating metrics pass");
        let o = decide(
            &rollout(),
            &rolling(2, T0, RolloutPhase::Progressing),
            &seen(T0 + 60.0, "v2", None),
            Some(&promote),
            10.0,
        );
        assert_eq!(
            (o.status.phase, o.status.canary_weight),
            (Some(RolloutPhase::Promoting), Some(100))
        );
        assert_eq!(o.requeue_after, Some(0.0));
        // Traffic stays on the canary until the stable workload runs the new revision.
        let waiting = decide(
            &rollout(),
            &o.status,
            &Observed {
                stable_ready: false,
                ..seen(T0 + 61.0, "v2", None)
            },
            None,
            10.0,
        );
        assert_eq!(
            (waiting.status.phase, waiting.status.canary_weight),
            (Some(RolloutPhase::Promoting), Some(100))
        );
        assert_eq!(waiting.requeue_after, Some(PROMOTION_POLL));
        assert_eq!(waiting.status.scale_down_at, None);
        let done = decide(
            &rollout(),
            &waiting.status,
            &seen(T0 + 70.0, "v2", None),
            None,
            10.0,
        );
        assert_eq!(done.status.phase, Some(RolloutPhase::Healthy));
        assert_eq!(done.status.stable_revision.as_deref(), Some("v2"));
        assert_eq!(done.status.canary_revision, None);
        assert_eq!(done.status.canary_weight, Some(0));
        // The canary's pods go 30 s (the default delay) later; the controller wakes up for it.
        assert_eq!(done.status.scale_down_at, Some(rfc3339(T0 + 100.0)));
        assert_eq!(done.requeue_after, Some(30.5));
    }

    #[test]
    fn a_rollback_scales_the_canary_down_after_the_delay_and_a_new_rollout_cancels_that() {
        let fail = judged(Decision::Rollback, false, "errorRate: canary worse");
        let o = decide(
            &rollout(),
            &rolling(0, T0, RolloutPhase::Progressing),
            &seen(T0 + 20.0, "v2", None),
            Some(&fail),
            10.0,
        );
        assert_eq!(o.status.phase, Some(RolloutPhase::RolledBack));
        assert_eq!(o.status.scale_down_at, Some(rfc3339(T0 + 50.0)));
        assert_eq!(o.requeue_after, Some(30.5));
        // Later reconciles keep the time; once it has passed, nothing more to wake up for.
        let later = decide(
            &rollout(),
            &o.status,
            &seen(T0 + 90.0, "v2", None),
            None,
            10.0,
        );
        assert_eq!(later.status.scale_down_at, Some(rfc3339(T0 + 50.0)));
        assert_eq!(later.requeue_after, None);
        let again = decide(
            &rollout(),
            &later.status,
            &seen(T0 + 95.0, "v3", None),
            None,
            10.0,
        );
        assert_eq!(again.status.phase, Some(RolloutPhase::Progressing));
        assert_eq!(again.status.scale_down_at, None);
    }

    #[test]
    fn blue_green_keeps_the_old_pods_after_the_switch_so_an_abort_switches_straight_back() {
        let bg = validate(
            &serde_saphyr::from_str(
                "targetRef: {name: web}\nstrategy:\n  blueGreen: {activeService: web, previewService: web-preview, scaleDownDelay: 5m}\n",
            )
            .unwrap(),
        )
        .unwrap();
        let preview = rolling(0, T0, RolloutPhase::Progressing);
        let switched = decide(&bg, &preview, &seen(T0 + 30.0, "v2", None), None, 10.0);
        assert_eq!(
            (switched.status.phase, switched.status.canary_weight),
            (Some(RolloutPhase::Promoting), Some(100))
        );
        // The old pods are kept (not re-templated) until 5 minutes after the switch.
        assert_eq!(switched.status.scale_down_at, Some(rfc3339(T0 + 330.0)));
        let waiting = decide(
            &bg,
            &switched.status,
            &Observed {
                stable_ready: false,
                ..seen(T0 + 60.0, "v2", None)
            },
            None,
            10.0,
        );
        assert_eq!(waiting.status.scale_down_at, Some(rfc3339(T0 + 330.0)));
        // An abort inside the window: all traffic back on the old pods at once.
        let back = decide(
            &bg,
            &waiting.status,
            &seen(T0 + 90.0, "v2", Some(Action::Abort)),
            None,
            10.0,
        );
        assert_eq!(
            (back.status.phase, back.status.canary_weight),
            (Some(RolloutPhase::Aborted), Some(0))
        );
    }

    #[test]
    fn a_metrics_outage_never_ends_a_rollout_that_waits_for_a_human() {
        let outage = Observed {
            metrics_outage: Some(MetricsOutage {
                message: "Prometheus http://prom:9090 unreachable".into(),
                budget: 600.0,
                rollback: true,
            }),
            ..seen(T0 + 7.0 * 86_400.0, "v2", None)
        };
        // Step 1 (`pause: {}`) waits for `canary-gate promote`, and a step paused by the
        // judge's hold budget waits too; an outage far past the budget holds both.
        for (step, phase) in [(1, RolloutPhase::Paused), (0, RolloutPhase::Paused)] {
            let mut status = rolling(step, T0, phase);
            status.metrics_unavailable_since = Some(rfc3339(T0 + 60.0));
            let o = decide(&rollout(), &status, &outage, None, 10.0);
            assert_eq!(
                (o.status.phase, o.status.current_step_index),
                (Some(RolloutPhase::Paused), Some(step)),
                "step {step}: {:?}",
                o.status.message
            );
            assert_eq!(
                o.status.canary_weight,
                Some(if step == 1 { 50 } else { 10 })
            );
        }
    }

    #[test]
    fn a_metrics_outage_holds_then_the_templates_policy_acts_after_the_hold_budget() {
        let outage = |rollback| Observed {
            metrics_outage: Some(MetricsOutage {
                message: "Prometheus http://prom:9090 unreachable (query error-rate)".into(),
                budget: 600.0,
                rollback,
            }),
            ..seen(T0 + 120.0, "v2", None)
        };
        // Step 0's pause (60 s) is over, yet nothing advances: it holds, says why, once.
        let first = decide(
            &rollout(),
            &rolling(0, T0, RolloutPhase::Progressing),
            &outage(false),
            None,
            10.0,
        );
        assert_eq!(
            (first.status.phase, first.status.current_step_index),
            (Some(RolloutPhase::Holding), Some(0))
        );
        assert_eq!(
            first.status.metrics_unavailable_since,
            Some(rfc3339(T0 + 120.0))
        );
        assert!(
            first
                .status
                .message
                .as_deref()
                .unwrap()
                .contains("metrics unavailable: Prometheus http://prom:9090 unreachable")
        );
        assert!(reasons(&first).contains(&"MetricsUnavailable"));
        let c = first
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "MetricsAvailable")
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "MetricsUnavailable")
        );
        let later = decide(
            &rollout(),
            &first.status,
            &Observed {
                now: T0 + 400.0,
                ..outage(false)
            },
            None,
            10.0,
        );
        assert_eq!(later.status.phase, Some(RolloutPhase::Holding));
        assert!(
            !reasons(&later).contains(&"MetricsUnavailable"),
            "one Event per outage"
        );
        // Past the hold budget: pause for a human, or roll back, as the template says.
        let paused = decide(
            &rollout(),
            &later.status,
            &Observed {
                now: T0 + 720.0,
                ..outage(false)
            },
            None,
            10.0,
        );
        assert_eq!(paused.status.phase, Some(RolloutPhase::Paused));
        assert!(
            paused
                .status
                .message
                .as_deref()
                .unwrap()
                .contains("metrics unavailable for 600s")
        );
        let rolled = decide(
            &rollout(),
            &later.status,
            &Observed {
                now: T0 + 720.0,
                ..outage(true)
            },
            None,
            10.0,
        );
        assert_eq!(rolled.status.phase, Some(RolloutPhase::RolledBack));
        // Metrics back: the outage is over.
        let pass = judged(Decision::Continue, false, "no objection");
        let back = decide(
            &rollout(),
            &later.status,
            &seen(T0 + 430.0, "v2", None),
            Some(&pass),
            10.0,
        );
        assert_eq!(back.status.metrics_unavailable_since, None);
        let c = back
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "MetricsAvailable")
            .unwrap();
        assert_eq!(c.status, "True");
    }

    #[test]
    fn promote_full_skips_the_remaining_steps() {
        let o = decide(
            &rollout(),
            &rolling(0, T0, RolloutPhase::Progressing),
            &seen(T0 + 5.0, "v2", Some(Action::PromoteFull)),
            None,
            10.0,
        );
        assert_eq!(o.status.phase, Some(RolloutPhase::Promoting));
    }

    #[test]
    fn abort_stops_until_retry_starts_again_from_step_zero() {
        let o = decide(
            &rollout(),
            &rolling(2, T0, RolloutPhase::Progressing),
            &seen(T0 + 5.0, "v2", Some(Action::Abort)),
            None,
            10.0,
        );
        assert_eq!(
            (o.status.phase, o.status.canary_weight),
            (Some(RolloutPhase::Aborted), Some(0))
        );
        let still = decide(
            &rollout(),
            &o.status,
            &seen(T0 + 50.0, "v2", Some(Action::Promote)),
            None,
            10.0,
        );
        assert_eq!(still.status.phase, Some(RolloutPhase::Aborted));
        let retried = decide(
            &rollout(),
            &o.status,
            &seen(T0 + 100.0, "v2", Some(Action::Retry)),
            None,
            10.0,
        );
        assert_eq!(
            (retried.status.phase, retried.status.current_step_index),
            (Some(RolloutPhase::Progressing), Some(0))
        );
        assert_eq!(retried.status.started_at, Some(rfc3339(T0 + 100.0)));
    }

    #[test]
    fn a_newer_revision_mid_rollout_restarts_from_step_zero_against_stable() {
        let o = decide(
            &rollout(),
            &rolling(2, T0, RolloutPhase::Progressing),
            &seen(T0 + 90.0, "v3", None),
            None,
            10.0,
        );
        assert_eq!(o.status.canary_revision.as_deref(), Some("v3"));
        assert_eq!(o.status.stable_revision.as_deref(), Some("v1"));
        assert_eq!(o.status.current_step_index, Some(0));
        assert_eq!(reasons(&o), ["RolloutRestarted"]);
    }

    #[test]
    fn reverting_the_target_to_stable_cancels_the_rollout() {
        let o = decide(
            &rollout(),
            &rolling(1, T0, RolloutPhase::Paused),
            &seen(T0 + 90.0, "v1", None),
            None,
            10.0,
        );
        assert_eq!(
            (o.status.phase, o.status.canary_revision.as_deref()),
            (Some(RolloutPhase::Healthy), None)
        );
        assert_eq!(reasons(&o), ["RolloutCancelled"]);
    }

    #[test]
    fn a_gated_step_without_an_answer_holds_instead_of_advancing() {
        let o = decide(
            &rollout(),
            &rolling(0, T0, RolloutPhase::Progressing),
            &seen(T0 + 120.0, "v2", None),
            None,
            10.0,
        );
        assert_eq!(
            (o.status.phase, o.status.current_step_index),
            (Some(RolloutPhase::Holding), Some(0))
        );
    }

    #[test]
    fn a_restart_mid_step_resumes_the_same_step_and_elapsed_time() {
        // The status alone carries step and start: a fresh controller at T0+45 with the status
        // written at T0+30 still needs 15 s more before step 0 completes.
        let pass = judged(Decision::Continue, false, "all gating metrics pass");
        let written = decide(
            &rollout(),
            &rolling(0, T0, RolloutPhase::Progressing),
            &seen(T0 + 30.0, "v2", None),
            Some(&pass),
            10.0,
        );
        let resumed = decide(
            &rollout(),
            &written.status,
            &seen(T0 + 45.0, "v2", None),
            Some(&pass),
            10.0,
        );
        assert_eq!(resumed.status.current_step_index, Some(0));
        assert_eq!(resumed.requeue_after, Some(10.0));
        let after = decide(
            &rollout(),
            &resumed.status,
            &seen(T0 + 60.0, "v2", None),
            Some(&pass),
            10.0,
        );
        assert_eq!(after.status.current_step_index, Some(1));
    }

    #[test]
    fn past_intervals_are_assigned_to_the_step_in_force_when_they_ended() {
        let r = rollout();
        let healthy = RolloutStatus {
            phase: Some(RolloutPhase::Healthy),
            stable_revision: Some("v1".into()),
            ..RolloutStatus::default()
        };
        let started = decide(&r, &healthy, &seen(T0, "v2", None), None, 10.0).status;
        let pass = judged(Decision::Continue, false, "all gating metrics pass");
        let advanced = decide(
            &r,
            &started,
            &seen(T0 + 60.0, "v2", None),
            Some(&pass),
            10.0,
        )
        .status;
        assert_eq!(advanced.step_history.len(), 2);
        let ctx = step_contexts(&r, &advanced, &[T0 + 10.0, T0 + 60.0, T0 + 70.0]);
        assert_eq!(ctx.iter().map(|c| c.step).collect::<Vec<_>>(), [0, 0, 1]);
        assert_eq!(
            ctx.iter().map(|c| c.weight).collect::<Vec<_>>(),
            [10.0, 10.0, 50.0]
        );
        assert_eq!(
            ctx.iter().map(|c| c.step_complete).collect::<Vec<_>>(),
            [false, true, false]
        );
    }

    #[test]
    fn conditions_follow_the_phase_and_keep_their_transition_time() {
        let healthy = RolloutStatus {
            phase: Some(RolloutPhase::Healthy),
            stable_revision: Some("v1".into()),
            ..RolloutStatus::default()
        };
        let cond = |s: &RolloutStatus, t: &str| {
            s.conditions.iter().find(|c| c.type_ == t).map(|c| {
                (
                    c.status.clone(),
                    c.reason.clone(),
                    c.last_transition_time.0.as_second(),
                )
            })
        };
        let started = decide(&rollout(), &healthy, &seen(T0, "v2", None), None, 10.0).status;
        assert_eq!(
            cond(&started, "Progressing"),
            Some(("True".into(), "Progressing".into(), T0 as i64))
        );
        assert_eq!(cond(&started, "Healthy").unwrap().0, "False");
        let pass = judged(Decision::Continue, false, "all gating metrics pass");
        let later = decide(
            &rollout(),
            &started,
            &seen(T0 + 30.0, "v2", None),
            Some(&pass),
            10.0,
        )
        .status;
        assert_eq!(
            cond(&later, "Progressing").unwrap().2,
            T0 as i64,
            "unchanged status keeps its time"
        );
        let fail = judged(Decision::Rollback, false, "error-rate: evidence of harm");
        let rolled = decide(
            &rollout(),
            &later,
            &seen(T0 + 40.0, "v2", None),
            Some(&fail),
            10.0,
        )
        .status;
        assert_eq!(
            cond(&rolled, "Progressing"),
            Some(("False".into(), "RolledBack".into(), T0 as i64 + 40))
        );
    }

    #[test]
    fn undo_reverts_to_stable_during_a_rollout_and_to_the_previous_stable_after_promotion() {
        let o = decide(
            &rollout(),
            &rolling(1, T0, RolloutPhase::Paused),
            &seen(T0 + 5.0, "v2", Some(Action::Undo)),
            None,
            10.0,
        );
        assert_eq!(
            (
                o.status.phase,
                o.status.canary_weight,
                o.revert_to.as_deref()
            ),
            (Some(RolloutPhase::Aborted), Some(0), Some("v1"))
        );
        let promoted = decide(
            &rollout(),
            &rolling(2, T0, RolloutPhase::Promoting),
            &seen(T0 + 5.0, "v2", None),
            None,
            10.0,
        )
        .status;
        assert_eq!(promoted.previous_stable_revision.as_deref(), Some("v1"));
        let undo = decide(
            &rollout(),
            &promoted,
            &seen(T0 + 9.0, "v2", Some(Action::Undo)),
            None,
            10.0,
        );
        assert_eq!(undo.revert_to.as_deref(), Some("v1"));
        let never = RolloutStatus {
            phase: Some(RolloutPhase::Healthy),
            stable_revision: Some("v1".into()),
            ..RolloutStatus::default()
        };
        let o = decide(
            &rollout(),
            &never,
            &seen(T0, "v1", Some(Action::Undo)),
            None,
            10.0,
        );
        assert_eq!((o.revert_to, o.notes[0].reason), (None, "UndoImpossible"));
    }

    #[test]
    fn the_decision_record_keeps_the_newest_twenty() {
        let mut s = rolling(0, T0, RolloutPhase::Progressing);
        for i in 0..30 {
            let hold = judged(Decision::Hold, false, &format!("evidence building {i}"));
            s = decide(
                &rollout(),
                &s,
                &seen(T0 + f64::from(i), "v2", None),
                Some(&hold),
                10.0,
            )
            .status;
        }
        assert_eq!(s.decisions.len(), MAX_DECISIONS);
        assert_eq!(s.decisions.last().unwrap().reason, "evidence building 29");
        assert_eq!(s.decisions[0].reason, "evidence building 10");
    }
}
