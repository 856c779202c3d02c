//! The harness of the operation tests: an orchestrator built from one mockall mock per leaf
//! trait (provider, DNS, SSH connector and executor, container platform) over the real
//! in-memory store, vault and job logs, plus builders of the records the flows start from.
//!
//! Every mock is moved into the orchestrator, so dropping the orchestrator drops the mocks and
//! mockall checks each `.times(n)` there, inside the test: [`verify`] makes that explicit. A
//! mock given no expectation panics on any call, which is how a test proves "nothing touched".

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livchat_core::model::DateTime;
use livchat_core::{Config, Orchestrator, OrchestratorBuilder};
use livchat_providers::{
    CloudError, DnsClient, DnsRecord, MockDnsClient, MockProvider, Provider, ProviderServer,
    RecordType, ServerId, Service, Zone,
};
pub use livchat_remote::executor::{MockConnector, MockRemoteExecutor};
pub use livchat_remote::platform::MockContainerPlatform;
use livchat_remote::{
    Command, Connected, ContainerPlatform, ExecOutput, HostKeyPolicy, PlatformError, RemoteError,
    RemoteExecutor, StackStatus,
};
use livchat_store::{
    DeploymentRecord, DeploymentStatus, DnsConfig, JobRecord, MemoryJobLogs, MemorySecrets,
    MemoryStore, ProviderKind, SecretStore, ServerRecord, ServerStatus, SettingKey, State, Store,
};
use secrecy::{ExposeSecret, SecretString};

/// The host key every mocked server presents.
pub const FP: &str = "SHA256:mockedhostkeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
/// The address of every mocked server (TEST-NET-3).
pub const IP: &str = "203.0.113.10";
pub const ZONE: &str = "example.com";
pub const ZONE_ID: &str = "zone-1";
pub const HETZNER: &str = "hetzner-test-token";
pub const CLOUDFLARE: &str = "cloudflare-test-token";

/// One mock per trait; a test sets the expectations of the ones its operation must call.
#[derive(Default)]
pub struct Mocks {
    pub provider: MockProvider,
    pub dns: MockDnsClient,
    pub connector: MockConnector,
    pub platform: MockContainerPlatform,
    /// Answers name lookups of servers with manual DNS.
    pub resolver: livchat_providers::MockNameResolver,
}

/// The real in-memory store and vault the orchestrator works on, kept by the test to look at
/// the state and the vault after the operation.
pub struct World {
    pub store: Arc<MemoryStore>,
    pub secrets: Arc<MemorySecrets>,
    pub config: Config,
}

impl World {
    /// Both API tokens in the vault, the `email` setting set (apps need it), small timeouts.
    pub fn new() -> Self {
        let world = Self::empty();
        world.set_secret(livchat_core::HETZNER_TOKEN, HETZNER);
        world.set_secret(livchat_core::CLOUDFLARE_TOKEN, CLOUDFLARE);
        world
            .store
            .update_settings("test settings", &mut |s| {
                s.set(SettingKey::Email, "ops@example.com")
            })
            .unwrap();
        world
    }

    /// No token, no setting.
    pub fn empty() -> Self {
        let mut config = Config::new("/nonexistent-livchat-home");
        config.ssh_wait = Duration::ZERO;
        config.health_timeout = Duration::from_secs(1);
        Self {
            store: Arc::new(MemoryStore::new()),
            secrets: Arc::new(MemorySecrets::new()),
            config,
        }
    }

    pub fn build(&self, mocks: Mocks) -> Arc<Orchestrator> {
        self.build_with(self.store.clone(), self.secrets.clone(), mocks)
    }

    /// Builds with `catalog` (built-ins plus user definitions) instead of the built-ins alone.
    pub fn build_with_catalog(
        &self,
        mocks: Mocks,
        catalog: livchat_apps::Catalog,
    ) -> Arc<Orchestrator> {
        self.builder(self.store.clone(), self.secrets.clone(), mocks, catalog)
    }

