//! Deploying rendered stacks on the dockerd harness's Swarm the way core does (Docker secrets
//! from stdin, `docker stack deploy`), and running commands in their containers.

use std::io::Write as _;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use fixtures::dockerd::Dockerd;
use livchat_apps::RenderedStack;
use secrecy::ExposeSecret;

/// Creates the stack's Docker secrets (values on stdin) and deploys it.
pub fn deploy(engine: &Dockerd, stack: &RenderedStack, dir: &Path) {
    for s in &stack.docker_secrets {
        let exists = engine
            .docker()
            .args(["secret", "inspect", &s.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        if exists {
            continue;
        }
        let mut child = engine
            .docker()
            .args(["secret", "create", &s.name, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(s.value.expose_secret().as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "secret {}", s.name);
    }
    let file = dir.join(format!("{}.yml", stack.stack));
    std::fs::write(&file, stack.compose().expose_secret()).unwrap();
    engine
        .docker_ok(&[
            "stack",
            "deploy",
            "-c",
            file.to_str().unwrap(),
            &stack.stack,
        ])
        .unwrap_or_else(|e| panic!("{}: {e:#}", stack.stack));
}

/// The running container of `service` (`<stack>_<name>`), waited for.
pub fn container(engine: &Dockerd, service: &str, deadline: Instant) -> String {
    loop {
        let out = engine
            .docker_ok(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.swarm.service.name={service}"),
            ])
            .unwrap_or_default();
        if let Some(id) = out.lines().next().filter(|l| !l.is_empty()) {
            return id.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{service} never started:\n{}",
            engine
                .docker_ok(&["service", "ps", "--no-trunc", service])
                .unwrap_or_else(|e| format!("{e:#}"))
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `docker exec -i` of `argv` in `container` with `stdin`, as core's `exec_in_service` runs a
/// step's command; `env` names variables passed on from this process (values not in argv).
pub fn exec(
    engine: &Dockerd,
    container: &str,
    argv: &[String],
    stdin: &str,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = engine.docker();
    cmd.args(["exec", "-i"]);
    for &(k, v) in env {
        cmd.args(["-e", k]).env(k, v);
    }
    let mut child = cmd
        .arg(container)
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs a fixed shell script in a container; stdout and stderr together, and whether it
/// succeeded.
pub fn sh(engine: &Dockerd, container: &str, script: &str) -> (bool, String) {
    let out = engine
        .docker()
        .args(["exec", container, "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.success(), text(&out))
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Retries `check` until it returns true or `deadline` passes (then panics with `what`).
pub fn wait_until(deadline: Instant, what: &str, mut check: impl FnMut() -> (bool, String)) {
    loop {
        let (ok, out) = check();
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {out}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
