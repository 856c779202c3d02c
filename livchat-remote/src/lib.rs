//! Everything that runs on a managed server: SSH execution, commands as data, the server setup
//! plan, and deploying stacks to Docker Swarm (over SSH or through Portainer's API).
//!
//! Owns: the `RemoteExecutor` trait and its russh implementation (host keys pinned), the
//! command builders and the one function that quotes argv for a remote shell, the allowlists
//! that validate names before any builder sees them, the setup plan (ordered idempotent steps),
//! the `ContainerPlatform` trait with its Swarm-over-SSH and Portainer implementations, and the
//! validation of stack files against the schema `docker stack deploy` uses.
//!
//! Must not touch: clouds, DNS, the local store or vault (keys and secrets are handed in as
//! `SecretString`), app definitions, or any other internal crate. Secrets travel only through
//! a channel's stdin or a 0600 file, never through a command line.

pub mod batch_check;
pub mod capture;
pub mod command;
pub mod compose;
pub mod executor;
pub mod facts;
pub mod keys;
/// The workspace's one set of name rules, compiled here by path (a leaf depends on no other
/// internal crate): see its module docs.
#[allow(
    dead_code,
    reason = "each leaf uses only the rules of the names it checks"
)]
#[path = "../../livchat-store/src/names.rs"]
mod names;
pub mod platform;
pub mod portainer;
pub mod portainer_platform;
pub mod setup;
pub mod ssh;
pub mod step;
pub mod swarm;
pub mod tunnel;

pub use batch_check::check_steps;
pub use command::{Command, NameKind, ValidName, quote_command, validate_name};
pub use compose::validate_stack;
pub use executor::{
    Connected, Connector, ExecOptions, ExecOutput, HostKeyPolicy, OutputLine, OutputStream,
    RemoteError, RemoteExecutor, SshTarget, TunnelIo, TunnelStream,
};
pub use facts::{Resources, read_resources};
pub use keys::{
    KeyPair, decrypt_private_key, generate_ed25519, parse_private_key, private_key_is_encrypted,
};
pub use platform::{
    ContainerPlatform, LogSink, NetworkSpec, PlatformError, ProgressSink, SecretDelivery,
    ServiceExec, ServiceMode, ServiceStatus, StackSecret, StackSpec, StackStatus, WaitOptions,
};
pub use portainer::{PortainerAuth, PortainerClient, PortainerError};
pub use portainer_platform::{PortainerAddress, PortainerPlatform};
pub use setup::{
    Action, DockerSource, OsRelease, RunOptions, RunReport, SetupConfig, SetupError, Step,
    StepProgress, StepProgressSink, StepState, Swap, detect_os, plan, run_plan,
};
pub use ssh::{SshConnector, SshExecutor};
pub use swarm::{SwarmConfig, SwarmOverSsh};
pub use tunnel::LocalForward;
