//! The Kubernetes controller. One reconcile ([`reconcile::reconcile`]) is a short driver over
//! named stages, each its own file and error type:
//!
//! | stage | file | pure? |
//! |---|---|---|
//! | the finalizer (deletion hands the pods back) | [`finalizer`] | I/O |
//! | validate the spec | [`validate`] | pure |
//! | observe the target, workloads, action, pods | [`observe`] (with [`availability`]; its answer in [`observed`]) | I/O |
//! | analyze: templates, metrics, the judge | [`analyze`] (with [`judge_memory`]; its answer in [`observed`]) | I/O |
//! | hooks: call the webhooks that are due | [`hooks`] | I/O |
//! | decide: the lifecycle mapped onto the status | [`decide`] (with [`status`]) | pure |
//! | advice: are the steps long enough (`StepsUnderpowered`) | [`power`] (its own worker thread) | pure mapping |
//! | build the desired workloads and split | [`build`] | pure |
//! | apply: write them, read back | [`apply`] | I/O |
//! | report: status, Events, Grafana | [`report`] (with [`events`]) | I/O |
//!
//! The lifecycle itself is `crate::rollout::lifecycle` (plain types, no Kubernetes). [`run`] is
//! the process around it all: leader election on a Lease ([`leader`]), the watches that trigger
//! passes, run by [`dispatch`] from the [`work_queue`], `/livez`, `/readyz` and `/metrics`
//! ([`telemetry`]).

pub mod analyze;
pub mod apply;
pub mod availability;
pub mod build;
pub mod decide;
pub mod deployment_cache;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod hooks;
pub mod judge_memory;
pub mod kube_requests;
pub mod leader;
pub mod observe;
pub mod observed;
pub mod power;
pub mod reconcile;
pub mod report;
pub mod run;
pub mod status;
pub mod status_writes;
pub mod target_index;
pub mod telemetry;
pub mod validate;
pub mod work_queue;
