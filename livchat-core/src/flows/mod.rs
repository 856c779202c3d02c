//! The steps of every job kind, and the plan (dry run) of each operation.
//!
//! Every step is idempotent: it checks what exists before it changes anything, so a retry runs
//! the failed step again safely. What a step creates is recorded (in the state or in the job's
//! result) before the next step starts, so a failure can remove exactly what this job created.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use livchat_apps::{DeployStep, RenderContext, RenderedStack, SecretsByApp, ServerInfo};
use livchat_providers::{FirewallSpec, RecordOptions, ServerId, ServerSpec};
use livchat_remote::{
    HostKeyPolicy, NetworkSpec, SecretDelivery, ServiceExec, SetupConfig, StackSecret, StackSpec,
    WaitOptions,
};
use livchat_store::{
    DeployedVia, DeploymentRecord, DeploymentStatus, DnsConfig, DnsMode, JobRecord, ServerRecord,
    ServerStatus,
};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::apps_err;
use crate::error::{CoreError, Result};
use crate::jobs::{JobContext, JobKind, StepRunner};
use crate::orchestrator::{Orchestrator, parse_sets, ssh_key_secret, validate_dns};

mod cluster;
mod create;
mod delete;
mod deploy;
mod deploy_steps;
mod leave;
mod placement;
mod setup;
mod undeploy;

fn provider_err(e: livchat_providers::CloudError) -> CoreError {
    CoreError::Provider(e.to_string())
}
fn dns_err(e: livchat_providers::CloudError) -> CoreError {
    CoreError::Dns(e.to_string())
}
/// Whether the stack has a first-run page to claim.
fn has_claim(stack: &RenderedStack) -> bool {
    stack
        .post_deploy
        .iter()
        .any(|s| matches!(s, DeployStep::HttpRequest(_) | DeployStep::ExecClaim(_)))
}

/// The stack to send: `compose` (the rendered text, or it with the routes closed) and the
/// stack's Docker secrets.
fn stack_spec(stack: &RenderedStack, compose: &str) -> StackSpec {
    StackSpec {
        name: stack.stack.clone(),
        compose_yaml: compose.to_string(),
        secrets: stack
            .docker_secrets
            .iter()
            .map(|d| StackSecret {
                name: d.name.clone(),
                value: d.value.clone(),
                delivery: SecretDelivery::DockerSecret,
            })
            .collect(),
    }
}

fn platform_err(e: livchat_remote::PlatformError) -> CoreError {
    match e {
        livchat_remote::PlatformError::Cancelled => CoreError::Cancelled,
        other => CoreError::Platform(other.to_string()),
    }
}

/// Parameters of a create-server job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateServerParams {
    pub name: String,
    pub server_type: String,
    pub location: String,
    pub image: String,
    /// Keep the cloud server when the job fails (for debugging); default: delete it.
    #[serde(default)]
    pub keep_on_failure: bool,
}

/// Parameters of a setup-server job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupServerParams {
    pub name: String,
    pub zone: String,
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Who creates the DNS records: Cloudflare through its API (default), or the user by hand.
    #[serde(default)]
    pub dns: DnsMode,
}

/// Parameters of a deploy job; `apps` is the resolved install order, fixed when the job is
/// created so a retry deploys the same set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployParams {
    pub server: String,
    pub app: String,
    #[serde(default)]
    pub set: Vec<String>,
    pub apps: Vec<String>,
    /// Repoint existing A records of the apps' names that livchat did not create
    /// (`--take-over-dns`); without it such a record refuses the deploy.
    #[serde(default)]
    pub take_over_dns: bool,
    /// Where the app runs on a cluster (`--node`, `--node-label`).
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,
}

/// Parameters of an undeploy job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UndeployParams {
    pub server: String,
    pub app: String,
    #[serde(default)]
    pub force: bool,
    /// Also delete the app's data: its volumes, its database and role (with their data) and its
    /// secrets in the vault (all kept by default; `--delete-data`).
    #[serde(default, alias = "delete_volumes")]
    pub delete_data: bool,
}

