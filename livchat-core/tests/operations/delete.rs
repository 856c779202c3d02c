//! delete_server: refused while apps are deployed (unless forced); removes its DNS records,
//! the server at the provider (not a server added by hand), its state and its generated key.

use livchat_core::CoreError;
use livchat_providers::ServerId;
use livchat_store::{JobStatus, ProviderKind, ServerStatus};

use super::support::*;

const FQDN: &str = "web-1.lab.example.com";

fn deletes_dns(mocks: &mut Mocks, ids: &'static [&'static str]) {
    mocks
        .dns
        .expect_find_zone()
        .withf(|z| z == ZONE)
        .times(1)
        .returning(|_| Ok(zone()));
    mocks
        .dns
        .expect_records_named()
        .withf(|z, n| z.id == ZONE_ID && n == FQDN)
        .times(1)
        .returning(|_, n| {
            Ok(vec![
                a_record("srv-a", n, IP),
                // Someone else's record of the same name points elsewhere: not ours.
                a_record("foreign", n, "198.51.100.99"),
            ])
        });
    for id in ids {
        mocks
            .dns
            .expect_delete_record()
            .withf(move |z, r| z.id == ZONE_ID && r == *id)
            .times(1)
            .returning(|_, _| Ok(()));
    }
}

fn deletes_at_provider(mocks: &mut Mocks) {
    mocks
        .provider
        .expect_find_server()
        .withf(|n| n == "web-1")
        .times(1)
        .returning(|_| Ok(Some(provider_server("web-1", "42", Some(IP)))));
    mocks
        .provider
        .expect_delete_server()
        .withf(|id, _| *id == ServerId("42".into()))
        .times(1)
        .returning(|_, _| Ok(()));
    deletes_own_firewall_and_key(mocks);
}

/// The firewall and SSH key `server create` made go with the server, after it.
fn deletes_own_firewall_and_key(mocks: &mut Mocks) {
    mocks
        .provider
        .expect_delete_firewall()
        .withf(|n| n == "livchat-web-1")
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .provider
        .expect_delete_ssh_key()
        .withf(|n| n == "livchat-web-1")
        .times(1)
        .returning(|_| Ok(()));
}

#[tokio::test]
async fn delete_server_removes_its_dns_records_the_cloud_server_its_state_and_its_key() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_server(ready_server("web-2"));
    world.put_deployment("web-1", "infrastructure", &["rec-portainer"]);
    let mut mocks = Mocks::default();
    deletes_dns(&mut mocks, &["rec-portainer", "srv-a"]);
    mocks
        .dns
        .expect_delete_record()
        .withf(|_, r| r == "foreign")
        .never();
    deletes_at_provider(&mut mocks);
    let orch = world.build(mocks);
    let job = orch.start_delete_server("web-1", true).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let state = world.state();
    assert!(!state.servers.contains_key("web-1"));
    assert!(
        state.servers.contains_key("web-2"),
        "the other server stays"
    );
    assert!(!state.deployments.contains_key("web-1"));
    assert_eq!(world.secret("ssh.web-1.private_key"), None);
    assert!(world.secret("ssh.web-2.private_key").is_some());
    verify(orch);
}

#[tokio::test]
async fn delete_server_is_refused_while_apps_are_deployed_unless_forced() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &[]);
    world.put_deployment("web-1", "redis", &[]);
    let before = world.state();
    let orch = world.build(Mocks::default());
    let err = orch.start_delete_server("web-1", false).unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("web-1 still runs infrastructure, redis")),
        "{err:?}"
    );
    assert_eq!(world.state(), before, "no job recorded");
    assert!(orch.start_delete_server("web-1", true).is_ok());
    let err = orch.start_delete_server("ghost", true).unwrap_err();
    assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    verify(orch);
}

