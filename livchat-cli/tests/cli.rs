//! The `livchat` binary as a user meets it: help, and every bad-input path gives one clear
//! line on stderr, a non-zero exit, and changes nothing. Snapshots hold exit code, stdout and
//! stderr together (uv's `uv_snapshot!` style), with the temporary home filtered out.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use fixtures::cli::Livchat;

/// A temporary home whose cloud endpoints are a closed loopback port, so nothing here can
/// reach a cloud; the runner (`fixtures::cli::Livchat`) gives `path`, `command`, `run`.
struct Home(Livchat);

impl std::ops::Deref for Home {
    type Target = Livchat;
    fn deref(&self) -> &Livchat {
        &self.0
    }
}

impl Home {
    fn new() -> Self {
        Home(
            Livchat::temp(env!("CARGO_BIN_EXE_livchat"))
                .env("LIVCHAT_HETZNER_ENDPOINT", "http://127.0.0.1:9")
                .env(
                    "LIVCHAT_CLOUDFLARE_ENDPOINT",
                    "http://127.0.0.1:9/client/v4/",
                )
                .env("COLUMNS", "100"),
        )
    }

    fn path(&self) -> PathBuf {
        self.home().to_path_buf()
    }

    fn initialised() -> Self {
        let h = Home::new();
        let out = h.run(&["init"]);
        assert!(out.starts_with("exit: 0"), "{out}");
        h
    }

    /// The transcript of `livchat <args>` with `input` on its stdin (a child that exits
    /// before reading closes the pipe: that is not a test failure).
    fn run_with_stdin(&self, cmd: std::process::Command, input: &[u8]) -> String {
        use std::io::Write;
        let mut cmd = cmd;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let _ = child.stdin.take().unwrap().write_all(input);
        let out = child.wait_with_output().unwrap();
        self.transcript(&out)
    }

    fn state_bytes(&self) -> Vec<u8> {
        fixtures::cli::state_and_jobs(&self.path())
    }

    fn vault_bytes(&self) -> Vec<u8> {
        std::fs::read(self.path().join("credentials.vault")).unwrap()
    }
}

fn snapshot(name: &str, value: &str) {
    insta::with_settings!({
        filters => vec![(r"job-\d{14}-[0-9a-f]{8}", "[JOB_ID]")],
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, value);
    });
}

#[test]
fn help_lists_every_command_with_examples() {
    let h = Home::new();
    snapshot("help", &h.run(&["--help"]));
    snapshot("help_server", &h.run(&["server", "--help"]));
    snapshot("help_app", &h.run(&["app", "--help"]));
    snapshot("help_job", &h.run(&["job", "--help"]));
}

#[test]
fn server_add_help_says_what_key_and_host_key_options_do() {
    let h = Home::new();
    // Issue #13: the help said a key is generated without --key, which `add` refuses.
    snapshot("help_server_add", &h.run(&["server", "add", "--help"]));
    snapshot(
        "help_server_repin_host_key",
        &h.run(&["server", "repin-host-key", "--help"]),
    );
}

#[test]
fn app_status_and_logs_refuse_bad_input_naming_the_field_before_connecting() {
    let h = Home::initialised();
    snapshot("help_app_logs", &h.run(&["app", "logs", "--help"]));
    // Issue #17: the tail bound and the service allowlist are checked before the server is
    // looked up or reached (no server exists in this home).
    snapshot(
        "bad_app_logs_tail",
        &bad(&h, &["app", "logs", "web-1", "n8n", "--tail", "10001"]),
    );
    snapshot(
        "bad_app_logs_service",
        &bad(
            &h,
            &["app", "logs", "web-1", "n8n", "--service", "db;rm -rf /"],
        ),
    );
    snapshot(
        "bad_app_status_unknown_server",
        &bad(&h, &["app", "status", "ghost"]),
    );
}

