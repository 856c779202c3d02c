//! The `ContainerPlatform` trait and its vocabulary: what the core asks of the container layer of
//! one server (networks, stacks, their health, commands inside a service, logs), whoever carries
//! it out.
//!
//! ```text
//!                   livchat-core (Orchestrator)
//!                            |
//!                  Arc<dyn ContainerPlatform>
//!                 /                          \
//!   SwarmOverSsh (swarm/)            PortainerPlatform (portainer/)
//!   docker CLI through                stacks through Portainer's API,
//!   Arc<dyn RemoteExecutor>           the rest through a SwarmOverSsh,
//!                                     the API through an SSH tunnel
//! ```
//!
//! Every stack file is validated against the schema `docker stack deploy` uses
//! ([`crate::compose`]) before anything leaves the machine, and every name is validated by
//! [`crate::validate_name`] before it reaches a command.
//!
//! ## Kernels without IPVS (a user option, not a test hack)
//!
//! Swarm's default service networking gives every service a virtual IP load-balanced by the
//! kernel's IPVS, and publishes ports through the ingress routing mesh (also IPVS). Some kernels
//! (minimal VPS images, some container hosts, gVisor-like sandboxes) have no IPVS: services
//! start, but nothing reaches them by service name and published ports do not answer. The
//! remedy, chosen per deployment by the user and emitted by the stack renderer in
//! `livchat-apps`, is `deploy.endpoint_mode: dnsrr` on internal services (the service name
//! resolves straight to task IPs) and `ports: [{mode: host, target: .., published: ..}]` for
//! published ports (bound on the node itself). Both platforms here deploy and await such stacks
//! exactly like default ones; the end-to-end tests in `tests/swarm_*.rs` run in that mode
//! because the build machines lack IPVS.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[doc(hidden)]
pub use async_trait::async_trait;
use secrecy::{SecretBox, SecretString};
use tokio_util::sync::CancellationToken;

use crate::executor::{ExecOutput, RemoteError};

/// An overlay network shared by stacks (for example the one Traefik and the apps join).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Validated as [`crate::NameKind::Network`].
    pub name: String,
    /// Lets standalone containers (`docker run --network`) join too; stacks do not need it.
    pub attachable: bool,
}

impl NetworkSpec {
    pub fn overlay(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            attachable: true,
        }
    }
}

/// How a secret reaches the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretDelivery {
    /// A Docker secret named [`StackSecret::name`], created with its value on stdin
    /// (`docker secret create NAME -`). The stack file refers to it as
    /// `secrets: {NAME: {external: true}}`. Docker secrets are immutable and cannot be read
    /// back: an existing secret of that name is kept as it is, so rotating a value means a new
    /// name (for example with a version suffix).
    DockerSecret,
    /// A file written with mode 0600 (owner root) at this absolute path, for images that read
    /// a password file from a bind mount. Only the SSH platform can write files.
    File { path: String },
}

/// A secret a stack needs, handed over from the vault.
#[derive(Debug)]
pub struct StackSecret {
    /// Docker secret name (validated as [`crate::NameKind::Service`]'s allowlist: it lands in a
    /// command line) or a label for a file secret.
    pub name: String,
    pub value: SecretString,
    pub delivery: SecretDelivery,
}

/// A stack to deploy: its name, its rendered compose file and the secrets it refers to.
#[derive(Debug)]
pub struct StackSpec {
    /// Validated as [`crate::NameKind::Stack`]; services become `<name>_<service>`.
    pub name: String,
    /// The compose file (version 3 format, as `docker stack deploy` reads it). Validated with
    /// [`crate::compose::validate_stack`] before anything is sent.
    pub compose_yaml: String,
    /// Created (if absent) before the stack is deployed.
    pub secrets: Vec<StackSecret>,
}

/// How a service schedules its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceMode {
    Replicated,
    Global,
}

