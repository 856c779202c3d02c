//! `--dns manual`: setting up and deploying without Cloudflare. Setup prints the records to
//! create instead of calling a DNS API; a deploy first checks through the resolver that the
//! app's names point at the server and stops, naming the records, when they do not.

use std::net::Ipv4Addr;

use livchat_core::CoreError;
use livchat_core::model::DnsMode;
use livchat_store::{JobStatus, SecretStore, ServerStatus};

use super::support::*;

const N8N_HOST: &str = "n8n.lab.example.com";
const WEBHOOK_HOST: &str = "webhook-n8n.lab.example.com";

fn params(dns: DnsMode) -> livchat_core::SetupServerParams {
    livchat_core::SetupServerParams {
        name: "web-1".into(),
        zone: ZONE.into(),
        subdomain: Some("lab".into()),
        dns,
    }
}

/// A world whose vault holds no Cloudflare token.
fn world_without_cloudflare() -> World {
    let world = World::new();
    world
        .secrets
        .delete(livchat_core::CLOUDFLARE_TOKEN)
        .unwrap();
    world
}

#[tokio::test]
async fn setup_with_manual_dns_needs_no_cloudflare_token_and_logs_the_records_to_create() {
    let world = world_without_cloudflare();
    world.put_server(hetzner_server("web-1", ServerStatus::Running, None));
    let mut mocks = Mocks::default();
    let (exec, _host) = scripted_executor(|c, _| {
        Ok(if is_os_release(c) {
            output(0, DEBIAN_12, "")
        } else {
            output(0, "", "")
        })
    });
    connects_pinned(&mut mocks.connector, exec, 1);
    // `mocks.dns` has no expectation: any DNS API call would panic.
    let orch = world.build(mocks);
    let job = orch.start_setup_server(params(DnsMode::Manual)).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let dns = world.state().servers["web-1"].dns.clone().unwrap();
    assert_eq!(dns.mode, DnsMode::Manual);
    let log = log_text(&orch, &job.id);
    assert!(
        log.contains(&format!("A web-1.lab.example.com -> {IP}"))
            && log.contains(&format!("A <app>.lab.example.com -> {IP}")),
        "{log}"
    );
    verify(orch);
}

#[tokio::test]
async fn setup_plan_without_a_cloudflare_token_names_the_missing_credential() {
    let world = world_without_cloudflare();
    world.put_server(hetzner_server("web-1", ServerStatus::Running, None));
    let orch = world.build(Mocks::default());
    let plan = orch
        .plan_setup_server(&params(DnsMode::Cloudflare))
        .unwrap();
    assert!(
        plan.resources[0].contains("MISSING credential cloudflare_api_token")
            && plan.resources[0].contains("--dns manual"),
        "{:?}",
        plan.resources
    );
    let err = orch
        .start_setup_server(params(DnsMode::Cloudflare))
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::MissingCredential { name } if name == "cloudflare_api_token"),
        "{err:?}"
    );
    let plan = orch.plan_setup_server(&params(DnsMode::Manual)).unwrap();
    assert!(
        !plan.resources.iter().any(|r| r.contains("MISSING")),
        "{:?}",
        plan.resources
    );
    assert!(
        plan.dns_records[0].contains("create it yourself"),
        "{:?}",
        plan.dns_records
    );
    verify(orch);
}

/// web-1, set up with manual DNS, with n8n's dependencies running.
fn manual_world() -> World {
    let world = world_without_cloudflare();
    let mut server = ready_server("web-1");
    if let Some(d) = server.dns.as_mut() {
        d.mode = DnsMode::Manual;
    }
    world.put_server(server);
    world.put_deployment("web-1", "infrastructure", &[]);
    world.put_deployment("web-1", "postgres", &[]);
    world.put_deployment("web-1", "redis", &[]);
    world
}

#[tokio::test]
async fn deploy_with_manual_dns_stops_before_deploying_and_names_the_records_that_do_not_resolve() {
    let world = manual_world();
    let mut mocks = Mocks::default();
    mocks
        .resolver
        .expect_resolve_a()
        .times(2)
        .returning(|name| {
            Ok(match name {
                N8N_HOST => vec![Ipv4Addr::new(198, 51, 100, 1)],
                _ => Vec::new(),
            })
        });
    // No platform and no DNS API expectation: nothing may be deployed or created. The
    // clean-up after the failure may try to reach the server, which refuses here.
    mocks
        .connector
        .expect_connect()
        .returning(|t, _, _| Err(connect_refused(&t.name)));
    let orch = world.build(mocks);
    let plan = orch.plan_deploy_app("web-1", "n8n", &[]).unwrap();
    assert!(
        plan.dns_records
            .iter()
            .all(|r| r.contains("create it yourself")),
        "{:?}",
        plan.dns_records
    );
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains(&format!(
            "A {N8N_HOST} -> {IP} (resolves to 198.51.100.1 now)"
        )) && error.contains(&format!("A {WEBHOOK_HOST} -> {IP} (does not resolve yet)")),
        "{error}"
    );
    assert_eq!(
        world.deployed_apps("web-1"),
        ["infrastructure", "postgres", "redis"]
    );
    verify(orch);
}

#[tokio::test]
async fn deploy_with_manual_dns_passes_the_check_when_every_name_resolves_to_the_server() {
    let world = manual_world();
    let mut mocks = Mocks::default();
    mocks
        .resolver
        .expect_resolve_a()
        .times(2)
        .returning(|_| Ok(vec![IP.parse().unwrap()]));
    // The check passes; the next step needs the server, which refuses the connection here.
    mocks
        .connector
        .expect_connect()
        .returning(|t, _, _| Err(connect_refused(&t.name)));
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(
        done.error
            .as_deref()
            .unwrap_or_default()
            .contains("connection refused"),
        "{:?}",
        done.error
    );
    let log = log_text(&orch, &job.id);
    assert!(
        log.contains(&format!("DNS A {N8N_HOST} -> {IP} resolves")),
        "{log}"
    );
    verify(orch);
}
