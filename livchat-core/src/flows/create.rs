//! The create-server job: the provider's server, SSH key and firewall, each recorded before the next
//! step, and the clean-up that deletes exactly what the failed job created.

use super::*;

impl Orchestrator {
    pub(super) fn create_steps() -> Vec<String> {
        [
            "ssh_key",
            "create_server",
            "pin_host_key",
            "firewall",
            "finalize",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Validates and records a create-server job (queued).
    pub fn start_create_server(&self, p: CreateServerParams) -> Result<JobRecord> {
        livchat_store::validate_server_name(&p.name)
            .map_err(|r| CoreError::invalid("server name", r))?;
        for (field, v) in [
            ("type", &p.server_type),
            ("location", &p.location),
            ("image", &p.image),
        ] {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(CoreError::invalid(
                    field,
                    format!(
                        "`{}` is not a provider name (letters, digits, '-', '.')",
                        v.escape_debug()
                    ),
                ));
            }
        }
        if self.store.load()?.servers.contains_key(&p.name) {
            return Err(CoreError::Refused(format!(
                "server {} already exists; choose another name",
                p.name
            )));
        }
        self.require_secret(self.providers.creating()?.profile.token_secret)?;
        self.create_job(
            JobKind::CreateServer,
            Some(&p.name),
            to_params(&p),
            Self::create_steps(),
        )
    }

    pub fn plan_create_server(&self, p: &CreateServerParams) -> Plan {
        let mut resources = vec![
            format!("vault secret {} (new Ed25519 key)", ssh_key_secret(&p.name)),
            format!("provider ssh key livchat-{}", p.name),
            format!(
                "provider server {} ({}, {}, {}) labelled managed-by=livchat",
                p.name, p.server_type, p.location, p.image
            ),
        ];
        // Without a provider `start` refuses; the plan still shows the rest.
        if self
            .providers
            .creating()
            .is_ok_and(|entry| entry.profile.firewalls)
        {
            resources.push(format!(
                "provider firewall livchat-{} (tcp 22, 80, 443)",
                p.name
            ));
        }
        resources.push(format!("state server {}", p.name));
        Plan {
            operation: format!("create server {}", p.name),
            steps: Self::create_steps(),
            resources,
            dns_records: Vec::new(),
            stacks: Vec::new(),
        }
    }

    pub(super) async fn create_step(
        &self,
        ctx: &JobContext,
        job: &JobRecord,
        step: &str,
    ) -> Result<Value> {
        let p: CreateServerParams = params(job)?;
        let provider = self.provider()?;
        let progress = {
            let ctx = ctx.clone();
            move |a: livchat_providers::ActionProgress| {
                ctx.info(format!("provider action {}: {}%", a.command, a.progress));
            }
        };
        match step {
            "ssh_key" => {
                let secret = ssh_key_secret(&p.name);
                let key = match self.secrets.get(&secret)? {
                    Some(k) => livchat_remote::parse_private_key(&k)?,
                    None => {
                        let k = livchat_remote::generate_ed25519(&format!("livchat@{}", p.name))?;
                        self.secrets.set(&secret, k.private_openssh.clone())?;
                        ctx.info(format!("generated SSH key {} ({})", secret, k.fingerprint));
                        k
                    }
                };
                let registered = provider
                    .ensure_ssh_key(&provider_resource_name(&p.name), &key.public_openssh)
                    .await
                    .map_err(provider_err)?;
                Ok(json!({ "ssh_key": registered.name }))
            }
            "create_server" => {
                let key_name = job
                    .result
                    .as_ref()
                    .and_then(|r| r.get("ssh_key"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| provider_resource_name(&p.name));
                // A create retried after a timeout must not create a second server: look it up.
                let (server, created_now) =
                    match provider.find_server(&p.name).await.map_err(provider_err)? {
                        Some(existing) => {
                            ctx.info(format!(
                                "server {} already exists at the provider (id {}), reusing it",
                                p.name, existing.id
                            ));
                            (existing, false)
                        }
                        None => {
                            let spec = ServerSpec {
                                name: p.name.clone(),
                                server_type: p.server_type.clone(),
                                location: p.location.clone(),
                                image: p.image.clone(),
                                ssh_keys: vec![key_name],
                                labels: BTreeMap::from([(
                                    livchat_providers::MANAGED_BY_LABEL.0.to_string(),
                                    livchat_providers::MANAGED_BY_LABEL.1.to_string(),
                                )]),
                            };
                            let created = provider
                                .create_server(&spec, &progress)
                                .await
                                .map_err(provider_err)?;
                            (created, true)
                        }
                    };
                let Some(ip) = server.ipv4 else {
                    // The job's result does not record this server yet, so the clean-up
                    // would not find it: remove it here, or it is an orphan.
                    if created_now && !p.keep_on_failure {
                        ctx.info(format!(
                            "removing server {} (id {}) created by this job",
                            p.name, server.id
                        ));
                        provider
                            .delete_server(&server.id, &|_| {})
                            .await
                            .map_err(provider_err)?;
                    }
                    return Err(CoreError::Provider(format!(
                        "server {} has no public IPv4 address",
                        p.name
                    )));
                };
                let record = ServerRecord {
                    name: p.name.clone(),
                    provider: self.providers.creating()?.kind,
                    provider_id: server.id.0.parse().ok(),
                    host: ip.to_string(),
                    ssh_port: 22,
                    ssh_user: "root".into(),
                    ssh_key_secret: ssh_key_secret(&p.name),
                    ssh_agent_key: None,
                    host_key_fingerprint: None,
                    dns: None,
                    server_type: Some(p.server_type.clone()),
                    location: Some(p.location.clone()),
                    image: Some(p.image.clone()),
                    labels: server.labels.clone(),
                    status: ServerStatus::Creating,
                    setup: Default::default(),
                    platform: Default::default(),
                    created_at: chrono::Utc::now(),
                };
                self.store.update("server create", &mut |s| {
                    s.servers.insert(p.name.clone(), record.clone());
                    Ok(())
                })?;
                ctx.info(format!(
                    "server {} is at {} (provider id {})",
                    p.name, ip, server.id
                ));
                Ok(
                    json!({ "provider_id": server.id.0, "ipv4": ip.to_string(), "created_by_job": true }),
                )
            }
            "pin_host_key" => {
                let server = self.server(&p.name)?;
                let key = self.require_secret(&server.ssh_key_secret)?;
                let deadline = Instant::now() + self.config.ssh_wait;
                let mut delay = Duration::from_millis(500);
                let connected = loop {
                    ctx.check_cancelled()?;
                    match self
                        .connector
                        .connect(
                            &Self::target(&server),
                            &key,
                            &HostKeyPolicy::TrustOnFirstUse,
                        )
                        .await
                    {
                        Ok(c) => break c,
                        Err(e) if Instant::now() < deadline => {
                            ctx.info(format!("waiting for SSH on {}: {e}", server.host));
                            let token = ctx.cancel_token();
                            tokio::select! {
                                () = tokio::time::sleep(delay) => {}
                                () = token.cancelled() => return Err(CoreError::Cancelled),
                            }
                            delay = (delay * 2).min(Duration::from_secs(10));
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                let fp = connected.host_key_fingerprint.clone();
                self.store.update("server pin host key", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.host_key_fingerprint = Some(fp.clone());
                    }
                    Ok(())
                })?;
                self.connections
                    .lock()
                    .await
                    .insert(p.name.clone(), connected.executor);
                ctx.info(format!("pinned host key {fp}"));
                Ok(json!({ "host_key_fingerprint": fp }))
            }
            "firewall" => {
                if !self.providers.creating()?.profile.firewalls {
                    ctx.info("the provider keeps no firewalls: the server's ufw filters alone");
                    return Ok(Value::Null);
                }
                let server = self.server(&p.name)?;
                let id = server
                    .provider_id
                    .ok_or_else(|| CoreError::Provider("server has no provider id".into()))?;
                // The server's own SSH port: the rules drop everything else inbound.
                let mut spec = FirewallSpec::ssh_and_web(provider_resource_name(&p.name));
                spec.tcp_ports.retain(|port| *port != 22);
                spec.tcp_ports.insert(0, server.ssh_port);
                let fw = provider
                    .ensure_firewall(&spec, &ServerId(id.to_string()))
                    .await
                    .map_err(provider_err)?;
                Ok(json!({ "firewall": fw.name }))
            }
            "finalize" => {
                self.store.update("server created", &mut |s| {
                    if let Some(sv) = s.servers.get_mut(&p.name) {
                        sv.status = ServerStatus::Running;
                    }
                    Ok(())
                })?;
                Ok(json!({ "server": p.name }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }

    pub(super) async fn create_cleanup(&self, ctx: &JobContext, job: &JobRecord) -> Result<()> {
        let p: CreateServerParams = params(job)?;
        let created = job
            .result
            .as_ref()
            .and_then(|r| r.get("created_by_job"))
            .and_then(Value::as_bool)
            == Some(true);
        if !created {
            return Ok(());
        }
        if p.keep_on_failure {
            ctx.warn(format!(
                "keeping server {} at the provider as asked",
                p.name
            ));
            return Ok(());
        }
        let provider = self.provider()?;
        if let Some(server) = provider.find_server(&p.name).await.map_err(provider_err)? {
            ctx.info(format!(
                "removing server {} (id {}) created by this job",
                p.name, server.id
            ));
            provider
                .delete_server(&server.id, &|_| {})
                .await
                .map_err(provider_err)?;
        }
        self.forget_connection(&p.name).await;
        self.store.update("server create rollback", &mut |s| {
            s.servers.remove(&p.name);
            Ok(())
        })?;
        // The create step must run again on retry: it was undone.
        self.jobs
            .set_remaining_steps(&job.id, Self::create_steps().split_off(1))?;
        self.jobs.edit_if_present(&job.id, "job rewind", |j| {
            j.steps_completed.retain(|st| st == "ssh_key");
            if let Some(r) = j.result.as_mut().and_then(Value::as_object_mut) {
                r.remove("created_by_job");
            }
        })?;
        Ok(())
    }
}
