//! The notifications configuration: the sinks (generic webhook, Slack, Microsoft Teams) the
//! controller may post to, which of them receive every Rollout's events, and how hard delivery
//! tries. It is a file the cluster's operator mounts from a Secret (`--notifications-config`),
//! so webhook URLs (Slack's and Teams' carry their credential in the path) and signing keys live
//! only there and the controller needs no access to Secrets in the Rollouts' namespaces.
//!
//! ```yaml
//! sinks:
//!   - name: audit                      # what Rollouts select in spec.notifications[].sink
//!     kind: webhook                    # webhook | slack | teams
//!     url: https://audit.example.com/canary-gate
//!     signingKey: 8c1f0e…              # HMAC-SHA256 key (webhook only; optional)
//!   - name: shop-oncall
//!     kind: slack
//!     url: https://hooks.slack.com/services/T000/B000/XXXX
//!     namespaces: [shop]               # only Rollouts in these namespaces may use it (none: all)
//! defaults:                            # every Rollout's events, whatever its spec says
//!   - sink: audit
//!     events: [rolledBack, promoted, aborted]   # none: all events
//! delivery:                            # all optional; these are the defaults
//!   timeout: 5s                        # per attempt
//!   retries: 3                         # after the first attempt
//!   queue: 256                         # events waiting per sink, more are dropped
//!   maxRetryAfter: 30s                 # the longest Retry-After obeyed
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::error::NotifyError;
use crate::crd::rollout::{NotificationEvent, NotificationRef};
use crate::delivery::Secret;

/// Default bound of one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 3;
/// Default number of events waiting per sink.
pub const DEFAULT_QUEUE: usize = 256;
/// Default longest `Retry-After` obeyed.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The shortest signing key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// What a sink speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SinkKind {
    /// A generic webhook: the notice as JSON, signed with HMAC-SHA256.
    Webhook,
    /// A Slack incoming webhook: `text` and Block Kit blocks.
    Slack,
    /// A Microsoft Teams workflow ("When a Teams webhook request is received"): an Adaptive
    /// Card in a message.
    Teams,
}

impl SinkKind {
    /// `webhook`, `slack` or `teams`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Teams => "teams",
        }
    }
}

/// One sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// Its name, unique in the file.
    pub name: String,
    /// What it speaks.
    pub kind: SinkKind,
    /// Where to POST (a secret: Slack's and Teams' URLs are their credential).
    pub url: Secret,
    /// The HMAC-SHA256 key of a webhook's signature.
    pub signing_key: Option<Secret>,
    /// The namespaces whose Rollouts may use it; empty: all.
    pub namespaces: Vec<String>,
}

impl SinkConfig {
    /// Whether Rollouts in `namespace` may use this sink.
    pub fn serves(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }
}

/// How hard delivery tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Bound of one attempt.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Events waiting per sink at most; more are dropped and counted.
    pub queue: usize,
    /// The longest `Retry-After` obeyed; one asking longer fails the delivery.
    pub max_retry_after: Duration,
    /// Pause before the first retry (it doubles for each further one).
    pub backoff: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            queue: DEFAULT_QUEUE,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            backoff: Duration::from_millis(500),
        }
    }
}

/// The whole configuration (empty: notifications off).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotifyConfig {
    /// The sinks.
    pub sinks: Vec<SinkConfig>,
    /// Sinks every Rollout's events go to (those the sink serves), with their events.
    pub defaults: Vec<NotificationRef>,
    /// How hard delivery tries.
    pub delivery: DeliveryConfig,
    /// Where the configuration came from, for messages (e.g. `--notifications-config
    /// /etc/canary-gate/notifications/notifications.yaml`).
    pub origin: String,
}

