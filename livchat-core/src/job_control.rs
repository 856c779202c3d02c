//! The orchestrator's job control: running, retrying, taking over, cancelling, waiting for and
//! following jobs, across the processes that share one home (the CLI, `livchat-api`,
//! `livchat-mcp`). What a job does is in `flows/`; how its record changes is `jobs.rs`.

use std::sync::Arc;
use std::time::Duration;

use livchat_store::{JobOwner, JobRecord, JobStatus, LogLine, StoreExt};
use tokio_util::sync::CancellationToken;

use crate::error::{CoreError, Result};
use crate::jobs::JobKind;
use crate::orchestrator::Orchestrator;

impl Orchestrator {
    /// Marks jobs whose process is gone as interrupted (see [`JobManager::recover_interrupted`]).
    pub fn recover_interrupted_jobs(&self) -> Result<Vec<String>> {
        self.jobs.recover_interrupted(&|job| {
            job_owner(job).is_some_and(|(pid, host)| {
                host == livchat_store::this_host() && livchat_store::process_alive(pid)
            })
        })
    }

    /// A job as it stands now. A job left queued or running by a process that is gone can
    /// never end by itself, so it is marked interrupted here (as opening a home does): whoever
    /// waits for a job or follows it sees it end instead of waiting forever.
    ///
    /// A job owned by a process on another host is taken as alive (it cannot be checked from
    /// here; callers bound their wait). Before calling a job abandoned it is read again a
    /// moment later: a job handed to a background process (`--detach`) is queued under the
    /// starting process, which may end just before the background one takes it over.
    pub async fn current_job(&self, id: &str) -> Result<JobRecord> {
        let job = self.jobs.get(id)?;
        if !abandoned(&job) {
            return Ok(job);
        }
        tokio::time::sleep(OWNER_RECHECK).await;
        let again = self.jobs.get(id)?;
        if !abandoned(&again) || again.attempt != job.attempt {
            return Ok(again);
        }
        // Only this job: the others are for their own readers (or the next open) to judge.
        self.jobs
            .recover_interrupted(&|j| j.id != id || !abandoned(j))?;
        self.jobs.get(id)
    }

