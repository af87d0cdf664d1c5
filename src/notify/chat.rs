//! What a person reads in a chat message about a [`Notice`] (pure): a title, the reason, a few
//! facts and one line per metric's evidence. Slack and Teams lay these out their own way.

use super::event::Notice;
use crate::crd::rollout::NotificationEvent;

/// `shop/web: rolled back revision 7d9f…`: what happened to which Rollout.
pub fn title(n: &Notice) -> String {
    let who = format!("{}/{}", n.rollout.namespace, n.rollout.name);
    let rev = n.revision.as_deref().unwrap_or("?");
    match n.event {
        NotificationEvent::Started => format!("{who}: rolling out revision {rev}"),
        NotificationEvent::StepAdvanced => format!(
            "{who}: step {} → {}{}",
            n.from_step.map_or("?".into(), |s| s.to_string()),
            n.step.map_or("?".into(), |s| s.to_string()),
            n.step_weight.map_or(String::new(), |w| format!(" ({w}%)"))
        ),
        NotificationEvent::Held => format!("{who}: holding at {}", at(n)),
        NotificationEvent::Paused => format!("{who}: paused at {}, waiting for a human", at(n)),
        NotificationEvent::RolledBack => format!("{who}: rolled back revision {rev}"),
        NotificationEvent::Promoted => format!("{who}: promoting revision {rev}"),
        NotificationEvent::Aborted => format!("{who}: revision {rev} aborted"),
    }
}

/// `step 1 (50%)`.
fn at(n: &Notice) -> String {
    match (n.step, n.step_weight.or(n.weight)) {
        (Some(s), Some(w)) => format!("step {s} ({w}%)"),
        (Some(s), None) => format!("step {s}"),
        (None, _) => "the current step".into(),
    }
}

/// Whether the event calls for attention (a rollback, an abort, a wait for a human, a hold).
pub fn alarming(n: &Notice) -> bool {
    matches!(
        n.event,
        NotificationEvent::RolledBack
            | NotificationEvent::Aborted
            | NotificationEvent::Paused
            | NotificationEvent::Held
    )
}

/// `(label, value)` facts: revision, stable, step, weight, phase, decision — those known.
pub fn facts(n: &Notice) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(r) = &n.revision {
        out.push(("Revision", r.clone()));
    }
    if let Some(r) = &n.stable_revision {
        out.push(("Stable", r.clone()));
    }
    if let Some(s) = n.step {
        let mut v = s.to_string();
        if let Some(w) = n.step_weight {
            v.push_str(&format!(" (planned {w}%)"));
        }
        out.push(("Step", v));
    }
    if let Some(w) = n.weight {
        out.push(("Canary weight now", format!("{w}%")));
    }
    if let Some(p) = n.phase {
        out.push(("Phase", format!("{p:?}")));
    }
    if let Some(d) = &n.decision {
        out.push(("Decision", d.clone()));
    }
    out
}

/// One line per metric: failing ones first (what a rollback is about), then the rest.
pub fn evidence_lines(n: &Notice) -> Vec<String> {
    let mut lines: Vec<(bool, String)> = n
        .evidence
        .iter()
        .map(|e| (e.verdict != "fail", e.summary.clone()))
        .collect();
    lines.sort_by_key(|(rest, _)| *rest);
    lines.into_iter().map(|(_, l)| l).collect()
}

/// `canary-gate · <time> · <id>`.
pub fn footer(n: &Notice) -> String {
    format!("canary-gate · {} · {} · {}", n.event.as_str(), n.time, n.id)
}

/// `text` cut to at most `max` characters (an ellipsis marks the cut).
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if text.chars().count() > max => format!("{}…", &text[..i]),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_texts_and_marks_long_ones() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
        assert_eq!(cut("äöüß", 3).chars().count(), 3);
        assert_eq!(cut("", 3), "");
    }
}
