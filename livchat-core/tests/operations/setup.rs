//! setup_server: start (DNS mandatory), and the job (connect and plan, the server's A record,
//! each setup step over SSH, finalize); a failing step fails the job naming it and a retry
//! resumes there.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use livchat_core::{CoreError, SetupServerParams};
use livchat_providers::{Change, Ensured};
use livchat_remote::{Action, OsRelease, SetupConfig, Step};
use livchat_store::{JobStatus, ServerStatus};

use super::support::*;

fn params() -> SetupServerParams {
    SetupServerParams {
        dns: Default::default(),
        name: "web-1".into(),
        zone: ZONE.into(),
        subdomain: Some("lab".into()),
    }
}

fn new_server() -> livchat_store::ServerRecord {
    hetzner_server("web-1", ServerStatus::Running, None)
}

/// web-1 as an earlier setup left it: its resources read and recorded.
fn set_up_before() -> livchat_store::ServerRecord {
    let mut server = new_server();
    server.setup.resources = Some(livchat_store::ServerResources {
        cpus: 2,
        memory_mb: 3820,
    });
    server
}

/// The plan the orchestrator computes for `web-1` on Debian 12.
fn plan() -> Vec<Step> {
    let config = SetupConfig::new("web-1", IP.parse::<IpAddr>().unwrap()).unwrap();
    livchat_remote::plan(&config, &OsRelease::parse(DEBIAN_12).unwrap()).unwrap()
}

fn is_action(action: &Action, c: &livchat_remote::Command, stdin: &str) -> bool {
    *c == action.command()
        && match action {
            Action::Exec(_) => stdin.is_empty(),
            Action::Script { script, .. } => stdin == script,
        }
}

fn check_line(step: &Step) -> String {
    step.check.command().to_string()
}

/// A Debian 12 host where every step's check already passes, except `failing`'s (whose
/// apply fails with apt's error until `fixed` is set).
fn debian_host(failing: Option<Step>, fixed: Arc<AtomicBool>) -> (MockRemoteExecutor, FakeHost) {
    scripted_executor(move |c, stdin| {
        if is_os_release(c) {
            return Ok(output(0, DEBIAN_12, ""));
        }
        if let Some(step) = &failing
            && !fixed.load(Ordering::SeqCst)
        {
            if is_action(&step.check, c, stdin) {
                return Ok(output(1, "", "not installed"));
            }
            if is_action(&step.apply, c, stdin) {
                return Ok(output(100, "", "E: Unable to locate package docker-ce\n"));
            }
        }
        Ok(output(0, "", ""))
    })
}

fn a_record_for_server(mocks: &mut Mocks, times: usize) {
    mocks
        .dns
        .expect_find_zone()
        .withf(|z| z == ZONE)
        .times(times)
        .returning(|_| Ok(zone()));
    mocks
        .dns
        .expect_ensure_a_record()
        .withf(|z, name, ip, options| {
            z.id == ZONE_ID
                && name == "web-1.lab.example.com"
                && ip.to_string() == IP
                && !options.proxied
        })
        .times(times)
        .returning(|_, name, ip, _| {
            Ok(Ensured {
                record: a_record("srv-a", name, &ip.to_string()),
                change: Change::Created,
            })
        });
}

#[tokio::test]
async fn setup_server_runs_every_plan_step_over_one_pinned_connection_and_points_dns() {
    let world = World::new();
    world.put_server(new_server());
    let mut mocks = Mocks::default();
    let (exec, host) = debian_host(None, Arc::default());
    connects_pinned(&mut mocks.connector, exec, 1);
    a_record_for_server(&mut mocks, 1);
    let orch = world.build(mocks);

    let job = orch.start_setup_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let plan = plan();
    let mut expected = vec!["connect".to_string(), "dns_record".to_string()];
    expected.extend(plan.iter().map(|s| format!("setup:{}", s.id)));
    expected.push("finalize".into());
    assert_eq!(done.steps_completed, expected);

    let server = &world.state().servers["web-1"];
    assert_eq!(server.status, ServerStatus::Ready);
    let dns = server.dns.clone().unwrap();
    assert_eq!(
        (dns.zone_name.as_str(), dns.subdomain.as_deref()),
        (ZONE, Some("lab"))
    );
    let ids: Vec<&str> = plan.iter().map(|s| s.id).collect();
    assert_eq!(server.setup.completed_steps, ids);
    assert!(server.setup.completed_at.is_some());
    // Every step's check ran (once per step that shares its command line).
    for step in &plan {
        assert!(
            host.count(&check_line(step)) >= 1,
            "{} not checked",
            step.id
        );
    }
    verify(orch);
}

