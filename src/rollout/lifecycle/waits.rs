//! Pods before traffic, as the lifecycle sees them: a rollout that waits for the canary's (or,
//! during a promotion, the stable workload's) pods holds where it is, and its progress deadline
//! rolls back or pauses; a weight comes into force once its pods are available.

use std::time::Duration;

use super::super::pods::{Role, ready, shortfall, workload_name};
use super::{
    Decided, Inputs, LifecyclePhase, Phase, PlanState, PodWait, Side, Spec, State, StepStart,
    StrategyKind, Transition, stamp,
};

/// How often a rollout that waits for pods looks again (the workloads' watch usually wakes it
/// sooner).
pub(super) const POD_POLL: f64 = 15.0;
/// How often a promotion looks whether the stable workload has rolled out.
pub(super) const PROMOTION_POLL: f64 = 5.0;

/// A wait for pods.
pub(super) struct Wait {
    pub(super) side: Side,
    /// What is short, e.g. `web-canary: 0/3 available`.
    pub(super) what: String,
    /// A human ends this wait (a manual pause, a paused rollout): the deadline does not act.
    pub(super) human: bool,
    /// The phase while waiting.
    pub(super) phase: LifecyclePhase,
    /// The status message's beginning.
    pub(super) message: String,
}

/// The rollout waits for pods: it holds where it is, records since when, and once
/// `progressDeadline` has passed (unless a human is the one to end the wait) rolls back or
/// pauses, naming what is short and the pods' own reasons.
pub(super) fn waiting(
    spec: &Spec,
    old: &State,
    mut next: State,
    mut news: Vec<Transition>,
    input: &Inputs,
    wait: Wait,
) -> Decided {
    let now = input.now;
    let since = old.waiting_since.unwrap_or(now);
    let problems = match wait.side {
        Side::Canary => &input.pods.canary_problems,
        Side::Stable => &input.pods.stable_problems,
    };
    let detail = if problems.is_empty() {
        wait.what.clone()
    } else {
        format!("{} ({})", wait.what, problems.join("; "))
    };
    let deadline = spec.progress_deadline;
    if now - since >= deadline && !wait.human {
        let message = format!(
            "progress deadline {} passed: {detail}",
            humantime::format_duration(Duration::from_secs(deadline as u64))
        );
        if spec.deadline_rollback {
            next.weight = Some(0);
            next.waiting_since = None;
            next.set_phase(
                LifecyclePhase::RolledBack,
                format!("rolled back: {message}"),
            );
        } else {
            next.waiting_since = Some(stamp(since));
            next.set_phase(
                LifecyclePhase::Paused,
                format!(
                    "paused: {message}; `canary-gate promote` waits again, `abort` or `undo` ends the rollout"
                ),
            );
        }
        news.push(Transition::DeadlinePassed {
            revision: input.revision.to_string(),
            rolled_back: spec.deadline_rollback,
            message: message.clone(),
        });
        return Decided {
            wait: Some(PodWait {
                side: wait.side,
                detail,
                deadline: Some(message),
            }),
            ..Decided::new(next, news)
        };
    }
    next.waiting_since = Some(stamp(since));
    if old.waiting_since.is_none() {
        news.push(Transition::WaitingForPods {
            message: format!("{}: {detail}", wait.message),
        });
    }
    let keep_message = wait.human && old.phase == Some(LifecyclePhase::Paused);
    if !keep_message {
        let left = (deadline - (now - since)).max(0.0);
        let message = if wait.human {
            format!("{}: {detail}; waiting for a human", wait.message)
        } else {
            format!(
                "{}: {detail}; progress deadline in {}",
                wait.message,
                humantime::format_duration(Duration::from_secs(left.ceil() as u64))
            )
        };
        next.set_phase(wait.phase, message);
    }
    let left = deadline - (now - since);
    let poll = if wait.phase == LifecyclePhase::Promoting {
        PROMOTION_POLL
    } else {
        POD_POLL
    };
    Decided {
        wake_in: Some(if wait.human {
            poll
        } else {
            poll.min(left.max(0.0) + 0.5)
        }),
        wait: Some(PodWait {
            side: wait.side,
            detail,
            deadline: None,
        }),
        ..Decided::new(next, news)
    }
}

/// Which workload's pods to read for their reasons: the progress deadline of a rollout that
/// waits for pods has passed (and a human does not end the wait).
pub fn deadline_due(spec: &Spec, state: &State, now: f64) -> Option<Side> {
    let since = state.waiting_since?;
    let live = state.phase.is_some_and(LifecyclePhase::canary_live);
    if now - since < spec.progress_deadline || !live || state.phase == Some(LifecyclePhase::Paused)
    {
        return None;
    }
    Some(
        if state.phase == Some(LifecyclePhase::Promoting) && state.weight == Some(100) {
            Side::Stable
        } else {
            Side::Canary
        },
    )
}

