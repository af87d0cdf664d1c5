//! A Slack incoming webhook's body for a [`Notice`] (pure): `text` (what notifications and old
//! clients show) and Block Kit `blocks` — a header, the reason, the facts as fields, the
//! evidence, and a context line with the event, time and id. Text from the rollout is escaped
//! for Slack's mrkdwn (`&`, `<`, `>`), and every block is cut to Slack's limits.

use serde_json::{Value, json};

use super::chat::{alarming, cut, evidence_lines, facts, footer, title};
use super::event::Notice;

/// Slack's limit of a header's text.
const HEADER_MAX: usize = 150;
/// Slack's limit of a section's text.
const SECTION_MAX: usize = 3000;
/// Slack's limit of a field's text.
const FIELD_MAX: usize = 2000;

/// The JSON body.
pub fn body(n: &Notice) -> Value {
    let title = title(n);
    let icon = if alarming(n) { ":warning: " } else { "" };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&format!("{icon}{title}"), HEADER_MAX), "emoji": true}
    })];
    if !n.reason.is_empty() {
        blocks.push(section(&escape(&n.reason)));
    }
    let fields: Vec<Value> = facts(n)
        .into_iter()
        .take(10)
        .map(|(label, value)| {
            json!({"type": "mrkdwn", "text": cut(&format!("*{label}*\n{}", escape(&value)), FIELD_MAX)})
        })
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let evidence = evidence_lines(n);
    if !evidence.is_empty() {
        let lines: Vec<String> = evidence
            .iter()
            .map(|l| format!("• {}", escape(l)))
            .collect();
        blocks.push(section(&format!("*Evidence*\n{}", lines.join("\n"))));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": escape(&footer(n))}]
    }));
    let text = if n.reason.is_empty() {
        title
    } else {
        format!("{title}: {}", n.reason)
    };
    json!({"text": cut(&escape(&text), SECTION_MAX), "blocks": blocks})
}

fn section(mrkdwn: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(mrkdwn, SECTION_MAX)}})
}

/// Slack's escaping of the three characters its mrkdwn reserves.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_escaped() {
        assert_eq!(escape("a<b & c>d"), "a&lt;b &amp; c&gt;d");
        assert_eq!(escape("<!channel>"), "&lt;!channel&gt;");
    }
}
