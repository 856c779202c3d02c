//! The fleet benchmark: N servers created and set up concurrently through the orchestrator,
//! against the fake Hetzner and Cloudflare (held to the vendor specs) and real SSH test hosts
//! (`fixtures::fleet`: one Debian 12 host per server, overlayfs on one baked image, own
//! namespaces, own sshd on port 22), measured for N = 1 and N = `LIVCHAT_BENCH_SERVERS`
//! (default 100).
//!
//! `cargo bench -p livchat-core --bench fleet`. Not criterion: one round of 100 servers takes
//! minutes, so each size runs once and prints wall times, per-server percentiles and peak
//! memory. Every job must complete, and every server is then checked over SSH (Swarm active on
//! its address, its hostname) and in the fake DNS (its A record): a run with a failure prints
//! each failure with its job error and log tail and exits non-zero.
//!
//! Concurrency: all N jobs of a phase are in flight at once through
//! [`livchat_core::Orchestrator::for_each_server`] with concurrency N (set
//! `LIVCHAT_BENCH_CONCURRENCY` to bound it). Creates all run first, then the setups, then
//! (after the checks below) the idempotent re-run of setup on every set-up server at once,
//! which changes nothing on the hosts: it measures the orchestrator (one SSH round trip of
//! checks per server, the job records), not N Docker engines starting on 2 cores.
//!
//! What is pre-baked into the image (once, for real, by the setup plan's own steps over SSH on
//! a `DebianHost` that reaches Debian's mirror): `apt_update`, `base_packages`,
//! `docker_packages`. The hosts have no route out; each gets a fresh apt stamp, so the setup
//! plan skips apt update, and the package checks (dpkg-query) run per host and pass. Per host,
//! for real: cloud-init check, time zone, hostname, `daemon.json`, dockerd start, Swarm init,
//! the overlay network and ufw; plus, through the orchestrator, SSH key generation and
//! registration, server creation (the fake's actions take 300 ms), host key pinning, the
//! provider firewall and the DNS A record.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness around the core: it writes the real host's files and reads its environment; the no-I/O rule (clippy.toml) is for the library"
)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{env_usize, percentile, setup_job};

use fixtures::fake_cloudflare::{FakeCloudflare, ZONE, ZONE_ID};
use fixtures::fake_hetzner::{BackingHost, CreatedServer, FakeHetzner, HetznerOptions};
use fixtures::fleet::{Fleet, FleetImage};
use fixtures::sshd::DebianHost;
use livchat_core::{Config, CreateServerParams, Orchestrator, OrchestratorBuilder};
use livchat_remote::setup::{DockerSource, RunOptions, SetupConfig, StepState, plan, run_plan};
use livchat_remote::{HostKeyPolicy, SshConnector, SshTarget};
use livchat_store::{JobRecord, JobStatus, MemoryJobLogs, MemorySecrets, MemoryStore, SecretStore};
use secrecy::SecretString;

/// Change when the bake changes: the cached image is keyed by it.
const IMAGE_KEY: &str = "setup-packages-v1";
/// The setup plan's steps that the image has already run.
const BAKED_STEPS: [&str; 3] = ["apt_update", "base_packages", "docker_packages"];