    /// Prints (through `on_lines`) a job's log from line `from` on as it grows, until the job
    /// ends (an abandoned job ends interrupted, see [`Orchestrator::current_job`]) or `timeout`
    /// passes. Returns the job as it was last read: still queued or running means the timeout.
    pub async fn follow_job_logs<E: From<CoreError>>(
        &self,
        id: &str,
        from: usize,
        timeout: Duration,
        on_lines: &mut (dyn FnMut(&[LogLine]) -> std::result::Result<(), E> + Send),
    ) -> std::result::Result<JobRecord, E> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut from = from;
        loop {
            // The record before the log: once it says ended, the log read after it is whole.
            let job = self.current_job(id).await?;
            let lines = self.job_logs(id, from)?;
            from += lines.len();
            if !lines.is_empty() {
                on_lines(&lines)?;
            }
            let now = tokio::time::Instant::now();
            if crate::jobs::is_ended(job.status) || now >= deadline {
                return Ok(job);
            }
            tokio::time::sleep(FOLLOW_POLL.min(deadline - now)).await;
        }
    }

    /// Runs a queued job in this task until it ends; the record says how it ended.
    pub async fn run_job(self: &Arc<Self>, id: &str) -> Result<JobRecord> {
        let ctx = self.jobs.prepare(id)?;
        self.watch_cancel_requests(id, ctx.cancel_token());
        let job = self.jobs.run(id, self.as_ref()).await;
        self.release_job(id)?;
        job
    }

    /// Puts a failed, cancelled or interrupted job back in the queue, owned by this process;
    /// [`Orchestrator::run_job`] then resumes it from its first incomplete step.
    pub fn start_retry_job(&self, id: &str) -> Result<JobRecord> {
        let job = self.jobs.get(id)?;
        if !self.config.wait_turn
            && let Some(server) = job.server.as_deref()
            && let Some(other) = self
                .store
                .live_jobs()?
                .into_iter()
                .find(|j| j.id != id && j.occupies(server))
        {
            return Err(crate::jobs::busy_error(&other));
        }
        self.jobs.retry(id)
    }

    /// Takes over a queued job that another process of this home created (the CLI's
    /// `--detach` hands its job to a background process this way). Only a queued job can be
    /// taken: a running one belongs to the process running it.
    pub fn adopt_job(&self, id: &str) -> Result<JobRecord> {
        let (job, ()) = self
            .store
            .update_job_with(id, "job adopt", |job| {
                if job.status != JobStatus::Queued {
                    return Err(livchat_store::StoreError::Rejected(format!(
                        "job {id} is not queued; only a queued job can be taken over"
                    )));
                }
                job.owner = Some(crate::jobs::this_process());
                job.cancel_requested = false;
                Ok(())
            })?
            .ok_or_else(|| crate::jobs::job_not_found(id))?;
        Ok(job)
    }

    /// Cancels a job: in this process through its token; in another process by recording the
    /// request, which that process polls between and during steps.
    pub fn cancel_job(&self, id: &str) -> Result<JobRecord> {
        let job = self.jobs.get(id)?;
        let owned_elsewhere = job_owner(&job).is_some_and(|(pid, host)| {
            (pid != std::process::id() || host != livchat_store::this_host())
                && livchat_store::process_alive(pid)
        });
        if owned_elsewhere && matches!(job.status, JobStatus::Running | JobStatus::Queued) {
            self.jobs
                .edit_if_present(id, "job cancel request", |j| j.cancel_requested = true)?;
            return self.jobs.get(id);
        }
        self.jobs.cancel(id)
    }

    /// Waits until a job ends (polling the store, so it works for jobs of other processes); a
    /// job whose process is gone ends interrupted (see [`Orchestrator::current_job`]).
    pub async fn wait_job(&self, id: &str) -> Result<JobRecord> {
        loop {
            let job = self.current_job(id).await?;
            if crate::jobs::is_ended(job.status) {
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// [`Orchestrator::wait_job`] for at most `timeout`; the job as it is then.
    pub async fn wait_job_for(&self, id: &str, timeout: Duration) -> Result<JobRecord> {
        match tokio::time::timeout(timeout, self.wait_job(id)).await {
            Ok(job) => job,
            Err(_) => self.jobs.get(id),
        }
    }

    /// The log of a job from line `from` on.
    pub fn job_logs(&self, id: &str, from: usize) -> Result<Vec<LogLine>> {
        self.jobs.logs(id, from)
    }

    /// Records that no process runs a job any more (the job's owner is set where it is
    /// created, retried or taken over, in the same write).
    pub(crate) fn release_job(&self, id: &str) -> Result<()> {
        self.jobs.edit_if_present(id, "job owner", |j| {
            j.owner = None;
            // A request left from an earlier attempt must not cancel the next one.
            j.cancel_requested = false;
        })?;
        Ok(())
    }

    /// Creates a job owned by this process.
    pub(crate) fn create_job(
        &self,
        kind: JobKind,
        server: Option<&str>,
        params: serde_json::Value,
        steps: Vec<String>,
    ) -> Result<JobRecord> {
        if self.config.wait_turn {
            self.jobs.create(kind, server, params, steps)
        } else {
            self.jobs.create_exclusive(kind, server, params, steps)
        }
    }

    /// Polls the store for a cancel request made by another process, and cancels `token`.
    pub(crate) fn watch_cancel_requests(self: &Arc<Self>, id: &str, token: CancellationToken) {
        let this = Arc::clone(self);
        let id = id.to_string();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                match this.jobs.get(&id) {
                    Ok(job) if crate::jobs::is_ended(job.status) => return,
                    Ok(job) if job.cancel_requested => {
                        token.cancel();
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
    }
}

fn job_owner(job: &JobRecord) -> Option<(u32, String)> {
    job.owner.as_ref().map(|o| (o.pid, o.host.clone()))
}

/// How often [`Orchestrator::follow_job_logs`] reads the job and its log.
const FOLLOW_POLL: Duration = Duration::from_millis(300);

/// How long [`Orchestrator::current_job`] waits before reading a job that looks abandoned again.
const OWNER_RECHECK: Duration = Duration::from_millis(250);

/// Queued or running with no owner, or with an owner on this host whose process is gone.
fn abandoned(job: &JobRecord) -> bool {
    job.is_live() && !job.owner.as_ref().is_some_and(JobOwner::may_be_alive)
}
