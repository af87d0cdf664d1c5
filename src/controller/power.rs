//! The steps power check, advice only: whether each gated canary step of a Rollout is long
//! enough for its template's judge to catch a regression on the traffic the service actually
//! sees — the condition `StepsUnderpowered` (method: [`crate::advise::steps`]). It never
//! changes a decision.
//!
//! - **Evidence**: the judge's own. The analyze stage hands over every window it read; the first
//!   intervals of a revision that span [`EVIDENCE_SECONDS`] (at least [`EVIDENCE_INTERVALS`],
//!   with some traffic) give the requests per second of both versions together and the stable's
//!   error rate, from the template's first `errorRate` metric. No extra query, and a replay
//!   after a restart sees the same first intervals, so it finds the same answer.
//! - **Which template**: the first one the analyze stage reads with an `errorRate` metric; the
//!   steps it gates are checked (timed steps with a weight between 0 and 100 %; a `pause: {}`
//!   waits for a human, who decides how long it lasts). With several templates on a step the
//!   others can only catch a regression sooner, so the durations are upper bounds.
//! - **When**: once per Rollout, revision and template (its spec and arguments: a changed
//!   template gathers the evidence again), and again from the same evidence when the steps or
//!   the goal (`spec.strategy.canary.powerCheck`) change.
//! - **Where**: on one worker thread of its own, one check at a time, from a queue of at most
//!   [`QUEUE`] (a full queue is tried again at a later reconcile), so a reconcile never waits
//!   and never shares its runtime's threads with the simulation; [`RUNS`] simulated rollouts per
//!   weight (±4 points of power at 80 %).
//! - **Bounded**: one entry per Rollout, at most `capacity` (an arbitrary one goes beyond); a
//!   Rollout's entry goes when it is deleted, or once its answer is in the status and no canary
//!   is live.
//!
//! The condition follows the answer the reconcile found when it began (an answer that arrives
//! meanwhile waits for the next one, so a reconcile is deterministic): `True` (reason
//! `StepsTooShort`) naming each underpowered step with what it needs and the fix, and one
//! Warning Event when it turns true; `False` (`StepsSuffice`) with a short summary. It is
//! absent before there is traffic evidence, removed when a new canary revision starts (until its
//! own answer) or when the check is turned off, and otherwise kept as it is until an answer for
//! the current steps arrives.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::advise::steps::{Goal, PlannedStep, Settings, StepsCheck, check, duration, rate};
use crate::advise::{Effect, Traffic};
use crate::analysis::{JudgeConfig, MetricKind, MetricSample, WindowInterval};
use crate::crd::rollout::{CanaryStrategy, RolloutStatus};
use crate::template::Template;

use super::status::{Note, canary_is_live, set_condition};
use super::validate::{SpecError, ValidatedRollout};

/// The condition.
pub const CONDITION: &str = "StepsUnderpowered";
/// Its reason when a step is too short (the Event's reason is the condition's name).
pub const TOO_SHORT: &str = "StepsTooShort";
/// Its reason when every step suffices.
pub const SUFFICE: &str = "StepsSuffice";
/// Simulated rollouts per weight.
pub const RUNS: usize = 100;
/// Checks waiting for the worker at most.
pub const QUEUE: usize = 64;
/// The evidence spans at least this long, seconds.
pub const EVIDENCE_SECONDS: f64 = 300.0;
/// … and at least this many intervals.
pub const EVIDENCE_INTERVALS: usize = 3;
/// How many Rollouts are remembered by default.
pub const DEFAULT_CAPACITY: usize = 20_000;
/// Events' notes must stay under 1 kB (events.k8s.io/v1).
const EVENT_NOTE_BYTES: usize = 1000;

