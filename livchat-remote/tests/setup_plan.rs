//! The setup plan as data: exact steps, ShellCheck on every script, OS detection, and the
//! runner's behaviour (skip, fail, resume, cancel) against a real sshd with small steps.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fixtures::sshd::Sshd;
use livchat_remote::command::{Command, quote_command};
use livchat_remote::setup::{
    Action, DockerSource, OsRelease, RunOptions, SetupConfig, SetupError, Step, StepProgress,
    StepState, Swap, plan, run_plan, scripts,
};
use livchat_remote::{HostKeyPolicy, RemoteExecutor, SshConnector, SshExecutor, SshTarget};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

fn bookworm() -> OsRelease {
    OsRelease::parse(
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap()
}

fn full_config() -> SetupConfig {
    let mut c = SetupConfig::new("web-1", "203.0.113.7".parse::<IpAddr>().unwrap()).unwrap();
    c.full_upgrade = true;
    c.swap = Swap::Auto;
    c
}

/// Each step as `id: check | apply`, the commands as the remote shell receives them.
fn render(steps: &[Step]) -> Vec<String> {
    let show = |a: &Action| quote_command(&a.command()).unwrap();
    steps
        .iter()
        .map(|s| format!("{}: {} | {}", s.id, show(&s.check), show(&s.apply)))
        .collect()
}

#[test]
fn the_default_plan_with_every_option_is_exact() {
    let steps = plan(&full_config(), &bookworm()).unwrap();
    let json = r#"'{"log-driver":"json-file","log-opts":{"max-file":"3","max-size":"10m"}}'"#;
    let expected = vec![
        "cloud_init: sh -s -- | sh -s --".to_owned(),
        "apt_update: sh -s -- | sh -s --".to_owned(),
        "apt_upgrade: sh -s -- | env 'DEBIAN_FRONTEND=noninteractive' apt-get -o 'DPkg::Lock::Timeout=600' full-upgrade -y -q -o 'Dpkg::Options::=--force-confdef' -o 'Dpkg::Options::=--force-confold'".to_owned(),
        "base_packages: sh -s -- ca-certificates curl gnupg tzdata ufw | env 'DEBIAN_FRONTEND=noninteractive' apt-get -o 'DPkg::Lock::Timeout=600' install -y -q --no-install-recommends -- ca-certificates curl gnupg tzdata ufw".to_owned(),
        "timezone: sh -s -- UTC | sh -s -- UTC".to_owned(),
        "hostname: sh -s -- web-1 | sh -s -- web-1".to_owned(),
        "swap: sh -s -- | sh -s -- auto".to_owned(),
        format!("docker_log_rotation: sh -s -- {json} | sh -s -- {json}"),
        "docker_repository: test -s /etc/apt/sources.list.d/docker.list | sh -s -- debian bookworm 9DC858229FC7DD38854AE2D88D81803C0EBFCD88".to_owned(),
        "docker_packages: sh -s -- docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin | env 'DEBIAN_FRONTEND=noninteractive' apt-get -o 'DPkg::Lock::Timeout=600' install -y -q --no-install-recommends -- docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin".to_owned(),
        "docker_running: sh -s -- | sh -s --".to_owned(),
        "swarm_init: sh -s -- | docker swarm init --advertise-addr 203.0.113.7".to_owned(),
        "overlay_network: sh -s -- livchat_network | docker network create --driver overlay --attachable livchat_network".to_owned(),
        "firewall: sh -s -- 22 | sh -s -- 22".to_owned(),
    ];
    assert_eq!(render(&steps), expected);
    // The scripts behind each `sh -s`.
    let script = |id: &str, check: bool| match if check {
        &steps.iter().find(|s| s.id == id).unwrap().check
    } else {
        &steps.iter().find(|s| s.id == id).unwrap().apply
    } {
        Action::Script { script, .. } => script.clone(),
        Action::Exec(c) => panic!("{id} is a command: {c}"),
    };
    assert_eq!(script("cloud_init", false), scripts::CLOUD_INIT_WAIT);
    assert_eq!(
        script("docker_repository", false),
        scripts::DOCKER_OFFICIAL_REPO
    );
    assert_eq!(script("firewall", false), scripts::FIREWALL_APPLY);
    assert_eq!(script("swarm_init", true), scripts::SWARM_CHECK);
}

#[test]
fn the_firewall_step_allows_the_servers_own_ssh_port() {
    let mut c = full_config();
    c.ssh_port = 2222;
    let steps = plan(&c, &bookworm()).unwrap();
    let firewall = render(&steps).pop().unwrap();
    assert_eq!(firewall, "firewall: sh -s -- 2222 | sh -s -- 2222");
    c.ssh_port = 0;
    let err = plan(&c, &bookworm()).unwrap_err();
    assert!(err.to_string().contains("ssh port"), "{err}");
}

#[test]
fn the_minimal_plan_uses_docker_io_and_skips_optional_steps() {
    let mut c = SetupConfig::new("web-1", "10.0.0.2".parse::<IpAddr>().unwrap()).unwrap();
    c.docker = DockerSource::Distribution;
    c.firewall = false;
    let ids: Vec<&str> = plan(&c, &bookworm())
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        ids,
        [
            "cloud_init",
            "apt_update",
            "base_packages",
            "timezone",
            "hostname",
            "docker_log_rotation",
            "docker_packages",
            "docker_running",
            "swarm_init",
            "overlay_network"
        ]
    );
    let steps = plan(&c, &bookworm()).unwrap();
    let docker = steps.iter().find(|s| s.id == "docker_packages").unwrap();
    assert_eq!(
        quote_command(&docker.apply.command()).unwrap(),
        "env 'DEBIAN_FRONTEND=noninteractive' apt-get -o 'DPkg::Lock::Timeout=600' install -y -q --no-install-recommends -- docker.io"
    );
}

