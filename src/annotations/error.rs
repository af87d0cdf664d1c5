//! Errors of the Grafana client. None of them carries the token: URLs never hold credentials
//! (they are refused) and the Authorization header is not part of any message.

use std::time::Duration;

/// What went wrong configuring the Grafana client or posting an annotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// `--grafana-url` is not a usable Grafana base URL.
    #[error("--grafana-url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (or a placeholder when it embeds credentials).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--grafana-token` cannot be sent in an HTTP header.
    #[error(
        "--grafana-token is not a valid HTTP header value (a service-account token is printable ASCII)"
    )]
    InvalidToken,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for Grafana at {url}: {reason}")]
    Client {
        /// The Grafana base URL.
        url: String,
        /// The cause.
        reason: String,
    },
    /// Grafana could not be reached (connection refused, DNS, TLS…), after the retries.
    #[error("POST {url}: Grafana is unreachable: {reason}")]
    Unreachable {
        /// The annotations endpoint.
        url: String,
        /// The cause.
        reason: String,
    },
    /// Grafana did not answer within the timeout, after the retries.
    #[error("POST {url}: no answer from Grafana within {timeout:?}")]
    Timeout {
        /// The annotations endpoint.
        url: String,
        /// The per-attempt timeout.
        timeout: Duration,
    },
    /// The request failed after it was sent (reset connection, unreadable answer); not retried,
    /// since Grafana may have stored the annotation.
    #[error("POST {url}: {reason}")]
    Request {
        /// The annotations endpoint.
        url: String,
        /// The cause.
        reason: String,
    },
    /// Grafana answered with an error status (after the retries for 5xx and 429; other 4xx are
    /// not retried).
    #[error("POST {url}: Grafana answered {status}: {body}")]
    Status {
        /// The annotations endpoint.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The beginning of the answer's body.
        body: String,
    },
}
