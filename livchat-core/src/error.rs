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
    /// Another job (of this or another process) is queued or running on the server.
    #[error(
        "server {server} is busy with job {job} ({kind}, {owner}, since {since}); wait for it to end or cancel it"
    )]
    Busy {
        server: String,
        job: String,
        kind: String,
        owner: String,
        since: String,
    },
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
    /// An app name the catalog does not have (the message lists the ones it has).
    #[error("{0}")]
    AppNotFound(String),
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

/// What kind of failure an error is, for every frontend to map onto its own codes (CLI exit
/// status, HTTP status, MCP `isError` with a code). Frontends must not parse messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input is not allowed; the error names the field (exit 2, HTTP 400).
    BadInput,
    /// Something named does not exist (HTTP 404).
    NotFound,
    /// Refused in the current state: a job running on the server, apps still deployed, a job
    /// that cannot be retried (HTTP 409).
    Conflict,
    /// A credential is missing from the vault (HTTP 412).
    MissingCredential,
    /// The job was cancelled.
    Cancelled,
    /// Ran out of time (HTTP 504).
    Timeout,
    /// A cloud, DNS provider, server or Docker failed (HTTP 502).
    Upstream,
    /// Anything else: the home directory, the vault, a corrupt state (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// The stable snake_case name frontends put in their error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadInput => "bad_input",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::MissingCredential => "missing_credential",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Upstream => "upstream",
            Self::Internal => "internal",
        }
    }
}

impl CoreError {
    /// The classification frontends map to their codes.
    pub fn kind(&self) -> ErrorKind {
        use livchat_store::StoreError as S;
        if self.is_bad_input() {
            return ErrorKind::BadInput;
        }
        if self.is_cancelled() {
            return ErrorKind::Cancelled;
        }
        match self {
            Self::NotFound { .. } | Self::AppNotFound(_) => ErrorKind::NotFound,
            Self::Refused(_) | Self::Busy { .. } => ErrorKind::Conflict,
            Self::MissingCredential { .. } => ErrorKind::MissingCredential,
            Self::Timeout(_) => ErrorKind::Timeout,
            Self::Store(S::Locked { .. } | S::NewerSerial { .. }) => ErrorKind::Conflict,
            Self::Store(S::NotInitialized { .. }) => ErrorKind::NotFound,
            Self::Store(_) => ErrorKind::Internal,
            Self::Remote(livchat_remote::RemoteError::Timeout(_)) => ErrorKind::Timeout,
            Self::Remote(_)
            | Self::Provider(_)
            | Self::Dns(_)
            | Self::Platform(_)
            | Self::Step { .. } => ErrorKind::Upstream,
            Self::Apps(_) => ErrorKind::Internal,
            Self::Invalid { .. } | Self::Cancelled => unreachable!("classified above"),
        }
    }

    /// The input field a bad-input error is about, when it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::Store(livchat_store::StoreError::InvalidInput { field, .. }) => Some(field),
            Self::Store(livchat_store::StoreError::UnknownSetting { .. }) => Some("key"),
            _ => None,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Values the user gave (a zone, a `--set` key or value) come back as [`CoreError::Invalid`],
/// so every frontend treats them as bad input (exit 2, HTTP 400) wherever they were caught.
pub(crate) fn apps_err(e: livchat_apps::AppsError) -> CoreError {
    match e {
        livchat_apps::AppsError::InvalidValue { field, message } => CoreError::Invalid {
            field,
            reason: message,
        },
        e @ livchat_apps::AppsError::UnknownParameter { .. } => CoreError::Invalid {
            field: "--set".into(),
            reason: e.to_string(),
        },
        e @ livchat_apps::AppsError::UnknownApp { .. } => CoreError::AppNotFound(e.to_string()),
        other => CoreError::Apps(other.to_string()),
    }
}