#[test]
fn ubuntu_gets_dockers_ubuntu_repository() {
    let noble =
        OsRelease::parse("ID=ubuntu\nVERSION_ID=\"24.04\"\nVERSION_CODENAME=noble\n").unwrap();
    let steps = plan(&full_config(), &noble).unwrap();
    let repo = steps.iter().find(|s| s.id == "docker_repository").unwrap();
    assert_eq!(
        quote_command(&repo.apply.command()).unwrap(),
        "sh -s -- ubuntu noble 9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
    );
}

#[test]
fn os_release_detection_accepts_the_four_supported_releases_only() {
    for (text, id, codename) in [
        ("ID=debian\nVERSION_ID=\"12\"", "debian", "bookworm"),
        ("ID=debian\nVERSION_ID=\"13\"", "debian", "trixie"),
        ("ID=ubuntu\nVERSION_ID=\"22.04\"", "ubuntu", "jammy"),
        ("ID=ubuntu\nVERSION_ID=\"24.04\"", "ubuntu", "noble"),
    ] {
        let os = OsRelease::parse(text).unwrap();
        assert_eq!((os.id(), os.codename.as_str()), (id, codename));
    }
    let err = OsRelease::parse("ID=debian\nVERSION_ID=\"11\"").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid operating system: \"debian\" \"11\" is not supported; use Debian 12 or 13, or Ubuntu 22.04 or 24.04"
    );
    assert!(OsRelease::parse("ID=fedora\nVERSION_ID=40").is_err());
    assert!(OsRelease::parse("").is_err());
}

#[test]
fn bad_configuration_is_rejected_naming_the_field() {
    let os = bookworm();
    let mut c = full_config();
    c.log_max_size = "10m; rm -rf /".into();
    assert!(
        plan(&c, &os)
            .unwrap_err()
            .to_string()
            .starts_with("invalid log max size:")
    );
    let mut c = full_config();
    c.log_max_file = 0;
    assert!(
        plan(&c, &os)
            .unwrap_err()
            .to_string()
            .starts_with("invalid log max file:")
    );
    let mut c = full_config();
    c.swap = Swap::FixedMib(10);
    assert!(
        plan(&c, &os)
            .unwrap_err()
            .to_string()
            .starts_with("invalid swap size:")
    );
    let mut c = full_config();
    c.advertise_addr = "0.0.0.0".parse().unwrap();
    assert!(
        plan(&c, &os)
            .unwrap_err()
            .to_string()
            .starts_with("invalid advertise address:")
    );
    assert!(
        SetupConfig::new("-web", "10.0.0.1".parse().unwrap())
            .unwrap_err()
            .to_string()
            .starts_with("invalid server name:")
    );
}

