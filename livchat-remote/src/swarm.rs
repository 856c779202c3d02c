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
use crate::executor::{ExecOptions, ExecOutput, RemoteError, RemoteExecutor};
use crate::logs::LogSink;
use crate::platform::{
    ContainerPlatform, NetworkSpec, PlatformError, SecretDelivery, ServiceExec, ServiceMode,
    ServiceStatus, StackSecret, StackSpec, StackStatus, UpdateState, UpdateStatus, WaitOptions,
    wait_until_healthy,
};

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

    async fn list_stacks(&self) -> Result<Vec<StackStatus>, PlatformError> {
        let out = self.run_ok(&commands::stack_ls()).await?;
        let stacks: Vec<NamedLine> = parse_json_lines(out.as_bytes(), "docker stack ls")?;
        let mut all = Vec::with_capacity(stacks.len());
        for stack in stacks {
            match self.status_of(&stack.name).await {
                Ok(status) => all.push(status),
                // Removed between the two commands.
                Err(PlatformError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(all)
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
        crate::logs::follow(
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

/// The docker commands, as data. Nothing here runs anything; names are validated by callers.
pub mod commands {
    use crate::command::Command;

    fn docker() -> Command {
        Command::new("docker")
    }

    pub fn network_inspect(name: &str) -> Command {
        docker().args(["network", "inspect", "--format", "{{json .}}", name])
    }

    pub fn network_create(name: &str, attachable: bool) -> Command {
        let cmd = docker().args(["network", "create", "--driver", "overlay"]);
        let cmd = if attachable {
            cmd.arg("--attachable")
        } else {
            cmd
        };
        cmd.arg(name)
    }

    pub fn secret_ls() -> Command {
        docker().args(["secret", "ls", "--format", "{{json .}}"])
    }

    /// The value comes on stdin (`-`), never as an argument.
    pub fn secret_create(name: &str) -> Command {
        docker().args(["secret", "create", name, "-"])
    }

    pub fn secret_rm(name: &str) -> Command {
        docker().args(["secret", "rm", "--", name])
    }

    pub fn make_private_dir(path: &str) -> Command {
        Command::new("mkdir").args(["-p", "-m", "0700", "--", path])
    }

    pub fn remove_file(path: &str) -> Command {
        Command::new("rm").args(["-f", "--", path])
    }

    pub fn stack_deploy(file: &str, stack: &str) -> Command {
        docker().args(["stack", "deploy", "--prune", "-c", file, stack])
    }

    pub fn stack_rm(stack: &str) -> Command {
        docker().args(["stack", "rm", stack])
    }

    pub fn stack_ls() -> Command {
        docker().args(["stack", "ls", "--format", "{{json .}}"])
    }

    pub fn stack_services(stack: &str) -> Command {
        docker().args(["stack", "services", "--format", "{{json .}}", stack])
    }

    pub fn stack_ps(stack: &str) -> Command {
        docker().args(["stack", "ps", "--no-trunc", "--format", "{{json .}}", stack])
    }

    /// One JSON object per service (spec, previous spec, update status).
    pub fn service_inspect(services: &[String]) -> Command {
        docker()
            .args(["service", "inspect", "--format", "{{json .}}", "--"])
            .args(services.iter().cloned())
    }

    /// One JSON object per task (the spec it was created from).
    pub fn task_inspect(tasks: &[String]) -> Command {
        docker()
            .args(["inspect", "--type", "task", "--format", "{{json .}}", "--"])
            .args(tasks.iter().cloned())
    }

    /// Back to the service's previous spec; `--detach` because the caller waits itself.
    pub fn service_rollback(service: &str) -> Command {
        docker().args(["service", "rollback", "--detach", "--", service])
    }

    /// IDs of a stack's containers, running or not (its tasks').
    pub fn labelled_containers(stack: &str) -> Command {
        docker().args([
            "ps".to_string(),
            "--all".into(),
            "--quiet".into(),
            "--filter".into(),
            format!("label=com.docker.stack.namespace={stack}"),
        ])
    }

    /// `docker volume rm -- NAME`.
    pub fn volume_rm(volume: &str) -> Command {
        docker().args(["volume", "rm", "--", volume])
    }

    /// IDs (names, for volumes) of a stack's services, networks or volumes (`kind` is
    /// `service`, `network` or `volume`).
    pub fn labelled(kind: &str, stack: &str) -> Command {
        docker().args([
            kind.to_string(),
            "ls".into(),
            "--quiet".into(),
            "--filter".into(),
            format!("label=com.docker.stack.namespace={stack}"),
        ])
    }

    pub fn running_containers(full_service: &str) -> Command {
        docker().args([
            "ps".to_string(),
            "--filter".into(),
            format!("label=com.docker.swarm.service.name={full_service}"),
            "--filter".into(),
            "status=running".into(),
            "--format".into(),
            "{{json .}}".into(),
        ])
    }

    /// The environment variable that marks a command started by `docker exec` (see
    /// [`kill_marked`]).
    pub const EXEC_MARKER: &str = "LIVCHAT_EXEC";

    pub fn exec(
        container: &str,
        user: Option<&str>,
        stdin: bool,
        marker: &str,
        argv: &[String],
    ) -> Command {
        let mut cmd = docker().arg("exec");
        if stdin {
            cmd = cmd.arg("-i");
        }
        if let Some(user) = user {
            cmd = cmd.args(["--user", user]);
        }
        cmd.args(["--env".to_string(), format!("{EXEC_MARKER}={marker}")])
            .arg(container)
            .args(argv.iter().cloned())
    }

    /// Kills, from the host, every process whose environment holds `marker` (a command
    /// [`exec`] started, and its children): the host sees the containers' processes.
    pub fn kill_marked(marker: &str) -> Command {
        const SCRIPT: &str = r#"for f in /proc/[0-9]*/environ; do
  if grep -qzx -- "$1" "$f" 2>/dev/null; then
    p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null
  fi
done
exit 0"#;
        Command::new("sh")
            .args(["-c", SCRIPT, "livchat-kill"])
            .arg(format!("{EXEC_MARKER}={marker}"))
    }

    pub fn service_logs(full_service: &str, tail: usize) -> Command {
        docker().args([
            "service".to_string(),
            "logs".into(),
            "--raw".into(),
            "--timestamps".into(),
            "--tail".into(),
            tail.to_string(),
            full_service.into(),
        ])
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

fn is_nothing_found(out: &ExecOutput) -> bool {
    String::from_utf8_lossy(&out.stderr).contains("Nothing found in stack")
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkLine {
    driver: String,
    scope: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NamedLine {
    name: String,
}

#[derive(Debug, Deserialize)]
struct ContainerLine {
    #[serde(rename = "ID")]
    id: String,
}

/// A line of `docker stack services --format '{{json .}}'`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceLine {
    name: String,
    image: String,
    mode: String,
    replicas: String,
}

/// A line of `docker stack ps --no-trunc --format '{{json .}}'`; newest task first per slot.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskLine {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    #[serde(default)]
    desired_state: String,
    current_state: String,
    #[serde(default)]
    error: String,
}

/// What `docker service inspect` says of a service that health needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceInspect {
    spec: ServiceSpecJson,
    #[serde(default)]
    previous_spec: Option<serde_json::Value>,
    #[serde(default)]
    update_status: Option<UpdateStatusJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceSpecJson {
    name: String,
    #[serde(default)]
    task_template: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStatusJson {
    #[serde(default)]
    state: String,
    #[serde(default)]
    message: String,
}

impl UpdateStatusJson {
    fn state(&self) -> UpdateState {
        UpdateState::parse(&self.state)
    }
}

/// What `docker inspect --type task` says of a task that health needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskInspect {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    spec: serde_json::Value,
}

/// Whether a task was created from this task template. The task's spec is a copy of the
/// template it was created from, but `docker service inspect` shows the template with the
/// engine's defaults filled in (`StopGracePeriod`, `RestartPolicy.Delay`, `Runtime`,
/// `DNSConfig: {}`...) where the task keeps what was given: so every non-empty value of the
/// task must be in the template, and what only the template has is taken as a default.
/// Placement is left out (the swarm keeps a task whose node still satisfies it). The one
/// case this cannot tell apart, a new version that only adds a field, is covered by the
/// update state: a service does not converge while its update is under way.
fn same_spec(task: &serde_json::Value, template: &serde_json::Value) -> bool {
    use serde_json::Value;
    fn normal(v: &Value) -> Option<Value> {
        match v {
            Value::Null | Value::Bool(false) => None,
            Value::String(s) if s.is_empty() => None,
            Value::Number(n) if n.as_f64() == Some(0.0) => None,
            Value::Array(items) => {
                let items: Vec<Value> = items.iter().filter_map(normal).collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            Value::Object(map) => {
                let map: serde_json::Map<String, Value> = map
                    .iter()
                    .filter(|(k, _)| k.as_str() != "Placement")
                    .filter_map(|(k, v)| normal(v).map(|v| (k.clone(), v)))
                    .collect();
                (!map.is_empty()).then_some(Value::Object(map))
            }
            other => Some(other.clone()),
        }
    }
    fn within(task: &Value, template: &Value) -> bool {
        match (task, template) {
            (Value::Object(t), Value::Object(s)) => t
                .iter()
                .all(|(k, v)| s.get(k).is_some_and(|w| within(v, w))),
            (t, s) => t == s,
        }
    }
    match (normal(task), normal(template)) {
        (Some(t), Some(s)) => within(&t, &s),
        (t, s) => t == s,
    }
}

fn parse_json_lines<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<Vec<T>, PlatformError> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| PlatformError::Parse {
                what: what.to_string(),
                reason: format!("{e} in {l:?}"),
            })
        })
        .collect()
}

/// `"1/2"`, `"0/1 (max 1 per node)"`, `"1/1 (1/1 completed)"` -> (running, desired).
fn parse_replicas(text: &str) -> Option<(u64, u64)> {
    let head = text.split_whitespace().next()?;
    let (running, desired) = head.split_once('/')?;
    Some((running.parse().ok()?, desired.parse().ok()?))
}

/// The task's service: `app_db.1` (replicated) or `app_db.<node id>` (global).
fn task_service(task_name: &str) -> &str {
    let name = task_name.trim_start_matches(['\\', '_', ' ']);
    name.rsplit_once('.').map_or(name, |(service, _)| service)
}

fn is_failure(state: &str) -> bool {
    state.starts_with("Failed") || state.starts_with("Rejected")
}

/// States a replacement task passes through before it runs; they do not end a failure streak.
fn is_in_progress(state: &str) -> bool {
    [
        "New",
        "Pending",
        "Assigned",
        "Accepted",
        "Preparing",
        "Ready",
        "Starting",
    ]
    .iter()
    .any(|s| state.starts_with(s))
}

fn build_status(
    stack: &str,
    services: &[ServiceLine],
    tasks: &[TaskLine],
    inspected: &[ServiceInspect],
    task_specs: &[TaskInspect],
) -> Result<StackStatus, PlatformError> {
    let specs: BTreeMap<&str, &serde_json::Value> = task_specs
        .iter()
        .map(|t| (t.id.as_str(), &t.spec))
        .collect();
    // Per service and slot, tasks newest first (docker's own order).
    let mut slots: BTreeMap<(&str, &str), Vec<&TaskLine>> = BTreeMap::new();
    for task in tasks {
        let name = task.name.trim_start_matches(['\\', '_', ' ']);
        let service = task_service(name);
        let slot = name.rsplit_once('.').map_or("", |(_, slot)| slot);
        slots.entry((service, slot)).or_default().push(task);
    }
    let prefix = format!("{stack}_");
    let mut out = Vec::with_capacity(services.len());
    for line in services {
        let (_, desired) = parse_replicas(&line.replicas).ok_or_else(|| PlatformError::Parse {
            what: "docker stack services".into(),
            reason: format!("replicas {:?} of {}", line.replicas, line.name),
        })?;
        let inspect = inspected.iter().find(|i| i.spec.name == line.name);
        // A task of an older spec (before an update, or the version an update replaced) says
        // nothing about the current one. A task the inspection missed counts as current.
        let is_current = |task: &TaskLine| match (specs.get(task.id.as_str()), inspect) {
            (Some(spec), Some(service)) => same_spec(spec, &service.spec.task_template),
            _ => true,
        };
        let mut running = 0;
        let mut failed_tasks = 0;
        let mut last_error = None;
        for (_, history) in slots.iter().filter(|((s, _), _)| *s == line.name) {
            let current: Vec<&TaskLine> =
                history.iter().copied().filter(|t| is_current(t)).collect();
            running += current
                .iter()
                .filter(|t| t.desired_state == "Running" && t.current_state.starts_with("Running"))
                .count() as u64;
            // Failures since the slot last ran: after a recovery, older failures stay in the
            // history but say nothing about the current state.
            let streak = current
                .iter()
                .filter(|t| !is_in_progress(&t.current_state))
                .take_while(|t| is_failure(&t.current_state))
                .count();
            failed_tasks = failed_tasks.max(streak);
            if last_error.is_none() {
                last_error = current
                    .iter()
                    .map(|t| t.error.trim().trim_matches('"').trim())
                    .find(|e| !e.is_empty())
                    .map(str::to_string);
            }
        }
        out.push(ServiceStatus {
            name: line
                .name
                .strip_prefix(&prefix)
                .unwrap_or(&line.name)
                .to_string(),
            full_name: line.name.clone(),
            image: line.image.clone(),
            mode: if line.mode.starts_with("global") {
                ServiceMode::Global
            } else {
                ServiceMode::Replicated
            },
            desired_replicas: desired,
            running_replicas: running,
            failed_tasks,
            last_error,
            update: inspect
                .and_then(|i| i.update_status.as_ref())
                .filter(|u| !u.state.is_empty())
                .map(|u| UpdateStatus {
                    state: u.state(),
                    message: u.message.clone(),
                }),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(StackStatus {
        name: stack.to_string(),
        services: out,
    })
}

/// Merges `docker service logs --raw --timestamps` stdout and stderr in time order and keeps
/// the last `tail` lines, without their timestamps.
fn merge_logs(stdout: &[u8], stderr: &[u8], tail: usize) -> Vec<String> {
    let mut lines: Vec<(String, String)> = String::from_utf8_lossy(stdout)
        .lines()
        .chain(String::from_utf8_lossy(stderr).lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(' ') {
            Some((ts, rest)) if ts.len() >= 20 && ts.as_bytes()[4] == b'-' => {
                (ts.to_string(), rest.to_string())
            }
            _ => (String::new(), l.to_string()),
        })
        .collect();
    // RFC 3339 timestamps of one clock sort as text.
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let skip = lines.len().saturating_sub(tail);
    lines.into_iter().skip(skip).map(|(_, l)| l).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(cmd: &Command) -> String {
        std::iter::once(cmd.program.as_str())
            .chain(cmd.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn commands_are_exact_argv() {
        let cases = [
            (
                commands::stack_deploy("/opt/livchat/stacks/app.yml", "app"),
                "docker stack deploy --prune -c /opt/livchat/stacks/app.yml app",
            ),
            (
                commands::secret_create("app_db_password"),
                "docker secret create app_db_password -",
            ),
            (
                commands::network_create("livchat", true),
                "docker network create --driver overlay --attachable livchat",
            ),
            (
                commands::stack_ps("app"),
                "docker stack ps --no-trunc --format {{json .}} app",
            ),
            (
                commands::labelled("network", "app"),
                "docker network ls --quiet --filter label=com.docker.stack.namespace=app",
            ),
            (
                commands::exec(
                    "abc123",
                    Some("postgres"),
                    true,
                    "00ff",
                    &["psql".into(), "-v".into(), "ON_ERROR_STOP=1".into()],
                ),
                "docker exec -i --user postgres --env LIVCHAT_EXEC=00ff abc123 psql -v ON_ERROR_STOP=1",
            ),
            (
                commands::service_logs("app_db", 50),
                "docker service logs --raw --timestamps --tail 50 app_db",
            ),
            (
                commands::make_private_dir("/opt/livchat/stacks"),
                "mkdir -p -m 0700 -- /opt/livchat/stacks",
            ),
        ];
        for (cmd, expected) in cases {
            assert_eq!(argv(&cmd), expected);
        }
    }

    fn svc(name: &str, replicas: &str) -> ServiceLine {
        ServiceLine {
            name: name.into(),
            image: "img".into(),
            mode: "replicated".into(),
            replicas: replicas.into(),
        }
    }

    fn task(name: &str, state: &str, error: &str) -> TaskLine {
        TaskLine {
            id: format!("{name}-{state}"),
            name: name.into(),
            desired_state: if state.starts_with("Running") {
                "Running".into()
            } else {
                "Shutdown".into()
            },
            current_state: state.into(),
            error: error.into(),
        }
    }

    fn template(image: &str) -> serde_json::Value {
        serde_json::json!({"ContainerSpec": {"Image": image}, "ForceUpdate": 0})
    }

    fn inspected(name: &str, image: &str, update: Option<(&str, &str)>) -> ServiceInspect {
        ServiceInspect {
            spec: ServiceSpecJson {
                name: name.into(),
                task_template: template(image),
            },
            previous_spec: None,
            update_status: update.map(|(state, message)| UpdateStatusJson {
                state: state.into(),
                message: message.into(),
            }),
        }
    }

    fn spec_of(task: &TaskLine, image: &str) -> TaskInspect {
        let mut spec = template(image);
        spec["Placement"] = serde_json::json!({"Constraints": ["node.role==manager"]});
        TaskInspect {
            id: task.id.clone(),
            spec,
        }
    }

    #[test]
    fn a_task_matches_its_template_as_the_engine_renders_them() {
        // Docker 20.10's `service inspect` and `inspect --type task` of one task's service.
        let template = serde_json::json!({"ContainerSpec":{"Image":"b:1","Args":["sh"],
            "Env":["VERSION=1"],"Privileges":{"CredentialSpec":null,"SELinuxContext":null,
            "NoNewPrivileges":false},"StopGracePeriod":1000000000,"DNSConfig":{},
            "Isolation":"default"},"Resources":{},"RestartPolicy":{"Condition":"any",
            "Delay":1000000000,"MaxAttempts":0},"Placement":{},"Networks":[{"Target":"kw",
            "Aliases":["app"]}],"ForceUpdate":0,"Runtime":"container"});
        let task = serde_json::json!({"ContainerSpec":{"Image":"b:1","Args":["sh"],
            "Env":["VERSION=1"],"Privileges":{"CredentialSpec":null,"SELinuxContext":null,
            "NoNewPrivileges":false},"StopGracePeriod":1000000000,"Isolation":"default"},
            "Resources":{},"RestartPolicy":{"Condition":"any","Delay":1000000000,
            "MaxAttempts":0},"Placement":{},"Networks":[{"Target":"kw","Aliases":["app"]}],
            "ForceUpdate":0});
        assert!(same_spec(&task, &template));
        let mut newer = template.clone();
        newer["ContainerSpec"]["Env"] = serde_json::json!(["VERSION=2"]);
        assert!(!same_spec(&task, &newer));
        // Defaults only the template shows (the user gave no restart policy or grace period).
        let mut bare = task.clone();
        bare.as_object_mut().unwrap().remove("RestartPolicy");
        bare["ContainerSpec"]
            .as_object_mut()
            .unwrap()
            .remove("StopGracePeriod");
        assert!(same_spec(&bare, &template));
        // A value the task has and the template lacks: another spec.
        let mut older = task.clone();
        older["ContainerSpec"]["User"] = serde_json::json!("postgres");
        assert!(!same_spec(&older, &template));
    }

    #[test]
    fn only_tasks_of_the_current_spec_count_and_the_update_state_is_read() {
        // web was updated from v1 to v2: the v1 task still runs (the update has not reached
        // it), and the v1 failures before it are history.
        let services = [svc("app_web", "1/1")];
        let old_running = task("app_web.1", "Running 9 seconds ago", "");
        let old_failed = task(
            "app_web.1",
            "Failed 30 seconds ago",
            "\"non-zero exit (3)\"",
        );
        let tasks = [old_running, old_failed];
        let specs: Vec<TaskInspect> = tasks.iter().map(|t| spec_of(t, "img:1")).collect();
        let inspect = [inspected(
            "app_web",
            "img:2",
            Some(("updating", "update in progress")),
        )];
        let status = build_status("app", &services, &tasks, &inspect, &specs).unwrap();
        let web = status.service("web").unwrap();
        assert_eq!(
            web.running_replicas, 0,
            "a task of the old spec is not the new version"
        );
        assert_eq!(
            web.failed_tasks, 0,
            "failures of an older spec do not count"
        );
        assert_eq!(web.last_error, None);
        assert_eq!(web.update.as_ref().unwrap().state, UpdateState::Updating);
        assert!(!status.is_healthy());

        // Once the update completed, the v2 task (placement aside, same spec) is running.
        let new_running = task("app_web.1", "Running 2 seconds ago", "");
        let mut specs = specs;
        specs.push(spec_of(&new_running, "img:2"));
        let tasks = [new_running, task("app_web.1", "Shutdown 9 seconds ago", "")];
        let specs: Vec<TaskInspect> = specs
            .into_iter()
            .filter(|s| tasks.iter().any(|t| t.id == s.id))
            .collect();
        let inspect = [inspected(
            "app_web",
            "img:2",
            Some(("completed", "update completed")),
        )];
        let status = build_status("app", &services, &tasks, &inspect, &specs).unwrap();
        assert_eq!(status.service("web").unwrap().running_replicas, 1);
        assert!(status.is_healthy());
    }

    #[test]
    fn status_counts_the_current_failure_streak_and_unquotes_the_task_error() {
        let services = [svc("app_db", "1/1"), svc("app_web", "0/1")];
        let tasks = [
            task("app_db.1", "Running 5 seconds ago", ""),
            task(
                "app_db.1",
                "Failed 20 seconds ago",
                "\"task: non-zero exit (1)\"",
            ),
            task("app_web.1", "Ready 1 second ago", ""),
            task(
                "app_web.1",
                "Rejected 3 seconds ago",
                "\"No such image: nope:1\"",
            ),
            task(
                "app_web.1",
                "Rejected 8 seconds ago",
                "\"No such image: nope:1\"",
            ),
        ];
        let status = build_status("app", &services, &tasks, &[], &[]).unwrap();
        let db = status.service("db").unwrap();
        assert_eq!((db.running_replicas, db.desired_replicas), (1, 1));
        assert_eq!(db.failed_tasks, 0, "an old failure before a running task");
        let web = status.service("web").unwrap();
        assert_eq!(web.failed_tasks, 2);
        assert_eq!(web.last_error.as_deref(), Some("No such image: nope:1"));
        assert_eq!(web.full_name, "app_web");
    }

    #[test]
    fn replicas_with_annotations_are_parsed() {
        assert_eq!(parse_replicas("0/1 (max 1 per node)"), Some((0, 1)));
        assert_eq!(parse_replicas("3/3"), Some((3, 3)));
        assert_eq!(parse_replicas("n/a"), None);
        let err = build_status("app", &[svc("app_x", "??")], &[], &[], &[]).unwrap_err();
        assert!(err.to_string().contains("app_x"), "{err}");
    }

    #[test]
    fn logs_of_both_streams_are_merged_in_time_order_and_tailed() {
        let stdout = b"2025-01-01T00:00:01.000000000Z one\n2025-01-01T00:00:03.000000000Z three\n";
        let stderr = b"2025-01-01T00:00:02.000000000Z two\n";
        assert_eq!(merge_logs(stdout, stderr, 2), vec!["two", "three"]);
        assert_eq!(merge_logs(stdout, stderr, 10).len(), 3);
    }

    #[test]
    fn secret_names_and_paths_are_allowlisted() {
        let secret = |name: &str, delivery| StackSecret {
            name: name.into(),
            value: "v".into(),
            delivery,
        };
        assert!(
            validate_secret(&secret("n8n_db-password.v2", SecretDelivery::DockerSecret)).is_ok()
        );
        for bad in ["", "-rm", "a b", "a;b", "$(x)", "ä"] {
            let err = validate_secret(&secret(bad, SecretDelivery::DockerSecret)).unwrap_err();
            assert!(err.to_string().contains("secret name"), "{bad}: {err}");
        }
        for bad in ["relative", "/a/../etc/shadow", "/a b", "/", "/dir/"] {
            let delivery = SecretDelivery::File { path: bad.into() };
            let err = validate_secret(&secret("ok", delivery)).unwrap_err();
            assert!(err.to_string().contains("secret file path"), "{bad}: {err}");
        }
    }
}
