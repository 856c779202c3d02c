//! Running a job in this process and following it: the sequence every frontend needs (the
//! CLI's progress bar, REST's 202 + Server-Sent Events, MCP's progress notifications).

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::JobView;
use crate::{CoreError, JobEvent, Orchestrator, Result};

/// A job running in this process. Dropping the handle does not stop the job: it runs until it
/// ends, is cancelled, or the process exits (then the next process finds it `interrupted`).
#[derive(Debug)]
pub struct JobHandle {
    pub id: String,
    orch: Arc<Orchestrator>,
    first_events: Option<broadcast::Receiver<JobEvent>>,
    cancel: CancellationToken,
    join: JoinHandle<Result<livchat_store::JobRecord>>,
}

impl JobHandle {
    /// The job's events. The first call gets every event since the job started; later calls
    /// get those from now on (the job log holds the rest).
    pub fn events(&mut self) -> broadcast::Receiver<JobEvent> {
        match self.first_events.take() {
            Some(rx) => rx,
            None => self
                .orch
                .subscribe_job(&self.id)
                .unwrap_or_else(|| broadcast::channel(1).1),
        }
    }

    /// Cancels the job: the remote command in flight is stopped, then its clean-up runs.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels the job when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits until the job ends; the view says how it ended.
    pub async fn join(self) -> Result<JobView> {
        let record = self
            .join
            .await
            .map_err(|e| CoreError::Refused(format!("job {} task failed: {e}", self.id)))??;
        Ok(record.into())
    }
}

impl Orchestrator {
    /// Runs a queued job (one a job operation recorded, or a retry) in a task of this process
    /// and returns at once. The job is owned by this process: others can follow and cancel it.
    pub fn spawn_job(self: &Arc<Self>, id: &str) -> Result<JobHandle> {
        let ctx = self.jobs.prepare(id)?;
        let first_events = self.jobs.subscribe(id);
        let this = Arc::clone(self);
        let job_id = id.to_string();
        let join = self.spawn_for_jobs(async move { this.run_job(&job_id).await });
        Ok(JobHandle {
            id: id.to_string(),
            orch: Arc::clone(self),
            first_events,
            cancel: ctx.cancel_token(),
            join,
        })
    }

    /// A runtime for a long-lived process's jobs, to give to [`Orchestrator::run_jobs_on`]
    /// (threads named `livchat-job`, one per core).
    pub fn job_runtime() -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("livchat-job")
            .enable_all()
            .build()
    }

    /// Runs this process's jobs on `runtime` from now on (see [`Orchestrator::spawn_for_jobs`]);
    /// the first call wins.
    pub fn run_jobs_on(&self, runtime: tokio::runtime::Handle) {
        let _ = self.job_runtime.set(runtime);
    }

    /// Spawns `task` where this process runs its jobs: the runtime given to
    /// [`Orchestrator::run_jobs_on`], else the current one. A job writes its record with fsync
    /// from async code; a service that answers requests on the same worker threads would
    /// answer them late whenever the disk is slow, so it gives its jobs a runtime of their own.
    pub fn spawn_for_jobs<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.job_runtime.get() {
            Some(runtime) => runtime.spawn(task),
            None => tokio::spawn(task),
        }
    }

    /// The events of a job while it runs in this process (`None` when it does not: follow its
    /// log and record instead).
    pub fn subscribe_job(&self, id: &str) -> Option<broadcast::Receiver<JobEvent>> {
        self.jobs.subscribe(id)
    }
}
