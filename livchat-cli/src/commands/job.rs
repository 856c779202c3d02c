//! `job ...`: list, show, logs, wait, cancel, retry, cleanup.

use std::process::ExitCode;

use anyhow::Result;
use livchat_core::jobs::{is_ended, parse_status, status_name};
use livchat_core::model::{JobRecord, JobStatus, LogLevel};
use livchat_core::ops::Operation;

use crate::args::{Global, JobCommand, OutputFormat};
use crate::output::{Table, print, stdoutln};

use crate::commands::progress::*;
use crate::open;

pub(crate) fn job_table(jobs: &[JobRecord]) -> Table {
    let mut t = Table::new(&["ID", "KIND", "SERVER", "STATUS", "PROGRESS", "STEP"]);
    for j in jobs {
        t.row(vec![
            j.id.clone(),
            j.kind.clone(),
            j.server.clone().unwrap_or_else(|| "-".into()),
            status_name(j.status).into(),
            format!("{}%", j.progress),
            j.current_step.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

pub(crate) fn job_pairs(j: &JobRecord) -> Table {
    Table::pairs(vec![
        ("id", j.id.clone()),
        ("kind", j.kind.clone()),
        ("server", j.server.clone().unwrap_or_else(|| "-".into())),
        ("status", status_name(j.status).into()),
        ("progress", format!("{}%", j.progress)),
        ("attempt", j.attempt.to_string()),
        ("steps done", j.steps_completed.join(", ")),
        ("steps remaining", j.steps_remaining.join(", ")),
        ("error", j.error.clone().unwrap_or_else(|| "-".into())),
    ])
}

pub(crate) fn print_log_line(line: &livchat_core::model::LogLine) {
    let level = match line.level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    stdoutln!(
        "{} {level:<5} {}",
        line.timestamp.format("%Y-%m-%dT%H:%M:%SZ"),
        line.message
    );
}

pub(crate) async fn job(g: &Global, cmd: JobCommand) -> Result<ExitCode> {
    let orch = open(g)?;
    let out = g.output;
    match cmd {
        JobCommand::List { status } => {
            let status = status.as_deref().map(parse_status).transpose()?;
            let jobs = orch.jobs().list(status)?;
            print(out, &jobs, || job_table(&jobs));
        }
        JobCommand::Show { id } => {
            let j = orch.jobs().get(&id)?;
            print(out, &j, || job_pairs(&j));
        }
        JobCommand::Logs {
            id,
            follow,
            tail,
            timeout,
        } => {
            // Checked before anything is printed, as `job wait` checks its --timeout.
            let timeout = livchat_core::ops::wait_timeout(Some(timeout))?;
            let mut from = 0;
            if let Some(tail) = tail {
                from = orch.job_logs(&id, 0)?.len().saturating_sub(tail);
            }
            let mut print_lines = |lines: &[livchat_core::model::LogLine]| -> Result<()> {
                for l in lines {
                    match out {
                        OutputFormat::Json => stdoutln!("{}", serde_json::to_string(l)?),
                        OutputFormat::Table => print_log_line(l),
                    }
                }
                Ok(())
            };
            if !follow {
                print_lines(&orch.job_logs(&id, from)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            // Core bounds the follow: it ends when the job ends, when the job's process is
            // gone (the job is then interrupted) or at the timeout.
            let job = orch
                .follow_job_logs(&id, from, timeout, &mut print_lines)
                .await?;
            match job.status {
                JobStatus::Interrupted => eprintln!(
                    "job {id} is interrupted: {}",
                    job.error.as_deref().unwrap_or("its process ended")
                ),
                status if !is_ended(status) => {
                    eprintln!(
                        "job {id} is still {} after {} s; stopped following (it runs on)",
                        status_name(status),
                        timeout.as_secs()
                    );
                    return Ok(ExitCode::FAILURE);
                }
                _ => {}
            }
        }
        JobCommand::Cancel { id } => {
            let j = orch.cancel_job(&id)?;
            print(out, &j, || job_pairs(&j));
        }
        JobCommand::Retry { id, .. } => {
            let j = orch.start_retry_job(&id)?;
            return run_job(&orch, j, g).await;
        }
        JobCommand::Wait { id, timeout } => {
            let j = livchat_core::ops::JobWait {
                id,
                timeout_secs: Some(timeout),
            }
            .run(&orch)
            .await?;
            let j = orch.jobs().get(&j.id)?;
            print(out, &j, || job_pairs(&j));
            if j.status != JobStatus::Completed {
                return Ok(ExitCode::FAILURE);
            }
        }
        JobCommand::Cleanup {
            older_than_days,
            status,
        } => {
            let status = status.as_deref().map(parse_status).transpose()?;
            let removed = livchat_core::ops::JobCleanup {
                older_than_days: Some(older_than_days),
                status,
            }
            .run(&orch)
            .await?
            .removed;
            print(out, &removed, || {
                Table::pairs(vec![("removed", removed.len().to_string())])
            });
        }
        JobCommand::Run { id, .. } => {
            // Started by --detach: leave the starting terminal's session so closing it does
            // not end the job, then take the job over from the process that created it.
            let _ = nix::unistd::setsid();
            orch.adopt_job(&id)?;
            let handle = orch.spawn_job(&id)?;
            let job = handle.join().await?;
            return Ok(if job.status == JobStatus::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
