//! The credentials vault: `<home>/credentials.vault`, an Ansible Vault (1.1, or 1.2 with a
//! vault-id label) whose plaintext is a YAML map `secret name -> value`, so
//! `ansible-vault view credentials.vault` opens it.
//!
//! Every read decrypts the file as it is on disk (cached while the file is unchanged), and
//! every write happens under `credentials.vault.lock`: read, decrypt, change, encrypt, write a
//! 0600 temp file, fsync, rename, fsync the directory. Plaintext never reaches the disk, not
//! even in a temp file, and plaintext buffers are zeroized.

pub mod format;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use secrecy::{ExposeSecret, SecretString};
use zeroize::{Zeroize, Zeroizing};

use crate::error::StoreError;
use crate::fsutil;
use crate::lock::{self, LockConfig};

pub use format::FormatError;

/// File name of the vault inside the home directory.
pub const VAULT_FILE: &str = "credentials.vault";

/// Allowlist for secret names: 1-128 characters from `a-z 0-9 _ . -`.
pub fn validate_secret_name(name: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not allowed: expected 1-128 characters from a-z, 0-9, '_', '.' and '-'",
            name.escape_debug()
        ))
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    validate_secret_name(name).map_err(|r| StoreError::invalid("secret name", r))
}

type Secrets = BTreeMap<String, SecretString>;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// An open vault. Holds the password (as a `SecretString`) and a cache of the decrypted map
/// keyed by the file's identity, never a file handle.
#[derive(Debug)]
pub struct Vault {
    path: PathBuf,
    password: SecretString,
    label: Option<String>,
    lock: LockConfig,
    cache: Mutex<Option<(Stamp, Secrets)>>,
}

impl Vault {
    /// Opens an existing vault and checks the password against it. With `label`, writes use
    /// the 1.2 header carrying it; reads accept 1.1 and 1.2 whatever the label.
    ///
    /// Errors: `NotInitialized` if the file is missing, `VaultHmac` (naming the file) for a
    /// wrong password, `VaultFormat` for a file that is not a vault of string secrets.
    pub fn open(
        path: impl Into<PathBuf>,
        password: SecretString,
        label: Option<String>,
    ) -> Result<Vault, StoreError> {
        let vault = Self::unchecked(path.into(), password, label)?;
        vault.with_secrets(|_| ())?;
        Ok(vault)
    }

