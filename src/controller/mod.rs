//! The Kubernetes controller, one reconcile as named stages: validate → observe → analyze →
//! decide → apply/report ([`reconcile::reconcile`]). The kube-runtime watch loop, leader election
//! and the health/metrics server are not built yet, so no `controller` command is offered.

pub mod analyze;
pub mod decide;
pub mod error;
pub mod observe;
pub mod reconcile;
pub mod validate;
