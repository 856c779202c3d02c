//! `server ...`: create, add, set up, delete, exec, host keys; the host-key question on a
//! terminal.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use livchat_core::model::SecretString;
use livchat_core::{
    AddServer, CoreError, CreateServerParams, HostKeyOffer, HostKeyTrust, SetupServerParams,
};

use crate::args::{Global, OutputFormat, ServerCommand};
use crate::output::{Table, print, stdoutln, words, write_stdout};

use crate::commands::{progress::*, secrets::*};
use crate::open;

pub(crate) fn created(yes: bool) -> String {
    if yes {
        "created".into()
    } else {
        "exists (kept)".into()
    }
}

pub(crate) fn server_table(
    servers: &[livchat_core::model::ServerRecord],
    state: &livchat_core::model::State,
) -> Table {
    let mut t = Table::new(&["NAME", "HOST", "PROVIDER", "STATUS", "DNS", "CLUSTER"]);
    for s in servers {
        let cluster = state.cluster_of(&s.name).map_or("-".into(), |c| {
            format!("{} ({})", c.manager, c.nodes[&s.name].role.as_str())
        });
        t.row(vec![
            s.name.clone(),
            format!("{}:{}", s.host, s.ssh_port),
            words(&s.provider),
            words(&s.status),
            s.dns.as_ref().map_or("-".into(), |d| match &d.subdomain {
                Some(sub) => format!("{sub}.{}", d.zone_name),
                None => d.zone_name.clone(),
            }),
            cluster,
        ]);
    }
    t
}

pub(crate) async fn server(g: &Global, cmd: ServerCommand) -> Result<ExitCode> {
    let orch = open(g)?;
    let out = g.output;
    match cmd {
        ServerCommand::Create {
            name,
            server_type,
            location,
            image,
            plan,
            ..
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
            let state = orch.state()?;
            print(out, &servers, || server_table(&servers, &state));
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
        ServerCommand::Delete {
            name, force, plan, ..
        } => {
            if plan {
                print_plan(&orch.plan_delete_server(&name, force)?, out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = orch.start_delete_server(&name, force)?;
            return run_job(&orch, job, g).await;
        }
        ServerCommand::Join {
            name,
            manager,
            role,
            force,
            plan,
            ..
        } => {
            let p = livchat_core::JoinParams {
                server: name,
                manager,
                role: match role {
                    crate::args::NodeRoleArg::Worker => livchat_core::model::NodeRole::Worker,
                    crate::args::NodeRoleArg::Manager => livchat_core::model::NodeRole::Manager,
                },
                force,
            };
            if plan {
                print_plan(&orch.plan_join(&p)?, out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = orch.start_join(&p)?;
            return run_job(&orch, job, g).await;
        }
        ServerCommand::Leave {
            name, force, plan, ..
        } => {
            let p = livchat_core::LeaveParams {
                server: name,
                force,
            };
            if plan {
                print_plan(&orch.plan_leave(&p)?, out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = orch.start_leave(&p)?;
            return run_job(&orch, job, g).await;
        }
        ServerCommand::Setup {
            name,
            zone,
            subdomain,
            dns,
            plan,
            ..
        } => {
            let params = SetupServerParams {
                name,
                zone,
                subdomain,
                dns: match dns {
                    crate::args::DnsModeArg::Cloudflare => livchat_core::model::DnsMode::Cloudflare,
                    crate::args::DnsModeArg::Manual => livchat_core::model::DnsMode::Manual,
                },
            };
            if plan {
                print_plan(&orch.plan_setup_server(&params)?, out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = orch.start_setup_server(params)?;
            return run_job(&orch, job, g).await;
        }
        ServerCommand::SetPlatform { name, platform } => {
            use livchat_core::ops::Operation;
            let platform = match platform {
                crate::args::PlatformArg::Auto => livchat_core::model::PlatformChoice::Auto,
                crate::args::PlatformArg::Ssh => livchat_core::model::PlatformChoice::Ssh,
                crate::args::PlatformArg::Portainer => {
                    livchat_core::model::PlatformChoice::Portainer
                }
            };
            let view = livchat_core::ops::ServerSetPlatform {
                server: name,
                platform,
            }
            .run(&orch)
            .await?;
            print(out, &view, || {
                let mut rows = vec![("platform", view.platform.as_str().to_string())];
                for (app, via) in &view.deployed_via {
                    rows.push((app.as_str(), format!("deployed via {}", via.as_str())));
                }
                Table::pairs(rows)
            });
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

/// On a terminal, a question that shows a host key's fingerprint (and the pinned one, if
/// any) and pins it only when the user types `yes`, as ssh does; `None` without a terminal.
pub(crate) fn ask_on_terminal() -> Option<HostKeyTrust> {
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
