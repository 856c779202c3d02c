//! `livchat-mcp`, the MCP server frontend over `livchat-core`: every operation of the core's
//! registry (`livchat_core::ops::operations()`) is one MCP tool of the same name, over stdio (the
//! default) or streamable HTTP (`--http 127.0.0.1:PORT`, behind the REST service's bearer token).
//!
//! Owns: the MCP wire shape of the operations (tool list, annotations, the result envelope,
//! `plan`/`confirm`/`max_wait_secs`), progress notifications and cancellation of the jobs a tool
//! call started, and the HTTP bearer check in front of rmcp's transport.
//! Must not touch: any leaf crate directly, the home's files, SSH or clouds; every effect is a
//! core operation, so a job started here is the same job `livchat job list` shows.
//!
//! Why the tools are not declared with rmcp's `#[tool]` macros: they are built from the core's
//! operation registry (`catalog`, `dispatch`), the one the CLI's commands and the REST routes
//! come from, so one definition per operation serves all three frontends and a parity test on
//! each side (here `dispatch::tests`) fails when an operation is missing; macros would restate
//! every tool's name, schema and annotations by hand. Output schemas keep only the top level of
//! each result (`catalog::output_schema`) to keep the `tools/list` answer under 40 KB.

mod catalog;
mod dispatch;
mod envelope;
mod follow;
mod handler;
mod http;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::Parser;
use livchat_core::{Config, Orchestrator};
use rmcp::ServiceExt;

use crate::handler::LivchatMcp;

/// MCP server of LivChat Setup (stdio by default).
#[derive(Debug, Parser)]
#[command(name = "livchat-mcp", version, about)]
struct Args {
    /// Home directory holding state.json and credentials.vault (default ~/.livchat).
    #[arg(long, env = "LIVCHAT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// File holding the vault password (else LIVCHAT_VAULT_PASSWORD, else <home>/.vault_password).
    #[arg(long, value_name = "FILE")]
    vault_password_file: Option<PathBuf>,
    /// Serve streamable HTTP on this loopback address (path /mcp) instead of stdio; requests
    /// need `Authorization: Bearer <api token>`, the token of the REST service.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // Logs go to stderr: on stdio, stdout is the protocol.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIVCHAT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    // Jobs on a runtime of their own, as in livchat-api: their store writes fsync from async
    // code and must not hold up the workers that answer tool calls over HTTP.
    let runtimes =
        tokio::runtime::Runtime::new().and_then(|calls| Ok((calls, Orchestrator::job_runtime()?)));
    let (runtime, jobs) = match runtimes {
        Ok(r) => r,
        Err(e) => {
            eprintln!("livchat-mcp: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, jobs.handle().clone())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livchat-mcp: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, jobs: tokio::runtime::Handle) -> anyhow::Result<()> {
    let home = match args.home {
        Some(h) => h,
        None => PathBuf::from(
            std::env::var_os("HOME")
                .ok_or_else(|| anyhow!("neither --home, LIVCHAT_HOME nor HOME is set"))?,
        )
        .join(".livchat"),
    };
    let mut config = Config::new(home).with_env(|k| std::env::var(k).ok())?;
    config.vault_password_file = args.vault_password_file;
    config.long_lived = true;
    let orch = Orchestrator::open(config).context("opening the livchat home")?;
    orch.run_jobs_on(jobs);
    let mcp = LivchatMcp::new(Arc::clone(&orch));
    match args.http {
        Some(addr) => http::serve(mcp.clone(), addr).await?,
        None => {
            let running = mcp
                .clone()
                .serve(rmcp::transport::stdio())
                .await
                .context("MCP initialization over stdio")?;
            running.waiting().await?;
        }
    }
    // Jobs started by the assistant belong to this process: let them end (each has the core's
    // hard timeout) rather than leave them to be marked interrupted.
    mcp.jobs().finish_all().await;
    Ok(())
}
