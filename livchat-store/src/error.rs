//! The one error type of the crate. Every variant names the file or field it is about and says
//! what is allowed or what to do next; none of them carries a secret.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lock::LockInfo;

/// Everything that can go wrong in the store and the vault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file-system call failed.
    #[error("{}: could not {action}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// What was being done, as a verb phrase ("read", "rename into place", ...).
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The home directory has not been initialised (no `state.json` or no vault).
    #[error("{} does not exist; run `livchat init` to create the LivChat home", path.display())]
    NotInitialized {
        /// The missing file.
        path: PathBuf,
    },

    /// `state.json` is truncated, not JSON, or does not match the schema. It is left untouched.
    #[error("{} is not a valid LivChat state file ({detail}); the file was left untouched. {}", path.display(), BackupHint { path, backup: backup.as_deref(), backup_serial: *backup_serial })]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// What the parser or validator said, with the field and line where known.
        detail: String,
        /// `state.json.bak`, when it exists.
        backup: Option<PathBuf>,
        /// The serial in `state.json.bak`, when it can be read: the backup is the version
        /// before the last write, so restoring it loses that write.
        backup_serial: Option<u64>,
    },

    /// `state.json` was written by a newer LivChat; this build refuses to read or overwrite it.
    #[error("{} has state version {found}, newer than version {supported} that this build understands; upgrade livchat (the file was left untouched)", path.display())]
    NewerVersion {
        /// The state file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The newest version this build knows.
        supported: u32,
    },

    /// Migrating an older state file to the current version failed.
    #[error("{}: migration from state version {from} failed: {detail} (the file was left untouched)", path.display())]
    Migration {
        /// The state file.
        path: PathBuf,
        /// The version the failing migration starts from.
        from: u64,
        /// What went wrong.
        detail: String,
    },

    /// A job file (`<home>/jobs/<id>.json`) is not a valid job record; it is left untouched.
    #[error("{} is not a valid LivChat job record ({detail}); the file was left untouched: fix or remove it", path.display())]
    CorruptJob {
        /// The job file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },

    /// A value given by the caller (or found in a file) is not allowed.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field, as a path (`servers.web-1.ssh_port`, `secret name`, `settings.email`).
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// A settings key outside the fixed set.
    #[error("unknown setting `{key}`; allowed keys: {}", allowed.join(", "))]
    UnknownSetting {
        /// The key that was asked for.
        key: String,
        /// Every allowed key.
        allowed: Vec<&'static str>,
    },

    /// Another writer holds the lock and did not release it within the configured wait.
    #[error("{} is locked by {}; gave up after waiting {:.1}s", path.display(), HolderText(holder.as_ref()), waited.as_secs_f64())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as written in the lock file (None if it could not be read).
        holder: Option<LockInfo>,
        /// How long this writer waited.
        waited: Duration,
    },

    /// The file on disk changed under the lock (a writer that ignores the lock): refuse to
    /// overwrite a newer state.
    #[error("{}: refusing to overwrite: the state on disk has serial {on_disk}, but this update started from serial {read}; another program wrote it without taking the lock. Retry the operation", path.display())]
    NewerSerial {
        /// The state file.
        path: PathBuf,
        /// The serial found on disk just before writing.
        on_disk: u64,
        /// The serial the update read.
        read: u64,
    },

    /// The state on disk belongs to another lineage (another home was copied over this one):
    /// refuse to overwrite it.
    #[error("{}: refusing to overwrite: its lineage is {on_disk}, but this store is working on lineage {expected}; the file was replaced by a different state", path.display())]
    ForeignLineage {
        /// The state file.
        path: PathBuf,
        /// The lineage on disk.
        on_disk: String,
        /// The lineage this store saw before.
        expected: String,
    },

    /// The vault's HMAC does not match: wrong password, or the file was modified.
    #[error("{}: HMAC verification failed: wrong vault password, or the file was modified (nothing was changed)", path.display())]
    VaultHmac {
        /// The vault file.
        path: PathBuf,
    },

    /// The vault file is not in the Ansible Vault 1.1/1.2 format, or its plaintext is not a map
    /// of secret names to strings.
    #[error("{}: not a valid LivChat vault: {detail} (nothing was changed)", path.display())]
    VaultFormat {
        /// The vault file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// The vault password could not be resolved or is unusable.
    #[error("vault password from {source_name}: {reason}")]
    VaultPassword {
        /// Where the password came from (`LIVCHAT_VAULT_PASSWORD`, a file path).
        source_name: String,
        /// What is wrong (never the password itself).
        reason: String,
    },

    /// An update closure refused the change; nothing was written.
    #[error("{0}")]
    Rejected(String),
}

impl StoreError {
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

struct BackupHint<'a> {
    path: &'a Path,
    backup: Option<&'a Path>,
    backup_serial: Option<u64>,
}

impl fmt::Display for BackupHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.backup, self.backup_serial) {
            (Some(backup), Some(serial)) => write!(
                f,
                "{backup} holds the version before the last write (serial {serial}): restoring it loses the last change. To restore it, inspect it and run `cp {backup} {path}`",
                backup = backup.display(),
                path = self.path.display()
            ),
            (Some(backup), None) => write!(
                f,
                "{backup} holds the version before the last write, but it cannot be read as a state file either; fix {path} by hand",
                backup = backup.display(),
                path = self.path.display()
            ),
            (None, _) => write!(f, "No backup (state.json.bak) exists; fix the file by hand"),
        }
    }
}

struct HolderText<'a>(Option<&'a LockInfo>);

impl fmt::Display for HolderText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(info) => write!(f, "{info}"),
            None => write!(f, "an unknown holder (the lock file could not be read)"),
        }
    }
}
