//! The Rollout's lifecycle (pure): where a rollout of a Deployment's revisions stands, and what
//! follows from what was seen — the target's revision, a human's action, the pods each version
//! has, the metrics source's health and the judge's decision.
//!
//! ```text
//! from             on                                                to
//! (none)           first sight                                       Healthy: adopted as stable
//! Healthy          a new revision on the target                      Progressing at step 0
//! Progressing      the step is over and the judge continues          Progressing, next step
//! Progressing      the step is over and the judge holds              Holding
//! Holding          the hold budget is spent (pause policy)           Paused until `promote`
//! Progressing      a `pause: {}` step                                Paused until `promote`
//! a live phase     the judge, a progress deadline or an outage       RolledBack until `retry`
//! a live phase     `abort`                                           Aborted until `retry`
//! Progressing      a webhook step's webhook has not passed yet       Progressing: the step holds
//! a live phase     a webhook fails for good (its `onFailure`)        RolledBack, or Paused until `promote`
//! the last step    the judge promotes, or `promote --full`           Promoting, then Healthy —
//!                                                                    after the prePromotion webhooks
//! Promoting        the stable workload runs the new revision         Healthy; postPromotion webhooks run
//! a live phase     the target back on the stable revision            Healthy: canary dropped
//! ```
//!
//! - **Adoption**: the first revision seen becomes stable.
//! - **Start / restart**: a new revision starts at step 0 against the stable one (a newer one
//!   replaces a canary that is still rolling out); the target back on the stable revision cancels.
//! - **Human actions** ([`Action`]): `promote` ends the step (or a hold, or a pause), `promote
//!   --full` skips the remaining steps, `abort` sends all traffic to stable until `retry` starts
//!   again, `undo` reverts the Deployment to the stable (after a promotion: the previous stable)
//!   revision. An action the state makes meaningless is refused with the reason.
//! - **The judge** gates each gated step: continue advances once the step's pause is over, hold
//!   stays, a hold past the budget under the pause policy waits for a human, rollback rolls back.
//!   A gated step without an answer holds: missing evidence never promotes. A metrics outage
//!   holds, and past the template's hold budget its policy acts — unless a human ends the step.
//! - **Webhooks** ([`hooks`]): a `webhook` step is complete once its webhook passed; the
//!   pre-promotion webhooks gate the promotion; a failed one rolls back or pauses (its
//!   `onFailure`); post-promotion webhooks run after it and only report.
//! - **Pods before traffic**: a step's weight comes into force only once the canary has the
//!   pods for it (the step's clock starts then); a promotion moves all traffic to the canary
//!   once it has every pod, then waits for the stable workload to run the new revision. Every
//!   such wait counts against the progress deadline, which rolls back or pauses.
//!
//! Everything needed to resume lives in [`State`] (the Rollout's status), so a restarted
//! controller continues the same step with the same elapsed time. Times are unix seconds, and the
//! times [`State`] keeps are whole seconds, as the status stores them.

use super::pods::{ready, shortfall};
use super::{Action, Phase, PlanState};

mod decided;
pub mod hooks;
mod inputs;
mod state;
mod step;
mod waits;

pub use decided::{ActionResult, Decided, PodWait, Side, Transition};
pub use hooks::{
    HookConsequence, HookEvent, HookKey, HookKind, HookOutcome, HookPhase, HookPlan, HookRun,
    HookSpec, OnFailure,
};
pub use inputs::{Inputs, MetricsOutage, OutageKind};
pub use state::{
    DEFAULT_PROGRESS_DEADLINE, DEFAULT_SCALE_DOWN_DELAY, LifecyclePhase, Spec, State, StepStart,
    StrategyKind, step_contexts,
};
use step::run_step;
pub use waits::deadline_due;
use waits::{POD_POLL, healthy_message, in_force_now, promoting};

/// A time as the state keeps it: whole unix seconds (not before 1970), as the status stores it.
fn stamp(t: f64) -> f64 {
    t.max(0.0).floor()
}

/// Decides what follows from `state` given what was seen.
pub fn decide(spec: &Spec, state: &State, input: &Inputs) -> Decided {
    // The webhooks' answers first: they are what the rest decides on.
    let (state, mut news) = hooks::record(&spec.hooks, state, input.hooks, input.now);
    let mut decided = decide_phase(spec, &state, input);
    news.append(&mut decided.transitions);
    decided.transitions = news;
    hooks::after(&spec.hooks, &mut decided, input.now);
    schedule_scale_down(spec, &state, &mut decided, input.now);
    decided
}

