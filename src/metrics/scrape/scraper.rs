//! The HTTP scraper: fetch a `/metrics` endpoint and parse what it serves.

use std::time::Duration;

use super::error::{ScrapeError, truncate};
use super::exposition::Exposition;
use super::parse::parse_exposition;
use crate::metrics::error_chain;

/// Scrapes `/metrics` endpoints over HTTP(S).
#[derive(Debug, Clone)]
pub struct Scraper {
    client: reqwest::Client,
    timeout: Duration,
}

impl Scraper {
    /// A scraper whose requests (connect, send, read the body) time out after `timeout`. TLS
    /// uses the system roots (see the `prometheus` module); the `ring` rustls provider is
    /// installed if none is.
    ///
    /// # Errors
    /// [`ScrapeError::Config`] when the HTTP client cannot be built.
    pub fn new(timeout: Duration) -> Result<Self, ScrapeError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .user_agent(concat!("canary-gate/", env!("CARGO_PKG_VERSION")))
        };
        let client = builder()
            .build()
            // Without a system CA bundle, plain-http scrapes still work.
            .or_else(|_| builder().tls_certs_only(Vec::new()).build())
            .map_err(|e| ScrapeError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, timeout })
    }

    /// Fetches `url` and parses the exposition.
    ///
    /// # Errors
    /// [`ScrapeError::Unreachable`], [`ScrapeError::Timeout`], [`ScrapeError::Status`] for a
    /// non-2xx answer, or [`ScrapeError::Parse`] naming the URL.
    pub async fn scrape(&self, url: &str) -> Result<Exposition, ScrapeError> {
        let shown = display_url(url);
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ScrapeError::Config(format!("invalid metrics URL {shown}: {e}")))?;
        let transport = |e: reqwest::Error| {
            let e = e.without_url();
            if e.is_timeout() {
                ScrapeError::Timeout {
                    url: shown.clone(),
                    timeout: self.timeout,
                }
            } else {
                ScrapeError::Unreachable {
                    url: shown.clone(),
                    detail: error_chain(&e),
                }
            }
        };
        tracing::debug!(url = %shown, "scraping");
        let response = self
            .client
            .get(parsed)
            .header(
                reqwest::header::ACCEPT,
                "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5,*/*;q=0.1",
            )
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ScrapeError::Status {
                url: shown,
                status: status.as_u16(),
                body: truncate(&String::from_utf8_lossy(&body)),
            });
        }
        let text = std::str::from_utf8(&body).map_err(|e| ScrapeError::Parse {
            origin: shown.clone(),
            line: 0,
            message: format!("body is not UTF-8 text: {e}"),
        })?;
        parse_exposition(text).map_err(|e| match e {
            ScrapeError::Parse { line, message, .. } => ScrapeError::Parse {
                origin: shown.clone(),
                line,
                message,
            },
            other => other,
        })
    }
}

/// The URL with any password hidden.
fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("[redacted]"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => url.to_string(),
    }
}
