//! Allowlist validation of everything a caller names before it is sent to a vendor.

use std::collections::BTreeMap;

use crate::error::{CloudError, Result};

/// An RFC 1123 host name in lower case: dot-separated labels of `a-z0-9-`, 1-63 characters
/// each, not starting or ending with `-`, 253 characters at most. Hetzner requires server
/// names to be valid host names; we also refuse upper case so names compare exactly.
pub fn host_name(field: &'static str, name: &str) -> Result<()> {
    let bad = |why: &str| CloudError::InvalidInput {
        field,
        reason: format!(
            "{name:?} {why}; use 1-63 lower-case letters, digits and '-' per label (not at either \
             end), labels separated by '.'"
        ),
    };
    use crate::names::NameError;
    crate::names::dns_name(name).map_err(|e| {
        bad(match e {
            NameError::Empty => "is empty",
            NameError::TooLong => "is longer than 253 characters",
            NameError::EmptyLabel => "has an empty label",
            NameError::LabelTooLong => "has a label longer than 63 characters",
            NameError::BadChar => "has a character other than a-z, 0-9 and '-'",
            NameError::BadEdge => "has a label starting or ending with '-'",
        })
    })
}

/// A DNS record name: a host name, optionally starting with a `*.` wildcard label.
/// Upper case is folded by the caller before comparing; here it is refused for clarity.
pub fn record_name(field: &'static str, name: &str) -> Result<()> {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    host_name(field, rest)
}

/// Whether `name` lies in `zone` (is the apex or a sub-name of it).
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// A simple identifier the vendor gave us (ids of zones, records, numeric ids): ASCII
/// letters, digits, `-` and `_`, so that it can be placed in a URL path unescaped.
pub fn path_id(field: &'static str, id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(CloudError::InvalidInput {
            field,
            reason: format!("{id:?} is not an id: 1-64 characters of A-Z, a-z, 0-9, '-' and '_'"),
        });
    }
    Ok(())
}

/// Hetzner's label syntax: keys are an optional DNS-subdomain prefix and `/`, then a name of
/// 1-63 characters of alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric; values
/// are empty or follow the same rule as names.
pub fn labels(labels: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in labels {
        let (prefix, name) = match key.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, key.as_str()),
        };
        if let Some(prefix) = prefix {
            host_name("labels", prefix).map_err(|_| CloudError::InvalidInput {
                field: "labels",
                reason: format!("key {key:?}: the prefix before '/' must be a DNS subdomain"),
            })?;
        }
        if !label_word(name) {
            return Err(CloudError::InvalidInput {
                field: "labels",
                reason: format!(
                    "key {key:?}: 1-63 characters of a-z, A-Z, 0-9, '-', '_' and '.', \
                     starting and ending with a letter or digit"
                ),
            });
        }
        if !value.is_empty() && !label_word(value) {
            return Err(CloudError::InvalidInput {
                field: "labels",
                reason: format!(
                    "value of {key:?}: empty, or 1-63 characters of a-z, A-Z, 0-9, '-', '_' \
                     and '.', starting and ending with a letter or digit"
                ),
            });
        }
    }
    Ok(())
}

fn label_word(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A name of a vendor catalog entry (`cx22`, `nbg1`, `debian-12`, `ubuntu-24.04`).
pub fn catalog_name(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(CloudError::InvalidInput {
            field,
            reason: format!("{name:?}: 1-64 characters of a-z, A-Z, 0-9, '-', '_' and '.'"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_rfc_1123_in_lower_case() {
        for ok in ["web-1", "a", "n8n.example.com", "x1.y2"] {
            assert!(host_name("name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-web",
            "web-",
            "Web",
            "web_1",
            "a..b",
            "web 1",
            "web;rm",
            "web\n",
            "ünicode",
            &"a".repeat(64),
        ] {
            let err = host_name("name", bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid name:"), "{bad}: {err}");
        }
    }

    #[test]
    fn record_names_allow_a_leading_wildcard_only() {
        assert!(record_name("name", "*.example.com").is_ok());
        assert!(record_name("name", "a.*.example.com").is_err());
        assert!(in_zone("n8n.example.com", "example.com"));
        assert!(in_zone("example.com", "example.com"));
        assert!(!in_zone("badexample.com", "example.com"));
    }

    #[test]
    fn labels_follow_hetzner_syntax() {
        let mut l = BTreeMap::new();
        l.insert("managed-by".into(), "livchat".into());
        l.insert("livchat.dev/role".into(), "".into());
        assert!(labels(&l).is_ok());
        l.insert("bad key".into(), "x".into());
        assert!(labels(&l).unwrap_err().to_string().contains("bad key"));
        let mut l = BTreeMap::new();
        l.insert("k".into(), "-v".into());
        assert!(labels(&l).unwrap_err().to_string().contains("value of"));
    }

    #[test]
    fn ids_placed_in_paths_are_plain() {
        assert!(path_id("id", "023e105f4ecef8ad9ca31a8372d0c353").is_ok());
        assert!(path_id("id", "42").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a b"] {
            assert!(path_id("id", bad).is_err(), "{bad}");
        }
    }
}
