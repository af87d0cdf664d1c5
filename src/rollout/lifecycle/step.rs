//! A running step: a human's `promote` ends it; otherwise the judge's decision — or an ungated
//! step's pause, or a metrics outage and its hold budget — moves it, once the canary has the pods
//! for its weight.

use crate::analysis::Decision;
use crate::rollout::{Action, Phase, PlanState};

use super::hooks::{self, Gate};
use super::waits::{POD_POLL, Wait, in_force_now, waiting};
use super::{
    ActionResult, Decided, Inputs, LifecyclePhase, MetricsOutage, Side, Spec, State, StepStart,
    Transition, stamp,
};
use crate::rollout::pods::{ready, shortfall};

/// The canary runs a step: a human's `promote` ends it; otherwise the judge's decision (or the
/// ungated step's pause, or an outage) moves it — once the canary has its pods.
pub(super) fn run_step(
    spec: &Spec,
    old: &State,
    mut next: State,
    mut news: Vec<Transition>,
    input: &Inputs,
    action: Option<Action>,
    mut action_result: Option<ActionResult>,
) -> Decided {
    let now = input.now;
    let plan = &spec.plan;
    let revision = input.revision;
    let state = old.plan_state(now);
    let mut ctx = plan.context(&state, now);
    let in_force = old.weight.unwrap_or(0);
    let pending = old.step_started_at.is_none();
    let mut outage_reason: Option<String> = None;
    let mut judged = false;
    let resumed = match action {
        Some(Action::Promote) => {
            news.push(Transition::ResumedByHuman { step: state.step });
            action_result = Some(ActionResult::Applied(format!(
                "promote: step {} ended",
                state.step
            )));
            Some(plan.resume(&state, now, false))
        }
        Some(Action::PromoteFull) => {
            news.push(Transition::PromotedByHuman);
            action_result = Some(ActionResult::Applied(
                "promote --full: remaining steps skipped".into(),
            ));
            Some(plan.resume(&state, now, true))
        }
        _ => None,
    };
    if resumed.is_some() {
        // A human ended the step: any wait for pods counts anew from here, and the webhook
        // that held it (the step's, or the promotion's) is skipped.
        next.waiting_since = None;
        hooks::skip_for_human(&mut next, revision, state.step, now);
    }
    // A webhook step is complete once its webhook passed (its weight must be in force first).
    let step_gate = if pending {
        Gate::Open
    } else {
        hooks::step_gate(&spec.hooks, &next, revision, state.step)
    };
    if matches!(step_gate, Gate::Waiting(_)) {
        ctx.step_complete = false;
    }
    // Once the rollout decided to promote and its pre-promotion webhooks began, it stays
    // decided: a human's promote ends that gate, the judge can only roll back.
    let decided_to_promote = hooks::promotion_gate_entered(&spec.hooks, &next, revision);
    let mut hook_reason: Option<String> = None;
    let mut new_state = match resumed {
        Some(_) if decided_to_promote => PlanState {
            phase: Phase::Promoted,
            ..state
        },
        Some(s) => s,
        None => {
            let (mut decision, paused) = match (input.judgement, input.gated) {
                (Some(j), _) => (j.decision, j.paused),
                // An ungated step advances when its pause is over; the last one promotes.
                (None, false) if ctx.step_complete && ctx.last_step => (Decision::Promote, false),
                (None, false) => (Decision::Continue, false),
                // A gated step without an answer holds: never promote blind. A metrics outage
                // longer than the template's hold budget gets its policy.
                (None, true) => match input.metrics_outage {
                    Some(outage) => {
                        let waiting = Waiting {
                            judge_paused: old.phase == Some(LifecyclePhase::Paused)
                                && !plan.waits_for_human(&state),
                            human_step: plan.waits_for_human(&state),
                        };
                        let (decision, paused, reason) =
                            during_outage(old, &mut next, &mut news, outage, waiting, now);
                        outage_reason = Some(reason);
                        (decision, paused)
                    }
                    None => (Decision::Hold, false),
                },
            };
            if input.judgement.is_some() {
                next.metrics_unavailable_since = None;
                judged = true;
            }
            if decision == Decision::Promote && matches!(step_gate, Gate::Waiting(_)) {
                // The last step is not over while its webhook runs.
                decision = Decision::Continue;
            }
            // Pods before traffic: a step whose weight waits for the canary's pods, or a
            // canary that lost them, holds where it is (only a rollback goes ahead).
            if decision != Decision::Rollback {
                let goal = if pending {
                    plan.weight(&state).round() as i32
                } else {
                    in_force
                };
                if !ready(spec, input.pods, goal) {
                    let human = old.phase == Some(LifecyclePhase::Paused)
                        || (!pending && plan.waits_for_human(&state));
                    let wait = Wait {
                        side: Side::Canary,
                        what: shortfall(spec, input.pods, goal),
                        human,
                        phase: if human {
                            LifecyclePhase::Paused
                        } else if pending {
                            LifecyclePhase::Progressing
                        } else {
                            LifecyclePhase::Holding
                        },
                        message: if pending {
                            format!("step {} ({goal}%) waits for the canary's pods", state.step)
                        } else {
                            format!("holding at {in_force}%: the canary lost pods")
                        },
                    };
                    return Decided {
                        action: action_result,
                        judged,
                        ..waiting(spec, old, next, news, input, wait)
                    };
                }
                // The pods are there (again): no wait counts against the deadline.
                next.waiting_since = None;
                if pending {
                    // The weight comes into force now: the step's clock starts.
                    return Decided {
                        action: action_result,
                        judged,
                        ..in_force_now(spec, next, news, input, true)
                    };
                }
            }
            // A failed webhook step rolls back or pauses (the judge's rollback goes first).
            if decision != Decision::Rollback
                && let Gate::Failed { reason, rollback } = &step_gate
            {
                if !rollback {
                    return Decided {
                        action: action_result,
                        judged,
                        ..hook_paused(old, next, news, state.step, reason.clone())
                    };
                }
                decision = Decision::Rollback;
                hook_reason = Some(reason.clone());
            }
            if decision != Decision::Rollback && decided_to_promote {
                PlanState {
                    phase: Phase::Promoted,
                    ..state
                }
            } else {
                plan.apply(&state, &ctx, decision, paused, now)
            }
        }
    };
    // The pre-promotion webhooks gate the promotion, in order.
    let mut gate_wait: Option<String> = None;
    if new_state.phase == Phase::Promoted {
        match hooks::promotion_gate(&spec.hooks, &mut next, revision, now) {
            Gate::Open => {
                if !spec.hooks.pre_promotion.is_empty() {
                    hook_reason = Some("the pre-promotion webhooks passed".into());
                }
            }
            Gate::Waiting(what) => {
                new_state = PlanState {
                    phase: Phase::Progressing,
                    ..state
                };
                gate_wait = Some(what);
            }
            Gate::Failed { reason, rollback } => {
                if !rollback {
                    return Decided {
                        action: action_result,
                        judged,
                        ..hook_paused(old, next, news, state.step, reason)
                    };
                }
                new_state = plan.apply(&state, &ctx, Decision::Rollback, false, now);
                hook_reason = Some(reason);
            }
        }
    }

    let reason = hook_reason.or(outage_reason).unwrap_or_else(|| {
        input
            .judgement
            .map_or_else(String::new, |j| j.reason.clone())
    });
    let mut decided = settle(spec, old, next, news, input, (state, new_state), reason);
    // Say what a webhook holds up.
    let stays = decided.state.step == Some(state.step)
        && matches!(
            decided.state.phase,
            Some(LifecyclePhase::Progressing | LifecyclePhase::Paused)
        );
    let held_by = match (&gate_wait, &step_gate) {
        (Some(what), _) => Some(format!("the promotion waits for {what}")),
        (None, Gate::Waiting(what)) if resumed.is_none() => Some(format!(
            "step {} at {}%: waits for {what}",
            state.step,
            decided.state.weight.unwrap_or(0)
        )),
        _ => None,
    };
    if let (true, Some(message)) = (stays, held_by) {
        decided
            .state
            .set_phase(LifecyclePhase::Progressing, message);
    }
    Decided {
        action: action_result,
        judged,
        ..decided
    }
}

