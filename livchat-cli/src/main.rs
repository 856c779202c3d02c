//! `livchat`, the command-line frontend: argument parsing, progress display and rendering of
//! results (table or JSON) over `livchat-core`.
//!
//! Must not touch: any leaf crate directly, SSH, clouds or files of the home directory; every
//! operation is a call into `livchat-core`. Glue code only: `args` holds the raw arguments,
//! this file turns them into core calls, `output` renders what comes back.
//!
//! Exit codes: 0 done, 1 failed, 2 usage (bad arguments or invalid values).

mod args;
mod logging;
mod output;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::{CommandFactory, Parser};
use indicatif::{ProgressBar, ProgressStyle};
use livchat_core::jobs::{JobEvent, is_ended, parse_status, status_name};
use livchat_core::model::{ExposeSecret, JobRecord, JobStatus, LogLevel, SecretString};
use livchat_core::ops::Operation;
use livchat_core::{
    AddServer, Config, CoreError, CreateServerParams, HostKeyOffer, HostKeyTrust, Orchestrator,
    ProviderInfo, ProviderInfoKind, SetupServerParams,
};

use crate::args::{
    ApiCommand, AppCommand, Cli, Command, DnsCommand, Global, JobCommand, OutputFormat,
    ProviderCommand, SecretsCommand, ServerCommand, SettingsCommand,
};
use crate::output::{Table, print, stdout, stdoutln, words, write_stdout};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            orch.configure_hetzner(read_stdin_secret()?).await?;
            print(
                out,
                &serde_json::json!({ "key": livchat_core::HETZNER_TOKEN, "checked": true, "stored": true }),
                || {
                    Table::pairs(vec![(
                        "stored",
                        format!("{} (checked against the API)", livchat_core::HETZNER_TOKEN),
                    )])
                },
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

fn created(yes: bool) -> String {
    if yes {
        "created".into()
    } else {
        "exists (kept)".into()
    }
}

fn read_stdin_secret() -> Result<SecretString> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("could not read the value from standard input")?;
    let trimmed = value.strip_suffix('\n').unwrap_or(&value);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(SecretString::from(trimmed.to_string()))
}

/// A secret kept in a file (one line; a trailing newline is not part of it).
fn read_secret_file(path: &std::path::Path, flag: &str) -> Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {flag} {}", path.display()))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    Ok(SecretString::from(
        line.strip_suffix('\r').unwrap_or(line).to_string(),
    ))
}

fn secrets(g: &Global, cmd: SecretsCommand) -> Result<()> {
    if let SecretsCommand::Set { value: Some(_), .. } = cmd {
        return Err(CoreError::invalid(
            "VALUE",
            "a secret is never taken from the command line (process lists and shell history show it); \
             type it at the hidden prompt or pipe it: `livchat secrets set KEY < file`",
        )
        .into());
    }
    let orch = open(g)?;
    match cmd {
        SecretsCommand::Set { key, stdin, .. } => {
            let value = if !stdin && std::io::stdin().is_terminal() {
                SecretString::from(
                    rpassword::prompt_password(format!("Value for {key} (not shown): "))
                        .context("could not read the value from the terminal")?,
                )
            } else {
                read_stdin_secret()?
            };
            orch.secret_set(&key, value)?;
            print(
                g.output,
                &serde_json::json!({ "key": key, "stored": true }),
                || Table::pairs(vec![("stored", key.clone())]),
            );
        }
        SecretsCommand::Get { key } => {
            let value = orch.secret_get(&key)?;
            match g.output {
                OutputFormat::Json => stdoutln!(
                    "{}",
                    serde_json::json!({ "key": key, "value": value.expose_secret() })
                ),
                OutputFormat::Table => stdoutln!("{}", value.expose_secret()),
            }
        }
        SecretsCommand::List => {
            let names = orch.secret_names()?;
            print(g.output, &names, || {
                let mut t = Table::new(&["NAME"]);
                for n in &names {
                    t.row(vec![n.clone()]);
                }
                t
            });
        }
        SecretsCommand::Delete { key } => {
            orch.secret_delete(&key)?;
            print(
                g.output,
                &serde_json::json!({ "key": key, "deleted": true }),
                || Table::pairs(vec![("deleted", key.clone())]),
            );
        }
    }
    Ok(())
}