fn main() {
    let n = env_usize("LIVCHAT_BENCH_SERVERS", 100);
    let concurrency = env_usize("LIVCHAT_BENCH_CONCURRENCY", n);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let bake_started = Instant::now();
    let Some(image) = FleetImage::get_or_bake(IMAGE_KEY, |host| rt.block_on(bake(host))) else {
        eprintln!("skipped: the fleet tools (debootstrap, ip, unshare, setpriv, sshd) are missing");
        return;
    };
    eprintln!(
        "image {} ready in {:.1?}",
        image.rootfs().display(),
        bake_started.elapsed()
    );
    let mut sizes = vec![1];
    if n != 1 {
        sizes.push(n);
    }
    let mut rounds = Vec::new();
    for size in sizes {
        let round = run_round(&rt, &image, size, concurrency.clamp(1, size));
        round.print();
        let failed = !round.failures.is_empty();
        rounds.push(round);
        if failed {
            break;
        }
    }
    println!();
    println!(
        "| servers | concurrency | create (wall) | setup (wall) | total | create p50/p95 | setup p50/p95 | setup re-run (wall) | re-run p50/p95 | bench VmHWM | hosts peak (cgroup) | hosts RSS sum (peak sample) |"
    );
    println!(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in &rounds {
        r.print_row();
    }
    let failures: usize = rounds.iter().map(|r| r.failures.len()).sum();
    if failures > 0 {
        eprintln!("{failures} server(s) failed; see above");
        std::process::exit(1);
    }
}

/// Runs the setup plan's package steps for real on a host that reaches Debian's mirror.
async fn bake(host: &DebianHost) {
    let target = SshTarget {
        name: "fleet-bake".into(),
        host: host.host(),
        port: host.port(),
        user: host.user().into(),
    };
    let key = SecretString::from(host.client_private_key().to_owned());
    let (exec, _) = SshConnector::default()
        .connect_ssh(&target, &key, &HostKeyPolicy::TrustOnFirstUse)
        .await
        .unwrap_or_else(|e| panic!("bake: connect: {e}\n{}", host.log()));
    let os = livchat_remote::detect_os(exec.as_ref()).await.unwrap();
    let mut config = SetupConfig::new("fleet-bake", host.addr().into()).unwrap();
    config.docker = DockerSource::Distribution;
    let steps: Vec<_> = plan(&config, &os)
        .unwrap()
        .into_iter()
        .filter(|s| BAKED_STEPS.contains(&s.id))
        .collect();
    assert_eq!(
        steps.len(),
        BAKED_STEPS.len(),
        "the plan changed its step ids"
    );
    let report = run_plan(
        exec.as_ref(),
        &steps,
        RunOptions {
            step_timeout: Duration::from_secs(900),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("bake: {e}"));
    assert!(
        report.steps.iter().all(|(_, s)| *s == StepState::Ran),
        "bake: {:?}",
        report.steps
    );
    eprintln!("baked {:?} in {:.1?}", report.steps, report.elapsed);
}

struct Round {
    n: usize,
    concurrency: usize,
    fleet_start: Duration,
    create: Duration,
    setup: Duration,
    create_each: Vec<Duration>,
    setup_each: Vec<Duration>,
    rerun: Duration,
    rerun_each: Vec<Duration>,
    bench_hwm: u64,
    hosts_peak: Option<u64>,
    hosts_rss_peak: u64,
    host_processes: usize,
    teardown: Duration,
    failures: Vec<String>,
}

impl Round {
    fn print(&self) {
        eprintln!(
            "N={}: fleet start {:.1?}; create {:.1?} (p50 {:.1?}, p95 {:.1?}); setup {:.1?} (p50 {:.1?}, p95 {:.1?}); total {:.1?}; setup re-run {:.3?} (p50 {:.3?}, p95 {:.3?}); bench VmHWM {}; hosts peak {}, RSS sum peak {} over {} processes; teardown {:.1?}; {} failure(s)",
            self.n,
            self.fleet_start,
            self.create,
            percentile(&self.create_each, 50),
            percentile(&self.create_each, 95),
            self.setup,
            percentile(&self.setup_each, 50),
            percentile(&self.setup_each, 95),
            self.create + self.setup,
            self.rerun,
            percentile(&self.rerun_each, 50),
            percentile(&self.rerun_each, 95),
            mib(self.bench_hwm),
            self.hosts_peak.map_or("n/a".into(), mib),
            mib(self.hosts_rss_peak),
            self.host_processes,
            self.teardown,
            self.failures.len()
        );
        for f in &self.failures {
            eprintln!("FAILED {f}");
        }
    }

    fn print_row(&self) {
        println!(
            "| {} | {} | {:.1} s | {:.1} s | {:.1} s | {:.1} / {:.1} s | {:.1} / {:.1} s | {:.3} s | {:.3} / {:.3} s | {} | {} | {} |",
            self.n,
            self.concurrency,
            self.create.as_secs_f64(),
            self.setup.as_secs_f64(),
            (self.create + self.setup).as_secs_f64(),
            percentile(&self.create_each, 50).as_secs_f64(),
            percentile(&self.create_each, 95).as_secs_f64(),
            percentile(&self.setup_each, 50).as_secs_f64(),
            percentile(&self.setup_each, 95).as_secs_f64(),
            self.rerun.as_secs_f64(),
            percentile(&self.rerun_each, 50).as_secs_f64(),
            percentile(&self.rerun_each, 95).as_secs_f64(),
            mib(self.bench_hwm),
            self.hosts_peak.map_or("n/a".into(), mib),
            mib(self.hosts_rss_peak),
        );
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The peak resident set size of this process (`VmHWM`), in bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn run_round(
    rt: &tokio::runtime::Runtime,
    image: &FleetImage,
    n: usize,
    concurrency: usize,
) -> Round {
    // Resets VmHWM to the current RSS (Linux >= 4.0), so each round reports its own peak.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let fleet =
        Arc::new(Fleet::start(image, n).expect("fleet tools are present: the image was baked"));
    let fleet_start = started.elapsed();
    eprintln!("N={n}: {n} hosts up in {fleet_start:.1?}");

    // Sample the hosts' RSS sum while they work (the cgroup's own peak is kept by the kernel).
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let fleet = fleet.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            let mut processes = 0usize;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(fleet.rss_bytes());
                processes = processes.max(fleet.process_count());
                std::thread::sleep(Duration::from_secs(2));
            }
            (peak.max(fleet.rss_bytes()), processes)
        })
    };

    let names: Vec<String> = (0..n).map(|i| format!("fleet-{i:03}")).collect();
    let mut failures = Vec::new();
    let (create, setup, create_each, setup_each, rerun, rerun_each) = rt.block_on(async {
        let hetzner = {
            let weak = Arc::downgrade(&fleet);
            let hook = Arc::new(move |c: &CreatedServer| {
                let fleet = weak.upgrade().expect("the fleet outlives the fake Hetzner");
                BackingHost {
                    ipv4: fleet.claim(&c.name, &c.ssh_public_keys).addr(),
                }
            });
            FakeHetzner::start_with(HetznerOptions {
                on_server_created: Some(hook),
                server_limit: n + 10,
                ..HetznerOptions::default()
            })
            .await
        };
        let cloudflare = FakeCloudflare::start().await;
        let orch = orchestrator(&hetzner, &cloudflare);

        let t = Instant::now();
        let created = orch
            .for_each_server(&names, concurrency, |name| {
                let orch = orch.clone();
                async move {
                    let job = orch.start_create_server(CreateServerParams {
                        name,
                        server_type: "cx22".into(),
                        location: "fsn1".into(),
                        image: "debian-12".into(),
                        keep_on_failure: false,
                    })?;
                    let t = Instant::now();
                    let done = orch.run_job(&job.id).await?;
                    Ok((done, t.elapsed()))
                }
            })
            .await;
        let create = t.elapsed();
        let create_each = collect(&orch, "create", created, &mut failures);

        // Only servers whose create completed are set up; the others already failed the run.
        let ready: Vec<String> = names
            .iter()
            .filter(|n| {
                !failures
                    .iter()
                    .any(|f| f.starts_with(&format!("create {n}:")))
            })
            .cloned()
            .collect();
        let t = Instant::now();
        let set_up = orch
            .for_each_server(&ready, concurrency, |name| {
                let orch = orch.clone();
                async move {
                    let t = Instant::now();
                    let done = setup_job(&orch, name).await?;
                    Ok((done, t.elapsed()))
                }
            })
            .await;
        let setup = t.elapsed();
        let setup_each = collect(&orch, "setup", set_up, &mut failures);
        let set_up: Vec<String> = ready
            .iter()
            .filter(|n| {
                !failures
                    .iter()
                    .any(|f| f.starts_with(&format!("setup {n}:")))
            })
            .cloned()
            .collect();

        verify(
            &orch,
            &fleet,
            &cloudflare,
            &names,
            concurrency,
            &mut failures,
        )
        .await;

        // The idempotent re-run on every set-up server at once: nothing left to do on the
        // hosts, so this is the orchestrator's own cost (checks in one round trip per server,
        // job records), which should stay near the one-server figure.
        let t = Instant::now();
        let rerun_jobs = orch
            .for_each_server(&set_up, concurrency, |name| {
                let orch = orch.clone();
                async move {
                    let t = Instant::now();
                    let done = setup_job(&orch, name).await?;
                    Ok((done, t.elapsed()))
                }
            })
            .await;
        let rerun = t.elapsed();
        let rerun_each = collect(&orch, "re-run", rerun_jobs, &mut failures);
        (create, setup, create_each, setup_each, rerun, rerun_each)
    });
    let bench_hwm = vm_hwm();
    stop.store(true, Ordering::Relaxed);
    let (hosts_rss_peak, host_processes) = sampler.join().expect("the RSS sampler");
    let hosts_peak = fleet.memory_peak_bytes();
    let t = Instant::now();
    drop(Arc::into_inner(fleet).expect("only the round holds the fleet now"));
    let teardown = t.elapsed();
    Round {
        n,
        concurrency,
        fleet_start,
        create,
        setup,
        create_each,
        setup_each,
        rerun,
        rerun_each,
        bench_hwm,
        hosts_peak,
        hosts_rss_peak,
        host_processes,
        teardown,
        failures,
    }
}

