//! SSH client keys: generating the Ed25519 key a created server is given, and reading a key the
//! user brings (`livchat server add --key FILE`: OpenSSH or PEM, Ed25519, ECDSA or RSA, with or
//! without a passphrase), so the core never handles key formats.

use rand::RngCore;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroize;

use crate::executor::RemoteError;

/// An SSH client key pair: the private half as OpenSSH PEM text (a secret, for the vault) and
/// the public half as an `authorized_keys` line.
pub struct KeyPair {
    pub private_openssh: SecretString,
    pub public_openssh: String,
    /// `SHA256:...` of the public key, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_openssh", &self.public_openssh)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn invalid(reason: impl Into<String>) -> RemoteError {
    RemoteError::Invalid {
        field: "ssh key".into(),
        reason: reason.into(),
    }
}

fn pair(key: &PrivateKey) -> Result<KeyPair, RemoteError> {
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| invalid(format!("could not encode the key: {e}")))?;
    let public = key.public_key();
    Ok(KeyPair {
        private_openssh: SecretString::from(private.as_str().to_owned()),
        public_openssh: public
            .to_openssh()
            .map_err(|e| invalid(format!("could not encode the public key: {e}")))?,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
    })
}

/// A new Ed25519 key pair from the OS random source, with `comment` (e.g. `livchat@<server>`).
pub fn generate_ed25519(comment: &str) -> Result<KeyPair, RemoteError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let keypair = Ed25519Keypair::from_seed(&seed);
    seed.zeroize();
    let mut key = PrivateKey::from(keypair);
    key.set_comment(comment);
    pair(&key)
}

/// Whether a private key needs a passphrase before it can be used.
pub fn private_key_is_encrypted(private_key: &SecretString) -> bool {
    matches!(
        russh::keys::decode_secret_key(private_key.expose_secret(), None),
        Err(russh::keys::Error::KeyIsEncrypted)
    )
}

/// Reads a private key the user brings: OpenSSH (`ssh-keygen`'s default) or PEM (PKCS#1 RSA,
/// PKCS#8), Ed25519, ECDSA or RSA, decrypted with `passphrase` when it is protected by one.
/// The returned pair holds the key as unencrypted OpenSSH text: a secret kept in memory for
/// one connection, never written anywhere. Errors say what is accepted and never echo the key.
pub fn decrypt_private_key(
    private_key: &SecretString,
    passphrase: Option<&SecretString>,
) -> Result<KeyPair, RemoteError> {
    let key = russh::keys::decode_secret_key(
        private_key.expose_secret(),
        passphrase.map(|p| p.expose_secret()),
    )
    .map_err(|e| match e {
        russh::keys::Error::KeyIsEncrypted => invalid(
            "the key is protected by a passphrase; give it (a prompt on a terminal, or --key-passphrase-file FILE)",
        ),
        russh::keys::Error::UnsupportedKeyType {
            key_type_string, ..
        } => invalid(format!(
            "{key_type_string} keys are not supported; use an Ed25519, ECDSA or RSA key"
        )),
        other if passphrase.is_some() && !private_key_is_plain_text(private_key) => invalid(format!(
            "the passphrase does not open the key ({other})"
        )),
        other => invalid(format!(
            "not a private key in OpenSSH or PEM format ({other}); use a key from `ssh-keygen`"
        )),
    })?;
    pair(&key)
}

/// A key that decodes without a passphrase: a passphrase given for it is not the problem.
fn private_key_is_plain_text(private_key: &SecretString) -> bool {
    russh::keys::decode_secret_key(private_key.expose_secret(), None).is_ok()
}

/// Reads an unencrypted private key (see [`decrypt_private_key`] for the formats).
pub fn parse_private_key(private_key: &SecretString) -> Result<KeyPair, RemoteError> {
    decrypt_private_key(private_key, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_openssh_text() {
        let generated = generate_ed25519("livchat@test").unwrap();
        assert!(generated.public_openssh.starts_with("ssh-ed25519 "));
        assert!(generated.fingerprint.starts_with("SHA256:"));
        let parsed = parse_private_key(&generated.private_openssh).unwrap();
        assert_eq!(parsed.public_openssh, generated.public_openssh);
        assert_eq!(parsed.fingerprint, generated.fingerprint);
    }

    #[test]
    fn two_generated_keys_differ() {
        let a = generate_ed25519("a").unwrap();
        let b = generate_ed25519("b").unwrap();
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn garbage_is_rejected_without_echoing_it() {
        let err = parse_private_key(&SecretString::from("not-a-key-s3cr3t".to_string()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssh key"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
