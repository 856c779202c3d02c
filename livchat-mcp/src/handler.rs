//! The MCP server: `tools/list` from the registry, `tools/call` through [`crate::dispatch`],
//! jobs spawned in this process and followed while the client listens, and
//! `notifications/cancelled` turned into a job cancel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use livchat_core::Orchestrator;
use livchat_core::ops::{self, JobHandle, JobView, Operation};
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelledNotificationParam, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use serde_json::{Value, json};

use crate::catalog::{self, Shape};
use crate::dispatch::{self, Failure, Outcome};
use crate::envelope;
use crate::follow::{self, InFlight, Stopped};

/// Log lines a job tool returns with the job.
const LOG_TAIL: usize = 10;

const INSTRUCTIONS: &str = "LivChat Setup: create or adopt servers, set them up (Docker Swarm, \
Traefik, Portainer), point DNS and deploy apps. Long tools start jobs: pass a progress token to \
follow one, or poll job_show/job_wait. Changing tools accept plan: true; server_delete, \
app_undeploy and secret_delete only plan unless confirm: true.";

/// One MCP session's handler; the state behind `shared` is the process's.
#[derive(Clone)]
pub struct LivchatMcp {
    shared: Arc<Shared>,
    in_flight: InFlight,
}

struct Shared {
    orch: Arc<Orchestrator>,
    shapes: Vec<Shape>,
    tools: Vec<Tool>,
    jobs: Jobs,
}

/// The jobs this process spawned, so it can let them end before exiting.
#[derive(Default)]
pub struct Jobs(Mutex<Vec<JobHandle>>);

impl Jobs {
    fn add(&self, handle: JobHandle) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
    }

    /// Waits for every job this process started (each bounded by the core's hard timeout).
    pub async fn finish_all(&self) {
        let handles: Vec<JobHandle> =
            std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in handles {
            let id = handle.id.clone();
            if let Err(e) = handle.join().await {
                tracing::warn!("job {id}: {e}");
            }
        }
    }
}

impl LivchatMcp {
    pub fn new(orch: Arc<Orchestrator>) -> Self {
        let shapes = catalog::shapes();
        let tools = catalog::tools(&shapes);
        LivchatMcp {
            shared: Arc::new(Shared {
                orch,
                shapes,
                tools,
                jobs: Jobs::default(),
            }),
            in_flight: InFlight::default(),
        }
    }

    /// A handler for a new session: same process state, its own in-flight calls (request ids
    /// are per session).
    pub fn session(&self) -> Self {
        LivchatMcp {
            shared: Arc::clone(&self.shared),
            in_flight: InFlight::default(),
        }
    }

    pub fn orchestrator(&self) -> &Arc<Orchestrator> {
        &self.shared.orch
    }

