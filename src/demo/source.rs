//! Where the demo's observations come from: both versions' cumulative counters, either by a
//! direct scrape of their `/metrics` (both at once) or from a Prometheus that scrapes them (raw
//! cumulative counters by instant query, so the judge path is the same as with a direct scrape:
//! the same [`VersionCounters`], the same `samples_since`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::metrics::counters::{CumulativeHistogram, VersionCounters, parse_le};
use crate::metrics::prometheus::{Prometheus, PrometheusConfig, Sample};
use crate::metrics::scrape::{LabelMatch, Scraper};

use super::service::{LATENCY_METRIC, REQUESTS_METRIC, RUN_LABEL, VERSION_LABEL};
use super::{DemoError, Version};

/// Timeout of one scrape or query.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Both versions' cumulative counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stable version.
    pub stable: VersionCounters,
    /// The canary.
    pub canary: VersionCounters,
}

/// A source of [`Snapshot`]s.
#[derive(Debug)]
pub enum Source {
    /// Scrapes both instances' `/metrics`.
    Scrape {
        /// The HTTP scraper.
        scraper: Scraper,
        /// Stable's `/metrics` URL.
        stable: String,
        /// The canary's `/metrics` URL.
        canary: String,
    },
    /// Reads the counters from Prometheus.
    Prometheus {
        /// The client.
        client: Box<Prometheus>,
        /// Its base URL.
        url: String,
        /// The run id the series carry (`demo_run` label).
        run_id: String,
    },
}

impl Source {
    /// A direct-scrape source.
    ///
    /// # Errors
    /// [`DemoError::Client`] when the HTTP client cannot be built.
    pub fn scrape(stable_metrics: &str, canary_metrics: &str) -> Result<Self, DemoError> {
        let scraper = Scraper::new(READ_TIMEOUT).map_err(|e| DemoError::Client {
            role: "scraper".into(),
            detail: e.to_string(),
        })?;
        Ok(Source::Scrape {
            scraper,
            stable: stable_metrics.to_string(),
            canary: canary_metrics.to_string(),
        })
    }

    /// A Prometheus source for the series labelled `demo_run=run_id`.
    ///
    /// # Errors
    /// [`DemoError::PrometheusClient`] for an unusable URL.
    pub fn prometheus(url: &str, run_id: &str) -> Result<Self, DemoError> {
        let mut config = PrometheusConfig::new(url);
        config.timeout = READ_TIMEOUT;
        config.retries = 0;
        let client = Prometheus::new(config).map_err(|e| DemoError::PrometheusClient {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
        Ok(Source::Prometheus {
            client: Box::new(client),
            url: url.to_string(),
            run_id: run_id.to_string(),
        })
    }

    /// Where observations come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Scrape { stable, canary, .. } => format!("{stable} and {canary}"),
            Source::Prometheus { url, .. } => format!("prometheus at {url}"),
        }
    }

    /// Reads both versions' counters at unix time `now`.
    ///
    /// # Errors
    /// A message naming the URL and what failed; the caller judges the interval as missing.
    pub async fn snapshot(&self, now: f64) -> Result<Snapshot, String> {
        match self {
            Source::Scrape {
                scraper,
                stable,
                canary,
            } => {
                let (s, c) = tokio::join!(scraper.scrape(stable), scraper.scrape(canary));
                let counters = |exposition: Result<crate::metrics::scrape::Exposition, _>,
                                version: Version,
                                url: &str| {
                    exposition
                        .and_then(|e| {
                            e.version_counters(
                                REQUESTS_METRIC,
                                &[("code", LabelMatch::Prefix("5".into()))],
                                Some(LATENCY_METRIC),
                                &[(
                                    VERSION_LABEL,
                                    LabelMatch::Equal(version.as_str().to_string()),
                                )],
                            )
                        })
                        .map_err(|e| format!("{} ({url}): {e}", version.as_str()))
                };
                Ok(Snapshot {
                    stable: counters(s, Version::Stable, stable)?,
                    canary: counters(c, Version::Canary, canary)?,
                })
            }
            Source::Prometheus { client, run_id, .. } => {
                prometheus_snapshot(client, run_id, now).await
            }
        }
    }
}

/// The four instant queries that rebuild both versions' cumulative counters.
pub fn prometheus_queries(run_id: &str) -> [String; 4] {
    let sel = format!("{{{RUN_LABEL}=\"{run_id}\"}}");
    [
        format!("sum by ({VERSION_LABEL}, code) ({REQUESTS_METRIC}{sel})"),
        format!("sum by ({VERSION_LABEL}, le) ({LATENCY_METRIC}_bucket{sel})"),
        format!("sum by ({VERSION_LABEL}) ({LATENCY_METRIC}_sum{sel})"),
        format!("sum by ({VERSION_LABEL}) ({LATENCY_METRIC}_count{sel})"),
    ]
}

