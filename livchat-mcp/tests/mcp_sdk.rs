//! `livchat-mcp` driven by a real MCP client, the official Python SDK (`mcp`, pinned in
//! `cargo xtask setup`), over stdio and streamable HTTP: the tool list with its schemas and
//! annotations, read tools whose `structuredContent` the SDK validates against their
//! `outputSchema` (`server_show` and `app_deployed` of a server with an app among them), bad
//! input as tool errors that change nothing, destructive tools that only plan without
//! `confirm: true`, `job_wait` notified of progress and returning at its deadline, hostile
//! `server_exec` argv over a real sshd, no secret value in any result, and the bearer token in
//! front of HTTP.
//! The client script is `tests/mcp_client.py`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use livchat_core::{Config, Orchestrator};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_livchat-mcp");

/// The venv's Python when the SDK is importable; a skip (or, under CI, a failure) otherwise.
fn sdk_python() -> Option<PathBuf> {
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

struct Home {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home");
        Orchestrator::init(&Config::new(&path)).unwrap();
        Home { _dir: dir, path }
    }

    fn open(&self) -> Arc<Orchestrator> {
        Orchestrator::open(Config::new(&self.path)).unwrap()
    }

    fn scratch(&self) -> PathBuf {
        self.path.parent().unwrap().to_path_buf()
    }

    /// The bytes of state.json and the vault: what "nothing changed" compares.
    fn snapshot(&self) -> (Vec<u8>, Vec<u8>) {
        (
            fixtures::cli::state_and_jobs(&self.path),
            std::fs::read(self.path.join("credentials.vault")).unwrap(),
        )
    }

    /// Records a server added by hand and set up (its key secret named as `server add` names it) with
    /// `app` deployed and running on it, in state.json as those commands leave it.
    fn put_server_with_deployment(&self, server: &str, app: &str) {
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
    fn stdio(&self, env: &[(&str, String)]) -> Value {
        let env: serde_json::Map<String, Value> = env
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        json!({"bin": BIN, "home": self.path, "env": env})
    }
}

/// Runs one scenario of the client script and returns its report.
fn client(python: &Path, scenario: &str, cfg: &Value) -> Value {
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

fn with(cfg: &Value, key: &str, value: Value) -> Value {
    let mut cfg = cfg.clone();
    cfg[key] = value;
    cfg
}

#[test]
fn tools_list_has_every_tool_with_valid_schemas_and_annotations_and_stays_bounded() {
    let Some(python) = sdk_python() else { return };
    let home = Home::new();
    let report = client(&python, "tools", &home.stdio(&[]));
    assert_eq!(report["tools"], 32);
    let bytes = report["tools_list_bytes"].as_u64().unwrap();
    eprintln!("tools/list: {bytes} bytes");
    // Issue #15: under 40 KB. Measured 62,192 bytes on 2026-12-02 with full output schemas
    // (JobView and Plan repeated per job tool, AppDefinition); output schemas now keep only
    // the top level of each result, with each field's JSON type.
    assert!(
        bytes < 40_000,
        "tools/list is {bytes} bytes; [input, output] schema bytes per tool: {}",
        report["schema_bytes"]
    );
}

#[test]
fn bad_input_is_a_tool_error_naming_the_field_and_changes_nothing() {
    let Some(python) = sdk_python() else { return };
    let home = Home::new();
    let before = home.snapshot();
    let calls = json!([
        ["server_show", {}, "error", ["server"]],
        ["server_show", {"server": 7}, "error", ["server"]],
        ["server_show", {"server": "web-1", "extra": true}, "error", ["extra"]],
        ["server_add", {"name": "../etc", "host": "127.0.0.1"}, "error", ["name"]],
        ["server_exec", {"server": "web-1", "argv": "rm -rf /"}, "error", ["argv"]],
        ["server_exec", {"server": "web-1", "argv": []}, "error", ["argv"]],
        ["server_exec", {"server": "web-1", "argv": ["true"], "timeout_secs": 301}, "error", ["timeout_secs"]],
        ["settings_set", {"key": "no_such_setting", "value": "x"}, "error", ["no_such_setting"]],
        ["secret_set", {"name": "bad name!", "value": "x"}, "error", ["name"]],
        ["provider_info", {"kind": "planets"}, "error", ["kind"]],
        ["app_deploy", {"server": "web-1", "app": "n8n", "plan": "yes"}, "error", ["plan"]],
        ["server_delete", {"server": "web-1", "confirm": 1}, "error", ["confirm"]],
        ["job_show", {"id": "no-such-job"}, "error", ["no-such-job"]],
        ["app_show", {"app": "no-such-app"}, "error", ["no-such-app"]],
        ["app_logs", {"server": "web-1", "app": "n8n", "tail": 0}, "error", ["tail"]],
        ["app_logs", {"server": "web-1", "app": "n8n", "service": "a;b"}, "error", ["service"]],
        ["app_logs", {"server": "web-1", "app": "n8n", "follow": true}, "error", ["follow"]],
        ["app_status", {"server": "no-such-server"}, "error", ["no-such-server"]],
    ]);
    let cfg = with(&home.stdio(&[]), "calls", calls);
    client(&python, "calls", &cfg);
    assert!(home.snapshot() == before, "state.json or the vault changed");
}

#[test]
fn no_tool_result_contains_a_secret_value() {
    let Some(python) = sdk_python() else { return };
    let home = Home::new();
    let canary = "canary-secret-7f3c9a1e5b";
    let calls = json!([
        ["secret_set", {"name": "my_canary", "value": canary}, "ok", []],
        ["secret_set", {"name": "my_canary", "value": canary, "plan": true}, "ok", []],
        ["secret_names", {}, "ok", []],
        ["settings_set", {"key": "email", "value": "ops@example.com"}, "ok", []],
        ["settings_get", {}, "ok", []],
        ["app_render", {"app": "n8n", "zone": "example.com"}, "ok", []],
        ["secret_delete", {"name": "my_canary"}, "ok", []],
        ["secret_names", {}, "ok", []],
    ]);
    let cfg = with(&home.stdio(&[]), "calls", calls);
    let report = client(&python, "calls", &cfg);
    let results = report["results"].to_string();
    assert!(results.contains("my_canary"), "the calls ran: {results}");
    assert!(!results.contains(canary), "a result holds the secret value");
    // Without confirm the delete only planned: the secret is still there.
    assert!(
        home.open()
            .secret_names()
            .unwrap()
            .contains(&"my_canary".to_string())
    );
}

#[test]
fn server_exec_delivers_hostile_argv_unchanged_over_a_real_sshd() {
    let Some(python) = sdk_python() else { return };
    let Some(sshd) = fixtures::sshd::Sshd::start() else {
        return;
    };
    let home = Home::new();
    let canary = home.scratch().join("canary");
    let c = canary.display().to_string();
    let payloads: Vec<String> = vec![
        format!("; touch {c}"),
        format!("$(touch {c})"),
        format!("`touch {c}`"),
        format!("| touch {c}"),
        format!("&& touch {c}"),
        format!("> {c}"),
        format!("a\ntouch {c}"),
        "{a,b}".into(),
        "*".into(),
        "-x".into(),
        "'\"\\".into(),
        "ünïcødé ✓".into(),
        "$HOME ${PATH}".into(),
        "".into(),
    ];
    let mut argv = vec!["printf".to_string(), "%s\\n--\\n".to_string()];
    argv.extend(payloads.iter().cloned());
    let add = json!({
        "name": "web-1", "host": sshd.host(), "port": sshd.port(), "user": sshd.user(),
        "private_key": sshd.client_private_key(),
        "host_key_fingerprint": sshd.host_key_fingerprint(),
    });
    // A remote caller cannot be asked about the host key: without a fingerprint (or an
    // explicit accept-new) the server is refused and nothing is stored.
    let mut unpinned = add.clone();
    unpinned
        .as_object_mut()
        .unwrap()
        .remove("host_key_fingerprint");
    let calls = json!([
        ["server_add", unpinned, "error", ["host_key_fingerprint"]],
        ["server_show", {"server": "web-1"}, "error", ["web-1"]],
        ["server_add", add, "ok", []],
        ["server_exec", {"server": "web-1", "argv": argv, "timeout_secs": 30}, "ok", []],
        ["server_exec", {"server": "web-1", "argv": ["sh", "-c", "exit 3"]}, "ok", []],
    ]);
    let cfg = with(&home.stdio(&[]), "calls", calls);
    let report = client(&python, "calls", &cfg);
    let added = &report["outputs"][2]["result"];
    assert_eq!(added["host_key_fingerprint"], sshd.host_key_fingerprint());
    let exec = &report["outputs"][3]["result"];
    assert_eq!(exec["exit_code"], 0, "{exec}");
    let expected: String = payloads.iter().map(|p| format!("{p}\n--\n")).collect();
    assert_eq!(exec["stdout"], expected, "every argument arrives unchanged");
    assert!(!canary.exists(), "a payload reached a shell");
    assert_eq!(report["outputs"][4]["result"]["exit_code"], 3);
    // The private key went into the vault, never into a result.
    assert!(!report["results"].to_string().contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_tools_return_structured_content_matching_their_output_schema() {
    let Some(python) = sdk_python() else { return };
    let hetzner = fixtures::fake_hetzner::FakeHetzner::start().await;
    let cloudflare = fixtures::fake_cloudflare::FakeCloudflare::start().await;
    let home = Home::new();
    let orch = home.open();
    orch.setting_set("email", "ops@example.com").unwrap();
    orch.secret_set(
        livchat_core::HETZNER_TOKEN,
        hetzner.token().to_string().into(),
    )
    .unwrap();
    orch.secret_set(
        livchat_core::CLOUDFLARE_TOKEN,
        cloudflare.token().to_string().into(),
    )
    .unwrap();
    drop(orch);
    let env = [
        ("LIVCHAT_HETZNER_ENDPOINT", hetzner.url()),
        ("LIVCHAT_CLOUDFLARE_ENDPOINT", cloudflare.url()),
        ("LIVCHAT_SSH_WAIT_SECS", "1".to_string()),
    ];
    // A job to read: a create whose server never answers SSH (it fails in about a second).
    let start = json!([["server_create", {"name": "web-1", "server_type": "cx22", "location": "nbg1", "image": "debian-12"}, "ok", []]]);
    let cfg = with(&home.stdio(&env), "calls", start);
    let started = {
        let python = python.clone();
        tokio::task::spawn_blocking(move || client(&python, "calls", &cfg))
            .await
            .unwrap()
    };
    let job = started["outputs"][0]["result"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A server added by hand with n8n deployed on it (records written as `server add` and a
    // finished deploy leave them: cheaper than doing both), and vault secrets of each, which
    // the destructive plans below must name.
    let orch = home.open();
    let created = orch.jobs().get(&job).unwrap();
    assert!(livchat_core::jobs::is_ended(created.status), "{created:?}");
    for (name, value) in [
        ("ssh.byo-1.private_key", "not-a-real-key"),
        ("app.n8n.encryption_key", "n8n-key-value"),
    ] {
        orch.secret_set(name, value.to_string().into()).unwrap();
    }
    drop(orch);
    home.put_server_with_deployment("byo-1", "n8n");
    let reads = json!([
        ["server_list", {}],
        ["server_show", {"server": "byo-1"}],
        ["app_deployed", {"server": "byo-1"}],
        ["app_list", {}],
        ["app_list", {"category": "application"}],
        ["app_show", {"app": "n8n"}],
        ["app_render", {"app": "n8n", "zone": "example.com", "subdomain": "lab"}],
        ["job_list", {}],
        ["job_show", {"id": job}],
        ["job_wait", {"id": job, "timeout_secs": 60}],
        ["job_logs", {"id": job}],
        ["job_logs", {"id": job, "tail": 2}],
        ["provider_info", {"kind": "locations"}],
        ["provider_info", {"kind": "server_types"}],
        ["provider_info", {"kind": "images"}],
        ["dns_list", {"zone": "example.com"}],
        ["settings_get", {}],
        ["secret_names", {}],
    ]);
    let cfg = with(&home.stdio(&env), "reads", reads);
    let report = {
        let python = python.clone();
        tokio::task::spawn_blocking(move || client(&python, "reads", &cfg))
            .await
            .unwrap()
    };
    assert_eq!(report["called"].as_array().unwrap().len(), 18);
    let results = report["results"].to_string();
    assert!(!results.contains(hetzner.token()) && !results.contains(cloudflare.token()));
    assert!(
        results.contains("n8n"),
        "app_deployed lists the deployment: {results}"
    );

    // Destructive tools without `confirm: true` return their plan and change nothing.
    let before = home.snapshot();
    let calls = json!([
        ["server_delete", {"server": "byo-1", "force": true}, "ok", []],
        ["app_undeploy", {"server": "byo-1", "app": "n8n", "delete_data": true}, "ok", []],
    ]);
    let cfg = with(&home.stdio(&env), "calls", calls);
    let report = tokio::task::spawn_blocking(move || client(&python, "calls", &cfg))
        .await
        .unwrap();
    for (i, deleted) in [(0, "ssh.byo-1.private_key"), (1, "app.n8n.encryption_key")] {
        let out = &report["outputs"][i];
        assert_eq!(out["confirm_required"], true, "{out}");
        let resources = out["plan"]["resources"].to_string();
        assert!(
            resources.contains(&format!("DELETE vault secret {deleted}")),
            "the plan names what would be lost: {out}"
        );
    }
    assert!(home.snapshot() == before, "state.json or the vault changed");
    assert_eq!(
        home.open().jobs().list(None).unwrap().len(),
        1,
        "no new job"
    );
}

#[test]
fn streamable_http_answers_401_without_the_token_and_serves_the_tools_with_it() {
    let Some(python) = sdk_python() else { return };
    let home = Home::new();
    let token = home.open().api_token(false).unwrap();
    let port = free_port();
    let mut server = Command::new(BIN)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env("LIVCHAT_HOME", &home.path)
        .env_remove("LIVCHAT_VAULT_PASSWORD")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let base = json!({
        "url": url,
        "token": livchat_core::model::ExposeSecret::expose_secret(&token),
    });
    let tools = std::panic::catch_unwind(|| client(&python, "tools", &base));
    let calls = json!([
        ["settings_get", {}, "ok", []],
        ["server_show", {"server": "nope"}, "error", ["nope"]],
    ]);
    let calls = std::panic::catch_unwind(|| client(&python, "calls", &with(&base, "calls", calls)));
    server.kill().unwrap();
    server.wait().unwrap();
    let tools = tools.unwrap();
    assert_eq!(tools["tools"], 32);
    assert_eq!(tools["unauthorized_status"]["none"], 401);
    assert_eq!(tools["unauthorized_status"]["wrong"], 401);
    calls.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Bounded: the server binds within a few seconds or the test fails.
fn wait_listening(port: u16) {
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
async fn cloud_home() -> (fixtures::fake_hetzner::FakeHetzner, Home) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_tool_with_a_progress_token_reports_every_step_and_never_goes_down() {
    let Some(python) = sdk_python() else { return };
    let (hetzner, home) = cloud_home().await;
    let env = [
        ("LIVCHAT_HETZNER_ENDPOINT", hetzner.url()),
        ("LIVCHAT_SSH_WAIT_SECS", "2".to_string()),
    ];
    let cfg = with(&home.stdio(&env), "tool", json!("server_create"));
    let cfg = with(
        &cfg,
        "tool_args",
        json!({"name": "web-1", "server_type": "cx22", "location": "nbg1", "image": "debian-12", "max_wait_secs": 120}),
    );
    let report = tokio::task::spawn_blocking(move || client(&python, "progress", &cfg))
        .await
        .unwrap();
    let job = &report["result"]["result"];
    // SSH never answers: the job fails at the host-key step, after the steps before it.
    assert_eq!(job["status"], "failed", "{job}");
    let messages: Vec<&str> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    for step in ["ssh_key", "create_server", "pin_host_key"] {
        assert!(
            messages.iter().any(|m| m.contains(step)),
            "no notification for {step}: {messages:?}"
        );
    }
    assert!(
        report["result"]["log_tail"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_long_tool_call_cancels_its_job() {
    let Some(python) = sdk_python() else { return };
    let (hetzner, home) = cloud_home().await;
    // Long enough that only the cancel can end the wait for SSH.
    let env = [
        ("LIVCHAT_HETZNER_ENDPOINT", hetzner.url()),
        ("LIVCHAT_SSH_WAIT_SECS", "600".to_string()),
    ];
    let cfg = with(&home.stdio(&env), "tool", json!("server_create"));
    let cfg = with(
        &cfg,
        "tool_args",
        json!({"name": "web-1", "server_type": "cx22", "location": "nbg1", "image": "debian-12", "max_wait_secs": 900}),
    );
    let cfg = with(&cfg, "cancel_at", json!("pin_host_key"));
    // Before the cancel, `job_wait` with a progress token on the same running job: it is
    // notified, and its `timeout_secs` deadline returns the job still running.
    let cfg = with(&cfg, "wait_secs", json!(2));
    let report = tokio::task::spawn_blocking(move || client(&python, "cancel", &cfg))
        .await
        .unwrap();
    let waited = &report["waited"];
    assert_eq!(waited["result"]["status"], "running", "{waited}");
    assert_eq!(waited["result"]["current_step"], "pin_host_key", "{waited}");
    let elapsed = waited["elapsed"].as_f64().unwrap();
    assert!((2.0..30.0).contains(&elapsed), "{waited}");
    let events = waited["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains("pin_host_key")),
        "no progress notification for job_wait: {waited}"
    );
    assert!(
        events.iter().all(|e| e["total"].as_f64() == Some(100.0)),
        "{waited}"
    );
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["status"], "cancelled", "{jobs:?}");
    // The job is in the home the CLI reads.
    let recorded = home.open().jobs().list(None).unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].status,
        livchat_core::model::JobStatus::Cancelled
    );
}
