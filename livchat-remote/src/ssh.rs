//! The russh implementation of [`Connector`] and [`RemoteExecutor`].
//!
//! One [`SshExecutor`] is one authenticated SSH connection; every command opens its own
//! session channel on it, so a job reuses the connection and runs several commands at once.
//!
//! - Authentication: public key only: the private key handed over as OpenSSH or PEM text in
//!   a [`SecretString`] (from the vault), never read from a path; or the keys of a running
//!   ssh-agent, which signs the server's challenge so the private key never leaves it.
//! - Host keys: [`HostKeyPolicy::TrustOnFirstUse`] accepts and reports the key's `SHA256:`
//!   fingerprint; [`HostKeyPolicy::Pinned`] refuses any other key with
//!   [`RemoteError::HostKeyChanged`] naming both fingerprints. Replacing a pin is the caller's
//!   explicit decision: connect once with `TrustOnFirstUse` and store the new fingerprint.
//! - Liveness: keepalives every [`SshConnector::keepalive_interval`]; no `inactivity_timeout`,
//!   so a long quiet command (an apt upgrade) is not cut off. A dead peer is detected by the
//!   missed keepalives or by the TCP connection closing.
//! - Every command line is for `sh`, whatever the user's login shell: sshd gives the login
//!   shell [`for_any_login_shell`]`(line)`, a fixed text that starts `sh` on the line.
//! - Each command has a timeout and a cancellation token; either kills the command's process
//!   group and closes the channel. OpenSSH refuses the protocol's `signal` request for root
//!   sessions ("session signalling requires privilege separation", seen with OpenSSH 9.2), and
//!   closing a channel does not stop a quiet process, so every command line starts with
//!   `printf "LIVCHAT_PID=%s\n" "$$" >&2; exec`, which reports the pid as the first stderr line
//!   (stripped from the output) before `sh` becomes the command; an abort runs
//!   `kill -KILL -PGID` for that pid's process group on a second channel, then kills every
//!   process whose environment holds the command's random `LIVCHAT_RUN` marker (exported
//!   first by the same line), which catches what moved to a session of its own. After the exit
//!   status, output is read until the channel closes.
//! - Output is bounded (see [`crate::capture`]): each stream keeps its first and last 8 MiB
//!   with a marker where it was cut, and a line callback gets lines of at most 64 KiB.
//! - Uploads go over SFTP (`internal-sftp` or `sftp-server` on the server): the file is opened
//!   with its mode, the mode is set again before the first byte (the file may have existed),
//!   then written. Content never appears in a command line.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate, decode_secret_key};
use russh::{ChannelMsg, Sig};
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::capture::{Capture, LineSplitter, MAX_CAPTURE, PidLine};
use crate::command::{Command, for_any_login_shell, quote_command};
use crate::executor::{
    Connected, Connector, ExecOptions, ExecOutput, HostKeyPolicy, OutputStream, RemoteError,
    RemoteExecutor, SshTarget,
};

/// Opens SSH connections with russh.
#[derive(Debug, Clone)]
pub struct SshConnector {
    /// TCP connect, key exchange and authentication together must finish within this.
    pub connect_timeout: Duration,
    /// A keepalive is sent after this much silence from the server.
    pub keepalive_interval: Duration,
    /// The connection is declared dead after this many unanswered keepalives.
    pub keepalive_max: usize,
}

impl Default for SshConnector {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 4,
        }
    }
}

/// Formats a host key fingerprint as OpenSSH does (`SHA256:` + unpadded base64).
fn fingerprint(key: &PublicKeyOrCertificate) -> String {
    match key {
        PublicKeyOrCertificate::PublicKey { key, .. } => {
            key.fingerprint(HashAlg::Sha256).to_string()
        }
        PublicKeyOrCertificate::Certificate(cert) => {
            cert.public_key().fingerprint(HashAlg::Sha256).to_string()
        }
    }
}

struct ClientHandler {
    policy: HostKeyPolicy,
    offered: Arc<Mutex<Option<String>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let offered = fingerprint(server_public_key);
        let accepted = match &self.policy {
            HostKeyPolicy::TrustOnFirstUse => true,
            HostKeyPolicy::Pinned(pinned) => *pinned == offered,
        };
        *self.offered.lock().unwrap_or_else(|e| e.into_inner()) = Some(offered);
        Ok(accepted)
    }
}

/// How a connection proves who it is.
enum Auth<'a> {
    Key(russh::keys::PrivateKey),
    /// The keys of a running ssh-agent: the one with this fingerprint, or each in turn.
    Agent {
        socket: &'a Path,
        identity: Option<&'a str>,
    },
}

