//! Two promises of the executor that a hostile or unusual server tests: output is bounded (a
//! command printing without end does not grow memory without end, and the cut is marked), and
//! a command line reaches `sh` unchanged whatever the login shell is (sshd runs
//! `$SHELL -c LINE`; here fish and tcsh run the line the executor sends, as sshd would).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fixtures::sshd::Sshd;
use livchat_remote::command::{for_any_login_shell, quote_command};
use livchat_remote::{
    Command, ExecOptions, HostKeyPolicy, OutputLine, RemoteExecutor, SshConnector, SshExecutor,
    SshTarget,
};
use secrecy::SecretString;

async fn connect(sshd: &Sshd) -> Arc<SshExecutor> {
    let target = SshTarget {
        name: "test-server".into(),
        host: sshd.host(),
        port: sshd.port(),
        user: sshd.user().into(),
    };
    let key = SecretString::from(sshd.client_private_key().to_owned());
    let (exec, _) = SshConnector::default()
        .connect_ssh(&target, &key, &HostKeyPolicy::TrustOnFirstUse)
        .await
        .expect("connect");
    exec
}

fn opts() -> ExecOptions {
    ExecOptions {
        timeout: Duration::from_secs(120),
        ..Default::default()
    }
}

#[tokio::test]
async fn endless_output_is_kept_to_its_head_and_tail_with_a_marker_counting_the_cut() {
    let Some(sshd) = Sshd::start() else {
        return;
    };
    let exec = connect(&sshd).await;
    exec.set_max_output(1 << 20);
    // 8 MiB on each stream: "start", then zeros, then "end".
    let script =
        "for fd in 1 2; do { printf start; head -c 8388608 /dev/zero; printf end; } >&$fd; done";
    let lines = Arc::new(Mutex::new(Vec::<OutputLine>::new()));
    let seen = lines.clone();
    let out = exec
        .exec(
            &Command::new("sh").args(["-c", script]),
            ExecOptions {
                on_line: Some(Arc::new(move |l: OutputLine| seen.lock().unwrap().push(l))),
                ..opts()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.exit_status, 0);
    let total: u64 = 8 * 1024 * 1024 + "startend".len() as u64;
    let marker = format!(
        "\n[livchat: {} bytes of output cut here]\n",
        total - (1 << 20)
    );
    for (name, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert_eq!(stream.len(), (1 << 20) + marker.len(), "{name}");
        assert!(stream.starts_with(b"start\0"), "{name}");
        assert!(stream.ends_with(b"\0end"), "{name}");
        let middle = &stream[1 << 19..(1 << 19) + marker.len()];
        assert_eq!(middle, marker.as_bytes(), "{name}");
    }
    // The line callback got each endless line cut at 64 KiB and marked.
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 2, "one cut line per stream");
    for l in lines.iter() {
        assert!(
            l.line.ends_with(" [livchat: line cut]"),
            "{:?}",
            &l.line[..20]
        );
        assert_eq!(l.line.len(), (64 << 10) + " [livchat: line cut]".len());
    }
}

#[tokio::test]
async fn the_default_limit_keeps_ordinary_output_whole() {
    let Some(sshd) = Sshd::start() else {
        return;
    };
    let exec = connect(&sshd).await;
    let out = exec
        .exec(
            &Command::new("head").args(["-c", "3000000", "/dev/urandom"]),
            opts(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 3_000_000);
}

/// Arguments that mean something different in fish or csh than in sh.
fn shell_breakers() -> Vec<String> {
    [
        "a\\b",
        "\\'",
        "'\\''",
        "back\\\\slash",
        "!!",
        "!$",
        "$status",
        "(echo x)",
        "{a,b}",
        "~root",
        "a\nb",
        "%self",
        "^x",
        "$(touch CANARY)",
        "'; touch CANARY; '",
        "\"; touch CANARY; \"",
        "`touch CANARY`",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

#[test]
fn the_line_for_the_login_shell_has_no_character_a_shell_could_read_differently() {
    let args = shell_breakers();
    let line =
        quote_command(&Command::new("printf").args(["%s\\0".to_string()].into_iter().chain(args)))
            .unwrap();
    let wrapped = for_any_login_shell(&line);
    let inner = wrapped
        .strip_prefix("sh -c 'eval \"$(printf %s ")
        .and_then(|r| r.strip_suffix(" | base64 -d)\"'"))
        .expect("the fixed wrapper");
    assert!(
        inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
        "{inner}"
    );
}

/// Runs the wrapped line with `shell -c`, as sshd does with the user's login shell.
#[test]
fn fish_tcsh_dash_and_bash_as_login_shell_all_pass_arguments_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary");
    let args: Vec<String> = shell_breakers()
        .into_iter()
        .map(|a| a.replace("CANARY", &canary.display().to_string()))
        .collect();
    let line = quote_command(
        &Command::new("printf").args(["%s\\0".to_string()].into_iter().chain(args.clone())),
    )
    .unwrap();
    let wrapped = for_any_login_shell(&line);
    let mut expected = Vec::new();
    for a in &args {
        expected.extend_from_slice(a.as_bytes());
        expected.push(0);
    }
    for shell in ["dash", "bash", "fish", "tcsh"] {
        let Some(path) = fixtures::tools::require(shell) else {
            continue;
        };
        let out = std::process::Command::new(&path)
            .args(["-c", &wrapped])
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, expected, "{shell}");
        assert!(!canary.exists(), "{shell} ran the canary");
    }
}
