//! The core's error type: what frontends show. Every variant names the thing it is about and
//! says what is allowed or what to do next; none carries a secret.

use std::time::Duration;

/// Errors of core operations.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A value given by the user is not allowed.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// Something named does not exist.
    #[error("{kind} `{name}` not found{hint}")]
    NotFound {
        kind: &'static str,
        name: String,
        hint: String,
    },
    /// The operation is refused in the current state (apps still deployed, a job still running).
    #[error("{0}")]
    Refused(String),
    /// A credential is missing from the vault.
    #[error(
        "missing credential `{name}` in the vault; set it with `livchat secrets set {name} --stdin`"
    )]
    MissingCredential { name: String },
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The job or step ran out of time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] livchat_store::StoreError),
    #[error(transparent)]
    Remote(#[from] livchat_remote::RemoteError),
    #[error("{0}")]
    Provider(String),
    #[error("{0}")]
    Dns(String),
    #[error("{0}")]
    Apps(String),
    #[error("{0}")]
    Platform(String),
    /// A step failed; names the step.
    #[error("step `{step}` failed: {message}")]
    Step { step: String, message: String },
}

impl CoreError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: name.into(),
            hint: String::new(),
        }
    }

    /// Whether the user's input was refused as not allowed, wherever it was caught (core,
    /// store, remote): frontends answer it as bad input (CLI exit 2, HTTP 400).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Invalid { .. }
                | Self::Store(
                    livchat_store::StoreError::InvalidInput { .. }
                        | livchat_store::StoreError::UnknownSetting { .. }
                )
                | Self::Remote(livchat_remote::RemoteError::Invalid { .. })
        )
    }

    /// Whether the error means "cancelled" (a cancelled job is not a failed job).
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            Self::Cancelled | Self::Remote(livchat_remote::RemoteError::Cancelled)
        )
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
