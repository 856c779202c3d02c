//! deploy_app: start (server set up first, dependencies resolved and fixed in the job), plan,
//! and the job per app (secrets, DNS, deploy, health, record); a failure removes the stack and
//! the DNS records this job created and records nothing.

use std::sync::{Arc, Mutex};

use livchat_core::CoreError;
use livchat_providers::{Change, Ensured};
use livchat_remote::platform::MockContainerPlatform;
use livchat_store::{DeploymentStatus, JobStatus, ServerStatus, Store};
use secrecy::ExposeSecret;

use super::support::*;

mod claim_retry;
mod gitea_claim;

const N8N_HOST: &str = "n8n.lab.example.com";
const WEBHOOK_HOST: &str = "webhook-n8n.lab.example.com";
/// A known value for the n8n database password, to follow it through the flow.
const DB_PASSWORD: &str = "n8n-db-password-SENTINEL-0123456789";

/// web-1, set up, with the infrastructure bundle and the databases n8n needs running.
fn world_with_databases() -> World {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &["rec-portainer"]);
    world.put_deployment("web-1", "postgres", &[]);
    world.put_deployment("web-1", "redis", &[]);
    world.set_secret("app.n8n.db_password", DB_PASSWORD);
    world
}

fn steps_of(apps: &[&str]) -> Vec<String> {
    apps.iter()
        .flat_map(|a| ["secrets", "dns", "deploy", "health", "record"].map(|s| format!("{a}:{s}")))
        .collect()
}

/// Cloudflare creates (or finds unchanged) the records named in `records`: (name, id, change).
fn dns_records(mocks: &mut Mocks, records: &'static [(&'static str, &'static str, Change)]) {
    mocks
        .dns
        .expect_find_zone()
        .withf(|z| z == ZONE)
        .times(1..)
        .returning(|_| Ok(zone()));
    // No record of these names exists beforehand (livchat's or anyone's).
    mocks
        .dns
        .expect_records_named()
        .returning(|_, _| Ok(Vec::new()));
    for (name, id, change) in records {
        mocks
            .dns
            .expect_ensure_a_record()
            .withf(move |z, n, ip, _| z.id == ZONE_ID && n == *name && ip.to_string() == IP)
            .times(1)
            .returning(move |_, n, ip, _| {
                Ok(Ensured {
                    record: a_record(id, n, &ip.to_string()),
                    change: *change,
                })
            });
    }
}

/// The database for n8n is created in the postgres stack: argv without the password, the
/// password on stdin.
fn creates_database(platform: &mut MockContainerPlatform, exit_status: u32, stderr: &'static str) {
    platform
        .expect_exec_in_service()
        .withf(|e| {
            e.stack == "postgres"
                && e.service == "postgres"
                && e.argv.iter().all(|a| !a.contains(DB_PASSWORD))
                && e.stdin.as_ref().is_some_and(|s| {
                    String::from_utf8_lossy(s.expose_secret()).contains(DB_PASSWORD)
                })
        })
        .times(1)
        .returning(move |_| Ok(output(exit_status, "", stderr)));
}

/// The stack is deployed once; returns what was deployed.
fn deploys_stack(
    platform: &mut MockContainerPlatform,
    name: &'static str,
) -> Arc<Mutex<Vec<Deployed>>> {
    deploys_stack_times(platform, name, 1)
}

/// The stack is deployed `times` times (an app with a first-run page: routes closed, then
/// open); returns what was deployed, in order.
fn deploys_stack_times(
    platform: &mut MockContainerPlatform,
    name: &'static str,
    times: usize,
) -> Arc<Mutex<Vec<Deployed>>> {
    let deployed = Arc::new(Mutex::new(Vec::new()));
    let seen = deployed.clone();
    platform
        .expect_ensure_network()
        .withf(|n| n.name == livchat_apps::DEFAULT_NETWORK)
        .times(1)
        .returning(|_| Ok(()));
    platform
        .expect_deploy_stack()
        .withf(move |s| s.name == name)
        .times(times)
        .returning(move |s| {
            seen.lock().unwrap().push(Deployed {
                compose_yaml: s.compose_yaml.clone(),
                secret_values: s
                    .secrets
                    .iter()
                    .map(|x| x.value.expose_secret().to_string())
                    .collect(),
            });
            Ok(())
        });
    deployed
}

fn connects(mocks: &mut Mocks) {
    connects_pinned(&mut mocks.connector, MockRemoteExecutor::new(), 1);
}

