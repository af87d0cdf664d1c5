//! Stage *decide* (pure): the Rollout's status, the target's current revision, a human action
//! and the judge's decision → the next status, what to tell people, and when to look again.
//!
//! Everything needed to resume lives in the status (step, when it started, revisions), so a
//! restarted controller continues the same step with the same elapsed time.

use crate::analysis::StepContext;
use crate::analysis::{Decision, Judgement, NO_DATA};
use crate::crd::rollout::{DecisionRecord, MetricRecord, RolloutPhase, RolloutStatus, StepStart};
use crate::rollout::{Action, Phase, PlanState};
use crate::time::{parse_rfc3339, rfc3339};

use super::availability::{Availability, canary_live, needed, ready, shortfall};
pub use super::status::{Note, set_condition, set_phase, set_phase_conditions};
use super::validate::{StrategyKind, ValidatedRollout};
pub use conditions::report_action;
use conditions::{set_autoscaler_condition, set_availability_conditions};
pub use pods::{DEADLINE_REASON, Side, deadline_due};
use pods::{POD_POLL, Wait, healthy_message, in_force_now, promoting, waiting};
use record::record;

/// At most this many decisions are kept in the status.
pub const MAX_DECISIONS: usize = 20;

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
    /// The pods each version has available, and why some are missing.
    pub pods: Availability,
    /// An autoscaler that scales the target Deployment instead of the Rollout (the message,
    /// with the fix).
    pub autoscaler_conflict: Option<String>,
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
    /// The condition's and Event's reason: `MetricsUnavailable` (the source failed), or
    /// `InvalidArguments` (the Rollout's arguments cannot go into the template's queries — a
    /// spec to fix, which holds without a budget).
    pub reason: &'static str,
}

/// [`MetricsOutage::reason`] of a source that failed.
pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
/// [`MetricsOutage::reason`] of arguments the template's queries refuse.
pub const INVALID_ARGUMENTS: &str = "InvalidArguments";

