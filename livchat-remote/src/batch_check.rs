//! Every check of a setup plan in one SSH round trip.
//!
//! A re-run of setup on a set-up server changes nothing, and one command per step made it cost
//! a round trip per step (11 on Debian 12). [`check_steps`] sends one script instead: each
//! step's check, as the same [`Command`] a lone check would run and quoted by
//! [`quote_command`], runs in the background with its output discarded, and the script prints
//! one line per check, `NONCE INDEX EXIT_STATUS`, in step order. The nonce is random per batch
//! and reaches the script as `$1`, so nothing else the account prints (a login shell's rc
//! files, say) can pass for a result; a check whose line is missing or unreadable counts as
//! not done, which only costs the caller a check of its own.
//!
//! The checks run at once because they only read: package status, files, `docker info`,
//! `ufw status`. A later check may depend on an earlier step (Swarm needs the engine), so a
//! batch only answers "is this done now"; once the caller applies a step, the checks after it
//! must be run again (the setup plan's `run_plan` does so).
//!
//! Cancel and timeout work as for any command: the batch is one command of the executor, and
//! the checks it starts inherit its `LIVCHAT_RUN` marker, so an abort kills them too.

use std::time::Duration;

use secrecy::SecretBox;
use tokio_util::sync::CancellationToken;

use crate::command::{Command, quote_command};
use crate::executor::{ExecOptions, RemoteError, RemoteExecutor};
use crate::step::{Action, Step};

/// The batch script for `steps` (sent on stdin to `sh -s -- NONCE`). Each check becomes a
/// function: a script check's text as it would arrive on stdin, called with its arguments
/// quoted by [`quote_command`] (so `$1`... mean what they mean on its own), an argv check its
/// quoted command line. Each function runs in the background, in a subshell of its own (its
/// `set -e` and `exit` stay there). Fails only on a check that cannot be quoted (a NUL byte),
/// as the check alone would.
pub fn batch_script(steps: &[Step]) -> Result<String, RemoteError> {
    let mut script = String::from("set -u\n");
    for (i, step) in steps.iter().enumerate() {
        let (body, args) = match &step.check {
            Action::Exec(command) => (quote_command(command)?, Vec::new()),
            Action::Script { script, args } => (script.trim_end().to_owned(), args.clone()),
        };
        let call = quote_command(&Command::new(format!("check_{i}")).args(args))?;
        script.push_str(&format!(
            "check_{i}() {{\n{body}\n}}\n{call} </dev/null >/dev/null 2>&1 &\np{i}=$!\n"
        ));
    }
    for i in 0..steps.len() {
        script.push_str(&format!(
            "wait \"$p{i}\"; printf '%s {i} %s\\n' \"$1\" \"$?\"\n"
        ));
    }
    Ok(script)
}

/// Reads the batch's output: `done[i]` is true when check `i` exited 0. Lines without the
/// nonce are ignored; a check without a line counts as not done.
pub fn parse_results(stdout: &[u8], nonce: &str, count: usize) -> Vec<bool> {
    let mut done = vec![false; count];
    for line in String::from_utf8_lossy(stdout).lines() {
        let mut words = line.split(' ');
        if words.next() != Some(nonce) {
            continue;
        }
        let (Some(index), Some(status), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if let (Ok(index), Ok(status)) = (index.parse::<usize>(), status.parse::<u32>())
            && index < count
        {
            done[index] = status == 0;
        }
    }
    done
}

/// Runs the checks of `steps` in one command and returns, per step, whether it is done.
pub async fn check_steps(
    executor: &dyn RemoteExecutor,
    steps: &[Step],
    timeout: Duration,
    cancel: CancellationToken,
) -> Result<Vec<bool>, RemoteError> {
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let script = batch_script(steps)?;
    let nonce = format!("LIVCHAT_CHECK_{:016x}", rand::random::<u64>());
    let out = executor
        .exec(
            &Command::sh_script([nonce.clone()]),
            ExecOptions {
                stdin: Some(SecretBox::new(script.into_bytes().into_boxed_slice())),
                timeout,
                cancel,
                on_line: None,
            },
        )
        .await?;
    let done = parse_results(&out.stdout, &nonce, steps.len());
    if !out.success() {
        tracing::debug!(
            exit_status = out.exit_status,
            "the batch of setup checks did not finish cleanly; checks without a result count as not done"
        );
    }
    Ok(done)
}
