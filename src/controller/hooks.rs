//! Stage *hooks*: calls the webhooks that are due (which and when is the lifecycle's
//! [`due`](crate::rollout::lifecycle::hooks::due)) and says what became of each attempt, for
//! *decide* to act on.
//!
//! Each reconcile makes at most one attempt per due webhook. The attempt runs in a task of its
//! own, bounded by the webhook's `timeout` (at most 15 minutes): the reconcile waits for it
//! only [`INLINE_WAIT`] (a quick answer is acted on at once), so a slow endpoint never holds
//! a reconcile slot, and other Rollouts — a rollback among them — never queue behind it. The
//! answer is collected by a later reconcile (the lifecycle wakes the Rollout for it, soon at
//! first, then at most every 15 s). Retries are later reconciles too, after the backoff of
//! [`crate::delivery::PostConfig::pause_before`] (5 s doubling to 30 s, or the endpoint's
//! `Retry-After` up to 5 minutes), the same policy as the notifications' POSTs: no connection,
//! no answer in time, 5xx and 429 are retried, other answers are final.
//!
//! Progress lives in the Rollout's status (`status.hooks`): a run that passed or failed is
//! never called again, after a restart neither. In memory the runner keeps each attempt's
//! answer until a status read shows it recorded, so a reconcile working from a copy of the
//! status older than the attempt (a watch cache that has not caught up) takes that answer
//! rather than calling again. An attempt the status shows under way that this process never
//! started (the controller restarted, or the leader changed) has no known answer and counts as
//! one that got none.
//!
//! The body is JSON, schema `canarygate.dev/hook/v1` ([`payload`]); the headers
//! `X-Canary-Gate-Hook`, `X-Canary-Gate-Delivery` (one id per run, the same in every attempt:
//! drop repeats by it) and `X-Canary-Gate-Attempt` go with it, beside the webhook's own.
//! Messages and logs name the URL's host and port, never its path or query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::crd::Rollout;
use crate::crd::rollout::RolloutStatus;
use crate::delivery::{DeliveryError, PostConfig, Poster};
use crate::rollout::lifecycle::hooks::due;
use crate::rollout::lifecycle::{HookEvent, HookKey, HookOutcome, HookPhase, HookRun};
use crate::traffic::workload::{self, Role};

use super::reconcile::Context;
use super::status::state_of;
use super::telemetry::WebhookLabel;
use super::validate::{HookDef, MAX_HOOK_TIMEOUT};

/// The payload's schema.
pub const HOOK_API_VERSION: &str = "canarygate.dev/hook/v1";
/// How long a reconcile waits for the answer of an attempt it started or found under way.
pub const INLINE_WAIT: Duration = Duration::from_secs(2);
/// Pause before the first retry (it doubles for each further one, at most 30 s).
pub const HOOK_BACKOFF: Duration = Duration::from_secs(5);
/// The longest `Retry-After` obeyed; an endpoint asking for longer has failed.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Attempts under way at once in all; a due webhook beyond waits for the next reconcile.
const MAX_IN_FLIGHT: usize = 256;
/// An attempt's answer is forgotten this long after it began even if no status read showed it
/// recorded (its Rollout was deleted): longer than any attempt.
const SLOT_TTL: Duration = Duration::from_secs(3600);

/// One attempt of one run of one Rollout's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    /// `namespace/name/uid` of the Rollout.
    rollout: String,
    key: HookKey,
    attempt: u32,
}

/// An attempt under way or answered.
struct Slot {
    /// When it began, unix seconds.
    started_at: f64,
    /// When it began, for the TTL.
    created: Instant,
    /// Its answer, once there is one.
    answer: watch::Receiver<Option<HookOutcome>>,
}

/// The webhook attempts of this process: under way, or answered and not yet seen recorded in
/// a Rollout's status.
pub struct HookRunner {
    poster: OnceLock<Result<Arc<Poster>, DeliveryError>>,
    slots: Mutex<HashMap<SlotKey, Slot>>,
    permits: Arc<Semaphore>,
    inline_wait: Duration,
}

impl Default for HookRunner {
    fn default() -> Self {
        Self::new(INLINE_WAIT)
    }
}

impl std::fmt::Debug for HookRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookRunner")
            .field("attempts", &self.slots.lock().map_or(0, |s| s.len()))
            .finish_non_exhaustive()
    }
}

