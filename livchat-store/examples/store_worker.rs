//! A child process for the crash-safety, concurrency and lock tests in `tests/` (they start it,
//! kill it with SIGKILL, and check the files it leaves). Not a user tool.
//!
//! Modes (the home directory must already be initialised):
//! - `state-loop <home>`: updates `state.json` forever; after each update RETURNS, prints the
//!   committed serial on its own line. The content of serial `n` is fixed by
//!   `common::crash_loop_step`, so a test can check the file against the serial.
//! - `vault-loop <home>`: adds secret `k<n>` = `common::vault_value(n)` forever, printing `n` after
//!   each `set` returns (password from `LIVCHAT_VAULT_PASSWORD` or the home's password file).
//! - `job-loop <home>`: rewrites job `job-crash` forever (created if missing); after each update
//!   RETURNS, prints the committed attempt. Odd attempts are running, even ones completed, so
//!   the live marker is created and removed all along (`common::job_loop_step`).
//! - `concurrent <home> <id> <count>`: adds servers `w<id>-<i>` for i in 0..count, one update each.
//! - `hold <home> <operation>`: takes the state lock, prints `holding`, and sleeps until killed.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use livchat_store::{JsonFileStore, LockConfig, State, Store, Vault, resolve_vault_password};

#[path = "../tests/common/mod.rs"]
mod common;

fn long_wait() -> LockConfig {
    LockConfig {
        timeout: Duration::from_secs(120),
        ..LockConfig::default()
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

fn state_loop(home: &Path) {
    let store = JsonFileStore::new(home).with_lock_config(long_wait());
    loop {
        let state = store
            .update("crash test", &mut |s: &mut State| {
                common::crash_loop_step(s);
                Ok(())
            })
            .expect("update");
        say(&state.serial.to_string());
    }
}

fn job_loop(home: &Path) {
    let store = JsonFileStore::new(home).with_lock_config(long_wait());
    if store.job(common::CRASH_JOB).expect("read").is_none() {
        let mut job = common::jobs_conformance::job(common::CRASH_JOB, Some("web-1"));
        job.attempt = 0;
        store.insert_job(&job, false).expect("insert");
    }
    loop {
        let job = store
            .update_job(common::CRASH_JOB, "crash test", &mut |j| {
                common::job_loop_step(j);
                Ok(())
            })
            .expect("update")
            .expect("the job exists");
        say(&job.attempt.to_string());
    }
}

fn vault_loop(home: &Path) {
    let (password, _) = resolve_vault_password(home, None).expect("password");
    let vault = Vault::open(home.join("credentials.vault"), password, None)
        .expect("open")
        .with_lock_config(long_wait());
    let mut n = vault.names().expect("names").len() as u64;
    loop {
        n += 1;
        let value = livchat_store::SecretString::from(common::vault_value(n));
        vault.set(&format!("k{n}"), value).expect("set");
        say(&n.to_string());
    }
}

fn concurrent(home: &Path, id: &str, count: u32) {
    let store = JsonFileStore::new(home).with_lock_config(long_wait());
    for i in 0..count {
        let name = format!("w{id}-{i}");
        store
            .update(&format!("worker {id}"), &mut |s: &mut State| {
                s.servers.insert(name.clone(), common::server(&name));
                Ok(())
            })
            .expect("update");
    }
    say("done");
}

fn hold(home: &Path, operation: &str) {
    let store = JsonFileStore::new(home);
    let _ = store.update(operation, &mut |_s: &mut State| {
        say("holding");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let home = Path::new(args.get(2).expect("usage: store_worker <mode> <home> ..."));
    match args[1].as_str() {
        "state-loop" => state_loop(home),
        "vault-loop" => vault_loop(home),
        "job-loop" => job_loop(home),
        "concurrent" => concurrent(home, &args[3], args[4].parse().expect("count is a number")),
        "hold" => hold(home, &args[3]),
        other => panic!("unknown mode {other}"),
    }
}
