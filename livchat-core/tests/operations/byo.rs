//! Bring-your-own servers: `server add` and `server repin-host-key`. A host key is pinned only
//! when the user gave its fingerprint, confirmed it when shown, or chose accept-new for a
//! first contact; a changed key is never pinned without a fingerprint or a confirmation.
//! Keys: any algorithm, with a passphrase (kept in the vault) or from the user's ssh-agent.

use std::sync::{Arc, Mutex};

use livchat_core::{AddServer, CoreError, HostKeyOffer, HostKeyTrust};
use livchat_remote::{Connected, HostKeyPolicy, RemoteError};
use livchat_store::{ProviderKind, ServerStatus};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use super::support::*;

/// A well-formed fingerprint the mocked server presents after a "reinstall".
const NEW_FP: &str = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
/// Another well-formed one that no mocked server presents.
const OTHER_FP: &str = "SHA256:AAAAztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

fn user_key() -> SecretString {
    livchat_remote::generate_ed25519("user@laptop")
        .unwrap()
        .private_openssh
}

fn add(name: &str, host: &str, host_key: Option<HostKeyTrust>) -> AddServer {
    AddServer {
        name: name.into(),
        host: host.into(),
        port: 22,
        user: "root".into(),
        private_key: Some(user_key()),
        key_passphrase: None,
        ssh_agent: false,
        host_key,
    }
}

/// A question that records what it was shown and answers `answer`.
fn question(answer: bool) -> (HostKeyTrust, Arc<Mutex<Vec<HostKeyOffer>>>) {
    let shown = Arc::new(Mutex::new(Vec::new()));
    let seen = shown.clone();
    let trust = HostKeyTrust::Ask(Arc::new(move |offer: &HostKeyOffer| {
        seen.lock().unwrap().push(offer.clone());
        answer
    }));
    (trust, shown)
}

/// The connector accepts one connection under `policy` and reports `presented`.
fn connects_once(mocks: &mut Mocks, policy: HostKeyPolicy, presented: &'static str) {
    let exec: Arc<dyn livchat_remote::RemoteExecutor> = Arc::new(MockRemoteExecutor::new());
    mocks
        .connector
        .expect_connect()
        .withf(move |_, _, p| *p == policy)
        .times(1)
        .returning(move |_, _, _| {
            Ok(Connected {
                executor: exec.clone(),
                host_key_fingerprint: presented.into(),
            })
        });
}

/// The connector's answer when the server presents `offered` but `pinned` was required.
fn presents_other_key(mocks: &mut Mocks, offered: &'static str) {
    mocks
        .connector
        .expect_connect()
        .times(1)
        .returning(move |t, _, p| {
            let HostKeyPolicy::Pinned(pinned) = p else {
                panic!("expected a pinned connection, got {p:?}");
            };
            Err(RemoteError::HostKeyChanged {
                server: t.name.clone(),
                pinned: pinned.clone(),
                offered: offered.into(),
            })
        });
}

// ----- server_add ----------------------------------------------------------------------------

#[tokio::test]
async fn server_add_accept_new_trusts_on_first_use_pins_the_key_and_reuses_the_connection() {
    let world = World::new();
    let mut mocks = Mocks::default();
    let mut exec = MockRemoteExecutor::new();
    exec.expect_exec()
        .withf(|c, _| c.program == "uptime" && c.args.is_empty())
        .times(1)
        .returning(|_, _| Ok(output(0, "up 3 days\n", "")));
    let exec: Arc<dyn livchat_remote::RemoteExecutor> = Arc::new(exec);
    mocks
        .connector
        .expect_connect()
        .withf(|t, _, policy| {
            t.name == "db-1"
                && t.host == "198.51.100.7"
                && t.port == 2222
                && t.user == "admin"
                && *policy == HostKeyPolicy::TrustOnFirstUse
        })
        .times(1)
        .returning(move |_, _, _| {
            Ok(Connected {
                executor: exec.clone(),
                host_key_fingerprint: FP.into(),
            })
        });
    let orch = world.build(mocks);
    let key = user_key();
    let added = orch
        .server_add(AddServer {
            port: 2222,
            user: "admin".into(),
            private_key: Some(key.clone()),
            ..add("db-1", "198.51.100.7", Some(HostKeyTrust::AcceptNew))
        })
        .await
        .unwrap();
    assert_eq!(added.record.provider, ProviderKind::Manual);
    assert_eq!(added.record.host_key_fingerprint.as_deref(), Some(FP));
    let stored = &world.state().servers["db-1"];
    assert_eq!(stored.status, ServerStatus::Running);
    assert_eq!(stored.ssh_port, 2222);
    assert_eq!(
        world.secret("ssh.db-1.private_key").as_deref(),
        Some(key.expose_secret())
    );
    // The connection opened by `add` serves the next command: no second connect.
    let out = orch
        .server_exec("db-1", &["uptime".into()], CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.stdout, b"up 3 days\n");
    verify(orch);
}

