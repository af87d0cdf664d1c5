//! What to annotate (pure): the Rollout's status before and after one reconcile → the Grafana
//! annotations that describe what changed (a region per ended step, a point per new decision and
//! per rollout start). No I/O; the time is a parameter.

use serde::{Deserialize, Serialize};

use crate::crd::rollout::{DecisionRecord, RolloutPhase, RolloutStatus};
use crate::decision_record::{metric_line, new_decisions};

/// The tag every canary-gate annotation carries (the dashboard's annotation query filters on it).
pub const TAG: &str = "canary-gate";

/// One Grafana annotation, serialized as the body of Grafana's `POST /api/annotations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    /// Start (or the instant, for a point), epoch milliseconds.
    pub time: i64,
    /// End of a region, epoch milliseconds; absent for a point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_end: Option<i64>,
    /// Tags: `canary-gate`, `rollout:<name>`, `namespace:<ns>`, `revision:<hash>`,
    /// `step:<index>`, `weight:<percent>`, `verdict:<outcome>`.
    pub tags: Vec<String>,
    /// What happened, one fact per line.
    pub text: String,
    /// The dashboard the annotation belongs to (set by the client from its configuration).
    #[serde(
        rename = "dashboardUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dashboard_uid: Option<String>,
    /// The panel the annotation belongs to (set by the client from its configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panel_id: Option<i64>,
}

/// Outcome of a step that ended: the judge or a human moved to the next step.
pub const ADVANCED: &str = "advanced";
/// Outcome of a step that ended: the revision is being promoted.
pub const PROMOTED: &str = "promoted";
/// Outcome of a step that ended: the judge rolled back.
pub const ROLLED_BACK: &str = "rolled-back";
/// Outcome of a step that ended: a human aborted (or undid) the rollout.
pub const ABORTED: &str = "aborted";
/// Outcome of a step that ended: a newer revision replaced the canary (starting again).
pub const RESTARTED: &str = "restarted";
/// Outcome of a step that ended: the target went back to the stable revision, canary dropped.
pub const CANCELLED: &str = "cancelled";
/// Outcome of a step that ended: the Rollout became invalid or lost its target.
pub const DEGRADED: &str = "degraded";
/// Verdict of the point that marks the start of a rollout (or of a retry).
pub const STARTED: &str = "started";

/// What changed between `old` and `new`, the Rollout's status before and after one reconcile of
/// `rollout` in `namespace` at `now_ms` (epoch milliseconds), as annotations in this order:
///
/// 1. a point per decision in `new.decisions` that is not in `old.decisions`, at the decision's
///    time, with its evidence;
/// 2. a region for the step that ended (the step index changed, the revision changed, or the
///    phase left Progressing/Holding/Paused), from the step's start to `now_ms`;
/// 3. a point when a rollout starts: a new canary revision, or a retry of the same one.
///
/// The dashboard and panel are left unset: the client fills them in from its configuration.
pub fn annotations(
    rollout: &str,
    namespace: &str,
    old: &RolloutStatus,
    new: &RolloutStatus,
    now_ms: i64,
) -> Vec<Annotation> {
    let mut out = Vec::new();
    let revision = new
        .canary_revision
        .as_deref()
        .or(old.canary_revision.as_deref());
    for record in new_decisions(&old.decisions, &new.decisions) {
        out.push(decision_point(rollout, namespace, revision, record, now_ms));
    }
    if let Some(region) = ended_step(rollout, namespace, old, new, now_ms) {
        out.push(region);
    }
    if let Some(point) = started(rollout, namespace, old, new, now_ms) {
        out.push(point);
    }
    out
}

fn decision_point(
    rollout: &str,
    namespace: &str,
    revision: Option<&str>,
    record: &DecisionRecord,
    now_ms: i64,
) -> Annotation {
    let mut text = format!(
        "{} — {}",
        step_label(rollout, record.step, Some(record.weight)),
        record.decision
    );
    if !record.reason.is_empty() {
        text.push_str(": ");
        text.push_str(&record.reason);
    }
    for metric in &record.metrics {
        text.push('\n');
        text.push_str(&metric_line(metric));
    }
    Annotation {
        time: epoch_ms(&record.time).unwrap_or(now_ms),
        time_end: None,
        tags: tags(
            rollout,
            namespace,
            revision,
            Some(record.step),
            Some(record.weight),
            &record.decision,
        ),
        text,
        dashboard_uid: None,
        panel_id: None,
    }
}

