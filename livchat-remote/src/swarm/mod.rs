//! Swarm over SSH: the [`ContainerPlatform`] carried out by the `docker` CLI on the manager,
//! through a [`RemoteExecutor`].
//!
//! - Commands are built as data by the functions in [`commands`] (tested as exact argv) and
//!   quoted in one place by the executor; every name passes [`validate_name`] first.
//! - Stack files are validated against the stack schema ([`crate::compose`]), then uploaded to
//!   `/opt/livchat/stacks/<name>.yml` with mode 0600 and deployed with
//!   `docker stack deploy --prune -c FILE NAME`.
//! - Secrets reach the server on stdin (`docker secret create NAME -`) or as 0600 files, never
//!   in a command line.
//! - Output is read from `--format '{{json .}}'`, one JSON object per line, never scraped from
//!   tables.
//!
//! Single-manager assumption: `exec_in_service` runs `docker exec` on the node this executor
//! is connected to, so it finds only tasks scheduled there (every LivChat server is its own
//! one-node swarm; a multi-node cluster would need the executor of the task's node).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretBox};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::command::{Command, NameKind, validate_name};

pub mod cluster;
pub mod commands;
pub mod logs;
mod parse;
#[cfg(test)]
mod tests;

use crate::executor::{ExecOptions, ExecOutput, RemoteError, RemoteExecutor};
use crate::platform::{
    ContainerPlatform, LogSink, NetworkSpec, PlatformError, SecretDelivery, ServiceExec,
    ServiceMode, ServiceStatus, StackSecret, StackSpec, StackStatus, UpdateState, UpdateStatus,
    WaitOptions, wait_until_healthy,
};
use parse::*;

/// Where stack files live on the server.
pub const DEFAULT_STACKS_DIR: &str = "/opt/livchat/stacks";

/// Settings of [`SwarmOverSsh`].
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Directory of the stack files on the server (created 0700 if absent).
    pub stacks_dir: String,
    /// Timeout of one docker command (not of waiting for health).
    pub command_timeout: Duration,
    /// How long [`ContainerPlatform::remove_stack`] waits for services and networks to go.
    pub remove_timeout: Duration,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            stacks_dir: DEFAULT_STACKS_DIR.into(),
            command_timeout: Duration::from_secs(120),
            remove_timeout: Duration::from_secs(90),
        }
    }
}

/// The Swarm manager behind one SSH connection.
pub struct SwarmOverSsh {
    executor: Arc<dyn RemoteExecutor>,
    config: SwarmConfig,
}

