//! The real rig shared by the Swarm and Portainer end-to-end tests: the dockerd harness (one
//! engine per test binary), locally built images, and an sshd whose sessions talk to that
//! engine (`SetEnv DOCKER_HOST=...`), reached through the russh connector.
#![allow(dead_code)] // Each test binary uses its own part of the rig.

pub mod conformance;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fixtures::dockerd::Dockerd;
use fixtures::sshd::{Sshd, SshdOptions};
use livchat_remote::ssh::SshConnector;
use livchat_remote::{
    Connector, HostKeyPolicy, RemoteExecutor, SshTarget, StackStatus, SwarmConfig, SwarmOverSsh,
    WaitOptions,
};
use secrecy::{SecretBox, SecretString};
use tokio_util::sync::CancellationToken;

/// Passes everything to the SSH executor and keeps the argv of each command, so tests can
/// check what reached the server's command line.
pub struct Recording {
    inner: Arc<dyn RemoteExecutor>,
    log: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl RemoteExecutor for Recording {
    async fn exec(
        &self,
        command: &livchat_remote::Command,
        options: livchat_remote::ExecOptions,
    ) -> Result<livchat_remote::ExecOutput, livchat_remote::RemoteError> {
        let line = std::iter::once(command.program.as_str())
            .chain(command.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        self.log.lock().unwrap().push(line);
        self.inner.exec(command, options).await
    }

    async fn upload(
        &self,
        path: &str,
        content: SecretBox<[u8]>,
        mode: u32,
        cancel: CancellationToken,
    ) -> Result<(), livchat_remote::RemoteError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("upload {path} {mode:o}"));
        self.inner.upload(path, content, mode, cancel).await
    }

    async fn open_tunnel(
        &self,
        host: &str,
        port: u16,
    ) -> Result<livchat_remote::TunnelStream, livchat_remote::RemoteError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("tunnel {host}:{port}"));
        self.inner.open_tunnel(host, port).await
    }
}

pub struct Rig {
    pub engine: &'static Dockerd,
    pub sshd: Sshd,
    pub executor: Arc<dyn RemoteExecutor>,
    recording: Arc<Recording>,
    /// Stack files go here rather than to /opt/livchat on the build machine.
    pub stacks_dir: tempfile::TempDir,
}

impl Rig {
    /// Every command sent so far, as `program arg arg...`.
    pub fn commands(&self) -> Vec<String> {
        self.recording.log.lock().unwrap().clone()
    }

    pub fn platform(&self) -> SwarmOverSsh {
        SwarmOverSsh::with_config(
            self.executor.clone(),
            SwarmConfig {
                stacks_dir: self.stacks_dir.path().join("stacks").display().to_string(),
                ..SwarmConfig::default()
            },
        )
    }
}

/// The engine, the sshd and a connection; `None` (a printed skip) when the tools are missing
/// and real tests are not required.
pub async fn rig() -> Option<Rig> {
    let engine = tokio::task::spawn_blocking(Dockerd::shared)
        .await
        .expect("starting dockerd")?;
    let sshd = Sshd::start_with(SshdOptions {
        extra_config: vec![format!("SetEnv DOCKER_HOST={}", engine.host())],
        ..SshdOptions::default()
    })?;
    let target = SshTarget {
        name: "swarm-test".into(),
        host: sshd.host(),
        port: sshd.port(),
        user: sshd.user().to_string(),
    };
    let key = SecretString::from(sshd.client_private_key().to_string());
    let connected = SshConnector::default()
        .connect(
            &target,
            &key,
            &HostKeyPolicy::Pinned(sshd.host_key_fingerprint().to_string()),
        )
        .await
        .expect("ssh connection to the harness sshd");
    let recording = Arc::new(Recording {
        inner: connected.executor,
        log: Mutex::new(Vec::new()),
    });
    Some(Rig {
        engine,
        sshd,
        executor: recording.clone(),
        recording,
        stacks_dir: tempfile::tempdir().expect("temp dir"),
    })
}

/// Builds (or reuses) an image on the blocking pool; `None` when its tools are missing.
pub async fn image<E: std::fmt::Debug + Send + 'static>(
    engine: &'static Dockerd,
    build: fn(&Dockerd) -> Result<Option<&'static str>, E>,
) -> Option<&'static str> {
    tokio::task::spawn_blocking(move || build(engine))
        .await
        .expect("image build thread")
        .unwrap_or_else(|e| panic!("building a test image: {e:?}"))
}

/// Wait options that print progress, so a slow CI run shows where it is.
pub fn patient(timeout: Duration) -> WaitOptions {
    WaitOptions {
        timeout,
        poll_interval: Duration::from_millis(1000),
        on_progress: Some(Arc::new(|s: &StackStatus| eprintln!("waiting: {s}"))),
        ..WaitOptions::default()
    }
}
