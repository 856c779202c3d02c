//! Job operations: list, show, logs, wait, cancel, retry, clean-up. They work on jobs of any
//! process sharing the home (the store is the meeting point).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use livchat_store::JobStatus;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{JobView, LogLineView, Operation, op_info};
use crate::{CoreError, Orchestrator, Result};

/// `job wait` (and a follow of a job's log) waits at most this long per call.
pub const WAIT_MAX_SECS: u64 = 3600;

/// The bound of a wait for a job or a follow of its log: `secs` (default 300) must be
/// 1-[`WAIT_MAX_SECS`], so no caller can wait without end.
pub fn wait_timeout(secs: Option<u64>) -> Result<Duration> {
    let secs = secs.unwrap_or(300);
    if !(1..=WAIT_MAX_SECS).contains(&secs) {
        return Err(CoreError::invalid(
            "timeout_secs",
            format!("must be 1-{WAIT_MAX_SECS}"),
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// List jobs, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobList {
    /// Only jobs in this status.
    #[serde(default)]
    pub status: Option<JobStatus>,
    /// Only jobs on this server.
    #[serde(default)]
    pub server: Option<String>,
}

#[async_trait]
impl Operation for JobList {
    const INFO: super::OperationInfo = op_info!(JobList, "job_list", "job list", Read,
        job: false, idempotent: true, open_world: false, "List jobs");
    type Output = Vec<JobView>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch
            .jobs()
            .list(self.status)?
            .into_iter()
            .filter(|j| self.server.is_none() || j.server == self.server)
            .map(JobView::from)
            .collect())
    }
}

/// Show one job.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobShow {
    /// Job id.
    pub id: String,
}

#[async_trait]
impl Operation for JobShow {
    const INFO: super::OperationInfo = op_info!(JobShow, "job_show", "job show", Read,
        job: false, idempotent: true, open_world: false, "Show a job");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.jobs().get(&self.id)?.into())
    }
}

/// A job's log lines.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobLogs {
    /// Job id.
    pub id: String,
    /// First line index to return (0 = the beginning).
    #[serde(default)]
    pub from: Option<usize>,
    /// Only the last N lines (of those from `from` on).
    #[serde(default)]
    pub tail: Option<usize>,
}

#[async_trait]
impl Operation for JobLogs {
    const INFO: super::OperationInfo = op_info!(JobLogs, "job_logs", "job logs", Read,
        job: false, idempotent: true, open_world: false, "Read a job's log");
    type Output = Vec<LogLineView>;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        let from = self.from.unwrap_or(0);
        let lines = orch.job_logs(&self.id, from)?;
        let skip = self.tail.map_or(0, |tail| lines.len().saturating_sub(tail));
        Ok(lines
            .into_iter()
            .enumerate()
            .skip(skip)
            .map(|(i, line)| LogLineView::new(from + i, line))
            .collect())
    }
}

/// Wait until a job ends, or `timeout_secs` pass (then the job is returned as it is).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobWait {
    /// Job id.
    pub id: String,
    /// Seconds to wait at most: 1-3600, default 300.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[async_trait]
impl Operation for JobWait {
    const INFO: super::OperationInfo = op_info!(JobWait, "job_wait", "job wait", Read,
        job: false, idempotent: true, open_world: false,
        "Wait for a job to end (bounded)");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        let timeout = wait_timeout(self.timeout_secs)?;
        Ok(orch.wait_job_for(&self.id, timeout).await?.into())
    }
}

/// Cancel a queued or running job (of this or another process).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCancel {
    /// Job id.
    pub id: String,
}

#[async_trait]
impl Operation for JobCancel {
    const INFO: super::OperationInfo = op_info!(JobCancel, "job_cancel", "job cancel", Change,
        job: false, idempotent: true, open_world: false,
        "Cancel a job; the remote command in flight is stopped");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.cancel_job(&self.id)?.into())
    }
}

/// Queue a failed, cancelled or interrupted job again; it resumes at its first unfinished
/// step once spawned.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRetry {
    /// Job id.
    pub id: String,
}

#[async_trait]
impl Operation for JobRetry {
    const INFO: super::OperationInfo = op_info!(JobRetry, "job_retry", "job retry", Change,
        job: true, idempotent: false, open_world: true,
        "Retry a failed, cancelled or interrupted job from its first unfinished step (a job)");
    type Output = JobView;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        Ok(orch.start_retry_job(&self.id)?.into())
    }
}

/// Remove ended jobs (and their logs) older than an age.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCleanup {
    /// Age in days (default 30).
    #[serde(default)]
    pub older_than_days: Option<u32>,
    /// Only jobs in this status (an ended one).
    #[serde(default)]
    pub status: Option<JobStatus>,
}

/// The jobs a clean-up removed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobCleanupResult {
    pub removed: Vec<String>,
}

#[async_trait]
impl Operation for JobCleanup {
    const INFO: super::OperationInfo = op_info!(JobCleanup, "job_cleanup", "job cleanup",
        Destroy, job: false, idempotent: true, open_world: false,
        "Remove ended jobs and their logs older than an age");
    type Output = JobCleanupResult;
    async fn run(self, orch: &Arc<Orchestrator>) -> Result<Self::Output> {
        if self.status.is_some_and(|s| !crate::jobs::is_ended(s)) {
            return Err(CoreError::invalid(
                "status",
                "only ended jobs can be removed: completed, failed, cancelled or interrupted",
            ));
        }
        let days = self.older_than_days.unwrap_or(30);
        let before = Utc::now() - TimeDelta::days(i64::from(days));
        Ok(JobCleanupResult {
            removed: orch.jobs().cleanup(before, self.status)?,
        })
    }
}