/// The orchestrator as the CLI would build it, with the fakes' endpoints, an in-memory store
/// and vault, the real SSH connector (port 22, user root, as recorded) and Debian's Docker.
fn orchestrator(hetzner: &FakeHetzner, cloudflare: &FakeCloudflare) -> Arc<Orchestrator> {
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::new());
    secrets
        .set(
            livchat_core::HETZNER_TOKEN,
            SecretString::from(hetzner.token().to_string()),
        )
        .unwrap();
    secrets
        .set(
            livchat_core::orchestrator::CLOUDFLARE_TOKEN,
            SecretString::from(cloudflare.token().to_string()),
        )
        .unwrap();
    let mut config = Config::new("/nonexistent-livchat-home");
    // download.docker.com is unreachable from build machines.
    config.docker_source = DockerSource::Distribution;
    config.ssh_wait = Duration::from_secs(120);
    let hetzner_url = hetzner.url();
    let cloudflare_url = cloudflare.url();
    OrchestratorBuilder::new(
        config,
        store,
        secrets,
        Arc::new(MemoryJobLogs::default()),
        livchat_apps::Catalog::builtin().unwrap(),
    )
    .provider_factory(Arc::new(move |token| {
        let config = livchat_providers::HetznerConfig::from_lookup(|k| {
            (k == "LIVCHAT_HETZNER_ENDPOINT").then(|| hetzner_url.clone())
        });
        Ok(
            Arc::new(livchat_providers::HetznerProvider::new(token, config).unwrap())
                as Arc<dyn livchat_providers::Provider>,
        )
    }))
    .dns_factory(common::cloudflare_at(cloudflare_url))
    .connector(Arc::new(SshConnector::default()))
    .build()
}

