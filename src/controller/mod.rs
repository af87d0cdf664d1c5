//! The Kubernetes controller's stages: validate → observe → analyze → decide → apply → report.
//! Only `validate` exists so far (a Rollout spec becomes a step plan with its analyses); the
//! reconcile loop is not built yet, and no `controller` command is offered until it is.

pub mod validate;