#[tokio::test]
async fn deploy_app_deploys_a_database_app_generates_its_secret_and_records_it() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &[]);
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    let deployed = deploys_stack(&mut mocks.platform, "redis");
    // Once: the definition's post-deploy `wait_healthy` is the health step's wait.
    mocks
        .platform
        .expect_wait_healthy()
        .withf(|name, _| name == "redis")
        .times(1)
        .returning(|name, _| Ok(healthy(name)));
    let orch = world.build(mocks);

    let job = orch.start_deploy_app("web-1", "redis", &[]).unwrap();
    assert_eq!(job.steps_remaining, steps_of(&["redis"]));
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);

    let password = world.secret("app.redis.password").expect("generated");
    let spec = deployed.lock().unwrap().pop().unwrap();
    assert!(spec.compose_yaml.contains("redis:7.4.5"));
    assert!(
        spec.secret_values.contains(&password),
        "the password reaches the stack as a Docker secret"
    );
    assert!(!spec.compose_yaml.contains(&password));
    assert!(!log_text(&orch, &job.id).contains(&password));
    let record = &world.state().deployments["web-1"]["redis"];
    assert_eq!(record.status, DeploymentStatus::Running);
    assert_eq!(record.stack_name, "redis");
    assert!(record.dns_record_ids.is_empty());
    verify(orch);
}

#[tokio::test]
async fn deploy_app_creates_dns_records_and_a_least_privilege_database_then_deploys_and_records() {
    let world = world_with_databases();
    world.set_secret("app.n8n.owner_password", OWNER_PASSWORD);
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    dns_records(
        &mut mocks,
        &[
            (N8N_HOST, "rec-n8n", Change::Created),
            (WEBHOOK_HOST, "rec-webhook", Change::Created),
        ],
    );
    creates_database(&mut mocks.platform, 0, "");
    let deployed = deploys_stack_times(&mut mocks.platform, "n8n", 2);
    let claimed_after = claims_owner(&mut mocks.platform, &deployed, "200");
    let probed_after = probes_health(&mut mocks.platform, &deployed, &[(0, "200")]);
    mocks
        .platform
        .expect_wait_healthy()
        .withf(|name, _| name == "n8n")
        .times(1)
        .returning(|name, _| Ok(healthy(name)));
    let orch = world.build(mocks);

    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    // The dependencies run already: only n8n is deployed.
    assert_eq!(job.params["apps"], serde_json::json!(["n8n"]));
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let record = &world.state().deployments["web-1"]["n8n"];
    assert_eq!(record.status, DeploymentStatus::Running);
    assert_eq!(record.dns_record_ids, ["rec-n8n", "rec-webhook"]);
    assert!(record.domains.contains(&N8N_HOST.to_string()));
    let log = log_text(&orch, &job.id);
    assert!(log.contains("creating database n8n and user n8n"), "{log}");
    assert!(!log.contains(DB_PASSWORD));
    assert!(!log.contains(OWNER_PASSWORD));
    // The owner was claimed while the only stack sent had every router off; the stack as
    // rendered, routers on, went out after the claim and after /healthz answered.
    assert_eq!(*claimed_after.lock().unwrap(), Some(1));
    assert_eq!(*probed_after.lock().unwrap(), [1]);
    assert!(
        log.contains("GET /healthz on n8n/editor port 5678 answered HTTP 200"),
        "{log}"
    );
    let sent = deployed.lock().unwrap();
    assert!(!livchat_apps::first_run::has_public_routes(
        &sent[0].compose_yaml
    ));
    assert!(sent[0].compose_yaml.contains("traefik.enable=false"));
    assert!(livchat_apps::first_run::has_public_routes(
        &sent[1].compose_yaml
    ));
    verify(orch);
}

const OWNER_PASSWORD: &str = "n8n-owner-password-SENTINEL-987654321";

/// n8n's declared health path is requested from inside its editor container, on the port its
/// route targets, answering `statuses` in turn (the last one from then on). Returns how many
/// stacks had been sent at each request.
fn probes_health(
    platform: &mut MockContainerPlatform,
    deployed: &Arc<Mutex<Vec<Deployed>>>,
    statuses: &'static [(u32, &'static str)],
) -> Arc<Mutex<Vec<usize>>> {
    let when = Arc::new(Mutex::new(Vec::new()));
    let (seen, deployed) = (when.clone(), deployed.clone());
    platform
        .expect_exec_in_service()
        .withf(|e| {
            e.stack == "n8n"
                && e.service == "editor"
                && e.argv.get(3).is_some_and(|a| a == "livchat-probe")
                && e.argv[4..] == ["5678".to_string(), "/healthz".to_string()]
                && e.stdin.is_none()
        })
        .returning(move |_| {
            let mut seen = seen.lock().unwrap();
            seen.push(deployed.lock().unwrap().len());
            let (exit, stdout) = statuses[(seen.len() - 1).min(statuses.len() - 1)];
            Ok(output(exit, stdout, ""))
        });
    when
}

