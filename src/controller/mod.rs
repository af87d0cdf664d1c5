//! The Kubernetes controller. One reconcile is a short pipeline of named stages — validate →
//! observe → analyze → decide → apply (workloads, traffic) → report ([`reconcile::reconcile`]); [`run`] is the process
//! around it: leader election on a Lease, the kube-runtime watch loop, `/livez`, `/readyz` and
//! `/metrics`.

pub mod analyze;
pub mod apply;
pub mod availability;
pub mod build;
pub mod decide;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod judge_memory;
pub mod leader;
pub mod observe;
pub mod reconcile;
pub mod report;
pub mod run;
pub mod status;
pub mod target_index;
pub mod telemetry;
pub mod validate;
