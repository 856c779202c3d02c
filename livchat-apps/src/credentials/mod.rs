//! The commands that give an app its own credentials in a shared backend, one module per kind,
//! all of the same shape: an argv with no secret in it (run with `ContainerPlatform::exec` in
//! the provider's service, no shell of the server involved) and a text for its stdin that
//! holds the secret. The argv and every script are constants or built here from validated
//! names, so this directory is the one place these commands are written down.
//!
//! | kind | what an app gets | run for real in tests |
//! | --- | --- | --- |
//! | postgres | a database it owns, a role with no other rights | yes (Debian's postgresql-15) |
//! | mariadb | a database, a user with every right on it and none elsewhere | yes (Debian's mariadb-server, on a Swarm) |
//! | rabbitmq | a vhost, a user with permissions on it alone | yes (Debian's rabbitmq-server, on a Swarm) |
//! | mongodb | a user (in its database) with `readWrite` on its database alone | no: text only (MongoDB is not packaged in Debian) |
//! | minio | a bucket, a user whose policy covers that bucket alone | no: text only (MinIO is not packaged in Debian) |
//! | clickhouse | a database, a user with every right on it alone | no: text only (Debian's 18.16 predates SQL user management) |

pub mod clickhouse;
pub mod mariadb;
pub mod minio;
pub mod mongodb;
pub mod rabbitmq;

use secrecy::{ExposeSecret, SecretString};

use crate::AppsError;
use crate::definition::ProvidedKind;

/// What to create for one app in its provider: a database (vhost, bucket) and a user of its
/// own, plus, for Postgres, extensions the user may not create itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CreateDatabase {
    /// The provider's kind, which picks the commands.
    pub kind: ProvidedKind,
    /// Database name (RabbitMQ: vhost; MinIO: bucket).
    pub database: String,
    /// User name (MinIO: access key).
    pub user: String,
    pub extensions: Vec<String>,
}

impl CreateDatabase {
    /// What the step creates, for plans and job logs (no secret).
    pub fn describe(&self) -> String {
        let (db, user) = (&self.database, &self.user);
        match self.kind {
            ProvidedKind::Postgres => {
                format!("database {db} owned by user {user} (least privilege)")
            }
            ProvidedKind::Mariadb => {
                format!("database {db} and user {user} with grants on it alone")
            }
            ProvidedKind::Rabbitmq => {
                format!("vhost {db} and user {user} with permissions on it alone")
            }
            ProvidedKind::Mongodb => format!("user {user} with readWrite on database {db} alone"),
            ProvidedKind::Minio => {
                format!("bucket {db} and user {user} whose policy covers it alone")
            }
            ProvidedKind::Clickhouse => {
                format!("database {db} and user {user} with grants on it alone")
            }
            ProvidedKind::Redis => {
                format!("{db}/{user} (a redis provider has no per-app credentials)")
            }
        }
    }
}

/// A command for `exec` in a provider's service: run `argv`, feed `stdin`.
#[derive(Debug)]
pub struct ServiceCommand {
    pub argv: Vec<String>,
    /// The script or input; holds the secret.
    pub stdin: SecretString,
}

/// The command that creates (or brings back to what it should be) `spec` with `password`.
/// Re-running it is harmless: it creates what is missing and resets the password and rights.
pub fn create_database_command(
    spec: &CreateDatabase,
    password: &SecretString,
) -> Result<ServiceCommand, AppsError> {
    check_password(password)?;
    match spec.kind {
        ProvidedKind::Postgres => crate::postgres::create_database_command(spec, password),
        ProvidedKind::Mariadb => mariadb::create(spec, password),
        ProvidedKind::Rabbitmq => rabbitmq::create(spec, password),
        ProvidedKind::Mongodb => mongodb::create(spec, password),
        ProvidedKind::Minio => minio::create(spec, password),
        ProvidedKind::Clickhouse => clickhouse::create(spec, password),
        ProvidedKind::Redis => Err(no_credentials()),
    }
}

/// The command that removes what [`create_database_command`] created, data included
/// (`app undeploy --delete-data`). Removing what is absent succeeds.
pub fn drop_database_command(spec: &CreateDatabase) -> Result<ServiceCommand, AppsError> {
    match spec.kind {
        ProvidedKind::Postgres => crate::postgres::drop_database_command(spec),
        ProvidedKind::Mariadb => mariadb::drop(spec),
        ProvidedKind::Rabbitmq => rabbitmq::drop(spec),
        ProvidedKind::Mongodb => mongodb::drop(spec),
        ProvidedKind::Minio => minio::drop(spec),
        ProvidedKind::Clickhouse => clickhouse::drop(spec),
        ProvidedKind::Redis => Err(no_credentials()),
    }
}

/// Accounts each kind's server or image has for itself: an app's user must not be one.
pub fn is_server_account(kind: ProvidedKind, user: &str) -> bool {
    let reserved: &[&str] = match kind {
        ProvidedKind::Postgres => &["postgres"],
        ProvidedKind::Mariadb => &["root", "mysql", "mariadb", "healthcheck"],
        ProvidedKind::Rabbitmq => &["guest", "admin"],
        ProvidedKind::Mongodb => &["root", "admin"],
        ProvidedKind::Minio => &["minioadmin"],
        ProvidedKind::Clickhouse => &["default"],
        ProvidedKind::Redis => &[],
    };
    reserved.contains(&user)
}

fn no_credentials() -> AppsError {
    AppsError::invalid_value(
        "kind",
        "a redis provider runs inside each dependent's stack and has no per-app credentials",
    )
}

fn check_password(password: &SecretString) -> Result<(), AppsError> {
    let pw = password.expose_secret();
    if pw.is_empty() || pw.contains('\0') {
        return Err(AppsError::invalid_value(
            "password",
            "must be non-empty and must not contain NUL",
        ));
    }
    Ok(())
}

/// Backends whose clients read the secret as one line of stdin cannot take a line break in it.
fn check_single_line(password: &SecretString) -> Result<(), AppsError> {
    if password.expose_secret().contains(['\n', '\r']) {
        return Err(AppsError::invalid_value(
            "password",
            "must be one line for this backend (its client reads one line of stdin)",
        ));
    }
    Ok(())
}

/// A string literal for MariaDB and ClickHouse, whose parsers both treat backslash as an
/// escape (MariaDB only without `NO_BACKSLASH_ESCAPES`, which the scripts turn off first).
fn backslash_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
