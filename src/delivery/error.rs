//! Errors of one delivery. None carries a URL or a secret: the caller adds what may be shown
//! (Grafana's URL, a sink's name), and answers are scrubbed of secrets before they get here.

use std::time::Duration;

/// Why a POST did not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {reason}")]
    Client {
        /// The cause.
        reason: String,
    },
    /// The endpoint could not be reached (connection refused, DNS, TLS…); retried.
    #[error("unreachable: {reason}")]
    Unreachable {
        /// The cause.
        reason: String,
    },
    /// No answer within the timeout; retried.
    #[error("no answer within {timeout:?}")]
    Timeout {
        /// The per-attempt timeout.
        timeout: Duration,
    },
    /// The request failed after it was sent (reset connection, unreadable answer); not retried,
    /// since the endpoint may have taken it.
    #[error("{reason}")]
    Request {
        /// The cause.
        reason: String,
    },
    /// An error status: retried for 5xx and 429, not for other 4xx.
    #[error("answered {status}: {body}{}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default())]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The beginning of the answer's body, secrets scrubbed.
        body: String,
        /// How long a 429 or 503 asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
}

impl DeliveryError {
    /// Whether another attempt may succeed: connection failures, timeouts, 5xx and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> DeliveryError {
        DeliveryError::Status {
            status,
            body: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn only_connection_failures_timeouts_5xx_and_429_are_retried() {
        assert!(status(500).is_transient());
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(401).is_transient());
        assert!(!status(404).is_transient());
        assert!(
            DeliveryError::Timeout {
                timeout: Duration::from_secs(1)
            }
            .is_transient()
        );
        assert!(
            DeliveryError::Unreachable {
                reason: "refused".into()
            }
            .is_transient()
        );
        assert!(
            !DeliveryError::Request {
                reason: "reset".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn a_rate_limit_says_how_long_it_asked_to_wait() {
        let e = DeliveryError::Status {
            status: 429,
            body: "rate_limited".into(),
            retry_after: Some(Duration::from_secs(120)),
        };
        assert_eq!(
            e.to_string(),
            "answered 429: rate_limited (Retry-After 120s)"
        );
    }
}
