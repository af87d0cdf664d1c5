//! Why a reconcile could not finish: one error per stage (finalizer, observe, analyze, build,
//! apply, report), each wrapped by [`ReconcileError`] as
//! its source, and a stable short [`category`](ReconcileError::category) for the failure metric
//! and the logs. An invalid spec or a missing target is not an error but a status the user sees,
//! and a failed analysis is a decision (roll back), not an error.

pub use super::analyze::AnalyzeError;
pub use super::apply::ApplyError;
pub use super::build::BuildError;
pub use super::finalizer::FinalizerError;
pub use super::observe::ObserveError;
pub use super::report::ReportError;

/// Why a reconcile could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The Rollout is not namespaced (cannot happen for a namespaced CRD).
    #[error("the Rollout has no namespace")]
    NoNamespace,
    /// Adding or removing the finalizer, or handing the pods back on deletion, failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] FinalizerError),
    /// The cluster could not be read, or the action annotation is not understood.
    #[error("observe: {0}")]
    Observe(#[source] ObserveError),
    /// An analysis template could not be read or is invalid, or the judge rejected its input.
    #[error("analyze: {0}")]
    Analyze(#[source] AnalyzeError),
    /// The Rollout cannot own its workloads.
    #[error("build: {0}")]
    Build(#[source] BuildError),
    /// A workload, the target or a router object could not be written.
    #[error("apply: {0}")]
    Apply(#[source] ApplyError),
    /// The status could not be written.
    #[error("report: {0}")]
    Report(#[source] ReportError),
}

impl From<FinalizerError> for ReconcileError {
    fn from(e: FinalizerError) -> Self {
        ReconcileError::Finalizer(e)
    }
}

impl From<ObserveError> for ReconcileError {
    fn from(e: ObserveError) -> Self {
        ReconcileError::Observe(e)
    }
}

impl From<AnalyzeError> for ReconcileError {
    fn from(e: AnalyzeError) -> Self {
        ReconcileError::Analyze(e)
    }
}

impl From<BuildError> for ReconcileError {
    fn from(e: BuildError) -> Self {
        ReconcileError::Build(e)
    }
}

impl From<ApplyError> for ReconcileError {
    fn from(e: ApplyError) -> Self {
        ReconcileError::Apply(e)
    }
}

impl From<ReportError> for ReconcileError {
    fn from(e: ReportError) -> Self {
        ReconcileError::Report(e)
    }
}

impl ReconcileError {
    /// A stable short name for metrics labels and logs: `kube_api`, `conflict`, `no_namespace`,
    /// `invalid_action`, `missing_template`, `invalid_template` or `analysis`.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::NoNamespace => "no_namespace",
            ReconcileError::Finalizer(e) => e.category(),
            ReconcileError::Observe(e) => e.category(),
            ReconcileError::Analyze(e) => e.category(),
            ReconcileError::Build(e) => e.category(),
            ReconcileError::Apply(e) => e.category(),
            ReconcileError::Report(_) => "kube_api",
        }
    }

    /// The Rollout or a template it names must change first: retrying sooner cannot help.
    pub fn waits_for_a_change(&self) -> bool {
        matches!(
            self.category(),
            "invalid_action" | "missing_template" | "invalid_template"
        )
    }

    /// Another writer was faster: a fresh read will do.
    pub fn is_conflict(&self) -> bool {
        self.category() == "conflict"
    }
}

/// An object changed between the controller's read and its guarded write (another writer);
/// nothing was written and the next reconcile works from a fresh read.
#[derive(Debug, thiserror::Error)]
#[error(
    "{object} changed since it was read (resourceVersion {resource_version}); nothing was written, the next reconcile retries: {source}"
)]
pub struct Conflict {
    /// `Kind namespace/name`.
    pub object: String,
    /// The resourceVersion that was read.
    pub resource_version: String,
    /// The API server's answer.
    #[source]
    pub source: kube::Error,
}

/// Maps the API server's refusal of a write guarded by `resource_version` (409 Conflict, or 422
/// for a failed JSON-patch `test`) to a [`Conflict`]; other errors pass through as they are.
pub fn guarded<E: From<Conflict> + From<kube::Error>>(
    object: String,
    resource_version: Option<String>,
) -> impl FnOnce(kube::Error) -> E {
    move |e| match &e {
        kube::Error::Api(status) if status.code == 409 || status.code == 422 => E::from(Conflict {
            object,
            resource_version: resource_version.unwrap_or_default(),
            source: e,
        }),
        _ => E::from(e),
    }
}
