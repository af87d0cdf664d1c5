//! What the judge has seen of each Rollout under analysis, kept between reconciles, so that a
//! reconcile reads and judges only the intervals that ended since the previous one instead of
//! replaying the whole rollout (a canary paused for a week would otherwise re-read and re-judge
//! 10 000 intervals every minute).
//!
//! Equivalent to a replay from the rollout's start: a judgement depends only on the intervals
//! before it and on the step each of them belonged to, and step starts are only ever appended at
//! a reconcile's `now`, after every interval judged so far, so no judged interval changes step.
//! The first rollback stays the answer, as in a replay. A replay happens when the memory is
//! cold (a restarted controller, a new leader) or no longer matches what it was built from:
//! another canary revision, a restarted rollout (`retry` moves `startedAt`), a changed template
//! or changed arguments.
//!
//! Bounded: one entry per Rollout and template under analysis; a Rollout's entries go when it is
//! no longer analysed or is deleted, and at `capacity` Rollouts an arbitrary one is dropped
//! (it replays on its next reconcile).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use crate::analysis::WindowInterval;
use crate::analysis::{AnalysisError, Decision, Judge, Judgement};
use crate::rollout::StepPlan;
use crate::rollout::lifecycle::{StepStart, step_contexts};
use crate::template::Template;

/// How many Rollouts the memory holds by default (10 000 live Rollouts fit twice).
pub const DEFAULT_CAPACITY: usize = 20_000;

/// Per-Rollout judge state between reconciles.
pub struct JudgeMemory {
    kept: Mutex<Kept>,
    capacity: usize,
}

/// Progress by namespace, Rollout and template source (looked up by `&str`: no allocation on
/// the reconcile path), and how many Rollouts that is.
#[derive(Default)]
struct Kept {
    by_namespace: HashMap<String, HashMap<String, HashMap<String, Progress>>>,
    rollouts: usize,
}

impl Kept {
    fn templates(
        &mut self,
        namespace: &str,
        rollout: &str,
    ) -> Option<&mut HashMap<String, Progress>> {
        self.by_namespace.get_mut(namespace)?.get_mut(rollout)
    }

    fn remove(&mut self, namespace: &str, rollout: &str) {
        if let Some(rollouts) = self.by_namespace.get_mut(namespace)
            && rollouts.remove(rollout).is_some()
        {
            self.rollouts -= 1;
            if rollouts.is_empty() {
                self.by_namespace.remove(namespace);
            }
        }
    }
}

impl Default for JudgeMemory {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

/// One template's judge for one rollout of one revision, and how far it has judged.
#[derive(Debug, Clone)]
pub struct Progress {
    fingerprint: u64,
    judge: Judge,
    until: f64,
    first_rollback: Option<Judgement>,
    last: Option<Judgement>,
}

impl Progress {
    /// Nothing judged yet of `template` for a rollout started at `from`.
    pub fn new(template: &Template, from: f64) -> Self {
        Self {
            fingerprint: 0,
            judge: Judge::new(template.judge.clone()),
            until: from,
            first_rollback: None,
            last: None,
        }
    }

    /// End of the last interval judged (the rollout's start before the first), unix seconds:
    /// where the next window begins.
    pub fn until(&self) -> f64 {
        self.until
    }

    /// The judge's answer so far: the first rollback, else the latest judgement (`None` before
    /// the first interval).
    pub fn judgement(&self) -> Option<&Judgement> {
        self.first_rollback.as_ref().or(self.last.as_ref())
    }

