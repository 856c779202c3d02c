//! The hostile payloads of security.md through exec argv, through every builder input and
//! through the setup plan's script arguments, executed by the real login shell of a real sshd
//! with a canary file: the canary is never created and every argument arrives byte for byte
//! (the remote runs `printf '%s\0' ARGS...` and the bytes are compared). Names are rejected by
//! the allowlists instead (tested for every kind).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use fixtures::sshd::Sshd;
use livchat_remote::command::{Command, NameKind, apt, docker, system, ufw, validate_name};
use livchat_remote::setup::{Action, OsRelease, SetupConfig, Swap, plan};
use livchat_remote::{
    ExecOptions, HostKeyPolicy, RemoteExecutor, SshConnector, SshExecutor, SshTarget,
};
use secrecy::{SecretBox, SecretString};

/// security.md's list, with the canary command in several shapes.
fn payloads(canary: &str) -> Vec<String> {
    let mut p: Vec<String> = [
        ";",
        "|",
        "`",
        "$(",
        ")",
        "&",
        ">",
        "<",
        "\n",
        "{",
        "\u{a0}",
        "-x",
        "--",
        "-",
        "",
        "'",
        "\"",
        "\\",
        "*",
        "?",
        "[a]",
        "~",
        "#",
        "!",
        "^",
        "%",
        "=",
        "a b",
        "\t",
        "\r",
        "\u{202e}",
        "日本語",
        "é",
        "👍",
        "{a,b}",
        "$HOME",
        "${IFS}",
        "\\'",
        "'\"'\"'",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for shape in [
        "$(touch {c})",
        "`touch {c}`",
        "; touch {c}",
        "| touch {c}",
        "&& touch {c}",
        "\ntouch {c}\n",
        "'; touch {c}; '",
        "\"; touch {c}; \"",
        "$(touch${IFS}{c})",
        "> {c}",
        "-o{c}",
    ] {
        p.push(shape.replace("{c}", canary));
    }
    p
}

async fn connect(sshd: &Sshd) -> Arc<SshExecutor> {
    let target = SshTarget {
        name: "injection".into(),
        host: sshd.host(),
        port: sshd.port(),
        user: sshd.user().into(),
    };
    SshConnector::default()
        .connect_ssh(
            &target,
            &SecretString::from(sshd.client_private_key().to_owned()),
            &HostKeyPolicy::TrustOnFirstUse,
        )
        .await
        .unwrap()
        .0
}

fn nul_joined(args: &[String]) -> Vec<u8> {
    let mut v = Vec::new();
    for a in args {
        v.extend_from_slice(a.as_bytes());
        v.push(0);
    }
    v
}

/// Runs `printf '%s\0' ARGS...` remotely and asserts the bytes come back unchanged.
async fn assert_args_arrive(exec: &SshExecutor, what: &str, args: &[String]) {
    let cmd = Command::new("printf")
        .arg("%s\\0")
        .args(args.iter().cloned());
    let out = exec
        .exec(
            &cmd,
            ExecOptions {
                timeout: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        out.exit_status,
        0,
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == nul_joined(args),
        "{what}: arguments changed on the way: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn hostile_exec_argv_arrives_unchanged_and_never_runs() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let canary = sshd.dir().join("canary");
    let canary_s = canary.display().to_string();
    let all = payloads(&canary_s);
    // All at once, and each alone (a payload may only bite at the start or end of a line).
    assert_args_arrive(&exec, "all payloads", &all).await;
    for p in &all {
        assert_args_arrive(&exec, &format!("{p:?}"), std::slice::from_ref(p)).await;
        // As the program itself: the shell must look for a program of exactly that name.
        let out = exec
            .exec(
                &Command::new(p.clone()),
                ExecOptions {
                    timeout: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await;
        if p.is_empty() {
            assert!(out.is_err(), "an empty program is rejected");
        }
    }
    assert!(!canary.exists(), "a payload was executed");
}

#[tokio::test]
async fn nul_cannot_cross_and_is_rejected_before_sending() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let err = exec
        .exec(&Command::new("echo").arg("a\0b"), ExecOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid command argument 1:"),
        "{err}"
    );
    assert_eq!(exec.round_trips(), 0, "nothing was sent");
}

#[tokio::test]
async fn hostile_values_in_every_builder_input_arrive_as_single_arguments() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let canary = sshd.dir().join("canary");
    let all = payloads(&canary.display().to_string());
    let net = validate_name(NameKind::Network, "livchat_network").unwrap();
    let user = validate_name(NameKind::User, "deploy").unwrap();
    let pkg = validate_name(NameKind::Package, "docker.io").unwrap();
    let tz = validate_name(NameKind::Timezone, "UTC").unwrap();
    let host = validate_name(NameKind::Server, "web-1").unwrap();
    // Builders taking validated names: every argument (fixed or validated) arrives intact.
    let mut built: Vec<Command> = vec![
        docker::swarm_state(),
        docker::swarm_init("10.1.2.3".parse::<IpAddr>().unwrap()),
        docker::swarm_init("fe80::1".parse::<IpAddr>().unwrap()),
        docker::network_create_overlay(&net),
        docker::network_inspect(&net),
        docker::server_version(),
        apt::update(),
        apt::install(std::slice::from_ref(&pkg)),
        apt::full_upgrade(),
        apt::query_status(std::slice::from_ref(&pkg)),
        system::set_timezone(&tz),
        system::set_hostname(&host),
        system::cloud_init_wait(),
        system::os_release(),
        ufw::allow_tcp(22),
        ufw::default_deny_incoming(),
        ufw::enable(),
        ufw::status(),
    ];
    // The one builder input that is not a name (a registry address) takes any payload.
    for p in &all {
        built.push(docker::login_password_stdin(p, &user));
        built.push(Command::sh_script([p.clone()]));
    }
    for cmd in built {
        let mut argv = vec![cmd.program.clone()];
        argv.extend(cmd.args.clone());
        assert_args_arrive(&exec, &format!("{cmd}"), &argv).await;
    }
    // And the names themselves: every hostile payload is refused by every allowlist.
    for p in &all {
        for kind in [
            NameKind::Server,
            NameKind::Stack,
            NameKind::Network,
            NameKind::Service,
            NameKind::Database,
            NameKind::User,
            NameKind::DomainLabel,
            NameKind::Timezone,
            NameKind::Package,
        ] {
            assert!(validate_name(kind, p).is_err(), "{kind:?} accepted {p:?}");
        }
    }
    assert!(!canary.exists(), "a payload was executed");
}

#[tokio::test]
async fn setup_plan_script_arguments_reach_the_script_unchanged() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let canary = sshd.dir().join("canary");
    let mut config = SetupConfig::new("web-1", "10.0.0.2".parse::<IpAddr>().unwrap()).unwrap();
    config.swap = Swap::FixedMib(512);
    config.full_upgrade = true;
    let os = OsRelease::parse("ID=debian\nVERSION_ID=12").unwrap();
    // A loop, not `printf '%s\0' "$@"`, which prints one NUL for zero arguments.
    let echo_args = "for a in \"$@\"; do printf '%s\\0' \"$a\"; done\n";
    for step in plan(&config, &os).unwrap() {
        for action in [&step.check, &step.apply] {
            let Action::Script { args, .. } = action else {
                continue;
            };
            // The same argv as the plan sends, with a script that prints its positional
            // parameters: what the real script would see as "$1"...
            let out = exec
                .exec(
                    &action.command(),
                    ExecOptions {
                        stdin: Some(SecretBox::new(
                            echo_args.as_bytes().to_vec().into_boxed_slice(),
                        )),
                        timeout: Duration::from_secs(30),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(
                out.stdout == nul_joined(args),
                "{}: {:?}",
                step.id,
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    // Hostile positional parameters travel the same way.
    let all = payloads(&canary.display().to_string());
    let out = exec
        .exec(
            &Command::sh_script(all.clone()),
            ExecOptions {
                stdin: Some(SecretBox::new(
                    echo_args.as_bytes().to_vec().into_boxed_slice(),
                )),
                timeout: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(out.stdout == nul_joined(&all));
    assert!(!canary.exists(), "a payload was executed");
}
