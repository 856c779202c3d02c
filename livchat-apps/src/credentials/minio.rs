//! MinIO: a bucket and a user (access key) whose one policy allows `s3:*` on that bucket and
//! its objects alone, made with `mc` in the provider's container.
//!
//! Checked as text only (exact strings, ShellCheck): MinIO is not packaged in Debian, so no test
//! here runs it. Like RabbitMQ's, the argv is `sh -c SCRIPT sh BUCKET USER` with a constant
//! script; the user's secret key is the one line on stdin, passed on to `mc admin user add`,
//! which reads the secret key from stdin when it is not an argument. The root credentials come
//! from the container: `MINIO_ROOT_USER` from its environment, the password from its Docker
//! secret (`/run/secrets/root_password`, as the catalog's `minio` template mounts it), into
//! `mc`'s `MC_HOST_<alias>` variable, never into an argv.

use secrecy::{ExposeSecret, SecretString};

use super::{CreateDatabase, ServiceCommand, check_single_line};
use crate::AppsError;

/// Creates the bucket, the policy and the user if missing; resets the secret key and attaches
/// the policy. `$1` bucket, `$2` access key, the secret key on stdin.
pub const CREATE_SCRIPT: &str = r#"set -eu
bucket=$1
user=$2
IFS= read -r secret || [ -n "$secret" ]
MC_HOST_livchat="http://${MINIO_ROOT_USER}:$(cat /run/secrets/root_password)@127.0.0.1:9000"
export MC_HOST_livchat
mc mb --ignore-existing "livchat/$bucket"
policy=$(mktemp)
trap 'rm -f "$policy"' EXIT
printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"]}]}\n' "$bucket" "$bucket" >"$policy"
mc admin policy create livchat "livchat-$bucket" "$policy"
printf '%s\n' "$secret" | mc admin user add livchat "$user"
if ! mc admin policy entities livchat --user "$user" | grep -qF "livchat-$bucket"; then
  mc admin policy attach livchat "livchat-$bucket" --user "$user"
fi
"#;

/// Removes the user, its policy and the bucket with its objects, each only if present.
pub const DROP_SCRIPT: &str = r#"set -eu
bucket=$1
user=$2
MC_HOST_livchat="http://${MINIO_ROOT_USER}:$(cat /run/secrets/root_password)@127.0.0.1:9000"
export MC_HOST_livchat
if mc admin user info livchat "$user" >/dev/null 2>&1; then
  mc admin user remove livchat "$user"
fi
if mc admin policy info livchat "livchat-$bucket" >/dev/null 2>&1; then
  mc admin policy remove livchat "livchat-$bucket"
fi
if mc stat "livchat/$bucket" >/dev/null 2>&1; then
  mc rb --force "livchat/$bucket"
fi
"#;

/// Bucket names: S3's rules narrowed to what is also a valid definition name
/// (`[a-z][a-z0-9]{2,62}`: no `_`, which S3 refuses, and no `-`, which definitions refuse).
fn validate(spec: &CreateDatabase) -> Result<(), AppsError> {
    let bucket = &spec.database;
    let ok = (3..=63).contains(&bucket.len())
        && bucket.starts_with(|c: char| c.is_ascii_lowercase())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        return Err(AppsError::invalid_value(
            "database",
            format!("{bucket:?} is not a bucket name for MinIO; expected [a-z][a-z0-9]{{2,62}}"),
        ));
    }
    let user = &spec.user;
    let ok = (3..=63).contains(&user.len())
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(AppsError::invalid_value(
            "user",
            format!("{user:?} is not an access key for MinIO; expected [a-z0-9_]{{3,63}}"),
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
    if password.expose_secret().len() < 8 {
        return Err(AppsError::invalid_value(
            "password",
            "MinIO secret keys have at least 8 characters",
        ));
    }
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

    fn spec(bucket: &str) -> CreateDatabase {
        CreateDatabase {
            kind: ProvidedKind::Minio,
            database: bucket.into(),
            user: "typebot".into(),
            extensions: vec![],
        }
    }

    #[test]
    fn names_are_positional_parameters_and_the_secret_key_is_the_line_on_stdin() {
        let cmd =
            create_database_command(&spec("typebot"), &SecretString::from("0123456789ab")).unwrap();
        assert_eq!(
            cmd.argv,
            ["sh", "-c", CREATE_SCRIPT, "sh", "typebot", "typebot"]
        );
        assert_eq!(cmd.stdin.expose_secret(), "0123456789ab\n");
        let drop = drop_database_command(&spec("typebot")).unwrap();
        assert_eq!(
            drop.argv,
            ["sh", "-c", DROP_SCRIPT, "sh", "typebot", "typebot"]
        );
    }

    #[test]
    fn the_policy_names_the_bucket_and_its_objects_alone() {
        assert!(CREATE_SCRIPT.contains(
            r#""Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"]}]}\n' "$bucket" "$bucket""#
        ));
        assert!(!CREATE_SCRIPT.contains("arn:aws:s3:::*"));
    }

    #[test]
    fn bad_buckets_and_short_secret_keys_are_refused_naming_the_field() {
        let pw = SecretString::from("0123456789ab");
        for bad in ["ty_pebot", "ab", "Typebot", "1abc"] {
            let err = create_database_command(&spec(bad), &pw).unwrap_err();
            assert!(err.to_string().contains("database"), "{bad}: {err}");
        }
        let err =
            create_database_command(&spec("typebot"), &SecretString::from("short")).unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
    }
}
