//! The store and the vault fail (MockStore, MockSecretStore injecting errors): the operation
//! reports the store's error, nothing half-changed, and a job's clean-up still removes what
//! it created.

use std::path::PathBuf;
use std::sync::Arc;

use livchat_core::{CoreError, CreateServerParams};
use livchat_store::{
    JobStatus, MemorySecrets, MemoryStore, MockSecretStore, MockStore, SecretStore, Store,
    StoreError,
};
use secrecy::SecretString;

use super::support::*;

fn permission_denied(path: &str) -> StoreError {
    StoreError::Io {
        path: PathBuf::from(path),
        action: "write",
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    }
}

/// A vault that reads from `inner` and refuses every write.
fn read_only_vault(inner: Arc<MemorySecrets>) -> MockSecretStore {
    let mut vault = MockSecretStore::new();
    let reader = inner.clone();
    vault.expect_get().returning(move |name| reader.get(name));
    vault.expect_names().returning(move || inner.names());
    vault
        .expect_set()
        .returning(|_, _| Err(permission_denied("/home/u/.livchat/credentials.vault")));
    vault
}

#[tokio::test]
async fn configure_provider_whose_vault_refuses_the_write_reports_the_vault_error() {
    let world = World::empty();
    let mut mocks = Mocks::default();
    mocks
        .provider
        .expect_list_locations()
        .times(1)
        .returning(|| Ok(Vec::new()));
    let orch = world.build_with(
        world.store.clone(),
        Arc::new(read_only_vault(world.secrets.clone())),
        mocks,
    );
    let err = orch
        .configure_provider(SecretString::from("t".to_string()))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Store(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("credentials.vault: could not write: permission denied"),
        "{err}"
    );
    // Not cached either: the next call still needs a stored token.
    let err = orch
        .provider_info(livchat_core::ProviderInfoKind::Locations)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoreError::MissingCredential { .. }),
        "{err:?}"
    );
    verify(orch);
}

#[tokio::test]
async fn create_server_whose_vault_refuses_the_new_key_fails_before_touching_the_provider() {
    let world = World::new();
    let orch = world.build_with(
        world.store.clone(),
        Arc::new(read_only_vault(world.secrets.clone())),
        Mocks::default(),
    );
    let job = orch
        .start_create_server(CreateServerParams {
            name: "web-1".into(),
            server_type: "cx22".into(),
            location: "fsn1".into(),
            image: "debian-12".into(),
            keep_on_failure: false,
        })
        .unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(
        done.error
            .unwrap()
            .contains("could not write: permission denied"),
        "names the vault's failure"
    );
    assert!(world.state().servers.is_empty());
    verify(orch);
}

#[tokio::test]
async fn server_add_whose_vault_refuses_the_key_records_no_server() {
    let world = World::new();
    let mut mocks = Mocks::default();
    let executor: Arc<dyn livchat_remote::RemoteExecutor> = Arc::new(MockRemoteExecutor::new());
    mocks
        .connector
        .expect_connect()
        .times(1)
        .returning(move |_, _, _| {
            Ok(livchat_remote::Connected {
                executor: executor.clone(),
                host_key_fingerprint: FP.into(),
            })
        });
    let orch = world.build_with(
        world.store.clone(),
        Arc::new(read_only_vault(world.secrets.clone())),
        mocks,
    );
    let key = livchat_remote::generate_ed25519("u")
        .unwrap()
        .private_openssh;
    let err = orch
        .server_add(livchat_core::AddServer {
            name: "db-1".into(),
            host: "198.51.100.7".into(),
            port: 22,
            user: "root".into(),
            private_key: Some(key),
            key_passphrase: None,
            ssh_agent: false,
            host_key: Some(livchat_core::HostKeyTrust::AcceptNew),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Store(_)), "{err:?}");
    assert!(world.state().servers.is_empty());
    verify(orch);
}

#[tokio::test]
async fn operations_on_an_unreadable_state_report_the_store_error_and_call_nothing() {
    let world = World::new();
    let mut store = MockStore::new();
    let unreadable = || StoreError::Io {
        path: PathBuf::from("/home/u/.livchat/state.json"),
        action: "read",
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    store.expect_load().returning(move || Err(unreadable()));
    store.expect_servers().returning(move || Err(unreadable()));
    store.expect_server().returning(move |_| Err(unreadable()));
    store.expect_settings().returning(move || Err(unreadable()));
    store.expect_update().never();
    store.expect_update_settings().never();
    store.expect_insert_job().never();
    store.expect_update_job().never();
    let orch = world.build_with(Arc::new(store), world.secrets.clone(), Mocks::default());
    for err in [
        orch.servers().unwrap_err(),
        orch.start_delete_server("web-1", true).unwrap_err(),
        orch.start_deploy_app("web-1", "redis", &[]).unwrap_err(),
        orch.setting_get("email").unwrap_err(),
    ] {
        assert!(
            err.to_string()
                .contains("state.json: could not read: permission denied"),
            "{err}"
        );
    }
    verify(orch);
}

#[tokio::test]
async fn deploy_whose_final_record_cannot_be_written_removes_the_stack_it_deployed() {
    // The real in-memory store, except that the update recording the deployment fails.
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &[]);
    let inner: Arc<MemoryStore> = world.store.clone();
    let mut store = MockStore::new();
    let reader = inner.clone();
    store.expect_load().returning(move || reader.load());
    let one = inner.clone();
    store
        .expect_server()
        .returning(move |name| one.server(name));
    let settings = inner.clone();
    store
        .expect_settings()
        .returning(move || settings.settings());
    let jobs = inner.clone();
    store.expect_update().returning(move |operation, f| {
        if operation == "deployment recorded" {
            Err(permission_denied("/home/u/.livchat/state.json"))
        } else {
            inner.update(operation, f)
        }
    });
    // Jobs go through the real store untouched.
    let (j1, j2, j3, j4) = (jobs.clone(), jobs.clone(), jobs.clone(), jobs.clone());
    store
        .expect_insert_job()
        .returning(move |j, x| j1.insert_job(j, x));
    store.expect_job().returning(move |id| j2.job(id));
    store.expect_live_jobs().returning(move || j3.live_jobs());
    store
        .expect_update_job()
        .returning(move |id, op, f| j4.update_job(id, op, f));
    let mut mocks = Mocks::default();
    connects_pinned(&mut mocks.connector, MockRemoteExecutor::new(), 1);
    mocks
        .platform
        .expect_ensure_network()
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .platform
        .expect_deploy_stack()
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .platform
        .expect_wait_healthy()
        .times(1)
        .returning(|n, _| Ok(healthy(n)));
    mocks
        .platform
        .expect_remove_stack()
        .withf(|n| n == "redis")
        .times(1)
        .returning(|_| Ok(()));
    let orch = world.build_with(Arc::new(store), world.secrets.clone(), mocks);
    let job = orch.start_deploy_app("web-1", "redis", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(
        done.error
            .unwrap()
            .contains("could not write: permission denied")
    );
    assert_eq!(world.deployed_apps("web-1"), ["infrastructure"]);
    verify(orch);
}
