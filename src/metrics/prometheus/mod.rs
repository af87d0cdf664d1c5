//! Prometheus HTTP API client: instant and range queries, server-side PromQL syntax checks,
//! bearer/basic auth, tenant headers (Mimir, Thanos, Cortex), custom CA, bounded retries with
//! exponential backoff, and typed errors that never contain credentials.
//!
//! # Requests
//! Queries are sent as `POST` with an `application/x-www-form-urlencoded` body, so long PromQL
//! never hits URL length limits. Redirects are not followed (a redirected `POST` loses its body
//! and credentials); a 3xx is reported as [`PrometheusError::HttpStatus`].
//!
//! # Retries
//! An attempt is retried — up to [`PrometheusConfig::retries`] times, waiting
//! [`PrometheusConfig::backoff`], then twice that, and so on — only after a connection error, a
//! timeout or a 5xx response. 4xx responses, TLS verification failures and undecodable bodies are
//! final at once.
//!
//! # Syntax checks
//! [`Prometheus::check_syntax`] uses `POST /api/v1/format_query` (Prometheus ≥ 2.38; 2.42 has it),
//! which parses and type-checks the expression without evaluating it: 200 for good PromQL, 400
//! with `errorType: bad_data` and the parser's message otherwise (checked against Prometheus
//! 2.42; `/api/v1/parse_query` does not exist there). When that endpoint answers 404/405 (older
//! Prometheus, some Thanos/Cortex/Mimir front ends) the client remembers it and uses an instant
//! query at `time=0` instead, whose 400 carries the same parse error and which selects no data
//! when the expression is valid.
//!
//! # TLS roots
//! reqwest 0.13 with `rustls-no-provider` verifies certificates with `rustls-platform-verifier`,
//! which on Linux loads the system store through `rustls-native-certs` (`/etc/ssl/certs`, or the
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` environment variables), so plain `https` to a public CA works
//! wherever the system has a CA bundle. [`PrometheusConfig::ca_file`] (a PEM bundle) is *merged*
//! with those roots (`ClientBuilder::tls_certs_merge`, the non-deprecated spelling of
//! `add_root_certificate`). If the system has no CA bundle at all, `http://` URLs still work and
//! `https://` needs `ca_file`. reqwest needs a process-wide rustls crypto provider; when none is
//! installed, [`Prometheus::new`] installs rustls' `ring` provider instead of letting reqwest
//! panic.

mod client;
mod config;
mod decode;
mod error;
mod form;
mod retry;
mod secret;

pub use client::Prometheus;
pub use config::{
    DEFAULT_MAX_POINTS_PER_SERIES, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_SERIES, PrometheusConfig,
};
pub use decode::{Sample, Series};
pub use error::PrometheusError;
pub use secret::{Credentials, Secret, SecretError};
