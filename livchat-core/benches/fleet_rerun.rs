//! The orchestrator's share of a setup re-run on many servers at once: one server against N
//! (`LIVCHAT_BENCH_SERVERS`, default 100) re-run together, each `LIVCHAT_BENCH_ROUNDS` times
//! (default 5), in one process over a real home (`state.json`, the vault, job records and logs
//! on disk, fsync as the CLI and the REST service do them).
//!
//! `cargo bench -p livchat-core --bench fleet_rerun`. Needs no root and no image: the servers
//! are stand-ins (`fixtures::standin_host`) that answer a re-run's two commands as a set-up
//! Debian 12 host does, at no cost, on loopback addresses of their own. Everything on the
//! orchestrator's side is real: one SSH connection per server with key exchange, the server's
//! own key from the vault and the pinned host key; the job record, its progress and log; the
//! A record at the fake Cloudflare (held to Cloudflare's spec); the state's updates. The fleet
//! bench (`--bench fleet`) measures the same re-run on real hosts, where on one 2-core machine
//! the hosts' own work (sshd, the `docker` CLI) outweighs the orchestrator's.
//!
//! Two profiles: stand-ins that answer at once (the orchestrator's cost alone), and stand-ins
//! that wait what a real host takes (`LIVCHAT_BENCH_HOST_MS`, see [`host_time_from_env`]):
//! hosts with CPUs of their own, which one 2-core machine cannot give 100 real hosts, so
//! "N at once against one" is the orchestrator's scaling with real latencies.
//!
//! Each job runs in a task of its own, as the REST service and the MCP server run theirs. A
//! round fails the bench unless every job completed with all setup steps found in place, each
//! server was asked exactly its two commands, and nothing else was asked.
#![allow(
    clippy::disallowed_methods,
    reason = "a bench harness around the core: it reads its environment and the process's CPU time; the no-I/O rule (clippy.toml) is for the library"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{env_usize, percentile, setup_job};

use fixtures::fake_cloudflare::FakeCloudflare;
use fixtures::records::ManualServer;
use fixtures::standin_host::{HostTime, StandInHosts};
use livchat_core::orchestrator::{CLOUDFLARE_TOKEN, ssh_key_secret};
use livchat_core::{Config, Orchestrator, OrchestratorBuilder};
use livchat_remote::setup::DockerSource;
use livchat_store::{JobStatus, JsonFileStore, ServerRecord, ServerResources, Store};
use secrecy::SecretString;

fn main() {
    let n = env_usize("LIVCHAT_BENCH_SERVERS", 100);
    let rounds = env_usize("LIVCHAT_BENCH_ROUNDS", 5);
    let real = host_time_from_env();
    // Jobs block their worker on each record's fsync: `LIVCHAT_BENCH_WORKERS` sets how many
    // there are (default: one per core, tokio's default and the services' job runtime).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Ok(workers) = std::env::var("LIVCHAT_BENCH_WORKERS") {
        builder.worker_threads(workers.parse().expect("LIVCHAT_BENCH_WORKERS: a number"));
    }
    let rt = builder.enable_all().build().expect("tokio runtime");
    let profiles = [
        ("no host time", HostTime::default()),
        ("a real host's time", real),
    ];
    let mut rows = Vec::new();
    for (label, time) in profiles {
        eprintln!("-- stand-ins answering after {label} ({time:?})");
        rows.extend(
            rt.block_on(run(n, rounds, time))
                .map(|(count, row)| (label, count, row)),
        );
    }
    println!();
    println!(
        "| stand-ins answer after | servers re-run at once | wall, median of {rounds} | min / max | process CPU (median) | job p50 / p95 (median round) | N / 1 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut one = Duration::ZERO;
    for (label, count, row) in rows {
        if count == 1 {
            one = row.wall;
        }
        println!(
            "| {label} | {count} | {:.0} ms | {:.0} / {:.0} ms | {:.0} ms | {:.0} / {:.0} ms | {:.2}x |",
            ms(row.wall),
            ms(row.min),
            ms(row.max),
            ms(row.cpu),
            ms(row.p50),
            ms(row.p95),
            row.wall.as_secs_f64() / one.as_secs_f64(),
        );
    }
}

