//! The whole setup plan over real SSH against a real Debian 12 host (fixtures::sshd::DebianHost:
//! a debootstrap root filesystem in its own namespaces, reaching Debian's mirror), then a second
//! run that must skip every step. See `livchat_remote::setup` for which steps this runs for real.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fixtures::sshd::DebianHost;
use livchat_remote::command::Command;
use livchat_remote::setup::{
    DockerSource, RunOptions, SetupConfig, StepProgress, StepState, detect_os, plan, run_plan,
};
use livchat_remote::{
    ExecOptions, HostKeyPolicy, RemoteExecutor, SshConnector, SshExecutor, SshTarget,
};
use secrecy::SecretString;

async fn run_text(exec: &SshExecutor, script: &str) -> String {
    let out = exec
        .exec(
            &Command::new("sh").args(["-c", script]),
            ExecOptions {
                timeout: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        out.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn the_plan_sets_up_a_debian_host_and_a_second_run_skips_every_step() {
    let Some(host) = DebianHost::start() else {
        return;
    };
    let target = SshTarget {
        name: "debian-host".into(),
        host: host.host(),
        port: host.port(),
        user: host.user().into(),
    };
    let key = SecretString::from(host.client_private_key().to_owned());
    let (exec, fingerprint) = SshConnector::default()
        .connect_ssh(&target, &key, &HostKeyPolicy::TrustOnFirstUse)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", host.log()));
    assert_eq!(fingerprint, host.host_key_fingerprint());

    let os = detect_os(exec.as_ref() as &dyn RemoteExecutor)
        .await
        .unwrap();
    assert_eq!((os.id(), os.codename.as_str()), ("debian", "bookworm"));

    let mut config = SetupConfig::new("livchat-test-1", host.addr().into()).unwrap();
    // download.docker.com is unreachable from build machines; the official repository
    // variant is covered by tests/setup_plan.rs as checked text.
    config.docker = DockerSource::Distribution;
    config.timezone =
        livchat_remote::validate_name(livchat_remote::NameKind::Timezone, "America/Sao_Paulo")
            .unwrap();
    let steps = plan(&config, &os).unwrap();

    let progress = Arc::new(Mutex::new(Vec::<StepProgress>::new()));
    let sink = progress.clone();
    let options = RunOptions {
        step_timeout: Duration::from_secs(900),
        on_progress: Some(Arc::new(move |p| {
            eprintln!("[{}/{}] {} {:?}", p.index, p.total, p.name, p.state);
            sink.lock().unwrap().push(p);
        })),
        ..Default::default()
    };
    let first = run_plan(exec.as_ref(), &steps, options.clone())
        .await
        .unwrap_or_else(|e| panic!("first run: {e}"));
    eprintln!(
        "first run: {:?} in {:?}, {} round trips",
        first.steps, first.elapsed, first.round_trips
    );
    // cloud-init is absent from the host, so its check passes; everything else really ran.
    let expected_first: Vec<(&str, StepState)> = steps
        .iter()
        .map(|s| {
            let state = if s.id == "cloud_init" {
                StepState::Skipped
            } else {
                StepState::Ran
            };
            (s.id, state)
        })
        .collect();
    assert_eq!(first.steps, expected_first);

    // What the steps did, observed independently of their own checks.
    assert_eq!(
        run_text(&exec, "hostname; cat /etc/hostname").await,
        "livchat-test-1\nlivchat-test-1"
    );
    assert_eq!(
        run_text(&exec, "cat /etc/timezone; readlink /etc/localtime").await,
        "America/Sao_Paulo\n/usr/share/zoneinfo/America/Sao_Paulo"
    );
    assert_eq!(
        run_text(&exec, "cat /etc/docker/daemon.json").await,
        r#"{"log-driver":"json-file","log-opts":{"max-file":"3","max-size":"10m"}}"#
    );
    assert_eq!(
        run_text(&exec, "docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.NodeAddr}} {{.LoggingDriver}}'").await,
        format!("active {} json-file", host.addr())
    );
    assert_eq!(
        run_text(&exec, "docker network inspect --format '{{.Driver}} {{.Attachable}} {{.Scope}}' livchat_network").await,
        "overlay true swarm"
    );
    let ufw = run_text(&exec, "ufw status verbose").await;
    assert!(
        ufw.contains("Status: active") && ufw.contains("Default: deny (incoming)"),
        "{ufw}"
    );

    // The second run changes nothing: every check in one round trip, counted by the executor.
    let before = exec.round_trips();
    let second = run_plan(exec.as_ref(), &steps, options).await.unwrap();
    eprintln!(
        "second run: {:?} in {:?}, {} round trips",
        second.steps, second.elapsed, second.round_trips
    );
    assert!(
        second.steps.iter().all(|(_, s)| *s == StepState::Skipped),
        "{:?}",
        second.steps
    );
    assert_eq!(second.round_trips, 1);
    assert_eq!(exec.round_trips() - before, 1);
}

/// A server added with `--port 2222`: its sshd listens there, not on 22. After the firewall
/// step, a new connection on that port must still get in (a firewall allowing only 22 would
/// drop it: the session in use survives, the next command times out).
#[tokio::test]
async fn the_firewall_allows_the_servers_own_ssh_port_and_a_new_connection_gets_in() {
    let Some(host) = DebianHost::start() else {
        return;
    };
    let key = SecretString::from(host.client_private_key().to_owned());
    let target = |port| SshTarget {
        name: "debian-host".into(),
        host: host.host(),
        port,
        user: host.user().into(),
    };
    let pinned = HostKeyPolicy::Pinned(host.host_key_fingerprint().to_owned());
    let (on_22, _) = SshConnector::default()
        .connect_ssh(&target(22), &key, &pinned)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", host.log()));
    // A second sshd of the host's own configuration (same host key), on port 2222 only. sshd
    // forks into the background before it binds its port, so wait (5 s at most) until it
    // listens: a connection before that is refused.
    run_text(
        &on_22,
        "/usr/sbin/sshd -p 2222 -o PidFile=/run/sshd-2222.pid || exit 1
        for _ in $(seq 50); do
          ss -Hltn 'sport = :2222' | grep -q . && exit 0
          sleep 0.1
        done
        echo 'sshd never listened on 2222' >&2; exit 1",
    )
    .await;
    let connector = SshConnector {
        connect_timeout: Duration::from_secs(20),
        ..SshConnector::default()
    };
    let (exec, _) = connector
        .connect_ssh(&target(2222), &key, &pinned)
        .await
        .unwrap_or_else(|e| panic!("port 2222 before the firewall: {e}"));

    let os = detect_os(exec.as_ref() as &dyn RemoteExecutor)
        .await
        .unwrap();
    let mut config = SetupConfig::new("livchat-port-1", host.addr().into()).unwrap();
    config.docker = DockerSource::Distribution;
    config.ssh_port = 2222;
    let steps: Vec<_> = plan(&config, &os)
        .unwrap()
        .into_iter()
        .filter(|s| ["apt_update", "base_packages", "firewall"].contains(&s.id))
        .collect();
    assert_eq!(steps.len(), 3);
    let options = RunOptions {
        step_timeout: Duration::from_secs(600),
        ..Default::default()
    };
    run_plan(exec.as_ref(), &steps, options)
        .await
        .unwrap_or_else(|e| panic!("apt update, ufw and the firewall: {e}"));

    let ufw = run_text(&exec, "ufw status verbose").await;
    assert!(
        ufw.contains("Status: active") && ufw.contains("Default: deny (incoming)"),
        "{ufw}"
    );
    assert!(ufw.contains("2222/tcp"), "{ufw}");
    firewall_check_sees_each_change(&exec).await;
    // The next command, on a new connection, as `livchat` would send it.
    let (again, _) = connector
        .connect_ssh(&target(2222), &key, &pinned)
        .await
        .unwrap_or_else(|e| panic!("a new connection on port 2222 after the firewall: {e}"));
    assert_eq!(run_text(&again, "echo in").await, "in");
}

/// The firewall check reads ufw's files and chains instead of running `ufw status`; it must
/// still see each way the firewall can drift from the plan, and pass again once ufw puts it
/// back.
async fn firewall_check_sees_each_change(exec: &SshExecutor) {
    let check = || async {
        let out = exec
            .exec(
                &Command::new("sh").args([
                    "-c",
                    livchat_remote::setup::scripts::FIREWALL_CHECK,
                    "sh",
                    "2222",
                ]),
                ExecOptions {
                    timeout: Duration::from_secs(60),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        out.success()
    };
    assert!(check().await, "the firewall the plan set up passes");
    for (drift, undo) in [
        ("ufw delete allow 443/tcp", "ufw allow 443/tcp"),
        ("ufw delete allow 2222/tcp", "ufw allow 2222/tcp"),
        ("ufw default allow incoming", "ufw default deny incoming"),
        ("ufw disable", "ufw --force enable"),
    ] {
        run_text(exec, drift).await;
        assert!(!check().await, "after `{drift}` the check must fail");
        run_text(exec, undo).await;
        assert!(check().await, "after `{undo}` the check passes again");
    }
}
