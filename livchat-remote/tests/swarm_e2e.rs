//! Swarm over real SSH against a real Docker engine in Swarm mode (the dockerd harness), with
//! images built locally. Services use `endpoint_mode: dnsrr` because the build machines have
//! no IPVS (the documented option for such kernels; see `livchat_remote::platform`).
//!
//! Needs root, `docker.io`, `openssh-server`, `busybox-static` and `debootstrap` (installed by
//! `cargo xtask setup`); skipped with a message when they are missing, failing under
//! `LIVCHAT_REAL_TESTS=1`.

mod swarm_support;

use std::time::Duration;

use livchat_remote::{
    ContainerPlatform, NetworkSpec, PlatformError, SecretDelivery, ServiceExec, StackSecret,
    StackSpec,
};
use secrecy::{SecretBox, SecretString};
use swarm_support::{image, patient, rig};
use tokio_util::sync::CancellationToken;

fn random_password() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// Postgres as the `postgres` user: initdb on first start, listening on all interfaces,
/// password logins from the network, healthy when `pg_isready` says so. `$$` is compose's
/// escape for a literal `$`.
fn postgres_stack(image: &str, network: &str) -> String {
    format!(
        r#"version: "3.8"
services:
  db:
    image: {image}
    user: postgres
    command:
      - sh
      - -c
      - |
        set -e
        export PGDATA=/var/lib/postgresql/data
        if [ ! -s "$$PGDATA/PG_VERSION" ]; then
          initdb -D "$$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
          echo "host all all all scram-sha-256" >> "$$PGDATA/pg_hba.conf"
        fi
        exec postgres -D "$$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
    healthcheck:
      test: ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres"]
      interval: 2s
      timeout: 5s
      retries: 60
    deploy:
      endpoint_mode: dnsrr
    networks: [shared]
networks:
  shared:
    external: true
    name: {network}
"#
    )
}

