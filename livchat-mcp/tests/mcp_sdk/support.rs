//! What every test here shares: the SDK's Python, a livchat home, the client script runner and
//! a home whose fake Hetzner creates servers nothing answers SSH on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use livchat_core::{Config, Orchestrator};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_livchat-mcp");

/// The venv's Python when the SDK is importable; a skip (or, under CI, a failure) otherwise.
pub fn sdk_python() -> Option<PathBuf> {
    fixtures::mcp_client::python("mcp, jsonschema")
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
        let env = env.iter().map(|(k, v)| ((*k).to_string(), v.clone()));
        fixtures::mcp_client::stdio_config(BIN, &self.path, env)
    }
}

/// Runs one scenario of the client script and returns its report.
pub fn client(python: &Path, scenario: &str, cfg: &Value) -> Value {
    fixtures::mcp_client::run(python, scenario, cfg)
}

pub fn with(cfg: &Value, key: &str, value: Value) -> Value {
    let mut cfg = cfg.clone();
    cfg[key] = value;
    cfg
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

/// A home as [`cloud_home`] makes it and the client configuration of a `server_create` call
/// (`web-1`, cx22 in nbg1, Debian 12) that waits up to `max_wait_secs` for its job, whose
/// server is waited for `ssh_wait_secs` to answer SSH (it never does).
pub async fn server_create_cfg(
    ssh_wait_secs: u64,
    max_wait_secs: u64,
) -> (fixtures::fake_hetzner::FakeHetzner, Home, Value) {
    let (hetzner, home) = cloud_home().await;
    let env = [
        ("LIVCHAT_HETZNER_ENDPOINT", hetzner.url()),
        ("LIVCHAT_SSH_WAIT_SECS", ssh_wait_secs.to_string()),
    ];
    let cfg = with(&home.stdio(&env), "tool", json!("server_create"));
    let cfg = with(
        &cfg,
        "tool_args",
        json!({"name": "web-1", "server_type": "cx22", "location": "nbg1", "image": "debian-12", "max_wait_secs": max_wait_secs}),
    );
    (hetzner, home, cfg)
}
