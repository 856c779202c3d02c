//! `livchat-api`, the REST service: flags, logging, opening the home, then `serve::run`.
//!
//! Must not touch: any leaf crate directly; everything goes through `livchat-core` (see the
//! library root, `lib.rs`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use axum::http::HeaderValue;
use clap::Parser;
use livchat_api::limits::Limit;
use livchat_api::serve::{Listen, run};
use livchat_api::service::Options;
use livchat_core::{Config, Orchestrator};

const AFTER_HELP: &str = "\
The bearer token is the vault secret `api_token`: `livchat api token` prints it (creating it
on first use), `livchat api token --rotate` replaces it; a running service accepts only the
new one from then on. Every route except GET /health needs `Authorization: Bearer <token>`.

Environment:
  LIVCHAT_HOME             home directory (default ~/.livchat)
  LIVCHAT_VAULT_PASSWORD   vault password (else --vault-password-file, else <home>/.vault_password)
  LIVCHAT_APPS_DIR         extra app definition directories, colon-separated
  RUST_LOG                 log filter (default info)";

/// The LivChat Setup REST service (OpenAPI at /openapi.json, docs at /docs).
#[derive(Debug, Parser)]
#[command(name = "livchat-api", version, about, after_help = AFTER_HELP)]
struct Args {
    /// Address to listen on. Anything but loopback needs --tls-cert/--tls-key or --insecure-http.
    #[arg(long, default_value = "127.0.0.1:8420", value_name = "HOST:PORT")]
    listen: String,
    /// Home directory holding state.json and credentials.vault.
    #[arg(long, env = "LIVCHAT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// File holding the vault password.
    #[arg(long, value_name = "FILE")]
    vault_password_file: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy only).
    #[arg(long)]
    insecure_http: bool,
    /// Allow browser requests from this origin (repeatable). CORS is off without it.
    #[arg(long, value_name = "ORIGIN")]
    cors_origin: Vec<String>,
    /// Requests per minute per token.
    #[arg(long, default_value_t = 600, value_name = "N")]
    rate_limit_per_minute: u32,
    /// Job-creating requests per hour per token.
    #[arg(long, default_value_t = 60, value_name = "N")]
    job_rate_limit_per_hour: u32,
    /// Server creations per hour per token.
    #[arg(long, default_value_t = 5, value_name = "N")]
    server_create_limit_per_hour: u32,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    body_limit: usize,
    /// Longest a request may take (job event streams excepted; jobs run on regardless).
    #[arg(long, default_value_t = 330, value_name = "SECS")]
    request_timeout_secs: u64,
    /// How long requests in flight may finish after SIGTERM.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    shutdown_grace_secs: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // Requests and jobs on runtimes of their own: a job's fsyncs (and an operation's that
    // writes) block its worker thread while the disk works; reads must not wait for them.
    let runtimes = tokio::runtime::Builder::new_multi_thread()
        .thread_name("livchat-api")
        .enable_all()
        .build()
        .and_then(|requests| Ok((requests, Orchestrator::job_runtime()?)));
    let (runtime, jobs) = match runtimes {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(start(args, jobs.handle().clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let usage = e
                .downcast_ref::<livchat_core::CoreError>()
                .is_some_and(livchat_core::CoreError::is_bad_input);
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn per(requests: u32, secs: u64, flag: &str) -> Result<Limit> {
    if requests == 0 {
        return Err(anyhow!("invalid --{flag}: must be at least 1"));
    }
    Ok(Limit {
        requests,
        per: Duration::from_secs(secs),
    })
}

async fn start(args: Args, jobs: tokio::runtime::Handle) -> Result<()> {
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
    let cors_origins = args
        .cors_origin
        .iter()
        .map(|o| HeaderValue::from_str(o).map_err(|_| anyhow!("invalid --cors-origin `{o}`")))
        .collect::<Result<Vec<_>>>()?;
    let options = Options {
        rate_any: per(args.rate_limit_per_minute, 60, "rate-limit-per-minute")?,
        rate_job: per(
            args.job_rate_limit_per_hour,
            3600,
            "job-rate-limit-per-hour",
        )?,
        rate_server_create: per(
            args.server_create_limit_per_hour,
            3600,
            "server-create-limit-per-hour",
        )?,
        body_limit: args.body_limit,
        request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        cors_origins,
        tls: args.tls_cert.is_some(),
    };
    let listen = Listen {
        address: args.listen,
        tls: args.tls_cert.zip(args.tls_key),
        insecure_http: args.insecure_http,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
    };
    // Refuse a bad address before touching the home.
    livchat_api::serve::resolve(&listen)?;
    let orch = Orchestrator::open(config).context("could not open the home")?;
    orch.run_jobs_on(jobs);
    // Created on first use (>= 256 random bits in the vault); never printed here.
    orch.api_token(false)
        .context("could not read or create the API token")?;
    tracing::info!(
        home = %orch.config().home.display(),
        "token: the vault secret api_token (`livchat api token` prints it)"
    );
    run(orch, listen, options).await
}