/// The goal of `spec.strategy.canary.powerCheck` (the defaults when absent; `None` when turned
/// off).
///
/// # Errors
/// An effect that is not `+Npt` or `xN`, or a power outside 0.5–0.99; the error names the field.
pub fn goal(canary: &CanaryStrategy) -> Result<Option<Goal>, SpecError> {
    let field = "spec.strategy.canary.powerCheck";
    let Some(spec) = &canary.power_check else {
        return Ok(Some(Goal::default()));
    };
    if spec.enabled == Some(false) {
        return Ok(None);
    }
    let mut goal = Goal::default();
    if let Some(text) = &spec.effect {
        goal.effect = text.parse::<Effect>().map_err(|e| SpecError {
            field: format!("{field}.effect"),
            problem: e.to_string(),
        })?;
    }
    if let Some(power) = spec.power {
        if !(0.5..=0.99).contains(&power) {
            return Err(SpecError {
                field: format!("{field}.power"),
                problem: format!(
                    "is {power}; give the share of rollouts a step must catch the regression in, between 0.5 and 0.99 (e.g. 0.8)"
                ),
            });
        }
        goal.power = power;
    }
    Ok(Some(goal))
}

/// What the check found for a Rollout's revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The revision whose traffic was seen.
    pub revision: String,
    /// The steps and goal checked (see [`plan_key`]).
    pub plan_key: u64,
    /// The template whose judge was simulated.
    pub template: String,
    /// The answer.
    pub check: StepsCheck,
}

impl Finding {
    /// The condition's message: the template, then the check's.
    pub fn message(&self) -> String {
        format!("template {}: {}", self.template, self.check.message())
    }

    /// The Warning Event's note: the steps and what they need, within 1 kB.
    fn note(&self) -> String {
        let steps: Vec<String> = self
            .check
            .underpowered()
            .map(|f| {
                format!(
                    "step {} ({}% for {}) needs {}",
                    f.step.index,
                    f.step.weight,
                    duration(f.step.pause),
                    f.needed
                        .map_or_else(|| format!("more than {}", duration(f.horizon)), duration)
                )
            })
            .collect();
        let text = format!(
            "{} of {} gated steps cannot catch {} in {:.0} % of rollouts at {} req/s: {}; lengthen them or use fewer, bigger steps (condition {CONDITION} has the costs; advice only)",
            steps.len(),
            self.check.findings.len(),
            self.check.settings.effect,
            self.check.settings.power * 100.0,
            rate(self.check.traffic.rps),
            steps.join(", ")
        );
        cut(text, EVENT_NOTE_BYTES)
    }
}

/// `text` cut to at most `bytes` bytes at a character boundary, with `…` when cut.
fn cut(mut text: String, bytes: usize) -> String {
    if text.len() <= bytes {
        return text;
    }
    let mut end = bytes - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// The steps (and goal) a finding answers for: if any of it changes, the check runs again.
pub fn plan_key(validated: &ValidatedRollout) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_vec(&validated.lifecycle.plan)
        .unwrap_or_default()
        .hash(&mut h);
    validated.step_analysis.hash(&mut h);
    serde_json::to_vec(&validated.analyses)
        .unwrap_or_default()
        .hash(&mut h);
    validated.background.hash(&mut h);
    if let Some(goal) = &validated.power_check {
        goal.power.to_bits().hash(&mut h);
        goal.effect.to_string().hash(&mut h);
    }
    h.finish()
}

fn is_cluster(template: &Template) -> bool {
    template.file.kind == "ClusterAnalysisTemplate"
}

/// Whether any analysis of the Rollout names the template.
fn references(validated: &ValidatedRollout, cluster: bool, name: &str) -> bool {
    validated.analyses.iter().any(|a| {
        a.templates
            .iter()
            .any(|t| t.template_name == name && t.cluster_scope == cluster)
    })
}

/// The timed canary steps `template` gates (weights strictly between 0 and 100 %).
pub fn gated_steps(validated: &ValidatedRollout, template: &Template) -> Vec<PlannedStep> {
    let cluster = is_cluster(template);
    validated
        .lifecycle
        .plan
        .steps()
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            s.weight > 0.0
                && s.weight < 100.0
                && s.pause.is_finite()
                && validated.analysis(*i).is_some_and(|a| {
                    a.templates
                        .iter()
                        .any(|t| t.template_name == template.name() && t.cluster_scope == cluster)
                })
        })
        .map(|(index, s)| PlannedStep {
            index,
            weight: s.weight,
            pause: s.pause,
        })
        .collect()
}

