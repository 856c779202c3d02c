//! The job operations of the orchestrator (run_job, cancel_job, start_retry_job, wait_job) and
//! for_each_server, on real flows over the mocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use livchat_core::{CoreError, Orchestrator};
use livchat_store::{JobStatus, Store};
use tokio_util::sync::CancellationToken;

use super::support::*;

/// web-1 running redis, and an orchestrator whose platform removes the redis stack `times`.
fn undeploy_world(times: usize) -> (World, Arc<Orchestrator>) {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "infrastructure", &[]);
    world.put_deployment("web-1", "redis", &[]);
    let mut mocks = Mocks::default();
    if times > 0 {
        connects_pinned(&mut mocks.connector, MockRemoteExecutor::new(), 1);
    }
    mocks
        .platform
        .expect_remove_stack()
        .withf(|n| n == "redis")
        .times(times)
        .returning(|_| Ok(()));
    mocks
        .platform
        .expect_remove_secrets()
        .times(times)
        .returning(|names| Ok(names.to_vec()));
    let orch = world.build(mocks);
    (world, orch)
}

/// `run_job` leaves a watcher of cross-process cancel requests that polls every 500 ms and
/// holds the orchestrator until it sees the job ended; wait for it so the mocks are checked.
async fn settle(orch: &Arc<Orchestrator>) {
    for _ in 0..200 {
        if Arc::strong_count(orch) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the cancel watcher did not end after the job ended");
}

#[tokio::test]
async fn run_job_runs_a_queued_job_to_its_end_and_clears_its_owner_marker() {
    let (world, orch) = undeploy_world(1);
    let job = orch.start_undeploy_app("web-1", "redis", false).unwrap();
    assert_eq!(
        job.owner,
        Some(livchat_core::JobManager::this_process_owner()),
        "owned by this process"
    );
    assert!(
        job.params.get("_owner").is_none(),
        "the params are the user's only"
    );
    let done = orch.run_job(&job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(world.jobs()[&job.id].owner, None);
    assert!(!world.deployed_apps("web-1").contains(&"redis".to_string()));
    let err = orch.run_job(&job.id).await.unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("only a queued job can run")),
        "{err:?}"
    );
    settle(&orch).await;
    verify(orch);
}

#[tokio::test]
async fn cancel_job_of_a_queued_job_ends_it_cancelled_before_any_step_and_it_can_be_retried() {
    let (world, orch) = undeploy_world(1);
    let job = orch.start_undeploy_app("web-1", "redis", false).unwrap();
    let cancelled = orch.cancel_job(&job.id).unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(world.deployed_apps("web-1").contains(&"redis".to_string()));
    let err = orch.cancel_job(&job.id).unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("only a queued or running job can be cancelled")),
        "{err:?}"
    );
    // The stack is removed once, by the retry.
    let queued = orch.start_retry_job(&job.id).unwrap();
    assert_eq!((queued.status, queued.attempt), (JobStatus::Queued, 2));
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    verify(orch);
}

#[tokio::test]
async fn cancel_job_of_a_job_run_by_another_live_process_records_the_request_for_it() {
    let (world, orch) = undeploy_world(0);
    let job = orch.start_undeploy_app("web-1", "redis", false).unwrap();
    // PID 1 lives on every Linux host: the job looks owned by another running process.
    world
        .store
        .update_job(&job.id, "other owner", &mut |j| {
            j.owner = Some(livchat_store::JobOwner {
                pid: 1,
                host: livchat_store::this_host(),
            });
            Ok(())
        })
        .unwrap();
    let after = orch.cancel_job(&job.id).unwrap();
    assert_eq!(after.status, JobStatus::Queued, "that process ends it");
    assert!(after.cancel_requested);
    verify(orch);
}

#[tokio::test]
async fn start_retry_job_refuses_a_completed_or_unknown_job() {
    let (_world, orch) = undeploy_world(1);
    let job = orch.start_undeploy_app("web-1", "redis", false).unwrap();
    run(&orch, &job.id).await;
    let err = orch.start_retry_job(&job.id).unwrap_err().to_string();
    assert!(
        err.contains("only a failed, cancelled or interrupted job can be retried"),
        "{err}"
    );
    let err = orch.start_retry_job("job-nope").unwrap_err().to_string();
    assert!(err.contains("job `job-nope` not found"), "{err}");
    verify(orch);
}

