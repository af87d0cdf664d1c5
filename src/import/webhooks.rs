//! Flagger's webhooks as canary-gate's, where the meaning carries over, with what differs in
//! the report:
//!
//! | Flagger `type` | canary-gate | what differs |
//! |---|---|---|
//! | `pre-rollout` | a `webhook` step before the first weight (0 %) | called once with retries, not once per interval until `threshold` failed checks |
//! | `rollout` (the default) | a `webhook` step at each weight | called once per step, not at every interval |
//! | `confirm-promotion` | `spec.hooks.prePromotion`, `onFailure: Pause` | a refusal pauses for a human instead of asking again every interval |
//! | `post-rollout` | `spec.hooks.postPromotion` | after a promotion only, not after a rollback |
//! | `confirm-rollout`, `confirm-traffic-increase`, `rollback`, `event` | left out | canary-gate's webhooks pass or fail, they do not wait for an approval; `abort`; notifications |
//!
//! Flagger counted a failing `pre-rollout` or `rollout` webhook as a failed check and rolled back
//! after `threshold` of them, one per interval: the imported webhook gets `threshold - 1`
//! retries (at most 10) and rolls back. canary-gate's payload carries Flagger's `name`,
//! `namespace`, `phase` and `metadata`, so receivers written for Flagger (its load tester's
//! `metadata.cmd`) read it.

use serde_json::Value;

use crate::controller::validate::{HookKind, MAX_HOOK_RETRIES, MAX_HOOK_TIMEOUT, webhook};
use crate::crd::rollout::{CanaryStep, HookFailurePolicy, Webhook};

use super::fields::{Doc, FieldPath};
use super::report::Report;

/// What the Canary's webhooks became.
#[derive(Debug, Default)]
pub struct Imported {
    /// `pre-rollout`: webhook steps before the first weight.
    pub before_steps: Vec<Webhook>,
    /// `rollout`: a webhook step at each weight (named per weight when placed).
    pub at_each_weight: Vec<Webhook>,
    /// `confirm-promotion` (and, for blue-green, `pre-rollout`).
    pub pre_promotion: Vec<Webhook>,
    /// `post-rollout`.
    pub post_promotion: Vec<Webhook>,
}

impl Imported {
    /// Places the step webhooks in `steps`: `pre-rollout` ones first (at 0 %), `rollout` ones
    /// right after each `setWeight` (`<name>-<n>` for the n-th weight).
    pub fn place(&self, steps: &mut Vec<CanaryStep>) {
        let mut out: Vec<CanaryStep> = self
            .before_steps
            .iter()
            .map(|w| CanaryStep {
                webhook: Some(w.clone()),
                ..CanaryStep::default()
            })
            .collect();
        let mut n = 0;
        for step in steps.drain(..) {
            let weight = step.set_weight.is_some();
            out.push(step);
            if weight {
                n += 1;
                for w in &self.at_each_weight {
                    let mut w = w.clone();
                    w.name = w.name.map(|name| format!("{name}-{n}"));
                    out.push(CanaryStep {
                        webhook: Some(w),
                        ..CanaryStep::default()
                    });
                }
            }
        }
        *steps = out;
    }

    /// Whether any webhook carried over.
    pub fn is_empty(&self) -> bool {
        self.before_steps.is_empty()
            && self.at_each_weight.is_empty()
            && self.pre_promotion.is_empty()
            && self.post_promotion.is_empty()
    }
}

/// A webhook name canary-gate accepts: letters, digits, `-`, `_`, `.` (others become `-`),
/// at most 60 characters (room for a per-weight suffix), unique among `taken`.
fn name_of(given: &str, index: usize, taken: &mut Vec<String>) -> String {
    let mut name: String = given
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    if name.trim_matches('-').is_empty() {
        name = format!("webhook-{index}");
    }
    let base = name.clone();
    let mut k = 2;
    while taken.contains(&name) {
        name = format!("{base}-{k}");
        k += 1;
    }
    taken.push(name.clone());
    name
}

