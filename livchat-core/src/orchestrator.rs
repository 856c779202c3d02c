//! The `Orchestrator`: every operation of the product, composed from the leaf crates' traits.
//!
//! Quick operations (secrets, settings, listing, exec) return at once. Long ones (create,
//! setup, deploy, undeploy, delete) are jobs: `start_*` records a queued job with its planned
//! steps and returns it; [`Orchestrator::run_job`] runs it (in this process: the CLI awaits it,
//! the API and MCP spawn it). The steps themselves live in `flows/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
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
    DeploymentRecord, JobLogStore, JobRecord, JobStatus, LogLine, ProviderKind, SecretStore,
    ServerRecord, ServerStatus, SettingKey, State, Store, StoreExt,
};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{CoreError, Result};
use crate::host_key::{HostKeyOffer, HostKeyTrust, Repinned};
use crate::jobs::{JobKind, JobManager};

/// The vault key of the Hetzner API token.
pub const HETZNER_TOKEN: &str = "hetzner_token";
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

/// Builds a `Provider` from a token (real: Hetzner; tests: a mock or a client of a fake).
pub type ProviderFactory = Arc<dyn Fn(SecretString) -> Result<Arc<dyn Provider>> + Send + Sync>;
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
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) provider_factory: ProviderFactory,
    pub(crate) dns_factory: DnsFactory,
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) platform_factory: PlatformFactory,
    /// Checks names of servers with manual DNS; `None`: a UDP resolver from the configuration.
    pub(crate) resolver: Option<Arc<dyn livchat_providers::NameResolver>>,
    /// One SSH connection per server, reused by every command of every job of this process.
    pub(crate) connections: Arc<crate::connections::ConnectionMap>,
    pub(crate) provider_cache: Mutex<Option<Arc<dyn Provider>>>,
    pub(crate) dns_cache: Mutex<Option<Arc<dyn DnsClient>>>,
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
    catalog: Arc<Catalog>,
    provider_factory: ProviderFactory,
    dns_factory: DnsFactory,
    connector: Arc<dyn Connector>,
    platform_factory: PlatformFactory,
    resolver: Option<Arc<dyn livchat_providers::NameResolver>>,
}

