//! The undeploy job: its refusals, its plan, and its steps (stack, volumes, databases, DNS,
//! secrets), each removing only what the app owns.

use super::*;

impl Orchestrator {
    /// The deployment an undeploy would remove, after its refusals.
    pub(super) fn check_undeploy(
        &self,
        server: &str,
        app: &str,
        force: bool,
    ) -> Result<DeploymentRecord> {
        self.server(server)?;
        let deployed = self.deployed_set(server)?;
        let Some(record) = self
            .store
            .load()?
            .deployments
            .get(server)
            .and_then(|m| m.get(app))
            .cloned()
        else {
            return Err(CoreError::NotFound {
                kind: "deployment",
                name: format!("{app} on {server}"),
                hint: format!("; see `livchat app deployed {server}`"),
            });
        };
        let dependents = self.catalog()?.dependents_of(app, &deployed);
        if !dependents.is_empty() && !force {
            return Err(CoreError::Refused(format!(
                "{app} is used by {} on {server}; undeploy them first or pass --force",
                dependents.join(", ")
            )));
        }
        Ok(record)
    }

    pub(super) fn undeploy_steps(delete_data: bool) -> Vec<String> {
        let mut steps = vec!["remove_stack".to_string(), "docker_secrets".to_string()];
        if delete_data {
            steps.extend(["volumes", "database", "vault_secrets"].map(String::from));
        }
        steps.extend(["dns".to_string(), "record".to_string()]);
        steps
    }

