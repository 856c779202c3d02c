//! The `Orchestrator`: every operation of the product, composed from the leaf crates' traits.
//!
//! Quick operations (secrets, settings, listing, exec) return at once. Long ones (create,
//! setup, deploy, undeploy, delete) are jobs: `start_*` records a queued job with its planned
//! steps and returns it; [`Orchestrator::run_job`] runs it (in this process: the CLI awaits it,
//! the API and MCP spawn it). The steps themselves live in `flows/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use livchat_apps::{AppDefinition, Catalog, PreviewRequest, PreviewStack, RenderContext};
use livchat_providers::{DnsClient, DnsRecord, Image, Location, Provider, ServerType};
use livchat_remote::{
    Command, Connector, ContainerPlatform, ExecOptions, ExecOutput, HostKeyPolicy, RemoteExecutor,
    SshTarget,
};
use livchat_store::{
    DeploymentRecord, JobLogStore, ProviderKind, SecretStore, ServerRecord, SettingKey, State,
    Store,
};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{CoreError, Result};
use crate::host_key::HostKeyTrust;
use crate::jobs::JobManager;
use crate::provider_registry::{ProviderEntry, ProviderRegistry};

/// The vault key of the Cloudflare API token.
pub const CLOUDFLARE_TOKEN: &str = "cloudflare_api_token";

/// The vault key of a server's SSH private key.
pub fn ssh_key_secret(server: &str) -> String {
    format!("ssh.{server}.private_key")
}

/// Whether a private key the user brings is protected by a passphrase (so a frontend can ask).
pub fn key_needs_passphrase(private_key: &SecretString) -> bool {
    livchat_remote::private_key_is_encrypted(private_key)
}

/// The vault key of the passphrase of a server's SSH private key (when it has one).
pub fn ssh_key_passphrase_secret(server: &str) -> String {
    format!("ssh.{server}.key_passphrase")
}

pub use crate::provider_registry::ProviderFactory;
/// Builds a `DnsClient` from a token.
pub type DnsFactory = Arc<dyn Fn(SecretString) -> Result<Arc<dyn DnsClient>> + Send + Sync>;
/// Builds the container platform of a server from its SSH connection.
pub type PlatformFactory =
    Arc<dyn Fn(Arc<dyn RemoteExecutor>) -> Arc<dyn ContainerPlatform> + Send + Sync>;

/// What `provider info` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderInfoKind {
    Locations,
    ServerTypes,
    Images,
}

/// The answer of `provider info`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum ProviderInfo {
    Locations(Vec<Location>),
    ServerTypes(Vec<ServerType>),
    Images(Vec<Image>),
}

/// What `server add` is given.
#[derive(Debug, Clone)]
pub struct AddServer {
    pub name: String,
    /// An IP address or a DNS name.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The private key the user brings (OpenSSH or PEM text; Ed25519, ECDSA or RSA); `None`
    /// uses the ssh-agent when `ssh_agent` is set, else a key already in the vault.
    pub private_key: Option<SecretString>,
    /// The passphrase of `private_key`, when it has one; kept in the vault beside the key.
    pub key_passphrase: Option<SecretString>,
    /// Authenticate with a key of the user's ssh-agent (`SSH_AUTH_SOCK`); no key is stored.
    pub ssh_agent: bool,
    /// How the host key presented on first contact is trusted; `None` (no fingerprint given
    /// and nobody to ask) is refused.
    pub host_key: Option<HostKeyTrust>,
}

/// What `server add` did: the record, and notes the user should read (warnings).
#[derive(Debug, Clone)]
pub struct AddedServer {
    pub record: ServerRecord,
    pub notes: Vec<String>,
}

/// Everything an orchestrator is made of; [`OrchestratorBuilder`] fills it.
pub struct Orchestrator {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) secrets: Arc<dyn SecretStore>,
    pub(crate) jobs: Arc<JobManager>,
    pub(crate) catalog: crate::catalog_cell::CatalogCell,
    pub(crate) providers: ProviderRegistry,
    pub(crate) dns_factory: DnsFactory,
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) platform_factory: PlatformFactory,
    /// Checks names of servers with manual DNS; `None`: a UDP resolver from the configuration.
    pub(crate) resolver: Option<Arc<dyn livchat_providers::NameResolver>>,
    /// One SSH connection per server, reused by every command of every job of this process.
    pub(crate) connections: Arc<crate::connections::ConnectionMap>,
    /// One client per provider kind, built from its token on first use.
    pub(crate) provider_cache: Mutex<Vec<(ProviderKind, Arc<dyn Provider>)>>,
    pub(crate) dns_cache: Mutex<Option<Arc<dyn DnsClient>>>,
    /// Where jobs run when not on the caller's runtime (`run_jobs_on`).
    pub(crate) job_runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("home", &self.config.home)
            .finish_non_exhaustive()
    }
}