#[tokio::test]
async fn server_add_with_the_expected_fingerprint_connects_pinned_to_it() {
    let world = World::new();
    let mut mocks = Mocks::default();
    connects_once(&mut mocks, HostKeyPolicy::Pinned(NEW_FP.into()), NEW_FP);
    let orch = world.build(mocks);
    // Padding as some tools print it is accepted and dropped.
    let added = orch
        .server_add(add(
            "db-1",
            "198.51.100.7",
            Some(HostKeyTrust::Expect(format!("{NEW_FP}="))),
        ))
        .await
        .unwrap();
    assert_eq!(added.record.host_key_fingerprint.as_deref(), Some(NEW_FP));
    assert_eq!(
        world.state().servers["db-1"]
            .host_key_fingerprint
            .as_deref(),
        Some(NEW_FP)
    );
    verify(orch);
}

#[tokio::test]
async fn server_add_whose_server_presents_another_key_than_expected_stores_nothing() {
    let world = World::new();
    let mut mocks = Mocks::default();
    presents_other_key(&mut mocks, NEW_FP);
    let orch = world.build(mocks);
    let err = orch
        .server_add(add(
            "db-1",
            "198.51.100.7",
            Some(HostKeyTrust::Expect(OTHER_FP.into())),
        ))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(NEW_FP) && text.contains(OTHER_FP) && text.contains("nothing was added"),
        "{text}"
    );
    assert!(world.state().servers.is_empty());
    assert_eq!(world.secret("ssh.db-1.private_key"), None);
    verify(orch);
}