#[tokio::test]
async fn wait_job_returns_when_the_job_ends_and_names_an_unknown_job() {
    let (_world, orch) = undeploy_world(1);
    let job = orch.start_undeploy_app("web-1", "redis", false).unwrap();
    let (ran, waited) = tokio::join!(run(&orch, &job.id), orch.wait_job(&job.id));
    let waited = waited.unwrap();
    assert_eq!(waited.status, JobStatus::Completed);
    assert_eq!(waited.finished_at, ran.finished_at);
    // An ended job is returned at once.
    let again = tokio::time::timeout(Duration::from_millis(100), orch.wait_job(&job.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.status, JobStatus::Completed);
    let err = orch.wait_job("job-nope").await.unwrap_err();
    assert!(
        matches!(err, CoreError::NotFound { kind: "job", .. }),
        "{err:?}"
    );
    verify(orch);
}

/// Records `owner` as the process running job `id` (a process that is gone, in these tests).
fn set_owner(world: &World, id: &str, owner: Option<livchat_store::JobOwner>) {
    world
        .store
        .update_job(id, "test owner", &mut |j| {
            j.owner = owner.clone();
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn wait_job_ends_a_job_whose_process_is_gone_as_interrupted_instead_of_waiting_forever() {
    // Issue #19: `job wait` and the follows of a job polled its status, and a job left
    // running by a process that died never changes status.
    let (world, orch) = undeploy_world(0);
    let job = orch.start_undeploy_app("web-1", "redis", false).unwrap();
    let gone = livchat_store::JobOwner {
        pid: u32::MAX,
        host: livchat_store::this_host(),
    };
    set_owner(&world, &job.id, Some(gone));
    let waited = tokio::time::timeout(Duration::from_secs(10), orch.wait_job(&job.id))
        .await
        .expect("the wait ended")
        .unwrap();
    assert_eq!(waited.status, JobStatus::Interrupted);
    assert!(
        waited
            .error
            .as_deref()
            .is_some_and(|e| e.contains("ended before it finished")),
        "{waited:?}"
    );
    verify(orch);
}

#[tokio::test]
async fn current_job_leaves_a_job_of_a_live_process_or_of_another_host_as_it_is() {
    let (world, orch) = undeploy_world(0);
    let job = orch.start_undeploy_app("web-1", "redis", false).unwrap();
    // Owned by this process: alive.
    assert_eq!(
        orch.current_job(&job.id).await.unwrap().status,
        JobStatus::Queued
    );
    // Another host's process cannot be checked from here: the caller's bound ends the wait.
    let elsewhere = livchat_store::JobOwner {
        pid: u32::MAX,
        host: "another-host.invalid".into(),
    };
    set_owner(&world, &job.id, Some(elsewhere));
    let waited = orch
        .wait_job_for(&job.id, Duration::from_millis(700))
        .await
        .unwrap();
    assert_eq!(waited.status, JobStatus::Queued);
    verify(orch);
}

#[tokio::test]
async fn follow_job_logs_prints_every_line_then_stops_at_its_timeout_while_the_job_runs_on() {
    let (_world, orch) = undeploy_world(0);
    let job = orch.start_undeploy_app("web-1", "redis", false).unwrap();
    let mut seen = 0;
    let started = std::time::Instant::now();
    let last = orch
        .follow_job_logs::<CoreError>(&job.id, 0, Duration::from_millis(600), &mut |lines| {
            seen += lines.len();
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(last.status, JobStatus::Queued, "the job was left as it was");
    assert_eq!(seen, orch.job_logs(&job.id, 0).unwrap().len());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "{took:?}"
    );
    verify(orch);
}

#[tokio::test]
async fn for_each_server_runs_at_most_the_given_number_at_once_and_returns_one_result_per_server_in_order()
 {
    let world = World::new();
    for name in ["web-1", "web-2", "web-3", "web-4"] {
        world.put_server(ready_server(name));
    }
    let mut mocks = Mocks::default();
    let (exec, host) = scripted_executor(|_, _| Ok(output(0, "ok\n", "")));
    let connected = connects_pinned(&mut mocks.connector, exec, 4);
    let orch = world.build(mocks);
    let names: Vec<String> = ["web-1", "ghost", "web-2", "web-3", "web-4"]
        .map(String::from)
        .to_vec();
    let in_flight = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let results = orch
        .for_each_server(&names, 2, |name| {
            let (orch, in_flight, most) = (&orch, &in_flight, &most);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                let out = orch
                    .server_exec(&name, &["uptime".into()], CancellationToken::new())
                    .await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                out
            }
        })
        .await;
    let order: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(order, ["web-1", "ghost", "web-2", "web-3", "web-4"]);
    for (name, result) in &results {
        match result {
            Ok(out) => assert_eq!(out.stdout, b"ok\n", "{name}"),
            Err(e) => {
                assert_eq!(name, "ghost");
                assert!(matches!(e, CoreError::NotFound { .. }), "{e:?}");
            }
        }
    }
    assert_eq!(most.load(Ordering::SeqCst), 2, "bounded, and concurrent");
    assert_eq!(host.count("uptime"), 4);
    let mut servers = connected.lock().unwrap().clone();
    servers.sort();
    assert_eq!(servers, ["web-1", "web-2", "web-3", "web-4"]);
    verify(orch);
}