/// How often a promotion looks whether the stable workload has rolled out.
const PROMOTION_POLL: f64 = 5.0;

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
    /// What became of a human's action: carried out (`Ok`, what it did) or refused (`Err`,
    /// reason and why); `None` without an action.
    pub action_result: Option<Result<String, (&'static str, String)>>,
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
    set_availability_conditions(rollout, observed, &mut outcome);
    report_action(&mut outcome, observed);
    set_autoscaler_condition(&mut outcome, observed);
    match (&observed.metrics_outage, judgement) {
        (Some(outage), _) => set_condition(
            &mut outcome.status.conditions,
            "MetricsAvailable",
            false,
            outage.reason,
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
    let mut action = observed.action;

    // First sight: the running revision becomes stable.
    let Some(stable) = status.stable_revision.clone() else {
        next.stable_revision = Some(observed.revision.clone());
        set_phase(
            &mut next,
            RolloutPhase::Healthy,
            healthy_message(rollout, observed, &observed.revision, "adopted as stable"),
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
            action_result: action.map(|a| {
                Err((
                    "ActionRefused",
                    format!(
                        "`{}` does nothing before a stable revision is adopted",
                        a.command()
                    ),
                ))
            }),
        };
    };

    let rolling_out = status.canary_revision.as_deref() == Some(observed.revision.as_str());
    if observed.revision == stable && action == Some(Action::Undo) {
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
                    action_result: Some(Ok(format!(
                        "undo: the Deployment goes back to revision {previous}"
                    ))),
                }
            }
            None => Outcome {
                status: next,
                notes,
                requeue_after: None,
                revert_to: None,
                action_result: Some(Err((
                    "UndoImpossible",
                    "no previous stable revision is known; revert the Deployment (e.g. in Git)"
                        .into(),
                ))),
            },
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
        next.waiting_since = None;
        next.canary_weight = Some(0);
        set_phase(
            &mut next,
            RolloutPhase::Healthy,
            healthy_message(rollout, observed, &stable, "runs with all traffic"),
        );
        return Outcome {
            status: next,
            notes,
            requeue_after: None,
            revert_to: None,
            action_result: action.map(|a| {
                Err((
                    "ActionRefused",
                    format!(
                        "`{}` does nothing: revision {stable} runs with all traffic and nothing is rolling out",
                        a.command()
                    ),
                ))
            }),
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
        let mut outcome = start(rollout, next, notes, observed, interval);
        outcome.action_result = action.map(|a| {
            Err((
                "ActionRefused",
                format!(
                    "`{}` came with a new revision {}, which starts from step 0; ask again if it still applies",
                    a.command(),
                    observed.revision
                ),
            ))
        });
        return outcome;
    }

    // The canary revision is the target's: act on actions, then on the judge.
    let phase = status.phase.unwrap_or(RolloutPhase::Progressing);
    let mut action_result = None;
    match (action, phase) {
        (Some(Action::Retry), RolloutPhase::Aborted | RolloutPhase::RolledBack) => {
            notes.push(note(
                "RolloutRetried",
                format!("retrying revision {} from step 0", observed.revision),
                false,
            ));
            let mut outcome = start(rollout, next, notes, observed, interval);
            outcome.action_result = Some(Ok(format!(
                "retry: revision {} starts again from step 0",
                observed.revision
            )));
            return outcome;
        }
        (Some(Action::Undo), phase) if phase != RolloutPhase::Degraded => {
            // A live rollout stops first (all traffic on stable); an aborted or rolled-back one
            // already has it there. Either way the Deployment goes back to the stable template.
            if !matches!(phase, RolloutPhase::Aborted | RolloutPhase::RolledBack) {
                next.canary_weight = Some(0);
                next.waiting_since = None;
                set_phase(
                    &mut next,
                    RolloutPhase::Aborted,
                    format!(
                        "undone by a human: all traffic on stable, the Deployment goes back to revision {stable}"
                    ),
                );
            }
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
                revert_to: Some(stable.clone()),
                action_result: Some(Ok(format!(
                    "undo: the Deployment goes back to stable revision {stable}"
                ))),
            };
        }
        (Some(a), RolloutPhase::Aborted | RolloutPhase::RolledBack | RolloutPhase::Degraded) => {
            return Outcome {
                status: next,
                notes,
                requeue_after: None,
                revert_to: None,
                action_result: Some(Err((
                    "ActionRefused",
                    format!(
                        "`{}` does nothing while the Rollout is {phase:?}: all traffic is on stable revision {stable}; `canary-gate retry` starts revision {} again, `undo` reverts the Deployment",
                        a.command(),
                        observed.revision
                    ),
                ))),
            };
        }
        (_, RolloutPhase::Aborted | RolloutPhase::RolledBack | RolloutPhase::Degraded) => {
            return Outcome {
                status: next,
                notes,
                requeue_after: None,
                revert_to: None,
                action_result: None,
            };
        }
        (Some(Action::Retry), _) => {
            // Not meaningful while the rollout runs: say so and carry on.
            action_result = Some(Err((
                "ActionRefused",
                format!(
                    "`retry` restarts only an aborted or rolled-back revision; revision {} is {phase:?}",
                    observed.revision
                ),
            )));
            action = None;
        }
        (Some(Action::Abort), _) => {
            next.canary_weight = Some(0);
            next.waiting_since = None;
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
                action_result: Some(Ok("abort: all traffic is on stable".into())),
            };
        }
        (_, RolloutPhase::Promoting) => {
            let mut outcome = promoting(rollout, status, next, notes, observed, &stable);
            outcome.action_result = action.map(|a| {
                Err((
                    "ActionRefused",
                    format!(
                        "`{}` does nothing: revision {} is being promoted already",
                        a.command(),
                        observed.revision
                    ),
                ))
            });
            return outcome;
        }
        _ => {}
    }

    let state = plan_state(status, now);
    let ctx = plan.context(&state, now);
    let in_force = status.canary_weight.unwrap_or(0);
    let pending = status.step_started_at.is_none();
    let mut outage_reason: Option<String> = None;
    let resumed = match action {
        Some(Action::Promote) => {
            notes.push(note(
                "ResumedByHuman",
                format!("step {} ended by a human", state.step),
                false,
            ));
            action_result = Some(Ok(format!("promote: step {} ended", state.step)));
            Some(plan.resume(&state, now, false))
        }
        Some(Action::PromoteFull) => {
            notes.push(note(
                "PromotedByHuman",
                "remaining steps skipped by a human".to_string(),
                false,
            ));
            action_result = Some(Ok("promote --full: remaining steps skipped".into()));
            Some(plan.resume(&state, now, true))
        }
        _ => None,
    };
    if resumed.is_some() {
        // A human ended the step: any wait for pods counts anew from here.
        next.waiting_since = None;
    }
    let new_state = match resumed {
        Some(s) => s,
        None => {
            let gated = rollout.analysis(state.step).is_some();
            let (decision, paused) = match (judgement, gated) {
                (Some(j), _) => (j.decision, j.paused),
                // An ungated step advances when its pause is over; the last one promotes.
                (None, false) if ctx.step_complete && ctx.last_step => (Decision::Promote, false),
                (None, false) => (Decision::Continue, false),
                // A gated step without an answer holds: never promote blind. A metrics outage
                // longer than the template's hold budget gets its policy.
                (None, true) => match &observed.metrics_outage {
                    Some(outage) => {
                        let waiting = Waiting {
                            judge_paused: status.phase == Some(RolloutPhase::Paused)
                                && !plan.waits_for_human(&state),
                            human_step: plan.waits_for_human(&state),
                        };
                        let (decision, paused, reason) =
                            during_outage(status, &mut next, &mut notes, outage, waiting, now);
                        outage_reason = Some(reason);
                        (decision, paused)
                    }
                    None => (Decision::Hold, false),
                },
            };
            if let Some(j) = judgement {
                next.metrics_unavailable_since = None;
                record(&mut next, j, now);
            }
            // Pods before traffic: a step whose weight waits for the canary's pods, or a
            // canary that lost them, holds where it is (only a rollback goes ahead).
            if decision != Decision::Rollback {
                let goal = if pending {
                    plan.weight(&state).round() as i32
                } else {
                    in_force
                };
                if !ready(rollout, &observed.pods, goal) {
                    let human = status.phase == Some(RolloutPhase::Paused)
                        || (!pending && plan.waits_for_human(&state));
                    let mut outcome = waiting(
                        rollout,
                        status,
                        next,
                        notes,
                        observed,
                        Wait {
                            side: Side::Canary,
                            what: shortfall(rollout, &observed.pods, goal),
                            human,
                            phase: if human {
                                RolloutPhase::Paused
                            } else if pending {
                                RolloutPhase::Progressing
                            } else {
                                RolloutPhase::Holding
                            },
                            message: if pending {
                                format!("step {} ({goal}%) waits for the canary's pods", state.step)
                            } else {
                                format!("holding at {in_force}%: the canary lost pods")
                            },
                        },
                    );
                    outcome.action_result = action_result;
                    return outcome;
                }
                // The pods are there (again): no wait counts against the deadline.
                next.waiting_since = None;
                if pending {
                    // The weight comes into force now: the step's clock starts.
                    let mut outcome = in_force_now(rollout, next, notes, observed, interval, true);
                    outcome.action_result = action_result;
                    return outcome;
                }
            }
            plan.apply(&state, &ctx, decision, paused, now)
        }
    };

    let advanced = new_state.step != state.step && !new_state.phase.is_terminal();
    let new_weight = plan.weight(&new_state).round() as i32;
    let goal_ready = ready(rollout, &observed.pods, new_weight);
    next.current_step_index = Some(new_state.step as i32);
    let mut waits_for: Option<String> = None;
    if advanced && !goal_ready {
        // The next step's weight waits for its pods; the weight in force stays.
        next.step_started_at = None;
        next.canary_weight = Some(in_force);
        next.waiting_since = Some(rfc3339(now));
        let what = shortfall(rollout, &observed.pods, new_weight);
        notes.push(note(
            "WaitingForPods",
            format!("step {} ({new_weight}%) waits for {what}", new_state.step),
            false,
        ));
        waits_for = Some(what);
    } else {
        next.step_started_at = Some(rfc3339(new_state.step_started));
        if advanced {
            next.step_history.push(StepStart {
                step: new_state.step as i32,
                started_at: rfc3339(new_state.step_started),
            });
        }
        next.canary_weight = Some(new_weight);
        if advanced && new_state.phase == Phase::Progressing {
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
    }
    let reason =
        outage_reason.unwrap_or_else(|| judgement.map_or_else(String::new, |j| j.reason.clone()));
    match new_state.phase {
        Phase::RolledBack => {
            next.waiting_since = None;
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
            if goal_ready {
                next.canary_weight = Some(100);
            } else {
                // All traffic moves to the canary once it has the pods for it.
                next.canary_weight = Some(in_force);
                next.waiting_since = Some(rfc3339(now));
            }
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
        Phase::Progressing if waits_for.is_some() => {
            set_phase(
                &mut next,
                RolloutPhase::Progressing,
                format!(
                    "step {} ({new_weight}%) waits for {}",
                    new_state.step,
                    waits_for.clone().unwrap_or_default()
                ),
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
        _ if waits_for.is_some() => Some(POD_POLL.min(rollout.progress_deadline)),
        _ => plan
            .next_wake(&new_state, now, interval)
            .map(|t| (t - now).max(0.0)),
    };
    Outcome {
        status: next,
        notes,
        requeue_after,
        revert_to: None,
        action_result,
    }
}

fn start(
    rollout: &ValidatedRollout,
    mut next: RolloutStatus,
    notes: Vec<Note>,
    observed: &Observed,
    interval: f64,
) -> Outcome {
    let now = observed.now;
    let plan = &rollout.plan;
    let state = plan.start(now);
    next.canary_revision = Some(observed.revision.clone());
    next.started_at = Some(rfc3339(now));
    next.current_step_index = Some(0);
    next.decisions.clear();
    next.last_decision = None;
    next.step_history.clear();
    next.waiting_since = None;
    next.metrics_unavailable_since = None;
    let weight = plan.weight(&state).round() as i32;
    if !ready(rollout, &observed.pods, weight) {
        // Step 0's weight reaches the routers once the canary has its pods.
        next.canary_weight = Some(0);
        next.step_started_at = None;
        next.waiting_since = Some(rfc3339(now));
        let what = shortfall(rollout, &observed.pods, weight);
        let mut notes = notes;
        notes.push(note(
            "WaitingForPods",
            format!("step 0 ({weight}%) waits for {what}"),
            false,
        ));
        set_phase(
            &mut next,
            RolloutPhase::Progressing,
            format!("step 0 ({weight}%) waits for {what}"),
        );
        set_condition(
            &mut next.conditions,
            "CanaryAvailable",
            false,
            "WaitingForPods",
            &what,
            now,
        );
        return Outcome {
            status: next,
            notes,
            requeue_after: Some(POD_POLL.min(rollout.progress_deadline)),
            revert_to: None,
            action_result: None,
        };
    }
    // Step 0's pods are there already: its weight is in force at once (RolloutStarted says so).
    in_force_now(rollout, next, notes, observed, interval, false)
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

/// Whether a rollout waits for a human: paused by the judge's hold budget, or at a step whose
/// pause has no end.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    judge_paused: bool,
    human_step: bool,
}

/// A gated step whose metrics cannot be read: hold (recording since when, one Event per
/// outage); once the outage outlasts the template's hold budget, its policy acts — unless a
/// human is the one to end the step, then it only holds. Returns the decision, the judge-pause
/// flag and the reason.
fn during_outage(
    status: &RolloutStatus,
    next: &mut RolloutStatus,
    notes: &mut Vec<Note>,
    outage: &MetricsOutage,
    waiting: Waiting,
    now: f64,
) -> (Decision, bool, String) {
    let since = status
        .metrics_unavailable_since
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(now);
    next.metrics_unavailable_since = Some(rfc3339(since));
    if status.metrics_unavailable_since.is_none() {
        notes.push(note(
            outage.reason,
            format!("holding: {}", outage.message),
            true,
        ));
    }
    let spent = now - since >= outage.budget && !(waiting.judge_paused || waiting.human_step);
    let reason = if spent {
        format!(
            "metrics unavailable for {:.0}s (hold budget {:.0}s): {}",
            now - since,
            outage.budget,
            outage.message
        )
    } else {
        format!("metrics unavailable: {}", outage.message)
    };
    let (decision, paused) = match (spent, outage.rollback) {
        (true, true) => (Decision::Rollback, false),
        (true, false) => (Decision::Hold, true),
        (false, _) => (Decision::Hold, waiting.judge_paused),
    };
    (decision, paused, reason)
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

fn note(reason: &'static str, message: String, warning: bool) -> Note {
    Note {
        reason,
        message,
        warning,
    }
}

mod conditions;
mod pods;
mod record;
#[cfg(test)]
mod tests;
