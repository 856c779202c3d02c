//! undeploy_app: refused while other deployed apps depend on it (unless forced); removes the
//! stack (data volumes kept), its DNS records and its record.

use livchat_core::CoreError;
use livchat_store::{JobStatus, Store};

use super::support::*;

/// web-1 running the infrastructure, postgres, redis and n8n (with two DNS records).
fn world_with_n8n() -> World {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &["rec-portainer"]);
    world.put_deployment("web-1", "postgres", &[]);
    world.put_deployment("web-1", "redis", &[]);
    world.put_deployment("web-1", "n8n", &["rec-n8n", "rec-webhook"]);
    world.set_secret("app.n8n.encryption_key", "keep-me");
    // Its first deploy claimed its owner.
    world
        .store
        .update("n8n claimed", &mut |s| {
            s.record_claim("web-1", "n8n", 0);
            Ok(())
        })
        .unwrap();
    world
}

/// The stack goes, then the app's own Docker secrets (`livchat_<app>_*`).
fn removes_stack(mocks: &mut Mocks, name: &'static str) {
    connects_pinned(&mut mocks.connector, MockRemoteExecutor::new(), 1);
    mocks
        .platform
        .expect_remove_stack()
        .withf(move |n| n == name)
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .platform
        .expect_remove_secrets()
        .withf(move |names| {
            !names.is_empty()
                && names
                    .iter()
                    .all(|n| n.starts_with(&format!("livchat_{name}_")))
        })
        .returning(|names| Ok(names.to_vec()));
}

#[tokio::test]
async fn undeploy_app_removes_the_stack_its_dns_records_and_its_record_and_keeps_its_secrets() {
    let world = world_with_n8n();
    let mut mocks = Mocks::default();
    removes_stack(&mut mocks, "n8n");
    mocks
        .dns
        .expect_find_zone()
        .withf(|z| z == ZONE)
        .times(1)
        .returning(|_| Ok(zone()));
    for id in ["rec-n8n", "rec-webhook"] {
        mocks
            .dns
            .expect_delete_record()
            .withf(move |z, r| z.id == ZONE_ID && r == id)
            .times(1)
            .returning(|_, _| Ok(()));
    }
    let orch = world.build(mocks);
    let job = orch.start_undeploy_app("web-1", "n8n", false).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(
        world.deployed_apps("web-1"),
        ["infrastructure", "postgres", "redis"]
    );
    assert_eq!(
        world.secret("app.n8n.encryption_key").as_deref(),
        Some("keep-me")
    );
    assert!(
        world.state().claimed("web-1", "n8n", 0),
        "the data keeps its owner, so a redeploy's refused claim is ours"
    );
    let log = log_text(&orch, &job.id);
    assert!(
        log.contains("data kept: volumes, database, vault secrets"),
        "{log}"
    );
    assert!(
        log.contains("docker secrets removed: livchat_n8n_"),
        "{log}"
    );
    verify(orch);
}

#[tokio::test]
async fn undeploy_app_is_refused_while_other_apps_depend_on_it_unless_forced() {
    let world = world_with_n8n();
    let before = world.state();
    let mut mocks = Mocks::default();
    removes_stack(&mut mocks, "postgres");
    let orch = world.build(mocks);
    let err = orch
        .start_undeploy_app("web-1", "postgres", false)
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("postgres is used by n8n on web-1")),
        "{err:?}"
    );
    let err = orch
        .start_undeploy_app("web-1", "infrastructure", false)
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("n8n") && m.contains("postgres") && m.contains("redis")),
        "{err:?}"
    );
    assert_eq!(world.state(), before, "no job recorded");
    // Forced: postgres has no DNS record, so only its stack goes.
    let job = orch.start_undeploy_app("web-1", "postgres", true).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(
        !world
            .deployed_apps("web-1")
            .contains(&"postgres".to_string())
    );
    verify(orch);
}

#[tokio::test]
async fn undeploy_app_of_something_not_deployed_names_it() {
    let world = world_with_n8n();
    let orch = world.build(Mocks::default());
    let err = orch
        .start_undeploy_app("web-1", "chatwoot", false)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("deployment `chatwoot on web-1` not found"),
        "{err}"
    );
    let err = orch.start_undeploy_app("ghost", "n8n", false).unwrap_err();
    assert!(
        matches!(err, CoreError::NotFound { kind: "server", .. }),
        "{err:?}"
    );
    verify(orch);
}

