//! Rendered stacks checked by the real tools rather than by our own reading of them:
//! `docker stack config` (docker/cli's loader: schema, types and `${VAR}` interpolation, run
//! offline) and ShellCheck for the shell snippets the templates carry. A missing tool is a skip
//! locally and a failure in CI (`LIVCHAT_REAL_TESTS=1`).

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{context, fixed_secrets, render, yaml};
use livchat_apps::{Catalog, EndpointMode};
use secrecy::ExposeSecret;
use serde_yaml::Value;

/// A docker CLI that has `docker stack config` (docker/cli >= 23; Debian's 20.10 client lacks
/// it). Missing: a skip locally, a failure in CI.
fn docker_with_stack_config() -> Option<std::path::PathBuf> {
    let found = ["/usr/local/bin/docker", "/usr/bin/docker"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .chain(fixtures::tools::find("docker"))
        .find(|d| {
            Command::new(d)
                .args(["stack", "config", "--help"])
                .output()
                .is_ok_and(|o| {
                    o.status.success()
                        && String::from_utf8_lossy(&o.stdout).contains("--compose-file")
                })
        });
    if found.is_none() {
        let why = "no docker CLI with `docker stack config` (docker/cli >= 23) is installed";
        assert!(!fixtures::tools::real_tests_required(), "{why}");
        eprintln!("skipped: {why}");
    }
    found
}

/// Runs `docker stack config` on `compose` with an empty environment (so any interpolation we
/// failed to escape would show up as a changed value) and returns its normalised output.
fn docker_stack_config(docker: &Path, compose: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.yml");
    std::fs::write(&file, compose).unwrap();
    let out = Command::new(docker)
        .args(["stack", "config", "--compose-file"])
        .arg(&file)
        .env_clear()
        .env("HOME", dir.path())
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .expect("docker runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_yaml::from_slice(&out.stdout).expect("docker prints YAML"))
}

fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Mapping(m) => m.values().for_each(|v| all_strings(v, out)),
        Value::Sequence(s) => s.iter().for_each(|v| all_strings(v, out)),
        _ => {}
    }
}

#[test]
fn docker_cli_accepts_every_rendered_stack_in_both_modes() {
    let Some(docker) = docker_with_stack_config() else {
        return;
    };
    let catalog = Catalog::builtin().unwrap();
    for entry in catalog.list() {
        for mode in [EndpointMode::Vip, EndpointMode::Dnsrr] {
            let stack = render(&catalog, &entry.definition.name, mode);
            let theirs = docker_stack_config(&docker, stack.compose().expose_secret())
                .unwrap_or_else(|e| panic!("{} {mode:?}: docker rejects it: {e}", stack.app));
            let ours = yaml(&stack);
            let names = |v: &Value| -> Vec<String> {
                v["services"]
                    .as_mapping()
                    .unwrap()
                    .keys()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect()
            };
            let (mut a, mut b) = (names(&ours), names(&theirs));
            a.sort();
            b.sort();
            assert_eq!(a, b, "{}", stack.app);
            if mode == EndpointMode::Dnsrr {
                for (_, svc) in theirs["services"].as_mapping().unwrap() {
                    assert_eq!(svc["deploy"]["endpoint_mode"].as_str(), Some("dnsrr"));
                }
            }
        }
    }
}

#[test]
fn docker_cli_sees_hostile_values_unchanged_after_interpolation() {
    let Some(docker) = docker_with_stack_config() else {
        return;
    };
    let catalog = Catalog::builtin().unwrap();
    for hostile in [
        "${HOME}",
        "$$ and $ and ${X:-default} and ${Y?err}",
        "x\ninjected: true",
        "}}: x {{ y }}",
        "'; \"quoted\" \\ back",
        "ção 🚀 \u{2028}",
    ] {
        let params = [("timezone".to_string(), hostile.to_string())].into();
        let stack = catalog
            .render(
                "n8n",
                &context(EndpointMode::Vip),
                &params,
                &fixed_secrets(&catalog),
            )
            .unwrap();
        let theirs = docker_stack_config(&docker, stack.compose().expose_secret())
            .unwrap_or_else(|e| panic!("{hostile:?}: {e}"));
        let env = &theirs["services"]["editor"]["environment"];
        assert_eq!(env["TZ"].as_str(), Some(hostile), "{hostile:?}");
        assert!(env.get("injected").is_none());
        let mut values = Vec::new();
        all_strings(&theirs, &mut values);
        assert!(values.iter().any(|v| v == hostile), "{hostile:?}");
        let services = theirs["services"].as_mapping().unwrap().len();
        // editor, webhook, worker and n8n's own redis.
        assert_eq!(services, 4, "{hostile:?}");
    }
}

/// Shell snippets in stacks: `sh -c` commands and `CMD-SHELL` healthchecks, as the container
/// shell will see them (after Compose turns `$$` into `$`).
fn shell_snippets(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, svc) in doc["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap().to_string();
        let seq = |v: &Value| -> Vec<String> {
            v.as_sequence()
                .map(|s| {
                    s.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        for field in ["command", "entrypoint"] {
            let argv = seq(&svc[field]);
            if argv.len() >= 3 && argv[0] == "sh" && argv[1] == "-c" {
                out.push((format!("{name}.{field}"), argv[2].replace("$$", "$")));
            }
        }
        let test = seq(&svc["healthcheck"]["test"]);
        if test.first().map(String::as_str) == Some("CMD-SHELL") {
            out.push((format!("{name}.healthcheck"), test[1].replace("$$", "$")));
        }
    }
    out
}

#[test]
fn shell_snippets_in_stacks_pass_shellcheck() {
    let Some(shellcheck) = fixtures::tools::require("shellcheck") else {
        return;
    };
    let catalog = Catalog::builtin().unwrap();
    let mut checked = BTreeMap::new();
    for entry in catalog.list() {
        let doc = yaml(&render(&catalog, &entry.definition.name, EndpointMode::Vip));
        for (place, script) in shell_snippets(&doc) {
            let mut child = Command::new(&shellcheck)
                .args(["--shell=sh", "--severity=style", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("#!/bin/sh\n{script}\n").as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}/{place}: {script}\n{}",
                entry.definition.name,
                String::from_utf8_lossy(&out.stdout)
            );
            checked.insert(format!("{}/{place}", entry.definition.name), script);
        }
    }
    assert!(
        checked.keys().any(|k| k.starts_with("redis/")),
        "{checked:?}"
    );
}
