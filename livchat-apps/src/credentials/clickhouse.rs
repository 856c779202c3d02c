//! ClickHouse: a database and a user with every right on that database alone, made with SQL
//! (`CREATE USER`, `GRANT`) by `clickhouse-client` in the provider's container.
//!
//! Checked as text only: Debian's ClickHouse (18.16, 2018) predates SQL user management
//! (20.4), so no test here runs it. The client connects as `default` over loopback: the
//! catalog's `clickhouse` template sets no password for `default`, which the official image
//! then limits to connections from inside the container, and turns on its access management
//! (`CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT=1`). The app's password is a string literal in the
//! script on stdin (backslash and quote escaped; ClickHouse strings take backslash escapes).

use secrecy::{ExposeSecret, SecretString};

use super::{CreateDatabase, ServiceCommand, argv, backslash_quoted};
use crate::AppsError;
use crate::names::validate_sql_identifier;

/// `clickhouse-client` as `default` on loopback, several statements from stdin.
pub const ARGV: &[&str] = &["clickhouse-client", "--user", "default", "--multiquery"];

fn validate(spec: &CreateDatabase) -> Result<(), AppsError> {
    validate_sql_identifier("database", &spec.database)?;
    validate_sql_identifier("user", &spec.user)?;
    if matches!(
        spec.database.as_str(),
        "system" | "default" | "information_schema"
    ) {
        return Err(AppsError::invalid_value(
            "database",
            format!("{:?} is one of ClickHouse's own databases", spec.database),
        ));
    }
    if !spec.extensions.is_empty() {
        return Err(AppsError::invalid_value(
            "extensions",
            "only a postgres provider has extensions",
        ));
    }
    Ok(())
}

pub(super) fn create(
    spec: &CreateDatabase,
    password: &SecretString,
) -> Result<ServiceCommand, AppsError> {
    validate(spec)?;
    let (db, user) = (&spec.database, &spec.user);
    let literal = backslash_quoted(password.expose_secret());
    let sql = format!(
        "CREATE DATABASE IF NOT EXISTS `{db}`;\n\
         CREATE USER IF NOT EXISTS `{user}` IDENTIFIED WITH sha256_password BY {literal};\n\
         ALTER USER `{user}` IDENTIFIED WITH sha256_password BY {literal};\n\
         REVOKE ALL ON *.* FROM `{user}`;\n\
         GRANT ALL ON `{db}`.* TO `{user}`;\n"
    );
    Ok(ServiceCommand {
        argv: argv(ARGV),
        stdin: SecretString::from(sql),
    })
}

pub(super) fn drop(spec: &CreateDatabase) -> Result<ServiceCommand, AppsError> {
    validate(spec)?;
    let (db, user) = (&spec.database, &spec.user);
    Ok(ServiceCommand {
        argv: argv(ARGV),
        stdin: SecretString::from(format!(
            "DROP DATABASE IF EXISTS `{db}`;\nDROP USER IF EXISTS `{user}`;\n"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{create_database_command, drop_database_command};
    use crate::definition::ProvidedKind;

    fn spec() -> CreateDatabase {
        CreateDatabase {
            kind: ProvidedKind::Clickhouse,
            database: "langfuse".into(),
            user: "langfuse".into(),
            extensions: vec![],
        }
    }

    #[test]
    fn the_script_is_exactly_this_and_the_password_is_only_on_stdin() {
        let cmd = create_database_command(&spec(), &SecretString::from("a'b\\c")).unwrap();
        assert_eq!(cmd.argv, ARGV);
        assert_eq!(
            cmd.stdin.expose_secret(),
            "CREATE DATABASE IF NOT EXISTS `langfuse`;\n\
             CREATE USER IF NOT EXISTS `langfuse` IDENTIFIED WITH sha256_password BY 'a\\'b\\\\c';\n\
             ALTER USER `langfuse` IDENTIFIED WITH sha256_password BY 'a\\'b\\\\c';\n\
             REVOKE ALL ON *.* FROM `langfuse`;\n\
             GRANT ALL ON `langfuse`.* TO `langfuse`;\n"
        );
        let drop = drop_database_command(&spec()).unwrap();
        assert_eq!(
            drop.stdin.expose_secret(),
            "DROP DATABASE IF EXISTS `langfuse`;\nDROP USER IF EXISTS `langfuse`;\n"
        );
    }

    #[test]
    fn clickhouses_own_databases_are_refused_naming_the_field() {
        let mut s = spec();
        s.database = "system".into();
        let err = create_database_command(&s, &SecretString::from("x")).unwrap_err();
        assert!(err.to_string().contains("database"), "{err}");
    }
}
