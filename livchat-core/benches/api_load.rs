//! Load on the REST service: the real `livchat-api` binary (release build, beside this bench
//! in `target/release`) on loopback over a home holding N servers and 1,000 ended jobs.
//!
//! `cargo build --release -p livchat-api && cargo bench -p livchat-core --bench api_load`
//! (`cargo xtask bench` does both). For N = 100 and N = 1,000 (`LIVCHAT_LOAD_SERVERS` picks
//! one), it sends `GET /api/servers` and `GET /api/jobs/{id}` at a fixed rate
//! (`LIVCHAT_LOAD_RPS`, default 1,000 requests/s) for `LIVCHAT_LOAD_SECS` (default 30) each,
//! open loop: each request is due at its own tick and its latency counts from that tick, so a
//! slow answer delays the ones behind it in the numbers too (no coordinated omission). Then it
//! creates 100 jobs one after another (`DELETE /api/servers/{name}`: a brought server's delete
//! runs locally, nothing leaves the machine) and reports the time to `202 Accepted`.
//!
//! Not criterion: a run is a fixed-rate schedule, not a loop to time. Every request must answer
//! 2xx; any other answer is counted and fails the run. The servers' addresses are 127.0.0.1 on
//! a closed port: nothing is sent anywhere but loopback.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a harness around the service: it writes a home and starts processes; the no-I/O rule (clippy.toml) is for the library"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use livchat_core::{Config, Orchestrator};
use livchat_store::{
    JobRecord, JobStatus, JsonFileStore, ProviderKind, ServerRecord, ServerStatus, SetupRecord,
    State, Store,
};
use secrecy::ExposeSecret;

const JOBS: usize = 1_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn server(i: usize, port: u16) -> ServerRecord {
    let name = format!("server-{i:04}");
    ServerRecord {
        ssh_key_secret: format!("server.{name}.ssh_key"),
        ssh_agent_key: None,
        name,
        provider: ProviderKind::Manual,
        provider_id: None,
        host: "127.0.0.1".into(),
        ssh_port: port,
        ssh_user: "root".into(),
        host_key_fingerprint: Some("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into()),
        dns: None,
        server_type: None,
        location: None,
        image: None,
        labels: BTreeMap::from([("client".into(), format!("client-{}", i % 37))]),
        status: ServerStatus::Ready,
        setup: SetupRecord::default(),
        platform: Default::default(),
        created_at: chrono::Utc::now(),
    }
}

fn job(i: usize, servers: usize) -> JobRecord {
    let now = chrono::Utc::now();
    JobRecord {
        id: format!("job-20261203000000-{i:08x}"),
        kind: "setup_server".into(),
        server: Some(format!("server-{:04}", i % servers)),
        status: JobStatus::Completed,
        progress: 100,
        current_step: None,
        steps_completed: [
            "connect",
            "setup:apt_update",
            "setup:docker_packages",
            "finalize",
        ]
        .map(String::from)
        .to_vec(),
        steps_remaining: Vec::new(),
        params: serde_json::json!({"server": format!("server-{:04}", i % servers), "zone": "example.com"}),
        result: None,
        error: None,
        created_at: now,
        started_at: Some(now),
        finished_at: Some(now),
        attempt: 1,
        owner: None,
        cancel_requested: false,
    }
}

/// A port of 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn home_with(dir: &Path, servers: usize) -> PathBuf {
    let home = dir.join("home");
    Orchestrator::init(&Config::new(&home)).expect("init home");
    let port = closed_port();
    JsonFileStore::new(&home)
        .update("fill", &mut |s: &mut State| {
            for i in 0..servers {
                let srv = server(i, port);
                s.servers.insert(srv.name.clone(), srv);
            }
            Ok(())
        })
        .expect("fill the state");
    let store = JsonFileStore::new(&home);
    for i in 0..JOBS {
        store
            .insert_job(&job(i, servers), false)
            .expect("fill the jobs");
    }
    home
}