/// n8n's owner is claimed once from inside its editor container: the password on stdin, never
/// in argv. The exec answers `status`; returns how many stacks had been sent when it ran.
fn claims_owner(
    platform: &mut MockContainerPlatform,
    deployed: &Arc<Mutex<Vec<Deployed>>>,
    status: &'static str,
) -> Arc<Mutex<Option<usize>>> {
    let when = Arc::new(Mutex::new(None));
    let (seen, deployed) = (when.clone(), deployed.clone());
    platform
        .expect_exec_in_service()
        .withf(|e| {
            e.stack == "n8n"
                && e.service == "editor"
                && e.argv.iter().all(|a| !a.contains(OWNER_PASSWORD))
                && e.stdin.as_ref().is_some_and(|s| {
                    String::from_utf8_lossy(s.expose_secret()).contains(OWNER_PASSWORD)
                })
        })
        .times(1)
        .returning(move |_| {
            *seen.lock().unwrap() = Some(deployed.lock().unwrap().len());
            Ok(output(0, status, ""))
        });
    when
}

#[tokio::test]
async fn a_refused_first_run_claim_fails_the_deploy_and_never_opens_the_routes() {
    let world = world_with_databases();
    world.set_secret("app.n8n.owner_password", OWNER_PASSWORD);
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    dns_records(
        &mut mocks,
        &[
            (N8N_HOST, "rec-n8n", Change::Created),
            (WEBHOOK_HOST, "rec-webhook", Change::Created),
        ],
    );
    creates_database(&mut mocks.platform, 0, "");
    // Sent once, routers off; the refused claim stops the job before the open stack.
    let deployed = deploys_stack_times(&mut mocks.platform, "n8n", 1);
    claims_owner(&mut mocks.platform, &deployed, "400");
    mocks
        .platform
        .expect_wait_healthy()
        .times(1)
        .returning(|name, _| Ok(healthy(name)));
    mocks
        .platform
        .expect_remove_stack()
        .withf(|name| name == "n8n")
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .dns
        .expect_delete_record()
        .times(2)
        .returning(|_, _| Ok(()));
    let orch = world.build(mocks);

    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap_or_default();
    assert!(
        error.contains("HTTP 400") && error.contains("routes stay closed"),
        "{error}"
    );
    assert!(!world.state().deployments["web-1"].contains_key("n8n"));
    verify(orch);
}

#[tokio::test]
async fn deploy_app_failing_at_health_removes_its_stack_and_the_dns_records_it_created_and_records_nothing()
 {
    let world = world_with_databases();
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    // The webhook record existed before this job: it is left alone.
    dns_records(
        &mut mocks,
        &[
            (N8N_HOST, "rec-n8n", Change::Created),
            (WEBHOOK_HOST, "rec-webhook", Change::Unchanged),
        ],
    );
    creates_database(&mut mocks.platform, 0, "");
    deploys_stack(&mut mocks.platform, "n8n");
    mocks
        .platform
        .expect_wait_healthy()
        .times(1)
        .returning(|_, _| {
            Err(service_failed(
                "n8n",
                "n8n_worker",
                "No such image: n8nio/n8n:1.97.1",
            ))
        });
    mocks
        .platform
        .expect_remove_stack()
        .withf(|n| n == "n8n")
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .dns
        .expect_delete_record()
        .withf(|z, id| z.id == ZONE_ID && id == "rec-n8n")
        .times(1)
        .returning(|_, _| Ok(()));
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains("service n8n_worker of stack n8n cannot start: No such image"),
        "{error}"
    );
    assert_eq!(
        world.deployed_apps("web-1"),
        ["infrastructure", "postgres", "redis"],
        "n8n not recorded, the others untouched"
    );
    // Rewound: a retry starts n8n again from its first step.
    assert_eq!(done.steps_remaining, steps_of(&["n8n"]));
    verify(orch);
}

#[tokio::test]
async fn deploy_app_whose_second_dns_record_fails_removes_the_first_and_deploys_nothing() {
    let world = world_with_databases();
    let mut mocks = Mocks::default();
    dns_records(&mut mocks, &[(N8N_HOST, "rec-n8n", Change::Created)]);
    mocks
        .dns
        .expect_ensure_a_record()
        .withf(|_, n, _, _| n == WEBHOOK_HOST)
        .times(1)
        .returning(|_, _, _, _| {
            Err(cloudflare_api_error(
                "create DNS record",
                "record quota exceeded",
            ))
        });
    mocks
        .dns
        .expect_delete_record()
        .withf(|_, id| id == "rec-n8n")
        .times(1)
        .returning(|_, _| Ok(()));
    // The clean-up opens the platform; nothing is deployed, so nothing is removed.
    connects(&mut mocks);
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(done.error.unwrap().contains("record quota exceeded"));
    assert_eq!(
        world.deployed_apps("web-1"),
        ["infrastructure", "postgres", "redis"]
    );
    verify(orch);
}