impl HookRunner {
    /// A runner whose reconciles wait `inline_wait` for the answers of the attempts they start.
    pub fn new(inline_wait: Duration) -> Self {
        Self {
            poster: OnceLock::new(),
            slots: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            inline_wait,
        }
    }

    /// Attempts under way or answered that no status read has shown recorded yet.
    pub fn attempts_held(&self) -> usize {
        self.slots.lock().map_or(0, |s| s.len())
    }

    fn poster(&self) -> Result<Arc<Poster>, DeliveryError> {
        self.poster
            .get_or_init(|| {
                let config = PostConfig {
                    timeout: MAX_HOOK_TIMEOUT,
                    retries: 0,
                    backoff: HOOK_BACKOFF,
                    max_retry_after: MAX_RETRY_AFTER,
                };
                // Plain http needs no CA certificates; https without them fails per attempt.
                Poster::new("webhooks", config, HeaderMap::new(), true, Vec::new()).map(Arc::new)
            })
            .clone()
    }

    /// Forgets the answers `runs` (a status as read) show recorded, the attempts of runs that
    /// are gone, and anything older than the TTL.
    fn forget_recorded(&self, rollout: &str, runs: &[HookRun]) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        slots.retain(|k, slot| {
            if slot.created.elapsed() > SLOT_TTL {
                return false;
            }
            if k.rollout != rollout {
                return true;
            }
            match runs.iter().find(|r| r.key == k.key) {
                None => false,
                Some(r) => {
                    r.attempts < k.attempt
                        || (r.attempts == k.attempt && r.phase == HookPhase::Running)
                }
            }
        });
    }

    /// The attempt's start and its answer channel, if this process started it.
    fn lookup(&self, key: &SlotKey) -> Option<(f64, watch::Receiver<Option<HookOutcome>>)> {
        let slots = self.slots.lock().ok()?;
        slots
            .get(key)
            .map(|slot| (slot.started_at, slot.answer.clone()))
    }

    /// Starts the attempt in a task of its own; `None` when too many are under way.
    fn start(
        &self,
        key: SlotKey,
        def: &HookDef,
        (body, headers): (Vec<u8>, HeaderMap),
        counted: Option<Family<WebhookLabel, Counter>>,
        now: f64,
    ) -> Option<watch::Receiver<Option<HookOutcome>>> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        let (tx, rx) = watch::channel(None);
        let poster = self.poster();
        let def = def.clone();
        let attempt = key.attempt;
        let rollout = key.rollout.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let result = match poster {
                Ok(poster) => {
                    poster
                        .post_once(&def.url, &body, headers, def.timeout)
                        .await
                }
                Err(e) => Err(e),
            };
            let outcome = outcome(result, &def, attempt);
            if let Some(family) = counted {
                let result = match (outcome.passed, outcome.retry_in) {
                    (true, _) => "passed",
                    (false, Some(_)) => "retrying",
                    (false, None) => "failed",
                };
                family
                    .get_or_create(&WebhookLabel {
                        kind: def.kind.as_str().into(),
                        result: result.into(),
                    })
                    .inc();
            }
            tracing::info!(
                rollout = %rollout,
                hook = %def.name,
                host = %def.host,
                attempt,
                passed = outcome.passed,
                answer = %outcome.answer,
                retry_in = outcome.retry_in,
                "webhook attempt"
            );
            let _ = tx.send(Some(outcome));
        });
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(
                key,
                Slot {
                    started_at: now,
                    created: Instant::now(),
                    answer: rx.clone(),
                },
            );
        }
        Some(rx)
    }
}

/// How a webhook's attempts are retried (the notifications' policy with its own bounds).
fn retry_policy(def: &HookDef) -> PostConfig {
    PostConfig {
        timeout: def.timeout,
        retries: def.retries,
        backoff: HOOK_BACKOFF,
        max_retry_after: MAX_RETRY_AFTER,
    }
}

/// What attempt `attempt` came to: 2xx passes; a failure another attempt may fix is retried
/// while retries remain.
fn outcome(result: Result<u16, DeliveryError>, def: &HookDef, attempt: u32) -> HookOutcome {
    match result {
        Ok(code) => HookOutcome {
            passed: true,
            answer: format!("answered {code}"),
            retry_in: None,
        },
        Err(e) => HookOutcome {
            passed: false,
            answer: scrub(&e.to_string(), def),
            retry_in: retry_policy(def)
                .pause_before(attempt.saturating_sub(1), &e)
                .map(|d| d.as_secs_f64()),
        },
    }
}