/// Parameters of a delete-server job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteServerParams {
    pub name: String,
    #[serde(default)]
    pub force: bool,
}

fn params<T: for<'de> Deserialize<'de>>(job: &JobRecord) -> Result<T> {
    serde_json::from_value(job.params.clone())
        .map_err(|e| CoreError::invalid("job params", e.to_string()))
}

fn to_params<T: Serialize>(p: &T) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// Everything a plan shows; nothing in it has been touched.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub operation: String,
    /// The steps the job would run, in order.
    pub steps: Vec<String>,
    /// Resources created, changed or removed (`create server web-1 (cx22, nbg1)`).
    pub resources: Vec<String>,
    /// DNS records (`A n8n.lab.example.com -> 203.0.113.10`).
    pub dns_records: Vec<String>,
    /// Rendered stacks, secrets redacted.
    pub stacks: Vec<PlannedStack>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlannedStack {
    pub app: String,
    pub stack: String,
    pub compose: String,
}

pub(crate) use crate::setup_ahead::SETUP_PREFIX;
pub use cluster::{JoinParams, LeaveParams};
pub use placement::Placement;

/// The server's address for an A record.
fn server_ipv4(server: &ServerRecord) -> Result<Ipv4Addr> {
    server.host.parse().map_err(|_| {
        CoreError::invalid(
            "host",
            format!("{} is not an IPv4 address for an A record", server.host),
        )
    })
}

/// The operating system the setup job's connect step detected (kept in the job's result), so
/// each setup step costs one round trip less than detecting it again.
fn recorded_os(job: &JobRecord) -> Option<livchat_remote::OsRelease> {
    let r = job.result.as_ref()?;
    supported_os(r.get("os")?.as_str()?, r.get("os_version")?.as_str()?).ok()
}

/// A supported release by its `ID` and `VERSION_ID` (the codename follows from them).
fn supported_os(
    id: &str,
    version: &str,
) -> std::result::Result<livchat_remote::OsRelease, livchat_remote::RemoteError> {
    livchat_remote::OsRelease::parse(&format!("ID={id}\nVERSION_ID=\"{version}\"\n"))
}

/// The name of the provider SSH key and firewall `server create` makes for a server.
fn provider_resource_name(server: &str) -> String {
    format!("livchat-{server}")
}