#[tokio::test]
async fn deploy_app_whose_stack_deploy_fails_removes_the_stack_and_dns_records_and_records_nothing()
{
    let world = world_with_databases();
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    dns_records(
        &mut mocks,
        &[
            (N8N_HOST, "rec-n8n", Change::Created),
            (WEBHOOK_HOST, "rec-webhook", Change::Created),
        ],
    );
    creates_database(&mut mocks.platform, 0, "");
    mocks
        .platform
        .expect_ensure_network()
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .platform
        .expect_deploy_stack()
        .times(1)
        .returning(|_| {
            Err(livchat_remote::PlatformError::CommandFailed {
                command: "docker stack deploy".into(),
                exit_status: 1,
                stderr: "failed to create service n8n_worker: network not found".into(),
            })
        });
    // `docker stack deploy` may have created some services before it failed.
    mocks
        .platform
        .expect_remove_stack()
        .withf(|n| n == "n8n")
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .dns
        .expect_delete_record()
        .times(2)
        .returning(|_, _| Ok(()));
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(done.error.unwrap().contains("network not found"));
    assert_eq!(
        world.deployed_apps("web-1"),
        ["infrastructure", "postgres", "redis"],
        "no n8n record left behind, not even as deploying"
    );
    verify(orch);
}

#[tokio::test]
async fn deploy_app_whose_database_creation_fails_reports_it_without_the_password_and_cleans_dns() {
    let world = world_with_databases();
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    dns_records(
        &mut mocks,
        &[
            (N8N_HOST, "rec-n8n", Change::Created),
            (WEBHOOK_HOST, "rec-webhook", Change::Created),
        ],
    );
    // psql echoes the failing statement, password included.
    creates_database(
        &mut mocks.platform,
        1,
        "ERROR:  syntax error at or near \"n8n-db-password-SENTINEL-0123456789\"\n",
    );
    mocks.platform.expect_deploy_stack().never();
    mocks
        .dns
        .expect_delete_record()
        .times(2)
        .returning(|_, _| Ok(()));
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("create database n8n"), "{error}");
    assert!(!error.contains(DB_PASSWORD), "{error}");
    assert!(!log_text(&orch, &job.id).contains(DB_PASSWORD));
    assert!(!world.deployed_apps("web-1").contains(&"n8n".to_string()));
    verify(orch);
}

#[tokio::test]
async fn deploy_app_on_a_bare_server_puts_infrastructure_and_dependencies_first_each_once() {
    let mut world = World::new();
    // Two jobs are created on one server below; neither runs.
    world.config.wait_turn = true;
    world.put_server(ready_server("web-1"));
    let orch = world.build(Mocks::default());
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    assert_eq!(
        job.params["apps"],
        serde_json::json!(["infrastructure", "postgres", "n8n"]),
        "n8n runs its own Redis: no shared redis is deployed for it"
    );
    assert_eq!(
        job.steps_remaining,
        steps_of(&["infrastructure", "postgres", "n8n"])
    );
    let job = orch
        .start_deploy_app("web-1", "infrastructure", &[])
        .unwrap();
    assert_eq!(job.params["apps"], serde_json::json!(["infrastructure"]));
    verify(orch);
}

#[tokio::test]
async fn start_deploy_app_is_refused_before_the_server_is_set_up_and_for_bad_input() {
    let world = World::new();
    world.put_server(hetzner_server("fresh", ServerStatus::Running, None));
    world.put_server(hetzner_server("broken", ServerStatus::Failed, Some("lab")));
    world.put_server(ready_server("web-1"));
    let before = world.state();
    let orch = world.build(Mocks::default());
    let err = orch.start_deploy_app("fresh", "n8n", &[]).unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("fresh has no DNS configuration")),
        "{err:?}"
    );
    let err = orch.start_deploy_app("broken", "n8n", &[]).unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("broken is not set up")),
        "{err:?}"
    );
    let err = orch.start_deploy_app("ghost", "n8n", &[]).unwrap_err();
    assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    let err = orch.start_deploy_app("web-1", "joomla", &[]).unwrap_err();
    assert!(err.to_string().contains("unknown app `joomla`"), "{err}");
    let err = orch
        .start_deploy_app("web-1", "n8n", &["worker_replicas".into()])
        .unwrap_err();
    assert!(err.to_string().contains("worker_replicas"), "{err}");
    assert_eq!(world.state(), before, "no job recorded");
    verify(orch);
}

#[tokio::test]
async fn start_deploy_app_without_a_cloudflare_token_names_the_credential() {
    let world = World::empty();
    world.put_server(ready_server("web-1"));
    let orch = world.build(Mocks::default());
    let err = orch.start_deploy_app("web-1", "redis", &[]).unwrap_err();
    assert!(
        matches!(&err, CoreError::MissingCredential { name } if name == "cloudflare_api_token"),
        "{err:?}"
    );
    verify(orch);
}

