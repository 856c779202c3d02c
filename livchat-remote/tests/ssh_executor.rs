//! The russh executor against a real OpenSSH server (fixtures::sshd).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fixtures::sshd::{Sshd, SshdOptions};
use livchat_remote::{
    Command, Connector, ExecOptions, HostKeyPolicy, OutputLine, OutputStream, RemoteError,
    RemoteExecutor, SshConnector, SshExecutor, SshTarget,
};
use secrecy::{SecretBox, SecretString};
use tokio_util::sync::CancellationToken;

fn target(sshd: &Sshd) -> SshTarget {
    SshTarget {
        name: "test-server".into(),
        host: sshd.host(),
        port: sshd.port(),
        user: sshd.user().into(),
    }
}

fn key(sshd: &Sshd) -> SecretString {
    SecretString::from(sshd.client_private_key().to_owned())
}

async fn connect(sshd: &Sshd) -> Arc<SshExecutor> {
    let (exec, _) = SshConnector::default()
        .connect_ssh(&target(sshd), &key(sshd), &HostKeyPolicy::TrustOnFirstUse)
        .await
        .expect("connect");
    exec
}

fn sh(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

fn opts(timeout_secs: u64) -> ExecOptions {
    ExecOptions {
        timeout: Duration::from_secs(timeout_secs),
        ..Default::default()
    }
}

/// Whether any process on this machine has `needle` in its command line.
fn in_any_cmdline(needle: &[u8]) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| c.windows(needle.len()).any(|w| w == needle))
}

#[tokio::test]
async fn first_contact_reports_the_fingerprint_ssh_keygen_prints() {
    let Some(sshd) = Sshd::start() else { return };
    let connected = SshConnector::default()
        .connect(&target(&sshd), &key(&sshd), &HostKeyPolicy::TrustOnFirstUse)
        .await
        .unwrap();
    assert_eq!(connected.host_key_fingerprint, sshd.host_key_fingerprint());
    assert!(connected.host_key_fingerprint.starts_with("SHA256:"));
    // The pinned fingerprint is accepted on the next contact.
    let pinned = HostKeyPolicy::Pinned(connected.host_key_fingerprint.clone());
    let again = SshConnector::default()
        .connect(&target(&sshd), &key(&sshd), &pinned)
        .await
        .unwrap();
    let out = again
        .executor
        .exec(&Command::new("true"), opts(60))
        .await
        .unwrap();
    assert_eq!(out.exit_status, 0);
}

#[tokio::test]
async fn changed_host_key_is_refused_naming_both_fingerprints() {
    let Some(mut sshd) = Sshd::start() else {
        return;
    };
    let old = sshd.host_key_fingerprint().to_owned();
    sshd.restart_with_new_host_key();
    let new = sshd.host_key_fingerprint().to_owned();
    assert_ne!(old, new);
    let err = SshConnector::default()
        .connect(
            &target(&sshd),
            &key(&sshd),
            &HostKeyPolicy::Pinned(old.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("host key changed for test-server: pinned {old}, offered {new}")
    );
    // Replacing the pin is an explicit first-use connection; it reports the new key.
    let replaced = SshConnector::default()
        .connect(&target(&sshd), &key(&sshd), &HostKeyPolicy::TrustOnFirstUse)
        .await
        .unwrap();
    assert_eq!(replaced.host_key_fingerprint, new);
}

#[tokio::test]
async fn an_unauthorized_key_is_rejected_as_an_auth_error() {
    let Some(sshd) = Sshd::start() else { return };
    let stranger = SecretString::from(sshd.unauthorized_private_key());
    let err = SshConnector::default()
        .connect(&target(&sshd), &stranger, &HostKeyPolicy::TrustOnFirstUse)
        .await
        .unwrap_err();
    assert!(matches!(err, RemoteError::Auth { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("authentication failed for {}@test-server", sshd.user())
    );
}

#[tokio::test]
async fn a_malformed_key_is_rejected_without_echoing_it() {
    let Some(sshd) = Sshd::start() else { return };
    let bad = SecretString::from("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END OPENSSH PRIVATE KEY-----\n".to_owned());
    let err = SshConnector::default()
        .connect(&target(&sshd), &bad, &HostKeyPolicy::TrustOnFirstUse)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("invalid ssh private key:"), "{text}");
    assert!(!text.contains("c2VjcmV0LWJ5dGVz"));
}

#[tokio::test]
async fn exit_codes_0_1_and_255_are_kept() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    for code in [0u32, 1, 255] {
        let out = exec
            .exec(&sh(&format!("exit {code}")), opts(60))
            .await
            .unwrap();
        assert_eq!(out.exit_status, code);
    }
    // Killed by a signal: the shell convention 128 + signal number.
    let out = exec.exec(&sh("kill -TERM $$"), opts(60)).await.unwrap();
    assert_eq!(out.exit_status, 143);
}

#[tokio::test]
async fn ten_megabytes_of_stdout_arrive_complete_and_in_order() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let out = exec
        .exec(&Command::new("seq").args(["1", "1400000"]), opts(120))
        .await
        .unwrap();
    let expected: String = (1..=1_400_000).map(|i| format!("{i}\n")).collect();
    assert!(expected.len() > 10_000_000);
    assert_eq!(out.stdout.len(), expected.len());
    assert!(out.stdout == expected.as_bytes());
}

