//! Webhooks in the lifecycle (pure): which webhook is due when, what its answers do, and what
//! the status says about them. The calls themselves are made by the controller's hooks stage,
//! which reports each attempt as a [`HookEvent`]; everything here works on plain data.
//!
//! | webhook | runs | passes | fails (after its retries) |
//! |---|---|---|---|
//! | a `webhook` step | once the step's weight is in force | the step is complete | `onFailure`: roll back, or pause for a human |
//! | `prePromotion` (in order) | once the rollout decided to promote | the next one; after the last, the promotion | `onFailure`: roll back, or pause for a human |
//! | `postPromotion` (in order) | once the promotion completed | the next one | reported only (a Warning, the `Hooks` condition) |
//!
//! A webhook runs once per revision (and step): its [`HookRun`] — attempts, last answer,
//! passed / failed — lives in the state (the status), so a restarted controller never calls a
//! finished one again; an attempt that was under way when the controller stopped has no known
//! answer and counts as one without an answer (tried again if retries remain). A human's
//! `promote` ends the step or the promotion gate the rollout waits at, skipping the webhook
//! that holds it (running, or failed with `Pause`). `retry` runs the revision's webhooks again.
//! The judge keeps watching while a webhook runs: its rollback always wins.

use super::{Decided, LifecyclePhase, State, Transition, stamp};

/// Which gate a webhook is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// A `webhook` canary step.
    Step,
    /// Before the promotion.
    PrePromotion,
    /// After the promotion.
    PostPromotion,
}

impl HookKind {
    /// The name used in the status and the payload: `step`, `prePromotion`, `postPromotion`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Step => "step",
            Self::PrePromotion => "prePromotion",
            Self::PostPromotion => "postPromotion",
        }
    }
}

/// What a webhook that failed does (step and pre-promotion webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// All traffic back on the stable version.
    Rollback,
    /// Wait for a human at the weight in force.
    Pause,
}

/// A webhook as the lifecycle knows it (from the validated spec).
#[derive(Debug, Clone, PartialEq)]
pub struct HookSpec {
    /// Its name (unique in the Rollout).
    pub name: String,
    /// Where it goes, for messages: the URL's host and port only (its path or query may carry
    /// a token).
    pub host: String,
    /// What a failure does (ignored for post-promotion webhooks, which only report).
    pub on_failure: OnFailure,
}

/// The Rollout's webhooks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HookPlan {
    /// The webhook that gates each step of the plan, by step index.
    pub steps: Vec<Option<HookSpec>>,
    /// Before the promotion, in order.
    pub pre_promotion: Vec<HookSpec>,
    /// After the promotion, in order.
    pub post_promotion: Vec<HookSpec>,
}

impl HookPlan {
    /// The webhook that gates `step`.
    pub fn step(&self, step: usize) -> Option<&HookSpec> {
        self.steps.get(step).and_then(Option::as_ref)
    }

    /// The webhook of `kind` named `name`.
    pub fn find(&self, kind: HookKind, name: &str) -> Option<&HookSpec> {
        let named = |h: &&HookSpec| h.name == name;
        match kind {
            HookKind::Step => self.steps.iter().flatten().find(named),
            HookKind::PrePromotion => self.pre_promotion.iter().find(named),
            HookKind::PostPromotion => self.post_promotion.iter().find(named),
        }
    }

    /// Whether the Rollout has any webhook.
    pub fn is_empty(&self) -> bool {
        self.steps.iter().all(Option::is_none)
            && self.pre_promotion.is_empty()
            && self.post_promotion.is_empty()
    }
}

/// One run of a webhook: for this revision (and step), it runs once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HookKey {
    /// Which gate.
    pub kind: HookKind,
    /// The webhook's name.
    pub name: String,
    /// The revision it runs for.
    pub revision: String,
    /// The step it gates (webhook steps).
    pub step: Option<usize>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPhase {
    /// The next attempt is due at `next_attempt_at`.
    Pending,
    /// An attempt is under way since `started_at`.
    Running,
    /// It answered 2xx.
    Passed,
    /// It failed after its retries.
    Failed,
    /// Not needed any more (a human went on without it, or the rollout ended).
    Skipped,
}

