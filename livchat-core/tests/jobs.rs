//! The job system against the in-memory store and a scripted step runner: statuses, progress,
//! logs with secrets redacted, cancel, retry from the first incomplete step, one job at a time
//! per server, hard timeouts, interruption after a restart, cleanup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use livchat_core::jobs::JobManager;
use livchat_core::{CoreError, JobContext, JobEvent, JobKind, StepRunner};
use livchat_store::{JobRecord, JobStatus, MemoryJobLogs, MemoryStore};
use secrecy::SecretString;
use serde_json::{Value, json};

/// What a scripted step does.
#[derive(Clone)]
enum Script {
    Ok,
    FailOnce(&'static str),
    Sleep(Duration),
    /// Gives the job these remaining steps (this one first), as setup's `connect` does once
    /// it knows the OS.
    Discover(&'static [&'static str]),
}

#[derive(Default)]
struct Runner {
    scripts: Mutex<HashMap<String, Script>>,
    ran: Mutex<Vec<String>>,
    cleanups: AtomicUsize,
    /// For `Script::Discover`.
    manager: std::sync::OnceLock<Arc<JobManager>>,
}

impl Runner {
    fn with(scripts: &[(&str, Script)]) -> Self {
        let r = Runner::default();
        for (s, sc) in scripts {
            r.scripts.lock().unwrap().insert(s.to_string(), sc.clone());
        }
        r
    }
    fn ran(&self) -> Vec<String> {
        self.ran.lock().unwrap().clone()
    }
}

#[async_trait]
impl StepRunner for Runner {
    async fn run_step(
        &self,
        ctx: &JobContext,
        job: &JobRecord,
        step: &str,
    ) -> livchat_core::Result<Value> {
        self.ran.lock().unwrap().push(step.to_string());
        let script = self
            .scripts
            .lock()
            .unwrap()
            .get(step)
            .cloned()
            .unwrap_or(Script::Ok);
        match script {
            Script::Ok => {
                ctx.hide(&SecretString::from("sup3r-s3cret-value".to_string()));
                ctx.info(format!("{step} used sup3r-s3cret-value"));
                Ok(json!({ step: "done" }))
            }
            Script::FailOnce(msg) => {
                self.scripts
                    .lock()
                    .unwrap()
                    .insert(step.to_string(), Script::Ok);
                Err(CoreError::Step {
                    step: step.into(),
                    message: msg.into(),
                })
            }
            Script::Discover(more) => {
                let manager = self.manager.get().expect("the test sets the manager");
                manager.set_remaining_steps(&job.id, steps(more))?;
                Ok(Value::Null)
            }
            Script::Sleep(d) => {
                let token = ctx.cancel_token();
                tokio::select! {
                    () = tokio::time::sleep(d) => Ok(Value::Null),
                    () = token.cancelled() => Err(CoreError::Cancelled),
                }
            }
        }
    }

