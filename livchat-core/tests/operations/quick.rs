//! Operations that return at once: credentials, provider info, DNS listing, adding a server,
//! re-pinning, exec, listings, secrets, settings, app render, deployed apps.

use std::sync::{Arc, Mutex};

use livchat_core::{CoreError, OrchestratorBuilder, ProviderInfo, ProviderInfoKind};
use livchat_providers::{CloudError, Location, MockProvider, Provider};
use livchat_remote::{Connected, RemoteError};
use livchat_store::{MemoryJobLogs, ServerStatus};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use super::support::*;

fn location(name: &str) -> Location {
    Location {
        name: name.into(),
        description: format!("{name} DC"),
        city: "Falkenstein".into(),
        country: "DE".into(),
        network_zone: "eu-central".into(),
    }
}

fn invalid_token() -> CloudError {
    CloudError::InvalidToken {
        service: livchat_providers::Service::Hetzner,
        code: "unauthorized".into(),
        message: "unable to authenticate".into(),
    }
}

/// An orchestrator whose provider factory records the tokens it is given.
fn with_recording_factory(
    world: &World,
    provider: MockProvider,
) -> (Arc<livchat_core::Orchestrator>, Arc<Mutex<Vec<String>>>) {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = tokens.clone();
    let provider: Arc<dyn Provider> = Arc::new(provider);
    let orch = OrchestratorBuilder::new(
        world.config.clone(),
        world.store.clone(),
        world.secrets.clone(),
        Arc::new(MemoryJobLogs::default()),
        livchat_apps::Catalog::builtin().unwrap(),
    )
    .provider_factory(Arc::new(move |token: SecretString| {
        seen.lock().unwrap().push(token.expose_secret().to_string());
        Ok(provider.clone())
    }))
    .build();
    (orch, tokens)
}

// ----- configure_provider --------------------------------------------------------------------

#[tokio::test]
async fn configure_provider_checks_the_token_against_the_api_then_stores_it_and_reuses_the_client()
{
    let world = World::empty();
    let mut provider = MockProvider::new();
    // Once to check the token, once for `provider info`: both on the one client built.
    provider
        .expect_list_locations()
        .times(2)
        .returning(|| Ok(vec![location("fsn1")]));
    let (orch, tokens) = with_recording_factory(&world, provider);

    orch.configure_provider(SecretString::from("new-token".to_string()))
        .await
        .unwrap();
    assert_eq!(
        world.secret(livchat_core::HETZNER_TOKEN).as_deref(),
        Some("new-token")
    );
    let ProviderInfo::Locations(l) = orch
        .provider_info(ProviderInfoKind::Locations)
        .await
        .unwrap()
    else {
        panic!("locations expected");
    };
    assert_eq!(l[0].name, "fsn1");
    assert_eq!(*tokens.lock().unwrap(), vec!["new-token".to_string()]);
    verify(orch);
}

#[tokio::test]
async fn configure_provider_with_a_rejected_token_stores_nothing_and_says_why() {
    let world = World::empty();
    let mut provider = MockProvider::new();
    provider
        .expect_list_locations()
        .times(1)
        .returning(|| Err(invalid_token()));
    let (orch, _) = with_recording_factory(&world, provider);
    let err = orch
        .configure_provider(SecretString::from("wrong".to_string()))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Provider(_)), "{err:?}");
    // Nothing was stored yet, so the error must not point at a stored token.
    let text = err.to_string();
    assert!(text.contains("rejected the token given"), "{text}");
    assert!(text.contains("nothing was stored"), "{text}");
    assert!(!text.contains("stored in the vault"), "{text}");
    assert!(world.secret_names().is_empty(), "nothing stored");
    verify(orch);
}

// ----- configure_cloudflare ------------------------------------------------------------------

