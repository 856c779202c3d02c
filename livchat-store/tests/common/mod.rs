//! Shared by the integration tests and by `examples/store_worker.rs` (included with `#[path]`),
//! so the child process and the tests that check its files agree on the data.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod conformance;
pub mod job_logs_conformance;
pub mod jobs_conformance;
pub mod secrets_conformance;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use livchat_store::{ServerRecord, State};

/// A valid server record named `name`.
pub fn server(name: &str) -> ServerRecord {
    fixtures::records::ManualServer::new(name)
        .host("10.0.0.1")
        .created_at(chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid time"))
        .record()
}

/// The job `job-loop` rewrites.
pub const CRASH_JOB: &str = "job-crash";

/// The change `job-loop` makes to reach attempt `n` (= current attempt + 1): running when odd,
/// completed when even, with a result whose size varies.
pub fn job_loop_step(j: &mut livchat_store::JobRecord) {
    j.attempt += 1;
    let n = j.attempt;
    j.status = if n % 2 == 1 {
        livchat_store::JobStatus::Running
    } else {
        livchat_store::JobStatus::Completed
    };
    j.progress = (n % 101) as u8;
    j.result = Some(serde_json::json!({ "n": n, "pad": "x".repeat((n % 13) as usize * 300) }));
}

/// Whether `job` is exactly what `job-loop` commits at its attempt.
pub fn matches_job_loop(job: &livchat_store::JobRecord) -> Result<(), String> {
    let n = job.attempt;
    if n == 0 {
        return Ok(());
    }
    let mut want = job.clone();
    want.attempt = n - 1;
    job_loop_step(&mut want);
    if want == *job {
        Ok(())
    } else {
        Err(format!("attempt {n} but the record differs: {job:?}"))
    }
}

/// The change `state-loop` makes to reach serial `n` (= current serial + 1).
pub fn crash_loop_step(s: &mut State) {
    let n = s.serial + 1;
    // A value that only the commit of serial n holds: a torn or mixed write shows.
    s.servers
        .entry("marker".to_string())
        .or_insert_with(|| server("marker"))
        .labels
        .insert("serial".to_string(), format!("c{n}"));
    // Servers s<n-4>..=s<n> exist at serial n, some padded: the file grows and shrinks.
    s.servers.insert(format!("s{n}"), server(&format!("s{n}")));
    if n > 4 {
        s.servers.remove(&format!("s{}", n - 5));
    }
    if n.is_multiple_of(7) {
        let big = "x".repeat((n % 13) as usize * 500);
        s.servers
            .get_mut(&format!("s{n}"))
            .expect("just inserted")
            .labels
            .insert("padding".to_string(), big);
    }
}

/// Whether `state` is exactly what `state-loop` commits at its serial.
pub fn matches_crash_loop(state: &State) -> Result<(), String> {
    let n = state.serial;
    if n == 0 {
        return if state.servers.is_empty() {
            Ok(())
        } else {
            Err("serial 0 but not empty".into())
        };
    }
    let marker = state
        .servers
        .get("marker")
        .and_then(|m| m.labels.get("serial"));
    if marker.map(String::as_str) != Some(format!("c{n}").as_str()) {
        return Err(format!("serial {n} but marker {marker:?}"));
    }
    let want: Vec<String> = (n.saturating_sub(4).max(1)..=n)
        .map(|i| format!("s{i}"))
        .collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    let got: Vec<String> = state
        .servers
        .keys()
        .filter(|k| *k != "marker")
        .cloned()
        .collect();
    if got != want_sorted {
        return Err(format!("serial {n} but servers {got:?}"));
    }
    for i in n.saturating_sub(4).max(1)..=n {
        let padding = state.servers[&format!("s{i}")].labels.get("padding");
        let expected = i
            .is_multiple_of(7)
            .then(|| "x".repeat((i % 13) as usize * 500));
        if padding != expected.as_ref() {
            return Err(format!("serial {n}: wrong padding on s{i}"));
        }
    }
    Ok(())
}

/// The value `vault-loop` stores under `k<n>`.
pub fn vault_value(n: u64) -> String {
    format!(
        "value {n}\nçã \"q\" '{}'",
        "v".repeat((n % 37) as usize * 8)
    )
}

/// The `store_worker` example binary (cargo builds examples for `cargo test`).
pub fn worker_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("LIVCHAT_STORE_WORKER") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/examples/store_worker
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .join("examples")
        .join("store_worker");
    assert!(
        path.is_file(),
        "{} is missing: run the whole suite with `cargo test -p livchat-store --all-features` \
         (it builds examples), or `cargo build -p livchat-store --example store_worker` first",
        path.display()
    );
    path
}

/// Starts the worker with stdout piped.
pub fn spawn_worker(args: &[&str], envs: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(worker_exe());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The child must take its password from where the test says, not from our environment.
    cmd.env_remove("LIVCHAT_VAULT_PASSWORD");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn store_worker")
}

/// Kills a child we started when the test ends, even by panic.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Complete lines (ending in '\n') of a child's output; a partial last line is dropped.
pub fn complete_lines(out: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(out);
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| l.trim_end().to_string())
        .collect()
}
