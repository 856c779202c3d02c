//! Following a job for a tool call that carries a progress token: `notifications/progress`
//! (0-100 of 100, the current step as message) until the job ends, `max_wait_secs` passes or the
//! call is cancelled. The job itself never depends on the call: it runs on in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livchat_core::model::CancellationToken;
use livchat_core::{JobEvent, Orchestrator};
use rmcp::model::{ProgressNotificationParam, ProgressToken, RequestId};
use rmcp::service::{Peer, RoleServer};
use tokio::sync::broadcast::{Receiver, error::RecvError};

/// How often a job run by another process (no event stream here) is re-read.
const POLL: Duration = Duration::from_millis(500);

/// The tool calls of one MCP session that follow a job: `notifications/cancelled` names the
/// request, this finds its job. An entry stays after its call was cancelled until the
/// notification is handled (rmcp cancels the call's token before it delivers the notification).
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<HashMap<RequestId, String>>>);

impl InFlight {
    pub fn insert(&self, request: RequestId, job: &str) {
        self.lock().insert(request, job.to_string());
    }

    pub fn remove(&self, request: &RequestId) -> Option<String> {
        self.lock().remove(request)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why following stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Ended,
    Deadline,
    CallCancelled,
}

/// Sends strictly increasing progress (the spec's rule) that never exceeds 100: a new step at
/// the same percentage still gets its own notification.
struct Reporter<'a> {
    peer: &'a Peer<RoleServer>,
    token: ProgressToken,
    last: Option<f64>,
    last_message: Option<String>,
}

impl Reporter<'_> {
    async fn report(&mut self, progress: u8, message: String) {
        let progress = f64::from(progress.min(100));
        if self.last.is_some()
            && self.last_message.as_ref() == Some(&message)
            && self.last >= Some(progress)
        {
            return;
        }
        let value = match self.last {
            Some(last) if progress <= last => (last + 0.01).min(100.0),
            _ => progress,
        };
        if self.last.is_some_and(|last| value <= last) {
            return;
        }
        self.last = Some(value);
        self.last_message = Some(message.clone());
        let mut param = ProgressNotificationParam::new(self.token.clone(), value);
        param.total = Some(100.0);
        param.message = Some(message);
        // A client that went away cannot be told; the job is unaffected.
        let _ = self.peer.notify_progress(param).await;
    }
}

/// "pin_host_key (step 3 of 5)": the step the job is in, or how many are done.
fn message(step: Option<&str>, done: usize, total: usize) -> String {
    match step {
        Some(step) => format!("{step} (step {} of {total})", (done + 1).min(total.max(1))),
        None => format!("{done} of {total} steps done"),
    }
}

fn record_message(job: &livchat_core::model::JobRecord) -> String {
    let done = job.steps_completed.len();
    message(
        job.current_step.as_deref(),
        done,
        done + job.steps_remaining.len(),
    )
}

/// Follows job `id` until it ends, `max_wait` passes or `ct` fires. `events` is the job's
/// event stream when it runs in this process; otherwise its record is polled.
pub async fn follow(
    orch: &Arc<Orchestrator>,
    id: &str,
    events: Option<Receiver<JobEvent>>,
    peer: &Peer<RoleServer>,
    token: ProgressToken,
    max_wait: Duration,
    ct: &CancellationToken,
) -> Stopped {
    let mut reporter = Reporter {
        peer,
        token,
        last: None,
        last_message: None,
    };
    let deadline = tokio::time::Instant::now() + max_wait;
    // Where the job stands now: events before the subscription are not replayed. Reads go
    // through `current_job`, so a job whose process is gone ends (interrupted) the follow.
    match orch.current_job(id).await {
        Ok(job) => {
            reporter.report(job.progress, record_message(&job)).await;
            if livchat_core::jobs::is_ended(job.status) {
                return Stopped::Ended;
            }
        }
        Err(_) => return Stopped::Ended,
    }
    let mut events = events.or_else(|| orch.jobs().subscribe(id));
    loop {
        let next = async {
            match events.as_mut() {
                Some(rx) => match rx.recv().await {
                    Ok(event) => Some(event),
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => Some(JobEvent::Finished {
                        status: livchat_core::model::JobStatus::Failed,
                        error: None,
                    }),
                },
                None => {
                    tokio::time::sleep(POLL).await;
                    None
                }
            }
        };
        tokio::select! {
            () = ct.cancelled() => return Stopped::CallCancelled,
            () = tokio::time::sleep_until(deadline) => return Stopped::Deadline,
            event = next => match event {
                Some(JobEvent::Progress { progress, step, steps_done, steps_total }) => {
                    let text = message(step.as_deref(), steps_done, steps_total);
                    reporter.report(progress, text).await;
                }
                Some(JobEvent::Finished { .. }) => return Stopped::Ended,
                Some(JobEvent::Log(_)) => {}
                // Polling (or a lagged stream): read the record.
                None => match orch.current_job(id).await {
                    Ok(job) => {
                        reporter.report(job.progress, record_message(&job)).await;
                        if livchat_core::jobs::is_ended(job.status) {
                            return Stopped::Ended;
                        }
                    }
                    Err(_) => return Stopped::Ended,
                },
            },
        }
    }
}