/// Whether a phase runs the steps of a canary revision.
fn on_a_step(phase: Option<RolloutPhase>) -> bool {
    matches!(
        phase,
        Some(RolloutPhase::Progressing | RolloutPhase::Holding | RolloutPhase::Paused)
    )
}

/// The region of the step `old` was on, when `new` is past it.
fn ended_step(
    rollout: &str,
    namespace: &str,
    old: &RolloutStatus,
    new: &RolloutStatus,
    now_ms: i64,
) -> Option<Annotation> {
    let revision = old.canary_revision.as_deref()?;
    if !on_a_step(old.phase) {
        return None;
    }
    let step = old.current_step_index.unwrap_or(0);
    let verdict = if new.canary_revision.is_some() && new.canary_revision != old.canary_revision {
        RESTARTED
    } else {
        match new.phase {
            Some(RolloutPhase::Promoting) => PROMOTED,
            Some(RolloutPhase::RolledBack) => ROLLED_BACK,
            Some(RolloutPhase::Aborted) => ABORTED,
            Some(RolloutPhase::Degraded) => DEGRADED,
            Some(RolloutPhase::Healthy) | None => CANCELLED,
            Some(RolloutPhase::Progressing | RolloutPhase::Holding | RolloutPhase::Paused) => {
                if new.current_step_index.unwrap_or(0) == step {
                    return None; // still on the same step
                }
                ADVANCED
            }
        }
    };
    let start = old
        .step_started_at
        .as_deref()
        .and_then(epoch_ms)
        .or_else(|| {
            old.step_history
                .iter()
                .rev()
                .find(|s| s.step == step)
                .and_then(|s| epoch_ms(&s.started_at))
        })
        .unwrap_or(now_ms)
        .min(now_ms);
    let mut text = format!(
        "{}: {verdict} after {}",
        step_label(rollout, step, old.canary_weight),
        go_duration(now_ms - start)
    );
    if let Some(last) = new.decisions.iter().rev().find(|d| d.step == step) {
        text.push('\n');
        text.push_str(&last.decision);
        if !last.reason.is_empty() {
            text.push_str(": ");
            text.push_str(&last.reason);
        }
    }
    Some(Annotation {
        time: start,
        time_end: Some(now_ms),
        tags: tags(
            rollout,
            namespace,
            Some(revision),
            Some(step),
            old.canary_weight,
            verdict,
        ),
        text,
        dashboard_uid: None,
        panel_id: None,
    })
}

/// The point of a rollout that starts: a new canary revision, or the same one started again
/// (`canary-gate retry`, which resets `startedAt`).
fn started(
    rollout: &str,
    namespace: &str,
    old: &RolloutStatus,
    new: &RolloutStatus,
    now_ms: i64,
) -> Option<Annotation> {
    let revision = new.canary_revision.as_deref()?;
    let retried = new.started_at.is_some() && new.started_at != old.started_at;
    let what = match old.canary_revision.as_deref() {
        None => format!(
            "rolling out revision {revision} against stable {}",
            new.stable_revision.as_deref().unwrap_or("?")
        ),
        Some(previous) if previous != revision => {
            format!("revision {revision} replaces canary {previous}")
        }
        Some(_) if retried => format!("retrying revision {revision}"),
        Some(_) => return None,
    };
    let step = new.current_step_index.unwrap_or(0);
    Some(Annotation {
        time: now_ms,
        time_end: None,
        tags: tags(
            rollout,
            namespace,
            Some(revision),
            Some(step),
            new.canary_weight,
            STARTED,
        ),
        text: format!(
            "{rollout}: {what}; {}",
            step_label_short(step, new.canary_weight)
        ),
        dashboard_uid: None,
        panel_id: None,
    })
}