/// One service of a stack as the swarm reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The service's name inside the stack (`db`).
    pub name: String,
    /// The swarm's name for it (`<stack>_db`).
    pub full_name: String,
    pub image: String,
    pub mode: ServiceMode,
    pub desired_replicas: u64,
    /// Tasks running (for services with a healthcheck: running and healthy, since swarm keeps
    /// a task in `starting` until its healthcheck passes).
    pub running_replicas: u64,
    /// Tasks of this service in the swarm's history that failed or were rejected.
    pub failed_tasks: usize,
    /// The error of the most recent task that reported one (`No such image: ...`,
    /// `task: non-zero exit (1)`).
    pub last_error: Option<String>,
    /// The swarm's state of the service's last update; `None` when the service was created and
    /// not updated since, or when its last update changed no task (an unchanged redeploy).
    pub update: Option<UpdateStatus>,
    /// The nodes (host names) its running tasks are on: on a cluster, where it runs.
    pub nodes: Vec<String>,
}

/// Where the swarm is with a service's update (`docker service inspect`'s `UpdateStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStatus {
    pub state: UpdateState,
    /// The swarm's words (`update paused due to failure or early termination of task ...`).
    pub message: String,
}

/// The states of a service update, as the swarm names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
    /// A state this version does not know; treated as still in progress.
    Other(String),
}

impl UpdateState {
    pub fn parse(state: &str) -> Self {
        match state {
            "updating" => Self::Updating,
            "paused" => Self::Paused,
            "completed" => Self::Completed,
            "rollback_started" => Self::RollbackStarted,
            "rollback_paused" => Self::RollbackPaused,
            "rollback_completed" => Self::RollbackCompleted,
            other => Self::Other(other.to_string()),
        }
    }
}

impl ServiceStatus {
    /// The service's update (if any) has completed and every desired replica is running a task
    /// of the service's current spec (and healthy, if the service has a healthcheck). Tasks of
    /// an older spec, still running while an update is under way, do not count.
    pub fn is_converged(&self) -> bool {
        self.running_replicas >= self.desired_replicas
            && (self.desired_replicas > 0 || self.mode == ServiceMode::Global)
            && self
                .update
                .as_ref()
                .is_none_or(|u| u.state == UpdateState::Completed)
    }

    /// Why the service's last update failed for good: paused (Swarm's default
    /// `failure_action`), its rollback paused, or rolled back. `None` while it is in progress,
    /// completed, or when there was none.
    pub fn update_failure(&self) -> Option<String> {
        let update = self.update.as_ref()?;
        let what = match update.state {
            UpdateState::Paused => "update paused",
            UpdateState::RollbackPaused => "rollback paused",
            UpdateState::RollbackCompleted => "update rolled back",
            _ => return None,
        };
        let mut text = format!("{what}: {}", update.message.trim());
        if let Some(err) = &self.last_error {
            text.push_str(&format!(" (task error: {err})"));
        }
        Some(text)
    }
}

/// A stack and its services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackStatus {
    pub name: String,
    pub services: Vec<ServiceStatus>,
}

impl StackStatus {
    /// Every service is at its desired replicas; a stack without services is not healthy.
    pub fn is_healthy(&self) -> bool {
        !self.services.is_empty() && self.services.iter().all(ServiceStatus::is_converged)
    }

    pub fn service(&self, name: &str) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| s.name == name)
    }
}

impl fmt::Display for StackStatus {
    /// One line per stack: `app: db 1/1, web 0/1 (No such image: x)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.name)?;
        if self.services.is_empty() {
            return f.write_str(" no services");
        }
        for (i, s) in self.services.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(
                f,
                "{sep}{} {}/{}",
                s.name, s.running_replicas, s.desired_replicas
            )?;
            if let (false, Some(err)) = (s.is_converged(), &s.last_error) {
                write!(f, " ({err})")?;
            }
        }
        Ok(())
    }
}

/// Called with the stack's status after every poll while waiting.
pub type ProgressSink = Arc<dyn Fn(&StackStatus) + Send + Sync>;

/// Receives each log line of a followed service as it arrives (already split, no newline).
pub type LogSink = Arc<dyn Fn(String) + Send + Sync>;