#[tokio::test]
async fn stderr_and_stdout_are_separated_and_streamed_as_lines() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let lines = Arc::new(Mutex::new(Vec::<OutputLine>::new()));
    let sink = lines.clone();
    let out = exec
        .exec(
            &sh("for i in 1 2 3; do echo out$i; echo err$i >&2; done; printf tail"),
            ExecOptions {
                on_line: Some(Arc::new(move |l| sink.lock().unwrap().push(l))),
                ..opts(60)
            },
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"out1\nout2\nout3\ntail");
    assert_eq!(out.stderr, b"err1\nerr2\nerr3\n");
    let lines = lines.lock().unwrap();
    let of = |s: OutputStream| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.stream == s)
            .map(|l| l.line.clone())
            .collect()
    };
    assert_eq!(of(OutputStream::Stdout), ["out1", "out2", "out3", "tail"]);
    assert_eq!(of(OutputStream::Stderr), ["err1", "err2", "err3"]);
}

#[tokio::test]
async fn output_after_the_exit_status_is_still_read() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    // The shell exits at once; its background child keeps the channel open and writes later.
    let out = exec
        .exec(&sh("(sleep 1; echo late) & exit 3"), opts(60))
        .await
        .unwrap();
    assert_eq!(out.exit_status, 3);
    assert_eq!(out.stdout, b"late\n");
}

#[tokio::test]
async fn a_secret_sent_on_stdin_never_appears_in_any_command_line() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let secret = format!("s3cr3t-{}", std::process::id()) + "-d0-not-leak";
    let running = {
        let exec = exec.clone();
        let secret = secret.clone();
        tokio::spawn(async move {
            exec.exec(
                &sh("IFS= read -r s; sleep 2; printf '%s' \"$s\" | sha256sum"),
                ExecOptions {
                    stdin: Some(SecretBox::new(secret.into_bytes().into_boxed_slice())),
                    ..opts(120)
                },
            )
            .await
        })
    };
    let mut scans = 0;
    while !running.is_finished() {
        assert!(
            !in_any_cmdline(secret.as_bytes()),
            "the secret is in a command line"
        );
        scans += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(scans > 10, "the command ended before it could be observed");
    let out = running.await.unwrap().unwrap();
    let local = std::process::Command::new("sh")
        .args(["-c", "printf '%s' \"$1\" | sha256sum", "sh", &secret])
        .output()
        .unwrap();
    assert_eq!(out.stdout, local.stdout, "the secret arrived unchanged");
    assert!(!sshd.log().contains(&secret));
}