#[tokio::test]
async fn undeploy_app_whose_stack_removal_fails_keeps_the_record_and_the_dns_records() {
    let world = world_with_n8n();
    let mut mocks = Mocks::default();
    connects_pinned(&mut mocks.connector, MockRemoteExecutor::new(), 1);
    mocks
        .platform
        .expect_remove_stack()
        .times(1)
        .returning(|_| {
            Err(livchat_remote::PlatformError::CommandFailed {
                command: "docker stack rm n8n".into(),
                exit_status: 1,
                stderr: "Cannot connect to the Docker daemon".into(),
            })
        });
    mocks.dns.expect_delete_record().never();
    let orch = world.build(mocks);
    let job = orch.start_undeploy_app("web-1", "n8n", false).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(
        done.error
            .unwrap()
            .contains("Cannot connect to the Docker daemon")
    );
    let record = &world.state().deployments["web-1"]["n8n"];
    assert_eq!(record.dns_record_ids, ["rec-n8n", "rec-webhook"]);
    verify(orch);
}

#[tokio::test]
async fn undeploy_app_fails_on_a_dns_record_it_cannot_delete_and_a_retry_deletes_it() {
    let world = world_with_n8n();
    let mut mocks = Mocks::default();
    removes_stack(&mut mocks, "n8n");
    mocks
        .dns
        .expect_find_zone()
        .times(2)
        .returning(|_| Ok(zone()));
    let locked = std::sync::atomic::AtomicBool::new(true);
    mocks
        .dns
        .expect_delete_record()
        .withf(|_, r| r == "rec-n8n")
        .times(2)
        .returning(move |_, _| {
            if locked.swap(false, std::sync::atomic::Ordering::SeqCst) {
                Err(cloudflare_api_error(
                    "delete DNS record",
                    "record is locked",
                ))
            } else {
                Ok(())
            }
        });
    // Deleted on the first attempt; deleted again (already gone counts as deleted) on retry.
    mocks
        .dns
        .expect_delete_record()
        .withf(|_, r| r == "rec-webhook")
        .times(2)
        .returning(|_, _| Ok(()));
    let orch = world.build(mocks);
    let job = orch.start_undeploy_app("web-1", "n8n", false).unwrap();
    let failed = run(&orch, &job.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("record is locked"));
    let record = &world.state().deployments["web-1"]["n8n"];
    assert_eq!(record.status, livchat_store::DeploymentStatus::Removing);
    assert_eq!(
        record.dns_record_ids,
        ["rec-n8n", "rec-webhook"],
        "the ids are kept"
    );
    assert!(!world.deployed_apps("web-1").is_empty());

    orch.start_retry_job(&job.id).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(!world.deployed_apps("web-1").contains(&"n8n".to_string()));
    verify(orch);
}

