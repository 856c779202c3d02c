//! RabbitMQ: a vhost and a user with configure/write/read permissions on that vhost alone and
//! no tags (so no management UI), made with `rabbitmqctl` in the provider's container.
//!
//! Several `rabbitmqctl` calls are needed, so the argv is `sh -c SCRIPT sh VHOST USER`: the
//! script is a constant (checked with ShellCheck) that takes the validated names as positional
//! parameters, never as text inside it. The password is the one line on stdin; the script
//! passes it on through a pipe from the shell's builtin `printf` to `add_user` or
//! `change_password`, which read it from stdin when no password argument is given.

use secrecy::{ExposeSecret, SecretString};

use super::{CreateDatabase, ServiceCommand, check_single_line};
use crate::AppsError;
use crate::names::validate_sql_identifier;

/// Creates what is missing, resets the password and the permissions. `$1` vhost, `$2` user,
/// the password on stdin.
pub const CREATE_SCRIPT: &str = r#"set -eu
vhost=$1
user=$2
IFS= read -r password || [ -n "$password" ]
if ! rabbitmqctl --quiet list_vhosts --no-table-headers name | grep -qxF -- "$vhost"; then
  rabbitmqctl --quiet add_vhost "$vhost"
fi
if rabbitmqctl --quiet list_users --no-table-headers | cut -f1 | grep -qxF -- "$user"; then
  printf '%s\n' "$password" | rabbitmqctl --quiet change_password "$user"
else
  printf '%s\n' "$password" | rabbitmqctl --quiet add_user "$user"
fi
rabbitmqctl --quiet set_user_tags "$user"
rabbitmqctl --quiet set_permissions --vhost "$vhost" "$user" '.*' '.*' '.*'
"#;

/// Deletes the vhost (its queues and messages) and the user, each only if present.
pub const DROP_SCRIPT: &str = r#"set -eu
vhost=$1
user=$2
if rabbitmqctl --quiet list_vhosts --no-table-headers name | grep -qxF -- "$vhost"; then
  rabbitmqctl --quiet delete_vhost "$vhost"
fi
if rabbitmqctl --quiet list_users --no-table-headers | cut -f1 | grep -qxF -- "$user"; then
  rabbitmqctl --quiet delete_user "$user"
fi
"#;

fn validate(spec: &CreateDatabase) -> Result<(), AppsError> {
    validate_sql_identifier("database", &spec.database)?;
    validate_sql_identifier("user", &spec.user)?;
    if !spec.extensions.is_empty() {
        return Err(AppsError::invalid_value(
            "extensions",
            "only a postgres provider has extensions",
        ));
    }
    Ok(())
}

fn script_argv(script: &str, spec: &CreateDatabase) -> Vec<String> {
    [
        "sh",
        "-c",
        script,
        "sh",
        spec.database.as_str(),
        spec.user.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub(super) fn create(
    spec: &CreateDatabase,
    password: &SecretString,
) -> Result<ServiceCommand, AppsError> {
    validate(spec)?;
    check_single_line(password)?;
    Ok(ServiceCommand {
        argv: script_argv(CREATE_SCRIPT, spec),
        stdin: SecretString::from(format!("{}\n", password.expose_secret())),
    })
}

pub(super) fn drop(spec: &CreateDatabase) -> Result<ServiceCommand, AppsError> {
    validate(spec)?;
    Ok(ServiceCommand {
        argv: script_argv(DROP_SCRIPT, spec),
        stdin: SecretString::from(String::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{create_database_command, drop_database_command};
    use crate::definition::ProvidedKind;

    fn spec() -> CreateDatabase {
        CreateDatabase {
            kind: ProvidedKind::Rabbitmq,
            database: "evolution".into(),
            user: "evolution".into(),
            extensions: vec![],
        }
    }

    #[test]
    fn names_are_positional_parameters_and_the_password_is_the_line_on_stdin() {
        let cmd = create_database_command(&spec(), &SecretString::from("p w'$x")).unwrap();
        assert_eq!(
            cmd.argv,
            ["sh", "-c", CREATE_SCRIPT, "sh", "evolution", "evolution"]
        );
        assert_eq!(cmd.stdin.expose_secret(), "p w'$x\n");
        let drop = drop_database_command(&spec()).unwrap();
        assert_eq!(
            drop.argv,
            ["sh", "-c", DROP_SCRIPT, "sh", "evolution", "evolution"]
        );
        assert_eq!(drop.stdin.expose_secret(), "");
    }

    #[test]
    fn a_password_with_a_line_break_or_a_hostile_name_is_refused_naming_the_field() {
        let err = create_database_command(&spec(), &SecretString::from("a\nb")).unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
        let mut s = spec();
        s.database = "/".into();
        let err = create_database_command(&s, &SecretString::from("x")).unwrap_err();
        assert!(err.to_string().contains("database"), "{err}");
    }
}
