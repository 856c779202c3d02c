//! Where an app's services run on a Swarm cluster (issue #16), as placement constraints on
//! node labels LivChat sets:
//!
//! - the infrastructure bundle (Traefik, where DNS points) on the manager, or on the node
//!   labelled `livchat.edge=true` when there is one;
//! - a stack with volumes (a database) on the node holding its data: the label
//!   `livchat.data.<stack>=true` is set on one node at its first deploy (the `--node` given,
//!   else the manager) and never moved, so a reschedule never starts it on an empty disk;
//! - the deployed app itself on `--node NAME` (`livchat.server=NAME`, set at join) or
//!   `--node-label K=V`.
//!
//! A one-server deploy gets no constraint at all. `exec` into a service and volume removal
//! reach the node running it through the manager's platform (`cluster_platform.rs`).

use livchat_store::ClusterRecord;

use super::cluster::{SERVER_LABEL, data_label};
use super::*;

/// Where the deployed app goes (`app deploy --node` / `--node-label`); dependencies the same
/// job deploys are placed by the rules above only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `key=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_label: Option<String>,
}

impl Placement {
    pub fn is_empty(&self) -> bool {
        self.node.is_none() && self.node_label.is_none()
    }
}

/// The node label of the edge node Traefik runs on instead of the manager.
const EDGE_LABEL: &str = "livchat.edge";

fn split_label(label: &str) -> Result<(&str, &str)> {
    let (k, v) = label
        .split_once('=')
        .ok_or_else(|| CoreError::invalid("node_label", "expected KEY=VALUE"))?;
    livchat_store::validate_label(k, v).map_err(|r| CoreError::invalid("node_label", r))?;
    Ok((k, v))
}

/// The node that holds (or will hold, at its first deploy) the data of `stack`.
fn data_node(cluster: &ClusterRecord, stack: &str, chosen: Option<&str>) -> String {
    let key = data_label(stack);
    cluster
        .nodes
        .iter()
        .find(|(_, n)| n.labels.contains_key(&key))
        .map(|(name, _)| name.clone())
        .or_else(|| chosen.map(str::to_string))
        .unwrap_or_else(|| cluster.manager.clone())
}

