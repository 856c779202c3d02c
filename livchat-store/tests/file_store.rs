//! `JsonFileStore` behaviour beyond the conformance suite: backup, no-op writes, modes,
//! refusing foreign or newer states, and bad input.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use livchat_store::{JsonFileStore, State, Store, StoreError, init_home};

fn home() -> (tempfile::TempDir, JsonFileStore) {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let store = JsonFileStore::new(dir.path());
    (dir, store)
}

/// A plain store and one that watches its file (as the REST service's does), each in a home
/// of its own: the reads below must see every change either way.
fn both_kinds() -> [(tempfile::TempDir, JsonFileStore); 2] {
    let (plain_dir, plain) = home();
    let (watched_dir, watched) = home();
    let watched = watched.watching_changes();
    assert!(
        watched.generation().is_some(),
        "inotify works on a temp dir"
    );
    [(plain_dir, plain), (watched_dir, watched)]
}

fn add(store: &JsonFileStore, name: &str) -> State {
    store
        .update("add", &mut |s: &mut State| {
            s.servers.insert(name.into(), common::server(name));
            Ok(())
        })
        .unwrap()
}

#[test]
fn previous_version_is_kept_as_the_backup() {
    let (_dir, store) = home();
    let first = add(&store, "a");
    let second = add(&store, "b");
    let backup: State =
        serde_json::from_slice(&std::fs::read(store.backup_path()).unwrap()).unwrap();
    assert_eq!(backup, first);
    assert_eq!(store.load().unwrap(), second);
}

#[test]
fn no_op_update_writes_nothing() {
    let (_dir, store) = home();
    add(&store, "a");
    let before = std::fs::metadata(store.path()).unwrap();
    let bak_before = std::fs::read(store.backup_path()).unwrap();
    store
        .update("nothing", &mut |s: &mut State| {
            s.servers.get_mut("a").unwrap().ssh_port = 22;
            Ok(())
        })
        .unwrap();
    let after = std::fs::metadata(store.path()).unwrap();
    assert_eq!(before.ino(), after.ino(), "the file was replaced");
    assert_eq!(before.mtime_nsec(), after.mtime_nsec());
    assert_eq!(std::fs::read(store.backup_path()).unwrap(), bak_before);
}