/// A client that reads its password from a Docker secret and queries the database over the
/// overlay network, by service name, printing the answer.
fn client_stack(image: &str, network: &str, secret: &str) -> String {
    format!(
        r#"version: "3.8"
services:
  client:
    image: {image}
    command:
      - sh
      - -c
      - |
        export PGPASSWORD="$$(cat /run/secrets/{secret})"
        while true; do
          if psql -h db -U app -d appdb -tAc "select 'answer=' || 6*7"; then sleep 30; else sleep 1; fi
        done
    secrets: [{secret}]
    deploy:
      endpoint_mode: dnsrr
    networks: [shared]
networks:
  shared:
    external: true
    name: {network}
secrets:
  {secret}:
    external: true
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stack_is_deployed_over_ssh_gets_a_database_through_exec_and_serves_a_client() {
    let Some(rig) = rig().await else { return };
    let Some(pg_image) = image(rig.engine, fixtures::images::pgredis).await else {
        return;
    };
    let platform = rig.platform();
    let network = NetworkSpec::overlay("lc_e2e_net");
    platform.ensure_network(&network).await.unwrap();
    platform
        .ensure_network(&network)
        .await
        .expect("ensuring an existing network is a no-op");

    platform
        .deploy_stack(&StackSpec {
            name: "pg".into(),
            compose_yaml: postgres_stack(pg_image, &network.name),
            secrets: Vec::new(),
        })
        .await
        .unwrap();
    let stack_file = rig.stacks_dir.path().join("stacks/pg.yml");
    let mode = std::fs::metadata(&stack_file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600,
        "stack files are private"
    );
    let status = platform
        .wait_healthy("pg", patient(Duration::from_secs(180)))
        .await
        .unwrap_or_else(|e| panic!("postgres did not become healthy: {e}"));
    assert_eq!(status.service("db").unwrap().running_replicas, 1);

    // The password travels on stdin only.
    let password = random_password();
    let sql = format!("CREATE USER app PASSWORD '{password}';\nCREATE DATABASE appdb OWNER app;\n");
    let out = platform
        .exec_in_service(ServiceExec {
            stack: "pg".into(),
            service: "db".into(),
            argv: [
                "psql",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "/tmp",
                "-U",
                "postgres",
            ]
            .map(String::from)
            .to_vec(),
            stdin: Some(SecretBox::new(sql.into_bytes().into_boxed_slice())),
            user: Some("postgres".into()),
            timeout: Duration::from_secs(60),
            cancel: CancellationToken::new(),
        })
        .await
        .unwrap();
    assert!(
        out.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let secret = "e2e_app_db_password";
    platform
        .deploy_stack(&StackSpec {
            name: "client".into(),
            compose_yaml: client_stack(pg_image, &network.name, secret),
            secrets: vec![StackSecret {
                name: secret.into(),
                value: SecretString::from(password.clone()),
                delivery: SecretDelivery::DockerSecret,
            }],
        })
        .await
        .unwrap();
    platform
        .wait_healthy("client", patient(Duration::from_secs(120)))
        .await
        .unwrap();
    let mut answered = false;
    let mut logs = Vec::new();
    for _ in 0..60 {
        logs = platform.service_logs("client", "client", 20).await.unwrap();
        if logs.iter().any(|l| l.trim() == "answer=42") {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        answered,
        "the client never got an answer over the overlay; its logs: {logs:#?}"
    );

    for name in ["pg", "client"] {
        assert_eq!(platform.stack_status(name).await.unwrap().name, name);
    }

    platform.remove_stack("client").await.unwrap();
    platform.remove_stack("pg").await.unwrap();
    platform
        .remove_stack("pg")
        .await
        .expect("removing an absent stack succeeds");
    assert!(matches!(
        platform.stack_status("pg").await,
        Err(PlatformError::NotFound { .. })
    ));
    assert!(!stack_file.exists(), "the stack file is removed with it");
    // The password never reached a command line.
    let commands = rig.commands();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("docker secret create e2e_app_db_password"))
    );
    assert!(
        commands.iter().all(|c| !c.contains(&password)),
        "the password appears in a command: {commands:#?}"
    );
}

/// `SwarmOverSsh` passes the `ContainerPlatform` conformance suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_over_ssh_passes_the_platform_conformance_suite() {
    let Some(rig) = rig().await else { return };
    let Some(busybox) = image(rig.engine, fixtures::images::busybox).await else {
        return;
    };
    swarm_support::conformance::check_platform(&rig.platform(), busybox, "sw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_fails_the_wait_with_the_task_error() {
    let Some(rig) = rig().await else { return };
    let platform = rig.platform();
    platform
        .deploy_stack(&StackSpec {
            name: "ghost".into(),
            compose_yaml:
                "version: \"3.8\"\nservices:\n  app:\n    image: livchat-test/does-not-exist:1\n"
                    .into(),
            secrets: Vec::new(),
        })
        .await
        .unwrap();
    let options = swarm_support::patient(Duration::from_secs(120));
    let err = platform
        .wait_healthy(
            "ghost",
            livchat_remote::WaitOptions {
                max_task_failures: 2,
                ..options
            },
        )
        .await
        .unwrap_err();
    platform.remove_stack("ghost").await.unwrap();
    match err {
        PlatformError::ServiceFailed { service, error, .. } => {
            assert_eq!(service, "app");
            assert!(error.contains("No such image"), "{error}");
        }
        other => panic!("expected the task error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exiting_command_fails_the_wait_and_its_output_is_in_the_logs() {
    let Some(rig) = rig().await else { return };
    let Some(busybox) = image(rig.engine, fixtures::images::busybox).await else {
        return;
    };
    let platform = rig.platform();
    let yaml = format!(
        r#"version: "3.8"
services:
  app:
    image: {busybox}
    command: ["sh", "-c", "echo boom >&2; exit 3"]
    deploy:
      endpoint_mode: dnsrr
      restart_policy: {{condition: on-failure, delay: 1s}}
"#
    );
    platform
        .deploy_stack(&StackSpec {
            name: "crash".into(),
            compose_yaml: yaml,
            secrets: Vec::new(),
        })
        .await
        .unwrap();
    let err = platform
        .wait_healthy("crash", patient(Duration::from_secs(120)))
        .await
        .unwrap_err();
    let logs = platform.service_logs("crash", "app", 10).await.unwrap();
    platform.remove_stack("crash").await.unwrap();
    match err {
        PlatformError::ServiceFailed { service, error, .. } => {
            assert_eq!(service, "app");
            assert!(error.contains("non-zero exit (3)"), "{error}");
        }
        other => panic!("expected the task error, got {other}"),
    }
    assert!(logs.iter().any(|l| l.contains("boom")), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_service_times_out_with_the_schedulers_reason() {
    let Some(rig) = rig().await else { return };
    let Some(busybox) = image(rig.engine, fixtures::images::busybox).await else {
        return;
    };
    let platform = rig.platform();
    let yaml = format!(
        r#"version: "3.8"
services:
  app:
    image: {busybox}
    command: ["sleep", "3600"]
    deploy:
      placement:
        constraints: ["node.labels.livchat_nowhere == yes"]
"#
    );
    platform
        .deploy_stack(&StackSpec {
            name: "pending".into(),
            compose_yaml: yaml,
            secrets: Vec::new(),
        })
        .await
        .unwrap();
    let err = platform
        .wait_healthy("pending", patient(Duration::from_secs(8)))
        .await
        .unwrap_err();
    platform.remove_stack("pending").await.unwrap();
    match err {
        PlatformError::Timeout { status, .. } => {
            let app = status.service("app").expect("the service is listed");
            assert_eq!((app.running_replicas, app.desired_replicas), (0, 1));
            let reason = app.last_error.clone().unwrap_or_default();
            assert!(reason.contains("no suitable node"), "{reason:?}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_of_another_driver_is_refused_by_name() {
    let Some(rig) = rig().await else { return };
    rig.engine
        .docker_ok(&["network", "create", "--driver", "bridge", "lc_local_bridge"])
        .unwrap();
    let err = rig
        .platform()
        .ensure_network(&NetworkSpec::overlay("lc_local_bridge"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("lc_local_bridge exists with driver bridge"),
        "{err}"
    );
}

/// A one-service stack on busybox: version `version` either keeps running or exits 3 two
/// seconds after it starts. `stop_grace_period` because a shell as PID 1 ignores SIGTERM.
fn versioned_stack(busybox: &str, version: u32, crashes: bool) -> StackSpec {
    let command = if crashes {
        "sleep 2; echo crashing >&2; exit 3"
    } else {
        "exec sleep 3600"
    };
    StackSpec {
        name: "redeploy".into(),
        compose_yaml: format!(
            r#"version: "3.8"
services:
  app:
    image: {busybox}
    command: ["sh", "-c", "{command}"]
    environment:
      VERSION: "{version}"
    stop_grace_period: 1s
    deploy:
      endpoint_mode: dnsrr
      restart_policy: {{condition: any, delay: 1s}}
"#
        ),
        secrets: Vec::new(),
    }
}

/// The VERSION of the task that serves now.
async fn serving_version(platform: &livchat_remote::SwarmOverSsh) -> String {
    let out = platform
        .exec_in_service(ServiceExec {
            stack: "redeploy".into(),
            service: "app".into(),
            argv: ["sh", "-c", "echo $VERSION"].map(String::from).to_vec(),
            stdin: None,
            user: None,
            timeout: Duration::from_secs(30),
            cancel: CancellationToken::new(),
        })
        .await
        .expect("a running task");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_redeploy_fails_and_rolls_back_and_the_fixed_version_then_completes() {
    let Some(rig) = rig().await else { return };
    let Some(busybox) = image(rig.engine, fixtures::images::busybox).await else {
        return;
    };
    let platform = rig.platform();
    let deploy = |version, crashes| {
        let spec = versioned_stack(busybox, version, crashes);
        let platform = &platform;
        async move { platform.deploy_stack(&spec).await.unwrap() }
    };
    // Generous: on a loaded 2-core machine three crash cycles of version 2 took over 2 minutes.
    let wait = || platform.wait_healthy("redeploy", patient(Duration::from_secs(300)));

    deploy(1, false).await;
    wait().await.expect("version 1 is healthy");
    assert_eq!(serving_version(&platform).await, "1");

    // Version 2 crashes a moment after it starts: the wait must not be fooled by version 1's
    // task, still running while the update begins. Swarm pauses the update when the crash
    // falls in its monitor window; on a loaded machine the update can complete first, and
    // then the crashing tasks of the new spec fail the wait.
    deploy(2, true).await;
    let err = wait().await.expect_err("a crashing version is not healthy");
    let paused = matches!(&err, PlatformError::UpdateFailed { service, message, .. }
        if service == "app" && message.contains("paused"));
    let crashed = matches!(&err, PlatformError::ServiceFailed { service, error, .. }
        if service == "app" && error.contains("non-zero exit (3)"));
    assert!(paused || crashed, "{err}");
    // What a failed redeploy leaves: version 1, serving again.
    let status = platform
        .rollback_stack("redeploy", patient(Duration::from_secs(120)))
        .await
        .expect("the rollback to version 1 completes");
    assert_eq!(status.service("app").unwrap().running_replicas, 1);
    assert_eq!(serving_version(&platform).await, "1");
    platform
        .rollback_stack("redeploy", patient(Duration::from_secs(60)))
        .await
        .expect("a second rollback changes nothing");
    assert_eq!(serving_version(&platform).await, "1");

    // The fixed version completes although version 2's failed tasks are in the history.
    deploy(3, false).await;
    wait()
        .await
        .expect("version 3 is healthy after the rollback");
    assert_eq!(serving_version(&platform).await, "3");

    // Without a rollback in between: a crashing version 4 leaves the update paused; deploying
    // version 3 again completes (version 4's failures are of an older spec).
    deploy(4, true).await;
    wait().await.expect_err("version 4 crashes");
    deploy(3, false).await;
    wait().await.expect("version 3 again is healthy");
    assert_eq!(serving_version(&platform).await, "3");
    platform.remove_stack("redeploy").await.unwrap();
}

/// The processes of the `execkill` stack's task, as busybox `ps` lists them.
async fn task_processes(platform: &livchat_remote::SwarmOverSsh) -> String {
    let out = platform
        .exec_in_service(ServiceExec {
            stack: "execkill".into(),
            service: "app".into(),
            argv: vec!["ps".into()],
            stdin: None,
            user: None,
            timeout: Duration::from_secs(30),
            cancel: CancellationToken::new(),
        })
        .await
        .expect("a running task");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue #12: killing the `docker exec` client leaves its command running in the container,
/// so a cancelled or timed-out step would go on working on the server. Both must stop it,
/// children included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_or_timed_out_exec_leaves_no_process_in_the_container() {
    let Some(rig) = rig().await else { return };
    let Some(busybox) = image(rig.engine, fixtures::images::busybox).await else {
        return;
    };
    let platform = rig.platform();
    let spec = StackSpec {
        name: "execkill".into(),
        compose_yaml: format!(
            r#"version: "3.8"
services:
  app:
    image: {busybox}
    command: ["sh", "-c", "exec sleep 3600"]
    stop_grace_period: 1s
    deploy:
      endpoint_mode: dnsrr
"#
        ),
        secrets: Vec::new(),
    };
    platform.deploy_stack(&spec).await.unwrap();
    platform
        .wait_healthy("execkill", patient(Duration::from_secs(120)))
        .await
        .expect("the stack is healthy");
    let exec = |argv: &str, timeout: u64, cancel: CancellationToken| ServiceExec {
        stack: "execkill".into(),
        service: "app".into(),
        argv: ["sh", "-c", argv].map(String::from).to_vec(),
        stdin: None,
        user: None,
        timeout: Duration::from_secs(timeout),
        cancel,
    };

    // Cancelled once the command and its child run.
    let cancel = CancellationToken::new();
    let running = {
        let platform = rig.platform();
        let exec = exec("sleep 603 & sleep 601; wait", 300, cancel.clone());
        tokio::spawn(async move { platform.exec_in_service(exec).await })
    };
    let mut seen = String::new();
    for _ in 0..50 {
        seen = task_processes(&platform).await;
        if seen.contains("sleep 601") && seen.contains("sleep 603") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen.contains("sleep 601"), "the command never ran: {seen}");
    cancel.cancel();
    let err = running.await.unwrap().expect_err("a cancelled exec fails");
    assert!(err.to_string().contains("cancelled"), "{err}");
    let left = task_processes(&platform).await;
    assert!(
        !left.contains("sleep 601") && !left.contains("sleep 603"),
        "the cancelled command still runs in the container: {left}"
    );

    // Timed out.
    let err = platform
        .exec_in_service(exec("sleep 602", 2, CancellationToken::new()))
        .await
        .expect_err("the exec times out");
    assert!(err.to_string().contains("timed out"), "{err}");
    let left = task_processes(&platform).await;
    assert!(
        !left.contains("sleep 602"),
        "the timed-out command still runs in the container: {left}"
    );
    platform.remove_stack("execkill").await.unwrap();
}