#[tokio::test]
async fn plan_deploy_app_shows_records_databases_and_redacted_stacks_and_touches_nothing() {
    let world = world_with_databases();
    world.set_secret("app.redis.password", "redis-password-SENTINEL-abcdef0123");
    let before = world.state();
    let secrets_before = world.secret_names();
    let orch = world.build(Mocks::default());
    let plan = orch.plan_deploy_app("web-1", "n8n", &[]).unwrap();
    assert_eq!(plan.steps, steps_of(&["n8n"]));
    assert_eq!(
        plan.dns_records,
        [
            format!("A {N8N_HOST} -> {IP}"),
            format!("A {WEBHOOK_HOST} -> {IP}")
        ]
    );
    let resources = plan.resources.join("\n");
    assert!(
        resources.contains("database n8n owned by user n8n"),
        "{resources}"
    );
    assert!(
        resources.contains("vault secret app.n8n.encryption_key (generated)"),
        "{resources}"
    );
    assert!(resources.contains("stack n8n on web-1"), "{resources}");
    assert_eq!(plan.stacks.len(), 1);
    let compose = &plan.stacks[0].compose;
    assert!(compose.contains("n8nio/n8n:2.30.4"));
    for secret in [DB_PASSWORD, "redis-password-SENTINEL-abcdef0123"] {
        assert!(!compose.contains(secret), "{secret} in the plan");
    }
    assert_eq!(world.state(), before);
    assert_eq!(
        world.secret_names(),
        secrets_before,
        "nothing generated into the vault"
    );
    verify(orch);
}

#[tokio::test]
async fn plan_deploy_app_lists_each_secret_once() {
    // Nothing but the infrastructure runs: the plan installs postgres with n8n; n8n's stack
    // names its Redis password under two keys (its own and its Redis's), listed once (#13).
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &["rec-portainer"]);
    let orch = world.build(Mocks::default());
    let plan = orch.plan_deploy_app("web-1", "n8n", &[]).unwrap();
    let resources = plan.resources.join("\n");
    assert!(
        resources.contains("vault secret app.n8n.redis_password (generated)"),
        "{resources}"
    );
    let mut unique = plan.resources.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), plan.resources.len(), "{resources}");
    verify(orch);
}

/// redis runs (version "1"); its redeploy is sent and then fails the health check with the
/// swarm's paused update.
fn failing_redeploy_of_redis(mocks: &mut Mocks) {
    connects(mocks);
    deploys_stack(&mut mocks.platform, "redis");
    mocks
        .platform
        .expect_wait_healthy()
        .times(1)
        .returning(|_, _| {
            Err(livchat_remote::PlatformError::UpdateFailed {
                stack: "redis".into(),
                service: "redis".into(),
                message: "update paused: update paused due to failure or early termination of \
                          task x (task error: task: non-zero exit (1))"
                    .into(),
            })
        });
    // The user's running service (and the apps using it) must not be taken down.
    mocks.platform.expect_remove_stack().never();
}

fn world_with_redis_running() -> World {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &[]);
    world.put_deployment("web-1", "redis", &[]);
    world
}

#[tokio::test]
async fn a_failed_redeploy_rolls_back_to_the_previous_version_and_keeps_its_record() {
    let world = world_with_redis_running();
    let before = world.state().deployments["web-1"]["redis"].clone();
    let mut mocks = Mocks::default();
    failing_redeploy_of_redis(&mut mocks);
    mocks
        .platform
        .expect_rollback_stack()
        .withf(|name, _| name == "redis")
        .times(1)
        .returning(|name, _| Ok(healthy(name)));
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "redis", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains("update paused") && error.contains("non-zero exit (1)"),
        "{error}"
    );
    assert_eq!(
        world.state().deployments["web-1"]["redis"],
        before,
        "the record still describes the previous version, running"
    );
    assert!(log_text(&orch, &job.id).contains("the previous version (1) runs again"));
    assert_eq!(
        done.steps_remaining,
        steps_of(&["redis"]),
        "a retry deploys again"
    );
    verify(orch);
}

#[tokio::test]
async fn a_failed_redeploy_whose_rollback_fails_records_the_app_as_failed() {
    let world = world_with_redis_running();
    let mut mocks = Mocks::default();
    failing_redeploy_of_redis(&mut mocks);
    mocks
        .platform
        .expect_rollback_stack()
        .times(1)
        .returning(|_, _| Err(service_failed("redis", "redis", "task: non-zero exit (1)")));
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "redis", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let record = &world.state().deployments["web-1"]["redis"];
    assert_eq!(record.status, DeploymentStatus::Failed);
    assert!(log_text(&orch, &job.id).contains("the rollback to the previous version failed"));
    verify(orch);
}