impl OrchestratorBuilder {
    /// Starts from the parts every orchestrator needs; the rest default to the real
    /// implementations (Hetzner, Cloudflare, russh, Swarm over SSH).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        job_logs: Arc<dyn JobLogStore>,
        catalog: Catalog,
    ) -> Self {
        Self {
            config,
            store,
            secrets,
            job_logs,
            catalog: Arc::new(catalog),
            provider_factory: Arc::new(|token| {
                let p = livchat_providers::HetznerProvider::from_env(token)
                    .map_err(|e| CoreError::Provider(e.to_string()))?;
                Ok(Arc::new(p) as Arc<dyn Provider>)
            }),
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

    pub fn provider_factory(mut self, f: ProviderFactory) -> Self {
        self.provider_factory = f;
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
            provider_factory: self.provider_factory,
            dns_factory: self.dns_factory,
            connector: self.connector,
            platform_factory: self.platform_factory,
            resolver: self.resolver,
            connections: Arc::new(tokio::sync::Mutex::new(HashMap::new())),
            provider_cache: Mutex::new(None),
            dns_cache: Mutex::new(None),
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
        let store = Arc::new(livchat_store::JsonFileStore::new(&config.home));
        // A missing state.json is the store's NotInitialized error, naming the file.
        store.load()?;
        let (password, _) = livchat_store::resolve_vault_password(
            &config.home,
            config.vault_password_file.as_deref(),
        )?;
        let vault = livchat_store::Vault::open(&paths.vault, password, None)?;
        let catalog = Catalog::load(config.apps_dirs.as_deref())
            .map_err(|e| CoreError::Apps(e.to_string()))?;
        let logs = Arc::new(livchat_store::FileJobLogs::new(&config.home));
        let orchestrator =
            OrchestratorBuilder::new(config, store, Arc::new(vault), logs, catalog).build();
        orchestrator.recover_interrupted_jobs()?;
        Ok(orchestrator)
    }

    /// Marks jobs whose process is gone as interrupted (see [`JobManager::recover_interrupted`]).
    pub fn recover_interrupted_jobs(&self) -> Result<Vec<String>> {
        self.jobs.recover_interrupted(&|job| {
            job_owner(job).is_some_and(|(pid, host)| {
                host == livchat_store::this_host() && livchat_store::process_alive(pid)
            })
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn jobs(&self) -> &Arc<JobManager> {
        &self.jobs
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn state(&self) -> Result<State> {
        Ok(self.store.load()?)
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
        self.store.update("settings set", &mut |s| {
            s.settings.set(key, value)?;
            Ok(())
        })?;
        Ok(())
    }

    pub fn setting_get(&self, key: &str) -> Result<Option<String>> {
        let key: SettingKey = key.parse()?;
        Ok(self.store.load()?.settings.get(key).map(str::to_string))
    }

    /// Every allowed key with its value (if set) and description.
    pub fn settings(&self) -> Result<Vec<(String, Option<String>, &'static str)>> {
        let state = self.store.load()?;
        Ok(SettingKey::ALL
            .iter()
            .map(|k| {
                (
                    k.as_str().to_string(),
                    state.settings.get(*k).map(str::to_string),
                    k.description(),
                )
            })
            .collect())
    }

    // ----- providers and DNS ---------------------------------------------------------------

    pub(crate) fn provider(&self) -> Result<Arc<dyn Provider>> {
        let mut cache = self
            .provider_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.as_ref() {
            return Ok(p.clone());
        }
        let p = (self.provider_factory)(self.require_secret(HETZNER_TOKEN)?)?;
        *cache = Some(p.clone());
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

    /// Checks a Hetzner token against the API, then stores it in the vault.
    pub async fn configure_hetzner(&self, token: SecretString) -> Result<()> {
        let provider = (self.provider_factory)(token.clone())?;
        provider
            .list_locations()
            .await
            .map_err(|e| CoreError::Provider(given_token_error(e)))?;
        self.secrets.set(HETZNER_TOKEN, token)?;
        *self
            .provider_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(provider);
        Ok(())
    }

    /// Checks a Cloudflare token against the API (it must see `zone`), then stores it.
    pub async fn configure_cloudflare(&self, token: SecretString, zone: &str) -> Result<()> {
        // The same rule and exit code as `server setup --zone`.
        validate_dns(zone, None)?;
        let dns = (self.dns_factory)(token.clone())?;
        dns.find_zone(zone)
            .await
            .map_err(|e| CoreError::Dns(given_token_error(e)))?;
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
        Ok(self.store.load()?.servers.into_values().collect())
    }

    pub fn server(&self, name: &str) -> Result<ServerRecord> {
        self.store
            .load()?
            .servers
            .get(name)
            .cloned()
            .ok_or_else(|| CoreError::NotFound {
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
    async fn connect_server(
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

    fn agent_socket(&self) -> Result<std::path::PathBuf> {
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

    pub(crate) async fn platform(&self, name: &str) -> Result<Arc<dyn ContainerPlatform>> {
        Ok((self.platform_factory)(self.executor(name).await?))
    }

    /// Adds an existing server: checks every field, connects once, has the host key trusted
    /// as `req.host_key` says (never silently), then stores the key in the vault and pins the
    /// host key. Nothing is recorded or stored if any of it fails or the key is declined.
    pub async fn server_add(&self, req: AddServer) -> Result<AddedServer> {
        let AddServer {
            name,
            host,
            port,
            user,
            private_key,
            key_passphrase,
            ssh_agent,
            host_key,
        } = req;
        let name = name.as_str();
        livchat_store::validate_server_name(name)
            .map_err(|r| CoreError::invalid("server name", r))?;
        // The state's own rule, so whatever is accepted here can be stored and read back.
        livchat_store::validate_unix_user(&user).map_err(|r| CoreError::invalid("user", r))?;
        validate_host(&host)?;
        // Swarm advertises an IP address and the A records point at one: a DNS name would be
        // resolved by each step on its own, and could change between them.
        if host.parse::<IpAddr>().is_err() {
            return Err(CoreError::invalid(
                "host",
                format!(
                    "`{host}` is a DNS name; give the server's IP address (`getent ahostsv4 {host}` shows it): Swarm advertises an IP and the DNS records point at it"
                ),
            ));
        }
        if port == 0 {
            return Err(CoreError::invalid("port", "must be 1-65535"));
        }
        let host_key = match host_key {
            Some(HostKeyTrust::Expect(fp)) => HostKeyTrust::Expect(
                crate::host_key::validate_fingerprint("host_key_fingerprint", &fp)?,
            ),
            Some(other) => other,
            None => {
                return Err(CoreError::invalid(
                    "host_key_fingerprint",
                    "the host key cannot be confirmed without a terminal; give its fingerprint, SHA256:... (`--host-key-fingerprint`, or `host_key_fingerprint` over REST and MCP; `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server prints it) or, to trust the key presented on first contact, `--accept-new-host-key` (`accept_new_host_key: true`)",
                ));
            }
        };
        let state = self.store.load()?;
        if state.servers.contains_key(name) {
            return Err(CoreError::Refused(format!(
                "server {name} already exists; delete it first or choose another name"
            )));
        }
        let mut notes = Vec::new();
        for other in state.servers.values().filter(|s| s.host == host) {
            notes.push(format!(
                "server {} already points at {host}: both records manage the same machine, and setting up one renames its host and Swarm node for the other",
                other.name
            ));
        }
        if user != "root" {
            notes.push(format!(
                "{user} is not root: `server exec` works as {user}, but `server setup` needs root (apt, Docker, ufw) and refuses this server; add it with --user root to set it up"
            ));
        }
        let secret_name = ssh_key_secret(name);
        let passphrase_name = ssh_key_passphrase_secret(name);
        let key = match (private_key, ssh_agent) {
            (Some(_), true) => {
                return Err(CoreError::invalid(
                    "--ssh-agent",
                    "give either --key FILE or --ssh-agent, not both",
                ));
            }
            (None, true) => None,
            (Some(k), false) => Some(k),
            (None, false) => Some(self.secrets.get(&secret_name)?.ok_or_else(|| {
                CoreError::invalid(
                    "key",
                    "give --key FILE (an OpenSSH or PEM private key: Ed25519, ECDSA or RSA, with or without a passphrase) or --ssh-agent",
                )
            })?),
        };
        // The key as the connection uses it (decrypted in memory), and the passphrase to keep.
        let (usable_key, passphrase) = match &key {
            Some(k) if livchat_remote::private_key_is_encrypted(k) => {
                let Some(p) = key_passphrase else {
                    return Err(CoreError::invalid(
                        "--key-passphrase-file",
                        "the key is protected by a passphrase; give it on the terminal prompt or with --key-passphrase-file FILE",
                    ));
                };
                let opened = livchat_remote::decrypt_private_key(k, Some(&p))?;
                (Some(opened.private_openssh), Some(p))
            }
            Some(k) => {
                livchat_remote::parse_private_key(k)?;
                (Some(k.clone()), None)
            }
            None => (None, None),
        };
        let target = SshTarget {
            name: name.to_string(),
            host: host.clone(),
            port,
            user: user.clone(),
        };
        let policy = match &host_key {
            HostKeyTrust::Expect(fp) => HostKeyPolicy::Pinned(fp.clone()),
            HostKeyTrust::AcceptNew | HostKeyTrust::Ask(_) => HostKeyPolicy::TrustOnFirstUse,
        };
        let opened = match &usable_key {
            Some(k) => self
                .connector
                .connect(&target, k, &policy)
                .await
                .map(|c| (c, None)),
            None => {
                let socket = self.agent_socket()?;
                self.connector
                    .connect_agent(&target, &socket, None, &policy)
                    .await
                    .map(|(c, fp)| (c, Some(fp)))
            }
        };
        let (connected, agent_key) = match opened {
            Err(livchat_remote::RemoteError::HostKeyChanged {
                pinned, offered, ..
            }) => {
                return Err(CoreError::Refused(format!(
                    "{host} presents host key {offered}, not the expected {pinned}; nothing was added. \
                     Check the fingerprint on the server's console"
                )));
            }
            other => other?,
        };
        let fingerprint = connected.host_key_fingerprint.clone();
        if let HostKeyTrust::Ask(question) = &host_key {
            let offer = HostKeyOffer {
                server: name.to_string(),
                host: host.clone(),
                port,
                pinned: None,
                presented: fingerprint.clone(),
            };
            if !question(&offer) {
                return Err(CoreError::Refused(format!(
                    "host key {fingerprint} of {host} not accepted; nothing was added"
                )));
            }
        }
        if let Some(key) = key {
            self.secrets.set(&secret_name, key)?;
            match passphrase {
                Some(p) => self.secrets.set(&passphrase_name, p)?,
                // A passphrase left from an earlier server of this name must not be applied
                // to this key.
                None => {
                    self.secrets.delete(&passphrase_name)?;
                }
            }
        }
        let record = ServerRecord {
            name: name.to_string(),
            provider: ProviderKind::Manual,
            provider_id: None,
            host: host.clone(),
            ssh_port: port,
            ssh_user: user.clone(),
            ssh_key_secret: secret_name,
            ssh_agent_key: agent_key,
            host_key_fingerprint: Some(fingerprint),
            dns: None,
            server_type: None,
            location: None,
            image: None,
            labels: BTreeMap::new(),
            status: ServerStatus::Running,
            setup: Default::default(),
            platform: Default::default(),
            created_at: chrono::Utc::now(),
        };
        let stored = record.clone();
        self.store.update("server add", &mut |s| {
            if s.servers.contains_key(name) {
                return Err(livchat_store::StoreError::InvalidInput {
                    field: "server name".into(),
                    reason: format!("server {name} already exists"),
                });
            }
            s.servers.insert(name.to_string(), stored.clone());
            Ok(())
        })?;
        self.connections
            .lock()
            .await
            .insert(name.to_string(), connected.executor);
        Ok(AddedServer { record, notes })
    }

    /// Replaces a server's pinned host key with the one it presents now, the explicit user
    /// action after a reinstall: only a key whose fingerprint the user gave (`Expect`) or
    /// confirmed after seeing the old and the new one (`Ask`). `AcceptNew` is refused.
    pub async fn repin_host_key(&self, name: &str, trust: HostKeyTrust) -> Result<Repinned> {
        let server = self.server(name)?;
        let trust = match trust {
            HostKeyTrust::Expect(fp) => {
                HostKeyTrust::Expect(crate::host_key::validate_fingerprint("--fingerprint", &fp)?)
            }
            HostKeyTrust::AcceptNew => {
                return Err(CoreError::invalid(
                    "--fingerprint",
                    "a changed host key is never accepted unchecked; give --fingerprint SHA256:... as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it on the server's console, or run on a terminal to compare and confirm",
                ));
            }
            ask @ HostKeyTrust::Ask(_) => ask,
        };
        let policy = match &trust {
            HostKeyTrust::Expect(fp) => HostKeyPolicy::Pinned(fp.clone()),
            _ => HostKeyPolicy::TrustOnFirstUse,
        };
        let connected = match self.connect_server(&server, &policy).await {
            Err(CoreError::Remote(livchat_remote::RemoteError::HostKeyChanged {
                pinned,
                offered,
                ..
            })) => {
                return Err(CoreError::Refused(format!(
                    "server {name} presents host key {offered}, not the given {pinned}; the pin was not changed"
                )));
            }
            other => other?,
        };
        let new = connected.host_key_fingerprint.clone();
        let old = server.host_key_fingerprint.clone();
        let changed = old.as_deref() != Some(new.as_str());
        if let HostKeyTrust::Ask(question) = &trust
            && changed
        {
            let offer = HostKeyOffer {
                server: name.to_string(),
                host: server.host.clone(),
                port: server.ssh_port,
                pinned: old.clone(),
                presented: new.clone(),
            };
            if !question(&offer) {
                return Err(CoreError::Refused(format!(
                    "host key {new} of {name} not accepted; the pin was not changed"
                )));
            }
        }
        if changed {
            self.store.update("server repin", &mut |s| {
                if let Some(sv) = s.servers.get_mut(name) {
                    sv.host_key_fingerprint = Some(new.clone());
                }
                Ok(())
            })?;
        }
        self.connections
            .lock()
            .await
            .insert(name.to_string(), connected.executor);
        Ok(Repinned {
            server: name.to_string(),
            old,
            new,
            changed,
        })
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

    pub fn app_definitions(&self) -> Vec<&AppDefinition> {
        self.catalog.list().map(|e| &e.definition).collect()
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
            .catalog
            .find(&query)
            .into_iter()
            .map(|e| &e.definition)
            .collect())
    }

    pub fn app_definition(&self, app: &str) -> Result<&AppDefinition> {
        self.catalog.require(app).map_err(crate::error::apps_err)
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
        self.catalog
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
            .load()?
            .settings
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

    // ----- jobs ----------------------------------------------------------------------------

    /// Runs a queued job in this task until it ends; the record says how it ended.
    pub async fn run_job(self: &Arc<Self>, id: &str) -> Result<JobRecord> {
        let ctx = self.jobs.prepare(id)?;
        self.watch_cancel_requests(id, ctx.cancel_token());
        let job = self.jobs.run(id, self.as_ref()).await;
        self.mark_job_owner(id, false)?;
        job
    }

    /// Puts a failed, cancelled or interrupted job back in the queue, owned by this process;
    /// [`Orchestrator::run_job`] then resumes it from its first incomplete step.
    pub fn start_retry_job(&self, id: &str) -> Result<JobRecord> {
        let job = self.jobs.get(id)?;
        if !self.config.wait_turn
            && let Some(server) = job.server.as_deref()
            && let Some(other) = self
                .jobs
                .list(None)?
                .into_iter()
                .find(|j| j.id != id && crate::jobs::occupies(j, server))
        {
            return Err(crate::jobs::busy_error(&other));
        }
        self.jobs.retry(id)?;
        self.mark_job_owner(id, true)?;
        self.jobs.get(id)
    }

    /// Takes over a queued job that another process of this home created (the CLI's
    /// `--detach` hands its job to a background process this way). Only a queued job can be
    /// taken: a running one belongs to the process running it.
    pub fn adopt_job(&self, id: &str) -> Result<JobRecord> {
        let (_, job) = self.store.update_with("job adopt", |s| {
            let job = s
                .jobs
                .get_mut(id)
                .ok_or_else(|| crate::jobs::job_not_found(id))?;
            if job.status != JobStatus::Queued {
                return Err(livchat_store::StoreError::Rejected(format!(
                    "job {id} is not queued; only a queued job can be taken over"
                )));
            }
            job.owner = Some(crate::jobs::this_process());
            job.cancel_requested = false;
            Ok(job.clone())
        })?;
        Ok(job)
    }

    /// Cancels a job: in this process through its token; in another process by recording the
    /// request, which that process polls between and during steps.
    pub fn cancel_job(&self, id: &str) -> Result<JobRecord> {
        let job = self.jobs.get(id)?;
        let owned_elsewhere = job_owner(&job).is_some_and(|(pid, host)| {
            (pid != std::process::id() || host != livchat_store::this_host())
                && livchat_store::process_alive(pid)
        });
        if owned_elsewhere && matches!(job.status, JobStatus::Running | JobStatus::Queued) {
            self.store.update("job cancel request", &mut |s| {
                if let Some(j) = s.jobs.get_mut(id) {
                    j.cancel_requested = true;
                }
                Ok(())
            })?;
            return self.jobs.get(id);
        }
        self.jobs.cancel(id)
    }

    /// Waits until a job ends (polling the store, so it works for jobs of other processes).
    pub async fn wait_job(&self, id: &str) -> Result<JobRecord> {
        loop {
            let job = self.jobs.get(id)?;
            if crate::jobs::is_ended(job.status) {
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// [`Orchestrator::wait_job`] for at most `timeout`; the job as it is then.
    pub async fn wait_job_for(&self, id: &str, timeout: Duration) -> Result<JobRecord> {
        match tokio::time::timeout(timeout, self.wait_job(id)).await {
            Ok(job) => job,
            Err(_) => self.jobs.get(id),
        }
    }

    /// The log of a job from line `from` on.
    pub fn job_logs(&self, id: &str, from: usize) -> Result<Vec<LogLine>> {
        self.jobs.logs(id, from)
    }

    /// Records which process runs a job (or that none does any more), so a restart can tell
    /// a live job from an interrupted one and `job cancel` can reach it.
    pub(crate) fn mark_job_owner(&self, id: &str, owned: bool) -> Result<()> {
        self.store.update("job owner", &mut |s| {
            if let Some(j) = s.jobs.get_mut(id) {
                j.owner = owned.then(crate::jobs::this_process);
                // A request left from an earlier attempt must not cancel the next one.
                j.cancel_requested = false;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Creates a job owned by this process.
    pub(crate) fn create_job(
        &self,
        kind: JobKind,
        server: Option<&str>,
        params: serde_json::Value,
        steps: Vec<String>,
    ) -> Result<JobRecord> {
        if self.config.wait_turn {
            self.jobs.create(kind, server, params, steps)
        } else {
            self.jobs.create_exclusive(kind, server, params, steps)
        }
    }

    /// Polls the store for a cancel request made by another process, and cancels `token`.
    pub(crate) fn watch_cancel_requests(self: &Arc<Self>, id: &str, token: CancellationToken) {
        let this = Arc::clone(self);
        let id = id.to_string();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                match this.jobs.get(&id) {
                    Ok(job) if crate::jobs::is_ended(job.status) => return,
                    Ok(job) if job.cancel_requested => {
                        token.cancel();
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
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

/// A token being configured is not in the vault yet: a refusal says so instead of the
/// usual advice to check the stored one.
fn given_token_error(e: livchat_providers::CloudError) -> String {
    match e {
        livchat_providers::CloudError::InvalidToken {
            service,
            code,
            message,
        } => format!(
            "{service} rejected the token given ({code}): {message}; nothing was stored{}",
            match service {
                livchat_providers::Service::Cloudflare => {
                    " (Cloudflare needs a scoped token with Zone:Read and DNS:Edit)"
                }
                _ => " (Hetzner Cloud needs a project token with Read & Write)",
            }
        ),
        other => other.to_string(),
    }
}

fn job_owner(job: &JobRecord) -> Option<(u32, String)> {
    job.owner.as_ref().map(|o| (o.pid, o.host.clone()))
}

/// `--set key=value` arguments into a map (keys checked by the catalog against the app).
pub(crate) fn parse_sets(set: &[String]) -> Result<BTreeMap<String, String>> {
    set.iter()
        .map(|s| livchat_apps::parse_set(s).map_err(crate::error::apps_err))
        .collect()
}

/// A host is an IP address or a DNS name; nothing that could become an option or a command.
pub(crate) fn validate_host(host: &str) -> Result<()> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('-')
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "host",
            format!(
                "`{}` is not an IP address or a DNS name",
                host.escape_debug()
            ),
        ))
    }
}

/// A zone and subdomain as DNS names (the errors name the field).
pub(crate) fn validate_dns(zone: &str, subdomain: Option<&str>) -> Result<()> {
    livchat_apps::DnsConfig::new(zone, subdomain).map_err(crate::error::apps_err)?;
    Ok(())
}
