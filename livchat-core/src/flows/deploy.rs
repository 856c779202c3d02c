//! The deploy job, up to its steps: the install order and plan, the app secrets, the rendered
//! stacks, and sending a stack and waiting for it.

use super::*;

impl Orchestrator {
    pub(super) const APP_STEPS: [&'static str; 5] =
        ["secrets", "dns", "deploy", "health", "record"];

    pub(super) fn deploy_steps(apps: &[String]) -> Vec<String> {
        apps.iter()
            .flat_map(|a| Self::APP_STEPS.iter().map(move |s| format!("{a}:{s}")))
            .collect()
    }

    pub(super) fn deployed_set(&self, server: &str) -> Result<BTreeSet<String>> {
        Ok(self
            .store
            .load()?
            .deployments
            .get(server)
            .map(|m| {
                m.values()
                    .filter(|d| d.status == DeploymentStatus::Running)
                    .map(|d| d.app.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Every app that would run on the server after deploying `apps`, with its declared
    /// minimums, next to what the server has. An app deployed earlier whose definition is no
    /// longer in the catalog is left out: its needs are unknown.
    pub(super) fn preflight(
        &self,
        record: &ServerRecord,
        apps: &[String],
    ) -> Result<crate::preflight::Preflight> {
        let mut names = self.deployed_set(&record.name)?;
        names.extend(apps.iter().cloned());
        let apps = names
            .into_iter()
            .filter_map(|app| {
                let needs = &self.app_definition(&app).ok()?.requirements;
                Some(crate::preflight::AppNeed {
                    app,
                    memory_mb: needs.min_ram_mb.into(),
                    cpus: needs.min_cpu_cores,
                })
            })
            .collect();
        Ok(crate::preflight::Preflight {
            server: record.name.clone(),
            has: record.setup.resources,
            apps,
        })
    }

    pub(super) fn resolve_deploy(
        &self,
        server: &str,
        app: &str,
        set: &[String],
    ) -> Result<DeployParams> {
        let record = self.server(server)?;
        self.refuse_non_manager(server)?;
        if record.dns.is_none() {
            return Err(CoreError::Refused(format!(
                "server {server} has no DNS configuration; run `livchat server setup {server} --zone ZONE` first"
            )));
        }
        if record.status != ServerStatus::Ready {
            return Err(CoreError::Refused(format!(
                "server {server} is not set up (status {:?}); run `livchat server setup {server} --zone ZONE` first",
                record.status
            )));
        }
        self.app_definition(app)?;
        parse_sets(set)?;
        let deployed = self.deployed_set(server)?;
        let mut apps = self
            .catalog()?
            .install_order(&[app], &deployed)
            .map_err(apps_err)?;
        // A redeploy of an app that runs already deploys it again (new settings or images).
        if !apps.iter().any(|a| a == app) {
            apps.push(app.to_string());
        }
        Ok(DeployParams {
            server: server.to_string(),
            app: app.to_string(),
            set: set.to_vec(),
            apps,
            take_over_dns: false,
            placement: Placement::default(),
        })
    }

    /// Validates and records a deploy job: dependencies resolved now and fixed in the job.
    pub fn start_deploy_app(&self, server: &str, app: &str, set: &[String]) -> Result<JobRecord> {
        self.start_deploy_app_with(server, app, set, false, false)
    }

    /// [`Orchestrator::start_deploy_app`], optionally taking over existing A records of the
    /// apps' names that livchat did not create (`--take-over-dns`), and going on when the
    /// server has less memory or fewer CPUs than its apps need (`force`).
    pub fn start_deploy_app_with(
        &self,
        server: &str,
        app: &str,
        set: &[String],
        take_over_dns: bool,
        force: bool,
    ) -> Result<JobRecord> {
        self.start_deploy_placed(server, app, set, take_over_dns, force, Placement::default())
    }

    /// [`Orchestrator::start_deploy_app_with`] placed on a cluster's node (`--node`,
    /// `--node-label`).
    pub fn start_deploy_placed(
        &self,
        server: &str,
        app: &str,
        set: &[String],
        take_over_dns: bool,
        force: bool,
        placement: Placement,
    ) -> Result<JobRecord> {
        let mut p = self.resolve_deploy(server, app, set)?;
        self.check_placement(server, &placement)?;
        p.placement = placement;
        p.take_over_dns = take_over_dns;
        let record = self.server(server)?;
        if !force && let Some(why) = self.preflight(&record, &p.apps)?.refusal() {
            return Err(CoreError::Refused(why));
        }
        if !is_manual_dns(&record) {
            self.require_secret(crate::orchestrator::CLOUDFLARE_TOKEN)?;
        }
        // A `--set` value the app does not allow, or a setting it needs, must be refused now:
        // found mid-job, it would fail after secrets were generated and stored.
        let placeholder = self.placeholder_secrets(&p.apps)?;
        for a in &p.apps {
            self.render_app(&record, a, &p, &placeholder)?;
        }
        let steps = Self::deploy_steps(&p.apps);
        self.create_job(JobKind::DeployApp, Some(server), to_params(&p), steps)
    }

    /// The dry run of a deploy: every app, DNS record and rendered stack (secrets redacted;
    /// secrets that do not exist yet are shown as to be generated). Touches nothing.
    pub fn plan_deploy_app(&self, server: &str, app: &str, set: &[String]) -> Result<Plan> {
        self.plan_deploy_placed(server, app, set, Placement::default())
    }

    /// [`Orchestrator::plan_deploy_app`] with a placement on a cluster's node.
    pub fn plan_deploy_placed(
        &self,
        server: &str,
        app: &str,
        set: &[String],
        placement: Placement,
    ) -> Result<Plan> {
        let mut p = self.resolve_deploy(server, app, set)?;
        self.check_placement(server, &placement)?;
        p.placement = placement;
        let record = self.server(server)?;
        let mut plan = Plan {
            operation: format!("deploy {app} on {server}"),
            steps: Self::deploy_steps(&p.apps),
            resources: vec![self.preflight(&record, &p.apps)?.plan_line()],
            dns_records: Vec::new(),
            stacks: Vec::new(),
        };
        // A dependency's secret (in the vault and as a Docker secret) is needed by every app
        // that uses it: list it once.
        let mut listed = BTreeSet::new();
        for (i, a) in p.apps.iter().enumerate() {
            let (secrets, missing) = self.load_app_secrets(a, false)?;
            for m in missing {
                if listed.insert(m.clone()) {
                    plan.resources.push(format!("vault secret {m} (generated)"));
                }
            }
            let stack = self.render_app(&record, a, &p, &secrets)?;
            // Which path the stack takes: the apps before it in this job count as deployed.
            plan.resources
                .push(match self.stack_choice(server, a, &p.apps[..i]) {
                    Ok(choice) => crate::stack_path::describe(&stack.stack, server, &choice),
                    Err(e) => format!("stack {} on {server}: REFUSED, {e}", stack.stack),
                });
            for d in &stack.docker_secrets {
                let line = format!("docker secret {}", d.name);
                if listed.insert(line.clone()) {
                    plan.resources.push(line);
                }
            }
            for step in &stack.pre_deploy {
                if let DeployStep::CreateDatabase { spec, .. } = step {
                    plan.resources.push(spec.describe());
                }
            }
            plan.resources.extend(own_instance_lines(&stack));
            // How the app's first admin is made, and a warning when its setup page stays open
            // to whoever reaches it first.
            if let Some(line) = self
                .catalog()?
                .get(a)
                .and_then(livchat_apps::first_run::summary)
            {
                plan.resources.push(line);
            }
            let by_hand = if is_manual_dns(&record) {
                " (create it yourself; the deploy checks that it resolves)"
            } else {
                ""
            };
            for n in &stack.dns_names {
                plan.dns_records
                    .push(format!("A {n} -> {}{by_hand}", record.host));
            }
            plan.stacks.push(PlannedStack {
                app: stack.app.clone(),
                stack: stack.stack.clone(),
                compose: stack.redacted().to_string(),
            });
        }
        Ok(plan)
    }

    /// Every secret the apps need, generated for one render and stored nowhere (the vault is
    /// not read, so nothing secret can leak from a validation).
    pub(super) fn placeholder_secrets(&self, apps: &[String]) -> Result<SecretsByApp> {
        let mut by_app = SecretsByApp::new();
        for app in apps {
            for r in self.catalog()?.secrets_needed(app).map_err(apps_err)? {
                let value = self.generate_secret(&r)?;
                by_app
                    .entry(r.app.clone())
                    .or_default()
                    .insert(r.name.clone(), value);
            }
        }
        Ok(by_app)
    }

    /// A fresh value for a secret, as its app's definition specifies it.
    pub(super) fn generate_secret(
        &self,
        r: &livchat_apps::SecretRef,
    ) -> Result<secrecy::SecretString> {
        let def = self.catalog()?.require(&r.app).map_err(apps_err)?;
        let spec = def.secret(&r.name).ok_or_else(|| {
            CoreError::Apps(format!("app {} declares no secret {}", r.app, r.name))
        })?;
        Ok(livchat_apps::secrets::generate(spec))
    }

    /// The secrets a render of `app` needs, from the vault; missing ones are generated (and
    /// stored when `store` is set). Returns the secrets and the vault keys that were missing.
    pub(super) fn load_app_secrets(
        &self,
        app: &str,
        store: bool,
    ) -> Result<(SecretsByApp, Vec<String>)> {
        let refs = self.catalog()?.secrets_needed(app).map_err(apps_err)?;
        let mut by_app = SecretsByApp::new();
        let mut missing = Vec::new();
        for r in &refs {
            let key = r.vault_key();
            let value = match self.secrets.get(&key)? {
                Some(v) => v,
                None => {
                    let v = self.generate_secret(r)?;
                    missing.push(key.clone());
                    if store {
                        self.secrets.set(&key, v.clone())?;
                    }
                    v
                }
            };
            by_app
                .entry(r.app.clone())
                .or_default()
                .insert(r.name.clone(), value);
        }
        Ok((by_app, missing))
    }

    pub(super) fn render_app(
        &self,
        server: &ServerRecord,
        app: &str,
        p: &DeployParams,
        secrets: &SecretsByApp,
    ) -> Result<RenderedStack> {
        let dns = server.dns.as_ref().ok_or_else(|| {
            CoreError::Refused(format!("server {} has no DNS configuration", server.name))
        })?;
        let ctx = RenderContext {
            server: ServerInfo {
                name: server.name.clone(),
                address: server.host.clone(),
            },
            dns: livchat_apps::DnsConfig::new(&dns.zone_name, dns.subdomain.as_deref())
                .map_err(apps_err)?,
            settings: self.settings_map()?,
            options: self.render_options(),
        };
        let params = if app == p.app {
            parse_sets(&p.set)?
        } else {
            BTreeMap::new()
        };
        let stack = self
            .catalog()?
            .render(app, &ctx, &params, secrets)
            .map_err(apps_err)?;
        let constraints = self.placement_constraints(server, app, p, &stack)?;
        stack.with_placement(&constraints).map_err(apps_err)
    }

    /// Runs `app`'s `steps`; first-run claims only when `claim` (the routes were closed for
    /// one). Each claim that succeeds is recorded in the state at once (see `first_run`).
    pub(super) async fn run_deploy_steps(
        &self,
        ctx: &JobContext,
        server: &ServerRecord,
        app: &str,
        steps: &[DeployStep],
        secrets: &SecretsByApp,
        claim: bool,
    ) -> Result<()> {
        let platform = self.platform(&server.name).await?;
        // Claims are told apart by their order among the app's claim steps.
        let mut claims = 0u32..;
        for step in steps {
            ctx.check_cancelled()?;
            match step {
                DeployStep::CreateDatabase {
                    stack: db_stack,
                    service,
                    spec,
                    password,
                } => {
                    let pw = secrets
                        .get(&password.app)
                        .and_then(|s| s.get(&password.name))
                        .ok_or_else(|| {
                            CoreError::Apps(format!("missing secret {}", password.vault_key()))
                        })?;
                    ctx.hide(pw);
                    let cmd = livchat_apps::create_database_command(spec, pw).map_err(apps_err)?;
                    ctx.info(format!(
                        "creating database {} and user {} in {db_stack}/{service}",
                        spec.database, spec.user
                    ));
                    let exec = ServiceExec {
                        stack: db_stack.clone(),
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
                    };
                    // On a cluster, the platform finds the node running the database.
                    let out = platform.exec_in_service(exec).await.map_err(platform_err)?;
                    if !out.success() {
                        // psql may echo the failing statement, which holds the password:
                        // only the redacted tail goes into the error.
                        let tail = ctx.redact(&livchat_remote::setup::tail(&out.stderr, 5));
                        return Err(CoreError::Step {
                            step: format!("create database {}", spec.database),
                            message: format!("exit status {}: {tail}", out.exit_status),
                        });
                    }
                }
                DeployStep::WaitHealthy {
                    stack: name,
                    timeout_secs,
                } => {
                    self.wait_stack(ctx, platform.as_ref(), name, *timeout_secs)
                        .await?;
                }
                DeployStep::Exec {
                    stack: st,
                    service,
                    argv,
                    timeout_secs,
                } => {
                    ctx.info(format!("running {argv:?} in {st}/{service}"));
                    let out = platform
                        .exec_in_service(ServiceExec {
                            stack: st.clone(),
                            service: service.clone(),
                            argv: argv.clone(),
                            stdin: None,
                            user: None,
                            timeout: Duration::from_secs(timeout_secs.unwrap_or(600)),
                            cancel: ctx.cancel_token(),
                        })
                        .await
                        .map_err(platform_err)?;
                    if !out.success() {
                        return Err(CoreError::Step {
                            step: format!("exec in {st}/{service}"),
                            message: format!(
                                "exit status {}: {}",
                                out.exit_status,
                                ctx.redact(&livchat_remote::setup::tail(&out.stderr, 5))
                            ),
                        });
                    }
                }
                DeployStep::HttpRequest(req) if claim => {
                    let n = claims.next().unwrap_or_default();
                    let before = self.store.load()?.claimed(&server.name, app, n);
                    crate::first_run::claim(ctx, platform.as_ref(), req, before).await?;
                    self.record_claim(&server.name, app, n)?;
                }
                DeployStep::ExecClaim(step) if claim => {
                    let n = claims.next().unwrap_or_default();
                    let before = self.store.load()?.claimed(&server.name, app, n);
                    crate::first_run::claim_exec(ctx, platform.as_ref(), step, before).await?;
                    self.record_claim(&server.name, app, n)?;
                }
                DeployStep::HttpRequest(_) | DeployStep::ExecClaim(_) => {}
            }
        }
        Ok(())
    }

    /// Records that claim `n` of `app` succeeded, before anything else can fail.
    fn record_claim(&self, server: &str, app: &str, n: u32) -> Result<()> {
        self.store.update("first-run claim recorded", &mut |s| {
            s.record_claim(server, app, n);
            Ok(())
        })?;
        Ok(())
    }

    pub(super) async fn wait_stack(
        &self,
        ctx: &JobContext,
        platform: &dyn livchat_remote::ContainerPlatform,
        name: &str,
        timeout_secs: u64,
    ) -> Result<()> {
        let timeout = Duration::from_secs(timeout_secs).min(self.config.health_timeout);
        ctx.info(format!(
            "waiting up to {timeout:?} for stack {name} to be healthy"
        ));
        let log_ctx = ctx.clone();
        platform
            .wait_healthy(
                name,
                WaitOptions {
                    timeout,
                    cancel: ctx.cancel_token(),
                    on_progress: Some(Arc::new(move |status: &livchat_remote::StackStatus| {
                        let summary: Vec<String> = status
                            .services
                            .iter()
                            .map(|s| {
                                format!("{} {}/{}", s.name, s.running_replicas, s.desired_replicas)
                            })
                            .collect();
                        log_ctx.log(livchat_store::LogLevel::Debug, summary.join(", "));
                    })),
                    ..Default::default()
                },
            )
            .await
            .map_err(platform_err)?;
        Ok(())
    }
}
