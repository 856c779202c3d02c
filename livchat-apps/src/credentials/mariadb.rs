//! MariaDB (and MySQL): a database and a user `'<user>'@'%'` with every privilege on that
//! database and none anywhere else, created by the server's `root` over the local socket.
//!
//! The root password is not in the argv either: a fixed `sh -c` line reads it from the
//! provider's Docker secret (`/run/secrets/root_password`, where the catalog's `mariadb`
//! template mounts it, as the official image's `MARIADB_ROOT_PASSWORD_FILE` reads it) into
//! `MYSQL_PWD`, which the client reads from its environment. The app's password is a string
//! literal in the script on stdin, after `NO_BACKSLASH_ESCAPES` is turned off so the escaping
//! below is the one the server applies.
//!
//! In `GRANT ... ON db.*`, `_` and `%` are wildcards: the database name is written there with
//! each `_` escaped, so `a_b` cannot reach a database `axb` created later.

use secrecy::{ExposeSecret, SecretString};

use super::{CreateDatabase, ServiceCommand, argv, backslash_quoted};
use crate::AppsError;
use crate::names::validate_sql_identifier;

/// Where the provider's root password is mounted (the `mariadb` template's secret target).
pub const ROOT_PASSWORD_FILE: &str = "/run/secrets/root_password";

/// The fixed line run by `sh -c` in the provider's container: root's password into the
/// client's environment, then the client reading the script from stdin.
pub const ROOT_CLIENT: &str = "MYSQL_PWD=\"$(cat /run/secrets/root_password)\" && export MYSQL_PWD && exec mariadb --user=root --protocol=socket --batch --skip-column-names";

fn validate(spec: &CreateDatabase) -> Result<(), AppsError> {
    validate_sql_identifier("database", &spec.database)?;
    validate_sql_identifier("user", &spec.user)?;
    // MySQL 8 caps user names at 32 characters (MariaDB at 80): stay within both.
    if spec.user.len() > 32 {
        return Err(AppsError::invalid_value(
            "user",
            format!("{:?} is longer than 32 characters", spec.user),
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

fn root_argv() -> Vec<String> {
    argv(&["sh", "-c", ROOT_CLIENT])
}

pub(super) fn create(
    spec: &CreateDatabase,
    password: &SecretString,
) -> Result<ServiceCommand, AppsError> {
    validate(spec)?;
    let (db, user) = (&spec.database, &spec.user);
    let grant_db = db.replace('_', "\\_");
    let literal = backslash_quoted(password.expose_secret());
    let sql = format!(
        "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '');\n\
         CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n\
         CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY {literal};\n\
         ALTER USER '{user}'@'%' IDENTIFIED BY {literal};\n\
         REVOKE ALL PRIVILEGES, GRANT OPTION FROM '{user}'@'%';\n\
         GRANT ALL PRIVILEGES ON `{grant_db}`.* TO '{user}'@'%';\n"
    );
    Ok(ServiceCommand {
        argv: root_argv(),
        stdin: SecretString::from(sql),
    })
}

pub(super) fn drop(spec: &CreateDatabase) -> Result<ServiceCommand, AppsError> {
    validate(spec)?;
    let (db, user) = (&spec.database, &spec.user);
    let sql = format!("DROP DATABASE IF EXISTS `{db}`;\nDROP USER IF EXISTS '{user}'@'%';\n");
    Ok(ServiceCommand {
        argv: root_argv(),
        stdin: SecretString::from(sql),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{create_database_command, drop_database_command};
    use crate::definition::ProvidedKind;

    fn spec(db: &str, user: &str) -> CreateDatabase {
        CreateDatabase {
            kind: ProvidedKind::Mariadb,
            database: db.into(),
            user: user.into(),
            extensions: vec![],
        }
    }

    #[test]
    fn the_script_is_exactly_this_and_the_password_is_only_on_stdin() {
        let cmd = create_database_command(&spec("word_press", "wp"), &SecretString::from("p'w\\x"))
            .unwrap();
        assert_eq!(cmd.argv, ["sh", "-c", ROOT_CLIENT]);
        assert!(cmd.argv.iter().all(|a| !a.contains("p'w")));
        assert_eq!(
            cmd.stdin.expose_secret(),
            "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '');\n\
             CREATE DATABASE IF NOT EXISTS `word_press` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n\
             CREATE USER IF NOT EXISTS 'wp'@'%' IDENTIFIED BY 'p\\'w\\\\x';\n\
             ALTER USER 'wp'@'%' IDENTIFIED BY 'p\\'w\\\\x';\n\
             REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'wp'@'%';\n\
             GRANT ALL PRIVILEGES ON `word\\_press`.* TO 'wp'@'%';\n"
        );
        assert!(ROOT_CLIENT.contains(ROOT_PASSWORD_FILE));
    }

    #[test]
    fn the_drop_script_is_exactly_this() {
        let cmd = drop_database_command(&spec("wordpress", "wordpress")).unwrap();
        assert_eq!(cmd.argv, ["sh", "-c", ROOT_CLIENT]);
        assert_eq!(
            cmd.stdin.expose_secret(),
            "DROP DATABASE IF EXISTS `wordpress`;\nDROP USER IF EXISTS 'wordpress'@'%';\n"
        );
    }

    #[test]
    fn hostile_or_overlong_names_are_refused_naming_the_field() {
        let pw = SecretString::from("x");
        let err = create_database_command(&spec("a`; DROP DATABASE b; --", "u"), &pw).unwrap_err();
        assert!(err.to_string().contains("database"), "{err}");
        let err = create_database_command(&spec("a", "u'@'%"), &pw).unwrap_err();
        assert!(err.to_string().contains("user"), "{err}");
        let err = create_database_command(&spec("a", &"u".repeat(33)), &pw).unwrap_err();
        assert!(err.to_string().contains("user"), "{err}");
        let mut s = spec("a", "u");
        s.extensions = vec!["vector".into()];
        let err = create_database_command(&s, &pw).unwrap_err();
        assert!(err.to_string().contains("extensions"), "{err}");
    }
}
