//! 8 processes x 50 updates of distinct keys on one `state.json`: all 400 land.

mod common;

use std::io::Read;

use livchat_store::{JsonFileStore, Store, init_home};

#[test]
fn eight_processes_of_fifty_updates_each_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let home = dir.path().to_str().unwrap();
    let before = JsonFileStore::new(dir.path()).load().unwrap().serial;
    let mut children: Vec<_> = (0..8)
        .map(|id| {
            common::KillOnDrop(common::spawn_worker(
                &["concurrent", home, &id.to_string(), "50"],
                &[],
            ))
        })
        .collect();
    for child in &mut children {
        let status = child.0.wait().unwrap();
        let mut err = String::new();
        child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "worker failed: {err}");
    }
    let state = JsonFileStore::new(dir.path()).load().unwrap();
    for id in 0..8 {
        for i in 0..50 {
            assert!(
                state.servers.contains_key(&format!("w{id}-{i}")),
                "w{id}-{i} is missing"
            );
        }
    }
    assert_eq!(state.servers.len(), 400);
    assert_eq!(
        state.serial,
        before + 400,
        "every update is one serial step"
    );
}
