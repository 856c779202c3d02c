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

use common::{env_usize, percentile};

use fixtures::fake_cloudflare::{FakeCloudflare, ZONE};
use fixtures::records::ManualServer;
use fixtures::standin_host::StandInHosts;
use livchat_core::orchestrator::{CLOUDFLARE_TOKEN, ssh_key_secret};
use livchat_core::{Config, Orchestrator, OrchestratorBuilder, SetupServerParams};
use livchat_remote::setup::DockerSource;
use livchat_store::{JobStatus, JsonFileStore, ServerRecord, ServerResources, Store};
use secrecy::SecretString;

fn main() {
    let n = env_usize("LIVCHAT_BENCH_SERVERS", 100);
    let rounds = env_usize("LIVCHAT_BENCH_ROUNDS", 5);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(run(n, rounds));
}

async fn run(n: usize, rounds: usize) {
    let hosts = StandInHosts::start(n).await.expect("stand-in hosts");
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
    let median = |runs: &[Run], f: fn(&Run) -> Duration| {
        percentile(&runs.iter().map(f).collect::<Vec<_>>(), 50)
    };
    let one_wall = median(&one, |r| r.wall);
    let all_wall = median(&all, |r| r.wall);
    println!();
    println!(
        "| servers re-run at once | wall, median of {rounds} | min / max | orchestrator CPU (median) | job p50 / p95 (median round) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for (count, runs) in [(1, &one), (n, &all)] {
        let walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
        let mid = runs
            .iter()
            .find(|r| r.wall == median(runs, |r| r.wall))
            .expect("the median is one of the runs");
        println!(
            "| {count} | {:.0} ms | {:.0} / {:.0} ms | {:.0} ms | {:.0} / {:.0} ms |",
            ms(median(runs, |r| r.wall)),
            ms(*walls.iter().min().unwrap()),
            ms(*walls.iter().max().unwrap()),
            ms(median(runs, |r| r.cpu)),
            ms(percentile(&mid.each, 50)),
            ms(percentile(&mid.each, 95)),
        );
    }
    // One stand-in answers at once, so the ratio to one is not issue #12's (whose one server
    // is a real host, about 0.23 s): the time per server at 100 is the orchestrator's cost.
    println!(
        "\n{n} servers at once: {:.2}x the wall time of one stand-in, {:.1} ms of wall time per server",
        all_wall.as_secs_f64() / one_wall.as_secs_f64(),
        ms(all_wall) / n as f64
    );
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
                let job = orch.start_setup_server(SetupServerParams {
                    dns: Default::default(),
                    name,
                    zone: ZONE.into(),
                    subdomain: None,
                })?;
                let done = orch.run_job(&job.id).await?;
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
