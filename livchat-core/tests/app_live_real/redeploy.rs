//! #13: redeploy health as the deploy job sees it on a real swarm. A good release completes; a
//! release that crashes a few seconds after starting fails the job with Swarm's own message,
//! the previous release serves again (its task of the old spec runs) and the state still
//! records the previous deploy, running; the good release then completes although the failed
//! tasks are in the service's history. `versioned` is in `tests/redeploy-apps`.

use std::sync::Arc;
use std::time::Duration;

use livchat_core::Orchestrator;
use livchat_core::model::CancellationToken;
use livchat_core::ops::{AppDeployed, AppStatus, LiveState, Operation};
use livchat_remote::{ContainerPlatform, ServiceExec};
use livchat_store::{DeploymentRecord, DeploymentStatus, JobRecord, JobStatus, Store};

use super::rig::{Rig, SERVER, apps_orchestrator, busybox, record_app, rig};

const APP: &str = "versioned";

async fn deploy(orch: &Arc<Orchestrator>, release: &str) -> JobRecord {
    let job = orch
        .start_deploy_app(SERVER, APP, &[format!("release={release}")])
        .unwrap();
    orch.run_job(&job.id).await.unwrap()
}

/// The RELEASE of the task that serves now, asked inside its container.
async fn serving_release(rig: &Rig) -> String {
    let out = rig
        .platform
        .exec_in_service(ServiceExec {
            stack: APP.into(),
            service: "app".into(),
            argv: ["sh", "-c", "echo $RELEASE"].map(String::from).to_vec(),
            stdin: None,
            user: None,
            timeout: Duration::from_secs(30),
            cancel: CancellationToken::new(),
        })
        .await
        .expect("a running task of versioned");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn record(rig: &Rig) -> DeploymentRecord {
    rig.store.load().unwrap().deployments[SERVER][APP].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_redeploy_job_fails_with_swarms_message_and_the_previous_release_serves_on() {
    let Some(rig) = rig().await else { return };
    if busybox().await.is_none() {
        return;
    }
    let apps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redeploy-apps");
    let (orch, _) = apps_orchestrator(&rig, &apps, None);
    // The infrastructure bundle is not what this is about: recorded as running, so the job
    // deploys `versioned` alone, over SSH.
    record_app(&rig.store, "infrastructure");
    let mut server = orch.server(SERVER).unwrap();
    server.platform = livchat_store::PlatformChoice::Ssh;
    rig.store
        .update("test platform", &mut |s| {
            s.servers.insert(SERVER.into(), server.clone());
            Ok(())
        })
        .unwrap();

    let job = deploy(&orch, "1").await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(serving_release(&rig).await, "1");
    let first = record(&rig);
    assert_eq!(first.status, DeploymentStatus::Running);

    // The crashing release: Swarm pauses its update (or, on a loaded machine, its tasks of the
    // new spec fail); either way the job fails with what Swarm said.
    let job = deploy(&orch, "crash-2").await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.clone().unwrap_or_default();
    assert!(
        error.contains("update paused") || error.contains("non-zero exit (3)"),
        "{error}"
    );
    // What the failed redeploy leaves: release 1 serving, Swarm's rollback completed, and the
    // state still holding the first deploy's record (not the crashing release as running).
    assert_eq!(serving_release(&rig).await, "1");
    let status = AppStatus {
        server: SERVER.into(),
        app: Some(APP.into()),
    }
    .run(&orch)
    .await
    .unwrap();
    // Live, the app is `degraded` as documented for a rolled-back update: its one replica of
    // the previous spec runs, and the swarm says the last update was rolled back.
    assert_eq!(status[0].state, LiveState::Degraded, "{status:?}");
    let service = &status[0].services[0];
    assert_eq!((service.running, service.desired), (1, 1), "{service:?}");
    assert_eq!(
        service.update_state.as_deref(),
        Some("rollback_completed"),
        "{service:?}"
    );
    assert_eq!(record(&rig), first, "the record describes release 1");
    let deployed = AppDeployed {
        server: SERVER.into(),
    }
    .run(&orch)
    .await
    .unwrap();
    let view = deployed.iter().find(|d| d.app == APP).unwrap();
    assert_eq!(view.status, DeploymentStatus::Running);
    assert_eq!(view.deployed_at, first.deployed_at);

    // The good release again, the very spec that runs after the rollback: the crashing
    // release's failed tasks are of another spec and do not count, nor does the rollback.
    let job = deploy(&orch, "1").await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(serving_release(&rig).await, "1");
    let last = record(&rig);
    assert_eq!(last.status, DeploymentStatus::Running);
    assert!(last.deployed_at > first.deployed_at, "recorded anew");

    let job = orch.start_undeploy_app(SERVER, APP, false).unwrap();
    let job = orch.run_job(&job.id).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
}