impl HookPhase {
    /// Passed, failed or skipped: never called again.
    pub fn finished(self) -> bool {
        matches!(self, Self::Passed | Self::Failed | Self::Skipped)
    }

    /// Passed or skipped: it no longer holds anything up.
    fn cleared(self) -> bool {
        matches!(self, Self::Passed | Self::Skipped)
    }
}

/// A webhook's progress for one revision (what `status.hooks[]` holds).
#[derive(Debug, Clone, PartialEq)]
pub struct HookRun {
    /// Which run.
    pub key: HookKey,
    /// Where it is.
    pub phase: HookPhase,
    /// Attempts started.
    pub attempts: u32,
    /// What the last attempt got.
    pub answer: Option<String>,
    /// When the last attempt started.
    pub started_at: Option<f64>,
    /// When the next attempt is due (`Pending`).
    pub next_attempt_at: Option<f64>,
    /// When it passed, failed or was skipped.
    pub finished_at: Option<f64>,
}

impl HookRun {
    /// A run that is due at once.
    fn scheduled(key: HookKey, now: f64) -> Self {
        Self {
            key,
            phase: HookPhase::Pending,
            attempts: 0,
            answer: None,
            started_at: None,
            next_attempt_at: Some(stamp(now)),
            finished_at: None,
        }
    }

    fn finish(&mut self, phase: HookPhase, answer: String, now: f64) {
        self.phase = phase;
        self.answer = Some(answer);
        self.next_attempt_at = None;
        self.finished_at = Some(stamp(now));
    }
}

/// How an attempt ended, as the hooks stage saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookOutcome {
    /// It answered 2xx.
    pub passed: bool,
    /// What it got: `answered 200`, `answered 503: …`, `no answer within 10s` …
    pub answer: String,
    /// A failed attempt that another may fix (no connection, no answer, 5xx, 429) and retries
    /// are left: seconds until the next one; `None`: this failure is final.
    pub retry_in: Option<f64>,
}

/// What the hooks stage did about a due run this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum HookEvent {
    /// Attempt `attempt` began at `at` (it goes on in the background).
    Started {
        /// The run.
        key: HookKey,
        /// Its number, from 1.
        attempt: u32,
        /// When it began.
        at: f64,
    },
    /// Attempt `attempt` ended.
    Finished {
        /// The run.
        key: HookKey,
        /// Its number, from 1.
        attempt: u32,
        /// How.
        outcome: HookOutcome,
    },
}

/// What a final failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookConsequence {
    /// The rollout rolls back.
    RollsBack,
    /// The rollout pauses for a human.
    Pauses,
    /// Reported only (post-promotion).
    Reported,
}

/// How a webhook is named in messages: `webhook smoke (step 2, POST to smoke.shop:8080)`.
pub fn describe(key: &HookKey, host: &str) -> String {
    let which = match (key.kind, key.step) {
        (HookKind::Step, Some(step)) => format!("step {step}"),
        (kind, _) => kind.as_str().to_string(),
    };
    format!("webhook {} ({which}, POST to {host})", key.name)
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".into()
    } else {
        format!("{n} attempts")
    }
}

/// What a final failure says, with what happens and the fix.
pub fn failure_message(
    key: &HookKey,
    host: &str,
    answer: &str,
    tries: u32,
    consequence: HookConsequence,
) -> String {
    let what = match consequence {
        HookConsequence::RollsBack => {
            "the rollout rolls back; fix the endpoint (or what it tests), then `canary-gate retry` runs the webhooks again"
        }
        HookConsequence::Pauses => {
            "the rollout pauses for a human: `canary-gate promote` goes on without it, `abort` ends the rollout"
        }
        HookConsequence::Reported => {
            "reported only: the promotion stands; fix the endpoint, the next promotion calls it again"
        }
    };
    format!(
        "{} failed after {}: {answer}; {what}",
        describe(key, host),
        attempts(tries)
    )
}

