//! The dry runs of setup, undeploy and delete: what they list, their refusals, and that they
//! touch nothing (every mock has no expectation, so any call would panic; the state is compared
//! before and after).

use livchat_core::{CoreError, SetupServerParams};
use livchat_store::ServerStatus;

use super::support::*;

#[tokio::test]
async fn plan_setup_server_lists_the_a_record_and_every_setup_step_and_touches_nothing() {
    let world = World::new();
    world.put_server(hetzner_server("web-1", ServerStatus::Running, None));
    let before = world.state();
    let orch = world.build(Mocks::default());
    let plan = orch
        .plan_setup_server(&SetupServerParams {
            dns: Default::default(),
            name: "web-1".into(),
            zone: ZONE.into(),
            subdomain: Some("lab".into()),
        })
        .unwrap();
    assert_eq!(
        plan.dns_records,
        [format!("A web-1.lab.{ZONE} -> {IP}")],
        "{plan:?}"
    );
    assert_eq!(plan.steps.first().map(String::as_str), Some("connect"));
    assert_eq!(plan.steps.last().map(String::as_str), Some("finalize"));
    for step in [
        "setup:docker_packages",
        "setup:swarm_init",
        "setup:firewall",
    ] {
        assert!(plan.steps.iter().any(|s| s == step), "{step} in {plan:?}");
    }
    assert_eq!(plan.resources.len(), plan.steps.len() - 3);
    assert_eq!(world.state().servers, before.servers);
    assert!(world.jobs().is_empty());
    verify(orch);
}

#[tokio::test]
async fn plan_setup_server_refuses_a_bad_zone_naming_the_field() {
    let world = World::new();
    world.put_server(hetzner_server("web-1", ServerStatus::Running, None));
    let orch = world.build(Mocks::default());
    let err = orch
        .plan_setup_server(&SetupServerParams {
            dns: Default::default(),
            name: "web-1".into(),
            zone: "bad zone;rm".into(),
            subdomain: None,
        })
        .unwrap_err();
    assert!(matches!(&err, CoreError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("zone"), "{err}");
    verify(orch);
}

#[tokio::test]
async fn plan_undeploy_app_lists_the_stack_and_records_and_keeps_the_refusals_of_the_job() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &[]);
    world.put_deployment("web-1", "postgres", &[]);
    world.put_deployment("web-1", "redis", &[]);
    world.put_deployment("web-1", "n8n", &["rec-n8n"]);
    let before = world.state();
    let orch = world.build(Mocks::default());
    let plan = orch.plan_undeploy_app("web-1", "n8n", false).unwrap();
    assert!(plan.resources[0].contains("remove stack n8n"), "{plan:?}");
    assert!(plan.resources[0].contains("data kept: volumes, database, vault secrets"));
    // postgres is used by n8n: refused, as the job would be, unless forced.
    let err = orch
        .plan_undeploy_app("web-1", "postgres", false)
        .unwrap_err();
    assert!(matches!(err, CoreError::Refused(_)), "{err:?}");
    assert!(orch.plan_undeploy_app("web-1", "postgres", true).is_ok());
    let err = orch
        .plan_undeploy_app("web-1", "chatwoot", false)
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    assert_eq!(world.state().deployments, before.deployments);
    assert!(world.jobs().is_empty());
    verify(orch);
}

#[tokio::test]
async fn plan_delete_server_lists_the_provider_server_its_apps_and_records_and_touches_nothing() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &[]);
    let before = world.state();
    let orch = world.build(Mocks::default());
    let err = orch.plan_delete_server("web-1", false).unwrap_err();
    assert!(matches!(err, CoreError::Refused(_)), "{err:?}");
    let plan = orch.plan_delete_server("web-1", true).unwrap();
    assert!(
        plan.resources
            .iter()
            .any(|r| r.contains("delete provider server web-1")),
        "{plan:?}"
    );
    assert!(
        plan.resources
            .iter()
            .any(|r| r.contains("app infrastructure"))
    );
    assert!(
        plan.dns_records
            .iter()
            .any(|r| r == &format!("remove A web-1.lab.{ZONE} -> {IP}")),
        "{plan:?}"
    );
    assert_eq!(world.state().servers, before.servers);
    assert_eq!(world.state().deployments, before.deployments);
    assert!(world.jobs().is_empty());
    verify(orch);
}

#[tokio::test]
async fn plan_deploy_app_says_how_the_first_admin_is_made_and_warns_about_an_open_setup_page() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &["rec-portainer"]);
    world.put_deployment("web-1", "postgres", &[]);
    world.put_deployment("web-1", "redis", &[]);
    let orch = world.build(Mocks::default());
    let claimed = orch.plan_deploy_app("web-1", "n8n", &[]).unwrap();
    let claimed = claimed.resources.join("\n");
    assert!(
        claimed.contains("claimed by the deploy before any public route opens")
            && claimed.contains("app.n8n.owner_password"),
        "{claimed}"
    );
    assert!(!claimed.contains("WARNING"), "{claimed}");
    verify(orch);
    // No built-in leaves its setup page open (#19); a user definition may, and is warned about.
    let user = livchat_apps::Catalog::from_sources(&[(
        r#"name: crm
title: "Some CRM"
version: "1"
category: business
description: "A CRM whose first visitor signs up as its owner."
dns_prefix: crm
requirements:
  min_ram_mb: 256
  min_cpu_cores: 1
images:
  crm: "busybox:1.36.1"
template:
  file: crm.yml.tera
first_run:
  admin: open_setup_page
  note: "Open https://<its name>/ right after the deploy and sign up first."
"#,
        "services:\n  crm:\n    image: {{ images.crm }}\n",
        "crm.yaml",
    )])
    .unwrap();
    let orch = world.build_with_catalog(Mocks::default(), user);
    let open = orch.plan_deploy_app("web-1", "crm", &[]).unwrap();
    let warning = open
        .resources
        .iter()
        .find(|r| r.starts_with("WARNING"))
        .unwrap_or_else(|| panic!("no warning in {:?}", open.resources));
    assert!(
        warning.contains("setup page is open") && warning.contains("sign up first"),
        "{warning}"
    );
    assert!(world.jobs().is_empty());
    verify(orch);
}
