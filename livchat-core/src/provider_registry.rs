//! The cloud providers an orchestrator can create and delete servers with, by the
//! [`ProviderKind`] a server record keeps. The flows ask this registry which token a provider
//! needs and whether it keeps firewalls, so a new provider is an entry (its profile from its
//! leaf crate and a factory), registered in `builtin_providers.rs`, with no flow changed.
//! `ProviderKind::Manual` is no entry: a server brought by hand has no provider.

use std::sync::Arc;

use livchat_providers::{Provider, ProviderProfile};
use livchat_store::{ProviderKind, ServerRecord};
use secrecy::SecretString;

use crate::error::{CoreError, Result};

/// Builds a `Provider` from a token (real: the provider's client; tests: a mock or a client
/// of a fake).
pub type ProviderFactory = Arc<dyn Fn(SecretString) -> Result<Arc<dyn Provider>> + Send + Sync>;

/// One provider: the kind its servers are recorded under, its profile and its factory.
pub struct ProviderEntry {
    pub kind: ProviderKind,
    pub profile: ProviderProfile,
    pub factory: ProviderFactory,
}

impl std::fmt::Debug for ProviderEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderEntry")
            .field("kind", &self.kind)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// The registered providers; the first is where `server create` creates servers.
#[derive(Debug, Default)]
pub(crate) struct ProviderRegistry {
    entries: Vec<ProviderEntry>,
}

impl ProviderRegistry {
    /// Adds `entry`, or replaces the entry of its kind where it stood (so a replaced first
    /// entry still creates the servers).
    pub(crate) fn register(&mut self, entry: ProviderEntry) {
        match self.entries.iter_mut().find(|e| e.kind == entry.kind) {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
    }

    /// The provider `server create` uses.
    pub(crate) fn creating(&self) -> Result<&ProviderEntry> {
        self.entries.first().ok_or_else(|| {
            CoreError::Refused(
                "no cloud provider is registered; add an existing server with `livchat server add`"
                    .into(),
            )
        })
    }

    /// Gives the first entry another factory (tests: a mock or a client of a fake).
    pub(crate) fn replace_creating_factory(&mut self, factory: ProviderFactory) {
        if let Some(first) = self.entries.first_mut() {
            first.factory = factory;
        }
    }

    /// The provider that manages `server`, `None` for a server brought by hand. A kind no
    /// entry is registered for is refused rather than taken for a manual server, which would
    /// leave the machine running and billed when its record is deleted.
    pub(crate) fn of_server(&self, server: &ServerRecord) -> Result<Option<&ProviderEntry>> {
        if server.provider == ProviderKind::Manual {
            return Ok(None);
        }
        self.entries
            .iter()
            .find(|e| e.kind == server.provider)
            .map(Some)
            .ok_or_else(|| {
                CoreError::Refused(format!(
                    "server {} was created by provider {:?}, which this build does not know",
                    server.name, server.provider
                ))
            })
    }
}
