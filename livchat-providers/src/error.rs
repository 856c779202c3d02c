//! Typed errors shared by [`crate::Provider`] and [`crate::DnsClient`].
//!
//! Every variant names the service and, where it applies, the field or name the caller gave,
//! so a frontend can print it as is. No variant carries a token or a response header: the
//! messages come from the vendor's `error.message`, which never echoes credentials.

use std::fmt;
use std::time::Duration;

/// The vendor an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Hetzner Cloud (`api.hetzner.cloud`).
    Hetzner,
    /// Cloudflare (`api.cloudflare.com`).
    Cloudflare,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Hetzner => "Hetzner Cloud",
            Service::Cloudflare => "Cloudflare",
        })
    }
}

/// What went wrong talking to a cloud or DNS API.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The caller's input broke a rule before anything was sent.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field, as the caller knows it (`name`, `labels`, `ipv4`...).
        field: &'static str,
        /// What is allowed.
        reason: String,
    },
    /// 401/403: the token is missing, wrong, expired or lacks a permission.
    #[error(
        "{service} rejected the API token ({code}): {message}; check the token stored in the vault \
         (Cloudflare needs a scoped token with Zone:Read and DNS:Edit)"
    )]
    InvalidToken {
        /// Which vendor.
        service: Service,
        /// The vendor's error code (`unauthorized`, `forbidden`, `10000`...).
        code: String,
        /// The vendor's message.
        message: String,
    },
    /// The account's quota or a resource limit is reached (Hetzner `resource_limit_exceeded`...).
    #[error("{service} quota or limit exceeded ({code}): {message}")]
    LimitExceeded {
        /// Which vendor.
        service: Service,
        /// The vendor's error code.
        code: String,
        /// The vendor's message.
        message: String,
    },
    /// A resource with this name exists and is not ours to reuse (Hetzner `uniqueness_error`).
    #[error("{service}: the name {name:?} is already taken ({message})")]
    NameTaken {
        /// Which vendor.
        service: Service,
        /// The name the caller asked for.
        name: String,
        /// The vendor's message, or why we refused to adopt it.
        message: String,
    },
    /// The location does not exist at the provider.
    #[error("unknown location {name:?}; available: {}", available.join(", "))]
    UnknownLocation {
        /// What the caller asked for.
        name: String,
        /// What the provider offers.
        available: Vec<String>,
    },
    /// The server type does not exist (or is not offered) at the provider.
    #[error("unknown server type {name:?}; available: {}", available.join(", "))]
    UnknownServerType {
        /// What the caller asked for.
        name: String,
        /// What the provider offers.
        available: Vec<String>,
    },
    /// The image does not exist at the provider.
    #[error("unknown image {name:?}; list them with `livchat provider info images`")]
    UnknownImage {
        /// What the caller asked for.
        name: String,
    },
    /// No zone of that name is visible to the token.
    #[error("DNS zone {zone:?} not found at {service} (or the token cannot read it)")]
    ZoneNotFound {
        /// Which vendor.
        service: Service,
        /// The zone name asked for.
        zone: String,
    },
    /// A resource addressed by id does not exist.
    #[error("{service}: {what} not found")]
    NotFound {
        /// Which vendor.
        service: Service,
        /// What was looked for (`server 42`, `DNS record abc`...).
        what: String,
    },
    /// The vendor refused the request for another reason (4xx, or 5xx after the last retry).
    #[error("{service} {operation} failed with HTTP {status} ({code}): {message}")]
    Api {
        /// Which vendor.
        service: Service,
        /// What we were doing (`create server`...).
        operation: String,
        /// The HTTP status.
        status: u16,
        /// The vendor's error code, if any.
        code: String,
        /// The vendor's message, if any.
        message: String,
    },
    /// The request never got an answer (connection refused or dropped, timeout), after the
    /// last attempt when the request was retryable.
    #[error("{service} {operation}: no answer after {attempts} attempt(s): {message}")]
    Unreachable {
        /// Which vendor.
        service: Service,
        /// What we were doing.
        operation: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last transport error.
        message: String,
    },
    /// The vendor kept answering 429 (or asked to wait longer than the policy allows).
    #[error("{service} {operation}: rate limited after {attempts} attempt(s){}", retry_after.map(|d| format!(", asked to wait {} s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        /// Which vendor.
        service: Service,
        /// What we were doing.
        operation: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last wait the vendor asked for, if it said.
        retry_after: Option<Duration>,
    },
    /// An asynchronous action (Hetzner `action`) ended in `error`.
    #[error("{service} action {command} ({id}) failed ({code}): {message}")]
    ActionFailed {
        /// Which vendor.
        service: Service,
        /// The action's id.
        id: i64,
        /// The action's command (`create_server`...).
        command: String,
        /// The action's error code.
        code: String,
        /// The action's error message.
        message: String,
    },
    /// We stopped waiting for an action or a state.
    #[error("{service}: gave up waiting for {what} after {} s", waited.as_secs())]
    WaitTimeout {
        /// Which vendor.
        service: Service,
        /// What we waited for.
        what: String,
        /// How long we waited.
        waited: Duration,
    },
    /// A success answer did not have the shape of the vendor's schema.
    #[error("{service} {operation}: unexpected response: {message}")]
    Decode {
        /// Which vendor.
        service: Service,
        /// What we were doing.
        operation: String,
        /// What did not parse.
        message: String,
    },
    /// The endpoint override or client settings are unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl CloudError {
    /// Whether a later retry of the whole operation may succeed (transient failures).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CloudError::Unreachable { .. }
                | CloudError::RateLimited { .. }
                | CloudError::WaitTimeout { .. }
        ) || matches!(self, CloudError::Api { status, .. } if *status >= 500)
    }
}

/// Result alias of this crate.
pub type Result<T, E = CloudError> = std::result::Result<T, E>;
