//! Every builder as one exact string, with no SSH (kamal's `test/commands` style), and the
//! allowlists and the quoter on their own.

use std::net::IpAddr;

use livchat_remote::command::{
    Command, NameKind, apt, docker, quote_command, system, ufw, validate_name,
};
use livchat_remote::{RemoteError, ValidName};

fn name(kind: NameKind, value: &str) -> ValidName {
    validate_name(kind, value).expect("a valid name")
}

fn line(command: &Command) -> String {
    quote_command(command).expect("quotable")
}

fn rejected(kind: NameKind, value: &str) -> String {
    match validate_name(kind, value) {
        Err(RemoteError::Invalid { field, reason }) => format!("{field}: {reason}"),
        other => panic!("{value:?} as {kind:?} should be rejected, got {other:?}"),
    }
}

#[test]
fn docker_builders_are_exact() {
    let net = name(NameKind::Network, "livchat_network");
    let cases: Vec<(Command, &str)> = vec![
        (
            docker::swarm_state(),
            "docker info --format '{{.Swarm.LocalNodeState}}'",
        ),
        (
            docker::swarm_init("10.0.0.5".parse::<IpAddr>().unwrap()),
            "docker swarm init --advertise-addr 10.0.0.5",
        ),
        (
            docker::swarm_init("2001:db8::1".parse::<IpAddr>().unwrap()),
            "docker swarm init --advertise-addr 2001:db8::1",
        ),
        (
            docker::network_create_overlay(&net),
            "docker network create --driver overlay --attachable livchat_network",
        ),
        (
            docker::network_inspect(&net),
            "docker network inspect --format '{{.Driver}} {{.Attachable}}' livchat_network",
        ),
        (
            docker::server_version(),
            "docker version --format '{{.Server.Version}}'",
        ),
        (
            docker::login_password_stdin("registry.example.com", &name(NameKind::User, "deploy")),
            "docker login --username deploy --password-stdin -- registry.example.com",
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(line(&command), expected);
    }
}

#[test]
fn apt_builders_are_exact_and_non_interactive() {
    let pkgs = [
        name(NameKind::Package, "ca-certificates"),
        name(NameKind::Package, "docker.io"),
    ];
    assert_eq!(
        line(&apt::update()),
        "env 'DEBIAN_FRONTEND=noninteractive' apt-get -o 'DPkg::Lock::Timeout=600' update -q"
    );
    assert_eq!(
        line(&apt::install(&pkgs)),
        "env 'DEBIAN_FRONTEND=noninteractive' apt-get -o 'DPkg::Lock::Timeout=600' install -y -q --no-install-recommends -- ca-certificates docker.io"
    );
    assert_eq!(
        line(&apt::full_upgrade()),
        "env 'DEBIAN_FRONTEND=noninteractive' apt-get -o 'DPkg::Lock::Timeout=600' full-upgrade -y -q -o 'Dpkg::Options::=--force-confdef' -o 'Dpkg::Options::=--force-confold'"
    );
    assert_eq!(
        line(&apt::query_status(&pkgs)),
        r#"dpkg-query -W -f '${Status}'"\\n" -- ca-certificates docker.io"#
    );
}

#[test]
fn system_and_ufw_builders_are_exact() {
    assert_eq!(
        line(&system::set_timezone(&name(
            NameKind::Timezone,
            "America/Sao_Paulo"
        ))),
        "timedatectl set-timezone America/Sao_Paulo"
    );
    assert_eq!(
        line(&system::set_timezone(&name(
            NameKind::Timezone,
            "Etc/GMT+3"
        ))),
        "timedatectl set-timezone Etc/GMT+3"
    );
    assert_eq!(
        line(&system::set_hostname(&name(NameKind::Server, "web-1"))),
        "hostnamectl set-hostname web-1"
    );
    assert_eq!(line(&system::cloud_init_wait()), "cloud-init status --wait");
    assert_eq!(line(&system::os_release()), "cat /etc/os-release");
    assert_eq!(line(&system::noop()), "true");
    assert_eq!(line(&ufw::allow_tcp(443)), "ufw allow 443/tcp");
    assert_eq!(
        line(&ufw::default_deny_incoming()),
        "ufw default deny incoming"
    );
    assert_eq!(line(&ufw::enable()), "ufw --force enable");
    assert_eq!(line(&ufw::status()), "ufw status verbose");
}

#[test]
fn sh_script_passes_user_input_as_positional_parameters() {
    let cmd = Command::sh_script(["livchat_network", "a b"]);
    assert_eq!(line(&cmd), "sh -s -- livchat_network 'a b'");
}

#[test]
fn quoting_keeps_hostile_words_single_words() {
    let cmd = Command::new("printf").args([
        "%s\\0",
        "",
        "a b",
        "$(touch canary)",
        "`id`",
        "it's",
        "x;y|z&w",
        "-x",
        "*",
        "\n",
        "caf\u{e9}",
        "\u{a0}",
        "{a,b}",
        "!",
        "^x",
    ]);
    assert_eq!(
        line(&cmd),
        "printf \"%s\\\\0\" '' 'a b' '$(touch canary)' '`id`' \"it's\" 'x;y|z&w' -x '*' '\n' \
         'caf\u{e9}' '\u{a0}' '{a,b}' '!' '^x'"
    );
}

#[test]
fn quoting_rejects_nul_naming_the_argument() {
    let err = quote_command(&Command::new("echo").args(["ok", "a\0b"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid command argument 2: a NUL byte cannot be passed to a remote command"
    );
}

#[test]
fn quoting_rejects_an_empty_program() {
    let err = quote_command(&Command::new("")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid command program: the program is empty"
    );
}

#[test]
fn from_argv_rejects_empty_and_nul_argv_before_connecting() {
    assert!(matches!(
        Command::from_argv(Vec::<String>::new()),
        Err(RemoteError::Invalid { field, .. }) if field == "command"
    ));
    assert!(Command::from_argv(["ls", "\0"]).is_err());
    assert_eq!(
        Command::from_argv(["ls", "-la", "/tmp dir"]).unwrap(),
        Command::new("ls").args(["-la", "/tmp dir"])
    );
}

#[test]
fn valid_names_pass_their_allowlists() {
    for (kind, value) in [
        (NameKind::Server, "web-1"),
        (NameKind::Server, "a"),
        (NameKind::Stack, "chatwoot_prod-2"),
        (NameKind::Network, "livchat_network"),
        (NameKind::Network, "Traefik.Public"),
        (NameKind::Service, "chatwoot_web"),
        (NameKind::Database, "_chatwoot2"),
        (NameKind::User, "postgres"),
        (NameKind::DomainLabel, "xn--bcher-kva"),
        (NameKind::Timezone, "UTC"),
        (NameKind::Timezone, "America/Argentina/Buenos_Aires"),
        (NameKind::Package, "g++"),
        (NameKind::Package, "docker.io"),
    ] {
        assert_eq!(validate_name(kind, value).unwrap().as_str(), value);
    }
    assert_eq!(
        validate_name(NameKind::Server, &"a".repeat(63))
            .unwrap()
            .as_str()
            .len(),
        63
    );
}

#[test]
fn invalid_names_are_rejected_naming_the_field_and_the_allowlist() {
    assert_eq!(
        rejected(NameKind::Stack, "-x"),
        "stack name: \"-x\" is not allowed; use 1 to 63 lowercase ASCII letters, digits, '_' and '-', starting with a letter or digit"
    );
    assert_eq!(
        rejected(NameKind::Network, "a\nb"),
        "network name: \"a\\nb\" is not allowed; use 1 to 63 ASCII letters, digits, '_', '.' and '-', starting with a letter or digit"
    );
    assert_eq!(
        rejected(NameKind::Server, ""),
        "server name: \"\" is not allowed; use 1 to 63 lowercase ASCII letters, digits and '-', starting and ending with a letter or digit"
    );
}

#[test]
fn every_kind_rejects_the_hostile_payloads() {
    let kinds = [
        NameKind::Server,
        NameKind::Stack,
        NameKind::Network,
        NameKind::Service,
        NameKind::Database,
        NameKind::User,
        NameKind::DomainLabel,
        NameKind::Timezone,
        NameKind::Package,
    ];
    let hostile = [
        "a;b",
        "a|b",
        "a`b`",
        "$(x)",
        "a)",
        "(a",
        "a&b",
        "a>b",
        "a<b",
        "a\nb",
        "a\0b",
        "a{b}",
        "a\u{a0}b",
        "\u{a0}",
        "-x",
        "--help",
        "é",
        "naïve",
        "a b",
        "a'b",
        "a\"b",
        "a*",
        "a?",
        "a[b]",
        "a\\b",
        "a\tb",
        "a\rb",
        "~a",
        "a$b",
        "a#b",
        "a=b",
        "\u{202e}ab",
        "ａ",
        "",
        "../etc",
        "/abs",
        "a/../b",
    ];
    for kind in kinds {
        for value in hostile {
            assert!(
                validate_name(kind, value).is_err(),
                "{kind:?} accepted hostile {value:?}"
            );
        }
    }
}

#[test]
fn length_and_edge_rules_are_enforced() {
    assert!(validate_name(NameKind::Server, &"a".repeat(64)).is_err());
    assert!(validate_name(NameKind::Server, "web-").is_err());
    assert!(validate_name(NameKind::Server, "Web").is_err());
    assert!(validate_name(NameKind::DomainLabel, "-a").is_err());
    assert!(validate_name(NameKind::User, &"u".repeat(33)).is_err());
    assert!(validate_name(NameKind::Database, "1db").is_err());
    assert!(validate_name(NameKind::Timezone, "Europe//Berlin").is_err());
    assert!(validate_name(NameKind::Timezone, "Europe/").is_err());
    assert!(validate_name(NameKind::Package, "a").is_err());
}
