//! The product's brain: the domain model, the `Orchestrator` and the job system.
//!
//! Owns: the flows of the product (create, add, set up, delete servers; DNS; deploy and
//! undeploy apps; plan), jobs (progress, logs, cancel, retry, interruption after a restart,
//! hard timeouts), and the wiring of the real leaf implementations from a home directory.
//! It composes the leaf crates through their traits and re-exports what frontends need.
//!
//! Must not touch: I/O of its own. Every effect (cloud, DNS, SSH, Docker, disk) goes through a
//! leaf crate's trait, so every path here is testable with mocks in milliseconds. Frontends
//! depend on this crate only.

pub mod api_token;
mod builtin_providers;
pub mod error;
pub mod host_key;
pub mod jobs;
pub mod redact;

pub use error::{CoreError, ErrorKind, Result};
pub use jobs::{JobContext, JobEvent, JobKind, JobManager, StepRunner};
mod catalog_cell;
pub mod cluster_platform;
mod config;
mod connections;
mod first_run;
pub mod flows;
mod job_control;
pub mod ops;
pub mod orchestrator;
pub mod preflight;
mod probe;
mod provider_registry;
mod server_add;
mod setup_ahead;
pub mod stack_path;

/// The vault keys of the built-in providers' tokens.
pub use builtin_providers::tokens::*;
pub use config::Config;
pub use flows::{
    CreateServerParams, DeleteServerParams, DeployParams, JoinParams, LeaveParams, Placement, Plan,
    PlannedStack, SetupServerParams, UndeployParams,
};
pub use host_key::{HostKeyOffer, HostKeyQuestion, HostKeyTrust, Repinned};
pub use orchestrator::{
    AddServer, AddedServer, CLOUDFLARE_TOKEN, Orchestrator, OrchestratorBuilder, ProviderInfo,
    ProviderInfoKind, key_needs_passphrase,
};
pub use provider_registry::ProviderEntry;

/// Vocabulary frontends need from the leaf crates, re-exported so they depend on the core only.
pub mod model {
    pub use chrono::{TimeDelta, Utc};
    pub use livchat_apps::{AppDefinition, Category, PreviewStack};
    pub use livchat_providers::{DnsRecord, Image, Location, ServerType};
    pub use livchat_remote::ExecOutput;
    pub use livchat_store::{
        DeployedVia, DeploymentRecord, DeploymentStatus, DnsConfig, DnsMode, InitReport, JobRecord,
        JobStatus, LogLevel, LogLine, NodeRole, PlatformChoice, ProviderKind, ServerRecord,
        ServerStatus, State,
    };
    pub use secrecy::{ExposeSecret, SecretString};
    pub type DateTime = chrono::DateTime<chrono::Utc>;
    pub use tokio_util::sync::CancellationToken;
}
