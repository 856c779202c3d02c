//! The create-server flow through the orchestrator, against the fake Hetzner (held to the
//! vendor spec) whose created server is backed by a real OpenSSH sshd, the way cloud-init
//! installs the key registered through the API: the key is generated into the vault, the server
//! created, its host key pinned over real SSH, the provider firewall attached. A failure after
//! the server exists deletes it again and leaves nothing in the state; a retry then succeeds.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness around the core: it writes the real host's files and reads its environment; the no-I/O rule (clippy.toml) is for the library"
)]

use std::sync::Arc;

use fixtures::fake_hetzner::{BackingHost, CreatedServer, FakeHetzner, Fault, HetznerOptions};
use livchat_core::{Config, CreateServerParams, OrchestratorBuilder};
use livchat_store::{JobStatus, MemoryJobLogs, MemorySecrets, MemoryStore, SecretStore, Store};
use secrecy::SecretString;

async fn setup(
    sshd: &fixtures::sshd::Sshd,
) -> (
    FakeHetzner,
    Arc<livchat_core::Orchestrator>,
    Arc<MemoryStore>,
) {
    let authorized = sshd.dir().join("authorized_keys");
    let host = sshd.host();
    let hook = Arc::new(move |c: &CreatedServer| {
        std::fs::write(&authorized, c.ssh_public_keys.join("\n") + "\n").unwrap();
        BackingHost {
            ipv4: host.parse().unwrap(),
        }
    });
    let fake = FakeHetzner::start_with(HetznerOptions {
        on_server_created: Some(hook),
        ..HetznerOptions::default()
    })
    .await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::new());
    secrets
        .set(
            "hetzner_token",
            SecretString::from(fake.token().to_string()),
        )
        .unwrap();
    let url = fake.url();
    let port = sshd.port();
    let mut config = Config::new("/nonexistent-livchat-home");
    config.ssh_wait = std::time::Duration::from_secs(20);
    let orch = OrchestratorBuilder::new(
        config,
        store.clone(),
        secrets,
        Arc::new(MemoryJobLogs::default()),
        livchat_apps::Catalog::builtin().unwrap(),
    )
    .provider_factory(Arc::new(move |token| {
        let config = livchat_providers::HetznerConfig::from_lookup(|k| {
            (k == "LIVCHAT_HETZNER_ENDPOINT").then(|| url.clone())
        });
        Ok(
            Arc::new(livchat_providers::HetznerProvider::new(token, config).unwrap())
                as Arc<dyn livchat_providers::Provider>,
        )
    }))
    // The fake reports the loopback address; the real sshd listens on its own port, not 22.
    .connector(Arc::new(PortOverride {
        inner: livchat_remote::SshConnector::default(),
        port,
    }))
    .build();
    (fake, orch, store)
}

/// Connects to the harness's port: the fake Hetzner cannot report a port, real servers use 22.
struct PortOverride {
    inner: livchat_remote::SshConnector,
    port: u16,
}

#[async_trait::async_trait]
impl livchat_remote::Connector for PortOverride {
    async fn connect(
        &self,
        target: &livchat_remote::SshTarget,
        key: &SecretString,
        policy: &livchat_remote::HostKeyPolicy,
    ) -> Result<livchat_remote::Connected, livchat_remote::RemoteError> {
        let mut target = target.clone();
        target.port = self.port;
        target.user = whoami();
        self.inner.connect(&target, key, policy).await
    }
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

fn params() -> CreateServerParams {
    CreateServerParams {
        name: "web-1".into(),
        server_type: "cx22".into(),
        location: "fsn1".into(),
        image: "debian-12".into(),
        keep_on_failure: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_server_registers_the_key_creates_pins_the_host_key_and_attaches_a_firewall() {
    let Some(sshd) = fixtures::sshd::Sshd::start() else {
        return;
    };
    let (fake, orch, store) = setup(&sshd).await;
    let job = orch.start_create_server(params()).unwrap();
    let done = orch.run_job(&job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let state = store.load().unwrap();
    let server = &state.servers["web-1"];
    assert_eq!(
        server.host_key_fingerprint.as_deref(),
        Some(sshd.host_key_fingerprint())
    );
    assert_eq!(server.status, livchat_store::ServerStatus::Running);
    assert_eq!(fake.server_names(), vec!["web-1".to_string()]);
    // The generated key opens the server: a command runs over the pinned connection.
    let out = orch
        .server_exec(
            "web-1",
            &["echo".into(), "reached".into()],
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "reached\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_server_exists_deletes_it_and_a_retry_succeeds() {
    let Some(sshd) = fixtures::sshd::Sshd::start() else {
        return;
    };
    let (fake, orch, store) = setup(&sshd).await;
    // Firewall creation is refused (422 is not retried), after the server exists.
    fake.faults().always(
        axum::http::Method::POST,
        "/firewalls",
        Fault::Status {
            status: 422,
            retry_after: None,
        },
    );
    let job = orch.start_create_server(params()).unwrap();
    let failed = orch.run_job(&job.id).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        fake.server_names().is_empty(),
        "no orphan server at the provider"
    );
    assert!(
        store.load().unwrap().servers.is_empty(),
        "no server left in the state"
    );

    fake.faults().clear();
    orch.start_retry_job(&job.id).unwrap();
    let done = orch.run_job(&job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(fake.server_names(), vec!["web-1".to_string()]);
    assert!(store.load().unwrap().servers.contains_key("web-1"));
}