#[test]
fn every_generated_script_passes_shellcheck() {
    let Some(shellcheck) = fixtures::tools::require("shellcheck") else {
        return;
    };
    let mut all: Vec<(String, String)> = Vec::new();
    for config in [full_config(), {
        let mut c = full_config();
        c.docker = DockerSource::Distribution;
        c.swap = Swap::FixedMib(1024);
        c
    }] {
        let steps = plan(&config, &bookworm()).unwrap();
        let batch = livchat_remote::batch_check::batch_script(&steps).unwrap();
        all.push(("batch of checks".into(), batch));
        for step in steps {
            for (kind, action) in [("check", &step.check), ("apply", &step.apply)] {
                if let Action::Script { script, .. } = action {
                    all.push((format!("{} {kind}", step.id), script.clone()));
                }
            }
        }
    }
    assert!(all.len() >= 20, "{} scripts", all.len());
    for (what, script) in all {
        let mut child = std::process::Command::new(&shellcheck)
            .args(["--shell=sh", "--severity=style", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ShellCheck rejects the {what} script:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

// ---- The runner against a real sshd, with small steps on files in a temp dir. ----

async fn connect(sshd: &Sshd) -> Arc<SshExecutor> {
    let target = SshTarget {
        name: "runner-test".into(),
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

fn file_step(id: &'static str, path: &str) -> Step {
    Step {
        id,
        name: id,
        check: Action::Exec(Command::new("test").args(["-f", path])),
        apply: Action::Script {
            script: "set -eu\necho \"creating $1\"\ntouch \"$1\"\n".into(),
            args: vec![path.to_owned()],
        },
    }
}

fn recorder() -> (Arc<Mutex<Vec<StepProgress>>>, RunOptions) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let opts = RunOptions {
        on_progress: Some(Arc::new(move |p| sink.lock().unwrap().push(p))),
        step_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    (seen, opts)
}

#[tokio::test]
async fn a_rerun_skips_every_step_whose_check_passes() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let d = sshd.dir().display().to_string();
    let steps = vec![
        file_step("a", &format!("{d}/a")),
        file_step("b", &format!("{d}/b c")),
    ];
    let (seen, opts) = recorder();
    let first = run_plan(exec.as_ref(), &steps, opts.clone()).await.unwrap();
    assert_eq!(first.steps, [("a", StepState::Ran), ("b", StepState::Ran)]);
    assert_eq!(
        first.round_trips, 6,
        "both checks at once; a applied and checked again; b checked, applied, checked again"
    );
    assert!(sshd.dir().join("b c").is_file());
    let progress: Vec<(usize, usize, StepState)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|p| (p.index, p.total, p.state))
        .collect();
    assert_eq!(
        progress,
        [
            (1, 2, StepState::Started),
            (1, 2, StepState::Ran),
            (2, 2, StepState::Started),
            (2, 2, StepState::Ran)
        ]
    );
    let second = run_plan(exec.as_ref(), &steps, opts).await.unwrap();
    assert_eq!(
        second.steps,
        [("a", StepState::Skipped), ("b", StepState::Skipped)]
    );
    assert_eq!(second.round_trips, 1, "every check in one round trip");
}

#[tokio::test]
async fn after_an_apply_the_later_steps_are_checked_again_one_by_one() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let d = sshd.dir().display().to_string();
    // c's check passes only once b was applied: the batch saw it undone, which must not count.
    let mut c = file_step("c", &format!("{d}/b"));
    c.apply = Action::Exec(Command::new("false"));
    let steps = vec![
        file_step("a", &format!("{d}/a")),
        file_step("b", &format!("{d}/b")),
        c,
    ];
    std::fs::write(sshd.dir().join("a"), "").unwrap();
    let before = exec.round_trips();
    let report = run_plan(exec.as_ref(), &steps, RunOptions::default())
        .await
        .unwrap();
    assert_eq!(
        report.steps,
        [
            ("a", StepState::Skipped),
            ("b", StepState::Ran),
            ("c", StepState::Skipped)
        ]
    );
    assert_eq!(
        report.round_trips, 4,
        "batch; b applied and checked; c checked"
    );
    assert_eq!(exec.round_trips() - before, 4);
}

#[tokio::test]
async fn a_check_cannot_forge_the_batch_results_and_its_output_is_not_captured() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    // A check that prints what a result line looks like, with every plausible nonce, and fails.
    let liar = Step {
        id: "liar",
        name: "liar",
        check: Action::Script {
            script: r#"echo "$1 0 0"; echo "LIVCHAT_CHECK_0 0 0"; echo '0 0' >&2; exit 3"#.into(),
            args: vec!["LIVCHAT_CHECK_0000000000000000".into()],
        },
        apply: Action::Exec(Command::new("true")),
    };
    // A check that passes only if a hostile argument arrives byte for byte (compared in hex).
    let canary = sshd.dir().join("canary");
    let c = canary.display();
    let payload = format!("a'b\"; touch {c}; $(touch {c}) `touch {c}` \\\n-x {{}}");
    let hex: String = payload.bytes().map(|b| format!("{b:02x}")).collect();
    let exact = Step {
        id: "exact",
        name: "exact",
        check: Action::Script {
            script: "set -eu\n[ \"$(printf %s \"$1\" | od -An -tx1 | tr -d ' \\n')\" = \"$2\" ]\n"
                .into(),
            args: vec![payload, hex],
        },
        apply: Action::Exec(Command::new("true")),
    };
    let steps = vec![liar.clone(), exact, liar];
    let done = livchat_remote::check_steps(
        exec.as_ref(),
        &steps,
        Duration::from_secs(30),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(done, [false, true, false]);
    assert!(!canary.exists(), "an argument was run as a command");
}

#[test]
fn batch_results_count_only_lines_with_the_nonce_and_a_missing_line_is_not_done() {
    // Check 0 says 1 (not done), check 1 says 0 (done), check 2 has no well-formed line.
    let out = b"LIVCHAT_CHECK_1 0 0\nn 1 0\nn 0 1\nn 2 0 extra\nn 7 0\nn x 0\nn 2\nxn 2 0\n";
    assert_eq!(
        livchat_remote::batch_check::parse_results(out, "n", 3),
        [false, true, false]
    );
}

#[test]
fn the_batch_script_runs_each_check_as_a_function_in_the_background_and_prints_its_status() {
    let steps = vec![
        Step {
            id: "x",
            name: "x",
            check: Action::Exec(Command::new("test").args(["-f", "/a b"])),
            apply: Action::Exec(Command::new("true")),
        },
        Step {
            id: "y",
            name: "y",
            check: Action::Script {
                script: "set -eu\n[ \"$1\" = \"$2\" ]\n".into(),
                args: vec!["it's".into(), "$(reboot)".into()],
            },
            apply: Action::Exec(Command::new("true")),
        },
    ];
    let script = livchat_remote::batch_check::batch_script(&steps).unwrap();
    let call = quote_command(&Command::new("check_1").args(["it's", "$(reboot)"])).unwrap();
    assert_eq!(
        script,
        format!(
            "set -u\n\
             check_0() {{\ntest -f '/a b'\n}}\ncheck_0 </dev/null >/dev/null 2>&1 &\np0=$!\n\
             check_1() {{\nset -eu\n[ \"$1\" = \"$2\" ]\n}}\n{call} </dev/null >/dev/null 2>&1 &\np1=$!\n\
             wait \"$p0\"; printf '%s 0 %s\\n' \"$1\" \"$?\"\n\
             wait \"$p1\"; printf '%s 1 %s\\n' \"$1\" \"$?\"\n"
        )
    );
}

#[tokio::test]
async fn a_failing_step_is_named_with_the_tail_of_its_stderr_and_stops_the_run() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let d = sshd.dir().display().to_string();
    let failing = Step {
        id: "broken",
        name: "broken step",
        check: Action::Exec(Command::new("false")),
        apply: Action::Script {
            script: "for i in $(seq 1 20); do echo \"line $i\" >&2; done\nexit 7\n".into(),
            args: vec![],
        },
    };
    let steps = vec![
        file_step("a", &format!("{d}/a")),
        failing,
        file_step("c", &format!("{d}/c")),
    ];
    let (seen, opts) = recorder();
    let err = run_plan(exec.as_ref(), &steps, opts).await.unwrap_err();
    let tail: String = (11..=20)
        .map(|i| format!("line {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        err.to_string(),
        format!("setup step 2/3 'broken step' failed (exit status 7): {tail}")
    );
    assert!(!sshd.dir().join("c").exists(), "later steps do not run");
    assert_eq!(
        seen.lock().unwrap().last().unwrap().state,
        StepState::Failed
    );
}

#[tokio::test]
async fn an_apply_that_does_not_converge_is_an_error() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let steps = vec![Step {
        id: "liar",
        name: "liar",
        check: Action::Exec(Command::new("false")),
        apply: Action::Exec(Command::new("true")),
    }];
    let err = run_plan(exec.as_ref(), &steps, RunOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::NotConverged { .. }), "{err}");
}

#[tokio::test]
async fn a_run_resumes_from_a_step_and_skips_recorded_steps() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let d = sshd.dir().display().to_string();
    let steps = vec![
        file_step("a", &format!("{d}/a")),
        file_step("b", &format!("{d}/b")),
        file_step("c", &format!("{d}/c")),
    ];
    let opts = RunOptions {
        start_at: Some("b".into()),
        completed: ["c".to_owned()].into(),
        ..Default::default()
    };
    let report = run_plan(exec.as_ref(), &steps, opts).await.unwrap();
    assert_eq!(
        report.steps,
        [
            ("a", StepState::Skipped),
            ("b", StepState::Ran),
            ("c", StepState::Skipped)
        ]
    );
    assert!(!sshd.dir().join("a").exists() && !sshd.dir().join("c").exists());
    let err = run_plan(
        exec.as_ref(),
        &steps,
        RunOptions {
            start_at: Some("nope".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "unknown setup step \"nope\" to start at");
}

#[tokio::test]
async fn cancelling_a_run_stops_the_running_step() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    let steps = vec![Step {
        id: "slow",
        name: "slow",
        check: Action::Exec(Command::new("false")),
        apply: Action::Exec(Command::new("sleep").arg("60")),
    }];
    let cancel = CancellationToken::new();
    let opts = RunOptions {
        cancel: cancel.clone(),
        ..Default::default()
    };
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        c.cancel();
    });
    let started = std::time::Instant::now();
    let err = run_plan(exec.as_ref(), &steps, opts).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(err.to_string(), "setup step 1/1 'slow': command cancelled");
}

