//! Pods before traffic, as the step machine sees them: a rollout that waits for the canary's
//! (or, during a promotion, the stable workload's) pods holds where it is, and its progress
//! deadline rolls back or pauses; a weight comes into force once its pods are available.

use super::*;

/// How often a rollout that waits for pods looks again (the workloads' watch usually wakes it
/// sooner).
pub(super) const POD_POLL: f64 = 15.0;

/// Which workload a rollout waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The canary, for a step's weight (or all traffic before a promotion).
    Canary,
    /// The stable workload, rolling out the promoted revision.
    Stable,
}

/// A wait for pods.
pub(super) struct Wait {
    pub(super) side: Side,
    /// What is short, e.g. `web-canary: 0/3 available`.
    pub(super) what: String,
    /// A human ends this wait (a manual pause, a paused rollout): the deadline does not act.
    pub(super) human: bool,
    /// The phase while waiting.
    pub(super) phase: RolloutPhase,
    /// The status message's beginning.
    pub(super) message: String,
}

/// The condition that reports a side's pods.
fn availability_condition(side: Side) -> &'static str {
    match side {
        Side::Canary => "CanaryAvailable",
        Side::Stable => "StableAvailable",
    }
}

/// The rollout waits for pods: it holds where it is, records since when, and once
/// `progressDeadline` has passed (unless a human is the one to end the wait) rolls back or
/// pauses, naming what is short and the pods' own reasons.
pub(super) fn waiting(
    rollout: &ValidatedRollout,
    status: &RolloutStatus,
    mut next: RolloutStatus,
    mut notes: Vec<Note>,
    observed: &Observed,
    wait: Wait,
) -> Outcome {
    let now = observed.now;
    let since = status
        .waiting_since
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(now);
    let problems = match wait.side {
        Side::Canary => &observed.pods.canary_problems,
        Side::Stable => &observed.pods.stable_problems,
    };
    let detail = if problems.is_empty() {
        wait.what.clone()
    } else {
        format!("{} ({})", wait.what, problems.join("; "))
    };
    let condition = availability_condition(wait.side);
    let deadline = rollout.progress_deadline;
    if now - since >= deadline && !wait.human {
        let message = format!(
            "progress deadline {} passed: {detail}",
            humantime::format_duration(std::time::Duration::from_secs(deadline as u64))
        );
        if rollout.deadline_rollback {
            next.canary_weight = Some(0);
            next.waiting_since = None;
            set_phase(
                &mut next,
                RolloutPhase::RolledBack,
                format!("rolled back: {message}"),
            );
            notes.push(note(
                DEADLINE_REASON,
                format!("revision {} rolled back: {message}", observed.revision),
                true,
            ));
        } else {
            next.waiting_since = Some(rfc3339(since));
            set_phase(
                &mut next,
                RolloutPhase::Paused,
                format!(
                    "paused: {message}; `canary-gate promote` waits again, `abort` or `undo` ends the rollout"
                ),
            );
            notes.push(note(
                DEADLINE_REASON,
                format!("revision {} paused: {message}", observed.revision),
                true,
            ));
        }
        set_condition(
            &mut next.conditions,
            "Progressing",
            false,
            DEADLINE_REASON,
            &message,
            now,
        );
        set_condition(
            &mut next.conditions,
            condition,
            false,
            DEADLINE_REASON,
            &detail,
            now,
        );
        return Outcome {
            status: next,
            notes,
            requeue_after: None,
            revert_to: None,
            action_result: None,
        };
    }
    next.waiting_since = Some(rfc3339(since));
    if status.waiting_since.is_none() {
        notes.push(note(
            "WaitingForPods",
            format!("{}: {detail}", wait.message),
            false,
        ));
    }
    let keep_message = wait.human && status.phase == Some(RolloutPhase::Paused);
    if !keep_message {
        let left = (deadline - (now - since)).max(0.0);
        let message = if wait.human {
            format!("{}: {detail}; waiting for a human", wait.message)
        } else {
            format!(
                "{}: {detail}; progress deadline in {}",
                wait.message,
                humantime::format_duration(std::time::Duration::from_secs(left.ceil() as u64))
            )
        };
        set_phase(&mut next, wait.phase, message);
    }
    set_condition(
        &mut next.conditions,
        condition,
        false,
        "WaitingForPods",
        &detail,
        now,
    );
    let left = deadline - (now - since);
    Outcome {
        status: next,
        notes,
        requeue_after: Some({
            let poll = if wait.phase == RolloutPhase::Promoting {
                PROMOTION_POLL
            } else {
                POD_POLL
            };
            if wait.human {
                poll
            } else {
                poll.min(left.max(0.0) + 0.5)
            }
        }),
        revert_to: None,
        action_result: None,
    }
}

/// Which workload's pods to read for their reasons: the progress deadline of a rollout that
/// waits for pods has passed (and a human does not end the wait).
pub fn deadline_due(rollout: &ValidatedRollout, status: &RolloutStatus, now: f64) -> Option<Side> {
    let since = status.waiting_since.as_deref().and_then(parse_rfc3339)?;
    if now - since < rollout.progress_deadline
        || !canary_live(status.phase)
        || status.phase == Some(RolloutPhase::Paused)
    {
        return None;
    }
    Some(
        if status.phase == Some(RolloutPhase::Promoting) && status.canary_weight == Some(100) {
            Side::Stable
        } else {
            Side::Canary
        },
    )
}