#[test]
fn job_flags_are_offered_only_by_commands_that_start_a_job() {
    let h = Home::initialised();
    for (args, flag) in [
        (&["server", "list", "--detach"][..], "--detach"),
        (&["app", "list", "--wait-turn"][..], "--wait-turn"),
        (
            &[
                "--detach",
                "server",
                "setup",
                "web-1",
                "--zone",
                "example.com",
            ][..],
            "--detach",
        ),
    ] {
        let out = h.run(args);
        assert!(out.starts_with("exit: 2"), "{args:?}: {out}");
        assert!(
            out.contains(&format!("unexpected argument '{flag}'")),
            "{args:?}: {out}"
        );
    }
    for args in [
        &["server", "setup", "--help"][..],
        &["server", "create", "--help"],
        &["server", "delete", "--help"],
        &["app", "deploy", "--help"],
        &["app", "undeploy", "--help"],
        &["job", "retry", "--help"],
    ] {
        let out = h.run(args);
        assert!(
            out.contains("--detach") && out.contains("--wait-turn"),
            "{args:?}: {out}"
        );
    }
    let help = h.run(&["server", "list", "--help"]);
    assert!(
        !help.contains("--detach") && !help.contains("--wait-turn"),
        "{help}"
    );
}

#[test]
fn usage_does_not_show_home_as_required_when_livchat_home_is_set() {
    let h = Home::new();
    let out = h.run(&["server", "add"]);
    assert!(out.starts_with("exit: 2"), "{out}");
    assert!(
        out.contains("Usage: livchat server add --host <HOST> <NAME>"),
        "{out}"
    );
}

