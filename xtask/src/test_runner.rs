//! Runs every test binary of the workspace, several at once.
//!
//! `cargo test` runs one test binary after another. Most of this project's suites wait on real
//! parts (sshd, dockerd, Prism, PostgreSQL, Python clients), so on a 2-core machine the serial
//! run spends most of its time idle. nextest would run binaries in parallel, but it gives each
//! test its own process, and several suites share one sandbox (one dockerd, one Prism) across
//! the tests of a process. So this runner keeps `cargo test`'s unit, the binary, and runs
//! `jobs` of them at a time; the binaries that start their own dockerd, network namespaces and
//! Debian roots (`EXCLUSIVE`) run one after another on a lane of their own.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Binaries that start a dockerd, network namespaces or Debian roots: they contend for
/// iptables, the kernel's namespaces and most of the machine's memory, so never two at once.
const EXCLUSIVE: &[&str] = &[
    "setup_real_run",
    "setup_rerun_real",
    "swarm_e2e",
    "portainer_e2e",
    "real_peers",
    "redis_isolation_swarm",
    "mariadb_isolation_swarm",
    "rabbitmq_isolation_swarm",
    "app_live_real",
    "cluster_real",
];

/// Binaries that run after every other one, alone: the E2E checks that a cancelled setup leaves
/// no apt or dpkg behind within a bound, and on a loaded machine dpkg outlives it.
const ALONE: &[&str] = &["e2e", "frontends_e2e"];

/// Binaries known to take minutes, started first so the run does not end waiting on one.
const SLOW_FIRST: &[&str] = &[
    "schemathesis",
    "mcp_sdk",
    "api_real",
    "cli_real",
    "setup_plan",
    "injection_payloads",
    "postgres_real",
    "ansible_vault_interop",
];

/// A binary that has not finished after this long is killed: a hang, not a slow machine.
const BINARY_LIMIT: Duration = Duration::from_secs(25 * 60);

struct TestBinary {
    /// `package::target` (unit tests of a library are `package::lib`).
    label: String,
    target: String,
    path: PathBuf,
    package: String,
    package_dir: PathBuf,
}

struct Outcome {
    label: String,
    seconds: f64,
    passed: bool,
    summary: String,
    log: PathBuf,
}

/// Work the caller fits around the run: `after_build` once every binary is built (before any
/// runs), `before_alone` after the pool, before the binaries that run alone (it may block).
pub struct Hooks {
    pub after_build: Box<dyn FnOnce() + Send>,
    pub before_alone: Box<dyn FnOnce() + Send>,
}

/// Builds every test binary, runs them `jobs` at a time beside the doc tests. Fails if any
/// binary fails; prints each failing binary's whole output and a table of durations.
pub fn run_all(
    cargo: impl Fn() -> Command,
    jobs: usize,
    envs: &'static [(&'static str, &'static str)],
    logs: &Path,
    hooks: Hooks,
) -> Result<()> {
    let built = build(&cargo);
    (hooks.after_build)();
    let binaries = match built {
        Ok(b) => b,
        Err(e) => {
            (hooks.before_alone)();
            return Err(e);
        }
    };
    std::fs::create_dir_all(logs)?;
    let (alone, binaries): (Vec<_>, Vec<_>) = binaries
        .into_iter()
        .partition(|b| ALONE.contains(&b.target.as_str()));
    let (mut exclusive, mut rest): (Vec<_>, Vec<_>) = binaries
        .into_iter()
        .partition(|b| EXCLUSIVE.contains(&b.target.as_str()));
    let rank = |b: &TestBinary| {
        SLOW_FIRST
            .iter()
            .position(|s| *s == b.target)
            .unwrap_or(SLOW_FIRST.len())
    };
    rest.sort_by_key(rank);
    exclusive.sort_by(|a, b| a.target.cmp(&b.target));
    eprintln!(
        "running {} test binaries, {jobs} at a time ({} of them one after another: {}), then {} alone",
        exclusive.len() + rest.len() + alone.len(),
        exclusive.len(),
        EXCLUSIVE.join(", "),
        ALONE.join(", ")
    );

    // `cargo test --doc` rebuilds part of the dependency graph (ring, rustls and what uses
    // them: 2.5 min on 2 cores) and runs in seconds, so it runs beside the binaries, which
    // mostly wait on dockerd and sshd, instead of after them.
    let doc_log = logs.join("doc-tests.log");
    let doc_out = std::fs::File::create(&doc_log)?;
    let mut doc_cmd = cargo();
    doc_cmd
        .envs(envs.iter().copied())
        .args(["test", "--workspace", "--all-features", "--doc"])
        .stdout(doc_out.try_clone()?)
        .stderr(doc_out);
    eprintln!(
        "$ {} (log: {})",
        super::display(&doc_cmd),
        doc_log.display()
    );
    let doc = std::thread::spawn(move || {
        let started = Instant::now();
        let status = doc_cmd.status();
        (status, started.elapsed().as_secs_f64())
    });

    let exclusive = Arc::new(Mutex::new(VecDeque::from(exclusive)));
    let rest = Arc::new(Mutex::new(VecDeque::from(rest)));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|worker| {
            let (exclusive, rest, outcomes) = (exclusive.clone(), rest.clone(), outcomes.clone());
            let logs = logs.to_path_buf();
            std::thread::spawn(move || {
                loop {
                    // Worker 0 is the exclusive lane; when it is empty it helps with the rest.
                    let next = if worker == 0 {
                        let item = exclusive.lock().unwrap().pop_front();
                        item.or_else(|| rest.lock().unwrap().pop_front())
                    } else {
                        rest.lock().unwrap().pop_front()
                    };
                    let Some(binary) = next else { break };
                    let outcome = run_one(&binary, envs, &logs);
                    report(&outcome);
                    outcomes.lock().unwrap().push(outcome);
                }
            })
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a test worker panicked"))?;
    }
    let mut outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    (hooks.before_alone)();
    for binary in &alone {
        let outcome = run_one(binary, envs, logs);
        report(&outcome);
        outcomes.push(outcome);
    }

    let (doc_status, doc_seconds) = doc
        .join()
        .map_err(|_| anyhow::anyhow!("the doc-test thread panicked"))?;
    let doc_result = match doc_status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => {
            eprintln!("\n==== doc tests (failed) ====");
            eprintln!("{}", std::fs::read_to_string(&doc_log).unwrap_or_default());
            Err(anyhow::anyhow!("cargo test --doc exited with {status}"))
        }
        Err(e) => Err(anyhow::anyhow!("could not start cargo test --doc: {e}")),
    };

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.passed).collect();
    for outcome in &failed {
        eprintln!("\n==== {} (failed) ====", outcome.label);
        match std::fs::read_to_string(&outcome.log) {
            Ok(text) => eprintln!("{text}"),
            Err(e) => eprintln!("(log {} unreadable: {e})", outcome.log.display()),
        }
    }
    let mut by_time: Vec<&Outcome> = outcomes.iter().collect();
    by_time.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    eprintln!("\nslowest test binaries (wall time, run {jobs} at a time):");
    for o in by_time.iter().take(15) {
        eprintln!("  {:>7.1}s  {}", o.seconds, o.label);
    }
    eprintln!(
        "  binaries: {:.0}s wall; doc tests {doc_seconds:.0}s beside them",
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|o| o.label.as_str()).collect();
        bail!(
            "{} test binaries failed: {}",
            failed.len(),
            names.join(", ")
        );
    }
    doc_result.context("doc tests failed")
}

