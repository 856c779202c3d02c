//! Redaction of secret values from job logs and errors: every secret a job touches is
//! registered here, and every message passes through [`Redactor::redact`] before it is stored
//! or streamed.

use std::sync::Mutex;

use secrecy::{ExposeSecret, SecretString};

/// The replacement text for a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Secret values to hide from messages.
#[derive(Default)]
pub struct Redactor {
    secrets: Mutex<Vec<SecretString>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").finish_non_exhaustive()
    }
}

impl Redactor {
    /// Registers a secret. Very short values are not registered: replacing every "a" in a log
    /// would destroy it and protect nothing, and generated secrets are long.
    pub fn add(&self, secret: &SecretString) {
        if secret.expose_secret().len() < 6 {
            return;
        }
        let mut secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        if !secrets
            .iter()
            .any(|s| s.expose_secret() == secret.expose_secret())
        {
            // Longest first: a secret that contains another must be replaced whole, or the
            // shorter one's replacement would leave the rest of the longer one in the text.
            let at = secrets
                .partition_point(|s| s.expose_secret().len() >= secret.expose_secret().len());
            secrets.insert(at, secret.clone());
        }
    }

    /// The message with every registered secret replaced by [`REDACTED`].
    pub fn redact(&self, message: &str) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = message.to_string();
        for s in secrets.iter() {
            let value = s.expose_secret();
            if out.contains(value) {
                out = out.replace(value, REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_replaced_everywhere_in_a_message() {
        let r = Redactor::default();
        r.add(&SecretString::from("hunter2-long".to_string()));
        assert_eq!(
            r.redact("pw=hunter2-long; again hunter2-long"),
            "pw=[REDACTED]; again [REDACTED]"
        );
    }

    #[test]
    fn a_secret_containing_another_is_replaced_whole_whatever_the_order_they_came_in() {
        let r = Redactor::default();
        r.add(&SecretString::from("inner-secret".to_string()));
        r.add(&SecretString::from(
            "prefix-inner-secret-suffix".to_string(),
        ));
        assert_eq!(r.redact("x prefix-inner-secret-suffix y"), "x [REDACTED] y");
    }

    #[test]
    fn short_values_are_not_treated_as_secrets() {
        let r = Redactor::default();
        r.add(&SecretString::from("a".to_string()));
        assert_eq!(r.redact("a cat"), "a cat");
    }
}
