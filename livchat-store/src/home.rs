//! `init_home`: create a LivChat home directory, idempotently.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::file_store::{JsonFileStore, STATE_FILE};
use crate::fsutil;
use crate::password::{VAULT_PASSWORD_FILE, read_password_file};
use crate::vault::{VAULT_FILE, Vault};

/// The files of a home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomePaths {
    /// The home directory.
    pub home: PathBuf,
    /// `<home>/state.json`.
    pub state: PathBuf,
    /// `<home>/credentials.vault`.
    pub vault: PathBuf,
    /// `<home>/.vault_password`.
    pub password_file: PathBuf,
}

impl HomePaths {
    /// The paths inside `home`.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        let home = home.into();
        HomePaths {
            state: home.join(STATE_FILE),
            vault: home.join(VAULT_FILE),
            password_file: home.join(VAULT_PASSWORD_FILE),
            home,
        }
    }
}

/// Options of [`init_home_with`].
#[derive(Debug, Default)]
pub struct InitOptions {
    /// Encrypt a new vault with this password instead of the home's `.vault_password`
    /// (which is then not created). Use when the password comes from `LIVCHAT_VAULT_PASSWORD`
    /// or `--vault-password-file`.
    pub vault_password: Option<SecretString>,
    /// Vault-id label: a new vault is written in format 1.2 carrying it.
    pub vault_label: Option<String>,
}

/// What [`init_home`] created (everything else already existed and was checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The paths of the home.
    pub paths: HomePaths,
    /// The directory was created (mode 0700).
    pub created_home: bool,
    /// `.vault_password` was created (32 random bytes, hex, mode 0600).
    pub created_password_file: bool,
    /// An empty vault was created (mode 0600).
    pub created_vault: bool,
    /// An empty `state.json` with a new lineage was created.
    pub created_state: bool,
}

/// [`init_home_with`] with default options: the vault password is `<home>/.vault_password`.
pub fn init_home(home: &Path) -> Result<InitReport, StoreError> {
    init_home_with(home, InitOptions::default())
}

/// Creates the home directory (0700), the vault password file (0600, unless a password is
/// given), an empty vault (0600) and an empty `state.json`. Idempotent: an existing password
/// file or vault is never overwritten; existing files are checked instead (a vault that the
/// password does not open, or a corrupt state, is an error).
pub fn init_home_with(home: &Path, options: InitOptions) -> Result<InitReport, StoreError> {
    let paths = HomePaths::new(home);
    let created_home = !home.is_dir();
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .map_err(|e| StoreError::io(home, "create the home directory", e))?;

    let (password, created_password_file) = match options.vault_password {
        Some(pw) => (pw, false),
        None => ensure_password_file(&paths.password_file)?,
    };
    let (_, created_vault) = Vault::create_if_missing(&paths.vault, password, options.vault_label)?;
    let (_, created_state) = JsonFileStore::at_path(&paths.state).initialize()?;
    Ok(InitReport {
        paths,
        created_home,
        created_password_file,
        created_vault,
        created_state,
    })
}

/// Creates the password file with `O_EXCL` and mode 0600 unless it exists; returns the
/// password in it.
fn ensure_password_file(path: &Path) -> Result<(SecretString, bool), StoreError> {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut_slice());
    let mut text = Zeroizing::new(hex::encode(raw.as_slice()));
    text.push('\n');
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io(path, "write the vault password file", e))?;
            fsutil::fsync_dir(fsutil::parent_dir(path))?;
            Ok((SecretString::from(text.trim().to_string()), true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((read_password_file(path)?, false))
        }
        Err(e) => Err(StoreError::io(path, "create the vault password file", e)),
    }
}