    pub fn jobs(&self) -> &Jobs {
        &self.shared.jobs
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> rmcp::model::CallToolResult {
        let Some(shape) = self
            .shared
            .shapes
            .iter()
            .find(|s| s.info.name == request.name)
        else {
            return envelope::failure(&Failure::Input {
                field: "name".into(),
                message: format!(
                    "no tool `{}`; tools: {}",
                    request.name,
                    dispatch::TOOLS.join(", ")
                ),
            });
        };
        let orch = &self.shared.orch;
        let args = request.arguments.unwrap_or_default();
        if shape.info.name == "job_wait" {
            return self.job_wait(shape, args, &ctx).await;
        }
        let (outcome, extras) = tokio::select! {
            outcome = dispatch::call(orch, shape, args, ctx.ct.clone()) => match outcome {
                Ok(o) => o,
                Err(failure) => return envelope::failure(&failure),
            },
            () = ctx.ct.cancelled() => return envelope::cancelled(),
        };
        match outcome {
            Outcome::Value(value) => envelope::value(shape, value),
            Outcome::Plan {
                plan,
                confirm_required,
            } => envelope::plan(&plan, confirm_required),
            Outcome::Job(view) => {
                let events = match orch.spawn_job(&view.id) {
                    Ok(mut handle) => {
                        let events = handle.events();
                        self.shared.jobs.add(handle);
                        events
                    }
                    Err(e) => return envelope::failure(&Failure::Core(e)),
                };
                if let Some(token) = ctx.meta.get_progress_token() {
                    let max_wait = Duration::from_secs(extras.max_wait_secs);
                    self.follow(&view.id, Some(events), token, max_wait, &ctx)
                        .await;
                }
                self.job_result(shape, &view.id).await
            }
        }
    }

    /// Follows a job for this call; a `notifications/cancelled` for it cancels the job.
    async fn follow(
        &self,
        id: &str,
        events: Option<tokio::sync::broadcast::Receiver<livchat_core::JobEvent>>,
        token: rmcp::model::ProgressToken,
        max_wait: Duration,
        ctx: &RequestContext<RoleServer>,
    ) -> Stopped {
        self.in_flight.insert(ctx.id.clone(), id);
        let stopped = follow::follow(
            &self.shared.orch,
            id,
            events,
            &ctx.peer,
            token,
            max_wait,
            &ctx.ct,
        )
        .await;
        if stopped != Stopped::CallCancelled {
            self.in_flight.remove(&ctx.id);
        }
        stopped
    }

    /// `job_wait`: the operation waits (and validates); with a progress token the job is
    /// followed meanwhile. A cancelled call cancels the job, as for the long tools.
    async fn job_wait(
        &self,
        shape: &Shape,
        args: rmcp::model::JsonObject,
        ctx: &RequestContext<RoleServer>,
    ) -> rmcp::model::CallToolResult {
        let request: ops::JobWait = match dispatch::parse(args) {
            Ok(r) => r,
            Err(failure) => return envelope::failure(&failure),
        };
        let orch = &self.shared.orch;
        let id = request.id.clone();
        self.in_flight.insert(ctx.id.clone(), &id);
        let notify = async {
            if let Some(token) = ctx.meta.get_progress_token() {
                let events = orch.subscribe_job(&id);
                // The operation's own bound ends the wait first.
                let bound = Duration::from_secs(catalog::MAX_WAIT_CEILING_SECS);
                follow::follow(orch, &id, events, &ctx.peer, token, bound, &ctx.ct).await;
            }
            std::future::pending::<()>().await;
        };
        let out = tokio::select! {
            out = request.run(orch) => out,
            () = ctx.ct.cancelled() => return envelope::cancelled(),
            () = notify => unreachable!("following never ends the wait"),
        };
        self.in_flight.remove(&ctx.id);
        match out {
            Ok(view) => envelope::value(shape, to_json(&view)),
            Err(e) => envelope::failure(&Failure::Core(e)),
        }
    }

    /// The job now and its last log lines.
    async fn job_result(&self, shape: &Shape, id: &str) -> rmcp::model::CallToolResult {
        let orch = &self.shared.orch;
        let view: JobView = match (ops::JobShow { id: id.to_string() }).run(orch).await {
            Ok(v) => v,
            Err(e) => return envelope::failure(&Failure::Core(e)),
        };
        let tail = ops::JobLogs {
            id: id.to_string(),
            from: None,
            tail: Some(LOG_TAIL),
        }
        .run(orch)
        .await
        .unwrap_or_default();
        envelope::job(shape, &view, &tail)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| json!({"error": e.to_string()}))
}

impl ServerHandler for LivchatMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("livchat-mcp", env!("CARGO_PKG_VERSION"))
                    .with_title("LivChat Setup"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, rmcp::ErrorData> {
        Ok(ListToolsResult::with_all_items(self.shared.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, rmcp::ErrorData> {
        Ok(self.call(request, ctx).await.into())
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        _ctx: NotificationContext<RoleServer>,
    ) {
        let Some(request) = notification.request_id else {
            return;
        };
        if let Some(job) = self.in_flight.remove(&request) {
            // The core cancels in this process through the job's token (stopping the remote
            // command in flight) and elsewhere through the recorded request.
            if let Err(e) = self.shared.orch.cancel_job(&job) {
                tracing::warn!("cancelling job {job}: {e}");
            }
        }
    }
}
