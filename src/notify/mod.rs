//! Notifications: rollout events — started, step advanced, held, paused, rolled back (with the
//! judge's evidence), promoted, aborted — posted to generic webhooks (versioned JSON, signed
//! with HMAC-SHA256), Slack and Microsoft Teams.
//!
//! The cluster's operator configures the sinks in a file mounted from a Secret
//! ([`NotifyConfig`], `--notifications-config`), so the controller needs no access to Secrets in
//! the Rollouts' namespaces; a Rollout selects sinks by name in `spec.notifications`
//! ([`select`]), and the condition `NotificationsConfigured` says what was found. [`events`]
//! (pure) turns the status before and after a reconcile into [`Notice`]s; [`Notifier`] queues
//! them per sink and posts them best effort (a timeout per attempt, retries with backoff on
//! connection failures, timeouts, 5xx and 429), counting each result in
//! `canary_gate_notifications_total{sink, result}`. A sink's outage never delays or changes a
//! decision.

mod chat;
mod config;
mod error;
mod event;
mod notifier;
mod select;
mod signature;
mod slack;
mod teams;

pub use config::{
    DEFAULT_MAX_RETRY_AFTER, DEFAULT_QUEUE, DEFAULT_RETRIES, DEFAULT_TIMEOUT, DeliveryConfig,
    MIN_KEY_BYTES, NotifyConfig, SinkConfig, SinkKind,
};
pub use error::NotifyError;
pub use event::{API_VERSION, Evidence, Notice, RolloutName, events};
pub use notifier::{
    DROPPED, FAILURE, NotificationMetrics, Notifier, Pending, SUCCESS, SinkResultLabel,
};
pub use select::{CONDITION, FOUND, NOT_FOUND, Selection, select, set_condition};
pub use signature::{
    DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, SigningKey, TIMESTAMP_HEADER, hex,
};
pub use slack::body as slack_body;
pub use teams::body as teams_body;
