//! Swarm clusters (issue #16): join and leave as jobs against scripted executors, one per
//! server, each with its own address; the refusals, plans and placement against mocks with no
//! expectation (any call would panic).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use livchat_core::ops::{Operation, ServerList};
use livchat_core::{CoreError, JoinParams, LeaveParams, Placement};
use livchat_remote::{Connected, RemoteExecutor};
use livchat_store::{ClusterNode, ClusterRecord, JobStatus, NodeRole, ProviderKind, Store};

use super::support::*;

const TOKEN: &str = "SWMTKN-1-0123456789abcdef-supersecret";

fn server_at(name: &str, host: &str) -> livchat_store::ServerRecord {
    let mut s = ready_server(name);
    s.host = host.into();
    s
}

/// Two set-up servers: `mgr` at 10.0.0.1, `wkr` at 10.0.0.2 (added by hand, so deleting it
/// touches no cloud).
fn two_servers() -> World {
    let world = World::new();
    world.put_server(server_at("mgr", "10.0.0.1"));
    let mut wkr = server_at("wkr", "10.0.0.2");
    wkr.provider = ProviderKind::Manual;
    wkr.provider_id = None;
    wkr.dns = None;
    world.put_server(wkr);
    world
}

fn node(role: NodeRole, id: &str, name: &str, extra: &[(&str, &str)]) -> ClusterNode {
    let mut labels: BTreeMap<String, String> =
        [("livchat.server".to_string(), name.to_string())].into();
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ClusterNode {
        role,
        node_id: Some(id.into()),
        labels,
    }
}

/// `wkr` already joined `mgr`'s cluster; `wkr_labels` are its extra node labels.
fn put_cluster(world: &World, wkr_labels: &[(&str, &str)]) {
    let cluster = ClusterRecord {
        manager: "mgr".into(),
        nodes: [
            (
                "mgr".to_string(),
                node(NodeRole::Manager, "MGRID", "mgr", &[]),
            ),
            (
                "wkr".to_string(),
                node(NodeRole::Worker, "WKRID", "wkr", wkr_labels),
            ),
        ]
        .into(),
    };
    world
        .store
        .update("test cluster", &mut |s| {
            s.clusters.insert("mgr".into(), cluster.clone());
            Ok(())
        })
        .unwrap();
}

/// Every command run on any server, as `server: command line`, and what each got on stdin.
#[derive(Default, Clone)]
struct Swarm {
    lines: Arc<Mutex<Vec<String>>>,
    stdins: Arc<Mutex<Vec<String>>>,
    /// Whether `wkr` is in `mgr`'s swarm, and whether the manager lists it (a node that left
    /// stays listed, down, until it is removed).
    joined: Arc<Mutex<bool>>,
    listed: Arc<Mutex<bool>>,
    /// `wkr` left every swarm (until it inits its own again).
    left: Arc<Mutex<bool>>,
}

