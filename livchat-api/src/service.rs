//! The axum application: the routes of every operation, the middleware every request passes
//! (request id and log line, CORS when configured, bearer auth, rate limit, timeout, body
//! limit), and the few routes that are not operations (`/health`, `/openapi.json`, `/docs`,
//! `/api/system/info`, job events).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use livchat_core::Orchestrator;
use schemars::JsonSchema;
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::answers::{self, Answers};
use crate::error::ApiError;
use crate::limits::{Class, Limit, RateLimits};
use crate::routes::{Route, Scalar, field_kinds, request_object, routes};

/// What the service is configured with beyond the orchestrator.
#[derive(Debug, Clone)]
pub struct Options {
    pub rate_any: Limit,
    pub rate_job: Limit,
    pub rate_server_create: Limit,
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub cors_origins: Vec<HeaderValue>,
    pub tls: bool,
}

/// `GET /api/system/info`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SystemInfo {
    pub version: String,
    /// The operations served (the registry's names, which are the operationIds).
    pub operations: Vec<String>,
    /// The home directory the service works on.
    pub home: String,
    pub tls: bool,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Health {
    /// Always `ok` when the service answers.
    pub status: String,
}

struct Inner {
    orch: Arc<Orchestrator>,
    limits: RateLimits,
    kinds: HashMap<&'static str, BTreeMap<String, Scalar>>,
    openapi: Bytes,
    info: SystemInfo,
    answers: Answers,
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn orch(&self) -> &Arc<Orchestrator> {
        &self.0.orch
    }
}

/// The token a request was authenticated with, for its rate limits.
#[derive(Clone)]
struct Presented(Arc<str>);

/// The request's id (`X-Request-Id`, accepted or generated).
#[derive(Clone)]
pub struct RequestId(pub String);

const DOCS_HTML: &str = include_str!("docs.html");

/// Builds the application.
pub fn app(orch: Arc<Orchestrator>, options: &Options) -> Router {
    let table = routes();
    let openapi = crate::openapi::document(&table);
    let info = SystemInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        operations: table.iter().map(|r| r.info.name.to_string()).collect(),
        home: orch.config().home.display().to_string(),
        tls: options.tls,
    };
    let state = AppState(Arc::new(Inner {
        kinds: table
            .iter()
            .map(|r| (r.info.name, field_kinds(&r.info)))
            .collect(),
        orch,
        limits: RateLimits::new(
            options.rate_any,
            options.rate_job,
            options.rate_server_create,
        ),
        openapi: Bytes::from(serde_json::to_vec(&openapi).unwrap_or_default()),
        info,
        answers: Answers::new(),
    }));

    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in table {
        let path = route.path;
        let filter = MethodFilter::try_from(route.method.clone())
            .unwrap_or_else(|_| unreachable!("routes use standard methods"));
        let route = Arc::new(route);
        let handler = move |state: State<AppState>,
                            token: axum::Extension<Presented>,
                            headers: HeaderMap,
                            path: Result<Path<BTreeMap<String, String>>, PathRejection>,
                            query: Result<Query<Vec<(String, String)>>, QueryRejection>,
                            body: Result<Bytes, BytesRejection>| {
            let route = Arc::clone(&route);
            let extracted = Extracted { path, query, body };
            async move { operation(route, state, token, headers, extracted).await }
        };
        let entry = by_path.remove(path).unwrap_or_default();
        by_path.insert(path, entry.on(filter, handler));
    }
    let mut router = Router::new();
    for (path, method_router) in by_path {
        router = router.route(path, method_router);
    }
    let timeout = options.request_timeout;
    let mut router = router
        .route("/api/jobs/{id}/events", get(crate::events::job_events))
        .route("/api/system/info", get(system_info))
        .route("/openapi.json", get(openapi_json))
        .route("/health", get(health))
        .route("/docs", get(docs))
        .fallback(not_found)
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            with_timeout(timeout, req, next)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(options.body_limit));
    if !options.cors_origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(options.cors_origins.clone()))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::HeaderName::from_static("x-request-id"),
                    header::HeaderName::from_static("last-event-id"),
                ])
                .expose_headers([
                    header::LOCATION,
                    header::RETRY_AFTER,
                    header::HeaderName::from_static("x-request-id"),
                ]),
        );
    }
    router
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// What an operation's request carries besides its headers, as axum extracted it.
struct Extracted {
    path: Result<Path<BTreeMap<String, String>>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
}

