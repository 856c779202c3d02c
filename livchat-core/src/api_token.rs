//! The bearer token of the REST service and the MCP HTTP transport: one per home, in the vault
//! as `api_token`, at least 256 random bits, never a default. A rotation writes the vault; the
//! vault re-reads itself when the file changed, so running services refuse the old token at
//! once without a restart.

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::{Orchestrator, Result};

/// The vault secret holding the token.
pub const API_TOKEN: &str = "api_token";

/// 32 random bytes from the OS, hex: 256 bits.
fn new_token() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    SecretString::from(hex)
}

impl Orchestrator {
    /// The API token, created on first use; `rotate` replaces it (the old one stops working).
    pub fn api_token(&self, rotate: bool) -> Result<SecretString> {
        if !rotate && let Some(token) = self.secrets.get(API_TOKEN)? {
            return Ok(token);
        }
        let token = new_token();
        self.secrets.set(API_TOKEN, token.clone())?;
        Ok(token)
    }

    /// Whether `presented` is the current token, compared in constant time. False when no
    /// token exists yet: there is no default token.
    pub fn check_api_token(&self, presented: &str) -> Result<bool> {
        let Some(token) = self.secrets.get(API_TOKEN)? else {
            return Ok(false);
        };
        let expected = token.expose_secret().as_bytes();
        Ok(!expected.is_empty() && bool::from(expected.ct_eq(presented.as_bytes())))
    }
}
