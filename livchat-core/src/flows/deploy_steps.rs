//! The deploy job's steps (secrets, DNS, deploy, health, record per app) and what a failed
//! deploy undoes: the clean-up of what it created and the rollback of a redeploy.

use super::*;

impl Orchestrator {
    pub(super) async fn deploy_step(
        &self,
        ctx: &JobContext,
        job: &JobRecord,
        step: &str,
    ) -> Result<Value> {
        let p: DeployParams = params(job)?;
        let (app, what) = step
            .split_once(':')
            .ok_or_else(|| CoreError::invalid("step", format!("unknown step {step}")))?;
        let server = self.server(&p.server)?;
        if what == "secrets" {
            // Portainer is reached and logged into before the first change of this app (its
            // secrets, then DNS): a wrong admin password fails here with nothing changed.
            let choice = self.stack_choice(&p.server, app, &[])?;
            ctx.info(crate::stack_path::describe(app, &p.server, &choice));
            if choice.via == DeployedVia::Portainer {
                self.stack_platform(&p.server, app).await?;
            }
        }
        let (secrets, _) = self.load_app_secrets(app, what == "secrets")?;
        for s in secrets.values().flat_map(|m| m.values()) {
            ctx.hide(s);
        }
        match what {
            "secrets" => Ok(Value::Null),
            "dns" => {
                let stack = self.render_app(&server, app, &p, &secrets)?;
                if stack.dns_names.is_empty() {
                    return Ok(Value::Null);
                }
                let dns_config = server.dns.clone().ok_or_else(|| {
                    CoreError::Refused(format!("server {} has no DNS configuration", server.name))
                })?;
                let ip = server_ipv4(&server)?;
                if dns_config.mode == DnsMode::Manual {
                    self.check_names_resolve(ctx, &stack.dns_names, ip).await?;
                    return Ok(Value::Null);
                }
                let dns = self.dns()?;
                let zone = dns
                    .find_zone(&dns_config.zone_name)
                    .await
                    .map_err(dns_err)?;
                // Records of these names livchat did not create are not touched (nor later
                // deleted by undeploy) unless the user takes them over; one pointing elsewhere
                // refuses the deploy before anything changes.
                let owned = self.owned_dns_ids(&p.server)?;
                let mut foreign: BTreeSet<String> = BTreeSet::new();
                for name in &stack.dns_names {
                    for r in dns.records_named(&zone, name).await.map_err(dns_err)? {
                        if r.record_type != livchat_providers::RecordType::A
                            || owned.contains(&r.id)
                        {
                            continue;
                        }
                        if r.content != ip.to_string() && !p.take_over_dns {
                            return Err(CoreError::Refused(format!(
                                "DNS record A {name} -> {} exists and was not created by livchat; \
                                 deploying would repoint it to {ip}. Remove it, or pass \
                                 --take-over-dns to repoint it (undeploy then deletes it)",
                                r.content
                            )));
                        }
                        if !p.take_over_dns {
                            foreign.insert(r.id);
                        }
                    }
                }
                let mut created: Vec<String> = Vec::new();
                let mut ids = Vec::new();
                for name in &stack.dns_names {
                    let e = match dns
                        .ensure_a_record(&zone, name, ip, &RecordOptions::default())
                        .await
                    {
                        Ok(e) => e,
                        Err(err) => {
                            // The records created by this step are not in the job's result
                            // yet, so the clean-up cannot see them: remove them here.
                            for id in &created {
                                ctx.info(format!("removing DNS record {id} created by this job"));
                                if let Err(e) = dns.delete_record(&zone, id).await {
                                    ctx.warn(format!("DNS record {id}: {e}"));
                                }
                            }
                            return Err(dns_err(err));
                        }
                    };
                    ctx.info(format!("DNS A {name} -> {ip} ({})", change_words(e.change)));
                    if e.change == livchat_providers::Change::Created {
                        created.push(e.record.id.clone());
                    }
                    if foreign.contains(&e.record.id) {
                        ctx.info(format!(
                            "DNS record A {name} already pointed here and is not livchat's: \
                             kept out of the deployment, so undeploy leaves it"
                        ));
                        continue;
                    }
                    if p.take_over_dns && e.change != livchat_providers::Change::Created {
                        ctx.warn(format!("DNS record A {name} taken over (--take-over-dns)"));
                    }
                    ids.push(e.record.id);
                }
                Ok(json!({ format!("{app}.dns_ids"): ids, format!("{app}.dns_created"): created }))
            }
            "deploy" => {
                let stack = self.render_app(&server, app, &p, &secrets)?;
                self.pin_data(ctx, &server, &p, &stack).await?;
                self.run_deploy_steps(ctx, &server, app, &stack.pre_deploy, &secrets, false)
                    .await?;
                // An app with a first-run page is claimed before anything routes to it; a
                // redeploy of a running app was claimed when it was first deployed.
                let running = self
                    .store
                    .load()?
                    .deployments
                    .get(&p.server)
                    .and_then(|m| m.get(app))
                    .is_some_and(|d| d.status == DeploymentStatus::Running);
                let close_routes = !running && has_claim(&stack);
                let platform = self.platform(&server.name).await?;
                let (sender, choice) = self.stack_platform(&server.name, app).await?;
                platform
                    .ensure_network(&NetworkSpec::overlay(self.render_options().network))
                    .await
                    .map_err(platform_err)?;
                let spec = if close_routes {
                    ctx.info(format!(
                        "deploying stack {} with its public routes closed until its first-run page is claimed",
                        stack.stack
                    ));
                    let closed = livchat_apps::first_run::close_public_routes(app, stack.compose())
                        .map_err(apps_err)?;
                    stack_spec(&stack, closed.expose_secret())
                } else {
                    ctx.info(format!("deploying stack {}", stack.stack));
                    stack_spec(&stack, stack.compose().expose_secret())
                };
                let version = self
                    .catalog()?
                    .get(app)
                    .map(|d| d.version.clone())
                    .unwrap_or_default();
                self.store.update("deployment start", &mut |s| {
                    let entry = s.deployments.entry(p.server.clone()).or_default();
                    let status = entry.get(app).map(|d| d.status);
                    if status != Some(DeploymentStatus::Running) {
                        entry.insert(
                            app.to_string(),
                            DeploymentRecord {
                                app: app.to_string(),
                                version: version.clone(),
                                stack_name: stack.stack.clone(),
                                domains: stack.dns_names.clone(),
                                dns_record_ids: Vec::new(),
                                dependencies: Vec::new(),
                                status: DeploymentStatus::Deploying,
                                via: choice.via,
                                deployed_at: chrono::Utc::now(),
                            },
                        );
                    }
                    Ok(())
                })?;
                sender.deploy_stack(&spec).await.map_err(platform_err)?;
                // A fresh app whose setup page nobody can claim for the user: say so now, while
                // the user can still be first.
                if let Some(def) = self
                    .catalog()?
                    .get(app)
                    .filter(|d| !running && livchat_apps::first_run::leaves_setup_page_open(d))
                    && let Some(line) = livchat_apps::first_run::summary(def)
                {
                    ctx.warn(line);
                }
                Ok(json!({
                    format!("{app}.deployed_by_job"): true,
                    format!("{app}.routes_closed"): close_routes,
                }))
            }
            "health" => {
                let stack = self.render_app(&server, app, &p, &secrets)?;
                let platform = self.platform(&server.name).await?;
                let timeout = self
                    .catalog()?
                    .get(app)
                    .map_or(300, |d| d.health_check.timeout_secs);
                // The definition's own `wait_healthy` step is the wait when it has one (every
                // built-in does); waiting here as well would add a second settle window.
                let waits = stack
                    .post_deploy
                    .iter()
                    .any(|s| matches!(s, DeployStep::WaitHealthy { .. }));
                if !waits {
                    self.wait_stack(ctx, platform.as_ref(), &stack.stack, timeout)
                        .await?;
                }
                let routes_closed = job
                    .result
                    .as_ref()
                    .and_then(|r| r.get(format!("{app}.routes_closed")))
                    .and_then(Value::as_bool)
                    == Some(true);
                if !routes_closed && has_claim(&stack) {
                    ctx.info(format!(
                        "{app} runs already: its first-run page was claimed when it was first deployed"
                    ));
                }
                self.run_deploy_steps(
                    ctx,
                    &server,
                    app,
                    &stack.post_deploy,
                    &secrets,
                    routes_closed,
                )
                .await?;
                if let Some(probe) = stack.http_probe() {
                    crate::probe::probe_http(
                        ctx,
                        platform.as_ref(),
                        &stack.stack,
                        &probe,
                        std::time::Duration::from_secs(timeout),
                    )
                    .await?;
                }
                if routes_closed {
                    ctx.info(format!("opening the public routes of {}", stack.stack));
                    let (sender, _) = self.stack_platform(&server.name, app).await?;
                    sender
                        .deploy_stack(&stack_spec(&stack, stack.compose().expose_secret()))
                        .await
                        .map_err(platform_err)?;
                }
                Ok(Value::Null)
            }
            "record" => {
                let stack = self.render_app(&server, app, &p, &secrets)?;
                let ids: Vec<String> = job
                    .result
                    .as_ref()
                    .and_then(|r| r.get(format!("{app}.dns_ids")))
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                let deps = self.catalog()?.requirements_of(app).unwrap_or_default();
                // The deploy step recorded who sent the stack; the final record keeps it.
                let via = self
                    .store
                    .load()?
                    .deployments
                    .get(&p.server)
                    .and_then(|m| m.get(app))
                    .map(|d| d.via)
                    .unwrap_or_default();
                let record = DeploymentRecord {
                    app: app.to_string(),
                    version: self
                        .catalog()?
                        .get(app)
                        .map(|d| d.version.clone())
                        .unwrap_or_default(),
                    stack_name: stack.stack.clone(),
                    domains: stack.dns_names.clone(),
                    dns_record_ids: ids,
                    dependencies: deps,
                    status: DeploymentStatus::Running,
                    via,
                    deployed_at: chrono::Utc::now(),
                };
                self.store.update("deployment recorded", &mut |s| {
                    s.deployments
                        .entry(p.server.clone())
                        .or_default()
                        .insert(app.to_string(), record.clone());
                    Ok(())
                })?;
                ctx.info(format!("{app} deployed on {}", p.server));
                Ok(json!({ format!("{app}.deployed_by_job"): false }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }

    /// The DNS record ids livchat created (or was told to take over) for this server's apps.
    pub(super) fn owned_dns_ids(&self, server: &str) -> Result<HashSet<String>> {
        Ok(self
            .store
            .load()?
            .deployments
            .get(server)
            .map(|m| {
                m.values()
                    .flat_map(|d| d.dns_record_ids.iter().cloned())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Removes what a failed deploy created: the stack and DNS records of every app this job
    /// started but did not record. Apps this job recorded as running stay: they are deployed,
    /// healthy and in the state, not orphans. Their steps are rewound so a retry redoes them.
    pub(super) async fn deploy_cleanup(&self, ctx: &JobContext, job: &JobRecord) -> Result<()> {
        let p: DeployParams = params(job)?;
        let result = job.result.clone().unwrap_or(Value::Null);
        let platform = self.platform(&p.server).await.ok();
        let mut rewound = Vec::new();
        for app in &p.apps {
            let deployed = result
                .get(format!("{app}.deployed_by_job"))
                .and_then(Value::as_bool)
                == Some(true);
            let dns_created: Vec<String> = result
                .get(format!("{app}.dns_created"))
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            let recorded = job
                .steps_completed
                .iter()
                .any(|s| s == &format!("{app}:record"));
            if recorded {
                continue;
            }
            // The deploy step records the app as deploying just before it sends the stack: if
            // sending failed, the step did not report the stack, but part of it may exist.
            let status = self
                .store
                .load()?
                .deployments
                .get(&p.server)
                .and_then(|m| m.get(app))
                .map(|d| d.status);
            let deployed = deployed || status == Some(DeploymentStatus::Deploying);
            // A redeploy of an app that was running before this job: its stack and DNS records
            // are the user's running service, not something this job created, and apps may
            // depend on it. The swarm goes back to the previous version, which the record still
            // describes (running); if that fails too, the record says failed. The job's error
            // says why the redeploy failed, and a retry deploys again.
            if status == Some(DeploymentStatus::Running) {
                if deployed {
                    self.roll_back_redeploy(ctx, platform.as_deref(), &p.server, app)
                        .await?;
                    rewound.push(app.clone());
                }
                continue;
            }
            if deployed {
                // Through its owner: a stack Portainer created is deleted in Portainer too.
                let owner = match self.stack_platform(&p.server, app).await {
                    Ok((owner, _)) => Some(owner),
                    Err(_) => platform.clone(),
                };
                if let Some(platform) = &owner {
                    ctx.info(format!("removing stack {app} deployed by this job"));
                    platform.remove_stack(app).await.map_err(platform_err)?;
                }
                self.store.update("deployment rollback", &mut |s| {
                    if let Some(m) = s.deployments.get_mut(&p.server) {
                        if m.get(app)
                            .is_some_and(|d| d.status != DeploymentStatus::Running)
                        {
                            m.remove(app);
                        }
                        if m.is_empty() {
                            s.deployments.remove(&p.server);
                        }
                    }
                    Ok(())
                })?;
            }
            if !dns_created.is_empty() {
                let server = self.server(&p.server)?;
                if let Some(cfg) = &server.dns {
                    let dns = self.dns()?;
                    let zone = dns.find_zone(&cfg.zone_name).await.map_err(dns_err)?;
                    for id in &dns_created {
                        ctx.info(format!("removing DNS record {id} created by this job"));
                        dns.delete_record(&zone, id).await.map_err(dns_err)?;
                    }
                }
            }
            if deployed || !dns_created.is_empty() {
                rewound.push(app.clone());
            }
        }
        if !rewound.is_empty() {
            let all = Self::deploy_steps(&p.apps);
            self.jobs.edit_if_present(&job.id, "job rewind", |j| {
                let keep: HashSet<String> = j
                    .steps_completed
                    .iter()
                    .filter(|st| !rewound.iter().any(|a| st.starts_with(&format!("{a}:"))))
                    .cloned()
                    .collect();
                j.steps_completed.retain(|st| keep.contains(st));
                j.steps_remaining = all
                    .iter()
                    .filter(|st| !keep.contains(*st))
                    .cloned()
                    .collect();
                if let Some(r) = j.result.as_mut().and_then(Value::as_object_mut) {
                    for a in &rewound {
                        r.remove(&format!("{a}.deployed_by_job"));
                        r.remove(&format!("{a}.dns_created"));
                    }
                }
            })?;
        }
        Ok(())
    }

    /// Returns a running app whose redeploy failed to the version it ran before (Swarm's
    /// rollback of each service to its previous spec), waiting until that version is healthy.
    /// The record keeps describing the previous version; if the rollback fails, it is recorded
    /// as failed so `app deployed` does not claim a version that does not run.
    pub(super) async fn roll_back_redeploy(
        &self,
        ctx: &JobContext,
        platform: Option<&dyn livchat_remote::ContainerPlatform>,
        server: &str,
        app: &str,
    ) -> Result<()> {
        let record = self
            .store
            .load()?
            .deployments
            .get(server)
            .and_then(|m| m.get(app))
            .cloned();
        let (stack, version) = record
            .map(|r| (r.stack_name, r.version))
            .unwrap_or_else(|| (app.to_string(), String::new()));
        ctx.info(format!(
            "rolling {app} back to the version that ran before this redeploy ({version})"
        ));
        let rolled_back = match platform {
            Some(platform) => platform
                .rollback_stack(
                    &stack,
                    WaitOptions {
                        timeout: self.config.health_timeout,
                        ..WaitOptions::default()
                    },
                )
                .await
                .map(|_| ())
                .map_err(platform_err),
            None => Err(CoreError::Platform(format!(
                "server {server} cannot be reached to roll {app} back"
            ))),
        };
        match rolled_back {
            Ok(()) => {
                ctx.warn(format!(
                    "{app}: the redeploy failed; the previous version ({version}) runs again"
                ));
                Ok(())
            }
            Err(e) => {
                ctx.warn(format!(
                    "{app}: the rollback to the previous version failed: {e}; recorded as failed"
                ));
                self.store.update("deployment failed", &mut |s| {
                    if let Some(d) = s.deployments.get_mut(server).and_then(|m| m.get_mut(app)) {
                        d.status = DeploymentStatus::Failed;
                    }
                    Ok(())
                })?;
                Ok(())
            }
        }
    }
}