#[tokio::test]
async fn server_add_shows_the_presented_fingerprint_and_stores_nothing_when_declined() {
    let world = World::new();
    let mut mocks = Mocks::default();
    connects_once(&mut mocks, HostKeyPolicy::TrustOnFirstUse, NEW_FP);
    let orch = world.build(mocks);
    let (ask, shown) = question(false);
    let err = orch
        .server_add(add("db-1", "198.51.100.7", Some(ask)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not accepted"), "{err}");
    let shown = shown.lock().unwrap().clone();
    assert_eq!(
        shown,
        vec![HostKeyOffer {
            server: "db-1".into(),
            host: "198.51.100.7".into(),
            port: 22,
            pinned: None,
            presented: NEW_FP.into(),
        }]
    );
    assert!(world.state().servers.is_empty());
    assert_eq!(world.secret("ssh.db-1.private_key"), None);
    verify(orch);
}

#[tokio::test]
async fn server_add_pins_the_fingerprint_the_user_confirmed() {
    let world = World::new();
    let mut mocks = Mocks::default();
    connects_once(&mut mocks, HostKeyPolicy::TrustOnFirstUse, NEW_FP);
    let orch = world.build(mocks);
    let (ask, shown) = question(true);
    orch.server_add(add("db-1", "198.51.100.7", Some(ask)))
        .await
        .unwrap();
    assert_eq!(shown.lock().unwrap().len(), 1);
    assert_eq!(
        world.state().servers["db-1"]
            .host_key_fingerprint
            .as_deref(),
        Some(NEW_FP)
    );
    verify(orch);
}

#[tokio::test]
async fn server_add_without_a_host_key_decision_is_refused_before_connecting() {
    let world = World::new();
    let orch = world.build(Mocks::default());
    let err = orch
        .server_add(add("db-1", "198.51.100.7", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Invalid { field, reason }
            if field == "host_key_fingerprint" && reason.contains("--accept-new-host-key")),
        "{err:?}"
    );
    assert!(world.state().servers.is_empty());
    verify(orch);
}

#[tokio::test]
async fn server_add_that_cannot_connect_records_nothing_and_keeps_no_key() {
    let world = World::new();
    let mut mocks = Mocks::default();
    mocks
        .connector
        .expect_connect()
        .times(1)
        .returning(|t, _, _| Err(connect_refused(&t.name)));
    let orch = world.build(mocks);
    let err = orch
        .server_add(add("db-1", "198.51.100.7", Some(HostKeyTrust::AcceptNew)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("could not connect to db-1: connection refused"),
        "{err}"
    );
    assert!(world.state().servers.is_empty());
    assert_eq!(world.secret("ssh.db-1.private_key"), None);
    verify(orch);
}

#[tokio::test]
async fn server_add_with_bad_input_names_the_field_and_changes_nothing() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let before = world.state();
    let names_before = world.secret_names();
    let orch = world.build(Mocks::default());
    let accept = || Some(HostKeyTrust::AcceptNew);
    let cases: Vec<(AddServer, &str)> = vec![
        (add("Bad Name!", "198.51.100.7", accept()), "server name"),
        (
            AddServer {
                user: "root;reboot".into(),
                ..add("db-1", "198.51.100.7", accept())
            },
            "user",
        ),
        (add("db-1", "-oProxyCommand=sh", accept()), "host"),
        (add("db-1", "a b", accept()), "host"),
        (
            AddServer {
                port: 0,
                ..add("db-1", "198.51.100.7", accept())
            },
            "port",
        ),
        (
            AddServer {
                private_key: None,
                ..add("db-1", "198.51.100.7", accept())
            },
            "key",
        ),
        (
            add(
                "db-1",
                "198.51.100.7",
                Some(HostKeyTrust::Expect("MD5:12:34".into())),
            ),
            "host_key_fingerprint",
        ),
    ];
    for (req, field) in cases {
        let what = format!("{req:?}");
        let err = orch.server_add(req).await.unwrap_err();
        assert!(
            matches!(&err, CoreError::Invalid { field: f, .. } if f == field),
            "{what}: {err:?}"
        );
    }
    let err = orch
        .server_add(AddServer {
            private_key: Some(SecretString::from("not a key".to_string())),
            ..add("db-1", "198.51.100.7", accept())
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    let err = orch
        .server_add(add("web-1", "198.51.100.7", accept()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("web-1 already exists")),
        "{err:?}"
    );
    assert_eq!(world.state().servers, before.servers);
    assert_eq!(world.secret_names(), names_before);
    verify(orch);
}

// ----- repin_host_key ------------------------------------------------------------------------

fn pin(world: &World, server: &str) -> Option<String> {
    world.state().servers[server].host_key_fingerprint.clone()
}

#[tokio::test]
async fn repin_host_key_with_the_given_fingerprint_connects_pinned_to_it_and_replaces_the_pin() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    connects_once(&mut mocks, HostKeyPolicy::Pinned(NEW_FP.into()), NEW_FP);
    let orch = world.build(mocks);
    let r = orch
        .repin_host_key("web-1", HostKeyTrust::Expect(NEW_FP.into()))
        .await
        .unwrap();
    assert_eq!(r.old.as_deref(), Some(FP));
    assert_eq!(r.new, NEW_FP);
    assert!(r.changed);
    assert_eq!(pin(&world, "web-1").as_deref(), Some(NEW_FP));
    verify(orch);
}

#[tokio::test]
async fn repin_host_key_without_a_fingerprint_or_a_question_is_refused_before_connecting() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let orch = world.build(Mocks::default());
    for trust in [
        HostKeyTrust::AcceptNew,
        HostKeyTrust::Expect("SHA256:short".into()),
    ] {
        let err = orch.repin_host_key("web-1", trust).await.unwrap_err();
        assert!(
            matches!(&err, CoreError::Invalid { field, .. } if field == "--fingerprint"),
            "{err:?}"
        );
    }
    assert_eq!(pin(&world, "web-1").as_deref(), Some(FP));
    verify(orch);
}

#[tokio::test]
async fn repin_host_key_whose_server_presents_another_key_than_given_keeps_the_pin() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    presents_other_key(&mut mocks, NEW_FP);
    let orch = world.build(mocks);
    let err = orch
        .repin_host_key("web-1", HostKeyTrust::Expect(OTHER_FP.into()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(NEW_FP) && text.contains(OTHER_FP) && text.contains("not changed"),
        "{text}"
    );
    assert_eq!(pin(&world, "web-1").as_deref(), Some(FP));
    verify(orch);
}

#[tokio::test]
async fn repin_host_key_shows_old_and_new_fingerprints_and_keeps_the_pin_when_declined() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    connects_once(&mut mocks, HostKeyPolicy::TrustOnFirstUse, NEW_FP);
    let orch = world.build(mocks);
    let (ask, shown) = question(false);
    let err = orch.repin_host_key("web-1", ask).await.unwrap_err();
    assert!(err.to_string().contains("not accepted"), "{err}");
    let shown = shown.lock().unwrap().clone();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].pinned.as_deref(), Some(FP));
    assert_eq!(shown[0].presented, NEW_FP);
    assert_eq!(pin(&world, "web-1").as_deref(), Some(FP));
    verify(orch);
}

