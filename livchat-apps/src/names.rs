//! Allowlists for every name that ends up in a stack file, a DNS record or a SQL statement.
//! Validation comes first; escaping (see `escape`) is the second line of defence.

use crate::AppsError;

fn check(
    field: &str,
    value: &str,
    max: usize,
    first: fn(char) -> bool,
    rest: fn(char) -> bool,
    allowed: &str,
) -> Result<(), AppsError> {
    let mut chars = value.chars();
    let ok = match chars.next() {
        Some(c) => first(c) && chars.all(rest) && value.len() <= max,
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AppsError::invalid_value(
            field,
            format!("{value:?} is not allowed; expected {allowed}"),
        ))
    }
}

fn lower(c: char) -> bool {
    c.is_ascii_lowercase()
}
fn lower_digit(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// App (and stack) names: `[a-z][a-z0-9-]{0,31}`, no trailing hyphen
/// ([`crate::name_rules::app_name`]).
pub fn validate_app_name(field: &str, value: &str) -> Result<(), AppsError> {
    use crate::name_rules::NameError;
    crate::name_rules::app_name(value).map_err(|e| match e {
        NameError::BadEdge if value.ends_with('-') && value.as_bytes()[0].is_ascii_lowercase() => {
            AppsError::invalid_value(field, format!("{value:?} must not end with '-'"))
        }
        _ => AppsError::invalid_value(
            field,
            format!("{value:?} is not allowed; expected [a-z][a-z0-9-]{{0,31}}"),
        ),
    })
}

/// Keys used inside definitions (secret names, image keys, parameter keys, settings):
/// `[a-z][a-z0-9_]{0,63}`.
pub fn validate_key(field: &str, value: &str) -> Result<(), AppsError> {
    check(
        field,
        value,
        64,
        lower,
        |c| lower_digit(c) || c == '_',
        "[a-z][a-z0-9_]{0,63}",
    )
}

/// Service names inside a stack: `[a-z][a-z0-9_-]{0,31}`.
pub fn validate_service_name(field: &str, value: &str) -> Result<(), AppsError> {
    check(
        field,
        value,
        32,
        lower,
        |c| lower_digit(c) || c == '_' || c == '-',
        "[a-z][a-z0-9_-]{0,31}",
    )
}

/// Environment variable names: `[A-Z_][A-Z0-9_]{0,127}`.
pub fn validate_env_key(field: &str, value: &str) -> Result<(), AppsError> {
    check(
        field,
        value,
        128,
        |c| c.is_ascii_uppercase() || c == '_',
        |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_',
        "[A-Z_][A-Z0-9_]{0,127}",
    )
}

/// SQL identifiers (database, role, extension names): `[a-z_][a-z0-9_]{0,62}`. Lower case only
/// so the quoted identifier equals the unquoted one.
pub fn validate_sql_identifier(field: &str, value: &str) -> Result<(), AppsError> {
    check(
        field,
        value,
        63,
        |c| lower(c) || c == '_',
        |c| lower_digit(c) || c == '_',
        "[a-z_][a-z0-9_]{0,62}",
    )
}

/// Docker network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}`.
pub fn validate_network_name(field: &str, value: &str) -> Result<(), AppsError> {
    check(
        field,
        value,
        64,
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}",
    )
}

/// A DNS name made of one or more labels (`[a-z0-9]([a-z0-9-]*[a-z0-9])?`, 63 bytes each),
/// 253 bytes at most ([`crate::name_rules::dns_name`]). Lower case only: the caller
/// normalises.
pub fn validate_dns_name(field: &str, value: &str) -> Result<(), AppsError> {
    use crate::name_rules::NameError;
    crate::name_rules::dns_name(value).map_err(|e| {
        let why = match e {
            NameError::Empty | NameError::TooLong => "length must be 1 to 253",
            NameError::EmptyLabel | NameError::LabelTooLong => {
                "each label must be 1 to 63 characters"
            }
            NameError::BadChar => "a label has a character outside [a-z0-9-]",
            NameError::BadEdge => "a label starts or ends with '-'",
        };
        AppsError::invalid_value(
            field,
            format!(
                "{value:?} is not a DNS name ({why}); expected lower-case labels [a-z0-9-] separated by dots"
            ),
        )
    })
}

/// An image reference pinned to an exact version: `repo[:port]/path:tag` or `...@sha256:...`.
/// Untagged references and `:latest` are rejected, because a redeploy would silently upgrade.
pub fn validate_image_ref(field: &str, value: &str) -> Result<(), AppsError> {
    let bad = |why: &str| {
        Err(AppsError::invalid_value(
            field,
            format!("image {value:?} {why}; pin an exact version such as `postgres:16.10`"),
        ))
    };
    if value.is_empty()
        || value.len() > 255
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | ':' | '_' | '-' | '@'))
    {
        return bad("has characters outside [A-Za-z0-9./:_@-]");
    }
    if let Some((_, digest)) = value.split_once('@') {
        let ok = digest
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
        return if ok {
            Ok(())
        } else {
            bad("has a malformed digest")
        };
    }
    let last = value.rsplit('/').next().unwrap_or(value);
    match last.split_once(':') {
        None => bad("has no tag"),
        Some((_, "")) => bad("has an empty tag"),
        Some((_, tag)) if tag.eq_ignore_ascii_case("latest") => bad("uses `latest`"),
        Some(("", _)) => bad("has no repository"),
        Some(_) => Ok(()),
    }
}

/// A registry mirror prefix such as `mirror.example.com:5000/library-cache`.
pub fn validate_registry_prefix(field: &str, value: &str) -> Result<(), AppsError> {
    check(
        field,
        value,
        200,
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | ':' | '_' | '-'),
        "[A-Za-z0-9][A-Za-z0-9./:_-]* (a registry host with an optional path)",
    )?;
    if value.ends_with('/') {
        return Err(AppsError::invalid_value(
            field,
            "must not end with '/': it is joined with '/'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_must_be_pinned() {
        for good in [
            "postgres:16.10",
            "traefik:v3.5.3",
            "ghcr.io/owner/app:1.2.3",
            "registry:5000/a/b:1",
            "redis@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(validate_image_ref("image", good).is_ok(), "{good}");
        }
        for bad in [
            "postgres",
            "postgres:latest",
            "postgres:LATEST",
            "registry:5000/a/b",
            "redis:",
            "redis@sha256:abc",
            "redis:7 ",
            "",
        ] {
            assert!(validate_image_ref("image", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_names_allow_lower_case_labels_only() {
        assert!(validate_dns_name("zone", "example.com").is_ok());
        assert!(validate_dns_name("zone", "lab.example-1.com").is_ok());
        for bad in [
            "",
            "Example.com",
            "a..b",
            "-a.com",
            "a-.com",
            "a b.com",
            "a.com\n",
        ] {
            let err = validate_dns_name("zone", bad).unwrap_err().to_string();
            assert!(err.contains("zone"), "{err}");
        }
    }

    #[test]
    fn sql_identifiers_reject_quotes_and_upper_case() {
        assert!(validate_sql_identifier("database", "n8n_queue").is_ok());
        for bad in ["N8n", "a\"b", "a;b", "1abc", "", &"a".repeat(64)] {
            assert!(validate_sql_identifier("database", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn app_names_follow_the_allowlist() {
        assert!(validate_app_name("name", "evolution-api").is_ok());
        for bad in ["Evo", "evo-", "-evo", "evo_api", "", &"a".repeat(33)] {
            assert!(validate_app_name("name", bad).is_err(), "{bad}");
        }
    }
}