#[tokio::test]
async fn a_hundred_commands_run_at_once_on_one_connection() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let runs = (0..100).map(|i| {
        let exec = exec.clone();
        async move {
            exec.exec(&sh("sleep 0.5; echo \"$0\"").arg(i.to_string()), opts(60))
                .await
        }
    });
    let results = futures::future::join_all(runs).await;
    for (i, r) in results.into_iter().enumerate() {
        let out = r.unwrap_or_else(|e| panic!("command {i}: {e}"));
        assert_eq!(out.stdout, format!("{i}\n").as_bytes());
    }
    assert_eq!(exec.round_trips(), 100);
}

#[tokio::test]
async fn fifty_connections_open_at_once() {
    let Some(sshd) = Sshd::start() else { return };
    let connects = (0..50).map(|i| {
        let target = target(&sshd);
        let key = key(&sshd);
        async move {
            let (exec, _) = SshConnector::default()
                .connect_ssh(&target, &key, &HostKeyPolicy::TrustOnFirstUse)
                .await?;
            exec.exec(&Command::new("echo").arg(i.to_string()), opts(60))
                .await
        }
    });
    let results = futures::future::join_all(connects).await;
    for (i, r) in results.into_iter().enumerate() {
        let out = r.unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", sshd.log()));
        assert_eq!(out.stdout, format!("{i}\n").as_bytes());
    }
}

#[tokio::test]
async fn sshd_killed_mid_command_gives_a_clear_error_without_hanging() {
    let Some(mut sshd) = Sshd::start() else {
        return;
    };
    let exec = connect(&sshd).await;
    let running = {
        let exec = exec.clone();
        tokio::spawn(async move { exec.exec(&sh("sleep 30"), opts(60)).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    sshd.kill();
    let result = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("the command returned well within its timeout")
        .unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, RemoteError::Disconnected { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("connection to test-server lost:"),
        "{err}"
    );
    // Later commands on the dead connection fail at once, too.
    let again = tokio::time::timeout(
        Duration::from_secs(5),
        exec.exec(&Command::new("true"), opts(60)),
    )
    .await
    .expect("no hang");
    assert!(again.is_err());
}

#[tokio::test]
async fn a_timeout_aborts_the_command() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    // Unique per run, so an earlier run's leftover cannot be mistaken for this one.
    let marker = format!("100.{}1", std::process::id());
    let err = exec
        .exec(&Command::new("sleep").arg(marker.clone()), opts(1))
        .await
        .unwrap_err();
    assert!(matches!(err, RemoteError::Timeout(_)), "{err}");
    assert_eq!(err.to_string(), "command timed out after 1s");
    wait_gone(format!("sleep\0{marker}").as_bytes()).await;
}

async fn wait_gone(cmdline: &[u8]) {
    for _ in 0..100 {
        if !in_any_cmdline(cmdline) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} is still running", String::from_utf8_lossy(cmdline));
}

#[tokio::test]
async fn cancellation_aborts_a_running_sleep_and_kills_it() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let marker = format!("100.{}2", std::process::id());
    let needle = format!("sleep\0{marker}");
    let cancel = CancellationToken::new();
    let running = {
        let exec = exec.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            exec.exec(
                &sh(&format!("sleep {marker}; echo never")),
                ExecOptions {
                    cancel,
                    ..opts(120)
                },
            )
            .await
        })
    };
    // The command must really be running before we cancel.
    for _ in 0..250 {
        if in_any_cmdline(needle.as_bytes()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(in_any_cmdline(needle.as_bytes()));
    cancel.cancel();
    let err = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("cancellation returns promptly")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, RemoteError::Cancelled), "{err}");
    wait_gone(needle.as_bytes()).await;
    // The connection stays usable for the job's next command.
    let out = exec
        .exec(&Command::new("echo").arg("ok"), opts(60))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"ok\n");
}

