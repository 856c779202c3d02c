//! Server operations: list, show, add, create, set up, delete, exec, DNS update, platform.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{ExecResult, JobOperation, JobView, Operation, Plan, ServerView, op_info};
use crate::flows::{CreateServerParams, SetupServerParams};
use crate::{AddServer, CoreError, HostKeyTrust, Orchestrator, Result};

/// The image a created server gets when none is named.
pub const DEFAULT_IMAGE: &str = "debian-12";
/// `server exec` runs at most this long.
pub const EXEC_MAX_TIMEOUT_SECS: u64 = 300;
/// `server exec` returns at most this much of each stream.
pub const EXEC_MAX_OUTPUT: usize = 1024 * 1024;

/// List the servers in the state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerList {}

#[async_trait]
impl Operation for ServerList {
    const INFO: super::OperationInfo = op_info!(ServerList, "server_list", "server list", Read,
        job: false, idempotent: true, open_world: false, "List the servers");
    type Output = Vec<ServerView>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        let state = orch.state()?;
        Ok(state
            .servers
            .values()
            .map(|s| ServerView::in_state(s.clone(), &state))
            .collect())
    }
}

/// Show one server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerShow {
    /// Server name.
    pub server: String,
}

#[async_trait]
impl Operation for ServerShow {
    const INFO: super::OperationInfo = op_info!(ServerShow, "server_show", "server show", Read,
        job: false, idempotent: true, open_world: false, "Show a server");
    type Output = ServerView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(ServerView::in_state(
            orch.server(&self.server)?,
            &orch.state()?,
        ))
    }
}

/// Add a server you already have (bring your own): its key goes to the vault, and its host
/// key is pinned only as the request says (a fingerprint checked out of band, or accepting
/// the first key as an explicit choice); with neither, nothing is stored.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerAdd {
    /// Name for the server in LivChat (lowercase letters, digits, `-`).
    pub name: String,
    /// IPv4/IPv6 address or DNS name.
    pub host: String,
    /// SSH port (default 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// SSH user (default root).
    #[serde(default)]
    pub user: Option<String>,
    /// SSH private key (OpenSSH or PEM; Ed25519, ECDSA, RSA); write-only, kept in the vault.
    #[serde(default, skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub private_key: Option<SecretString>,
    /// The key's passphrase, if any; write-only, kept in the vault.
    #[serde(default, skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub key_passphrase: Option<SecretString>,
    /// Use a key of the serving process's ssh-agent.
    #[serde(default)]
    pub ssh_agent: bool,
    /// Host key fingerprint (`SHA256:...`) checked out of band; any other key is refused.
    #[serde(default)]
    pub host_key_fingerprint: Option<String>,
    /// Pin whatever host key the server presents (ssh's `accept-new`).
    #[serde(default)]
    pub accept_new_host_key: bool,
}

/// What `server add` answers: the server, and notes the user should read.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServerAdded {
    #[serde(flatten)]
    pub server: ServerView,
    /// Warnings about the server as added (another record for the same host, the address a
    /// DNS name resolved to).
    pub notes: Vec<String>,
}

#[async_trait]
impl Operation for ServerAdd {
    const INFO: super::OperationInfo = op_info!(ServerAdd, "server_add", "server add", Change,
        job: false, idempotent: false, open_world: true, "Add an existing server over SSH");
    type Output = ServerAdded;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        // A remote caller cannot be asked: without a fingerprint or accept-new, core refuses.
        let host_key = match (self.host_key_fingerprint, self.accept_new_host_key) {
            (Some(fp), _) => Some(HostKeyTrust::Expect(fp)),
            (None, true) => Some(HostKeyTrust::AcceptNew),
            (None, false) => None,
        };
        let added = orch
            .server_add(AddServer {
                name: self.name,
                host: self.host,
                port: self.port.unwrap_or(22),
                user: self.user.unwrap_or_else(|| "root".into()),
                private_key: self.private_key,
                key_passphrase: self.key_passphrase,
                ssh_agent: self.ssh_agent,
                host_key,
            })
            .await?;
        Ok(ServerAdded {
            server: added.record.into(),
            notes: added.notes,
        })
    }
}

