//! Issue #16, for real: two Debian 12 hosts (`fixtures::sshd::DebianHost`, each in its own
//! network namespace, reaching the other only through its own address, routed by this machine
//! without NAT), both set up by the real setup job, then joined into one Swarm by the join job
//! over real SSH. The demo's guestbook runs on the manager with its PostgreSQL pinned to the
//! worker: the app reaches its database across nodes over the overlay (VXLAN between the
//! namespaces), and the database's volume pins it so leaving is refused until forced. ufw on
//! each node admits only the other node on the Swarm ports.
//!
//! DNS names are answered by a resolver in this file (manual DNS mode): no DNS server is the
//! subject here. Everything else is the product's code path.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness around the core: it places image tarballs in the hosts' file systems; the no-I/O rule (clippy.toml) is for the library"
)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fixtures::sshd::DebianHost;
use livchat_core::ops::{AppStatus, Operation};
use livchat_core::{
    AddServer, HostKeyTrust, JoinParams, LeaveParams, Orchestrator, OrchestratorBuilder, Placement,
    SetupServerParams,
};
use livchat_providers::{NameResolver, ResolveError};
use livchat_remote::setup::DockerSource;
use livchat_remote::swarm::cluster::swarm_rules_in_status;
use livchat_store::{
    DnsMode, JobRecord, JobStatus, MemoryJobLogs, MemorySecrets, MemoryStore, NodeRole,
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const MANAGER: &str = "mgr-1";
const WORKER: &str = "wkr-1";

/// Every name resolves to the manager, where Traefik runs and DNS would point.
struct ToManager(Ipv4Addr);

#[async_trait]
impl NameResolver for ToManager {
    async fn resolve_a(&self, _name: &str) -> Result<Vec<Ipv4Addr>, ResolveError> {
        Ok(vec![self.0])
    }
}

async fn finished(orch: &Arc<Orchestrator>, job: JobRecord) -> JobRecord {
    let done = orch.run_job(&job.id).await.unwrap();
    let log: Vec<String> = orch
        .job_logs(&job.id, 0)
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    eprintln!(
        "--- job {} ({}): {:?}\n{}",
        job.id,
        job.kind,
        done.status,
        log.join("\n")
    );
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    done
}

async fn run(orch: &Arc<Orchestrator>, server: &str, argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let out = orch
        .server_exec(server, &argv, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        out.success(),
        "{argv:?} on {server}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The image tarballs, placed in both hosts' file systems and imported by their engines (what
/// a registry pull does on real servers).
async fn import_images(orch: &Arc<Orchestrator>, hosts: &[(&str, &DebianHost)]) {
    let busybox = fixtures::images::busybox_tarball()
        .unwrap()
        .expect("busybox");
    let pgredis = fixtures::images::pgredis_tarball_built()
        .unwrap()
        .expect("pgredis");
    for (name, host) in hosts {
        let dir = host.rootfs().join("var/tmp/livchat-images");
        std::fs::create_dir_all(&dir).unwrap();
        for (tarball, file, tag, path) in [
            (
                &busybox,
                "busybox.tar",
                fixtures::images::BUSYBOX,
                fixtures::images::BUSYBOX_PATH,
            ),
            (
                &pgredis,
                "pgredis.tar",
                fixtures::images::PGREDIS,
                fixtures::images::PGREDIS_PATH,
            ),
        ] {
            std::fs::copy(tarball, dir.join(file)).unwrap();
            let file = format!("/var/tmp/livchat-images/{file}");
            let env = format!("ENV PATH={path}");
            run(orch, name, &["docker", "import", "-c", &env, &file, tag]).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_join_run_guestbook_across_nodes_and_leave() {
    let Some(manager) = DebianHost::start() else {
        return;
    };
    let Some(worker) = DebianHost::start() else {
        return;
    };
    let mut config = livchat_core::Config::new("/nonexistent-livchat-home");
    // download.docker.com is unreachable from build machines.
    config.docker_source = DockerSource::Distribution;
    // No IPVS on build machines: services reach each other by DNS round robin.
    config.endpoint_mode = livchat_apps::EndpointMode::Dnsrr;
    config.health_timeout = Duration::from_secs(240);
    let store = Arc::new(MemoryStore::new());
    let orch = OrchestratorBuilder::new(
        config,
        store.clone(),
        Arc::new(MemorySecrets::new()),
        Arc::new(MemoryJobLogs::default()),
        livchat_apps::Catalog::load(fixtures::sandbox::demo_apps_dir().to_str()).unwrap(),
    )
    .resolver(Arc::new(ToManager(manager.addr())))
    .build();
    orch.setting_set("email", "ops@example.com").unwrap();
    for (name, host) in [(MANAGER, &manager), (WORKER, &worker)] {
        orch.server_add(AddServer {
            name: name.into(),
            host: host.host(),
            port: host.port(),
            user: host.user().into(),
            private_key: Some(SecretString::from(host.client_private_key().to_owned())),
            key_passphrase: None,
            ssh_agent: false,
            host_key: Some(HostKeyTrust::Expect(host.host_key_fingerprint().into())),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", host.log()));
        let job = orch
            .start_setup_server(SetupServerParams {
                name: name.into(),
                zone: "example.com".into(),
                subdomain: None,
                dns: DnsMode::Manual,
            })
            .unwrap();
        finished(&orch, job).await;
    }
    import_images(&orch, &[(MANAGER, &manager), (WORKER, &worker)]).await;

    // Join: the worker leaves its own one-node swarm and joins the manager's.
    let join = JoinParams {
        server: WORKER.into(),
        manager: MANAGER.into(),
        role: NodeRole::Worker,
        force: false,
    };
    let plan = orch.plan_join(&join).unwrap();
    eprintln!("join plan: {plan:#?}");
    finished(&orch, orch.start_join(&join).unwrap()).await;
    let nodes = run(
        &orch,
        MANAGER,
        &[
            "docker",
            "node",
            "ls",
            "--format",
            "{{.Hostname}} {{.Status}}",
        ],
    )
    .await;
    assert_eq!(nodes.lines().count(), 2, "{nodes}");

    // ufw on each node admits the other node, and only it, on the Swarm ports.
    for (name, peer) in [(MANAGER, worker.addr()), (WORKER, manager.addr())] {
        let status = run(&orch, name, &["ufw", "status"]).await;
        let rules = swarm_rules_in_status(&status);
        eprintln!("ufw on {name}:\n{status}");
        assert_eq!(rules.len(), 4, "{status}");
        for rule in &rules {
            assert!(rule.ends_with(&format!("ALLOW {peer}")), "{name}: {rule}");
        }
    }

    // Postgres pinned to the worker, the guestbook (and the infrastructure) on the manager.
    let on = |node: &str| Placement {
        node: Some(node.into()),
        node_label: None,
    };
    let job = orch
        .start_deploy_placed(MANAGER, "postgres", &[], false, false, on(WORKER))
        .unwrap();
    finished(&orch, job).await;
    let job = orch
        .start_deploy_placed(MANAGER, "guestbook", &[], false, false, on(MANAGER))
        .unwrap();
    finished(&orch, job).await;

    // Where each task runs, as `app status` shows it.
    let status = AppStatus {
        server: MANAGER.into(),
        app: None,
    }
    .run(&orch)
    .await
    .unwrap();
    let nodes_of = |app: &str, service: &str| -> Vec<String> {
        status
            .iter()
            .find(|v| v.app == app)
            .and_then(|v| v.services.iter().find(|s| s.name == service))
            .map(|s| s.nodes.clone())
            .unwrap_or_else(|| panic!("no {app}/{service} in {status:#?}"))
    };
    assert_eq!(nodes_of("postgres", "postgres"), [WORKER]);
    assert_eq!(nodes_of("guestbook", "app"), [MANAGER]);

    // The guestbook on the manager writes rows into the database on the worker, over the
    // overlay: counted on the worker, from the address the manager's task has there.
    let mut rows = 0;
    for _ in 0..30 {
        let out = run(
            &orch,
            WORKER,
            &[
                "sh",
                "-c",
                "docker exec \"$(docker ps -q -f label=com.docker.swarm.service.name=postgres_postgres | head -n1)\" psql -U postgres -d guestbook -tAc 'SELECT count(*), max(host(addr)) FROM visits'",
            ],
        )
        .await;
        eprintln!("visits on the worker: {out}");
        rows = out
            .split('|')
            .next()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0);
        if rows >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(rows >= 2, "the guestbook wrote no rows across nodes");

    // Leaving is refused while the worker holds Postgres's pinned volume, then forced.
    let leave = |force| LeaveParams {
        server: WORKER.into(),
        force,
    };
    let err = orch.start_leave(&leave(false)).unwrap_err();
    assert!(err.to_string().contains("postgres"), "{err}");
    finished(&orch, orch.start_leave(&leave(true)).unwrap()).await;
    let nodes = run(
        &orch,
        MANAGER,
        &["docker", "node", "ls", "--format", "{{.Hostname}}"],
    )
    .await;
    assert_eq!(nodes.trim(), MANAGER, "{nodes}");
    for name in [MANAGER, WORKER] {
        let status = run(&orch, name, &["ufw", "status"]).await;
        assert!(
            swarm_rules_in_status(&status).is_empty(),
            "{name}: {status}"
        );
    }
    assert!(store_has_no_cluster(&orch));
    let own = run(
        &orch,
        WORKER,
        &["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
    )
    .await;
    assert_eq!(own.trim(), "active", "the worker is a one-node swarm again");
}

fn store_has_no_cluster(orch: &Orchestrator) -> bool {
    orch.state().unwrap().clusters.is_empty()
}