/// Assembles an orchestrator from any implementation of each trait (mocks, fakes, real).
pub struct OrchestratorBuilder {
    config: Config,
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    job_logs: Arc<dyn JobLogStore>,
    catalog: crate::catalog_cell::CatalogCell,
    providers: ProviderRegistry,
    dns_factory: DnsFactory,
    connector: Arc<dyn Connector>,
    platform_factory: PlatformFactory,
    resolver: Option<Arc<dyn livchat_providers::NameResolver>>,
}

impl OrchestratorBuilder {
    /// Starts from the parts every orchestrator needs; the rest default to the real
    /// implementations (the built-in cloud providers, Cloudflare, russh, Swarm over SSH).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        job_logs: Arc<dyn JobLogStore>,
        catalog: Catalog,
    ) -> Self {
        let catalog = crate::catalog_cell::CatalogCell::parsed(catalog);
        Self::assemble(config, store, secrets, job_logs, catalog)
    }

    fn assemble(
        config: Config,
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        job_logs: Arc<dyn JobLogStore>,
        catalog: crate::catalog_cell::CatalogCell,
    ) -> Self {
        Self {
            config,
            store,
            secrets,
            job_logs,
            catalog,
            providers: crate::builtin_providers::registry(),
            dns_factory: Arc::new(|token| {
                let d = livchat_providers::CloudflareDns::from_env(token)
                    .map_err(|e| CoreError::Dns(e.to_string()))?;
                Ok(Arc::new(d) as Arc<dyn DnsClient>)
            }),
            connector: Arc::new(livchat_remote::SshConnector::default()),
            platform_factory: Arc::new(|executor| {
                Arc::new(livchat_remote::SwarmOverSsh::new(executor)) as Arc<dyn ContainerPlatform>
            }),
            resolver: None,
        }
    }

    pub fn resolver(mut self, r: Arc<dyn livchat_providers::NameResolver>) -> Self {
        self.resolver = Some(r);
        self
    }

    /// Builds the clients of the provider `server create` uses with `f` instead.
    pub fn provider_factory(mut self, f: ProviderFactory) -> Self {
        self.providers.replace_creating_factory(f);
        self
    }

    /// Registers a provider, or replaces the one of its kind.
    pub fn provider(mut self, entry: ProviderEntry) -> Self {
        self.providers.register(entry);
        self
    }

    pub fn dns_factory(mut self, f: DnsFactory) -> Self {
        self.dns_factory = f;
        self
    }

    pub fn connector(mut self, c: Arc<dyn Connector>) -> Self {
        self.connector = c;
        self
    }

    pub fn platform_factory(mut self, f: PlatformFactory) -> Self {
        self.platform_factory = f;
        self
    }

    pub fn build(self) -> Arc<Orchestrator> {
        Arc::new(Orchestrator {
            jobs: Arc::new(JobManager::new(self.store.clone(), self.job_logs)),
            config: self.config,
            store: self.store,
            secrets: self.secrets,
            catalog: self.catalog,
            providers: self.providers,
            dns_factory: self.dns_factory,
            connector: self.connector,
            platform_factory: self.platform_factory,
            resolver: self.resolver,
            connections: Arc::new(tokio::sync::Mutex::new(HashMap::new())),
            provider_cache: Mutex::new(Vec::new()),
            dns_cache: Mutex::new(None),
            job_runtime: std::sync::OnceLock::new(),
        })
    }
}

/// What `init` did.
pub use livchat_store::InitReport;

impl Orchestrator {
    /// Creates the home (directory 0700, `state.json`, vault, `.vault_password` unless the
    /// password comes from the environment or a file). Idempotent; never overwrites.
    pub fn init(config: &Config) -> Result<InitReport> {
        let explicit = livchat_store::explicit_vault_password(
            &config.home,
            config.vault_password_file.as_deref(),
        )?;
        Ok(livchat_store::init_home_with(
            &config.home,
            livchat_store::InitOptions {
                vault_password: explicit,
                vault_label: None,
            },
        )?)
    }

