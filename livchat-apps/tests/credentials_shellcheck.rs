//! Every shell script the per-app credential commands run in a provider's container passes
//! ShellCheck (as POSIX sh, style level): RabbitMQ's and MinIO's scripts and MariaDB's
//! root client line. MinIO's is only ever checked as text here (MinIO is not packaged in
//! Debian); RabbitMQ's and MariaDB's also run for real in the `*_isolation_swarm` tests.
//! Skipped when ShellCheck is missing, failing under `LIVCHAT_REAL_TESTS=1`.
//!
//! The first-run claim scripts too (issue #19): each passes ShellCheck, and those whose images
//! cannot be pulled here run under `sh` (or node) against stand-ins: see `claim_scripts`.

mod claim_scripts;
mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use livchat_apps::credentials::{mariadb, minio, rabbitmq};
use livchat_apps::definition::ProvidedKind;
use livchat_apps::{CreateDatabase, create_database_command, drop_database_command};
use secrecy::SecretString;

fn shellcheck(name: &str, script: &str) {
    let Some(bin) = fixtures::tools::require("shellcheck") else {
        return;
    };
    let mut child = Command::new(bin)
        .args(["--shell=sh", "--severity=style", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_credential_script_passes_shellcheck() {
    for (name, script) in [
        ("rabbitmq create", rabbitmq::CREATE_SCRIPT),
        ("rabbitmq drop", rabbitmq::DROP_SCRIPT),
        ("minio create", minio::CREATE_SCRIPT),
        ("minio drop", minio::DROP_SCRIPT),
        ("mariadb root client", mariadb::ROOT_CLIENT),
    ] {
        shellcheck(name, script);
    }
}

#[test]
fn every_claim_script_passes_shellcheck() {
    use livchat_apps::{Catalog, DeployStep, EndpointMode};
    let catalog = Catalog::builtin().unwrap();
    let mut checked = 0;
    for entry in catalog.list() {
        let app = &entry.definition.name;
        for step in &common::render(&catalog, app, EndpointMode::Vip).post_deploy {
            let argvs = match step {
                DeployStep::ExecClaim(e) => std::iter::once(e.argv.clone())
                    .chain(e.on_exists.iter().map(|o| o.argv.clone()))
                    .collect(),
                DeployStep::HttpRequest(h) => vec![livchat_apps::first_run::claim_command(h).argv],
                _ => continue,
            };
            for argv in argvs {
                if argv.len() > 2 && argv[0] == "sh" && argv[1] == "-c" {
                    shellcheck(&format!("{app} claim"), &argv[2]);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} claim scripts");
}

#[test]
fn the_health_probe_script_passes_shellcheck() {
    let argv = livchat_apps::probe::probe_argv(&livchat_apps::probe::HttpProbe {
        service: "web".into(),
        port: 8080,
        path: "/".into(),
    });
    shellcheck("health probe", &argv[2]);
}

#[test]
fn the_scripts_checked_are_the_ones_the_commands_run() {
    for (kind, script_at) in [
        (ProvidedKind::Rabbitmq, 2),
        (ProvidedKind::Minio, 2),
        (ProvidedKind::Mariadb, 2),
    ] {
        let spec = CreateDatabase {
            kind,
            database: "appone".into(),
            user: "appone".into(),
            extensions: vec![],
        };
        let create = create_database_command(&spec, &SecretString::from("0123456789")).unwrap();
        let drop = drop_database_command(&spec).unwrap();
        assert_eq!(&create.argv[..2], ["sh", "-c"]);
        let expected = match kind {
            ProvidedKind::Rabbitmq => [rabbitmq::CREATE_SCRIPT, rabbitmq::DROP_SCRIPT],
            ProvidedKind::Minio => [minio::CREATE_SCRIPT, minio::DROP_SCRIPT],
            _ => [mariadb::ROOT_CLIENT, mariadb::ROOT_CLIENT],
        };
        assert_eq!(create.argv[script_at], expected[0]);
        assert_eq!(drop.argv[script_at], expected[1]);
    }
}
