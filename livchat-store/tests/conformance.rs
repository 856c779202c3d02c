//! Both stores pass the one conformance suite.

mod common;

use std::sync::Arc;

use livchat_store::{JsonFileStore, MemoryStore, init_home};

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