fn tags(
    rollout: &str,
    namespace: &str,
    revision: Option<&str>,
    step: Option<i32>,
    weight: Option<i32>,
    verdict: &str,
) -> Vec<String> {
    let mut tags = vec![
        TAG.to_string(),
        format!("rollout:{rollout}"),
        format!("namespace:{namespace}"),
    ];
    if let Some(revision) = revision {
        tags.push(format!("revision:{revision}"));
    }
    if let Some(step) = step {
        tags.push(format!("step:{step}"));
    }
    if let Some(weight) = weight {
        tags.push(format!("weight:{weight}"));
    }
    tags.push(format!("verdict:{verdict}"));
    tags
}

/// `web step 1 at 10%`.
fn step_label(rollout: &str, step: i32, weight: Option<i32>) -> String {
    format!("{rollout} {}", step_label_short(step, weight))
}

/// `step 1 at 10%`.
fn step_label_short(step: i32, weight: Option<i32>) -> String {
    match weight {
        Some(w) => format!("step {step} at {w}%"),
        None => format!("step {step}"),
    }
}

/// RFC 3339 (as the status writes it) → epoch milliseconds.
fn epoch_ms(text: &str) -> Option<i64> {
    let seconds = crate::time::parse_rfc3339(text)?;
    Some((seconds * 1000.0).round() as i64)
}