/// Create a server at the cloud provider (a job).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerCreate {
    /// Server name (lowercase letters, digits, `-`).
    pub name: String,
    /// Provider server type (`cx22`); default: the `default_server_type` setting.
    #[serde(default)]
    pub server_type: Option<String>,
    /// Provider location (`nbg1`); default: the `default_location` setting.
    #[serde(default)]
    pub location: Option<String>,
    /// Image; default `debian-12`.
    #[serde(default)]
    pub image: Option<String>,
    /// Keep the cloud server when the job fails (for debugging).
    #[serde(default)]
    pub keep_on_failure: bool,
}

impl ServerCreate {
    /// The job's params with the defaults applied from settings; errors name the field.
    fn params(&self, orch: &Orchestrator) -> Result<CreateServerParams> {
        let setting = |key: &str| orch.setting_get(key).ok().flatten();
        let server_type = match &self.server_type {
            Some(t) => t.clone(),
            None => setting("default_server_type").ok_or_else(|| {
                CoreError::invalid("server_type", "give one or set default_server_type")
            })?,
        };
        let location = match &self.location {
            Some(l) => l.clone(),
            None => setting("default_location").ok_or_else(|| {
                CoreError::invalid("location", "give one or set default_location")
            })?,
        };
        let params = CreateServerParams {
            name: self.name.clone(),
            server_type,
            location,
            image: self.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into()),
            keep_on_failure: self.keep_on_failure,
        };
        livchat_store::validate_server_name(&params.name)
            .map_err(|r| CoreError::invalid("name", r))?;
        Ok(params)
    }
}

#[async_trait]
impl Operation for ServerCreate {
    const INFO: super::OperationInfo = op_info!(ServerCreate, "server_create", "server create",
        Change, job: true, idempotent: false, open_world: true,
        "Create a server at the cloud provider (a job)");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.start_create_server(self.params(orch)?)?.into())
    }
}

impl JobOperation for ServerCreate {
    fn plan(&self, orch: &Orchestrator) -> Result<Plan> {
        Ok(orch.plan_create_server(&self.params(orch)?))
    }
}

/// Set a server up: Docker, Swarm, firewall, DNS (a job).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSetup {
    /// Server name.
    pub server: String,
    /// DNS zone apps are published under (`example.com`).
    pub zone: String,
    /// Optional subdomain inside the zone (`lab`).
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Who creates the apps' DNS records: `cloudflare` (its API; default) or `manual` (the
    /// user, checked to resolve before each deploy).
    #[serde(default)]
    pub dns: livchat_store::DnsMode,
}

impl ServerSetup {
    fn params(&self) -> SetupServerParams {
        SetupServerParams {
            name: self.server.clone(),
            zone: self.zone.clone(),
            subdomain: self.subdomain.clone(),
            dns: self.dns,
        }
    }
}

#[async_trait]
impl Operation for ServerSetup {
    const INFO: super::OperationInfo = op_info!(ServerSetup, "server_setup", "server setup",
        Change, job: true, idempotent: true, open_world: true,
        "Set a server up: Docker, Swarm, firewall, DNS (a job)");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.start_setup_server(self.params())?.into())
    }
}

impl JobOperation for ServerSetup {
    fn plan(&self, orch: &Orchestrator) -> Result<Plan> {
        orch.plan_setup_server(&self.params())
    }
}

/// Delete a server: at the provider, its DNS records, its state (a job).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerDelete {
    /// Server name.
    pub server: String,
    /// Delete even with apps deployed.
    #[serde(default)]
    pub force: bool,
}

#[async_trait]
impl Operation for ServerDelete {
    const INFO: super::OperationInfo = op_info!(ServerDelete, "server_delete", "server delete",
        Destroy, job: true, idempotent: true, open_world: true,
        "Delete a server, its DNS records and its state (a job)");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.start_delete_server(&self.server, self.force)?.into())
    }
}

impl JobOperation for ServerDelete {
    fn plan(&self, orch: &Orchestrator) -> Result<Plan> {
        orch.plan_delete_server(&self.server, self.force)
    }
}