impl Swarm {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn on(&self, server: &str) -> Vec<String> {
        let prefix = format!("{server}: ");
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    /// A scripted two-node swarm behind the connector: each connection gets an executor that
    /// answers as its server would.
    fn connect(&self, connector: &mut MockConnector, joined: bool) {
        *self.joined.lock().unwrap() = joined;
        *self.listed.lock().unwrap() = joined;
        let this = self.clone();
        connector.expect_connect().returning(move |target, _, _| {
            let name = target.name.clone();
            let this = this.clone();
            let (exec, _) = scripted_executor(move |cmd, stdin| {
                let line = cmd.to_string();
                this.lines.lock().unwrap().push(format!("{name}: {line}"));
                if !stdin.is_empty() {
                    this.stdins.lock().unwrap().push(stdin.to_string());
                }
                let mut joined = this.joined.lock().unwrap();
                let mut listed = this.listed.lock().unwrap();
                let mut left = this.left.lock().unwrap();
                let out = match (name.as_str(), line.as_str()) {
                    ("mgr", l) if l.starts_with("docker info") => "active MGRID\n".to_string(),
                    ("wkr", l) if l.starts_with("docker info") => match (*joined, *left) {
                        (true, _) => "active WKRID\n",
                        (false, true) => "inactive \n",
                        (false, false) => "active OWNID\n",
                    }
                    .to_string(),
                    ("mgr", l) if l.starts_with("docker node ls") => {
                        let mut s = r#"{"ID":"MGRID","Hostname":"mgr","ManagerStatus":"Leader"}"#
                            .to_string();
                        if *listed {
                            s.push_str("\n{\"ID\":\"WKRID\",\"Hostname\":\"wkr\"}");
                        }
                        s
                    }
                    ("mgr", "docker swarm join-token -q worker") => format!("{TOKEN}\n"),
                    ("mgr", "docker node rm --force -- WKRID") => {
                        *listed = false;
                        String::new()
                    }
                    ("wkr", l) if l.starts_with("curl ") => {
                        *joined = true;
                        *listed = true;
                        "{}".to_string()
                    }
                    ("wkr", "docker swarm leave") => {
                        *joined = false;
                        *left = true;
                        String::new()
                    }
                    ("wkr", l) if l.starts_with("docker swarm init") => {
                        *left = false;
                        String::new()
                    }
                    _ => String::new(),
                };
                Ok(output(0, &out, ""))
            });
            let executor: Arc<dyn RemoteExecutor> = Arc::new(exec);
            Ok(Connected {
                executor,
                host_key_fingerprint: FP.to_string(),
            })
        });
    }
}

/// `mgr` was created at Hetzner: its firewall is set once, with the Swarm ports open to
/// `peers` only (none: no Swarm rule at all).
fn sets_mgr_firewall(mocks: &mut Mocks, peers: &'static [&'static str]) {
    mocks
        .provider
        .expect_ensure_firewall()
        .withf(move |spec, id| {
            let want: Vec<std::net::IpAddr> = peers.iter().map(|p| p.parse().unwrap()).collect();
            spec.name == "livchat-mgr"
                && id.0 == "42"
                && spec.tcp_ports == [22, 80, 443]
                && spec.peer_rules.len() == if peers.is_empty() { 0 } else { 4 }
                && spec.peer_rules.iter().all(|r| r.sources == want)
        })
        .times(1)
        .returning(|spec, id| {
            Ok(livchat_providers::Firewall {
                id: 7,
                name: spec.name.clone(),
                tcp_ports: spec.tcp_ports.clone(),
                applied_to: vec![id.clone()],
            })
        });
}

fn join(role: NodeRole) -> JoinParams {
    JoinParams {
        server: "wkr".into(),
        manager: "mgr".into(),
        role,
        force: false,
    }
}