#[tokio::test]
async fn repin_host_key_that_cannot_connect_keeps_the_old_pin() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    mocks
        .connector
        .expect_connect()
        .times(1)
        .returning(|t, _, _| Err(connect_refused(&t.name)));
    let orch = world.build(mocks);
    let err = orch
        .repin_host_key("web-1", HostKeyTrust::Expect(NEW_FP.into()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("could not connect to web-1"),
        "{err}"
    );
    assert_eq!(pin(&world, "web-1").as_deref(), Some(FP));
    let err = orch
        .repin_host_key("ghost", HostKeyTrust::Expect(NEW_FP.into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::NotFound { kind: "server", name, .. } if name == "ghost"),
        "{err:?}"
    );
    verify(orch);
}

#[tokio::test]
async fn a_changed_host_key_names_repin_host_key_and_not_job_retry() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    presents_other_key(&mut mocks, NEW_FP);
    let orch = world.build(mocks);
    let err = orch
        .server_exec("web-1", &["true".into()], CancellationToken::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("host key changed for web-1"), "{text}");
    assert!(text.contains(FP) && text.contains(NEW_FP), "{text}");
    assert!(
        text.contains("livchat server repin-host-key web-1 --fingerprint"),
        "{text}"
    );
    assert!(!text.contains("job retry"), "{text}");
    verify(orch);
}

// ----- keys, users and hosts (issue #13) -----------------------------------------------------

/// A throwaway Ed25519 key made for this test with `ssh-keygen -N 'correct horse'`.
const ENCRYPTED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABBRyEWly1
e5im68kFqZA/wnAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIMYA6bIaIReq88Zn
ECXO6PThJvemzhFEpqG2imGmnkkqAAAAkHsiJYeJD+wAYTb2xfRVWg5N4L3DE/GPh+vVob
D3yTwGmUtjgF6S/PALFbbrspD0nCOEiXUOpZ0ZBFFQtlOLbnI65XUKDUEsg9Y/zKIXTdU7
dEf8EwHr/7GFnrijy4Aq3qcNkAgpJfqGQwt7h71t6TkPOGD0tDIh9aoCmETxZYwA+QY2wL
Q6e2qXV1yjsWq5Bg==
-----END OPENSSH PRIVATE KEY-----
";
const ENCRYPTED_KEY_FP: &str = "SHA256:j+oLncH4iJUqMouJAy1bWeRek7Me+gGzL2Moeg7G0rs";

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