/// Issue #12: what a command starts in a session of its own (dpkg under apt-get) leaves its
/// process group, so a group kill alone would leave it running after a cancel.
#[tokio::test]
async fn cancellation_also_kills_what_the_command_moved_to_a_session_of_its_own() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let (own, child) = (
        format!("100.{}3", std::process::id()),
        format!("100.{}4", std::process::id()),
    );
    let needles = [format!("sleep\0{own}"), format!("sleep\0{child}")];
    let cancel = CancellationToken::new();
    let running = {
        let exec = exec.clone();
        let cancel = cancel.clone();
        let line = format!("setsid sleep {child} & sleep {own}");
        tokio::spawn(async move {
            exec.exec(
                &sh(&line),
                ExecOptions {
                    cancel,
                    ..opts(120)
                },
            )
            .await
        })
    };
    for _ in 0..250 {
        if needles.iter().all(|n| in_any_cmdline(n.as_bytes())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(needles.iter().all(|n| in_any_cmdline(n.as_bytes())));
    cancel.cancel();
    let err = running.await.unwrap().unwrap_err();
    assert!(matches!(err, RemoteError::Cancelled), "{err}");
    for needle in &needles {
        wait_gone(needle.as_bytes()).await;
    }
}

#[tokio::test]
async fn a_quiet_command_outlives_the_keepalive_interval() {
    let Some(sshd) = Sshd::start() else { return };
    let connector = SshConnector {
        keepalive_interval: Duration::from_millis(500),
        keepalive_max: 2,
        ..Default::default()
    };
    let (exec, _) = connector
        .connect_ssh(&target(&sshd), &key(&sshd), &HostKeyPolicy::TrustOnFirstUse)
        .await
        .unwrap();
    let out = exec
        .exec(&sh("sleep 4; echo done"), opts(120))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"done\n");
}

#[tokio::test]
async fn upload_writes_content_with_its_mode_even_over_an_existing_file() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let path = sshd.dir().join("secret.env");
    std::fs::write(&path, "old content that is longer than the new one\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let content = b"TOKEN=abc\n\x00binary\xff".to_vec();
    exec.upload(
        path.to_str().unwrap(),
        SecretBox::new(content.clone().into_boxed_slice()),
        0o600,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), content);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    assert!(!sshd.log().contains("TOKEN=abc"));
}

#[tokio::test]
async fn upload_rejects_a_relative_path() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let err = exec
        .upload(
            "relative/x",
            SecretBox::new(b"x".to_vec().into_boxed_slice()),
            0o600,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid upload path: \"relative/x\" must be an absolute path without NUL"
    );
}

#[tokio::test]
async fn extra_sshd_config_lines_reach_the_session_environment() {
    let Some(sshd) = Sshd::start_with(SshdOptions {
        extra_config: vec!["SetEnv LIVCHAT_TEST_MARK=from-sshd-config".into()],
        ..Default::default()
    }) else {
        return;
    };
    let exec = connect(&sshd).await;
    let out = exec
        .exec(&sh("printf %s \"$LIVCHAT_TEST_MARK\""), opts(60))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"from-sshd-config");
}

// ----- keys the user brings (issue #13) -------------------------------------------------------

/// Makes a client key with the real `ssh-keygen`, authorizes it on `sshd`, returns its text.
fn authorized_key(sshd: &Sshd, name: &str, args: &[&str]) -> SecretString {
    let path = sshd.dir().join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-C", name, "-f"])
        .arg(&path)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen {args:?}");
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    let mut authorized = std::fs::OpenOptions::new()
        .append(true)
        .open(sshd.dir().join("authorized_keys"))
        .unwrap();
    std::io::Write::write_all(&mut authorized, public.as_bytes()).unwrap();
    SecretString::from(std::fs::read_to_string(&path).unwrap())
}

