//! The main flow through the two other frontends, in the sandbox of `cargo xtask demo` (fake
//! Hetzner and Cloudflare held to the vendor specs, a real Debian 12 host over real SSH, a real
//! Swarm running locally built images): first through `livchat-mcp` driven by the official
//! Python MCP SDK, then through `livchat-api` driven by a real HTTP client.
//!
//! - MCP: create, a setup cancelled from the client (the job ends `cancelled` and no apt or
//!   dpkg of the step is left on the server), its retry, deploy `guestbook` with its
//!   dependencies, undeploy, delete; every long call with a progress callback that gets at
//!   least one notification per step and never sees progress go down; the deployed app's
//!   `app_status` and `app_logs` read live from the swarm.
//! - REST: create, setup, deploy `guestbook`, undeploy, delete, each answered `202` with
//!   `Location` and followed over Server-Sent Events to its end; a deploy whose service process
//!   is SIGKILLed comes back `interrupted` after a restart and its retry completes; a job
//!   started with the CLI is cancelled through the API, and the reverse.
//!
//! One sandbox for both (setting the host up installs Docker from Debian's mirror: minutes);
//! the REST flow's setup is then the idempotent re-run on the same host. `livchat-api` and
//! `livchat-mcp` are the workspace's binaries beside `livchat` (`cargo xtask ci` builds them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::demo::{APP, Demo, SERVER, SUBDOMAIN, ZONE};
use fixtures::sandbox::Sandbox;
use serde_json::{Value, json};

const LIVCHAT: &str = env!("CARGO_BIN_EXE_livchat");

