//! Issue #12, "setup re-run at the round-trip limit": the setup job through the orchestrator,
//! over real SSH, on a real Debian 12 host (`fixtures::sshd::DebianHost`). After a first setup,
//! a re-run checks the whole plan in one exec and records its skipped steps in one store
//! write; with one step undone on the host, exactly that step is applied.
//!
//! Execs are counted by a wrapper around the real executor, store writes by a wrapper around
//! the store (a write is an update that moved the serial).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fixtures::sshd::DebianHost;
use livchat_core::{AddServer, HostKeyTrust, Orchestrator, OrchestratorBuilder, SetupServerParams};
use livchat_remote::setup::DockerSource;
use livchat_remote::{
    Command, Connected, Connector, ExecOptions, ExecOutput, HostKeyPolicy, RemoteError,
    RemoteExecutor, SshConnector, SshTarget,
};
use livchat_store::{
    DnsMode, JobRecord, JobStatus, JobUpdateFn, MemoryJobLogs, MemorySecrets, MemoryStore, State,
    Store, StoreError, UpdateFn,
};
use secrecy::{SecretBox, SecretString};
use tokio_util::sync::CancellationToken;

const SERVER: &str = "rerun-1";

/// The command lines every executor of the orchestrator ran.
type Execs = Arc<Mutex<Vec<String>>>;

struct CountingExecutor {
    inner: Arc<dyn RemoteExecutor>,
    execs: Execs,
}

#[async_trait]
impl RemoteExecutor for CountingExecutor {
    async fn exec(
        &self,
        command: &Command,
        options: ExecOptions,
    ) -> Result<ExecOutput, RemoteError> {
        self.execs.lock().unwrap().push(command.to_string());
        self.inner.exec(command, options).await
    }

    async fn upload(
        &self,
        path: &str,
        content: SecretBox<[u8]>,
        mode: u32,
        cancel: CancellationToken,
    ) -> Result<(), RemoteError> {
        self.execs.lock().unwrap().push(format!("upload {path}"));
        self.inner.upload(path, content, mode, cancel).await
    }
}

struct CountingConnector {
    execs: Execs,
}

#[async_trait]
impl Connector for CountingConnector {
    async fn connect(
        &self,
        target: &SshTarget,
        private_key_openssh: &SecretString,
        host_key: &HostKeyPolicy,
    ) -> Result<Connected, RemoteError> {
        let connected = SshConnector::default()
            .connect(target, private_key_openssh, host_key)
            .await?;
        Ok(Connected {
            executor: Arc::new(CountingExecutor {
                inner: connected.executor,
                execs: self.execs.clone(),
            }),
            host_key_fingerprint: connected.host_key_fingerprint,
        })
    }
}

/// A store that records the operation of every update that wrote (moved the serial).
#[derive(Default)]
struct RecordingStore {
    inner: MemoryStore,
    writes: Mutex<Vec<String>>,
}

impl Store for RecordingStore {
    fn load(&self) -> Result<State, StoreError> {
        self.inner.load()
    }

    fn update<'a>(&self, operation: &str, f: &mut UpdateFn<'a>) -> Result<State, StoreError> {
        let before = self.inner.load()?.serial;
        let after = self.inner.update(operation, f)?;
        if after.serial != before {
            self.writes.lock().unwrap().push(operation.to_string());
        }
        Ok(after)
    }

    fn settings(&self) -> Result<livchat_store::Settings, StoreError> {
        self.inner.settings()
    }

    fn update_settings<'a>(
        &self,
        operation: &str,
        f: &mut livchat_store::SettingsUpdateFn<'a>,
    ) -> Result<livchat_store::Settings, StoreError> {
        let before = self.inner.settings()?;
        let after = self.inner.update_settings(operation, f)?;
        if after != before {
            self.writes.lock().unwrap().push(operation.to_string());
        }
        Ok(after)
    }

    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.inner.job(id)
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.inner.jobs()
    }

    fn live_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.inner.live_jobs()
    }

    fn insert_job(
        &self,
        job: &JobRecord,
        exclusive: bool,
    ) -> Result<Option<JobRecord>, StoreError> {
        let busy = self.inner.insert_job(job, exclusive)?;
        if busy.is_none() {
            self.writes.lock().unwrap().push("job create".to_string());
        }
        Ok(busy)
    }

    fn update_job<'a>(
        &self,
        id: &str,
        operation: &str,
        f: &mut JobUpdateFn<'a>,
    ) -> Result<Option<JobRecord>, StoreError> {
        let before = self.inner.job(id)?;
        let after = self.inner.update_job(id, operation, f)?;
        if after != before {
            self.writes.lock().unwrap().push(operation.to_string());
        }
        Ok(after)
    }

    fn remove_jobs(&self, ids: &[String]) -> Result<(), StoreError> {
        self.inner.remove_jobs(ids)
    }
}

