//! `app_status` and `app_logs` end to end on real parts: the orchestrator's real SSH connector
//! and Swarm platform against a real sshd whose sessions talk to a real dockerd in Swarm mode
//! (the `fixtures` harnesses the Swarm tests of livchat-remote use), with a busybox image built
//! locally. The stack is deployed with the platform directly and recorded as an app, so the
//! test is about reading it back: replicas and update state from the swarm, the lines the
//! container prints, the vault secret it prints redacted, a follow that stops on cancel.
//!
//! Needs root, `docker.io`, `openssh-server` and `busybox-static` (installed by
//! `cargo xtask setup`); skipped with a message when they are missing, failing under
//! `LIVCHAT_REAL_TESTS=1`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fixtures::dockerd::Dockerd;
use fixtures::sshd::{Sshd, SshdOptions};
use livchat_core::model::CancellationToken;
use livchat_core::ops::{AppLogs, AppStatus, LiveState, Operation};
use livchat_core::{Config, ErrorKind, Orchestrator, OrchestratorBuilder};
use livchat_remote::ssh::SshConnector;
use livchat_remote::{
    Connector, ContainerPlatform, HostKeyPolicy, SecretDelivery, SshTarget, StackSecret, StackSpec,
    SwarmConfig, SwarmOverSsh, WaitOptions,
};
use livchat_store::{
    DeploymentRecord, DeploymentStatus, MemoryJobLogs, MemorySecrets, MemoryStore, ProviderKind,
    SecretStore, ServerRecord, ServerStatus, Store,
};
use secrecy::SecretString;

const SERVER: &str = "swarm-1";

/// A service that prints its version and the token it reads from a Docker secret, then idles.
/// `stop_grace_period` keeps the update short: `sleep` as PID 1 ignores SIGTERM.
fn probe_stack(image: &str, version: u32) -> String {
    format!(
        r#"version: "3.8"
services:
  web:
    image: {image}
    command: ["sh", "-c", "echo probe-started version=$$VERSION; echo token=$$(cat /run/secrets/probe_token); exec sleep 3600"]
    environment:
      VERSION: "{version}"
    secrets: [probe_token]
    stop_grace_period: 1s
    deploy:
      endpoint_mode: dnsrr
secrets:
  probe_token:
    external: true
"#
    )
}

fn random_token() -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().r#gen();
    format!("tok-{n:032x}")
}

struct Rig {
    _sshd: Sshd,
    platform: SwarmOverSsh,
    orch: Arc<Orchestrator>,
    store: Arc<MemoryStore>,
    _stacks: tempfile::TempDir,
}