fn settings(g: &Global, cmd: SettingsCommand) -> Result<()> {
    let orch = open(g)?;
    match cmd {
        SettingsCommand::Set { key, value } => {
            orch.setting_set(&key, &value)?;
            print(
                g.output,
                &serde_json::json!({ "key": key, "value": value }),
                || Table::pairs(vec![(key.as_str(), value.clone())]),
            );
        }
        SettingsCommand::Get { key } => {
            let value = orch.setting_get(&key)?;
            match g.output {
                OutputFormat::Json => {
                    stdoutln!("{}", serde_json::json!({ "key": key, "value": value }))
                }
                OutputFormat::Table => stdoutln!("{}", value.unwrap_or_default()),
            }
        }
        SettingsCommand::List => {
            let all = orch.settings()?;
            let json: serde_json::Map<String, serde_json::Value> = all
                .iter()
                .map(|(k, v, _)| (k.clone(), serde_json::json!(v)))
                .collect();
            print(g.output, &json, || {
                let mut t = Table::new(&["KEY", "VALUE", "DESCRIPTION"]);
                for (k, v, d) in &all {
                    t.row(vec![
                        k.clone(),
                        v.clone().unwrap_or_else(|| "-".into()),
                        d.to_string(),
                    ]);
                }
                t
            });
        }
    }
    Ok(())
}

fn server_table(servers: &[livchat_core::model::ServerRecord]) -> Table {
    let mut t = Table::new(&["NAME", "HOST", "PROVIDER", "STATUS", "DNS"]);
    for s in servers {
        t.row(vec![
            s.name.clone(),
            format!("{}:{}", s.host, s.ssh_port),
            words(&s.provider),
            words(&s.status),
            s.dns.as_ref().map_or("-".into(), |d| match &d.subdomain {
                Some(sub) => format!("{sub}.{}", d.zone_name),
                None => d.zone_name.clone(),
            }),
        ]);
    }
    t
}