#[tokio::test]
async fn configure_cloudflare_checks_the_token_sees_the_zone_then_stores_it() {
    let world = World::empty();
    let mut mocks = Mocks::default();
    mocks
        .dns
        .expect_find_zone()
        .withf(|z| z == ZONE)
        .times(1)
        .returning(|_| Ok(zone()));
    let orch = world.build(mocks);
    orch.configure_cloudflare(SecretString::from("cf".to_string()), ZONE)
        .await
        .unwrap();
    assert_eq!(
        world.secret(livchat_core::CLOUDFLARE_TOKEN).as_deref(),
        Some("cf")
    );
    verify(orch);
}

#[tokio::test]
async fn configure_cloudflare_with_a_token_that_cannot_see_the_zone_stores_nothing() {
    let world = World::empty();
    let mut mocks = Mocks::default();
    mocks
        .dns
        .expect_find_zone()
        .times(1)
        .returning(|z| Err(zone_not_found(z)));
    let orch = world.build(mocks);
    let err = orch
        .configure_cloudflare(SecretString::from("cf".to_string()), "other.org")
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Dns(_)), "{err:?}");
    assert!(err.to_string().contains("\"other.org\" not found"), "{err}");
    assert!(world.secret_names().is_empty());
    verify(orch);
}

// ----- provider_info -------------------------------------------------------------------------

#[tokio::test]
async fn provider_info_asks_the_provider_for_exactly_the_listing_requested() {
    let world = World::new();
    let mut mocks = Mocks::default();
    mocks
        .provider
        .expect_list_server_types()
        .times(1)
        .returning(|| Ok(Vec::new()));
    mocks
        .provider
        .expect_list_images()
        .times(1)
        .returning(|| Ok(Vec::new()));
    mocks
        .provider
        .expect_list_locations()
        .times(1)
        .returning(|| Ok(vec![location("nbg1"), location("hel1")]));
    let orch = world.build(mocks);
    assert!(matches!(
        orch.provider_info(ProviderInfoKind::ServerTypes)
            .await
            .unwrap(),
        ProviderInfo::ServerTypes(v) if v.is_empty()
    ));
    assert!(matches!(
        orch.provider_info(ProviderInfoKind::Images).await.unwrap(),
        ProviderInfo::Images(v) if v.is_empty()
    ));
    assert!(matches!(
        orch.provider_info(ProviderInfoKind::Locations).await.unwrap(),
        ProviderInfo::Locations(v) if v.len() == 2
    ));
    verify(orch);
}

#[tokio::test]
async fn provider_info_reports_the_provider_error() {
    let world = World::new();
    let mut mocks = Mocks::default();
    mocks
        .provider
        .expect_list_images()
        .times(1)
        .returning(|| Err(invalid_token()));
    let orch = world.build(mocks);
    let err = orch
        .provider_info(ProviderInfoKind::Images)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Provider(_)), "{err:?}");
    assert!(err.to_string().contains("Hetzner Cloud rejected"), "{err}");
    verify(orch);
}

#[tokio::test]
async fn provider_info_without_a_hetzner_token_names_the_missing_credential_and_calls_nothing() {
    let world = World::empty();
    let orch = world.build(Mocks::default());
    let err = orch
        .provider_info(ProviderInfoKind::Locations)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::MissingCredential { name } if name == "hetzner_token"),
        "{err:?}"
    );
    verify(orch);
}

// ----- dns_list ------------------------------------------------------------------------------

#[tokio::test]
async fn dns_list_finds_the_zone_then_lists_its_records() {
    let world = World::new();
    let mut mocks = Mocks::default();
    mocks
        .dns
        .expect_find_zone()
        .withf(|z| z == ZONE)
        .times(1)
        .returning(|_| Ok(zone()));
    mocks
        .dns
        .expect_list_records()
        .withf(|z| z.id == ZONE_ID)
        .times(1)
        .returning(|_| Ok(vec![a_record("r1", "web-1.example.com", IP)]));
    let orch = world.build(mocks);
    let records = orch.dns_list(ZONE).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "web-1.example.com");
    verify(orch);
}

#[tokio::test]
async fn dns_list_of_an_unknown_zone_names_the_zone_and_lists_nothing() {
    let world = World::new();
    let mut mocks = Mocks::default();
    mocks
        .dns
        .expect_find_zone()
        .times(1)
        .returning(|z| Err(zone_not_found(z)));
    let orch = world.build(mocks);
    let err = orch.dns_list("nope.org").await.unwrap_err();
    assert!(matches!(err, CoreError::Dns(_)), "{err:?}");
    assert!(err.to_string().contains("nope.org"), "{err}");
    verify(orch);
}