impl NotifyConfig {
    /// The configuration of `--notifications-config`: none (notifications off), a file that
    /// does not exist (off, with a warning: the Secret it is mounted from is optional), or the
    /// file's configuration.
    ///
    /// # Errors
    /// A file that cannot be read or holds an invalid configuration (naming the field).
    pub fn from_flag(path: Option<&Path>) -> Result<Self, NotifyError> {
        let Some(path) = path else {
            return Ok(Self {
                origin: "the controller (started without --notifications-config)".into(),
                ..Self::default()
            });
        };
        let origin = format!("--notifications-config {}", path.display());
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &origin),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    file = %path.display(),
                    "notifications off: the --notifications-config file does not exist (is the Secret canary-gate-notifications missing?)"
                );
                Ok(Self {
                    origin: format!("{origin} (the file does not exist)"),
                    ..Self::default()
                })
            }
            Err(source) => Err(NotifyError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses and checks the YAML `text`; `origin` names it in errors.
    ///
    /// # Errors
    /// Unknown fields, wrong types, and every check below, naming the field and the fix; never
    /// showing a URL or a key.
    pub fn parse(text: &str, origin: &str) -> Result<Self, NotifyError> {
        let file: FileSpec = serde_saphyr::from_str(text).map_err(|e| NotifyError::Parse {
            origin: origin.to_string(),
            message: scrub(&e.without_snippet().to_string(), text),
        })?;
        let invalid = |field: String, problem: String| NotifyError::Invalid {
            origin: origin.to_string(),
            field,
            problem,
        };
        let mut names = BTreeSet::new();
        let mut sinks = Vec::new();
        for (i, s) in file.sinks.into_iter().enumerate() {
            let field = |f: &str| format!("sinks[{i}].{f}");
            if !dns_label(&s.name) {
                return Err(invalid(
                    field("name"),
                    format!(
                        "{:?} is not a name Rollouts can select: use lowercase letters, digits and '-', at most 63",
                        s.name
                    ),
                ));
            }
            if !names.insert(s.name.clone()) {
                return Err(invalid(
                    field("name"),
                    format!("{:?} names two sinks; give each its own name", s.name),
                ));
            }
            check_url(s.url.expose()).map_err(|p| invalid(field("url"), p.into()))?;
            match (&s.signing_key, s.kind) {
                (Some(_), SinkKind::Slack | SinkKind::Teams) => {
                    return Err(invalid(
                        field("signingKey"),
                        format!(
                            "a {} webhook does not check signatures; remove signingKey (its URL is its credential)",
                            s.kind.as_str()
                        ),
                    ));
                }
                (Some(key), SinkKind::Webhook) if key.expose().len() < MIN_KEY_BYTES => {
                    return Err(invalid(
                        field("signingKey"),
                        format!(
                            "is shorter than {MIN_KEY_BYTES} bytes, which can be guessed; use e.g. `openssl rand -hex 32`"
                        ),
                    ));
                }
                _ => {}
            }
            for (j, n) in s.namespaces.iter().enumerate() {
                if n.trim().is_empty() {
                    return Err(invalid(
                        field(&format!("namespaces[{j}]")),
                        "is empty; name a namespace, or leave namespaces out for all".into(),
                    ));
                }
            }
            sinks.push(SinkConfig {
                name: s.name,
                kind: s.kind,
                url: s.url,
                signing_key: s.signing_key,
                namespaces: s.namespaces,
            });
        }
        let mut defaults = Vec::new();
        for (i, d) in file.defaults.into_iter().enumerate() {
            if !names.contains(&d.sink) {
                return Err(invalid(
                    format!("defaults[{i}].sink"),
                    format!(
                        "no sink is named {:?}; sinks: {}",
                        d.sink,
                        list(names.iter().map(String::as_str))
                    ),
                ));
            }
            defaults.push(NotificationRef {
                sink: d.sink,
                events: d.events,
            });
        }
        let d = file.delivery;
        let mut delivery = DeliveryConfig::default();
        if let Some(t) = &d.timeout {
            delivery.timeout = duration(t).filter(|t| !t.is_zero()).ok_or_else(|| {
                invalid(
                    "delivery.timeout".into(),
                    format!("{t:?} is not a duration above zero, e.g. 5s"),
                )
            })?;
        }
        if let Some(r) = d.retries {
            if r > 10 {
                return Err(invalid(
                    "delivery.retries".into(),
                    format!("{r} is more than 10; a sink that fails 10 times is down"),
                ));
            }
            delivery.retries = r;
        }
        if let Some(q) = d.queue {
            if !(1..=100_000).contains(&q) {
                return Err(invalid(
                    "delivery.queue".into(),
                    format!("{q} is outside 1–100000"),
                ));
            }
            delivery.queue = q;
        }
        if let Some(m) = &d.max_retry_after {
            delivery.max_retry_after = duration(m).ok_or_else(|| {
                invalid(
                    "delivery.maxRetryAfter".into(),
                    format!("{m:?} is not a duration, e.g. 30s"),
                )
            })?;
        }
        Ok(Self {
            sinks,
            defaults,
            delivery,
            origin: origin.to_string(),
        })
    }

    /// The names of the sinks, in the file's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sinks.iter().map(|s| s.name.as_str())
    }
}

