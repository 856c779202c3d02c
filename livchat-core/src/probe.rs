//! The deploy's last health check: the app's declared `health_check.http_path`, requested
//! from inside its container (see `livchat_apps::probe`) until it answers 2xx or 3xx, before
//! the deploy is called healthy and its public routes open.

use std::time::Duration;

use livchat_apps::probe::{HttpProbe, NO_CLIENT, is_healthy_status, probe_argv};
use livchat_remote::{ContainerPlatform, ServiceExec};

use crate::error::{CoreError, Result};
use crate::jobs::JobContext;

const PAUSE: Duration = Duration::from_secs(3);

/// Requests `probe` in `stack` every few seconds for up to `timeout`. An image with no HTTP
/// client cannot be probed: that is a warning, not a failure (Swarm's health check, which the
/// deploy waited for, still stands).
pub(crate) async fn probe_http(
    ctx: &JobContext,
    platform: &dyn ContainerPlatform,
    stack: &str,
    probe: &HttpProbe,
    timeout: Duration,
) -> Result<()> {
    let what = format!(
        "GET {} on {stack}/{} port {}",
        probe.path, probe.service, probe.port
    );
    ctx.info(format!("health: {what}, from inside its container"));
    let attempts = (timeout.as_secs() / PAUSE.as_secs()).max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        ctx.check_cancelled()?;
        let out = platform
            .exec_in_service(ServiceExec {
                stack: stack.to_owned(),
                service: probe.service.clone(),
                argv: probe_argv(probe),
                stdin: None,
                user: None,
                timeout: Duration::from_secs(30),
                cancel: ctx.cancel_token(),
            })
            .await
            .map_err(|e| match e {
                livchat_remote::PlatformError::Cancelled => CoreError::Cancelled,
                other => CoreError::Platform(other.to_string()),
            })?;
        if out.exit_status == NO_CLIENT {
            ctx.warn(format!(
                "health: {stack}/{} has no curl, wget or node to request {}; relying on Swarm's health check",
                probe.service, probe.path
            ));
            return Ok(());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.trim().parse::<u16>() {
            Ok(code) if is_healthy_status(code) => {
                ctx.info(format!("health: {what} answered HTTP {code}"));
                return Ok(());
            }
            Ok(code) => last = format!("HTTP {code}"),
            Err(_) => {
                let stderr = ctx.redact(&livchat_remote::setup::tail(&out.stderr, 3));
                last = format!("no answer (exit status {}: {stderr})", out.exit_status);
            }
        }
        if attempt < attempts {
            ctx.info(format!(
                "health: {what}: {last}, attempt {attempt} of {attempts}"
            ));
            tokio::time::sleep(PAUSE).await;
        }
    }
    Err(CoreError::Step {
        step: format!("health of {stack}"),
        message: format!(
            "{what} did not answer 2xx or 3xx within {} s: {last}",
            timeout.as_secs()
        ),
    })
}