impl SshConnector {
    /// Like [`Connector::connect`], returning the concrete executor (which counts round trips).
    pub async fn connect_ssh(
        &self,
        target: &SshTarget,
        private_key_openssh: &SecretString,
        host_key: &HostKeyPolicy,
    ) -> Result<(Arc<SshExecutor>, String), RemoteError> {
        let key = decode_secret_key(private_key_openssh.expose_secret(), None).map_err(|e| {
            // The decoder's message names the format problem, never key material.
            RemoteError::Invalid {
                field: "ssh private key".into(),
                reason: format!("not a usable unencrypted private key ({e})"),
            }
        })?;
        let (executor, fingerprint, _) = self.open(target, Auth::Key(key), host_key).await?;
        Ok((executor, fingerprint))
    }

    /// Like [`Connector::connect_agent`], returning the concrete executor.
    pub async fn connect_agent_ssh(
        &self,
        target: &SshTarget,
        socket: &Path,
        identity: Option<&str>,
        host_key: &HostKeyPolicy,
    ) -> Result<(Arc<SshExecutor>, String, String), RemoteError> {
        self.open(target, Auth::Agent { socket, identity }, host_key)
            .await
    }

    /// Connects, checks the host key against `host_key`, authenticates; returns the executor,
    /// the host key's fingerprint and the fingerprint of the client key that was accepted.
    async fn open(
        &self,
        target: &SshTarget,
        auth: Auth<'_>,
        host_key: &HostKeyPolicy,
    ) -> Result<(Arc<SshExecutor>, String, String), RemoteError> {
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(self.keepalive_interval),
            keepalive_max: self.keepalive_max,
            nodelay: true,
            ..Default::default()
        });
        let offered = Arc::new(Mutex::new(None));
        let handler = ClientHandler {
            policy: host_key.clone(),
            offered: offered.clone(),
        };
        let server = target.name.clone();
        let connect_error = |reason: String| RemoteError::Connect {
            server: server.clone(),
            reason,
        };
        let addr = (target.host.as_str(), target.port);
        let opened = tokio::time::timeout(self.connect_timeout, async {
            let mut handle = match client::connect(config, addr, handler).await {
                Ok(h) => h,
                Err(russh::Error::UnknownKey) => {
                    let offered = offered
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone()
                        .unwrap_or_default();
                    let pinned = match host_key {
                        HostKeyPolicy::Pinned(p) => p.clone(),
                        HostKeyPolicy::TrustOnFirstUse => String::new(),
                    };
                    return Err(RemoteError::HostKeyChanged {
                        server: server.clone(),
                        pinned,
                        offered,
                    });
                }
                Err(e) => return Err(connect_error(e.to_string())),
            };
            let client_key = match auth {
                Auth::Key(key) => {
                    let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
                    let hash_alg = if key.algorithm().is_rsa() {
                        handle
                            .best_supported_rsa_hash()
                            .await
                            .map_err(|e| connect_error(e.to_string()))?
                            .flatten()
                    } else {
                        None
                    };
                    let auth = handle
                        .authenticate_publickey(
                            target.user.clone(),
                            PrivateKeyWithHashAlg::new(Arc::new(key), hash_alg),
                        )
                        .await
                        .map_err(|e| connect_error(e.to_string()))?;
                    auth.success().then_some(fingerprint)
                }
                Auth::Agent { socket, identity } => {
                    authenticate_with_agent(&mut handle, &target.user, socket, identity)
                        .await
                        .map_err(|reason| RemoteError::Agent {
                            server: server.clone(),
                            reason,
                        })?
                }
            };
            let Some(client_key) = client_key else {
                return Err(RemoteError::Auth {
                    server: server.clone(),
                    user: target.user.clone(),
                });
            };
            Ok((handle, client_key))
        })
        .await
        .map_err(|_| connect_error(format!("timed out after {:?}", self.connect_timeout)))??;
        let (handle, client_key) = opened;
        let fingerprint = offered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| connect_error("the server presented no host key".into()))?;
        Ok((
            Arc::new(SshExecutor {
                handle,
                server: target.name.clone(),
                round_trips: AtomicU64::new(0),
                max_output: AtomicUsize::new(MAX_CAPTURE),
            }),
            fingerprint,
            client_key,
        ))
    }
}

