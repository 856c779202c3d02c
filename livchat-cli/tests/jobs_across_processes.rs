//! Jobs shared by several `livchat` processes on one home: a server busy with a job of one
//! process refuses a second job from another (naming the job in the way), `--wait-turn` is
//! the way to queue instead, `--detach` hands a job to a background process that outlives the
//! process group that started it, and a cancel from one process reaches the job in another.
//!
//! The busy job is a real setup whose first step connects over TCP to a listener of this test
//! that accepts and never speaks SSH, so it stays running until it is cancelled.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Home {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home");
        let home = Self { _dir: dir, path };
        let out = home.run(&["init"], None);
        assert!(out.status.success(), "{}", text(&out));
        home
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_livchat"));
        cmd.args(args)
            .env("LIVCHAT_HOME", &self.path)
            .env_remove("LIVCHAT_VAULT_PASSWORD")
            .env_remove("LIVCHAT_APPS_DIR")
            .env(
                "LIVCHAT_CLOUDFLARE_ENDPOINT",
                "http://127.0.0.1:9/client/v4/",
            );
        cmd
    }

    fn run(&self, args: &[&str], stdin: Option<&Path>) -> Output {
        let mut cmd = self.command(args);
        match stdin {
            Some(file) => cmd.stdin(std::fs::File::open(file).unwrap()),
            None => cmd.stdin(Stdio::null()),
        };
        cmd.output().unwrap()
    }

    /// Records a bring-your-own server at `port` as `server add` would have (key in the vault,
    /// a host key pinned), without connecting: its sshd is the silent listener.
    fn put_silent_server(&self, name: &str, port: u16) {
        let key = self.path.parent().unwrap().join("id_ed25519");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen (openssh-client) is needed");
        assert!(made.success());
        let secret = format!("ssh.{name}.private_key");
        let out = self.run(&["secrets", "set", &secret, "--stdin"], Some(&key));
        assert!(out.status.success(), "{}", text(&out));
        let token = self.path.parent().unwrap().join("cf-token");
        std::fs::write(&token, "not-a-real-token").unwrap();
        let out = self.run(
            &["secrets", "set", "cloudflare_api_token", "--stdin"],
            Some(&token),
        );
        assert!(out.status.success(), "{}", text(&out));

        let file = self.path.join("state.json");
        let mut state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        state["servers"][name] = serde_json::json!({
            "name": name, "provider": "manual", "host": "127.0.0.1", "ssh_port": port,
            "ssh_user": "root", "ssh_key_secret": secret,
            "host_key_fingerprint": "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "labels": {}, "status": "running", "setup": {},
            "created_at": "2026-12-01T00:00:00Z"
        });
        std::fs::write(&file, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    }

    fn job(&self, id: &str) -> serde_json::Value {
        let out = self.run(&["job", "show", id, "--output", "json"], None);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Polls until the job's status is one of `statuses` (bounded).
    fn wait_status(&self, id: &str, statuses: &[&str]) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.job(id);
            if statuses.contains(&job["status"].as_str().unwrap_or_default()) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job never reached {statuses:?}: {job}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Accepts TCP connections and holds them without a word, until the test ends.
fn silent_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64) {
            held.push(stream);
        }
    });
    port
}

#[test]
fn a_detached_job_outlives_its_starter_and_blocks_a_second_job_from_another_process() {
    let home = Home::new();
    home.put_silent_server("byo-1", silent_listener());

    // Start the setup detached from a shell that leads its own process group, then kill that
    // whole group, as closing a terminal would.
    let mut starter = home.command(&[
        "--output",
        "json",
        "server",
        "setup",
        "--detach",
        "byo-1",
        "--zone",
        "example.com",
    ]);
    std::os::unix::process::CommandExt::process_group(&mut starter, 0);
    let starter = starter
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let group = starter.id();
    let started = starter.wait_with_output().unwrap();
    assert!(started.status.success(), "{}", text(&started));
    let job: serde_json::Value = serde_json::from_slice(&started.stdout).unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let owner = job["owner"]["pid"]
        .as_u64()
        .expect("the background process owns the job");
    assert_ne!(
        owner,
        u64::from(group),
        "the job runs in another process than the starter"
    );
    // The starter returned; whatever is left in its process group is killed too.
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{group}")])
        .status();
    let running = home.wait_status(&id, &["running"]);
    assert_eq!(running["owner"]["pid"].as_u64(), Some(owner));

    // A second process is refused at once, naming the job in the way.
    let second = home.run(&["server", "setup", "byo-1", "--zone", "example.com"], None);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&id) && err.contains("busy") && err.contains("setup_server"),
        "{err}"
    );
    let jobs = home.run(&["job", "list", "--output", "json"], None);
    let jobs: serde_json::Value = serde_json::from_slice(&jobs.stdout).unwrap();
    assert_eq!(
        jobs.as_array().unwrap().len(),
        1,
        "the refused job left no record: {jobs}"
    );

    // Cancelled from this process, the job ends in the background one.
    let cancel = home.run(&["job", "cancel", &id], None);
    assert!(cancel.status.success(), "{}", text(&cancel));
    let waited = home.run(
        &["job", "wait", &id, "--timeout", "60", "--output", "json"],
        None,
    );
    assert_eq!(waited.status.code(), Some(1), "{}", text(&waited));
    let ended: serde_json::Value = serde_json::from_slice(&waited.stdout).unwrap();
    assert_eq!(ended["status"], "cancelled", "{ended}");

    // With the server free again, a detached delete runs to completion in the background.
    let delete = home.run(
        &["--output", "json", "server", "delete", "byo-1", "--detach"],
        None,
    );
    assert!(delete.status.success(), "{}", text(&delete));
    let job: serde_json::Value = serde_json::from_slice(&delete.stdout).unwrap();
    let done = home.wait_status(job["id"].as_str().unwrap(), &["completed", "failed"]);
    assert_eq!(done["status"], "completed", "{done}");
    let servers = home.run(&["server", "list", "--output", "json"], None);
    assert_eq!(String::from_utf8_lossy(&servers.stdout).trim(), "[]");
}

