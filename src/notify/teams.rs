//! A Microsoft Teams body for a [`Notice`] (pure): a message with one Adaptive Card (version
//! 1.4) — what Teams' Workflows webhooks ("When a Teams webhook request is received", the
//! replacement of the retired Office 365 connectors) post to a channel, and what the old
//! connectors accepted as well. The card holds the title (red for a rollback, an abort, a hold
//! or a pause), the reason, the facts as a FactSet, the evidence and a footer.

use serde_json::{Value, json};

use super::chat::{alarming, evidence_lines, facts, footer, title};
use super::event::Notice;

/// The JSON body.
pub fn body(n: &Notice) -> Value {
    let mut card = vec![json!({
        "type": "TextBlock",
        "text": title(n),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
        "color": if alarming(n) { "Attention" } else { "Good" },
    })];
    if !n.reason.is_empty() {
        card.push(json!({"type": "TextBlock", "text": n.reason, "wrap": true}));
    }
    let facts: Vec<Value> = facts(n)
        .into_iter()
        .map(|(title, value)| json!({"title": title, "value": value}))
        .collect();
    if !facts.is_empty() {
        card.push(json!({"type": "FactSet", "facts": facts}));
    }
    let evidence = evidence_lines(n);
    if !evidence.is_empty() {
        card.push(
            json!({"type": "TextBlock", "text": "Evidence", "weight": "Bolder", "wrap": true}),
        );
        for line in evidence {
            card.push(json!({"type": "TextBlock", "text": line, "wrap": true, "spacing": "Small"}));
        }
    }
    card.push(json!({
        "type": "TextBlock", "text": footer(n), "isSubtle": true, "size": "Small", "wrap": true
    }));
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": card,
            },
        }],
    })
}