/// When a canary stops taking traffic, its pods go after the scale-down delay (in-flight requests
/// and slow mesh updates still find them); a live canary has none pending. A blue-green switch
/// keeps the old pods for the delay instead. Wakes up for it.
fn schedule_scale_down(spec: &Spec, old: &State, decided: &mut Decided, now: f64) {
    let live = |s: &State| s.phase.is_some_and(LifecyclePhase::canary_live);
    let next = &mut decided.state;
    let promoting = next.phase == Some(LifecyclePhase::Promoting);
    if promoting && spec.kind == StrategyKind::BlueGreen {
        // Blue-green: the old pods stay as they are for the delay after the switch, so an abort
        // switches the active Service straight back to them.
        if old.phase != Some(LifecyclePhase::Promoting) {
            next.scale_down_at = Some(stamp(now + spec.scale_down_delay));
        }
    } else if live(next) {
        next.scale_down_at = None;
    } else if live(old) && old.canary_revision.is_some() {
        next.scale_down_at = Some(stamp(now + spec.scale_down_delay));
    }
    if let Some(at) = next.scale_down_at
        && at > now - 1.0
    {
        let wait = (at - now).max(0.0) + 0.5;
        decided.wake_in = Some(decided.wake_in.map_or(wait, |r| r.min(wait)));
    }
}

fn decide_phase(spec: &Spec, old: &State, input: &Inputs) -> Decided {
    let Some(stable) = old.stable_revision.clone() else {
        return adopt(spec, old, input);
    };
    if input.revision == stable {
        return on_stable(spec, old, input, &stable);
    }
    if old.canary_revision.as_deref() != Some(input.revision) {
        return new_revision(spec, old, input, &stable);
    }
    on_canary(spec, old, input, &stable)
}

/// First sight: the running revision becomes stable.
fn adopt(spec: &Spec, old: &State, input: &Inputs) -> Decided {
    let revision = input.revision.to_string();
    let mut next = old.clone();
    next.stable_revision = Some(revision.clone());
    next.set_phase(
        LifecyclePhase::Healthy,
        healthy_message(spec, input, &revision, "adopted as stable"),
    );
    next.weight = Some(0);
    Decided {
        action: input.action.map(|a| {
            ActionResult::Refused(format!(
                "`{}` does nothing before a stable revision is adopted",
                a.command()
            ))
        }),
        wake_in: stable_short(input),
        ..Decided::new(next, vec![Transition::Adopted { revision }])
    }
}

/// While the stable workload lacks pods, look again every [`POD_POLL`] seconds: the pass that
/// hands the target's pods over waits for them, and a change to the workload that reaches the
/// controller before its cache shows it must not leave the hand-over waiting for the next one.
fn stable_short(input: &Inputs) -> Option<f64> {
    (input.pods.stable < input.pods.total).then_some(POD_POLL)
}

/// The target runs the stable revision: nothing rolls out (a canary is dropped), and `undo`
/// goes back to the previous stable revision, when one is known.
fn on_stable(spec: &Spec, old: &State, input: &Inputs, stable: &str) -> Decided {
    let mut next = old.clone();
    let mut news = Vec::new();
    if input.action == Some(Action::Undo) {
        return match &old.previous_stable_revision {
            Some(previous) => {
                news.push(Transition::UndoRequested {
                    previous: previous.clone(),
                });
                Decided {
                    revert_to: Some(previous.clone()),
                    action: Some(ActionResult::Applied(format!(
                        "undo: the Deployment goes back to revision {previous}"
                    ))),
                    ..Decided::new(next, news)
                }
            }
            None => Decided {
                action: Some(ActionResult::UndoImpossible(
                    "no previous stable revision is known; revert the Deployment (e.g. in Git)"
                        .into(),
                )),
                ..Decided::new(next, news)
            },
        };
    }
    if let Some(canary) = &old.canary_revision
        && old.phase != Some(LifecyclePhase::Healthy)
    {
        news.push(Transition::Cancelled {
            stable: stable.to_string(),
            canary: canary.clone(),
        });
    }
    next.canary_revision = None;
    next.step = None;
    next.step_started_at = None;
    next.waiting_since = None;
    next.weight = Some(0);
    next.set_phase(
        LifecyclePhase::Healthy,
        healthy_message(spec, input, stable, "runs with all traffic"),
    );
    Decided {
        action: input.action.map(|a| {
            ActionResult::Refused(format!(
                "`{}` does nothing: revision {stable} runs with all traffic and nothing is rolling out",
                a.command()
            ))
        }),
        wake_in: stable_short(input),
        ..Decided::new(next, news)
    }
}

/// A new revision: start (or restart) from the first step against the current stable. An action
/// that came with it was meant for the one before.
fn new_revision(spec: &Spec, old: &State, input: &Inputs, stable: &str) -> Decided {
    let revision = input.revision.to_string();
    let news = vec![match &old.canary_revision {
        Some(replaced) => Transition::Restarted {
            revision: revision.clone(),
            replaced: replaced.clone(),
        },
        None => Transition::Started {
            revision: revision.clone(),
            stable: stable.to_string(),
        },
    }];
    Decided {
        action: input.action.map(|a| {
            ActionResult::Refused(format!(
                "`{}` came with a new revision {revision}, which starts from step 0; ask again if it still applies",
                a.command(),
            ))
        }),
        ..start(spec, old.clone(), news, input)
    }
}

