//! The job system: every long operation is a job with named, idempotent steps, recorded in the
//! store so that progress survives the process, a retry resumes from the first incomplete step,
//! and a job found running after a restart becomes `interrupted`.
//!
//! ```text
//!  create ──▶ queued ──(server free)──▶ running ──▶ completed
//!                │                         ├──────▶ failed      ─┐
//!                └──── cancel ─────────────┴──────▶ cancelled   ─┼─ retry ──▶ queued
//!            (process died while running) ───────▶ interrupted ─┘
//! ```
//!
//! The manager knows nothing about what a step does: the orchestrator hands it a
//! [`StepRunner`]. One job at a time per server (others wait, queued); a hard timeout per job
//! kind; cancellation reaches the running step through its [`CancellationToken`] (the SSH
//! command in flight is aborted by the executor).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use livchat_store::{JobLogStore, JobRecord, JobStatus, LogLevel, LogLine, Store, StoreExt};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::error::{CoreError, Result};
use crate::redact::Redactor;

/// What a job does. The kind decides its steps (through the orchestrator) and its hard timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    CreateServer,
    SetupServer,
    DeployApp,
    UndeployApp,
    DeleteServer,
    JoinCluster,
    LeaveCluster,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::CreateServer => "create_server",
            JobKind::SetupServer => "setup_server",
            JobKind::DeployApp => "deploy_app",
            JobKind::UndeployApp => "undeploy_app",
            JobKind::DeleteServer => "delete_server",
            JobKind::JoinCluster => "join_cluster",
            JobKind::LeaveCluster => "leave_cluster",
        }
    }

    pub fn parse(kind: &str) -> Result<Self> {
        Ok(match kind {
            "create_server" => JobKind::CreateServer,
            "setup_server" => JobKind::SetupServer,
            "deploy_app" => JobKind::DeployApp,
            "undeploy_app" => JobKind::UndeployApp,
            "delete_server" => JobKind::DeleteServer,
            "join_cluster" => JobKind::JoinCluster,
            "leave_cluster" => JobKind::LeaveCluster,
            other => {
                return Err(CoreError::invalid(
                    "job kind",
                    format!("`{other}` is not a job kind this version knows"),
                ));
            }
        })
    }

    /// The hard timeout: no job of this kind stays running longer. Generous multiples of the
    /// times product.md gives (create 2-5 min, setup 5-10 min, deploy 2-5 min per app).
    pub fn default_timeout(self) -> Duration {
        let minutes = match self {
            JobKind::CreateServer => 20,
            JobKind::SetupServer => 45,
            JobKind::DeployApp => 60,
            JobKind::UndeployApp => 15,
            JobKind::DeleteServer => 15,
            JobKind::JoinCluster | JobKind::LeaveCluster => 15,
        };
        Duration::from_secs(minutes * 60)
    }
}

/// What a job stream carries to frontends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    /// Progress changed.
    Progress {
        progress: u8,
        step: Option<String>,
        steps_done: usize,
        steps_total: usize,
    },
    /// A log line (already redacted).
    Log(LogLine),
    /// The job ended.
    Finished {
        status: JobStatus,
        error: Option<String>,
    },
}

/// Runs the steps of jobs. Implemented by the orchestrator.
#[async_trait]
pub trait StepRunner: Send + Sync {
    /// Runs one step of the job. Steps are idempotent: a retry runs the failed step again.
    /// Returns a value to merge into the job's result (or `Null`).
    async fn run_step(
        &self,
        ctx: &JobContext,
        job: &JobRecord,
        step: &str,
    ) -> Result<serde_json::Value>;

    /// Called once when the job fails or is cancelled, to remove what this job created (no
    /// orphans). Errors here are logged, not returned: the job's own error is what matters.
    async fn clean_up(&self, ctx: &JobContext, job: &JobRecord, error: &CoreError) -> Result<()>;
}