/// How long and how patiently to wait for a stack to become healthy.
#[derive(Clone)]
pub struct WaitOptions {
    /// The wait fails with [`PlatformError::Timeout`] after this long.
    pub timeout: Duration,
    /// Time between two status polls.
    pub poll_interval: Duration,
    /// A service that has failed this many tasks (or had one rejected, for example for a
    /// missing image) is reported as [`PlatformError::ServiceFailed`] at once, without
    /// waiting for the timeout: swarm would otherwise restart it forever.
    pub max_task_failures: usize,
    /// How long every service must stay at its desired replicas, with no new failed task,
    /// before the stack counts as healthy. A task whose command exits after a moment is
    /// "running" for that moment: without a settle window a crash-looping service passes.
    pub settle: Duration,
    pub cancel: CancellationToken,
    pub on_progress: Option<ProgressSink>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(2),
            max_task_failures: 3,
            settle: Duration::from_secs(5),
            cancel: CancellationToken::new(),
            on_progress: None,
        }
    }
}

impl fmt::Debug for WaitOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitOptions")
            .field("timeout", &self.timeout)
            .field("poll_interval", &self.poll_interval)
            .field("max_task_failures", &self.max_task_failures)
            .finish_non_exhaustive()
    }
}

/// A command to run inside a running task of a service (post-deploy steps such as creating a
/// database and its user).
pub struct ServiceExec {
    pub stack: String,
    /// The service's name inside the stack (`db`, not `<stack>_db`).
    pub service: String,
    /// Program and arguments, passed to `docker exec` as argv (quoted in one place,
    /// [`crate::quote_command`]). Never put a secret here: use `stdin`.
    pub argv: Vec<String>,
    /// Sent on the command's stdin (`docker exec -i`), then EOF.
    pub stdin: Option<SecretBox<[u8]>>,
    /// `docker exec --user`; validated as [`crate::NameKind::User`].
    pub user: Option<String>,
    pub timeout: Duration,
    pub cancel: CancellationToken,
}

impl fmt::Debug for ServiceExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceExec")
            .field("stack", &self.stack)
            .field("service", &self.service)
            .field("argv", &self.argv)
            .field("stdin", &self.stdin.as_ref().map(|_| "[REDACTED]"))
            .field("user", &self.user)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl From<crate::compose::InvalidStack> for PlatformError {
    fn from(e: crate::compose::InvalidStack) -> Self {
        PlatformError::InvalidStack {
            path: e.path,
            message: e.message,
        }
    }
}

