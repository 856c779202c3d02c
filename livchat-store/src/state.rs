//! The schema of `state.json`, version 5 (see `migrate.rs` for what changed since 1), and of the
//! job records kept beside it in `<home>/jobs/` (see `job_files.rs`). Never holds a secret: secrets are referred to by
//! their vault name (`ssh_key_secret`).
//!
//! Every struct denies unknown fields, so a typo in a hand-edited file is an error naming the
//! field instead of a value that silently vanishes on the next write.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;

/// The state schema version this build writes. Older versions are migrated on load
/// (see [`crate::migrate`]); newer ones are refused.
pub const STATE_VERSION: u32 = 5;

/// The whole content of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Schema version ([`STATE_VERSION`] after loading).
    pub version: u32,
    /// Rises by one on every write that changes something; managed by the store.
    pub serial: u64,
    /// Identity of this state, fixed at `init`; managed by the store.
    pub lineage: Uuid,
    /// Servers by name.
    #[serde(default)]
    pub servers: BTreeMap<String, ServerRecord>,
    /// Deployed apps: server name -> app name -> deployment.
    #[serde(default)]
    pub deployments: BTreeMap<String, BTreeMap<String, DeploymentRecord>>,
    /// First-run claims a deploy made whose app data still holds that admin: server name ->
    /// app name -> the claims (their order among the app's claim steps) that succeeded. They
    /// outlive the deployment record (a failed deploy's clean-up keeps the data, and so the
    /// admin), so a later deploy knows that the app refusing a second claim is the first
    /// claim's doing, not someone else's. Cleared when the app's data is deleted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub first_run_claims: BTreeMap<String, BTreeMap<String, BTreeSet<u32>>>,
    /// Swarm clusters of several servers by manager name (see `cluster.rs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, crate::cluster::ClusterRecord>,
}

impl State {
    /// A new, empty state with a fresh lineage and serial 0.
    pub fn new() -> Self {
        State {
            version: STATE_VERSION,
            serial: 0,
            lineage: Uuid::new_v4(),
            servers: BTreeMap::new(),
            deployments: BTreeMap::new(),
            first_run_claims: BTreeMap::new(),
            clusters: BTreeMap::new(),
        }
    }

    /// Whether a deploy's first-run claim number `claim` of `app` on `server` succeeded and
    /// the app's data remains.
    pub fn claimed(&self, server: &str, app: &str, claim: u32) -> bool {
        self.first_run_claims
            .get(server)
            .and_then(|apps| apps.get(app))
            .is_some_and(|claims| claims.contains(&claim))
    }

    /// Records that the first-run claim number `claim` of `app` on `server` succeeded.
    pub fn record_claim(&mut self, server: &str, app: &str, claim: u32) {
        self.first_run_claims
            .entry(server.to_owned())
            .or_default()
            .entry(app.to_owned())
            .or_default()
            .insert(claim);
    }

    /// Forgets the claims of `app` on `server`: its data, and the admin in it, are gone.
    pub fn forget_claims(&mut self, server: &str, app: &str) {
        if let Some(apps) = self.first_run_claims.get_mut(server) {
            apps.remove(app);
            if apps.is_empty() {
                self.first_run_claims.remove(server);
            }
        }
    }

