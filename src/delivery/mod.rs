//! Best-effort delivery to HTTP endpoints that must never hold up a decision (Grafana
//! annotations, notifications): an [`Outbox`] — a bounded queue drained by one worker task, with
//! success / failure / dropped counters — and a [`Poster`] that POSTs a body with a timeout per
//! attempt and retries with backoff on what another attempt may fix (no connection, no answer in
//! time, 5xx, 429 honouring `Retry-After` within a bound). Secrets are [`Secret`]s: they print as
//! `***` and are scrubbed from anything a server sends back.

mod error;
mod outbox;
mod post;
mod secret;

pub use error::DeliveryError;
pub use outbox::{Deliver, Outbox, Tally};
pub use post::{PostConfig, Poster, retry_after};
pub use secret::Secret;
