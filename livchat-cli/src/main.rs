//! `livchat`, the command-line frontend: argument parsing, progress display and rendering of
//! results (table or JSON) over `livchat-core`.
//!
//! Must not touch: any leaf crate directly, SSH, clouds or files of the home directory; every
//! operation is a call into `livchat-core`. Glue code only: `args` holds the raw arguments,
//! this file turns them into core calls, `output` renders what comes back.
//!
//! Exit codes: 0 done, 1 failed, 2 usage (bad arguments or invalid values).

mod args;
mod commands;
mod logging;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use clap::{CommandFactory, Parser};
use livchat_core::model::ExposeSecret;
use livchat_core::{Config, CoreError, Orchestrator, ProviderInfo, ProviderInfoKind};

use crate::args::{ApiCommand, Cli, Command, DnsCommand, Global, ProviderCommand};
use crate::commands::{app::*, job::*, secrets::*, server::*};
use crate::output::{Table, print, write_stdout};

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(flags) = cli.command.job_flags() {
        cli.global.wait_turn = flags.wait_turn;
        cli.global.detach = flags.detach;
    }
    logging::init(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let usage = e
                .downcast_ref::<CoreError>()
                .is_some_and(CoreError::is_bad_input);
            let text = format!("{e:#}");
            eprintln!("error: {}", text.replace('\n', " "));
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn home(global: &Global) -> Result<PathBuf> {
    if let Some(h) = &global.home {
        return Ok(h.clone());
    }
    if let Some(h) = std::env::var_os("LIVCHAT_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    let user_home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("neither --home, LIVCHAT_HOME nor HOME is set"))?;
    Ok(PathBuf::from(user_home).join(".livchat"))
}

fn config(global: &Global) -> Result<Config> {
    let mut config = Config::new(home(global)?).with_env(|k| std::env::var(k).ok())?;
    config.vault_password_file = global.vault_password_file.clone();
    config.wait_turn = global.wait_turn;
    Ok(config)
}

fn open(global: &Global) -> Result<Arc<Orchestrator>> {
    Ok(Orchestrator::open(config(global)?)?)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    let out = g.output;
    match cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "livchat", &mut script);
            write_stdout(&script);
        }
        Command::Init => {
            let report = Orchestrator::init(&config(g)?)?;
            // The API token exists from the start: there is never a default one.
            open(g)?.api_token(false)?;
            let json = serde_json::json!({
                "home": report.paths.home,
                "created_home": report.created_home,
                "created_state": report.created_state,
                "created_vault": report.created_vault,
                "created_password_file": report.created_password_file,
            });
            print(out, &json, || {
                Table::pairs(vec![
                    ("home", report.paths.home.display().to_string()),
                    ("state.json", created(report.created_state)),
                    ("credentials.vault", created(report.created_vault)),
                    (".vault_password", created(report.created_password_file)),
                ])
            });
        }
        Command::Api(ApiCommand::Token { rotate }) => {
            let token = open(g)?.api_token(rotate)?;
            println!("{}", token.expose_secret());
        }
        Command::Secrets(cmd) => secrets(g, cmd)?,
        Command::Settings(cmd) => settings(g, cmd)?,
        Command::Provider(ProviderCommand::Configure) => {
            let orch = open(g)?;
            let key = orch.configure_provider(read_stdin_secret()?).await?;
            print(
                out,
                &serde_json::json!({ "key": key, "checked": true, "stored": true }),
                || Table::pairs(vec![("stored", format!("{key} (checked against the API)"))]),
            );
        }
        Command::Dns(DnsCommand::Configure { zone }) => {
            let orch = open(g)?;
            orch.configure_cloudflare(read_stdin_secret()?, &zone)
                .await?;
            print(
                out,
                &serde_json::json!({ "key": livchat_core::CLOUDFLARE_TOKEN, "zone": zone, "checked": true, "stored": true }),
                || {
                    Table::pairs(vec![(
                        "stored",
                        format!("{} (sees zone {zone})", livchat_core::CLOUDFLARE_TOKEN),
                    )])
                },
            );
        }
        Command::Provider(ProviderCommand::Info { what }) => {
            let orch = open(g)?;
            let kind = match what {
                args::ProviderInfo::Locations => ProviderInfoKind::Locations,
                args::ProviderInfo::ServerTypes => ProviderInfoKind::ServerTypes,
                args::ProviderInfo::Images => ProviderInfoKind::Images,
            };
            let info = orch.provider_info(kind).await?;
            print(out, &info, || match &info {
                ProviderInfo::Locations(l) => {
                    let mut t = Table::new(&["NAME", "CITY", "COUNTRY", "ZONE"]);
                    for x in l {
                        t.row(vec![
                            x.name.clone(),
                            x.city.clone(),
                            x.country.clone(),
                            x.network_zone.clone(),
                        ]);
                    }
                    t
                }
                ProviderInfo::ServerTypes(l) => {
                    let mut t =
                        Table::new(&["NAME", "CORES", "MEMORY", "DISK", "ARCH", "FROM/MONTH"]);
                    for x in l {
                        let price = x
                            .prices
                            .iter()
                            .map(|p| p.monthly_gross.trim_end_matches('0').to_string())
                            .min_by(|a, b| {
                                a.parse::<f64>()
                                    .unwrap_or(f64::MAX)
                                    .total_cmp(&b.parse::<f64>().unwrap_or(f64::MAX))
                            })
                            .unwrap_or_default();
                        t.row(vec![
                            x.name.clone(),
                            x.cores.to_string(),
                            format!("{} GB", x.memory_gb),
                            format!("{} GB", x.disk_gb),
                            x.architecture.to_string(),
                            price,
                        ]);
                    }
                    t
                }
                ProviderInfo::Images(l) => {
                    let mut t = Table::new(&["NAME", "FLAVOR", "DESCRIPTION"]);
                    for x in l {
                        t.row(vec![
                            x.name.clone().unwrap_or_else(|| x.id.to_string()),
                            x.os_flavor.clone(),
                            x.description.clone(),
                        ]);
                    }
                    t
                }
            });
        }
        Command::Dns(DnsCommand::List { zone }) => {
            let orch = open(g)?;
            let records = orch.dns_list(&zone).await?;
            print(out, &records, || {
                let mut t = Table::new(&["TYPE", "NAME", "CONTENT", "PROXIED", "ID"]);
                for r in &records {
                    t.row(vec![
                        r.record_type.to_string(),
                        r.name.clone(),
                        r.content.clone(),
                        r.proxied.map_or("-".into(), |p| p.to_string()),
                        r.id.clone(),
                    ]);
                }
                t
            });
        }
        Command::Server(cmd) => return server(g, cmd).await,
        Command::App(cmd) => return app(g, cmd).await,
        Command::Job(cmd) => return job(g, cmd).await,
    }
    Ok(ExitCode::SUCCESS)
}