/// Deletes DNS records (one already gone counts as deleted). A record that could not be
/// deleted fails the step, so the job's retry deletes it: forgetting its id would orphan it.
async fn delete_records(
    ctx: &JobContext,
    dns: &dyn livchat_providers::DnsClient,
    zone: &livchat_providers::Zone,
    ids: &[String],
) -> Result<()> {
    let mut failed = Vec::new();
    for id in ids {
        match dns.delete_record(zone, id).await {
            Ok(()) => ctx.info(format!("DNS record {id} removed")),
            Err(e) => {
                ctx.warn(format!("DNS record {id}: {e}"));
                failed.push(format!("{id} ({e})"));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CoreError::Dns(format!(
            "could not delete DNS record(s) {}; retry the job to delete them",
            failed.join(", ")
        )))
    }
}

/// A database an app's deploy created: the stack and service it lives in, and its spec.
type AppDatabase = (String, String, livchat_apps::CreateDatabase);

/// Plan lines for the providers an app runs its own instance of (its Redis): where it runs,
/// its volumes and the vault keys of its secrets, which are the app's alone.
fn own_instance_lines(stack: &RenderedStack) -> Vec<String> {
    stack
        .own_instances
        .iter()
        .map(|i| {
            let names = |items: &[String]| {
                items
                    .iter()
                    .map(|x| format!("{}_{x}", stack.stack))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let keys: Vec<String> = i.secrets.iter().map(|r| r.vault_key()).collect();
            format!(
                "{} {} in stack {}: {}'s own (volume {}; password {}), shared with no other app",
                i.provider,
                names(&i.services),
                stack.stack,
                stack.app,
                names(&i.volumes),
                keys.join(", ")
            )
        })
        .collect()
}

fn is_manual_dns(server: &ServerRecord) -> bool {
    server
        .dns
        .as_ref()
        .is_some_and(|d| d.mode == DnsMode::Manual)
}

impl Orchestrator {
    /// Manual DNS: every name must already resolve to the server, or the deploy stops before
    /// anything is deployed, listing the records still to create.
    async fn check_names_resolve(
        &self,
        ctx: &JobContext,
        names: &[String],
        ip: Ipv4Addr,
    ) -> Result<()> {
        let resolver = self.resolver()?;
        let mut missing = Vec::new();
        for name in names {
            let found = resolver
                .resolve_a(name)
                .await
                .map_err(|e| CoreError::Dns(e.to_string()))?;
            if found.contains(&ip) {
                ctx.info(format!("DNS A {name} -> {ip} resolves"));
            } else if found.is_empty() {
                missing.push(format!("A {name} -> {ip} (does not resolve yet)"));
            } else {
                let seen: Vec<String> = found.iter().map(ToString::to_string).collect();
                missing.push(format!(
                    "A {name} -> {ip} (resolves to {} now)",
                    seen.join(", ")
                ));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(CoreError::Refused(format!(
            "manual DNS: create or fix these records at your DNS host, wait until they resolve, then retry the job: {}",
            missing.join("; ")
        )))
    }
}

/// Setup installs packages, writes /etc and runs Docker and ufw: its steps run as the SSH
/// user, without sudo, so a server reached as another user is refused before anything runs.
fn require_root(server: &ServerRecord) -> Result<()> {
    if server.ssh_user == "root" {
        return Ok(());
    }
    Err(CoreError::Refused(format!(
        "server {} is reached as {}, and setup needs root (apt, Docker, ufw; its steps do not use sudo); add the server again with --user root",
        server.name, server.ssh_user
    )))
}

/// What happened to a DNS record, in words for the job log.
fn change_words(change: livchat_providers::Change) -> &'static str {
    match change {
        livchat_providers::Change::Created => "created",
        livchat_providers::Change::Updated => "updated",
        livchat_providers::Change::Unchanged => "already there",
    }
}

#[async_trait]
impl StepRunner for Orchestrator {
    async fn run_step(&self, ctx: &JobContext, job: &JobRecord, step: &str) -> Result<Value> {
        match JobKind::parse(&job.kind)? {
            JobKind::CreateServer => self.create_step(ctx, job, step).await,
            JobKind::SetupServer => self.setup_step(ctx, job, step).await,
            JobKind::DeployApp => self.deploy_step(ctx, job, step).await,
            JobKind::UndeployApp => self.undeploy_step(ctx, job, step).await,
            JobKind::DeleteServer => self.delete_step(ctx, job, step).await,
            JobKind::JoinCluster => self.join_step(ctx, job, step).await,
            JobKind::LeaveCluster => self.leave_step(ctx, job, step).await,
        }
    }

    async fn clean_up(&self, ctx: &JobContext, job: &JobRecord, _error: &CoreError) -> Result<()> {
        match JobKind::parse(&job.kind)? {
            JobKind::CreateServer => self.create_cleanup(ctx, job).await,
            JobKind::DeployApp => self.deploy_cleanup(ctx, job).await,
            JobKind::SetupServer => {
                // Setup steps are idempotent and change nothing that could be orphaned; a
                // retry resumes at the first step not done.
                self.store.update("server setup failed", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&job.server.clone().unwrap_or_default())
                        && sv.status == ServerStatus::SettingUp
                    {
                        sv.status = ServerStatus::Failed;
                    }
                    Ok(())
                })?;
                Ok(())
            }
            JobKind::UndeployApp
            | JobKind::DeleteServer
            | JobKind::JoinCluster
            | JobKind::LeaveCluster => Ok(()),
        }
    }
}
