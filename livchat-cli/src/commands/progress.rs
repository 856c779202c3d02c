//! Running a job from a command: progress on a terminal or as lines, Ctrl-C as a clean
//! cancel, `--detach`, and plans (`--plan`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use livchat_core::Orchestrator;
use livchat_core::jobs::{JobEvent, is_ended, status_name};
use livchat_core::model::{JobRecord, JobStatus, LogLevel};

use crate::args::{Global, OutputFormat};
use crate::output::{print, stdout, stdoutln};

use crate::commands::job::*;
use crate::home;

/// A dry run: what would change; nothing has been.
pub(crate) fn print_plan(p: &livchat_core::Plan, out: OutputFormat) -> Result<()> {
    match out {
        OutputFormat::Json => stdoutln!("{}", serde_json::to_string_pretty(p)?),
        OutputFormat::Table => {
            stdoutln!("plan: {} (nothing has been changed)", p.operation);
            stdoutln!("\nsteps:");
            for s in &p.steps {
                stdoutln!("  {s}");
            }
            stdoutln!("\nresources:");
            for r in &p.resources {
                stdoutln!("  + {r}");
            }
            stdoutln!("\nDNS records:");
            for r in &p.dns_records {
                stdoutln!("  + {r}");
            }
            for s in &p.stacks {
                stdoutln!(
                    "\n# stack {} (secrets redacted)\n{}",
                    s.stack,
                    s.compose.trim_end()
                );
            }
        }
    }
    Ok(())
}

/// Runs a job here, showing progress (a bar on a terminal, plain lines otherwise), cancelling it
/// cleanly on Ctrl-C, and ending with its record. Exit 1 unless it completed.
pub(crate) async fn run_job(
    orch: &Arc<Orchestrator>,
    job: JobRecord,
    g: &Global,
) -> Result<ExitCode> {
    let out = g.output;
    if g.detach {
        return detach_job(orch, job, g).await;
    }
    let id = job.id.clone();
    let ctx = orch.jobs().prepare(&id)?;
    let mut events = orch
        .jobs()
        .subscribe(&id)
        .ok_or_else(|| anyhow!("job {id} is not running in this process"))?;
    let token = ctx.cancel_token();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("cancelling (the command in flight is being stopped)...");
            token.cancel();
        }
    });
    let tty = std::io::stderr().is_terminal();
    eprintln!("job {id}: {}", job.kind);
    let bar = if tty {
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos:>3}% {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let runner = {
        let orch = Arc::clone(orch);
        let id = id.clone();
        tokio::spawn(async move { orch.run_job(&id).await })
    };
    loop {
        match events.recv().await {
            Ok(JobEvent::Progress {
                progress,
                step,
                steps_done,
                steps_total,
            }) => {
                bar.set_position(u64::from(progress));
                if let Some(step) = step {
                    bar.set_message(format!("[{}/{}] {step}", steps_done + 1, steps_total));
                    if !tty {
                        eprintln!("[{}/{}] {step} ({progress}%)", steps_done + 1, steps_total);
                    }
                }
            }
            Ok(JobEvent::Log(line)) if line.level != LogLevel::Debug => {
                let text = format!("  {}", line.message);
                if tty {
                    bar.println(text);
                } else {
                    eprintln!("{text}");
                }
            }
            Ok(JobEvent::Log(_)) => {}
            Ok(JobEvent::Finished { .. }) => break,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
    let record = runner.await.context("the job task panicked")??;
    bar.finish_and_clear();
    match out {
        OutputFormat::Json => stdoutln!("{}", serde_json::to_string_pretty(&record)?),
        OutputFormat::Table => stdout!("{}", job_pairs(&record).render()),
    }
    if record.status == JobStatus::Completed {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: job {id} {}: {}{}",
            status_name(record.status),
            record.error.clone().unwrap_or_default(),
            // A changed host key fails again on every retry: its error names the command that
            // fixes it (`server repin-host-key`), which must come first.
            if matches!(
                record.status,
                JobStatus::Failed | JobStatus::Cancelled | JobStatus::Interrupted
            ) && !record
                .error
                .as_deref()
                .is_some_and(|e| e.contains(livchat_core::host_key::REPIN_COMMAND))
            {
                format!(" (retry with `livchat job retry {id}`)")
            } else {
                String::new()
            }
        );
        Ok(ExitCode::FAILURE)
    }
}

/// `--detach`: hands the queued job to a background `livchat job run` process (its own
/// session, stdin closed, output discarded: the job log has everything), waits until that
/// process owns the job, prints the job and returns.
pub(crate) async fn detach_job(
    orch: &Arc<Orchestrator>,
    job: JobRecord,
    g: &Global,
) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the livchat executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--home").arg(home(g)?);
    if let Some(file) = &g.vault_password_file {
        cmd.arg("--vault-password-file").arg(file);
    }
    cmd.args(["job", "run", &job.id]);
    if g.wait_turn {
        cmd.arg("--wait-turn");
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd
        .spawn()
        .context("could not start the background job process")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let record = orch.jobs().get(&job.id)?;
        if record.owner.as_ref().is_some_and(|o| o.pid == child.id()) || is_ended(record.status) {
            print(g.output, &record, || job_pairs(&record));
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            return Err(anyhow!(
                "the background job process ended before taking job {} ({status})",
                job.id
            ));
        }
        if std::time::Instant::now() > deadline {
            return Err(anyhow!(
                "the background job process did not take job {} within 30 s",
                job.id
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
