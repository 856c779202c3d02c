//! The real `livchat-api` binary on loopback, on a fresh home, with its log kept for checks.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use livchat_core::model::ExposeSecret;
use livchat_core::{Config, Orchestrator};

/// A home initialised like `livchat init` does.
pub fn init_home(dir: &Path) -> PathBuf {
    let home = dir.join("home");
    Orchestrator::init(&Config::new(&home)).expect("init home");
    home
}

/// The API token, read (and on first use created) the way `livchat api token` does, from
/// another process than the service.
pub fn token(home: &Path, rotate: bool) -> String {
    let orch = Orchestrator::open(Config::new(home)).expect("open home");
    orch.api_token(rotate)
        .expect("api token")
        .expose_secret()
        .to_string()
}

pub struct Service {
    child: Child,
    pub url: String,
    pub log: PathBuf,
    pub home: PathBuf,
}

impl Service {
    pub fn start(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Service {
        Self::try_start(home, extra, env)
            .unwrap_or_else(|log| panic!("service did not start:\n{log}"))
    }

    /// Starts the service; `Err(log)` when it exited instead of listening.
    pub fn try_start(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Service, String> {
        let log = home.with_extension(format!("log-{}", unique()));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_livchat-api"));
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(extra)
            .env("LIVCHAT_HOME", home)
            .env_remove("LIVCHAT_VAULT_PASSWORD")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("livchat-api: listening on ").nth(1) {
                let url = rest.lines().next().unwrap().trim().to_string();
                return Ok(Service {
                    child,
                    url,
                    log,
                    home: home.to_path_buf(),
                });
            }
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("exited with {status}:\n{text}"));
            }
            assert!(
                Instant::now() < deadline,
                "service did not start in time:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        std::fs::File::open(&self.log)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "service did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Every `(method, path template)` of the served document.
pub fn operations(doc: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

/// A path template with every placeholder filled with `value`.
pub fn fill(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
