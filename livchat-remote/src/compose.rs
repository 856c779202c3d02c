//! Validation of stack files against the schema `docker stack deploy` itself uses (docker/cli's
//! `config_schema_v3.13.json`, compiled into the binary). The one vendored copy, with its
//! license, is `livchat-apps/schema/`, which renders against the same file: one path, no crate
//! dependency between the two leaves.
//!
//! Every stack is validated here before anything is uploaded, so a bad stack fails on the
//! user's machine with the schema's own message and the path of the offending value, not
//! halfway through a deploy on the server.

use std::sync::OnceLock;

/// A stack file that does not satisfy the schema: where, and what the schema says. The
/// platforms turn it into their `InvalidStack` error; this module depends on none of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stack file at {path}: {message}")]
pub struct InvalidStack {
    /// The JSON pointer of the offending value (`/services/web`), or a YAML line and column.
    pub path: String,
    pub message: String,
}

/// The schema docker/cli validates version 3 stack files against (3.13 is what it uses when
/// `version` is absent or "3").
pub const STACK_SCHEMA_JSON: &str =
    include_str!("../../livchat-apps/schema/docker-cli-stack-config_schema_v3.13.json");

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(STACK_SCHEMA_JSON).expect("the bundled stack schema is JSON");
        jsonschema::validator_for(&schema).expect("the bundled stack schema compiles")
    })
}

/// Parses a compose file and checks it against the stack schema. Returns the parsed document.
///
/// `version` is required (see `check_version`). Errors are [`InvalidStack`] with the JSON pointer of the offending value
/// (`/services/web/deploy/replicas`) and the schema's message; all violations are reported,
/// joined by `; `. Variable interpolation (`${VAR}`) is not performed: stacks reach this point
/// fully rendered.
pub fn validate_stack(yaml: &str) -> Result<serde_json::Value, InvalidStack> {
    let document: serde_json::Value = serde_yaml::from_str(yaml).map_err(|e| InvalidStack {
        path: e
            .location()
            .map(|l| format!("line {} column {}", l.line(), l.column()))
            .unwrap_or_else(|| "/".into()),
        message: format!("not a YAML mapping docker can read: {e}"),
    })?;
    if !document.is_object() {
        return Err(InvalidStack {
            path: "/".into(),
            message: "a stack file is a mapping with a `services` key".into(),
        });
    }
    check_version(&document)?;
    let errors: Vec<(String, String)> = validator()
        .iter_errors(&document)
        .map(|error| {
            let path = error.instance_path.to_string();
            let path = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            (path, error.to_string())
        })
        .collect();
    if errors.is_empty() {
        return Ok(document);
    }
    let first_path = errors.first().map(|(p, _)| p.clone());
    let messages: Vec<String> = errors.iter().map(|(p, m)| format!("{p}: {m}")).collect();
    Err(InvalidStack {
        path: first_path.unwrap_or_else(|| "/".into()),
        message: messages.join("; "),
    })
}

/// docker/cli picks the schema by `version`; only 3.x up to 3.13 is what we ship, and a file
/// claiming something else would be judged by rules it does not follow. The key is required:
/// `docker stack deploy` before Docker 25 (Debian bookworm's `docker.io` is 20.10) reads a file
/// without it as version 1.0 and refuses it.
fn check_version(document: &serde_json::Value) -> Result<(), InvalidStack> {
    let Some(version) = document.get("version") else {
        return Err(InvalidStack {
            path: "/version".into(),
            message: "version is required (docker stack deploy before Docker 25 reads a file \
                      without it as 1.0 and refuses it); use a quoted \"3\" to \"3.13\", \
                      such as \"3.8\""
                .into(),
        });
    };
    let supported = version.as_str().is_some_and(|v| {
        v == "3"
            || v.strip_prefix("3.")
                .and_then(|minor| minor.parse::<u32>().ok())
                .is_some_and(|minor| minor <= 13)
    });
    if supported {
        Ok(())
    } else {
        Err(InvalidStack {
            path: "/version".into(),
            message: format!("version {version} is not supported; use a quoted \"3\" to \"3.13\""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(yaml: &str) -> (String, String) {
        match validate_stack(yaml) {
            Err(InvalidStack { path, message }) => (path, message),
            other => panic!("expected an invalid stack, got {other:?}"),
        }
    }

    #[test]
    fn a_stack_with_dnsrr_and_host_mode_ports_is_valid() {
        let yaml = r#"
version: "3.8"
services:
  db:
    image: local/pgredis:15
    deploy:
      endpoint_mode: dnsrr
      replicas: 1
    healthcheck:
      test: ["CMD", "pg_isready", "-h", "127.0.0.1"]
      interval: 2s
    secrets: [db_password]
  web:
    image: local/busybox:1
    ports:
      - {mode: host, target: 80, published: 8080}
secrets:
  db_password: {external: true}
"#;
        let doc = validate_stack(yaml).unwrap();
        assert_eq!(doc["services"]["db"]["deploy"]["endpoint_mode"], "dnsrr");
    }

    #[test]
    fn unknown_service_key_is_rejected_with_the_schema_message_and_path() {
        let (path, message) =
            invalid("version: \"3.8\"\nservices:\n  web:\n    image: x\n    imagee: y\n");
        assert_eq!(path, "/services/web");
        assert!(message.contains("imagee"), "{message}");
        assert!(message.contains("not allowed"), "{message}");
    }

    #[test]
    fn wrong_type_is_rejected_naming_the_field() {
        let (path, message) = invalid(
            "version: \"3.8\"\nservices:\n  web:\n    image: x\n    deploy:\n      replicas: two\n",
        );
        assert_eq!(path, "/services/web/deploy/replicas");
        assert!(message.contains("\"two\""), "{message}");
    }

    #[test]
    fn misspelled_host_mode_port_key_is_rejected() {
        let (path, _) = invalid(
            "version: \"3.8\"\nservices:\n  web:\n    image: x\n    ports:\n      - {mode: host, target: 80, publish: 8080}\n",
        );
        assert_eq!(path, "/services/web/ports/0");
    }

    #[test]
    fn unsupported_version_is_rejected() {
        let (path, message) = invalid("version: \"2.4\"\nservices: {}\n");
        assert_eq!(path, "/version");
        assert!(message.contains("2.4"), "{message}");
        let (path, message) = invalid("services: {}\n");
        assert_eq!(path, "/version");
        assert!(message.contains("required"), "{message}");
    }

    #[test]
    fn yaml_that_is_not_a_mapping_is_rejected() {
        let (path, _) = invalid("- just\n- a list\n");
        assert_eq!(path, "/");
        let (_, message) = invalid("version: \"3.8\"\nservices: [unclosed\n");
        assert!(message.contains("YAML"), "{message}");
    }
}
