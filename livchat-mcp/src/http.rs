//! Streamable HTTP: rmcp's transport (with its loopback `Host` allowlist against DNS rebinding)
//! behind the bearer token the REST service uses (`Orchestrator::check_api_token`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use livchat_core::Orchestrator;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::handler::LivchatMcp;

/// The MCP endpoint's path.
pub const PATH: &str = "/mcp";

pub async fn serve(mcp: LivchatMcp, addr: SocketAddr) -> anyhow::Result<()> {
    // The Host allowlist only admits loopback names, and the token is the only other guard:
    // a non-loopback bind would be reachable from the network without TLS.
    if !addr.ip().is_loopback() {
        bail!("--http {addr}: only a loopback address (127.0.0.1 or ::1) is allowed");
    }
    let orch = Arc::clone(mcp.orchestrator());
    let cancel = livchat_core::model::CancellationToken::new();
    let config = StreamableHttpServerConfig::default().with_cancellation_token(cancel.clone());
    let service = StreamableHttpService::new(
        move || Ok(mcp.session()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new()
        .nest_service(PATH, service)
        .layer(middleware::from_fn_with_state(orch, require_bearer));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    eprintln!(
        "livchat-mcp: streamable HTTP on http://{}{PATH}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
        })
        .await?;
    Ok(())
}

async fn require_bearer(
    State(orch): State<Arc<Orchestrator>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(presented) = presented else {
        return unauthorized("missing bearer token");
    };
    // The check may re-read the vault (a rotated token takes effect without a restart).
    let checked = tokio::task::spawn_blocking(move || orch.check_api_token(&presented)).await;
    match checked {
        Ok(Ok(true)) => next.run(request).await,
        Ok(Ok(false)) => unauthorized("invalid bearer token"),
        Ok(Err(e)) => {
            tracing::error!("checking the API token: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot check the API token",
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!("checking the API token: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot check the API token",
            )
                .into_response()
        }
    }
}

fn unauthorized(why: &'static str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, why).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"livchat\""),
    );
    response
}
