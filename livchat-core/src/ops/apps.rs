//! App operations: the catalog, rendering, deploy, undeploy, what is deployed.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use livchat_apps::{AppDefinition, Category};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DeploymentView, JobOperation, JobView, Operation, Plan, PlannedStack, op_info};
use crate::flows::UndeployParams;
use crate::{Orchestrator, Result};

/// One line of the catalog.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AppSummary {
    pub name: String,
    pub version: String,
    pub category: Category,
    pub description: String,
    /// Apps it needs on the same server, deployed first.
    pub dependencies: Vec<String>,
    pub min_ram_mb: u32,
    pub min_cpu_cores: u32,
}

impl From<&AppDefinition> for AppSummary {
    fn from(d: &AppDefinition) -> Self {
        Self {
            name: d.name.clone(),
            version: d.version.clone(),
            category: d.category,
            description: d.description.clone(),
            dependencies: d.dependencies.iter().map(|x| x.app.clone()).collect(),
            min_ram_mb: d.requirements.min_ram_mb,
            min_cpu_cores: d.requirements.min_cpu_cores,
        }
    }
}

/// The parameters of a deploy as the job keeps them (`key=value`, checked against the app).
fn sets(params: &BTreeMap<String, String>) -> Vec<String> {
    params.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// List the app catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppList {
    /// Only apps of this category.
    #[serde(default)]
    pub category: Option<Category>,
}

#[async_trait]
impl Operation for AppList {
    const INFO: super::OperationInfo = op_info!(AppList, "app_list", "app list", Read,
        job: false, idempotent: true, open_world: false, "List the app catalog");
    type Output = Vec<AppSummary>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch
            .app_definitions()?
            .into_iter()
            .filter(|d| self.category.is_none_or(|c| d.category == c))
            .map(AppSummary::from)
            .collect())
    }
}

/// Show one app definition.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppShow {
    /// App name from the catalog.
    pub app: String,
}

#[async_trait]
impl Operation for AppShow {
    const INFO: super::OperationInfo = op_info!(AppShow, "app_show", "app show", Read,
        job: false, idempotent: true, open_world: false, "Show an app definition");
    type Output = AppDefinition;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.app_definition(&self.app)?.clone())
    }
}

/// Render an app's stacks and its dependencies' with placeholder secrets (nothing stored).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppRender {
    /// App name from the catalog.
    pub app: String,
    /// DNS zone (`example.com`).
    pub zone: String,
    /// Optional subdomain (`lab`).
    #[serde(default)]
    pub subdomain: Option<String>,
    /// App parameters (those the app declares).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[async_trait]
impl Operation for AppRender {
    const INFO: super::OperationInfo = op_info!(AppRender, "app_render", "app render", Read,
        job: false, idempotent: true, open_world: false,
        "Render an app's stacks with placeholder secrets");
    type Output = Vec<PlannedStack>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch
            .app_render(
                &self.app,
                &self.zone,
                self.subdomain.as_deref(),
                &sets(&self.params),
            )?
            .into_iter()
            .map(|p| PlannedStack {
                app: p.app,
                stack: p.stack,
                compose: p.compose,
            })
            .collect())
    }
}

/// Deploy an app and its dependencies to a server (a job).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppDeploy {
    /// Server name.
    pub server: String,
    /// App name from the catalog.
    pub app: String,
    /// App parameters (those the app declares).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Repoint A records of the apps' names that livchat did not create (undeploy then
    /// deletes them); without it such a record refuses the deploy.
    #[serde(default)]
    pub take_over_dns: bool,
    /// Deploy even if the preflight finds too little memory or too few CPUs.
    #[serde(default)]
    pub force: bool,
    /// Cluster node.
    #[serde(default)]
    pub node: Option<String>,
    /// Node label `k=v`.
    #[serde(default)]
    pub node_label: Option<String>,
}

impl AppDeploy {
    fn placement(&self) -> crate::flows::Placement {
        crate::flows::Placement {
            node: self.node.clone(),
            node_label: self.node_label.clone(),
        }
    }
}

#[async_trait]
impl Operation for AppDeploy {
    const INFO: super::OperationInfo = op_info!(AppDeploy, "app_deploy", "app deploy", Change,
        job: true, idempotent: true, open_world: true,
        "Deploy an app and its dependencies to a server (a job)");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch
            .start_deploy_placed(
                &self.server,
                &self.app,
                &sets(&self.params),
                self.take_over_dns,
                self.force,
                self.placement(),
            )?
            .into())
    }
}

impl JobOperation for AppDeploy {
    fn plan(&self, orch: &Orchestrator) -> Result<Plan> {
        orch.plan_deploy_placed(
            &self.server,
            &self.app,
            &sets(&self.params),
            self.placement(),
        )
    }
}

/// Remove an app's stack, Docker secrets and DNS records (a job); data is kept unless
/// `delete_data`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppUndeploy {
    /// Server name.
    pub server: String,
    /// App name.
    pub app: String,
    /// Remove it even when other apps depend on it.
    #[serde(default)]
    pub force: bool,
    /// Also delete its volumes, database and role, and vault secrets (lost for good); old
    /// name `delete_volumes`.
    #[serde(default, alias = "delete_volumes")]
    pub delete_data: bool,
}

impl AppUndeploy {
    fn params(&self) -> UndeployParams {
        UndeployParams {
            server: self.server.clone(),
            app: self.app.clone(),
            force: self.force,
            delete_data: self.delete_data,
        }
    }
}

#[async_trait]
impl Operation for AppUndeploy {
    const INFO: super::OperationInfo = op_info!(AppUndeploy, "app_undeploy", "app undeploy",
        Destroy, job: true, idempotent: true, open_world: true,
        "Remove an app's stack, Docker secrets and DNS records (a job)");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.start_undeploy(self.params())?.into())
    }
}

impl JobOperation for AppUndeploy {
    fn plan(&self, orch: &Orchestrator) -> Result<Plan> {
        orch.plan_undeploy(&self.params())
    }
}

/// The apps deployed on a server (from the state).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppDeployed {
    /// Server name.
    pub server: String,
}

#[async_trait]
impl Operation for AppDeployed {
    const INFO: super::OperationInfo = op_info!(AppDeployed, "app_deployed", "app deployed",
        Read, job: false, idempotent: true, open_world: false,
        "List the apps deployed on a server");
    type Output = Vec<DeploymentView>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch
            .deployed(&self.server)?
            .into_iter()
            .map(DeploymentView::from)
            .collect())
    }
}
