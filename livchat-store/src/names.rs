//! The one set of rules for the names LivChat is given: DNS labels and names (server names,
//! zones, subdomains, record names), hosts, app names and Unix user names.
//!
//! This file is the single source of those rules. A leaf crate depends on no other internal
//! crate (ARCHITECTURE.md), so each leaf that checks a name (`livchat-store`, `livchat-remote`,
//! `livchat-providers`, `livchat-apps`) compiles this file as its own `names` module by path
//! (`#[path = "../../livchat-store/src/names.rs"]`), as livchat-remote embeds the stack schema
//! by path; `livchat-core` and the frontends use the store's copy (`livchat_store::names`).
//! Std only, no crate paths, so it compiles anywhere.
//!
//! Each rule returns which part failed ([`NameError`]); the caller words the error with its
//! field, in its own error type. `xtask/tests/names_single_source.rs` fails if a second
//! DNS-label or Unix-user predicate appears outside this file.

use std::net::IpAddr;

/// Which part of a rule a name broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The whole name is longer than its rule allows.
    TooLong,
    /// A DNS name has an empty label (`a..b`, a leading or trailing dot).
    EmptyLabel,
    /// A DNS label is longer than 63 bytes.
    LabelTooLong,
    /// A character outside the rule's alphabet.
    BadChar,
    /// A `-` (or another character) where the rule forbids it: first or last.
    BadEdge,
}

/// A lower-case ASCII letter or digit.
fn lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A DNS label in lower case (RFC 1123): 1-63 of `a-z`, `0-9` and `-`, not starting or ending
/// with `-`. Also the rule of server names, which become host names.
pub fn dns_label(label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if label.len() > 63 {
        return Err(NameError::LabelTooLong);
    }
    if !label.bytes().all(|b| lower_alnum(b) || b == b'-') {
        return Err(NameError::BadChar);
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::BadEdge);
    }
    Ok(())
}

/// A lower-case DNS name: [`dns_label`]s separated by `.`, 253 bytes at most (zones,
/// subdomains, record names, Hetzner server and firewall names).
pub fn dns_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > 253 {
        return Err(NameError::TooLong);
    }
    name.split('.').try_for_each(dns_label)
}

/// A server name: one [`dns_label`] (the name becomes the server's host name).
pub fn server_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    dns_label(name).map_err(|e| match e {
        NameError::LabelTooLong => NameError::TooLong,
        e => e,
    })
}

/// A host to reach over SSH: an IP address, or a host name of labels of ASCII letters (either
/// case), digits and `-`, none starting with `-`, 253 bytes at most. Nothing that could become
/// an option (`-oProxyCommand=…`) or a command.
pub fn host(host: &str) -> Result<(), NameError> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.is_empty() {
        return Err(NameError::Empty);
    }
    if host.len() > 253 {
        return Err(NameError::TooLong);
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(NameError::LabelTooLong);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(NameError::BadChar);
        }
        if label.starts_with('-') {
            return Err(NameError::BadEdge);
        }
    }
    Ok(())
}

/// A Unix user name as Debian's `adduser` accepts them by default (`^[a-z_][-a-z0-9_]*$`),
/// 1-32 bytes: `deploy`, `deploy-user`, `ec2-user`, `www-data`, `_apt`. The SSH user of a
/// server and the user of a `docker exec`.
pub fn unix_user(user: &str) -> Result<(), NameError> {
    let Some(&first) = user.as_bytes().first() else {
        return Err(NameError::Empty);
    };
    if user.len() > 32 {
        return Err(NameError::TooLong);
    }
    if !user
        .bytes()
        .all(|b| lower_alnum(b) || b == b'_' || b == b'-')
    {
        return Err(NameError::BadChar);
    }
    if !(first.is_ascii_lowercase() || first == b'_') {
        return Err(NameError::BadEdge);
    }
    Ok(())
}

/// An app (and its stack's) name: `[a-z][a-z0-9-]{0,31}`, not ending with `-`.
pub fn app_name(name: &str) -> Result<(), NameError> {
    let Some(&first) = name.as_bytes().first() else {
        return Err(NameError::Empty);
    };
    if name.len() > 32 {
        return Err(NameError::TooLong);
    }
    if !name.bytes().all(|b| lower_alnum(b) || b == b'-') {
        return Err(NameError::BadChar);
    }
    if !first.is_ascii_lowercase() || name.ends_with('-') {
        return Err(NameError::BadEdge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_lower_case_labels() {
        for ok in ["web-1", "a", "n8n.example.com", "x1.y2", "xn--bcher-kva"] {
            assert_eq!(dns_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(dns_name(""), Err(NameError::Empty));
        assert_eq!(dns_name(&"a.".repeat(127)), Err(NameError::TooLong));
        assert_eq!(dns_name("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(dns_name(&"a".repeat(64)), Err(NameError::LabelTooLong));
        assert_eq!(dns_name("Web"), Err(NameError::BadChar));
        assert_eq!(dns_name("web_1"), Err(NameError::BadChar));
        assert_eq!(dns_name("web-.com"), Err(NameError::BadEdge));
        assert_eq!(server_name(""), Err(NameError::Empty));
        assert_eq!(server_name(&"a".repeat(64)), Err(NameError::TooLong));
        assert_eq!(server_name("a.b"), Err(NameError::BadChar));
    }

    #[test]
    fn hosts_are_addresses_or_host_names() {
        for ok in [
            "192.0.2.1",
            "::1",
            "2001:db8::1",
            "Web-1.Example.com",
            "web-",
        ] {
            assert_eq!(host(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-oProxyCommand=x", "a..b", "a b", "a:b", "x.-y", "a;b"] {
            assert!(host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_users_follow_debian_adduser() {
        for ok in [
            "deploy",
            "deploy-user",
            "ec2-user",
            "_apt",
            "postgres",
            "u1",
        ] {
            assert_eq!(unix_user(ok), Ok(()), "{ok}");
        }
        assert_eq!(unix_user(""), Err(NameError::Empty));
        assert_eq!(unix_user(&"u".repeat(33)), Err(NameError::TooLong));
        assert_eq!(unix_user("-x"), Err(NameError::BadEdge));
        assert_eq!(unix_user("1x"), Err(NameError::BadEdge));
        assert_eq!(unix_user("Root"), Err(NameError::BadChar));
        assert_eq!(unix_user("a;b"), Err(NameError::BadChar));
    }

    #[test]
    fn app_names_start_with_a_letter() {
        assert_eq!(app_name("evolution-api"), Ok(()));
        for bad in ["", "1app", "app-", "App", "a_b", &"a".repeat(33)] {
            assert!(app_name(bad).is_err(), "{bad}");
        }
    }
}
