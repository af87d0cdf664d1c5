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
            ReconcileError::Analysis(_) => "analysis",
        }
    }
}