/// Handed to each step: logging (redacted), cancellation, secrets to hide.
#[derive(Clone)]
pub struct JobContext {
    pub job_id: String,
    cancel: CancellationToken,
    redactor: Arc<Redactor>,
    logs: Arc<dyn JobLogStore>,
    events: broadcast::Sender<JobEvent>,
    /// Later steps a step found done already (see [`JobContext::done_ahead`]).
    ahead: Arc<Mutex<Vec<DoneAhead>>>,
}

/// A later step of the job that a step found done already, with the line its log gets.
#[derive(Debug, Clone)]
struct DoneAhead {
    step: String,
    message: String,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job_id", &self.job_id)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The token that cancels this job; pass it to every remote call.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Fails with `Cancelled` if the job was cancelled (checked between steps and inside loops).
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(CoreError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Registers a secret so it never appears in this job's logs.
    pub fn hide(&self, secret: &SecretString) {
        self.redactor.add(secret);
    }

    /// Redacts a message with the secrets registered so far.
    pub fn redact(&self, message: &str) -> String {
        self.redactor.redact(message)
    }

    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        let line = LogLine {
            timestamp: Utc::now(),
            level,
            message: self.redactor.redact(message.as_ref()),
        };
        if let Err(e) = self.logs.append(&self.job_id, &line) {
            tracing::warn!(job = %self.job_id, "could not append to the job log: {e}");
        }
        let _ = self.events.send(JobEvent::Log(line));
    }

    pub fn info(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Info, message);
    }

    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Warn, message);
    }

    /// Declares a later step of this job done already (a setup re-run checks every step in
    /// one round trip): when it comes up it is recorded complete without running, together
    /// with the declared steps right after it, in one store write, and its log says `message`.
    /// The caller vouches that the steps running before it cannot undo it. Kept in memory
    /// only: a retry in another process runs the step, which is idempotent.
    pub fn done_ahead(&self, step: impl Into<String>, message: impl Into<String>) {
        self.ahead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(DoneAhead {
                step: step.into(),
                message: message.into(),
            });
    }

    /// Takes the declared steps that lead `remaining`, in its order.
    fn take_done_ahead(&self, remaining: &[String]) -> Vec<DoneAhead> {
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = Vec::new();
        for step in remaining {
            let Some(at) = ahead.iter().position(|a| a.step == *step) else {
                break;
            };
            taken.push(ahead.remove(at));
        }
        taken
    }
}

struct Live {
    cancel: CancellationToken,
    events: broadcast::Sender<JobEvent>,
}

/// Creates, runs, cancels, retries and cleans up jobs.
pub struct JobManager {
    store: Arc<dyn Store>,
    logs: Arc<dyn JobLogStore>,
    live: Mutex<HashMap<String, Live>>,
    server_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    timeouts: Mutex<HashMap<JobKind, Duration>>,
}

impl std::fmt::Debug for JobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobManager").finish_non_exhaustive()
    }
}

/// A new job's id: time-ordered so `job list` sorts naturally, unique by its random tail.
fn new_job_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("job-{}-{}", Utc::now().format("%Y%m%d%H%M%S"), &uuid[..8])
}

impl JobManager {
    /// This process, as the owner recorded on the jobs it creates or retries.
    pub fn this_process_owner() -> livchat_store::JobOwner {
        this_process()
    }

    pub fn new(store: Arc<dyn Store>, logs: Arc<dyn JobLogStore>) -> Self {
        Self {
            store,
            logs,
            live: Mutex::new(HashMap::new()),
            server_locks: Mutex::new(HashMap::new()),
            timeouts: Mutex::new(HashMap::new()),
        }
    }