#[tokio::test]
async fn setup_server_step_that_fails_names_the_step_marks_the_server_failed_and_retry_resumes_there()
 {
    let world = World::new();
    world.put_server(new_server());
    let plan = plan();
    let failing = plan
        .iter()
        .find(|s| s.id == "docker_packages")
        .cloned()
        .unwrap();
    let fixed = Arc::new(AtomicBool::new(false));
    let mut mocks = Mocks::default();
    let (exec, host) = debian_host(Some(failing.clone()), fixed.clone());
    // One connection serves both attempts.
    connects_pinned(&mut mocks.connector, exec, 1);
    a_record_for_server(&mut mocks, 1);
    let orch = world.build(mocks);

    let job = orch.start_setup_server(params()).unwrap();
    let failed = run(&orch, &job.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    let error = failed.error.unwrap();
    assert!(error.contains("docker_packages"), "{error}");
    assert!(
        error.contains("Unable to locate package docker-ce"),
        "{error}"
    );
    assert_eq!(failed.steps_remaining[0], "setup:docker_packages");
    assert_eq!(world.state().servers["web-1"].status, ServerStatus::Failed);
    let before_failure = plan
        .iter()
        .take_while(|s| s.id != "docker_packages")
        .map(|s| s.id)
        .collect::<Vec<_>>();
    assert_eq!(
        world.state().servers["web-1"].setup.completed_steps,
        before_failure
    );
    let commands_before_retry = host.commands.lock().unwrap().len();

    fixed.store(true, Ordering::SeqCst);
    orch.start_retry_job(&job.id).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(world.state().servers["web-1"].status, ServerStatus::Ready);
    // The retry ran the failed step and those after it, one check each (the fixed host passes
    // them); the OS is not detected again, the connect step recorded it. Nothing of the steps
    // before it, no second DNS change, no second connection.
    let after = plan
        .iter()
        .skip_while(|s| s.id != "docker_packages")
        .count();
    let retry_commands = host.commands.lock().unwrap().len() - commands_before_retry;
    assert_eq!(retry_commands, after);
    verify(orch);
}

#[tokio::test]
async fn setup_server_whose_dns_record_fails_names_cloudflare_runs_no_setup_step_and_records_no_dns()
 {
    let world = World::new();
    world.put_server(new_server());
    let mut mocks = Mocks::default();
    let (exec, host) = debian_host(None, Arc::default());
    connects_pinned(&mut mocks.connector, exec, 1);
    mocks
        .dns
        .expect_find_zone()
        .times(1)
        .returning(|_| Ok(zone()));
    mocks
        .dns
        .expect_ensure_a_record()
        .times(1)
        .returning(|_, _, _, _| {
            Err(cloudflare_api_error(
                "create DNS record",
                "record quota exceeded",
            ))
        });
    let orch = world.build(mocks);
    let job = orch.start_setup_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(done.error.unwrap().contains("record quota exceeded"));
    let server = &world.state().servers["web-1"];
    assert_eq!(server.status, ServerStatus::Failed);
    assert!(server.dns.is_none());
    // What the preflight of later deploys compares with, kept although the job failed later.
    assert_eq!(
        server.setup.resources,
        Some(livchat_store::ServerResources {
            cpus: 2,
            memory_mb: 3820
        })
    );
    // The connect step read the OS, ran the read-only batch of checks and read the server's
    // resources (once: it had none recorded); no step was applied.
    let commands = host.commands.lock().unwrap().clone();
    assert_eq!(commands.len(), 3, "{commands:?}");
    assert_eq!(commands[0], "cat /etc/os-release");
    assert!(
        commands[1].starts_with("sh -s -- LIVCHAT_CHECK_"),
        "{commands:?}"
    );
    assert_eq!(
        commands[2],
        "grep -E '^(MemTotal:|processor)' /proc/meminfo /proc/cpuinfo"
    );
    verify(orch);
}

#[tokio::test]
async fn setup_server_that_cannot_connect_fails_naming_the_connection_and_touches_no_dns() {
    let world = World::new();
    world.put_server(new_server());
    let mut mocks = Mocks::default();
    mocks
        .connector
        .expect_connect()
        .times(1)
        .returning(|t, _, _| Err(connect_refused(&t.name)));
    let orch = world.build(mocks);
    let job = orch.start_setup_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(
        done.error
            .unwrap()
            .contains("could not connect to web-1: connection refused")
    );
    assert_eq!(world.state().servers["web-1"].status, ServerStatus::Running);
    verify(orch);
}

#[tokio::test]
async fn setup_server_on_an_unsupported_os_fails_naming_the_supported_ones() {
    let world = World::new();
    world.put_server(new_server());
    let mut mocks = Mocks::default();
    let (exec, _) =
        scripted_executor(|_, _| Ok(output(0, "ID=ubuntu\nVERSION_ID=\"20.04\"\n", "")));
    connects_pinned(&mut mocks.connector, exec, 1);
    let orch = world.build(mocks);
    let job = orch.start_setup_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("\"20.04\" is not supported"), "{error}");
    assert!(error.contains("Debian 12 or 13"), "{error}");
    verify(orch);
}