#[test]
fn state_files_are_private_and_no_temp_file_is_left() {
    let (dir, store) = home();
    add(&store, "a");
    add(&store, "b");
    for f in [
        store.path().to_path_buf(),
        store.backup_path(),
        store.lock_path(),
    ] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_state_from_another_home_is_refused_and_left_alone() {
    let (_dir, store) = home();
    add(&store, "a");
    let (other_dir, other) = home();
    add(&other, "z");
    std::fs::copy(other.path(), store.path()).unwrap();
    let foreign = std::fs::read(store.path()).unwrap();
    let err = store
        .update("add", &mut |s: &mut State| {
            s.servers.insert("b".into(), common::server("b"));
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::ForeignLineage { .. }), "{err}");
    assert!(err.to_string().contains("lineage"), "{err}");
    assert_eq!(std::fs::read(store.path()).unwrap(), foreign);
    drop(other_dir);
}

#[test]
fn a_newer_state_written_behind_the_lock_is_not_overwritten() {
    let (_dir, store) = home();
    add(&store, "a");
    let path = store.path().to_path_buf();
    let mut intruder_bytes = Vec::new();
    let err = store
        .update("add", &mut |s: &mut State| {
            // A program that ignores the lock writes a newer serial while we hold it.
            let mut newer = s.clone();
            newer.serial += 5;
            newer
                .servers
                .insert("intruder".into(), common::server("intruder"));
            intruder_bytes = serde_json::to_vec_pretty(&newer).unwrap();
            std::fs::write(&path, &intruder_bytes).unwrap();
            s.servers.insert("b".into(), common::server("b"));
            Ok(())
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSerial {
                on_disk: 6,
                read: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(store.path()).unwrap(), intruder_bytes);
}

#[test]
fn a_missing_state_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let err = JsonFileStore::new(dir.path()).load().unwrap_err();
    assert!(matches!(err, StoreError::NotInitialized { .. }), "{err}");
    assert!(err.to_string().contains("livchat init"), "{err}");
}

/// Truncated, garbage, empty, wrong-typed: a clear error naming the file, the file untouched
/// by load and by update, and the backup offered with the command to restore it.
#[test]
fn bad_state_file_is_a_clear_error_that_offers_the_backup_and_is_never_overwritten() {
    let (_dir, store) = home();
    add(&store, "a");
    add(&store, "b");
    let good = std::fs::read(store.path()).unwrap();
    let serial = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["serial"]
            .as_u64()
            .unwrap()
    };
    // The backup is one write behind: the error says so and names its serial.
    let backup_serial = serial(&std::fs::read(store.backup_path()).unwrap());
    assert_eq!(backup_serial + 1, serial(&good));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"\x00\xff\x13garbage{".to_vec()),
        ("empty", Vec::new()),
        ("not an object", b"[1, 2, 3]".to_vec()),
        (
            "wrong type",
            String::from_utf8(good.clone())
                .unwrap()
                .replace("\"ssh_port\": 22", "\"ssh_port\": \"twenty-two\"")
                .into_bytes(),
        ),
        (
            "typo field",
            String::from_utf8(good.clone())
                .unwrap()
                .replace("\"ssh_port\"", "\"ssh_prot\"")
                .into_bytes(),
        ),
    ];
    for (what, bytes) in cases {
        std::fs::write(store.path(), &bytes).unwrap();
        let fresh = JsonFileStore::new(store.path().parent().unwrap());
        for err in [
            fresh.load().unwrap_err(),
            fresh
                .update("add", &mut |s: &mut State| {
                    s.servers.insert("c".into(), common::server("c"));
                    Ok(())
                })
                .unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                matches!(err, StoreError::CorruptState { .. }),
                "{what}: {text}"
            );
            assert!(
                text.contains(&store.path().display().to_string()),
                "{what}: {text}"
            );
            assert!(
                text.contains("state.json.bak") && text.contains("cp "),
                "{what}: {text}"
            );
            assert!(
                text.contains(&format!("serial {backup_serial}"))
                    && text.contains("loses the last change"),
                "{what}: {text}"
            );
            assert_eq!(
                std::fs::read(store.path()).unwrap(),
                bytes,
                "{what}: file changed"
            );
        }
    }
    // Without a backup, the error says so.
    std::fs::remove_file(store.backup_path()).unwrap();
    std::fs::write(store.path(), b"{").unwrap();
    let text = JsonFileStore::new(store.path().parent().unwrap())
        .load()
        .unwrap_err()
        .to_string();
    assert!(text.contains("No backup"), "{text}");
    assert!(text.contains("truncated"), "{text}");
}

#[test]
fn a_state_from_a_newer_livchat_is_refused_untouched() {
    let (_dir, store) = home();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
    doc["version"] = 99.into();
    let bytes = serde_json::to_vec(&doc).unwrap();
    std::fs::write(store.path(), &bytes).unwrap();
    let err = store
        .update("x", &mut |s: &mut State| {
            s.servers.insert("c".into(), common::server("c"));
            Ok(())
        })
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NewerVersion { found: 99, .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(store.path()).unwrap(), bytes);
}

#[test]
fn a_write_by_another_process_is_seen_by_the_next_load() {
    for (dir, store) in both_kinds() {
        add(&store, "a");
        assert_eq!(store.load().unwrap().servers.len(), 1);
        assert_eq!(store.servers().unwrap().len(), 1);
        // Another process (the CLI beside the REST service) writes through its own store.
        let other = JsonFileStore::new(dir.path());
        add(&other, "b");
        let seen = store.load().unwrap();
        assert!(
            seen.servers.contains_key("b"),
            "the cached version was served"
        );
        assert_eq!(seen, other.load().unwrap());
        add(&other, "c");
        assert!(store.servers().unwrap().contains_key("c"));
    }
}