#[tokio::test]
async fn deploy_app_refuses_a_set_value_the_app_does_not_allow_before_any_secret_is_stored() {
    let world = world_with_databases();
    let orch = world.build(Mocks::default());
    let before = world.secret_names();
    let err = orch
        .start_deploy_app("web-1", "n8n", &["worker_replicas=99".into()])
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Invalid { .. } | CoreError::Apps(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("worker_replicas"), "{err}");
    assert!(world.jobs().is_empty(), "no job was created");
    assert_eq!(world.secret_names(), before, "no secret was generated");
    let err = orch
        .start_deploy_app("web-1", "n8n", &["no_such_key=1".into()])
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Invalid { field, .. } if field == "--set"),
        "{err:?}"
    );
    verify(orch);
}

#[tokio::test]
async fn deploy_app_refuses_an_app_whose_setting_is_missing_before_the_job_starts() {
    let world = world_with_databases();
    world
        .store
        .update_settings("no email", &mut |s| {
            s.unset(livchat_store::SettingKey::Email);
            Ok(())
        })
        .unwrap();
    let orch = world.build(Mocks::default());
    let err = orch.start_deploy_app("web-1", "n8n", &[]).unwrap_err();
    assert!(err.to_string().contains("email"), "{err}");
    assert!(world.jobs().is_empty());
    verify(orch);
}

/// n8n's names: `n8n.` holds an A record someone else made (`content`), `webhook-n8n.` none.
fn existing_foreign_record(mocks: &mut Mocks, content: &'static str) {
    mocks
        .dns
        .expect_find_zone()
        .times(1..)
        .returning(|_| Ok(zone()));
    mocks.dns.expect_records_named().returning(move |_, n| {
        Ok(if n == N8N_HOST {
            vec![a_record("rec-theirs", n, content)]
        } else {
            Vec::new()
        })
    });
}

#[tokio::test]
async fn deploy_app_refuses_an_existing_a_record_it_did_not_create_pointing_elsewhere() {
    let world = world_with_databases();
    let mut mocks = Mocks::default();
    existing_foreign_record(&mut mocks, "198.51.100.7");
    mocks.dns.expect_ensure_a_record().never();
    mocks.dns.expect_delete_record().never();
    // The clean-up opens the platform; nothing is deployed, so nothing is removed.
    connects(&mut mocks);
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains(&format!("A {N8N_HOST} -> 198.51.100.7"))
            && error.contains("--take-over-dns"),
        "{error}"
    );
    assert!(!world.deployed_apps("web-1").contains(&"n8n".to_string()));
    verify(orch);
}

#[tokio::test]
async fn deploy_app_with_take_over_dns_repoints_the_record_and_owns_it() {
    let world = world_with_databases();
    world.set_secret("app.n8n.owner_password", OWNER_PASSWORD);
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    existing_foreign_record(&mut mocks, "198.51.100.7");
    for (name, id, change) in [
        (N8N_HOST, "rec-theirs", Change::Updated),
        (WEBHOOK_HOST, "rec-webhook", Change::Created),
    ] {
        mocks
            .dns
            .expect_ensure_a_record()
            .withf(move |_, n, ip, _| n == name && ip.to_string() == IP)
            .times(1)
            .returning(move |_, n, ip, _| {
                Ok(Ensured {
                    record: a_record(id, n, &ip.to_string()),
                    change,
                })
            });
    }
    creates_database(&mut mocks.platform, 0, "");
    // A first deploy of n8n: routes closed, the owner claimed, then the routes opened.
    let deployed = deploys_stack_times(&mut mocks.platform, "n8n", 2);
    claims_owner(&mut mocks.platform, &deployed, "200");
    probes_health(&mut mocks.platform, &deployed, &[(0, "200")]);
    mocks
        .platform
        .expect_wait_healthy()
        .returning(|name, _| Ok(healthy(name)));
    let orch = world.build(mocks);
    let job = orch
        .start_deploy_app_with("web-1", "n8n", &[], true, false)
        .unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let record = &world.state().deployments["web-1"]["n8n"];
    assert_eq!(record.dns_record_ids, ["rec-theirs", "rec-webhook"]);
    assert!(log_text(&orch, &job.id).contains("taken over (--take-over-dns)"));
    verify(orch);
}