/// Offers the agent's keys (only the one with fingerprint `identity` when given) until the
/// server accepts one; returns its fingerprint, `None` when none was accepted. The private
/// keys never leave the agent: it signs the server's challenge.
async fn authenticate_with_agent(
    handle: &mut Handle<ClientHandler>,
    user: &str,
    socket: &Path,
    identity: Option<&str>,
) -> Result<Option<String>, String> {
    let mut agent = AgentClient::connect_uds(socket)
        .await
        .map_err(|e| format!("could not reach the ssh-agent at {}: {e}", socket.display()))?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| format!("the ssh-agent did not list its keys: {e}"))?;
    let keys: Vec<_> = identities
        .into_iter()
        .filter_map(|id| match id {
            AgentIdentity::PublicKey { key, .. } => Some(key),
            AgentIdentity::Certificate { .. } => None,
        })
        .map(|key| (key.fingerprint(HashAlg::Sha256).to_string(), key))
        .filter(|(fp, _)| identity.is_none_or(|wanted| wanted == fp))
        .collect();
    if keys.is_empty() {
        return Err(match identity {
            Some(fp) => format!("the ssh-agent holds no key {fp}; add it with `ssh-add`"),
            None => "the ssh-agent holds no keys; add one with `ssh-add`".into(),
        });
    }
    for (fingerprint, key) in keys {
        let hash_alg = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(|e| e.to_string())?
                .flatten()
        } else {
            None
        };
        let auth = handle
            .authenticate_publickey_with(user.to_string(), key, hash_alg, &mut agent)
            .await
            .map_err(|e| format!("the ssh-agent could not sign: {e}"))?;
        if auth.success() {
            return Ok(Some(fingerprint));
        }
    }
    Ok(None)
}

#[async_trait]
impl Connector for SshConnector {
    async fn connect(
        &self,
        target: &SshTarget,
        private_key_openssh: &SecretString,
        host_key: &HostKeyPolicy,
    ) -> Result<Connected, RemoteError> {
        let (executor, host_key_fingerprint) = self
            .connect_ssh(target, private_key_openssh, host_key)
            .await?;
        Ok(Connected {
            executor,
            host_key_fingerprint,
        })
    }

    async fn connect_agent(
        &self,
        target: &SshTarget,
        socket: &Path,
        identity: Option<String>,
        host_key: &HostKeyPolicy,
    ) -> Result<(Connected, String), RemoteError> {
        let (executor, host_key_fingerprint, client_key) = self
            .connect_agent_ssh(target, socket, identity.as_deref(), host_key)
            .await?;
        Ok((
            Connected {
                executor,
                host_key_fingerprint,
            },
            client_key,
        ))
    }
}

/// One authenticated connection to one server.
pub struct SshExecutor {
    handle: Handle<ClientHandler>,
    server: String,
    round_trips: AtomicU64,
    /// The most of each output stream a command result keeps (see [`crate::capture`]).
    max_output: AtomicUsize,
}

impl std::fmt::Debug for SshExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshExecutor")
            .field("server", &self.server)
            .field("round_trips", &self.round_trips())
            .finish_non_exhaustive()
    }
}

/// The shell convention for a command killed by a signal: 128 + the signal's number.
fn signal_exit_status(signal: &Sig) -> u32 {
    128 + match signal {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 0,
    }
}

/// Reports the pid as the first stderr line, then becomes the command (see the module docs).
/// `$$` is the pid of the `sh` that runs this, which `exec` turns into the command. Before
/// that it exports the command's marker (`LIVCHAT_RUN`, a random value per command), which
/// every process it starts inherits, whatever process group or session it moves to.
fn pid_prefix(marker: &str) -> String {
    format!(
        r#"LIVCHAT_RUN={marker}; export LIVCHAT_RUN; printf "LIVCHAT_PID=%s\n" "$$" >&2; exec "#
    )
}

/// Kills the process group of the pid in `$1` (the wrapper's, which is the command's), then
/// every process whose environment holds `$2` (`LIVCHAT_RUN=marker`): what left the group,
/// as dpkg under apt-get does with a session of its own.
const KILL_GROUP: &str = r#"pgid=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f3)
if [ -n "$pgid" ] && [ "$pgid" -gt 1 ]; then kill -KILL "-$pgid" 2>/dev/null; fi
kill -KILL "$1" 2>/dev/null
for f in /proc/[0-9]*/environ; do
  if grep -qzx -- "$2" "$f" 2>/dev/null; then
    p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null
  fi
done
exit 0
"#;

enum Abort {
    Timeout,
    Cancelled,
}

impl SshExecutor {
    /// Commands and uploads started on this connection (each is one channel, one round trip).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Keeps at most `bytes` of each output stream of later commands (default
    /// [`MAX_CAPTURE`]); what is cut is marked. For tests that check the bound cheaply.
    pub fn set_max_output(&self, bytes: usize) {
        self.max_output.store(bytes.max(2), Ordering::Relaxed);
    }