#[tokio::test]
async fn dns_list_without_a_cloudflare_token_names_the_missing_credential() {
    let world = World::empty();
    let orch = world.build(Mocks::default());
    let err = orch.dns_list(ZONE).await.unwrap_err();
    assert!(
        matches!(&err, CoreError::MissingCredential { name } if name == "cloudflare_api_token"),
        "{err:?}"
    );
    verify(orch);
}

// ----- server_exec ---------------------------------------------------------------------------

#[tokio::test]
async fn server_exec_checks_the_pinned_key_and_passes_the_argv_byte_for_byte() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    let hostile = "$(touch /tmp/pwned); `id` 'quote\" \\ ;|&".to_string();
    let expected = hostile.clone();
    let mut exec = MockRemoteExecutor::new();
    exec.expect_exec()
        .withf(move |c, _| c.program == "printf" && c.args == ["%s", expected.as_str()])
        .times(2)
        .returning(|c, _| Ok(output(0, &c.args[1], "")));
    connects_pinned(&mut mocks.connector, exec, 1);
    let orch = world.build(mocks);
    for _ in 0..2 {
        let out = orch
            .server_exec(
                "web-1",
                &["printf".into(), "%s".into(), hostile.clone()],
                CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(out.stdout, hostile.as_bytes());
    }
    verify(orch);
}

#[tokio::test]
async fn server_exec_reports_a_changed_host_key_and_a_failed_command() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_server(ready_server("web-2"));
    let mut mocks = Mocks::default();
    let mut exec = MockRemoteExecutor::new();
    exec.expect_exec().times(1).returning(|_, _| {
        Err(RemoteError::Disconnected {
            server: "web-2".into(),
            reason: "reset by peer".into(),
        })
    });
    let exec: Arc<dyn livchat_remote::RemoteExecutor> = Arc::new(exec);
    mocks
        .connector
        .expect_connect()
        .times(2)
        .returning(move |t, _, _| {
            if t.name == "web-1" {
                Err(RemoteError::HostKeyChanged {
                    server: "web-1".into(),
                    pinned: FP.into(),
                    offered: "SHA256:attacker".into(),
                })
            } else {
                Ok(Connected {
                    executor: exec.clone(),
                    host_key_fingerprint: FP.into(),
                })
            }
        });
    let orch = world.build(mocks);
    let err = orch
        .server_exec("web-1", &["true".into()], CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("host key changed for web-1"),
        "{err}"
    );
    let err = orch
        .server_exec("web-2", &["true".into()], CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("connection to web-2 lost"),
        "{err}"
    );
    verify(orch);
}

#[tokio::test]
async fn server_exec_refuses_an_empty_argv_an_unknown_server_and_an_unpinned_one_without_connecting()
 {
    let world = World::new();
    let mut unpinned = ready_server("fresh");
    unpinned.host_key_fingerprint = None;
    world.put_server(unpinned);
    let orch = world.build(Mocks::default());
    let err = orch
        .server_exec("fresh", &[], CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Invalid { field, .. } if field == "command"),
        "{err:?}"
    );
    let err = orch
        .server_exec("ghost", &["true".into()], CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    let err = orch
        .server_exec("fresh", &["true".into()], CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("no pinned host key")),
        "{err:?}"
    );
    verify(orch);
}

// ----- servers / server / deployed ------------------------------------------------------------

#[tokio::test]
async fn servers_and_server_read_the_state_and_an_unknown_name_gets_a_hint() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_server(hetzner_server("web-2", ServerStatus::Running, None));
    let orch = world.build(Mocks::default());
    let mut names: Vec<String> = orch
        .servers()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.sort();
    assert_eq!(names, ["web-1", "web-2"]);
    assert_eq!(orch.server("web-2").unwrap().status, ServerStatus::Running);
    let err = orch.server("ghost").unwrap_err().to_string();
    assert_eq!(err, "server `ghost` not found; see `livchat server list`");
    verify(orch);
}