struct Service {
    child: Child,
    url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, home: &Path) -> Service {
    let log = home.with_extension("log");
    let child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0"])
        .args(["--rate-limit-per-minute", "100000000"])
        .args(["--job-rate-limit-per-hour", "100000000"])
        .env("LIVCHAT_HOME", home)
        // `LIVCHAT_LOAD_RUST_LOG=info` logs each request with its time in the service, to
        // tell the service's share of a slow answer from the load generator's.
        .env(
            "RUST_LOG",
            std::env::var("LIVCHAT_LOAD_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start livchat-api");
    let mut service = Service {
        child,
        url: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("livchat-api: listening on ").nth(1) {
            service.url = rest.lines().next().unwrap_or_default().trim().to_string();
            return service;
        }
        assert!(
            Instant::now() < deadline,
            "livchat-api did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Summary {
    sent: usize,
    failed: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn summarize(mut latencies: Vec<Duration>, failed: usize) -> Summary {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Summary {
        sent: latencies.len() + failed,
        failed,
        p50: at(0.50),
        p99: at(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    }
}

/// Open loop: one request due every `1/rps` s for `secs` s, latency from the due time.
async fn fixed_rate(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    rps: usize,
    secs: usize,
) -> Summary {
    let period = Duration::from_secs_f64(1.0 / rps as f64);
    let total = rps * secs;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + period * i as u32;
        tokio::time::sleep_until(due).await;
        let req = client.get(url).bearer_auth(token).send();
        tasks.push(tokio::spawn(async move {
            let ok = match req.await {
                Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, due.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut failed = 0;
    for t in tasks {
        let (ok, latency) = t.await.expect("request task");
        if ok {
            latencies.push(latency);
        } else {
            failed += 1;
        }
    }
    summarize(latencies, failed)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn report(what: &str, s: &Summary) {
    println!(
        "{what}: {} requests, {} failed, p50 {}, p99 {}, max {}",
        s.sent,
        s.failed,
        ms(s.p50),
        ms(s.p99),
        ms(s.max)
    );
}

async fn run(bin: &Path, servers: usize, rps: usize, secs: usize) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = home_with(dir.path(), servers);
    let token = Orchestrator::open(Config::new(&home))
        .expect("open home")
        .api_token(false)
        .expect("api token")
        .expose_secret()
        .to_string();
    let service = start(bin, &home);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    println!("== {servers} servers, {JOBS} jobs, {rps} requests/s for {secs} s");
    let list = fixed_rate(
        &client,
        &format!("{}/api/servers", service.url),
        &token,
        rps,
        secs,
    )
    .await;
    report("GET /api/servers", &list);
    let one = format!("{}/api/jobs/{}", service.url, job(JOBS / 2, servers).id);
    let show = fixed_rate(&client, &one, &token, rps, secs).await;
    report("GET /api/jobs/{id}", &show);

    // Half of the creations follow each other while the jobs before run (and take the same
    // lock for their own writes); the other half each wait for the job before to end.
    let half = 50.min(servers / 2);
    let busy = create_jobs(&client, &service.url, &token, 0..half, false).await;
    report(
        "job creation while the previous job runs (DELETE /api/servers/{name} -> 202)",
        &busy,
    );
    let idle = create_jobs(&client, &service.url, &token, half..2 * half, true).await;
    report("job creation on an idle service", &idle);
    // `LIVCHAT_LOAD_KEEP_LOG=FILE` keeps the service's log (the home is a temp dir).
    if let Ok(keep) = std::env::var("LIVCHAT_LOAD_KEEP_LOG") {
        let _ = std::fs::copy(home.with_extension("log"), format!("{keep}.{servers}"));
    }
    list.failed + show.failed + busy.failed + idle.failed == 0
}

/// Creates one job per server of `range` (deleting it), one after another; with `wait`, each
/// job is awaited to its end before the next is created.
async fn create_jobs(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    range: std::ops::Range<usize>,
    wait: bool,
) -> Summary {
    let mut created = Vec::new();
    let mut failed = 0;
    for i in range {
        let t = Instant::now();
        let resp = client
            .delete(format!("{url}/api/servers/server-{i:04}?force=true"))
            .bearer_auth(token)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().as_u16() == 202 => {
                created.push(t.elapsed());
                let id = r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_string));
                if let (true, Some(id)) = (wait, id) {
                    wait_for_end(client, url, token, &id).await;
                }
            }
            Ok(r) => {
                failed += 1;
                eprintln!(
                    "job creation answered {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("job creation failed: {e}");
            }
        }
    }
    summarize(created, failed)
}

/// Polls the job until it is no longer queued or running, for at most 10 s.
async fn wait_for_end(client: &reqwest::Client, url: &str, token: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let status = match client
            .get(format!("{url}/api/jobs/{id}"))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(r) => r.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        };
        let live = status
            .as_ref()
            .and_then(|v| v["status"].as_str())
            .is_none_or(|s| matches!(s, "queued" | "running"));
        if !live {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("job {id} did not end within 10 s");
}

fn main() {
    let bin = std::env::current_exe()
        .expect("bench path")
        .parent()
        .and_then(Path::parent)
        .map(|release| release.join("livchat-api"))
        .expect("target dir");
    if !bin.is_file() {
        eprintln!(
            "{} is missing: run `cargo build --release -p livchat-api` first (cargo xtask bench does)",
            bin.display()
        );
        std::process::exit(1);
    }
    let rps = env_usize("LIVCHAT_LOAD_RPS", 1_000);
    let secs = env_usize("LIVCHAT_LOAD_SECS", 30);
    let sizes = match std::env::var("LIVCHAT_LOAD_SERVERS") {
        Ok(n) => vec![n.parse().expect("LIVCHAT_LOAD_SERVERS is a number")],
        Err(_) => vec![100, 1_000],
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut all_ok = true;
    for servers in sizes {
        all_ok &= rt.block_on(run(&bin, servers, rps, secs));
    }
    if !all_ok {
        eprintln!("some requests failed");
        std::process::exit(1);
    }
}
