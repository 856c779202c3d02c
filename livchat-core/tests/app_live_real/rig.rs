//! The rig every test here shares: the shared Swarm engine, an sshd whose sessions reach it,
//! the platform a test deploys with directly, and an orchestrator whose state records the
//! server `swarm-1` (host key pinned) with the sshd's key in its vault.

use std::sync::Arc;
use std::time::Duration;

use fixtures::dockerd::Dockerd;
use fixtures::sshd::{Sshd, SshdOptions};
use livchat_core::{Config, Orchestrator, OrchestratorBuilder};
use livchat_remote::ssh::SshConnector;
use livchat_remote::{
    Connector, ContainerPlatform, HostKeyPolicy, SshTarget, SwarmConfig, SwarmOverSsh, WaitOptions,
};
use livchat_store::{
    DeploymentRecord, DeploymentStatus, MemoryJobLogs, MemorySecrets, MemoryStore, SecretStore,
    ServerRecord, Store,
};
use secrecy::SecretString;

pub const SERVER: &str = "swarm-1";

pub struct Rig {
    _sshd: Sshd,
    pub platform: SwarmOverSsh,
    pub orch: Arc<Orchestrator>,
    pub store: Arc<MemoryStore>,
    pub stacks: tempfile::TempDir,
}

/// The engine, an sshd talking to it, the platform the test deploys with, and an orchestrator
/// whose state records server `swarm-1` (host key pinned) with the sshd's key in its vault.
pub async fn rig() -> Option<Rig> {
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
    let record: ServerRecord = fixtures::records::ManualServer::new(SERVER)
        .host(&target.host)
        .port(target.port)
        .user(&target.user)
        .key_secret("ssh.swarm-1.private_key")
        .host_key(sshd.host_key_fingerprint())
        .record();
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
        stacks,
    })
}

/// Records `app` (stack of the same name) as deployed on the server, as a deploy would.
pub fn record_app(store: &MemoryStore, app: &str) {
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

pub fn quick_wait() -> WaitOptions {
    WaitOptions {
        timeout: Duration::from_secs(90),
        poll_interval: Duration::from_millis(500),
        settle: Duration::from_secs(1),
        ..WaitOptions::default()
    }
}

/// An orchestrator on the rig's state and server for deploys through jobs: the apps of `apps`
/// (a test directory beside this file, with the built-ins), stack files of the SSH path in the
/// rig's temporary directory, the server on manual DNS, services on `dnsrr` (no IPVS here),
/// health waits bounded at 2 minutes, and Portainer at `portainer_port` when a test has one.
pub fn apps_orchestrator(
    rig: &Rig,
    apps: &std::path::Path,
    portainer_port: Option<u16>,
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
    let mut config = Config::new(rig.stacks.path());
    config.endpoint_mode = livchat_apps::EndpointMode::Dnsrr;
    config.health_timeout = Duration::from_secs(120);
    config.portainer_address =
        portainer_port.map(|port| livchat_remote::PortainerAddress::direct("127.0.0.1", port));
    let stacks_dir = rig.stacks.path().join("stacks").display().to_string();
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

/// The busybox image of `fixtures::images`, built once and cached; `None` to skip.
pub async fn busybox() -> Option<&'static str> {
    let engine = Dockerd::shared().unwrap();
    tokio::task::spawn_blocking(move || fixtures::images::busybox(engine))
        .await
        .unwrap()
        .expect("building the busybox image")
}
