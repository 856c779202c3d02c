//! The live state of deployed apps, read from the swarm over SSH rather than from `state.json`
//! (which says what was deployed, not whether it still runs): each service's replicas, update
//! state and last task error (`app status`), and its logs with every vault secret redacted
//! (`app logs`). A REST answer or a tool result must end, so `app_logs` is bounded; following
//! ([`AppLogs::follow`]) is for frontends that can stream and stop on Ctrl-C (the CLI).
//!
//! The state only says which stack is whose: an app is "deployed" on a server when it has a
//! record there, and then its stack is looked up live.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use livchat_remote::platform::UpdateState;
use livchat_remote::{
    ContainerPlatform, LogSink, NameKind, PlatformError, ServiceMode, StackStatus, validate_name,
};
use livchat_store::DeploymentRecord;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Operation, op_info};
use crate::redact::Redactor;
use crate::{CoreError, Orchestrator, Result};

/// Lines of each service when `tail` is not given.
pub const LOGS_DEFAULT_TAIL: usize = 100;
/// The most lines of each service one call asks for.
pub const LOGS_MAX_TAIL: usize = 10_000;
/// The most log text one answer carries: 10,000 long lines of several services would
/// otherwise make a REST answer or a tool result of hundreds of megabytes.
pub const LOGS_MAX_BYTES: usize = 4 << 20;
/// A longer line is cut there (after redaction, so a secret is never cut in half and missed).
pub const LOG_LINE_MAX_BYTES: usize = 16 << 10;

/// The live status of a deployed app's services, or of every app deployed on the server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppStatus {
    /// Server name.
    pub server: String,
    /// App name; every app deployed on the server when absent.
    #[serde(default)]
    pub app: Option<String>,
}

/// How an app runs, as the swarm says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// Every service runs its desired replicas of its current spec; no update under way.
    Running,
    /// A service is short of replicas, updating, or its update paused or rolled back.
    Degraded,
    /// Recorded as deployed, but the swarm has no such stack.
    Missing,
}

/// One app's stack as the swarm reports it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AppStatusView {
    pub app: String,
    pub stack: String,
    pub state: LiveState,
    pub services: Vec<ServiceStatusView>,
}

/// One service of an app's stack.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServiceStatusView {
    /// The name inside the stack (`db`), as `app logs --service` takes it.
    pub name: String,
    pub image: String,
    /// `replicated` or `global`.
    pub mode: String,
    /// Tasks of the current spec running (and healthy, with a healthcheck).
    pub running: u64,
    pub desired: u64,
    /// The swarm's UpdateStatus state (`updating`, `paused`, `completed`, `rollback_started`,
    /// `rollback_paused`, `rollback_completed`); none when never updated.
    pub update_state: Option<String>,
    pub update_message: Option<String>,
    /// The most recent task error (`No such image: ...`, `task: non-zero exit (1)`).
    pub last_error: Option<String>,
    /// Tasks that failed in a row since the service last ran.
    pub failed_tasks: usize,
    /// Nodes its running tasks are on.
    pub nodes: Vec<String>,
}

#[async_trait]
impl Operation for AppStatus {
    const INFO: super::OperationInfo = op_info!(AppStatus, "app_status", "app status", Read,
        job: false, idempotent: true, open_world: true,
        "Live status of deployed apps' services, read from the swarm");
    type Output = Vec<AppStatusView>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        let records = match &self.app {
            Some(app) => vec![deployment(orch, &self.server, app)?],
            None => orch.deployed(&self.server)?,
        };
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let platform = orch.platform(&self.server).await?;
        let redactor = vault_redactor(orch)?;
        let statuses = join_all(records.iter().map(|r| platform.stack_status(&r.stack_name))).await;
        let mut views = Vec::with_capacity(records.len());
        for (record, status) in records.into_iter().zip(statuses) {
            let view = match status {
                Ok(status) => status_view(record, &status, &redactor),
                Err(PlatformError::NotFound { .. }) => AppStatusView {
                    app: record.app,
                    stack: record.stack_name,
                    state: LiveState::Missing,
                    services: Vec::new(),
                },
                Err(e) => return Err(platform_err(e)),
            };
            views.push(view);
        }
        views.sort_by(|a, b| a.app.cmp(&b.app));
        Ok(views)
    }
}

/// The logs of a deployed app's services, every vault secret redacted.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppLogs {
    /// Server name.
    pub server: String,
    /// App name.
    pub app: String,
    /// One service of the app's stack (`db`); all of them when absent.
    #[serde(default)]
    pub service: Option<String>,
    /// The last N lines of each service: 1-10000, default 100.
    #[serde(default)]
    pub tail: Option<usize>,
}

/// Log lines of an app, grouped by service.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AppLogsView {
    pub app: String,
    pub stack: String,
    pub lines: Vec<AppLogLine>,
    /// Lines were left out (from the start) or cut to stay within the answer's bound.
    pub truncated: bool,
}

/// One log line of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AppLogLine {
    pub service: String,
    pub line: String,
}