#[tokio::test]
async fn delete_server_added_by_hand_only_forgets_it_without_any_provider_token() {
    let world = World::empty();
    let mut manual = hetzner_server("db-1", ServerStatus::Running, None);
    manual.provider = ProviderKind::Manual;
    manual.provider_id = None;
    world.put_server(manual);
    world.set_secret("ssh.db-10.private_key", "another server's");
    // No Hetzner token, no DNS config: neither mock may be called.
    let orch = world.build(Mocks::default());
    let plan = orch.plan_delete_server("db-1", false).unwrap();
    assert!(
        plan.resources
            .contains(&"DELETE vault secret ssh.db-1.private_key".to_string()),
        "{:?}",
        plan.resources
    );
    let job = orch.start_delete_server("db-1", false).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(world.state().servers.is_empty());
    assert!(log_text(&orch, &job.id).contains("only forgotten, not destroyed"));
    // The vault's copy of the key given to `server add` goes with the server (the user's own
    // file is untouched); another server's secret stays.
    assert_eq!(world.secret("ssh.db-1.private_key"), None);
    assert!(world.secret("ssh.db-10.private_key").is_some());
    verify(orch);
}

#[tokio::test]
async fn delete_server_whose_provider_delete_fails_keeps_it_in_the_state_and_a_retry_resumes() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    // DNS is cleaned once: the retry resumes at the provider step.
    deletes_dns(&mut mocks, &["srv-a"]);
    mocks
        .provider
        .expect_find_server()
        .times(2)
        .returning(|_| Ok(Some(provider_server("web-1", "42", Some(IP)))));
    let mut seq = mockall::Sequence::new();
    mocks
        .provider
        .expect_delete_server()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(hetzner_api_error("delete server", 423, "server is locked")));
    mocks
        .provider
        .expect_delete_server()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    // Only once the server is gone.
    deletes_own_firewall_and_key(&mut mocks);
    let orch = world.build(mocks);
    let job = orch.start_delete_server("web-1", false).unwrap();
    let failed = run(&orch, &job.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("server is locked"));
    assert!(world.state().servers.contains_key("web-1"));
    assert!(world.secret("ssh.web-1.private_key").is_some());
    assert_eq!(failed.steps_remaining, ["provider", "state"]);

    orch.start_retry_job(&job.id).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(world.state().servers.is_empty());
    verify(orch);
}

#[tokio::test]
async fn start_delete_server_of_a_cloud_server_without_a_hetzner_token_names_the_credential() {
    let world = World::empty();
    world.put_server(ready_server("web-1"));
    let orch = world.build(Mocks::default());
    let err = orch.start_delete_server("web-1", false).unwrap_err();
    assert!(
        matches!(&err, CoreError::MissingCredential { name } if name == "hetzner_token"),
        "{err:?}"
    );
    assert!(world.jobs().is_empty());
    verify(orch);
}

#[tokio::test]
async fn delete_server_whose_firewall_is_still_in_use_fails_and_a_retry_finishes() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    deletes_dns(&mut mocks, &["srv-a"]);
    // The retry finds the server gone and goes on with the firewall.
    let mut found = mockall::Sequence::new();
    mocks
        .provider
        .expect_find_server()
        .times(1)
        .in_sequence(&mut found)
        .returning(|_| Ok(Some(provider_server("web-1", "42", Some(IP)))));
    mocks
        .provider
        .expect_find_server()
        .times(1)
        .in_sequence(&mut found)
        .returning(|_| Ok(None));
    mocks
        .provider
        .expect_delete_server()
        .times(1)
        .returning(|_, _| Ok(()));
    let mut fw = mockall::Sequence::new();
    mocks
        .provider
        .expect_delete_firewall()
        .times(1)
        .in_sequence(&mut fw)
        .returning(|_| {
            Err(hetzner_api_error(
                "delete firewall livchat-web-1",
                422,
                "firewall is still applied to a resource",
            ))
        });
    mocks
        .provider
        .expect_delete_firewall()
        .times(1)
        .in_sequence(&mut fw)
        .returning(|_| Ok(()));
    mocks
        .provider
        .expect_delete_ssh_key()
        .times(1)
        .returning(|_| Ok(()));
    let orch = world.build(mocks);
    let job = orch.start_delete_server("web-1", false).unwrap();
    let failed = run(&orch, &job.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("still applied"));
    assert!(
        world.state().servers.contains_key("web-1"),
        "nothing forgotten yet"
    );
    orch.start_retry_job(&job.id).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(world.state().servers.is_empty());
    verify(orch);
}
