//! `app ...`: the catalog, render, deploy, undeploy and what is deployed (`app_live`: how it
//! runs now).

use std::process::ExitCode;

use anyhow::Result;

use crate::args::{AppCommand, Global, OutputFormat};
use crate::output::{Table, print, stdoutln, words};

use crate::commands::progress::*;
use crate::open;

/// The catalog table of `app list` and `app search`.
pub(crate) fn print_apps(out: OutputFormat, defs: &[&livchat_core::model::AppDefinition]) {
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

pub(crate) async fn app(g: &Global, cmd: AppCommand) -> Result<ExitCode> {
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
            force,
            node,
            node_label,
            plan,
            ..
        } => {
            let placement = livchat_core::Placement { node, node_label };
            if plan {
                print_plan(
                    &orch.plan_deploy_placed(&server, &app, &set, placement)?,
                    out,
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let job =
                orch.start_deploy_placed(&server, &app, &set, take_over_dns, force, placement)?;
            return run_job(&orch, job, g).await;
        }
        AppCommand::Undeploy {
            server,
            app,
            force,
            delete_data,
            plan,
            ..
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
        AppCommand::Status { server, app } => {
            return super::app_live::app_status(&orch, out, server, app).await;
        }
        AppCommand::Logs {
            server,
            app,
            service,
            tail,
            follow,
        } => {
            let request = livchat_core::ops::AppLogs {
                server,
                app,
                service,
                tail,
            };
            return super::app_live::app_logs(&orch, out, request, follow).await;
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