#[test]
fn port_out_of_range_names_the_allowed_range() {
    let h = Home::initialised();
    for port in ["0", "70000"] {
        let out = h.run(&[
            "server",
            "add",
            "web-1",
            "--host",
            "127.0.0.1",
            "--port",
            port,
        ]);
        assert!(out.starts_with("exit: 2"), "{out}");
        assert!(out.contains("is not in 1..=65535"), "{out}");
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let h = Home::initialised();
    // A pipe whose reading end is closed before livchat writes: every write fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = h.command(&["app", "list", "--output", "json"]);
    cmd.stdout(writer).stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn unknown_command_is_a_usage_error_with_exit_2() {
    let h = Home::new();
    let out = h.run(&["serverz"]);
    assert!(out.starts_with("exit: 2"), "{out}");
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    let h = Home::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = h.run(&["completions", shell]);
        assert!(out.starts_with("exit: 0"), "{out}");
        assert!(out.contains("livchat"), "{shell}");
    }
}

#[test]
fn commands_before_init_say_to_run_init() {
    let h = Home::new();
    snapshot("before_init", &h.run(&["server", "list"]));
}

#[test]
fn init_is_idempotent_and_files_are_private() {
    let h = Home::initialised();
    snapshot("init_again", &h.run(&["init"]));
    use std::os::unix::fs::PermissionsExt;
    for f in ["state.json", "credentials.vault", ".vault_password"] {
        let mode = std::fs::metadata(h.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

/// Runs a bad command and checks that neither state.json nor the vault changed.
fn bad(h: &Home, args: &[&str]) -> String {
    bad_with_stdin(h, args, b"")
}

fn bad_with_stdin(h: &Home, args: &[&str], input: &[u8]) -> String {
    let (state, vault) = (h.state_bytes(), h.vault_bytes());
    let out = h.run_with_stdin(h.command(args), input);
    assert!(!out.starts_with("exit: 0"), "{args:?} should fail:\n{out}");
    assert_eq!(state, h.state_bytes(), "{args:?} changed state.json");
    assert_eq!(vault, h.vault_bytes(), "{args:?} changed the vault");
    let stderr = out.split("--- stderr\n").nth(1).unwrap_or_default();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line on stderr:\n{out}"
    );
    out
}

#[test]
fn bad_input_gives_one_clear_line_and_changes_nothing() {
    let h = Home::initialised();
    snapshot(
        "bad_unknown_setting",
        &bad(&h, &["settings", "set", "colour", "blue"]),
    );
    snapshot(
        "bad_setting_value",
        &bad(&h, &["settings", "set", "email", "not-an-email"]),
    );
    snapshot("bad_unknown_secret", &bad(&h, &["secrets", "get", "nope"]));
    snapshot(
        "bad_secret_name",
        &bad_with_stdin(&h, &["secrets", "set", "bad name!"], b"x"),
    );
    snapshot("bad_unknown_server", &bad(&h, &["server", "show", "ghost"]));
    snapshot(
        "bad_hostile_server_name",
        &bad(
            &h,
            &["server", "add", "x;touch /tmp/pwned", "--host", "127.0.0.1"],
        ),
    );
    snapshot(
        "bad_hostile_host",
        &bad(
            &h,
            &[
                "server",
                "add",
                "web-1",
                "--host=-oProxyCommand=touch /tmp/pwned",
            ],
        ),
    );
    snapshot("bad_unknown_app", &bad(&h, &["app", "show", "nope"]));
    snapshot(
        "bad_deploy_unknown_server",
        &bad(&h, &["app", "deploy", "ghost", "n8n"]),
    );
    snapshot("bad_unknown_job", &bad(&h, &["job", "show", "job-nope"]));
    snapshot(
        "bad_job_status",
        &bad(&h, &["job", "list", "--status", "done"]),
    );
    snapshot(
        "bad_missing_credentials",
        &bad(
            &h,
            &[
                "server",
                "create",
                "web-1",
                "--type",
                "cx22",
                "--location",
                "nbg1",
            ],
        ),
    );
    snapshot(
        "bad_render_unknown_parameter",
        &bad(
            &h,
            &[
                "app",
                "render",
                "n8n",
                "--zone",
                "example.com",
                "--set",
                "nope=1",
            ],
        ),
    );
    // Issue #13: the same zone rule and exit code as `server setup --zone`.
    snapshot(
        "bad_dns_configure_zone",
        &bad(&h, &["dns", "configure", "Not A Zone!"]),
    );
    snapshot(
        "bad_server_add_dns_name",
        &bad(
            &h,
            &[
                "server",
                "add",
                "web-1",
                "--host",
                "web-1.example.com",
                "--accept-new-host-key",
            ],
        ),
    );
    snapshot(
        "bad_render_hostile_zone",
        &bad(&h, &["app", "render", "n8n", "--zone", "example.com\nx: 1"]),
    );
    assert!(!Path::new("/tmp/pwned").exists());
}

#[test]
fn wrong_vault_password_names_the_file_and_changes_nothing() {
    let h = Home::initialised();
    let (state, vault) = (h.state_bytes(), h.vault_bytes());
    let mut cmd = h.command(&["secrets", "set", "k"]);
    cmd.env("LIVCHAT_VAULT_PASSWORD", "wrong-password");
    let out = h.run_with_stdin(cmd, b"v\n");
    snapshot("bad_vault_password", &out);
    assert_eq!(state, h.state_bytes());
    assert_eq!(vault, h.vault_bytes());
}

#[test]
fn a_secret_value_on_the_command_line_is_refused_and_nothing_is_stored() {
    let h = Home::initialised();
    let out = bad(&h, &["secrets", "set", "hetzner_token", "tok-on-argv"]);
    assert!(out.starts_with("exit: 2"), "{out}");
    assert!(
        out.contains("VALUE") && out.contains("command line") && out.contains("< file"),
        "{out}"
    );
    assert!(!out.contains("tok-on-argv"), "{out}");
    let list = h.run(&["secrets", "list", "--output", "json"]);
    assert!(!list.contains("hetzner_token"), "{list}");
}

#[test]
fn secrets_set_reads_standard_input_without_a_flag_when_it_is_not_a_terminal() {
    let h = Home::initialised();
    let out = h.run_with_stdin(h.command(&["secrets", "set", "k"]), b"from-stdin\n");
    assert!(out.starts_with("exit: 0"), "{out}");
    let get = h.run(&["secrets", "get", "k"]);
    assert!(get.contains("\nfrom-stdin\n"), "{get}");
}

#[test]
fn secrets_round_trip_and_list_shows_names_only() {
    let h = Home::initialised();
    let mut cmd = h.command(&["secrets", "set", "hetzner_token", "--stdin"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"tok-1234567890\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let list = h.run(&["secrets", "list", "--output", "json"]);
    assert!(list.contains("hetzner_token"), "{list}");
    assert!(!list.contains("tok-1234567890"), "{list}");
    let get = h.run(&["secrets", "get", "hetzner_token"]);
    assert!(get.contains("tok-1234567890\n"), "{get}");
    let raw = String::from_utf8(h.vault_bytes()).unwrap();
    assert!(raw.starts_with("$ANSIBLE_VAULT;1.1;AES256"));
    assert!(!raw.contains("tok-1234567890"));
}

#[test]
fn settings_round_trip_in_json() {
    let h = Home::initialised();
    assert!(
        h.run(&["settings", "set", "email", "ops@example.com"])
            .starts_with("exit: 0")
    );
    let out = h.run(&["settings", "get", "email", "--output", "json"]);
    assert!(out.contains(r#""value":"ops@example.com""#), "{out}");
    snapshot("settings_list", &h.run(&["settings", "list"]));
}

#[test]
fn app_list_and_render_work_without_any_server() {
    let h = Home::initialised();
    let out = h.run(&["app", "list", "--output", "json"]);
    for app in [
        "postgres",
        "redis",
        "n8n",
        "chatwoot",
        "evolution-api",
        "infrastructure",
    ] {
        assert!(
            out.contains(&format!(r#""name": "{app}""#)),
            "{app} missing:\n{out}"
        );
    }
    h.run(&["settings", "set", "email", "ops@example.com"]);
    let out = h.run(&[
        "app",
        "render",
        "n8n",
        "--zone",
        "example.com",
        "--subdomain",
        "lab",
        "--output",
        "json",
    ]);
    assert!(out.starts_with("exit: 0"), "{out}");
    let json: serde_json::Value = serde_json::from_str(
        out.split("--- stdout\n")
            .nth(1)
            .unwrap()
            .split("--- stderr")
            .next()
            .unwrap(),
    )
    .unwrap();
    let apps: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["app"].as_str().unwrap())
        .collect();
    let pos = |a: &str| apps.iter().position(|x| *x == a).unwrap();
    assert!(pos("postgres") < pos("n8n"), "{apps:?}");
    // n8n's Redis is its own, inside n8n's stack: no shared redis stack (issue #19).
    assert!(!apps.contains(&"redis"), "{apps:?}");
    // Placeholder secrets are not stored.
    let names = h.run(&["secrets", "list", "--output", "json"]);
    assert!(!names.contains("app."), "{names}");
}

#[test]
fn init_with_the_password_in_the_environment_uses_it_and_writes_no_password_file() {
    let h = Home::new();
    let with_env = |args: &[&str], input: &[u8]| {
        let mut cmd = h.command(args);
        cmd.env("LIVCHAT_VAULT_PASSWORD", "from-the-environment");
        h.run_with_stdin(cmd, input)
    };
    let out = with_env(&["init"], b"");
    assert!(out.starts_with("exit: 0"), "{out}");
    assert!(!h.path().join(".vault_password").exists());
    let out = with_env(&["secrets", "set", "k"], b"v\n");
    assert!(out.starts_with("exit: 0"), "{out}");
    // Without the variable there is no password: the vault stays closed.
    let out = h.run(&["secrets", "get", "k"]);
    assert!(!out.starts_with("exit: 0"), "{out}");
    assert!(out.contains("LIVCHAT_VAULT_PASSWORD"), "{out}");
}

#[test]
fn a_lock_left_by_a_dead_process_is_taken_over_with_a_warning_on_stderr() {
    let h = Home::initialised();
    let lock = h.path().join("state.json.lock");
    std::fs::write(&lock, "left by a process that was killed").unwrap();
    let out = h.run(&["settings", "set", "email", "ops@example.com"]);
    assert!(out.starts_with("exit: 0"), "{out}");
    let stderr = out.split("--- stderr\n").nth(1).unwrap_or_default();
    assert!(
        stderr.contains("WARN") && stderr.contains("taking over a lock"),
        "{out}"
    );
    // RUST_LOG replaces the default filter: `off` silences the warning.
    std::fs::write(&lock, "left by a process that was killed").unwrap();
    let mut cmd = h.command(&["settings", "set", "email", "dev@example.com"]);
    cmd.env("RUST_LOG", "off");
    let out = h.run_cmd(cmd);
    assert!(out.ends_with("--- stderr\n"), "{out}");
}

#[test]
fn app_list_filters_by_category_and_app_search_finds_every_word() {
    let h = Home::initialised();
    snapshot(
        "app_list_category_ai",
        &h.run(&["app", "list", "--category", "ai"]),
    );
    snapshot(
        "app_search_whatsapp",
        &h.run(&["app", "search", "whatsapp"]),
    );
    snapshot(
        "app_search_words_and_category",
        &h.run(&[
            "app",
            "search",
            "postgresql",
            "redis",
            "--category",
            "automation",
        ]),
    );
    let out = h.run(&["app", "search", "no-such-app-anywhere", "--output", "json"]);
    assert!(out.starts_with("exit: 0") && out.contains("[]"), "{out}");
    snapshot(
        "bad_app_list_unknown_category",
        &bad(&h, &["app", "list", "--category", "games"]),
    );
    let out = h.run(&["app", "search"]);
    assert!(out.starts_with("exit: 2"), "a search needs a word:\n{out}");
}