/// Errors of the container platform. None of them carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A name or option failed its allowlist.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The stack file does not satisfy the schema `docker stack deploy` uses; nothing was sent.
    #[error("invalid stack file at {path}: {message}")]
    InvalidStack { path: String, message: String },
    /// A docker command ran and failed.
    #[error("`{command}` failed (exit {exit_status}): {stderr}")]
    CommandFailed {
        command: String,
        exit_status: u32,
        stderr: String,
    },
    /// Output that should have been machine-readable could not be parsed.
    #[error("could not parse {what}: {reason}")]
    Parse { what: String, reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// A service cannot start; `error` is the swarm's task error.
    #[error("service {service} of stack {stack} cannot start: {error}")]
    ServiceFailed {
        stack: String,
        service: String,
        error: String,
    },
    /// The swarm paused or rolled back a service's update; `message` is its reason.
    #[error("service {service} of stack {stack}: {message}")]
    UpdateFailed {
        stack: String,
        service: String,
        message: String,
    },
    /// The stack did not become healthy in time; `status` is the last one seen.
    #[error("stack {stack} not healthy after {waited:?}: {status}")]
    Timeout {
        stack: String,
        waited: Duration,
        status: StackStatus,
    },
    #[error("cancelled")]
    Cancelled,
    /// The operation is not available on this platform (for example file secrets through
    /// Portainer).
    #[error("not supported by {platform}: {what}")]
    Unsupported { platform: String, what: String },
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Portainer(#[from] crate::portainer::PortainerError),
}

/// The container layer of one server (one Swarm manager).
///
/// Every method validates its names first and is idempotent: ensuring what exists, deploying
/// an unchanged stack or removing an absent one succeeds without changing anything.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ContainerPlatform: Send + Sync {
    /// Creates the overlay network unless it exists; fails if a network of that name exists
    /// with another driver.
    async fn ensure_network(&self, network: &NetworkSpec) -> Result<(), PlatformError>;

    /// Creates the secrets that do not exist yet (values on stdin or in 0600 files, never in
    /// a command line).
    async fn ensure_secrets(&self, secrets: &[StackSecret]) -> Result<(), PlatformError>;

    /// Validates the stack file, ensures its secrets, and deploys (creates or updates) it.
    /// Returns once the swarm accepted it; use [`ContainerPlatform::wait_healthy`] to await it.
    async fn deploy_stack(&self, stack: &StackSpec) -> Result<(), PlatformError>;

    /// Removes the stack and waits until its services and networks are gone, so a redeploy
    /// right after does not collide with them. Removing an absent stack succeeds.
    async fn remove_stack(&self, name: &str) -> Result<(), PlatformError>;

    /// Deletes the named volumes of a removed stack (its data), after waiting for the
    /// stack's containers to be gone; returns their names. Nothing to delete succeeds.
    async fn remove_stack_volumes(&self, name: &str) -> Result<Vec<String>, PlatformError>;

    /// Removes the named Docker secrets (those a removed stack used); returns the names
    /// removed. An absent secret counts as removed; one still in use by a service is kept and
    /// left out of the answer.
    async fn remove_secrets(&self, names: &[String]) -> Result<Vec<String>, PlatformError>;

    /// One stack's services; [`PlatformError::NotFound`] when it has none.
    async fn stack_status(&self, name: &str) -> Result<StackStatus, PlatformError>;

    /// Polls until every service's update has completed (or it was created) and its tasks of
    /// the current spec run at the desired replicas (healthchecks passing) through the settle
    /// window. Failures of tasks of an older spec do not count. Fails with
    /// [`PlatformError::UpdateFailed`] when the swarm paused or rolled back an update, with
    /// [`PlatformError::ServiceFailed`] (the task error) when a service cannot start, with
    /// [`PlatformError::Timeout`] after `options.timeout`, with `Cancelled` on cancel.
    async fn wait_healthy(
        &self,
        name: &str,
        options: WaitOptions,
    ) -> Result<StackStatus, PlatformError>;

    /// Returns every service of the stack to the spec it had before its last update
    /// (`docker service rollback`), then waits as [`ContainerPlatform::wait_healthy`] does
    /// for that spec to run. What a failed redeploy leaves: the previous version, running.
    /// Services without a previous spec (never updated) or whose last update was a rollback
    /// are left as they are, so a second call changes nothing. A service the failed version
    /// added stays; one it removed is not restored.
    async fn rollback_stack(
        &self,
        name: &str,
        options: WaitOptions,
    ) -> Result<StackStatus, PlatformError>;

    /// Runs argv inside a running task of the service (`docker exec -i`), optionally with a
    /// secret on stdin. Returns the output whatever the exit status.
    ///
    /// The output is the program's own: a program that echoes its input on error (psql
    /// quoting the failing statement) can echo a secret sent on stdin, so callers must not log
    /// it verbatim when `stdin` carried one.
    async fn exec_in_service(&self, exec: ServiceExec) -> Result<ExecOutput, PlatformError>;

    /// The last `tail` lines of a service's logs (stdout and stderr of its tasks).
    async fn service_logs(
        &self,
        stack: &str,
        service: &str,
        tail: usize,
    ) -> Result<Vec<String>, PlatformError>;

    /// Streams a service's logs: the last `tail` lines, then each new line as it comes, to
    /// `on_line`, until `cancel` (which ends it with `Ok`) or the service is gone.
    async fn follow_service_logs(
        &self,
        stack: &str,
        service: &str,
        tail: usize,
        on_line: LogSink,
        cancel: CancellationToken,
    ) -> Result<(), PlatformError>;
}