async fn server(g: &Global, cmd: ServerCommand) -> Result<ExitCode> {
    let orch = open(g)?;
    let out = g.output;
    match cmd {
        ServerCommand::Create {
            name,
            server_type,
            location,
            image,
            plan,
        } => {
            let setting = |key: &str| orch.setting_get(key).ok().flatten();
            let server_type = server_type
                .or_else(|| setting("default_server_type"))
                .ok_or_else(|| {
                    CoreError::invalid("--type", "give --type or set default_server_type")
                })?;
            let location = location
                .or_else(|| setting("default_location"))
                .ok_or_else(|| {
                    CoreError::invalid("--location", "give --location or set default_location")
                })?;
            let params = CreateServerParams {
                name,
                server_type,
                location,
                image: image.unwrap_or_else(|| "debian-12".into()),
                keep_on_failure: false,
            };
            if plan {
                print_plan(&orch.plan_create_server(&params), out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = orch.start_create_server(params)?;
            return run_job(&orch, job, g).await;
        }
        ServerCommand::Add {
            name,
            host,
            port,
            user,
            key,
            key_passphrase_file,
            ssh_agent,
            host_key_fingerprint,
            accept_new_host_key,
        } => {
            let host_key = match (host_key_fingerprint, accept_new_host_key) {
                (Some(fp), _) => Some(HostKeyTrust::Expect(fp)),
                (None, true) => Some(HostKeyTrust::AcceptNew),
                (None, false) => ask_on_terminal(),
            };
            let key_path = key;
            let key = match &key_path {
                Some(path) => Some(SecretString::from(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("could not read --key {}", path.display()))?,
                )),
                None => None,
            };
            let key_passphrase = match (&key_passphrase_file, &key) {
                (Some(file), _) => Some(read_secret_file(file, "--key-passphrase-file")?),
                (None, Some(k))
                    if livchat_core::key_needs_passphrase(k)
                        && std::io::stdin().is_terminal()
                        && std::io::stderr().is_terminal() =>
                {
                    let path = key_path.as_deref().unwrap_or(std::path::Path::new("--key"));
                    Some(SecretString::from(
                        rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
                            .context("could not read the passphrase")?,
                    ))
                }
                _ => None,
            };
            let added = orch
                .server_add(AddServer {
                    name,
                    host,
                    port,
                    user,
                    private_key: key,
                    key_passphrase,
                    ssh_agent,
                    host_key,
                })
                .await?;
            for note in &added.notes {
                eprintln!("note: {note}");
            }
            let record = added.record;
            print(out, &record, || {
                Table::pairs(vec![
                    ("added", record.name.clone()),
                    ("host", format!("{}:{}", record.host, record.ssh_port)),
                    (
                        "host key",
                        record.host_key_fingerprint.clone().unwrap_or_default(),
                    ),
                ])
            });
        }
        ServerCommand::List => {
            let servers = orch.servers()?;
            print(out, &servers, || server_table(&servers));
        }
        ServerCommand::Show { name } => {
            let s = orch.server(&name)?;
            print(out, &s, || {
                Table::pairs(vec![
                    ("name", s.name.clone()),
                    ("host", format!("{}:{}", s.host, s.ssh_port)),
                    ("user", s.ssh_user.clone()),
                    ("provider", words(&s.provider)),
                    ("status", words(&s.status)),
                    (
                        "host key",
                        s.host_key_fingerprint.clone().unwrap_or_else(|| "-".into()),
                    ),
                    (
                        "dns",
                        s.dns.as_ref().map_or("-".into(), |d| {
                            format!(
                                "{} {}",
                                d.zone_name,
                                d.subdomain.clone().unwrap_or_default()
                            )
                        }),
                    ),
                    (
                        "setup steps done",
                        s.setup.completed_steps.len().to_string(),
                    ),
                ])
            });
        }
        ServerCommand::Delete { name, force, plan } => {
            if plan {
                print_plan(&orch.plan_delete_server(&name, force)?, out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = orch.start_delete_server(&name, force)?;
            return run_job(&orch, job, g).await;
        }
        ServerCommand::Setup {
            name,
            zone,
            subdomain,
            dns,
            plan,
        } => {
            let params = SetupServerParams {
                name,
                zone,
                subdomain,
                dns: match dns {
                    args::DnsModeArg::Cloudflare => livchat_core::model::DnsMode::Cloudflare,
                    args::DnsModeArg::Manual => livchat_core::model::DnsMode::Manual,
                },
            };
            if plan {
                print_plan(&orch.plan_setup_server(&params)?, out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = orch.start_setup_server(params)?;
            return run_job(&orch, job, g).await;
        }
        ServerCommand::Dns {
            name,
            zone,
            subdomain,
        } => {
            let fqdn = orch
                .update_server_dns(&name, &zone, subdomain.as_deref())
                .await?;
            print(
                out,
                &serde_json::json!({ "server": name, "record": fqdn }),
                || Table::pairs(vec![("A record", fqdn.clone())]),
            );
        }
        ServerCommand::Exec { name, argv } => {
            let token = livchat_core::model::CancellationToken::new();
            let t = token.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    t.cancel();
                }
            });
            let output = orch.server_exec(&name, &argv, token).await?;
            use std::io::Write;
            match out {
                OutputFormat::Json => stdoutln!(
                    "{}",
                    serde_json::json!({
                        "exit_status": output.exit_status,
                        "stdout": String::from_utf8_lossy(&output.stdout),
                        "stderr": String::from_utf8_lossy(&output.stderr),
                    })
                ),
                OutputFormat::Table => {
                    write_stdout(&output.stdout);
                    std::io::stderr().write_all(&output.stderr)?;
                }
            }
            if output.exit_status != 0 {
                eprintln!(
                    "error: remote command exited with status {}",
                    output.exit_status
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        ServerCommand::RepinHostKey { name, fingerprint } => {
            let trust = match fingerprint {
                Some(fp) => HostKeyTrust::Expect(fp),
                // Without a terminal the core refuses this, naming --fingerprint.
                None => ask_on_terminal().unwrap_or(HostKeyTrust::AcceptNew),
            };
            let r = orch.repin_host_key(&name, trust).await?;
            print(out, &r, || {
                Table::pairs(vec![
                    ("server", r.server.clone()),
                    ("old", r.old.clone().unwrap_or_else(|| "-".into())),
                    ("new", r.new.clone()),
                    (
                        "changed",
                        if r.changed {
                            "yes"
                        } else {
                            "no (already pinned)"
                        }
                        .into(),
                    ),
                ])
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The catalog table of `app list` and `app search`.
fn print_apps(out: OutputFormat, defs: &[&livchat_core::model::AppDefinition]) {
    let json: Vec<_> = defs
        .iter()
        .map(|d| serde_json::json!({ "name": d.name, "version": d.version, "category": d.category.as_str(), "description": d.description }))
        .collect();
    print(out, &json, || {
        let mut t = Table::new(&["NAME", "VERSION", "CATEGORY", "DESCRIPTION"]);
        for d in defs {
            t.row(vec![
                d.name.clone(),
                d.version.clone(),
                d.category.as_str().into(),
                d.description.clone(),
            ]);
        }
        t
    });
}

async fn app(g: &Global, cmd: AppCommand) -> Result<ExitCode> {
    let out = g.output;
    let orch = open(g)?;
    match cmd {
        AppCommand::List { category } => {
            print_apps(out, &orch.app_search(category.as_deref(), &[])?);
        }
        AppCommand::Search { words, category } => {
            print_apps(out, &orch.app_search(category.as_deref(), &words)?);
        }
        AppCommand::Show { app } => {
            let d = orch.app_definition(&app)?;
            print(out, d, || {
                Table::pairs(vec![
                    ("name", d.name.clone()),
                    ("version", d.version.clone()),
                    ("category", d.category.as_str().into()),
                    ("description", d.description.clone()),
                    (
                        "dependencies",
                        d.dependencies
                            .iter()
                            .map(|x| x.app.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    (
                        "dns prefix",
                        d.dns_prefix.clone().unwrap_or_else(|| "-".into()),
                    ),
                    (
                        "images",
                        d.images.values().cloned().collect::<Vec<_>>().join(", "),
                    ),
                ])
            });
        }
        AppCommand::Render {
            app,
            zone,
            subdomain,
            set,
        } => {
            let stacks = orch.app_render(&app, &zone, subdomain.as_deref(), &set)?;
            match out {
                OutputFormat::Json => stdoutln!("{}", serde_json::to_string_pretty(&stacks)?),
                OutputFormat::Table => {
                    for s in &stacks {
                        stdoutln!("# app: {} (stack {})", s.app, s.stack);
                        stdoutln!("{}", s.compose.trim_end());
                        stdoutln!("---");
                    }
                }
            }
        }
        AppCommand::Deploy {
            server,
            app,
            set,
            take_over_dns,
            plan,
        } => {
            if plan {
                print_plan(&orch.plan_deploy_app(&server, &app, &set)?, out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = orch.start_deploy_app_with(&server, &app, &set, take_over_dns)?;
            return run_job(&orch, job, g).await;
        }
        AppCommand::Undeploy {
            server,
            app,
            force,
            delete_data,
            plan,
        } => {
            let params = livchat_core::UndeployParams {
                server,
                app,
                force,
                delete_data,
            };
            if plan {
                print_plan(&orch.plan_undeploy(&params)?, out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = orch.start_undeploy(params)?;
            return run_job(&orch, job, g).await;
        }
        AppCommand::Deployed { server } => {
            let deployed = orch.deployed(&server)?;
            print(out, &deployed, || {
                let mut t = Table::new(&["APP", "VERSION", "STATUS", "DOMAINS"]);
                for d in &deployed {
                    t.row(vec![
                        d.app.clone(),
                        d.version.clone(),
                        words(&d.status),
                        d.domains.join(", "),
                    ]);
                }
                t
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// On a terminal, a question that shows a host key's fingerprint (and the pinned one, if
/// any) and pins it only when the user types `yes`, as ssh does; `None` without a terminal.
fn ask_on_terminal() -> Option<HostKeyTrust> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return None;
    }
    Some(HostKeyTrust::Ask(Arc::new(|offer: &HostKeyOffer| {
        match &offer.pinned {
            Some(pinned) => eprintln!(
                "The host key of {} ({}:{}) has changed.\n  pinned:    {pinned}\n  presented: {}\n\
                 Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server's console.",
                offer.server, offer.host, offer.port, offer.presented
            ),
            None => eprintln!(
                "First contact with {} ({}:{}).\n  host key: {}\n\
                 Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server's console.",
                offer.server, offer.host, offer.port, offer.presented
            ),
        }
        eprint!("Pin this key? Type yes to pin it: ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == "yes"
    })))
}

/// A dry run: what would change; nothing has been.
fn print_plan(p: &livchat_core::Plan, out: OutputFormat) -> Result<()> {
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

fn job_table(jobs: &[JobRecord]) -> Table {
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

fn job_pairs(j: &JobRecord) -> Table {
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

fn print_log_line(line: &livchat_core::model::LogLine) {
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

async fn job(g: &Global, cmd: JobCommand) -> Result<ExitCode> {
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
        JobCommand::Logs { id, follow, tail } => {
            let mut from = 0;
            if let Some(tail) = tail {
                from = orch.job_logs(&id, 0)?.len().saturating_sub(tail);
            }
            loop {
                let lines = orch.job_logs(&id, from)?;
                from += lines.len();
                for l in &lines {
                    match out {
                        OutputFormat::Json => stdoutln!("{}", serde_json::to_string(l)?),
                        OutputFormat::Table => print_log_line(l),
                    }
                }
                if !follow || is_ended(orch.jobs().get(&id)?.status) && lines.is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
        JobCommand::Cancel { id } => {
            let j = orch.cancel_job(&id)?;
            print(out, &j, || job_pairs(&j));
        }
        JobCommand::Retry { id } => {
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
        JobCommand::Run { id } => {
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

/// Runs a job here, showing progress (a bar on a terminal, plain lines otherwise), cancelling it
/// cleanly on Ctrl-C, and ending with its record. Exit 1 unless it completed.
async fn run_job(orch: &Arc<Orchestrator>, job: JobRecord, g: &Global) -> Result<ExitCode> {
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
async fn detach_job(orch: &Arc<Orchestrator>, job: JobRecord, g: &Global) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the livchat executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--home").arg(home(g)?);
    if let Some(file) = &g.vault_password_file {
        cmd.arg("--vault-password-file").arg(file);
    }
    cmd.args(["job", "run", &job.id])
        .stdin(std::process::Stdio::null())
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