    /// The app's own secrets (not those of the apps it uses): vault keys and Docker names.
    pub(super) fn own_secrets(&self, app: &str) -> Result<Vec<livchat_apps::SecretRef>> {
        Ok(self
            .catalog()?
            .secrets_needed(app)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.app == app)
            .collect())
    }

    /// The databases (and their roles) the app's deploy created, with the stack and service
    /// they live in; empty for an app without one or no longer in the catalog.
    pub(super) fn app_databases(
        &self,
        server: &str,
        app: &str,
    ) -> Result<Vec<(String, String, livchat_apps::CreateDatabase)>> {
        Ok(self.app_data(server, app)?.0)
    }

    /// [`Orchestrator::app_databases`], and the providers the app runs its own instance of
    /// inside its stack (its Redis).
    pub(super) fn app_data(
        &self,
        server: &str,
        app: &str,
    ) -> Result<(Vec<AppDatabase>, Vec<livchat_apps::OwnInstance>)> {
        if self.catalog()?.get(app).is_none() {
            return Ok((Vec::new(), Vec::new()));
        }
        let record = self.server(server)?;
        let (secrets, _) = self.load_app_secrets(app, false)?;
        let p = DeployParams {
            server: server.to_string(),
            app: app.to_string(),
            set: Vec::new(),
            apps: vec![app.to_string()],
            take_over_dns: false,
            placement: Placement::default(),
        };
        let stack = self.render_app(&record, app, &p, &secrets)?;
        let databases = stack
            .pre_deploy
            .iter()
            .filter_map(|step| match step {
                DeployStep::CreateDatabase {
                    stack,
                    service,
                    spec,
                    ..
                } => Some((stack.clone(), service.clone(), spec.clone())),
                _ => None,
            })
            .collect();
        Ok((databases, stack.own_instances))
    }

    /// Vault secrets of the app that `--delete-data` deletes: none while the same app runs on
    /// another server (the keys are per app, shared by its deployments).
    pub(super) fn deletable_vault_secrets(&self, server: &str, app: &str) -> Result<Vec<String>> {
        let elsewhere = self
            .store
            .load()?
            .deployments
            .iter()
            .any(|(s, m)| s != server && m.contains_key(app));
        if elsewhere {
            return Ok(Vec::new());
        }
        let mut keys = Vec::new();
        for r in self.own_secrets(app)? {
            let key = r.vault_key();
            if self.secrets.get(&key)?.is_some() {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// The dry run of an undeploy that keeps the app's data. Touches nothing.
    pub fn plan_undeploy_app(&self, server: &str, app: &str, force: bool) -> Result<Plan> {
        self.plan_undeploy(&UndeployParams {
            server: server.to_string(),
            app: app.to_string(),
            force,
            delete_data: false,
        })
    }

    /// The dry run of an undeploy: every resource removed, and with `delete_data` exactly
    /// what data is lost. Touches nothing.
    pub fn plan_undeploy(&self, p: &UndeployParams) -> Result<Plan> {
        let (server, app) = (p.server.as_str(), p.app.as_str());
        let record = self.check_undeploy(server, app, p.force)?;
        let mut resources = vec![format!(
            "remove stack {} on {server}{}",
            record.stack_name,
            if p.delete_data {
                ""
            } else {
                " (data kept: volumes, database, vault secrets)"
            }
        )];
        for r in self.own_secrets(app)? {
            resources.push(format!("remove docker secret {}", r.docker_secret_name()));
        }
        if p.delete_data {
            resources.push(format!(
                "DELETE the data volumes of stack {} (their data is lost)",
                record.stack_name
            ));
            let (databases, own_instances) = self.app_data(server, app)?;
            for instance in own_instances {
                // Its volumes are the stack's, deleted with them; named so the user sees that
                // the app's Redis data goes too.
                resources.push(format!(
                    "DELETE {app}'s own {} (volumes {} of stack {}; their data is lost)",
                    instance.provider,
                    instance
                        .volumes
                        .iter()
                        .map(|v| format!("{}_{v}", record.stack_name))
                        .collect::<Vec<_>>()
                        .join(", "),
                    record.stack_name
                ));
            }
            for (stack, _, spec) in databases {
                resources.push(format!(
                    "DROP database {} and role {} in stack {stack} (their data is lost)",
                    spec.database, spec.user
                ));
            }
            let keys = self.deletable_vault_secrets(server, app)?;
            if keys.is_empty() && !self.own_secrets(app)?.is_empty() {
                resources.push(format!(
                    "vault secrets of {app} kept (none stored, or {app} runs on another server)"
                ));
            }
            for key in keys {
                resources.push(format!("DELETE vault secret {key} (its value is lost)"));
            }
        }
        resources.push(format!("state deployment {app} on {server}"));
        Ok(Plan {
            operation: format!("undeploy {app} from {server}"),
            steps: Self::undeploy_steps(p.delete_data),
            resources,
            dns_records: record
                .domains
                .iter()
                .map(|d| format!("remove A {d}"))
                .collect(),
            stacks: Vec::new(),
        })
    }

    /// Records an undeploy job that keeps the app's data volumes.
    pub fn start_undeploy_app(&self, server: &str, app: &str, force: bool) -> Result<JobRecord> {
        self.start_undeploy(UndeployParams {
            server: server.to_string(),
            app: app.to_string(),
            force,
            delete_data: false,
        })
    }

    /// Records an undeploy job (refused while other apps depend on the app, unless forced).
    pub fn start_undeploy(&self, p: UndeployParams) -> Result<JobRecord> {
        self.check_undeploy(&p.server, &p.app, p.force)?;
        self.create_job(
            JobKind::UndeployApp,
            Some(&p.server),
            to_params(&p),
            Self::undeploy_steps(p.delete_data),
        )
    }

    pub(super) async fn undeploy_step(
        &self,
        ctx: &JobContext,
        job: &JobRecord,
        step: &str,
    ) -> Result<Value> {
        let p: UndeployParams = params(job)?;
        let record = self
            .store
            .load()?
            .deployments
            .get(&p.server)
            .and_then(|m| m.get(&p.app))
            .cloned();
        match step {
            "remove_stack" => {
                let stack = record
                    .as_ref()
                    .map_or(p.app.clone(), |r| r.stack_name.clone());
                // From here until the record step the app is on its way out, not running: a
                // failure in between must not leave the state claiming it runs.
                self.store.update("deployment removing", &mut |s| {
                    if let Some(d) = s
                        .deployments
                        .get_mut(&p.server)
                        .and_then(|m| m.get_mut(&p.app))
                    {
                        d.status = DeploymentStatus::Removing;
                    }
                    Ok(())
                })?;
                let (platform, choice) = self.stack_platform(&p.server, &p.app).await?;
                ctx.info(crate::stack_path::describe(&stack, &p.server, &choice));
                platform.remove_stack(&stack).await.map_err(platform_err)?;
                if p.delete_data {
                    ctx.info(format!("stack {stack} removed"));
                } else {
                    ctx.info(format!(
                        "stack {stack} removed (data kept: volumes, database, vault secrets)"
                    ));
                }
                Ok(Value::Null)
            }
            "docker_secrets" => {
                let names: Vec<String> = self
                    .own_secrets(&p.app)?
                    .iter()
                    .map(livchat_apps::SecretRef::docker_secret_name)
                    .collect();
                if names.is_empty() {
                    return Ok(Value::Null);
                }
                let platform = self.platform(&p.server).await?;
                let removed = platform
                    .remove_secrets(&names)
                    .await
                    .map_err(platform_err)?;
                for kept in names.iter().filter(|n| !removed.contains(n)) {
                    ctx.warn(format!(
                        "docker secret {kept} kept: another service uses it"
                    ));
                }
                ctx.info(format!("docker secrets removed: {}", removed.join(", ")));
                Ok(json!({ "docker_secrets_removed": removed }))
            }
            "database" => {
                let platform = self.platform(&p.server).await?;
                let deployed = self.deployed_set(&p.server)?;
                for (stack, service, spec) in self.app_databases(&p.server, &p.app)? {
                    if !deployed.contains(&stack) {
                        ctx.info(format!(
                            "database {} not dropped: {stack} is not deployed on {}",
                            spec.database, p.server
                        ));
                        continue;
                    }
                    let cmd = livchat_apps::drop_database_command(&spec).map_err(apps_err)?;
                    ctx.info(format!(
                        "dropping database {} and role {} in {stack}/{service}",
                        spec.database, spec.user
                    ));
                    let out = platform
                        .exec_in_service(ServiceExec {
                            stack: stack.clone(),
                            service: service.clone(),
                            argv: cmd.argv.clone(),
                            stdin: Some(SecretBox::new(
                                cmd.stdin
                                    .expose_secret()
                                    .as_bytes()
                                    .to_vec()
                                    .into_boxed_slice(),
                            )),
                            user: None,
                            timeout: Duration::from_secs(120),
                            cancel: ctx.cancel_token(),
                        })
                        .await
                        .map_err(platform_err)?;
                    if !out.success() {
                        return Err(CoreError::Step {
                            step: format!("drop database {}", spec.database),
                            message: format!(
                                "exit status {}: {}",
                                out.exit_status,
                                livchat_remote::setup::tail(&out.stderr, 5)
                            ),
                        });
                    }
                }
                Ok(Value::Null)
            }
            "vault_secrets" => {
                // A Docker secret kept because another stack uses it keeps its vault value too:
                // a new value would no longer match what that stack reads.
                let removed: Vec<String> = job
                    .result
                    .as_ref()
                    .and_then(|r| r.get("docker_secrets_removed"))
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                let kept: Vec<String> = self
                    .own_secrets(&p.app)?
                    .iter()
                    .filter(|r| !removed.contains(&r.docker_secret_name()))
                    .map(livchat_apps::SecretRef::vault_key)
                    .collect();
                let keys: Vec<String> = self
                    .deletable_vault_secrets(&p.server, &p.app)?
                    .into_iter()
                    .filter(|k| !kept.contains(k))
                    .collect();
                for key in &keys {
                    self.secrets.delete(key)?;
                }
                ctx.info(format!(
                    "vault secrets deleted: {}",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                ));
                Ok(json!({ "vault_secrets_deleted": keys }))
            }
            "volumes" => {
                // The first step that deletes data: from here the admin a deploy claimed (in
                // the volumes or the database, its password in the vault) is going, so a later
                // deploy must claim a fresh instance, and a refusal is no longer ours.
                self.store.update("first-run claims forgotten", &mut |s| {
                    s.forget_claims(&p.server, &p.app);
                    Ok(())
                })?;
                let stack = record
                    .as_ref()
                    .map_or(p.app.clone(), |r| r.stack_name.clone());
                let platform = self.platform(&p.server).await?;
                let removed = platform
                    .remove_stack_volumes(&stack)
                    .await
                    .map_err(platform_err)?;
                ctx.info(format!(
                    "data volumes of {stack} deleted: {}",
                    if removed.is_empty() {
                        "none".to_string()
                    } else {
                        removed.join(", ")
                    }
                ));
                Ok(json!({ "volumes_deleted": removed }))
            }
            "dns" => {
                let server = self.server(&p.server)?;
                if let (Some(r), Some(cfg)) = (&record, &server.dns)
                    && !r.dns_record_ids.is_empty()
                {
                    let dns = self.dns()?;
                    let zone = dns.find_zone(&cfg.zone_name).await.map_err(dns_err)?;
                    delete_records(ctx, dns.as_ref(), &zone, &r.dns_record_ids).await?;
                }
                Ok(Value::Null)
            }
            "record" => {
                self.store.update("deployment removed", &mut |s| {
                    if let Some(m) = s.deployments.get_mut(&p.server) {
                        m.remove(&p.app);
                        if m.is_empty() {
                            s.deployments.remove(&p.server);
                        }
                    }
                    Ok(())
                })?;
                Ok(json!({ "undeployed": p.app }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }
}
