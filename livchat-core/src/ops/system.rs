//! Operations on the home and the accounts: settings, secrets (names only out), provider
//! information, DNS records.

use std::sync::Arc;

use async_trait::async_trait;
use livchat_providers::Architecture;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::views::{ImageView, LocationView, ServerTypeView};
use super::{DnsRecordView, Operation, ProviderInfoView, SettingView, op_info};
use crate::orchestrator::{ProviderInfo, ProviderInfoKind};
use crate::{CoreError, Orchestrator, Result};

/// Every setting with its value and description.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsGet {}

#[async_trait]
impl Operation for SettingsGet {
    const INFO: super::OperationInfo = op_info!(SettingsGet, "settings_get", "settings list",
        Read, job: false, idempotent: true, open_world: false, "List the settings");
    type Output = Vec<SettingView>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch
            .settings()?
            .into_iter()
            .map(|(key, value, description)| SettingView {
                key,
                value,
                description: description.to_string(),
            })
            .collect())
    }
}

/// Set one setting (a fixed set of keys: see `settings_get`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsSet {
    pub key: String,
    pub value: String,
}

#[async_trait]
impl Operation for SettingsSet {
    const INFO: super::OperationInfo = op_info!(SettingsSet, "settings_set", "settings set",
        Change, job: false, idempotent: true, open_world: false, "Set a setting");
    type Output = SettingView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        orch.setting_set(&self.key, &self.value)?;
        let all = orch.settings()?;
        let (key, value, description) = all
            .into_iter()
            .find(|(k, _, _)| *k == self.key)
            .unwrap_or((self.key, Some(self.value), ""));
        Ok(SettingView {
            key,
            value,
            description: description.to_string(),
        })
    }
}

/// The names of the secrets in the vault (never their values).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretNames {}

#[async_trait]
impl Operation for SecretNames {
    const INFO: super::OperationInfo = op_info!(SecretNames, "secret_names", "secrets list",
        Read, job: false, idempotent: true, open_world: false,
        "List the names of the secrets in the vault");
    type Output = Vec<String>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        orch.secret_names()
    }
}

/// A secret's name: what secret operations answer (values never leave the vault).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SecretName {
    pub name: String,
}

/// Store a secret in the vault.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSet {
    /// Secret name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// The value. Write-only: never returned, logged or shown.
    #[serde(skip_serializing)]
    #[schemars(with = "String")]
    pub value: SecretString,
}

#[async_trait]
impl Operation for SecretSet {
    const INFO: super::OperationInfo = op_info!(SecretSet, "secret_set", "secrets set", Change,
        job: false, idempotent: true, open_world: false, "Store a secret in the vault");
    type Output = SecretName;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        // Checked here too so the error names the request's field (`name`), not the store's.
        livchat_store::validate_secret_name(&self.name)
            .map_err(|r| CoreError::invalid("name", r))?;
        orch.secret_set(&self.name, self.value)?;
        Ok(SecretName { name: self.name })
    }
}

/// Delete a secret from the vault.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretDelete {
    /// Secret name.
    pub name: String,
}

#[async_trait]
impl Operation for SecretDelete {
    const INFO: super::OperationInfo = op_info!(SecretDelete, "secret_delete", "secrets delete",
        Destroy, job: false, idempotent: false, open_world: false,
        "Delete a secret from the vault");
    type Output = SecretName;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        livchat_store::validate_secret_name(&self.name)
            .map_err(|r| CoreError::invalid("name", r))?;
        orch.secret_delete(&self.name)?;
        Ok(SecretName { name: self.name })
    }
}

/// What the provider offers.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderInfoKindRequest {
    Locations,
    ServerTypes,
    Images,
}

/// Locations, server types or images offered by the cloud provider.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderInfoRequest {
    pub kind: ProviderInfoKindRequest,
}

fn arch(a: Architecture) -> String {
    match a {
        Architecture::X86 => "x86".into(),
        Architecture::Arm => "arm".into(),
    }
}

#[async_trait]
impl Operation for ProviderInfoRequest {
    const INFO: super::OperationInfo = op_info!(ProviderInfoRequest, "provider_info",
        "provider info", Read, job: false, idempotent: true, open_world: true,
        "Locations, server types or images of the cloud provider");
    type Output = ProviderInfoView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        let kind = match self.kind {
            ProviderInfoKindRequest::Locations => ProviderInfoKind::Locations,
            ProviderInfoKindRequest::ServerTypes => ProviderInfoKind::ServerTypes,
            ProviderInfoKindRequest::Images => ProviderInfoKind::Images,
        };
        Ok(match orch.provider_info(kind).await? {
            ProviderInfo::Locations(items) => ProviderInfoView::Locations(
                items
                    .into_iter()
                    .map(|l| LocationView {
                        name: l.name,
                        description: l.description,
                        city: l.city,
                        country: l.country,
                    })
                    .collect(),
            ),
            ProviderInfo::ServerTypes(items) => ProviderInfoView::ServerTypes(
                items
                    .into_iter()
                    .map(|t| ServerTypeView {
                        name: t.name,
                        description: t.description,
                        cores: t.cores,
                        memory_gb: t.memory_gb,
                        disk_gb: t.disk_gb,
                        architecture: arch(t.architecture),
                    })
                    .collect(),
            ),
            ProviderInfo::Images(items) => ProviderInfoView::Images(
                items
                    .into_iter()
                    .map(|i| ImageView {
                        id: i.id,
                        name: i.name,
                        description: i.description,
                        os_flavor: i.os_flavor,
                        os_version: i.os_version,
                        architecture: arch(i.architecture),
                    })
                    .collect(),
            ),
        })
    }
}

/// The records of a DNS zone.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsList {
    /// DNS zone (`example.com`).
    pub zone: String,
}

#[async_trait]
impl Operation for DnsList {
    const INFO: super::OperationInfo = op_info!(DnsList, "dns_list", "dns list", Read,
        job: false, idempotent: true, open_world: true, "List the records of a DNS zone");
    type Output = Vec<DnsRecordView>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch
            .dns_list(&self.zone)
            .await?
            .into_iter()
            .map(|r| DnsRecordView {
                id: r.id,
                name: r.name,
                record_type: String::from(r.record_type),
                content: r.content,
                proxied: r.proxied,
                ttl: r.ttl,
            })
            .collect())
    }
}