#[tokio::test]
async fn join_sends_the_token_only_on_stdin_and_opens_the_swarm_ports_to_the_peer_only() {
    let world = two_servers();
    let swarm = Swarm::default();
    let mut mocks = Mocks::default();
    swarm.connect(&mut mocks.connector, false);
    sets_mgr_firewall(&mut mocks, &["10.0.0.2"]);
    let orch = world.build(mocks);
    let job = orch.start_join(&join(NodeRole::Worker)).unwrap();
    assert_eq!(
        job.server.as_deref(),
        Some("mgr"),
        "a join runs on the cluster's manager"
    );
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);

    let lines = swarm.lines();
    assert!(
        lines.iter().all(|l| !l.contains("SWMTKN")),
        "the token reached a command line: {lines:#?}"
    );
    let stdins = swarm.stdins.lock().unwrap().clone();
    assert!(
        stdins
            .iter()
            .any(|s| s.contains(TOKEN) && s.contains("10.0.0.1:2377")),
        "the join body carries the token to the manager's address: {stdins:?}"
    );
    assert!(!log_text(&orch, &job.id).contains("SWMTKN"));
    assert!(!format!("{:?}", orch.jobs().get(&job.id).unwrap()).contains("SWMTKN"));

    let swarm_rules = |server: &str, peer: &str| -> Vec<String> {
        swarm
            .on(server)
            .into_iter()
            .filter(|l| l.starts_with("ufw allow"))
            .inspect(|l| assert!(l.contains(&format!("from {peer} ")), "{server}: {l}"))
            .collect()
    };
    assert_eq!(
        swarm_rules("mgr", "10.0.0.2"),
        [
            "ufw allow proto tcp from 10.0.0.2 to any port 2377",
            "ufw allow proto tcp from 10.0.0.2 to any port 7946",
            "ufw allow proto udp from 10.0.0.2 to any port 7946",
            "ufw allow proto udp from 10.0.0.2 to any port 4789",
        ]
    );
    assert_eq!(swarm_rules("wkr", "10.0.0.1").len(), 4);
    assert!(
        swarm
            .on("wkr")
            .contains(&"docker swarm leave --force".to_string())
    );
    assert!(
        swarm
            .on("mgr")
            .contains(&"docker node update --label-add 'livchat.server=wkr' -- WKRID".to_string()),
        "{:#?}",
        swarm.lines()
    );

    let cluster = world.state().clusters["mgr"].clone();
    assert_eq!(cluster.nodes["wkr"].role, NodeRole::Worker);
    assert_eq!(cluster.nodes["wkr"].node_id.as_deref(), Some("WKRID"));
    assert_eq!(cluster.nodes["mgr"].role, NodeRole::Manager);
    let views = ServerList {}.run(&orch).await.unwrap();
    let wkr = views.iter().find(|v| v.name == "wkr").unwrap();
    assert_eq!(wkr.cluster.as_deref(), Some("mgr"));
    assert_eq!(wkr.cluster_role, Some(NodeRole::Worker));
    verify(orch);
}

#[tokio::test]
async fn a_second_manager_is_refused_as_an_even_count_unless_forced() {
    let world = two_servers();
    let orch = world.build(Mocks::default());
    for err in [
        orch.start_join(&join(NodeRole::Manager)).unwrap_err(),
        orch.plan_join(&join(NodeRole::Manager)).unwrap_err(),
    ] {
        assert!(matches!(err, CoreError::Refused(_)), "{err}");
        assert!(err.to_string().contains("2 managers"), "{err}");
    }
    let forced = JoinParams {
        force: true,
        ..join(NodeRole::Manager)
    };
    assert!(orch.plan_join(&forced).is_ok());
    assert!(world.state().clusters.is_empty());
    assert!(world.jobs().is_empty());
    verify(orch);
}