    async fn clean_up(
        &self,
        _ctx: &JobContext,
        _job: &JobRecord,
        _e: &CoreError,
    ) -> livchat_core::Result<()> {
        self.cleanups.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn manager() -> (Arc<JobManager>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let jobs = Arc::new(JobManager::new(
        store.clone(),
        Arc::new(MemoryJobLogs::default()),
    ));
    (jobs, store)
}

fn steps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_job_runs_every_step_in_order_and_completes_at_100_percent() {
    let (jobs, _) = manager();
    let runner = Runner::default();
    let job = jobs
        .create(
            JobKind::SetupServer,
            Some("web-1"),
            json!({}),
            steps(&["a", "b", "c"]),
        )
        .unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    let done = jobs.run(&job.id, &runner).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.progress, 100);
    assert_eq!(done.steps_completed, steps(&["a", "b", "c"]));
    assert!(done.steps_remaining.is_empty());
    assert_eq!(done.result.unwrap()["b"], "done");
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    assert_eq!(runner.ran(), steps(&["a", "b", "c"]));
}

#[tokio::test]
async fn steps_given_by_the_last_step_still_run_before_the_job_completes() {
    let (jobs, _) = manager();
    let runner = Runner::with(&[("a", Script::Discover(&["a", "b", "c"]))]);
    runner.manager.set(jobs.clone()).ok();
    let job = jobs
        .create(
            JobKind::SetupServer,
            Some("web-1"),
            json!({}),
            steps(&["a"]),
        )
        .unwrap();
    let done = jobs.run(&job.id, &runner).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(runner.ran(), steps(&["a", "b", "c"]));
    assert_eq!(done.steps_completed, steps(&["a", "b", "c"]));
    assert!(done.steps_remaining.is_empty());
}

#[tokio::test]
async fn secrets_registered_by_a_step_never_reach_the_job_log() {
    let (jobs, _) = manager();
    let job = jobs
        .create(JobKind::DeployApp, None, json!({}), steps(&["a"]))
        .unwrap();
    jobs.run(&job.id, &Runner::default()).await.unwrap();
    let logs = jobs.logs(&job.id, 0).unwrap();
    assert!(
        logs.iter().any(|l| l.message.contains("a used [REDACTED]")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .all(|l| !l.message.contains("sup3r-s3cret-value"))
    );
}

#[tokio::test]
async fn a_failed_step_fails_the_job_naming_it_and_cleans_up() {
    let (jobs, _) = manager();
    let runner = Runner::with(&[("b", Script::FailOnce("disk full"))]);
    let job = jobs
        .create(
            JobKind::DeployApp,
            Some("s"),
            json!({}),
            steps(&["a", "b", "c"]),
        )
        .unwrap();
    let done = jobs.run(&job.id, &runner).await.unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("step `b` failed: disk full"), "{error}");
    assert_eq!(done.steps_completed, steps(&["a"]));
    assert_eq!(done.steps_remaining, steps(&["b", "c"]));
    assert_eq!(runner.cleanups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retry_resumes_at_the_first_incomplete_step() {
    let (jobs, _) = manager();
    let runner = Runner::with(&[("b", Script::FailOnce("flaky"))]);
    let job = jobs
        .create(
            JobKind::DeployApp,
            Some("s"),
            json!({}),
            steps(&["a", "b", "c"]),
        )
        .unwrap();
    jobs.run(&job.id, &runner).await.unwrap();
    let queued = jobs.retry(&job.id).unwrap();
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.attempt, 2);
    let done = jobs.run(&job.id, &runner).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    // `a` ran once: the retry started at `b`.
    assert_eq!(runner.ran(), steps(&["a", "b", "b", "c"]));
}

#[tokio::test]
async fn retry_of_a_completed_job_is_refused() {
    let (jobs, _) = manager();
    let job = jobs
        .create(JobKind::DeployApp, None, json!({}), steps(&["a"]))
        .unwrap();
    jobs.run(&job.id, &Runner::default()).await.unwrap();
    let err = jobs.retry(&job.id).unwrap_err().to_string();
    assert!(
        err.contains("only a failed, cancelled or interrupted job can be retried"),
        "{err}"
    );
}

#[tokio::test]
async fn cancel_stops_the_running_step_and_the_job_ends_cancelled() {
    let (jobs, _) = manager();
    let runner = Arc::new(Runner::with(&[(
        "slow",
        Script::Sleep(Duration::from_secs(600)),
    )]));
    let job = jobs
        .create(
            JobKind::SetupServer,
            Some("s"),
            json!({}),
            steps(&["slow", "after"]),
        )
        .unwrap();
    let ctx = jobs.prepare(&job.id).unwrap();
    let mut events = jobs.subscribe(&job.id).unwrap();
    let handle = {
        let (jobs, runner, id) = (jobs.clone(), runner.clone(), job.id.clone());
        tokio::spawn(async move { jobs.run(&id, runner.as_ref()).await })
    };
    // Wait until the slow step is running, then cancel.
    loop {
        if let Ok(JobEvent::Progress { step: Some(s), .. }) = events.recv().await
            && s == "slow"
        {
            break;
        }
    }
    jobs.cancel(&job.id).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert!(ctx.cancel_token().is_cancelled());
    assert!(!runner.ran().contains(&"after".to_string()));
    // A cancelled job can be retried and resumes at the cancelled step.
    runner
        .scripts
        .lock()
        .unwrap()
        .insert("slow".into(), Script::Ok);
    jobs.retry(&job.id).unwrap();
    let done = jobs.run(&job.id, runner.as_ref()).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.steps_completed, steps(&["slow", "after"]));
}

#[tokio::test]
async fn a_job_that_exceeds_its_hard_timeout_fails_and_its_step_is_cancelled() {
    let (jobs, _) = manager();
    jobs.set_timeout(JobKind::UndeployApp, Duration::from_millis(200));
    let runner = Runner::with(&[("slow", Script::Sleep(Duration::from_secs(600)))]);
    let job = jobs
        .create(JobKind::UndeployApp, None, json!({}), steps(&["slow"]))
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), jobs.run(&job.id, &runner))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert!(done.error.unwrap().contains("timed out"));
}