    /// Overrides the hard timeout of a job kind (tests; operators with slow mirrors).
    pub fn set_timeout(&self, kind: JobKind, timeout: Duration) {
        self.timeouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, timeout);
    }

    fn timeout_of(&self, kind: JobKind) -> Duration {
        self.timeouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.default_timeout())
    }

    /// Records a new queued job with its planned steps. A job on a busy server waits for its
    /// turn when it runs; [`JobManager::create_exclusive`] refuses it instead.
    pub fn create(
        &self,
        kind: JobKind,
        server: Option<&str>,
        params: serde_json::Value,
        steps: Vec<String>,
    ) -> Result<JobRecord> {
        self.create_checked(kind, server, params, steps, false)
    }

    /// Like [`JobManager::create`], but refused at once (naming the job in the way) while
    /// another job of any live process is queued or running on the same server. The check and
    /// the insert are one store transaction, so two processes cannot both get in.
    pub fn create_exclusive(
        &self,
        kind: JobKind,
        server: Option<&str>,
        params: serde_json::Value,
        steps: Vec<String>,
    ) -> Result<JobRecord> {
        self.create_checked(kind, server, params, steps, true)
    }

    fn create_checked(
        &self,
        kind: JobKind,
        server: Option<&str>,
        params: serde_json::Value,
        steps: Vec<String>,
        exclusive: bool,
    ) -> Result<JobRecord> {
        let record = JobRecord {
            id: new_job_id(),
            kind: kind.as_str().to_string(),
            server: server.map(str::to_string),
            status: JobStatus::Queued,
            progress: 0,
            current_step: None,
            steps_completed: Vec::new(),
            steps_remaining: steps,
            params,
            result: None,
            error: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            attempt: 1,
            // Created here to run here: a restart elsewhere can tell it from a live one.
            owner: Some(this_process()),
            cancel_requested: false,
        };
        if let Some(job) = self.store.insert_job(&record, exclusive)? {
            return Err(busy_error(&job));
        }
        Ok(record)
    }

    /// One job.
    pub fn get(&self, id: &str) -> Result<JobRecord> {
        self.store
            .job(id)?
            .ok_or_else(|| CoreError::not_found("job", id))
    }

    /// Changes one job in the store; a job that is gone is an error.
    fn edit<T>(
        &self,
        id: &str,
        operation: &str,
        f: impl FnOnce(&mut JobRecord) -> std::result::Result<T, livchat_store::StoreError>,
    ) -> Result<(JobRecord, T)> {
        self.store
            .update_job_with(id, operation, f)?
            .ok_or_else(|| job_not_found(id).into())
    }

    /// Changes one job in the store if it still exists (a job removed by a clean-up while it
    /// was being followed is not an error here).
    pub(crate) fn edit_if_present(
        &self,
        id: &str,
        operation: &str,
        mut f: impl FnMut(&mut JobRecord),
    ) -> Result<Option<JobRecord>> {
        Ok(self.store.update_job(id, operation, &mut |j| {
            f(j);
            Ok(())
        })?)
    }

    /// Jobs, newest first, optionally of one status.
    pub fn list(&self, status: Option<JobStatus>) -> Result<Vec<JobRecord>> {
        let mut jobs: Vec<JobRecord> = self
            .store
            .jobs()?
            .into_iter()
            .filter(|j| status.is_none_or(|s| j.status == s))
            .collect();
        jobs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(jobs)
    }

    /// The log lines of a job from index `from` on.
    pub fn logs(&self, id: &str, from: usize) -> Result<Vec<LogLine>> {
        self.get(id)?;
        Ok(self.logs.read(id, from)?)
    }

    /// A stream of a job's events while it runs in this process (`None` when it does not).
    pub fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<JobEvent>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|l| l.events.subscribe())
    }

    /// Registers the job as live in this process and returns its context; events sent before
    /// the caller subscribes are still in the job log.
    fn go_live(&self, id: &str) -> JobContext {
        let (events, _) = broadcast::channel(1024);
        let cancel = CancellationToken::new();
        self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id.to_string(),
            Live {
                cancel: cancel.clone(),
                events: events.clone(),
            },
        );
        self.context(id, cancel, events)
    }

    fn context(
        &self,
        id: &str,
        cancel: CancellationToken,
        events: broadcast::Sender<JobEvent>,
    ) -> JobContext {
        JobContext {
            job_id: id.to_string(),
            cancel,
            redactor: Arc::new(Redactor::default()),
            logs: self.logs.clone(),
            events,
            ahead: Arc::default(),
        }
    }

    /// Prepares a job to run in this process: its context exists from now on, so a caller can
    /// subscribe or cancel before [`JobManager::run`] starts it.
    pub fn prepare(&self, id: &str) -> Result<JobContext> {
        let job = self.get(id)?;
        if job.status != JobStatus::Queued {
            return Err(CoreError::Refused(format!(
                "job {id} is {}, only a queued job can run",
                status_name(job.status)
            )));
        }
        let existing = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|l| (l.cancel.clone(), l.events.clone()));
        Ok(match existing {
            Some((cancel, events)) => self.context(id, cancel, events),
            None => self.go_live(id),
        })
    }

    /// Cancels a queued or running job of this process. A job that already ended is refused.
    pub fn cancel(&self, id: &str) -> Result<JobRecord> {
        let job = self.get(id)?;
        match job.status {
            JobStatus::Queued | JobStatus::Running => {}
            other => {
                return Err(CoreError::Refused(format!(
                    "job {id} is {}; only a queued or running job can be cancelled",
                    status_name(other)
                )));
            }
        }
        let live = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|l| l.cancel.clone());
        match live {
            Some(token) => token.cancel(),
            None => {
                // Not running in this process: its process is gone (or it never started), so
                // marking it cancelled cannot race with a running step.
                self.finish(id, JobStatus::Cancelled, Some("cancelled".into()), None)?;
            }
        }
        self.get(id)
    }

    /// Puts a failed, cancelled or interrupted job back in the queue, owned by this process;
    /// [`JobManager::run`] then resumes it from its first incomplete step.
    pub fn retry(&self, id: &str) -> Result<JobRecord> {
        let (job, ()) = self.edit(id, "job retry", |job| {
            match job.status {
                JobStatus::Failed | JobStatus::Cancelled | JobStatus::Interrupted => {}
                other => {
                    return Err(livchat_store::StoreError::InvalidInput {
                        field: "job".into(),
                        reason: format!(
                            "job {id} is {}; only a failed, cancelled or interrupted job can be retried",
                            status_name(other)
                        ),
                    });
                }
            }
            job.status = JobStatus::Queued;
            job.attempt += 1;
            job.error = None;
            job.finished_at = None;
            job.current_step = None;
            // Owned by this process in the same write: a reader between two writes would see
            // a queued job of a dead owner and call it interrupted.
            job.owner = Some(this_process());
            job.cancel_requested = false;
            Ok(())
        })?;
        Ok(job)
    }

    /// Marks every job left queued or running by a process that is gone as `interrupted`.
    /// Called when an orchestrator opens a home; `is_live` says whether a job's process lives.
    pub fn recover_interrupted(&self, is_live: &dyn Fn(&JobRecord) -> bool) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for job in self.store.live_jobs()? {
            if is_live(&job) {
                continue;
            }
            // Checked again on the record as it is under the lock: it may have ended or been
            // taken over since the list was read.
            let interrupted = self.edit_if_present(&job.id, "job recovery", |j| {
                if j.is_live() && !is_live(j) {
                    j.status = JobStatus::Interrupted;
                    j.error = Some(
                        "the process running this job ended before it finished; retry it to resume"
                            .into(),
                    );
                    j.finished_at = Some(Utc::now());
                }
            })?;
            if interrupted.is_some_and(|j| j.status == JobStatus::Interrupted) {
                ids.push(job.id);
            }
        }
        Ok(ids)
    }

    /// Removes ended jobs (and their logs) created before `before`, optionally of one status.
    pub fn cleanup(&self, before: DateTime<Utc>, status: Option<JobStatus>) -> Result<Vec<String>> {
        let removed: Vec<String> = self
            .store
            .jobs()?
            .into_iter()
            .filter(|j| is_ended(j.status) && j.created_at < before)
            .filter(|j| status.is_none_or(|st| j.status == st))
            .map(|j| j.id)
            .collect();
        // Ended jobs do not change any more (a retry is refused once they are gone), so the
        // list read above is still true when the files are removed.
        self.store.remove_jobs(&removed)?;
        for id in &removed {
            self.logs.remove(id)?;
        }
        Ok(removed)
    }

    fn server_lock(&self, server: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.server_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(server.to_string())
            .or_default()
            .clone()
    }

    fn finish(
        &self,
        id: &str,
        status: JobStatus,
        error: Option<String>,
        result: Option<serde_json::Value>,
    ) -> Result<JobRecord> {
        let (job, ()) = self.edit(id, "job finish", |job| {
            job.status = status;
            job.error = error.clone();
            if result.is_some() {
                job.result = result.clone();
            }
            job.current_step = None;
            job.finished_at = Some(Utc::now());
            if status == JobStatus::Completed {
                // The last step's end is recorded here (see `run_steps`).
                let last = std::mem::take(&mut job.steps_remaining);
                job.steps_completed.extend(last);
                job.progress = 100;
            }
            // No process runs it any more: what `Orchestrator::release_job` would write next.
            job.owner = None;
            job.cancel_requested = false;
            Ok(())
        })?;
        Ok(job)
    }

    fn progress_of(job: &JobRecord) -> u8 {
        let total = job.steps_completed.len() + job.steps_remaining.len();
        if total == 0 {
            return 100;
        }
        ((job.steps_completed.len() * 100) / total).min(100) as u8
    }

    /// Runs a queued job to its end in this task: waits for its server, then runs its remaining
    /// steps in order, recording progress after each. Returns the final record (also when the
    /// job failed: the failure is in the record, not an `Err`). `Err` means the job could not
    /// be run at all (not found, not queued, store unusable).
    pub async fn run(&self, id: &str, runner: &dyn StepRunner) -> Result<JobRecord> {
        let outcome = match self.prepare(id) {
            Ok(ctx) => self.run_live(&ctx, runner).await,
            Err(e) => Err(e),
        };
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        outcome
    }

    async fn run_live(&self, ctx: &JobContext, runner: &dyn StepRunner) -> Result<JobRecord> {
        let id = ctx.job_id.as_str();
        // `prepare` checked that the job is queued.
        let job = self.get(id)?;
        let kind = JobKind::parse(&job.kind)?;

        // One job at a time per server: wait (still queued) for the one before to end.
        let lock = job.server.as_deref().map(|s| self.server_lock(s));
        let _guard = match &lock {
            Some(lock) => {
                if lock.try_lock().is_err() {
                    ctx.info(format!(
                        "waiting for another job on server {} to finish",
                        job.server.as_deref().unwrap_or_default()
                    ));
                }
                tokio::select! {
                    guard = lock.lock() => Some(guard),
                    () = ctx.cancel.cancelled() => {
                        let job = self.finish(id, JobStatus::Cancelled, Some("cancelled while queued".into()), None)?;
                        let _ = ctx.events.send(JobEvent::Finished { status: job.status, error: job.error.clone() });
                        return Ok(job);
                    }
                }
            }
            None => None,
        };

        let (job, ()) = self.edit(id, "job start", |job| {
            job.status = JobStatus::Running;
            job.started_at = Some(Utc::now());
            job.current_step = job.steps_remaining.first().cloned();
            job.progress = Self::progress_of(job);
            Ok(())
        })?;
        if job.attempt > 1 {
            ctx.info(format!(
                "attempt {}: resuming at step {}",
                job.attempt,
                job.steps_remaining.first().map_or("(none)", String::as_str)
            ));
        }

        let timeout = self.timeout_of(kind);
        let steps = tokio::time::timeout(timeout, self.run_steps(ctx, runner)).await;
        let outcome = match steps {
            Ok(outcome) => outcome,
            Err(_) => {
                // Abort whatever the step was doing (the SSH command in flight).
                ctx.cancel.cancel();
                Err(CoreError::Timeout(timeout))
            }
        };

        let job = match outcome {
            Ok(result) => {
                ctx.info("job completed");
                self.finish(id, JobStatus::Completed, None, Some(result))?
            }
            Err(error) => {
                let status = if error.is_cancelled() {
                    JobStatus::Cancelled
                } else {
                    JobStatus::Failed
                };
                let message = ctx.redact(&error.to_string());
                ctx.log(LogLevel::Error, &message);
                let current = self.get(id)?;
                if let Err(e) = runner.clean_up(ctx, &current, &error).await {
                    ctx.log(LogLevel::Error, format!("clean-up failed: {e}"));
                }
                self.finish(id, status, Some(message), None)?
            }
        };
        let _ = ctx.events.send(JobEvent::Finished {
            status: job.status,
            error: job.error.clone(),
        });
        Ok(job)
    }

    async fn run_steps(
        &self,
        ctx: &JobContext,
        runner: &dyn StepRunner,
    ) -> Result<serde_json::Value> {
        let id = ctx.job_id.as_str();
        let mut result = self.get(id)?.result.unwrap_or(serde_json::Value::Null);
        loop {
            ctx.check_cancelled()?;
            let job = self.get(id)?;
            let Some(step) = job.steps_remaining.first().cloned() else {
                return Ok(result);
            };
            let ahead = ctx.take_done_ahead(&job.steps_remaining);
            if !ahead.is_empty() {
                self.complete_done_ahead(ctx, &ahead)?;
                continue;
            }
            // The write before (start, a step done) names the next step already; a job record
            // rewritten twice per step made a re-run of skipped steps cost a write each.
            let job = if job.current_step.as_deref() == Some(step.as_str()) {
                job
            } else {
                self.edit_if_present(id, "job step", |j| j.current_step = Some(step.clone()))?
                    .ok_or_else(|| CoreError::not_found("job", id))?
            };
            let total = job.steps_completed.len() + job.steps_remaining.len();
            let _ = ctx.events.send(JobEvent::Progress {
                progress: job.progress,
                step: Some(step.clone()),
                steps_done: job.steps_completed.len(),
                steps_total: total,
            });
            ctx.info(format!(
                "step {}/{}: {step}",
                job.steps_completed.len() + 1,
                total
            ));

            let value = tokio::select! {
                value = runner.run_step(ctx, &job, &step) => value?,
                () = ctx.cancel.cancelled() => return Err(CoreError::Cancelled),
            };
            merge_result(&mut result, value);

            // Fewer writes of the record, which every job of the home makes under one lock:
            // the last step's end is recorded by the job's end (a crash between the two
            // leaves the step to a retry, like any step whose end was not recorded), and
            // steps declared done ahead that come next are recorded with this one's end.
            // Read again: a step may have given the job more steps (`set_remaining_steps`).
            if job.steps_remaining.len() == 1 && self.get(id)?.steps_remaining == [step.clone()] {
                let total = job.steps_completed.len() + 1;
                let _ = ctx.events.send(JobEvent::Progress {
                    progress: 100,
                    step: None,
                    steps_done: total,
                    steps_total: total,
                });
                return Ok(result);
            }
            let ahead = ctx.take_done_ahead(&job.steps_remaining[1..]);
            let (_, (done, total)) = self.edit(id, "job step done", |j| {
                if j.steps_remaining.first() == Some(&step) {
                    j.steps_remaining.remove(0);
                }
                j.steps_completed.push(step.clone());
                let done = j.steps_completed.len();
                Self::mark_done_ahead(j, &ahead);
                j.result = Some(result.clone());
                Ok((done, j.steps_completed.len() + j.steps_remaining.len()))
            })?;
            let _ = ctx.events.send(JobEvent::Progress {
                progress: percent(done, total),
                step: None,
                steps_done: done,
                steps_total: total,
            });
            Self::report_done_ahead(ctx, &ahead, done, total);
        }
    }

    /// Moves steps declared done ahead from remaining to completed, and sets what follows.
    fn mark_done_ahead(j: &mut JobRecord, ahead: &[DoneAhead]) {
        for a in ahead {
            if j.steps_remaining.first() == Some(&a.step) {
                j.steps_remaining.remove(0);
                j.steps_completed.push(a.step.clone());
            }
        }
        j.current_step = j.steps_remaining.first().cloned();
        j.progress = Self::progress_of(j);
    }

    /// Records steps declared done ahead as complete, all in one store write, then logs each
    /// as if it had run (its number, then its message) and reports progress per step.
    fn complete_done_ahead(&self, ctx: &JobContext, ahead: &[DoneAhead]) -> Result<()> {
        let id = ctx.job_id.as_str();
        let (_, (done_before, total)) = self.edit(id, "job steps done already", |j| {
            let done_before = j.steps_completed.len();
            Self::mark_done_ahead(j, ahead);
            Ok((
                done_before,
                j.steps_completed.len() + j.steps_remaining.len(),
            ))
        })?;
        Self::report_done_ahead(ctx, ahead, done_before, total);
        Ok(())
    }

    /// Logs each step done ahead as if it had run (its number, then its message) and
    /// reports progress per step; `done_before` steps were complete before them.
    fn report_done_ahead(ctx: &JobContext, ahead: &[DoneAhead], done_before: usize, total: usize) {
        let percent = |done: usize| percent(done, total);
        for (i, a) in ahead.iter().enumerate() {
            let done = done_before + i;
            let _ = ctx.events.send(JobEvent::Progress {
                progress: percent(done),
                step: Some(a.step.clone()),
                steps_done: done,
                steps_total: total,
            });
            ctx.info(format!("step {}/{total}: {}", done + 1, a.step));
            ctx.info(&a.message);
            let _ = ctx.events.send(JobEvent::Progress {
                progress: percent(done + 1),
                step: None,
                steps_done: done + 1,
                steps_total: total,
            });
        }
    }

    /// Replaces the remaining steps of a running job (a step that discovers more work, e.g.
    /// the setup plan's own steps once the OS is known).
    pub fn set_remaining_steps(&self, id: &str, steps: Vec<String>) -> Result<()> {
        self.edit_if_present(id, "job plan", |j| j.steps_remaining = steps.clone())?;
        Ok(())
    }
}