    /// Opens an initialised home with the real implementations, and marks jobs left running by
    /// a process that ended as interrupted.
    pub fn open(config: Config) -> Result<Arc<Orchestrator>> {
        let paths = livchat_store::HomePaths::new(&config.home);
        let mut store = livchat_store::JsonFileStore::new(&config.home);
        if config.long_lived {
            store = store.watching_changes();
        }
        let store = Arc::new(store);
        // A missing state.json is the store's NotInitialized error, naming the file. Only its
        // first lines are read here: `settings set` never parses the servers.
        store.ensure_ready()?;
        let (password, _) = livchat_store::resolve_vault_password(
            &config.home,
            config.vault_password_file.as_deref(),
        )?;
        let vault = livchat_store::Vault::open_deferred(&paths.vault, password, None)?;
        let logs = Arc::new(livchat_store::FileJobLogs::new(&config.home));
        let catalog = crate::catalog_cell::CatalogCell::deferred(config.apps_dirs.clone());
        let long_lived = config.long_lived;
        let orchestrator =
            OrchestratorBuilder::assemble(config, store, Arc::new(vault), logs, catalog).build();
        if long_lived {
            // A service parses the catalog at start: a broken template stops it there, and
            // no client's first request pays for the parse.
            orchestrator.catalog()?;
        }
        orchestrator.recover_interrupted_jobs()?;
        Ok(orchestrator)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn jobs(&self) -> &Arc<JobManager> {
        &self.jobs
    }

    /// The app catalog, parsed on its first use in this process.
    pub fn catalog(&self) -> Result<&Catalog> {
        self.catalog.get()
    }

    pub fn state(&self) -> Result<State> {
        Ok(self.store.load()?)
    }

    /// Changes whenever the state may have changed since the last call (see
    /// [`livchat_store::Store::state_generation`]); `None` when that is not known cheaply.
    pub fn state_generation(&self) -> Option<u64> {
        self.store.state_generation()
    }

    // ----- secrets -------------------------------------------------------------------------

    pub fn secret_set(&self, name: &str, value: SecretString) -> Result<()> {
        if value.expose_secret().is_empty() {
            return Err(CoreError::invalid("value", "a secret cannot be empty"));
        }
        Ok(self.secrets.set(name, value)?)
    }

    pub fn secret_get(&self, name: &str) -> Result<SecretString> {
        self.secrets
            .get(name)?
            .ok_or_else(|| CoreError::not_found("secret", name))
    }

    pub fn secret_names(&self) -> Result<Vec<String>> {
        Ok(self.secrets.names()?)
    }

    pub fn secret_delete(&self, name: &str) -> Result<()> {
        if self.secrets.delete(name)? {
            Ok(())
        } else {
            Err(CoreError::not_found("secret", name))
        }
    }

    pub(crate) fn require_secret(&self, name: &str) -> Result<SecretString> {
        self.secrets
            .get(name)?
            .ok_or_else(|| CoreError::MissingCredential {
                name: name.to_string(),
            })
    }

    // ----- settings ------------------------------------------------------------------------

    pub fn setting_set(&self, key: &str, value: &str) -> Result<()> {
        let key: SettingKey = key.parse()?;
        self.store
            .update_settings("settings set", &mut |s| s.set(key, value))?;
        Ok(())
    }

    pub fn setting_get(&self, key: &str) -> Result<Option<String>> {
        let key: SettingKey = key.parse()?;
        Ok(self.store.settings()?.get(key).map(str::to_string))
    }

    /// Every allowed key with its value (if set) and description.
    pub fn settings(&self) -> Result<Vec<(String, Option<String>, &'static str)>> {
        let settings = self.store.settings()?;
        Ok(SettingKey::ALL
            .iter()
            .map(|k| {
                (
                    k.as_str().to_string(),
                    settings.get(*k).map(str::to_string),
                    k.description(),
                )
            })
            .collect())
    }

    // ----- providers and DNS ---------------------------------------------------------------

    /// The provider `server create` uses.
    pub(crate) fn provider(&self) -> Result<Arc<dyn Provider>> {
        self.provider_client(self.providers.creating()?)
    }

    /// The client of `entry`'s provider, built from its token once per process.
    pub(crate) fn provider_client(&self, entry: &ProviderEntry) -> Result<Arc<dyn Provider>> {
        let mut cache = self
            .provider_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = cache.iter().find(|(kind, _)| *kind == entry.kind) {
            return Ok(p.clone());
        }
        let p = (entry.factory)(self.require_secret(entry.profile.token_secret)?)?;
        cache.push((entry.kind, p.clone()));
        Ok(p)
    }

    pub(crate) fn dns(&self) -> Result<Arc<dyn DnsClient>> {
        let mut cache = self.dns_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = cache.as_ref() {
            return Ok(d.clone());
        }
        let d = (self.dns_factory)(self.require_secret(CLOUDFLARE_TOKEN)?)?;
        *cache = Some(d.clone());
        Ok(d)
    }

    /// The resolver that checks names of servers with manual DNS: the one built in, else one
    /// asking `LIVCHAT_DNS_RESOLVER`, else the first nameserver of `/etc/resolv.conf`.
    pub(crate) fn resolver(&self) -> Result<Arc<dyn livchat_providers::NameResolver>> {
        if let Some(r) = &self.resolver {
            return Ok(r.clone());
        }
        let udp = match self.config.dns_resolver {
            Some(addr) => livchat_providers::UdpResolver::new(addr),
            None => livchat_providers::UdpResolver::system()
                .map_err(|e| CoreError::Dns(e.to_string()))?,
        };
        Ok(Arc::new(udp))
    }

    /// Checks a token of the provider `server create` uses against its API, then stores it
    /// in the vault; returns the vault key it is stored under.
    pub async fn configure_provider(&self, token: SecretString) -> Result<&'static str> {
        let entry = self.providers.creating()?;
        let provider = (entry.factory)(token.clone())?;
        provider
            .list_locations()
            .await
            .map_err(|e| CoreError::Provider(given_token_error(e, entry.profile.token_hint)))?;
        self.secrets.set(entry.profile.token_secret, token)?;
        let mut cache = self
            .provider_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cache.retain(|(kind, _)| *kind != entry.kind);
        cache.push((entry.kind, provider));
        Ok(entry.profile.token_secret)
    }

