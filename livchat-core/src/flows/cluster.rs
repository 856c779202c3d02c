//! The join job of Swarm clusters (issue #16): a set-up server joins another's swarm as a
//! worker (or manager); its leave job is in `leave.rs`, the helpers both use are here.
//!
//! Both jobs run on the cluster's manager (the job's server), so they queue behind a deploy
//! to the cluster. The join token is read on the manager, hidden from the job log, and sent to
//! the joining server on stdin only (`livchat_remote::swarm::cluster::join_from_stdin`).
//! Firewalls open the Swarm ports between the cluster's nodes only: ufw on every node.

use livchat_remote::swarm::cluster::{self as sc, JoinRole};
use livchat_store::{ClusterNode, ClusterRecord, NodeRole, State};
use secrecy::SecretString;

use super::*;

/// Parameters of a join job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinParams {
    /// The server that joins.
    pub server: String,
    /// The manager whose swarm it joins (the cluster's name).
    pub manager: String,
    pub role: NodeRole,
    /// Go on with an even manager count (one step on the way from 1 to 3 managers).
    #[serde(default)]
    pub force: bool,
}

/// Parameters of a leave job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaveParams {
    pub server: String,
    /// Leave even while the node holds a pinned database's volume (its data stays there).
    #[serde(default)]
    pub force: bool,
}

pub(crate) const JOIN_STEPS: [&str; 4] = ["firewall", "join", "label", "record"];
pub(crate) const LEAVE_STEPS: [&str; 4] = ["drain", "leave", "firewall", "record"];

/// The node label that pins a stack's data volume to the node holding it.
pub(crate) fn data_label(stack: &str) -> String {
    format!("livchat.data.{stack}")
}

/// The node label naming the LivChat server a node is (`--node NAME` places on it).
pub(crate) const SERVER_LABEL: &str = "livchat.server";

pub(super) fn node_ip(server: &ServerRecord) -> Result<IpAddr> {
    server.host.parse().map_err(|_| {
        CoreError::Refused(format!(
            "server {} is reached at {}, not an IP address: cluster nodes need one (the firewall admits nodes by address)",
            server.name, server.host
        ))
    })
}

/// Whether `n` managers keep a quorum that `n - 1` would not: an even count tolerates no more
/// failures than one manager fewer, and splits votes.
pub(super) fn even_managers_refusal(count: usize, force: bool) -> Result<()> {
    if count.is_multiple_of(2) && !force {
        return Err(CoreError::Refused(format!(
            "that would leave {count} managers: an even count loses quorum as soon as {} fail, no better than {}; use 1, 3 or 5 managers (pass --force for one step on the way)",
            count / 2,
            count - 1
        )));
    }
    Ok(())
}

/// Stacks whose data volume is pinned to `node` and still deployed on the cluster.
pub(super) fn pinned_stacks(state: &State, cluster: &ClusterRecord, node: &str) -> Vec<String> {
    let deployed: BTreeSet<&str> = state
        .deployments
        .get(&cluster.manager)
        .map(|m| m.values().map(|d| d.stack_name.as_str()).collect())
        .unwrap_or_default();
    cluster.nodes[node]
        .labels
        .keys()
        .filter_map(|k| k.strip_prefix("livchat.data."))
        .filter(|stack| deployed.contains(stack))
        .map(str::to_string)
        .collect()
}

