//! The setup-server job (the remote setup plan, step by step, each step checked before it runs)
//! and the server's DNS update.

use super::*;

impl Orchestrator {
    pub fn start_setup_server(&self, p: SetupServerParams) -> Result<JobRecord> {
        let server = self.server(&p.name)?;
        validate_dns(&p.zone, p.subdomain.as_deref())?;
        require_root(&server)?;
        if p.dns == DnsMode::Cloudflare {
            self.require_secret(crate::orchestrator::CLOUDFLARE_TOKEN)?;
        }
        // The plan's step ids do not depend on the OS (only their arguments do), so the job
        // starts with its full list and progress keeps one total; `connect` sets the list
        // again once it has detected the OS.
        let plan =
            livchat_remote::plan(&self.setup_config(&server)?, &supported_os("debian", "12")?)?;
        self.create_job(
            JobKind::SetupServer,
            Some(&p.name),
            to_params(&p),
            Self::setup_steps(&plan),
        )
    }

    /// The steps of a setup job: connect, the A record, the plan's steps, finalize.
    pub(super) fn setup_steps(plan: &[livchat_remote::Step]) -> Vec<String> {
        let mut steps = vec!["connect".to_string(), "dns_record".to_string()];
        steps.extend(plan.iter().map(|s| format!("{SETUP_PREFIX}{}", s.id)));
        steps.push("finalize".into());
        steps
    }

    /// The dry run of a setup: the A record and what the plan installs and configures. The
    /// exact steps depend on the operating system, detected when the job connects; the plan
    /// lists them for Debian 12 (what `server create` installs). Touches nothing.
    pub fn plan_setup_server(&self, p: &SetupServerParams) -> Result<Plan> {
        let server = self.server(&p.name)?;
        validate_dns(&p.zone, p.subdomain.as_deref())?;
        require_root(&server)?;
        let config = self.setup_config(&server)?;
        let os = supported_os("debian", "12")?;
        let plan = livchat_remote::plan(&config, &os)?;
        let steps = Self::setup_steps(&plan);
        let fqdn = Self::server_fqdn(&p.name, &p.zone, p.subdomain.as_deref());
        let mut resources: Vec<String> = plan
            .iter()
            .map(|s| format!("{}: {}", s.id, s.name))
            .collect();
        let record = format!("A {fqdn} -> {}", server.host);
        let dns_records = match p.dns {
            DnsMode::Cloudflare => {
                // The job would stop at its first step without it: the plan says so.
                if let Err(CoreError::MissingCredential { name }) =
                    self.require_secret(crate::orchestrator::CLOUDFLARE_TOKEN)
                {
                    resources.insert(
                        0,
                        format!(
                            "MISSING credential {name}: store it with `livchat dns configure {}`, or set up with --dns manual and create the records yourself",
                            p.zone
                        ),
                    );
                }
                vec![record]
            }
            DnsMode::Manual => vec![format!("{record} (create it yourself at your DNS host)")],
        };
        Ok(Plan {
            operation: format!("set up server {} (steps shown for Debian 12)", p.name),
            steps,
            resources,
            dns_records,
            stacks: Vec::new(),
        })
    }

    pub(super) fn setup_config(&self, server: &ServerRecord) -> Result<SetupConfig> {
        let addr: IpAddr = server.host.parse().map_err(|_| {
            CoreError::invalid(
                "host",
                format!(
                    "server {} has host {}, but Swarm needs an IP address to advertise",
                    server.name, server.host
                ),
            )
        })?;
        let mut config = SetupConfig::new(&server.name, addr)?;
        config.docker = self.config.docker_source;
        config.ssh_port = server.ssh_port;
        if let Some(tz) = self
            .store
            .settings()?
            .get(livchat_store::SettingKey::Timezone)
        {
            config.timezone =
                livchat_remote::validate_name(livchat_remote::NameKind::Timezone, tz)?;
        }
        Ok(config)
    }

    pub(super) fn server_fqdn(name: &str, zone: &str, subdomain: Option<&str>) -> String {
        match subdomain {
            Some(s) => format!("{name}.{s}.{zone}"),
            None => format!("{name}.{zone}"),
        }
    }

