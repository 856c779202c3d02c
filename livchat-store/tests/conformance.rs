//! Each trait's implementations pass one conformance suite: the state stores, the secret
//! stores (the real vault and the in-memory one) and the job log stores (files and memory).

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