#[tokio::test]
async fn deploy_app_leaves_a_foreign_record_already_pointing_here_out_of_its_deployment() {
    // Someone made n8n's record pointing at this server: used, but not livchat's to delete.
    let world = world_with_databases();
    world.set_secret("app.n8n.owner_password", OWNER_PASSWORD);
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    existing_foreign_record(&mut mocks, IP);
    for (name, id, change) in [
        (N8N_HOST, "rec-theirs", Change::Unchanged),
        (WEBHOOK_HOST, "rec-webhook", Change::Created),
    ] {
        mocks
            .dns
            .expect_ensure_a_record()
            .withf(move |_, n, _, _| n == name)
            .times(1)
            .returning(move |_, n, ip, _| {
                Ok(Ensured {
                    record: a_record(id, n, &ip.to_string()),
                    change,
                })
            });
    }
    creates_database(&mut mocks.platform, 0, "");
    // A first deploy of n8n: routes closed, the owner claimed, then the routes opened.
    let deployed = deploys_stack_times(&mut mocks.platform, "n8n", 2);
    claims_owner(&mut mocks.platform, &deployed, "200");
    probes_health(&mut mocks.platform, &deployed, &[(0, "200")]);
    mocks
        .platform
        .expect_wait_healthy()
        .returning(|name, _| Ok(healthy(name)));
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let record = &world.state().deployments["web-1"]["n8n"];
    assert_eq!(
        record.dns_record_ids,
        ["rec-webhook"],
        "undeploy deletes only this one"
    );
    verify(orch);
}

/// Issue #19: n8n's Redis is its own. The plan deploys no shared `redis` app and names n8n's
/// own instance, its volume and its own password; nothing of the shared `redis` app appears.
#[tokio::test]
async fn plan_deploy_app_lists_the_apps_own_redis_with_its_own_password_and_no_shared_redis() {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &["rec-portainer"]);
    world.put_deployment("web-1", "postgres", &[]);
    let orch = world.build(Mocks::default());
    let plan = orch.plan_deploy_app("web-1", "n8n", &[]).unwrap();
    assert_eq!(
        plan.steps,
        steps_of(&["n8n"]),
        "no shared redis to deploy first"
    );
    let resources = plan.resources.join("\n");
    for expected in [
        "redis n8n_redis in stack n8n: n8n's own (volume n8n_redis_data; password app.n8n.redis_password)",
        "vault secret app.n8n.redis_password (generated)",
        "docker secret livchat_n8n_redis_password",
    ] {
        assert!(resources.contains(expected), "{expected}:\n{resources}");
    }
    assert!(!resources.contains("app.redis."), "{resources}");
    assert!(!resources.contains("livchat_redis_password"), "{resources}");
    let compose = &plan.stacks[0].compose;
    assert!(
        compose.contains("QUEUE_BULL_REDIS_HOST: n8n_redis"),
        "{compose}"
    );
    verify(orch);
}

/// Issue #19: the deploy generates n8n's own Redis password into the vault and sends it only
/// as n8n's Docker secret; the shared `redis` app's password is neither created nor used.
#[tokio::test]
async fn deploy_app_sends_the_apps_own_redis_with_its_own_generated_password() {
    let world = world_with_databases();
    world.set_secret("app.n8n.owner_password", OWNER_PASSWORD);
    world.set_secret("app.redis.password", "shared-redis-SENTINEL-abcdef0123");
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    dns_records(
        &mut mocks,
        &[
            (N8N_HOST, "rec-n8n", Change::Created),
            (WEBHOOK_HOST, "rec-webhook", Change::Created),
        ],
    );
    creates_database(&mut mocks.platform, 0, "");
    let deployed = deploys_stack_times(&mut mocks.platform, "n8n", 2);
    claims_owner(&mut mocks.platform, &deployed, "200");
    probes_health(&mut mocks.platform, &deployed, &[(0, "200")]);
    mocks
        .platform
        .expect_wait_healthy()
        .withf(|name, _| name == "n8n")
        .times(1)
        .returning(|name, _| Ok(healthy(name)));
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);

    let own = world
        .secret("app.n8n.redis_password")
        .expect("n8n's Redis password generated into the vault");
    assert_eq!(own.len(), 32);
    let sent = deployed.lock().unwrap();
    let last = sent.last().unwrap();
    assert!(
        last.secret_values.contains(&own),
        "delivered as a Docker secret"
    );
    assert!(
        !last
            .secret_values
            .contains(&"shared-redis-SENTINEL-abcdef0123".to_string()),
        "the shared redis password reaches n8n"
    );
    assert!(
        !last.compose_yaml.contains(&own),
        "the password is in the stack file"
    );
    assert!(last.compose_yaml.contains("n8n_redis"));
    assert!(last.compose_yaml.contains("livchat_n8n_redis_password"));
    assert!(!last.compose_yaml.contains("livchat_redis_password"));
    assert!(!log_text(&orch, &job.id).contains(&own));
    verify(orch);
}

/// web-1 as `world_with_databases`, with the resources setup read from it.
fn world_with_resources(memory_mb: u64, cpus: u32) -> World {
    let world = world_with_databases();
    let mut server = ready_server("web-1");
    server.setup.resources = Some(livchat_store::ServerResources { cpus, memory_mb });
    world.put_server(server);
    world
}

