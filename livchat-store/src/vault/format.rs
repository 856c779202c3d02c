//! The Ansible Vault 1.1/1.2 envelope, implemented from ansible's
//! `lib/ansible/parsing/vault/__init__.py` (no maintained Rust crate implements it):
//!
//! - header `$ANSIBLE_VAULT;1.1;AES256` or `$ANSIBLE_VAULT;1.2;AES256;<label>` (label not
//!   authenticated);
//! - PBKDF2-HMAC-SHA256, 10,000 iterations, 32-byte random salt, 80 bytes derived:
//!   AES key `[0..32]`, HMAC key `[32..64]`, initial CTR counter `[64..80]` (128-bit big endian);
//! - AES-256-CTR over the PKCS7-padded plaintext, HMAC-SHA256 over the ciphertext
//!   (encrypt-then-MAC), verified in constant time before anything is decrypted;
//! - body: `hex(salt) \n hex(hmac) \n hex(ciphertext)`, hexlified again, 80 columns, final
//!   newline. Parsing joins all lines after the header, so other widths and CRLF are accepted.

use aes::Aes256;
use ctr::Ctr128BE;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// PBKDF2 iterations ansible uses.
pub const ITERATIONS: u32 = 10_000;
const SALT_LEN: usize = 32;
const BLOCK: usize = 16;
const LINE_WIDTH: usize = 80;
const MAGIC: &str = "$ANSIBLE_VAULT";

/// Why a vault text could not be decrypted (no secret in either variant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The HMAC does not match: wrong password or modified file.
    #[error("HMAC verification failed")]
    HmacMismatch,
    /// Not an Ansible Vault 1.1/1.2 AES256 text.
    #[error("{0}")]
    Malformed(String),
}

/// The parsed header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `1.1` or `1.2`.
    pub version: String,
    /// The vault-id label (1.2 only).
    pub label: Option<String>,
}

/// Allowlist for vault-id labels: they go into the header line, which is `;`-separated.
pub fn validate_label(label: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("expected 1-64 characters from A-Z, a-z, 0-9, '_', '.' and '-'".to_string())
    }
}

struct Keys(Zeroizing<[u8; 80]>);

impl Keys {
    fn derive(password: &SecretString, salt: &[u8]) -> Self {
        let mut out = Zeroizing::new([0u8; 80]);
        pbkdf2::pbkdf2_hmac::<Sha256>(
            password.expose_secret().as_bytes(),
            salt,
            ITERATIONS,
            out.as_mut_slice(),
        );
        Keys(out)
    }
    fn aes(&self) -> &[u8] {
        &self.0[0..32]
    }
    fn mac(&self) -> &[u8] {
        &self.0[32..64]
    }
    fn iv(&self) -> &[u8] {
        &self.0[64..80]
    }
    fn cipher(&self) -> Ctr128BE<Aes256> {
        Ctr128BE::<Aes256>::new_from_slices(self.aes(), self.iv())
            .expect("AES-256 key and CTR counter have fixed lengths")
    }
    fn hmac(&self, ciphertext: &[u8]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(self.mac()).expect("HMAC takes any key");
        mac.update(ciphertext);
        mac.finalize().into_bytes().into()
    }
}

/// Encrypts `plaintext` into a complete vault text (header, body, final newline). With a
/// `label` the 1.2 header carrying it is written, otherwise 1.1.
pub fn encrypt(
    plaintext: &[u8],
    password: &SecretString,
    label: Option<&str>,
) -> Result<String, FormatError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    encrypt_with_salt(plaintext, password, label, &salt)
}

