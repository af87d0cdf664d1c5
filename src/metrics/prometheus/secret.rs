//! Credentials: secrets that never print, and the texts scrubbed from server replies.

use std::fmt;
use std::path::{Path, PathBuf};

/// A credential (token or password). `Debug` and `Display` print `[redacted]`; the value is only
/// reachable through [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a secret from a file (a mounted Kubernetes secret, say), without its trailing
    /// newline.
    ///
    /// # Errors
    /// When the file cannot be read, is not UTF-8 or is empty; the error names the file, never
    /// its content.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
            path: path.to_path_buf(),
            source,
        })?;
        // Editors and `echo` end files with a newline, `kubectl create secret --from-file`
        // keeps whatever the file had: surrounding whitespace is never part of a token.
        let value = text.trim();
        if value.is_empty() {
            return Err(SecretError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        if value.chars().any(char::is_control) {
            return Err(SecretError::ControlCharacter {
                origin: format!("secret file {}", path.display()),
            });
        }
        Ok(Self(value.to_string()))
    }

    /// Reads a secret from an environment variable.
    ///
    /// # Errors
    /// When the variable is unset, empty or not Unicode; the error names the variable, never its
    /// value.
    pub fn from_env(var: &str) -> Result<Self, SecretError> {
        match std::env::var(var) {
            Ok(value) if value.is_empty() => Err(SecretError::Env {
                var: var.to_string(),
                reason: "is empty",
            }),
            Ok(value) if value.trim().chars().any(char::is_control) => {
                Err(SecretError::ControlCharacter {
                    origin: format!("environment variable {var}"),
                })
            }
            Ok(value) => Ok(Self(value.trim().to_string())),
            Err(std::env::VarError::NotPresent) => Err(SecretError::Env {
                var: var.to_string(),
                reason: "is not set",
            }),
            // `VarError::NotUnicode` carries the value: never format it.
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::Env {
                var: var.to_string(),
                reason: "is not valid Unicode",
            }),
        }
    }

    /// The secret value itself; only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a [`Secret`] could not be loaded. Names the file or variable, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret file cannot be read.
    #[error("cannot read secret file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error (it carries no file content).
        source: std::io::Error,
    },
    /// The secret file is empty (or only a newline).
    #[error("secret file {} is empty", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The secret holds a line break or another control character inside, which no HTTP
    /// header can carry.
    #[error(
        "{origin} holds a line break or control character inside the secret; it must hold the token (or password) on one line"
    )]
    ControlCharacter {
        /// The file or variable.
        origin: String,
    },
    /// The environment variable cannot be used.
    #[error("environment variable {var} {reason}")]
    Env {
        /// The variable name.
        var: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// How to authenticate to Prometheus (or the proxy in front of it).
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// HTTP basic auth.
    Basic {
        /// User name (not secret).
        username: String,
        /// Password.
        password: Secret,
    },
}

impl Credentials {
    /// Texts to scrub from anything that came back from the network: the secret itself and,
    /// for basic auth, the encoded `Authorization` value a server might echo.
    pub(super) fn redactions(&self) -> Vec<String> {
        let mut out = match self {
            Credentials::None => Vec::new(),
            Credentials::Bearer(token) => vec![token.expose().to_string()],
            Credentials::Basic { username, password } => vec![
                base64(format!("{username}:{}", password.expose()).as_bytes()),
                password.expose().to_string(),
            ],
        };
        out.retain(|s| !s.is_empty());
        out
    }
}

/// Standard base64 with padding (as in `Authorization: Basic`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_basic_auth_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"alice:pw-DISTINCTIVE-9Kq2"),
            "YWxpY2U6cHctRElTVElOQ1RJVkUtOUtxMg=="
        );
    }

    #[test]
    fn secret_from_file_trims_the_newline_and_names_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().expose(), "s3cr3t");
        std::fs::write(&path, "\n").unwrap();
        let err = Secret::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("token") && err.contains("empty"), "{err}");
        let err = Secret::from_file(dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn secret_from_env_names_the_variable() {
        let err = Secret::from_env("CANARY_GATE_TEST_SURELY_UNSET_VAR")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment variable CANARY_GATE_TEST_SURELY_UNSET_VAR is not set"
        );
    }
}
