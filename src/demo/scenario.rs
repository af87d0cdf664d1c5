//! The demo's scenarios: how each version behaves over time, and the outcome a sound judge
//! reaches.

use serde::{Deserialize, Serialize};

use super::{Outcome, Version};

/// Error probability of a healthy version.
pub const BASE_ERROR_RATE: f64 = 0.005;
/// Median latency of a healthy version, seconds.
pub const BASE_LATENCY_MEDIAN: f64 = 0.02;
/// Log-normal σ of latency (p99 ≈ 3.2 × median).
pub const BASE_LATENCY_SIGMA: f64 = 0.5;
/// Extra error probability of the canary in `error-regression` (5 percentage points).
pub const ERROR_REGRESSION_ADD: f64 = 0.05;
/// Latency multiplier of the canary in `latency-regression`.
pub const LATENCY_REGRESSION_FACTOR: f64 = 2.0;
/// Error probability of both versions during the `incident` burst.
pub const INCIDENT_ERROR_RATE: f64 = 0.2;
/// Latency the canary adds per second of traffic in `leak`, seconds.
pub const LEAK_LATENCY_PER_SECOND: f64 = 0.0015;

/// What a version does to each request: fail with a probability, take a log-normal time plus a
/// fixed extra.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Probability of answering HTTP 500.
    pub error_rate: f64,
    /// Median of the log-normal latency, seconds.
    pub latency_median: f64,
    /// σ of the log-normal latency.
    pub latency_sigma: f64,
    /// Extra latency added to every request, seconds.
    pub added_latency: f64,
}

impl Fault {
    /// A healthy version.
    pub const HEALTHY: Fault = Fault {
        error_rate: BASE_ERROR_RATE,
        latency_median: BASE_LATENCY_MEDIAN,
        latency_sigma: BASE_LATENCY_SIGMA,
        added_latency: 0.0,
    };
}

impl Default for Fault {
    fn default() -> Self {
        Self::HEALTHY
    }
}

/// A demo scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Identical versions: the canary is promoted.
    Good,
    /// The canary fails 5 percentage points more requests from the start: rolled back.
    ErrorRegression,
    /// The canary is twice as slow: rolled back.
    LatencyRegression,
    /// Both versions fail 20 % of requests for a few seconds: still promoted.
    Incident,
    /// The canary starts fine and slows down steadily: rolled back.
    Leak,
}

impl Scenario {
    /// All scenarios.
    pub const ALL: [Scenario; 5] = [
        Scenario::Good,
        Scenario::ErrorRegression,
        Scenario::LatencyRegression,
        Scenario::Incident,
        Scenario::Leak,
    ];

    /// The command-line name.
    pub fn id(self) -> &'static str {
        match self {
            Scenario::Good => "good",
            Scenario::ErrorRegression => "error-regression",
            Scenario::LatencyRegression => "latency-regression",
            Scenario::Incident => "incident",
            Scenario::Leak => "leak",
        }
    }

    /// One line for the header and the report.
    pub fn description(self) -> String {
        let base = format!(
            "{:.1} % errors, median latency {:.0} ms",
            BASE_ERROR_RATE * 100.0,
            BASE_LATENCY_MEDIAN * 1e3
        );
        match self {
            Scenario::Good => format!("identical versions ({base})"),
            Scenario::ErrorRegression => format!(
                "canary fails {:.0} percentage points more requests (stable: {base})",
                ERROR_REGRESSION_ADD * 100.0
            ),
            Scenario::LatencyRegression => format!(
                "canary latency ×{LATENCY_REGRESSION_FACTOR}, errors equal (stable: {base})"
            ),
            Scenario::Incident => format!(
                "both versions fail {:.0} % of requests for a few seconds mid-run (otherwise {base})",
                INCIDENT_ERROR_RATE * 100.0
            ),
            Scenario::Leak => format!(
                "canary starts like stable and gets {:.1} ms slower every second ({base})",
                LEAK_LATENCY_PER_SECOND * 1e3
            ),
        }
    }

    /// The outcome a sound judge reaches.
    pub fn expected(self) -> Outcome {
        match self {
            Scenario::Good | Scenario::Incident => Outcome::Promote,
            Scenario::ErrorRegression | Scenario::LatencyRegression | Scenario::Leak => {
                Outcome::Rollback
            }
        }
    }

    /// When the incident burst hits, seconds after traffic starts, for a plan lasting
    /// `planned` seconds: `(start, end)`.
    pub fn incident_window(planned: f64) -> (f64, f64) {
        let start = planned * 0.55;
        (start, start + (planned * 0.1).clamp(2.0, 5.0))
    }

    /// How `version` behaves `elapsed` seconds after traffic started, in a plan lasting
    /// `planned` seconds.
    pub fn fault(self, version: Version, elapsed: f64, planned: f64) -> Fault {
        let mut f = Fault::HEALTHY;
        let canary = version == Version::Canary;
        match self {
            Scenario::Good => {}
            Scenario::ErrorRegression if canary => f.error_rate += ERROR_REGRESSION_ADD,
            Scenario::LatencyRegression if canary => {
                f.latency_median *= LATENCY_REGRESSION_FACTOR;
            }
            Scenario::Incident => {
                let (start, end) = Self::incident_window(planned);
                if (start..end).contains(&elapsed) {
                    f.error_rate = INCIDENT_ERROR_RATE;
                }
            }
            Scenario::Leak if canary => {
                f.added_latency = LEAK_LATENCY_PER_SECOND * elapsed.max(0.0);
            }
            _ => {}
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regressions_hit_only_the_canary() {
        for s in Scenario::ALL {
            let stable = s.fault(Version::Stable, 5.0, 40.0);
            if s != Scenario::Incident {
                assert_eq!(stable, Fault::HEALTHY, "{s:?}");
            }
        }
        let c = Scenario::ErrorRegression.fault(Version::Canary, 0.0, 40.0);
        assert!((c.error_rate - 0.055).abs() < 1e-12);
        let leak = Scenario::Leak.fault(Version::Canary, 10.0, 40.0);
        assert!((leak.added_latency - 0.015).abs() < 1e-12);
    }

    #[test]
    fn the_incident_hits_both_versions_in_its_window_only() {
        let (start, end) = Scenario::incident_window(40.0);
        assert_eq!((start, end), (22.0, 26.0));
        for v in [Version::Stable, Version::Canary] {
            assert_eq!(Scenario::Incident.fault(v, 23.0, 40.0).error_rate, 0.2);
            assert_eq!(
                Scenario::Incident.fault(v, 27.0, 40.0).error_rate,
                BASE_ERROR_RATE
            );
        }
    }
}