fn encrypt_with_salt(
    plaintext: &[u8],
    password: &SecretString,
    label: Option<&str>,
    salt: &[u8],
) -> Result<String, FormatError> {
    if let Some(label) = label {
        validate_label(label)
            .map_err(|r| FormatError::Malformed(format!("vault-id label: {r}")))?;
    }
    let keys = Keys::derive(password, salt);
    let pad = BLOCK - plaintext.len() % BLOCK;
    // The padded copy is the only plaintext buffer this function makes; it is encrypted in
    // place, so it holds ciphertext when it is dropped.
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + pad));
    buf.extend_from_slice(plaintext);
    buf.resize(plaintext.len() + pad, pad as u8);
    keys.cipher().apply_keystream(&mut buf);
    let tag = keys.hmac(&buf);

    let inner = format!(
        "{}\n{}\n{}",
        hex::encode(salt),
        hex::encode(tag),
        hex::encode(&*buf)
    );
    let outer = hex::encode(inner.as_bytes());
    let mut text = match label {
        Some(label) => format!("{MAGIC};1.2;AES256;{label}\n"),
        None => format!("{MAGIC};1.1;AES256\n"),
    };
    text.reserve(outer.len() + outer.len() / LINE_WIDTH + 1);
    for chunk in outer.as_bytes().chunks(LINE_WIDTH) {
        text.push_str(std::str::from_utf8(chunk).expect("hex is ASCII"));
        text.push('\n');
    }
    Ok(text)
}

/// Whether `text` starts with a vault header (cheap check, no decryption).
pub fn is_vault_text(text: &[u8]) -> bool {
    text.starts_with(MAGIC.as_bytes())
}

/// Parses the header line of a vault text.
pub fn parse_header(text: &[u8]) -> Result<Header, FormatError> {
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = std::str::from_utf8(first)
        .map_err(|_| FormatError::Malformed("the header line is not text".into()))?
        .trim();
    let parts: Vec<&str> = first.split(';').map(str::trim).collect();
    if parts.first() != Some(&MAGIC) {
        return Err(FormatError::Malformed(
            "missing the `$ANSIBLE_VAULT` header: not a vault file".into(),
        ));
    }
    let version = parts.get(1).copied().unwrap_or_default();
    if version != "1.1" && version != "1.2" {
        return Err(FormatError::Malformed(format!(
            "unsupported vault format version `{}` (supported: 1.1, 1.2)",
            version.escape_debug()
        )));
    }
    let cipher = parts.get(2).copied().unwrap_or_default();
    if cipher != "AES256" {
        return Err(FormatError::Malformed(format!(
            "unsupported vault cipher `{}` (supported: AES256)",
            cipher.escape_debug()
        )));
    }
    let label = parts
        .get(3)
        .filter(|l| !l.is_empty())
        .map(|l| l.to_string());
    Ok(Header {
        version: version.to_string(),
        label,
    })
}

fn unhex(field: &str, hex_bytes: &[u8]) -> Result<Vec<u8>, FormatError> {
    hex::decode(hex_bytes)
        .map_err(|_| FormatError::Malformed(format!("the {field} is not valid hex")))
}

