//! A setup re-run at the round-trip limit: the setup job's `connect` step checks every step of
//! the plan in one round trip (`livchat_remote::check_steps`) and declares the steps already
//! done, up to the first that is not, done ahead ([`JobContext::done_ahead`]). When they come
//! up, the job manager records them complete together in one store write, with the same log
//! lines a skipped step gets, instead of one SSH round trip and two store writes per step.
//!
//! The steps from the first undone one on run as before, each checked on its own: applying a
//! step can change what the checks after it see (Swarm needs the engine). Between `connect`
//! and the setup steps only the DNS record step runs, which does not touch the server, so the
//! checks' answers still hold when the steps come up.

use livchat_remote::{RemoteError, RemoteExecutor, Step};

use crate::error::{CoreError, Result};
use crate::jobs::JobContext;

/// Job steps of the setup plan are named `setup:<step id>`.
pub(crate) const SETUP_PREFIX: &str = "setup:";

/// Checks every step of `plan` in one round trip and declares the leading done ones done
/// ahead; returns their ids.
pub(crate) async fn declare_done_steps(
    ctx: &JobContext,
    executor: &dyn RemoteExecutor,
    plan: &[Step],
) -> Result<Vec<&'static str>> {
    let done = livchat_remote::check_steps(
        executor,
        plan,
        livchat_remote::RunOptions::default().step_timeout,
        ctx.cancel_token(),
    )
    .await
    .map_err(|e| match e {
        RemoteError::Cancelled => CoreError::Cancelled,
        other => CoreError::Remote(other),
    })?;
    let leading: Vec<&Step> = plan
        .iter()
        .zip(&done)
        .take_while(|(_, done)| **done)
        .map(|(step, _)| step)
        .collect();
    for step in &leading {
        ctx.done_ahead(
            format!("{SETUP_PREFIX}{}", step.id),
            format!("{}: already in place", step.name),
        );
    }
    ctx.info(match plan.get(leading.len()) {
        None => format!(
            "{} setup steps checked in one round trip: all in place",
            plan.len()
        ),
        Some(next) => format!(
            "{} setup steps checked in one round trip: the first {} in place; '{}' and each step after it run with a check of their own",
            plan.len(),
            leading.len(),
            next.name
        ),
    });
    Ok(leading.iter().map(|s| s.id).collect())
}
