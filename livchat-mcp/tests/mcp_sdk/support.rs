//! What every test here shares: the SDK's Python, a livchat home, the client script runner and
//! a home whose fake Hetzner creates servers nothing answers SSH on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use livchat_core::{Config, Orchestrator};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_livchat-mcp");

/// The venv's Python when the SDK is importable; a skip (or, under CI, a failure) otherwise.
pub fn sdk_python() -> Option<PathBuf> {
    let python = fixtures::tools::venv_python();
    let works = python.as_ref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", "import mcp, jsonschema"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if works {
        return python;
    }
    let why = "the MCP Python SDK is not installed; run `cargo xtask setup` (CI does)";
    assert!(!fixtures::tools::real_tests_required(), "{why}");
    eprintln!("skipped: {why}");
    None
}

pub struct Home {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home");
        Orchestrator::init(&Config::new(&path)).unwrap();
        Home { _dir: dir, path }
    }

    pub fn open(&self) -> Arc<Orchestrator> {
        Orchestrator::open(Config::new(&self.path)).unwrap()
    }

    pub fn scratch(&self) -> PathBuf {
        self.path.parent().unwrap().to_path_buf()
    }

    /// The bytes of state.json and the vault: what "nothing changed" compares.
    pub fn snapshot(&self) -> (Vec<u8>, Vec<u8>) {
        (
            fixtures::cli::state_and_jobs(&self.path),
            std::fs::read(self.path.join("credentials.vault")).unwrap(),
        )
    }

    /// Records a server added by hand and set up (its key secret named as `server add` names it) with
    /// `app` deployed and running on it, in state.json as those commands leave it.
    pub fn put_server_with_deployment(&self, server: &str, app: &str) {
        let file = self.path.join("state.json");
        let mut state: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        state["servers"][server] = json!({
            "name": server, "provider": "manual", "host": "192.0.2.10", "ssh_port": 22,
            "ssh_user": "root", "ssh_key_secret": format!("ssh.{server}.private_key"),
            "host_key_fingerprint": "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "dns": {"zone_name": "example.com"}, "labels": {}, "status": "ready", "setup": {},
            "created_at": "2026-12-01T00:00:00Z"
        });
        state["deployments"][server][app] = json!({
            "app": app, "version": "1", "stack_name": app,
            "domains": [format!("{app}.example.com")], "dns_record_ids": [],
            "dependencies": [], "status": "running", "deployed_at": "2026-12-01T00:00:00Z"
        });
        std::fs::write(&file, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    }

    /// The client configuration for a stdio server on this home, with extra environment.
    pub fn stdio(&self, env: &[(&str, String)]) -> Value {
        let env: serde_json::Map<String, Value> = env
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        json!({"bin": BIN, "home": self.path, "env": env})
    }
}

/// Runs one scenario of the client script and returns its report.
pub fn client(python: &Path, scenario: &str, cfg: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(scenario)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cfg.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "scenario {scenario} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn with(cfg: &Value, key: &str, value: Value) -> Value {
    let mut cfg = cfg.clone();
    cfg[key] = value;
    cfg
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Bounded: the server binds within a few seconds or the test fails.
pub fn wait_listening(port: u16) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("livchat-mcp --http did not listen on {port}");
}

/// A fake Hetzner whose created servers sit on 127.0.0.1 (nothing answers SSH on port 22
/// there), with its token stored in a new home.
pub async fn cloud_home() -> (fixtures::fake_hetzner::FakeHetzner, Home) {
    let options = fixtures::fake_hetzner::HetznerOptions {
        on_server_created: Some(Arc::new(|_| fixtures::fake_hetzner::BackingHost {
            ipv4: std::net::Ipv4Addr::LOCALHOST,
        })),
        ..Default::default()
    };
    let hetzner = fixtures::fake_hetzner::FakeHetzner::start_with(options).await;
    let home = Home::new();
    home.open()
        .secret_set(
            livchat_core::HETZNER_TOKEN,
            hetzner.token().to_string().into(),
        )
        .unwrap();
    (hetzner, home)
}