#[async_trait]
impl Operation for AppLogs {
    const INFO: super::OperationInfo = op_info!(AppLogs, "app_logs", "app logs", Read,
        job: false, idempotent: true, open_world: true,
        "Last log lines of a deployed app's services, secrets redacted");
    type Output = AppLogsView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        let target = self.target(orch).await?;
        let tail = self.tail();
        let redactor = vault_redactor(orch)?;
        let fetched = join_all(
            target
                .services
                .iter()
                .map(|s| target.platform.service_logs(&target.stack, s, tail)),
        )
        .await;
        let mut lines = Vec::new();
        let mut truncated = false;
        for (service, logs) in target.services.iter().zip(fetched) {
            for line in logs.map_err(platform_err)? {
                let (line, cut) = clean(&redactor, &line);
                truncated |= cut;
                lines.push(AppLogLine {
                    service: service.clone(),
                    line,
                });
            }
        }
        truncated |= keep_within(&mut lines, LOGS_MAX_BYTES);
        Ok(AppLogsView {
            app: self.app,
            stack: target.stack,
            lines,
            truncated,
        })
    }
}

impl AppLogs {
    fn tail(&self) -> usize {
        self.tail.unwrap_or(LOGS_DEFAULT_TAIL)
    }

    /// Checks every field before anything is reached: `tail` in range, `service` on the
    /// allowlist (it lands in a command line), the server known and the app deployed there.
    fn validate(&self, orch: &Orchestrator) -> Result<DeploymentRecord> {
        if !(1..=LOGS_MAX_TAIL).contains(&self.tail()) {
            return Err(CoreError::invalid(
                "tail",
                format!("{} is out of range; give 1-{LOGS_MAX_TAIL}", self.tail()),
            ));
        }
        if let Some(service) = &self.service {
            validate_name(NameKind::Service, service).map_err(|_| {
                CoreError::invalid(
                    "service",
                    format!(
                        "{service:?} is not allowed; use {}",
                        NameKind::Service.allowed()
                    ),
                )
            })?;
        }
        deployment(orch, &self.server, &self.app)
    }

    /// The app's stack on the swarm and the services to read: the one asked for (which must
    /// be in the stack) or all of them.
    async fn target(&self, orch: &Orchestrator) -> Result<LogTarget> {
        let record = self.validate(orch)?;
        let platform = orch.platform(&self.server).await?;
        let status = match platform.stack_status(&record.stack_name).await {
            Err(PlatformError::NotFound { .. }) => {
                return Err(CoreError::NotFound {
                    kind: "stack",
                    name: record.stack_name.clone(),
                    hint: format!(
                        " on the swarm of {}; {} is recorded as deployed there, but does not run \
                         (redeploy it with `livchat app deploy {} {}`)",
                        self.server, self.app, self.server, self.app
                    ),
                });
            }
            other => other.map_err(platform_err)?,
        };
        let all: Vec<String> = status.services.iter().map(|s| s.name.clone()).collect();
        let services = match &self.service {
            None => all,
            Some(wanted) if all.contains(wanted) => vec![wanted.clone()],
            Some(wanted) => {
                return Err(CoreError::NotFound {
                    kind: "service",
                    name: wanted.clone(),
                    hint: format!(" in app {}; its services: {}", self.app, all.join(", ")),
                });
            }
        };
        Ok(LogTarget {
            platform,
            stack: record.stack_name,
            services,
        })
    }

    /// Streams the logs (the last `tail` lines of each service, then every new line), each
    /// line redacted, to `on_line` until `cancel`, which is the normal end. Validated like
    /// `run`; a service that fails ends the others too.
    pub async fn follow(
        self,
        orch: &Orchestrator,
        cancel: CancellationToken,
        on_line: impl Fn(AppLogLine) + Send + Sync + 'static,
    ) -> Result<()> {
        let target = self.target(orch).await?;
        let tail = self.tail();
        let redactor = Arc::new(vault_redactor(orch)?);
        let on_line = Arc::new(on_line);
        // One failing service stops the others rather than leaving them streaming alone.
        let stop = cancel.child_token();
        let follows = target.services.iter().map(|service| {
            let (redactor, on_line, name) = (redactor.clone(), on_line.clone(), service.clone());
            let sink: LogSink = Arc::new(move |line: String| {
                let (line, _) = clean(&redactor, &line);
                on_line(AppLogLine {
                    service: name.clone(),
                    line,
                });
            });
            let (platform, stop) = (target.platform.clone(), stop.clone());
            let stack = target.stack.clone();
            let service = service.clone();
            async move {
                let result = platform
                    .follow_service_logs(&stack, &service, tail, sink, stop.clone())
                    .await;
                if result.is_err() {
                    stop.cancel();
                }
                result
            }
        });
        for result in join_all(follows).await {
            result.map_err(platform_err)?;
        }
        Ok(())
    }
}

struct LogTarget {
    platform: Arc<dyn ContainerPlatform>,
    stack: String,
    services: Vec<String>,
}