/// The reason of the condition and Event when the progress deadline passes.
pub const DEADLINE_REASON: &str = "ProgressDeadlineExceeded";

/// A step's weight comes into force: the canary has its pods. The step's pause and analysis
/// clock start now; `announce`: with a StepAdvanced Event.
pub(super) fn in_force_now(
    rollout: &ValidatedRollout,
    mut next: RolloutStatus,
    mut notes: Vec<Note>,
    observed: &Observed,
    interval: f64,
    announce: bool,
) -> Outcome {
    let now = observed.now;
    let plan = &rollout.plan;
    let step = next.current_step_index.unwrap_or(0).max(0) as usize;
    let state = PlanState {
        step,
        step_started: now,
        phase: Phase::Progressing,
    };
    let weight = plan.weight(&state).round() as i32;
    let had = next.canary_weight.unwrap_or(0);
    next.canary_weight = Some(weight);
    next.step_started_at = Some(rfc3339(now));
    next.waiting_since = None;
    next.step_history.push(StepStart {
        step: step as i32,
        started_at: rfc3339(now),
    });
    if announce {
        notes.push(note(
            "StepAdvanced",
            format!(
                "step {step} at weight {weight}% (was {had}%): {}",
                shortfall(rollout, &observed.pods, weight)
            ),
            false,
        ));
    }
    let phase = if plan.waits_for_human(&state) {
        RolloutPhase::Paused
    } else {
        RolloutPhase::Progressing
    };
    set_phase(
        &mut next,
        phase,
        if phase == RolloutPhase::Paused {
            format!("step {step} waits for `canary-gate promote`")
        } else {
            format!("step {step} at {weight}%")
        },
    );
    Outcome {
        status: next,
        notes,
        requeue_after: plan.next_wake(&state, now, interval).map(|t| t - now),
        revert_to: None,
        action_result: None,
    }
}

/// A promotion: all traffic moves to the canary once it has the pods for it; the stable
/// workload then takes the new revision, and traffic goes back to it once it runs it on every
/// pod. Both waits count against the progress deadline.
pub(super) fn promoting(
    rollout: &ValidatedRollout,
    status: &RolloutStatus,
    mut next: RolloutStatus,
    mut notes: Vec<Note>,
    observed: &Observed,
    stable: &str,
) -> Outcome {
    let now = observed.now;
    if status.canary_weight != Some(100) {
        if !ready(rollout, &observed.pods, 100) {
            return waiting(
                rollout,
                status,
                next,
                notes,
                observed,
                Wait {
                    side: Side::Canary,
                    what: shortfall(rollout, &observed.pods, 100),
                    human: false,
                    phase: RolloutPhase::Promoting,
                    message: format!(
                        "promoting revision {}: all traffic waits for the canary's pods",
                        observed.revision
                    ),
                },
            );
        }
        next.canary_weight = Some(100);
        next.waiting_since = None;
        set_phase(
            &mut next,
            RolloutPhase::Promoting,
            format!(
                "promoting revision {}: all traffic on the canary while the stable workload takes it",
                observed.revision
            ),
        );
        return Outcome {
            status: next,
            notes,
            requeue_after: Some(PROMOTION_POLL),
            revert_to: None,
            action_result: None,
        };
    }
    if !observed.stable_ready {
        // Blue-green keeps the old pods as they are for the scale-down delay (an abort switches
        // straight back); the stable workload takes the new revision only after it.
        let switch_back = rollout.kind == StrategyKind::BlueGreen
            && status
                .scale_down_at
                .as_deref()
                .and_then(parse_rfc3339)
                .is_some_and(|at| at > now);
        if switch_back {
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
                action_result: None,
            };
        }
        let name =
            crate::traffic::workload::name(&rollout.target, crate::traffic::workload::Role::Stable);
        return waiting(
            rollout,
            status,
            next,
            notes,
            observed,
            Wait {
                side: Side::Stable,
                what: format!(
                    "{name}: {}/{} available with revision {}",
                    observed.pods.stable, observed.pods.total, observed.revision
                ),
                human: false,
                phase: RolloutPhase::Promoting,
                message: format!(
                    "promoting revision {}: waiting for the stable workload to run it",
                    observed.revision
                ),
            },
        );
    }
    // The stable workload runs the new revision: traffic goes back to it.
    next.previous_stable_revision = Some(stable.to_string());
    next.stable_revision = Some(observed.revision.clone());
    next.canary_revision = None;
    next.current_step_index = None;
    next.step_started_at = None;
    next.waiting_since = None;
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
    Outcome {
        status: next,
        notes,
        requeue_after: None,
        revert_to: None,
        action_result: None,
    }
}

/// The Healthy phase's message: `revision R <what>`, or what the stable workload still lacks.
pub(super) fn healthy_message(
    rollout: &ValidatedRollout,
    observed: &Observed,
    revision: &str,
    what: &str,
) -> String {
    let total = observed.pods.total;
    if observed.pods.stable >= total {
        format!("revision {revision} {what}")
    } else {
        format!(
            "revision {revision} is stable; waiting for {}: {}/{total} available",
            crate::traffic::workload::name(&rollout.target, crate::traffic::workload::Role::Stable),
            observed.pods.stable
        )
    }
}