#[test]
fn a_same_length_rewrite_in_the_same_clock_tick_is_still_seen() {
    for (dir, store) in both_kinds() {
        same_length_rewrite(dir, store);
    }
}

fn same_length_rewrite(_dir: tempfile::TempDir, store: JsonFileStore) {
    add(&store, "a");
    assert!(store.servers().unwrap().contains_key("a"));
    let path = store.path().to_path_buf();
    let before = std::fs::metadata(&path).unwrap();
    // Same inode, same length, same mtime, other content: a cache keyed on the file's
    // identity would serve the old version; the bytes tell them apart.
    let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    let renamed = text.replace("\"a\"", "\"z\"");
    assert_eq!(renamed.len(), text.len());
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::io::Write::write_all(&mut &file, renamed.as_bytes()).unwrap();
    file.set_modified(before.modified().unwrap()).unwrap();
    drop(file);
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (after.ino(), after.mtime_nsec()),
        (before.ino(), before.mtime_nsec())
    );
    let seen = store.load().unwrap();
    assert!(seen.servers.contains_key("z"), "{:?}", seen.servers.keys());
    assert!(store.servers().unwrap().contains_key("z"));
}

/// A version-2 file: jobs inside the state.
fn v2_with_jobs(lineage: &str) -> String {
    serde_json::json!({
        "version": 2, "serial": 9, "lineage": lineage,
        "servers": {}, "deployments": {}, "settings": {},
        "jobs": {
            "job-old-1": {
                "id": "job-old-1", "kind": "setup_server", "server": "web-1",
                "status": "running", "progress": 40, "attempt": 1,
                "created_at": "2026-11-01T00:00:00Z", "params": {},
                "owner": {"pid": 4242, "host": "elsewhere"}
            },
            "job-old-2": {
                "id": "job-old-2", "kind": "deploy_app", "status": "completed",
                "progress": 100, "attempt": 1, "created_at": "2026-11-02T00:00:00Z",
                "params": {}
            }
        }
    })
    .to_string()
}

#[test]
fn a_version_2_state_gives_its_jobs_to_job_files_on_first_access() {
    let (dir, store) = home();
    let lineage = store.load().unwrap().lineage.to_string();
    std::fs::write(store.path(), v2_with_jobs(&lineage)).unwrap();
    // Another process opens the home, as after an upgrade.
    let store = JsonFileStore::new(dir.path());
    let jobs: Vec<String> = store.jobs().unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(jobs, ["job-old-1", "job-old-2"]);
    let live: Vec<String> = store
        .live_jobs()
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(live, ["job-old-1"]);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
    assert_eq!(on_disk["version"], livchat_store::STATE_VERSION);
    assert_eq!(
        on_disk["serial"], 9,
        "a migration is not a change of the user's state"
    );
    assert!(on_disk.get("jobs").is_none(), "{on_disk}");
    assert!(dir.path().join("jobs/job-old-2.json").is_file());
    // The version-2 file is the backup, as before any write.
    let backup = std::fs::read_to_string(store.backup_path()).unwrap();
    assert!(backup.contains("job-old-1"));
}

#[test]
fn a_migration_interrupted_after_the_job_files_keeps_the_newer_job_file() {
    let (dir, store) = home();
    let lineage = store.load().unwrap().lineage.to_string();
    std::fs::write(store.path(), v2_with_jobs(&lineage)).unwrap();
    // A first migration wrote the job files and died before the state; the job then moved
    // on (a later write by its owner).
    let first = JsonFileStore::new(dir.path());
    first.jobs().unwrap();
    let moved_on = first
        .update_job("job-old-1", "progress", &mut |j| {
            j.progress = 90;
            Ok(())
        })
        .unwrap()
        .unwrap();
    std::fs::write(store.path(), v2_with_jobs(&lineage)).unwrap();
    let again = JsonFileStore::new(dir.path());
    assert_eq!(again.load().unwrap().version, livchat_store::STATE_VERSION);
    assert_eq!(again.job("job-old-1").unwrap(), Some(moved_on));
}