    /// Checks the invariants that serde cannot: names against their allowlists, map keys equal
    /// to the names inside the records, deployments only on known servers, progress <= 100.
    /// The error names the offending field as a path (`servers.web-1.ssh_user`).
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_servers(&self.servers)?;
        self.validate_deployments()?;
        crate::cluster::validate_clusters(&self.clusters, &self.servers)
    }

    fn validate_deployments(&self) -> Result<(), StoreError> {
        for (server, apps) in &self.deployments {
            if !self.servers.contains_key(server) {
                return Err(StoreError::invalid(
                    format!("deployments.{server}"),
                    "deployments must belong to a server in `servers`",
                ));
            }
            for (app, record) in apps {
                if &record.app != app {
                    return Err(StoreError::invalid(
                        format!("deployments.{server}.{app}.app"),
                        format!("must equal its key `{app}`, found `{}`", record.app),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The server half of [`State::validate`] (also what a servers-only read checks).
pub(crate) fn validate_servers(servers: &BTreeMap<String, ServerRecord>) -> Result<(), StoreError> {
    for (key, server) in servers {
        let field = |f: &str| format!("servers.{key}.{f}");
        validate_server_name(key).map_err(|r| StoreError::invalid("servers key", r))?;
        if &server.name != key {
            return Err(StoreError::invalid(
                field("name"),
                format!("must equal its key `{key}`, found `{}`", server.name),
            ));
        }
        if crate::names::host(&server.host).is_err() {
            return Err(StoreError::invalid(
                field("host"),
                "expected an IPv4/IPv6 address or a host name (a-z, 0-9, '.', '-'), not starting with '-'",
            ));
        }
        if server.ssh_port == 0 {
            return Err(StoreError::invalid(field("ssh_port"), "must be 1-65535"));
        }
        validate_unix_user(&server.ssh_user)
            .map_err(|r| StoreError::invalid(field("ssh_user"), r))?;
        crate::vault::validate_secret_name(&server.ssh_key_secret)
            .map_err(|r| StoreError::invalid(field("ssh_key_secret"), r))?;
        if let Some(dns) = &server.dns {
            validate_dns_name(&dns.zone_name)
                .map_err(|r| StoreError::invalid(field("dns.zone_name"), r))?;
            if let Some(sub) = &dns.subdomain {
                validate_dns_name(sub)
                    .map_err(|r| StoreError::invalid(field("dns.subdomain"), r))?;
            }
        }
    }
    Ok(())
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// Allowlist for server names: a lower-case DNS label (1-63 of `a-z 0-9 -`, no leading or
/// trailing `-`), since the name becomes the host name and part of remote commands
/// ([`crate::names::server_name`]).
pub fn validate_server_name(name: &str) -> Result<(), String> {
    crate::names::server_name(name).map_err(|_| {
        format!(
            "`{}` is not allowed: expected 1-63 characters from a-z, 0-9 and '-', not starting or ending with '-'",
            name.escape_debug()
        )
    })
}

/// Allowlist for SSH (Unix) user names, as Debian's `adduser` accepts them by default:
/// `deploy-user`, `ci_bot`, `ubuntu` ([`crate::names::unix_user`]).
pub fn validate_unix_user(user: &str) -> Result<(), String> {
    crate::names::unix_user(user).map_err(|_| {
        "expected 1-32 characters from a-z, 0-9, '_' and '-', starting with a-z or '_'".into()
    })
}

fn validate_dns_name(name: &str) -> Result<(), String> {
    crate::names::dns_name(name).map_err(|_| {
        format!(
            "`{}` is not a lower-case DNS name (labels of a-z, 0-9, '-' separated by '.')",
            name.escape_debug()
        )
    })
}

/// Who created and manages a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Created through the Hetzner Cloud API.
    Hetzner,
    /// Brought by the user (an existing host added by address, user and key).
    Manual,
}

/// Life cycle of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServerStatus {
    /// Being created at the provider.
    Creating,
    /// Exists and answers, not set up yet.
    Running,
    /// `setup server` is in progress.
    SettingUp,
    /// Set up; apps can be deployed.
    Ready,
    /// The last operation on it failed (see the job).
    Failed,
    /// Being deleted.
    Deleting,
}

/// DNS configuration of a server: apps get `<app>.<subdomain>.<zone_name>` (or `<app>.<zone_name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The DNS zone, e.g. `example.com`.
    pub zone_name: String,
    /// Optional subdomain inside the zone, e.g. `lab`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// Who creates the records: LivChat at Cloudflare (default) or the user by hand.
    #[serde(default, skip_serializing_if = "DnsMode::is_cloudflare")]
    pub mode: DnsMode,
}

/// How a server's DNS records come to exist.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DnsMode {
    /// LivChat creates and deletes them through the Cloudflare API.
    #[default]
    Cloudflare,
    /// The user creates them at any DNS host; LivChat prints them and checks that they
    /// resolve to the server before each deploy.
    Manual,
}

impl DnsMode {
    pub fn is_cloudflare(&self) -> bool {
        *self == DnsMode::Cloudflare
    }
}

/// How a server's app stacks are sent.
// Its doc comments are the MCP and OpenAPI descriptions, kept short (tools/list < 40 KB).
// The infrastructure bundle (Traefik + Portainer) always goes over SSH: Portainer cannot
// deploy itself.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PlatformChoice {
    /// Portainer once it runs there, its password in the vault; else SSH.
    #[default]
    Auto,
    /// SSH always.
    Ssh,
    /// Portainer always (a deploy fails without it).
    Portainer,
}

impl PlatformChoice {
    pub fn is_auto(&self) -> bool {
        *self == PlatformChoice::Auto
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            PlatformChoice::Auto => "auto",
            PlatformChoice::Ssh => "ssh",
            PlatformChoice::Portainer => "portainer",
        }
    }
}

impl std::str::FromStr for PlatformChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(PlatformChoice::Auto),
            "ssh" => Ok(PlatformChoice::Ssh),
            "portainer" => Ok(PlatformChoice::Portainer),
            other => Err(format!("`{other}` is not one of auto, ssh, portainer")),
        }
    }
}