/// Decrypts a vault text. The HMAC is checked (in constant time) before decrypting; the
/// returned plaintext is zeroized on drop.
pub fn decrypt(text: &[u8], password: &SecretString) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    parse_header(text)?;
    let mut outer = Vec::with_capacity(text.len());
    for line in text.split(|&b| b == b'\n').skip(1) {
        outer.extend(line.iter().copied().filter(|b| !b.is_ascii_whitespace()));
    }
    if outer.is_empty() {
        return Err(FormatError::Malformed("the body is empty".into()));
    }
    let inner = unhex("body", &outer)?;
    let mut fields = inner.splitn(3, |&b| b == b'\n');
    let (Some(salt), Some(tag), Some(ct)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(FormatError::Malformed(
            "the body does not hold salt, HMAC and ciphertext".into(),
        ));
    };
    let salt = unhex("salt", salt)?;
    let tag = unhex("HMAC", tag)?;
    let ciphertext = unhex("ciphertext", ct)?;
    if salt.is_empty() || tag.len() != 32 {
        return Err(FormatError::Malformed(
            "the salt is empty or the HMAC is not 32 bytes".into(),
        ));
    }
    let keys = Keys::derive(password, &salt);
    let expected = keys.hmac(&ciphertext);
    if !bool::from(expected.ct_eq(tag.as_slice())) {
        return Err(FormatError::HmacMismatch);
    }
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(BLOCK) {
        return Err(FormatError::Malformed(
            "the ciphertext length is not a positive multiple of 16".into(),
        ));
    }
    let mut plain = Zeroizing::new(ciphertext);
    keys.cipher().apply_keystream(&mut plain);
    let pad = usize::from(*plain.last().expect("not empty"));
    let len = plain.len();
    if pad == 0 || pad > BLOCK || plain[len - pad..].iter().any(|&b| usize::from(b) != pad) {
        return Err(FormatError::Malformed("invalid PKCS7 padding".into()));
    }
    plain.truncate(len - pad);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    /// A vault text produced by `ansible-vault encrypt` 2.17 (password `livchat`, plaintext
    /// `hello\n`), kept here so the format is pinned even where ansible is not installed.
    const ANSIBLE_MADE: &str = concat!(
        "$ANSIBLE_VAULT;1.1;AES256\n",
        "61393030626331653237333139656535313166633066323332343838386138376337613236353039\n",
        "6430666338393331633831376262633337393065666266310a623833616435356566376163326339\n",
        "36326566306536393138303630386662626539316561636265656164643965653137636636623932\n",
        "6366326335306364340a663030356235353338363234653835363064393334623332326631626665\n",
        "6430\n",
    );

    #[test]
    fn decrypts_a_text_made_by_ansible_vault() {
        assert_eq!(
            &*decrypt(ANSIBLE_MADE.as_bytes(), &pw("livchat")).unwrap(),
            b"hello\n"
        );
        assert_eq!(
            decrypt(ANSIBLE_MADE.as_bytes(), &pw("livchaT")).unwrap_err(),
            FormatError::HmacMismatch
        );
    }

    #[test]
    fn round_trip_keeps_every_length_around_the_block_size() {
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let text = encrypt(&plain, &pw("pw"), None).unwrap();
            assert_eq!(&*decrypt(text.as_bytes(), &pw("pw")).unwrap(), &plain);
        }
    }

    #[test]
    fn sixteen_bytes_of_plaintext_become_thirty_two_of_ciphertext() {
        let text = encrypt(&[7u8; 16], &pw("pw"), None).unwrap();
        let body: String = text.lines().skip(1).collect();
        let inner = String::from_utf8(hex::decode(body).unwrap()).unwrap();
        let ct = inner.split('\n').nth(2).unwrap();
        assert_eq!(ct.len(), 64);
    }

    #[test]
    fn wrong_password_is_an_hmac_failure() {
        let text = encrypt(b"secret", &pw("right"), None).unwrap();
        assert_eq!(
            decrypt(text.as_bytes(), &pw("wrong")).unwrap_err(),
            FormatError::HmacMismatch
        );
    }

    #[test]
    fn label_is_written_in_a_one_two_header() {
        let text = encrypt(b"x", &pw("pw"), Some("prod")).unwrap();
        assert!(text.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"));
        assert_eq!(
            parse_header(text.as_bytes()).unwrap().label.as_deref(),
            Some("prod")
        );
        assert!(encrypt(b"x", &pw("pw"), Some("a;b")).is_err());
    }

    #[test]
    fn crlf_and_other_widths_are_accepted() {
        let text = encrypt(b"payload", &pw("pw"), None).unwrap();
        let body: String = text.lines().skip(1).collect();
        let mut rewrapped = String::from("$ANSIBLE_VAULT;1.1;AES256\r\n");
        for chunk in body.as_bytes().chunks(64) {
            rewrapped.push_str(std::str::from_utf8(chunk).unwrap());
            rewrapped.push_str("\r\n");
        }
        assert_eq!(
            &*decrypt(rewrapped.as_bytes(), &pw("pw")).unwrap(),
            b"payload"
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for text in [
            "",
            "hello",
            "$ANSIBLE_VAULT;1.1;AES256\n",
            "$ANSIBLE_VAULT;1.0;AES256\n00\n",
            "$ANSIBLE_VAULT;1.1;AES128\n00\n",
            "$ANSIBLE_VAULT;1.1;AES256\nzz\n",
            "$ANSIBLE_VAULT;1.1;AES256\n616263\n",
        ] {
            assert!(
                matches!(
                    decrypt(text.as_bytes(), &pw("pw")),
                    Err(FormatError::Malformed(_))
                ),
                "{text:?}"
            );
        }
    }
}
