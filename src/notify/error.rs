//! Errors of the notifications configuration. They name the file and the field, never a URL
//! or a signing key (both are secrets).

use std::path::PathBuf;

/// What is wrong with `--notifications-config`.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The file exists but cannot be read.
    #[error("cannot read --notifications-config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (it carries no content).
        source: std::io::Error,
    },
    /// The file is not the configuration's YAML.
    #[error("{origin}: {message}")]
    Parse {
        /// The file.
        origin: String,
        /// What the YAML parser said, with secrets and URLs blanked.
        message: String,
    },
    /// A field has a value that cannot work.
    #[error("{origin}: {field}: {problem}")]
    Invalid {
        /// The file.
        origin: String,
        /// Path of the field, e.g. `sinks[1].url`.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A sink's HTTP client could not be built.
    #[error("sink {sink}: {source}")]
    Client {
        /// The sink's name.
        sink: String,
        /// The cause.
        source: crate::delivery::DeliveryError,
    },
}