    /// Builds over another store or vault (a `MockStore`/`MockSecretStore` injecting errors).
    pub fn build_with(
        &self,
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        mocks: Mocks,
    ) -> Arc<Orchestrator> {
        self.builder(
            store,
            secrets,
            mocks,
            livchat_apps::Catalog::builtin().unwrap(),
        )
    }

    fn builder(
        &self,
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        mocks: Mocks,
        catalog: livchat_apps::Catalog,
    ) -> Arc<Orchestrator> {
        let provider: Arc<dyn Provider> = Arc::new(mocks.provider);
        let dns: Arc<dyn DnsClient> = Arc::new(mocks.dns);
        let platform: Arc<dyn ContainerPlatform> = Arc::new(mocks.platform);
        OrchestratorBuilder::new(
            self.config.clone(),
            store,
            secrets,
            Arc::new(MemoryJobLogs::default()),
            catalog,
        )
        .provider_factory(Arc::new(move |_| Ok(provider.clone())))
        .dns_factory(Arc::new(move |_| Ok(dns.clone())))
        .connector(Arc::new(mocks.connector))
        .platform_factory(Arc::new(move |_| platform.clone()))
        .resolver(Arc::new(mocks.resolver))
        .build()
    }

    pub fn state(&self) -> State {
        self.store.load().unwrap()
    }

    /// The jobs by id (they are kept outside the state).
    pub fn jobs(&self) -> std::collections::BTreeMap<String, livchat_store::JobRecord> {
        self.store
            .jobs()
            .unwrap()
            .into_iter()
            .map(|j| (j.id.clone(), j))
            .collect()
    }

    pub fn set_secret(&self, name: &str, value: &str) {
        self.secrets
            .set(name, SecretString::from(value.to_string()))
            .unwrap();
    }

    pub fn secret(&self, name: &str) -> Option<String> {
        self.secrets
            .get(name)
            .unwrap()
            .map(|s| s.expose_secret().to_string())
    }

    pub fn secret_names(&self) -> Vec<String> {
        self.secrets.names().unwrap()
    }

    /// Records a server (and its SSH key in the vault).
    pub fn put_server(&self, record: ServerRecord) {
        self.set_secret(&record.ssh_key_secret, "mocked-private-key");
        self.store
            .update("test server", &mut |s| {
                s.servers.insert(record.name.clone(), record.clone());
                Ok(())
            })
            .unwrap();
    }

    /// Records `app` as running on `server`, with the DNS record ids it created.
    pub fn put_deployment(&self, server: &str, app: &str, dns_ids: &[&str]) {
        let record = DeploymentRecord {
            app: app.to_string(),
            version: "1".into(),
            stack_name: app.to_string(),
            domains: Vec::new(),
            dns_record_ids: dns_ids.iter().map(|s| s.to_string()).collect(),
            dependencies: Vec::new(),
            status: DeploymentStatus::Running,
            via: Default::default(),
            deployed_at: now(),
        };
        self.store
            .update("test deployment", &mut |s| {
                s.deployments
                    .entry(server.to_string())
                    .or_default()
                    .insert(app.to_string(), record.clone());
                Ok(())
            })
            .unwrap();
    }