    /// Judges the next intervals, each in the step of `plan` it belonged to (from `history`,
    /// when each step began).
    ///
    /// # Errors
    /// When the samples do not match the template's metrics; the progress is then unusable.
    pub fn observe(
        &mut self,
        plan: &StepPlan,
        history: &[StepStart],
        intervals: &[WindowInterval],
    ) -> Result<(), AnalysisError> {
        let ends: Vec<f64> = intervals.iter().map(|i| i.t).collect();
        let contexts = step_contexts(plan, history, &ends);
        for (interval, ctx) in intervals.iter().zip(contexts) {
            let j = self.judge.observe(ctx, &interval.samples)?;
            self.until = interval.t;
            if j.decision == Decision::Rollback && self.first_rollback.is_none() {
                self.first_rollback = Some(j.clone());
            }
            self.last = Some(j);
        }
        Ok(())
    }
}

/// What a progress was built from: if any of it changes, the evidence starts over.
fn fingerprint(template: &Template, args: &[(String, String)], revision: &str, from: f64) -> u64 {
    let mut h = DefaultHasher::new();
    template.source_name.hash(&mut h);
    serde_json::to_vec(&template.file)
        .unwrap_or_default()
        .hash(&mut h);
    args.hash(&mut h);
    revision.hash(&mut h);
    from.to_bits().hash(&mut h);
    h.finish()
}

impl JudgeMemory {
    /// A memory for at most `capacity` Rollouts.
    pub fn new(capacity: usize) -> Self {
        Self {
            kept: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// Takes the progress of `template` for the rollout of `revision` started at `from` out of
    /// the memory, or a fresh one (nothing judged, `until == from`) when there is none that
    /// matches. Give it back with [`JudgeMemory::keep`].
    pub fn take(
        &self,
        namespace: &str,
        rollout: &str,
        template: &Template,
        args: &[(String, String)],
        revision: &str,
        from: f64,
    ) -> Progress {
        let fingerprint = fingerprint(template, args, revision, from);
        let kept = self
            .lock()
            .templates(namespace, rollout)
            .and_then(|templates| templates.remove(template.source_name.as_str()));
        match kept {
            Some(p) if p.fingerprint == fingerprint => p,
            _ => Progress {
                fingerprint,
                ..Progress::new(template, from)
            },
        }
    }

    /// Keeps a template's progress for the next reconcile.
    pub fn keep(&self, namespace: &str, rollout: &str, template: &Template, progress: Progress) {
        let mut kept = self.lock();
        if let Some(templates) = kept.templates(namespace, rollout) {
            templates.insert(template.source_name.clone(), progress);
            return;
        }
        if kept.rollouts >= self.capacity {
            let victim = kept
                .by_namespace
                .iter()
                .find_map(|(ns, rollouts)| rollouts.keys().next().map(|r| (ns.clone(), r.clone())));
            if let Some((ns, r)) = victim {
                kept.remove(&ns, &r);
            }
        }
        kept.by_namespace
            .entry(namespace.to_string())
            .or_default()
            .entry(rollout.to_string())
            .or_default()
            .insert(template.source_name.clone(), progress);
        kept.rollouts += 1;
    }

    /// Drops everything kept for a Rollout (no longer analysed, or deleted).
    pub fn forget(&self, namespace: &str, rollout: &str) {
        self.lock().remove(namespace, rollout);
    }

    /// Rollouts with kept progress.
    pub fn len(&self) -> usize {
        self.lock().rollouts
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A panic while holding the lock leaves whole entries (each is replaced at once).
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::StepContext;
    use crate::controller::validate::validate;
    use crate::simulation::{Generator, Scenario};

    const T0: f64 = 1_763_856_000.0;

    fn template() -> Template {
        crate::template::parse(
            include_str!("../../analysis-templates/generic-http.yaml"),
            "generic-http.yaml",
        )
        .unwrap()
    }

    fn plan() -> StepPlan {
        let spec = serde_saphyr::from_str(
            r#"
targetRef: {name: web}
strategy:
  canary:
    analysis: {templates: [{templateName: generic-http}]}
    steps:
      - setWeight: 10
      - pause: {duration: 5m}
      - setWeight: 50
      - pause: {duration: 10m}
"#,
        )
        .unwrap();
        validate(&spec).unwrap().lifecycle.plan
    }

    /// Step 0 from T0, step 1 from T0 + 5 min.
    fn history() -> Vec<StepStart> {
        vec![
            StepStart { step: 0, at: T0 },
            StepStart {
                step: 1,
                at: T0 + 300.0,
            },
        ]
    }

    /// Fifteen one-minute intervals of a canary that serves `error_add` more errors.
    fn intervals(template: &Template, error_add: f64) -> Vec<WindowInterval> {
        let scenario = Scenario {
            interval: 60.0,
            canary_error_add: error_add,
            ..Scenario::identical("t", "t", 200.0)
        };
        let mut generator = Generator::new(scenario, 7);
        (1..=15)
            .map(|k| {
                let t = T0 + 60.0 * f64::from(k);
                let weight = if k <= 5 { 10.0 } else { 50.0 };
                let sim = generator.interval(StepContext {
                    t,
                    step: usize::from(k > 5),
                    weight,
                    step_complete: false,
                    last_step: k > 5,
                });
                WindowInterval {
                    t,
                    samples: sim.samples(&template.judge),
                }
            })
            .collect()
    }

    #[test]
    fn judging_in_pieces_gives_the_replays_judgements() {
        let (template, plan, history) = (template(), plan(), history());
        for error_add in [0.0, 0.02] {
            let all = intervals(&template, error_add);
            let mut replay = Progress::new(&template, T0);
            replay.observe(&plan, &history, &all).unwrap();

            let memory = JudgeMemory::default();
            let mut answers = Vec::new();
            // Reconciles at uneven moments, one to four intervals apart.
            for piece in [
                &all[0..1],
                &all[1..4],
                &all[4..6],
                &all[6..10],
                &all[10..15],
            ] {
                let mut p = memory.take("shop", "web", &template, &[], "v2", T0);
                assert_eq!(p.until(), piece[0].t - 60.0, "resumes where it stopped");
                p.observe(&plan, &history, piece).unwrap();
                answers.push(p.judgement().cloned());
                memory.keep("shop", "web", &template, p);
            }
            let last = memory.take("shop", "web", &template, &[], "v2", T0);
            assert_eq!(
                last.judgement(),
                replay.judgement(),
                "error_add {error_add}"
            );
            assert_eq!(last.until(), T0 + 900.0);
            if error_add > 0.0 {
                // The regression is found, and the first rollback stays the answer.
                let first = replay.judgement().unwrap();
                assert_eq!(first.decision, Decision::Rollback);
                assert!(first.t < T0 + 900.0, "found before the end: {}", first.t);
                assert_eq!(answers.last().unwrap().as_ref(), Some(first));
            } else {
                assert_ne!(replay.judgement().unwrap().decision, Decision::Rollback);
            }
        }
    }

    #[test]
    fn another_revision_a_restart_or_changed_arguments_start_the_evidence_over() {
        let (template, plan, history) = (template(), plan(), history());
        let all = intervals(&template, 0.0);
        let memory = JudgeMemory::default();
        let mut p = memory.take("shop", "web", &template, &[], "v2", T0);
        p.observe(&plan, &history, &all[..3]).unwrap();
        memory.keep("shop", "web", &template, p);

        let args = [("service".to_string(), "web".to_string())];
        for (revision, from, args) in [
            ("v3", T0, &[][..]),
            ("v2", T0 + 120.0, &[][..]),
            ("v2", T0, &args[..]),
        ] {
            let fresh = memory.take("shop", "web", &template, args, revision, from);
            assert_eq!(fresh.until(), from);
            assert_eq!(fresh.judgement(), None);
        }
        // Each take removed what it found: the kept one is gone too.
        assert_eq!(
            memory.take("shop", "web", &template, &[], "v2", T0).until(),
            T0
        );
    }

    #[test]
    fn the_memory_is_bounded_and_forgets_finished_rollouts() {
        let template = template();
        let memory = JudgeMemory::new(3);
        for name in ["a", "b", "c", "d", "e"] {
            let p = memory.take("shop", name, &template, &[], "v2", T0);
            memory.keep("shop", name, &template, p);
            assert!(memory.len() <= 3);
        }
        assert_eq!(memory.len(), 3);
        memory.forget("shop", "e");
        assert_eq!(memory.len(), 2);
        memory.forget("shop", "nobody");
        assert_eq!(memory.len(), 2);
    }
}
