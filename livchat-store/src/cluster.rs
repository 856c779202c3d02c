//! Swarm clusters of several servers (state version 5): one manager server whose swarm other
//! servers joined. A cluster is named after its manager and its deployments are recorded under
//! that name in `deployments`, so an app of the cluster has one record whichever node runs it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::state::{ServerRecord, State};

/// A node's role in the swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Manager,
    Worker,
}

impl NodeRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeRole::Manager => "manager",
            NodeRole::Worker => "worker",
        }
    }
}

/// One server of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterNode {
    pub role: NodeRole,
    /// The swarm's id of the node (`docker info` after the join).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Node labels LivChat set (`livchat.server=<name>`, a database's volume pin, the user's).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A swarm of several servers, keyed (and named) by its first manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRecord {
    /// The server LivChat talks to for the whole swarm (deploys, status); also the key.
    pub manager: String,
    /// Every node, the manager included.
    pub nodes: BTreeMap<String, ClusterNode>,
}

impl ClusterRecord {
    /// The managers, this one included.
    pub fn manager_count(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.role == NodeRole::Manager)
            .count()
    }
}

impl State {
    /// The cluster `server` belongs to (as manager or node), if any.
    pub fn cluster_of(&self, server: &str) -> Option<&ClusterRecord> {
        self.clusters
            .values()
            .find(|c| c.nodes.contains_key(server))
    }
}

/// Allowlist of node label keys and values: they land in `docker node update --label-add`
/// and in placement constraints (`node.labels.K == V`).
pub fn validate_label(key: &str, value: &str) -> Result<(), String> {
    let ok = |s: &str, max: usize| {
        (1..=max).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            && !s.starts_with(['-', '.'])
    };
    if ok(key, 63) && ok(value, 63) {
        Ok(())
    } else {
        Err(format!(
            "`{}={}` is not allowed: key and value are 1-63 of a-z, A-Z, 0-9, '.', '-', '_', not starting with '-' or '.'",
            key.escape_debug(),
            value.escape_debug()
        ))
    }
}

/// The cluster half of [`State::validate`]: nodes are known servers, each in one cluster, the
/// manager a manager node of its own cluster, labels on the allowlist.
pub(crate) fn validate_clusters(
    clusters: &BTreeMap<String, ClusterRecord>,
    servers: &BTreeMap<String, ServerRecord>,
) -> Result<(), StoreError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, cluster) in clusters {
        let field = |f: &str| format!("clusters.{key}.{f}");
        if &cluster.manager != key {
            return Err(StoreError::invalid(
                field("manager"),
                format!("must equal its key `{key}`, found `{}`", cluster.manager),
            ));
        }
        if cluster.nodes.get(key).map(|n| n.role) != Some(NodeRole::Manager) {
            return Err(StoreError::invalid(
                field("nodes"),
                format!("must hold its manager `{key}` with role manager"),
            ));
        }
        for (name, node) in &cluster.nodes {
            if !servers.contains_key(name) {
                return Err(StoreError::invalid(
                    field(&format!("nodes.{name}")),
                    "must be a server in `servers`",
                ));
            }
            if let Some(other) = seen.insert(name, key) {
                return Err(StoreError::invalid(
                    field(&format!("nodes.{name}")),
                    format!("is already a node of cluster `{other}`"),
                ));
            }
            for (k, v) in &node.labels {
                validate_label(k, v)
                    .map_err(|r| StoreError::invalid(field(&format!("nodes.{name}.labels")), r))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(role: NodeRole) -> ClusterNode {
        ClusterNode {
            role,
            node_id: None,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn label_allowlist_refuses_what_could_break_a_constraint() {
        assert!(validate_label("disk", "ssd").is_ok());
        assert!(validate_label("livchat.volume.pg", "1").is_ok());
        for (k, v) in [
            ("a b", "1"),
            ("a", "x==y"),
            ("-a", "1"),
            ("a", ""),
            ("a", "$(x)"),
        ] {
            assert!(validate_label(k, v).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn a_cluster_without_its_manager_as_manager_node_is_invalid() {
        let mut clusters = BTreeMap::new();
        clusters.insert(
            "m".to_string(),
            ClusterRecord {
                manager: "m".into(),
                nodes: [("m".to_string(), node(NodeRole::Worker))].into(),
            },
        );
        let err = validate_clusters(&clusters, &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("clusters.m.nodes"), "{err}");
    }
}