/// The canary revision is the target's: a human's action first (retry, undo, abort; refused
/// when the state makes it meaningless), then a promotion under way, else the step runs.
fn on_canary(spec: &Spec, old: &State, input: &Inputs, stable: &str) -> Decided {
    use LifecyclePhase::{Aborted, Degraded, Promoting, RolledBack};
    let revision = input.revision.to_string();
    let mut next = old.clone();
    let mut news = Vec::new();
    let phase = old.phase.unwrap_or(LifecyclePhase::Progressing);
    match (input.action, phase) {
        (Some(Action::Retry), Aborted | RolledBack) => {
            news.push(Transition::Retried {
                revision: revision.clone(),
            });
            Decided {
                action: Some(ActionResult::Applied(format!(
                    "retry: revision {revision} starts again from step 0"
                ))),
                ..start(spec, next, news, input)
            }
        }
        (Some(Action::Undo), phase) if phase != Degraded => {
            // A live rollout stops first (all traffic on stable); an aborted or rolled-back one
            // already has it there. Either way the Deployment goes back to the stable template.
            if !matches!(phase, Aborted | RolledBack) {
                next.weight = Some(0);
                next.waiting_since = None;
                next.set_phase(
                    Aborted,
                    format!(
                        "undone by a human: all traffic on stable, the Deployment goes back to revision {stable}"
                    ),
                );
            }
            news.push(Transition::Undone {
                revision,
                stable: stable.to_string(),
            });
            Decided {
                revert_to: Some(stable.to_string()),
                action: Some(ActionResult::Applied(format!(
                    "undo: the Deployment goes back to stable revision {stable}"
                ))),
                ..Decided::new(next, news)
            }
        }
        (Some(a), Aborted | RolledBack | Degraded) => Decided {
            action: Some(ActionResult::Refused(format!(
                "`{}` does nothing while the Rollout is {phase:?}: all traffic is on stable revision {stable}; `canary-gate retry` starts revision {revision} again, `undo` reverts the Deployment",
                a.command(),
            ))),
            ..Decided::new(next, news)
        },
        (None, Aborted | RolledBack | Degraded) => Decided::new(next, news),
        (Some(Action::Retry), _) => {
            // Not meaningful while the rollout runs: say so and carry on.
            let refused = ActionResult::Refused(format!(
                "`retry` restarts only an aborted or rolled-back revision; revision {revision} is {phase:?}"
            ));
            run_step(spec, old, next, news, input, None, Some(refused))
        }
        (Some(Action::Abort), _) => {
            next.weight = Some(0);
            next.waiting_since = None;
            next.set_phase(
                Aborted,
                "aborted by a human; all traffic on stable until retry".to_string(),
            );
            news.push(Transition::Aborted { revision });
            Decided {
                action: Some(ActionResult::Applied(
                    "abort: all traffic is on stable".into(),
                )),
                ..Decided::new(next, news)
            }
        }
        (action, Promoting) => Decided {
            action: action.map(|a| {
                ActionResult::Refused(format!(
                    "`{}` does nothing: revision {revision} is being promoted already",
                    a.command(),
                ))
            }),
            ..promoting(spec, old, next, news, input, stable)
        },
        (action, _) => run_step(spec, old, next, news, input, action, None),
    }
}

/// A new rollout of the target's revision (or a retried one) from step 0; its weight comes into
/// force at once when the canary has the pods for it.
fn start(spec: &Spec, mut next: State, mut news: Vec<Transition>, input: &Inputs) -> Decided {
    let now = input.now;
    let plan = &spec.plan;
    let state = plan.start(now);
    next.canary_revision = Some(input.revision.to_string());
    next.started_at = Some(stamp(now));
    next.step = Some(0);
    next.step_history.clear();
    next.waiting_since = None;
    next.metrics_unavailable_since = None;
    let weight = plan.weight(&state).round() as i32;
    if !ready(spec, input.pods, weight) {
        // Step 0's weight reaches the routers once the canary has its pods.
        next.weight = Some(0);
        next.step_started_at = None;
        next.waiting_since = Some(stamp(now));
        let what = shortfall(spec, input.pods, weight);
        news.push(Transition::WaitingForPods {
            message: format!("step 0 ({weight}%) waits for {what}"),
        });
        next.set_phase(
            LifecyclePhase::Progressing,
            format!("step 0 ({weight}%) waits for {what}"),
        );
        return Decided {
            wake_in: Some(POD_POLL.min(spec.progress_deadline)),
            wait: Some(PodWait {
                side: Side::Canary,
                detail: what,
                deadline: None,
            }),
            restarted: true,
            ..Decided::new(next, news)
        };
    }
    // Step 0's pods are there already: its weight is in force at once (Started says so).
    Decided {
        restarted: true,
        ..in_force_now(spec, next, news, input, false)
    }
}

#[cfg(test)]
mod tests;