fn report(outcome: &Outcome) {
    eprintln!(
        "  {:<6} {:>7.1}s  {}  {}",
        if outcome.passed { "ok" } else { "FAILED" },
        outcome.seconds,
        outcome.label,
        outcome.summary
    );
}

/// Compiles every test binary and lists them, as `cargo test --no-run` builds them.
fn build(cargo: &impl Fn() -> Command) -> Result<Vec<TestBinary>> {
    let names = package_names(cargo)?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--workspace",
        "--all-features",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ])
    .stdout(Stdio::piped());
    eprintln!("$ {}", super::display(&cmd));
    let mut child = cmd.spawn().context("could not start cargo test --no-run")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut binaries = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let message: serde_json::Value = match serde_json::from_str(&line?) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let Some(path) = message["executable"].as_str() else {
            continue;
        };
        let manifest = PathBuf::from(message["manifest_path"].as_str().unwrap_or_default());
        let package = names
            .get(&manifest)
            .cloned()
            .with_context(|| format!("no workspace package at {}", manifest.display()))?;
        let kind = message["target"]["kind"][0].as_str().unwrap_or_default();
        let target = message["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let label = match kind {
            "lib" => format!("{package}::lib"),
            "bin" => format!("{package}::bin/{target}"),
            _ => format!("{package}::{target}"),
        };
        binaries.push(TestBinary {
            label,
            target,
            path: PathBuf::from(path),
            package,
            package_dir: manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
        });
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("building the test binaries failed with {status}");
    }
    Ok(binaries)
}

/// Workspace members by manifest path.
fn package_names(cargo: &impl Fn() -> Command) -> Result<BTreeMap<PathBuf, String>> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("could not run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                PathBuf::from(p["manifest_path"].as_str()?),
                p["name"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// Runs one binary as `cargo test` would (from its package's directory, with the variables
/// cargo sets), its output into a log file.
fn run_one(binary: &TestBinary, envs: &[(&str, &str)], logs: &Path) -> Outcome {
    let log = logs.join(format!("{}.log", binary.label.replace([':', '/'], "_")));
    let started = Instant::now();
    let result = (|| -> Result<bool> {
        let file = std::fs::File::create(&log)?;
        let mut child = Command::new(&binary.path)
            .current_dir(&binary.package_dir)
            .env("CARGO_MANIFEST_DIR", &binary.package_dir)
            .env("CARGO_PKG_NAME", &binary.package)
            .env("RUST_BACKTRACE", "1")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("could not start {}", binary.path.display()))?;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            if started.elapsed() > BINARY_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                bail!("killed after {} s", BINARY_LIMIT.as_secs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let summary = text
        .lines()
        .rev()
        .find(|l| l.starts_with("test result:"))
        .unwrap_or("")
        .to_owned();
    let (passed, summary) = match result {
        Ok(passed) => (passed, summary),
        Err(e) => (false, format!("{e:#} {summary}")),
    };
    Outcome {
        label: binary.label.clone(),
        seconds: started.elapsed().as_secs_f64(),
        passed,
        summary,
        log,
    }
}
