//! The main job end to end through the real `livchat` binary, in the sandbox of
//! `cargo xtask demo` (fixtures::sandbox): fake Hetzner and Cloudflare held to the vendor specs,
//! a real Debian 12 host with its own sshd standing for the created server, real setup over SSH,
//! a real Docker Swarm on that host running locally built images.
//!
//! One sandbox for the whole story (setting a host up installs Docker from Debian's mirror,
//! minutes, not to be paid per scenario). On top of the demo's main flow it checks:
//! - a setup interrupted with Ctrl-C is cancelled cleanly and `job retry` resumes it at the
//!   first step it had not finished;
//! - a deploy whose `livchat` process is SIGKILLed mid-job is found `interrupted` by the next
//!   command and `job retry` finishes it;
//! - the deployed app reaches its own database over the overlay network as its own
//!   least-privilege role (and its own Redis, in its stack, with its own password);
//! - an app whose dependency can never become healthy leaves a failed job naming the task's
//!   error, and nothing the state does not record (no stack, no DNS record);
//! - a setup whose A record Cloudflare refuses fails with nothing half-done (no record, no
//!   DNS configuration); an undeploy whose record deletion is refused keeps the record and
//!   its id (the app recorded as removing) and its retry finishes;
//! - `--delete-volumes` deletes the app's data volumes, which are otherwise kept;
//! - an app with an open first-run page (`claimable`) is claimed before its router exists, and
//!   a redeploy over its kept data, whose app refuses a second claim, completes because the
//!   state recorded the first claim (issue #19's claim-retry dead end);
//! - a delete the provider refuses fails with the server still recorded and still at the
//!   provider, and its retry removes everything;
//! - `app status` and `app logs` read the deployed apps live from the swarm, and a
//!   `app logs --follow` ends with exit 0 on Ctrl-C, leaving nothing following on the server.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::demo::{APP, Demo, SERVER};
use fixtures::sandbox::Sandbox;
use serde_json::Value;

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {}", child.id());
}