/// Run a program on a server: argv, never a shell string.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerExec {
    /// Server name.
    pub server: String,
    /// Program and arguments; they arrive byte for byte (no shell).
    pub argv: Vec<String>,
    /// Seconds before the command is killed: 1-300, default 60.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl ServerExec {
    /// Runs with a caller's cancellation (a frontend's Ctrl-C or a cancelled tool call).
    pub async fn run_cancellable(
        self,
        orch: &Orchestrator,
        cancel: CancellationToken,
    ) -> Result<ExecResult> {
        let timeout = self.timeout_secs.unwrap_or(60);
        if !(1..=EXEC_MAX_TIMEOUT_SECS).contains(&timeout) {
            return Err(CoreError::invalid(
                "timeout_secs",
                format!("must be 1-{EXEC_MAX_TIMEOUT_SECS}"),
            ));
        }
        if self.argv.is_empty() {
            return Err(CoreError::invalid(
                "argv",
                "give the program and its arguments",
            ));
        }
        let out = orch
            .server_exec_for(
                &self.server,
                &self.argv,
                cancel,
                Duration::from_secs(timeout),
            )
            .await?;
        let (stdout, cut_out) = bounded_text(&out.stdout);
        let (stderr, cut_err) = bounded_text(&out.stderr);
        Ok(ExecResult {
            exit_code: out.exit_status,
            stdout,
            stderr,
            truncated: cut_out || cut_err,
        })
    }
}

fn bounded_text(bytes: &[u8]) -> (String, bool) {
    let cut = bytes.len() > EXEC_MAX_OUTPUT;
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(EXEC_MAX_OUTPUT)]).into_owned();
    if cut {
        text.push_str("\n[output truncated]");
    }
    (text, cut)
}

#[async_trait]
impl Operation for ServerExec {
    const INFO: super::OperationInfo = op_info!(ServerExec, "server_exec", "server exec", Change,
        job: false, idempotent: false, open_world: true,
        "Run a program (argv) on a server; bounded time and output");
    type Output = ExecResult;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        self.run_cancellable(orch, CancellationToken::new()).await
    }
}

/// Point a server's DNS name at it (the A record) and record the zone for its apps.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerDnsUpdate {
    /// Server name.
    pub server: String,
    /// DNS zone (`example.com`).
    pub zone: String,
    /// Optional subdomain (`lab`).
    #[serde(default)]
    pub subdomain: Option<String>,
}

#[async_trait]
impl Operation for ServerDnsUpdate {
    const INFO: super::OperationInfo = op_info!(ServerDnsUpdate, "server_dns_update",
        "server dns", Change, job: false, idempotent: true, open_world: true,
        "Point a server's DNS name at it and record the zone");
    type Output = ServerView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        orch.update_server_dns(&self.server, &self.zone, self.subdomain.as_deref())
            .await?;
        Ok(orch.server(&self.server)?.into())
    }
}

/// Set how a server's app stacks are sent.
// (Short: the doc comment is the tools/list description.) The infrastructure bundle always
// goes over SSH; a deployed app keeps the path that deployed it (`stack_path::choose`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSetPlatform {
    /// Server name.
    pub server: String,
    pub platform: livchat_store::PlatformChoice,
}

/// A server's platform setting and who owns each deployed app's stack.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServerPlatformView {
    pub server: String,
    pub platform: livchat_store::PlatformChoice,
    /// App -> the path that deployed it (its redeploys and removal go the same way).
    pub deployed_via: std::collections::BTreeMap<String, livchat_store::DeployedVia>,
}

#[async_trait]
impl Operation for ServerSetPlatform {
    const INFO: super::OperationInfo = op_info!(ServerSetPlatform, "server_set_platform",
        "server set-platform", Change, job: false, idempotent: true, open_world: false,
        "Choose how a server's app stacks are sent: auto, ssh or portainer");
    type Output = ServerPlatformView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        orch.set_server_platform(&self.server, self.platform)?;
        Ok(ServerPlatformView {
            platform: orch.server(&self.server)?.platform,
            deployed_via: orch
                .deployed(&self.server)?
                .into_iter()
                .map(|d| (d.app, d.via))
                .collect(),
            server: self.server,
        })
    }
}