/// Imports the webhooks at `at` (`spec.analysis.webhooks`) of a Canary whose analysis allows
/// `threshold` failed checks; `blue_green`: it has no weight steps.
pub fn import(
    doc: &Doc,
    at: &FieldPath,
    threshold: Option<i64>,
    blue_green: bool,
    report: &mut Report,
) -> Imported {
    let mut imported = Imported::default();
    let mut taken = Vec::new();
    let retries = threshold.map(|t| {
        u32::try_from((t - 1).max(0))
            .unwrap_or(0)
            .min(MAX_HOOK_RETRIES)
    });
    for i in 0..doc.len(at) {
        let h = at.index(i);
        let text = |f: &str| {
            doc.at(&h.key(f))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let kind = text("type").unwrap_or_else(|| "rollout".into());
        let url = text("url").unwrap_or_default();
        if url.contains("/v1/flagger/") {
            report.left_out(doc, &h, "a canary-gate gate webhook: canary-gate now judges in-process — reference that template in the Rollout's analysis instead");
            continue;
        }
        let why_not = match kind.as_str() {
            "confirm-rollout" => Some(
                "an approval before the rollout starts: canary-gate's webhooks pass or fail, they do not wait for an approval — start the rollout by changing the Deployment once approved, or begin with a `pause: {}` step that your approval system ends with `canary-gate promote`",
            ),
            "confirm-traffic-increase" => Some(
                "an approval before each weight: canary-gate's webhooks pass or fail, they do not wait — add `pause: {}` steps that your approval system ends with `canary-gate promote`",
            ),
            "rollback" => Some("a manual rollback trigger: use `canary-gate abort`"),
            "event" => Some(
                "event notifications: list a webhook sink of the controller's --notifications-config in spec.notifications",
            ),
            "rollout" if blue_green => Some(
                "blue-green has no steps for a webhook to run at during the analysis; the judge needs traffic on the preview — generate it from outside (or use canary steps)",
            ),
            "pre-rollout" | "rollout" | "confirm-promotion" | "post-rollout" => None,
            _ => Some("not a Flagger webhook type canary-gate knows"),
        };
        if let Some(why) = why_not {
            report.left_out(doc, &h, why);
            continue;
        }
        let name = name_of(&text("name").unwrap_or_default(), i, &mut taken);
        let mut w = Webhook {
            name: Some(name),
            url: url.clone(),
            ..Webhook::default()
        };
        if let Some(timeout) = text("timeout") {
            match humantime::parse_duration(&timeout) {
                Ok(d) if d > MAX_HOOK_TIMEOUT => {
                    w.timeout = Some("15m".into());
                    report.changed(doc, h.key("timeout"), format!("{timeout} is longer than one attempt may take in canary-gate: 15m"));
                }
                Ok(d) if d.as_secs() >= 1 => {
                    w.timeout = Some(timeout.clone());
                    doc.mapped(h.key("timeout"));
                }
                _ => report.left_out(doc, h.key("timeout"), format!("{timeout:?} is not a duration of at least 1s; canary-gate's default (10s) applies")),
            }
        }
        if let Some(Value::Object(meta)) = doc.at(&h.key("metadata")) {
            for (k, v) in meta {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                w.metadata.insert(k.clone(), value);
            }
            doc.mapped(h.key("metadata"));
        }
        if doc.at(&h.key("muteAlert")).is_some() {
            report.left_out(doc, h.key("muteAlert"), "canary-gate's notifications choose their events per sink (spec.notifications), not per webhook");
        }
        let our_kind = match kind.as_str() {
            "confirm-promotion" => HookKind::PrePromotion,
            "post-rollout" => HookKind::PostPromotion,
            "pre-rollout" if blue_green => HookKind::PrePromotion,
            _ => HookKind::Step,
        };
        if matches!(kind.as_str(), "pre-rollout" | "rollout") {
            w.retries = retries;
        }
        if kind == "confirm-promotion" {
            w.on_failure = Some(HookFailurePolicy::Pause);
        }
        if let Err(e) = webhook(&h.to_string(), &w, our_kind, String::new()) {
            report.left_out(
                doc,
                &h,
                format!("canary-gate cannot call it: {}", e.problem),
            );
            continue;
        }
        let tries = match w.retries {
            Some(r) => format!("{r} retries (threshold {} − 1)", threshold.unwrap_or(1)),
            None => "its retries".to_string(),
        };
        let how = match (kind.as_str(), blue_green) {
            ("pre-rollout", false) => format!(
                "a webhook step before the first weight (the canary gets no traffic until it passes), called once with {tries} on no answer, 5xx or 429 (5 s doubling to 30 s apart), then the rollout rolls back; a 4xx fails at once — Flagger called it every interval until `threshold` failed checks"
            ),
            ("pre-rollout", true) => "a pre-promotion webhook: called once the preview's analysis passed, before the switch (Flagger called it before the analysis); a failure rolls back".to_string(),
            ("rollout", _) => format!(
                "a webhook step at each weight (named {}-1, -2, …), called once when the weight is in force with {tries}, not at every interval: a load test must run for the step's duration; a failure rolls back",
                w.name.as_deref().unwrap_or_default()
            ),
            ("confirm-promotion", _) => "a pre-promotion webhook with onFailure: Pause, called once before the promotion (retried on no answer, 5xx, 429): a refusal pauses the rollout for a human (`canary-gate promote` goes on) where Flagger asked again every interval until it answered 200".to_string(),
            _ => "a post-promotion webhook: called after a promotion only (Flagger also called it after a rollback); a failure is a Warning Event and the Hooks condition, as Flagger only logged it".to_string(),
        };
        report.changed(doc, &h, how);
        match (kind.as_str(), our_kind) {
            (_, HookKind::PrePromotion) => imported.pre_promotion.push(w),
            (_, HookKind::PostPromotion) => imported.post_promotion.push(w),
            ("pre-rollout", _) => imported.before_steps.push(w),
            _ => imported.at_each_weight.push(w),
        }
    }
    imported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_valid_and_unique() {
        let mut taken = Vec::new();
        assert_eq!(name_of("helm test", 0, &mut taken), "helm-test");
        assert_eq!(name_of("helm test", 1, &mut taken), "helm-test-2");
        assert_eq!(name_of("", 2, &mut taken), "webhook-2");
        assert_eq!(name_of(&"x".repeat(80), 3, &mut taken).len(), 56);
    }

    #[test]
    fn rollout_webhooks_follow_each_weight_and_pre_rollout_ones_come_first() {
        let hook = |name: &str| Webhook {
            name: Some(name.into()),
            url: "http://t/".into(),
            ..Webhook::default()
        };
        let imported = Imported {
            before_steps: vec![hook("smoke")],
            at_each_weight: vec![hook("load")],
            ..Imported::default()
        };
        let weight = |w| CanaryStep {
            set_weight: Some(w),
            ..CanaryStep::default()
        };
        let pause = CanaryStep {
            pause: Some(Default::default()),
            ..CanaryStep::default()
        };
        let mut steps = vec![weight(10), pause.clone(), weight(20), pause.clone()];
        imported.place(&mut steps);
        let names: Vec<String> = steps
            .iter()
            .map(|s| match (&s.webhook, s.set_weight) {
                (Some(w), _) => w.name.clone().unwrap(),
                (None, Some(w)) => format!("{w}%"),
                _ => "pause".into(),
            })
            .collect();
        assert_eq!(
            names,
            ["smoke", "10%", "load-1", "pause", "20%", "load-2", "pause"]
        );
    }
}