/// Processes on this machine whose command line is exactly `argv` (the sshd of these tests
/// runs here).
fn processes_running(argv: &[&str]) -> usize {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| *c == want)
        .count()
}

#[tokio::test]
async fn cancelling_the_batch_of_checks_kills_the_checks_it_started() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    // A distinctive duration, so only this test's checks match.
    let slow = Step {
        id: "slow",
        name: "slow check",
        check: Action::Exec(Command::new("sleep").arg("59.371")),
        apply: Action::Exec(Command::new("true")),
    };
    let steps = vec![slow.clone(), slow];
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        c.cancel();
    });
    let opts = RunOptions {
        cancel,
        ..Default::default()
    };
    let err = run_plan(exec.as_ref(), &steps, opts).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "setup step 1/2 'slow check': command cancelled"
    );
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = processes_running(&["sleep", "59.371"]);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "checks of the cancelled batch are still running");
}

#[tokio::test]
async fn detect_os_reads_the_hosts_os_release() {
    let Some(sshd) = Sshd::start() else { return };
    let exec = connect(&sshd).await;
    // The build machines are Debian 12; on another host this names what it found.
    match livchat_remote::setup::detect_os(exec.as_ref() as &dyn RemoteExecutor).await {
        Ok(os) => assert!(matches!(os.id(), "debian" | "ubuntu")),
        Err(e) => assert!(e.to_string().contains("is not supported"), "{e}"),
    }
}