#[tokio::test]
async fn two_jobs_on_one_server_run_one_after_the_other() {
    let (jobs, _) = manager();
    let runner = Arc::new(Runner::with(&[(
        "first",
        Script::Sleep(Duration::from_millis(300)),
    )]));
    let a = jobs
        .create(
            JobKind::DeployApp,
            Some("web-1"),
            json!({}),
            steps(&["first"]),
        )
        .unwrap();
    let b = jobs
        .create(
            JobKind::DeployApp,
            Some("web-1"),
            json!({}),
            steps(&["second"]),
        )
        .unwrap();
    let run = |id: String| {
        let (jobs, runner) = (jobs.clone(), runner.clone());
        tokio::spawn(async move { jobs.run(&id, runner.as_ref()).await.unwrap() })
    };
    let ha = run(a.id.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let hb = run(b.id.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        jobs.get(&b.id).unwrap().status,
        JobStatus::Queued,
        "b waits while a runs"
    );
    let (ra, rb) = (ha.await.unwrap(), hb.await.unwrap());
    assert_eq!(ra.status, JobStatus::Completed);
    assert_eq!(rb.status, JobStatus::Completed);
    assert!(rb.started_at.unwrap() >= ra.finished_at.unwrap());
}

#[tokio::test]
async fn jobs_left_running_by_a_dead_process_become_interrupted_and_retryable() {
    let (jobs, store) = manager();
    let job = jobs
        .create(
            JobKind::SetupServer,
            Some("s"),
            json!({}),
            steps(&["a", "b"]),
        )
        .unwrap();
    livchat_store::Store::update_job(store.as_ref(), &job.id, "simulate crash", &mut |j| {
        j.status = JobStatus::Running;
        j.steps_completed = steps(&["a"]);
        j.steps_remaining = steps(&["b"]);
        Ok(())
    })
    .unwrap();
    // A fresh manager over the same store, as after a restart.
    let restarted = JobManager::new(store.clone(), Arc::new(MemoryJobLogs::default()));
    let ids = restarted.recover_interrupted(&|_| false).unwrap();
    assert_eq!(ids, vec![job.id.clone()]);
    assert_eq!(
        restarted.get(&job.id).unwrap().status,
        JobStatus::Interrupted
    );
    restarted.retry(&job.id).unwrap();
    let runner = Runner::default();
    let done = restarted.run(&job.id, &runner).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(runner.ran(), steps(&["b"]));
}

#[tokio::test]
async fn live_jobs_are_not_marked_interrupted() {
    let (jobs, store) = manager();
    let job = jobs
        .create(JobKind::SetupServer, None, json!({}), steps(&["a"]))
        .unwrap();
    let ids = jobs.recover_interrupted(&|_| true).unwrap();
    assert!(ids.is_empty());
    assert_eq!(
        livchat_store::Store::job(store.as_ref(), &job.id)
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Queued
    );
}

#[tokio::test]
async fn cleanup_removes_only_ended_jobs_older_than_the_cutoff() {
    let (jobs, _) = manager();
    let done = jobs
        .create(JobKind::DeployApp, None, json!({}), steps(&["a"]))
        .unwrap();
    jobs.run(&done.id, &Runner::default()).await.unwrap();
    let queued = jobs
        .create(JobKind::DeployApp, None, json!({}), steps(&["a"]))
        .unwrap();
    let removed = jobs
        .cleanup(chrono::Utc::now() + chrono::TimeDelta::seconds(1), None)
        .unwrap();
    assert_eq!(removed, vec![done.id.clone()]);
    assert!(jobs.get(&done.id).is_err());
    assert!(jobs.logs(&done.id, 0).is_err());
    assert_eq!(jobs.get(&queued.id).unwrap().status, JobStatus::Queued);
}

#[tokio::test]
async fn unknown_job_ids_and_statuses_get_clear_errors() {
    let (jobs, _) = manager();
    let err = jobs.get("job-nope").unwrap_err().to_string();
    assert_eq!(err, "job `job-nope` not found");
    let err = livchat_core::jobs::parse_status("done")
        .unwrap_err()
        .to_string();
    assert!(err.contains("allowed: queued, running, completed"), "{err}");
}
