//! Operations as data: every user-visible operation is one typed request here, with its
//! validation, its plan (for jobs) and its run, so the CLI, the REST service and the MCP server
//! are thin mappings onto the same definitions and none of them re-implements a rule.
//!
//! ```text
//!   livchat (clap)    livchat-api (JSON body)    livchat-mcp (tool arguments)
//!          \                  |                        /
//!           `--------> ops::<Request> (serde + JSON Schema) --------> Orchestrator
//!                              |                                  (flows, jobs)
//!                        ops::operations(): the registry the OpenAPI document, the MCP
//!                        tools/list and the parity test are built from
//! ```
//!
//! **Architecture Invariant:** a request type is the API boundary, not a persisted type: jobs
//! store their own params (`flows`), views are built from store records here, so a change to
//! `state.json` never changes a frontend's schema by accident.

mod app_live;
mod apps;
mod cluster;
mod handle;
mod jobs;
mod servers;
mod system;
mod views;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Serialize, de::DeserializeOwned};

use crate::{Orchestrator, Result};

pub use crate::flows::{Plan, PlannedStack};
pub use app_live::{
    AppLogLine, AppLogs, AppLogsView, AppStatus, AppStatusView, LOGS_DEFAULT_TAIL, LOGS_MAX_TAIL,
    LiveState, ServiceStatusView,
};
pub use apps::{AppDeploy, AppDeployed, AppList, AppRender, AppShow, AppSummary, AppUndeploy};
pub use cluster::{ServerJoin, ServerLeave};
pub use handle::JobHandle;
pub use jobs::{
    JobCancel, JobCleanup, JobCleanupResult, JobList, JobLogs, JobRetry, JobShow, JobWait,
    WAIT_MAX_SECS, wait_timeout,
};
pub use servers::{
    EXEC_MAX_OUTPUT, ServerAdd, ServerAdded, ServerCreate, ServerDelete, ServerDnsUpdate,
    ServerExec, ServerList, ServerPlatformView, ServerSetPlatform, ServerShow,
};
pub use system::{
    DnsList, ProviderInfoRequest, SecretDelete, SecretName, SecretNames, SecretSet, SettingsGet,
    SettingsSet,
};
pub use views::{
    DeploymentView, DnsRecordView, ExecResult, JobView, LogLineView, ProviderInfoView, ServerView,
    SettingView,
};

/// What an operation does to the world: the MCP annotations and the HTTP method follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Reads only.
    Read,
    /// Creates or changes something.
    Change,
    /// Deletes something that cannot be brought back by this tool (servers, apps, secrets).
    Destroy,
}

/// One entry of the registry.
#[derive(Debug, Clone, Copy)]
pub struct OperationInfo {
    /// Stable id: the MCP tool name and the OpenAPI operationId (`server_create`).
    pub name: &'static str,
    /// The CLI command path (`server create`).
    pub cli: &'static str,
    /// One line for help, the OpenAPI summary and the MCP description.
    pub summary: &'static str,
    pub effect: Effect,
    /// Starts a job: `run` records a queued job and returns its view; frontends then run it
    /// with [`Orchestrator::spawn_job`].
    pub job: bool,
    /// Running it twice with the same input leaves the same result.
    pub idempotent: bool,
    /// It reaches a cloud API or a server (not only the local home).
    pub open_world: bool,
    /// The request's schema as a subschema of `generator` (a `$ref` into its definitions).
    pub input_schema: fn(&mut SchemaGenerator) -> Schema,
    /// The output's schema as a subschema of `generator`.
    pub output_schema: fn(&mut SchemaGenerator) -> Schema,
    /// The request's schema as a standalone document (definitions inlined under `$defs`).
    pub input_root: fn() -> Schema,
    /// The output's schema as a standalone document.
    pub output_root: fn() -> Schema,
}

/// An operation: a typed request whose `run` is the one implementation every frontend calls.
#[async_trait]
pub trait Operation: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    const INFO: OperationInfo;
    type Output: Serialize + JsonSchema + Send;
    /// Validates and performs the operation (for a job: records it, queued).
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output>;
}

/// An operation that starts a job, which can also be planned without touching anything.
pub trait JobOperation: Operation<Output = JobView> {
    /// What the job would do, validated like `run`; nothing is changed or recorded.
    fn plan(&self, orch: &Orchestrator) -> Result<Plan>;
}

fn subschema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

fn root<T: JsonSchema>() -> Schema {
    schemars::schema_for!(T)
}

/// Builds an [`OperationInfo`] for a request type; the schemas come from its derives.
macro_rules! op_info {
    ($ty:ty, $name:literal, $cli:literal, $effect:ident, job: $job:literal, idempotent: $idem:literal, open_world: $open:literal, $summary:literal) => {
        $crate::ops::OperationInfo {
            name: $name,
            cli: $cli,
            summary: $summary,
            effect: $crate::ops::Effect::$effect,
            job: $job,
            idempotent: $idem,
            open_world: $open,
            input_schema: $crate::ops::subschema::<$ty>,
            output_schema: $crate::ops::subschema::<<$ty as $crate::ops::Operation>::Output>,
            input_root: $crate::ops::root::<$ty>,
            output_root: $crate::ops::root::<<$ty as $crate::ops::Operation>::Output>,
        }
    };
}
pub(crate) use op_info;

static OPERATIONS: &[OperationInfo] = &[
    ServerList::INFO,
    ServerShow::INFO,
    ServerAdd::INFO,
    ServerCreate::INFO,
    ServerSetup::INFO,
    ServerDelete::INFO,
    ServerJoin::INFO,
    ServerLeave::INFO,
    ServerExec::INFO,
    ServerDnsUpdate::INFO,
    ServerSetPlatform::INFO,
    AppList::INFO,
    AppShow::INFO,
    AppRender::INFO,
    AppDeploy::INFO,
    AppUndeploy::INFO,
    AppDeployed::INFO,
    AppStatus::INFO,
    AppLogs::INFO,
    JobList::INFO,
    JobShow::INFO,
    JobLogs::INFO,
    JobWait::INFO,
    JobCancel::INFO,
    JobRetry::INFO,
    JobCleanup::INFO,
    ProviderInfoRequest::INFO,
    DnsList::INFO,
    SettingsGet::INFO,
    SettingsSet::INFO,
    SecretNames::INFO,
    SecretSet::INFO,
    SecretDelete::INFO,
];

pub use servers::ServerSetup;

/// Every operation, once: the OpenAPI document, the MCP `tools/list` and the parity test are
/// built from this list.
pub fn operations() -> &'static [OperationInfo] {
    OPERATIONS
}

/// The registry entry of `name`, if any.
pub fn operation(name: &str) -> Option<&'static OperationInfo> {
    OPERATIONS.iter().find(|o| o.name == name)
}
