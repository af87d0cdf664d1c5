//! canary-gate: progressive delivery with a statistical canary judge.
//!
//! Layout: [`analysis`] is the pure judge; [`template`] reads the analysis templates SREs write;
//! [`metrics`] turns metric sources (Prometheus, direct scrapes, the recorded stream) into judge
//! input; [`analyze`] judges a past window; [`simulation`] generates seeded synthetic canaries
//! for calibration and benchmarks; [`replay`] judges a recorded stream line by line; [`rollout`]
//! is the pure rollout core (the step plan and the Rollout lifecycle on plain types);
//! [`traffic`] says what the workloads and traffic routers must hold for a split; [`controller`]
//! runs it all in a cluster, reporting to Grafana ([`annotations`]) and to webhooks, Slack and
//! Teams ([`notify`]) through [`delivery`].

pub mod advise;
pub mod analysis;
pub mod analyze;
pub mod annotations;
pub mod controller;
pub mod crd;
pub mod decision_record;
pub mod delivery;
pub mod demo;
pub mod gate;
pub mod import;
pub mod metrics;
pub mod notify;
pub mod operator;
pub mod replay;
pub mod rollout;
pub mod simulation;
pub mod template;
pub mod time;
pub mod traffic;
