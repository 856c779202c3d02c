//! How a server's host key comes to be trusted: never silently. `server add` pins a key only
//! when the user gave its fingerprint, confirmed it when shown, or explicitly chose ssh's
//! `accept-new`; `server repin-host-key` replaces a pin only with a fingerprint the user gave
//! or confirmed after seeing the old and the new one.

use std::sync::Arc;

use crate::error::{CoreError, Result};

/// What a frontend shows before a key is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyOffer {
    pub server: String,
    pub host: String,
    pub port: u16,
    /// The fingerprint pinned now (`None` on first contact).
    pub pinned: Option<String>,
    /// The fingerprint the server presents now.
    pub presented: String,
}

/// Asks the user whether to trust [`HostKeyOffer::presented`]; `true` pins it.
pub type HostKeyQuestion = Arc<dyn Fn(&HostKeyOffer) -> bool + Send + Sync>;

/// The user's decision about a host key, made before or while connecting.
#[derive(Clone)]
pub enum HostKeyTrust {
    /// A fingerprint checked out of band (the server's console, the provider's panel): any
    /// other key is refused before anything is stored.
    Expect(String),
    /// Pin whatever key the server presents (ssh's `StrictHostKeyChecking=accept-new`), as an
    /// explicit choice. Allowed for `server add` only: a changed key is never accepted blindly.
    AcceptNew,
    /// Show the presented fingerprint (and the pinned one) and ask.
    Ask(HostKeyQuestion),
}

impl std::fmt::Debug for HostKeyTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Expect(fp) => f.debug_tuple("Expect").field(fp).finish(),
            Self::AcceptNew => f.write_str("AcceptNew"),
            Self::Ask(_) => f.write_str("Ask(..)"),
        }
    }
}

/// The result of `server repin-host-key`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Repinned {
    pub server: String,
    pub old: Option<String>,
    pub new: String,
    /// False when the server still presents the pinned key (nothing changed).
    pub changed: bool,
}

/// Checks a fingerprint as `ssh-keygen -l` prints it (`SHA256:` and 43 characters of
/// unpadded base64) and returns it without padding, as connections report it.
pub fn validate_fingerprint(field: &str, value: &str) -> Result<String> {
    let trimmed = value.trim();
    let ok = trimmed.strip_prefix("SHA256:").is_some_and(|b64| {
        let b64 = b64.trim_end_matches('=');
        b64.len() == 43
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    });
    if ok {
        Ok(trimmed.trim_end_matches('=').to_string())
    } else {
        Err(CoreError::invalid(
            field,
            format!(
                "`{}` is not a host key fingerprint; expected SHA256: followed by 43 base64 characters, as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it on the server",
                value.escape_debug()
            ),
        ))
    }
}

/// The command that replaces a pin; a frontend that sees it in a job's error offers it instead
/// of `job retry`.
pub const REPIN_COMMAND: &str = "livchat server repin-host-key";

/// The advice every "host key changed" error carries: what to check, and the command that
/// replaces the pin (never `job retry`, which would only fail again).
pub fn host_key_changed(server: &str, pinned: &str, presented: &str) -> CoreError {
    CoreError::Refused(format!(
        "host key changed for {server}: pinned {pinned}, presented {presented}. \
         Someone may be intercepting the connection. If the server was reinstalled, check the \
         new key on its console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and run \
         `{REPIN_COMMAND} {server} --fingerprint SHA256:...`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_accepted_with_or_without_padding_and_nothing_else() {
        let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        assert_eq!(validate_fingerprint("f", fp).unwrap(), fp);
        assert_eq!(validate_fingerprint("f", &format!("{fp}=")).unwrap(), fp);
        for bad in [
            "",
            "SHA256:",
            "MD5:aa:bb",
            "uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            "SHA256:short",
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2;",
        ] {
            let err = validate_fingerprint("--fingerprint", bad).unwrap_err();
            assert!(
                matches!(&err, CoreError::Invalid { field, .. } if field == "--fingerprint"),
                "{bad}: {err:?}"
            );
        }
    }
}
