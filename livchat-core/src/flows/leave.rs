//! The leave job of Swarm clusters (issue #16): a node is drained (a manager demoted first),
//! leaves, is removed from the swarm and runs a one-node swarm again; the Swarm ports close
//! between it and the other nodes. Refused while the node holds a pinned database, unless
//! forced. `server delete` of a node runs the same steps first.

use livchat_remote::swarm::cluster as sc;
use livchat_store::{ClusterRecord, NodeRole};

use super::cluster::{LEAVE_STEPS, even_managers_refusal, node_ip, pinned_stacks};
use super::*;

impl Orchestrator {
    /// The refusals of a leave: the cluster it leaves.
    pub(crate) fn check_leave(&self, p: &LeaveParams) -> Result<ClusterRecord> {
        let state = self.store.load()?;
        self.server(&p.server)?;
        let Some(cluster) = state.cluster_of(&p.server).cloned() else {
            return Err(CoreError::Refused(format!(
                "server {} is in no cluster",
                p.server
            )));
        };
        if cluster.manager == p.server {
            return Err(CoreError::Refused(format!(
                "{} is the cluster's manager; the other nodes ({}) leave first",
                p.server,
                cluster
                    .nodes
                    .keys()
                    .filter(|n| **n != p.server)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let pinned = pinned_stacks(&state, &cluster, &p.server);
        if !pinned.is_empty() && !p.force {
            return Err(CoreError::Refused(format!(
                "{} holds the data volume of {} (pinned there); undeploy it first, or pass --force to leave the data behind on {}",
                p.server,
                pinned.join(", "),
                p.server
            )));
        }
        if cluster.nodes[&p.server].role == NodeRole::Manager {
            even_managers_refusal(cluster.manager_count() - 1, p.force)?;
        }
        Ok(cluster)
    }

    pub fn plan_leave(&self, p: &LeaveParams) -> Result<Plan> {
        let cluster = self.check_leave(p)?;
        let mut resources = vec![
            format!("drain {} (its tasks move to other nodes)", p.server),
            format!(
                "{} leaves {}'s swarm and is removed from it; it becomes a one-node swarm again",
                p.server, cluster.manager
            ),
        ];
        for peer in cluster.nodes.keys().filter(|n| **n != p.server) {
            resources.push(format!(
                "ufw on {} and {peer}: Swarm ports closed to each other",
                p.server
            ));
        }
        Ok(Plan {
            operation: format!("leave cluster {} with {}", cluster.manager, p.server),
            steps: LEAVE_STEPS.iter().map(|s| s.to_string()).collect(),
            resources,
            dns_records: Vec::new(),
            stacks: Vec::new(),
        })
    }

    pub fn start_leave(&self, p: &LeaveParams) -> Result<JobRecord> {
        let cluster = self.check_leave(p)?;
        self.create_job(
            JobKind::LeaveCluster,
            Some(&cluster.manager),
            to_params(p),
            LEAVE_STEPS.iter().map(|s| s.to_string()).collect(),
        )
    }

    pub(super) async fn leave_step(
        &self,
        ctx: &JobContext,
        job: &JobRecord,
        step: &str,
    ) -> Result<Value> {
        let p: LeaveParams = params(job)?;
        self.leave_cluster_step(ctx, &p.server, step).await
    }

    /// One step of leaving (also run by `server delete` of a node, before the server goes).
    pub(super) async fn leave_cluster_step(
        &self,
        ctx: &JobContext,
        name: &str,
        step: &str,
    ) -> Result<Value> {
        let state = self.store.load()?;
        let Some(cluster) = state.cluster_of(name).cloned() else {
            ctx.info(format!("{name} is in no cluster any more"));
            return Ok(Value::Null);
        };
        let manager = cluster.manager.clone();
        let node = &cluster.nodes[name];
        let id = node.node_id.clone().ok_or_else(|| {
            CoreError::Platform(format!("the state has no swarm node id for {name}"))
        })?;
        match step {
            "drain" => {
                if node.role == NodeRole::Manager {
                    self.run_on(ctx, &manager, &sc::node_demote(&id), None)
                        .await?;
                }
                self.run_on(ctx, &manager, &sc::node_drain(&id), None)
                    .await?;
                ctx.info(format!("{name} drained: its tasks move to the other nodes"));
                Ok(Value::Null)
            }
            "leave" => {
                if self.node_id(ctx, name).await?.as_deref() == Some(id.as_str()) {
                    self.run_on(ctx, name, &sc::swarm_leave(), None).await?;
                }
                if self.swarm_node_ids(ctx, &manager).await?.contains(&id) {
                    self.run_on(ctx, &manager, &sc::node_rm(&id), None).await?;
                }
                if self.node_id(ctx, name).await?.is_none() {
                    let ip = node_ip(&self.server(name)?)?;
                    self.run_on(
                        ctx,
                        name,
                        &livchat_remote::command::docker::swarm_init(ip),
                        None,
                    )
                    .await?;
                }
                ctx.info(format!(
                    "{name} left {manager}'s swarm and runs a one-node swarm again"
                ));
                Ok(Value::Null)
            }
            "firewall" => {
                let me = self.server(name)?;
                let peers: Vec<ServerRecord> = cluster
                    .nodes
                    .keys()
                    .filter(|n| n.as_str() != name)
                    .map(|n| self.server(n))
                    .collect::<Result<_>>()?;
                self.swarm_firewall(ctx, &me, &peers, false).await?;
                // The ones left keep each other; the one leaving is alone again.
                self.provider_firewalls(ctx, &peers).await?;
                self.provider_firewalls(ctx, std::slice::from_ref(&me))
                    .await?;
                Ok(Value::Null)
            }
            "record" => {
                self.store.update("cluster leave", &mut |s| {
                    if let Some(c) = s.clusters.get_mut(&manager) {
                        c.nodes.remove(name);
                        if c.nodes.len() <= 1 {
                            s.clusters.remove(&manager);
                        }
                    }
                    Ok(())
                })?;
                Ok(json!({ "cluster": manager, "left": name }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }
}