fn host_of<'a>(plan: &'a HookPlan, key: &HookKey) -> &'a str {
    plan.find(key.kind, &key.name)
        .map_or("(removed from the spec)", |h| h.host.as_str())
}

fn consequence(plan: &HookPlan, key: &HookKey) -> HookConsequence {
    match (key.kind, plan.find(key.kind, &key.name)) {
        (HookKind::PostPromotion, _) => HookConsequence::Reported,
        (
            _,
            Some(HookSpec {
                on_failure: OnFailure::Pause,
                ..
            }),
        ) => HookConsequence::Pauses,
        _ => HookConsequence::RollsBack,
    }
}

/// The runs that are due at `now` — pending ones whose time has come and running ones (to
/// collect their answer) — for the target's `revision`. A step or pre-promotion webhook is due
/// only while that revision rolls out at that step, and not while a human's action is pending
/// (it ends the gate); a post-promotion webhook runs to its end whatever follows.
pub fn due<'a>(state: &'a State, revision: &str, acting: bool, now: f64) -> Vec<&'a HookRun> {
    let rolling = state.canary_is_live()
        && state.phase != Some(LifecyclePhase::Promoting)
        && state.canary_revision.as_deref() == Some(revision)
        && !acting;
    state
        .hooks
        .iter()
        .filter(|run| match run.key.kind {
            HookKind::PostPromotion => true,
            HookKind::PrePromotion => rolling && run.key.revision == revision,
            HookKind::Step => {
                rolling
                    && run.key.revision == revision
                    && run.key.step == state.step
                    && state.step_started_at.is_some()
            }
        })
        .filter(|run| match run.phase {
            HookPhase::Pending => run.next_attempt_at.is_none_or(|t| t <= now + 1e-9),
            HookPhase::Running => true,
            _ => false,
        })
        .collect()
}

/// The state with this reconcile's attempts recorded, and the news about them. An event about
/// a run that is gone or finished, or an older attempt than the run's, changes nothing (a
/// stale copy of the status may report an attempt twice).
pub(super) fn record(
    plan: &HookPlan,
    state: &State,
    events: &[HookEvent],
    now: f64,
) -> (State, Vec<Transition>) {
    let mut next = state.clone();
    let mut news = Vec::new();
    for event in events {
        let (key, attempt) = match event {
            HookEvent::Started { key, attempt, .. } | HookEvent::Finished { key, attempt, .. } => {
                (key, *attempt)
            }
        };
        let Some(run) = next.hooks.iter_mut().find(|r| &r.key == key) else {
            continue;
        };
        if run.phase.finished() || attempt < run.attempts {
            continue;
        }
        let host = host_of(plan, key).to_string();
        match event {
            HookEvent::Started { at, .. } => {
                if run.phase == HookPhase::Running && run.attempts == attempt {
                    continue;
                }
                run.phase = HookPhase::Running;
                run.attempts = attempt;
                run.started_at = Some(stamp(*at));
                run.next_attempt_at = None;
                if attempt == 1 {
                    news.push(Transition::HookStarted {
                        key: key.clone(),
                        host,
                    });
                }
            }
            HookEvent::Finished { outcome, .. } => {
                if run.attempts < attempt {
                    // The attempt's start was never recorded (its status write was lost).
                    run.started_at = Some(stamp(now));
                    if attempt == 1 {
                        news.push(Transition::HookStarted {
                            key: key.clone(),
                            host: host.clone(),
                        });
                    }
                }
                run.attempts = attempt;
                let answer = outcome.answer.clone();
                match (outcome.passed, outcome.retry_in) {
                    (true, _) => {
                        run.finish(HookPhase::Passed, answer.clone(), now);
                        news.push(Transition::HookPassed {
                            key: key.clone(),
                            host,
                            answer,
                            attempts: attempt,
                        });
                    }
                    (false, Some(wait)) => {
                        run.phase = HookPhase::Pending;
                        run.answer = Some(answer.clone());
                        run.next_attempt_at = Some((now + wait.max(0.0)).ceil());
                        news.push(Transition::HookRetrying {
                            key: key.clone(),
                            host,
                            answer,
                            attempt,
                            retry_in: wait.max(0.0).ceil(),
                        });
                    }
                    (false, None) => {
                        run.finish(HookPhase::Failed, answer.clone(), now);
                        news.push(Transition::HookFailed {
                            message: failure_message(
                                key,
                                &host,
                                &answer,
                                attempt,
                                consequence(plan, key),
                            ),
                            key: key.clone(),
                        });
                    }
                }
            }
        }
    }
    (next, news)
}