/// The first `errorRate` metric of a judge: where the traffic is read.
fn error_metric(config: &JudgeConfig) -> Option<usize> {
    config
        .metrics
        .iter()
        .position(|m| m.kind == MetricKind::ErrorRate)
}

/// The traffic of the first intervals of a revision.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    /// Intervals counted.
    pub intervals: usize,
    /// Seconds they span.
    pub seconds: f64,
    /// Requests of both versions.
    pub requests: f64,
    /// The stable's requests.
    pub stable_requests: f64,
    /// The stable's errors.
    pub stable_errors: f64,
}

impl Evidence {
    /// Whether the evidence is complete (then it is never added to again).
    pub fn complete(&self) -> bool {
        self.intervals >= EVIDENCE_INTERVALS
            && self.seconds >= EVIDENCE_SECONDS - 1e-9
            && self.requests > 0.0
            && self.stable_requests > 0.0
    }

    /// Adds intervals of `interval` seconds until complete; `metric` is the error metric's index.
    fn add(&mut self, intervals: &[WindowInterval], metric: usize, interval: f64) {
        for i in intervals {
            if self.complete() {
                return;
            }
            let Some(MetricSample::Counts { stable, canary }) = i.samples.get(metric) else {
                continue;
            };
            if !(stable.is_valid() && canary.is_valid()) {
                continue;
            }
            self.intervals += 1;
            self.seconds += interval;
            self.requests += stable.total + canary.total;
            self.stable_requests += stable.total;
            self.stable_errors += stable.events;
        }
    }

    /// The traffic it shows.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            rps: self.requests / self.seconds.max(1e-9),
            error_rate: (self.stable_errors / self.stable_requests.max(1e-9)).min(0.999_999),
        }
    }
}

/// One Rollout's check.
struct Entry {
    revision: String,
    /// The template checked: its source name, whether it is a ClusterAnalysisTemplate, its name.
    template: (String, bool, String),
    evidence_key: u64,
    evidence: Evidence,
    /// The plan a check is queued or running for.
    queued: Option<u64>,
    done: Option<Arc<Finding>>,
}

/// A check for the worker.
struct Job {
    namespace: String,
    rollout: String,
    revision: String,
    plan_key: u64,
    template: String,
    config: JudgeConfig,
    interval: f64,
    traffic: Traffic,
    steps: Vec<PlannedStep>,
    settings: Settings,
}

#[derive(Default)]
struct Entries {
    by_namespace: HashMap<String, HashMap<String, Entry>>,
    len: usize,
}

impl Entries {
    fn get_mut(&mut self, namespace: &str, rollout: &str) -> Option<&mut Entry> {
        self.by_namespace.get_mut(namespace)?.get_mut(rollout)
    }

    fn remove(&mut self, namespace: &str, rollout: &str) {
        if let Some(rollouts) = self.by_namespace.get_mut(namespace)
            && rollouts.remove(rollout).is_some()
        {
            self.len -= 1;
            if rollouts.is_empty() {
                self.by_namespace.remove(namespace);
            }
        }
    }

    fn insert(&mut self, namespace: &str, rollout: &str, entry: Entry, capacity: usize) {
        if self.get_mut(namespace, rollout).is_none() {
            if self.len >= capacity {
                let victim = self.by_namespace.iter().find_map(|(ns, rollouts)| {
                    rollouts.keys().next().map(|r| (ns.clone(), r.clone()))
                });
                if let Some((ns, r)) = victim {
                    self.remove(&ns, &r);
                }
            }
            self.len += 1;
        }
        self.by_namespace
            .entry(namespace.to_string())
            .or_default()
            .insert(rollout.to_string(), entry);
    }
}

/// What the reconciles and the worker share.
struct Shared {
    entries: Mutex<Entries>,
    /// Set when the checks are dropped: the worker stops, a running check is abandoned.
    closed: AtomicBool,
    /// Checks queued or running.
    pending: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves whole entries (each is replaced at once).
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The steps power checks of every Rollout, between reconciles, and the worker that runs them.
pub struct PowerChecks {
    shared: Arc<Shared>,
    jobs: Mutex<Option<SyncSender<Job>>>,
    capacity: usize,
    runs: usize,
}

impl Default for PowerChecks {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, RUNS)
    }
}