    /// Checks a Cloudflare token against the API (it must see `zone`), then stores it.
    pub async fn configure_cloudflare(&self, token: SecretString, zone: &str) -> Result<()> {
        // The same rule and exit code as `server setup --zone`.
        validate_dns(zone, None)?;
        let dns = (self.dns_factory)(token.clone())?;
        dns.find_zone(zone).await.map_err(|e| {
            CoreError::Dns(given_token_error(
                e,
                "Cloudflare needs a scoped token with Zone:Read and DNS:Edit",
            ))
        })?;
        self.secrets.set(CLOUDFLARE_TOKEN, token)?;
        *self.dns_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(dns);
        Ok(())
    }

    pub async fn provider_info(&self, what: ProviderInfoKind) -> Result<ProviderInfo> {
        let p = self.provider()?;
        let err = |e: livchat_providers::CloudError| CoreError::Provider(e.to_string());
        Ok(match what {
            ProviderInfoKind::Locations => {
                ProviderInfo::Locations(p.list_locations().await.map_err(err)?)
            }
            ProviderInfoKind::ServerTypes => {
                ProviderInfo::ServerTypes(p.list_server_types().await.map_err(err)?)
            }
            ProviderInfoKind::Images => ProviderInfo::Images(p.list_images().await.map_err(err)?),
        })
    }

    pub async fn dns_list(&self, zone: &str) -> Result<Vec<DnsRecord>> {
        let dns = self.dns()?;
        let err = |e: livchat_providers::CloudError| CoreError::Dns(e.to_string());
        let zone = dns.find_zone(zone).await.map_err(err)?;
        dns.list_records(&zone).await.map_err(err)
    }

    // ----- servers -------------------------------------------------------------------------

    pub fn servers(&self) -> Result<Vec<ServerRecord>> {
        Ok(self.store.servers()?.into_values().collect())
    }

    pub fn server(&self, name: &str) -> Result<ServerRecord> {
        self.store.server(name)?.ok_or_else(|| CoreError::NotFound {
            kind: "server",
            name: name.to_string(),
            hint: "; see `livchat server list`".into(),
        })
    }

