//! MongoDB: a user defined in the app's own database with the role `readWrite` on that database
//! alone, made by `mongosh` in the provider's container.
//!
//! Checked as text only: MongoDB is not packaged in Debian, so no test here runs it. The
//! script (stdin) first authenticates as `root` with the password read from the provider's
//! Docker secret (`/run/secrets/root_password`, which the official image also reads through
//! `MONGO_INITDB_ROOT_PASSWORD_FILE`), so neither password is in the argv. Names and the
//! password are JSON string literals, which are JavaScript string literals; each statement is
//! one line because `mongosh` evaluates piped input line by line.

use secrecy::{ExposeSecret, SecretString};

use super::{CreateDatabase, ServiceCommand, argv};
use crate::AppsError;
use crate::names::validate_sql_identifier;

/// `mongosh` on the local server's admin database, reading the script from stdin.
pub const ARGV: &[&str] = &[
    "mongosh",
    "--quiet",
    "--norc",
    "mongodb://127.0.0.1:27017/admin",
];

/// The first line of every script: `root` authenticates with the provider's secret.
pub const AUTH_LINE: &str = "db.getSiblingDB(\"admin\").auth(\"root\", require(\"fs\").readFileSync(\"/run/secrets/root_password\", \"utf8\").trim());";

fn validate(spec: &CreateDatabase) -> Result<(), AppsError> {
    validate_sql_identifier("database", &spec.database)?;
    validate_sql_identifier("user", &spec.user)?;
    if matches!(spec.database.as_str(), "admin" | "local" | "config") {
        return Err(AppsError::invalid_value(
            "database",
            format!("{:?} is one of MongoDB's own databases", spec.database),
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

fn js(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

pub(super) fn create(
    spec: &CreateDatabase,
    password: &SecretString,
) -> Result<ServiceCommand, AppsError> {
    validate(spec)?;
    let (db, user, pw) = (
        js(&spec.database),
        js(&spec.user),
        js(password.expose_secret()),
    );
    let script = format!(
        "{AUTH_LINE}\n\
         const target = db.getSiblingDB({db});\n\
         const roles = [{{ role: \"readWrite\", db: {db} }}];\n\
         if (target.getUser({user}) === null) {{ target.createUser({{ user: {user}, pwd: {pw}, roles: roles }}); }} else {{ target.updateUser({user}, {{ pwd: {pw}, roles: roles }}); }}\n"
    );
    Ok(ServiceCommand {
        argv: argv(ARGV),
        stdin: SecretString::from(script),
    })
}

pub(super) fn drop(spec: &CreateDatabase) -> Result<ServiceCommand, AppsError> {
    validate(spec)?;
    let (db, user) = (js(&spec.database), js(&spec.user));
    let script = format!(
        "{AUTH_LINE}\n\
         const target = db.getSiblingDB({db});\n\
         if (target.getUser({user}) !== null) {{ target.dropUser({user}); }}\n\
         target.dropDatabase();\n"
    );
    Ok(ServiceCommand {
        argv: argv(ARGV),
        stdin: SecretString::from(script),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{create_database_command, drop_database_command};
    use crate::definition::ProvidedKind;

    fn spec() -> CreateDatabase {
        CreateDatabase {
            kind: ProvidedKind::Mongodb,
            database: "heyform".into(),
            user: "heyform".into(),
            extensions: vec![],
        }
    }

    #[test]
    fn the_script_is_exactly_this_and_the_password_a_json_literal_on_stdin() {
        let cmd = create_database_command(&spec(), &SecretString::from("p\"w\\\n")).unwrap();
        assert_eq!(cmd.argv, ARGV);
        assert_eq!(
            cmd.stdin.expose_secret(),
            "db.getSiblingDB(\"admin\").auth(\"root\", require(\"fs\").readFileSync(\"/run/secrets/root_password\", \"utf8\").trim());\n\
             const target = db.getSiblingDB(\"heyform\");\n\
             const roles = [{ role: \"readWrite\", db: \"heyform\" }];\n\
             if (target.getUser(\"heyform\") === null) { target.createUser({ user: \"heyform\", pwd: \"p\\\"w\\\\\\n\", roles: roles }); } else { target.updateUser(\"heyform\", { pwd: \"p\\\"w\\\\\\n\", roles: roles }); }\n"
        );
    }

    #[test]
    fn the_drop_script_is_exactly_this_and_mongodbs_own_databases_are_refused() {
        let cmd = drop_database_command(&spec()).unwrap();
        assert_eq!(
            cmd.stdin.expose_secret(),
            format!(
                "{AUTH_LINE}\nconst target = db.getSiblingDB(\"heyform\");\n\
                 if (target.getUser(\"heyform\") !== null) {{ target.dropUser(\"heyform\"); }}\n\
                 target.dropDatabase();\n"
            )
        );
        let mut s = spec();
        s.database = "admin".into();
        let err = drop_database_command(&s).unwrap_err();
        assert!(err.to_string().contains("database"), "{err}");
    }
}
