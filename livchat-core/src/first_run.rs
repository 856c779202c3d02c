//! The first-run claim of an app inside its deploy job (see `livchat_apps::first_run`): sent
//! from inside the app's container while its public routes are closed, so whoever reads the
//! new name in certificate logs finds an instance that already has its admin.
//!
//! A claim that succeeded is recorded in the state (`first_run_claims`) until the app's data
//! is deleted. The app refuses a second claim, so a deploy that comes after one whose claim
//! succeeded but which then failed (its clean-up keeps the data) would otherwise fail on every
//! retry: with the record, that refusal means "claimed by us already". Without it, a refusal
//! stays a failure, since it may be someone else's claim.

use std::time::Duration;

use livchat_apps::first_run::{claim_accepted, claim_command, claim_status};
use livchat_apps::{ExecClaimStep, HttpRequestStep};
use livchat_remote::{ContainerPlatform, ServiceExec};
use secrecy::{ExposeSecret, SecretBox};

use crate::error::{CoreError, Result};
use crate::jobs::JobContext;

/// Tries before giving up while the app answers nothing or 5xx: it may pass its health check a
/// little before its API routes are mounted (n8n does).
const ATTEMPTS: u32 = 20;
const PAUSE: Duration = Duration::from_secs(3);

/// Sends `step`'s claim and checks its status. A 4xx other than 404 is final (the page
/// refused, e.g. it was claimed already): done when `claimed_before` (the state records that
/// an earlier deploy's claim of this app's data succeeded), a failure otherwise. No answer,
/// 404 or 5xx is retried a bounded number of times.
pub(crate) async fn claim(
    ctx: &JobContext,
    platform: &dyn ContainerPlatform,
    step: &HttpRequestStep,
    claimed_before: bool,
) -> Result<()> {
    let what = format!("first-run claim of {}", step.stack);
    ctx.info(format!(
        "claiming the first-run page of {} ({} {}) from inside {}/{}, before any public route exists",
        step.stack,
        method(step),
        step.path,
        step.stack,
        step.service
    ));
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        ctx.check_cancelled()?;
        let cmd = claim_command(step);
        let out = platform
            .exec_in_service(ServiceExec {
                stack: step.stack.clone(),
                service: step.service.clone(),
                argv: cmd.argv,
                stdin: Some(SecretBox::new(
                    cmd.stdin
                        .expose_secret()
                        .as_bytes()
                        .to_vec()
                        .into_boxed_slice(),
                )),
                user: None,
                timeout: Duration::from_secs(60),
                cancel: ctx.cancel_token(),
            })
            .await
            .map_err(|e| match e {
                livchat_remote::PlatformError::Cancelled => CoreError::Cancelled,
                other => CoreError::Platform(other.to_string()),
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = ctx.redact(&livchat_remote::setup::tail(&out.stderr, 3));
        match claim_status(&stdout) {
            Some(code) if out.success() && claim_accepted(step, code) => {
                ctx.info(format!("{what} accepted (HTTP {code})"));
                return Ok(());
            }
            // 404 too may mean "not mounted yet"; a wrong path ends after the bounded tries.
            Some(code) if out.success() && code < 500 && code != 404 && claimed_before => {
                ctx.info(refused_but_ours(&what, &format!("HTTP {code}")));
                return Ok(());
            }
            Some(code) if out.success() && code < 500 && code != 404 => {
                return Err(CoreError::Step {
                    step: what,
                    message: format!(
                        "the setup page answered HTTP {code} (expected {}); the public routes stay closed. livchat has no record of claiming this app's data: someone else's claim, or one made before livchat recorded its claims",
                        expected(step)
                    ),
                });
            }
            Some(code) => last = format!("HTTP {code}"),
            None => last = format!("exit status {}: {stderr}", out.exit_status),
        }
        ctx.info(format!(
            "{what}: no answer yet ({last}), attempt {attempt} of {ATTEMPTS}"
        ));
        tokio::time::sleep(PAUSE).await;
    }
    Err(CoreError::Step {
        step: what,
        message: format!("the setup page did not answer ({last}); the public routes stay closed"),
    })
}

/// Runs `step`'s claim command once, its JSON input on stdin. It runs after the health step,
/// so the container is up; a command that fails is not retried, since a partial claim (an
/// account made, the onboarding flag still set) must be looked at, not repeated. A failure
/// is done when `claimed_before` (see [`claim`]): the commands refuse an app that has its
/// admin already.
///
/// Without that record, a failure whose output says the account exists (the step's
/// `on_exists`) is this claim's own earlier run that made the account and then failed: the
/// claim runs while no public route leads to the app, so nobody else could have made it. The
/// step's `on_exists` command then gives that account the vault's password, with the same
/// input on stdin.
pub(crate) async fn claim_exec(
    ctx: &JobContext,
    platform: &dyn ContainerPlatform,
    step: &ExecClaimStep,
    claimed_before: bool,
) -> Result<()> {
    let what = format!("first-run claim of {}", step.stack);
    ctx.info(format!(
        "claiming the first-run page of {} with {:?} inside {}/{}, before any public route exists",
        step.stack, step.argv, step.stack, step.service
    ));
    let out = exec_claim(ctx, platform, step, &step.argv).await?;
    if out.success() {
        ctx.info(format!("{what} done"));
        return Ok(());
    }
    if claimed_before {
        let why = format!(
            "exit status {}: {}",
            out.exit_status,
            ctx.redact(&livchat_remote::setup::tail(&out.stderr, 3))
        );
        ctx.info(refused_but_ours(&what, &why));
        return Ok(());
    }
    if let Some(on_exists) = step.on_exists.as_ref().filter(|e| {
        let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(&e.output_contains);
        said(&out.stdout) || said(&out.stderr)
    }) {
        ctx.info(format!(
            "{what}: the admin account exists already ({:?}) though no claim is recorded: an earlier run of this claim made it and then failed (claims run before any public route opens); giving it the vault's password with {:?}",
            on_exists.output_contains, on_exists.argv
        ));
        let again = exec_claim(ctx, platform, step, &on_exists.argv).await?;
        if again.success() {
            ctx.info(format!(
                "{what} done (the existing admin has the vault's password)"
            ));
            return Ok(());
        }
        return Err(CoreError::Step {
            step: what,
            message: format!(
                "the admin account exists already, and giving it the vault's password failed: exit status {}: {}; the public routes stay closed",
                again.exit_status,
                ctx.redact(&livchat_remote::setup::tail(&again.stderr, 5))
            ),
        });
    }
    Err(CoreError::Step {
        step: what,
        message: format!(
            "exit status {}: {}; the public routes stay closed. livchat has no record of claiming this app's data: someone else's claim, or one made before livchat recorded its claims",
            out.exit_status,
            ctx.redact(&livchat_remote::setup::tail(&out.stderr, 5))
        ),
    })
}

/// Runs `argv` in `step`'s service with `step`'s input on stdin.
async fn exec_claim(
    ctx: &JobContext,
    platform: &dyn ContainerPlatform,
    step: &ExecClaimStep,
    argv: &[String],
) -> Result<livchat_remote::ExecOutput> {
    platform
        .exec_in_service(ServiceExec {
            stack: step.stack.clone(),
            service: step.service.clone(),
            argv: argv.to_vec(),
            stdin: Some(SecretBox::new(
                step.stdin
                    .expose_secret()
                    .as_bytes()
                    .to_vec()
                    .into_boxed_slice(),
            )),
            user: None,
            timeout: Duration::from_secs(step.timeout_secs.unwrap_or(300)),
            cancel: ctx.cancel_token(),
        })
        .await
        .map_err(|e| match e {
            livchat_remote::PlatformError::Cancelled => CoreError::Cancelled,
            other => CoreError::Platform(other.to_string()),
        })
}

/// The log line for a refused claim that an earlier deploy's recorded claim explains.
fn refused_but_ours(what: &str, answer: &str) -> String {
    format!(
        "{what} refused ({answer}): an earlier deploy claimed this app's data (recorded in the state), and its admin password is the one in the vault"
    )
}

fn method(step: &HttpRequestStep) -> &'static str {
    match step.method {
        livchat_apps::definition::HttpMethod::Post => "POST",
        livchat_apps::definition::HttpMethod::Put => "PUT",
    }
}

fn expected(step: &HttpRequestStep) -> String {
    if step.expect_status.is_empty() {
        "2xx".into()
    } else {
        step.expect_status
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    }
}