/// A real set-up Debian 12 host's own time in a re-run, `LIVCHAT_BENCH_HOST_MS=AUTH,OS,CHECKS`
/// in milliseconds. The default is what the setup re-run bench (`setup_rerun_process`) found
/// on a `DebianHost` on 2026-12-04: about 90 ms of sshd authentication, a few ms to read the
/// OS, about 100 ms for the batch of checks (three `docker` CLI starts in parallel).
fn host_time_from_env() -> HostTime {
    let spec = std::env::var("LIVCHAT_BENCH_HOST_MS").unwrap_or_else(|_| "90,5,100".into());
    let ms: Vec<u64> = spec
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("LIVCHAT_BENCH_HOST_MS={spec:?}: three numbers of ms"))
        })
        .collect();
    let [auth, os_release, checks] = ms[..] else {
        panic!("LIVCHAT_BENCH_HOST_MS={spec:?}: three numbers of ms (auth, OS, checks)");
    };
    HostTime {
        auth: Duration::from_millis(auth),
        os_release: Duration::from_millis(os_release),
        checks: Duration::from_millis(checks),
    }
}

/// The medians of a series of rounds.
struct Row {
    wall: Duration,
    min: Duration,
    max: Duration,
    cpu: Duration,
    p50: Duration,
    p95: Duration,
}

impl Row {
    fn of(runs: &[Run]) -> Row {
        let walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
        let wall = percentile(&walls, 50);
        let mid = runs
            .iter()
            .find(|r| r.wall == wall)
            .expect("the median is one of the runs");
        Row {
            wall,
            min: *walls.iter().min().expect("at least one round"),
            max: *walls.iter().max().expect("at least one round"),
            cpu: percentile(&runs.iter().map(|r| r.cpu).collect::<Vec<_>>(), 50),
            p50: percentile(&mid.each, 50),
            p95: percentile(&mid.each, 95),
        }
    }
}

/// One home of `n` stand-ins: set up once, then `rounds` times one server re-run alone and
/// all `n` at once. The rows for 1 and for `n`.
async fn run(n: usize, rounds: usize, time: HostTime) -> [(usize, Row); 2] {
    let hosts = StandInHosts::start_with(n, time)
        .await
        .expect("stand-in hosts");
    let cloudflare = FakeCloudflare::start().await;
    let home = tempfile::tempdir().expect("a temporary home");
    let (orch, store) = open_home(home.path(), &cloudflare);
    orch.secret_set(
        CLOUDFLARE_TOKEN,
        SecretString::from(cloudflare.token().to_string()),
    )
    .unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("rerun-{i:03}")).collect();
    add_servers(&orch, store.as_ref(), &names, &hosts);

    // The first setup: every check passes, the A records are created, the records say ready.
    let first = rerun(&orch, &names, &hosts).await;
    eprintln!("first setup of {n}: {:.3?}", first.wall);

    let mut one = Vec::new();
    let mut all = Vec::new();
    for round in 0..rounds {
        let a = rerun(&orch, &names[..1], &hosts).await;
        let b = rerun(&orch, &names, &hosts).await;
        eprintln!(
            "round {round}: 1 server {:.3?} (CPU {:.3?}); {n} servers {:.3?} (CPU {:.3?}, job p50 {:.3?}, p95 {:.3?})",
            a.wall,
            a.cpu,
            b.wall,
            b.cpu,
            percentile(&b.each, 50),
            percentile(&b.each, 95),
        );
        one.push(a);
        all.push(b);
    }
    [(1, Row::of(&one)), (n, Row::of(&all))]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The home as `Orchestrator::open` assembles it, with the fake Cloudflare's endpoint.
