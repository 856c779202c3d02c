//! Cluster operations (issue #16): a server joins another's swarm, and leaves it.
// Doc comments here are the MCP and OpenAPI descriptions: kept short (tools/list < 40 KB).

use std::sync::Arc;

use async_trait::async_trait;
use livchat_store::NodeRole;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{JobOperation, JobView, Operation, Plan, op_info};
use crate::flows::{JoinParams, LeaveParams};
use crate::{Orchestrator, Result};

/// Join a set-up server to a manager's swarm (a job).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerJoin {
    /// The server that joins.
    pub server: String,
    /// The cluster's manager.
    pub manager: String,
    #[serde(default, rename = "as")]
    pub role: Option<NodeRole>,
    /// Allow an even manager count.
    #[serde(default)]
    pub force: bool,
}

impl ServerJoin {
    fn params(&self) -> JoinParams {
        JoinParams {
            server: self.server.clone(),
            manager: self.manager.clone(),
            role: self.role.unwrap_or(NodeRole::Worker),
            force: self.force,
        }
    }
}

#[async_trait]
impl Operation for ServerJoin {
    const INFO: super::OperationInfo = op_info!(ServerJoin, "server_join", "server join",
        Change, job: true, idempotent: true, open_world: true,
        "Join a server to a swarm cluster (a job)");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.start_join(&self.params())?.into())
    }
}

impl JobOperation for ServerJoin {
    fn plan(&self, orch: &Orchestrator) -> Result<Plan> {
        orch.plan_join(&self.params())
    }
}

/// Drain a node and remove it from its cluster (a job).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerLeave {
    /// The node that leaves.
    pub server: String,
    /// Even holding a pinned database.
    #[serde(default)]
    pub force: bool,
}

impl ServerLeave {
    fn params(&self) -> LeaveParams {
        LeaveParams {
            server: self.server.clone(),
            force: self.force,
        }
    }
}

#[async_trait]
impl Operation for ServerLeave {
    const INFO: super::OperationInfo = op_info!(ServerLeave, "server_leave", "server leave",
        Change, job: true, idempotent: true, open_world: true,
        "Remove a node from its cluster (a job)");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.start_leave(&self.params())?.into())
    }
}

impl JobOperation for ServerLeave {
    fn plan(&self, orch: &Orchestrator) -> Result<Plan> {
        orch.plan_leave(&self.params())
    }
}