    /// The server name this connection was opened for (used in errors).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Closes the connection politely.
    pub async fn disconnect(&self) -> Result<(), RemoteError> {
        self.handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await
            .map_err(|e| RemoteError::Ssh(e.to_string()))
    }

    fn lost(&self, reason: impl Into<String>) -> RemoteError {
        RemoteError::Disconnected {
            server: self.server.clone(),
            reason: reason.into(),
        }
    }

    async fn open_channel(&self) -> Result<russh::Channel<client::Msg>, RemoteError> {
        if self.handle.is_closed() {
            return Err(self.lost("the connection is closed"));
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.handle
            .channel_open_session()
            .await
            .map_err(|e| self.lost(format!("could not open a channel: {e}")))
    }

    /// Runs `line`; on a timeout or cancel, kills what it started (`marker`: the command's
    /// `LIVCHAT_RUN` value; `None` for the kill command itself).
    async fn run(
        &self,
        line: String,
        options: ExecOptions,
        deadline: Instant,
        marker: Option<&str>,
    ) -> Result<ExecOutput, RemoteError> {
        let ExecOptions {
            stdin,
            cancel,
            on_line,
            timeout,
        } = options;
        let abort = async {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => Abort::Timeout,
                _ = cancel.cancelled() => Abort::Cancelled,
            }
        };
        tokio::pin!(abort);
        let to_error = |a: Abort| match a {
            Abort::Timeout => RemoteError::Timeout(timeout),
            Abort::Cancelled => RemoteError::Cancelled,
        };

        let channel = tokio::select! {
            c = self.open_channel() => c?,
            a = &mut abort => return Err(to_error(a)),
        };
        let (mut read, write) = channel.split();
        tokio::select! {
            r = write.exec(true, line.into_bytes()) => {
                r.map_err(|e| self.lost(format!("could not start the command: {e}")))?
            }
            a = &mut abort => {
                let _ = write.close().await;
                return Err(to_error(a));
            }
        }

        // Stdin is written while output is read, so a command that prints before it reads
        // cannot deadlock on flow control. EOF always follows, so `cat`/`sh -s` terminate.
        let send_stdin = async {
            if let Some(input) = &stdin {
                write.data(input.expose_secret()).await?;
            }
            write.eof().await
        };
        tokio::pin!(send_stdin);
        let mut stdin_done = false;

        let max_output = self.max_output.load(Ordering::Relaxed);
        let mut stdout = Capture::new(max_output);
        let mut stderr = Capture::new(max_output);
        let mut exit_status = None;
        let mut lines_out = LineSplitter::new(OutputStream::Stdout);
        let mut lines_err = LineSplitter::new(OutputStream::Stderr);
        let mut closed = false;
        let mut pid_line = PidLine::default();
        loop {
            tokio::select! {
                r = &mut send_stdin, if !stdin_done => {
                    stdin_done = true;
                    // A command that exits without reading stdin closes the channel first;
                    // its exit status is what matters, not our failed write.
                    if let Err(e) = r {
                        tracing::debug!("stdin not fully delivered: {e}");
                    }
                }
                msg = read.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        if let Some(sink) = &on_line {
                            lines_out.push(&data, sink);
                        }
                        stdout.push(&data);
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        let data = pid_line.feed(&data);
                        if let Some(sink) = &on_line {
                            lines_err.push(&data, sink);
                        }
                        stderr.push(&data);
                    }
                    Some(ChannelMsg::ExitStatus { exit_status: s }) => exit_status = Some(s),
                    Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                        exit_status = Some(signal_exit_status(&signal_name));
                    }
                    Some(ChannelMsg::Close) => {
                        closed = true;
                        break;
                    }
                    Some(_) => {}
                    None => break,
                },
                a = &mut abort => {
                    if let Some(marker) = marker {
                        self.kill_remote(&mut read, &mut pid_line, marker).await;
                    }
                    let _ = write.close().await;
                    return Err(to_error(a));
                }
            }
        }
        if let Some(sink) = &on_line {
            lines_out.finish(sink);
            lines_err.finish(sink);
        }
        match exit_status {
            Some(s) => Ok(ExecOutput {
                exit_status: s,
                stdout: stdout.finish(),
                stderr: stderr.finish(),
            }),
            None if closed => Err(RemoteError::Ssh(
                "the channel closed without an exit status".into(),
            )),
            None => Err(self.lost("the connection closed while the command ran")),
        }
    }

    /// Kills an aborted command's process group through a second channel. When its pid has
    /// not arrived yet, waits for it briefly: the command may be starting.
    async fn kill_remote(
        &self,
        read: &mut russh::ChannelReadHalf,
        pid_line: &mut PidLine,
        marker: &str,
    ) {
        let wait_for_pid = async {
            while pid_line.pid.is_none() && !pid_line.done {
                match read.wait().await {
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        pid_line.feed(&data);
                    }
                    Some(ChannelMsg::Close) | None => break,
                    Some(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), wait_for_pid).await;
        let Some(pid) = pid_line.pid else { return };
        let kill = Command::new("sh").args([
            "-s".to_string(),
            "--".into(),
            pid.to_string(),
            format!("LIVCHAT_RUN={marker}"),
        ]);
        let Ok(line) = quote_command(&kill) else {
            return;
        };
        let line = for_any_login_shell(&line);
        // `run` aborts through this function, so its future is boxed to break the recursion.
        let killed = Box::pin(self.run(
            line,
            ExecOptions {
                stdin: Some(SecretBox::new(
                    KILL_GROUP.as_bytes().to_vec().into_boxed_slice(),
                )),
                timeout: Duration::from_secs(10),
                ..Default::default()
            },
            Instant::now() + Duration::from_secs(10),
            None,
        ));
        if let Err(e) = killed.await {
            tracing::warn!(server = %self.server, "could not kill an aborted command: {e}");
        }
    }

    async fn sftp_write(&self, path: &str, content: &[u8], mode: u32) -> Result<(), RemoteError> {
        let sftp_err = |what: &str, e: &dyn std::fmt::Display| {
            RemoteError::Ssh(format!("upload to {path}: {what}: {e}"))
        };
        let channel = self.open_channel().await?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| sftp_err("sftp subsystem", &e))?;
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| sftp_err("sftp session", &e))?;
        let attrs = FileAttributes {
            permissions: Some(mode),
            ..FileAttributes::empty()
        };
        let mut file = sftp
            .open_with_flags_and_attributes(
                path,
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
                attrs.clone(),
            )
            .await
            .map_err(|e| sftp_err("open", &e))?;
        // An existing file keeps its old mode on open; narrow it before writing the content.
        file.set_metadata(attrs)
            .await
            .map_err(|e| sftp_err("set mode", &e))?;
        file.write_all(content)
            .await
            .map_err(|e| sftp_err("write", &e))?;
        file.shutdown().await.map_err(|e| sftp_err("flush", &e))?;
        drop(file);
        sftp.close().await.map_err(|e| sftp_err("close", &e))?;
        Ok(())
    }
}

