//! Which failed attempts are retried, the error they end in, and the backoff between them.

use std::time::Duration;

use super::error::PrometheusError;

/// An attempt's failure: final, or worth retrying.
pub(super) enum Failure {
    Final(PrometheusError),
    Transient(Transient),
}

pub(super) enum Transient {
    Timeout,
    Connection(String),
    Status { status: u16, body: String },
}

impl Transient {
    pub(super) fn into_error(
        self,
        url: &str,
        query: &str,
        timeout: Duration,
        attempts: u32,
    ) -> PrometheusError {
        match self {
            Transient::Timeout => PrometheusError::Timeout {
                query: query.to_string(),
                timeout,
                attempts,
            },
            Transient::Connection(detail) => PrometheusError::Unreachable {
                url: url.to_string(),
                attempts,
                detail,
            },
            Transient::Status { status, body } => PrometheusError::Server {
                url: url.to_string(),
                status,
                attempts,
                body,
            },
        }
    }
}

/// `backoff × 2^retry`, saturating.
pub(super) fn backoff_delay(backoff: Duration, retry: u32) -> Duration {
    backoff.saturating_mul(2u32.saturating_pow(retry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_saturates() {
        let b = Duration::from_millis(200);
        assert_eq!(backoff_delay(b, 0), Duration::from_millis(200));
        assert_eq!(backoff_delay(b, 1), Duration::from_millis(400));
        assert_eq!(backoff_delay(b, 2), Duration::from_millis(800));
        assert_eq!(backoff_delay(b, 200), b.saturating_mul(u32::MAX));
    }
}
