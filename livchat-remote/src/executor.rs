//! The `RemoteExecutor` trait: run commands and upload files on one server over one
//! connection, and `Connector`, which opens that connection with the host key checked.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{SecretBox, SecretString};
use tokio_util::sync::CancellationToken;

use crate::command::Command;

/// Where a server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The server's name in the state, used in errors (`host key changed for <name>`).
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
}

/// How the server's host key is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// First contact: accept and report the key so the caller can pin it.
    TrustOnFirstUse,
    /// Every later contact: the key must have this fingerprint (`SHA256:...`).
    Pinned(String),
}

/// Which stream an output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One line of remote output, streamed as it arrives (for job logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: OutputStream,
    pub line: String,
}

/// Receives output lines while a command runs.
pub type LineSink = Arc<dyn Fn(OutputLine) + Send + Sync>;

/// Options of one command.
pub struct ExecOptions {
    /// Sent on the channel's stdin, then EOF. This is how secrets travel.
    pub stdin: Option<SecretBox<[u8]>>,
    /// The command is aborted and its channel closed after this long.
    pub timeout: Duration,
    /// Cancelling aborts the running command and closes its channel.
    pub cancel: CancellationToken,
    /// Called for every complete output line.
    pub on_line: Option<LineSink>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            stdin: None,
            timeout: Duration::from_secs(600),
            cancel: CancellationToken::new(),
            on_line: None,
        }
    }
}

impl std::fmt::Debug for ExecOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecOptions")
            .field("stdin", &self.stdin.as_ref().map(|_| "[REDACTED]"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The result of a command that ran to completion (whatever its exit status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_status == 0
    }
}

/// Errors of remote execution.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("host key changed for {server}: pinned {pinned}, offered {offered}")]
    HostKeyChanged {
        server: String,
        pinned: String,
        offered: String,
    },
    #[error("could not connect to {server}: {reason}")]
    Connect { server: String, reason: String },
    #[error("authentication failed for {user}@{server}")]
    Auth { server: String, user: String },
    #[error("could not authenticate to {server} with the ssh-agent: {reason}")]
    Agent { server: String, reason: String },
    #[error("command timed out after {0:?}")]
    Timeout(Duration),
    #[error("command cancelled")]
    Cancelled,
    #[error("connection to {server} lost: {reason}")]
    Disconnected { server: String, reason: String },
    #[error("ssh: {0}")]
    Ssh(String),
}

/// Runs commands on one server over one connection; several may run at once.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RemoteExecutor: Send + Sync {
    /// Runs a command; returns when its channel closes, whatever the exit status.
    async fn exec(
        &self,
        command: &Command,
        options: ExecOptions,
    ) -> Result<ExecOutput, RemoteError>;

    /// Writes a file with the given mode; the content never appears in a command line.
    async fn upload(
        &self,
        path: &str,
        content: SecretBox<[u8]>,
        mode: u32,
        cancel: CancellationToken,
    ) -> Result<(), RemoteError>;

    /// A byte stream to `host:port` as the server itself sees it (an SSH `direct-tcpip`
    /// channel, what `ssh -L` uses), so a service listening only on the server's loopback or
    /// behind its firewall is reached without opening a port to the world. Executors that
    /// cannot tunnel say so.
    async fn open_tunnel(&self, host: &str, port: u16) -> Result<TunnelStream, RemoteError> {
        Err(RemoteError::Invalid {
            field: "tunnel".into(),
            reason: format!("this connection cannot open a tunnel to {host}:{port}"),
        })
    }
}

/// What a tunnel carries: bytes both ways, like a TCP stream.
pub trait TunnelIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> TunnelIo for T {}

/// An open tunnel (see [`RemoteExecutor::open_tunnel`]).
pub type TunnelStream = Box<dyn TunnelIo>;

/// An open connection and the fingerprint of the host key the server presented.
pub struct Connected {
    pub executor: Arc<dyn RemoteExecutor>,
    /// `SHA256:...`, to be pinned in `state.json` on first contact.
    pub host_key_fingerprint: String,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("host_key_fingerprint", &self.host_key_fingerprint)
            .finish_non_exhaustive()
    }
}

/// Opens connections; the private key is handed over as a secret (from the vault).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(
        &self,
        target: &SshTarget,
        private_key_openssh: &SecretString,
        host_key: &HostKeyPolicy,
    ) -> Result<Connected, RemoteError>;

    /// Opens a connection authenticated by a running ssh-agent listening on `socket` (the
    /// user's `SSH_AUTH_SOCK`): with its key whose fingerprint is `identity`, or the first key
    /// the server accepts. Also returns the fingerprint of the key that was accepted.
    async fn connect_agent(
        &self,
        target: &SshTarget,
        socket: &std::path::Path,
        identity: Option<String>,
        host_key: &HostKeyPolicy,
    ) -> Result<(Connected, String), RemoteError> {
        let _ = (socket, identity, host_key);
        Err(RemoteError::Agent {
            server: target.name.clone(),
            reason: "this connector cannot use an ssh-agent".into(),
        })
    }
}