/// Polls `status` until healthy, failed, timed out or cancelled; shared by the platforms so
/// they judge health the same way.
pub(crate) async fn wait_until_healthy<F, Fut>(
    stack: &str,
    options: &WaitOptions,
    mut status: F,
) -> Result<StackStatus, PlatformError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<StackStatus, PlatformError>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started + options.timeout;
    let mut last = StackStatus {
        name: stack.to_string(),
        services: Vec::new(),
    };
    // When the stack was first seen healthy, and each service's failed-task count then.
    let mut healthy_since: Option<(tokio::time::Instant, Vec<usize>)> = None;
    loop {
        match status().await {
            Ok(current) => last = current,
            // A stack that was just deployed may not be listed yet.
            Err(PlatformError::NotFound { .. }) => {}
            Err(other) => return Err(other),
        }
        if let Some(progress) = &options.on_progress {
            progress(&last);
        }
        if let Some((service, message)) = last
            .services
            .iter()
            .find_map(|s| s.update_failure().map(|m| (s.name.clone(), m)))
        {
            return Err(PlatformError::UpdateFailed {
                stack: stack.to_string(),
                service,
                message,
            });
        }
        let now = tokio::time::Instant::now();
        if last.is_healthy() {
            let failures: Vec<usize> = last.services.iter().map(|s| s.failed_tasks).collect();
            match &healthy_since {
                // Healthy since `since` with no task failing in between: settled?
                Some((since, seen)) if *seen == failures => {
                    if now - *since >= options.settle {
                        return Ok(last);
                    }
                }
                _ => healthy_since = Some((now, failures)),
            }
            if options.settle.is_zero() {
                return Ok(last);
            }
        } else {
            healthy_since = None;
        }
        if let Some(failed) = last.services.iter().find(|s| {
            !s.is_converged()
                && s.failed_tasks >= options.max_task_failures.max(1)
                && s.last_error.is_some()
        }) {
            return Err(PlatformError::ServiceFailed {
                stack: stack.to_string(),
                service: failed.name.clone(),
                error: failed.last_error.clone().unwrap_or_default(),
            });
        }
        if now >= deadline {
            return Err(PlatformError::Timeout {
                stack: stack.to_string(),
                waited: now - started,
                status: last,
            });
        }
        let nap = options.poll_interval.min(deadline - now);
        tokio::select! {
            () = options.cancel.cancelled() => return Err(PlatformError::Cancelled),
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// Implements [`ContainerPlatform`] for a platform that hands most calls to another one
/// (`self.<field>`, any `Arc<dyn ContainerPlatform>` or implementation): the methods listed
/// after `forward` are passed on unchanged, the others are written out after them as in any
/// `#[async_trait]` impl. Used by `PortainerPlatform` (stacks through Portainer, the rest
/// through its SSH runtime) and core's cluster platform (everything on the manager, `exec` and
/// volume removal on the nodes too).
///
/// ```ignore
/// livchat_remote::forward_platform! {
///     impl for ClusterPlatform => manager;
///     forward ensure_network, deploy_stack, stack_status;
///     async fn exec_in_service(&self, exec: ServiceExec) -> Result<ExecOutput, PlatformError> {
///         /* ... */
///     }
/// }
/// ```
#[macro_export]
macro_rules! forward_platform {
    (
        impl for $ty:ty => $inner:ident;
        forward $($method:ident),+ $(,)?;
        $($explicit:tt)*
    ) => {
        #[$crate::platform::async_trait]
        impl $crate::platform::ContainerPlatform for $ty {
            $($explicit)*
            $crate::forward_platform!(@methods $inner; $($method)+);
        }
    };
    (@methods $inner:ident; $($method:ident)+) => {
        $($crate::forward_platform!(@method $inner $method);)+
    };
    // Each method as `#[async_trait]` writes it, so these can sit in an impl that attribute
    // has already expanded.
    (@method $inner:ident ensure_network) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1> ensure_network(network: &'l1 $crate::platform::NetworkSpec) -> ());
    };
    (@method $inner:ident ensure_secrets) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1> ensure_secrets(secrets: &'l1 [$crate::platform::StackSecret]) -> ());
    };
    (@method $inner:ident deploy_stack) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1> deploy_stack(stack: &'l1 $crate::platform::StackSpec) -> ());
    };
    (@method $inner:ident remove_stack) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1> remove_stack(name: &'l1 str) -> ());
    };
    (@method $inner:ident remove_stack_volumes) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1> remove_stack_volumes(name: &'l1 str) -> ::std::vec::Vec<::std::string::String>);
    };
    (@method $inner:ident remove_secrets) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1> remove_secrets(names: &'l1 [::std::string::String]) -> ::std::vec::Vec<::std::string::String>);
    };
    (@method $inner:ident stack_status) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1> stack_status(name: &'l1 str) -> $crate::platform::StackStatus);
    };
    (@method $inner:ident wait_healthy) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1> wait_healthy(name: &'l1 str, options: $crate::platform::WaitOptions) -> $crate::platform::StackStatus);
    };
    (@method $inner:ident rollback_stack) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1> rollback_stack(name: &'l1 str, options: $crate::platform::WaitOptions) -> $crate::platform::StackStatus);
    };
    (@method $inner:ident exec_in_service) => {
        $crate::forward_platform!(@fn $inner <'l0> exec_in_service(exec: $crate::platform::ServiceExec) -> $crate::executor::ExecOutput);
    };
    (@method $inner:ident service_logs) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1, 'l2> service_logs(stack: &'l1 str, service: &'l2 str, tail: usize) -> ::std::vec::Vec<::std::string::String>);
    };
    (@method $inner:ident follow_service_logs) => {
        $crate::forward_platform!(@fn $inner <'l0, 'l1, 'l2> follow_service_logs(
            stack: &'l1 str,
            service: &'l2 str,
            tail: usize,
            on_line: $crate::platform::LogSink,
            cancel: $crate::platform::__CancellationToken
        ) -> ());
    };
    (@fn $inner:ident <$($lt:lifetime),+> $method:ident($($arg:ident: $argty:ty),*) -> $out:ty) => {
        fn $method<$($lt,)+ 'async_trait>(
            &'l0 self,
            $($arg: $argty),*
        ) -> ::std::pin::Pin<::std::boxed::Box<
            dyn ::std::future::Future<Output = ::std::result::Result<$out, $crate::platform::PlatformError>>
                + ::std::marker::Send
                + 'async_trait,
        >>
        where
            $($lt: 'async_trait,)+
            Self: 'async_trait,
        {
            ::std::boxed::Box::pin(async move { self.$inner.$method($($arg),*).await })
        }
    };
}

#[doc(hidden)]
pub use tokio_util::sync::CancellationToken as __CancellationToken;

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, desired: u64, running: u64) -> ServiceStatus {
        ServiceStatus {
            nodes: Vec::new(),
            name: name.into(),
            full_name: format!("app_{name}"),
            image: "local/busybox:1".into(),
            mode: ServiceMode::Replicated,
            desired_replicas: desired,
            running_replicas: running,
            failed_tasks: 0,
            last_error: None,
            update: None,
        }
    }

    #[test]
    fn stack_is_healthy_only_when_every_service_runs_its_desired_replicas() {
        let mut stack = StackStatus {
            name: "app".into(),
            services: vec![service("db", 1, 1), service("web", 2, 1)],
        };
        assert!(!stack.is_healthy());
        stack.services[1].running_replicas = 2;
        assert!(stack.is_healthy());
        stack.services.clear();
        assert!(
            !stack.is_healthy(),
            "a stack without services is not healthy"
        );
    }

    #[test]
    fn status_line_names_the_error_of_services_not_running() {
        let mut web = service("web", 1, 0);
        web.last_error = Some("No such image: nope:1".into());
        let stack = StackStatus {
            name: "app".into(),
            services: vec![service("db", 1, 1), web],
        };
        assert_eq!(
            stack.to_string(),
            "app: db 1/1, web 0/1 (No such image: nope:1)"
        );
    }

    #[tokio::test]
    async fn wait_fails_with_the_task_error_once_a_service_keeps_failing() {
        let mut polls = 0;
        let options = WaitOptions {
            max_task_failures: 2,
            poll_interval: Duration::from_millis(5),
            ..WaitOptions::default()
        };
        let err = wait_until_healthy("app", &options, || {
            polls += 1;
            let mut web = service("web", 1, 0);
            web.failed_tasks = polls;
            web.last_error = Some("task: non-zero exit (3)".into());
            let status = StackStatus {
                name: "app".into(),
                services: vec![web],
            };
            async move { Ok(status) }
        })
        .await
        .unwrap_err();
        assert_eq!(polls, 2);
        assert!(
            matches!(&err, PlatformError::ServiceFailed { service, error, .. }
                if service == "web" && error == "task: non-zero exit (3)"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_service_that_is_running_only_for_a_moment_is_not_healthy() {
        // A crash-looping task: running on one poll, exited on the next, failures rising.
        let mut polls = 0;
        let options = WaitOptions {
            max_task_failures: 3,
            poll_interval: Duration::from_millis(5),
            settle: Duration::from_millis(50),
            ..WaitOptions::default()
        };
        let err = wait_until_healthy("app", &options, || {
            polls += 1;
            let running = u64::from(polls % 2 == 1);
            let mut web = service("web", 1, running);
            web.failed_tasks = polls / 2;
            web.last_error = (polls >= 2).then(|| "task: non-zero exit (3)".to_string());
            let status = StackStatus {
                name: "app".into(),
                services: vec![web],
            };
            async move { Ok(status) }
        })
        .await
        .unwrap_err();
        assert!(
            matches!(&err, PlatformError::ServiceFailed { error, .. } if error.contains("exit (3)")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_stack_healthy_through_the_settle_window_is_healthy() {
        let options = WaitOptions {
            poll_interval: Duration::from_millis(5),
            settle: Duration::from_millis(30),
            ..WaitOptions::default()
        };
        let status = wait_until_healthy("app", &options, || async {
            Ok(StackStatus {
                name: "app".into(),
                services: vec![service("web", 1, 1)],
            })
        })
        .await
        .unwrap();
        assert!(status.is_healthy());
    }

    #[test]
    fn a_service_is_converged_only_once_its_update_has_completed() {
        let mut web = service("web", 1, 1);
        for (state, converged) in [
            (UpdateState::Updating, false),
            (UpdateState::RollbackStarted, false),
            (UpdateState::Paused, false),
            (UpdateState::Completed, true),
        ] {
            web.update = Some(UpdateStatus {
                state: state.clone(),
                message: String::new(),
            });
            assert_eq!(web.is_converged(), converged, "{state:?}");
        }
        web.update = None;
        assert!(web.is_converged(), "created and never updated");
    }

    #[tokio::test]
    async fn wait_fails_with_the_swarms_message_when_an_update_is_paused() {
        // The replica count looks fine (the old task may still run): the update's state rules.
        let options = WaitOptions {
            poll_interval: Duration::from_millis(5),
            settle: Duration::from_millis(30),
            ..WaitOptions::default()
        };
        let err = wait_until_healthy("app", &options, || async {
            let mut web = service("web", 1, 1);
            web.last_error = Some("task: non-zero exit (3)".into());
            web.update = Some(UpdateStatus {
                state: UpdateState::Paused,
                message: "update paused due to failure or early termination of task x".into(),
            });
            Ok(StackStatus {
                name: "app".into(),
                services: vec![web],
            })
        })
        .await
        .unwrap_err();
        assert!(
            matches!(&err, PlatformError::UpdateFailed { service, message, .. }
                if service == "web"
                    && message.starts_with("update paused: update paused due to failure")
                    && message.contains("non-zero exit (3)")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn wait_times_out_with_the_last_status() {
        let options = WaitOptions {
            timeout: Duration::from_millis(100),
            poll_interval: Duration::from_millis(10),
            ..WaitOptions::default()
        };
        let err = wait_until_healthy("app", &options, || async {
            Ok(StackStatus {
                name: "app".into(),
                services: vec![service("web", 1, 0)],
            })
        })
        .await
        .unwrap_err();
        match err {
            PlatformError::Timeout { waited, status, .. } => {
                assert!(waited >= Duration::from_millis(100), "{waited:?}");
                assert_eq!(status.services[0].running_replicas, 0);
            }
            other => panic!("expected a timeout, got {other}"),
        }
    }

    #[tokio::test]
    async fn wait_stops_when_cancelled() {
        let options = WaitOptions::default();
        let cancel = options.cancel.clone();
        let err = wait_until_healthy("app", &options, || {
            cancel.cancel();
            async { Err(PlatformError::NotFound { what: "app".into() }) }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, PlatformError::Cancelled));
    }
}