async fn operation(
    route: Arc<Route>,
    State(state): State<AppState>,
    axum::Extension(token): axum::Extension<Presented>,
    headers: HeaderMap,
    Extracted { path, query, body }: Extracted,
) -> Result<Response, ApiError> {
    let Path(path) = path.map_err(|e| ApiError::bad_input("path", e.body_text()))?;
    let Query(mut query) = query.map_err(|e| ApiError::bad_input("query", e.body_text()))?;
    let body = body.map_err(body_rejection)?;
    let mut plan = false;
    if route.plan.is_some() {
        let mut rest = Vec::with_capacity(query.len());
        for (k, v) in query {
            if k == "plan" {
                plan = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(ApiError::bad_input(
                            "plan",
                            format!("`{other}` is not true or false"),
                        ));
                    }
                };
            } else {
                rest.push((k, v));
            }
        }
        query = rest;
    }
    let kinds = state
        .0
        .kinds
        .get(route.info.name)
        .cloned()
        .unwrap_or_default();
    let input = request_object(&route, &kinds, path, query, &body)?;
    let orch = Arc::clone(state.orch());
    if route.by_state
        && let Some(generation) = orch.state_generation()
    {
        let key = answers::key(route.info.name, &input);
        if let Some(fresh) = state.0.answers.fresh(&key, generation, &headers) {
            return Ok(fresh);
        }
        let output = (route.run)(orch, input).await?;
        let body = Bytes::from(serde_json::to_vec(&output).map_err(ApiError::internal)?);
        return Ok(state.0.answers.keep(key, generation, body, &headers));
    }
    if plan {
        let plan_fn = route.plan.unwrap_or_else(|| unreachable!("checked above"));
        let planned = plan_fn(&orch, input)?;
        return Ok(axum::Json(planned).into_response());
    }
    if route.starts_job() {
        let classes: &[Class] = if route.info.name == "server_create" {
            &[Class::Job, Class::ServerCreate]
        } else {
            &[Class::Job]
        };
        state
            .0
            .limits
            .take(&token.0, classes)
            .map_err(ApiError::rate_limited)?;
    }
    let run = route.run;
    let job = route.starts_job();
    // The operation runs in its own task: a client that disconnects does not cut it between
    // recording a job and spawning it (the job would stay queued with no one to run it). One
    // that writes runs on a thread of the blocking pool: it may wait for the state lock while
    // a job fsyncs, and that wait must not hold up a worker that answers reads.
    let writes = job || route.info.effect != livchat_core::ops::Effect::Read;
    let operation = async move {
        let output = run(Arc::clone(&orch), input).await?;
        if job {
            let id = output
                .get("id")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| ApiError::internal("a job operation answered no job id"))?;
            orch.spawn_job(id)?;
            tracing::info!(job = id, "job started");
        }
        Ok::<_, ApiError>(output)
    }
    .in_current_span();
    let task = if writes {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(operation))
    } else {
        tokio::spawn(operation)
    };
    let output = task.await.map_err(ApiError::internal)??;
    if job {
        let id = output["id"].as_str().unwrap_or_default();
        let location = HeaderValue::from_str(&format!("/api/jobs/{id}"))
            .map_err(|_| ApiError::internal("job id is not a header value"))?;
        return Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            axum::Json(output),
        )
            .into_response());
    }
    Ok(axum::Json(output).into_response())
}

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than the service accepts",
        )
    } else {
        ApiError::bad_input("body", e.body_text())
    }
}

async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

async fn system_info(State(state): State<AppState>) -> axum::Json<SystemInfo> {
    axum::Json(state.0.info.clone())
}

async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.0.openapi.clone(),
    )
        .into_response()
}

/// A static page: no data of the home is in it; it asks for the token and then reads
/// `/openapi.json` and calls the API with it.
async fn docs() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        ],
        DOCS_HTML,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; GET /openapi.json lists them")
}

fn is_public(req: &Request) -> bool {
    req.method() == Method::GET && matches!(req.uri().path(), "/health" | "/docs")
}

/// Bearer auth for every route but `/health` and the static `/docs` page, then the rate limit
/// of all requests of the token.
async fn auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if is_public(&req) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let Some(token) = presented else {
        return ApiError::unauthorized(
            "send `Authorization: Bearer <token>`; `livchat api token` prints it",
        )
        .into_response();
    };
    match state.orch().check_api_token(&token) {
        Ok(true) => {}
        Ok(false) => {
            return ApiError::unauthorized("the bearer token is not valid").into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    if let Err(wait) = state.0.limits.take(&token, &[Class::Any]) {
        return ApiError::rate_limited(wait).into_response();
    }
    req.extensions_mut().insert(Presented(Arc::from(token)));
    next.run(req).await
}

async fn with_timeout(limit: Duration, req: Request, next: Next) -> Response {
    // An event stream lasts as long as its job.
    if req.uri().path().ends_with("/events") {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the request took longer than {} s; a job it started keeps running (GET /api/jobs)",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_string())
}

/// Accepts or generates `X-Request-Id`, echoes it, writes one log line per request in a span
/// carrying the id (so every log line of the request has it), and gives axum's bare 405 the
/// service's error shape.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(valid_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span =
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = response.headers().get(header::ALLOW).cloned();
        response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "this route does not take that method; allowed: {}",
                allow
                    .as_ref()
                    .and_then(|a| a.to_str().ok())
                    .unwrap_or("none")
            ),
        )
        .into_response();
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "answered"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
