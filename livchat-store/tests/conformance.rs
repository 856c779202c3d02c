//! Each trait's implementations pass one conformance suite: the state stores, the secret
//! stores (the real vault and the in-memory one), the job log stores (files and memory), and
//! the job records of both state stores.

mod common;

use std::sync::Arc;

use livchat_store::{
    FileJobLogs, JsonFileStore, MemoryJobLogs, MemorySecrets, MemoryStore, SecretString, Vault,
    init_home,
};

#[test]
fn memory_store_passes_the_conformance_suite() {
    common::conformance::check_store(Arc::new(MemoryStore::new()));
}

#[test]
fn json_file_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    common::conformance::check_store(Arc::new(JsonFileStore::new(dir.path())));
}

#[test]
fn a_json_file_store_watching_its_file_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let store = JsonFileStore::new(dir.path()).watching_changes();
    assert!(store.generation().is_some(), "inotify works on a temp dir");
    common::conformance::check_store(Arc::new(store));
}

#[test]
fn memory_store_keeps_jobs_as_the_conformance_suite_says() {
    common::jobs_conformance::check_job_store(Arc::new(MemoryStore::new()));
}

#[test]
fn json_file_store_keeps_jobs_as_the_conformance_suite_says() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    common::jobs_conformance::check_job_store(Arc::new(JsonFileStore::new(dir.path())));
    // One file per job beside its log; a marker only for the live ones.
    let names = |sub: &str| {
        let mut n: Vec<String> = std::fs::read_dir(dir.path().join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with('.') && n != "live")
            .collect();
        n.sort();
        n
    };
    assert_eq!(names("jobs"), ["job-3.json", "job-4.json"]);
    assert_eq!(names("jobs/live"), ["job-3", "job-4"]);
}

#[test]
fn memory_secrets_pass_the_secret_store_conformance_suite() {
    common::secrets_conformance::check_secret_store(Arc::new(MemorySecrets::new()));
}

#[test]
fn the_vault_passes_the_secret_store_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let password = SecretString::from("correct horse battery staple".to_owned());
    let (vault, created) =
        Vault::create_if_missing(dir.path().join("credentials.vault"), password, None).unwrap();
    assert!(created);
    common::secrets_conformance::check_secret_store(Arc::new(vault));
}

#[test]
fn memory_job_logs_pass_the_job_log_conformance_suite() {
    common::job_logs_conformance::check_job_logs(&MemoryJobLogs::default());
}

#[test]
fn file_job_logs_pass_the_job_log_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    common::job_logs_conformance::check_job_logs(&FileJobLogs::new(dir.path()));
}