#[tokio::test]
async fn deployed_lists_the_apps_of_a_server_and_refuses_an_unknown_server() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_server(ready_server("web-2"));
    world.put_deployment("web-1", "infrastructure", &["r1"]);
    world.put_deployment("web-1", "redis", &[]);
    let orch = world.build(Mocks::default());
    let mut apps: Vec<String> = orch
        .deployed("web-1")
        .unwrap()
        .into_iter()
        .map(|d| d.app)
        .collect();
    apps.sort();
    assert_eq!(apps, ["infrastructure", "redis"]);
    assert!(orch.deployed("web-2").unwrap().is_empty());
    assert!(matches!(
        orch.deployed("ghost").unwrap_err(),
        CoreError::NotFound { .. }
    ));
    verify(orch);
}

// ----- secrets and settings ------------------------------------------------------------------

#[tokio::test]
async fn secrets_round_trip_through_the_vault_and_bad_requests_are_refused() {
    let world = World::empty();
    let orch = world.build(Mocks::default());
    orch.secret_set("smtp_password", SecretString::from("s3cret".to_string()))
        .unwrap();
    assert_eq!(
        orch.secret_get("smtp_password").unwrap().expose_secret(),
        "s3cret"
    );
    assert_eq!(orch.secret_names().unwrap(), ["smtp_password"]);
    let err = orch
        .secret_set("empty", SecretString::from(String::new()))
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Invalid { field, .. } if field == "value"),
        "{err:?}"
    );
    let err = orch
        .secret_set("bad name;", SecretString::from("x".to_string()))
        .unwrap_err();
    assert!(err.to_string().contains("secret name"), "{err}");
    orch.secret_delete("smtp_password").unwrap();
    assert!(matches!(
        orch.secret_get("smtp_password").unwrap_err(),
        CoreError::NotFound { kind: "secret", .. }
    ));
    assert!(matches!(
        orch.secret_delete("smtp_password").unwrap_err(),
        CoreError::NotFound { kind: "secret", .. }
    ));
    assert!(world.secret_names().is_empty());
    verify(orch);
}

#[tokio::test]
async fn settings_round_trip_through_the_state_and_an_unknown_key_lists_the_allowed_ones() {
    let world = World::empty();
    let orch = world.build(Mocks::default());
    orch.setting_set("company_name", "ACME Ltda").unwrap();
    assert_eq!(
        orch.setting_get("company_name").unwrap().as_deref(),
        Some("ACME Ltda")
    );
    assert_eq!(orch.setting_get("email").unwrap(), None);
    let all = orch.settings().unwrap();
    assert!(
        all.iter()
            .any(|(k, v, _)| k == "company_name" && v.as_deref() == Some("ACME Ltda"))
    );
    assert!(all.iter().any(|(k, v, _)| k == "email" && v.is_none()));
    let before = livchat_store::Store::settings(&*world.store).unwrap();
    let err = orch.setting_set("colour", "blue").unwrap_err().to_string();
    assert!(
        err.contains("unknown setting `colour`; allowed keys:"),
        "{err}"
    );
    assert!(err.contains("email"), "{err}");
    assert!(orch.setting_get("colour").is_err());
    assert_eq!(
        livchat_store::Store::settings(&*world.store).unwrap(),
        before
    );
    verify(orch);
}

// ----- app_render ----------------------------------------------------------------------------

#[tokio::test]
async fn app_render_returns_every_stack_in_install_order_and_touches_nothing() {
    let world = World::new();
    let before = world.state();
    let secrets_before = world.secret_names();
    let orch = world.build(Mocks::default());
    let stacks = orch
        .app_render("n8n", ZONE, Some("lab"), &["worker_replicas=2".into()])
        .unwrap();
    let apps: Vec<&str> = stacks.iter().map(|s| s.app.as_str()).collect();
    // n8n's Redis is inside n8n's stack, not a stack of its own.
    assert_eq!(apps, ["infrastructure", "postgres", "n8n"]);
    assert!(stacks[2].compose.contains("n8n_redis"));
    assert_eq!(world.state().serial, before.serial, "state untouched");
    assert_eq!(world.secret_names(), secrets_before, "no secret stored");
    verify(orch);
}