async fn setup_job(orch: &Arc<Orchestrator>) -> livchat_store::JobRecord {
    let job = orch
        .start_setup_server(SetupServerParams {
            name: SERVER.into(),
            zone: "example.com".into(),
            subdomain: None,
            dns: DnsMode::Manual,
        })
        .unwrap();
    let done = orch.run_job(&job.id).await.unwrap();
    let log: Vec<String> = orch
        .job_logs(&job.id, 0)
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(
        done.status,
        JobStatus::Completed,
        "{:?}\n{}",
        done.error,
        log.join("\n")
    );
    done
}

/// The log lines that say what happened to each setup step (`hostname: done`).
fn outcomes(orch: &Orchestrator, job: &str) -> Vec<String> {
    orch.job_logs(job, 0)
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .filter(|m| m.ends_with(": done") || m.ends_with(": already in place"))
        .collect()
}

#[tokio::test]
async fn a_setup_rerun_checks_in_one_exec_writes_once_and_applies_only_an_undone_step() {
    let Some(host) = DebianHost::start() else {
        return;
    };
    let execs = Execs::default();
    let store = Arc::new(RecordingStore::default());
    let mut config = livchat_core::Config::new("/nonexistent-livchat-home");
    // download.docker.com is unreachable from build machines.
    config.docker_source = DockerSource::Distribution;
    let orch = OrchestratorBuilder::new(
        config,
        store.clone(),
        Arc::new(MemorySecrets::new()),
        Arc::new(MemoryJobLogs::default()),
        livchat_apps::Catalog::builtin().unwrap(),
    )
    .connector(Arc::new(CountingConnector {
        execs: execs.clone(),
    }))
    .build();
    orch.server_add(AddServer {
        name: SERVER.into(),
        host: host.host(),
        port: host.port(),
        user: host.user().into(),
        private_key: Some(SecretString::from(host.client_private_key().to_owned())),
        key_passphrase: None,
        ssh_agent: false,
        host_key: Some(HostKeyTrust::Expect(host.host_key_fingerprint().into())),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", host.log()));

    // The first setup really installs (apt from Debian's mirror, docker.io, Swarm, ufw).
    let first = setup_job(&orch).await;
    let steps = first.steps_completed.len();
    eprintln!(
        "first setup: {steps} job steps, {} execs",
        execs.lock().unwrap().len()
    );

    // The first setup read the host's CPUs and memory over SSH (for deploys' preflight).
    let resources = store.load().unwrap().servers[SERVER]
        .setup
        .resources
        .expect("the first setup records the server's resources");
    assert!(
        resources.cpus >= 1 && resources.memory_mb >= 256,
        "{resources:?}"
    );

    // The re-run: the OS read and every check in one exec each; nothing else reaches the host
    // (the resources are known already).
    execs.lock().unwrap().clear();
    store.writes.lock().unwrap().clear();
    let again = setup_job(&orch).await;
    assert_eq!(again.steps_completed, first.steps_completed);
    let ran = execs.lock().unwrap().clone();
    assert_eq!(ran.len(), 2, "{ran:#?}");
    assert_eq!(ran[0], "cat /etc/os-release");
    assert!(ran[1].starts_with("sh -s -- LIVCHAT_CHECK_"), "{ran:#?}");
    // Every setup step is reported as already in place, in the user's words.
    let said = outcomes(&orch, &again.id);
    assert_eq!(said.len(), steps - 3, "{said:#?}");
    assert!(said.iter().all(|m| m.ends_with(": already in place")));
    // Nothing changed, so the server's record is not written at all. The job's record is
    // written when created and started, at the end of connect, at the end of the DNS step
    // (with every setup step found in place), and at its end (with finalize's).
    let writes = store.writes.lock().unwrap().clone();
    assert_eq!(
        writes,
        [
            "job create",
            "job start",
            "job step done",
            "job step done",
            "job finish"
        ],
    );
    let server = store.load().unwrap().servers[SERVER].clone();
    assert_eq!(server.status, livchat_store::ServerStatus::Ready);

    // One step undone on the host: only that one is applied.
    let run = |argv: &[&str]| {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let orch = orch.clone();
        async move {
            let out = orch
                .server_exec(SERVER, &argv, CancellationToken::new())
                .await
                .unwrap();
            assert!(out.success(), "{argv:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        }
    };
    run(&["sh", "-c", "hostname undone && echo undone > /etc/hostname"]).await;
    let fixed = setup_job(&orch).await;
    let said = outcomes(&orch, &fixed.id);
    let applied: Vec<&String> = said.iter().filter(|m| m.ends_with(": done")).collect();
    assert_eq!(applied, ["hostname: done"], "{said:#?}");
    assert_eq!(said.len(), steps - 3, "{said:#?}");
    assert_eq!(run(&["hostname"]).await, SERVER);
    assert_eq!(run(&["cat", "/etc/hostname"]).await, SERVER);
}
