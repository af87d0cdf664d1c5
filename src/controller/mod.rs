//! The Kubernetes controller's stages: validate → observe → analyze → decide → apply → report.
//! `validate` (a Rollout spec becomes a step plan with its analyses) and `decide` (the pure step
//! machine over the Rollout's status) exist; observe, apply, report and the reconcile loop are
//! not built yet, so no `controller` command is offered.

pub mod decide;
pub mod validate;
