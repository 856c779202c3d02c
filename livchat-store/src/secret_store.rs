//! `SecretStore`: the vault as the core sees it, so the core can hold `Arc<dyn SecretStore>`
//! and tests can swap in [`MemorySecrets`] or the mockall mock.

use std::collections::BTreeMap;
use std::sync::Mutex;

use secrecy::{ExposeSecret, SecretString};

use crate::error::StoreError;
use crate::vault::{Vault, validate_secret_name};

/// Named secrets. Implementations validate names with [`validate_secret_name`].
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait SecretStore: Send + Sync {
    /// The secret `name`, if present.
    fn get(&self, name: &str) -> Result<Option<SecretString>, StoreError>;
    /// Stores `value` under `name`, replacing any previous value.
    fn set(&self, name: &str, value: SecretString) -> Result<(), StoreError>;
    /// Removes `name`; returns whether it was present.
    fn delete(&self, name: &str) -> Result<bool, StoreError>;
    /// Every secret name, sorted (never values).
    fn names(&self) -> Result<Vec<String>, StoreError>;
}

impl SecretStore for Vault {
    fn get(&self, name: &str) -> Result<Option<SecretString>, StoreError> {
        Vault::get(self, name)
    }
    fn set(&self, name: &str, value: SecretString) -> Result<(), StoreError> {
        Vault::set(self, name, value)
    }
    fn delete(&self, name: &str) -> Result<bool, StoreError> {
        Vault::delete(self, name)
    }
    fn names(&self) -> Result<Vec<String>, StoreError> {
        Vault::names(self)
    }
}

/// Secrets in memory, with the vault's name rules (for tests of the layers above).
#[derive(Debug, Default)]
pub struct MemorySecrets {
    secrets: Mutex<BTreeMap<String, SecretString>>,
}

impl MemorySecrets {
    pub fn new() -> Self {
        Self::default()
    }
}

fn check(name: &str) -> Result<(), StoreError> {
    validate_secret_name(name).map_err(|reason| StoreError::invalid("secret name", reason))
}

impl SecretStore for MemorySecrets {
    fn get(&self, name: &str) -> Result<Option<SecretString>, StoreError> {
        check(name)?;
        let secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        Ok(secrets
            .get(name)
            .map(|s| SecretString::from(s.expose_secret().to_owned())))
    }
    fn set(&self, name: &str, value: SecretString) -> Result<(), StoreError> {
        check(name)?;
        let mut secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        secrets.insert(name.to_string(), value);
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<bool, StoreError> {
        check(name)?;
        let mut secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        Ok(secrets.remove(name).is_some())
    }
    fn names(&self) -> Result<Vec<String>, StoreError> {
        let secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        Ok(secrets.keys().cloned().collect())
    }
}