#[tokio::test]
async fn rsa_ecdsa_pem_and_passphrase_protected_keys_authenticate() {
    let Some(sshd) = Sshd::start() else { return };
    let cases: Vec<(&str, Vec<&str>, Option<&str>)> = vec![
        (
            "rsa_openssh",
            vec!["-t", "rsa", "-b", "2048", "-N", ""],
            None,
        ),
        (
            "rsa_pem",
            vec!["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", ""],
            None,
        ),
        ("ecdsa", vec!["-t", "ecdsa", "-N", ""], None),
        (
            "ed25519_pass",
            vec!["-t", "ed25519", "-N", "s3cret pass"],
            Some("s3cret pass"),
        ),
        (
            "rsa_pass",
            vec!["-t", "rsa", "-b", "2048", "-N", "s3cret pass"],
            Some("s3cret pass"),
        ),
    ];
    for (name, args, passphrase) in cases {
        let text = authorized_key(&sshd, name, &args);
        assert_eq!(
            livchat_remote::private_key_is_encrypted(&text),
            passphrase.is_some(),
            "{name}"
        );
        let passphrase = passphrase.map(|p| SecretString::from(p.to_owned()));
        let opened = livchat_remote::decrypt_private_key(&text, passphrase.as_ref())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Unprotected keys go to the connection as the user gave them; protected ones opened.
        let usable = if passphrase.is_some() {
            opened.private_openssh.clone()
        } else {
            text.clone()
        };
        let connected = SshConnector::default()
            .connect(&target(&sshd), &usable, &HostKeyPolicy::TrustOnFirstUse)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = connected
            .executor
            .exec(&Command::new("true"), opts(60))
            .await
            .unwrap();
        assert_eq!(out.exit_status, 0, "{name}");
        if passphrase.is_some() {
            for wrong in [None, Some(SecretString::from("wrong".to_owned()))] {
                let err = livchat_remote::decrypt_private_key(&text, wrong.as_ref())
                    .unwrap_err()
                    .to_string();
                assert!(err.contains("passphrase"), "{name}: {err}");
                assert!(!err.contains("s3cret"), "{name}: {err}");
            }
        }
    }
}

/// A real `ssh-agent` on a socket in `dir`; killed on drop.
struct Agent {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl Agent {
    fn start(dir: &std::path::Path) -> Self {
        let socket = dir.join("agent.sock");
        let child = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (package openssh-client)");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(socket.exists(), "ssh-agent did not create its socket");
        Agent { child, socket }
    }

    fn add(&self, key_file: &std::path::Path) {
        let status = std::process::Command::new("ssh-add")
            .arg("-q")
            .arg(key_file)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-add {}", key_file.display());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn public_fingerprint(key: &SecretString) -> String {
    livchat_remote::parse_private_key(key).unwrap().fingerprint
}

#[tokio::test]
async fn ssh_agent_keys_authenticate_and_a_named_identity_is_the_only_one_offered() {
    let Some(sshd) = Sshd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path());
    // The agent holds a key the server refuses, then the authorized one.
    let stranger = dir.path().join("stranger");
    // Each call makes a new key: read it once for the agent and the fingerprint.
    let stranger_key = sshd.unauthorized_private_key();
    std::fs::write(&stranger, &stranger_key).unwrap();
    std::fs::set_permissions(
        &stranger,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    agent.add(&stranger);
    agent.add(&sshd.dir().join("client_key"));
    let authorized = public_fingerprint(&key(&sshd));
    let refused = public_fingerprint(&SecretString::from(stranger_key));

    let connector = SshConnector::default();
    let (exec, host_key, client_key) = connector
        .connect_agent_ssh(
            &target(&sshd),
            &agent.socket,
            None,
            &HostKeyPolicy::TrustOnFirstUse,
        )
        .await
        .unwrap();
    assert_eq!(host_key, sshd.host_key_fingerprint());
    assert_eq!(client_key, authorized, "the key the server accepted");
    let out = exec.exec(&Command::new("true"), opts(60)).await.unwrap();
    assert_eq!(out.exit_status, 0);

    let pinned = HostKeyPolicy::Pinned(host_key);
    connector
        .connect_agent_ssh(&target(&sshd), &agent.socket, Some(&authorized), &pinned)
        .await
        .unwrap();
    let err = connector
        .connect_agent_ssh(&target(&sshd), &agent.socket, Some(&refused), &pinned)
        .await
        .unwrap_err();
    assert!(matches!(err, RemoteError::Auth { .. }), "{err}");
    let missing = "SHA256:AAAAztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    let err = connector
        .connect_agent_ssh(&target(&sshd), &agent.socket, Some(missing), &pinned)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RemoteError::Agent { reason, .. } if reason.contains(missing)),
        "{err}"
    );
    let err = connector
        .connect_agent_ssh(
            &target(&sshd),
            &dir.path().join("no-agent.sock"),
            None,
            &pinned,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("could not reach the ssh-agent"),
        "{err}"
    );
}