/// A step's weight comes into force: the canary has its pods. The step's pause and analysis
/// clock start now; `announce`: say so (a step that waited for its pods).
pub(super) fn in_force_now(
    spec: &Spec,
    mut next: State,
    mut news: Vec<Transition>,
    input: &Inputs,
    announce: bool,
) -> Decided {
    let now = input.now;
    let plan = &spec.plan;
    let step = next.step.unwrap_or(0);
    let state = PlanState {
        step,
        step_started: now,
        phase: Phase::Progressing,
    };
    let weight = plan.weight(&state).round() as i32;
    let had = next.weight.unwrap_or(0);
    next.weight = Some(weight);
    next.step_started_at = Some(stamp(now));
    next.waiting_since = None;
    next.step_history.push(StepStart {
        step,
        at: stamp(now),
    });
    if announce {
        news.push(Transition::StepInForce {
            step,
            weight,
            was: had,
            pods: shortfall(spec, input.pods, weight),
        });
    }
    if plan.waits_for_human(&state) {
        next.set_phase(
            LifecyclePhase::Paused,
            format!("step {step} waits for `canary-gate promote`"),
        );
    } else {
        next.set_phase(
            LifecyclePhase::Progressing,
            format!("step {step} at {weight}%"),
        );
    }
    Decided {
        wake_in: plan.next_wake(&state, now, input.interval).map(|t| t - now),
        ..Decided::new(next, news)
    }
}

/// A promotion: all traffic moves to the canary once it has the pods for it; the stable
/// workload then takes the new revision, and traffic goes back to it once it runs it on every
/// pod. Both waits count against the progress deadline.
pub(super) fn promoting(
    spec: &Spec,
    old: &State,
    mut next: State,
    mut news: Vec<Transition>,
    input: &Inputs,
    stable: &str,
) -> Decided {
    let now = input.now;
    let revision = input.revision;
    if old.weight != Some(100) {
        if !ready(spec, input.pods, 100) {
            let wait = Wait {
                side: Side::Canary,
                what: shortfall(spec, input.pods, 100),
                human: false,
                phase: LifecyclePhase::Promoting,
                message: format!(
                    "promoting revision {revision}: all traffic waits for the canary's pods"
                ),
            };
            return waiting(spec, old, next, news, input, wait);
        }
        next.weight = Some(100);
        next.waiting_since = None;
        next.set_phase(
            LifecyclePhase::Promoting,
            format!(
                "promoting revision {revision}: all traffic on the canary while the stable workload takes it"
            ),
        );
        return Decided {
            wake_in: Some(PROMOTION_POLL),
            ..Decided::new(next, news)
        };
    }
    if !input.stable_ready {
        // Blue-green keeps the old pods as they are for the scale-down delay (an abort switches
        // straight back); the stable workload takes the new revision only after it.
        let switch_back =
            spec.kind == StrategyKind::BlueGreen && old.scale_down_at.is_some_and(|at| at > now);
        let message =
            format!("promoting revision {revision}: waiting for the stable workload to run it");
        if switch_back {
            next.set_phase(LifecyclePhase::Promoting, message);
            return Decided {
                wake_in: Some(PROMOTION_POLL),
                ..Decided::new(next, news)
            };
        }
        let wait = Wait {
            side: Side::Stable,
            what: format!(
                "{}: {}/{} available with revision {revision}",
                workload_name(&spec.target, Role::Stable),
                input.pods.stable,
                input.pods.total
            ),
            human: false,
            phase: LifecyclePhase::Promoting,
            message,
        };
        return waiting(spec, old, next, news, input, wait);
    }
    // The stable workload runs the new revision: traffic goes back to it.
    next.previous_stable_revision = Some(stable.to_string());
    next.stable_revision = Some(revision.to_string());
    next.canary_revision = None;
    next.step = None;
    next.step_started_at = None;
    next.waiting_since = None;
    next.weight = Some(0);
    next.set_phase(
        LifecyclePhase::Healthy,
        format!("revision {revision} promoted and stable"),
    );
    news.push(Transition::Promoted {
        revision: revision.to_string(),
    });
    Decided::new(next, news)
}

/// The Healthy phase's message: `revision R <what>`, or what the stable workload still lacks.
pub(super) fn healthy_message(spec: &Spec, input: &Inputs, revision: &str, what: &str) -> String {
    let total = input.pods.total;
    if input.pods.stable >= total {
        format!("revision {revision} {what}")
    } else {
        format!(
            "revision {revision} is stable; waiting for {}: {}/{total} available",
            workload_name(&spec.target, Role::Stable),
            input.pods.stable
        )
    }
}
