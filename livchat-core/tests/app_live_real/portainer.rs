//! #18: an app deployed through orchestrator jobs after the infrastructure bundle is owned by
//! Portainer (the fake applies its stacks to the real swarm) until undeployed.

use std::sync::Arc;
use std::time::Duration;

use fixtures::dockerd::Dockerd;
use livchat_core::Orchestrator;
use livchat_remote::ContainerPlatform;
use livchat_store::{DeploymentStatus, SecretStore, Store};
use secrecy::SecretString;

use super::rig::{Rig, SERVER, apps_orchestrator, busybox, rig};

async fn deploy_hello(orch: &Arc<Orchestrator>, greeting: &str) -> livchat_store::JobRecord {
    let job = orch
        .start_deploy_app(SERVER, "hello", &[format!("greeting={greeting}")])
        .unwrap();
    orch.run_job(&job.id).await.unwrap()
}

/// What Portainer was asked to change: stack creations, updates and deletions.
fn stack_changes(fake: &fixtures::fake_portainer::FakePortainer) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET ") && !r.starts_with("POST /api/auth"))
        .collect()
}

async fn hello_logs_say(rig: &Rig, line: &str) -> bool {
    for _ in 0..40 {
        let logs = rig.platform.service_logs("hello", "web", 20).await;
        if logs.is_ok_and(|l| l.iter().any(|x| x.trim().ends_with(line))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// #18: once the infrastructure bundle runs (deployed over SSH) with Portainer's admin password
/// in the vault, an app's stack is created, updated and deleted through Portainer's API (the
/// fake applies it to the real swarm), reached through an SSH tunnel of the server's
/// connection; a wrong admin password fails the job before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_deployed_after_the_infrastructure_is_owned_by_portainer_until_undeployed() {
    let Some(rig) = rig().await else { return };
    if busybox().await.is_none() {
        return;
    }
    let engine = Dockerd::shared().unwrap();
    let password = "correct-horse-battery-staple";
    let fake = fixtures::fake_portainer::FakePortainer::start(
        fixtures::fake_portainer::FakePortainerOptions {
            admin: Some(("admin".into(), password.into())),
            docker_host: Some(engine.host()),
            docker_binary: fixtures::tools::find("docker"),
            ..Default::default()
        },
    )
    .unwrap();
    let fake_port: u16 = fake.url().rsplit(':').next().unwrap().parse().unwrap();
    let apps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/portainer-apps");
    let (orch, secrets) = apps_orchestrator(&rig, &apps, Some(fake_port));
    let key = "app.infrastructure.admin_password";
    secrets.set(key, SecretString::from(password)).unwrap();

    // The plan says which path each stack takes, before anything runs.
    let plan = orch
        .plan_deploy_app(SERVER, "hello", &["greeting=hello".into()])
        .unwrap();
    let lines = plan.resources.join("\n");
    assert!(
        lines.contains("stack infrastructure on swarm-1 over SSH (docker stack deploy): the infrastructure bundle always goes over SSH"),
        "{lines}"
    );
    assert!(
        lines.contains("stack hello on swarm-1 through Portainer's API (tunnel over SSH), owned by Portainer: Portainer (infrastructure) is deployed first by this job"),
        "{lines}"
    );

    let job = deploy_hello(&orch, "hello").await;
    assert_eq!(
        job.status,
        livchat_store::JobStatus::Completed,
        "{:?}",
        job.error
    );
    let via = |app: &str| rig.store.load().unwrap().deployments[SERVER][app].via;
    assert_eq!(via("infrastructure"), livchat_store::DeployedVia::Ssh);
    assert_eq!(via("hello"), livchat_store::DeployedVia::Portainer);
    // Portainer owns hello's stack; the bundle is not Portainer's (it went over SSH).
    assert_eq!(fake.stack_names(), vec!["hello".to_string()]);
    assert!(
        stack_changes(&fake)
            .iter()
            .any(|r| r.starts_with("POST /api/stacks/create/swarm/string?endpointId=1")),
        "{:?}",
        fake.requests()
    );
    assert!(
        hello_logs_say(&rig, "greeting=hello").await,
        "hello did not start"
    );

    // A redeploy with a changed value updates Portainer's stack in place.
    let job = deploy_hello(&orch, "bonjour").await;
    assert_eq!(
        job.status,
        livchat_store::JobStatus::Completed,
        "{:?}",
        job.error
    );
    assert_eq!(fake.stack_names(), vec!["hello".to_string()]);
    let updated = fake.request_bodies().into_iter().any(|(line, body)| {
        line.starts_with("PUT /api/stacks/")
            && body["StackFileContent"]
                .as_str()
                .is_some_and(|c| c.contains("GREETING: bonjour"))
    });
    assert!(
        updated,
        "no update with the new value: {:?}",
        fake.requests()
    );
    assert!(
        hello_logs_say(&rig, "greeting=bonjour").await,
        "the update did not apply"
    );

    // A wrong admin password: the job fails, says why, and nothing changes anywhere.
    secrets
        .set(key, SecretString::from("not-the-admin-password"))
        .unwrap();
    let changes_before = stack_changes(&fake);
    let job = deploy_hello(&orch, "hola").await;
    assert_eq!(job.status, livchat_store::JobStatus::Failed);
    let error = job.error.clone().unwrap_or_default();
    assert!(
        error.contains(
            "refused the admin password in the vault (app.infrastructure.admin_password)"
        ) && error.contains("Nothing was changed"),
        "{error}"
    );
    assert!(!error.contains("not-the-admin-password"), "{error}");
    assert!(job.steps_completed.is_empty(), "{:?}", job.steps_completed);
    assert_eq!(stack_changes(&fake), changes_before);
    let record = &rig.store.load().unwrap().deployments[SERVER]["hello"];
    assert_eq!(record.status, DeploymentStatus::Running);
    let hello = rig.platform.stack_status("hello").await.unwrap();
    assert!(hello.is_healthy(), "{hello}");

    // Undeploy deletes Portainer's stack, and the swarm's with it.
    secrets.set(key, SecretString::from(password)).unwrap();
    let job = orch.start_undeploy_app(SERVER, "hello", false).unwrap();
    let job = orch.run_job(&job.id).await.unwrap();
    assert_eq!(
        job.status,
        livchat_store::JobStatus::Completed,
        "{:?}",
        job.error
    );
    assert!(fake.stack_names().is_empty());
    assert!(
        stack_changes(&fake)
            .iter()
            .any(|r| r.starts_with("DELETE /api/stacks/")),
        "{:?}",
        fake.requests()
    );
    assert!(matches!(
        rig.platform.stack_status("hello").await,
        Err(livchat_remote::PlatformError::NotFound { .. })
    ));

    // The bundle goes as it came, over SSH; the shared engine is left clean.
    let job = orch
        .start_undeploy(livchat_core::flows::UndeployParams {
            server: SERVER.into(),
            app: "infrastructure".into(),
            force: true,
            delete_data: true,
        })
        .unwrap();
    let job = orch.run_job(&job.id).await.unwrap();
    assert_eq!(
        job.status,
        livchat_store::JobStatus::Completed,
        "{:?}",
        job.error
    );
    assert!(
        !fake.requests().iter().any(|r| r.contains("infrastructure")),
        "the bundle reached Portainer: {:?}",
        fake.requests()
    );
}