/// Polls the newest job of `kind` until `ready` holds for it (bounded).
fn wait_for_job(demo: &Demo, kind: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(job) = demo.last_job(kind)
            && ready(&job)
        {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} job never reached: {what}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn completed(job: &Value) -> Vec<String> {
    job["steps_completed"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Spawns `livchat <args>` in the background, its output into files of the sandbox.
fn spawn(sandbox: &Sandbox, args: &[&str], name: &str) -> Child {
    let log = |suffix: &str| {
        std::fs::File::create(sandbox.scratch().join(format!("{name}.{suffix}"))).unwrap()
    };
    sandbox
        .command(args)
        .stdout(Stdio::from(log("out")))
        .stderr(Stdio::from(log("err")))
        .spawn()
        .expect("start livchat")
}

fn wait_exit(child: &mut Child, sandbox: &Sandbox, name: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "livchat ({name}) did not exit: {}",
                std::fs::read_to_string(sandbox.scratch().join(format!("{name}.err")))
                    .unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Messages of a job's log.
fn log_messages(demo: &Demo, id: &str) -> Vec<String> {
    let out = demo
        .sandbox
        .livchat(&["job", "logs", id, "--output", "json"], None)
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["message"].as_str().map(str::to_owned))
        .collect()
}

/// The messages after the line that starts attempt `attempt`.
fn messages_of_attempt(messages: &[String], attempt: u32) -> Vec<String> {
    let start = messages
        .iter()
        .position(|m| m.starts_with(&format!("attempt {attempt}: resuming at step")))
        .unwrap_or_else(|| panic!("no attempt {attempt} in the log: {messages:#?}"));
    messages[start..].to_vec()
}

#[test]
fn the_main_flow_runs_end_to_end_and_survives_cancel_kill_and_a_broken_dependency() {
    let livchat = Path::new(env!("CARGO_BIN_EXE_livchat"));
    let mut sandbox = match Sandbox::start(livchat) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => panic!("the sandbox did not start: {e:#}"),
    };
    sandbox.add_apps_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/e2e-apps")
            .canonicalize()
            .unwrap(),
    );
    // For `notes` on MariaDB (imported on the server with the other images).
    assert!(
        sandbox.add_image(&fixtures::images::MARIADB).unwrap(),
        "the MariaDB image could not be built"
    );
    let demo = Demo::new(&sandbox, true);
    demo.configure().unwrap();
    demo.create_server().unwrap();

    // --- setup: Cloudflare refuses the A record; nothing is half-done ----------------------
    demo.section("setup, with Cloudflare refusing the A record");
    sandbox.fail_dns_writes(true);
    let out = demo.run(&Demo::setup_args(), None).unwrap();
    assert_eq!(out.status.code(), Some(1), "the setup must fail");
    let failed = demo.last_job("setup_server").unwrap();
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(completed(&failed), ["connect"], "{failed:#}");
    assert!(
        !sandbox
            .dns_records()
            .iter()
            .any(|(_, name, _)| name.starts_with("demo-1.")),
        "no A record"
    );
    let server = demo.json(&["server", "show", SERVER]).unwrap();
    assert_eq!(server["status"], "failed", "{server:#}");
    assert!(server["dns"].is_null(), "no DNS configuration recorded");
    sandbox.fail_dns_writes(false);

    // --- setup: Ctrl-C midway, then `job retry` resumes -------------------------------------
    let mut setup = spawn(&sandbox, &Demo::setup_args(), "setup");
    let before = wait_for_job(&demo, "setup_server", "four steps done", |j| {
        completed(j).len() >= 4 && j["status"] == "running"
    });
    signal(&setup, "-INT");
    let status = wait_exit(&mut setup, &sandbox, "setup");
    assert_eq!(status.code(), Some(1), "a cancelled job exits 1");
    let id = before["id"].as_str().unwrap().to_owned();
    let cancelled = demo.json(&["job", "show", &id]).unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled:#}");
    let done_before = completed(&cancelled);
    assert!(done_before.len() >= 4, "{done_before:?}");
    let server = demo.json(&["server", "show", SERVER]).unwrap();
    assert_ne!(server["status"], "ready", "a cancelled setup is not ready");
    // The command in flight was stopped on the server, not left running behind the job.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ps = demo
            .on_server(&["ps", "-eo", "pid,pgid,stat,args"])
            .unwrap();
        let left: Vec<&str> = ps
            .lines()
            .filter(|l| l.contains("apt-get") || l.contains("dpkg"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled setup left processes on the server:\n{ps}\njob log:\n{}",
            log_messages(&demo, before["id"].as_str().unwrap()).join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let retried = demo.json(&["job", "retry", &id]).unwrap();
    assert_eq!(retried["status"], "completed", "{retried:#}");
    assert_eq!(retried["attempt"], 2);
    let after = messages_of_attempt(&log_messages(&demo, &id), 2);
    let first_left = cancelled["steps_remaining"][0].as_str().unwrap().to_owned();
    assert!(
        after[0].ends_with(&format!("resuming at step {first_left}")),
        "{}",
        after[0]
    );
    // No step finished before the cancel ran again: setup steps log `<id>: Ran|Skipped`.
    for step in done_before.iter().filter_map(|s| s.strip_prefix("setup:")) {
        assert!(
            !after.iter().any(|m| m.starts_with(&format!("{step}: "))),
            "setup step {step} ran again after the retry: {after:#?}"
        );
    }
    let server = demo.json(&["server", "show", SERVER]).unwrap();
    assert_eq!(server["status"], "ready", "{server:#}");

    demo.import_images().unwrap();

    // --- deploy: the process is killed mid-job; the next command finds it interrupted -------
    let mut deploy = spawn(&sandbox, &["app", "deploy", SERVER, APP], "deploy");
    let running = wait_for_job(&demo, "deploy_app", "postgres recorded", |j| {
        completed(j).iter().any(|s| s == "postgres:record") && j["status"] == "running"
    });
    signal(&deploy, "-KILL");
    let _ = wait_exit(&mut deploy, &sandbox, "deploy");
    let id = running["id"].as_str().unwrap().to_owned();
    let interrupted = demo.json(&["job", "show", &id]).unwrap();
    assert_eq!(interrupted["status"], "interrupted", "{interrupted:#}");
    let done_before = completed(&interrupted);
    let retried = demo.json(&["job", "retry", &id]).unwrap();
    assert_eq!(retried["status"], "completed", "{retried:#}");
    let messages = log_messages(&demo, &id);
    // Health as declared (#17): the stand-in infrastructure's path, from inside its container.
    assert!(
        messages.iter().any(|m| m
            .contains("health: GET /index.html on infrastructure/web port 8080 answered HTTP 200")),
        "{messages:#?}"
    );
    let after = messages_of_attempt(&messages, 2);
    assert!(
        done_before.iter().any(|s| s == "postgres:record")
            && !after.iter().any(|m| m == "postgres deployed on demo-1"),
        "postgres was recorded again after the retry: {after:#?}"
    );

    demo.show().unwrap();
    let report = demo.verify_guestbook().unwrap();
    assert_eq!(report.table_owner, "guestbook");
    demo.assert_no_orphans().unwrap();
    let recorded = demo.recorded_apps().unwrap();
    assert_eq!(
        recorded,
        ["guestbook", "infrastructure", "postgres"]
            .map(String::from)
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    status_and_logs_come_live_from_the_swarm(&demo, &sandbox);

    // --- a dependency that cannot become healthy --------------------------------------------
    demo.section("deploy ledger, whose dependency flaky-cache never becomes healthy");
    let out = demo
        .run(&["app", "deploy", SERVER, "ledger"], None)
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the deploy must fail");
    let failed = demo.last_job("deploy_app").unwrap();
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("flaky-cache") && error.contains("non-zero exit (3)"),
        "the job's error does not carry the task's error: {error}"
    );
    demo.assert_no_orphans().unwrap();
    assert_eq!(
        demo.recorded_apps().unwrap(),
        recorded,
        "nothing new recorded"
    );
    assert!(
        !sandbox
            .dns_records()
            .iter()
            .any(|(_, name, _)| name.starts_with("ledger.")),
        "ledger's DNS record was left behind"
    );

    // --- an open first-run page is claimed by the job before any route leads to it ----------
    demo.section("deploy claimable, whose setup page belongs to whoever claims it first");
    demo.ok(&["app", "deploy", SERVER, "claimable"], None)
        .unwrap();
    let job = demo.last_job("deploy_app").unwrap();
    assert_eq!(job["status"], "completed", "{job:#}");
    let messages = log_messages(&demo, job["id"].as_str().unwrap());
    let at = |needle: &str| {
        messages
            .iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the job log: {messages:#?}"))
    };
    let (closed, accepted, by_command, opened) = (
        at("deploying stack claimable with its public routes closed"),
        at("first-run claim of claimable accepted (HTTP 200)"),
        at("first-run claim of claimable done"),
        at("opening the public routes of claimable"),
    );
    assert!(
        closed < accepted && accepted < by_command && by_command < opened,
        "{messages:#?}"
    );
    // Docker keeps the spec before the last update: the service was created with its router
    // off, and only the update after the claim turned it on.
    let labels = demo
        .on_server(&[
            "docker",
            "service",
            "inspect",
            "claimable_app",
            "--format",
            "{{json .PreviousSpec.Labels}}|{{json .Spec.Labels}}",
        ])
        .unwrap();
    let (before, now) = labels.split_once('|').unwrap();
    assert!(before.contains(r#""traefik.enable":"false""#), "{labels}");
    assert!(now.contains(r#""traefik.enable":"true""#), "{labels}");
    // The task did not restart when the routes opened (a label-only update): one task.
    let tasks = demo
        .on_server(&["docker", "service", "ps", "-q", "claimable_app"])
        .unwrap();
    assert_eq!(tasks.lines().count(), 1, "{tasks}");
    // The owner is the job's claim, with the password the vault holds, and a second claim,
    // as a visitor's would be, is refused.
    // The newest container of the service: right after a redeploy the previous task's
    // container can still be shutting down, and two ids would make `docker exec` run the
    // second as the command.
    let in_task = |script: &str| {
        demo.on_server(&[
            "sh",
            "-c",
            &format!(
                "docker exec $(docker ps -q --latest -f label=com.docker.swarm.service.name=claimable_app) sh -c '{script}'"
            ),
        ])
        .unwrap()
    };
    let owner: Value = serde_json::from_str(&in_task("cat /data/owner")).unwrap();
    let password = demo
        .ok(&["secrets", "get", "app.claimable.admin_password"], None)
        .unwrap();
    assert_eq!(owner["password"].as_str(), Some(password.trim()));
    assert_eq!(owner["email"], "admin@example.com");
    // The console was claimed by a command in the container, its input on stdin.
    let console: Value = serde_json::from_str(&in_task("cat /data/console")).unwrap();
    let console_password = demo
        .ok(&["secrets", "get", "app.claimable.console_password"], None)
        .unwrap();
    assert_eq!(console["password"].as_str(), Some(console_password.trim()));
    assert_eq!(console["user"], "root");
    let second = in_task(
        "wget -S -O /dev/null --post-data={} http://127.0.0.1:8080/cgi-bin/setup 2>&1; true",
    );
    assert!(
        second.contains("403"),
        "a second claim was not refused: {second}"
    );
    // Undeployed keeping its data (its owner with it), then deployed again: the app refuses
    // both claims, which the state's record of the first claim explains, so the job completes
    // (before the record every such deploy, and every retry of one, failed), and the owner is
    // still the first claim's.
    demo.ok(&["app", "undeploy", SERVER, "claimable"], None)
        .unwrap();
    demo.section("redeploy claimable over its kept data, whose app refuses a second claim");
    demo.ok(&["app", "deploy", SERVER, "claimable"], None)
        .unwrap();
    let job = demo.last_job("deploy_app").unwrap();
    assert_eq!(job["status"], "completed", "{job:#}");
    let messages = log_messages(&demo, job["id"].as_str().unwrap());
    for refused in [
        "first-run claim of claimable refused (HTTP 403): an earlier deploy claimed",
        "first-run claim of claimable refused (exit status 3",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(refused)),
            "no {refused:?} in the job log: {messages:#?}"
        );
    }
    let kept: Value = serde_json::from_str(&in_task("cat /data/owner")).unwrap();
    assert_eq!(kept["password"].as_str(), Some(password.trim()));
    demo.ok(
        &["app", "undeploy", SERVER, "claimable", "--delete-data"],
        None,
    )
    .unwrap();

    apps_on_mariadb_and_a_shared_postgres_reach_only_their_own_data(&demo);

    // --- undeploy: Cloudflare refuses to delete the record after the stack is gone ----------
    demo.section("undeploy guestbook, with Cloudflare refusing to delete its record");
    sandbox.fail_dns_writes(true);
    let out = demo.run(&["app", "undeploy", SERVER, APP], None).unwrap();
    assert_eq!(out.status.code(), Some(1), "the undeploy must fail");
    let failed = demo.last_job("undeploy_app").unwrap();
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let deployed = demo.json(&["app", "deployed", SERVER]).unwrap();
    let guestbook = deployed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["app"] == APP)
        .expect("still recorded, with its record ids");
    assert_eq!(guestbook["status"], "removing", "{guestbook:#}");
    assert!(
        sandbox
            .dns_records()
            .iter()
            .any(|(_, name, _)| name.starts_with("guestbook.")),
        "the record is still there, and still recorded"
    );
    demo.assert_no_orphans().unwrap();
    sandbox.fail_dns_writes(false);
    let id = failed["id"].as_str().unwrap().to_owned();
    let retried = demo.json(&["job", "retry", &id]).unwrap();
    assert_eq!(retried["status"], "completed", "{retried:#}");
    assert!(!demo.recorded_apps().unwrap().contains(APP));
    demo.assert_no_orphans().unwrap();

    // --- data volumes: kept by default, deleted when asked ----------------------------------
    // guestbook was undeployed above keeping its data: its own Redis's volume is still there.
    let volumes = demo
        .on_server(&["docker", "volume", "ls", "--format", "{{.Name}}"])
        .unwrap();
    assert!(volumes.contains("guestbook_redis_data"), "{volumes}");
    demo.section("undeploy postgres with --delete-volumes (guestbook's kept data stays)");
    demo.ok(
        &["app", "undeploy", SERVER, "postgres", "--delete-volumes"],
        None,
    )
    .unwrap();
    let volumes = demo
        .on_server(&["docker", "volume", "ls", "--format", "{{.Name}}"])
        .unwrap();
    assert!(!volumes.contains("postgres_postgres_data"), "{volumes}");
    assert!(volumes.contains("guestbook_redis_data"), "{volumes}");
    demo.assert_no_orphans().unwrap();

    // --- delete: the provider refuses mid-flow; nothing is lost, the retry finishes ----------
    demo.section("delete, with the provider refusing the first time");
    let refused = demo.run(&["server", "delete", SERVER], None).unwrap();
    assert_eq!(refused.status.code(), Some(1), "apps still run: refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("still runs"));
    sandbox.fail_server_deletes(true);
    let out = demo
        .run(&["server", "delete", SERVER, "--force"], None)
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the delete must fail");
    let failed = demo.last_job("delete_server").unwrap();
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(
        sandbox.hetzner().server_names(),
        [SERVER.to_string()],
        "the server still exists at the provider"
    );
    let kept = demo.json(&["server", "show", SERVER]).unwrap();
    assert_eq!(kept["name"], SERVER, "the state still knows the server");
    sandbox.fail_server_deletes(false);
    let id = failed["id"].as_str().unwrap().to_owned();
    let retried = demo.json(&["job", "retry", &id]).unwrap();
    assert_eq!(retried["status"], "completed", "{retried:#}");
    demo.assert_all_gone().unwrap();
}

/// Issue #17 through the real binary on the sandbox's Swarm: every service of the app at its
/// desired replicas, the database's own log lines, and a follow that Ctrl-C ends cleanly.
fn status_and_logs_come_live_from_the_swarm(demo: &Demo, sandbox: &Sandbox) {
    demo.section("app status and app logs, live from the swarm");
    demo.ok(&["app", "status", SERVER], None).unwrap();
    let all = demo.json(&["app", "status", SERVER]).unwrap();
    let apps: BTreeSet<String> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["app"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(apps, demo.recorded_apps().unwrap(), "{all:#}");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|a| a["state"] == "running"),
        "{all:#}"
    );
    let status = demo.json(&["app", "status", SERVER, APP]).unwrap();
    assert_eq!(status[0]["state"], "running", "{status:#}");
    let services = status[0]["services"].as_array().unwrap();
    assert!(
        !services.is_empty()
            && services
                .iter()
                .all(|s| s["running"] == s["desired"] && s["desired"].as_u64() >= Some(1)),
        "{status:#}"
    );
    let logs = demo
        .json(&["app", "logs", SERVER, "postgres", "--tail", "200"])
        .unwrap();
    let said = |text: &str| {
        logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["line"].as_str().unwrap_or_default().contains(text))
    };
    assert!(said("ready to accept connections"), "{logs:#}");

    let args = ["app", "logs", SERVER, "postgres", "--follow", "--tail", "5"];
    let mut follow = spawn(sandbox, &args, "follow");
    let out = sandbox.scratch().join("follow.out");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&out).unwrap_or_default().is_empty() {
        assert!(Instant::now() < deadline, "the follow printed nothing");
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&follow, "-INT");
    let status = wait_exit(&mut follow, sandbox, "follow");
    assert!(
        status.success(),
        "Ctrl-C ends a follow with exit 0: {status}"
    );
    // The `docker service logs --follow` it started on the server is gone too (`[f]` keeps
    // the search from finding its own command line).
    let find = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <\"$f\"; echo; done | grep -c 'logs --raw --[f]ollow' || true";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = demo.on_server(&["sh", "-c", find]).unwrap();
        if left.trim() == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} `docker service logs --follow` left on the server"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Issue #17: `notes` runs on MariaDB (its own database and user, made by the deploy) and on
/// the PostgreSQL guestbook uses (a database and role of its own). Each app works in its own
/// databases and is refused on the other's; status and logs come from the swarm; undeploying
/// with `--delete-data` leaves nothing of notes or MariaDB.
fn apps_on_mariadb_and_a_shared_postgres_reach_only_their_own_data(demo: &Demo) {
    demo.section("deploy notes: its own MariaDB database, and PostgreSQL shared with guestbook");
    let plan = demo
        .ok(&["app", "deploy", SERVER, "notes", "--plan"], None)
        .unwrap();
    assert!(plan.contains("preflight: needs"), "{plan}");
    demo.ok(&["app", "deploy", SERVER, "notes"], None).unwrap();

    let denied = |service: &str, script: &str, expected: &str| {
        let out = demo.sh_in(service, script).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && stderr.contains(expected),
            "{service}: `{script}` was not refused with {expected:?}: {} {stderr}",
            out.status
        );
        demo.say(&format!("  {service}: refused: {}", stderr.trim()));
    };
    let mariadb =
        r#"MYSQL_PWD="$(cat /run/secrets/db_password)" mariadb -h "$DB_HOST" -u "$DB_USER""#;
    let notes_pg = r#"PGPASSWORD="$(cat /run/secrets/pg_password)" psql -X -qtA"#;
    let guestbook_pg = r#"PGPASSWORD="$(cat /run/secrets/db_password)" psql -X -qtA"#;
    // Their own data: notes wrote rows as its own users.
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let out = demo
            .sh_in(
                "notes_app",
                &format!("{mariadb} -N notes -e 'SELECT COUNT(*) FROM notes'"),
            )
            .unwrap();
        let rows: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if rows >= 2 || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        rows >= 2,
        "notes wrote {rows} rows into its MariaDB database"
    );
    let tally = demo
        .sh_in(
            "notes_app",
            &format!("{notes_pg} -c 'SELECT count(*) FROM tally'"),
        )
        .unwrap();
    assert!(tally.status.success(), "{tally:?}");
    // Each other's, refused.
    denied(
        "notes_app",
        &format!("{mariadb} mysql -e 'SELECT 1'"),
        "Access denied",
    );
    denied(
        "notes_app",
        &format!("{notes_pg} -d guestbook -c 'SELECT 1'"),
        "permission denied for database \"guestbook\"",
    );
    denied(
        "guestbook_app",
        &format!("{guestbook_pg} -d notes -c 'SELECT 1'"),
        "permission denied for database \"notes\"",
    );

    let status = demo.json(&["app", "status", SERVER, "mariadb"]).unwrap();
    assert_eq!(status[0]["state"], "running", "{status:#}");
    let logs = demo
        .json(&["app", "logs", SERVER, "mariadb", "--tail", "200"])
        .unwrap();
    assert!(
        logs["lines"].as_array().unwrap().iter().any(|l| l["line"]
            .as_str()
            .unwrap_or_default()
            .contains("ready for connections")),
        "{logs:#}"
    );

    demo.section("undeploy notes and MariaDB with their data");
    demo.ok(&["app", "undeploy", SERVER, "notes", "--delete-data"], None)
        .unwrap();
    denied(
        "guestbook_app",
        &format!("{guestbook_pg} -d notes -c 'SELECT 1'"),
        "database \"notes\" does not exist",
    );
    demo.ok(
        &["app", "undeploy", SERVER, "mariadb", "--delete-data"],
        None,
    )
    .unwrap();
    let volumes = demo
        .on_server(&["docker", "volume", "ls", "--format", "{{.Name}}"])
        .unwrap();
    assert!(!volumes.contains("mariadb_data"), "{volumes}");
    let secrets = demo
        .on_server(&["docker", "secret", "ls", "--format", "{{.Name}}"])
        .unwrap();
    assert!(
        !secrets
            .lines()
            .any(|s| s.starts_with("livchat_notes_") || s.starts_with("livchat_mariadb_")),
        "{secrets}"
    );
    let recorded = demo.recorded_apps().unwrap();
    assert!(
        !recorded.contains("notes") && !recorded.contains("mariadb"),
        "{recorded:?}"
    );
    demo.assert_no_orphans().unwrap();
}
