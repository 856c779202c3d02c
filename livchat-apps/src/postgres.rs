//! The command that creates an app's database and its least-privilege owner inside the Postgres
//! service: an argv with no secret in it, and a SQL script (holding the password) for stdin.
//!
//! The caller runs it with `ContainerPlatform::exec` in the `postgres` service; as root in the
//! official image, `psql` reaches the server over the local socket as the `postgres` superuser.
//! Identifiers are validated by allowlist and then quoted; the password is a SQL string literal
//! (quotes doubled, `standard_conforming_strings` forced on), never part of the argv.
//! Re-running it is harmless: it creates what is missing and resets the password and
//! ownership to what they should be.

use secrecy::{ExposeSecret, SecretString};

use crate::AppsError;
use crate::names::validate_sql_identifier;

pub use crate::credentials::CreateDatabase;

/// The `psql` invocation and its script (the shape every kind's command has).
pub type PsqlCommand = crate::credentials::ServiceCommand;

/// The `psql` invocation and script for `spec`, with `password` as the role's password.
pub fn create_database_command(
    spec: &CreateDatabase,
    password: &SecretString,
) -> Result<PsqlCommand, AppsError> {
    validate_sql_identifier("database", &spec.database)?;
    validate_sql_identifier("user", &spec.user)?;
    for ext in &spec.extensions {
        validate_sql_identifier("extension", ext)?;
    }
    let pw = password.expose_secret();
    if pw.is_empty() || pw.contains('\0') {
        return Err(AppsError::invalid_value(
            "password",
            "must be non-empty and must not contain NUL",
        ));
    }
    let db = &spec.database;
    let user = &spec.user;
    let literal = format!("'{}'", pw.replace('\'', "''"));
    let mut sql = String::new();
    sql.push_str("SET standard_conforming_strings = on;\n");
    // CREATE ROLE/DATABASE cannot run inside DO blocks or with IF NOT EXISTS, so the missing
    // ones are selected as text and executed with psql's \gexec.
    sql.push_str(&format!(
        "SELECT 'CREATE ROLE \"{user}\"' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}')\\gexec\n"
    ));
    sql.push_str(&format!(
        "ALTER ROLE \"{user}\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD {literal};\n"
    ));
    sql.push_str(&format!(
        "SELECT 'CREATE DATABASE \"{db}\" OWNER \"{user}\"' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{db}')\\gexec\n"
    ));
    sql.push_str(&format!("ALTER DATABASE \"{db}\" OWNER TO \"{user}\";\n"));
    sql.push_str(&format!("REVOKE ALL ON DATABASE \"{db}\" FROM PUBLIC;\n"));
    // Every role may connect to the maintenance database by default (PUBLIC); an app's role
    // has no business there. The superuser is not affected.
    sql.push_str("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;\n");
    sql.push_str(&format!("\\connect \"{db}\"\n"));
    for ext in &spec.extensions {
        sql.push_str(&format!("CREATE EXTENSION IF NOT EXISTS \"{ext}\";\n"));
    }
    sql.push_str(&format!("ALTER SCHEMA public OWNER TO \"{user}\";\n"));
    Ok(PsqlCommand {
        argv: psql_argv(),
        stdin: SecretString::from(sql),
    })
}

/// `psql` as the superuser on the maintenance database, stopping at the first error.
fn psql_argv() -> Vec<String> {
    [
        "psql",
        "--no-psqlrc",
        "--quiet",
        "-v",
        "ON_ERROR_STOP=1",
        "--username",
        "postgres",
        "--dbname",
        "postgres",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The `psql` invocation and script that drop the database of `spec` and its role, data
/// included (`app undeploy --delete-data`). Dropping what is absent succeeds; sessions still
/// connected to the database are ended (`WITH (FORCE)`, PostgreSQL 13 or newer).
pub fn drop_database_command(spec: &CreateDatabase) -> Result<PsqlCommand, AppsError> {
    validate_sql_identifier("database", &spec.database)?;
    validate_sql_identifier("user", &spec.user)?;
    let (db, user) = (&spec.database, &spec.user);
    let sql = format!(
        "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE);\n\
         SELECT 'DROP OWNED BY \"{user}\"' WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}')\\gexec\n\
         DROP ROLE IF EXISTS \"{user}\";\n"
    );
    Ok(PsqlCommand {
        argv: psql_argv(),
        stdin: SecretString::from(sql),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CreateDatabase {
        CreateDatabase {
            kind: crate::definition::ProvidedKind::Postgres,
            database: "n8n".into(),
            user: "n8n".into(),
            extensions: vec![],
        }
    }

    #[test]
    fn password_goes_to_stdin_never_to_argv() {
        let cmd = create_database_command(&spec(), &SecretString::from("s3cr3t'pw")).unwrap();
        assert!(cmd.argv.iter().all(|a| !a.contains("s3cr3t")));
        assert!(cmd.stdin.expose_secret().contains("PASSWORD 's3cr3t''pw';"));
        assert_eq!(cmd.argv[0], "psql");
        assert!(cmd.argv.windows(2).any(|w| w == ["-v", "ON_ERROR_STOP=1"]));
    }

    #[test]
    fn hostile_identifiers_are_rejected_naming_the_field() {
        let mut s = spec();
        s.database = "n8n\"; DROP DATABASE postgres; --".into();
        let err = create_database_command(&s, &SecretString::from("x")).unwrap_err();
        assert!(err.to_string().contains("database"), "{err}");
        let mut s = spec();
        s.extensions = vec!["vector;".into()];
        let err = create_database_command(&s, &SecretString::from("x")).unwrap_err();
        assert!(err.to_string().contains("extension"), "{err}");
    }

    #[test]
    fn the_script_creates_an_unprivileged_owner() {
        let mut s = spec();
        s.extensions = vec!["vector".into()];
        let cmd = create_database_command(&s, &SecretString::from("pw")).unwrap();
        let sql = cmd.stdin.expose_secret();
        assert!(sql.contains("NOSUPERUSER NOCREATEDB NOCREATEROLE"));
        assert!(sql.contains("CREATE DATABASE \"n8n\" OWNER \"n8n\""));
        assert!(sql.contains("REVOKE ALL ON DATABASE \"n8n\" FROM PUBLIC"));
        assert!(sql.contains("CREATE EXTENSION IF NOT EXISTS \"vector\""));
    }
}
