//! [`Provider`] for Hetzner Cloud.
//!
//! Requests and responses are the `hcloud` crate's generated models (strict: a response
//! missing a required or nullable field fails to decode, which is what keeps the fakes honest).
//! The requests themselves go through [`crate::http::Transport`], not through hcloud's
//! `apis::*` functions: those build their own request from `Configuration` and return
//! `Error::ResponseError(ResponseContent { status, content, entity })`, which drops the
//! response headers, so `Retry-After` and `RateLimit-Reset` could not be honoured. (Passing a
//! custom `reqwest::Client` with timeouts would work: `Configuration::client` is a public
//! field; the headers are the blocker.)
//!
//! Files by subject: `client.rs` sends requests (one call, paging, deleting by name, waiting
//! for actions), `errors.rs` turns Hetzner's error answers into
//! [`CloudError`](crate::CloudError)s, `catalog.rs` reads locations, server types and images,
//! `servers.rs` creates, finds, powers and deletes servers, `firewalls.rs` and `ssh_keys.rs`
//! ensure and delete those. The [`Provider`] impl below only hands each call to its subject's
//! file.

mod catalog;
mod client;
mod errors;
mod firewalls;
mod servers;
mod ssh_keys;
#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::error::{Result, Service};
use crate::http::Transport;
use crate::provider::{
    Firewall, FirewallSpec, Image, Location, ProgressFn, Provider, ProviderProfile, ProviderServer,
    ServerId, ServerSpec, ServerType, SshKey,
};
use crate::retry::RetryPolicy;

pub use ssh_keys::ssh_fingerprint;

/// Environment variable overriding the API base URL (for fakes, Prism, proxies).
pub const HETZNER_ENDPOINT_ENV: &str = "LIVCHAT_HETZNER_ENDPOINT";
/// The production API base URL.
pub const HETZNER_DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";

/// The vault key of the Hetzner Cloud API token.
pub const HETZNER_TOKEN: &str = "hetzner_token";

/// Settings of [`HetznerProvider`].
#[derive(Debug, Clone, PartialEq)]
pub struct HetznerConfig {
    /// API base URL, `https://api.hetzner.cloud/v1` unless overridden.
    pub endpoint: String,
    /// Timeouts and retries of each request.
    pub retry: RetryPolicy,
    /// How often a running action is polled.
    pub action_poll_interval: Duration,
    /// How long to wait for one action before giving up.
    pub action_timeout: Duration,
}

impl Default for HetznerConfig {
    fn default() -> Self {
        HetznerConfig {
            endpoint: HETZNER_DEFAULT_ENDPOINT.to_owned(),
            retry: RetryPolicy::default(),
            action_poll_interval: Duration::from_secs(1),
            action_timeout: Duration::from_secs(600),
        }
    }
}

impl HetznerConfig {
    /// Defaults, with the endpoint from `LIVCHAT_HETZNER_ENDPOINT` when set.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`HetznerConfig::from_env`] with the environment given as a function, so tests
    /// need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut c = HetznerConfig::default();
        if let Some(e) = lookup(HETZNER_ENDPOINT_ENV).filter(|e| !e.trim().is_empty()) {
            c.endpoint = e.trim().to_owned();
        }
        c
    }
}

/// Hetzner Cloud through its public API, authenticated with a project API token.
#[derive(Debug)]
pub struct HetznerProvider {
    http: Transport,
    config: HetznerConfig,
}

impl HetznerProvider {
    /// Hetzner Cloud as the core sees it before a client exists.
    pub const PROFILE: ProviderProfile = ProviderProfile {
        token_secret: HETZNER_TOKEN,
        token_hint: "Hetzner Cloud needs a project token with Read & Write",
        firewalls: true,
    };

    /// A client with this token and configuration.
    pub fn new(token: SecretString, config: HetznerConfig) -> Result<Self> {
        let http = Transport::new(
            Service::Hetzner,
            &config.endpoint,
            &token,
            config.retry.clone(),
        )?;
        Ok(HetznerProvider { http, config })
    }

    /// A client with the default configuration and the endpoint from
    /// `LIVCHAT_HETZNER_ENDPOINT`, when set.
    pub fn from_env(token: SecretString) -> Result<Self> {
        Self::new(token, HetznerConfig::from_env())
    }

    /// The configuration in use.
    pub fn config(&self) -> &HetznerConfig {
        &self.config
    }
}

#[async_trait]
impl Provider for HetznerProvider {
    async fn list_locations(&self) -> Result<Vec<Location>> {
        catalog::list_locations(self).await
    }

    async fn list_server_types(&self) -> Result<Vec<ServerType>> {
        catalog::list_server_types(self).await
    }

    async fn list_images(&self) -> Result<Vec<Image>> {
        catalog::list_images(self).await
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> Result<SshKey> {
        ssh_keys::ensure(self, name, public_key).await
    }

    async fn create_server(
        &self,
        spec: &ServerSpec,
        progress: &ProgressFn,
    ) -> Result<ProviderServer> {
        servers::create(self, spec, progress).await
    }

    async fn find_server(&self, name: &str) -> Result<Option<ProviderServer>> {
        servers::find(self, name).await
    }

    async fn delete_server(&self, id: &ServerId, progress: &ProgressFn) -> Result<()> {
        servers::delete(self, id, progress).await
    }

    async fn delete_firewall(&self, name: &str) -> Result<()> {
        firewalls::delete(self, name).await
    }

    async fn delete_ssh_key(&self, name: &str) -> Result<()> {
        ssh_keys::delete(self, name).await
    }

    async fn ensure_firewall(&self, spec: &FirewallSpec, server: &ServerId) -> Result<Firewall> {
        firewalls::ensure(self, spec, server).await
    }
}