#[tokio::test]
async fn app_render_with_bad_input_names_what_is_wrong() {
    let world = World::new();
    let orch = world.build(Mocks::default());
    let err = orch.app_render("n9n", ZONE, None, &[]).unwrap_err();
    assert!(err.to_string().contains("unknown app `n9n`"), "{err}");
    let err = orch
        .app_render("n8n", "example.com;rm", None, &[])
        .unwrap_err();
    assert!(err.to_string().contains("zone"), "{err}");
    let err = orch.app_render("n8n", ZONE, Some("-lab"), &[]).unwrap_err();
    assert!(err.to_string().contains("subdomain"), "{err}");
    let err = orch
        .app_render("n8n", ZONE, None, &["worker_replicas=99".into()])
        .unwrap_err();
    assert!(err.to_string().contains("worker_replicas"), "{err}");
    let err = orch
        .app_render("n8n", ZONE, None, &["no-equals-sign".into()])
        .unwrap_err();
    assert!(err.to_string().contains("no-equals-sign"), "{err}");
    verify(orch);
}

// ----- update_server_dns ---------------------------------------------------------------------

#[tokio::test]
async fn update_server_dns_points_the_a_record_and_records_the_new_config() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    mocks
        .dns
        .expect_find_zone()
        .withf(|z| z == "example.org")
        .times(1)
        .returning(|_| Ok(zone()));
    mocks
        .dns
        .expect_ensure_a_record()
        .withf(|z, name, ip, _| {
            z.id == ZONE_ID && name == "web-1.prod.example.org" && ip.to_string() == IP
        })
        .times(1)
        .returning(|_, name, ip, _| {
            Ok(livchat_providers::Ensured {
                record: a_record("r9", name, &ip.to_string()),
                change: livchat_providers::Change::Created,
            })
        });
    let orch = world.build(mocks);
    let fqdn = orch
        .update_server_dns("web-1", "example.org", Some("prod"))
        .await
        .unwrap();
    assert_eq!(fqdn, "web-1.prod.example.org");
    let dns = world.state().servers["web-1"].dns.clone().unwrap();
    assert_eq!(dns.zone_name, "example.org");
    assert_eq!(dns.subdomain.as_deref(), Some("prod"));
    verify(orch);
}

#[tokio::test]
async fn update_server_dns_that_fails_at_cloudflare_keeps_the_old_config() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut mocks = Mocks::default();
    mocks
        .dns
        .expect_find_zone()
        .times(1)
        .returning(|_| Ok(zone()));
    mocks
        .dns
        .expect_ensure_a_record()
        .times(1)
        .returning(|_, _, _, _| Err(cloudflare_api_error("create DNS record", "quota reached")));
    let orch = world.build(mocks);
    let err = orch
        .update_server_dns("web-1", "example.org", None)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Dns(_)), "{err:?}");
    assert!(err.to_string().contains("quota reached"), "{err}");
    let dns = world.state().servers["web-1"].dns.clone().unwrap();
    assert_eq!(dns.zone_name, ZONE);
    assert_eq!(dns.subdomain.as_deref(), Some("lab"));
    verify(orch);
}

#[tokio::test]
async fn update_server_dns_with_a_bad_zone_or_a_hostname_host_calls_nothing() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    let mut by_name = ready_server("web-2");
    by_name.host = "web-2.internal".into();
    world.put_server(by_name);
    let before = world.state();
    let orch = world.build(Mocks::default());
    let err = orch
        .update_server_dns("web-1", "exa mple.com", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("zone"), "{err}");
    let err = orch
        .update_server_dns("web-2", "example.org", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Invalid { field, .. } if field == "host"),
        "{err:?}"
    );
    let err = orch
        .update_server_dns("ghost", "example.org", None)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    assert_eq!(world.state().servers, before.servers);
    verify(orch);
}
