//! The providers a default orchestrator registers: the one file of this crate that names a
//! cloud provider (the architecture test holds it to that). Each entry composes what the
//! provider's leaf crate states (its profile and client); adding a provider adds a line here.

use std::sync::Arc;

use livchat_providers::{HetznerProvider, Provider};
use livchat_store::ProviderKind;

use crate::error::CoreError;
use crate::provider_registry::{ProviderEntry, ProviderRegistry};

/// The vault keys of the built-in providers' tokens, for frontends and tests that name them.
pub mod tokens {
    pub use livchat_providers::HETZNER_TOKEN;
}

/// Every built-in provider, the one `server create` uses first.
pub(crate) fn registry() -> ProviderRegistry {
    let mut registry = ProviderRegistry::default();
    registry.register(ProviderEntry {
        kind: ProviderKind::Hetzner,
        profile: HetznerProvider::PROFILE,
        factory: Arc::new(|token| {
            let p =
                HetznerProvider::from_env(token).map_err(|e| CoreError::Provider(e.to_string()))?;
            Ok(Arc::new(p) as Arc<dyn Provider>)
        }),
    });
    registry
}