#[tokio::test]
async fn start_setup_server_without_a_zone_or_with_bad_dns_names_is_refused_and_records_no_job() {
    let world = World::new();
    world.put_server(new_server());
    let before = world.state();
    let orch = world.build(Mocks::default());
    for (zone, subdomain, field) in [
        ("", None, "zone"),
        ("example.com; reboot", None, "zone"),
        (ZONE, Some("lab lab"), "subdomain"),
    ] {
        let err = orch
            .start_setup_server(SetupServerParams {
                dns: Default::default(),
                name: "web-1".into(),
                zone: zone.into(),
                subdomain: subdomain.map(str::to_string),
            })
            .unwrap_err();
        assert!(
            err.to_string().contains(field),
            "{zone:?} {subdomain:?}: {err}"
        );
    }
    let err = orch
        .start_setup_server(SetupServerParams {
            dns: Default::default(),
            name: "ghost".into(),
            ..params()
        })
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    assert_eq!(world.state(), before);
    verify(orch);
}

#[tokio::test]
async fn start_setup_server_without_a_cloudflare_token_names_the_credential() {
    let world = World::empty();
    world.put_server(new_server());
    let orch = world.build(Mocks::default());
    let err = orch.start_setup_server(params()).unwrap_err();
    assert!(
        matches!(&err, CoreError::MissingCredential { name } if name == "cloudflare_api_token"),
        "{err:?}"
    );
    assert!(world.jobs().is_empty());
    verify(orch);
}

#[tokio::test]
async fn setup_of_a_server_whose_ssh_is_on_another_port_has_the_firewall_allow_that_port() {
    let world = World::new();
    let mut server = new_server();
    server.ssh_port = 2222;
    world.put_server(server);
    let mut mocks = Mocks::default();
    let (exec, host) = debian_host(None, Arc::default());
    let exec: Arc<dyn livchat_remote::RemoteExecutor> = Arc::new(exec);
    mocks
        .connector
        .expect_connect()
        .withf(|target, _, _| target.port == 2222)
        .times(1)
        .returning(move |_, _, _| {
            Ok(livchat_remote::Connected {
                executor: exec.clone(),
                host_key_fingerprint: FP.to_string(),
            })
        });
    a_record_for_server(&mut mocks, 1);
    let orch = world.build(mocks);
    let job = orch.start_setup_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);

    let mut config = SetupConfig::new("web-1", IP.parse::<IpAddr>().unwrap()).unwrap();
    config.ssh_port = 2222;
    let firewall = livchat_remote::plan(&config, &OsRelease::parse(DEBIAN_12).unwrap())
        .unwrap()
        .into_iter()
        .find(|s| s.id == "firewall")
        .unwrap();
    assert!(
        check_line(&firewall).ends_with(" 2222"),
        "{}",
        check_line(&firewall)
    );
    assert_eq!(
        host.count(&check_line(&firewall)),
        1,
        "checked with port 2222"
    );
    let port_22 = check_line(&plan().into_iter().find(|s| s.id == "firewall").unwrap());
    assert_eq!(host.count(&port_22), 0, "never with 22");
    verify(orch);
}