/// An attempt whose answer was lost (this process never started it: the controller restarted
/// while it ran): it counts as one that got no answer.
fn lost(def: &HookDef, attempt: u32) -> HookOutcome {
    let no_answer = DeliveryError::Timeout {
        timeout: def.timeout,
    };
    HookOutcome {
        passed: false,
        answer: format!(
            "attempt {attempt}'s answer is unknown: the controller restarted while it ran"
        ),
        retry_in: retry_policy(def)
            .pause_before(attempt.saturating_sub(1), &no_answer)
            .map(|d| d.as_secs_f64()),
    }
}

/// `text` without the URL's query values and the headers' values, which may carry tokens an
/// endpoint echoes back.
fn scrub(text: &str, def: &HookDef) -> String {
    let mut out = text.to_string();
    let values = def
        .url
        .query_pairs()
        .map(|(_, v)| v.into_owned())
        .chain(def.headers.iter().map(|(_, v)| v.clone()));
    for value in values {
        if value.len() >= 4 {
            out = out.replace(&value, "***");
        }
    }
    out
}

fn rollout_id(rollout: &Rollout) -> String {
    format!(
        "{}/{}/{}",
        rollout.namespace().unwrap_or_default(),
        rollout.name_any(),
        rollout.uid().unwrap_or_default()
    )
}

/// One id per run of a webhook (FNV-1a 64 over the Rollout's uid and the run), the same in
/// every attempt.
pub fn delivery_id(rollout: &Rollout, key: &HookKey) -> String {
    let text = format!(
        "{}/{}/{}/{}/{}/{}",
        rollout_id(rollout),
        key.kind.as_str(),
        key.name,
        key.revision,
        key.step.map_or(String::new(), |s| s.to_string()),
        HOOK_API_VERSION,
    );
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The JSON body of attempt `attempt` of `run` (schema [`HOOK_API_VERSION`]; later versions
/// only add fields). `name` / `namespace` are the Rollout's, as in Flagger's webhook payload,
/// so receivers written for Flagger (its load tester reads `metadata.cmd`) read it too.
pub fn payload(
    rollout: &Rollout,
    status: &RolloutStatus,
    def: &HookDef,
    run: &HookRun,
    attempt: u32,
    now: f64,
) -> Value {
    let target = &rollout.spec.target_ref.name;
    json!({
        "apiVersion": HOOK_API_VERSION,
        "id": delivery_id(rollout, &run.key),
        "hook": {"name": run.key.name, "kind": run.key.kind.as_str()},
        "attempt": attempt,
        "name": rollout.name_any(),
        "namespace": rollout.namespace().unwrap_or_default(),
        "revision": run.key.revision,
        "stableRevision": status.stable_revision,
        "step": run.key.step,
        "weight": status.canary_weight.unwrap_or(0),
        "phase": status.phase,
        "time": crate::time::rfc3339(now),
        "workloads": {
            "stable": workload::name(target, Role::Stable),
            "canary": workload::name(target, Role::Canary),
        },
        "metadata": def.metadata,
    })
}

fn headers(def: &HookDef, id: &str, attempt: u32) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in &def.headers {
        // Checked by validate; a header that still does not parse is left out.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    let mut ours = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(HeaderName::from_static(name), value);
        }
    };
    ours("x-canary-gate-hook", &def.name);
    ours("x-canary-gate-delivery", id);
    ours("x-canary-gate-attempt", &attempt.to_string());
    map
}