impl Drop for PowerChecks {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
    }
}

impl PowerChecks {
    /// Checks for at most `capacity` Rollouts with `runs` simulated rollouts per weight; the
    /// worker thread starts with the first check.
    pub fn new(capacity: usize, runs: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                entries: Mutex::default(),
                closed: AtomicBool::new(false),
                pending: AtomicUsize::new(0),
            }),
            jobs: Mutex::new(None),
            capacity: capacity.max(1),
            runs: runs.max(1),
        }
    }

    /// The answer for a Rollout so far (the latest, whatever it was for: see [`report`]).
    pub fn finding(&self, namespace: &str, rollout: &str) -> Option<Arc<Finding>> {
        self.shared
            .lock()
            .get_mut(namespace, rollout)
            .and_then(|e| e.done.clone())
    }

    /// Drops what is kept for a Rollout.
    pub fn forget(&self, namespace: &str, rollout: &str) {
        self.shared.lock().remove(namespace, rollout);
    }

    /// Rollouts remembered.
    pub fn len(&self) -> usize {
        self.shared.lock().len
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits up to `timeout` until no check is queued or running; whether none is.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while self.shared.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Takes the intervals the analyze stage read for `template` (with `args`) of a Rollout's
    /// `revision`: adds them to the evidence until it is complete, then queues the check of the
    /// steps `template` gates, unless it is queued or done for these steps already. Cheap when
    /// there is nothing to do (a lookup and a hash of the template).
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &self,
        namespace: &str,
        rollout: &str,
        revision: &str,
        validated: &ValidatedRollout,
        template: &Template,
        args: &[(String, String)],
        intervals: &[WindowInterval],
    ) {
        let Some(goal) = validated.power_check else {
            return;
        };
        let Some(metric) = error_metric(&template.judge) else {
            return;
        };
        let mut entries = self.shared.lock();
        let existing = entries.get_mut(namespace, rollout);
        if existing.as_ref().is_some_and(|e| {
            e.revision == revision
                && e.template.0 != template.source_name
                && references(validated, e.template.1, &e.template.2)
        }) {
            // Another template of this revision, still in the spec, is the one checked.
            return;
        }
        let evidence_key = evidence_key(template, args, revision);
        let fresh =
            existing.is_none_or(|e| e.revision != revision || e.evidence_key != evidence_key);
        if fresh {
            entries.insert(
                namespace,
                rollout,
                Entry {
                    revision: revision.to_string(),
                    template: (
                        template.source_name.clone(),
                        is_cluster(template),
                        template.name().to_string(),
                    ),
                    evidence_key,
                    evidence: Evidence::default(),
                    queued: None,
                    done: None,
                },
                self.capacity,
            );
        }
        let Some(entry) = entries.get_mut(namespace, rollout) else {
            return;
        };
        let interval = template.interval.as_secs_f64();
        entry.evidence.add(intervals, metric, interval);
        if !entry.evidence.complete() {
            return;
        }
        let plan_key = plan_key(validated);
        let answered = entry.done.as_ref().is_some_and(|d| d.plan_key == plan_key);
        if answered || entry.queued == Some(plan_key) {
            return;
        }
        if self.shared.pending.load(Ordering::Acquire) >= QUEUE {
            // The worker is behind: try again at a later reconcile.
            return;
        }
        let steps = gated_steps(validated, template);
        if steps.is_empty() {
            return;
        }
        let job = Job {
            namespace: namespace.to_string(),
            rollout: rollout.to_string(),
            revision: revision.to_string(),
            plan_key,
            template: template.source_name.clone(),
            config: template.judge.clone(),
            interval,
            traffic: entry.evidence.traffic(),
            steps,
            settings: Settings::new(goal, self.runs),
        };
        if self.send(job) {
            entry.queued = Some(plan_key);
        }
    }

    /// Queues a job (starting the worker with the first); false when the queue is full.
    fn send(&self, job: Job) -> bool {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = jobs.get_or_insert_with(|| {
            let (sender, receiver) = sync_channel(QUEUE);
            let shared = Arc::clone(&self.shared);
            // A worker that cannot start leaves every check queued: advice is lost, nothing else.
            if let Err(e) = std::thread::Builder::new()
                .name("power-check".into())
                .spawn(move || work(&shared, &receiver))
            {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "steps power check worker did not start"
                );
            }
            sender
        });
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        match sender.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.pending.fetch_sub(1, Ordering::AcqRel);
                false
            }
        }
    }
}