/// The connector accepts connections whose key, decrypted, is the test key.
fn connects_with_the_decrypted_key(mocks: &mut Mocks, times: usize) {
    let exec: Arc<dyn livchat_remote::RemoteExecutor> = Arc::new(MockRemoteExecutor::new());
    mocks
        .connector
        .expect_connect()
        .withf(|_, key, _| {
            // The connection gets the key opened in memory, never the passphrase-protected text.
            livchat_remote::parse_private_key(key).is_ok_and(|k| k.fingerprint == ENCRYPTED_KEY_FP)
        })
        .times(times)
        .returning(move |_, _, _| {
            Ok(Connected {
                executor: exec.clone(),
                host_key_fingerprint: FP.into(),
            })
        });
}

#[tokio::test]
async fn server_add_with_a_passphrase_keeps_key_and_passphrase_in_the_vault_and_reconnects() {
    let world = World::new();
    let mut mocks = Mocks::default();
    connects_with_the_decrypted_key(&mut mocks, 1);
    let orch = world.build(mocks);
    orch.server_add(AddServer {
        private_key: Some(secret(ENCRYPTED_KEY)),
        key_passphrase: Some(secret("correct horse")),
        ..add("db-1", "198.51.100.7", Some(HostKeyTrust::AcceptNew))
    })
    .await
    .unwrap();
    assert_eq!(
        world.secret("ssh.db-1.private_key").as_deref(),
        Some(ENCRYPTED_KEY)
    );
    assert_eq!(
        world.secret("ssh.db-1.key_passphrase").as_deref(),
        Some("correct horse")
    );
    verify(orch);
    // A later process opens the key again with the passphrase from the vault.
    let mut mocks = Mocks::default();
    connects_with_the_decrypted_key(&mut mocks, 1);
    let later = world.build(mocks);
    let r = later
        .repin_host_key("db-1", HostKeyTrust::Expect(NEW_FP.into()))
        .await
        .unwrap();
    assert!(!r.changed, "the mocked server still presents {FP}");
    verify(later);
}

#[tokio::test]
async fn server_add_with_a_protected_key_and_no_or_a_wrong_passphrase_stores_nothing() {
    let world = World::new();
    let names_before = world.secret_names();
    let orch = world.build(Mocks::default());
    let err = orch
        .server_add(AddServer {
            private_key: Some(secret(ENCRYPTED_KEY)),
            ..add("db-1", "198.51.100.7", Some(HostKeyTrust::AcceptNew))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Invalid { field, .. } if field == "--key-passphrase-file"),
        "{err:?}"
    );
    let err = orch
        .server_add(AddServer {
            private_key: Some(secret(ENCRYPTED_KEY)),
            key_passphrase: Some(secret("wrong")),
            ..add("db-1", "198.51.100.7", Some(HostKeyTrust::AcceptNew))
        })
        .await
        .unwrap_err();
    assert!(err.is_bad_input(), "{err:?}");
    assert!(err.to_string().contains("passphrase"), "{err}");
    assert!(!err.to_string().contains("correct horse"), "{err}");
    assert_eq!(world.secret_names(), names_before);
    verify(orch);
}

/// The (socket, requested key) of each ssh-agent connection the mock saw.
type AgentCalls = Arc<Mutex<Vec<(std::path::PathBuf, Option<String>)>>>;