#[tokio::test]
async fn undeploy_with_delete_data_deletes_volumes_database_role_and_vault_secrets_and_plans_them()
{
    let world = world_with_n8n();
    let mut mocks = Mocks::default();
    removes_stack(&mut mocks, "n8n");
    mocks
        .platform
        .expect_remove_stack_volumes()
        .withf(|n| n == "n8n")
        .times(1)
        .returning(|_| Ok(vec!["n8n_n8n_data".into()]));
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| {
            e.stack == "postgres"
                && e.service == "postgres"
                && e.stdin.as_ref().is_some_and(|s| {
                    let sql = String::from_utf8_lossy(secrecy::ExposeSecret::expose_secret(s))
                        .to_string();
                    sql.contains("DROP DATABASE IF EXISTS \"n8n\"")
                        && sql.contains("DROP ROLE IF EXISTS \"n8n\"")
                })
        })
        .times(1)
        .returning(|_| Ok(output(0, "", "")));
    mocks
        .dns
        .expect_find_zone()
        .times(1)
        .returning(|_| Ok(zone()));
    mocks
        .dns
        .expect_delete_record()
        .times(2)
        .returning(|_, _| Ok(()));
    let orch = world.build(mocks);
    let p = livchat_core::UndeployParams {
        server: "web-1".into(),
        app: "n8n".into(),
        force: false,
        delete_data: true,
    };
    let plan = orch.plan_undeploy(&p).unwrap();
    for lost in [
        "DELETE the data volumes of stack n8n",
        "DROP database n8n and role n8n in stack postgres",
        "DELETE vault secret app.n8n.encryption_key",
        "remove docker secret livchat_n8n_encryption_key",
    ] {
        assert!(
            plan.resources.iter().any(|r| r.contains(lost)),
            "{lost}: {:?}",
            plan.resources
        );
    }
    assert_eq!(
        world.secret("app.n8n.encryption_key").as_deref(),
        Some("keep-me"),
        "the plan touches nothing"
    );
    let job = orch.start_undeploy(p).unwrap();
    assert_eq!(
        job.steps_remaining,
        [
            "remove_stack",
            "docker_secrets",
            "volumes",
            "database",
            "vault_secrets",
            "dns",
            "record"
        ]
    );
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(log_text(&orch, &job.id).contains("n8n_n8n_data"));
    assert!(!world.deployed_apps("web-1").contains(&"n8n".to_string()));
    assert_eq!(world.secret("app.n8n.encryption_key"), None);
    assert!(
        world.state().first_run_claims.is_empty(),
        "with the data gone, a redeploy must claim a fresh owner"
    );
    assert!(
        world
            .secret_names()
            .iter()
            .all(|k| !k.starts_with("app.n8n.")),
        "{:?}",
        world.secret_names()
    );
    verify(orch);
}

/// Issue #19: `--delete-data` deletes n8n's own Redis with its data: the stack's volumes
/// (its Redis volume among them), its Docker secret and its vault password; the standalone
/// `redis` app's password is not n8n's and stays.
#[tokio::test]
async fn undeploy_with_delete_data_removes_the_apps_own_redis_volume_and_password() {
    let world = world_with_n8n();
    world.set_secret(
        "app.n8n.redis_password",
        "n8n-redis-SENTINEL-0123456789abcd",
    );
    world.set_secret("app.redis.password", "shared-redis-SENTINEL-abcdef0123");
    let mut mocks = Mocks::default();
    connects_pinned(&mut mocks.connector, MockRemoteExecutor::new(), 1);
    mocks
        .platform
        .expect_remove_stack()
        .withf(|n| n == "n8n")
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .platform
        .expect_remove_secrets()
        .withf(|names| names.iter().any(|n| n == "livchat_n8n_redis_password"))
        .times(1)
        .returning(|names| Ok(names.to_vec()));
    mocks
        .platform
        .expect_remove_stack_volumes()
        .withf(|n| n == "n8n")
        .times(1)
        .returning(|_| Ok(vec!["n8n_n8n_data".into(), "n8n_redis_data".into()]));
    mocks
        .platform
        .expect_exec_in_service()
        .times(1)
        .returning(|_| Ok(output(0, "", "")));
    mocks
        .dns
        .expect_find_zone()
        .times(1)
        .returning(|_| Ok(zone()));
    mocks
        .dns
        .expect_delete_record()
        .times(2)
        .returning(|_, _| Ok(()));
    let orch = world.build(mocks);
    let p = livchat_core::UndeployParams {
        server: "web-1".into(),
        app: "n8n".into(),
        force: false,
        delete_data: true,
    };
    let plan = orch.plan_undeploy(&p).unwrap();
    for lost in [
        "DELETE n8n's own redis (volumes n8n_redis_data of stack n8n; their data is lost)",
        "remove docker secret livchat_n8n_redis_password",
        "DELETE vault secret app.n8n.redis_password",
    ] {
        assert!(
            plan.resources.iter().any(|r| r.contains(lost)),
            "{lost}: {:?}",
            plan.resources
        );
    }
    assert!(
        plan.resources.iter().all(|r| !r.contains("app.redis.")),
        "{:?}",
        plan.resources
    );
    let job = orch.start_undeploy(p).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(log_text(&orch, &job.id).contains("n8n_redis_data"));
    assert_eq!(world.secret("app.n8n.redis_password"), None);
    assert_eq!(
        world.secret("app.redis.password").as_deref(),
        Some("shared-redis-SENTINEL-abcdef0123")
    );
    verify(orch);
}