/// `a, b, c`, or `none` for no items.
pub(super) fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = items.collect();
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    sinks: Vec<SinkSpec>,
    #[serde(default)]
    defaults: Vec<DefaultSpec>,
    #[serde(default)]
    delivery: DeliverySpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SinkSpec {
    name: String,
    kind: SinkKind,
    url: Secret,
    #[serde(default)]
    signing_key: Option<Secret>,
    #[serde(default)]
    namespaces: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DefaultSpec {
    sink: String,
    #[serde(default)]
    events: Vec<NotificationEvent>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeliverySpec {
    timeout: Option<String>,
    retries: Option<u32>,
    queue: Option<usize>,
    max_retry_after: Option<String>,
}

fn duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

/// A Kubernetes-style name: lowercase letters, digits and `-`, starting and ending with an
/// alphanumeric, at most 63 characters.
fn dns_label(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| ok(c) || c == '-')
        && name.starts_with(ok)
        && name.ends_with(ok)
}

/// Why `raw` is no usable URL (never echoing it).
fn check_url(raw: &str) -> Result<(), &'static str> {
    let url = Url::parse(raw.trim())
        .map_err(|_| "is not a URL; give the webhook's full https://… address")?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err("must use https (or http inside the cluster)");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not embed credentials; a webhook's receiver checks the signature (signingKey) instead",
        );
    }
    Ok(())
}