    pub(crate) fn target(server: &ServerRecord) -> SshTarget {
        SshTarget {
            name: server.name.clone(),
            host: server.host.clone(),
            port: server.ssh_port,
            user: server.ssh_user.clone(),
        }
    }

    /// The server's SSH connection (opened once per process, host key checked against the pin;
    /// opened again after it was found dead). The cache is not locked while connecting.
    pub(crate) async fn executor(&self, name: &str) -> Result<Arc<dyn RemoteExecutor>> {
        use crate::connections::Evicting;
        let cached = self.connections.lock().await.get(name).cloned();
        if let Some(e) = cached {
            return Ok(Evicting::wrap(e, name, &self.connections));
        }
        let server = self.server(name)?;
        let Some(pinned) = server.host_key_fingerprint.clone() else {
            return Err(CoreError::Refused(format!(
                "server {name} has no pinned host key yet; run `livchat server repin-host-key {name} --fingerprint SHA256:...` after checking the server"
            )));
        };
        let connected = match self
            .connect_server(&server, &HostKeyPolicy::Pinned(pinned))
            .await
        {
            Err(CoreError::Remote(livchat_remote::RemoteError::HostKeyChanged {
                pinned,
                offered,
                ..
            })) => return Err(crate::host_key::host_key_changed(name, &pinned, &offered)),
            other => other?,
        };
        // Another task may have connected meanwhile: keep one connection per server.
        let executor = self
            .connections
            .lock()
            .await
            .entry(name.to_string())
            .or_insert(connected.executor)
            .clone();
        Ok(Evicting::wrap(executor, name, &self.connections))
    }

    /// Opens a connection to a recorded server the way it authenticates: a key of the user's
    /// ssh-agent, or the key in the vault (opened with its passphrase from the vault, in
    /// memory only, when it has one).
    pub(crate) async fn connect_server(
        &self,
        server: &ServerRecord,
        policy: &HostKeyPolicy,
    ) -> std::result::Result<livchat_remote::Connected, CoreError> {
        let target = Self::target(server);
        if let Some(fingerprint) = &server.ssh_agent_key {
            let socket = self.agent_socket()?;
            let (connected, _) = self
                .connector
                .connect_agent(&target, &socket, Some(fingerprint.clone()), policy)
                .await?;
            return Ok(connected);
        }
        let key = self.require_secret(&server.ssh_key_secret)?;
        let key = match self.secrets.get(&ssh_key_passphrase_secret(&server.name))? {
            Some(passphrase) => {
                livchat_remote::decrypt_private_key(&key, Some(&passphrase))?.private_openssh
            }
            None => key,
        };
        Ok(self.connector.connect(&target, &key, policy).await?)
    }

    pub(crate) fn agent_socket(&self) -> Result<std::path::PathBuf> {
        self.config.ssh_agent_socket.clone().ok_or_else(|| {
            CoreError::invalid(
                "--ssh-agent",
                "SSH_AUTH_SOCK is not set: start ssh-agent and add the key with `ssh-add`",
            )
        })
    }

    pub(crate) async fn forget_connection(&self, name: &str) {
        self.connections.lock().await.remove(name);
    }

    /// The server's platform; a cluster manager's reaches its nodes too (`cluster_platform.rs`).
    pub(crate) async fn platform(&self, name: &str) -> Result<Arc<dyn ContainerPlatform>> {
        let own = (self.platform_factory)(self.executor(name).await?);
        self.on_cluster(name, own).await
    }

    /// Runs `argv` on the server; the arguments arrive byte for byte.
    pub async fn server_exec(
        &self,
        name: &str,
        argv: &[String],
        cancel: CancellationToken,
    ) -> Result<ExecOutput> {
        self.server_exec_for(name, argv, cancel, Duration::from_secs(3600))
            .await
    }