/// A webhook failed and its `onFailure` is `Pause`: the rollout waits for a human at the weight
/// in force (`promote` goes on without the webhook, `abort` ends the rollout).
fn hook_paused(
    old: &State,
    mut next: State,
    mut news: Vec<Transition>,
    step: usize,
    reason: String,
) -> Decided {
    next.set_phase(
        LifecyclePhase::Paused,
        format!(
            "paused: {reason}; `canary-gate promote` goes on without it, `abort` ends the rollout"
        ),
    );
    if old.phase != Some(LifecyclePhase::Paused) {
        news.push(Transition::Paused { step, reason });
    }
    Decided::new(next, news)
}

/// The step machine moved from `state` to `new_state` (`reason`: the judge's, or the outage's):
/// the weight comes into force (or waits for its pods), the phase and its message, the news, and
/// when to look again.
fn settle(
    spec: &Spec,
    old: &State,
    mut next: State,
    mut news: Vec<Transition>,
    input: &Inputs,
    (state, new_state): (PlanState, PlanState),
    reason: String,
) -> Decided {
    let now = input.now;
    let plan = &spec.plan;
    let revision = input.revision.to_string();
    let in_force = old.weight.unwrap_or(0);
    let advanced = new_state.step != state.step && !new_state.phase.is_terminal();
    let new_weight = plan.weight(&new_state).round() as i32;
    let goal_ready = ready(spec, input.pods, new_weight);
    next.step = Some(new_state.step);
    let mut waits_for: Option<String> = None;
    if advanced && !goal_ready {
        // The next step's weight waits for its pods; the weight in force stays.
        next.step_started_at = None;
        next.weight = Some(in_force);
        next.waiting_since = Some(stamp(now));
        let what = shortfall(spec, input.pods, new_weight);
        news.push(Transition::WaitingForPods {
            message: format!("step {} ({new_weight}%) waits for {what}", new_state.step),
        });
        waits_for = Some(what);
    } else {
        next.step_started_at = Some(stamp(new_state.step_started));
        if advanced {
            next.step_history.push(StepStart {
                step: new_state.step,
                at: stamp(new_state.step_started),
            });
        }
        next.weight = Some(new_weight);
        if advanced && new_state.phase == Phase::Progressing {
            news.push(Transition::StepAdvanced {
                from: state.step,
                to: new_state.step,
                weight: plan.weight(&new_state),
            });
        }
    }
    match new_state.phase {
        Phase::RolledBack => {
            next.waiting_since = None;
            next.set_phase(LifecyclePhase::RolledBack, format!("rolled back: {reason}"));
            news.push(Transition::RolledBack { revision, reason });
        }
        Phase::Promoted => {
            if goal_ready {
                next.weight = Some(100);
            } else {
                // All traffic moves to the canary once it has the pods for it.
                next.weight = Some(in_force);
                next.waiting_since = Some(stamp(now));
            }
            next.set_phase(
                LifecyclePhase::Promoting,
                format!("promoting revision {revision}"),
            );
            news.push(Transition::Promoting { revision, reason });
        }
        Phase::Paused => {
            next.set_phase(
                LifecyclePhase::Paused,
                format!("hold budget spent; waiting for a human: {reason}"),
            );
            if old.phase != Some(LifecyclePhase::Paused) {
                news.push(Transition::Paused {
                    step: new_state.step,
                    reason,
                });
            }
        }
        Phase::Holding => {
            next.set_phase(
                LifecyclePhase::Holding,
                format!("holding at {}%: {reason}", plan.weight(&new_state)),
            );
            if old.phase != Some(LifecyclePhase::Holding) {
                news.push(Transition::Holding {
                    step: new_state.step,
                    reason,
                });
            }
        }
        Phase::Progressing => match &waits_for {
            Some(what) => next.set_phase(
                LifecyclePhase::Progressing,
                format!("step {} ({new_weight}%) waits for {what}", new_state.step),
            ),
            None if plan.waits_for_human(&new_state) => next.set_phase(
                LifecyclePhase::Paused,
                format!("step {} waits for `canary-gate promote`", new_state.step),
            ),
            None => next.set_phase(
                LifecyclePhase::Progressing,
                format!("step {} at {}%", new_state.step, plan.weight(&new_state)),
            ),
        },
    }
    let wake_in = match new_state.phase {
        // Promoting completes on the next reconcile, once traffic has moved.
        Phase::Promoted => Some(0.0),
        _ if waits_for.is_some() => Some(POD_POLL.min(spec.progress_deadline)),
        _ => plan
            .next_wake(&new_state, now, input.interval)
            .map(|t| (t - now).max(0.0)),
    };
    Decided {
        wake_in,
        ..Decided::new(next, news)
    }
}

/// Whether a rollout waits for a human: paused by the judge's hold budget, or at a step whose
/// pause has no end.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    judge_paused: bool,
    human_step: bool,
}

/// A gated step whose metrics cannot be read: hold (recording since when, said once per
/// outage); once the outage outlasts the template's hold budget, its policy acts — unless a
/// human is the one to end the step, then it only holds. Returns the decision, the judge-pause
/// flag and the reason.
fn during_outage(
    old: &State,
    next: &mut State,
    news: &mut Vec<Transition>,
    outage: &MetricsOutage,
    waiting: Waiting,
    now: f64,
) -> (Decision, bool, String) {
    let since = old.metrics_unavailable_since.unwrap_or(now);
    next.metrics_unavailable_since = Some(stamp(since));
    if old.metrics_unavailable_since.is_none() {
        news.push(Transition::MetricsOutage {
            kind: outage.kind,
            message: outage.message.clone(),
        });
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