#[tokio::test]
async fn server_add_with_the_ssh_agent_records_the_agent_key_and_stores_no_key() {
    let mut world = World::new();
    world.config.ssh_agent_socket = Some("/run/user/1000/agent.sock".into());
    let names_before = world.secret_names();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let agent =
        |seen: AgentCalls| {
            let mut mocks = Mocks::default();
            let mut exec = MockRemoteExecutor::new();
            exec.expect_exec()
                .returning(|_, _| Ok(output(0, "ok\n", "")));
            let exec: Arc<dyn livchat_remote::RemoteExecutor> = Arc::new(exec);
            mocks.connector.expect_connect_agent().times(1).returning(
                move |_, socket, identity, _| {
                    seen.lock()
                        .unwrap()
                        .push((socket.to_path_buf(), identity.clone()));
                    Ok((
                        Connected {
                            executor: exec.clone(),
                            host_key_fingerprint: FP.into(),
                        },
                        ENCRYPTED_KEY_FP.to_string(),
                    ))
                },
            );
            mocks
        };
    let orch = world.build(agent(seen.clone()));
    let added = orch
        .server_add(AddServer {
            private_key: None,
            ssh_agent: true,
            ..add("db-1", "198.51.100.7", Some(HostKeyTrust::AcceptNew))
        })
        .await
        .unwrap();
    assert_eq!(
        added.record.ssh_agent_key.as_deref(),
        Some(ENCRYPTED_KEY_FP)
    );
    assert_eq!(world.secret_names(), names_before, "no key in the vault");
    verify(orch);
    // A later process asks the agent for that key only.
    let later = world.build(agent(seen.clone()));
    later
        .server_exec("db-1", &["true".into()], CancellationToken::new())
        .await
        .unwrap();
    verify(later);
    let socket = std::path::PathBuf::from("/run/user/1000/agent.sock");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (socket.clone(), None),
            (socket, Some(ENCRYPTED_KEY_FP.to_string()))
        ]
    );
}

#[tokio::test]
async fn server_add_refuses_a_dns_name_and_accepts_a_hyphenated_user_with_a_note() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    connects_once(&mut mocks, HostKeyPolicy::TrustOnFirstUse, NEW_FP);
    let orch = world.build(mocks);
    let err = orch
        .server_add(add("db-1", "db.example.com", Some(HostKeyTrust::AcceptNew)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Invalid { field, reason } if field == "host" && reason.contains("IP address")),
        "{err:?}"
    );
    // Issue #13: the state accepts `deploy-user`, so `add` does; the same host as web-1 and
    // a user that cannot run setup are both said.
    let added = orch
        .server_add(AddServer {
            user: "deploy-user".into(),
            ..add("db-1", IP, Some(HostKeyTrust::AcceptNew))
        })
        .await
        .unwrap();
    assert_eq!(world.state().servers["db-1"].ssh_user, "deploy-user");
    let notes = added.notes.join("\n");
    assert!(notes.contains("web-1 already points at"), "{notes}");
    assert!(notes.contains("needs root"), "{notes}");
    verify(orch);
}

#[tokio::test]
async fn server_setup_of_a_server_added_with_a_non_root_user_is_refused_with_the_reason_and_so_is_its_plan()
 {
    use livchat_core::ops::{JobOperation, Operation, ServerSetup};
    // Issue #13: setup's steps (apt, Docker, ufw) run as the SSH user without sudo, so a
    // server added with another user is refused, saying why and what to do, before any job
    // exists or anything connects (the connector expects the add's connection only).
    let world = World::new();
    let mut mocks = Mocks::default();
    connects_once(&mut mocks, HostKeyPolicy::TrustOnFirstUse, NEW_FP);
    let orch = world.build(mocks);
    orch.server_add(AddServer {
        user: "deploy-user".into(),
        ..add("db-1", IP, Some(HostKeyTrust::AcceptNew))
    })
    .await
    .unwrap();
    let before = world.state();
    let setup = ServerSetup {
        server: "db-1".into(),
        zone: ZONE.into(),
        subdomain: None,
        dns: Default::default(),
    };
    let planned = setup.plan(&orch).unwrap_err();
    let started = setup.run(&orch).await.unwrap_err();
    for err in [planned, started] {
        assert!(
            matches!(&err, CoreError::Refused(m) if m.contains("server db-1 is reached as deploy-user")
                && m.contains("setup needs root")
                && m.contains("--user root")),
            "{err:?}"
        );
    }
    assert!(
        orch.jobs().list(None).unwrap().is_empty(),
        "no job was made"
    );
    assert_eq!(world.state(), before, "the state is unchanged");
    verify(orch);
}
