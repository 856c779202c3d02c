//! Secrets an app needs: which are missing from what the caller already holds, and generating
//! only those. The caller (core) stores the generated values in its vault, so a redeploy
//! reuses them; this crate never keeps a secret beyond the call.

use std::collections::BTreeMap;

use rand::Rng;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};

use crate::definition::{Alphabet, AppDefinition, SecretSpec};

/// One app's secrets by name.
pub type AppSecrets = BTreeMap<String, SecretString>;

/// Secrets of several apps: app name -> secret name -> value. A render needs the app's own
/// secrets and the shared ones of its dependencies (see [`crate::Catalog::secrets_needed`]).
pub type SecretsByApp = BTreeMap<String, AppSecrets>;

/// Names a secret across apps. `vault_key()` is a suggested vault name (`app.<app>.<secret>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SecretRef {
    pub app: String,
    pub name: String,
}

impl SecretRef {
    pub fn new(app: impl Into<String>, name: impl Into<String>) -> Self {
        SecretRef {
            app: app.into(),
            name: name.into(),
        }
    }

    /// A vault key in the store's allowlist (`[a-z0-9_.-]`): `app.<app>.<secret>`.
    pub fn vault_key(&self) -> String {
        format!("app.{}.{}", self.app, self.name)
    }

    /// The Docker (Swarm) secret name a stack references: `livchat_<app>_<secret>`.
    pub fn docker_secret_name(&self) -> String {
        format!("livchat_{}_{}", self.app, self.name)
    }
}

/// The specs of the secrets `definition` declares that `existing` lacks, in declaration order.
pub fn missing_secrets<'a>(
    definition: &'a AppDefinition,
    existing: &AppSecrets,
) -> Vec<&'a SecretSpec> {
    definition
        .secrets
        .iter()
        .filter(|spec| !existing.contains_key(&spec.name))
        .collect()
}

/// Generates values for the missing secrets only; existing ones are never touched, so values
/// stay stable across redeploys. Returns just the new ones (for the caller to store).
pub fn generate_missing(definition: &AppDefinition, existing: &AppSecrets) -> AppSecrets {
    missing_secrets(definition, existing)
        .into_iter()
        .map(|spec| (spec.name.clone(), generate(spec)))
        .collect()
}

/// `existing` plus freshly generated values for whatever is missing.
pub fn complete(definition: &AppDefinition, existing: &AppSecrets) -> AppSecrets {
    let mut all: AppSecrets = existing
        .iter()
        .map(|(k, v)| (k.clone(), SecretString::from(v.expose_secret().to_owned())))
        .collect();
    all.extend(generate_missing(definition, existing));
    all
}

/// One value from the OS random source, following the spec's length and alphabet.
pub fn generate(spec: &SecretSpec) -> SecretString {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const HEX: &[u8] = b"0123456789abcdef";
    // Only specials that every policy met so far accepts: Flowise 3's allows no others.
    const SYMBOLS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-!@%*";
    let length = usize::from(spec.length);
    let alphabet = match spec.alphabet {
        Alphabet::Alphanumeric => ALNUM,
        Alphabet::Hex => HEX,
        Alphabet::Symbols => SYMBOLS,
    };
    let mut rng = OsRng;
    loop {
        let value: String = (0..length)
            .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
            .collect();
        // Password policies (n8n's, for one) want every class; redraw in the rare case one is
        // missing rather than bias the distribution by forcing positions.
        let ok = match spec.alphabet {
            Alphabet::Alphanumeric => {
                value.bytes().any(|b| b.is_ascii_uppercase())
                    && value.bytes().any(|b| b.is_ascii_lowercase())
                    && value.bytes().any(|b| b.is_ascii_digit())
            }
            Alphabet::Hex => true,
            Alphabet::Symbols => {
                value.bytes().any(|b| b.is_ascii_uppercase())
                    && value.bytes().any(|b| b.is_ascii_lowercase())
                    && value.bytes().any(|b| b.is_ascii_digit())
                    && value.bytes().any(|b| !b.is_ascii_alphanumeric())
            }
        };
        if ok {
            return SecretString::from(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, length: u16, alphabet: Alphabet) -> SecretSpec {
        SecretSpec {
            name: name.into(),
            length,
            alphabet,
            description: String::new(),
        }
    }

    #[test]
    fn generated_secrets_follow_length_and_alphabet() {
        for _ in 0..200 {
            let v = generate(&spec("a", 16, Alphabet::Alphanumeric));
            let v = v.expose_secret();
            assert_eq!(v.len(), 16);
            assert!(v.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(v.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(v.bytes().any(|b| b.is_ascii_digit()));
            let h = generate(&spec("b", 64, Alphabet::Hex));
            assert!(
                h.expose_secret()
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
    }

    #[test]
    fn symbol_secrets_hold_every_class_and_nothing_outside_the_alphabet() {
        for _ in 0..200 {
            let v = generate(&spec("c", 12, Alphabet::Symbols));
            let v = v.expose_secret();
            assert_eq!(v.len(), 12);
            assert!(v.bytes().any(|b| b.is_ascii_uppercase()), "{v}");
            assert!(v.bytes().any(|b| b.is_ascii_lowercase()), "{v}");
            assert!(v.bytes().any(|b| b.is_ascii_digit()), "{v}");
            assert!(v.bytes().any(|b| b"-!@%*".contains(&b)), "{v}");
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-!@%*".contains(&b)),
                "{v}"
            );
        }
    }

    #[test]
    fn two_generations_differ() {
        let s = spec("a", 32, Alphabet::Alphanumeric);
        assert_ne!(generate(&s).expose_secret(), generate(&s).expose_secret());
    }
}