/// Progress in percent of `done` steps out of `total`.
fn percent(done: usize, total: usize) -> u8 {
    (done * 100 / total.max(1)).min(100) as u8
}

fn merge_result(result: &mut serde_json::Value, value: serde_json::Value) {
    match (result, value) {
        (_, serde_json::Value::Null) => {}
        (serde_json::Value::Object(into), serde_json::Value::Object(from)) => {
            into.extend(from);
        }
        (slot, value) => *slot = value,
    }
}

/// The store error of an update that finds its job gone.
pub(crate) fn job_not_found(id: &str) -> livchat_store::StoreError {
    livchat_store::StoreError::InvalidInput {
        field: "job id".into(),
        reason: format!("job `{id}` not found"),
    }
}

/// Whether a status is final.
pub fn is_ended(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Interrupted
    )
}

/// The lower-case name of a status, as the CLI and API show it.
pub fn status_name(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Completed => "completed",
        JobStatus::Failed => "failed",
        JobStatus::Cancelled => "cancelled",
        JobStatus::Interrupted => "interrupted",
    }
}

/// Parses a status name (`--status failed`).
pub fn parse_status(name: &str) -> Result<JobStatus> {
    Ok(match name {
        "queued" => JobStatus::Queued,
        "running" => JobStatus::Running,
        "completed" => JobStatus::Completed,
        "failed" => JobStatus::Failed,
        "cancelled" => JobStatus::Cancelled,
        "interrupted" => JobStatus::Interrupted,
        other => {
            return Err(CoreError::invalid(
                "status",
                format!(
                    "`{other}` is not a job status; allowed: queued, running, completed, failed, cancelled, interrupted"
                ),
            ));
        }
    })
}

/// "server X is busy with job J (kind, process, since)".
pub(crate) fn busy_error(job: &JobRecord) -> CoreError {
    let owner = job
        .owner
        .as_ref()
        .map(|o| format!("process {} on {}", o.pid, o.host))
        .unwrap_or_default();
    CoreError::Busy {
        server: job.server.clone().unwrap_or_default(),
        job: job.id.clone(),
        kind: job.kind.clone(),
        owner,
        since: job.started_at.unwrap_or(job.created_at).to_rfc3339(),
    }
}

/// This process, as a job's owner.
pub(crate) fn this_process() -> livchat_store::JobOwner {
    livchat_store::JobOwner {
        pid: std::process::id(),
        host: livchat_store::this_host(),
    }
}