async fn prometheus_snapshot(
    client: &Prometheus,
    run_id: &str,
    now: f64,
) -> Result<Snapshot, String> {
    let [requests, buckets, sums, counts] = prometheus_queries(run_id);
    let (requests, buckets, sums, counts) = tokio::join!(
        client.query(&requests, now),
        client.query(&buckets, now),
        client.query(&sums, now),
        client.query(&counts, now),
    );
    let url = &client.config().url;
    let fail = |e: crate::metrics::prometheus::PrometheusError| format!("{url}: {e}");
    let (requests, buckets, sums, counts) = (
        requests.map_err(fail)?,
        buckets.map_err(fail)?,
        sums.map_err(fail)?,
        counts.map_err(fail)?,
    );
    Ok(Snapshot {
        stable: counters_from_samples(Version::Stable, &requests, &buckets, &sums, &counts)?,
        canary: counters_from_samples(Version::Canary, &requests, &buckets, &sums, &counts)?,
    })
}

/// Builds one version's counters from the results of [`prometheus_queries`]: requests summed
/// over codes, errors over codes starting with `5`, the histogram from `le` buckets.
///
/// # Errors
/// When the version has no request or bucket series, or the buckets are malformed.
pub fn counters_from_samples(
    version: Version,
    requests: &[Sample],
    buckets: &[Sample],
    sums: &[Sample],
    counts: &[Sample],
) -> Result<VersionCounters, String> {
    let name = version.as_str();
    let of_version = |s: &&Sample| s.labels.get(VERSION_LABEL).map(String::as_str) == Some(name);
    let mut total = None;
    let mut errors = 0.0;
    for s in requests.iter().filter(of_version) {
        *total.get_or_insert(0.0) += s.value;
        if s.labels.get("code").is_some_and(|c| c.starts_with('5')) {
            errors += s.value;
        }
    }
    let requests_total =
        total.ok_or_else(|| format!("no {REQUESTS_METRIC} series for version {name} yet"))?;
    let mut by_le: BTreeMap<String, f64> = BTreeMap::new();
    for s in buckets.iter().filter(of_version) {
        if let Some(le) = s.labels.get("le") {
            *by_le.entry(le.clone()).or_default() += s.value;
        }
    }
    if by_le.is_empty() {
        return Err(format!(
            "no {LATENCY_METRIC}_bucket series for version {name} yet"
        ));
    }
    let pairs = by_le
        .into_iter()
        .map(|(le, n)| parse_le(&le).map(|le| (le, n)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{LATENCY_METRIC} ({name}): {e}"))?;
    let scalar = |samples: &[Sample]| {
        samples
            .iter()
            .filter(of_version)
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    };
    // Without a `_count` series the `+Inf` bucket is the count.
    let inf = pairs
        .iter()
        .find(|p| p.0 == f64::INFINITY)
        .map_or(0.0, |p| p.1);
    let count = scalar(counts).unwrap_or(inf);
    let histogram = CumulativeHistogram::new(pairs, scalar(sums).unwrap_or(0.0), count)
        .map_err(|e| format!("{LATENCY_METRIC} ({name}): {e}"))?;
    Ok(VersionCounters {
        requests: requests_total,
        errors,
        latency: Some(histogram),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            timestamp: 0.0,
        }
    }

    #[test]
    fn prometheus_samples_become_the_same_counters_as_a_scrape() {
        let requests = [
            sample(&[("version", "stable"), ("code", "200")], 90.0),
            sample(&[("version", "stable"), ("code", "500")], 10.0),
            sample(&[("version", "canary"), ("code", "200")], 5.0),
        ];
        let buckets = [
            sample(&[("version", "stable"), ("le", "0.1")], 60.0),
            sample(&[("version", "stable"), ("le", "+Inf")], 100.0),
            sample(&[("version", "canary"), ("le", "0.1")], 5.0),
            sample(&[("version", "canary"), ("le", "+Inf")], 5.0),
        ];
        let sums = [sample(&[("version", "stable")], 7.5)];
        let counts = [sample(&[("version", "stable")], 100.0)];
        let stable =
            counters_from_samples(Version::Stable, &requests, &buckets, &sums, &counts).unwrap();
        assert_eq!((stable.requests, stable.errors), (100.0, 10.0));
        let h = stable.latency.unwrap();
        assert_eq!(h.buckets, vec![(0.1, 60.0), (f64::INFINITY, 100.0)]);
        assert_eq!((h.sum, h.count), (7.5, 100.0));
        let canary =
            counters_from_samples(Version::Canary, &requests, &buckets, &sums, &counts).unwrap();
        assert_eq!((canary.requests, canary.errors), (5.0, 0.0));
        assert_eq!(canary.latency.unwrap().count, 5.0, "from the +Inf bucket");
        let missing = counters_from_samples(Version::Canary, &[], &buckets, &sums, &counts);
        assert!(missing.unwrap_err().contains("no http_requests_total"));
    }
}