impl std::fmt::Debug for SwarmOverSsh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmOverSsh")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SwarmOverSsh {
    pub fn new(executor: Arc<dyn RemoteExecutor>) -> Self {
        Self::with_config(executor, SwarmConfig::default())
    }

    pub fn with_config(executor: Arc<dyn RemoteExecutor>, config: SwarmConfig) -> Self {
        Self { executor, config }
    }

    /// The path of a stack's file on the server.
    pub fn stack_file(&self, stack: &str) -> String {
        format!(
            "{}/{stack}.yml",
            self.config.stacks_dir.trim_end_matches('/')
        )
    }

    async fn run(
        &self,
        command: &Command,
        stdin: Option<SecretBox<[u8]>>,
        timeout: Option<Duration>,
        cancel: Option<CancellationToken>,
    ) -> Result<ExecOutput, PlatformError> {
        tracing::debug!(command = %command, "docker");
        let options = ExecOptions {
            stdin,
            timeout: timeout.unwrap_or(self.config.command_timeout),
            cancel: cancel.unwrap_or_default(),
            on_line: None,
        };
        Ok(self.executor.exec(command, options).await?)
    }

    /// Runs a command and fails with its stderr unless it exits 0.
    async fn run_ok(&self, command: &Command) -> Result<String, PlatformError> {
        let out = self.run(command, None, None, None).await?;
        if !out.success() {
            return Err(command_failed(command, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn stack_tasks(&self, stack: &str) -> Result<Vec<TaskLine>, PlatformError> {
        let cmd = commands::stack_ps(stack);
        let out = self.run(&cmd, None, None, None).await?;
        if !out.success() {
            if is_nothing_found(&out) {
                return Ok(Vec::new());
            }
            return Err(command_failed(&cmd, &out));
        }
        parse_json_lines(&out.stdout, "docker stack ps")
    }

    async fn status_of(&self, stack: &str) -> Result<StackStatus, PlatformError> {
        let services_cmd = commands::stack_services(stack);
        let (services, tasks) = futures::join!(
            self.run(&services_cmd, None, None, None),
            self.stack_tasks(stack)
        );
        let services = services?;
        if !services.success() {
            if is_nothing_found(&services) {
                return Err(PlatformError::NotFound {
                    what: format!("stack {stack}"),
                });
            }
            return Err(command_failed(&services_cmd, &services));
        }
        let services: Vec<ServiceLine> =
            parse_json_lines(&services.stdout, "docker stack services")?;
        if services.is_empty() {
            return Err(PlatformError::NotFound {
                what: format!("stack {stack}"),
            });
        }
        let tasks = tasks?;
        // The update state and current spec of each service, and the spec each task was
        // created from: a task counts only if it runs the service's current spec.
        let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
        let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
        let (inspected, task_specs) =
            futures::join!(self.inspect_services(&names), self.inspect_tasks(&ids));
        build_status(stack, &services, &tasks, &inspected?, &task_specs?)
    }

    /// `docker service inspect` of the named services; one removed meanwhile is left out.
    async fn inspect_services(
        &self,
        names: &[String],
    ) -> Result<Vec<ServiceInspect>, PlatformError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = commands::service_inspect(names);
        let out = self.run(&cmd, None, None, None).await?;
        if !out.success() && !is_not_found(&out) {
            return Err(command_failed(&cmd, &out));
        }
        parse_json_lines(&out.stdout, "docker service inspect")
    }

    /// `docker inspect --type task` of the given tasks; one pruned meanwhile is left out.
    async fn inspect_tasks(&self, ids: &[String]) -> Result<Vec<TaskInspect>, PlatformError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = commands::task_inspect(ids);
        let out = self.run(&cmd, None, None, None).await?;
        if !out.success() && !is_not_found(&out) {
            return Err(command_failed(&cmd, &out));
        }
        parse_json_lines(&out.stdout, "docker inspect --type task")
    }

    async fn running_container(&self, stack: &str, service: &str) -> Result<String, PlatformError> {
        let full = format!("{stack}_{service}");
        let out = self.run_ok(&commands::running_containers(&full)).await?;
        let containers: Vec<ContainerLine> = parse_json_lines(out.as_bytes(), "docker ps")?;
        containers
            .into_iter()
            .map(|c| c.id)
            .next()
            .ok_or_else(|| PlatformError::NotFound {
                what: format!("running task of service {service} in stack {stack} on this node"),
            })
    }

    async fn write_file_secret(
        &self,
        path: &str,
        secret: &StackSecret,
    ) -> Result<(), PlatformError> {
        let dir = parent_dir(path);
        self.run_ok(&commands::make_private_dir(dir)).await?;
        let bytes: Box<[u8]> = secret.value.expose_secret().as_bytes().into();
        self.executor
            .upload(path, SecretBox::new(bytes), 0o600, CancellationToken::new())
            .await?;
        Ok(())
    }
}

impl SwarmOverSsh {
    /// A swarm network the manager has not allocated yet reports an empty driver for a moment
    /// after `docker network create` (seen in CI right after a create): ask again, bounded,
    /// before judging it.
    async fn check_existing_network(
        &self,
        name: &str,
        mut out: ExecOutput,
    ) -> Result<(), PlatformError> {
        const ALLOCATION_CHECKS: u32 = 20;
        for _ in 0..ALLOCATION_CHECKS {
            if !is_being_allocated(&out.stdout) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let inspect = commands::network_inspect(name);
            out = self.run(&inspect, None, None, None).await?;
            if !out.success() {
                return Err(command_failed(&inspect, &out));
            }
        }
        check_overlay(name, &out.stdout)
    }
}

#[async_trait]
impl ContainerPlatform for SwarmOverSsh {
    async fn ensure_network(&self, network: &NetworkSpec) -> Result<(), PlatformError> {
        let name = validate_name(NameKind::Network, &network.name)?;
        let name = name.as_str();
        let inspect = commands::network_inspect(name);
        let out = self.run(&inspect, None, None, None).await?;
        if out.success() {
            return self.check_existing_network(name, out).await;
        }
        if !is_not_found(&out) {
            return Err(command_failed(&inspect, &out));
        }
        let create = commands::network_create(name, network.attachable);
        let created = self.run(&create, None, None, None).await?;
        if created.success() {
            return Ok(());
        }
        // Another deploy may have created it between our two commands.
        let again = self.run(&inspect, None, None, None).await?;
        if again.success() {
            return self.check_existing_network(name, again).await;
        }
        Err(command_failed(&create, &created))
    }

    async fn ensure_secrets(&self, secrets: &[StackSecret]) -> Result<(), PlatformError> {
        // Validate everything before changing anything.
        for secret in secrets {
            validate_secret(secret)?;
        }
        let needs_docker = secrets
            .iter()
            .any(|s| s.delivery == SecretDelivery::DockerSecret);
        let existing: Vec<String> = if needs_docker {
            let out = self.run_ok(&commands::secret_ls()).await?;
            parse_json_lines::<NamedLine>(out.as_bytes(), "docker secret ls")?
                .into_iter()
                .map(|s| s.name)
                .collect()
        } else {
            Vec::new()
        };
        for secret in secrets {
            match &secret.delivery {
                SecretDelivery::DockerSecret => {
                    if existing.iter().any(|n| n == &secret.name) {
                        continue;
                    }
                    let cmd = commands::secret_create(&secret.name);
                    let value: Box<[u8]> = secret.value.expose_secret().as_bytes().into();
                    let out = self
                        .run(&cmd, Some(SecretBox::new(value)), None, None)
                        .await?;
                    if !out.success() && !is_already_exists(&out) {
                        return Err(command_failed(&cmd, &out));
                    }
                }
                SecretDelivery::File { path } => self.write_file_secret(path, secret).await?,
            }
        }
        Ok(())
    }

    async fn deploy_stack(&self, stack: &StackSpec) -> Result<(), PlatformError> {
        let name = validate_name(NameKind::Stack, &stack.name)?;
        crate::compose::validate_stack(&stack.compose_yaml)?;
        for secret in &stack.secrets {
            validate_secret(secret)?;
        }
        self.ensure_secrets(&stack.secrets).await?;
        let file = self.stack_file(name.as_str());
        self.run_ok(&commands::make_private_dir(&self.config.stacks_dir))
            .await?;
        let content: Box<[u8]> = stack.compose_yaml.as_bytes().into();
        self.executor
            .upload(
                &file,
                SecretBox::new(content),
                0o600,
                CancellationToken::new(),
            )
            .await?;
        self.run_ok(&commands::stack_deploy(&file, name.as_str()))
            .await?;
        Ok(())
    }

    async fn remove_stack(&self, name: &str) -> Result<(), PlatformError> {
        let name = validate_name(NameKind::Stack, name)?;
        let name = name.as_str();
        let rm = commands::stack_rm(name);
        // `docker stack rm` returns before the swarm has removed the services and networks
        // (a deploy of the same name right after would collide with them), and it fails when
        // a network is still in use by a task on its way out: repeat it until all is gone.
        let started = tokio::time::Instant::now();
        let mut last_failure = None;
        for round in 0u32.. {
            if round % 4 == 0 {
                let out = self.run(&rm, None, None, None).await?;
                last_failure =
                    (!out.success() && !is_nothing_found(&out)).then(|| command_failed(&rm, &out));
            }
            let services = self.run_ok(&commands::labelled("service", name)).await?;
            let networks = self.run_ok(&commands::labelled("network", name)).await?;
            if services.trim().is_empty() && networks.trim().is_empty() {
                break;
            }
            if started.elapsed() > self.config.remove_timeout {
                return Err(last_failure.unwrap_or_else(|| removal_timeout(name, started)));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.run_ok(&commands::remove_file(&self.stack_file(name)))
            .await?;
        Ok(())
    }

    async fn remove_stack_volumes(&self, name: &str) -> Result<Vec<String>, PlatformError> {
        let name = validate_name(NameKind::Stack, name)?;
        let name = name.as_str();
        // A volume in use by a container (a task still shutting down) cannot be removed.
        let started = tokio::time::Instant::now();
        loop {
            let left = self.run_ok(&commands::labelled_containers(name)).await?;
            if left.trim().is_empty() {
                break;
            }
            if started.elapsed() > self.config.remove_timeout {
                return Err(removal_timeout(name, started));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let volumes = self.run_ok(&commands::labelled("volume", name)).await?;
        let mut removed = Vec::new();
        for volume in volumes.lines().map(str::trim).filter(|v| !v.is_empty()) {
            let rm = commands::volume_rm(volume);
            let out = self.run(&rm, None, None, None).await?;
            // Gone meanwhile counts as removed.
            if !out.success() && !is_not_found(&out) {
                return Err(command_failed(&rm, &out));
            }
            removed.push(volume.to_string());
        }
        Ok(removed)
    }

    async fn remove_secrets(&self, names: &[String]) -> Result<Vec<String>, PlatformError> {
        for name in names {
            validate_secret(&StackSecret {
                name: name.clone(),
                value: secrecy::SecretString::from(String::new()),
                delivery: SecretDelivery::DockerSecret,
            })?;
        }
        let mut removed = Vec::new();
        for name in names {
            let rm = commands::secret_rm(name);
            let out = self.run(&rm, None, None, None).await?;
            if out.success() || is_not_found(&out) {
                removed.push(name.clone());
            } else if String::from_utf8_lossy(&out.stderr).contains("in use") {
                tracing::info!(secret = %name, "kept: still in use by a service");
            } else {
                return Err(command_failed(&rm, &out));
            }
        }
        Ok(removed)
    }

    async fn stack_status(&self, name: &str) -> Result<StackStatus, PlatformError> {
        let name = validate_name(NameKind::Stack, name)?;
        self.status_of(name.as_str()).await
    }

    async fn wait_healthy(
        &self,
        name: &str,
        options: WaitOptions,
    ) -> Result<StackStatus, PlatformError> {
        let name = validate_name(NameKind::Stack, name)?;
        let name = name.as_str();
        wait_until_healthy(name, &options, || self.status_of(name)).await
    }

    async fn rollback_stack(
        &self,
        name: &str,
        options: WaitOptions,
    ) -> Result<StackStatus, PlatformError> {
        let name = validate_name(NameKind::Stack, name)?;
        let name = name.as_str();
        let out = self.run_ok(&commands::stack_services(name)).await?;
        let services: Vec<ServiceLine> = parse_json_lines(out.as_bytes(), "docker stack services")?;
        let names: Vec<String> = services.into_iter().map(|s| s.name).collect();
        for service in self.inspect_services(&names).await? {
            let state = service.update_status.as_ref().map(|u| u.state());
            // Without a previous spec there is nothing to go back to (never updated). A
            // rollback keeps one (the spec it left), so a service rolled back, or being rolled
            // back, is left alone: rolling back again would return to the failed version.
            if service.previous_spec.is_none()
                || matches!(
                    state,
                    Some(UpdateState::RollbackStarted | UpdateState::RollbackCompleted)
                )
            {
                continue;
            }
            tracing::info!(service = %service.spec.name, "rolling back");
            self.run_ok(&commands::service_rollback(&service.spec.name))
                .await?;
        }
        // Here a completed rollback is the goal, not a failure.
        wait_until_healthy(name, &options, || async {
            let mut status = self.status_of(name).await?;
            for service in &mut status.services {
                if let Some(update) = &mut service.update
                    && update.state == UpdateState::RollbackCompleted
                {
                    update.state = UpdateState::Completed;
                }
            }
            Ok(status)
        })
        .await
    }

    async fn exec_in_service(&self, exec: ServiceExec) -> Result<ExecOutput, PlatformError> {
        let stack = validate_name(NameKind::Stack, &exec.stack)?;
        let service = validate_name(NameKind::Service, &exec.service)?;
        let user = exec
            .user
            .as_deref()
            .map(|u| validate_name(NameKind::User, u))
            .transpose()?;
        if exec.argv.first().is_none_or(|p| p.is_empty()) {
            return Err(PlatformError::Invalid {
                field: "argv".into(),
                reason: "a program to run is required".into(),
            });
        }
        let container = self
            .running_container(stack.as_str(), service.as_str())
            .await?;
        // Killing the `docker exec` client does not stop what it started in the container
        // (moby#9098), so the command carries a marker in its environment, inherited by its
        // children, by which a cancel or timeout finds and kills it from the host.
        let marker = format!("{:016x}", rand::random::<u64>());
        let cmd = commands::exec(
            &container,
            user.as_ref().map(|u| u.as_str()),
            exec.stdin.is_some(),
            &marker,
            &exec.argv,
        );
        let result = self
            .run(&cmd, exec.stdin, Some(exec.timeout), Some(exec.cancel))
            .await;
        if let Err(PlatformError::Remote(RemoteError::Cancelled | RemoteError::Timeout(_))) =
            &result
        {
            let kill = commands::kill_marked(&marker);
            match self
                .run(&kill, None, Some(Duration::from_secs(30)), None)
                .await
            {
                Ok(out) if out.success() => {}
                Ok(out) => tracing::warn!(
                    "could not stop an aborted exec in {container}: {}",
                    command_failed(&kill, &out)
                ),
                Err(e) => tracing::warn!("could not stop an aborted exec in {container}: {e}"),
            }
        }
        result
    }

    async fn service_logs(
        &self,
        stack: &str,
        service: &str,
        tail: usize,
    ) -> Result<Vec<String>, PlatformError> {
        let stack = validate_name(NameKind::Stack, stack)?;
        let service = validate_name(NameKind::Service, service)?;
        let full = format!("{stack}_{service}");
        let cmd = commands::service_logs(&full, tail);
        let out = self.run(&cmd, None, None, None).await?;
        if !out.success() {
            if is_not_found(&out) {
                return Err(PlatformError::NotFound {
                    what: format!("service {service} in stack {stack}"),
                });
            }
            return Err(command_failed(&cmd, &out));
        }
        Ok(merge_logs(&out.stdout, &out.stderr, tail))
    }

    async fn follow_service_logs(
        &self,
        stack: &str,
        service: &str,
        tail: usize,
        on_line: LogSink,
        cancel: CancellationToken,
    ) -> Result<(), PlatformError> {
        logs::follow(
            self.executor.as_ref(),
            stack,
            service,
            tail,
            on_line,
            cancel,
        )
        .await
    }
}

/// Docker secret names land in a command line: Docker's own rule, minus anything a shell or
/// option parser could misread.
fn validate_secret(secret: &StackSecret) -> Result<(), PlatformError> {
    let name = &secret.name;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        return Err(PlatformError::Invalid {
            field: "secret name".into(),
            reason: format!(
                "{name:?} must be 1-64 characters of letters, digits, '_', '-', '.', \
                 starting with a letter or digit"
            ),
        });
    }
    if let SecretDelivery::File { path } = &secret.delivery {
        let ok = path.starts_with('/')
            && path.len() > 1
            && !path.ends_with('/')
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
            && path.split('/').all(|part| part != ".." && part != ".")
            && !path.contains("//");
        if !ok {
            return Err(PlatformError::Invalid {
                field: "secret file path".into(),
                reason: format!(
                    "{path:?} must be an absolute path of letters, digits, '_', '-', '.', '/' \
                     without '.' or '..' components"
                ),
            });
        }
    }
    Ok(())
}

fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn stderr_text(out: &ExecOutput) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let text = text.trim();
    // Enough to read the reason; docker's stderr can repeat a long warning.
    const LIMIT: usize = 2000;
    if text.len() > LIMIT {
        let mut cut = LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &text[..cut])
    } else {
        text.to_string()
    }
}

pub(crate) fn command_failed(command: &Command, out: &ExecOutput) -> PlatformError {
    PlatformError::CommandFailed {
        command: format!("{} {}", command.program, command.args.join(" ")),
        exit_status: out.exit_status,
        stderr: stderr_text(out),
    }
}

/// What is still there of a stack being removed after `remove_timeout` (no services left to
/// report: the timeout is about the removal itself).
fn removal_timeout(stack: &str, started: tokio::time::Instant) -> PlatformError {
    PlatformError::Timeout {
        stack: stack.to_string(),
        waited: started.elapsed(),
        status: StackStatus {
            name: stack.to_string(),
            services: Vec::new(),
        },
    }
}

/// A stack with no task yet. Docker 20.10 says "Nothing found in stack", newer CLIs "nothing
/// found in stack": right after a deploy either may answer before the tasks exist.
pub(crate) fn is_nothing_found(out: &ExecOutput) -> bool {
    String::from_utf8_lossy(&out.stderr)
        .to_ascii_lowercase()
        .contains("nothing found in stack")
}

pub(crate) fn is_not_found(out: &ExecOutput) -> bool {
    let err = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
    err.contains("not found") || err.contains("no such")
}

fn is_already_exists(out: &ExecOutput) -> bool {
    String::from_utf8_lossy(&out.stderr).contains("already exists")
}

fn is_being_allocated(inspect: &[u8]) -> bool {
    parse_json_lines::<NetworkLine>(inspect, "docker network inspect")
        .ok()
        .and_then(|lines| lines.into_iter().next())
        .is_some_and(|n| n.driver.is_empty() && n.scope == "swarm")
}

fn check_overlay(name: &str, inspect: &[u8]) -> Result<(), PlatformError> {
    let networks: Vec<NetworkLine> = parse_json_lines(inspect, "docker network inspect")?;
    match networks.first() {
        Some(n) if n.driver == "overlay" && n.scope == "swarm" => Ok(()),
        Some(n) => Err(PlatformError::Invalid {
            field: "network".into(),
            reason: format!(
                "{name} exists with driver {} and scope {}; stacks need an overlay network \
                 of scope swarm",
                n.driver, n.scope
            ),
        }),
        None => Err(PlatformError::Parse {
            what: "docker network inspect".into(),
            reason: "no network in the output".into(),
        }),
    }
}
