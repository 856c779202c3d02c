//! The per-process SSH connection cache against a real sshd: a server that hangs during the
//! SSH handshake does not hold up commands to another server, and a connection that died
//! (sshd killed and started again) is dropped from the cache so the next command reconnects.

use std::sync::Arc;
use std::time::Duration;

use livchat_core::{Config, Orchestrator, OrchestratorBuilder};
use livchat_store::{MemoryJobLogs, MemorySecrets, MemoryStore, Store};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

fn orchestrator(store: Arc<MemoryStore>, secrets: Arc<MemorySecrets>) -> Arc<Orchestrator> {
    OrchestratorBuilder::new(
        Config::new("/nonexistent-livchat-home"),
        store,
        secrets,
        Arc::new(MemoryJobLogs::default()),
        livchat_apps::Catalog::builtin().unwrap(),
    )
    .connector(Arc::new(livchat_remote::SshConnector {
        // Longer than the test waits: the hanging server must still be connecting.
        connect_timeout: Duration::from_secs(600),
        ..Default::default()
    }))
    .build()
}

async fn echo(
    orch: &Orchestrator,
    server: &str,
    text: &str,
) -> Result<Vec<u8>, livchat_core::CoreError> {
    let out = orch
        .server_exec(
            server,
            &["echo".into(), text.into()],
            CancellationToken::new(),
        )
        .await?;
    Ok(out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_hanging_in_the_handshake_does_not_hold_up_another_server() {
    let Some(sshd) = fixtures::sshd::Sshd::start() else {
        return;
    };
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::new());
    let key = || Some(SecretString::from(sshd.client_private_key().to_string()));
    let adder = orchestrator(store.clone(), secrets.clone());
    for name in ["fast", "slow"] {
        adder.server_add(add(name, &sshd, key())).await.unwrap();
    }
    // "slow" now points at a listener that accepts TCP and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_port = listener.local_addr().unwrap().port();
    store
        .update("test: slow server", &mut |s| {
            s.servers.get_mut("slow").unwrap().ssh_port = slow_port;
            Ok(())
        })
        .unwrap();
    let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
    let hold = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        accepted_tx.send(()).unwrap();
        // Keep the socket open and silent until the test ends.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(sock);
    });

    // A fresh process: nothing cached.
    let orch = orchestrator(store, secrets);
    let slow = tokio::spawn({
        let orch = orch.clone();
        async move { echo(&orch, "slow", "never").await }
    });
    accepted_rx.await.unwrap();
    let fast = tokio::time::timeout(Duration::from_secs(120), echo(&orch, "fast", "here"))
        .await
        .expect("the fast server waited for the hanging one's connect")
        .unwrap();
    assert_eq!(fast, b"here\n");
    assert!(
        !slow.is_finished(),
        "the slow connect must still be pending"
    );
    slow.abort();
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_connection_is_dropped_and_the_next_command_reconnects() {
    let Some(mut sshd) = fixtures::sshd::Sshd::start() else {
        return;
    };
    let orch = orchestrator(Arc::new(MemoryStore::new()), Arc::new(MemorySecrets::new()));
    let key = SecretString::from(sshd.client_private_key().to_string());
    orch.server_add(add("web-1", &sshd, Some(key)))
        .await
        .unwrap();
    assert_eq!(echo(&orch, "web-1", "one").await.unwrap(), b"one\n");

    // Every connection drops; the server comes back with the same host key.
    sshd.restart();
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(echo(&orch, "web-1", "two").await.map_err(|e| e.to_string()));
    }
    // The first command may find the old connection dead; from then on it is replaced.
    let first_ok = results
        .iter()
        .position(Result::is_ok)
        .unwrap_or_else(|| panic!("never reconnected: {results:?}"));
    assert!(first_ok <= 1, "{results:?}");
    for r in &results[..first_ok] {
        let e = r.as_ref().unwrap_err();
        assert!(e.contains("lost") || e.contains("closed"), "{e}");
    }
    assert!(
        results[first_ok..]
            .iter()
            .all(|r| r.as_deref() == Ok(&b"two\n"[..])),
        "{results:?}"
    );
}

/// A server added over the test sshd, its host key accepted as an explicit choice.
fn add(
    name: &str,
    sshd: &fixtures::sshd::Sshd,
    key: Option<SecretString>,
) -> livchat_core::AddServer {
    livchat_core::AddServer {
        name: name.into(),
        host: sshd.host(),
        port: sshd.port(),
        user: sshd.user().into(),
        private_key: key,
        key_passphrase: None,
        ssh_agent: false,
        host_key: Some(livchat_core::HostKeyTrust::AcceptNew),
    }
}