    pub fn deployed_apps(&self, server: &str) -> Vec<String> {
        self.state()
            .deployments
            .get(server)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

fn now() -> DateTime {
    chrono::Utc::now()
}

/// A server created by LivChat at Hetzner, host key pinned.
pub fn hetzner_server(name: &str, status: ServerStatus, dns: Option<&str>) -> ServerRecord {
    ServerRecord {
        name: name.to_string(),
        provider: ProviderKind::Hetzner,
        provider_id: Some(42),
        host: IP.to_string(),
        ssh_port: 22,
        ssh_user: "root".into(),
        ssh_key_secret: format!("ssh.{name}.private_key"),
        ssh_agent_key: None,
        host_key_fingerprint: Some(FP.to_string()),
        dns: dns.map(|sub| DnsConfig {
            zone_name: ZONE.to_string(),
            subdomain: Some(sub.to_string()),
            mode: Default::default(),
        }),
        server_type: Some("cx22".into()),
        location: Some("fsn1".into()),
        image: Some("debian-12".into()),
        labels: Default::default(),
        status,
        setup: Default::default(),
        platform: Default::default(),
        created_at: now(),
    }
}

/// A server set up with DNS `lab.example.com`: where apps deploy.
pub fn ready_server(name: &str) -> ServerRecord {
    hetzner_server(name, ServerStatus::Ready, Some("lab"))
}

/// What a deploy sent: the compose file and the values of its Docker secrets.
pub struct Deployed {
    pub compose_yaml: String,
    pub secret_values: Vec<String>,
}

/// No stack sent had a public route: an app whose first-run page belongs to the first
/// visitor stays closed when its claim did not complete.
pub fn assert_routes_stayed_closed(deployed: &Mutex<Vec<Deployed>>) {
    let sent = deployed.lock().unwrap();
    let open: Vec<usize> = sent
        .iter()
        .enumerate()
        .filter(|(_, d)| livchat_apps::first_run::has_public_routes(&d.compose_yaml))
        .map(|(i, _)| i)
        .collect();
    assert!(
        open.is_empty(),
        "the routes were opened by deploy(s) {open:?}"
    );
}

/// Runs a queued job to its end, exactly as [`Orchestrator::run_job`] does minus the watcher
/// of cancel requests from other processes: that task keeps the orchestrator (and so the
/// mocks) alive for up to 500 ms after the job, which would move mockall's drop-time checks
/// past the end of the test. `run_job` itself is covered in `jobs.rs`.
pub async fn run(orch: &Arc<Orchestrator>, id: &str) -> JobRecord {
    orch.jobs().run(id, orch.as_ref()).await.unwrap()
}

/// Drops the orchestrator, and with it every mock, here: mockall then checks that every
/// expectation was met as many times as it said.
pub fn verify(orch: Arc<Orchestrator>) {
    assert_eq!(
        Arc::strong_count(&orch),
        1,
        "something still holds the orchestrator, so its mocks would not be checked"
    );
    drop(orch);
}

/// The job's log as one text.
pub fn log_text(orch: &Orchestrator, id: &str) -> String {
    orch.job_logs(id, 0)
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect::<Vec<_>>()
        .join("\n")
}

// ----- mock building blocks ----------------------------------------------------------------

pub fn zone() -> Zone {
    Zone {
        id: ZONE_ID.into(),
        name: ZONE.into(),
        status: "active".into(),
    }
}

pub fn a_record(id: &str, name: &str, content: &str) -> DnsRecord {
    DnsRecord {
        id: id.into(),
        name: name.into(),
        record_type: RecordType::A,
        content: content.into(),
        proxied: Some(false),
        ttl: 1,
    }
}

pub fn provider_server(name: &str, id: &str, ipv4: Option<&str>) -> ProviderServer {
    ProviderServer {
        id: ServerId(id.into()),
        name: name.into(),
        status: livchat_providers::ServerStatus::Running,
        ipv4: ipv4.map(|i| i.parse::<Ipv4Addr>().unwrap()),
        ipv6_network: None,
        ipv6: None,
        server_type: "cx22".into(),
        location: "fsn1".into(),
        image: Some("debian-12".into()),
        labels: [("managed-by".to_string(), "livchat".to_string())].into(),
        created: "2025-01-01T00:00:00+00:00".into(),
    }
}

pub fn hetzner_api_error(operation: &str, status: u16, message: &str) -> CloudError {
    CloudError::Api {
        service: Service::Hetzner,
        operation: operation.into(),
        status,
        code: "invalid_input".into(),
        message: message.into(),
    }
}

pub fn cloudflare_api_error(operation: &str, message: &str) -> CloudError {
    CloudError::Api {
        service: Service::Cloudflare,
        operation: operation.into(),
        status: 400,
        code: "81057".into(),
        message: message.into(),
    }
}

pub fn zone_not_found(zone: &str) -> CloudError {
    CloudError::ZoneNotFound {
        service: Service::Cloudflare,
        zone: zone.into(),
    }
}

pub fn connect_refused(server: &str) -> RemoteError {
    RemoteError::Connect {
        server: server.into(),
        reason: "connection refused".into(),
    }
}

pub fn output(exit_status: u32, stdout: &str, stderr: &str) -> ExecOutput {
    ExecOutput {
        exit_status,
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

pub fn healthy(name: &str) -> StackStatus {
    StackStatus {
        name: name.into(),
        services: Vec::new(),
    }
}

pub fn service_failed(stack: &str, service: &str, error: &str) -> PlatformError {
    PlatformError::ServiceFailed {
        stack: stack.into(),
        service: service.into(),
        error: error.into(),
    }
}

/// The connector opens (`times`) connections with the host key checked against the pin, and
/// hands out `executor`.
pub fn connects_pinned(
    connector: &mut MockConnector,
    executor: MockRemoteExecutor,
    times: usize,
) -> Arc<Mutex<Vec<String>>> {
    let executor: Arc<dyn RemoteExecutor> = Arc::new(executor);
    let targets = Arc::new(Mutex::new(Vec::new()));
    let seen = targets.clone();
    connector
        .expect_connect()
        .withf(|target, key, policy| {
            target.host == IP
                && target.port == 22
                && target.user == "root"
                && key.expose_secret() == "mocked-private-key"
                && *policy == HostKeyPolicy::Pinned(FP.to_string())
        })
        .times(times)
        .returning(move |target, _, _| {
            seen.lock().unwrap().push(target.name.clone());
            Ok(Connected {
                executor: executor.clone(),
                host_key_fingerprint: FP.to_string(),
            })
        });
    targets
}

/// What a scripted executor recorded: every command line it ran, in order.
pub struct FakeHost {
    pub commands: Arc<Mutex<Vec<String>>>,
}

impl FakeHost {
    pub fn count(&self, line: &str) -> usize {
        self.commands
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == line)
            .count()
    }
}

pub const DEBIAN_12: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n";

pub fn is_os_release(c: &Command) -> bool {
    c.program == "cat" && c.args == ["/etc/os-release"]
}

/// What setup's read of the server's resources gets from every scripted host: 2 CPUs and
/// about 3.8 GiB (a "4 GB" plan).
pub const RESOURCES: &str = "/proc/meminfo:MemTotal:        3911856 kB\n/proc/cpuinfo:processor\t: 0\n/proc/cpuinfo:processor\t: 1\n";

pub fn is_resources_read(c: &Command) -> bool {
    c.program == "grep" && c.args.last().is_some_and(|a| a == "/proc/cpuinfo")
}

/// A scripted executor: `answer` gets each command and the text sent on its stdin (a setup
/// script, or empty) and returns its output; every command line is recorded.
pub fn scripted_executor(
    answer: impl Fn(&Command, &str) -> Result<ExecOutput, RemoteError> + Send + Sync + 'static,
) -> (MockRemoteExecutor, FakeHost) {
    let commands = Arc::new(Mutex::new(Vec::new()));
    let seen = commands.clone();
    let mut exec = MockRemoteExecutor::new();
    exec.expect_exec().returning(move |command, options| {
        seen.lock().unwrap().push(command.to_string());
        let stdin = options
            .stdin
            .as_ref()
            .map(|b| String::from_utf8_lossy(b.expose_secret()).into_owned())
            .unwrap_or_default();
        if is_resources_read(command) {
            return Ok(output(0, RESOURCES, ""));
        }
        answer(command, &stdin)
    });
    (exec, FakeHost { commands })
}
