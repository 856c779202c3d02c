//! Where the vault password comes from: `LIVCHAT_VAULT_PASSWORD`, else an explicit
//! `--vault-password-file`, else `<home>/.vault_password`. Like ansible, surrounding
//! whitespace (spaces, tabs, CR, LF) is stripped and an empty password is an error. Unlike
//! ansible, an executable password file is read, never run.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::StoreError;

/// The environment variable holding the vault password.
pub const VAULT_PASSWORD_ENV: &str = "LIVCHAT_VAULT_PASSWORD";

/// The password file's name inside the home directory.
pub const VAULT_PASSWORD_FILE: &str = ".vault_password";

/// Where a resolved password came from (for messages; never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The `LIVCHAT_VAULT_PASSWORD` environment variable.
    Env,
    /// A password file.
    File(PathBuf),
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Env => f.write_str(VAULT_PASSWORD_ENV),
            PasswordSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Resolves the vault password from the process environment, `explicit_file`, or the home's
/// password file, in that order.
pub fn resolve_vault_password(
    home: &Path,
    explicit_file: Option<&Path>,
) -> Result<(SecretString, PasswordSource), StoreError> {
    let env = match std::env::var(VAULT_PASSWORD_ENV) {
        Ok(v) => Some(SecretString::from(v)),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(StoreError::VaultPassword {
                source_name: VAULT_PASSWORD_ENV.into(),
                reason: "the value is not valid UTF-8".into(),
            });
        }
    };
    resolve_vault_password_from(env, home, explicit_file)
}

/// The password `init` must use instead of generating one: the environment's, else
/// `explicit_file`'s; `None` when neither is given (then the home's own `.vault_password` is
/// kept or created). Lives here so the caller does not read the environment itself.
pub fn explicit_vault_password(
    home: &Path,
    explicit_file: Option<&Path>,
) -> Result<Option<SecretString>, StoreError> {
    if std::env::var(VAULT_PASSWORD_ENV).is_err() && explicit_file.is_none() {
        return Ok(None);
    }
    resolve_vault_password(home, explicit_file).map(|(password, _)| Some(password))
}

/// [`resolve_vault_password`] with the environment value passed in (for tests and for callers
/// that read their configuration elsewhere).
pub fn resolve_vault_password_from(
    env_value: Option<SecretString>,
    home: &Path,
    explicit_file: Option<&Path>,
) -> Result<(SecretString, PasswordSource), StoreError> {
    if let Some(value) = env_value {
        let password = clean(value.expose_secret(), &PasswordSource::Env)?;
        return Ok((password, PasswordSource::Env));
    }
    let path = match explicit_file {
        Some(p) => p.to_path_buf(),
        None => home.join(VAULT_PASSWORD_FILE),
    };
    let password = read_password_file(&path)?;
    Ok((password, PasswordSource::File(path)))
}

/// Reads a password file, stripping surrounding whitespace; empty is an error.
pub fn read_password_file(path: &Path) -> Result<SecretString, StoreError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| StoreError::VaultPassword {
        source_name: path.display().to_string(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "the file does not exist; set {VAULT_PASSWORD_ENV}, pass --vault-password-file, or run `livchat init`"
            )
        } else {
            format!("could not read the file: {e}")
        },
    })?);
    let source = PasswordSource::File(path.to_path_buf());
    let text = std::str::from_utf8(&bytes).map_err(|_| StoreError::VaultPassword {
        source_name: source.to_string(),
        reason: "the file is not valid UTF-8".into(),
    })?;
    clean(text, &source)
}

fn clean(raw: &str, source: &PasswordSource) -> Result<SecretString, StoreError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(StoreError::VaultPassword {
            source_name: source.to_string(),
            reason: "the password is empty (after stripping whitespace)".into(),
        });
    }
    Ok(SecretString::from(trimmed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_and_is_stripped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(VAULT_PASSWORD_FILE), "from-file").unwrap();
        let (pw, src) = resolve_vault_password_from(
            Some(SecretString::from(" env-pw\r\n".to_string())),
            dir.path(),
            None,
        )
        .unwrap();
        assert_eq!(pw.expose_secret(), "env-pw");
        assert_eq!(src, PasswordSource::Env);
    }

    #[test]
    fn explicit_file_wins_over_home_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(VAULT_PASSWORD_FILE), "home").unwrap();
        let explicit = dir.path().join("other");
        std::fs::write(&explicit, "\texplicit \r\n").unwrap();
        let (pw, src) = resolve_vault_password_from(None, dir.path(), Some(&explicit)).unwrap();
        assert_eq!(pw.expose_secret(), "explicit");
        assert_eq!(src, PasswordSource::File(explicit));
        let (pw, _) = resolve_vault_password_from(None, dir.path(), None).unwrap();
        assert_eq!(pw.expose_secret(), "home");
    }

    #[test]
    fn empty_password_is_an_error_naming_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(VAULT_PASSWORD_FILE);
        std::fs::write(&file, " \r\n\n").unwrap();
        let err = resolve_vault_password_from(None, dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&file.display().to_string()) && err.contains("empty"),
            "{err}"
        );
        let err = resolve_vault_password_from(
            Some(SecretString::from("\n".to_string())),
            dir.path(),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(VAULT_PASSWORD_ENV), "{err}");
    }

    #[test]
    fn missing_file_says_how_to_provide_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_vault_password_from(None, dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("livchat init") && err.contains(VAULT_PASSWORD_ENV),
            "{err}"
        );
    }
}