#[test]
fn the_api_token_is_made_at_init_printed_alone_and_rotated() {
    let home = Home::new();
    let first = home.run(&["api", "token"], None);
    assert!(first.status.success(), "{}", text(&first));
    let token = String::from_utf8(first.stdout).unwrap();
    assert_eq!(
        token.trim().len(),
        64,
        "only the token, 256 bits in hex: {token:?}"
    );
    assert!(token.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    let again = home.run(&["api", "token"], None);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), token);
    let rotated = home.run(&["api", "token", "--rotate"], None);
    let rotated = String::from_utf8(rotated.stdout).unwrap();
    assert_ne!(rotated, token);
    let names = home.run(&["secrets", "list", "--output", "json"], None);
    let names = String::from_utf8_lossy(&names.stdout).to_string();
    assert!(
        names.contains("api_token") && !names.contains(token.trim()),
        "{names}"
    );
}

/// Waits (bounded) for `child` to exit; kills it and fails if it is still running then.
fn exits_within(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what} still ran after {limit:?}\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn job_logs_follow_ends_at_its_timeout_and_when_the_job_s_process_dies() {
    // Issue #19: `job logs --follow` polled until the job's status ended, and a job whose
    // process died stays running in the store: the follow never ended.
    let home = Home::new();
    home.put_silent_server("byo-1", silent_listener());
    let started = home.run(
        &[
            "--output",
            "json",
            "server",
            "setup",
            "--detach",
            "byo-1",
            "--zone",
            "example.com",
        ],
        None,
    );
    assert!(started.status.success(), "{}", text(&started));
    let job: serde_json::Value = serde_json::from_slice(&started.stdout).unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let owner = job["owner"]["pid"].as_u64().unwrap();
    home.wait_status(&id, &["running"]);

    // Bounded like `job wait`: 1-3600 s, refused before anything is printed.
    let zero = home.run(&["job", "logs", &id, "--follow", "--timeout", "0"], None);
    assert_eq!(zero.status.code(), Some(2), "{}", text(&zero));
    assert!(
        String::from_utf8_lossy(&zero.stderr).contains("1-3600") && zero.stdout.is_empty(),
        "{}",
        text(&zero)
    );
    // At its timeout the follow stops, says so and exits 1; the job runs on.
    let spawn_follow = |extra: &[&str]| {
        let mut args = vec!["job", "logs", id.as_str(), "--follow"];
        args.extend_from_slice(extra);
        home.command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let timed = exits_within(
        spawn_follow(&["--timeout", "1"]),
        Duration::from_secs(20),
        "job logs --follow --timeout 1",
    );
    assert_eq!(timed.status.code(), Some(1), "{}", text(&timed));
    assert!(
        String::from_utf8_lossy(&timed.stdout).contains("connect"),
        "the log so far was printed: {}",
        text(&timed)
    );
    assert!(
        String::from_utf8_lossy(&timed.stderr).contains("still running after 1 s"),
        "{}",
        text(&timed)
    );
    assert_eq!(home.job(&id)["status"], "running");

    // A follow without --timeout ends once the process running the job is gone.
    let follow = spawn_follow(&[]);
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-9", &owner.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let ended = exits_within(
        follow,
        Duration::from_secs(20),
        "job logs --follow of a job whose process died",
    );
    assert_eq!(ended.status.code(), Some(0), "{}", text(&ended));
    let err = String::from_utf8_lossy(&ended.stderr);
    assert!(
        err.contains(&format!("job {id} is interrupted")) && err.contains("retry it"),
        "{}",
        text(&ended)
    );
    assert_eq!(home.job(&id)["status"], "interrupted");
}
