//! Following a service's logs (`docker service logs --follow`): the lines stream to a callback
//! as the swarm hands them over, until the caller cancels. The bounded read of the last lines
//! is [`crate::ContainerPlatform::service_logs`]; this is its open-ended sibling, kept apart
//! from `swarm/mod.rs` because it owns a long-lived channel rather than one command's result.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::command::{Command, NameKind, validate_name};
use crate::executor::{ExecOptions, LineSink, OutputLine, RemoteError, RemoteExecutor};
use crate::platform::{LogSink, PlatformError};

/// The longest a follow runs: a terminal left open must not hold a channel (and a
/// `docker service logs` on the server) for ever.
pub const FOLLOW_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// `docker service logs --raw --follow --tail N SERVICE`: without `--raw` every line would
/// start with the task's name and node, which the caller already knows.
pub fn follow_command(full_service: &str, tail: usize) -> Command {
    Command::new("docker").args([
        "service".to_string(),
        "logs".into(),
        "--raw".into(),
        "--follow".into(),
        "--tail".into(),
        tail.to_string(),
        full_service.into(),
    ])
}

/// Streams the last `tail` lines of `<stack>_<service>` and then every new one to `sink`.
/// A cancel is the normal end (`Ok`); so is the service going away. The executor kills the
/// remote `docker service logs` on cancel, so nothing is left following on the server.
pub(crate) async fn follow(
    executor: &dyn RemoteExecutor,
    stack: &str,
    service: &str,
    tail: usize,
    sink: LogSink,
    cancel: CancellationToken,
) -> Result<(), PlatformError> {
    let stack = validate_name(NameKind::Stack, stack)?;
    let service = validate_name(NameKind::Service, service)?;
    let cmd = follow_command(&format!("{stack}_{service}"), tail);
    tracing::debug!(command = %cmd, "docker");
    let on_line: LineSink = Arc::new(move |line: OutputLine| sink(line.line));
    let options = ExecOptions {
        stdin: None,
        timeout: FOLLOW_LIMIT,
        cancel,
        on_line: Some(on_line),
    };
    match executor.exec(&cmd, options).await {
        Err(RemoteError::Cancelled) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(out) if out.success() => Ok(()),
        Ok(out) if super::is_not_found(&out) => Err(PlatformError::NotFound {
            what: format!("service {service} in stack {stack}"),
        }),
        Ok(out) => Err(super::command_failed(&cmd, &out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_is_one_exact_argv() {
        let cmd = follow_command("app_web", 100);
        assert_eq!(cmd.program, "docker");
        assert_eq!(
            cmd.args.join(" "),
            "service logs --raw --follow --tail 100 app_web"
        );
    }
}