    /// [`Orchestrator::server_exec`] killed on the server after `timeout`.
    pub async fn server_exec_for(
        &self,
        name: &str,
        argv: &[String],
        cancel: CancellationToken,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| CoreError::invalid("command", "give a program to run after `--`"))?;
        let executor = self.executor(name).await?;
        let command = Command::new(program.clone()).args(args.iter().cloned());
        Ok(executor
            .exec(
                &command,
                ExecOptions {
                    cancel,
                    timeout,
                    ..ExecOptions::default()
                },
            )
            .await?)
    }

    // ----- apps ----------------------------------------------------------------------------

    pub fn app_definitions(&self) -> Result<Vec<&AppDefinition>> {
        Ok(self.catalog()?.list().map(|e| &e.definition).collect())
    }

    /// `app list --category CAT` and `app search WORD...`: the catalog's apps of `category`
    /// (by name; an unknown one is bad input) holding every word, best matches first.
    pub fn app_search(
        &self,
        category: Option<&str>,
        words: &[String],
    ) -> Result<Vec<&AppDefinition>> {
        let query =
            livchat_apps::AppQuery::parse(category, words).map_err(crate::error::apps_err)?;
        Ok(self
            .catalog()?
            .find(&query)
            .into_iter()
            .map(|e| &e.definition)
            .collect())
    }

    pub fn app_definition(&self, app: &str) -> Result<&AppDefinition> {
        self.catalog()?.require(app).map_err(crate::error::apps_err)
    }

    /// `app render`: the stacks of `app` and its dependencies in install order, with
    /// placeholder secrets generated for this call and stored nowhere.
    pub fn app_render(
        &self,
        app: &str,
        zone: &str,
        subdomain: Option<&str>,
        set: &[String],
    ) -> Result<Vec<PreviewStack>> {
        let dns = livchat_apps::DnsConfig::new(zone, subdomain).map_err(crate::error::apps_err)?;
        let params = parse_sets(set)?;
        let settings = self.settings_map()?;
        let request = PreviewRequest {
            app: app.to_string(),
            context: RenderContext {
                server: livchat_apps::ServerInfo::placeholder(),
                dns,
                settings,
                options: self.render_options(),
            },
            params,
            deployed: BTreeSet::new(),
        };
        self.catalog()?
            .render_preview(&request)
            .map_err(crate::error::apps_err)
    }

    pub(crate) fn render_options(&self) -> livchat_apps::RenderOptions {
        livchat_apps::RenderOptions {
            endpoint_mode: self.config.endpoint_mode,
            ..Default::default()
        }
    }

    pub(crate) fn settings_map(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .store
            .settings()?
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_string()))
            .collect())
    }

    /// The apps deployed on a server.
    pub fn deployed(&self, server: &str) -> Result<Vec<DeploymentRecord>> {
        self.server(server)?;
        Ok(self
            .store
            .load()?
            .deployments
            .get(server)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    // ----- many servers --------------------------------------------------------------------

    /// Runs `op` for every server name with at most `concurrency` at once; one result per
    /// server, in the order given.
    pub async fn for_each_server<F, Fut, T>(
        &self,
        names: &[String],
        concurrency: usize,
        op: F,
    ) -> Vec<(String, Result<T>)>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        futures::stream::iter(names.iter().cloned().map(|n| {
            let fut = op(n.clone());
            async move { (n, fut.await) }
        }))
        .buffered(concurrency.max(1))
        .collect()
        .await
    }
}

/// A token being configured is not in the vault yet: a refusal says so, and what the
/// service needs (`hint`), instead of the usual advice to check the stored one.
fn given_token_error(e: livchat_providers::CloudError, hint: &str) -> String {
    match e {
        livchat_providers::CloudError::InvalidToken {
            service,
            code,
            message,
        } => format!(
            "{service} rejected the token given ({code}): {message}; nothing was stored ({hint})"
        ),
        other => other.to_string(),
    }
}

/// `--set key=value` arguments into a map (keys checked by the catalog against the app).
pub(crate) fn parse_sets(set: &[String]) -> Result<BTreeMap<String, String>> {
    set.iter()
        .map(|s| livchat_apps::parse_set(s).map_err(crate::error::apps_err))
        .collect()
}

/// A host is an IP address or a DNS name; nothing that could become an option or a command
/// ([`livchat_store::names::host`]).
pub(crate) fn validate_host(host: &str) -> Result<()> {
    livchat_store::names::host(host).map_err(|_| {
        CoreError::invalid(
            "host",
            format!(
                "`{}` is not an IP address or a DNS name",
                host.escape_debug()
            ),
        )
    })
}

/// A zone and subdomain as DNS names (the errors name the field).
pub(crate) fn validate_dns(zone: &str, subdomain: Option<&str>) -> Result<()> {
    livchat_apps::DnsConfig::new(zone, subdomain).map_err(crate::error::apps_err)?;
    Ok(())
}