/// A host's answer to the batch of checks (`sh -s -- NONCE`, the checks on stdin): every
/// check passes except the one at `undone`; `None` for any other command.
fn batch_answer(
    c: &livchat_remote::Command,
    stdin: &str,
    undone: Option<usize>,
) -> Option<livchat_remote::ExecOutput> {
    let nonce = c.args.get(2).filter(|n| n.starts_with("LIVCHAT_CHECK_"))?;
    let checks = stdin
        .lines()
        .filter(|l| l.starts_with('p') && l.ends_with("=$!"))
        .count();
    let lines: String = (0..checks)
        .map(|i| format!("{nonce} {i} {}\n", u8::from(Some(i) == undone)))
        .collect();
    Some(output(0, &lines, ""))
}

#[tokio::test]
async fn setup_rerun_checks_every_step_in_one_command_and_logs_each_as_already_in_place() {
    let world = World::new();
    world.put_server(set_up_before());
    let mut mocks = Mocks::default();
    let (exec, host) = scripted_executor(|c, stdin| {
        if is_os_release(c) {
            return Ok(output(0, DEBIAN_12, ""));
        }
        Ok(batch_answer(c, stdin, None).unwrap_or_else(|| output(1, "", "unexpected")))
    });
    connects_pinned(&mut mocks.connector, exec, 1);
    a_record_for_server(&mut mocks, 1);
    let orch = world.build(mocks);

    let job = orch.start_setup_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let plan = plan();
    assert_eq!(done.steps_completed.len(), plan.len() + 3);
    assert_eq!(
        host.commands.lock().unwrap().len(),
        2,
        "the OS, then the batch"
    );
    let log: Vec<String> = orch
        .job_logs(&job.id, 0)
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    for (i, step) in plan.iter().enumerate() {
        let numbered = format!("step {}/{}: setup:{}", i + 3, plan.len() + 3, step.id);
        let at = log.iter().position(|l| *l == numbered);
        let said = at.and_then(|at| log.get(at + 1));
        assert_eq!(
            said.map(String::as_str),
            Some(format!("{}: already in place", step.name).as_str()),
            "{log:#?}"
        );
    }
    let server = &world.state().servers["web-1"];
    assert_eq!(server.status, ServerStatus::Ready);
    let ids: Vec<&str> = plan.iter().map(|s| s.id).collect();
    assert_eq!(server.setup.completed_steps, ids);
    verify(orch);
}

#[tokio::test]
async fn setup_rerun_with_an_undone_step_skips_the_steps_before_it_and_checks_each_after_it() {
    let world = World::new();
    world.put_server(set_up_before());
    let plan = plan();
    let undone = plan.iter().position(|s| s.id == "hostname").unwrap();
    let mut mocks = Mocks::default();
    let (exec, host) = scripted_executor(move |c, stdin| {
        if is_os_release(c) {
            return Ok(output(0, DEBIAN_12, ""));
        }
        Ok(batch_answer(c, stdin, Some(undone)).unwrap_or_else(|| output(0, "", "")))
    });
    connects_pinned(&mut mocks.connector, exec, 1);
    a_record_for_server(&mut mocks, 1);
    let orch = world.build(mocks);

    let job = orch.start_setup_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    // The OS and the batch; then from the undone step on, each step's own check (and the
    // undone one's apply and second check: this fake host passes every lone command).
    let commands = host.commands.lock().unwrap().clone();
    let from_undone = &plan[undone..];
    assert_eq!(commands.len(), 2 + from_undone.len(), "{commands:#?}");
    for (step, line) in from_undone.iter().zip(&commands[2..]) {
        assert_eq!(*line, check_line(step));
    }
    let said: Vec<String> = orch
        .job_logs(&job.id, 0)
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .filter(|m| m.ends_with(": already in place"))
        .collect();
    assert_eq!(said.len(), plan.len(), "{said:#?}");
    verify(orch);
}
