//! The local store of a LivChat home directory: `state.json`, `settings.json`, the job records
//! under `jobs/` and `credentials.vault`.
//!
//! Owns: the `Store` trait and its implementations (`JsonFileStore` on `<home>/state.json`,
//! an in-memory store for tests), the state schema with its version and migrations, the one
//! transactional `update` (lock, read, modify, atomic write, backup), the fixed set of settings
//! keys, and the Ansible-Vault-1.1/1.2-compatible vault holding every secret.
//!
//! Must not touch: the network, SSH, clouds, or any other internal crate. A secret never enters
//! `state.json`; the state never holds anything that would be trouble if committed to GitHub.
//!
//! Map:
//! - [`Store`] / [`StoreExt`]: the trait the core holds as `Arc<dyn Store>`;
//!   [`JsonFileStore`], [`MemoryStore`], and `MockStore` behind the `mock` feature.
//! - [`State`] and its records: the schema of `state.json` ([`STATE_VERSION`]); [`migrate`]:
//!   reading older versions. [`JobRecord`]s are files of their own (`<home>/jobs/<id>.json`),
//!   read and changed one at a time through the same [`Store`].
//! - [`Settings`] / [`SettingKey`]: the fixed settings keys, kept in `<home>/settings.json`.
//! - [`Vault`]: `credentials.vault`; [`vault::format`]: the Ansible Vault envelope.
//! - [`SecretStore`]: the vault as the core holds it (`Arc<dyn SecretStore>`), with
//!   [`MemorySecrets`] for tests; [`JobLogStore`]: per-job JSON-lines logs under `<home>/jobs/`.
//! - [`names`]: the one set of name rules (DNS names, hosts, server, app and Unix user
//!   names), compiled by path into the other leaves too.
//! - [`resolve_vault_password`], [`init_home`].

mod cluster;
mod error;
mod file_store;
mod fsutil;
mod home;
mod job_files;
mod job_log;
mod lock;
pub mod migrate;
pub mod names;
mod password;
mod process;
mod secret_store;
mod settings;
mod state;
mod state_header;
mod store;
pub mod vault;
mod watch;

pub use cluster::{ClusterNode, ClusterRecord, NodeRole, validate_label};
pub use error::StoreError;
pub use file_store::{JsonFileStore, SETTINGS_FILE, STATE_FILE};
pub use home::{HomePaths, InitOptions, InitReport, init_home, init_home_with};
#[cfg(feature = "mock")]
pub use job_log::MockJobLogStore;
pub use job_log::{FileJobLogs, JobLogStore, LogLevel, LogLine, MemoryJobLogs};
pub use lock::{LockConfig, LockInfo, read_lock_info};
pub use password::{
    PasswordSource, VAULT_PASSWORD_ENV, VAULT_PASSWORD_FILE, explicit_vault_password,
    read_password_file, resolve_vault_password, resolve_vault_password_from,
};
pub use process::{process_alive, this_host};
#[cfg(feature = "mock")]
pub use secret_store::MockSecretStore;
pub use secret_store::{MemorySecrets, SecretStore};
pub use settings::{SettingKey, Settings};
pub use state::{
    DeployedVia, DeploymentRecord, DeploymentStatus, DnsConfig, DnsMode, JobOwner, JobRecord,
    JobStatus, PlatformChoice, ProviderKind, STATE_VERSION, ServerRecord, ServerResources,
    ServerStatus, SetupRecord, State, validate_server_name, validate_unix_user,
};
#[cfg(feature = "mock")]
pub use store::MockStore;
pub use store::{JobUpdateFn, MemoryStore, SettingsUpdateFn, Store, StoreExt, UpdateFn};
pub use vault::{VAULT_FILE, Vault, validate_secret_name};

/// Re-exported so callers build secrets with the same `secrecy` version.
pub use secrecy::{ExposeSecret, SecretString};