impl Orchestrator {
    /// Checks `--node` / `--node-label` against the cluster of `server` (its manager); errors
    /// name the field.
    pub(super) fn check_placement(&self, server: &str, placement: &Placement) -> Result<()> {
        if placement.is_empty() {
            return Ok(());
        }
        let state = self.store.load()?;
        let Some(cluster) = state.clusters.get(server) else {
            let field = if placement.node.is_some() {
                "node"
            } else {
                "node_label"
            };
            return Err(CoreError::invalid(
                field,
                format!(
                    "server {server} is not the manager of a cluster; placement needs one (`livchat server join`)"
                ),
            ));
        };
        if placement.node.is_some() && placement.node_label.is_some() {
            return Err(CoreError::invalid(
                "node_label",
                "give --node or --node-label, not both",
            ));
        }
        if let Some(node) = &placement.node
            && !cluster.nodes.contains_key(node)
        {
            return Err(CoreError::invalid(
                "node",
                format!(
                    "{node} is not a node of cluster {server} (nodes: {})",
                    cluster.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if let Some(label) = &placement.node_label {
            split_label(label)?;
        }
        Ok(())
    }

    /// The constraints of `app`'s stack on `server`'s cluster (none outside a cluster).
    pub(super) fn placement_constraints(
        &self,
        server: &ServerRecord,
        app: &str,
        p: &DeployParams,
        stack: &RenderedStack,
    ) -> Result<Vec<String>> {
        let state = self.store.load()?;
        let Some(cluster) = state.clusters.get(&server.name) else {
            return Ok(Vec::new());
        };
        let own = if app == p.app {
            Some(&p.placement)
        } else {
            None
        };
        let infrastructure = self
            .catalog()?
            .get(app)
            .is_some_and(|d| d.category == livchat_apps::Category::Infrastructure);
        if infrastructure {
            let edge = cluster
                .nodes
                .values()
                .any(|n| n.labels.get(EDGE_LABEL).is_some_and(|v| v == "true"));
            return Ok(vec![if edge {
                format!("node.labels.{EDGE_LABEL} == true")
            } else {
                "node.role == manager".to_string()
            }]);
        }
        if stack.has_volumes() {
            let chosen = own.and_then(|o| o.node.as_deref());
            let holder = data_node(cluster, &stack.stack, chosen);
            if let Some(node) = chosen
                && node != holder
            {
                return Err(CoreError::Refused(format!(
                    "the data of {} is on {holder} (its volume is pinned there); it cannot move to {node}",
                    stack.stack
                )));
            }
            if own.is_some_and(|o| o.node_label.is_some()) {
                return Err(CoreError::invalid(
                    "node_label",
                    format!("{app} keeps data in volumes, pinned to one node: use --node"),
                ));
            }
            return Ok(vec![format!(
                "node.labels.{} == true",
                data_label(&stack.stack)
            )]);
        }
        Ok(match own {
            Some(Placement { node: Some(n), .. }) => {
                vec![format!("node.labels.{SERVER_LABEL} == {n}")]
            }
            Some(Placement {
                node_label: Some(l),
                ..
            }) => {
                let (k, v) = split_label(l)?;
                vec![format!("node.labels.{k} == {v}")]
            }
            _ => Vec::new(),
        })
    }

    /// Before a stack with volumes is sent to a cluster: the label that pins its data is on
    /// the node that holds it (set once, recorded in the state, never moved).
    pub(super) async fn pin_data(
        &self,
        ctx: &JobContext,
        server: &ServerRecord,
        p: &DeployParams,
        stack: &RenderedStack,
    ) -> Result<()> {
        let state = self.store.load()?;
        let Some(cluster) = state.clusters.get(&server.name).cloned() else {
            return Ok(());
        };
        let infrastructure = self
            .catalog()?
            .get(&stack.app)
            .is_some_and(|d| d.category == livchat_apps::Category::Infrastructure);
        if infrastructure || !stack.has_volumes() {
            return Ok(());
        }
        let chosen = (stack.app == p.app)
            .then_some(p.placement.node.as_deref())
            .flatten();
        let holder = data_node(&cluster, &stack.stack, chosen);
        let key = data_label(&stack.stack);
        let node = &cluster.nodes[&holder];
        if node.labels.contains_key(&key) {
            return Ok(());
        }
        let id = node.node_id.clone().ok_or_else(|| {
            CoreError::Platform(format!("the state has no swarm node id for {holder}"))
        })?;
        let cmd = livchat_remote::swarm::cluster::node_label_add(&id, &key, "true");
        self.run_on(ctx, &cluster.manager, &cmd, None).await?;
        self.store.update("pin data", &mut |s| {
            if let Some(n) = s
                .clusters
                .get_mut(&cluster.manager)
                .and_then(|c| c.nodes.get_mut(&holder))
            {
                n.labels.insert(key.clone(), "true".into());
            }
            Ok(())
        })?;
        ctx.info(format!(
            "data of {} pinned to {holder} ({key}=true)",
            stack.stack
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livchat_store::{ClusterNode, NodeRole};

    fn cluster() -> ClusterRecord {
        let node = |role, labels: &[(&str, &str)]| ClusterNode {
            role,
            node_id: Some("id".into()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        ClusterRecord {
            manager: "m".into(),
            nodes: [
                ("m".to_string(), node(NodeRole::Manager, &[])),
                (
                    "w".to_string(),
                    node(NodeRole::Worker, &[("livchat.data.pg", "true")]),
                ),
            ]
            .into(),
        }
    }

    #[test]
    fn data_stays_on_the_node_holding_it_and_a_new_stack_goes_where_asked_or_to_the_manager() {
        let c = cluster();
        assert_eq!(data_node(&c, "pg", None), "w");
        assert_eq!(
            data_node(&c, "pg", Some("m")),
            "w",
            "an existing pin never moves"
        );
        assert_eq!(data_node(&c, "mariadb", Some("w")), "w");
        assert_eq!(data_node(&c, "mariadb", None), "m");
    }

    #[test]
    fn node_labels_are_checked_before_they_reach_a_constraint() {
        assert_eq!(split_label("disk=ssd").unwrap(), ("disk", "ssd"));
        let err = split_label("disk").unwrap_err().to_string();
        assert!(err.contains("node_label"), "{err}");
        assert!(split_label("a=b == c").is_err());
    }
}