    pub(super) async fn setup_step(
        &self,
        ctx: &JobContext,
        job: &JobRecord,
        step: &str,
    ) -> Result<Value> {
        let p: SetupServerParams = params(job)?;
        let server = self.server(&p.name)?;
        match step {
            "connect" => {
                let executor = self.executor(&p.name).await?;
                let os = livchat_remote::detect_os(executor.as_ref()).await?;
                let plan = livchat_remote::plan(&self.setup_config(&server)?, &os)?;
                ctx.info(format!("{} detected; {} setup steps", os.id(), plan.len()));
                self.jobs
                    .set_remaining_steps(&job.id, Self::setup_steps(&plan))?;
                let done =
                    crate::setup_ahead::declare_done_steps(ctx, executor.as_ref(), &plan).await?;
                // Read once: what deploys compare their apps' needs with (preflight).
                let resources = match server.setup.resources {
                    Some(known) => known,
                    None => {
                        let r = livchat_remote::read_resources(executor.as_ref()).await?;
                        ctx.info(format!("{} CPUs, {} MiB of memory", r.cpus, r.memory_mb));
                        livchat_store::ServerResources {
                            cpus: r.cpus,
                            memory_mb: r.memory_mb,
                        }
                    }
                };
                // A re-run that finds a ready server with every step in place leaves its
                // record alone (finalize then does too): the status does not flip to setting
                // up and back, and 100 re-runs at once do not each rewrite state.json.
                let in_place = server.status == ServerStatus::Ready
                    && server.setup.resources == Some(resources)
                    && done.len() == plan.len()
                    && done
                        .iter()
                        .all(|id| server.setup.completed_steps.iter().any(|c| c == id));
                if !in_place {
                    self.store.update("server setting up", &mut |s| {
                        if let Some(sv) = s.servers.get_mut(&p.name) {
                            sv.status = ServerStatus::SettingUp;
                            sv.setup.resources = Some(resources);
                            for id in &done {
                                if !sv.setup.completed_steps.iter().any(|c| c == id) {
                                    sv.setup.completed_steps.push(id.to_string());
                                }
                            }
                        }
                        Ok(())
                    })?;
                }
                Ok(json!({
                    "os": os.id(),
                    "os_version": os.version_id,
                    "os_codename": os.codename,
                }))
            }
            "dns_record" if p.dns == DnsMode::Manual => {
                let ip = server_ipv4(&server)?;
                let fqdn = Self::server_fqdn(&p.name, &p.zone, p.subdomain.as_deref());
                let apps = match &p.subdomain {
                    Some(sub) => format!("<app>.{sub}.{}", p.zone),
                    None => format!("<app>.{}", p.zone),
                };
                ctx.warn(format!(
                    "manual DNS: create these records at your DNS host: A {fqdn} -> {ip}, and for each app A {apps} -> {ip} (`livchat app deploy --plan` lists them); a deploy checks that they resolve"
                ));
                let config = DnsConfig {
                    zone_name: p.zone.clone(),
                    subdomain: p.subdomain.clone(),
                    mode: DnsMode::Manual,
                };
                self.store.update("server dns", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.dns = Some(config.clone());
                    }
                    Ok(())
                })?;
                Ok(json!({ "dns": fqdn, "dns_mode": "manual" }))
            }
            "dns_record" => {
                let ip = server_ipv4(&server)?;
                let fqdn = Self::server_fqdn(&p.name, &p.zone, p.subdomain.as_deref());
                let dns = self.dns()?;
                let zone = dns.find_zone(&p.zone).await.map_err(dns_err)?;
                let ensured = dns
                    .ensure_a_record(&zone, &fqdn, ip, &RecordOptions::default())
                    .await
                    .map_err(dns_err)?;
                ctx.info(format!(
                    "DNS A {fqdn} -> {ip} ({})",
                    change_words(ensured.change)
                ));
                let config = DnsConfig {
                    zone_name: p.zone.clone(),
                    subdomain: p.subdomain.clone(),
                    mode: p.dns,
                };
                if server.dns.as_ref() != Some(&config) {
                    self.store.update("server dns", &mut |s| {
                        if let Some(sv) = s.servers.get_mut(&p.name) {
                            sv.dns = Some(config.clone());
                        }
                        Ok(())
                    })?;
                }
                Ok(json!({ "dns": fqdn }))
            }
            // Still ready with a completion time: `connect` found every step in place and
            // changed nothing, so the last completion stands.
            "finalize"
                if server.status == ServerStatus::Ready && server.setup.completed_at.is_some() =>
            {
                Ok(json!({ "server": p.name, "status": "ready" }))
            }
            "finalize" => {
                self.store.update("server ready", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.status = ServerStatus::Ready;
                        sv.setup.completed_at = Some(chrono::Utc::now());
                    }
                    Ok(())
                })?;
                Ok(json!({ "server": p.name, "status": "ready" }))
            }
            s if s.starts_with(SETUP_PREFIX) => {
                let id = &s[SETUP_PREFIX.len()..];
                let executor = self.executor(&p.name).await?;
                let os = match recorded_os(job) {
                    Some(os) => os,
                    // A job recorded before the OS was kept in its result.
                    None => livchat_remote::detect_os(executor.as_ref()).await?,
                };
                let plan = livchat_remote::plan(&self.setup_config(&server)?, &os)?;
                let one: Vec<_> = plan.into_iter().filter(|st| st.id == id).collect();
                if one.is_empty() {
                    return Err(CoreError::invalid(
                        "step",
                        format!("unknown setup step {id}"),
                    ));
                }
                let log_ctx = ctx.clone();
                let report = livchat_remote::run_plan(
                    executor.as_ref(),
                    &one,
                    livchat_remote::RunOptions {
                        cancel: ctx.cancel_token(),
                        on_line: Some(Arc::new(move |l: livchat_remote::OutputLine| {
                            log_ctx.log(livchat_store::LogLevel::Debug, &l.line);
                        })),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| match e {
                    livchat_remote::SetupError::Remote {
                        source: livchat_remote::RemoteError::Cancelled,
                        ..
                    } => CoreError::Cancelled,
                    other => CoreError::Step {
                        step: id.to_string(),
                        message: other.to_string(),
                    },
                })?;
                let name = one.first().map_or(id, |st| st.name);
                let outcome = match report.steps.first().map(|(_, st)| *st) {
                    Some(livchat_remote::StepState::Ran) => "done",
                    Some(livchat_remote::StepState::Skipped) => "already in place",
                    Some(livchat_remote::StepState::Failed) => "failed",
                    Some(livchat_remote::StepState::Started) | None => "not run",
                };
                ctx.info(format!("{name}: {outcome}"));
                self.store.update("server setup step", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name)
                        && !sv.setup.completed_steps.iter().any(|c| c == id)
                    {
                        sv.setup.completed_steps.push(id.to_string());
                    }
                    Ok(())
                })?;
                Ok(Value::Null)
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }

    /// Changes a server's DNS configuration and points its A record at it (quick: no job).
    pub async fn update_server_dns(
        &self,
        name: &str,
        zone: &str,
        subdomain: Option<&str>,
    ) -> Result<String> {
        let server = self.server(name)?;
        validate_dns(zone, subdomain)?;
        let ip = server_ipv4(&server)?;
        let fqdn = Self::server_fqdn(name, zone, subdomain);
        let dns = self.dns()?;
        let z = dns.find_zone(zone).await.map_err(dns_err)?;
        dns.ensure_a_record(&z, &fqdn, ip, &RecordOptions::default())
            .await
            .map_err(dns_err)?;
        let config = DnsConfig {
            zone_name: zone.to_string(),
            subdomain: subdomain.map(str::to_string),
            mode: DnsMode::Cloudflare,
        };
        self.store.update("server dns", &mut |s| {
            if let Some(sv) = s.servers.get_mut(name) {
                sv.dns = Some(config.clone());
            }
            Ok(())
        })?;
        Ok(fqdn)
    }
}
