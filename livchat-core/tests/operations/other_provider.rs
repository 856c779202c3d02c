//! A cloud provider the core does not name: registered with its own token, its own advice for
//! a rejected token and no firewalls, it creates and deletes servers through the same flows.
//! The state knows one cloud kind, so the entry takes that kind's place in the registry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use livchat_core::{
    CoreError, CreateServerParams, Orchestrator, OrchestratorBuilder, ProviderEntry,
};
use livchat_providers::{CloudError, MockProvider, Provider, ProviderProfile, ServerId, SshKey};
use livchat_remote::{Connected, HostKeyPolicy, RemoteExecutor};
use livchat_store::{JobStatus, MemoryJobLogs, ProviderKind};
use secrecy::{ExposeSecret, SecretString};

use super::support::*;

const ACME_TOKEN: &str = "acme_token";
const ACME_HINT: &str = "Acme Cloud needs a token with servers:write";

/// The Acme provider around `provider`, recording the tokens its clients are built with.
fn acme(provider: MockProvider, tokens: Arc<Mutex<Vec<String>>>) -> ProviderEntry {
    let provider: Arc<dyn Provider> = Arc::new(provider);
    ProviderEntry {
        kind: ProviderKind::Hetzner,
        profile: ProviderProfile {
            token_secret: ACME_TOKEN,
            token_hint: ACME_HINT,
            firewalls: false,
        },
        factory: Arc::new(move |token: SecretString| {
            tokens
                .lock()
                .unwrap()
                .push(token.expose_secret().to_string());
            Ok(provider.clone())
        }),
    }
}

fn build(world: &World, entry: ProviderEntry, connector: MockConnector) -> Arc<Orchestrator> {
    OrchestratorBuilder::new(
        world.config.clone(),
        world.store.clone(),
        world.secrets.clone(),
        Arc::new(MemoryJobLogs::default()),
        livchat_apps::Catalog::builtin().unwrap(),
    )
    .provider(entry)
    .connector(Arc::new(connector))
    .build()
}

fn params() -> CreateServerParams {
    CreateServerParams {
        name: "web-1".into(),
        server_type: "a1".into(),
        location: "moon".into(),
        image: "debian-12".into(),
        keep_on_failure: false,
    }
}

/// An Acme account: the server exists from `create_server` until `delete_server`; SSH keys and
/// servers are made and removed, firewalls never asked for (the mock would panic).
fn acme_account() -> MockProvider {
    let exists = Arc::new(AtomicBool::new(false));
    let mut provider = MockProvider::new();
    provider
        .expect_ensure_ssh_key()
        .times(1)
        .returning(|name, public| {
            Ok(SshKey {
                id: 1,
                name: name.to_string(),
                fingerprint: "aa:bb".into(),
                public_key: public.to_string(),
            })
        });
    let found = exists.clone();
    provider.expect_find_server().times(2).returning(move |_| {
        Ok(found
            .load(Ordering::SeqCst)
            .then(|| provider_server("web-1", "77", Some(IP))))
    });
    let created = exists.clone();
    provider
        .expect_create_server()
        .withf(|spec, _| spec.server_type == "a1" && spec.location == "moon")
        .times(1)
        .returning(move |_, _| {
            created.store(true, Ordering::SeqCst);
            Ok(provider_server("web-1", "77", Some(IP)))
        });
    provider
        .expect_delete_server()
        .withf(|id, _| *id == ServerId("77".into()))
        .times(1)
        .returning(move |_, _| {
            exists.store(false, Ordering::SeqCst);
            Ok(())
        });
    provider
        .expect_delete_ssh_key()
        .withf(|name| name == "livchat-web-1")
        .times(1)
        .returning(|_| Ok(()));
    provider
}

/// First contact with the new server: its host key is trusted and pinned.
fn first_contact() -> MockConnector {
    let executor: Arc<dyn RemoteExecutor> = Arc::new(MockRemoteExecutor::new());
    let mut connector = MockConnector::new();
    connector
        .expect_connect()
        .withf(|t, _, policy| t.host == IP && *policy == HostKeyPolicy::TrustOnFirstUse)
        .times(1)
        .returning(move |_, _, _| {
            Ok(Connected {
                executor: executor.clone(),
                host_key_fingerprint: FP.into(),
            })
        });
    connector
}

#[tokio::test]
async fn a_registered_provider_creates_and_deletes_servers_with_its_own_token_and_abilities() {
    // Another provider's token in the vault is not this one's.
    let world = World::new();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let orch = build(
        &world,
        acme(acme_account(), tokens.clone()),
        first_contact(),
    );

    let err = orch.start_create_server(params()).unwrap_err();
    assert!(
        matches!(&err, CoreError::MissingCredential { name } if name == ACME_TOKEN),
        "{err:?}"
    );
    world.set_secret(ACME_TOKEN, "acme-secret");
    let plan = orch.plan_create_server(&params());
    assert!(
        !plan.resources.iter().any(|r| r.contains("firewall")),
        "{:?}",
        plan.resources
    );

    let job = orch.start_create_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let server = &world.state().servers["web-1"];
    assert_eq!(server.provider, ProviderKind::Hetzner);
    assert_eq!(server.provider_id, Some(77));
    assert_eq!(server.host_key_fingerprint.as_deref(), Some(FP));
    assert!(log_text(&orch, &job.id).contains("the provider keeps no firewalls"));

    let plan = orch.plan_delete_server("web-1", false).unwrap();
    assert!(
        plan.resources
            .contains(&"delete provider SSH key livchat-web-1".to_string()),
        "{:?}",
        plan.resources
    );
    let job = orch.start_delete_server("web-1", false).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(world.state().servers.is_empty());
    assert!(log_text(&orch, &job.id).contains("SSH key livchat-web-1 deleted at the provider"));
    // One client, built from this provider's token, served both jobs.
    assert_eq!(*tokens.lock().unwrap(), ["acme-secret"]);
    verify(orch);
}

#[tokio::test]
async fn configuring_a_registered_provider_stores_its_token_or_gives_its_advice() {
    let world = World::empty();
    let mut provider = MockProvider::new();
    let mut seq = mockall::Sequence::new();
    provider
        .expect_list_locations()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| {
            Err(CloudError::InvalidToken {
                service: livchat_providers::Service::Hetzner,
                code: "unauthorized".into(),
                message: "no".into(),
            })
        });
    provider
        .expect_list_locations()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| Ok(Vec::new()));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let orch = build(&world, acme(provider, tokens), MockConnector::new());

    let err = orch
        .configure_provider(SecretString::from("wrong".to_string()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(ACME_HINT), "{err}");
    assert!(world.secret_names().is_empty());

    let key = orch
        .configure_provider(SecretString::from("right".to_string()))
        .await
        .unwrap();
    assert_eq!(key, ACME_TOKEN);
    assert_eq!(world.secret(ACME_TOKEN).as_deref(), Some("right"));
    verify(orch);
}
