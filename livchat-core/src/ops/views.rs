//! What operations answer: plain data built from store records and leaf types, with the JSON
//! Schema every frontend publishes. Persisted records never cross this boundary as they are.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use livchat_store::{
    DeployedVia, DeploymentRecord, DeploymentStatus, JobRecord, JobStatus, LogLevel, LogLine,
    PlatformChoice, ProviderKind, ServerRecord, ServerStatus,
};
use schemars::JsonSchema;
use serde::Serialize;

/// A server as frontends show it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServerView {
    pub name: String,
    pub provider: ProviderKind,
    pub status: ServerStatus,
    pub host: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    /// The pinned host key (`SHA256:...`).
    pub host_key_fingerprint: Option<String>,
    pub provider_id: Option<u64>,
    pub server_type: Option<String>,
    pub location: Option<String>,
    pub image: Option<String>,
    /// DNS zone apps are published under.
    pub dns_zone: Option<String>,
    pub dns_subdomain: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Setup steps completed.
    pub setup_completed_steps: Vec<String>,
    pub setup_completed_at: Option<DateTime<Utc>>,
    /// CPUs as setup read them (what deploys compare their apps' needs with).
    pub cpus: Option<u32>,
    /// Memory (`MemTotal`, MiB) as setup read it.
    pub memory_mb: Option<u64>,
    /// How app stacks are sent (`server set-platform`).
    pub platform: PlatformChoice,
    pub created_at: DateTime<Utc>,
    /// The cluster (its manager's name) this server is a node of.
    pub cluster: Option<String>,
    pub cluster_role: Option<livchat_store::NodeRole>,
}

impl ServerView {
    /// The view with its cluster membership from `state`.
    pub fn in_state(record: ServerRecord, state: &livchat_store::State) -> Self {
        let node = state
            .cluster_of(&record.name)
            .map(|c| (c.manager.clone(), c.nodes[&record.name].role));
        let mut view = Self::from(record);
        if let Some((cluster, role)) = node {
            view.cluster = Some(cluster);
            view.cluster_role = Some(role);
        }
        view
    }
}

impl From<ServerRecord> for ServerView {
    fn from(s: ServerRecord) -> Self {
        let (dns_zone, dns_subdomain) = match s.dns {
            Some(d) => (Some(d.zone_name), d.subdomain),
            None => (None, None),
        };
        Self {
            name: s.name,
            provider: s.provider,
            status: s.status,
            host: s.host,
            ssh_port: s.ssh_port,
            ssh_user: s.ssh_user,
            host_key_fingerprint: s.host_key_fingerprint,
            provider_id: s.provider_id,
            server_type: s.server_type,
            location: s.location,
            image: s.image,
            dns_zone,
            dns_subdomain,
            labels: s.labels,
            setup_completed_steps: s.setup.completed_steps,
            setup_completed_at: s.setup.completed_at,
            cpus: s.setup.resources.map(|r| r.cpus),
            memory_mb: s.setup.resources.map(|r| r.memory_mb),
            platform: s.platform,
            created_at: s.created_at,
            cluster: None,
            cluster_role: None,
        }
    }
}

/// A job as frontends show it (its params and raw result stay in the store).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobView {
    pub id: String,
    /// `create_server`, `setup_server`, `deploy_app`, `undeploy_app`, `delete_server`.
    pub kind: String,
    pub server: Option<String>,
    pub status: JobStatus,
    /// Percent, 0-100.
    pub progress: u8,
    pub current_step: Option<String>,
    pub steps_completed: Vec<String>,
    pub steps_remaining: Vec<String>,
    pub error: Option<String>,
    pub attempt: u32,
    /// The process running it (`pid@host`), while one does.
    pub owner: Option<String>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        Self {
            owner: j.owner.as_ref().map(|o| format!("{}@{}", o.pid, o.host)),
            id: j.id,
            kind: j.kind,
            server: j.server,
            status: j.status,
            progress: j.progress,
            current_step: j.current_step,
            steps_completed: j.steps_completed,
            steps_remaining: j.steps_remaining,
            error: j.error,
            attempt: j.attempt,
            cancel_requested: j.cancel_requested,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// One line of a job's log (already redacted when written).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LogLineView {
    /// Index in the job's log: `from` for the next read, `Last-Event-ID` for SSE.
    pub index: usize,
    pub timestamp: DateTime<Utc>,
    pub level: LogLevel,
    pub message: String,
}

impl LogLineView {
    pub fn new(index: usize, line: LogLine) -> Self {
        Self {
            index,
            timestamp: line.timestamp,
            level: line.level,
            message: line.message,
        }
    }
}

/// An app deployed on a server.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DeploymentView {
    pub app: String,
    pub version: String,
    pub stack_name: String,
    pub domains: Vec<String>,
    pub dependencies: Vec<String>,
    pub status: DeploymentStatus,
    /// Who owns its stack: `ssh` or `portainer` (its redeploys and removal go the same way).
    pub via: DeployedVia,
    pub deployed_at: DateTime<Utc>,
}

impl From<DeploymentRecord> for DeploymentView {
    fn from(d: DeploymentRecord) -> Self {
        Self {
            app: d.app,
            version: d.version,
            stack_name: d.stack_name,
            domains: d.domains,
            dependencies: d.dependencies,
            status: d.status,
            via: d.via,
            deployed_at: d.deployed_at,
        }
    }
}

/// A setting with its value (if set) and what it is for.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SettingView {
    pub key: String,
    pub value: Option<String>,
    pub description: String,
}

/// The answer of `server exec`: output cut at a bound, `truncated` says so.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ExecResult {
    pub exit_code: u32,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
}

/// A DNS record at the provider.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DnsRecordView {
    pub id: String,
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, ...
    pub record_type: String,
    pub content: String,
    pub proxied: Option<bool>,
    pub ttl: u32,
}

/// What the cloud provider offers.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "kind", content = "items", rename_all = "snake_case")]
pub enum ProviderInfoView {
    Locations(Vec<LocationView>),
    ServerTypes(Vec<ServerTypeView>),
    Images(Vec<ImageView>),
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LocationView {
    pub name: String,
    pub description: String,
    pub city: String,
    pub country: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServerTypeView {
    pub name: String,
    pub description: String,
    pub cores: u32,
    pub memory_gb: f64,
    pub disk_gb: f64,
    pub architecture: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ImageView {
    pub id: i64,
    pub name: Option<String>,
    pub description: String,
    pub os_flavor: String,
    pub os_version: Option<String>,
    pub architecture: String,
}