/// Per-server durations of the jobs that completed; a failure line for each other one.
fn collect(
    orch: &Orchestrator,
    phase: &str,
    results: Vec<(String, livchat_core::Result<(JobRecord, Duration)>)>,
    failures: &mut Vec<String>,
) -> Vec<Duration> {
    let mut each = Vec::new();
    for (name, result) in results {
        match result {
            Ok((job, took)) if job.status == JobStatus::Completed => each.push(took),
            Ok((job, _)) => {
                let tail: Vec<String> = orch
                    .job_logs(&job.id, 0)
                    .unwrap_or_default()
                    .into_iter()
                    .rev()
                    .take(5)
                    .rev()
                    .map(|l| format!("    {:?} {}", l.level, l.message))
                    .collect();
                failures.push(format!(
                    "{phase} {name}: job {} {:?} at {:?}: {}\n{}",
                    job.id,
                    job.status,
                    job.current_step,
                    job.error.unwrap_or_default(),
                    tail.join("\n")
                ));
            }
            Err(e) => failures.push(format!("{phase} {name}: {e}")),
        }
    }
    each
}

/// Independent checks that the work happened: the pinned host key is the host's own, Swarm is
/// active on the host's address, the hostname is the server's name, and its A record exists.
async fn verify(
    orch: &Arc<Orchestrator>,
    fleet: &Fleet,
    cloudflare: &FakeCloudflare,
    names: &[String],
    concurrency: usize,
    failures: &mut Vec<String>,
) {
    let state = orch.state().unwrap();
    let records = cloudflare.records(ZONE_ID);
    let failed = Mutex::new(Vec::new());
    let checks = orch
        .for_each_server(names, concurrency, |name| {
            let orch = orch.clone();
            let failed = &failed;
            let state = &state;
            let records = &records;
            async move {
                let Some(host) = fleet.host_of(&name) else {
                    return Ok(());
                };
                let mut problems = Vec::new();
                let pinned = state
                    .servers
                    .get(&name)
                    .and_then(|s| s.host_key_fingerprint.clone());
                if pinned.as_deref() != Some(host.host_key_fingerprint()) {
                    problems.push(format!(
                        "pinned {pinned:?}, host has {}",
                        host.host_key_fingerprint()
                    ));
                }
                let want = (
                    "A".to_string(),
                    format!("{name}.{ZONE}"),
                    host.addr().to_string(),
                );
                if !records.contains(&want) {
                    problems.push(format!("no DNS record {want:?}"));
                }
                let run = |argv: &[&str]| {
                    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
                    let orch = orch.clone();
                    let name = name.clone();
                    async move {
                        orch.server_exec(&name, &argv, Default::default())
                            .await
                            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    }
                };
                let swarm = run(&[
                    "docker",
                    "info",
                    "--format",
                    "{{.Swarm.LocalNodeState}} {{.Swarm.NodeAddr}}",
                ])
                .await?;
                if swarm != format!("active {}", host.addr()) {
                    problems.push(format!("swarm: {swarm:?}"));
                }
                let hostname = run(&["hostname"]).await?;
                if hostname != name {
                    problems.push(format!("hostname {hostname:?}"));
                }
                if !problems.is_empty() {
                    failed
                        .lock()
                        .unwrap()
                        .push(format!("verify {name}: {}", problems.join("; ")));
                }
                Ok(())
            }
        })
        .await;
    for (name, result) in checks {
        if let Err(e) = result {
            failures.push(format!("verify {name}: {e}"));
        }
    }
    failures.extend(failed.into_inner().unwrap());
}