/// What a gate (a webhook step, or the pre-promotion webhooks) says.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Gate {
    /// Nothing holds the rollout here.
    Open,
    /// A webhook runs (or is about to): the gate holds; what it waits for.
    Waiting(String),
    /// A webhook failed: roll back (true) or pause, with the reason.
    Failed { reason: String, rollback: bool },
}

fn failed_gate(plan: &HookPlan, spec: &HookSpec, run: &HookRun) -> Gate {
    let host = &spec.host;
    Gate::Failed {
        reason: format!(
            "{} failed after {}: {}",
            describe(&run.key, host),
            attempts(run.attempts),
            run.answer.as_deref().unwrap_or("no answer")
        ),
        rollback: consequence(plan, &run.key) == HookConsequence::RollsBack,
    }
}

fn waiting_for(run: Option<&HookRun>, key: &HookKey, host: &str) -> String {
    let what = describe(key, host);
    match run {
        Some(r) if r.phase == HookPhase::Running => {
            format!("{what}: attempt {} under way", r.attempts)
        }
        Some(r) if r.attempts > 0 => format!(
            "{what}: attempt {} due ({} so far: {})",
            r.attempts + 1,
            attempts(r.attempts),
            r.answer.as_deref().unwrap_or("no answer")
        ),
        _ => format!("{what}: about to be called"),
    }
}

/// The gate of the webhook step `step` of `revision` (open when the step has none).
pub(super) fn step_gate(plan: &HookPlan, state: &State, revision: &str, step: usize) -> Gate {
    let Some(spec) = plan.step(step) else {
        return Gate::Open;
    };
    let key = HookKey {
        kind: HookKind::Step,
        name: spec.name.clone(),
        revision: revision.to_string(),
        step: Some(step),
    };
    let run = state.hooks.iter().find(|r| r.key == key);
    match run.map(|r| r.phase) {
        Some(p) if p.cleared() => Gate::Open,
        Some(HookPhase::Failed) => failed_gate(plan, spec, run.expect("found")),
        _ => Gate::Waiting(waiting_for(run, &key, &spec.host)),
    }
}

/// Whether the rollout has begun its pre-promotion webhooks for `revision` (it decided to
/// promote, and stays decided while they run).
pub(super) fn promotion_gate_entered(plan: &HookPlan, state: &State, revision: &str) -> bool {
    !plan.pre_promotion.is_empty()
        && state
            .hooks
            .iter()
            .any(|r| r.key.kind == HookKind::PrePromotion && r.key.revision == revision)
}

/// The pre-promotion gate of `revision`: the webhooks in order; the first that has not run yet
/// is scheduled in `next` (due now).
pub(super) fn promotion_gate(plan: &HookPlan, next: &mut State, revision: &str, now: f64) -> Gate {
    for spec in &plan.pre_promotion {
        let key = HookKey {
            kind: HookKind::PrePromotion,
            name: spec.name.clone(),
            revision: revision.to_string(),
            step: None,
        };
        let run = next.hooks.iter().find(|r| r.key == key);
        match run.map(|r| r.phase) {
            Some(p) if p.cleared() => {}
            Some(HookPhase::Failed) => return failed_gate(plan, spec, run.expect("found")),
            Some(_) => return Gate::Waiting(waiting_for(run, &key, &spec.host)),
            None => {
                let waiting = waiting_for(None, &key, &spec.host);
                next.hooks.push(HookRun::scheduled(key, now));
                return Gate::Waiting(waiting);
            }
        }
    }
    Gate::Open
}