/// A parser message without anything from `text` that could be a secret: every URL, and the
/// values of `url:` and `signingKey:` lines.
fn scrub(message: &str, text: &str) -> String {
    let mut out = message.to_string();
    for line in text.lines() {
        let line = line.trim().trim_start_matches('-').trim();
        for key in ["url:", "signingKey:"] {
            if let Some(value) = line.strip_prefix(key) {
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                if !value.is_empty() {
                    out = out.replace(value, "***");
                }
            }
        }
    }
    static URL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let url = URL.get_or_init(|| {
        regex::Regex::new(r#"[A-Za-z][A-Za-z0-9+.-]*://[^\s"'`]+"#).expect("a valid pattern")
    });
    url.replace_all(&out, "***").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "--notifications-config n.yaml";
    const SLACK_URL: &str = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";
    const KEY: &str = "0123456789abcdef-signing-key";

    fn parse(text: &str) -> Result<NotifyConfig, String> {
        NotifyConfig::parse(text, ORIGIN).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_file_parses_with_defaults_filled_in() {
        let c = parse(&format!(
            "sinks:\n\
             - name: audit\n  kind: webhook\n  url: https://audit.example.com/hook\n  signingKey: {KEY}\n\
             - name: shop-oncall\n  kind: slack\n  url: {SLACK_URL}\n  namespaces: [shop]\n\
             - name: shop-teams\n  kind: teams\n  url: https://prod-1.westeurope.logic.azure.com/workflows/x\n\
             defaults:\n- sink: audit\n  events: [rolledBack, promoted]\n\
             delivery:\n  timeout: 2s\n  retries: 1\n"
        ))
        .expect("valid");
        assert_eq!(
            c.names().collect::<Vec<_>>(),
            ["audit", "shop-oncall", "shop-teams"]
        );
        assert_eq!(c.sinks[0].kind, SinkKind::Webhook);
        assert_eq!(
            c.sinks[0].signing_key.as_ref().map(Secret::expose),
            Some(KEY)
        );
        assert_eq!(c.sinks[1].url.expose(), SLACK_URL);
        assert!(c.sinks[1].serves("shop") && !c.sinks[1].serves("pay"));
        assert!(c.sinks[2].serves("pay"));
        assert_eq!(
            c.defaults,
            vec![NotificationRef {
                sink: "audit".into(),
                events: vec![NotificationEvent::RolledBack, NotificationEvent::Promoted],
            }]
        );
        assert_eq!(c.delivery.timeout, Duration::from_secs(2));
        assert_eq!(c.delivery.retries, 1);
        assert_eq!(c.delivery.queue, DEFAULT_QUEUE);
        assert_eq!(c.delivery.max_retry_after, DEFAULT_MAX_RETRY_AFTER);
        assert_eq!(c.origin, ORIGIN);
        // Debug never shows a secret.
        let debug = format!("{c:?}");
        assert!(
            !debug.contains(SLACK_URL) && !debug.contains(KEY),
            "{debug}"
        );
    }

    #[test]
    fn mistakes_name_the_field_and_the_fix_never_the_secret() {
        let sink = |extra: &str| {
            format!("sinks:\n- name: oncall\n  kind: slack\n  url: {SLACK_URL}\n{extra}")
        };
        let cases: Vec<(String, &str)> = vec![
            (
                "sinks:\n- name: On_Call\n  kind: slack\n  url: https://x.example\n".into(),
                "sinks[0].name: \"On_Call\" is not a name Rollouts can select",
            ),
            (
                format!("{}- name: oncall\n  kind: teams\n  url: https://t.example\n", sink("")),
                "sinks[1].name: \"oncall\" names two sinks",
            ),
            (
                "sinks:\n- name: a\n  kind: webhook\n  url: hooks.slack.com/services/T0/B0/SECRETPATH\n".into(),
                "sinks[0].url: is not a URL",
            ),
            (
                "sinks:\n- name: a\n  kind: webhook\n  url: ftp://files.example/SECRETPATH\n".into(),
                "sinks[0].url: must use https",
            ),
            (
                "sinks:\n- name: a\n  kind: webhook\n  url: https://user:SECRETPASS@h.example/\n".into(),
                "sinks[0].url: must not embed credentials",
            ),
            (
                sink(&format!("  signingKey: {KEY}\n")),
                "sinks[0].signingKey: a slack webhook does not check signatures",
            ),
            (
                "sinks:\n- name: a\n  kind: webhook\n  url: https://h.example/\n  signingKey: SHORTSECRET\n".into(),
                "sinks[0].signingKey: is shorter than 16 bytes",
            ),
            (
                format!("{}defaults:\n- sink: audit\n", sink("")),
                "defaults[0].sink: no sink is named \"audit\"; sinks: oncall",
            ),
            (
                format!("{}delivery:\n  timeout: 0s\n", sink("")),
                "delivery.timeout: \"0s\" is not a duration above zero",
            ),
            (
                format!("{}delivery:\n  retries: 50\n", sink("")),
                "delivery.retries: 50 is more than 10",
            ),
            (
                format!("{}delivery:\n  queue: 0\n", sink("")),
                "delivery.queue: 0 is outside 1–100000",
            ),
        ];
        for (text, want) in cases {
            let e = parse(&text).expect_err(&text);
            assert!(e.starts_with(ORIGIN), "{e}");
            assert!(e.contains(want), "{text}\n→ {e}\nwant {want}");
            for secret in ["XXXXSECRET", "SECRETPATH", "SECRETPASS", "SHORTSECRET", KEY] {
                assert!(!e.contains(secret), "{e}");
            }
        }
    }

    #[test]
    fn parser_errors_never_show_a_url_or_a_key() {
        for text in [
            // An unknown field next to the secrets.
            format!(
                "sinks:\n- name: a\n  kind: webhook\n  url: {SLACK_URL}\n  signingKey: {KEY}\n  colour: red\n"
            ),
            // An unknown kind.
            format!("sinks:\n- name: a\n  kind: pager\n  url: {SLACK_URL}\n"),
            // A URL where a list belongs.
            format!(
                "sinks:\n- name: a\n  kind: slack\n  url: {SLACK_URL}\n  namespaces: {SLACK_URL}\n"
            ),
            // Broken YAML on the secret's line.
            format!("sinks:\n- name: a\n  kind: slack\n  url: \"{SLACK_URL}\n  x: [\n"),
            // An unknown event.
            format!(
                "sinks:\n- name: a\n  kind: slack\n  url: {SLACK_URL}\ndefaults:\n- sink: a\n  events: [exploded]\n"
            ),
        ] {
            let e = parse(&text).expect_err(&text);
            assert!(e.starts_with(ORIGIN), "{e}");
            assert!(!e.contains("XXXXSECRET") && !e.contains(KEY), "{e}");
        }
        let e = parse("sinks:\n- name: a\n  kind: pager\n  url: https://h.example/\n")
            .expect_err("unknown kind");
        assert!(e.contains("pager"), "{e}");
    }

    #[test]
    fn no_flag_or_no_file_is_notifications_off() {
        let off = NotifyConfig::from_flag(None).expect("off");
        assert!(off.sinks.is_empty());
        assert!(off.origin.contains("without --notifications-config"));
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("notifications.yaml");
        let off = NotifyConfig::from_flag(Some(&missing)).expect("off");
        assert!(off.sinks.is_empty());
        assert!(
            off.origin.ends_with("(the file does not exist)"),
            "{}",
            off.origin
        );
        std::fs::write(&missing, "sinks: []\n").expect("write");
        let empty = NotifyConfig::from_flag(Some(&missing)).expect("empty");
        assert!(empty.sinks.is_empty());
        assert_eq!(
            empty.origin,
            format!("--notifications-config {}", missing.display())
        );
    }
}