impl Orchestrator {
    /// The refusals of a join, before anything runs; the joining server and the manager.
    pub(crate) fn check_join(&self, p: &JoinParams) -> Result<(ServerRecord, ServerRecord)> {
        validate_server_name(&p.server, "server")?;
        validate_server_name(&p.manager, "manager")?;
        if p.server == p.manager {
            return Err(CoreError::invalid("manager", "a server cannot join itself"));
        }
        let state = self.store.load()?;
        let server = self.server(&p.server)?;
        let manager = self.server(&p.manager)?;
        for s in [&server, &manager] {
            if s.status != ServerStatus::Ready {
                return Err(CoreError::Refused(format!(
                    "server {} is not set up (status {:?}); run `livchat server setup {}` first",
                    s.name, s.status, s.name
                )));
            }
            node_ip(s)?;
        }
        if let Some(c) = state.cluster_of(&p.manager)
            && c.manager != p.manager
        {
            return Err(CoreError::Refused(format!(
                "{} is a node of cluster {}; join its manager {} instead",
                p.manager, c.manager, c.manager
            )));
        }
        if let Some(c) = state.cluster_of(&p.server) {
            if c.manager == p.manager {
                return Ok((server, manager));
            }
            return Err(CoreError::Refused(format!(
                "server {} is already in cluster {}; `livchat server leave {}` first",
                p.server, c.manager, p.server
            )));
        }
        let apps = self.deployed_set(&p.server)?;
        if !apps.is_empty() {
            return Err(CoreError::Refused(format!(
                "server {} runs {} on its own swarm, which joining would end; undeploy them first",
                p.server,
                apps.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        if p.role == NodeRole::Manager {
            let now = state
                .clusters
                .get(&p.manager)
                .map_or(1, ClusterRecord::manager_count);
            even_managers_refusal(now + 1, p.force)?;
        }
        Ok((server, manager))
    }

    pub fn plan_join(&self, p: &JoinParams) -> Result<Plan> {
        let (server, manager) = self.check_join(p)?;
        let mut resources = vec![format!(
            "server {} leaves its own one-node swarm and joins {}'s as {}",
            p.server,
            p.manager,
            p.role.as_str()
        )];
        for peer in self.cluster_peers(&p.manager, &p.server)? {
            resources.push(format!(
                "ufw on {} and {}: allow 2377/tcp, 7946/tcp+udp, 4789/udp from each other only",
                p.server, peer.name
            ));
        }
        for s in std::iter::once(&server).chain(self.cluster_peers(&p.manager, &p.server)?.iter()) {
            if self
                .providers
                .of_server(s)?
                .is_some_and(|entry| entry.profile.firewalls)
            {
                resources.push(format!(
                    "provider firewall {}: Swarm ports open to the other nodes' addresses only",
                    provider_resource_name(&s.name)
                ));
            }
        }
        resources.push(format!(
            "node label {SERVER_LABEL}={} on {}; state cluster {}",
            p.server, p.server, manager.name
        ));
        Ok(Plan {
            operation: format!("join {} to cluster {}", p.server, p.manager),
            steps: JOIN_STEPS.iter().map(|s| s.to_string()).collect(),
            resources,
            dns_records: Vec::new(),
            stacks: Vec::new(),
        })
    }

    pub fn start_join(&self, p: &JoinParams) -> Result<JobRecord> {
        self.check_join(p)?;
        self.create_job(
            JobKind::JoinCluster,
            Some(&p.manager),
            to_params(p),
            JOIN_STEPS.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// The nodes already in `manager`'s cluster (the manager alone if none yet), `server` left out.
    fn cluster_peers(&self, manager: &str, server: &str) -> Result<Vec<ServerRecord>> {
        let state = self.store.load()?;
        let names: Vec<String> = match state.clusters.get(manager) {
            Some(c) => c.nodes.keys().cloned().collect(),
            None => vec![manager.to_string()],
        };
        names
            .iter()
            .filter(|n| n.as_str() != server)
            .map(|n| self.server(n))
            .collect()
    }

    /// Runs `cmd` on `server`; its stdout, or an error with the (redacted) end of its stderr.
    pub(crate) async fn run_on(
        &self,
        ctx: &JobContext,
        server: &str,
        cmd: &livchat_remote::Command,
        stdin: Option<SecretBox<[u8]>>,
    ) -> Result<String> {
        let exec = self.executor(server).await?;
        let out = exec
            .exec(
                cmd,
                livchat_remote::ExecOptions {
                    stdin,
                    timeout: Duration::from_secs(120),
                    cancel: ctx.cancel_token(),
                    on_line: None,
                },
            )
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.success() {
            let tail = livchat_remote::setup::tail(&out.stderr, 5);
            let tail = if tail.trim().is_empty() {
                livchat_remote::setup::tail(&out.stdout, 5)
            } else {
                tail
            };
            return Err(CoreError::Step {
                step: format!("{} on {server}", cmd.program),
                message: format!("exit status {}: {}", out.exit_status, ctx.redact(&tail)),
            });
        }
        Ok(stdout)
    }

    /// The swarm node id of `server`, `None` when it is in no swarm.
    pub(super) async fn node_id(&self, ctx: &JobContext, server: &str) -> Result<Option<String>> {
        Ok(sc::parse_node_self(
            &self.run_on(ctx, server, &sc::node_self(), None).await?,
        ))
    }

    /// Ids of the nodes `manager`'s swarm knows.
    pub(super) async fn swarm_node_ids(
        &self,
        ctx: &JobContext,
        manager: &str,
    ) -> Result<Vec<String>> {
        let out = self.run_on(ctx, manager, &sc::node_ls(), None).await?;
        let nodes = sc::parse_node_ls(&out).map_err(CoreError::Platform)?;
        Ok(nodes.into_iter().map(|n| n.id).collect())
    }

    /// Opens (or with `open == false` closes) the Swarm ports between `server` and `peers`, on
    /// both sides: each admits the other's address only.
    pub(super) async fn swarm_firewall(
        &self,
        ctx: &JobContext,
        server: &ServerRecord,
        peers: &[ServerRecord],
        open: bool,
    ) -> Result<()> {
        let rules = |ip| {
            if open {
                sc::ufw_allow_from(ip)
            } else {
                sc::ufw_delete_from(ip)
            }
        };
        for peer in peers {
            for (on, from) in [(server, peer), (peer, server)] {
                for cmd in rules(node_ip(from)?) {
                    self.run_on(ctx, &on.name, &cmd, None).await?;
                }
                ctx.info(format!(
                    "ufw on {}: Swarm ports {} for {} ({})",
                    on.name,
                    if open { "open" } else { "closed" },
                    from.name,
                    from.host
                ));
            }
        }
        Ok(())
    }

    /// The provider firewall of every node LivChat created, set to SSH and web for all plus the
    /// Swarm ports for the other `nodes` only (a node alone gets no Swarm rule).
    pub(super) async fn provider_firewalls(
        &self,
        ctx: &JobContext,
        nodes: &[ServerRecord],
    ) -> Result<()> {
        for node in nodes {
            let Some(id) = node.provider_id else {
                continue;
            };
            let Some(entry) = self
                .providers
                .of_server(node)?
                .filter(|entry| entry.profile.firewalls)
            else {
                continue;
            };
            let peers: Vec<IpAddr> = nodes
                .iter()
                .filter(|n| n.name != node.name)
                .map(node_ip)
                .collect::<Result<_>>()?;
            let mut spec = FirewallSpec::ssh_and_web(provider_resource_name(&node.name));
            if !peers.is_empty() {
                spec.peer_rules = sc::SWARM_PORTS
                    .iter()
                    .map(|(port, proto)| livchat_providers::PeerRule {
                        protocol: if *proto == "udp" {
                            livchat_providers::PeerProtocol::Udp
                        } else {
                            livchat_providers::PeerProtocol::Tcp
                        },
                        port: *port,
                        sources: peers.clone(),
                    })
                    .collect();
            }
            self.provider_client(entry)?
                .ensure_firewall(&spec, &ServerId(id.to_string()))
                .await
                .map_err(provider_err)?;
            ctx.info(format!(
                "provider firewall {}: Swarm ports open to {} other node(s) only",
                spec.name,
                peers.len()
            ));
        }
        Ok(())
    }

    pub(super) async fn join_step(
        &self,
        ctx: &JobContext,
        job: &JobRecord,
        step: &str,
    ) -> Result<Value> {
        let p: JoinParams = params(job)?;
        let server = self.server(&p.server)?;
        let manager = self.server(&p.manager)?;
        match step {
            "firewall" => {
                let mut peers = self.cluster_peers(&p.manager, &p.server)?;
                self.swarm_firewall(ctx, &server, &peers, true).await?;
                peers.push(server.clone());
                self.provider_firewalls(ctx, &peers).await?;
                Ok(Value::Null)
            }
            "join" => {
                let known = self.swarm_node_ids(ctx, &p.manager).await?;
                let own = self.node_id(ctx, &p.server).await?;
                if let Some(id) = own.as_ref().filter(|id| known.contains(id)) {
                    ctx.info(format!(
                        "{} is already node {id} of {}'s swarm",
                        p.server, p.manager
                    ));
                    return Ok(json!({ "node_id": id }));
                }
                if own.is_some() {
                    // Setup made every server a one-node swarm of its own; it holds no app
                    // (refused before the job), so it is ended to join the cluster's.
                    let leave =
                        livchat_remote::Command::new("docker").args(["swarm", "leave", "--force"]);
                    self.run_on(ctx, &p.server, &leave, None).await?;
                    ctx.info(format!("{} left its own one-node swarm", p.server));
                }
                let role = match p.role {
                    NodeRole::Manager => JoinRole::Manager,
                    NodeRole::Worker => JoinRole::Worker,
                };
                let token = self
                    .run_on(ctx, &p.manager, &sc::join_token(role), None)
                    .await?;
                let token = SecretString::from(token.trim().to_string());
                ctx.hide(&token);
                let body = sc::join_request(node_ip(&server)?, node_ip(&manager)?, &token);
                self.run_on(ctx, &p.server, &sc::join_from_stdin(), Some(body))
                    .await?;
                let id = self.node_id(ctx, &p.server).await?.ok_or_else(|| {
                    CoreError::Platform(format!("{} is in no swarm after joining", p.server))
                })?;
                ctx.info(format!(
                    "{} joined {}'s swarm as {} (node {id})",
                    p.server,
                    p.manager,
                    p.role.as_str()
                ));
                Ok(json!({ "node_id": id }))
            }
            "label" => {
                for name in [&p.manager, &p.server] {
                    let id = self
                        .node_id(ctx, name)
                        .await?
                        .ok_or_else(|| CoreError::Platform(format!("{name} is in no swarm")))?;
                    let cmd = sc::node_label_add(&id, SERVER_LABEL, name);
                    self.run_on(ctx, &p.manager, &cmd, None).await?;
                }
                Ok(Value::Null)
            }
            "record" => {
                let manager_id = self.node_id(ctx, &p.manager).await?;
                let server_id = self.node_id(ctx, &p.server).await?;
                self.store.update("cluster join", &mut |s| {
                    let cluster =
                        s.clusters
                            .entry(p.manager.clone())
                            .or_insert_with(|| ClusterRecord {
                                manager: p.manager.clone(),
                                nodes: BTreeMap::new(),
                            });
                    let node = |role, id: &Option<String>, name: &str| ClusterNode {
                        role,
                        node_id: id.clone(),
                        labels: [(SERVER_LABEL.to_string(), name.to_string())].into(),
                    };
                    cluster
                        .nodes
                        .entry(p.manager.clone())
                        .or_insert_with(|| node(NodeRole::Manager, &manager_id, &p.manager));
                    cluster
                        .nodes
                        .insert(p.server.clone(), node(p.role, &server_id, &p.server));
                    Ok(())
                })?;
                Ok(json!({ "cluster": p.manager, "joined": p.server }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }

    /// Apps go to a cluster through its manager: a deploy to another node is refused, naming
    /// the manager and the placement option that puts the app on that node.
    pub(crate) fn refuse_non_manager(&self, server: &str) -> Result<()> {
        let state = self.store.load()?;
        match state.cluster_of(server) {
            Some(c) if c.manager != server => Err(CoreError::Refused(format!(
                "server {server} is a {} of cluster {}: deploy to the manager, `livchat app deploy {} APP --node {server}` to place it on {server}",
                c.nodes[server].role.as_str(),
                c.manager,
                c.manager
            ))),
            _ => Ok(()),
        }
    }
}

fn validate_server_name(name: &str, field: &str) -> Result<()> {
    livchat_store::validate_server_name(name).map_err(|r| CoreError::invalid(field, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_manager_counts_are_refused_unless_forced() {
        assert!(even_managers_refusal(1, false).is_ok());
        assert!(even_managers_refusal(3, false).is_ok());
        let err = even_managers_refusal(2, false).unwrap_err().to_string();
        assert!(err.contains("2 managers"), "{err}");
        assert!(even_managers_refusal(4, true).is_ok());
    }
}