#[tokio::test]
async fn a_deploy_to_a_worker_is_refused_naming_the_manager() {
    let world = two_servers();
    put_cluster(&world, &[]);
    let orch = world.build(Mocks::default());
    let err = orch.start_deploy_app("wkr", "n8n", &[]).unwrap_err();
    assert!(matches!(err, CoreError::Refused(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("cluster mgr") && text.contains("--node wkr"),
        "{text}"
    );
    assert!(world.jobs().is_empty());
    verify(orch);
}

#[tokio::test]
async fn leave_is_refused_while_the_node_holds_a_pinned_database_then_forced_drains_and_removes_it()
{
    let world = two_servers();
    put_cluster(&world, &[("livchat.data.postgres", "true")]);
    world.put_deployment("mgr", "postgres", &[]);
    let swarm = Swarm::default();
    let mut mocks = Mocks::default();
    swarm.connect(&mut mocks.connector, true);
    sets_mgr_firewall(&mut mocks, &[]);
    let orch = world.build(mocks);
    let leave = |force| LeaveParams {
        server: "wkr".into(),
        force,
    };
    let err = orch.start_leave(&leave(false)).unwrap_err();
    assert!(err.to_string().contains("postgres"), "{err}");
    assert!(orch.plan_leave(&leave(false)).is_err());
    assert!(swarm.lines().is_empty(), "a refusal touches nothing");

    let job = orch.start_leave(&leave(true)).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let mgr = swarm.on("mgr");
    let drain = mgr
        .iter()
        .position(|l| l == "docker node update --availability drain -- WKRID")
        .expect("drained");
    let rm = mgr
        .iter()
        .position(|l| l == "docker node rm --force -- WKRID")
        .expect("removed");
    assert!(drain < rm);
    let wkr = swarm.on("wkr");
    assert!(wkr.contains(&"docker swarm leave".to_string()));
    assert!(wkr.contains(&"docker swarm init --advertise-addr 10.0.0.2".to_string()));
    assert!(wkr.contains(&"ufw delete allow proto udp from 10.0.0.1 to any port 4789".to_string()));
    assert!(mgr.contains(&"ufw delete allow proto tcp from 10.0.0.2 to any port 2377".to_string()));
    assert!(
        world.state().clusters.is_empty(),
        "a one-node cluster is no cluster"
    );
    verify(orch);
}

#[tokio::test]
async fn deleting_a_cluster_node_drains_and_removes_it_before_the_server_goes() {
    let world = two_servers();
    put_cluster(&world, &[]);
    let swarm = Swarm::default();
    let mut mocks = Mocks::default();
    swarm.connect(&mut mocks.connector, true);
    sets_mgr_firewall(&mut mocks, &[]);
    let orch = world.build(mocks);
    let plan = orch.plan_delete_server("wkr", false).unwrap();
    assert_eq!(plan.steps[0], "cluster:drain");
    assert!(
        plan.resources
            .iter()
            .any(|r| r.contains("remove it from cluster mgr"))
    );
    let err = orch.start_delete_server("mgr", false).unwrap_err();
    assert!(err.to_string().contains("manager"), "{err}");

    let job = orch.start_delete_server("wkr", false).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(
        swarm
            .on("mgr")
            .contains(&"docker node rm --force -- WKRID".to_string())
    );
    let state = world.state();
    assert!(state.clusters.is_empty());
    assert!(!state.servers.contains_key("wkr"));
    verify(orch);
}

#[tokio::test]
async fn the_plan_pins_a_database_to_the_chosen_node_and_traefik_to_the_manager() {
    let world = two_servers();
    put_cluster(&world, &[]);
    let orch = world.build(Mocks::default());
    let placement = Placement {
        node: Some("wkr".into()),
        node_label: None,
    };
    let plan = orch
        .plan_deploy_placed("mgr", "postgres", &[], placement)
        .unwrap();
    let compose = |app: &str| {
        plan.stacks
            .iter()
            .find(|s| s.app == app)
            .unwrap_or_else(|| panic!("no stack {app}: {:?}", plan.stacks))
            .compose
            .clone()
    };
    assert!(
        compose("postgres").contains("node.labels.livchat.data.postgres == true"),
        "{}",
        compose("postgres")
    );
    let infra = plan
        .stacks
        .iter()
        .find(|s| s.app != "postgres")
        .expect("the infrastructure bundle is deployed first");
    assert!(
        infra.compose.contains("node.role == manager"),
        "{}",
        infra.compose
    );

    let elsewhere = Placement {
        node: Some("nope".into()),
        node_label: None,
    };
    let err = orch
        .plan_deploy_placed("mgr", "postgres", &[], elsewhere)
        .unwrap_err();
    assert!(err.to_string().contains("node"), "{err}");
    let alone = orch
        .plan_deploy_placed(
            "wkr",
            "postgres",
            &[],
            Placement {
                node: None,
                node_label: Some("disk=ssd".into()),
            },
        )
        .unwrap_err();
    assert!(matches!(alone, CoreError::Refused(_)), "{alone}");
    verify(orch);
}