/// What a Rollout's evidence was gathered from: if it changes, the evidence starts over.
fn evidence_key(template: &Template, args: &[(String, String)], revision: &str) -> u64 {
    let mut h = DefaultHasher::new();
    template.source_name.hash(&mut h);
    serde_json::to_vec(&template.file.spec)
        .unwrap_or_default()
        .hash(&mut h);
    args.hash(&mut h);
    revision.hash(&mut h);
    h.finish()
}

/// The worker: one check at a time, until the checks are dropped.
fn work(shared: &Shared, jobs: &Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        run(shared, &job);
        shared.pending.fetch_sub(1, Ordering::AcqRel);
        if shared.closed.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// Runs one check, if it is still wanted, and keeps its answer.
fn run(shared: &Shared, job: &Job) {
    let wanted = |entries: &mut Entries| {
        entries
            .get_mut(&job.namespace, &job.rollout)
            .is_some_and(|e| e.revision == job.revision && e.queued == Some(job.plan_key))
    };
    if !wanted(&mut shared.lock()) {
        return;
    }
    let started = Instant::now();
    let closed = || shared.closed.load(Ordering::Relaxed);
    let answer = check(
        &job.config,
        job.traffic,
        job.interval,
        &job.steps,
        job.settings,
        &closed,
    );
    let seconds = started.elapsed().as_secs_f64();
    let check = match answer {
        Ok(Some(check)) => check,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(namespace = %job.namespace, rollout = %job.rollout, error = %e, "steps power check refused its input");
            return;
        }
    };
    tracing::info!(
        namespace = %job.namespace,
        rollout = %job.rollout,
        revision = %job.revision,
        rps = job.traffic.rps,
        underpowered = check.underpowered().count(),
        steps = check.findings.len(),
        intervals = check.intervals,
        seconds,
        "steps power check"
    );
    let mut entries = shared.lock();
    if !wanted(&mut entries) {
        return;
    }
    if let Some(entry) = entries.get_mut(&job.namespace, &job.rollout) {
        entry.queued = None;
        entry.done = Some(Arc::new(Finding {
            revision: job.revision.clone(),
            plan_key: job.plan_key,
            template: job.template.clone(),
            check,
        }));
    }
}

/// Sets `StepsUnderpowered` in the status about to be written (see the module docs): from
/// `finding` when it answers for the target's `revision` and the current steps, with a Warning
/// Event in `notes` when it turns true. `old` is the status as read. Returns whether the
/// finding is now in the status and no canary is live (its entry may go).
pub fn report(
    finding: Option<&Finding>,
    validated: &ValidatedRollout,
    revision: &str,
    old: &RolloutStatus,
    status: &mut RolloutStatus,
    notes: &mut Vec<Note>,
    now: f64,
) -> bool {
    if validated.power_check.is_none() {
        status.conditions.retain(|c| c.type_ != CONDITION);
        return false;
    }
    let current = finding.filter(|f| f.revision == revision && f.plan_key == plan_key(validated));
    let Some(finding) = current else {
        // A new canary revision: the previous one's answer is not about it.
        if status.canary_revision.is_some() && status.canary_revision != old.canary_revision {
            status.conditions.retain(|c| c.type_ != CONDITION);
        }
        return false;
    };
    let under = finding.check.any_underpowered();
    let was_true = status
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION && c.status == "True");
    if under && !was_true {
        notes.push(Note {
            reason: CONDITION,
            message: finding.note(),
            warning: true,
        });
    }
    set_condition(
        &mut status.conditions,
        CONDITION,
        under,
        if under { TOO_SHORT } else { SUFFICE },
        &finding.message(),
        now,
    );
    !canary_is_live(status)
}

#[cfg(test)]
mod tests;