#[tokio::test]
async fn a_deploy_to_a_server_short_of_memory_is_refused_with_the_numbers_and_force_goes_on() {
    // Issue #17: n8n (2048 MiB, 2 CPUs) beside the infrastructure, Postgres and Redis on a
    // "2 GB" server with 1 CPU.
    let world = world_with_resources(1900, 1);
    let before = world.state();
    let orch = world.build(Mocks::default());
    let err = orch.start_deploy_app("web-1", "n8n", &[]).unwrap_err();
    assert!(matches!(err, CoreError::Refused(_)), "{err:?}");
    let why = err.to_string();
    for part in [
        "web-1 has 1900 MiB",
        "1 CPUs",
        "n8n 2048 MiB/2 CPU",
        "postgres 512 MiB/1 CPU",
        "--force",
    ] {
        assert!(why.contains(part), "{part:?} missing from: {why}");
    }
    assert_eq!(world.state(), before, "nothing recorded");
    let job = orch
        .start_deploy_app_with("web-1", "n8n", &[], false, true)
        .expect("--force goes on");
    assert_eq!(job.steps_remaining.len(), 5);
    verify(orch);
}

#[tokio::test]
async fn the_plan_shows_the_preflight_before_anything_else() {
    let short = world_with_resources(1900, 1).build(Mocks::default());
    let line = short
        .plan_deploy_app("web-1", "n8n", &[])
        .unwrap()
        .resources[0]
        .clone();
    assert!(
        line.starts_with("preflight: needs 3328 MiB and 2 CPUs"),
        "{line}"
    );
    assert!(line.contains("SHORT"), "{line}");
    verify(short);
    let enough = world_with_resources(7800, 4).build(Mocks::default());
    let line = enough
        .plan_deploy_app("web-1", "n8n", &[])
        .unwrap()
        .resources[0]
        .clone();
    assert!(line.ends_with("and 4 CPUs: enough"), "{line}");
    verify(enough);
}

/// n8n's first deploy with every step answering, except /healthz which answers `statuses`.
/// The stack is sent `deploys` times: once with the routes closed, and again with them open
/// unless the probe fails first.
fn n8n_deploy_probed(
    statuses: &'static [(u32, &'static str)],
    deploys: usize,
) -> (World, Mocks, Arc<Mutex<Vec<Deployed>>>) {
    let world = world_with_databases();
    world.set_secret("app.n8n.owner_password", OWNER_PASSWORD);
    let mut mocks = Mocks::default();
    connects(&mut mocks);
    dns_records(
        &mut mocks,
        &[
            (N8N_HOST, "rec-n8n", Change::Created),
            (WEBHOOK_HOST, "rec-webhook", Change::Created),
        ],
    );
    creates_database(&mut mocks.platform, 0, "");
    let deployed = deploys_stack_times(&mut mocks.platform, "n8n", deploys);
    claims_owner(&mut mocks.platform, &deployed, "200");
    probes_health(&mut mocks.platform, &deployed, statuses);
    mocks
        .platform
        .expect_wait_healthy()
        .returning(|name, _| Ok(healthy(name)));
    (world, mocks, deployed)
}

#[tokio::test(start_paused = true)]
async fn a_health_path_that_never_answers_2xx_fails_the_deploy_with_its_status_routes_closed() {
    // Issue #17: Swarm says healthy, the declared path says 404 for the whole health timeout.
    let (world, mut mocks, deployed) = n8n_deploy_probed(&[(0, "503"), (0, "404")], 1);
    mocks
        .platform
        .expect_remove_stack()
        .withf(|name| name == "n8n")
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .dns
        .expect_delete_record()
        .times(2)
        .returning(|_, _| Ok(()));
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains(
            "GET /healthz on n8n/editor port 5678 did not answer 2xx or 3xx within 300 s: HTTP 404"
        ),
        "{error}"
    );
    assert_routes_stayed_closed(&deployed);
    assert!(!world.state().deployments["web-1"].contains_key("n8n"));
    verify(orch);
}

#[tokio::test(start_paused = true)]
async fn a_health_path_answering_after_a_few_tries_completes_the_deploy() {
    let (world, mocks, _) = n8n_deploy_probed(&[(7, ""), (0, "502"), (0, "302")], 2);
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let log = log_text(&orch, &job.id);
    assert!(log.contains("no answer (exit status 7"), "{log}");
    assert!(log.contains("HTTP 502, attempt 2 of 100"), "{log}");
    assert!(log.contains("answered HTTP 302"), "{log}");
    verify(orch);
}

#[tokio::test]
async fn an_image_without_an_http_client_is_a_warning_not_a_failure() {
    let (world, mocks, _) = n8n_deploy_probed(&[(livchat_apps::probe::NO_CLIENT, "")], 2);
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let log = log_text(&orch, &job.id);
    assert!(
        log.contains("has no curl, wget or node to request /healthz"),
        "{log}"
    );
    verify(orch);
}
