//! The state lock: a second writer waits, then fails naming the holder; a lock left by a
//! killed process is taken over; a job's progress is written under its own stripe's lock,
//! a retry under the state's as well.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use livchat_store::{
    JsonFileStore, LockConfig, State, Store, StoreError, init_home, read_lock_info,
};

fn short_wait(ms: u64) -> LockConfig {
    LockConfig {
        timeout: Duration::from_millis(ms),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
    }
}

fn add(store: &JsonFileStore, name: &str) -> Result<State, StoreError> {
    store.update("second writer", &mut |s: &mut State| {
        s.servers.insert(name.into(), common::server(name));
        Ok(())
    })
}

/// Another writer holding the state's lock as `operation` on a thread of its own, until the
/// returned sender sends; returns once the lock is held.
fn hold_the_state_lock(
    home: &std::path::Path,
    operation: &'static str,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let home = home.to_path_buf();
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        JsonFileStore::new(&home)
            .update(operation, &mut |_s: &mut State| {
                locked_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
            .unwrap();
    });
    locked_rx.recv().unwrap();
    (release_tx, holder)
}

#[test]
fn second_writer_waits_then_fails_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let (release_tx, holder) = hold_the_state_lock(dir.path(), "deploy n8n");

    let started = Instant::now();
    let err = add(
        &JsonFileStore::new(dir.path()).with_lock_config(short_wait(400)),
        "b",
    )
    .unwrap_err();
    let waited = started.elapsed();
    let StoreError::Locked {
        holder: Some(info), ..
    } = &err
    else {
        panic!("expected Locked with holder info, got {err}");
    };
    assert_eq!(info.pid, std::process::id());
    assert_eq!(info.operation, "deploy n8n");
    assert!(!info.host.is_empty());
    let text = err.to_string();
    for part in [
        format!("pid {}", std::process::id()),
        format!("host {}", info.host),
        "operation `deploy n8n`".to_string(),
        "since ".to_string(),
        "state.json.lock".to_string(),
    ] {
        assert!(text.contains(&part), "`{part}` missing from: {text}");
    }
    assert!(
        waited >= Duration::from_millis(400),
        "gave up before the bound: {waited:?}"
    );

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    add(
        &JsonFileStore::new(dir.path()).with_lock_config(short_wait(400)),
        "b",
    )
    .expect("the lock is free again");
}

#[test]
fn a_waiting_writer_gets_the_lock_when_the_holder_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let home = dir.path().to_path_buf();
    let (locked_tx, locked_rx) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        JsonFileStore::new(&home)
            .update("slow", &mut |s: &mut State| {
                locked_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                s.servers.insert("a".into(), common::server("a"));
                Ok(())
            })
            .unwrap();
    });
    locked_rx.recv().unwrap();
    let state = add(
        &JsonFileStore::new(dir.path()).with_lock_config(short_wait(10_000)),
        "b",
    )
    .unwrap();
    holder.join().unwrap();
    assert!(state.servers.contains_key("a") && state.servers.contains_key("b"));
    assert_eq!(state.serial, 2);
}

#[test]
fn a_lock_held_by_another_process_names_it_and_is_taken_over_after_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let home = dir.path().to_str().unwrap();
    let mut child = common::KillOnDrop(common::spawn_worker(&["hold", home, "setup web-1"], &[]));
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "holding");

    let store = JsonFileStore::new(dir.path()).with_lock_config(short_wait(300));
    let err = add(&store, "b").unwrap_err();
    let StoreError::Locked {
        holder: Some(info), ..
    } = &err
    else {
        panic!("expected Locked with holder info, got {err}");
    };
    assert_eq!(info.pid, child.0.id());
    assert_eq!(info.operation, "setup web-1");
    assert!(
        err.to_string().contains(&format!("pid {}", child.0.id())),
        "{err}"
    );

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // The dead holder's info is still in the lock file: it never released the lock.
    let stale = read_lock_info(&store.lock_path()).expect("stale lock info is left behind");
    assert_eq!(stale.pid, info.pid);

    let state = add(&store, "b").expect("a killed holder's lock is taken over");
    assert!(state.servers.contains_key("b"));
    assert_eq!(
        read_lock_info(&store.lock_path()),
        None,
        "released cleanly this time"
    );
}

#[test]
fn a_jobs_progress_does_not_wait_for_the_state_lock_but_a_retry_does() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let store = JsonFileStore::new(dir.path()).with_lock_config(short_wait(300));
    let mut running = common::jobs_conformance::job("job-running", Some("web-1"));
    running.status = livchat_store::JobStatus::Running;
    let mut failed = common::jobs_conformance::job("job-failed", Some("web-2"));
    failed.status = livchat_store::JobStatus::Failed;
    failed.owner = None;
    for job in [&running, &failed] {
        assert_eq!(store.insert_job(job, true).unwrap(), None);
    }

    // Another writer holds the state's lock (a deploy recording its stack, say).
    let (release_tx, holder) = hold_the_state_lock(dir.path(), "deploy n8n");

    // A running job's progress takes only its own stripe's lock.
    let progressed = store
        .update_job("job-running", "job step done", &mut |j| {
            j.steps_completed.push("a".into());
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(progressed.steps_completed, ["a"]);

    // A retry makes a job live again, which decides who holds web-2: it waits for the lock.
    let retried = store.update_job("job-failed", "job retry", &mut |j| {
        j.status = livchat_store::JobStatus::Queued;
        j.owner = running.owner.clone();
        Ok(())
    });
    match retried {
        Err(StoreError::Locked { path, holder, .. }) => {
            assert!(path.ends_with("state.json.lock"), "{path:?}");
            assert_eq!(holder.map(|h| h.operation).as_deref(), Some("deploy n8n"));
        }
        other => panic!("expected the state's lock to be waited for, got {other:?}"),
    }
    assert_eq!(
        store.job("job-failed").unwrap().unwrap().status,
        livchat_store::JobStatus::Failed,
        "nothing was written"
    );
    release_tx.send(()).unwrap();
    holder.join().unwrap();
}
