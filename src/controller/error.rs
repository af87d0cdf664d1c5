//! The controller's errors, each with a stable short category for metrics and Event reasons.

/// Why a reconcile could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The Rollout is not namespaced (cannot happen for a namespaced CRD).
    #[error("the Rollout has no namespace")]
    NoNamespace,
    /// An action annotation is not understood.
    #[error("{0}")]
    InvalidAction(String),
    /// A referenced analysis template does not exist.
    #[error("{0} not found; create it or fix the Rollout's templateName")]
    MissingTemplate(String),
    /// A referenced analysis template is invalid.
    #[error("{0}")]
    InvalidTemplate(String),
    /// Metrics could not be read.
    #[error("metrics: {0}")]
    Metrics(#[from] crate::metrics::prometheus_source::SourceError),
    /// An object changed between the controller's read and its guarded write (another writer);
    /// nothing was written and the next reconcile works from a fresh read.
    #[error(
        "{object} changed since it was read (resourceVersion {resource_version}); nothing was written, the next reconcile retries: {source}"
    )]
    Conflict {
        /// `Kind namespace/name`.
        object: String,
        /// The resourceVersion that was read.
        resource_version: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
    /// The judge rejected its input.
    #[error("analysis: {0}")]
    Analysis(#[from] crate::analysis::AnalysisError),
}

impl ReconcileError {
    /// A stable short name for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "kube_api",
            ReconcileError::NoNamespace => "no_namespace",
            ReconcileError::InvalidAction(_) => "invalid_action",
            ReconcileError::MissingTemplate(_) => "missing_template",
            ReconcileError::InvalidTemplate(_) => "invalid_template",
            ReconcileError::Metrics(_) => "metrics",
            ReconcileError::Conflict { .. } => "conflict",
            ReconcileError::Analysis(_) => "analysis",
        }
    }
}

/// Maps the API server's refusal of a write guarded by `resource_version` (409 Conflict, or 422
/// for a failed JSON-patch `test`) to [`ReconcileError::Conflict`]; other errors pass through.
pub fn guarded(
    object: String,
    resource_version: Option<String>,
) -> impl FnOnce(kube::Error) -> ReconcileError {
    move |e| match &e {
        kube::Error::Api(status) if status.code == 409 || status.code == 422 => {
            ReconcileError::Conflict {
                object,
                resource_version: resource_version.unwrap_or_default(),
                source: e,
            }
        }
        _ => ReconcileError::Kube(e),
    }
}
