//! `app status` and `app logs`: the live state of deployed apps, rendered from core's
//! `app_status` and `app_logs` operations; `--follow` streams until Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use livchat_core::Orchestrator;
use livchat_core::model::CancellationToken;
use livchat_core::ops::{AppLogLine, AppLogs, AppStatus, AppStatusView, Operation};

use crate::args::OutputFormat;
use crate::output::{Table, print, stdoutln, words};

pub(crate) async fn app_status(
    orch: &Arc<Orchestrator>,
    out: OutputFormat,
    server: String,
    app: Option<String>,
) -> Result<ExitCode> {
    let views = AppStatus { server, app }.run(orch).await?;
    print(out, &views, || status_table(&views));
    Ok(ExitCode::SUCCESS)
}

/// One row per service; an app whose stack is gone gets one row saying so.
fn status_table(views: &[AppStatusView]) -> Table {
    let mut t = Table::new(&[
        "APP",
        "STATE",
        "SERVICE",
        "REPLICAS",
        "NODES",
        "UPDATE",
        "IMAGE",
        "LAST ERROR",
    ]);
    for v in views {
        if v.services.is_empty() {
            let dash = || "-".to_string();
            t.row(vec![
                v.app.clone(),
                words(&v.state),
                dash(),
                dash(),
                dash(),
                dash(),
                dash(),
                format!("no stack {} on the swarm", v.stack),
            ]);
        }
        for s in &v.services {
            t.row(vec![
                v.app.clone(),
                words(&v.state),
                s.name.clone(),
                format!("{}/{}", s.running, s.desired),
                if s.nodes.is_empty() {
                    "-".into()
                } else {
                    s.nodes.join(",")
                },
                s.update_state.clone().unwrap_or_else(|| "-".into()),
                s.image.clone(),
                s.last_error.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    t
}

pub(crate) async fn app_logs(
    orch: &Arc<Orchestrator>,
    out: OutputFormat,
    request: AppLogs,
    follow: bool,
) -> Result<ExitCode> {
    // With several services each line says whose it is; with one, lines are as printed.
    let prefixed = request.service.is_none();
    if follow {
        let cancel = CancellationToken::new();
        let on_ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        request
            .follow(orch, cancel, move |l| print_line(out, prefixed, &l))
            .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let view = request.run(orch).await?;
    match out {
        OutputFormat::Json => print(out, &view, Table::default),
        OutputFormat::Table => {
            for l in &view.lines {
                print_line(out, prefixed, l);
            }
            if view.truncated {
                eprintln!("note: older lines or long lines were cut to keep the output bounded");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A line as it comes: `service | line`, or one JSON object per line with `--output json`.
fn print_line(out: OutputFormat, prefixed: bool, l: &AppLogLine) {
    match out {
        OutputFormat::Json => stdoutln!(
            "{}",
            serde_json::to_string(l).unwrap_or_else(|_| "null".into())
        ),
        OutputFormat::Table if prefixed => stdoutln!("{} | {}", l.service, l.line),
        OutputFormat::Table => stdoutln!("{}", l.line),
    }
}