/// A binary of the workspace built beside `livchat`.
fn sibling(name: &str) -> PathBuf {
    let path = Path::new(LIVCHAT).with_file_name(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p {name}` (cargo xtask ci builds it)",
        path.display()
    );
    path
}

fn mcp_python() -> Option<PathBuf> {
    fixtures::mcp_client::python("mcp")
}

/// Runs one scenario of `livchat-mcp/tests/mcp_client.py` over stdio against the sandbox.
fn mcp(python: &Path, sandbox: &Sandbox, scenario: &str, scenario_cfg: Value) -> Value {
    let mut cfg =
        fixtures::mcp_client::stdio_config(sibling("livchat-mcp"), sandbox.home(), sandbox.env());
    for (key, value) in scenario_cfg.as_object().expect("a scenario's keys") {
        cfg[key] = value.clone();
    }
    fixtures::mcp_client::run(python, scenario, &cfg)
}

/// The job of an MCP call's result, checked completed, with a progress notification naming
/// each step this call ran (those not in `before`, the steps an earlier attempt finished).
fn mcp_job_completed<'a>(call: &'a Value, before: &[Value]) -> &'a Value {
    let job = &call["result"]["result"];
    assert_eq!(job["status"], "completed", "{}: {call:#}", call["tool"]);
    let messages: Vec<&str> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    for step in job["steps_completed"].as_array().unwrap() {
        if before.contains(step) {
            continue;
        }
        let step = step.as_str().unwrap();
        assert!(
            messages.iter().any(|m| m.starts_with(&format!("{step} ("))),
            "{}: no progress notification for step {step}: {messages:#?}",
            call["tool"]
        );
    }
    job
}

/// No apt-get or dpkg on the server (bounded wait: a killed process takes a moment to go).
fn assert_no_apt_left(demo: &Demo<'_>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ps = demo.on_server(&["ps", "-eo", "pid,stat,args"]).unwrap();
        let left: Vec<&str> = ps
            .lines()
            .filter(|l| l.contains("apt-get") || l.contains("dpkg"))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled setup left processes on the server:\n{ps}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `app_status` and `app_logs` of the deployed app over MCP: results the SDK validated against
/// their output schemas, read live from the swarm.
fn assert_live_status_and_logs(python: &Path, sandbox: &Sandbox) {
    let reads = json!([
        ["app_status", {"server": SERVER, "app": APP}],
        ["app_logs", {"server": SERVER, "app": APP, "tail": 50}],
    ]);
    let report = mcp(python, sandbox, "reads", json!({ "reads": reads }));
    let result = |i: usize| -> Value {
        let dumped: Value = serde_json::from_str(report["results"][i].as_str().unwrap()).unwrap();
        dumped["structuredContent"]["result"].clone()
    };
    let status = result(0);
    assert_eq!(status[0]["app"], APP, "{status:#}");
    assert_eq!(status[0]["state"], "running", "{status:#}");
    let services = status[0]["services"].as_array().unwrap();
    assert!(!services.is_empty(), "{status:#}");
    for s in services {
        assert!(
            s["desired"].as_u64() >= Some(1) && s["running"] == s["desired"],
            "{status:#}"
        );
    }
    let names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
    let logs = result(1);
    let lines = logs["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "no log line: {logs:#}");
    assert!(
        lines
            .iter()
            .all(|l| names.contains(&l["service"].as_str().unwrap_or_default())),
        "a line of a service the app lacks: {logs:#}"
    );
}

fn mcp_flow(python: &Path, sandbox: &Sandbox, demo: &Demo<'_>) {
    demo.section("MCP: create, then a setup cancelled from the client");
    let created = mcp(
        python,
        sandbox,
        "flow",
        json!({"calls": [{"tool": "server_create", "args": {
            "name": SERVER, "server_type": "cx22", "location": "nbg1", "image": "debian-12"}}]}),
    );
    mcp_job_completed(&created["calls"][0], &[]);
    let setup = json!({"server": SERVER, "zone": ZONE, "subdomain": SUBDOMAIN});
    let cancelled = mcp(
        python,
        sandbox,
        "cancel",
        json!({"tool": "server_setup", "tool_args": setup, "cancel_at": "docker_packages"}),
    );
    let job = cancelled["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "setup_server")
        .cloned()
        .unwrap_or_else(|| panic!("no setup job: {cancelled:#}"));
    assert_eq!(job["status"], "cancelled", "{job:#}");
    assert_no_apt_left(demo);

    demo.section("MCP: retry the setup, import the images, deploy, undeploy, delete");
    let mut calls = vec![json!({"tool": "job_retry", "args": {"id": job["id"]}})];
    for image in sandbox.images() {
        calls.push(json!({"tool": "server_exec", "args": {
            "server": SERVER, "argv": image.import_argv(), "timeout_secs": 300}}));
    }
    calls.push(json!({"tool": "app_deploy", "args": {"server": SERVER, "app": APP}}));
    let report = mcp(python, sandbox, "flow", json!({ "calls": calls }));
    let calls = report["calls"].as_array().unwrap();
    let before = job["steps_completed"].as_array().unwrap().clone();
    let retried = mcp_job_completed(&calls[0], &before);
    assert_eq!(retried["attempt"], 2, "{retried:#}");
    for exec in &calls[1..calls.len() - 1] {
        assert_eq!(exec["result"]["result"]["exit_code"], 0, "{exec:#}");
    }
    mcp_job_completed(calls.last().unwrap(), &[]);
    let guestbook = demo.verify_guestbook().unwrap();
    assert_eq!(guestbook.table_owner, "guestbook");
    demo.assert_no_orphans().unwrap();
    assert_live_status_and_logs(python, sandbox);

    let report = mcp(
        python,
        sandbox,
        "flow",
        json!({"calls": [
            {"tool": "app_undeploy", "args": {"server": SERVER, "app": APP, "confirm": true}},
            {"tool": "server_delete", "args": {"server": SERVER, "force": true, "confirm": true}},
        ]}),
    );
    for call in report["calls"].as_array().unwrap() {
        mcp_job_completed(call, &[]);
    }
    demo.assert_all_gone().unwrap();
}

/// The real `livchat-api` on loopback over the sandbox's home.
struct Api {
    child: Child,
    url: String,
    token: String,
}

impl Api {
    fn start(sandbox: &Sandbox, token: &str) -> Api {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = sandbox.scratch().join(format!("api-{n}.log"));
        let mut cmd = Command::new(sibling("livchat-api"));
        cmd.args(["--listen", "127.0.0.1:0"])
            .envs(sandbox.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        // Owned by `Api` at once, so a failed start is still killed (Drop).
        let mut api = Api {
            child: cmd.spawn().unwrap(),
            url: String::new(),
            token: token.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("livchat-api: listening on ").nth(1) {
                api.url = rest.lines().next().unwrap().trim().to_string();
                return api;
            }
            assert!(
                Instant::now() < deadline,
                "livchat-api did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120))
    }

    /// Sends `body` and returns the status, the `Location` header and the JSON answer.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Option<String>, Value) {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let value = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, location, value)
    }

    /// Starts a job: `202 Accepted` with its `Location`; returns the job id.
    async fn start_job(&self, method: reqwest::Method, path: &str, body: Value) -> String {
        // DELETE routes take their fields as query parameters, never a body.
        let body = (method != reqwest::Method::DELETE).then_some(body);
        let (status, location, job) = self.send(method, path, body).await;
        assert_eq!(status, 202, "{path}: {job:#}");
        let id = job["id"].as_str().unwrap().to_string();
        assert_eq!(
            location.as_deref(),
            Some(format!("/api/jobs/{id}").as_str())
        );
        id
    }

    /// Follows the job's Server-Sent Events to their `end` event and returns its data; `on`
    /// sees every event name as it arrives.
    async fn follow(&self, id: &str, mut on: impl FnMut(&str, &Value)) -> Value {
        let mut resp = self
            .request(reqwest::Method::GET, &format!("/api/jobs/{id}/events"))
            .timeout(Duration::from_secs(900))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut buf = String::new();
        while let Some(chunk) = resp.chunk().await.unwrap() {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                let (Some(event), Some(data)) = (field("event:"), field("data:")) else {
                    continue;
                };
                let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                on(&event, &data);
                if event == "end" {
                    return data;
                }
            }
        }
        panic!("the event stream of job {id} closed before its end");
    }

    async fn job(&self, id: &str) -> Value {
        let (status, _, job) = self
            .send(reqwest::Method::GET, &format!("/api/jobs/{id}"), None)
            .await;
        assert_eq!(status, 200, "{job:#}");
        job
    }

    /// Starts a job and follows it to the end; it must complete.
    async fn run(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let id = self.start_job(method, path, body).await;
        let mut progress_events = 0;
        let end = self
            .follow(&id, |event, _| {
                progress_events += usize::from(event == "progress")
            })
            .await;
        assert!(progress_events > 0, "{path}: no progress event");
        let job = self.job(&id).await;
        assert_eq!(job["status"], "completed", "{path}: {job:#} (end: {end:#})");
        job
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until job `id` ends and returns it.
async fn ended(api: &Api, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let job = api.job(id).await;
        if ["completed", "failed", "cancelled", "interrupted"]
            .contains(&job["status"].as_str().unwrap_or(""))
        {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not end: {job:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn rest_flow(sandbox: &Sandbox, demo: &Demo<'_>) {
    use reqwest::Method as M;
    // Read quietly: the demo prints what each command answers.
    let out = sandbox.livchat(&["api", "token"], None).unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    demo.section("REST: create and set up (the re-run on the same host)");
    let mut api = Api::start(sandbox, &token);
    api.run(
        M::POST,
        "/api/servers",
        json!({"name": SERVER, "server_type": "cx22", "location": "nbg1", "image": "debian-12"}),
    )
    .await;
    api.run(
        M::POST,
        &format!("/api/servers/{SERVER}/setup"),
        json!({"zone": ZONE, "subdomain": SUBDOMAIN}),
    )
    .await;

    demo.section("REST: a deploy whose service is SIGKILLed comes back interrupted; retry");
    let deploy = format!("/api/servers/{SERVER}/apps");
    let (status, _, plan) = api
        .send(
            M::POST,
            &format!("{deploy}?plan=true"),
            Some(json!({"app": APP})),
        )
        .await;
    assert_eq!(status, 200, "{plan:#}");
    let id = api.start_job(M::POST, &deploy, json!({"app": APP})).await;
    let mut seen_running = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !seen_running {
        let job = api.job(&id).await;
        seen_running = job["status"] == "running"
            && job["steps_completed"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s == "postgres:record"));
        assert!(
            job["status"] == "running" || job["status"] == "queued",
            "{job:#}"
        );
        assert!(Instant::now() < deadline, "deploy never got going: {job:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.kill9();
    api = Api::start(sandbox, &token);
    assert_eq!(api.job(&id).await["status"], "interrupted");
    let (status, _, retried) = api
        .send(M::POST, &format!("/api/jobs/{id}/retry"), None)
        .await;
    assert!(status == 200 || status == 202, "{status} {retried:#}");
    api.follow(&id, |_, _| {}).await;
    assert_eq!(api.job(&id).await["status"], "completed");
    demo.verify_guestbook().unwrap();

    demo.section("REST and CLI: each cancels a job the other started");
    let out = demo
        .ok(
            &[
                "app", "deploy", SERVER, "ledger", "--detach", "--output", "json",
            ],
            None,
        )
        .unwrap();
    let cli_job: Value = serde_json::from_str(out.trim()).unwrap();
    let cli_id = cli_job["id"].as_str().unwrap();
    let (status, _, _) = api
        .send(M::POST, &format!("/api/jobs/{cli_id}/cancel"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(ended(&api, cli_id).await["status"], "cancelled");
    let api_id = api
        .start_job(M::POST, &deploy, json!({"app": "ledger"}))
        .await;
    demo.ok(&["job", "cancel", &api_id], None).unwrap();
    let end = api.follow(&api_id, |_, _| {}).await;
    assert_eq!(api.job(&api_id).await["status"], "cancelled", "{end:#}");

    demo.section("REST: undeploy and delete");
    api.run(M::DELETE, &format!("{deploy}/{APP}"), json!({}))
        .await;
    api.run(
        M::DELETE,
        &format!("/api/servers/{SERVER}?force=true"),
        json!({}),
    )
    .await;
    demo.assert_all_gone().unwrap();
}

#[test]
fn the_main_flow_runs_through_mcp_and_rest_with_cancel_kill_and_cross_process_jobs() {
    let mut sandbox = match Sandbox::start(Path::new(LIVCHAT)) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => panic!("the sandbox did not start: {e:#}"),
    };
    let Some(python) = mcp_python() else { return };
    sandbox.add_apps_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/e2e-apps")
            .canonicalize()
            .unwrap(),
    );
    let demo = Demo::new(&sandbox, true);
    demo.configure().unwrap();
    mcp_flow(&python, &sandbox, &demo);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(rest_flow(&sandbox, &demo));
}
