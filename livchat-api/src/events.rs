//! `GET /api/jobs/{id}/events`: a job as Server-Sent Events (`progress`, `log`, `end`).
//!
//! Every wake-up re-reads the job record and its log from the store, so the stream is the same
//! whichever process runs the job (this one wakes on the job's broadcast, others are polled),
//! nothing is lost between a read and a subscription, and `Last-Event-ID` (the index of the
//! last log line received) resumes exactly after that line.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use futures::stream::{self, StreamExt};
use livchat_core::jobs::is_ended;
use livchat_core::ops::{JobView, LogLineView};
use livchat_core::{JobEvent, Orchestrator};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::service::AppState;

const POLL: Duration = Duration::from_millis(500);

struct Follow {
    orch: Arc<Orchestrator>,
    id: String,
    cursor: usize,
    last_progress: Option<serde_json::Value>,
    live: Option<broadcast::Receiver<JobEvent>>,
    ended: bool,
    first: bool,
}

fn event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name))
}

impl Follow {
    /// The events that are new since the last read; empty when nothing changed. A job whose
    /// process is gone reads as interrupted (and ends the stream) rather than running forever.
    async fn read(&mut self) -> Result<Vec<Event>, ApiError> {
        let record = self.orch.current_job(&self.id).await?;
        let ended = is_ended(record.status);
        let mut events = Vec::new();
        let lines = self.orch.job_logs(&self.id, self.cursor)?;
        for line in lines {
            let view = LogLineView::new(self.cursor, line);
            events.push(event("log", &view).id(self.cursor.to_string()));
            self.cursor += 1;
        }
        let view = JobView::from(record);
        let progress = serde_json::json!({
            "status": view.status,
            "progress": view.progress,
            "current_step": view.current_step,
            "steps_completed": view.steps_completed.len(),
            "steps_total": view.steps_completed.len() + view.steps_remaining.len(),
        });
        if self.last_progress.as_ref() != Some(&progress) {
            events.push(event("progress", &progress));
            self.last_progress = Some(progress);
        }
        if ended {
            events.push(event("end", &view));
            self.ended = true;
        }
        Ok(events)
    }

    async fn wait(&mut self) {
        match self.live.as_mut() {
            Some(rx) => {
                // An event, a lag or a quiet spell all mean "read again"; a closed channel
                // means the job left this process: poll from now on.
                if let Ok(Err(broadcast::error::RecvError::Closed)) =
                    tokio::time::timeout(POLL * 4, rx.recv()).await
                {
                    self.live = None;
                }
            }
            None => tokio::time::sleep(POLL).await,
        }
    }

    async fn next_batch(mut self) -> Option<(Vec<Event>, Self)> {
        loop {
            if self.ended {
                return None;
            }
            if !self.first {
                self.wait().await;
            }
            self.first = false;
            match self.read().await {
                Ok(events) if events.is_empty() => continue,
                Ok(events) => return Some((events, self)),
                Err(e) => {
                    self.ended = true;
                    let body = serde_json::json!({ "code": e.code, "message": e.message });
                    return Some((vec![event("error", &body)], self));
                }
            }
        }
    }
}

pub async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let orch = state.orch().clone();
    // Existence first, so an unknown job is a 404, not an empty stream.
    orch.jobs().get(&id)?;
    let cursor = match headers.get("last-event-id") {
        None => 0,
        Some(v) => {
            let text = v.to_str().unwrap_or_default();
            let last: usize = text.trim().parse().map_err(|_| {
                ApiError::bad_input("Last-Event-ID", format!("`{text}` is not a log line index"))
            })?;
            last + 1
        }
    };
    let follow = Follow {
        live: orch.subscribe_job(&id),
        orch,
        id,
        cursor,
        last_progress: None,
        ended: false,
        first: true,
    };
    let stream = stream::unfold(follow, Follow::next_batch)
        .flat_map(|events| stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