fn open_home(
    home: &std::path::Path,
    cloudflare: &FakeCloudflare,
) -> (Arc<Orchestrator>, Arc<JsonFileStore>) {
    let password = SecretString::from("bench-vault-password".to_string());
    livchat_store::init_home_with(
        home,
        livchat_store::InitOptions {
            vault_password: Some(password.clone()),
            vault_label: None,
        },
    )
    .expect("init the home");
    let paths = livchat_store::HomePaths::new(home);
    let vault = livchat_store::Vault::open_deferred(&paths.vault, password, None).unwrap();
    let mut config = Config::new(home);
    config.docker_source = DockerSource::Distribution;
    let endpoint = cloudflare.url();
    let store = Arc::new(JsonFileStore::new(home));
    let orch = OrchestratorBuilder::new(
        config,
        store.clone(),
        Arc::new(vault),
        Arc::new(livchat_store::FileJobLogs::new(home)),
        livchat_apps::Catalog::builtin().unwrap(),
    )
    .dns_factory(common::cloudflare_at(endpoint))
    .build();
    (orch, store)
}

/// Records each stand-in as a server brought by its owner, with a key of its own in the vault
/// and the stand-ins' host key pinned (what `livchat server add` leaves behind).
fn add_servers(orch: &Orchestrator, store: &dyn Store, names: &[String], hosts: &StandInHosts) {
    let mut records = Vec::new();
    for (name, addr) in names.iter().zip(hosts.addrs()) {
        let key = livchat_remote::generate_ed25519(&format!("livchat@{name}")).unwrap();
        orch.secret_set(&ssh_key_secret(name), key.private_openssh)
            .unwrap();
        let mut record: ServerRecord = ManualServer::new(name)
            .host(&addr.ip().to_string())
            .port(addr.port())
            .key_secret(&ssh_key_secret(name))
            .host_key(hosts.host_key_fingerprint())
            .record();
        // Read by a real first setup; a stand-in answers only a re-run's two commands.
        record.setup.resources = Some(ServerResources {
            cpus: 2,
            memory_mb: 4096,
        });
        records.push(record);
    }
    store
        .update("bench servers", &mut |s| {
            for r in &records {
                s.servers.insert(r.name.clone(), r.clone());
            }
            Ok(())
        })
        .unwrap();
}

struct Run {
    wall: Duration,
    /// The process's CPU time (user and system) over the run: the orchestrator's and the
    /// stand-ins' together, since they share the process.
    cpu: Duration,
    each: Vec<Duration>,
}

/// Starts a setup job on every server of `names` at once, each in a task of its own, and
/// waits for all; panics unless each completed as a re-run of a set-up server.
async fn rerun(orch: &Arc<Orchestrator>, names: &[String], hosts: &StandInHosts) -> Run {
    let answered = hosts.counters().answered.load(Ordering::Relaxed);
    let cpu = process_cpu();
    let started = Instant::now();
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let orch = orch.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let done = setup_job(&orch, name).await?;
                Ok::<_, livchat_core::CoreError>((done, t.elapsed()))
            })
        })
        .collect();
    let mut each = Vec::with_capacity(names.len());
    for task in tasks {
        let (job, took) = task.await.expect("the job's task").expect("the job starts");
        let log = orch.job_logs(&job.id, 0).unwrap();
        assert_eq!(
            job.status,
            JobStatus::Completed,
            "{:?}: {:?}",
            job.error,
            log.iter().map(|l| &l.message).collect::<Vec<_>>()
        );
        assert!(
            log.iter().any(|l| l.message.ends_with("all in place")),
            "the checks did not all pass in one round trip: {log:?}"
        );
        each.push(took);
    }
    let wall = started.elapsed();
    let cpu = process_cpu() - cpu;
    let counters = hosts.counters();
    assert_eq!(
        counters.answered.load(Ordering::Relaxed) - answered,
        2 * names.len() as u64,
        "each re-run asks its server two things: the OS and the batch of checks"
    );
    assert_eq!(counters.refused.load(Ordering::Relaxed), 0);
    Run { wall, cpu, each }
}

/// User and system CPU time of this process so far (`/proc/self/stat`, clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after_name = stat.rsplit_once(") ").expect("stat's command name").1;
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3) here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}