/// Makes at most one attempt per due webhook of the Rollout, for the target's `revision` (none
/// for a step or the promotion while a human's action is pending: it ends that gate), waits
/// [`INLINE_WAIT`] at most for their answers, and says what happened. Never an error: an
/// endpoint that fails is an answer for the lifecycle.
pub async fn hooks(
    ctx: &Context,
    rollout: &Rollout,
    validated: &super::validate::ValidatedRollout,
    status: &RolloutStatus,
    revision: &str,
    acting: bool,
    now: f64,
) -> Vec<HookEvent> {
    if status.hooks.is_empty() && validated.hooks.is_empty() {
        // No webhook: nothing to call or to forget (the common reconcile).
        return Vec::new();
    }
    let runner = &ctx.hooks;
    let state = state_of(status);
    let id = rollout_id(rollout);
    runner.forget_recorded(&id, &state.hooks);
    let mut events = Vec::new();
    let mut waiting = Vec::new();
    for run in due(&state, revision, acting, now) {
        let Some(def) = validated.hook(run.key.kind, &run.key.name) else {
            // Removed from the spec: the lifecycle skips it.
            continue;
        };
        let attempt = match run.phase {
            HookPhase::Running => run.attempts,
            _ => run.attempts + 1,
        };
        let slot = SlotKey {
            rollout: id.clone(),
            key: run.key.clone(),
            attempt,
        };
        let finished = |outcome| HookEvent::Finished {
            key: run.key.clone(),
            attempt,
            outcome,
        };
        match runner.lookup(&slot) {
            Some((started_at, answer)) => {
                let known = answer.borrow().clone();
                if let Some(outcome) = known {
                    events.push(finished(outcome));
                    continue;
                }
                if answer.has_changed().is_err() {
                    // The task ended without an answer (it cannot, short of a panic).
                    events.push(finished(lost(def, attempt)));
                    continue;
                }
                if run.phase == HookPhase::Pending {
                    events.push(HookEvent::Started {
                        key: run.key.clone(),
                        attempt,
                        at: started_at,
                    });
                }
                waiting.push((run.key.clone(), attempt, answer));
            }
            None if run.phase == HookPhase::Running => events.push(finished(lost(def, attempt))),
            None => {
                let body = payload(rollout, status, def, run, attempt, now);
                let body = serde_json::to_vec(&body).unwrap_or_default();
                let headers = headers(def, &delivery_id(rollout, &run.key), attempt);
                let counted = ctx.telemetry.as_ref().map(|t| t.webhook_attempts.clone());
                match runner.start(slot, def, (body, headers), counted, now) {
                    Some(answer) => {
                        events.push(HookEvent::Started {
                            key: run.key.clone(),
                            attempt,
                            at: now,
                        });
                        waiting.push((run.key.clone(), attempt, answer));
                    }
                    None => tracing::warn!(
                        hook = %run.key.name,
                        "{MAX_IN_FLIGHT} webhook attempts under way; this one waits for the next reconcile"
                    ),
                }
            }
        }
    }
    // A quick answer is taken at once; a slow one by a later reconcile.
    let deadline = tokio::time::Instant::now() + runner.inline_wait;
    for (key, attempt, mut answer) in waiting {
        let _ = tokio::time::timeout_at(deadline, answer.wait_for(Option::is_some)).await;
        let known = answer.borrow().clone();
        if let Some(outcome) = known {
            events.push(HookEvent::Finished {
                key,
                attempt,
                outcome,
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::lifecycle::HookKind;

    fn def(url: &str, headers: &[(&str, &str)]) -> HookDef {
        let url = reqwest::Url::parse(url).unwrap();
        HookDef {
            kind: HookKind::Step,
            name: "smoke".into(),
            host: url.host_str().unwrap().to_string(),
            url,
            timeout: Duration::from_secs(10),
            retries: 2,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            metadata: Default::default(),
        }
    }

    #[test]
    fn tokens_an_endpoint_echoes_are_scrubbed_from_its_answer() {
        let d = def(
            "http://smoke.shop:8080/run?token=s3cr3t-t0ken&x=1",
            &[("Authorization", "Bearer abcdefgh")],
        );
        assert_eq!(
            scrub("bad token s3cr3t-t0ken for Bearer abcdefgh (x=1)", &d),
            "bad token *** for *** (x=1)"
        );
    }

    #[test]
    fn an_answer_passes_on_2xx_and_a_failure_is_retried_only_when_another_attempt_may_fix_it() {
        let d = def("http://smoke.shop/", &[]);
        assert_eq!(
            outcome(Ok(204), &d, 1),
            HookOutcome {
                passed: true,
                answer: "answered 204".into(),
                retry_in: None
            }
        );
        let status = |status| DeliveryError::Status {
            status,
            body: "nope".into(),
            retry_after: None,
        };
        let failed = outcome(Err(status(503)), &d, 1);
        assert_eq!(
            (failed.passed, failed.answer.as_str(), failed.retry_in),
            (false, "answered 503: nope", Some(5.0))
        );
        assert_eq!(outcome(Err(status(503)), &d, 2).retry_in, Some(10.0));
        // Retries: 2, so the third attempt is the last.
        assert_eq!(outcome(Err(status(503)), &d, 3).retry_in, None);
        assert_eq!(outcome(Err(status(400)), &d, 1).retry_in, None);
        let lost = lost(&d, 1);
        assert_eq!(lost.retry_in, Some(5.0));
        assert!(lost.answer.contains("restarted"), "{}", lost.answer);
    }
}