#[test]
fn a_servers_only_read_checks_what_a_full_read_checks() {
    let (dir, store) = home();
    add(&store, "web-1");
    // A fresh store (no cache), as `livchat server list` in a new process.
    assert_eq!(
        JsonFileStore::new(dir.path()).servers().unwrap(),
        store.load().unwrap().servers
    );
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
    doc["servers"]["web-1"]["ssh_user"] = "-oProxyCommand=x".into();
    std::fs::write(store.path(), doc.to_string()).unwrap();
    let err = JsonFileStore::new(dir.path()).servers().unwrap_err();
    assert!(matches!(err, StoreError::CorruptState { .. }), "{err}");
    assert!(err.to_string().contains("servers.web-1.ssh_user"), "{err}");
}

/// A version-3 file: settings inside the state.
fn v3_with_settings(lineage: &str, email: &str) -> String {
    serde_json::json!({
        "version": 3, "serial": 4, "lineage": lineage,
        "servers": {}, "deployments": {}, "settings": {"email": email}
    })
    .to_string()
}

#[test]
fn a_version_3_state_gives_its_settings_to_settings_json_on_first_access() {
    let (dir, store) = home();
    let lineage = store.load().unwrap().lineage.to_string();
    std::fs::write(store.path(), v3_with_settings(&lineage, "ops@example.com")).unwrap();
    let store = JsonFileStore::new(dir.path());
    let settings = store.settings().unwrap();
    assert_eq!(settings.email.as_deref(), Some("ops@example.com"));
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
    assert_eq!(on_disk["version"], livchat_store::STATE_VERSION);
    assert_eq!(on_disk["serial"], 4);
    assert!(on_disk.get("settings").is_none(), "{on_disk}");
    let file = dir.path().join(livchat_store::SETTINGS_FILE);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(JsonFileStore::new(dir.path()).settings().unwrap(), settings);
}

#[test]
fn a_migration_interrupted_after_the_settings_file_keeps_the_newer_settings() {
    let (dir, store) = home();
    let lineage = store.load().unwrap().lineage.to_string();
    std::fs::write(store.path(), v3_with_settings(&lineage, "old@example.com")).unwrap();
    // The first migration wrote settings.json and died; the user then changed a setting.
    std::fs::write(
        dir.path().join(livchat_store::SETTINGS_FILE),
        r#"{"email": "new@example.com"}"#,
    )
    .unwrap();
    let store = JsonFileStore::new(dir.path());
    assert_eq!(store.load().unwrap().version, livchat_store::STATE_VERSION);
    assert_eq!(
        store.settings().unwrap().email.as_deref(),
        Some("new@example.com")
    );
}

#[test]
fn a_settings_update_leaves_the_state_file_untouched_and_never_parses_the_servers() {
    let (dir, store) = home();
    add(&store, "web-1");
    // A server that would fail validation: a settings command must not need to read it.
    let text = std::fs::read_to_string(store.path()).unwrap().replace(
        "\"ssh_user\": \"root\"",
        "\"ssh_user\": \"-oProxyCommand=x\"",
    );
    std::fs::write(store.path(), &text).unwrap();
    let before = std::fs::metadata(store.path()).unwrap();
    let fresh = JsonFileStore::new(dir.path());
    fresh.ensure_ready().unwrap();
    fresh
        .update_settings("set", &mut |s| {
            s.set(livchat_store::SettingKey::Timezone, "UTC")
        })
        .unwrap();
    let after = std::fs::metadata(store.path()).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );
    assert_eq!(std::fs::read_to_string(store.path()).unwrap(), text);
    assert!(JsonFileStore::new(dir.path()).servers().is_err());
}

#[test]
fn a_home_without_a_state_is_not_initialized_for_settings_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = JsonFileStore::new(dir.path());
    for err in [
        store.ensure_ready().unwrap_err(),
        store.settings().unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NotInitialized { .. }), "{err}");
    }
}