#[async_trait]
impl RemoteExecutor for SshExecutor {
    async fn exec(
        &self,
        command: &Command,
        options: ExecOptions,
    ) -> Result<ExecOutput, RemoteError> {
        let line = quote_command(command)?;
        let deadline = Instant::now() + options.timeout;
        tracing::debug!(server = %self.server, command = %line, "exec");
        let marker = format!("{:016x}", rand::random::<u64>());
        self.run(
            for_any_login_shell(&format!("{}{line}", pid_prefix(&marker))),
            options,
            deadline,
            Some(&marker),
        )
        .await
    }

    async fn upload(
        &self,
        path: &str,
        content: SecretBox<[u8]>,
        mode: u32,
        cancel: CancellationToken,
    ) -> Result<(), RemoteError> {
        if !path.starts_with('/') || path.contains('\0') {
            return Err(RemoteError::Invalid {
                field: "upload path".into(),
                reason: format!("{path:?} must be an absolute path without NUL"),
            });
        }
        if mode > 0o7777 {
            return Err(RemoteError::Invalid {
                field: "upload mode".into(),
                reason: format!("{mode:o} is not a file mode (0 to 7777 octal)"),
            });
        }
        tokio::select! {
            r = self.sftp_write(path, content.expose_secret(), mode) => r,
            _ = cancel.cancelled() => Err(RemoteError::Cancelled),
        }
    }

    async fn open_tunnel(
        &self,
        host: &str,
        port: u16,
    ) -> Result<crate::executor::TunnelStream, RemoteError> {
        if self.handle.is_closed() {
            return Err(self.lost("the connection is closed"));
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        // The originator is informational for sshd (it logs it); nothing listens there.
        let channel = self
            .handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
            .await
            .map_err(|e| {
                RemoteError::Ssh(format!(
                    "{} refused a tunnel to {host}:{port} (is AllowTcpForwarding off?): {e}",
                    self.server
                ))
            })?;
        Ok(Box::new(channel.into_stream()))
    }
}