/// A human's `promote` ends the gate the rollout waits at: the webhook of step `step` and the
/// pre-promotion webhooks of `revision` that have not passed are skipped.
pub(super) fn skip_for_human(next: &mut State, revision: &str, step: usize, now: f64) {
    for run in &mut next.hooks {
        let gate = match run.key.kind {
            HookKind::Step => run.key.step == Some(step),
            HookKind::PrePromotion => true,
            HookKind::PostPromotion => false,
        };
        if gate
            && run.key.revision == revision
            && !matches!(run.phase, HookPhase::Passed | HookPhase::Skipped)
        {
            let was = run
                .answer
                .as_deref()
                .map_or(String::new(), |a| format!(" (last answer: {a})"));
            run.finish(
                HookPhase::Skipped,
                format!("skipped: a human promoted{was}"),
                now,
            );
        }
    }
}

/// After deciding: a step whose weight is in force gets its webhook scheduled, a completed
/// promotion its first post-promotion webhook (each next one once the one before finished);
/// runs no longer needed are skipped (the step or the rollout ended, the webhook left the
/// spec), runs of other revisions than the canary and stable ones dropped, and a `retry` or a
/// new revision starts its webhooks over. Wakes up for what is due.
pub(super) fn after(plan: &HookPlan, decided: &mut Decided, now: f64) {
    let restarted = decided.restarted;
    let promoted: Option<String> = decided.transitions.iter().find_map(|t| match t {
        Transition::Promoted { revision } => Some(revision.clone()),
        _ => None,
    });
    let next = &mut decided.state;
    if restarted {
        // A new revision or a retry: its step and pre-promotion webhooks run again.
        next.hooks.retain(|r| r.key.kind == HookKind::PostPromotion);
    }
    let canary = next.canary_revision.clone();
    let stable = next.stable_revision.clone();
    let rolling = next.canary_is_live() && next.phase != Some(LifecyclePhase::Promoting);
    // The step's webhook, once its weight is in force.
    if let (true, Some(revision), Some(step), Some(_)) =
        (rolling, &canary, next.step, next.step_started_at)
        && let Some(spec) = plan.step(step)
    {
        let key = HookKey {
            kind: HookKind::Step,
            name: spec.name.clone(),
            revision: revision.clone(),
            step: Some(step),
        };
        if !next.hooks.iter().any(|r| r.key == key) {
            next.hooks.push(HookRun::scheduled(key, now));
        }
    }
    // Post-promotion webhooks, in order, for the revision just promoted (or promoted before).
    if let Some(revision) = promoted.as_ref().or(stable.as_ref()) {
        let mut runs = next
            .hooks
            .iter()
            .filter(|r| r.key.kind == HookKind::PostPromotion && &r.key.revision == revision);
        let started = runs.clone().count();
        let all_done = runs.all(|r| r.phase.finished());
        let begin = promoted.is_some() && started == 0;
        if all_done
            && (begin || started > 0)
            && let Some(spec) = plan.post_promotion.get(started)
        {
            next.hooks.push(HookRun::scheduled(
                HookKey {
                    kind: HookKind::PostPromotion,
                    name: spec.name.clone(),
                    revision: revision.clone(),
                    step: None,
                },
                now,
            ));
        }
    }
    // Runs no longer needed.
    let phase = next.phase;
    let step = next.step;
    for run in &mut next.hooks {
        if run.phase.finished() {
            continue;
        }
        let why = if plan.find(run.key.kind, &run.key.name).is_none() {
            Some("the webhook was removed from the spec".to_string())
        } else {
            match run.key.kind {
                HookKind::PostPromotion => None,
                _ if !rolling || canary.as_ref() != Some(&run.key.revision) => Some(format!(
                    "the rollout of revision {} is over ({})",
                    run.key.revision,
                    phase.map_or("-".to_string(), |p| format!("{p:?}"))
                )),
                HookKind::Step if run.key.step != step => {
                    Some("the step ended before it finished".to_string())
                }
                _ => None,
            }
        };
        if let Some(why) = why {
            run.finish(HookPhase::Skipped, format!("skipped: {why}"), now);
        }
    }
    next.hooks.retain(|r| {
        Some(&r.key.revision) == canary.as_ref() || Some(&r.key.revision) == stable.as_ref()
    });
    // Wake up for what is due: a pending run at its time, a running one to collect its answer
    // (soon at first, then less often).
    let wake = next
        .hooks
        .iter()
        .filter_map(|r| match r.phase {
            HookPhase::Pending => Some(r.next_attempt_at.map_or(0.0, |t| (t - now).max(0.0))),
            HookPhase::Running => {
                let running = now - r.started_at.unwrap_or(now);
                Some(running.clamp(1.0, RUNNING_POLL_MAX))
            }
            _ => None,
        })
        .reduce(f64::min);
    if let Some(wait) = wake {
        decided.wake_in = Some(decided.wake_in.map_or(wait, |w| w.min(wait)));
    }
}