    /// Like [`Vault::open`], but the password is checked (and the key derived, PBKDF2 with
    /// the 10,000 rounds the format fixes) at the first read or write instead: a command
    /// that touches no secret (`server list`) does not pay for it. A missing file is still
    /// `NotInitialized` here; a wrong password is `VaultHmac` from the first use.
    pub fn open_deferred(
        path: impl Into<PathBuf>,
        password: SecretString,
        label: Option<String>,
    ) -> Result<Vault, StoreError> {
        let vault = Self::unchecked(path.into(), password, label)?;
        match std::fs::metadata(&vault.path) {
            Ok(_) => Ok(vault),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotInitialized { path: vault.path })
            }
            Err(e) => Err(StoreError::io(&vault.path, "stat", e)),
        }
    }

    /// Creates an empty vault at `path` if there is none, then opens it (an existing vault is
    /// never overwritten; a wrong password for it is an error). Returns whether it was created.
    pub fn create_if_missing(
        path: impl Into<PathBuf>,
        password: SecretString,
        label: Option<String>,
    ) -> Result<(Vault, bool), StoreError> {
        let vault = Self::unchecked(path.into(), password, label)?;
        let created = {
            let _guard = lock::acquire(&vault.lock_path(), "vault init", &vault.lock)?;
            if vault.path.exists() {
                false
            } else {
                vault.write(&Secrets::new())?;
                true
            }
        };
        vault.with_secrets(|_| ())?;
        Ok((vault, created))
    }

    fn unchecked(
        path: PathBuf,
        password: SecretString,
        label: Option<String>,
    ) -> Result<Vault, StoreError> {
        if password.expose_secret().is_empty() {
            return Err(StoreError::VaultPassword {
                source_name: "the caller".into(),
                reason: "the password is empty".into(),
            });
        }
        if let Some(label) = &label {
            format::validate_label(label).map_err(|r| StoreError::invalid("vault-id label", r))?;
        }
        Ok(Vault {
            path,
            password,
            label,
            lock: LockConfig::default(),
            cache: Mutex::new(None),
        })
    }

    /// Sets how long writers wait for a busy vault lock.
    pub fn with_lock_config(mut self, lock: LockConfig) -> Self {
        self.lock = lock;
        self
    }

    /// The vault file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file (`credentials.vault.lock`).
    pub fn lock_path(&self) -> PathBuf {
        lock::lock_path_for(&self.path)
    }

    /// The secret `name`, if present.
    pub fn get(&self, name: &str) -> Result<Option<SecretString>, StoreError> {
        check_name(name)?;
        self.with_secrets(|s| s.get(name).cloned())
    }

    /// Every secret name, sorted.
    pub fn names(&self) -> Result<Vec<String>, StoreError> {
        self.with_secrets(|s| s.keys().cloned().collect())
    }

    /// Whether the secret `name` is present.
    pub fn contains(&self, name: &str) -> Result<bool, StoreError> {
        check_name(name)?;
        self.with_secrets(|s| s.contains_key(name))
    }

    /// Stores `value` under `name` (replacing any previous value).
    pub fn set(&self, name: &str, value: SecretString) -> Result<(), StoreError> {
        check_name(name)?;
        self.modify("vault set", |secrets| {
            let changed = secrets
                .get(name)
                .is_none_or(|old| old.expose_secret() != value.expose_secret());
            secrets.insert(name.to_string(), value);
            changed
        })
        .map(|_| ())
    }

    /// Removes `name`; returns whether it was present.
    pub fn delete(&self, name: &str) -> Result<bool, StoreError> {
        check_name(name)?;
        self.modify("vault delete", |secrets| secrets.remove(name).is_some())
    }

    /// Runs `change` on the current secrets under the lock and writes the result if it
    /// reports a change.
    fn modify(
        &self,
        operation: &str,
        change: impl FnOnce(&mut Secrets) -> bool,
    ) -> Result<bool, StoreError> {
        let _guard = lock::acquire(&self.lock_path(), operation, &self.lock)?;
        let mut secrets = self.with_secrets(Secrets::clone)?;
        if !change(&mut secrets) {
            return Ok(false);
        }
        self.write(&secrets)?;
        // Under the lock nobody else writes, so the file now is exactly `secrets`.
        let stamp = self.stamp()?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((stamp, secrets));
        Ok(true)
    }

    fn stamp(&self) -> Result<Stamp, StoreError> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(Stamp {
                ino: m.ino(),
                len: m.len(),
                mtime: m.mtime(),
                mtime_nsec: m.mtime_nsec(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotInitialized {
                path: self.path.clone(),
            }),
            Err(e) => Err(StoreError::io(&self.path, "stat", e)),
        }
    }

    /// Runs `f` on the current secrets, decrypted from disk unless the cached copy is of the
    /// same file version (no copy of the map is made for reads).
    fn with_secrets<R>(&self, f: impl FnOnce(&Secrets) -> R) -> Result<R, StoreError> {
        let stamp = self.stamp()?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, secrets)) = cache.as_ref()
            && *cached == stamp
        {
            return Ok(f(secrets));
        }
        let text = std::fs::read(&self.path).map_err(|e| StoreError::io(&self.path, "read", e))?;
        let plain = format::decrypt(&text, &self.password).map_err(|e| match e {
            FormatError::HmacMismatch => StoreError::VaultHmac {
                path: self.path.clone(),
            },
            FormatError::Malformed(detail) => StoreError::VaultFormat {
                path: self.path.clone(),
                detail,
            },
        })?;
        let secrets = parse_plaintext(&plain).map_err(|detail| StoreError::VaultFormat {
            path: self.path.clone(),
            detail,
        })?;
        // The stamp was taken before reading: if the file was replaced in between, the next
        // call sees a different stamp and reads again.
        let (_, secrets) = cache.insert((stamp, secrets));
        Ok(f(secrets))
    }

    fn write(&self, secrets: &Secrets) -> Result<(), StoreError> {
        let plain = render_plaintext(secrets);
        let text = format::encrypt(plain.as_bytes(), &self.password, self.label.as_deref())
            .map_err(|e| StoreError::invalid("vault-id label", e.to_string()))?;
        fsutil::atomic_replace(&self.path, text.as_bytes(), None)
    }
}