/// Which setup steps of a server have completed (steps are idempotent; this lets a retry skip
/// what is done).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupRecord {
    /// Names of the completed steps, in completion order.
    #[serde(default)]
    pub completed_steps: Vec<String>,
    /// When the whole setup last completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// CPUs and memory, read once over SSH by setup; deploys compare them with what the apps
    /// need (preflight). Absent on servers set up before livchat read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ServerResources>,
}

/// A server's CPUs and memory as its kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerResources {
    /// Online CPUs (`processor` entries of `/proc/cpuinfo`).
    pub cpus: u32,
    /// `MemTotal` of `/proc/meminfo`, in MiB (a little under the plan's nominal size: the
    /// kernel keeps some for itself).
    pub memory_mb: u64,
}

/// One server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerRecord {
    /// The server name (also its key in `servers`); see [`validate_server_name`].
    pub name: String,
    /// Who manages it.
    pub provider: ProviderKind,
    /// The provider's id for it (None for manual servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<u64>,
    /// Address to reach it over SSH (IPv4 usually).
    pub host: String,
    /// SSH port.
    pub ssh_port: u16,
    /// SSH user.
    pub ssh_user: String,
    /// Name of the vault secret holding the SSH private key (the name, never the key).
    pub ssh_key_secret: String,
    /// Set when the server is reached with a key of the user's ssh-agent instead of a key in
    /// the vault: that key's fingerprint (`SHA256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_agent_key: Option<String>,
    /// Pinned host key fingerprint (`SHA256:...`), set on first contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key_fingerprint: Option<String>,
    /// DNS configuration, required before apps with domains are deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsConfig>,
    /// Provider server type (`cx22`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_type: Option<String>,
    /// Provider location (`fsn1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Provider image (`debian-12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Free-form labels (also set at the provider).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Life cycle status.
    pub status: ServerStatus,
    /// Setup progress.
    #[serde(default)]
    pub setup: SetupRecord,
    /// How app stacks are sent; absent (auto) on servers recorded before it existed.
    #[serde(default, skip_serializing_if = "PlatformChoice::is_auto")]
    pub platform: PlatformChoice,
    /// When it was created or added.
    pub created_at: DateTime<Utc>,
}

/// Life cycle of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Being deployed.
    Deploying,
    /// Deployed and healthy.
    Running,
    /// Deployment or health check failed.
    Failed,
    /// Being removed.
    Removing,
}