/// The record of `app` on `server`: the server must exist and the app be deployed there.
fn deployment(orch: &Orchestrator, server: &str, app: &str) -> Result<DeploymentRecord> {
    orch.deployed(server)?
        .into_iter()
        .find(|r| r.app == app)
        .ok_or_else(|| CoreError::NotFound {
            kind: "app",
            name: app.to_string(),
            hint: format!(" on server {server}; see `livchat app deployed {server}`"),
        })
}

/// Every value in the vault, to hide from what the server sends back. Not only the app's
/// own: a log line can carry a dependency's password (a failed connection string) or the
/// server's, and which secrets reach a container is the stack file's business, not known
/// here. The vault is small and cached, so reading it per call is cheap.
fn vault_redactor(orch: &Orchestrator) -> Result<Redactor> {
    let redactor = Redactor::default();
    for name in orch.secrets.names()? {
        if let Some(value) = orch.secrets.get(&name)? {
            redactor.add(&value);
        }
    }
    Ok(redactor)
}

/// The line redacted, then cut at [`LOG_LINE_MAX_BYTES`]; whether it was cut.
fn clean(redactor: &Redactor, line: &str) -> (String, bool) {
    let mut line = redactor.redact(line);
    if line.len() <= LOG_LINE_MAX_BYTES {
        return (line, false);
    }
    let mut end = LOG_LINE_MAX_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line.truncate(end);
    line.push_str(" [line cut]");
    (line, true)
}

/// Drops lines from the start until the rest fits in `max` bytes; whether any was dropped.
fn keep_within(lines: &mut Vec<AppLogLine>, max: usize) -> bool {
    let mut total: usize = lines.iter().map(|l| l.line.len() + 1).sum();
    let mut drop = 0;
    while total > max && drop < lines.len() {
        total -= lines[drop].line.len() + 1;
        drop += 1;
    }
    lines.drain(..drop);
    drop > 0
}

fn status_view(record: DeploymentRecord, status: &StackStatus, r: &Redactor) -> AppStatusView {
    let services = status
        .services
        .iter()
        .map(|s| ServiceStatusView {
            nodes: s.nodes.clone(),
            name: s.name.clone(),
            image: s.image.clone(),
            mode: match s.mode {
                ServiceMode::Replicated => "replicated".into(),
                ServiceMode::Global => "global".into(),
            },
            running: s.running_replicas,
            desired: s.desired_replicas,
            update_state: s.update.as_ref().map(|u| update_state(&u.state)),
            update_message: s
                .update
                .as_ref()
                .map(|u| r.redact(u.message.trim()))
                .filter(|m| !m.is_empty()),
            last_error: s.last_error.as_deref().map(|e| r.redact(e)),
            failed_tasks: s.failed_tasks,
        })
        .collect();
    AppStatusView {
        app: record.app,
        stack: record.stack_name,
        state: if status.is_healthy() {
            LiveState::Running
        } else {
            LiveState::Degraded
        },
        services,
    }
}

/// The swarm's own word for the state.
fn update_state(state: &UpdateState) -> String {
    match state {
        UpdateState::Updating => "updating",
        UpdateState::Paused => "paused",
        UpdateState::Completed => "completed",
        UpdateState::RollbackStarted => "rollback_started",
        UpdateState::RollbackPaused => "rollback_paused",
        UpdateState::RollbackCompleted => "rollback_completed",
        UpdateState::Other(other) => other,
    }
    .to_string()
}

fn platform_err(e: PlatformError) -> CoreError {
    match e {
        PlatformError::Invalid { field, reason } => CoreError::invalid(field, reason),
        PlatformError::Cancelled => CoreError::Cancelled,
        PlatformError::Remote(e) => CoreError::Remote(e),
        other => CoreError::Platform(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn a_long_line_is_cut_after_redaction_so_a_secret_at_the_cut_is_still_hidden() {
        let redactor = Redactor::default();
        let secret = "s3cret-value-long";
        redactor.add(&SecretString::from(secret.to_string()));
        let line = format!("{}{secret}", "x".repeat(LOG_LINE_MAX_BYTES - 4));
        let (clean_line, cut) = clean(&redactor, &line);
        assert!(cut);
        assert!(
            !clean_line.contains("s3cr"),
            "{}",
            &clean_line[LOG_LINE_MAX_BYTES - 8..]
        );
        assert!(clean_line.ends_with(" [line cut]"));
    }

    #[test]
    fn the_answer_keeps_its_newest_lines_within_the_byte_bound() {
        let line = |n: usize| AppLogLine {
            service: "web".into(),
            line: format!("line {n}"),
        };
        let mut lines: Vec<AppLogLine> = (0..10).map(line).collect();
        assert!(!keep_within(&mut lines, 1000));
        assert_eq!(lines.len(), 10);
        assert!(keep_within(&mut lines, 21));
        assert_eq!(lines, vec![line(7), line(8), line(9)]);
    }
}