/// Milliseconds as a Go-style duration in whole seconds: `45s`, `5m0s`, `1h2m3s`.
fn go_duration(ms: i64) -> String {
    let total = ms.max(0) / 1000;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::rollout::{MetricRecord, StepStart};

    /// 2025-11-23T00:00:00Z.
    const T0_MS: i64 = 1_763_856_000_000;
    const T0: &str = "2025-11-23T00:00:00Z";
    const T5M: &str = "2025-11-23T00:05:00Z";
    const T15M: &str = "2025-11-23T00:15:00Z";
    const MIN: i64 = 60_000;

    fn tags_of(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    /// Progressing on `step` at `weight` of revision `rev-b`, the step begun at `step_start`.
    fn on_step(step: i32, weight: i32, step_start: &str) -> RolloutStatus {
        let mut history = vec![StepStart {
            step: 0,
            started_at: T0.into(),
        }];
        if step > 0 {
            history.push(StepStart {
                step,
                started_at: step_start.into(),
            });
        }
        RolloutStatus {
            phase: Some(RolloutPhase::Progressing),
            current_step_index: Some(step),
            canary_weight: Some(weight),
            stable_revision: Some("rev-a".into()),
            canary_revision: Some("rev-b".into()),
            started_at: Some(T0.into()),
            step_started_at: Some(step_start.into()),
            step_history: history,
            ..RolloutStatus::default()
        }
    }

    fn decision(
        time: &str,
        step: i32,
        weight: i32,
        decision: &str,
        reason: &str,
    ) -> DecisionRecord {
        DecisionRecord {
            time: time.into(),
            step,
            weight,
            decision: decision.into(),
            reason: reason.into(),
            window_start: Some(T0.into()),
            metrics: Vec::new(),
        }
    }

    fn point(time: i64, tags: &[&str], text: &str) -> Annotation {
        Annotation {
            time,
            time_end: None,
            tags: tags_of(tags),
            text: text.into(),
            dashboard_uid: None,
            panel_id: None,
        }
    }

    fn region(time: i64, end: i64, tags: &[&str], text: &str) -> Annotation {
        Annotation {
            time_end: Some(end),
            ..point(time, tags, text)
        }
    }

    #[test]
    fn a_rollout_start_is_a_point() {
        let old = RolloutStatus {
            phase: Some(RolloutPhase::Healthy),
            stable_revision: Some("rev-a".into()),
            canary_weight: Some(0),
            ..RolloutStatus::default()
        };
        let new = on_step(0, 10, T0);
        assert_eq!(
            annotations("web", "shop", &old, &new, T0_MS),
            vec![point(
                T0_MS,
                &[
                    "canary-gate",
                    "rollout:web",
                    "namespace:shop",
                    "revision:rev-b",
                    "step:0",
                    "weight:10",
                    "verdict:started",
                ],
                "web: rolling out revision rev-b against stable rev-a; step 0 at 10%",
            )]
        );
    }

    #[test]
    fn a_step_advance_is_a_decision_point_and_the_steps_region() {
        let old = on_step(0, 10, T0);
        let mut new = on_step(1, 50, T5M);
        new.decisions = vec![decision(T5M, 0, 10, "continue", "no evidence of harm")];
        let now = T0_MS + 5 * MIN;
        assert_eq!(
            annotations("web", "shop", &old, &new, now),
            vec![
                point(
                    now,
                    &[
                        "canary-gate",
                        "rollout:web",
                        "namespace:shop",
                        "revision:rev-b",
                        "step:0",
                        "weight:10",
                        "verdict:continue",
                    ],
                    "web step 0 at 10% — continue: no evidence of harm",
                ),
                region(
                    T0_MS,
                    now,
                    &[
                        "canary-gate",
                        "rollout:web",
                        "namespace:shop",
                        "revision:rev-b",
                        "step:0",
                        "weight:10",
                        "verdict:advanced",
                    ],
                    "web step 0 at 10%: advanced after 5m0s\ncontinue: no evidence of harm",
                ),
            ]
        );
    }

    #[test]
    fn a_human_advance_without_a_decision_has_no_reason_line() {
        let mut old = on_step(1, 50, T5M);
        old.phase = Some(RolloutPhase::Paused);
        let new = on_step(2, 100, T15M);
        let now = T0_MS + 15 * MIN;
        let got = annotations("web", "shop", &old, &new, now);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].time, T0_MS + 5 * MIN);
        assert_eq!(got[0].time_end, Some(now));
        assert_eq!(got[0].text, "web step 1 at 50%: advanced after 10m0s");
    }

    #[test]
    fn a_promotion_ends_the_last_step() {
        let mut old = on_step(1, 50, T5M);
        old.decisions = vec![decision(T5M, 0, 10, "continue", "no evidence of harm")];
        let mut new = old.clone();
        new.phase = Some(RolloutPhase::Promoting);
        new.canary_weight = Some(100);
        new.decisions
            .push(decision(T15M, 1, 50, "promote", "every metric passes"));
        let now = T0_MS + 15 * MIN;
        let tags_with = |verdict: &str| {
            vec![
                "canary-gate".to_string(),
                "rollout:web".into(),
                "namespace:shop".into(),
                "revision:rev-b".into(),
                "step:1".into(),
                "weight:50".into(),
                format!("verdict:{verdict}"),
            ]
        };
        assert_eq!(
            annotations("web", "shop", &old, &new, now),
            vec![
                Annotation {
                    time: now,
                    time_end: None,
                    tags: tags_with("promote"),
                    text: "web step 1 at 50% — promote: every metric passes".into(),
                    dashboard_uid: None,
                    panel_id: None,
                },
                Annotation {
                    time: T0_MS + 5 * MIN,
                    time_end: Some(now),
                    tags: tags_with("promoted"),
                    text: "web step 1 at 50%: promoted after 10m0s\npromote: every metric passes"
                        .into(),
                    dashboard_uid: None,
                    panel_id: None,
                },
            ]
        );
        // Promoting → Healthy (the stable workload took the revision): nothing more to say.
        let mut healthy = new.clone();
        healthy.phase = Some(RolloutPhase::Healthy);
        healthy.stable_revision = Some("rev-b".into());
        healthy.canary_revision = None;
        healthy.current_step_index = None;
        healthy.canary_weight = Some(0);
        assert_eq!(
            annotations("web", "shop", &new, &healthy, now + MIN),
            vec![]
        );
    }

    #[test]
    fn a_rollback_carries_each_metrics_evidence() {
        let old = on_step(1, 50, T5M);
        let mut new = old.clone();
        new.phase = Some(RolloutPhase::RolledBack);
        new.canary_weight = Some(0);
        new.decisions = vec![DecisionRecord {
            metrics: vec![
                crate::decision_record::failing_error_rate(),
                MetricRecord {
                    name: "latency-p99".into(),
                    verdict: "pass".into(),
                    reason: String::new(),
                    e_value: Some(0.0312),
                    fail_at: None,
                    estimate: Some(1.02),
                    estimate_low: None,
                    estimate_high: None,
                    canary: None,
                    stable: None,
                },
            ],
            ..decision(
                "2025-11-23T00:07:30Z",
                1,
                50,
                "rollback",
                "error-rate fails",
            )
        }];
        let now = T0_MS + 7 * MIN + 30_000;
        let tags_with = |verdict: &str| {
            tags_of(&[
                "canary-gate",
                "rollout:web",
                "namespace:shop",
                "revision:rev-b",
                "step:1",
                "weight:50",
                verdict,
            ])
        };
        assert_eq!(
            annotations("web", "shop", &old, &new, now),
            vec![
                Annotation {
                    time: now,
                    time_end: None,
                    tags: tags_with("verdict:rollback"),
                    text: "web step 1 at 50% — rollback: error-rate fails\n\
                           error-rate: fail — canary errors above stable (e=31.25/20, estimate 3.1 [2.2, 4.4], canary 31/1000, stable 10/1000)\n\
                           latency-p99: pass (e=0.0312, estimate 1.02)"
                        .into(),
                    dashboard_uid: None,
                    panel_id: None,
                },
                Annotation {
                    time: T0_MS + 5 * MIN,
                    time_end: Some(now),
                    tags: tags_with("verdict:rolled-back"),
                    text: "web step 1 at 50%: rolled-back after 2m30s\nrollback: error-rate fails"
                        .into(),
                    dashboard_uid: None,
                    panel_id: None,
                },
            ]
        );
    }

    #[test]
    fn an_abort_ends_the_step_without_a_decision() {
        let mut old = on_step(0, 10, T0);
        old.phase = Some(RolloutPhase::Holding);
        let mut new = old.clone();
        new.phase = Some(RolloutPhase::Aborted);
        new.canary_weight = Some(0);
        let now = T0_MS + 61 * MIN + 1_500;
        assert_eq!(
            annotations("web", "shop", &old, &new, now),
            vec![region(
                T0_MS,
                now,
                &[
                    "canary-gate",
                    "rollout:web",
                    "namespace:shop",
                    "revision:rev-b",
                    "step:0",
                    "weight:10",
                    "verdict:aborted",
                ],
                "web step 0 at 10%: aborted after 1h1m1s",
            )]
        );
        // A retry of the aborted revision starts it again.
        let mut retried = on_step(0, 10, "2025-11-23T02:00:00Z");
        retried.started_at = Some("2025-11-23T02:00:00Z".into());
        let later = T0_MS + 120 * MIN;
        assert_eq!(
            annotations("web", "shop", &new, &retried, later),
            vec![point(
                later,
                &[
                    "canary-gate",
                    "rollout:web",
                    "namespace:shop",
                    "revision:rev-b",
                    "step:0",
                    "weight:10",
                    "verdict:started",
                ],
                "web: retrying revision rev-b; step 0 at 10%",
            )]
        );
    }

    #[test]
    fn no_change_is_no_annotation() {
        let mut status = on_step(1, 50, T5M);
        status.decisions = vec![decision(T5M, 0, 10, "continue", "no evidence of harm")];
        assert_eq!(
            annotations("web", "shop", &status, &status, T0_MS + 6 * MIN),
            vec![]
        );
        // Holding at the same step is no step end either.
        let mut holding = status.clone();
        holding.phase = Some(RolloutPhase::Holding);
        assert_eq!(
            annotations("web", "shop", &status, &holding, T0_MS + 6 * MIN),
            vec![]
        );
        let healthy = RolloutStatus {
            phase: Some(RolloutPhase::Healthy),
            stable_revision: Some("rev-a".into()),
            ..RolloutStatus::default()
        };
        assert_eq!(
            annotations("web", "shop", &healthy, &healthy, T0_MS),
            vec![]
        );
    }

    #[test]
    fn only_the_new_tail_of_a_capped_record_is_annotated() {
        let at = |i: i64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs((T0_MS / 1000 + i * 60) as u64),
            )
            .to_string()
        };
        let holds: Vec<DecisionRecord> = (0..22)
            .map(|i| decision(&at(i), 0, 10, "hold", &format!("inconclusive #{i}")))
            .collect();
        let mut old = on_step(0, 10, T0);
        old.phase = Some(RolloutPhase::Holding);
        old.decisions = holds[..20].to_vec();
        let mut new = old.clone();
        new.decisions = holds[2..22].to_vec(); // two appended, the two oldest dropped
        let got = annotations("web", "shop", &old, &new, T0_MS + 21 * MIN);
        assert_eq!(
            got.iter()
                .map(|a| (a.time, a.text.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (
                    T0_MS + 20 * MIN,
                    "web step 0 at 10% — hold: inconclusive #20"
                ),
                (
                    T0_MS + 21 * MIN,
                    "web step 0 at 10% — hold: inconclusive #21"
                ),
            ]
        );
        assert_eq!(got[1].tags.last().map(String::as_str), Some("verdict:hold"));
        // A cleared record (a new start) followed by fresh decisions: all of them are new.
        assert_eq!(new_decisions(&holds[..20], &holds[20..]).len(), 2);
        assert_eq!(new_decisions(&holds[..20], &[]).len(), 0);
    }

    #[test]
    fn a_new_revision_ends_the_step_and_starts_again() {
        let old = on_step(1, 50, T5M);
        let mut new = on_step(0, 10, T15M);
        new.canary_revision = Some("rev-c".into());
        new.started_at = Some(T15M.into());
        let now = T0_MS + 15 * MIN;
        let got = annotations("web", "shop", &old, &new, now);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].tags[3], "revision:rev-b");
        assert_eq!(got[0].tags[6], "verdict:restarted");
        assert_eq!(got[0].text, "web step 1 at 50%: restarted after 10m0s");
        assert_eq!(got[1].tags[3], "revision:rev-c");
        assert_eq!(
            got[1].text,
            "web: revision rev-c replaces canary rev-b; step 0 at 10%"
        );
    }

    #[test]
    fn going_back_to_stable_cancels_the_step() {
        let old = on_step(0, 10, T0);
        let new = RolloutStatus {
            phase: Some(RolloutPhase::Healthy),
            stable_revision: Some("rev-a".into()),
            canary_weight: Some(0),
            ..RolloutStatus::default()
        };
        let got = annotations("web", "shop", &old, &new, T0_MS + 45_000);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].text, "web step 0 at 10%: cancelled after 45s");
    }

    #[test]
    fn serializes_as_grafanas_request_body() {
        let a = Annotation {
            dashboard_uid: Some("canary-gate".into()),
            panel_id: Some(2),
            ..region(1, 2, &["canary-gate"], "x")
        };
        assert_eq!(
            serde_json::to_value(&a).ok(),
            Some(serde_json::json!({
                "time": 1, "timeEnd": 2, "tags": ["canary-gate"], "text": "x",
                "dashboardUID": "canary-gate", "panelId": 2
            }))
        );
        assert_eq!(
            serde_json::to_value(point(1, &[], "y")).ok(),
            Some(serde_json::json!({"time": 1, "tags": [], "text": "y"}))
        );
    }

    #[test]
    fn durations_and_times_read_well() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(59_999), "59s");
        assert_eq!(go_duration(300_000), "5m0s");
        assert_eq!(go_duration(3_723_000), "1h2m3s");
        assert_eq!(go_duration(-5), "0s");
        assert_eq!(epoch_ms(T0), Some(T0_MS));
        assert_eq!(epoch_ms("2025-11-23T00:00:00.250Z"), Some(T0_MS + 250));
        assert_eq!(epoch_ms("yesterday"), None);
    }
}