/// YAML of the map, in a zeroizing buffer.
fn render_plaintext(secrets: &Secrets) -> Zeroizing<String> {
    if secrets.is_empty() {
        return Zeroizing::new("{}\n".to_string());
    }
    let exposed: BTreeMap<&str, &str> = secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose_secret()))
        .collect();
    Zeroizing::new(serde_yaml::to_string(&exposed).expect("a map of strings serializes to YAML"))
}

/// Parses the YAML plaintext. The error never quotes a value (serde's messages can).
fn parse_plaintext(plain: &[u8]) -> Result<Secrets, String> {
    if plain.iter().all(u8::is_ascii_whitespace) {
        return Ok(Secrets::new());
    }
    let parsed: Option<BTreeMap<String, String>> = serde_yaml::from_slice(plain).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" (near line {})", l.line()))
            .unwrap_or_default();
        format!("the decrypted content is not a YAML map of secret names to string values{at}")
    })?;
    let mut map = parsed.unwrap_or_default();
    // Copy each value into its SecretString, then wipe the parser's String: converting the
    // String itself could reallocate (shrink) and leave an unwiped copy behind.
    let secrets = map
        .iter()
        .map(|(k, v)| (k.clone(), SecretString::from(v.as_str())))
        .collect();
    map.values_mut().for_each(Zeroize::zeroize);
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_outside_the_allowlist_are_rejected_naming_the_field() {
        for bad in ["", "Upper", "a b", "a/b", "a;b", "-\n", &"x".repeat(129)] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid secret name"), "{err}");
        }
        for good in [
            "hetzner_token",
            "server.web-1.ssh_key",
            "app.n8n.db_password",
            "a",
        ] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn plaintext_round_trips_awkward_values() {
        let mut secrets = Secrets::new();
        for (k, v) in [
            ("multi", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"),
            ("quotes", "it's \"quoted\": yes"),
            ("unicode", "senha-çãé-密码"),
            ("number_like", "5432"),
            ("bool_like", "yes"),
            ("empty", ""),
            ("spaces", "  padded  "),
        ] {
            secrets.insert(k.to_string(), SecretString::from(v.to_string()));
        }
        let parsed = parse_plaintext(render_plaintext(&secrets).as_bytes()).unwrap();
        assert_eq!(parsed.len(), secrets.len());
        for (k, v) in &secrets {
            assert_eq!(parsed[k].expose_secret(), v.expose_secret(), "{k}");
        }
    }

    #[test]
    fn a_nested_value_is_an_error_that_does_not_quote_it() {
        let err = parse_plaintext(b"ok: fine\nport:\n  inner: 987654321\n").unwrap_err();
        assert!(!err.contains("987654321"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn a_plain_scalar_typed_by_hand_is_read_as_its_text() {
        // Someone editing with `ansible-vault edit` may write `port: 5432` without quotes.
        let secrets = parse_plaintext(b"port: 5432\nflag: yes\n").unwrap();
        assert_eq!(secrets["port"].expose_secret(), "5432");
        assert_eq!(secrets["flag"].expose_secret(), "yes");
    }
}
