//! The docker commands, as data. Nothing here runs anything; names are validated by callers.

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
