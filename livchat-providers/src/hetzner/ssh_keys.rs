//! SSH keys: a public key checked and fingerprinted as Hetzner does (MD5), ensured by
//! fingerprint so the same key is never uploaded twice, and deleted by name when it is ours.

use std::collections::BTreeMap;

use base64::Engine as _;
use hcloud::models;
use reqwest::Method;

use crate::error::{CloudError, Result, Service};
use crate::provider::SshKey;
use crate::validate;

use super::HetznerProvider;
use super::client::{is_managed, json, managed_labels};
use super::errors::api_error;

/// The MD5 fingerprint Hetzner computes for a public key (`aa:bb:...`), after checking the
/// key's shape: `<type> <base64 blob> [comment]` with an allowed type whose name matches the
/// one inside the blob.
pub fn ssh_fingerprint(public_key: &str) -> Result<String> {
    const TYPES: [&str; 6] = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
    ];
    let bad = |why: &str| CloudError::InvalidInput {
        field: "public_key",
        reason: format!(
            "{why}; expected one OpenSSH public key line such as 'ssh-ed25519 AAAA... comment'"
        ),
    };
    if public_key.trim().contains(['\n', '\r', '\0']) {
        return Err(bad("more than one line"));
    }
    let mut parts = public_key.split_whitespace();
    let kind = parts.next().ok_or_else(|| bad("empty key"))?;
    if !TYPES.contains(&kind) {
        return Err(bad(&format!(
            "key type {kind:?} is not one of {}",
            TYPES.join(", ")
        )));
    }
    let blob = parts.next().ok_or_else(|| bad("no key data"))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| bad("the key data is not base64"))?;
    // The blob starts with the type as an SSH string (u32 length, bytes).
    let inner = blob
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n));
    if inner != Some(kind.as_bytes()) {
        return Err(bad("the key data does not match its type"));
    }
    let digest = md5::compute(&blob);
    Ok(digest
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn to_ssh_key(k: models::SshKey) -> SshKey {
    SshKey {
        id: k.id,
        name: k.name,
        fingerprint: k.fingerprint,
        public_key: k.public_key,
    }
}

pub(super) async fn ensure(
    hetzner: &HetznerProvider,
    name: &str,
    public_key: &str,
) -> Result<SshKey> {
    validate::catalog_name("name", name)?;
    let fingerprint = ssh_fingerprint(public_key)?;
    let public_key = public_key.trim();
    let by_fingerprint = || async {
        let keys: Vec<models::SshKey> = hetzner
            .list_all(
                "find ssh key",
                "/ssh_keys",
                "ssh_keys",
                &[("fingerprint", fingerprint.clone())],
            )
            .await?;
        Ok::<_, CloudError>(keys.into_iter().find(|k| k.fingerprint == fingerprint))
    };
    if let Some(k) = by_fingerprint().await? {
        return Ok(to_ssh_key(k));
    }
    let mut request = models::CreateSshKeyRequest::new(name.to_owned(), public_key.to_owned());
    request.labels = Some(managed_labels(&BTreeMap::new()));
    let operation = "create ssh key";
    let reply = hetzner
        .call(
            operation,
            Method::POST,
            "/ssh_keys",
            &[],
            Some(&json(&request)),
        )
        .await?;
    if reply.status.is_success() {
        let got: models::CreateSshKeyResponse = hetzner.http.decode(operation, &reply)?;
        return Ok(to_ssh_key(*got.ssh_key));
    }
    match api_error(operation, reply, Some(name)) {
        // Either a retried POST that had succeeded, or the name holds another key.
        CloudError::NameTaken { message, .. } => match by_fingerprint().await? {
            Some(k) => Ok(to_ssh_key(k)),
            None => Err(CloudError::NameTaken {
                service: Service::Hetzner,
                name: name.to_owned(),
                message: format!(
                    "an SSH key named {name:?} exists with another public key ({message})"
                ),
            }),
        },
        other => Err(other),
    }
}

pub(super) async fn delete(hetzner: &HetznerProvider, name: &str) -> Result<()> {
    validate::catalog_name("name", name)?;
    hetzner
        .delete_named::<models::SshKey>("ssh key", "ssh_keys", name, |k| {
            (k.id, &k.name, is_managed(&k.labels))
        })
        .await
}