/// One app deployed on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRecord {
    /// App name from the catalog (also its key).
    pub app: String,
    /// App version deployed (image tag).
    pub version: String,
    /// Docker Swarm stack name.
    pub stack_name: String,
    /// Domains served.
    #[serde(default)]
    pub domains: Vec<String>,
    /// DNS record ids created for it at the DNS provider.
    #[serde(default)]
    pub dns_record_ids: Vec<String>,
    /// Apps it depends on (deployed on the same server).
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Status.
    pub status: DeploymentStatus,
    /// Who owns its stack: SSH (`docker stack deploy`) or Portainer. A redeploy keeps it;
    /// absent on records from before Portainer deploys (they were all SSH).
    #[serde(default, skip_serializing_if = "DeployedVia::is_ssh")]
    pub via: DeployedVia,
    /// When it was (last) deployed.
    pub deployed_at: DateTime<Utc>,
}

/// Who sent a deployment's stack to the swarm, so its redeploys and removal go the same way
/// and a stack is never deployed twice (once by each).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeployedVia {
    /// `docker stack deploy` over SSH; Portainer lists such a stack as external.
    #[default]
    Ssh,
    /// Portainer's stack API: the stack is Portainer's, editable in its UI.
    Portainer,
}

impl DeployedVia {
    pub fn is_ssh(&self) -> bool {
        *self == DeployedVia::Ssh
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            DeployedVia::Ssh => "ssh",
            DeployedVia::Portainer => "portainer",
        }
    }
}

/// Status of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting to run.
    Queued,
    /// Running.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled by the user.
    Cancelled,
    /// Was running when its process ended (found at start-up); can be retried.
    Interrupted,
}

/// A long operation (create server, setup, deploy, ...), stored as `<home>/jobs/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRecord {
    /// Job id (also its file name).
    pub id: String,
    /// What the job does (`create_server`, `setup_server`, `deploy_app`, ...).
    pub kind: String,
    /// The server it works on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Status.
    pub status: JobStatus,
    /// Progress in percent, 0-100.
    pub progress: u8,
    /// The step running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// Steps done.
    #[serde(default)]
    pub steps_completed: Vec<String>,
    /// Steps still to run.
    #[serde(default)]
    pub steps_remaining: Vec<String>,
    /// The job's parameters (never secrets).
    #[serde(default)]
    pub params: serde_json::Value,
    /// The job's result, when completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The error, when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// 1 for the first run, +1 per retry.
    pub attempt: u32,
    /// The process running (or about to run) the job, so a restart can tell a live job from
    /// an interrupted one and `job cancel` from another process can reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<JobOwner>,
    /// Set by `job cancel` in another process; the owner polls it and cancels.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_requested: bool,
}

impl JobRecord {
    /// Checks what serde cannot: the id's alphabet (it names files) and progress <= 100.
    pub fn validate(&self) -> Result<(), StoreError> {
        crate::job_files::check_job_id(&self.id)?;
        if self.progress > 100 {
            return Err(StoreError::invalid(
                format!("jobs.{}.progress", self.id),
                "must be 0-100",
            ));
        }
        Ok(())
    }

    /// Queued or running: not ended.
    pub fn is_live(&self) -> bool {
        matches!(self.status, JobStatus::Queued | JobStatus::Running)
    }

    /// Whether this job holds `server`: queued or running there, owned by a process that is
    /// alive (a process on another host is taken as alive: it cannot be checked from here).
    pub fn occupies(&self, server: &str) -> bool {
        self.server.as_deref() == Some(server)
            && self.is_live()
            && self.owner.as_ref().is_some_and(JobOwner::may_be_alive)
    }
}

/// Which process runs a job: its pid on its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOwner {
    pub pid: u32,
    pub host: String,
}

impl JobOwner {
    /// Whether the owning process may still run: alive on this host, or on another host
    /// (which cannot be checked from here).
    pub fn may_be_alive(&self) -> bool {
        self.host != crate::process::this_host() || crate::process::process_alive(self.pid)
    }
}