/// The engine, an sshd talking to it, the platform the test deploys with, and an orchestrator
/// whose state records server `swarm-1` (host key pinned) with the sshd's key in its vault.
async fn rig() -> Option<Rig> {
    let engine = tokio::task::spawn_blocking(Dockerd::shared)
        .await
        .unwrap()?;
    let sshd = Sshd::start_with(SshdOptions {
        extra_config: vec![format!("SetEnv DOCKER_HOST={}", engine.host())],
        ..SshdOptions::default()
    })?;
    let target = SshTarget {
        name: SERVER.into(),
        host: sshd.host(),
        port: sshd.port(),
        user: sshd.user().to_string(),
    };
    let key = SecretString::from(sshd.client_private_key().to_string());
    let pin = HostKeyPolicy::Pinned(sshd.host_key_fingerprint().to_string());
    let connected = SshConnector::default()
        .connect(&target, &key, &pin)
        .await
        .expect("ssh connection to the harness sshd");
    let stacks = tempfile::tempdir().unwrap();
    let platform = SwarmOverSsh::with_config(
        connected.executor,
        SwarmConfig {
            stacks_dir: stacks.path().join("stacks").display().to_string(),
            ..SwarmConfig::default()
        },
    );

    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::new());
    secrets.set("ssh.swarm-1.private_key", key).unwrap();
    let record = ServerRecord {
        name: SERVER.into(),
        provider: ProviderKind::Manual,
        provider_id: None,
        host: target.host.clone(),
        ssh_port: target.port,
        ssh_user: target.user.clone(),
        ssh_key_secret: "ssh.swarm-1.private_key".into(),
        ssh_agent_key: None,
        host_key_fingerprint: Some(sshd.host_key_fingerprint().to_string()),
        dns: None,
        server_type: None,
        location: None,
        image: None,
        labels: Default::default(),
        status: ServerStatus::Ready,
        setup: Default::default(),
        platform: Default::default(),
        created_at: chrono::Utc::now(),
    };
    store
        .update("test server", &mut |s| {
            s.servers.insert(SERVER.into(), record.clone());
            Ok(())
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let orch = OrchestratorBuilder::new(
        Config::new(dir.path()),
        store.clone(),
        secrets,
        Arc::new(MemoryJobLogs::default()),
        livchat_apps::Catalog::builtin().unwrap(),
    )
    .build();
    Some(Rig {
        _sshd: sshd,
        platform,
        orch,
        store,
        _stacks: stacks,
    })
}

/// Records `app` (stack of the same name) as deployed on the server, as a deploy would.
fn record_app(store: &MemoryStore, app: &str) {
    let record = DeploymentRecord {
        app: app.into(),
        version: "1".into(),
        stack_name: app.into(),
        domains: Vec::new(),
        dns_record_ids: Vec::new(),
        dependencies: Vec::new(),
        status: DeploymentStatus::Running,
        via: Default::default(),
        deployed_at: chrono::Utc::now(),
    };
    store
        .update("test deployment", &mut |s| {
            s.deployments
                .entry(SERVER.into())
                .or_default()
                .insert(record.app.clone(), record.clone());
            Ok(())
        })
        .unwrap();
}

fn quick_wait() -> WaitOptions {
    WaitOptions {
        timeout: Duration::from_secs(90),
        poll_interval: Duration::from_millis(500),
        settle: Duration::from_secs(1),
        ..WaitOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_logs_of_a_deployed_app_come_live_from_the_swarm_with_its_secret_redacted() {
    let Some(rig) = rig().await else { return };
    let engine = Dockerd::shared().unwrap();
    let image = tokio::task::spawn_blocking(move || fixtures::images::busybox(engine))
        .await
        .unwrap()
        .expect("building the busybox image");
    let Some(image) = image else { return };
    let (platform, orch) = (&rig.platform, &rig.orch);
    let token = random_token();
    orch.secret_set("app.probe.token", SecretString::from(token.clone()))
        .unwrap();
    let deploy = |version| StackSpec {
        name: "probe".into(),
        compose_yaml: probe_stack(image, version),
        secrets: vec![StackSecret {
            name: "probe_token".into(),
            value: SecretString::from(token.clone()),
            delivery: SecretDelivery::DockerSecret,
        }],
    };
    platform.deploy_stack(&deploy(1)).await.unwrap();
    platform.wait_healthy("probe", quick_wait()).await.unwrap();
    // An update, so the swarm has an UpdateStatus to report.
    platform.deploy_stack(&deploy(2)).await.unwrap();
    platform.wait_healthy("probe", quick_wait()).await.unwrap();
    record_app(&rig.store, "probe");
    // Recorded, but its stack is not on the swarm.
    record_app(&rig.store, "gone");

    let status = AppStatus {
        server: SERVER.into(),
        app: None,
    }
    .run(orch)
    .await
    .unwrap();
    let states: Vec<_> = status.iter().map(|v| (v.app.as_str(), v.state)).collect();
    assert_eq!(
        states,
        [("gone", LiveState::Missing), ("probe", LiveState::Running)]
    );
    let web = &status[1].services[0];
    assert_eq!((web.name.as_str(), web.running, web.desired), ("web", 1, 1));
    assert_eq!(web.update_state.as_deref(), Some("completed"), "{web:?}");
    assert_eq!(web.image, image);

    // The lines the container printed, the token among them redacted. Docker hands logs over
    // a moment after the container wrote them: poll briefly.
    let request = AppLogs {
        server: SERVER.into(),
        app: "probe".into(),
        service: Some("web".into()),
        tail: Some(50),
    };
    let mut lines = Vec::new();
    for _ in 0..30 {
        lines = request.clone().run(orch).await.unwrap().lines;
        if lines.iter().any(|l| l.line == "probe-started version=2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    assert!(text.contains(&"probe-started version=2"), "{text:#?}");
    assert!(text.contains(&"token=[REDACTED]"), "{text:#?}");
    assert!(
        text.iter().all(|l| !l.contains(&token)),
        "the token reached the output: {text:#?}"
    );

    // A service the stack lacks is named with the ones it has.
    let err = AppLogs {
        service: Some("db".into()),
        ..request.clone()
    }
    .run(orch)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("its services: web"), "{err}");

    // Follow: lines stream (redacted) and the follow ends when cancelled.
    let cancel = CancellationToken::new();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (sink, stop) = (seen.clone(), cancel.clone());
    let follow = AppLogs {
        tail: Some(10),
        ..request
    }
    .follow(orch, cancel, move |l| {
        let done = l.line.starts_with("token=");
        sink.lock().unwrap().push(l.line);
        if done {
            stop.cancel();
        }
    });
    tokio::time::timeout(Duration::from_secs(60), follow)
        .await
        .expect("the follow ended once cancelled")
        .unwrap();
    let followed = seen.lock().unwrap().clone();
    assert!(
        followed.contains(&"token=[REDACTED]".to_string()),
        "{followed:#?}"
    );
    assert!(
        followed.iter().all(|l| !l.contains(&token)),
        "{followed:#?}"
    );

    platform.remove_stack("probe").await.unwrap();
    platform
        .remove_secrets(&["probe_token".to_string()])
        .await
        .unwrap();
    let err = AppLogs {
        server: SERVER.into(),
        app: "probe".into(),
        service: None,
        tail: None,
    }
    .run(orch)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// The orchestrator of the Portainer test: the rig's server set up with manual DNS, the apps of
/// `tests/portainer-apps`, Portainer reached at the fake's port through the SSH tunnel, stack
/// files of the SSH path in a temporary directory.
fn portainer_orchestrator(
    rig: &Rig,
    fake_port: u16,
    apps: &std::path::Path,
) -> (Arc<Orchestrator>, Arc<MemorySecrets>) {
    let mut server = rig.orch.server(SERVER).unwrap();
    server.dns = Some(livchat_store::DnsConfig {
        zone_name: "lab.example.com".into(),
        subdomain: None,
        mode: livchat_store::DnsMode::Manual,
    });
    rig.store
        .update("test dns", &mut |s| {
            s.servers.insert(SERVER.into(), server.clone());
            Ok(())
        })
        .unwrap();
    let secrets = Arc::new(MemorySecrets::new());
    let key = rig.orch.secret_get("ssh.swarm-1.private_key").unwrap();
    secrets.set("ssh.swarm-1.private_key", key).unwrap();
    let mut config = Config::new(rig._stacks.path());
    config.endpoint_mode = livchat_apps::EndpointMode::Dnsrr;
    config.health_timeout = Duration::from_secs(120);
    config.portainer_address = Some(livchat_remote::PortainerAddress::direct(
        "127.0.0.1",
        fake_port,
    ));
    let stacks_dir = rig._stacks.path().join("stacks").display().to_string();
    let orch = OrchestratorBuilder::new(
        config,
        rig.store.clone(),
        secrets.clone(),
        Arc::new(MemoryJobLogs::default()),
        livchat_apps::Catalog::load(apps.to_str()).unwrap(),
    )
    .platform_factory(Arc::new(move |executor| {
        Arc::new(SwarmOverSsh::with_config(
            executor,
            SwarmConfig {
                stacks_dir: stacks_dir.clone(),
                ..SwarmConfig::default()
            },
        )) as Arc<dyn ContainerPlatform>
    }))
    .build();
    (orch, secrets)
}

async fn deploy_hello(orch: &Arc<Orchestrator>, greeting: &str) -> livchat_store::JobRecord {
    let job = orch
        .start_deploy_app(SERVER, "hello", &[format!("greeting={greeting}")])
        .unwrap();
    orch.run_job(&job.id).await.unwrap()
}

/// What Portainer was asked to change: stack creations, updates and deletions.
fn stack_changes(fake: &fixtures::fake_portainer::FakePortainer) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET ") && !r.starts_with("POST /api/auth"))
        .collect()
}

async fn hello_logs_say(rig: &Rig, line: &str) -> bool {
    for _ in 0..40 {
        let logs = rig.platform.service_logs("hello", "web", 20).await;
        if logs.is_ok_and(|l| l.iter().any(|x| x.trim().ends_with(line))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// #18: once the infrastructure bundle runs (deployed over SSH) with Portainer's admin password
/// in the vault, an app's stack is created, updated and deleted through Portainer's API (the
/// fake applies it to the real swarm), reached through an SSH tunnel of the server's
/// connection; a wrong admin password fails the job before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_deployed_after_the_infrastructure_is_owned_by_portainer_until_undeployed() {
    let Some(rig) = rig().await else { return };
    let engine = Dockerd::shared().unwrap();
    let image = tokio::task::spawn_blocking(move || fixtures::images::busybox(engine))
        .await
        .unwrap()
        .expect("building the busybox image");
    if image.is_none() {
        return;
    }
    let password = "correct-horse-battery-staple";
    let fake = fixtures::fake_portainer::FakePortainer::start(
        fixtures::fake_portainer::FakePortainerOptions {
            admin: Some(("admin".into(), password.into())),
            docker_host: Some(engine.host()),
            docker_binary: fixtures::tools::find("docker"),
            ..Default::default()
        },
    )
    .unwrap();
    let fake_port: u16 = fake.url().rsplit(':').next().unwrap().parse().unwrap();
    let apps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/portainer-apps");
    let (orch, secrets) = portainer_orchestrator(&rig, fake_port, &apps);
    let key = "app.infrastructure.admin_password";
    secrets.set(key, SecretString::from(password)).unwrap();

    // The plan says which path each stack takes, before anything runs.
    let plan = orch
        .plan_deploy_app(SERVER, "hello", &["greeting=hello".into()])
        .unwrap();
    let lines = plan.resources.join("\n");
    assert!(
        lines.contains("stack infrastructure on swarm-1 over SSH (docker stack deploy): the infrastructure bundle always goes over SSH"),
        "{lines}"
    );
    assert!(
        lines.contains("stack hello on swarm-1 through Portainer's API (tunnel over SSH), owned by Portainer: Portainer (infrastructure) is deployed first by this job"),
        "{lines}"
    );

    let job = deploy_hello(&orch, "hello").await;
    assert_eq!(
        job.status,
        livchat_store::JobStatus::Completed,
        "{:?}",
        job.error
    );
    let via = |app: &str| rig.store.load().unwrap().deployments[SERVER][app].via;
    assert_eq!(via("infrastructure"), livchat_store::DeployedVia::Ssh);
    assert_eq!(via("hello"), livchat_store::DeployedVia::Portainer);
    // Portainer owns hello's stack; the bundle is not Portainer's (it went over SSH).
    assert_eq!(fake.stack_names(), vec!["hello".to_string()]);
    assert!(
        stack_changes(&fake)
            .iter()
            .any(|r| r.starts_with("POST /api/stacks/create/swarm/string?endpointId=1")),
        "{:?}",
        fake.requests()
    );
    assert!(
        hello_logs_say(&rig, "greeting=hello").await,
        "hello did not start"
    );

    // A redeploy with a changed value updates Portainer's stack in place.
    let job = deploy_hello(&orch, "bonjour").await;
    assert_eq!(
        job.status,
        livchat_store::JobStatus::Completed,
        "{:?}",
        job.error
    );
    assert_eq!(fake.stack_names(), vec!["hello".to_string()]);
    let updated = fake.request_bodies().into_iter().any(|(line, body)| {
        line.starts_with("PUT /api/stacks/")
            && body["StackFileContent"]
                .as_str()
                .is_some_and(|c| c.contains("GREETING: bonjour"))
    });
    assert!(
        updated,
        "no update with the new value: {:?}",
        fake.requests()
    );
    assert!(
        hello_logs_say(&rig, "greeting=bonjour").await,
        "the update did not apply"
    );

    // A wrong admin password: the job fails, says why, and nothing changes anywhere.
    secrets
        .set(key, SecretString::from("not-the-admin-password"))
        .unwrap();
    let changes_before = stack_changes(&fake);
    let job = deploy_hello(&orch, "hola").await;
    assert_eq!(job.status, livchat_store::JobStatus::Failed);
    let error = job.error.clone().unwrap_or_default();
    assert!(
        error.contains(
            "refused the admin password in the vault (app.infrastructure.admin_password)"
        ) && error.contains("Nothing was changed"),
        "{error}"
    );
    assert!(!error.contains("not-the-admin-password"), "{error}");
    assert!(job.steps_completed.is_empty(), "{:?}", job.steps_completed);
    assert_eq!(stack_changes(&fake), changes_before);
    let record = &rig.store.load().unwrap().deployments[SERVER]["hello"];
    assert_eq!(record.status, DeploymentStatus::Running);
    let hello = rig.platform.stack_status("hello").await.unwrap();
    assert!(hello.is_healthy(), "{hello}");

    // Undeploy deletes Portainer's stack, and the swarm's with it.
    secrets.set(key, SecretString::from(password)).unwrap();
    let job = orch.start_undeploy_app(SERVER, "hello", false).unwrap();
    let job = orch.run_job(&job.id).await.unwrap();
    assert_eq!(
        job.status,
        livchat_store::JobStatus::Completed,
        "{:?}",
        job.error
    );
    assert!(fake.stack_names().is_empty());
    assert!(
        stack_changes(&fake)
            .iter()
            .any(|r| r.starts_with("DELETE /api/stacks/")),
        "{:?}",
        fake.requests()
    );
    assert!(matches!(
        rig.platform.stack_status("hello").await,
        Err(livchat_remote::PlatformError::NotFound { .. })
    ));

    // The bundle goes as it came, over SSH; the shared engine is left clean.
    let job = orch
        .start_undeploy(livchat_core::flows::UndeployParams {
            server: SERVER.into(),
            app: "infrastructure".into(),
            force: true,
            delete_data: true,
        })
        .unwrap();
    let job = orch.run_job(&job.id).await.unwrap();
    assert_eq!(
        job.status,
        livchat_store::JobStatus::Completed,
        "{:?}",
        job.error
    );
    assert!(
        !fake.requests().iter().any(|r| r.contains("infrastructure")),
        "the bundle reached Portainer: {:?}",
        fake.requests()
    );
}
