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
    DeploymentRecord, DeploymentStatus, DnsConfig, DnsMode, JobRecord, ProviderKind, ServerRecord,
    ServerStatus,
};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{CoreError, Result};
use crate::jobs::{JobContext, JobKind, StepRunner};
use crate::orchestrator::{Orchestrator, parse_sets, ssh_key_secret};

fn provider_err(e: livchat_providers::CloudError) -> CoreError {
    CoreError::Provider(e.to_string())
}
fn dns_err(e: livchat_providers::CloudError) -> CoreError {
    CoreError::Dns(e.to_string())
}
/// Values the user gave (a zone, a `--set` key or value) come back as [`CoreError::Invalid`],
/// so every frontend treats them as bad input (exit 2, HTTP 400) wherever they were caught.
pub(crate) fn apps_err(e: livchat_apps::AppsError) -> CoreError {
    match e {
        livchat_apps::AppsError::InvalidValue { field, message } => CoreError::Invalid {
            field,
            reason: message,
        },
        e @ livchat_apps::AppsError::UnknownParameter { .. } => CoreError::Invalid {
            field: "--set".into(),
            reason: e.to_string(),
        },
        e @ livchat_apps::AppsError::UnknownApp { .. } => CoreError::AppNotFound(e.to_string()),
        other => CoreError::Apps(other.to_string()),
    }
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

/// Job steps of the setup plan are named `setup:<step id>`.
pub(crate) const SETUP_PREFIX: &str = "setup:";

impl Orchestrator {
    // ----- create server -------------------------------------------------------------------

    fn create_steps() -> Vec<String> {
        [
            "ssh_key",
            "create_server",
            "pin_host_key",
            "firewall",
            "finalize",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Validates and records a create-server job (queued).
    pub fn start_create_server(&self, p: CreateServerParams) -> Result<JobRecord> {
        livchat_store::validate_server_name(&p.name)
            .map_err(|r| CoreError::invalid("server name", r))?;
        for (field, v) in [
            ("type", &p.server_type),
            ("location", &p.location),
            ("image", &p.image),
        ] {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(CoreError::invalid(
                    field,
                    format!(
                        "`{}` is not a provider name (letters, digits, '-', '.')",
                        v.escape_debug()
                    ),
                ));
            }
        }
        if self.store.load()?.servers.contains_key(&p.name) {
            return Err(CoreError::Refused(format!(
                "server {} already exists; choose another name",
                p.name
            )));
        }
        self.require_secret(crate::orchestrator::HETZNER_TOKEN)?;
        self.create_job(
            JobKind::CreateServer,
            Some(&p.name),
            to_params(&p),
            Self::create_steps(),
        )
    }

    pub fn plan_create_server(&self, p: &CreateServerParams) -> Plan {
        Plan {
            operation: format!("create server {}", p.name),
            steps: Self::create_steps(),
            resources: vec![
                format!("vault secret {} (new Ed25519 key)", ssh_key_secret(&p.name)),
                format!("provider ssh key livchat-{}", p.name),
                format!(
                    "provider server {} ({}, {}, {}) labelled managed-by=livchat",
                    p.name, p.server_type, p.location, p.image
                ),
                format!("provider firewall livchat-{} (tcp 22, 80, 443)", p.name),
                format!("state server {}", p.name),
            ],
            dns_records: Vec::new(),
            stacks: Vec::new(),
        }
    }

    async fn create_step(&self, ctx: &JobContext, job: &JobRecord, step: &str) -> Result<Value> {
        let p: CreateServerParams = params(job)?;
        let provider = self.provider()?;
        let progress = {
            let ctx = ctx.clone();
            move |a: livchat_providers::ActionProgress| {
                ctx.info(format!("provider action {}: {}%", a.command, a.progress));
            }
        };
        match step {
            "ssh_key" => {
                let secret = ssh_key_secret(&p.name);
                let key = match self.secrets.get(&secret)? {
                    Some(k) => livchat_remote::parse_private_key(&k)?,
                    None => {
                        let k = livchat_remote::generate_ed25519(&format!("livchat@{}", p.name))?;
                        self.secrets.set(&secret, k.private_openssh.clone())?;
                        ctx.info(format!("generated SSH key {} ({})", secret, k.fingerprint));
                        k
                    }
                };
                let registered = provider
                    .ensure_ssh_key(&provider_resource_name(&p.name), &key.public_openssh)
                    .await
                    .map_err(provider_err)?;
                Ok(json!({ "ssh_key": registered.name }))
            }
            "create_server" => {
                let key_name = job
                    .result
                    .as_ref()
                    .and_then(|r| r.get("ssh_key"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| provider_resource_name(&p.name));
                // A create retried after a timeout must not create a second server: look it up.
                let (server, created_now) =
                    match provider.find_server(&p.name).await.map_err(provider_err)? {
                        Some(existing) => {
                            ctx.info(format!(
                                "server {} already exists at the provider (id {}), reusing it",
                                p.name, existing.id
                            ));
                            (existing, false)
                        }
                        None => {
                            let spec = ServerSpec {
                                name: p.name.clone(),
                                server_type: p.server_type.clone(),
                                location: p.location.clone(),
                                image: p.image.clone(),
                                ssh_keys: vec![key_name],
                                labels: BTreeMap::from([(
                                    livchat_providers::MANAGED_BY_LABEL.0.to_string(),
                                    livchat_providers::MANAGED_BY_LABEL.1.to_string(),
                                )]),
                            };
                            let created = provider
                                .create_server(&spec, &progress)
                                .await
                                .map_err(provider_err)?;
                            (created, true)
                        }
                    };
                let Some(ip) = server.ipv4 else {
                    // The job's result does not record this server yet, so the clean-up
                    // would not find it: remove it here, or it is an orphan.
                    if created_now && !p.keep_on_failure {
                        ctx.info(format!(
                            "removing server {} (id {}) created by this job",
                            p.name, server.id
                        ));
                        provider
                            .delete_server(&server.id, &|_| {})
                            .await
                            .map_err(provider_err)?;
                    }
                    return Err(CoreError::Provider(format!(
                        "server {} has no public IPv4 address",
                        p.name
                    )));
                };
                let record = ServerRecord {
                    name: p.name.clone(),
                    provider: ProviderKind::Hetzner,
                    provider_id: server.id.0.parse().ok(),
                    host: ip.to_string(),
                    ssh_port: 22,
                    ssh_user: "root".into(),
                    ssh_key_secret: ssh_key_secret(&p.name),
                    ssh_agent_key: None,
                    host_key_fingerprint: None,
                    dns: None,
                    server_type: Some(p.server_type.clone()),
                    location: Some(p.location.clone()),
                    image: Some(p.image.clone()),
                    labels: server.labels.clone(),
                    status: ServerStatus::Creating,
                    setup: Default::default(),
                    created_at: chrono::Utc::now(),
                };
                self.store.update("server create", &mut |s| {
                    s.servers.insert(p.name.clone(), record.clone());
                    Ok(())
                })?;
                ctx.info(format!(
                    "server {} is at {} (provider id {})",
                    p.name, ip, server.id
                ));
                Ok(
                    json!({ "provider_id": server.id.0, "ipv4": ip.to_string(), "created_by_job": true }),
                )
            }
            "pin_host_key" => {
                let server = self.server(&p.name)?;
                let key = self.require_secret(&server.ssh_key_secret)?;
                let deadline = Instant::now() + self.config.ssh_wait;
                let mut delay = Duration::from_millis(500);
                let connected = loop {
                    ctx.check_cancelled()?;
                    match self
                        .connector
                        .connect(
                            &Self::target(&server),
                            &key,
                            &HostKeyPolicy::TrustOnFirstUse,
                        )
                        .await
                    {
                        Ok(c) => break c,
                        Err(e) if Instant::now() < deadline => {
                            ctx.info(format!("waiting for SSH on {}: {e}", server.host));
                            let token = ctx.cancel_token();
                            tokio::select! {
                                () = tokio::time::sleep(delay) => {}
                                () = token.cancelled() => return Err(CoreError::Cancelled),
                            }
                            delay = (delay * 2).min(Duration::from_secs(10));
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                let fp = connected.host_key_fingerprint.clone();
                self.store.update("server pin host key", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.host_key_fingerprint = Some(fp.clone());
                    }
                    Ok(())
                })?;
                self.connections
                    .lock()
                    .await
                    .insert(p.name.clone(), connected.executor);
                ctx.info(format!("pinned host key {fp}"));
                Ok(json!({ "host_key_fingerprint": fp }))
            }
            "firewall" => {
                let server = self.server(&p.name)?;
                let id = server
                    .provider_id
                    .ok_or_else(|| CoreError::Provider("server has no provider id".into()))?;
                // The server's own SSH port: the rules drop everything else inbound.
                let mut spec = FirewallSpec::ssh_and_web(provider_resource_name(&p.name));
                spec.tcp_ports.retain(|port| *port != 22);
                spec.tcp_ports.insert(0, server.ssh_port);
                let fw = provider
                    .ensure_firewall(&spec, &ServerId(id.to_string()))
                    .await
                    .map_err(provider_err)?;
                Ok(json!({ "firewall": fw.name }))
            }
            "finalize" => {
                self.store.update("server created", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.status = ServerStatus::Running;
                    }
                    Ok(())
                })?;
                Ok(json!({ "server": p.name }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }

    async fn create_cleanup(&self, ctx: &JobContext, job: &JobRecord) -> Result<()> {
        let p: CreateServerParams = params(job)?;
        let created = job
            .result
            .as_ref()
            .and_then(|r| r.get("created_by_job"))
            .and_then(Value::as_bool)
            == Some(true);
        if !created {
            return Ok(());
        }
        if p.keep_on_failure {
            ctx.warn(format!(
                "keeping server {} at the provider as asked",
                p.name
            ));
            return Ok(());
        }
        let provider = self.provider()?;
        if let Some(server) = provider.find_server(&p.name).await.map_err(provider_err)? {
            ctx.info(format!(
                "removing server {} (id {}) created by this job",
                p.name, server.id
            ));
            provider
                .delete_server(&server.id, &|_| {})
                .await
                .map_err(provider_err)?;
        }
        self.forget_connection(&p.name).await;
        self.store.update("server create rollback", &mut |s| {
            s.servers.remove(&p.name);
            Ok(())
        })?;
        // The create step must run again on retry: it was undone.
        self.jobs
            .set_remaining_steps(&job.id, Self::create_steps().split_off(1))?;
        self.store.update("job rewind", &mut |s| {
            if let Some(j) = s.jobs.get_mut(&job.id) {
                j.steps_completed.retain(|st| st == "ssh_key");
                if let Some(r) = j.result.as_mut().and_then(Value::as_object_mut) {
                    r.remove("created_by_job");
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    // ----- setup server --------------------------------------------------------------------

    pub fn start_setup_server(&self, p: SetupServerParams) -> Result<JobRecord> {
        let server = self.server(&p.name)?;
        validate_dns(&p.zone, p.subdomain.as_deref())?;
        require_root(&server)?;
        if p.dns == DnsMode::Cloudflare {
            self.require_secret(crate::orchestrator::CLOUDFLARE_TOKEN)?;
        }
        // The plan's step ids do not depend on the OS (only their arguments do), so the job
        // starts with its full list and progress keeps one total; `connect` sets the list
        // again once it has detected the OS.
        let plan =
            livchat_remote::plan(&self.setup_config(&server)?, &supported_os("debian", "12")?)?;
        self.create_job(
            JobKind::SetupServer,
            Some(&p.name),
            to_params(&p),
            Self::setup_steps(&plan),
        )
    }

    /// The steps of a setup job: connect, the A record, the plan's steps, finalize.
    fn setup_steps(plan: &[livchat_remote::Step]) -> Vec<String> {
        let mut steps = vec!["connect".to_string(), "dns_record".to_string()];
        steps.extend(plan.iter().map(|s| format!("{SETUP_PREFIX}{}", s.id)));
        steps.push("finalize".into());
        steps
    }

    /// The dry run of a setup: the A record and what the plan installs and configures. The
    /// exact steps depend on the operating system, detected when the job connects; the plan
    /// lists them for Debian 12 (what `server create` installs). Touches nothing.
    pub fn plan_setup_server(&self, p: &SetupServerParams) -> Result<Plan> {
        let server = self.server(&p.name)?;
        validate_dns(&p.zone, p.subdomain.as_deref())?;
        require_root(&server)?;
        let config = self.setup_config(&server)?;
        let os = supported_os("debian", "12")?;
        let plan = livchat_remote::plan(&config, &os)?;
        let steps = Self::setup_steps(&plan);
        let fqdn = Self::server_fqdn(&p.name, &p.zone, p.subdomain.as_deref());
        let mut resources: Vec<String> = plan
            .iter()
            .map(|s| format!("{}: {}", s.id, s.name))
            .collect();
        let record = format!("A {fqdn} -> {}", server.host);
        let dns_records = match p.dns {
            DnsMode::Cloudflare => {
                // The job would stop at its first step without it: the plan says so.
                if let Err(CoreError::MissingCredential { name }) =
                    self.require_secret(crate::orchestrator::CLOUDFLARE_TOKEN)
                {
                    resources.insert(
                        0,
                        format!(
                            "MISSING credential {name}: store it with `livchat dns configure {}`, or set up with --dns manual and create the records yourself",
                            p.zone
                        ),
                    );
                }
                vec![record]
            }
            DnsMode::Manual => vec![format!("{record} (create it yourself at your DNS host)")],
        };
        Ok(Plan {
            operation: format!("set up server {} (steps shown for Debian 12)", p.name),
            steps,
            resources,
            dns_records,
            stacks: Vec::new(),
        })
    }

    fn setup_config(&self, server: &ServerRecord) -> Result<SetupConfig> {
        let addr: IpAddr = server.host.parse().map_err(|_| {
            CoreError::invalid(
                "host",
                format!(
                    "server {} has host {}, but Swarm needs an IP address to advertise",
                    server.name, server.host
                ),
            )
        })?;
        let mut config = SetupConfig::new(&server.name, addr)?;
        config.docker = self.config.docker_source;
        config.ssh_port = server.ssh_port;
        if let Some(tz) = self
            .store
            .load()?
            .settings
            .get(livchat_store::SettingKey::Timezone)
        {
            config.timezone =
                livchat_remote::validate_name(livchat_remote::NameKind::Timezone, tz)?;
        }
        Ok(config)
    }

    fn server_fqdn(name: &str, zone: &str, subdomain: Option<&str>) -> String {
        match subdomain {
            Some(s) => format!("{name}.{s}.{zone}"),
            None => format!("{name}.{zone}"),
        }
    }

    async fn setup_step(&self, ctx: &JobContext, job: &JobRecord, step: &str) -> Result<Value> {
        let p: SetupServerParams = params(job)?;
        let server = self.server(&p.name)?;
        match step {
            "connect" => {
                let executor = self.executor(&p.name).await?;
                let os = livchat_remote::detect_os(executor.as_ref()).await?;
                let plan = livchat_remote::plan(&self.setup_config(&server)?, &os)?;
                ctx.info(format!("{} detected; {} setup steps", os.id(), plan.len()));
                self.jobs
                    .set_remaining_steps(&job.id, Self::setup_steps(&plan))?;
                let done =
                    crate::setup_ahead::declare_done_steps(ctx, executor.as_ref(), &plan).await?;
                self.store.update("server setting up", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.status = ServerStatus::SettingUp;
                        for id in &done {
                            if !sv.setup.completed_steps.iter().any(|c| c == id) {
                                sv.setup.completed_steps.push(id.to_string());
                            }
                        }
                    }
                    Ok(())
                })?;
                Ok(json!({
                    "os": os.id(),
                    "os_version": os.version_id,
                    "os_codename": os.codename,
                }))
            }
            "dns_record" if p.dns == DnsMode::Manual => {
                let ip = server_ipv4(&server)?;
                let fqdn = Self::server_fqdn(&p.name, &p.zone, p.subdomain.as_deref());
                let apps = match &p.subdomain {
                    Some(sub) => format!("<app>.{sub}.{}", p.zone),
                    None => format!("<app>.{}", p.zone),
                };
                ctx.warn(format!(
                    "manual DNS: create these records at your DNS host: A {fqdn} -> {ip}, and for each app A {apps} -> {ip} (`livchat app deploy --plan` lists them); a deploy checks that they resolve"
                ));
                let config = DnsConfig {
                    zone_name: p.zone.clone(),
                    subdomain: p.subdomain.clone(),
                    mode: DnsMode::Manual,
                };
                self.store.update("server dns", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.dns = Some(config.clone());
                    }
                    Ok(())
                })?;
                Ok(json!({ "dns": fqdn, "dns_mode": "manual" }))
            }
            "dns_record" => {
                let ip = server_ipv4(&server)?;
                let fqdn = Self::server_fqdn(&p.name, &p.zone, p.subdomain.as_deref());
                let dns = self.dns()?;
                let zone = dns.find_zone(&p.zone).await.map_err(dns_err)?;
                let ensured = dns
                    .ensure_a_record(&zone, &fqdn, ip, &RecordOptions::default())
                    .await
                    .map_err(dns_err)?;
                ctx.info(format!(
                    "DNS A {fqdn} -> {ip} ({})",
                    change_words(ensured.change)
                ));
                let config = DnsConfig {
                    zone_name: p.zone.clone(),
                    subdomain: p.subdomain.clone(),
                    mode: p.dns,
                };
                self.store.update("server dns", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.dns = Some(config.clone());
                    }
                    Ok(())
                })?;
                Ok(json!({ "dns": fqdn }))
            }
            "finalize" => {
                self.store.update("server ready", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.status = ServerStatus::Ready;
                        sv.setup.completed_at = Some(chrono::Utc::now());
                    }
                    Ok(())
                })?;
                Ok(json!({ "server": p.name, "status": "ready" }))
            }
            s if s.starts_with(SETUP_PREFIX) => {
                let id = &s[SETUP_PREFIX.len()..];
                let executor = self.executor(&p.name).await?;
                let os = match recorded_os(job) {
                    Some(os) => os,
                    // A job recorded before the OS was kept in its result.
                    None => livchat_remote::detect_os(executor.as_ref()).await?,
                };
                let plan = livchat_remote::plan(&self.setup_config(&server)?, &os)?;
                let one: Vec<_> = plan.into_iter().filter(|st| st.id == id).collect();
                if one.is_empty() {
                    return Err(CoreError::invalid(
                        "step",
                        format!("unknown setup step {id}"),
                    ));
                }
                let log_ctx = ctx.clone();
                let report = livchat_remote::run_plan(
                    executor.as_ref(),
                    &one,
                    livchat_remote::RunOptions {
                        cancel: ctx.cancel_token(),
                        on_line: Some(Arc::new(move |l: livchat_remote::OutputLine| {
                            log_ctx.log(livchat_store::LogLevel::Debug, &l.line);
                        })),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| match e {
                    livchat_remote::SetupError::Remote {
                        source: livchat_remote::RemoteError::Cancelled,
                        ..
                    } => CoreError::Cancelled,
                    other => CoreError::Step {
                        step: id.to_string(),
                        message: other.to_string(),
                    },
                })?;
                let name = one.first().map_or(id, |st| st.name);
                let outcome = match report.steps.first().map(|(_, st)| *st) {
                    Some(livchat_remote::StepState::Ran) => "done",
                    Some(livchat_remote::StepState::Skipped) => "already in place",
                    Some(livchat_remote::StepState::Failed) => "failed",
                    Some(livchat_remote::StepState::Started) | None => "not run",
                };
                ctx.info(format!("{name}: {outcome}"));
                self.store.update("server setup step", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name)
                        && !sv.setup.completed_steps.iter().any(|c| c == id)
                    {
                        sv.setup.completed_steps.push(id.to_string());
                    }
                    Ok(())
                })?;
                Ok(Value::Null)
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }

    /// Changes a server's DNS configuration and points its A record at it (quick: no job).
    pub async fn update_server_dns(
        &self,
        name: &str,
        zone: &str,
        subdomain: Option<&str>,
    ) -> Result<String> {
        let server = self.server(name)?;
        validate_dns(zone, subdomain)?;
        let ip = server_ipv4(&server)?;
        let fqdn = Self::server_fqdn(name, zone, subdomain);
        let dns = self.dns()?;
        let z = dns.find_zone(zone).await.map_err(dns_err)?;
        dns.ensure_a_record(&z, &fqdn, ip, &RecordOptions::default())
            .await
            .map_err(dns_err)?;
        let config = DnsConfig {
            zone_name: zone.to_string(),
            subdomain: subdomain.map(str::to_string),
            mode: DnsMode::Cloudflare,
        };
        self.store.update("server dns", &mut |s| {
            if let Some(sv) = s.servers.get_mut(name) {
                sv.dns = Some(config.clone());
            }
            Ok(())
        })?;
        Ok(fqdn)
    }

    // ----- deploy --------------------------------------------------------------------------

    const APP_STEPS: [&'static str; 5] = ["secrets", "dns", "deploy", "health", "record"];

    fn deploy_steps(apps: &[String]) -> Vec<String> {
        apps.iter()
            .flat_map(|a| Self::APP_STEPS.iter().map(move |s| format!("{a}:{s}")))
            .collect()
    }

    fn deployed_set(&self, server: &str) -> Result<BTreeSet<String>> {
        Ok(self
            .store
            .load()?
            .deployments
            .get(server)
            .map(|m| {
                m.values()
                    .filter(|d| d.status == DeploymentStatus::Running)
                    .map(|d| d.app.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn resolve_deploy(&self, server: &str, app: &str, set: &[String]) -> Result<DeployParams> {
        let record = self.server(server)?;
        if record.dns.is_none() {
            return Err(CoreError::Refused(format!(
                "server {server} has no DNS configuration; run `livchat server setup {server} --zone ZONE` first"
            )));
        }
        if record.status != ServerStatus::Ready {
            return Err(CoreError::Refused(format!(
                "server {server} is not set up (status {:?}); run `livchat server setup {server} --zone ZONE` first",
                record.status
            )));
        }
        self.app_definition(app)?;
        parse_sets(set)?;
        let deployed = self.deployed_set(server)?;
        let mut apps = self
            .catalog
            .install_order(&[app], &deployed)
            .map_err(apps_err)?;
        // A redeploy of an app that runs already deploys it again (new settings or images).
        if !apps.iter().any(|a| a == app) {
            apps.push(app.to_string());
        }
        Ok(DeployParams {
            server: server.to_string(),
            app: app.to_string(),
            set: set.to_vec(),
            apps,
            take_over_dns: false,
        })
    }

    /// Validates and records a deploy job: dependencies resolved now and fixed in the job.
    pub fn start_deploy_app(&self, server: &str, app: &str, set: &[String]) -> Result<JobRecord> {
        self.start_deploy_app_with(server, app, set, false)
    }

    /// [`Orchestrator::start_deploy_app`], optionally taking over existing A records of the
    /// apps' names that livchat did not create (`--take-over-dns`).
    pub fn start_deploy_app_with(
        &self,
        server: &str,
        app: &str,
        set: &[String],
        take_over_dns: bool,
    ) -> Result<JobRecord> {
        let mut p = self.resolve_deploy(server, app, set)?;
        p.take_over_dns = take_over_dns;
        if !is_manual_dns(&self.server(server)?) {
            self.require_secret(crate::orchestrator::CLOUDFLARE_TOKEN)?;
        }
        // A `--set` value the app does not allow, or a setting it needs, must be refused now:
        // found mid-job, it would fail after secrets were generated and stored.
        let record = self.server(server)?;
        let placeholder = self.placeholder_secrets(&p.apps)?;
        for a in &p.apps {
            self.render_app(&record, a, &p, &placeholder)?;
        }
        let steps = Self::deploy_steps(&p.apps);
        self.create_job(JobKind::DeployApp, Some(server), to_params(&p), steps)
    }

    /// The dry run of a deploy: every app, DNS record and rendered stack (secrets redacted;
    /// secrets that do not exist yet are shown as to be generated). Touches nothing.
    pub fn plan_deploy_app(&self, server: &str, app: &str, set: &[String]) -> Result<Plan> {
        let p = self.resolve_deploy(server, app, set)?;
        let record = self.server(server)?;
        let mut plan = Plan {
            operation: format!("deploy {app} on {server}"),
            steps: Self::deploy_steps(&p.apps),
            resources: Vec::new(),
            dns_records: Vec::new(),
            stacks: Vec::new(),
        };
        // A dependency's secret (in the vault and as a Docker secret) is needed by every app
        // that uses it: list it once.
        let mut listed = BTreeSet::new();
        for a in &p.apps {
            let (secrets, missing) = self.load_app_secrets(a, false)?;
            for m in missing {
                if listed.insert(m.clone()) {
                    plan.resources.push(format!("vault secret {m} (generated)"));
                }
            }
            let stack = self.render_app(&record, a, &p, &secrets)?;
            plan.resources
                .push(format!("stack {} on {server}", stack.stack));
            for d in &stack.docker_secrets {
                let line = format!("docker secret {}", d.name);
                if listed.insert(line.clone()) {
                    plan.resources.push(line);
                }
            }
            for step in &stack.pre_deploy {
                if let DeployStep::CreateDatabase { spec, .. } = step {
                    plan.resources.push(spec.describe());
                }
            }
            plan.resources.extend(own_instance_lines(&stack));
            // How the app's first admin is made, and a warning when its setup page stays open
            // to whoever reaches it first.
            if let Some(line) = self
                .catalog
                .get(a)
                .and_then(livchat_apps::first_run::summary)
            {
                plan.resources.push(line);
            }
            let by_hand = if is_manual_dns(&record) {
                " (create it yourself; the deploy checks that it resolves)"
            } else {
                ""
            };
            for n in &stack.dns_names {
                plan.dns_records
                    .push(format!("A {n} -> {}{by_hand}", record.host));
            }
            plan.stacks.push(PlannedStack {
                app: stack.app.clone(),
                stack: stack.stack.clone(),
                compose: stack.redacted().to_string(),
            });
        }
        Ok(plan)
    }

    /// Every secret the apps need, generated for one render and stored nowhere (the vault is
    /// not read, so nothing secret can leak from a validation).
    fn placeholder_secrets(&self, apps: &[String]) -> Result<SecretsByApp> {
        let mut by_app = SecretsByApp::new();
        for app in apps {
            for r in self.catalog.secrets_needed(app).map_err(apps_err)? {
                let value = self.generate_secret(&r)?;
                by_app
                    .entry(r.app.clone())
                    .or_default()
                    .insert(r.name.clone(), value);
            }
        }
        Ok(by_app)
    }

    /// A fresh value for a secret, as its app's definition specifies it.
    fn generate_secret(&self, r: &livchat_apps::SecretRef) -> Result<secrecy::SecretString> {
        let def = self.catalog.require(&r.app).map_err(apps_err)?;
        let spec = def.secret(&r.name).ok_or_else(|| {
            CoreError::Apps(format!("app {} declares no secret {}", r.app, r.name))
        })?;
        Ok(livchat_apps::secrets::generate(spec))
    }

    /// The secrets a render of `app` needs, from the vault; missing ones are generated (and
    /// stored when `store` is set). Returns the secrets and the vault keys that were missing.
    fn load_app_secrets(&self, app: &str, store: bool) -> Result<(SecretsByApp, Vec<String>)> {
        let refs = self.catalog.secrets_needed(app).map_err(apps_err)?;
        let mut by_app = SecretsByApp::new();
        let mut missing = Vec::new();
        for r in &refs {
            let key = r.vault_key();
            let value = match self.secrets.get(&key)? {
                Some(v) => v,
                None => {
                    let v = self.generate_secret(r)?;
                    missing.push(key.clone());
                    if store {
                        self.secrets.set(&key, v.clone())?;
                    }
                    v
                }
            };
            by_app
                .entry(r.app.clone())
                .or_default()
                .insert(r.name.clone(), value);
        }
        Ok((by_app, missing))
    }

    fn render_app(
        &self,
        server: &ServerRecord,
        app: &str,
        p: &DeployParams,
        secrets: &SecretsByApp,
    ) -> Result<RenderedStack> {
        let dns = server.dns.as_ref().ok_or_else(|| {
            CoreError::Refused(format!("server {} has no DNS configuration", server.name))
        })?;
        let ctx = RenderContext {
            server: ServerInfo {
                name: server.name.clone(),
                address: server.host.clone(),
            },
            dns: livchat_apps::DnsConfig::new(&dns.zone_name, dns.subdomain.as_deref())
                .map_err(apps_err)?,
            settings: self.settings_map()?,
            options: self.render_options(),
        };
        let params = if app == p.app {
            parse_sets(&p.set)?
        } else {
            BTreeMap::new()
        };
        self.catalog
            .render(app, &ctx, &params, secrets)
            .map_err(apps_err)
    }

    /// Runs `steps`; first-run claims only when `claim` (the routes were closed for one).
    async fn run_deploy_steps(
        &self,
        ctx: &JobContext,
        server: &ServerRecord,
        steps: &[DeployStep],
        secrets: &SecretsByApp,
        claim: bool,
    ) -> Result<()> {
        let platform = self.platform(&server.name).await?;
        for step in steps {
            ctx.check_cancelled()?;
            match step {
                DeployStep::CreateDatabase {
                    stack: db_stack,
                    service,
                    spec,
                    password,
                } => {
                    let pw = secrets
                        .get(&password.app)
                        .and_then(|s| s.get(&password.name))
                        .ok_or_else(|| {
                            CoreError::Apps(format!("missing secret {}", password.vault_key()))
                        })?;
                    ctx.hide(pw);
                    let cmd = livchat_apps::create_database_command(spec, pw).map_err(apps_err)?;
                    ctx.info(format!(
                        "creating database {} and user {} in {db_stack}/{service}",
                        spec.database, spec.user
                    ));
                    let out = platform
                        .exec_in_service(ServiceExec {
                            stack: db_stack.clone(),
                            service: service.clone(),
                            argv: cmd.argv.clone(),
                            stdin: Some(SecretBox::new(
                                cmd.stdin
                                    .expose_secret()
                                    .as_bytes()
                                    .to_vec()
                                    .into_boxed_slice(),
                            )),
                            user: None,
                            timeout: Duration::from_secs(120),
                            cancel: ctx.cancel_token(),
                        })
                        .await
                        .map_err(platform_err)?;
                    if !out.success() {
                        // psql may echo the failing statement, which holds the password:
                        // only the redacted tail goes into the error.
                        let tail = ctx.redact(&livchat_remote::setup::tail(&out.stderr, 5));
                        return Err(CoreError::Step {
                            step: format!("create database {}", spec.database),
                            message: format!("exit status {}: {tail}", out.exit_status),
                        });
                    }
                }
                DeployStep::WaitHealthy {
                    stack: name,
                    timeout_secs,
                } => {
                    self.wait_stack(ctx, platform.as_ref(), name, *timeout_secs)
                        .await?;
                }
                DeployStep::Exec {
                    stack: st,
                    service,
                    argv,
                    timeout_secs,
                } => {
                    ctx.info(format!("running {argv:?} in {st}/{service}"));
                    let out = platform
                        .exec_in_service(ServiceExec {
                            stack: st.clone(),
                            service: service.clone(),
                            argv: argv.clone(),
                            stdin: None,
                            user: None,
                            timeout: Duration::from_secs(timeout_secs.unwrap_or(600)),
                            cancel: ctx.cancel_token(),
                        })
                        .await
                        .map_err(platform_err)?;
                    if !out.success() {
                        return Err(CoreError::Step {
                            step: format!("exec in {st}/{service}"),
                            message: format!(
                                "exit status {}: {}",
                                out.exit_status,
                                ctx.redact(&livchat_remote::setup::tail(&out.stderr, 5))
                            ),
                        });
                    }
                }
                DeployStep::HttpRequest(req) if claim => {
                    crate::first_run::claim(ctx, platform.as_ref(), req).await?;
                }
                DeployStep::ExecClaim(step) if claim => {
                    crate::first_run::claim_exec(ctx, platform.as_ref(), step).await?;
                }
                DeployStep::HttpRequest(_) | DeployStep::ExecClaim(_) => {}
            }
        }
        Ok(())
    }

    async fn wait_stack(
        &self,
        ctx: &JobContext,
        platform: &dyn livchat_remote::ContainerPlatform,
        name: &str,
        timeout_secs: u64,
    ) -> Result<()> {
        let timeout = Duration::from_secs(timeout_secs).min(self.config.health_timeout);
        ctx.info(format!(
            "waiting up to {timeout:?} for stack {name} to be healthy"
        ));
        let log_ctx = ctx.clone();
        platform
            .wait_healthy(
                name,
                WaitOptions {
                    timeout,
                    cancel: ctx.cancel_token(),
                    on_progress: Some(Arc::new(move |status: &livchat_remote::StackStatus| {
                        let summary: Vec<String> = status
                            .services
                            .iter()
                            .map(|s| {
                                format!("{} {}/{}", s.name, s.running_replicas, s.desired_replicas)
                            })
                            .collect();
                        log_ctx.log(livchat_store::LogLevel::Debug, summary.join(", "));
                    })),
                    ..Default::default()
                },
            )
            .await
            .map_err(platform_err)?;
        Ok(())
    }

    async fn deploy_step(&self, ctx: &JobContext, job: &JobRecord, step: &str) -> Result<Value> {
        let p: DeployParams = params(job)?;
        let (app, what) = step
            .split_once(':')
            .ok_or_else(|| CoreError::invalid("step", format!("unknown step {step}")))?;
        let server = self.server(&p.server)?;
        let (secrets, _) = self.load_app_secrets(app, what == "secrets")?;
        for s in secrets.values().flat_map(|m| m.values()) {
            ctx.hide(s);
        }
        match what {
            "secrets" => Ok(Value::Null),
            "dns" => {
                let stack = self.render_app(&server, app, &p, &secrets)?;
                if stack.dns_names.is_empty() {
                    return Ok(Value::Null);
                }
                let dns_config = server.dns.clone().ok_or_else(|| {
                    CoreError::Refused(format!("server {} has no DNS configuration", server.name))
                })?;
                let ip = server_ipv4(&server)?;
                if dns_config.mode == DnsMode::Manual {
                    self.check_names_resolve(ctx, &stack.dns_names, ip).await?;
                    return Ok(Value::Null);
                }
                let dns = self.dns()?;
                let zone = dns
                    .find_zone(&dns_config.zone_name)
                    .await
                    .map_err(dns_err)?;
                // Records of these names livchat did not create are not touched (nor later
                // deleted by undeploy) unless the user takes them over; one pointing elsewhere
                // refuses the deploy before anything changes.
                let owned = self.owned_dns_ids(&p.server)?;
                let mut foreign: BTreeSet<String> = BTreeSet::new();
                for name in &stack.dns_names {
                    for r in dns.records_named(&zone, name).await.map_err(dns_err)? {
                        if r.record_type != livchat_providers::RecordType::A
                            || owned.contains(&r.id)
                        {
                            continue;
                        }
                        if r.content != ip.to_string() && !p.take_over_dns {
                            return Err(CoreError::Refused(format!(
                                "DNS record A {name} -> {} exists and was not created by livchat; \
                                 deploying would repoint it to {ip}. Remove it, or pass \
                                 --take-over-dns to repoint it (undeploy then deletes it)",
                                r.content
                            )));
                        }
                        if !p.take_over_dns {
                            foreign.insert(r.id);
                        }
                    }
                }
                let mut created: Vec<String> = Vec::new();
                let mut ids = Vec::new();
                for name in &stack.dns_names {
                    let e = match dns
                        .ensure_a_record(&zone, name, ip, &RecordOptions::default())
                        .await
                    {
                        Ok(e) => e,
                        Err(err) => {
                            // The records created by this step are not in the job's result
                            // yet, so the clean-up cannot see them: remove them here.
                            for id in &created {
                                ctx.info(format!("removing DNS record {id} created by this job"));
                                if let Err(e) = dns.delete_record(&zone, id).await {
                                    ctx.warn(format!("DNS record {id}: {e}"));
                                }
                            }
                            return Err(dns_err(err));
                        }
                    };
                    ctx.info(format!("DNS A {name} -> {ip} ({})", change_words(e.change)));
                    if e.change == livchat_providers::Change::Created {
                        created.push(e.record.id.clone());
                    }
                    if foreign.contains(&e.record.id) {
                        ctx.info(format!(
                            "DNS record A {name} already pointed here and is not livchat's: \
                             kept out of the deployment, so undeploy leaves it"
                        ));
                        continue;
                    }
                    if p.take_over_dns && e.change != livchat_providers::Change::Created {
                        ctx.warn(format!("DNS record A {name} taken over (--take-over-dns)"));
                    }
                    ids.push(e.record.id);
                }
                Ok(json!({ format!("{app}.dns_ids"): ids, format!("{app}.dns_created"): created }))
            }
            "deploy" => {
                let stack = self.render_app(&server, app, &p, &secrets)?;
                self.run_deploy_steps(ctx, &server, &stack.pre_deploy, &secrets, false)
                    .await?;
                // An app with a first-run page is claimed before anything routes to it; a
                // redeploy of a running app was claimed when it was first deployed.
                let running = self
                    .store
                    .load()?
                    .deployments
                    .get(&p.server)
                    .and_then(|m| m.get(app))
                    .is_some_and(|d| d.status == DeploymentStatus::Running);
                let close_routes = !running && has_claim(&stack);
                let platform = self.platform(&server.name).await?;
                platform
                    .ensure_network(&NetworkSpec::overlay(self.render_options().network))
                    .await
                    .map_err(platform_err)?;
                let spec = if close_routes {
                    ctx.info(format!(
                        "deploying stack {} with its public routes closed until its first-run page is claimed",
                        stack.stack
                    ));
                    let closed = livchat_apps::first_run::close_public_routes(app, stack.compose())
                        .map_err(apps_err)?;
                    stack_spec(&stack, closed.expose_secret())
                } else {
                    ctx.info(format!("deploying stack {}", stack.stack));
                    stack_spec(&stack, stack.compose().expose_secret())
                };
                self.store.update("deployment start", &mut |s| {
                    let entry = s.deployments.entry(p.server.clone()).or_default();
                    let status = entry.get(app).map(|d| d.status);
                    if status != Some(DeploymentStatus::Running) {
                        entry.insert(
                            app.to_string(),
                            DeploymentRecord {
                                app: app.to_string(),
                                version: self
                                    .catalog
                                    .get(app)
                                    .map(|d| d.version.clone())
                                    .unwrap_or_default(),
                                stack_name: stack.stack.clone(),
                                domains: stack.dns_names.clone(),
                                dns_record_ids: Vec::new(),
                                dependencies: Vec::new(),
                                status: DeploymentStatus::Deploying,
                                deployed_at: chrono::Utc::now(),
                            },
                        );
                    }
                    Ok(())
                })?;
                platform.deploy_stack(&spec).await.map_err(platform_err)?;
                // A fresh app whose setup page nobody can claim for the user: say so now, while
                // the user can still be first.
                if let Some(def) = self
                    .catalog
                    .get(app)
                    .filter(|d| !running && livchat_apps::first_run::leaves_setup_page_open(d))
                    && let Some(line) = livchat_apps::first_run::summary(def)
                {
                    ctx.warn(line);
                }
                Ok(json!({
                    format!("{app}.deployed_by_job"): true,
                    format!("{app}.routes_closed"): close_routes,
                }))
            }
            "health" => {
                let stack = self.render_app(&server, app, &p, &secrets)?;
                let platform = self.platform(&server.name).await?;
                let timeout = self
                    .catalog
                    .get(app)
                    .map_or(300, |d| d.health_check.timeout_secs);
                // The definition's own `wait_healthy` step is the wait when it has one (every
                // built-in does); waiting here as well would add a second settle window.
                let waits = stack
                    .post_deploy
                    .iter()
                    .any(|s| matches!(s, DeployStep::WaitHealthy { .. }));
                if !waits {
                    self.wait_stack(ctx, platform.as_ref(), &stack.stack, timeout)
                        .await?;
                }
                let routes_closed = job
                    .result
                    .as_ref()
                    .and_then(|r| r.get(format!("{app}.routes_closed")))
                    .and_then(Value::as_bool)
                    == Some(true);
                if !routes_closed && has_claim(&stack) {
                    ctx.info(format!(
                        "{app} runs already: its first-run page was claimed when it was first deployed"
                    ));
                }
                self.run_deploy_steps(ctx, &server, &stack.post_deploy, &secrets, routes_closed)
                    .await?;
                if routes_closed {
                    ctx.info(format!("opening the public routes of {}", stack.stack));
                    platform
                        .deploy_stack(&stack_spec(&stack, stack.compose().expose_secret()))
                        .await
                        .map_err(platform_err)?;
                }
                Ok(Value::Null)
            }
            "record" => {
                let stack = self.render_app(&server, app, &p, &secrets)?;
                let ids: Vec<String> = job
                    .result
                    .as_ref()
                    .and_then(|r| r.get(format!("{app}.dns_ids")))
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                let deps = self.catalog.requirements_of(app).unwrap_or_default();
                let record = DeploymentRecord {
                    app: app.to_string(),
                    version: self
                        .catalog
                        .get(app)
                        .map(|d| d.version.clone())
                        .unwrap_or_default(),
                    stack_name: stack.stack.clone(),
                    domains: stack.dns_names.clone(),
                    dns_record_ids: ids,
                    dependencies: deps,
                    status: DeploymentStatus::Running,
                    deployed_at: chrono::Utc::now(),
                };
                self.store.update("deployment recorded", &mut |s| {
                    s.deployments
                        .entry(p.server.clone())
                        .or_default()
                        .insert(app.to_string(), record.clone());
                    Ok(())
                })?;
                ctx.info(format!("{app} deployed on {}", p.server));
                Ok(json!({ format!("{app}.deployed_by_job"): false }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }

    /// The DNS record ids livchat created (or was told to take over) for this server's apps.
    fn owned_dns_ids(&self, server: &str) -> Result<HashSet<String>> {
        Ok(self
            .store
            .load()?
            .deployments
            .get(server)
            .map(|m| {
                m.values()
                    .flat_map(|d| d.dns_record_ids.iter().cloned())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Removes what a failed deploy created: the stack and DNS records of every app this job
    /// started but did not record. Apps this job recorded as running stay: they are deployed,
    /// healthy and in the state, not orphans. Their steps are rewound so a retry redoes them.
    async fn deploy_cleanup(&self, ctx: &JobContext, job: &JobRecord) -> Result<()> {
        let p: DeployParams = params(job)?;
        let result = job.result.clone().unwrap_or(Value::Null);
        let platform = self.platform(&p.server).await.ok();
        let mut rewound = Vec::new();
        for app in &p.apps {
            let deployed = result
                .get(format!("{app}.deployed_by_job"))
                .and_then(Value::as_bool)
                == Some(true);
            let dns_created: Vec<String> = result
                .get(format!("{app}.dns_created"))
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            let recorded = job
                .steps_completed
                .iter()
                .any(|s| s == &format!("{app}:record"));
            if recorded {
                continue;
            }
            // The deploy step records the app as deploying just before it sends the stack: if
            // sending failed, the step did not report the stack, but part of it may exist.
            let status = self
                .store
                .load()?
                .deployments
                .get(&p.server)
                .and_then(|m| m.get(app))
                .map(|d| d.status);
            let deployed = deployed || status == Some(DeploymentStatus::Deploying);
            // A redeploy of an app that was running before this job: its stack and DNS records
            // are the user's running service, not something this job created, and apps may
            // depend on it. The swarm goes back to the previous version, which the record still
            // describes (running); if that fails too, the record says failed. The job's error
            // says why the redeploy failed, and a retry deploys again.
            if status == Some(DeploymentStatus::Running) {
                if deployed {
                    self.roll_back_redeploy(ctx, platform.as_deref(), &p.server, app)
                        .await?;
                    rewound.push(app.clone());
                }
                continue;
            }
            if deployed {
                if let Some(platform) = &platform {
                    ctx.info(format!("removing stack {app} deployed by this job"));
                    platform.remove_stack(app).await.map_err(platform_err)?;
                }
                self.store.update("deployment rollback", &mut |s| {
                    if let Some(m) = s.deployments.get_mut(&p.server) {
                        if m.get(app)
                            .is_some_and(|d| d.status != DeploymentStatus::Running)
                        {
                            m.remove(app);
                        }
                        if m.is_empty() {
                            s.deployments.remove(&p.server);
                        }
                    }
                    Ok(())
                })?;
            }
            if !dns_created.is_empty() {
                let server = self.server(&p.server)?;
                if let Some(cfg) = &server.dns {
                    let dns = self.dns()?;
                    let zone = dns.find_zone(&cfg.zone_name).await.map_err(dns_err)?;
                    for id in &dns_created {
                        ctx.info(format!("removing DNS record {id} created by this job"));
                        dns.delete_record(&zone, id).await.map_err(dns_err)?;
                    }
                }
            }
            if deployed || !dns_created.is_empty() {
                rewound.push(app.clone());
            }
        }
        if !rewound.is_empty() {
            let all = Self::deploy_steps(&p.apps);
            self.store.update("job rewind", &mut |s| {
                if let Some(j) = s.jobs.get_mut(&job.id) {
                    let keep: HashSet<String> = j
                        .steps_completed
                        .iter()
                        .filter(|st| !rewound.iter().any(|a| st.starts_with(&format!("{a}:"))))
                        .cloned()
                        .collect();
                    j.steps_completed.retain(|st| keep.contains(st));
                    j.steps_remaining = all
                        .iter()
                        .filter(|st| !keep.contains(*st))
                        .cloned()
                        .collect();
                    if let Some(r) = j.result.as_mut().and_then(Value::as_object_mut) {
                        for a in &rewound {
                            r.remove(&format!("{a}.deployed_by_job"));
                            r.remove(&format!("{a}.dns_created"));
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Returns a running app whose redeploy failed to the version it ran before (Swarm's
    /// rollback of each service to its previous spec), waiting until that version is healthy.
    /// The record keeps describing the previous version; if the rollback fails, it is recorded
    /// as failed so `app deployed` does not claim a version that does not run.
    async fn roll_back_redeploy(
        &self,
        ctx: &JobContext,
        platform: Option<&dyn livchat_remote::ContainerPlatform>,
        server: &str,
        app: &str,
    ) -> Result<()> {
        let record = self
            .store
            .load()?
            .deployments
            .get(server)
            .and_then(|m| m.get(app))
            .cloned();
        let (stack, version) = record
            .map(|r| (r.stack_name, r.version))
            .unwrap_or_else(|| (app.to_string(), String::new()));
        ctx.info(format!(
            "rolling {app} back to the version that ran before this redeploy ({version})"
        ));
        let rolled_back = match platform {
            Some(platform) => platform
                .rollback_stack(
                    &stack,
                    WaitOptions {
                        timeout: self.config.health_timeout,
                        ..WaitOptions::default()
                    },
                )
                .await
                .map(|_| ())
                .map_err(platform_err),
            None => Err(CoreError::Platform(format!(
                "server {server} cannot be reached to roll {app} back"
            ))),
        };
        match rolled_back {
            Ok(()) => {
                ctx.warn(format!(
                    "{app}: the redeploy failed; the previous version ({version}) runs again"
                ));
                Ok(())
            }
            Err(e) => {
                ctx.warn(format!(
                    "{app}: the rollback to the previous version failed: {e}; recorded as failed"
                ));
                self.store.update("deployment failed", &mut |s| {
                    if let Some(d) = s.deployments.get_mut(server).and_then(|m| m.get_mut(app)) {
                        d.status = DeploymentStatus::Failed;
                    }
                    Ok(())
                })?;
                Ok(())
            }
        }
    }

    // ----- undeploy ------------------------------------------------------------------------

    /// The deployment an undeploy would remove, after its refusals.
    fn check_undeploy(&self, server: &str, app: &str, force: bool) -> Result<DeploymentRecord> {
        self.server(server)?;
        let deployed = self.deployed_set(server)?;
        let Some(record) = self
            .store
            .load()?
            .deployments
            .get(server)
            .and_then(|m| m.get(app))
            .cloned()
        else {
            return Err(CoreError::NotFound {
                kind: "deployment",
                name: format!("{app} on {server}"),
                hint: format!("; see `livchat app deployed {server}`"),
            });
        };
        let dependents = self.catalog.dependents_of(app, &deployed);
        if !dependents.is_empty() && !force {
            return Err(CoreError::Refused(format!(
                "{app} is used by {} on {server}; undeploy them first or pass --force",
                dependents.join(", ")
            )));
        }
        Ok(record)
    }

    fn undeploy_steps(delete_data: bool) -> Vec<String> {
        let mut steps = vec!["remove_stack".to_string(), "docker_secrets".to_string()];
        if delete_data {
            steps.extend(["volumes", "database", "vault_secrets"].map(String::from));
        }
        steps.extend(["dns".to_string(), "record".to_string()]);
        steps
    }

    /// The app's own secrets (not those of the apps it uses): vault keys and Docker names.
    fn own_secrets(&self, app: &str) -> Vec<livchat_apps::SecretRef> {
        self.catalog
            .secrets_needed(app)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.app == app)
            .collect()
    }

    /// The databases (and their roles) the app's deploy created, with the stack and service
    /// they live in; empty for an app without one or no longer in the catalog.
    fn app_databases(
        &self,
        server: &str,
        app: &str,
    ) -> Result<Vec<(String, String, livchat_apps::CreateDatabase)>> {
        Ok(self.app_data(server, app)?.0)
    }

    /// [`Orchestrator::app_databases`], and the providers the app runs its own instance of
    /// inside its stack (its Redis).
    fn app_data(
        &self,
        server: &str,
        app: &str,
    ) -> Result<(Vec<AppDatabase>, Vec<livchat_apps::OwnInstance>)> {
        if self.catalog.get(app).is_none() {
            return Ok((Vec::new(), Vec::new()));
        }
        let record = self.server(server)?;
        let (secrets, _) = self.load_app_secrets(app, false)?;
        let p = DeployParams {
            server: server.to_string(),
            app: app.to_string(),
            set: Vec::new(),
            apps: vec![app.to_string()],
            take_over_dns: false,
        };
        let stack = self.render_app(&record, app, &p, &secrets)?;
        let databases = stack
            .pre_deploy
            .iter()
            .filter_map(|step| match step {
                DeployStep::CreateDatabase {
                    stack,
                    service,
                    spec,
                    ..
                } => Some((stack.clone(), service.clone(), spec.clone())),
                _ => None,
            })
            .collect();
        Ok((databases, stack.own_instances))
    }

    /// Vault secrets of the app that `--delete-data` deletes: none while the same app runs on
    /// another server (the keys are per app, shared by its deployments).
    fn deletable_vault_secrets(&self, server: &str, app: &str) -> Result<Vec<String>> {
        let elsewhere = self
            .store
            .load()?
            .deployments
            .iter()
            .any(|(s, m)| s != server && m.contains_key(app));
        if elsewhere {
            return Ok(Vec::new());
        }
        let mut keys = Vec::new();
        for r in self.own_secrets(app) {
            let key = r.vault_key();
            if self.secrets.get(&key)?.is_some() {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// The dry run of an undeploy that keeps the app's data. Touches nothing.
    pub fn plan_undeploy_app(&self, server: &str, app: &str, force: bool) -> Result<Plan> {
        self.plan_undeploy(&UndeployParams {
            server: server.to_string(),
            app: app.to_string(),
            force,
            delete_data: false,
        })
    }

    /// The dry run of an undeploy: every resource removed, and with `delete_data` exactly
    /// what data is lost. Touches nothing.
    pub fn plan_undeploy(&self, p: &UndeployParams) -> Result<Plan> {
        let (server, app) = (p.server.as_str(), p.app.as_str());
        let record = self.check_undeploy(server, app, p.force)?;
        let mut resources = vec![format!(
            "remove stack {} on {server}{}",
            record.stack_name,
            if p.delete_data {
                ""
            } else {
                " (data kept: volumes, database, vault secrets)"
            }
        )];
        for r in self.own_secrets(app) {
            resources.push(format!("remove docker secret {}", r.docker_secret_name()));
        }
        if p.delete_data {
            resources.push(format!(
                "DELETE the data volumes of stack {} (their data is lost)",
                record.stack_name
            ));
            let (databases, own_instances) = self.app_data(server, app)?;
            for instance in own_instances {
                // Its volumes are the stack's, deleted with them; named so the user sees that
                // the app's Redis data goes too.
                resources.push(format!(
                    "DELETE {app}'s own {} (volumes {} of stack {}; their data is lost)",
                    instance.provider,
                    instance
                        .volumes
                        .iter()
                        .map(|v| format!("{}_{v}", record.stack_name))
                        .collect::<Vec<_>>()
                        .join(", "),
                    record.stack_name
                ));
            }
            for (stack, _, spec) in databases {
                resources.push(format!(
                    "DROP database {} and role {} in stack {stack} (their data is lost)",
                    spec.database, spec.user
                ));
            }
            let keys = self.deletable_vault_secrets(server, app)?;
            if keys.is_empty() && !self.own_secrets(app).is_empty() {
                resources.push(format!(
                    "vault secrets of {app} kept (none stored, or {app} runs on another server)"
                ));
            }
            for key in keys {
                resources.push(format!("DELETE vault secret {key} (its value is lost)"));
            }
        }
        resources.push(format!("state deployment {app} on {server}"));
        Ok(Plan {
            operation: format!("undeploy {app} from {server}"),
            steps: Self::undeploy_steps(p.delete_data),
            resources,
            dns_records: record
                .domains
                .iter()
                .map(|d| format!("remove A {d}"))
                .collect(),
            stacks: Vec::new(),
        })
    }

    /// Records an undeploy job that keeps the app's data volumes.
    pub fn start_undeploy_app(&self, server: &str, app: &str, force: bool) -> Result<JobRecord> {
        self.start_undeploy(UndeployParams {
            server: server.to_string(),
            app: app.to_string(),
            force,
            delete_data: false,
        })
    }

    /// Records an undeploy job (refused while other apps depend on the app, unless forced).
    pub fn start_undeploy(&self, p: UndeployParams) -> Result<JobRecord> {
        self.check_undeploy(&p.server, &p.app, p.force)?;
        self.create_job(
            JobKind::UndeployApp,
            Some(&p.server),
            to_params(&p),
            Self::undeploy_steps(p.delete_data),
        )
    }

    async fn undeploy_step(&self, ctx: &JobContext, job: &JobRecord, step: &str) -> Result<Value> {
        let p: UndeployParams = params(job)?;
        let record = self
            .store
            .load()?
            .deployments
            .get(&p.server)
            .and_then(|m| m.get(&p.app))
            .cloned();
        match step {
            "remove_stack" => {
                let stack = record
                    .as_ref()
                    .map_or(p.app.clone(), |r| r.stack_name.clone());
                // From here until the record step the app is on its way out, not running: a
                // failure in between must not leave the state claiming it runs.
                self.store.update("deployment removing", &mut |s| {
                    if let Some(d) = s
                        .deployments
                        .get_mut(&p.server)
                        .and_then(|m| m.get_mut(&p.app))
                    {
                        d.status = DeploymentStatus::Removing;
                    }
                    Ok(())
                })?;
                let platform = self.platform(&p.server).await?;
                platform.remove_stack(&stack).await.map_err(platform_err)?;
                if p.delete_data {
                    ctx.info(format!("stack {stack} removed"));
                } else {
                    ctx.info(format!(
                        "stack {stack} removed (data kept: volumes, database, vault secrets)"
                    ));
                }
                Ok(Value::Null)
            }
            "docker_secrets" => {
                let names: Vec<String> = self
                    .own_secrets(&p.app)
                    .iter()
                    .map(livchat_apps::SecretRef::docker_secret_name)
                    .collect();
                if names.is_empty() {
                    return Ok(Value::Null);
                }
                let platform = self.platform(&p.server).await?;
                let removed = platform
                    .remove_secrets(&names)
                    .await
                    .map_err(platform_err)?;
                for kept in names.iter().filter(|n| !removed.contains(n)) {
                    ctx.warn(format!(
                        "docker secret {kept} kept: another service uses it"
                    ));
                }
                ctx.info(format!("docker secrets removed: {}", removed.join(", ")));
                Ok(json!({ "docker_secrets_removed": removed }))
            }
            "database" => {
                let platform = self.platform(&p.server).await?;
                let deployed = self.deployed_set(&p.server)?;
                for (stack, service, spec) in self.app_databases(&p.server, &p.app)? {
                    if !deployed.contains(&stack) {
                        ctx.info(format!(
                            "database {} not dropped: {stack} is not deployed on {}",
                            spec.database, p.server
                        ));
                        continue;
                    }
                    let cmd = livchat_apps::drop_database_command(&spec).map_err(apps_err)?;
                    ctx.info(format!(
                        "dropping database {} and role {} in {stack}/{service}",
                        spec.database, spec.user
                    ));
                    let out = platform
                        .exec_in_service(ServiceExec {
                            stack: stack.clone(),
                            service: service.clone(),
                            argv: cmd.argv.clone(),
                            stdin: Some(SecretBox::new(
                                cmd.stdin
                                    .expose_secret()
                                    .as_bytes()
                                    .to_vec()
                                    .into_boxed_slice(),
                            )),
                            user: None,
                            timeout: Duration::from_secs(120),
                            cancel: ctx.cancel_token(),
                        })
                        .await
                        .map_err(platform_err)?;
                    if !out.success() {
                        return Err(CoreError::Step {
                            step: format!("drop database {}", spec.database),
                            message: format!(
                                "exit status {}: {}",
                                out.exit_status,
                                livchat_remote::setup::tail(&out.stderr, 5)
                            ),
                        });
                    }
                }
                Ok(Value::Null)
            }
            "vault_secrets" => {
                // A Docker secret kept because another stack uses it keeps its vault value too:
                // a new value would no longer match what that stack reads.
                let removed: Vec<String> = job
                    .result
                    .as_ref()
                    .and_then(|r| r.get("docker_secrets_removed"))
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                let kept: Vec<String> = self
                    .own_secrets(&p.app)
                    .iter()
                    .filter(|r| !removed.contains(&r.docker_secret_name()))
                    .map(livchat_apps::SecretRef::vault_key)
                    .collect();
                let keys: Vec<String> = self
                    .deletable_vault_secrets(&p.server, &p.app)?
                    .into_iter()
                    .filter(|k| !kept.contains(k))
                    .collect();
                for key in &keys {
                    self.secrets.delete(key)?;
                }
                ctx.info(format!(
                    "vault secrets deleted: {}",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                ));
                Ok(json!({ "vault_secrets_deleted": keys }))
            }
            "volumes" => {
                let stack = record
                    .as_ref()
                    .map_or(p.app.clone(), |r| r.stack_name.clone());
                let platform = self.platform(&p.server).await?;
                let removed = platform
                    .remove_stack_volumes(&stack)
                    .await
                    .map_err(platform_err)?;
                ctx.info(format!(
                    "data volumes of {stack} deleted: {}",
                    if removed.is_empty() {
                        "none".to_string()
                    } else {
                        removed.join(", ")
                    }
                ));
                Ok(json!({ "volumes_deleted": removed }))
            }
            "dns" => {
                let server = self.server(&p.server)?;
                if let (Some(r), Some(cfg)) = (&record, &server.dns)
                    && !r.dns_record_ids.is_empty()
                {
                    let dns = self.dns()?;
                    let zone = dns.find_zone(&cfg.zone_name).await.map_err(dns_err)?;
                    delete_records(ctx, dns.as_ref(), &zone, &r.dns_record_ids).await?;
                }
                Ok(Value::Null)
            }
            "record" => {
                self.store.update("deployment removed", &mut |s| {
                    if let Some(m) = s.deployments.get_mut(&p.server) {
                        m.remove(&p.app);
                        if m.is_empty() {
                            s.deployments.remove(&p.server);
                        }
                    }
                    Ok(())
                })?;
                Ok(json!({ "undeployed": p.app }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }

    // ----- delete server -------------------------------------------------------------------

    /// The server a delete would remove, after its refusals.
    fn check_delete(&self, name: &str, force: bool) -> Result<ServerRecord> {
        let server = self.server(name)?;
        let deployed = self.deployed_set(name)?;
        if !deployed.is_empty() && !force {
            return Err(CoreError::Refused(format!(
                "server {name} still runs {}; undeploy them first or pass --force",
                deployed.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(server)
    }

    /// The dry run of a delete. Touches nothing.
    pub fn plan_delete_server(&self, name: &str, force: bool) -> Result<Plan> {
        let server = self.check_delete(name, force)?;
        let deployments: Vec<DeploymentRecord> = self
            .store
            .load()?
            .deployments
            .get(name)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let mut resources = Vec::new();
        if server.provider == ProviderKind::Hetzner {
            resources.push(format!("delete provider server {name} (and its disks)"));
            resources.push(format!(
                "delete provider firewall and SSH key {}",
                provider_resource_name(name)
            ));
        } else {
            resources.push(format!(
                "forget server {name} (added by hand: not destroyed)"
            ));
        }
        for d in &deployments {
            resources.push(format!("app {} goes with the server", d.app));
        }
        resources.push(format!("state server {name} and its deployments"));
        for key in self.server_vault_secrets(name)? {
            resources.push(format!("DELETE vault secret {key}"));
        }
        let mut dns_records: Vec<String> = deployments
            .iter()
            .flat_map(|d| d.domains.iter().map(|n| format!("remove A {n}")))
            .collect();
        if let Some(cfg) = &server.dns {
            let fqdn = Self::server_fqdn(name, &cfg.zone_name, cfg.subdomain.as_deref());
            dns_records.push(format!("remove A {fqdn} -> {}", server.host));
        }
        Ok(Plan {
            operation: format!("delete server {name}"),
            steps: vec!["dns".into(), "provider".into(), "state".into()],
            resources,
            dns_records,
            stacks: Vec::new(),
        })
    }

    /// The vault secrets that belong to a server (`ssh.<name>.*`, its record's key).
    fn server_vault_secrets(&self, name: &str) -> Result<Vec<String>> {
        let prefix = format!("ssh.{name}.");
        let recorded = self.server(name).ok().map(|s| s.ssh_key_secret);
        let mut keys: Vec<String> = self
            .secrets
            .names()?
            .into_iter()
            .filter(|k| k.starts_with(&prefix) || Some(k) == recorded.as_ref())
            .collect();
        keys.sort();
        Ok(keys)
    }

    pub fn start_delete_server(&self, name: &str, force: bool) -> Result<JobRecord> {
        let server = self.check_delete(name, force)?;
        if server.provider == ProviderKind::Hetzner {
            self.require_secret(crate::orchestrator::HETZNER_TOKEN)?;
        }
        let p = DeleteServerParams {
            name: name.to_string(),
            force,
        };
        self.create_job(
            JobKind::DeleteServer,
            Some(name),
            to_params(&p),
            vec!["dns".into(), "provider".into(), "state".into()],
        )
    }

    async fn delete_step(&self, ctx: &JobContext, job: &JobRecord, step: &str) -> Result<Value> {
        let p: DeleteServerParams = params(job)?;
        let server = self.server(&p.name)?;
        match step {
            "dns" => {
                let Some(cfg) = server.dns.clone() else {
                    return Ok(Value::Null);
                };
                if cfg.mode == DnsMode::Manual {
                    ctx.warn(format!(
                        "manual DNS: delete the records of {} under {} at your DNS host",
                        p.name, cfg.zone_name
                    ));
                    return Ok(Value::Null);
                }
                let dns = self.dns()?;
                let zone = dns.find_zone(&cfg.zone_name).await.map_err(dns_err)?;
                let mut ids: Vec<String> = self
                    .store
                    .load()?
                    .deployments
                    .get(&p.name)
                    .map(|m| m.values().flat_map(|d| d.dns_record_ids.clone()).collect())
                    .unwrap_or_default();
                let fqdn = Self::server_fqdn(&p.name, &cfg.zone_name, cfg.subdomain.as_deref());
                for r in dns.records_named(&zone, &fqdn).await.map_err(dns_err)? {
                    if r.content == server.host {
                        ids.push(r.id);
                    }
                }
                delete_records(ctx, dns.as_ref(), &zone, &ids).await?;
                Ok(Value::Null)
            }
            "provider" => {
                if server.provider != ProviderKind::Hetzner {
                    ctx.info("server was added by hand: it is only forgotten, not destroyed");
                    return Ok(Value::Null);
                }
                let provider = self.provider()?;
                let found = provider.find_server(&p.name).await.map_err(provider_err)?;
                if let Some(s) = found {
                    let progress = {
                        let ctx = ctx.clone();
                        move |a: livchat_providers::ActionProgress| {
                            ctx.info(format!("provider action {}: {}%", a.command, a.progress));
                        }
                    };
                    provider
                        .delete_server(&s.id, &progress)
                        .await
                        .map_err(provider_err)?;
                    ctx.info(format!("server {} deleted at the provider", p.name));
                }
                // The firewall and SSH key `server create` made for this server go with it: left
                // behind they clutter the project, and the key's name would refuse a new server
                // of the same name (another public key).
                let own = provider_resource_name(&p.name);
                provider.delete_firewall(&own).await.map_err(provider_err)?;
                provider.delete_ssh_key(&own).await.map_err(provider_err)?;
                ctx.info(format!(
                    "firewall and SSH key {own} deleted at the provider"
                ));
                Ok(Value::Null)
            }
            "state" => {
                let keys = self.server_vault_secrets(&p.name)?;
                self.forget_connection(&p.name).await;
                self.store.update("server deleted", &mut |s| {
                    s.servers.remove(&p.name);
                    s.deployments.remove(&p.name);
                    Ok(())
                })?;
                // Every secret of this server, whoever made it: a key given to `server add`
                // is as much the server's as one `server create` generated.
                for key in &keys {
                    self.secrets.delete(key)?;
                }
                Ok(json!({ "deleted": p.name, "vault_secrets_deleted": keys }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }
}

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

pub(crate) fn validate_dns(zone: &str, subdomain: Option<&str>) -> Result<()> {
    livchat_apps::DnsConfig::new(zone, subdomain).map_err(apps_err)?;
    Ok(())
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
            JobKind::UndeployApp | JobKind::DeleteServer => Ok(()),
        }
    }
}