/// The longest wait between two looks at a webhook attempt under way (the hooks stage also
/// waits a little for each attempt it starts, so a quick answer is taken at once).
pub const RUNNING_POLL_MAX: f64 = 15.0;

/// What the `Hooks` condition says of the runs of the revision that matters now — the canary's
/// (rolling out, or rolled back or aborted), else the stable's: a failure first (the newest),
/// then a webhook under way, else every one passed. `None` without runs. Returns (passed,
/// reason, message).
pub fn summary(plan: &HookPlan, state: &State) -> Option<(bool, &'static str, String)> {
    let focus = state
        .canary_revision
        .as_ref()
        .or(state.stable_revision.as_ref());
    let runs: Vec<HookRun> = state
        .hooks
        .iter()
        .filter(|r| Some(&r.key.revision) == focus)
        .cloned()
        .collect();
    summarize(plan, &runs)
}

fn summarize(plan: &HookPlan, runs: &[HookRun]) -> Option<(bool, &'static str, String)> {
    let newest = |phase: HookPhase| {
        runs.iter().filter(|r| r.phase == phase).max_by(|a, b| {
            a.finished_at
                .unwrap_or(0.0)
                .total_cmp(&b.finished_at.unwrap_or(0.0))
        })
    };
    if let Some(run) = newest(HookPhase::Failed) {
        return Some((
            false,
            "HookFailed",
            failure_message(
                &run.key,
                host_of(plan, &run.key),
                run.answer.as_deref().unwrap_or("no answer"),
                run.attempts,
                consequence(plan, &run.key),
            ),
        ));
    }
    if let Some(run) = runs
        .iter()
        .find(|r| matches!(r.phase, HookPhase::Pending | HookPhase::Running))
    {
        return Some((
            false,
            "HookRunning",
            waiting_for(Some(run), &run.key, host_of(plan, &run.key)),
        ));
    }
    if runs.is_empty() {
        return None;
    }
    let passed: Vec<String> = runs
        .iter()
        .map(|r| {
            let which = match (r.key.kind, r.key.step) {
                (HookKind::Step, Some(step)) => format!("step {step}"),
                (kind, _) => kind.as_str().to_string(),
            };
            format!(
                "{} ({which}): {}",
                r.key.name,
                r.answer.as_deref().unwrap_or("-")
            )
        })
        .collect();
    Some((true, "HooksPassed", passed.join("; ")))
}
